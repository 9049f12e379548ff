//! Input validation shared by both engines. Everything here runs before any SQL, so a
//! rejected call changes nothing.

use std::collections::BTreeMap;

use crate::error::{Result, StoreError};
use crate::types::{
    BucketSettings, BucketSpec, CleanupEntry, ObjectAttributes, ObjectLocation, PendingObject,
    StoredForm, Timestamp,
};

/// Longest object key accepted, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;
/// Lowest multipart part number.
pub const MIN_PART_NUMBER: i32 = 1;
/// Highest multipart part number.
pub const MAX_PART_NUMBER: i32 = 10_000;
/// Most keys one batch delete accepts (S3 DeleteObjects' limit).
pub const MAX_BATCH_KEYS: usize = 1000;
/// Longest backend name accepted, in bytes.
pub const MAX_BACKEND_NAME_BYTES: usize = 255;
/// Longest id accepted (intent, upload, instance and key ids), in bytes. Ids are indexed, and
/// PostgreSQL refuses an index entry over about 2.7 KB; both engines honour this one limit.
pub const MAX_ID_BYTES: usize = 1024;
/// Largest size, byte count or counter delta accepted (2^60, one exbibyte): far above S3's
/// 5 TiB object limit, and small enough that a sum of a few such values (`bytes_used +
/// orphan_bytes + delta` in the quota guard) cannot overflow a 64-bit counter. A counter that
/// still overflows is refused by the database and reported as `InvalidInput`.
pub const MAX_SIZE_BYTES: i64 = 1 << 60;
/// The error for a quota charge that would push one of `backend`'s counters past `i64::MAX`
/// (`bytes_used + orphan_bytes + delta`, or any sum a reader computes over them): the value is
/// refused as `InvalidInput` before anything changes, on both engines, and never counts
/// against the breaker. `now` is the backend's `bytes_used + orphan_bytes` (as far as the
/// engine knows it), `delta` the refused charge.
pub fn quota_overflow(backend: &str, now: i128, delta: i64) -> StoreError {
    StoreError::invalid(
        "quota charge",
        format!(
            "backend {backend:?} holds {now} bytes (used + orphan); {delta} more would pass \
             the largest count a quota counter holds ({})",
            i64::MAX
        ),
    )
}

/// True when `used + orphan + delta` (exact) is past `i64::MAX`: the charge must be refused
/// with [`quota_overflow`].
pub fn quota_overflows(used: i64, orphan: i64, delta: i64) -> bool {
    i128::from(used) + i128::from(orphan) + i128::from(delta) > i128::from(i64::MAX)
}

/// Earliest timestamp accepted: 0001-01-01T00:00:00Z. Both engines hold every instant
/// between this and [`MAX_TIMESTAMP`] (PostgreSQL's `timestamptz` spans 4713 BC to 294276 AD;
/// SQLite stores the microseconds as an integer).
pub const MIN_TIMESTAMP: Timestamp = Timestamp::from_micros(-62_135_596_800_000_000);
/// Latest timestamp accepted: 9999-12-31T23:59:59.999999Z.
pub const MAX_TIMESTAMP: Timestamp = Timestamp::from_micros(253_402_300_799_999_999);
/// Longest age (an "older than" duration, a backoff) the engines act on: 4000 years. Longer
/// ones are treated as this one, which changes no answer: every storable timestamp (from year
/// 1 on) is younger than 4000 years while the clock reads before year 4001, and `now ± 4000
/// years` stays inside PostgreSQL's time range.
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(4000 * 366 * 24 * 3600);

/// An object key: non-empty, at most 1024 bytes, no NUL (PostgreSQL text cannot hold it).
pub fn key(k: &str) -> Result<()> {
    if k.is_empty() {
        return Err(StoreError::invalid("object key", "must not be empty"));
    }
    if k.len() > MAX_KEY_BYTES {
        return Err(StoreError::invalid(
            "object key",
            format!("is {} bytes, the limit is {MAX_KEY_BYTES}", k.len()),
        ));
    }
    no_nul("object key", k)
}

/// An expected physical path (a copy's [`StoredForm::storage_path`]): non-empty, at most
/// [`MAX_STORAGE_KEY_BYTES`], no NUL.
pub fn storage_path(p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(StoreError::invalid(
            "expected storage key",
            "must not be empty (a copy without a storage key has the object key as its path)",
        ));
    }
    bounded("expected storage key", p, MAX_STORAGE_KEY_BYTES)
}

/// A prefix or cursor: may be empty, otherwise bounded like a key.
pub fn prefix(what: &'static str, p: &str) -> Result<()> {
    if p.len() > MAX_KEY_BYTES {
        return Err(StoreError::invalid(
            what,
            format!("is {} bytes, the limit is {MAX_KEY_BYTES}", p.len()),
        ));
    }
    no_nul(what, p)
}

