//! Listings: byte order, pagination (flat and delimited, groups spanning pages), prefixes
//! with wildcards, case twins and multi-byte UTF-8. Expected results are computed here by
//! sorting keys as bytes, never hard-coded.

use std::time::Duration;

use s3o_store::*;

use crate::support::*;

/// The adversarial byte-order key set of SPEC §11, plus multi-byte UTF-8 and keys with `%`,
/// `_` and `\`.
pub fn adversarial_keys() -> Vec<String> {
    [
        "A",
        "a",
        "B",
        "b",
        "Zoo",
        "zoo",
        "a/b",
        "a-b",
        "a.b",
        "a_b",
        "A1",
        "a1",
        "ab",
        "Ab",
        "é",
        "e",
        "ü/x",
        "日本",
        "日本/語",
        "😀",
        "z\u{FFFD}",
        "a%b",
        "a\\b",
        "%",
        "_",
        "\\",
        "a b",
        "a/c/d",
        "b/x",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Keys for delimited pagination: groups that span pages, nested groups, leaves between.
fn grouped_keys() -> Vec<String> {
    let mut keys = adversarial_keys();
    for k in [
        "a/1",
        "a/2",
        "a/3",
        "a/b/1",
        "a.txt",
        "b/1",
        "b/2",
        "c",
        "d/x/y",
        "d/z",
        "e/1",
        "f/1",
        "f/2",
        "f/3",
        "f/4",
        "日本/1",
        "日本/2",
        "日本語",
        "z",
        "Z/1",
        "Z/2",
        "%/1",
        "_/1",
        "\\/1",
    ] {
        keys.push(k.to_owned());
    }
    byte_sorted(&keys)
}

/// An entry of a delimited listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Prefix(String),
    Leaf(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Prefix(s) | Entry::Leaf(s) => s,
        }
    }
}

/// The delimited listing computed from the keys alone.
fn model_delimited(keys: &[String], prefix: &str, delim: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for k in byte_sorted(keys) {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        match rest.find(delim) {
            Some(p) => {
                let cp = k[..prefix.len() + p + delim.len()].to_owned();
                if !out.contains(&Entry::Prefix(cp.clone())) {
                    out.push(Entry::Prefix(cp));
                }
            }
            None => out.push(Entry::Leaf(k)),
        }
    }
    out
}

fn model_flat(keys: &[String], prefix: &str) -> Vec<String> {
    byte_sorted(keys)
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// Walks a flat listing page by page, checking each page's shape; returns every key seen.
async fn walk_flat(store: &Db, prefix: &str, page: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    for _ in 0..10_000 {
        let r = store.list_objects(prefix, &token, page).await.unwrap();
        assert!(r.objects.len() as i64 <= page, "page larger than {page}");
        out.extend(r.objects.iter().map(|o| o.object_key.clone()));
        if !r.is_truncated {
            assert!(r.next_continuation_token.is_empty(), "token on last page");
            return out;
        }
        assert_eq!(r.objects.len() as i64, page, "a truncated page is full");
        assert_eq!(
            Some(&r.next_continuation_token),
            r.objects.last().map(|o| &o.object_key),
            "token is the last key of the page"
        );
        token = r.next_continuation_token;
    }
    panic!("flat listing never ended");
}

/// Walks a delimited listing page by page; returns every entry seen, in order.
async fn walk_delimited(store: &Db, prefix: &str, delim: &str, page: i64) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut token = String::new();
    for _ in 0..10_000 {
        let r = store
            .list_objects_delimited(prefix, delim, &token, page)
            .await
            .unwrap();
        let mut entries: Vec<Entry> = r
            .common_prefixes
            .iter()
            .map(|p| Entry::Prefix(p.clone()))
            .chain(r.objects.iter().map(|o| Entry::Leaf(o.object_key.clone())))
            .collect();
        entries.sort_by(|x, y| x.name().as_bytes().cmp(y.name().as_bytes()));
        assert!(
            entries.len() as i64 <= page,
            "page of {} > {page}",
            entries.len()
        );
        for p in &r.common_prefixes {
            assert!(
                p.ends_with(delim) && p.starts_with(prefix),
                "bad prefix {p}"
            );
        }
        out.extend(entries);
        if !r.is_truncated {
            assert!(r.next_continuation_token.is_empty(), "token on last page");
            return out;
        }
        assert!(
            !r.next_continuation_token.is_empty(),
            "truncated without token"
        );
        token = r.next_continuation_token;
    }
    panic!("delimited listing never ended");
}

