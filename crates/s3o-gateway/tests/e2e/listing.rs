//! Listings answered from the ledger: ListObjectsV2 and ListObjects with prefixes,
//! delimiters, start-after, markers, continuation tokens and max-keys, over keys holding
//! spaces, `%`, `+` and non-ASCII characters, in byte order.

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::list::{PaginatedListOptions, PaginatedListStore};

use crate::raw::{encode_query, xml_nested, xml_values};
use crate::rig::{BUCKET, Ledger, Rig, body, path};

/// Keys with spaces, `%` (including a literal `%2F`), `+`, non-ASCII and nested prefixes.
const KEYS: [&str; 12] = [
    "100%",
    "a b/c d.txt",
    "a b/e%f",
    "a b/sub/g+h",
    "a%2Fb",
    "a+b",
    "plain",
    "zz top",
    "ünï/z",
    "ünï/çødé",
    "日本/語.txt",
    "日本/x y",
];

/// KEYS in byte order (Rust's `str` order is byte order).
fn sorted() -> Vec<String> {
    let mut v: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
    v.sort();
    v
}

/// Puts every key, object i holding i + 1 bytes, so sizes identify keys.
async fn fill(rig: &Rig) {
    for key in sorted().iter() {
        rig.put(key, body(size_of(key), 0)).await;
    }
}

fn size_of(key: &str) -> usize {
    KEYS.iter().position(|k| *k == key).expect("known key") + 1
}