/// A backend name: non-empty, bounded, no NUL.
pub fn backend(b: &str) -> Result<()> {
    if b.is_empty() {
        return Err(StoreError::invalid("backend name", "must not be empty"));
    }
    if b.len() > MAX_BACKEND_NAME_BYTES {
        return Err(StoreError::invalid(
            "backend name",
            format!(
                "is {} bytes, the limit is {MAX_BACKEND_NAME_BYTES}",
                b.len()
            ),
        ));
    }
    no_nul("backend name", b)
}

/// Any other stored text (reason, etag, error message): no NUL.
pub fn text(what: &'static str, s: &str) -> Result<()> {
    no_nul(what, s)
}

/// An id (intent, upload, instance, encryption key): at most [`MAX_ID_BYTES`], no NUL.
pub fn id(what: &'static str, s: &str) -> Result<()> {
    if s.len() > MAX_ID_BYTES {
        return Err(StoreError::invalid(
            what,
            format!("is {} bytes, the limit is {MAX_ID_BYTES}", s.len()),
        ));
    }
    no_nul(what, s)
}

/// An age or backoff as the engines use it: capped at [`MAX_AGE`].
pub fn age(d: std::time::Duration) -> std::time::Duration {
    d.min(MAX_AGE)
}

/// A size in bytes (or a count): `0..=`[`MAX_SIZE_BYTES`].
pub fn size(what: &'static str, n: i64) -> Result<()> {
    if n < 0 {
        return Err(StoreError::invalid(
            what,
            format!("must not be negative (got {n})"),
        ));
    }
    if n > MAX_SIZE_BYTES {
        return Err(StoreError::invalid(
            what,
            format!("is {n}, the limit is {MAX_SIZE_BYTES} (2^60)"),
        ));
    }
    Ok(())
}

/// A timestamp a caller passes (a cutoff, a preserved `created_at`): within
/// [`MIN_TIMESTAMP`]`..=`[`MAX_TIMESTAMP`], the range both engines store alike.
pub fn timestamp(what: &'static str, t: Timestamp) -> Result<()> {
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&t) {
        return Err(StoreError::invalid(
            what,
            format!(
                "{} µs since the epoch is outside 0001-01-01..=9999-12-31",
                t.as_micros()
            ),
        ));
    }
    Ok(())
}

/// A multipart part number: 1..=10000.
pub fn part_number(n: i32) -> Result<()> {
    if !(MIN_PART_NUMBER..=MAX_PART_NUMBER).contains(&n) {
        return Err(StoreError::invalid(
            "part number",
            format!("must be between {MIN_PART_NUMBER} and {MAX_PART_NUMBER} (got {n})"),
        ));
    }
    Ok(())
}

/// A backend multipart upload id: non-empty, bounded like an id, no NUL.
pub fn backend_upload_id(s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(StoreError::invalid(
            "backend upload id",
            "must not be empty",
        ));
    }
    id("backend upload id", s)
}

/// Shortest bucket name S3 accepts.
pub const MIN_BUCKET_NAME_BYTES: usize = 3;
/// Longest bucket name S3 accepts.
pub const MAX_BUCKET_NAME_BYTES: usize = 63;
/// Highest replication factor a bucket may ask for.
pub const MAX_REPLICATION_FACTOR: u32 = 255;
/// Longest routing list a bucket may carry (backend names).
pub const MAX_ROUTING_BACKENDS: usize = 1000;
/// Largest serialized `extra` settings object of a bucket, in bytes.
pub const MAX_BUCKET_EXTRA_BYTES: usize = 256 * 1024;
/// Prefixes S3 reserves: a bucket name may not start with one.
pub const RESERVED_BUCKET_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
/// Suffixes S3 reserves: a bucket name may not end with one.
pub const RESERVED_BUCKET_SUFFIXES: [&str; 5] =
    ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// A new bucket's name, by S3's general-purpose bucket rules: 3–63 characters; only lowercase