async fn flat_pages(store: Db, page: i64) {
    three_backends(&store).await;
    let keys = adversarial_keys();
    put_many(&store, &keys, A, 1).await;
    // Replicas must not produce duplicate entries.
    for k in keys.iter().step_by(3) {
        replicate(&store, k, B, A).await.unwrap();
    }
    let expected = model_flat(&keys, "");
    assert_eq!(
        walk_flat(&store, "", page).await,
        expected,
        "page size {page}"
    );
    let expected_a = model_flat(&keys, "a");
    assert_eq!(
        walk_flat(&store, "a", page).await,
        expected_a,
        "prefix a, page {page}"
    );
    assert_ledger(&store).await;
}

async fn delimited_pages(store: Db, page: i64) {
    three_backends(&store).await;
    let keys = grouped_keys();
    put_many(&store, &keys, A, 1).await;
    for k in keys.iter().step_by(4) {
        replicate(&store, k, C, A).await.unwrap();
    }
    for prefix in ["", "a/", "日本", "f/"] {
        let expected = model_delimited(&keys, prefix, "/");
        let got = walk_delimited(&store, prefix, "/", page).await;
        assert_eq!(got, expected, "prefix {prefix:?}, page size {page}");
    }
    assert_ledger(&store).await;
}

/// The adversarial key set lists in byte order, one entry per key.
pub async fn flat_listing_byte_order(store: Db) {
    three_backends(&store).await;
    let keys = adversarial_keys();
    put_many(&store, &keys, A, 2).await;
    replicate(&store, "a", B, A).await.unwrap();
    let r = store.list_objects("", "", 1000).await.unwrap();
    let got: Vec<String> = r.objects.iter().map(|o| o.object_key.clone()).collect();
    assert_eq!(got, byte_sorted(&keys));
    assert!(!r.is_truncated);
    // Byte order, not a locale's: upper case before lower case, '/' after '-' and '.'.
    let pos = |k: &str| got.iter().position(|g| g == k).unwrap();
    assert!(pos("Zoo") < pos("a"));
    assert!(pos("a-b") < pos("a.b") && pos("a.b") < pos("a/b") && pos("a/b") < pos("a1"));
    assert!(pos("a1") < pos("a_b") && pos("a_b") < pos("ab"));
    assert_ledger(&store).await;
}

/// Flat pagination with page size 1 visits every key once.
pub async fn flat_pages_of_1(store: Db) {
    flat_pages(store, 1).await;
}

/// Flat pagination with page size 2 visits every key once.
pub async fn flat_pages_of_2(store: Db) {
    flat_pages(store, 2).await;
}

/// Flat pagination with page size 3 visits every key once.
pub async fn flat_pages_of_3(store: Db) {
    flat_pages(store, 3).await;
}

/// Flat pagination with page size 1000 returns everything in one page.
pub async fn flat_pages_of_1000(store: Db) {
    flat_pages(store, 1000).await;
}

/// Delimited pagination with page size 1: every group and leaf once.
pub async fn delimited_pages_of_1(store: Db) {
    delimited_pages(store, 1).await;
}

/// Delimited pagination with page size 2: groups span pages, each emitted once.
pub async fn delimited_pages_of_2(store: Db) {
    delimited_pages(store, 2).await;
}

/// Delimited pagination with page size 3.
pub async fn delimited_pages_of_3(store: Db) {
    delimited_pages(store, 3).await;
}

/// Delimited pagination with page size 1000.
pub async fn delimited_pages_of_1000(store: Db) {
    delimited_pages(store, 1000).await;
}

