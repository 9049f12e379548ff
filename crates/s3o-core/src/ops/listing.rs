use crate::engine::Reader;
use crate::error::Result;
use crate::types::{
    KeyBound, ListDelimitedResult, ListObjectsResult, ObjectLocation, build_list_page,
};
use crate::validate;

/// `max_keys` used when the caller passes 0 or less.
pub const DEFAULT_MAX_KEYS: usize = 1000;
/// Largest page served; larger requests are capped.
pub const MAX_MAX_KEYS: usize = 1000;

/// The size a client sees: the plaintext size of an encrypted copy, else the stored size.
fn client_view(mut loc: ObjectLocation) -> ObjectLocation {
    if loc.form.encrypted && loc.form.plaintext_size > 0 {
        loc.size_bytes = loc.form.plaintext_size;
    }
    loc
}

/// One page of keys starting with `prefix`, strictly after `start_after`, in byte order: one
/// entry per key (its oldest copy) reporting the client-visible size. `max_keys ≤ 0` ⇒ 1000.
/// Prefixes are byte-wise and case-sensitive; `%`, `_` and `\` are ordinary characters.
pub async fn list_objects<R: Reader + ?Sized>(
    reader: &R,
    prefix: &str,
    start_after: &str,
    max_keys: i64,
) -> Result<ListObjectsResult> {
    validate::prefix("prefix", prefix)?;
    validate::prefix("start-after key", start_after)?;
    let max = validate::limit(max_keys, DEFAULT_MAX_KEYS, MAX_MAX_KEYS);
    let bound = if start_after.is_empty() {
        KeyBound::Start
    } else {
        KeyBound::After(start_after)
    };
    let rows = reader
        .list_objects_by_prefix(prefix, bound, max + 1)
        .await?;
    Ok(build_list_page(
        rows.into_iter().map(client_view).collect(),
        max,
    ))
}

/// The smallest string greater than every string that starts with `p`, when one exists
/// (`None` for the empty prefix): engines use it as the exclusive upper bound of an
/// index range scan for a prefix (`key >= p AND key < successor`), which is case-sensitive,
/// wildcard-free and byte-ordered. It is
/// `p` with its last character replaced by the next code point (UTF-8 byte order equals code
/// point order). Characters with no successor are dropped and the previous one incremented.
pub fn prefix_successor(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// If `key` (which starts with `prefix`) contains `delimiter` after the prefix, the common
/// prefix it rolls up into (ending with the delimiter).
fn common_prefix_of<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    let rest = &key[prefix.len()..];
    rest.find(delimiter)
        .map(|p| &key[..prefix.len() + p + delimiter.len()])
}

/// One page of a delimited listing: keys starting with `prefix` whose remainder contains
/// `delimiter` roll up into one common prefix each; the rest are leaves (oldest copy,
/// client-visible size). Prefixes and leaves share the `max_keys` budget (≤ 0 ⇒ 1000) and are
/// merged in byte order. Each common prefix is emitted once across pages: the continuation
/// token of a page ending on a prefix is that prefix, and resuming from a token that is a
/// common prefix of this listing skips the whole group. An empty delimiter is a flat listing.
///
/// Runs as a loose index scan: one bounded range read per leaf batch, one per group skipped.
pub async fn list_objects_delimited<R: Reader + ?Sized>(
    reader: &R,
    prefix: &str,
    delimiter: &str,
    start_after: &str,
    max_keys: i64,
) -> Result<ListDelimitedResult> {
    validate::prefix("delimiter", delimiter)?;
    if delimiter.is_empty() {
        let flat = list_objects(reader, prefix, start_after, max_keys).await?;
        return Ok(ListDelimitedResult {
            objects: flat.objects,
            common_prefixes: Vec::new(),
            is_truncated: flat.is_truncated,
            next_continuation_token: flat.next_continuation_token,
        });
    }
    validate::prefix("prefix", prefix)?;
    validate::prefix("start-after key", start_after)?;
    let max = validate::limit(max_keys, DEFAULT_MAX_KEYS, MAX_MAX_KEYS);

    // Where the scan starts: after the token, or past its whole group when the token is one
    // of this listing's common prefixes.
    let mut owned_bound: Option<String> = None;
    let mut exhausted = false;
    let mut after_token = true;
    if !start_after.is_empty()
        && start_after.starts_with(prefix)
        && common_prefix_of(start_after, prefix, delimiter).is_some_and(|cp| cp == start_after)
    {
        match prefix_successor(start_after) {
            Some(s) => {
                owned_bound = Some(s);
                after_token = false;
            }
            None => exhausted = true,
        }
    } else if !start_after.is_empty() {
        owned_bound = Some(start_after.to_owned());
    }

    let mut out = ListDelimitedResult::default();
    let mut entries = 0usize;
    let mut last_token = String::new();
    let batch = max + 1;
    while !exhausted {
        let bound = match (&owned_bound, after_token) {
            (None, _) => KeyBound::Start,
            (Some(b), true) => KeyBound::After(b),
            (Some(b), false) => KeyBound::From(b),
        };
        let rows = reader.list_objects_by_prefix(prefix, bound, batch).await?;
        let fetched = rows.len();
        let mut next_bound: Option<(String, bool)> = None;
        for row in rows {
            if entries == max {
                out.is_truncated = true;
                out.next_continuation_token = last_token;
                return Ok(out);
            }
            if let Some(cp) = common_prefix_of(&row.object_key, prefix, delimiter) {
                let cp = cp.to_owned();
                entries += 1;
                last_token = cp.clone();
                next_bound = prefix_successor(&cp).map(|s| (s, false));
                out.common_prefixes.push(cp);
                if next_bound.is_none() {
                    exhausted = true;
                }
                // The rest of this batch may lie inside the group: re-read past it.
                break;
            }
            entries += 1;
            last_token = row.object_key.clone();
            next_bound = Some((row.object_key.clone(), true));
            out.objects.push(client_view(row));
        }
        match next_bound {
            Some((b, after)) => {
                owned_bound = Some(b);
                after_token = after;
            }
            None => exhausted = true,
        }
        // A short batch that ended on a leaf means the range is exhausted.
        if fetched < batch
            && after_token
            && out
                .objects
                .last()
                .is_some_and(|o| Some(&o.object_key) == owned_bound.as_ref())
        {
            exhausted = true;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_covers_every_extension() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("").as_deref(), None);
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        let s = prefix_successor("photos/").unwrap();
        for k in ["photos/", "photos/x", "photos/\u{10FFFF}\u{10FFFF}"] {
            assert!(k.as_bytes() < s.as_bytes(), "{k}");
        }
        assert!("photos0".as_bytes() >= s.as_bytes());
    }

    #[test]
    fn common_prefix_detection() {
        assert_eq!(common_prefix_of("a/b/c", "", "/"), Some("a/"));
        assert_eq!(common_prefix_of("a/b/c", "a/", "/"), Some("a/b/"));
        assert_eq!(common_prefix_of("a/b", "a/", "/"), None);
        assert_eq!(common_prefix_of("x::y", "", "::"), Some("x::"));
    }
}