/// letters, digits, hyphens and dots; starts and ends with a letter or digit; no two adjacent
/// dots; not formatted as an IPv4 address; none of the reserved prefixes
/// ([`RESERVED_BUCKET_PREFIXES`], e.g. `xn--`) or suffixes ([`RESERVED_BUCKET_SUFFIXES`], e.g.
/// `-s3alias`). The error (`InvalidInput`, what = "bucket name") names the rule broken.
pub fn bucket_name(name: &str) -> Result<()> {
    let bad = |why: String| Err(StoreError::invalid("bucket name", why));
    let n = name.len();
    if !(MIN_BUCKET_NAME_BYTES..=MAX_BUCKET_NAME_BYTES).contains(&n) {
        return bad(format!(
            "{name:?} is {n} characters; a bucket name has {MIN_BUCKET_NAME_BYTES} to \
             {MAX_BUCKET_NAME_BYTES}"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return bad(format!(
            "{name:?} contains {c:?}; only lowercase letters, digits, hyphens and dots are allowed"
        ));
    }
    let b = name.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[n - 1]) {
        return bad(format!(
            "{name:?} must start and end with a letter or digit"
        ));
    }
    if name.contains("..") {
        return bad(format!(
            "{name:?} must not contain two adjacent dots (\"..\")"
        ));
    }
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
    {
        return bad(format!("{name:?} must not be formatted as an IP address"));
    }
    if let Some(p) = RESERVED_BUCKET_PREFIXES
        .iter()
        .find(|p| name.starts_with(*p))
    {
        return bad(format!(
            "{name:?} must not start with the reserved prefix {p:?}"
        ));
    }
    if let Some(s) = RESERVED_BUCKET_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
        return bad(format!(
            "{name:?} must not end with the reserved suffix {s:?}"
        ));
    }
    Ok(())
}

/// A bucket name to look up (get, update, delete, commit into): non-empty, at most
/// [`MAX_BACKEND_NAME_BYTES`], no NUL. Looser than [`bucket_name`] on purpose: a name that
/// breaks S3's rules is simply not found.
pub fn bucket_lookup(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::invalid("bucket name", "must not be empty"));
    }
    bounded("bucket name", name, MAX_BACKEND_NAME_BYTES)
}

/// A bucket's CORS configuration: S3's rules, see [`crate::cors::check`].
pub fn cors(c: &crate::cors::CorsConfig) -> Result<()> {
    crate::cors::check(c)
}

/// Longest name of one field of a bucket's `extra` settings.
pub const MAX_BUCKET_EXTRA_FIELD_BYTES: usize = 64;