/// `a/1 a/2 b/1 file1 file2` ⇒ prefixes `a/`, `b/`; leaves with backend and size.
pub async fn delimited_groups_and_leaves(store: Db) {
    three_backends(&store).await;
    put(&store, "a/1", A, 1).await;
    put(&store, "a/2", A, 2).await;
    put(&store, "b/1", B, 3).await;
    put(&store, "file1", A, 40).await;
    put(&store, "file2", B, 50).await;
    let r = store
        .list_objects_delimited("", "/", "", 1000)
        .await
        .unwrap();
    assert_eq!(r.common_prefixes, vec!["a/", "b/"]);
    let leaves: Vec<(&str, &str, i64)> = r
        .objects
        .iter()
        .map(|o| (o.object_key.as_str(), o.backend_name.as_str(), o.size_bytes))
        .collect();
    assert_eq!(leaves, vec![("file1", A, 40), ("file2", B, 50)]);
    assert!(!r.is_truncated && r.next_continuation_token.is_empty());
    assert_ledger(&store).await;
}

/// 4 groups × 3 keys with max 2: two pages, no group twice.
pub async fn delimited_pagination_no_duplicate(store: Db) {
    three_backends(&store).await;
    let mut keys = Vec::new();
    for g in ["g1", "g2", "g3", "g4"] {
        for i in 0..3 {
            keys.push(format!("{g}/{i}"));
        }
    }
    put_many(&store, &keys, A, 1).await;
    let first = store.list_objects_delimited("", "/", "", 2).await.unwrap();
    assert_eq!(first.common_prefixes, vec!["g1/", "g2/"]);
    assert!(first.is_truncated);
    let second = store
        .list_objects_delimited("", "/", &first.next_continuation_token, 2)
        .await
        .unwrap();
    assert_eq!(second.common_prefixes, vec!["g3/", "g4/"]);
    assert!(second.objects.is_empty());
    let all = walk_delimited(&store, "", "/", 2).await;
    assert_eq!(all, model_delimited(&keys, "", "/"));
    assert_ledger(&store).await;
}