/// object_store's ListObjectsV2: full listing, prefixes, delimiter, start-after, and pages of
/// `max-keys` followed through continuation tokens.
pub(crate) async fn list_v2_prefix_delimiter_and_pages(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    fill(&rig).await;
    let all = sorted();

    let listed: Vec<(String, u64)> = rig
        .client
        .list(None)
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .expect("list");
    let expect: Vec<(String, u64)> = all.iter().map(|k| (k.clone(), size_of(k) as u64)).collect();
    assert_eq!(listed, expect, "every key, in byte order, with its size");

    let under: Vec<String> = rig
        .client
        .list(Some(&path("ünï")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list prefix");
    assert_eq!(under, ["ünï/z", "ünï/çødé"], "non-ASCII prefix, byte order");

    let top = rig
        .client
        .list_with_delimiter(None)
        .await
        .expect("delimited");
    let prefixes: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    let objects: Vec<String> = top.objects.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(prefixes, ["a b", "ünï", "日本"]);
    assert_eq!(objects, ["100%", "a%2Fb", "a+b", "plain", "zz top"]);

    let inner = rig
        .client
        .list_with_delimiter(Some(&path("a b")))
        .await
        .expect("delimited prefix");
    let prefixes: Vec<String> = inner
        .common_prefixes
        .iter()
        .map(|p| p.to_string())
        .collect();
    let objects: Vec<String> = inner
        .objects
        .iter()
        .map(|m| m.location.to_string())
        .collect();
    assert_eq!(prefixes, ["a b/sub"]);
    assert_eq!(objects, ["a b/c d.txt", "a b/e%f"]);

    let after: Vec<String> = rig
        .client
        .list_with_offset(None, &path("a+b"))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("start-after");
    let expect: Vec<String> = all.iter().filter(|k| k.as_str() > "a+b").cloned().collect();
    assert_eq!(after, expect, "start-after is exclusive, byte order");

    for max_keys in [1, 2, 5] {
        let (keys, pages) = pages(&rig, None, None, max_keys).await;
        assert_eq!(
            keys, all,
            "pages of {max_keys} concatenate to the full listing"
        );
        assert_eq!(pages, all.len().div_ceil(max_keys), "pages of {max_keys}");
    }
    let (keys, _) = pages(&rig, Some("a b/"), None, 1).await;
    assert_eq!(keys, ["a b/c d.txt", "a b/e%f", "a b/sub/g+h"]);
    // Delimited pages: a common prefix counts as one entry and is never repeated.
    let (entries, pages_seen) = pages(&rig, None, Some("/"), 2).await;
    assert_eq!(
        entries,
        [
            "100%", "a b/", "a%2Fb", "a+b", "plain", "zz top", "ünï/", "日本/"
        ],
        "objects and common prefixes, merged in byte order"
    );
    assert_eq!(pages_seen, 4);
    rig.assert_clean().await;
    rig.finish().await;
}

/// Follows continuation tokens with `max_keys` per page; returns the keys (and common
/// prefixes, with their trailing delimiter) in listing order, and the page count.
async fn pages(
    rig: &Rig,
    prefix: Option<&str>,
    delimiter: Option<&'static str>,
    max_keys: usize,
) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = rig
            .client
            .list_paginated(
                prefix,
                PaginatedListOptions {
                    delimiter: delimiter.map(Into::into),
                    max_keys: Some(max_keys),
                    page_token: token.take(),
                    ..PaginatedListOptions::default()
                },
            )
            .await
            .expect("paginated list");
        pages += 1;
        let mut entries: Vec<String> = page
            .result
            .objects
            .iter()
            .map(|m| m.location.to_string())
            .chain(page.result.common_prefixes.iter().map(|p| format!("{p}/")))
            .collect();
        assert!(entries.len() <= max_keys, "page larger than max-keys");
        entries.sort();
        out.extend(entries);
        match page.page_token {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(pages <= KEYS.len() + 1, "pagination does not end");
    }
    (out, pages)
}

/// ListObjects (v1) followed through markers, and ListObjectsV2 with `encoding-type=url`
/// (what the AWS CLI and boto3 send), decoded back to the stored keys.
pub(crate) async fn list_v1_markers_and_url_encoding(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    fill(&rig).await;
    let all = sorted();

    let mut keys = Vec::new();
    let mut marker = String::new();
    let mut pages = 0;
    loop {
        let reply = rig
            .raw
            .send(
                "GET",
                &format!("/{BUCKET}?marker={}&max-keys=3", encode_query(&marker)),
                &[],
                "",
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        pages += 1;
        let xml = reply.text();
        let page = xml_nested(&xml, "Contents", "Key");
        assert!(page.len() <= 3);
        keys.extend(page.iter().cloned());
        let truncated = xml_values(&xml, "IsTruncated");
        if truncated.first().map(String::as_str) != Some("true") {
            break;
        }
        marker = xml_values(&xml, "NextMarker")
            .into_iter()
            .next()
            .or_else(|| page.last().cloned())
            .expect("a truncated page has a last key");
        assert!(pages <= KEYS.len(), "v1 pagination does not end");
    }
    assert_eq!(keys, all, "v1 pages concatenate to the full listing");
    assert_eq!(pages, all.len().div_ceil(3));

    let reply = rig
        .raw
        .send(
            "GET",
            &format!(
                "/{BUCKET}?list-type=2&prefix={}&delimiter=%2F",
                encode_query("日本/")
            ),
            &[],
            "",
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        xml_nested(&reply.text(), "Contents", "Key"),
        ["日本/x y", "日本/語.txt"]
    );

    let reply = rig
        .raw
        .send(
            "GET",
            &format!("/{BUCKET}?list-type=2&encoding-type=url"),
            &[],
            "",
        )
        .await;
    assert_eq!(reply.status, 200);
    let encoded = xml_nested(&reply.text(), "Contents", "Key");
    assert_eq!(encoded.len(), all.len());
    let decoded: Vec<String> = encoded.iter().map(|k| url_decode(k)).collect();
    assert_eq!(
        decoded, all,
        "encoding-type=url keys decode to the stored keys"
    );
    assert!(
        encoded.iter().all(|k| k.is_ascii()),
        "url-encoded keys are ASCII: {encoded:?}"
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// Decodes `%XX` escapes (and `+` as a space, as S3's url encoding of keys allows).
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8 key")
}