/// One field of a bucket's `extra` settings set on its own
/// ([`crate::engine::BucketStore::set_bucket_extra`]): the name 1..=[`MAX_BUCKET_EXTRA_FIELD_BYTES`]
/// bytes of `a-z`, `0-9` and `_` (it is spliced into a JSON path on SQLite), the value free
/// of NUL (PostgreSQL's `jsonb` cannot hold one) and at most [`MAX_BUCKET_EXTRA_BYTES`]
/// serialized.
pub fn bucket_extra_field(field: &str, value: Option<&serde_json::Value>) -> Result<()> {
    let name_ok = !field.is_empty()
        && field.len() <= MAX_BUCKET_EXTRA_FIELD_BYTES
        && field
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(StoreError::invalid(
            "bucket setting name",
            format!(
                "must be 1 to {MAX_BUCKET_EXTRA_FIELD_BYTES} bytes of a-z, 0-9 and _ (got {field:?})"
            ),
        ));
    }
    let Some(v) = value else { return Ok(()) };
    fn nul_free(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => !s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().all(nul_free),
            serde_json::Value::Object(m) => m.iter().all(|(k, v)| !k.contains('\0') && nul_free(v)),
            _ => true,
        }
    }
    let text = serde_json::to_string(v).unwrap_or_default();
    if !nul_free(v) {
        return Err(StoreError::invalid(
            "bucket settings",
            "must not contain NUL in any key or string",
        ));
    }
    if text.len() > MAX_BUCKET_EXTRA_BYTES {
        return Err(StoreError::invalid(
            "bucket settings",
            format!(
                "{field} is {} bytes as JSON, the limit is {MAX_BUCKET_EXTRA_BYTES}",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// A bucket's settings: replication factor 1..=[`MAX_REPLICATION_FACTOR`]; quotas
/// 0..=[`MAX_SIZE_BYTES`] (0 = none); routing: valid, distinct backend names, at most
/// [`MAX_ROUTING_BACKENDS`]; `extra`: no NUL in any key or string (PostgreSQL's `jsonb`
/// cannot hold one), at most [`MAX_BUCKET_EXTRA_BYTES`] serialized.
pub fn bucket_settings(s: &BucketSettings) -> Result<()> {
    if !(1..=MAX_REPLICATION_FACTOR).contains(&s.replication_factor) {
        return Err(StoreError::invalid(
            "replication factor",
            format!(
                "must be between 1 and {MAX_REPLICATION_FACTOR} (got {})",
                s.replication_factor
            ),
        ));
    }
    size("bucket byte quota", s.max_bytes)?;
    size("bucket object quota", s.max_objects)?;
    if s.routing.len() > MAX_ROUTING_BACKENDS {
        return Err(StoreError::invalid(
            "bucket routing",
            format!(
                "at most {MAX_ROUTING_BACKENDS} backends (got {})",
                s.routing.len()
            ),
        ));
    }
    backend_names(&s.routing)?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = s.routing.iter().find(|b| !seen.insert(b.as_str())) {
        return Err(StoreError::invalid(
            "bucket routing",
            format!("backend {dup:?} is listed twice"),
        ));
    }
    fn nul_free(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => !s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().all(nul_free),
            serde_json::Value::Object(m) => m.iter().all(|(k, v)| !k.contains('\0') && nul_free(v)),
            _ => true,
        }
    }
    if !s
        .extra
        .iter()
        .all(|(k, v)| !k.contains('\0') && nul_free(v))
    {
        return Err(StoreError::invalid(
            "bucket settings",
            "must not contain NUL in any key or string",
        ));
    }
    let len = serde_json::to_string(&s.extra)
        .map(|t| t.len())
        .unwrap_or(0);
    if len > MAX_BUCKET_EXTRA_BYTES {
        return Err(StoreError::invalid(
            "bucket settings",
            format!("is {len} bytes as JSON, the limit is {MAX_BUCKET_EXTRA_BYTES}"),
        ));
    }
    lifecycle_rules(&s.lifecycle)
}

/// Most lifecycle rules a bucket may have (S3's limit).
pub const MAX_LIFECYCLE_RULES: usize = 1000;
/// Longest lifecycle rule id, in bytes (S3's limit).
pub const MAX_LIFECYCLE_ID_BYTES: usize = 255;
/// The most noncurrent versions a lifecycle rule may keep (S3's limit on
/// `NewerNoncurrentVersions`).
pub const MAX_NEWER_NONCURRENT: u32 = 100;

/// A bucket's lifecycle rules: at most [`MAX_LIFECYCLE_RULES`]; ids at most
/// [`MAX_LIFECYCLE_ID_BYTES`] and unique when non-empty; prefixes at most [`MAX_KEY_BYTES`]
/// without NUL; every rule has an action; day counts at least 1; an expiration by days or by
/// date, not both; a date within [`MIN_TIMESTAMP`]..=[`MAX_TIMESTAMP`]; an expired-marker
/// cleanup without days, date or tags; `NewerNoncurrentVersions` only with `NoncurrentDays`,
/// at most [`MAX_NEWER_NONCURRENT`]; no tag filter on a noncurrent expiration.
pub fn lifecycle_rules(rules: &[crate::types::LifecycleRule]) -> Result<()> {
    let bad = |why: String| Err(StoreError::invalid("lifecycle rule", why));
    if rules.len() > MAX_LIFECYCLE_RULES {
        return bad(format!(
            "at most {MAX_LIFECYCLE_RULES} rules (got {})",
            rules.len()
        ));
    }
    let mut ids = std::collections::BTreeSet::new();
    for r in rules {
        if r.id.len() > MAX_LIFECYCLE_ID_BYTES || r.id.contains('\0') {
            return bad(format!(
                "id must be at most {MAX_LIFECYCLE_ID_BYTES} bytes without NUL"
            ));
        }
        if !r.id.is_empty() && !ids.insert(r.id.as_str()) {
            return bad(format!("id {:?} is used twice", r.id));
        }
        if r.prefix.len() > MAX_KEY_BYTES || r.prefix.contains('\0') {
            return bad(format!(
                "prefix must be at most {MAX_KEY_BYTES} bytes without NUL"
            ));
        }
        if r.expiration_days.is_none()
            && r.expiration_date.is_none()
            && r.abort_incomplete_upload_days.is_none()
            && r.noncurrent_days.is_none()
            && !r.expired_object_delete_marker
        {
            return bad(format!("rule {:?} has no action", r.id));
        }
        if r.expiration_days.is_some() && r.expiration_date.is_some() {
            return bad(format!(
                "rule {:?} expires by days and by date: choose one",
                r.id
            ));
        }
        if r.expiration_days == Some(0)
            || r.abort_incomplete_upload_days == Some(0)
            || r.noncurrent_days == Some(0)
        {
            return bad(format!("rule {:?}: days must be at least 1", r.id));
        }
        if let Some(t) = r.expiration_date
            && !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&t)
        {
            return bad(format!("rule {:?}: date out of range", r.id));
        }
        // S3's own rules: an expired-marker cleanup is its own Expiration (no days, no date,
        // no tags), and a count of versions to keep needs the days after which the rest go.
        if r.expired_object_delete_marker
            && (r.expiration_days.is_some() || r.expiration_date.is_some() || !r.tags.is_empty())
        {
            return bad(format!(
                "rule {:?}: ExpiredObjectDeleteMarker cannot be combined with days, a date or tags",
                r.id
            ));
        }
        match r.newer_noncurrent_versions {
            Some(n) if r.noncurrent_days.is_none() || !(1..=MAX_NEWER_NONCURRENT).contains(&n) => {
                return bad(format!(
                    "rule {:?}: NewerNoncurrentVersions needs NoncurrentDays and must be 1..={MAX_NEWER_NONCURRENT}",
                    r.id
                ));
            }
            _ => {}
        }
        // Noncurrent versions keep their own tags; matching them is not built, so such a
        // rule is refused rather than applied to versions it should spare.
        if r.noncurrent_days.is_some() && !r.tags.is_empty() {
            return bad(format!(
                "rule {:?}: NoncurrentVersionExpiration cannot filter by tags here",
                r.id
            ));
        }
        tags(&r.tags)?;
        // Uploads carry no tags S3 would match: S3 refuses the combination too.
        if !r.tags.is_empty() && r.abort_incomplete_upload_days.is_some() {
            return bad(format!(
                "rule {:?}: an abort of incomplete uploads cannot filter by tags",
                r.id
            ));
        }
    }
    Ok(())
}

/// A bucket to create: its name by [`bucket_name`], its settings by [`bucket_settings`].
pub fn bucket_spec(spec: &BucketSpec) -> Result<()> {
    bucket_name(&spec.name)?;
    bucket_settings(&spec.settings)
}

/// A batch of intent ids: each a valid id, at most [`MAX_BATCH_KEYS`].
pub fn intent_ids(ids: &[String]) -> Result<()> {
    if ids.len() > MAX_BATCH_KEYS {
        return Err(StoreError::invalid(
            "intent id batch",
            format!("at most {MAX_BATCH_KEYS} ids (got {})", ids.len()),
        ));
    }
    ids.iter().try_for_each(|i| id("intent id", i))
}

/// A batch of keys: each a valid key, at most [`MAX_BATCH_KEYS`].
pub fn keys(ks: &[String]) -> Result<()> {
    if ks.len() > MAX_BATCH_KEYS {
        return Err(StoreError::invalid(
            "key batch",
            format!("has {} keys, the limit is {MAX_BATCH_KEYS}", ks.len()),
        ));
    }
    ks.iter().try_for_each(|k| key(k))
}

/// A listing limit: values ≤ 0 mean `default`; larger values are capped at `cap`.
pub fn limit(n: i64, default: usize, cap: usize) -> usize {
    if n <= 0 {
        default
    } else {
        usize::try_from(n).unwrap_or(cap).min(cap)
    }
}

/// Rows a listing returns when the caller passes a limit ≤ 0.
pub const DEFAULT_PAGE: usize = 1000;
/// Most rows any single listing call returns; larger limits are capped.
pub const MAX_PAGE: usize = 10_000;

/// The page size of a listing: ≤ 0 ⇒ [`DEFAULT_PAGE`], capped at [`MAX_PAGE`]. The one rule
/// for every listing method of both engines, except [`batch_limit`] callers.
pub fn page(n: i64) -> usize {
    limit(n, DEFAULT_PAGE, MAX_PAGE)
}

/// The size of a batch that acts on rows (claims) or selects work (replication queries):
/// ≤ 0 ⇒ `None`, meaning "nothing", never a default; capped at [`MAX_PAGE`].
pub fn batch_limit(n: i64) -> Option<usize> {
    (n > 0).then(|| usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE))
}

/// A usage period: `YYYY-MM` with a month 01..=12.
pub fn usage_period(p: &str) -> Result<()> {
    let b = p.as_bytes();
    let ok = b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(p[5..].parse::<u8>(), Ok(1..=12));
    if !ok {
        return Err(StoreError::invalid(
            "usage period",
            format!("must be YYYY-MM (got {p:?})"),
        ));
    }
    Ok(())
}

/// Backend names given as a preference or eligibility list: each a valid name.
pub fn backend_names(names: &[String]) -> Result<()> {
    names.iter().try_for_each(|b| backend(b))
}

/// Quota limits as `sync_quota_limits` applies them: every name and limit valid, sorted by
/// name (the quota-row lock order), a repeated name keeping its last limit.
pub fn quota_limits(limits: &[(String, i64)]) -> Result<Vec<(String, i64)>> {
    let mut by_name = std::collections::BTreeMap::new();
    for (b, l) in limits {
        backend(b)?;
        quota_limit(*l)?;
        by_name.insert(b.clone(), *l);
    }
    Ok(by_name.into_iter().collect())
}

/// A quota limit: non-negative (0 = unlimited). Any larger value is fine: the guard compares
/// against it and never adds to it.
pub fn quota_limit(n: i64) -> Result<()> {
    if n < 0 {
        return Err(StoreError::invalid(
            "quota limit",
            format!("must not be negative (got {n})"),
        ));
    }
    Ok(())
}

/// Longest storage key (path of the bytes on a backend), in bytes: an S3 key's limit.
pub const MAX_STORAGE_KEY_BYTES: usize = 1024;
/// Longest ETag accepted, in bytes.
pub const MAX_ETAG_BYTES: usize = 256;
/// Longest content type accepted, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 256;
/// Longest user-metadata JSON text accepted, in bytes (S3 allows 2 KiB of user metadata; the
/// JSON encoding and escapes get room to spare).
pub const MAX_USER_METADATA_JSON_BYTES: usize = 8 * 1024;

/// A stored form: plaintext size as [`size`], key id as [`id`]; no NUL in any text; storage key at most
/// [`MAX_STORAGE_KEY_BYTES`], ETag at most [`MAX_ETAG_BYTES`], content type at most
/// [`MAX_CONTENT_TYPE_BYTES`], user metadata (keys non-empty) at most
/// [`MAX_USER_METADATA_JSON_BYTES`] as JSON.
pub fn stored_form(form: &StoredForm) -> Result<()> {
    size("plaintext size", form.plaintext_size)?;
    id("key id", &form.key_id)?;
    text("content hash", &form.content_hash)?;
    bounded("storage key", &form.storage_key, MAX_STORAGE_KEY_BYTES)?;
    bounded("etag", &form.etag, MAX_ETAG_BYTES)?;
    bounded("content type", &form.content_type, MAX_CONTENT_TYPE_BYTES)?;
    for (k, v) in &form.user_metadata {
        if k.is_empty() {
            return Err(StoreError::invalid(
                "user metadata",
                "a key must not be empty",
            ));
        }
        text("user metadata key", k)?;
        text("user metadata value", v)?;
    }
    if let Some(json) = form.user_metadata_json()
        && json.len() > MAX_USER_METADATA_JSON_BYTES
    {
        return Err(StoreError::invalid(
            "user metadata",
            format!(
                "is {} bytes as JSON, the limit is {MAX_USER_METADATA_JSON_BYTES}",
                json.len()
            ),
        ));
    }
    attributes(&form.attributes)?;
    tags(&form.tags)
}

/// Most stored headers of one object.
pub const MAX_STORED_HEADERS: usize = 16;
/// Longest stored header name, in bytes.
pub const MAX_HEADER_NAME_BYTES: usize = 64;
/// Longest stored header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// Longest checksum algorithm or type name, in bytes.
pub const MAX_CHECKSUM_NAME_BYTES: usize = 32;
/// Longest checksum value (base64, with a `-<parts>` suffix), in bytes.
pub const MAX_CHECKSUM_VALUE_BYTES: usize = 128;
/// Most parts of a multipart object (S3's limit).
pub const MAX_PARTS: usize = 10_000;
/// Most tags of one object (S3's limit).
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in Unicode characters (S3's limit).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters (S3's limit).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Stored attributes: at most [`MAX_STORED_HEADERS`] headers with non-empty names of at most
/// [`MAX_HEADER_NAME_BYTES`] and values of at most [`MAX_HEADER_VALUE_BYTES`]; checksum names
/// and value bounded; at most [`MAX_PARTS`] parts of non-negative size; no NUL anywhere.
pub fn attributes(a: &ObjectAttributes) -> Result<()> {
    if a.headers.len() > MAX_STORED_HEADERS {
        return Err(StoreError::invalid(
            "stored headers",
            format!("are {}, the limit is {MAX_STORED_HEADERS}", a.headers.len()),
        ));
    }
    for (k, v) in &a.headers {
        if k.is_empty() {
            return Err(StoreError::invalid(
                "stored header",
                "a name must not be empty",
            ));
        }
        bounded("stored header name", k, MAX_HEADER_NAME_BYTES)?;
        bounded("stored header value", v, MAX_HEADER_VALUE_BYTES)?;
    }
    if let Some(c) = &a.checksum {
        bounded("checksum algorithm", &c.algorithm, MAX_CHECKSUM_NAME_BYTES)?;
        bounded("checksum type", &c.kind, MAX_CHECKSUM_NAME_BYTES)?;
        bounded("checksum", &c.value, MAX_CHECKSUM_VALUE_BYTES)?;
    }
    if a.parts.len() > MAX_PARTS {
        return Err(StoreError::invalid(
            "part layout",
            format!("has {} parts, the limit is {MAX_PARTS}", a.parts.len()),
        ));
    }
    for p in &a.parts {
        size("part size", p.size)?;
        bounded("part checksum", &p.checksum, MAX_CHECKSUM_VALUE_BYTES)?;
    }
    Ok(())
}

/// Object tags, S3's limits: at most [`MAX_TAGS`], keys of 1..=[`MAX_TAG_KEY_CHARS`]
/// characters, values of at most [`MAX_TAG_VALUE_CHARS`] characters, no NUL.
pub fn tags(t: &BTreeMap<String, String>) -> Result<()> {
    if t.len() > MAX_TAGS {
        return Err(StoreError::invalid(
            "tags",
            format!("are {}, the limit is {MAX_TAGS}", t.len()),
        ));
    }
    for (k, v) in t {
        let n = k.chars().count();
        if n == 0 || n > MAX_TAG_KEY_CHARS {
            return Err(StoreError::invalid(
                "tag key",
                format!("must have 1..={MAX_TAG_KEY_CHARS} characters (has {n})"),
            ));
        }
        let n = v.chars().count();
        if n > MAX_TAG_VALUE_CHARS {
            return Err(StoreError::invalid(
                "tag value",
                format!("must have at most {MAX_TAG_VALUE_CHARS} characters (has {n})"),
            ));
        }
        text("tag key", k)?;
        text("tag value", v)?;
    }
    Ok(())
}

/// Text of at most `max` bytes without NUL.
fn bounded(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(StoreError::invalid(
            what,
            format!("is {} bytes, the limit is {max}", s.len()),
        ));
    }
    no_nul(what, s)
}