/// A prefix plus delimiter lists the next level only; the prefix itself can be a leaf.
pub async fn delimited_with_prefix(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = ["a/", "a/1", "a/b/1", "a/b/2", "a/c/x", "ab", "a", "a/ü/1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    put_many(&store, &keys, A, 1).await;
    let r = store
        .list_objects_delimited("a/", "/", "", 1000)
        .await
        .unwrap();
    let expected = model_delimited(&keys, "a/", "/");
    let mut got: Vec<Entry> = r
        .common_prefixes
        .iter()
        .map(|p| Entry::Prefix(p.clone()))
        .chain(r.objects.iter().map(|o| Entry::Leaf(o.object_key.clone())))
        .collect();
    got.sort_by(|x, y| x.name().as_bytes().cmp(y.name().as_bytes()));
    assert_eq!(got, expected);
    assert!(r.common_prefixes.contains(&"a/b/".to_owned()));
    for page in [1, 2] {
        assert_eq!(walk_delimited(&store, "a/", "/", page).await, expected);
    }
    assert_ledger(&store).await;
}

/// A multi-character delimiter groups on its first occurrence.
pub async fn delimited_multichar_delimiter(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = ["x::y::z", "x::w", "x:y", "y", "::lead", "y::1", "y:::2"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    put_many(&store, &keys, A, 1).await;
    for page in [1, 2, 1000] {
        assert_eq!(
            walk_delimited(&store, "", "::", page).await,
            model_delimited(&keys, "", "::"),
            "page {page}"
        );
    }
    assert_ledger(&store).await;
}

/// With a delimiter no key contains, the delimited listing is the flat listing.
pub async fn delimited_agrees_with_flat_order(store: Db) {
    three_backends(&store).await;
    let keys = adversarial_keys();
    put_many(&store, &keys, A, 3).await;
    let flat = store.list_objects("", "", 1000).await.unwrap();
    let delim = store
        .list_objects_delimited("", "|", "", 1000)
        .await
        .unwrap();
    assert!(delim.common_prefixes.is_empty());
    assert_eq!(delim.objects, flat.objects);
    for page in [1, 3] {
        let leaves: Vec<String> = walk_delimited(&store, "", "|", page)
            .await
            .into_iter()
            .map(|e| e.name().to_owned())
            .collect();
        assert_eq!(leaves, walk_flat(&store, "", page).await);
    }
    assert_ledger(&store).await;
}

/// An empty delimiter is a flat listing.
pub async fn empty_delimiter_is_flat(store: Db) {
    three_backends(&store).await;
    let keys = grouped_keys();
    put_many(&store, &keys, A, 1).await;
    let flat = store.list_objects("", "", 5).await.unwrap();
    let delim = store.list_objects_delimited("", "", "", 5).await.unwrap();
    assert!(delim.common_prefixes.is_empty());
    assert_eq!(delim.objects, flat.objects);
    assert_eq!(delim.is_truncated, flat.is_truncated);
    assert_eq!(delim.next_continuation_token, flat.next_continuation_token);
    assert_ledger(&store).await;
}

/// Resuming from a token that is a common prefix skips the whole group.
pub async fn delimited_token_skips_group(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = ["a/1", "a/2", "a/3", "a0", "b/1", "b"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    put_many(&store, &keys, A, 1).await;
    let first = store.list_objects_delimited("", "/", "", 1).await.unwrap();
    assert_eq!(first.common_prefixes, vec!["a/"]);
    assert_eq!(first.next_continuation_token, "a/");
    let rest = store
        .list_objects_delimited("", "/", "a/", 1000)
        .await
        .unwrap();
    let leaves: Vec<&str> = rest.objects.iter().map(|o| o.object_key.as_str()).collect();
    assert_eq!(leaves, vec!["a0", "b"]);
    assert_eq!(rest.common_prefixes, vec!["b/"]);
    assert_ledger(&store).await;
}

async fn check_prefixes(store: &Db, keys: &[String], prefixes: &[&str]) {
    for p in prefixes {
        let expected = model_flat(keys, p);
        let got = walk_flat(store, p, 1000).await;
        assert_eq!(got, expected, "prefix {p:?}");
        let paged = walk_flat(store, p, 2).await;
        assert_eq!(paged, expected, "prefix {p:?}, paged");
        let delimited = walk_delimited(store, p, "/", 2).await;
        assert_eq!(
            delimited,
            model_delimited(keys, p, "/"),
            "prefix {p:?}, delimited"
        );
    }
}

/// `%`, `_` and `\` in prefixes are ordinary characters.
pub async fn prefix_wildcards_are_literal(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = [
        "a%b", "a%c/1", "axb", "a_b", "acb", "a\\b", "a\\\\b", "ab", "%", "%/x", "_x", "\\x", "x%",
        "a%", "a_", "aXb",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    put_many(&store, &keys, A, 1).await;
    check_prefixes(
        &store,
        &keys,
        &["a%", "a_", "a\\", "a\\\\", "%", "_", "\\", "a%c/"],
    )
    .await;
    assert_eq!(walk_flat(&store, "a_", 10).await, vec!["a_", "a_b"]);
    assert_ledger(&store).await;
}

/// Prefixes are case-sensitive: `foo/` never matches `Foo/` or `FOO/`.
pub async fn prefix_is_case_sensitive(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = ["Foo/1", "foo/1", "FOO/2", "foo/2", "fOo/3", "foo", "FOO"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    put_many(&store, &keys, A, 1).await;
    check_prefixes(&store, &keys, &["foo/", "Foo", "FOO", "f", "F"]).await;
    assert_eq!(walk_flat(&store, "foo/", 10).await, vec!["foo/1", "foo/2"]);
    assert_ledger(&store).await;
}

/// Multi-byte UTF-8 prefixes match by bytes.
pub async fn prefix_multibyte_utf8(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = [
        "日本/1",
        "日本語",
        "日",
        "é/1",
        "e/1",
        "é",
        "😀/a",
        "😀😀",
        "ü",
        "u/ü",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    put_many(&store, &keys, A, 1).await;
    check_prefixes(&store, &keys, &["日本", "日", "é", "e", "😀", "u", "ü"]).await;
    assert_ledger(&store).await;
}

/// Every prefix of every adversarial key filters exactly like `starts_with`.
pub async fn prefix_filter_matches_starts_with(store: Db) {
    three_backends(&store).await;
    let keys = grouped_keys();
    put_many(&store, &keys, A, 1).await;
    let mut prefixes: Vec<String> = vec![String::new()];
    for k in &keys {
        for (i, _) in k.char_indices().skip(1) {
            prefixes.push(k[..i].to_owned());
        }
        prefixes.push(k.clone());
    }
    let prefixes = byte_sorted(&prefixes);
    for p in &prefixes {
        let got = walk_flat(&store, p, 1000).await;
        assert_eq!(got, model_flat(&keys, p), "prefix {p:?}");
    }
    assert_ledger(&store).await;
}

/// `start_after` need not be a key; past the end ⇒ empty, not truncated.
pub async fn start_after_between_and_beyond(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = ["b", "d", "f", "d/1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    put_many(&store, &keys, A, 1).await;
    for (after, prefix) in [
        ("c", ""),
        ("d", ""),
        ("f", ""),
        ("zzz", ""),
        ("", ""),
        ("a", "d"),
    ] {
        let r = store.list_objects(prefix, after, 1000).await.unwrap();
        let got: Vec<String> = r.objects.into_iter().map(|o| o.object_key).collect();
        let expected: Vec<String> = model_flat(&keys, prefix)
            .into_iter()
            .filter(|k| k.as_bytes() > after.as_bytes())
            .collect();
        assert_eq!(got, expected, "after {after:?} prefix {prefix:?}");
        assert!(!r.is_truncated);
    }
    assert_ledger(&store).await;
}

/// Listings report the oldest copy and the client-visible (plaintext) size.
pub async fn listing_reports_oldest_copy_and_client_size(store: Db) {
    three_backends(&store).await;
    let form = StoredForm {
        managed: true,
        ..encrypted_form(3)
    };
    store.record_object("enc", B, 1100, &form).await.unwrap();
    replicate(&store, "enc", A, B).await.unwrap();
    put(&store, "plain", C, 7).await;
    replicate(&store, "plain", A, C).await.unwrap();
    // The oldest copy: smallest created_at, ties by backend name.
    let oldest = |v: Vec<ObjectLocation>| {
        v.into_iter()
            .min_by(|x, y| {
                (x.created_at, x.backend_name.as_bytes())
                    .cmp(&(y.created_at, y.backend_name.as_bytes()))
            })
            .unwrap()
            .backend_name
    };
    let enc_oldest = oldest(copies(&store, "enc").await);
    let plain_oldest = oldest(copies(&store, "plain").await);
    let r = store.list_objects("", "", 10).await.unwrap();
    let got: Vec<(&str, &str, i64)> = r
        .objects
        .iter()
        .map(|o| (o.object_key.as_str(), o.backend_name.as_str(), o.size_bytes))
        .collect();
    assert_eq!(
        got,
        vec![
            ("enc", enc_oldest.as_str(), form.plaintext_size),
            ("plain", plain_oldest.as_str(), 7)
        ],
        "oldest copy, client-visible size"
    );
    let d = store.list_objects_delimited("", "/", "", 10).await.unwrap();
    assert_eq!(d.objects.len(), 2);
    assert_eq!(d.objects[0].size_bytes, form.plaintext_size);
    assert_eq!(d.objects[0].backend_name, enc_oldest);
    assert!(!d.objects[0].created_at.is_zero());
    assert_ledger(&store).await;
}

/// `max_keys ≤ 0` means 1000 and larger values are capped at 1000.
pub async fn max_keys_default_and_cap(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = (0..1001).map(|i| format!("k/{i:04}")).collect();
    put_many(&store, &keys, A, 1).await;
    for max in [0, -1, 5000] {
        let r = store.list_objects("", "", max).await.unwrap();
        assert_eq!(r.objects.len(), 1000, "max {max}");
        assert!(r.is_truncated);
        assert_eq!(r.next_continuation_token, keys[999]);
        let rest = store
            .list_objects("", &r.next_continuation_token, max)
            .await
            .unwrap();
        assert_eq!(rest.objects.len(), 1);
        assert!(!rest.is_truncated);
    }
    assert_ledger(&store).await;
}

/// The by-backend cursor listing walks keys in byte order, strictly after the cursor.
pub async fn by_backend_key_asc_byte_order(store: Db) {
    three_backends(&store).await;
    let keys = adversarial_keys();
    put_many(&store, &keys, A, 1).await;
    let on_b: Vec<String> = keys.iter().step_by(2).cloned().collect();
    for k in &on_b {
        replicate(&store, k, B, A).await.unwrap();
    }
    put(&store, "only-on-c", C, 1).await;
    for (backend, expected) in [(A, byte_sorted(&keys)), (B, byte_sorted(&on_b))] {
        for limit in [1, 3, 1000] {
            let mut got = Vec::new();
            let mut after = String::new();
            for round in 0.. {
                assert!(round < 10_000, "cursor walk never ended");
                let page = store
                    .list_objects_by_backend_key_asc(backend, &after, limit)
                    .await
                    .unwrap();
                assert!(page.len() as i64 <= limit);
                for row in &page {
                    assert_eq!(row.backend_name, backend);
                }
                if page.is_empty() {
                    break;
                }
                after = page.last().unwrap().object_key.clone();
                got.extend(page.into_iter().map(|r| r.object_key));
            }
            assert_eq!(got, expected, "{backend} limit {limit}");
        }
    }
    let all = store
        .list_objects_by_backend_key_asc(A, "", 0)
        .await
        .unwrap();
    assert_eq!(all.len(), keys.len(), "limit 0 means the default");
    assert_ledger(&store).await;
}

/// The by-backend listing returns the smallest copies first.
pub async fn by_backend_smallest_first(store: Db) {
    three_backends(&store).await;
    let sizes = [500i64, 3, 77, 1024, 12, 0, 900];
    for (i, s) in sizes.iter().enumerate() {
        put(&store, &format!("s/{i}"), A, *s).await;
    }
    put(&store, "other", B, 1).await;
    let rows = store.list_objects_by_backend(A, 0).await.unwrap();
    let got: Vec<i64> = rows.iter().map(|r| r.size_bytes).collect();
    let mut expected = sizes.to_vec();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert!(rows.iter().all(|r| r.backend_name == A));
    let two = store.list_objects_by_backend(A, 2).await.unwrap();
    assert_eq!(
        two.iter().map(|r| r.size_bytes).collect::<Vec<_>>(),
        expected[..2].to_vec()
    );
    assert!(
        store
            .list_objects_by_backend(C, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// Expiry candidates: literal wildcard prefixes, one row per key, byte order, cutoff.
pub async fn expired_objects_with_wildcard_prefix(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = [
        "logs/%x", "logs/ax", "logs_y", "logsQ", "logs/%b", "Logs/%x",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    put_many(&store, &keys, A, 1).await;
    replicate(&store, "logs/%x", B, A).await.unwrap();
    // Age zero: everything created before now; an hour: nothing written by this test.
    let after = Duration::ZERO;
    let before = Duration::from_secs(3600);
    for prefix in ["logs/%", "logs_", "logs", "Logs", ""] {
        let rows = store.list_expired_objects(prefix, after, 0).await.unwrap();
        let got: Vec<String> = rows.into_iter().map(|r| r.object_key).collect();
        assert_eq!(got, model_flat(&keys, prefix), "prefix {prefix:?}");
    }
    assert!(
        store
            .list_expired_objects("", before, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let limited = store.list_expired_objects("logs", after, 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    assert_ledger(&store).await;
}

/// Oversized or NUL-bearing prefixes, cursors and delimiters are `InvalidInput`.
pub async fn listing_rejects_bad_prefixes(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 1).await;
    let long = "p".repeat(1025);
    assert_invalid(store.list_objects(&long, "", 10).await, "long prefix");
    assert_invalid(store.list_objects("a\0", "", 10).await, "NUL prefix");
    assert_invalid(store.list_objects("", "a\0", 10).await, "NUL start-after");
    assert_invalid(
        store.list_objects_delimited("", "/\0", "", 10).await,
        "NUL delimiter",
    );
    assert_invalid(
        store.list_objects_delimited(&long, "/", "", 10).await,
        "long prefix, delimited",
    );
    assert_ledger(&store).await;
}
