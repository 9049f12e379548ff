//! How client keys map onto the ledger and onto backend paths.
//!
//! Ledger key: `<bucket>/<object key>`. Backend path of one write:
//! `<bucket>/<encoded key, in ≤ 200-byte segments>/@<version>`, where the encoding
//! percent-escapes every byte outside `A-Z a-z 0-9 - _ .` (so `/`, `%`, spaces and non-ASCII
//! never reach the backend raw and no segment is empty, `.` or `..`). Each write has its own
//! version, so a PUT never overwrites the bytes of the version it replaces; and because the
//! key's directory is computed from the key alone, a read can find every version of a key
//! on a backend by listing that directory when the ledger is down.

use object_store::path::Path;

/// Longest encoded segment: keeps local file names under common 255-byte limits.
const SEGMENT: usize = 200;

/// The ledger key of `key` in `bucket`.
pub(crate) fn ledger_key(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

/// The ledger prefix of every key of `bucket` (`"<bucket>/"`).
pub(crate) fn bucket_prefix(bucket: &str) -> String {
    format!("{bucket}/")
}

/// Percent-encodes every byte of `s` but RFC 3986's unreserved ones (and `/` when
/// `keep_slash`): the form S3 wants for a key in a listing (`encoding-type=url`), in a
/// request path as SigV4 signs it (encoded once), and in a signed query parameter.
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The backend directory holding every version of `key` in `bucket`.
pub(crate) fn object_dir(bucket: &str, key: &str) -> String {
    let enc = encode(key);
    let mut dir = String::from(bucket);
    if enc.is_empty() {
        // S3 keys are never empty; keep the mapping total anyway.
        dir.push_str("/%");
        return dir;
    }
    let mut start = 0;
    while start < enc.len() {
        let mut end = (start + SEGMENT).min(enc.len());
        // Never split a %XX escape across segments (cosmetic: the mapping is one-way).
        let b = enc.as_bytes();
        if end < enc.len() {
            if b[end - 1] == b'%' {
                end -= 1;
            } else if b[end - 2] == b'%' {
                end -= 2;
            }
        }
        let seg = &enc[start..end];
        dir.push('/');
        match seg {
            "." => dir.push_str("%2E"),
            ".." => dir.push_str("%2E%2E"),
            s => dir.push_str(s),
        }
        start = end;
    }
    dir
}

/// A fresh version id: time-ordered (hex microseconds) then random, so the newest version
/// sorts last and two writes never collide.
pub(crate) fn new_version() -> String {
    let micros = s3o_store::Timestamp::now().as_micros().max(0);
    format!("{micros:016x}-{}", uuid::Uuid::new_v4().simple())
}

/// The backend path of one write of `key`.
pub(crate) fn object_path(bucket: &str, key: &str, version: &str) -> String {
    format!("{}/@{version}", object_dir(bucket, key))
}

/// The backend path parts of `part_number` had before each attempt got its own (still read
/// for parts recorded without a path).
pub(crate) fn part_path(upload_id: &str, part_number: i32) -> String {
    // The ledger queues such a part's bytes under the same path when its upload ends.
    s3o_store::default_part_path(upload_id, part_number)
}

/// The backend path of one attempt at a multipart part: every attempt has its own, so a retry
/// that fails verification never touches the part accepted before it. The ledger records the
/// accepted attempt's path; Complete also checks every part's bytes against its recorded MD5.
pub(crate) fn part_attempt_path(upload_id: &str, part_number: i32) -> String {
    format!(
        ".mpu/{upload_id}/{part_number:05}-{}",
        uuid::Uuid::new_v4().simple()
    )
}

/// The backend directory of a multipart upload's parts.
pub(crate) fn upload_dir(upload_id: &str) -> String {
    format!(".mpu/{upload_id}")
}

/// Parses a stored storage key into an object_store path (they are built to be valid).
pub(crate) fn path(storage_key: &str) -> Path {
    Path::parse(storage_key).unwrap_or_else(|_| Path::from(storage_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_keys_join_bucket_and_key() {
        assert_eq!(ledger_key("photos", "a/b c.jpg"), "photos/a/b c.jpg");
        assert_eq!(bucket_prefix("photos"), "photos/");
    }

    #[test]
    fn odd_keys_map_to_valid_distinct_paths() {
        let keys = [
            "a", "a/", "a//b", "/x", ".", "..", "a b+c%d", "héllo", "a/b", "a%2Fb", "@v",
        ];
        let mut dirs = std::collections::BTreeSet::new();
        for k in keys {
            let d = object_dir("bkt", k);
            Path::parse(&d).unwrap_or_else(|e| panic!("{k:?} -> {d:?}: {e}"));
            Path::parse(object_path("bkt", k, "v1")).unwrap();
            assert!(dirs.insert(d), "collision for {k:?}");
        }
        assert_eq!(object_dir("bkt", "a b"), "bkt/a%20b");
        assert_eq!(object_dir("bkt", "."), "bkt/%2E");
    }

    #[test]
    fn long_keys_are_split_into_short_segments() {
        let key = "é".repeat(500);
        let d = object_dir("bkt", &key);
        Path::parse(&d).unwrap();
        assert!(d.split('/').all(|s| s.len() <= SEGMENT), "{d}");
        assert_eq!(d.replace('/', "").trim_start_matches("bkt"), encode(&key));
    }

    #[test]
    fn versions_are_unique_and_time_ordered() {
        let a = new_version();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_version();
        assert_ne!(a, b);
        assert!(a < b);
        assert_eq!(part_path("u1", 3), ".mpu/u1/00003");
    }
}