/// One copy as it is written: key, backend, size and stored form.
pub fn copy(key_: &str, backend_: &str, size_bytes: i64, form: &StoredForm) -> Result<()> {
    key(key_)?;
    backend(backend_)?;
    size("object size", size_bytes)?;
    stored_form(form)
}

/// A location row as it is inserted (see [`copy`]), with a storable `created_at`.
pub fn location(loc: &ObjectLocation) -> Result<()> {
    copy(
        &loc.object_key,
        &loc.backend_name,
        loc.size_bytes,
        &loc.form,
    )?;
    timestamp("created_at", loc.created_at)
}

/// A pending intent: a non-empty [`id`], a valid copy and a storable `created_at`.
pub fn pending(p: &PendingObject) -> Result<()> {
    if p.intent_id.is_empty() {
        return Err(StoreError::invalid("intent id", "must not be empty"));
    }
    id("intent id", &p.intent_id)?;
    copy(&p.object_key, &p.backend_name, p.size_bytes, &p.form)?;
    timestamp("created_at", p.created_at)
}

/// A cleanup-queue entry: backend, key, reason and a non-negative size.
pub fn cleanup_entry(backend_: &str, key_: &str, reason: &str, size_bytes: i64) -> Result<()> {
    backend(backend_)?;
    key(key_)?;
    text("reason", reason)?;
    size("cleanup size", size_bytes)
}

/// An outbox entry and its claimant, as a transaction enqueues it: a valid cleanup entry, a
/// storage key and claimant without NUL.
pub fn outbox_entry(e: &CleanupEntry, claimed_by: &str) -> Result<()> {
    cleanup_entry(&e.backend_name, &e.object_key, &e.reason, e.size_bytes)?;
    text("storage key", &e.storage_key)?;
    text("claimant", claimed_by)
}

/// A multipart part as `record_part` receives it: part number 1..=10000, upload id and etag
/// without NUL, non-negative size, valid stored form.
pub fn part(
    upload_id: &str,
    part: i32,
    etag: &str,
    size_bytes: i64,
    form: &StoredForm,
) -> Result<()> {
    part_number(part)?;
    id("upload id", upload_id)?;
    text("etag", etag)?;
    size("part size", size_bytes)?;
    stored_form(form)
}

/// A usage flush: valid backend and period, non-negative deltas.
pub fn usage_flush(
    backend_: &str,
    period: &str,
    api: i64,
    egress: i64,
    ingress: i64,
) -> Result<()> {
    backend(backend_)?;
    usage_period(period)?;
    size("api requests", api)?;
    size("egress bytes", egress)?;
    size("ingress bytes", ingress)
}

/// A notification: event type and endpoint without NUL, and a payload that is valid JSON
/// holding no NUL character, raw or escaped as `\u0000` (checked here so bad JSON is an
/// answer, not a database failure, and both engines refuse the same payloads: PostgreSQL's
/// JSON types cannot hold NUL in text).
pub fn notification(event_type: &str, payload: &str, endpoint_url: &str) -> Result<()> {
    text("event type", event_type)?;
    text("endpoint URL", endpoint_url)?;
    text("notification payload", payload)?;
    let value = serde_json::from_str::<serde_json::Value>(payload)
        .map_err(|e| StoreError::invalid("notification payload", format!("not JSON: {e}")))?;
    if holds_nul(&value) {
        return Err(StoreError::invalid(
            "notification payload",
            "must not contain a NUL character (\\u0000)",
        ));
    }
    Ok(())
}

fn holds_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(holds_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn no_nul(what: &'static str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(StoreError::invalid(what, "must not contain a NUL byte"));
    }
    Ok(())
}

/// A row naming a wrapped data key ([`crate::types::WrappedKeyAt`]): its key, backend and ids
/// bounded like everywhere else, a valid part number.
pub fn wrapped_key_at(at: &crate::types::WrappedKeyAt) -> Result<()> {
    use crate::types::WrappedKeyAt as W;
    match at {
        W::Current {
            object_key,
            backend_name,
        } => {
            key(object_key)?;
            backend(backend_name)
        }
        W::Version {
            object_key,
            version_id,
            backend_name,
        } => {
            key(object_key)?;
            id("version id", version_id)?;
            backend(backend_name)
        }
        W::Upload { upload_id } => id("upload id", upload_id),
        W::Part {
            upload_id,
            part_number: n,
        } => {
            id("upload id", upload_id)?;
            part_number(*n)
        }
        W::Pending { intent_id } => id("intent id", intent_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let max = "é".repeat(MAX_KEY_BYTES / 2);
        let cases: Vec<(&str, Result<()>, bool)> = vec![
            ("empty key", key(""), false),
            ("1025-byte key", key(&long), false),
            ("1024-byte multibyte key", key(&max), true),
            ("NUL key", key("a\0b"), false),
            ("plain key", key("a/b c%_\\"), true),
            ("negative size", size("size", -1), false),
            ("zero size", size("size", 0), true),
            ("part 0", part_number(0), false),
            ("part 1", part_number(1), true),
            ("part 10000", part_number(10_000), true),
            ("part 10001", part_number(10_001), false),
            ("empty backend", backend(""), false),
            ("NUL backend", backend("b\0"), false),
            ("negative limit", quota_limit(-5), false),
            (
                "oversized batch",
                keys(&vec!["k".to_string(); MAX_BATCH_KEYS + 1]),
                false,
            ),
            (
                "batch with bad key",
                keys(&["ok".into(), String::new()]),
                false,
            ),
            ("prefix empty ok", prefix("prefix", ""), true),
            ("size at the limit", size("size", MAX_SIZE_BYTES), true),
            (
                "size over the limit",
                size("size", MAX_SIZE_BYTES + 1),
                false,
            ),
            ("counter i64::MAX", size("orphan bytes", i64::MAX), false),
            ("huge quota limit", quota_limit(i64::MAX), true),
            (
                "id at the limit",
                id("upload id", &"u".repeat(MAX_ID_BYTES)),
                true,
            ),
            (
                "id over the limit",
                id("upload id", &"u".repeat(MAX_ID_BYTES + 1)),
                false,
            ),
            ("NUL id", id("intent id", "i\0"), false),
            ("earliest time", timestamp("t", MIN_TIMESTAMP), true),
            ("latest time", timestamp("t", MAX_TIMESTAMP), true),
            ("zero time", timestamp("t", Timestamp::ZERO), true),
            (
                "i64::MIN time",
                timestamp("t", Timestamp::from_micros(i64::MIN)),
                false,
            ),
            (
                "i64::MAX time",
                timestamp("t", Timestamp::from_micros(i64::MAX)),
                false,
            ),
            (
                "before year 1",
                timestamp("t", Timestamp::from_micros(MIN_TIMESTAMP.as_micros() - 1)),
                false,
            ),
            ("JSON", notification("e", r#"{"a":[1,"x"]}"#, "u"), true),
            (
                "JSON with escaped NUL",
                notification("e", r#"{"a":"x\u0000"}"#, "u"),
                false,
            ),
            (
                "JSON key with escaped NUL",
                notification("e", r#"{"\u0000":1}"#, "u"),
                false,
            ),
            ("raw NUL payload", notification("e", "\"\0\"", "u"), false),
        ];
        for (name, r, ok) in cases {
            assert_eq!(r.is_ok(), ok, "{name}: {r:?}");
            if let Err(e) = r {
                assert!(
                    matches!(e, StoreError::InvalidInput { .. }),
                    "{name}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn usage_periods_and_quota_lists() {
        assert!(usage_period("2026-11").is_ok());
        for bad in [
            "2026-13", "2026-00", "26-11", "2026/11", "2026-1", "abcd-ef", "",
        ] {
            assert!(usage_period(bad).is_err(), "{bad}");
        }
        let l = quota_limits(&[("b".into(), 1), ("a".into(), 2), ("b".into(), 3)]).unwrap();
        assert_eq!(l, [("a".to_string(), 2), ("b".to_string(), 3)]);
        assert!(quota_limits(&[("a".into(), -1)]).is_err());
        assert_eq!(batch_limit(0), None);
        assert_eq!(batch_limit(-4), None);
        assert_eq!(batch_limit(5), Some(5));
        assert_eq!(batch_limit(i64::MAX), Some(MAX_PAGE));
        assert_eq!(page(0), DEFAULT_PAGE);
        assert_eq!(page(50_000), MAX_PAGE);
    }

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(limit(0, 1000, 5000), 1000);
        assert_eq!(limit(-3, 1000, 5000), 1000);
        assert_eq!(limit(7, 1000, 5000), 7);
        assert_eq!(limit(i64::MAX, 1000, 5000), 5000);
    }
}
