//! The S3 operations: s3s's `S3` trait implemented on the ledger and the backends.
//!
//! Reads and listings are answered from the ledger; bytes come from the first readable copy.
//! When the ledger is unavailable ([`s3o_store::s3_error_for`] says so), reads are broadcast
//! to every backend and writes answer 503.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore as _, ObjectStoreExt as _};
use s3o_store::{Access, StoreError, Timestamp, WritePrecondition, s3_error_for};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::backends::{Backend, Backends};
use crate::body::{self, UploadError};
use crate::completions::{Completions, Done, Failed};
use crate::keys;
use crate::ledger::{Copy, Displaced, Ledger, ObjectMeta};
use crate::metrics::Metrics;

/// Keys per DeleteObjects request (S3's limit).
const MAX_DELETE_KEYS: usize = 1000;
/// Page size cap of listings (S3's limit).
const MAX_LIST_KEYS: i32 = 1000;
/// Backend deletes run at once per request (DeleteObjects can free 1000 keys).
const DELETE_CONCURRENCY: usize = 16;
/// S3's minimum size of every part but the last.
const MIN_PART_SIZE: i64 = 5 * 1024 * 1024;

/// Reads that find every copy gone re-read the ledger this many times: an overwrite or a
/// delete committed between the lookup and the open deleted the bytes, and the next lookup
/// finds the new version or nothing.
const READ_ATTEMPTS: usize = 4;

/// How often a write that is still streaming refreshes its intent. The reaper's `min_age`
/// should be a few times longer (its default, 5 minutes, is).
pub(crate) const INTENT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// The gateway's S3 implementation (cheap to clone: a Complete's assembly task holds one).
#[derive(Clone)]
pub(crate) struct GatewayS3 {
    ledger: Arc<Ledger>,
    backends: Arc<Backends>,
    buckets: Arc<BTreeSet<String>>,
    region: String,
    metrics: Arc<Metrics>,
    completions: Completions,
}

/// Why a version's bytes could not be opened.
enum OpenError {
    /// Every copy answered 404: the version was displaced after the lookup.
    Gone,
    /// Some copy failed otherwise (backend down, timeout).
    Unavailable,
}

/// The S3 condition of `If-Match`/`If-None-Match` as the store's precondition (`*` for any).
fn precondition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> WritePrecondition {
    let text = |c: &ETagCondition| match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(t) => t.value().to_owned(),
    };
    WritePrecondition {
        if_match: if_match.map(text),
        if_none_match: if_none_match.map(text),
    }
}

/// The S3 answer for a store error (the one mapping, from s3o-core). `None` only for a read
/// while the ledger is unavailable: the caller broadcasts instead.
fn store_error(e: &StoreError, access: Access) -> Option<S3Error> {
    let m = s3_error_for(e, access)?;
    let code = S3ErrorCode::from_bytes(m.code.as_bytes()).unwrap_or(S3ErrorCode::InternalError);
    let mut err = S3Error::with_message(code, m.message);
    if let Ok(status) = hyper::StatusCode::from_u16(m.status) {
        err.set_status_code(status);
    }
    if m.status >= 500 {
        tracing::warn!(error = %e, "ledger call failed");
    }
    Some(err)
}

fn write_err(e: StoreError) -> S3Error {
    store_error(&e, Access::Write).unwrap_or_else(|| s3_error!(ServiceUnavailable))
}

/// Read errors that are not an outage (an outage is handled by the caller's broadcast).
fn read_err(e: StoreError) -> S3Error {
    store_error(&e, Access::Read).unwrap_or_else(|| s3_error!(ServiceUnavailable))
}

/// The ledger cannot answer: the breaker is open (the mapping's "broadcast" answer), or a
/// connection failure that has not tripped it yet (writes map that to 503 as well).
fn is_outage(e: &StoreError) -> bool {
    s3_error_for(e, Access::Read).is_none()
        || e.db_kind() == Some(s3o_store::DbErrorKind::Connection)
}

fn http_status(r: &Result<impl Sized, S3Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e
            .status_code()
            .or_else(|| e.code().status_code())
            .map_or(500, |s| s.as_u16()),
    }
}

fn to_s3_time(t: Timestamp) -> s3s::dto::Timestamp {
    s3s::dto::Timestamp::from(t.to_system_time())
}

fn etag_of(meta: &ObjectMeta) -> Option<ETag> {
    (!meta.etag.is_empty()).then(|| ETag::Strong(meta.etag.clone()))
}

fn metadata_of(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user_metadata.is_empty()).then(|| {
        meta.user_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    })
}

fn user_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Percent-encodes a key for `encoding-type=url` listings (everything but unreserved
/// characters and `/`).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opaque continuation token for a bucket-relative key.
pub(crate) fn encode_token(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// Decodes a continuation token; anything we did not issue ⇒ `InvalidArgument`.
pub(crate) fn decode_token(token: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "invalid continuation token"))
}

/// Evaluates GET/HEAD preconditions against the ledger's ETag and Last-Modified, in RFC 9110
/// order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
pub(crate) fn check_preconditions(
    meta: &ObjectMeta,
    last_modified: Timestamp,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&s3s::dto::Timestamp>,
    if_unmodified_since: Option<&s3s::dto::Timestamp>,
) -> S3Result<()> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => !meta.etag.is_empty() && t.value() == meta.etag,
    };
    // HTTP dates have whole seconds: compare at that precision.
    let lm_secs = last_modified.as_micros().div_euclid(1_000_000);
    let secs = |t: &s3s::dto::Timestamp| {
        let st: std::time::SystemTime = time::OffsetDateTime::from(t.clone()).into();
        Timestamp::from_system_time(st)
            .as_micros()
            .div_euclid(1_000_000)
    };
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since
        && lm_secs > secs(t)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since
        && lm_secs <= secs(t)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// A byte range resolved against the object size: `(start, end_exclusive)`.
pub(crate) fn resolve_range(range: Option<&Range>, size: u64) -> S3Result<Option<(u64, u64)>> {
    match range {
        None => Ok(None),
        Some(r) => {
            let r = r
                .check(size)
                .map_err(|_| s3_error!(InvalidRange, "the requested range is not satisfiable"))?;
            Ok(Some((r.start, r.end)))
        }
    }
}

fn content_range(start: u64, end: u64, size: u64) -> String {
    format!("bytes {start}-{}/{size}", end.saturating_sub(1))
}

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, s3s::StdError>> + Send>>;

/// One object write: where, how big, what metadata, and what the bytes must hash to.
struct Write<'a> {
    bucket: &'a str,
    key: &'a str,
    size: i64,
    meta: ObjectMeta,
    /// MD5 the body must have (Content-MD5, or the copy source's).
    expect_md5: Option<[u8; 16]>,
    /// ETag to record instead of the body's MD5 (multipart assembly).
    etag: Option<String>,
    /// Backend chosen by the caller instead of routing (multipart assembly).
    backend: Option<String>,
    /// Client checksums to compute and verify.
    checksums: Option<body::ChecksumRequest>,
    /// Preconditions the store decides in the commit transaction.
    cond: WritePrecondition,
}

/// A readable version found by a lookup (ledger or broadcast).
struct Found {
    size: i64,
    last_modified: Timestamp,
    meta: ObjectMeta,
    /// Backends holding it, in preference order.
    backends: Vec<String>,
}

impl GatewayS3 {
    pub(crate) fn new(
        ledger: Arc<Ledger>,
        backends: Arc<Backends>,
        buckets: BTreeSet<String>,
        region: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        GatewayS3 {
            ledger,
            backends,
            buckets: Arc::new(buckets),
            region,
            metrics,
            completions: Completions::default(),
        }
    }

    fn bucket(&self, name: &str) -> S3Result<()> {
        if self.buckets.contains(name) {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket, "bucket {name} is not configured"))
        }
    }

    fn observe<T>(&self, op: &'static str, r: &S3Result<T>, started: Instant) {
        self.metrics.record(op, http_status(r), started.elapsed());
    }

    fn backend(&self, name: &str) -> S3Result<&Arc<Backend>> {
        self.backends
            .get(name)
            .ok_or_else(|| s3_error!(InternalError, "backend {name} is not configured"))
    }

    /// Deletes bytes the ledger no longer references; what cannot be deleted now is queued
    /// for the cleanup worker and charged to the backend's orphan bytes.
    async fn remove_displaced(&self, displaced: Vec<Displaced>, reason: &str) {
        futures::stream::iter(displaced)
            .for_each_concurrent(DELETE_CONCURRENCY, |d| self.remove_one(d, reason))
            .await;
    }

    async fn remove_one(&self, d: Displaced, reason: &str) {
        let deleted = match self.backends.get(&d.backend) {
            Some(b) => match b.store.delete(&keys::path(&d.storage_key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            None => Err("backend not configured".to_owned()),
        };
        match (deleted, &d.claim) {
            (Ok(()), Some(claim)) => {
                // Still queued (claimed by this instance) if this fails: the worker finishes it.
                if let Err(e) = self.ledger.complete_cleanup(claim).await {
                    tracing::warn!(backend = %d.backend, key = %d.storage_key, error = %e, "could not complete the cleanup row");
                }
            }
            (Ok(()), None) => {}
            (Err(e), Some(_)) => {
                tracing::warn!(backend = %d.backend, key = %d.storage_key, error = %e, "delete failed; left to the cleanup worker");
                self.metrics.event("cleanup_enqueued");
            }
            (Err(e), None) => {
                tracing::warn!(backend = %d.backend, key = %d.storage_key, error = %e, "delete failed; queued for cleanup");
                self.metrics.event("cleanup_enqueued");
                if let Err(e) = self.ledger.orphan(&d, reason).await {
                    tracing::error!(backend = %d.backend, key = %d.storage_key, error = %e, "could not queue cleanup: bytes orphaned untracked");
                }
            }
        }
    }

    /// Refreshes `intent_id` every [`INTENT_HEARTBEAT`] so the pending reaper, which abandons
    /// intents older than its `min_age`, leaves a write that is still streaming alone. Never
    /// returns; a failed refresh is logged (the commit then refuses if the reaper won).
    async fn heartbeat(&self, intent_id: &str) {
        let ids = [intent_id.to_owned()];
        loop {
            tokio::time::sleep(INTENT_HEARTBEAT).await;
            if let Err(e) = self.ledger.touch_intents(&ids).await {
                tracing::warn!(intent = %intent_id, error = %e, "could not refresh a write intent");
            }
        }
    }

    /// Ends a write that will not be committed: its intent is dropped and its bytes queued in
    /// one ledger transaction, then deleted at once (the queued row completes). When the ledger
    /// cannot answer, the intent stays and the pending reaper abandons it the same way later;
    /// either way the bytes never become the object.
    async fn abandon(&self, ledger_key: &str, backend: &str, intent_id: &str) {
        match self
            .ledger
            .abandon_write(intent_id, ledger_key, backend)
            .await
        {
            Ok(queued) => self.remove_displaced(queued, "abandoned").await,
            Err(e) => {
                tracing::warn!(backend = %backend, intent = %intent_id, error = %e, "could not abandon the write now; the pending reaper will");
            }
        }
    }

    /// The write path: route by quota → intent → stream to the backend → verify → commit
    /// (record-and-clear) → delete displaced bytes. Returns the committed metadata.
    async fn write_object(
        &self,
        w: Write<'_>,
        body: ByteStream,
    ) -> S3Result<(ObjectMeta, Checksum)> {
        let Write {
            bucket,
            key,
            size,
            mut meta,
            expect_md5,
            etag,
            backend,
            checksums,
            cond,
        } = w;
        let mut checksums = match checksums {
            Some(c) => c,
            None => body::ChecksumRequest::new(
                None,
                Checksum::default(),
                None,
                &hyper::HeaderMap::new(),
            )?,
        };
        let ledger_key = &keys::ledger_key(bucket, key);
        let backend_name = match backend {
            Some(b) => b,
            None => self
                .ledger
                .pick_backend(size, self.backends.order())
                .await
                .map_err(write_err)?,
        };
        let backend = self.backend(&backend_name)?.clone();
        meta.storage_key = keys::object_path(bucket, key, &keys::new_version());
        let path = keys::path(&meta.storage_key);
        let intent = self
            .ledger
            .begin_write(ledger_key, &backend_name, size, &meta)
            .await
            .map_err(write_err)?;
        // The heartbeat keeps the reaper off this intent while the body streams, however long
        // that takes.
        let uploaded = {
            let ledger = Arc::clone(&self.ledger);
            let intent_id = intent.clone();
            let record = move |upload_id: String| -> futures::future::BoxFuture<'static, Result<(), String>> {
                let (ledger, intent_id) = (Arc::clone(&ledger), intent_id.clone());
                Box::pin(async move {
                    match ledger.record_backend_upload(&intent_id, &upload_id).await {
                        Ok(true) => Ok(()),
                        Ok(false) => Err("the write's intent is gone".to_owned()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            };
            let upload = body::upload(&backend, &path, body, &mut checksums.hasher, Some(&record));
            tokio::pin!(upload);
            tokio::select! {
                r = &mut upload => r,
                () = self.heartbeat(&intent) => unreachable!("the heartbeat never ends"),
            }
        };
        let up = match uploaded {
            Ok(u) => u,
            Err(UploadError::Body(e)) => {
                self.abandon(ledger_key, &backend_name, &intent).await;
                return Err(body_error(e));
            }
            Err(UploadError::Backend(e)) => {
                self.abandon(ledger_key, &backend_name, &intent).await;
                tracing::warn!(backend = %backend_name, error = %e, "backend upload failed");
                return Err(s3_error!(
                    InternalError,
                    "backend {backend_name} failed to store the object"
                ));
            }
        };
        let verified = if i64::try_from(up.size).ok() != Some(size) {
            Err(s3_error!(
                IncompleteBody,
                "body length differs from Content-Length"
            ))
        } else if expect_md5.is_some_and(|m| m != up.md5) {
            Err(s3_error!(BadDigest, "Content-MD5 does not match the body"))
        } else {
            checksums.verify()
        };
        let computed = match verified {
            Ok(c) => c,
            Err(e) => {
                // Refused bytes never become the object, whatever happens to their delete.
                self.abandon(ledger_key, &backend_name, &intent).await;
                return Err(e);
            }
        };
        meta.etag = etag.unwrap_or_else(|| up.etag());
        match self
            .ledger
            .commit_write(ledger_key, &backend_name, size, &meta, &intent, &cond)
            .await
        {
            Ok(displaced) => self.remove_displaced(displaced, "overwritten").await,
            Err(e @ StoreError::PendingIntentGone { .. }) => {
                // The reaper abandoned this write meanwhile and queued its path for deletion;
                // bytes that landed after its delete are this request's to remove.
                let ours = Displaced {
                    backend: backend_name.clone(),
                    storage_key: meta.storage_key.clone(),
                    size,
                    claim: None,
                };
                self.remove_displaced(vec![ours], "abandoned").await;
                return Err(write_err(e));
            }
            Err(e) => {
                // Refused (precondition, quota, input), or unknown: if the commit did happen
                // its intent is gone and this finds nothing to abandon; if it did not, the
                // bytes are queued now (or by the reaper when the ledger is back). The
                // previous version is untouched: each write has its own path.
                self.abandon(ledger_key, &backend_name, &intent).await;
                return Err(write_err(e));
            }
        }
        Ok((meta, computed))
    }

    /// Finds the version to read: the ledger's copies, or a broadcast when it is down.
    async fn lookup(&self, bucket: &str, key: &str) -> S3Result<Found> {
        match self.ledger.copies(&keys::ledger_key(bucket, key)).await {
            Ok(copies) => Ok(found_of(copies)),
            Err(e) if is_outage(&e) => {
                self.metrics.event("broadcast_read");
                self.broadcast(bucket, key).await
            }
            Err(e) => Err(read_err(e)),
        }
    }

    /// Asks every backend for the newest version of `key` (ledger down). Versions sort by
    /// write time, so the newest path wins.
    async fn broadcast(&self, bucket: &str, key: &str) -> S3Result<Found> {
        let dir = Path::parse(keys::object_dir(bucket, key)).map_err(|_| s3_error!(NoSuchKey))?;
        let probes = self.backends.all().map(|b| {
            let dir = dir.clone();
            async move {
                let listed = b.store.list_with_delimiter(Some(&dir)).await.ok()?;
                listed
                    .objects
                    .into_iter()
                    .filter(|o| o.location.filename().is_some_and(|f| f.starts_with('@')))
                    .max_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()))
                    .map(|o| (b.name.clone(), o))
            }
        });
        let best = futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .max_by(|a, b| a.1.location.as_ref().cmp(b.1.location.as_ref()));
        match best {
            Some((backend, o)) => Ok(Found {
                size: i64::try_from(o.size).unwrap_or(i64::MAX),
                last_modified: Timestamp::from_system_time(o.last_modified.into()),
                meta: ObjectMeta {
                    storage_key: o.location.to_string(),
                    ..ObjectMeta::default()
                },
                backends: vec![backend],
            }),
            None => Err(s3_error!(NoSuchKey)),
        }
    }

    /// Opens the bytes of `found` (range optional), failing over across its copies.
    async fn open(
        &self,
        found: &Found,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, OpenError> {
        let path = keys::path(&found.meta.storage_key);
        let mut gone = true;
        for name in &found.backends {
            let Some(b) = self.backends.get(name) else {
                gone = false;
                continue;
            };
            let opts = GetOptions {
                range: range.map(|(s, e)| GetRange::Bounded(s..e)),
                ..GetOptions::default()
            };
            match b.store.get_opts(&path, opts).await {
                Ok(r) => {
                    let s = r.into_stream().map_err(|e| Box::new(e) as s3s::StdError);
                    return Ok(Box::pin(s));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    self.metrics.event("read_failover");
                }
                Err(e) => {
                    gone = false;
                    tracing::warn!(backend = %name, path = %path, error = %e, "read failed; trying the next copy");
                    self.metrics.event("read_failover");
                }
            }
        }
        Err(if gone {
            OpenError::Gone
        } else {
            OpenError::Unavailable
        })
    }

    /// Looks `key` up, checks `admit` (preconditions, range) against the version found and
    /// opens its bytes. A version whose bytes are all gone was displaced by an overwrite or
    /// delete committed after the lookup: the ledger is read again (at most
    /// [`READ_ATTEMPTS`] times, while it names another version), so a read racing a write
    /// answers the old or the new version, or 404, never 503.
    async fn read_version<T>(
        &self,
        bucket: &str,
        key: &str,
        admit: impl Fn(&Found) -> S3Result<(T, Option<(u64, u64)>)>,
    ) -> S3Result<(Found, T, ByteStream)> {
        let mut tried: Option<String> = None;
        for _ in 0..READ_ATTEMPTS {
            let found = self.lookup(bucket, key).await?;
            let (extra, range) = admit(&found)?;
            match self.open(&found, range).await {
                Ok(stream) => return Ok((found, extra, stream)),
                Err(OpenError::Gone) if tried.as_ref() != Some(&found.meta.storage_key) => {
                    self.metrics.event("read_retry_displaced");
                    tried = Some(found.meta.storage_key.clone());
                }
                Err(_) => break,
            }
        }
        Err(s3_error!(
            ServiceUnavailable,
            "no copy of the object is readable right now"
        ))
    }

    async fn do_put(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        self.bucket(&input.bucket)?;
        let checksums = body::ChecksumRequest::new(
            input.checksum_algorithm.as_ref(),
            Checksum {
                checksum_crc32: input.checksum_crc32.clone(),
                checksum_crc32c: input.checksum_crc32c.clone(),
                checksum_sha1: input.checksum_sha1.clone(),
                checksum_sha256: input.checksum_sha256.clone(),
                checksum_crc64nvme: input.checksum_crc64nvme.clone(),
                ..Checksum::default()
            },
            req.trailing_headers,
            &req.headers,
        )?;
        let lkey = keys::ledger_key(&input.bucket, &input.key);
        let expect_md5 = match &input.content_md5 {
            Some(h) => Some(body::content_md5(h).ok_or_else(|| s3_error!(InvalidDigest))?),
            None => None,
        };
        let body = input.body;
        let size = match (input.content_length, &body) {
            (Some(n), _) => n,
            (None, None) => 0,
            (None, Some(b)) => {
                let hint = s3s::stream::ByteStream::remaining_length(b);
                hint.exact()
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| s3_error!(MissingContentLength))?
            }
        };
        if input.if_match.is_some() || input.if_none_match.is_some() {
            self.check_write_conditions(
                &lkey,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )
            .await?;
        }
        let meta = ObjectMeta {
            content_type: input.content_type.unwrap_or_default(),
            user_metadata: user_metadata(input.metadata),
            ..ObjectMeta::default()
        };
        let stream: ByteStream = match body {
            Some(b) => Box::pin(b),
            None => Box::pin(futures::stream::empty()),
        };
        let w = Write {
            bucket: &input.bucket,
            key: &input.key,
            size,
            meta,
            expect_md5,
            etag: None,
            backend: None,
            checksums: Some(checksums),
            cond: precondition(input.if_match.as_ref(), input.if_none_match.as_ref()),
        };
        let (meta, sums) = self.write_object(w, stream).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: etag_of(&meta),
            size: Some(size),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..PutObjectOutput::default()
        }))
    }

    /// If-Match / If-None-Match on writes, checked before any byte moves so a write that
    /// cannot win fails fast; the decision that counts is the store's, in the commit.
    async fn check_write_conditions(
        &self,
        lkey: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<()> {
        let current = match self.ledger.copies(lkey).await {
            Ok(c) => Some(found_of(c)),
            Err(StoreError::ObjectNotFound { .. }) => None,
            Err(e) => return Err(write_err(e)),
        };
        if let Some(c) = if_none_match
            && let Some(cur) = &current
        {
            let hit = match c {
                ETagCondition::Any => true,
                ETagCondition::ETag(t) => t.value() == cur.meta.etag,
            };
            if hit {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        if let Some(c) = if_match {
            let ok = match (&current, c) {
                (None, _) => false,
                (Some(_), ETagCondition::Any) => true,
                (Some(cur), ETagCondition::ETag(t)) => t.value() == cur.meta.etag,
            };
            if !ok {
                return Err(if current.is_none() {
                    s3_error!(NoSuchKey)
                } else {
                    s3_error!(PreconditionFailed)
                });
            }
        }
        Ok(())
    }

    async fn do_get(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        self.bucket(&i.bucket)?;
        let (found, range, stream) = self
            .read_version(&i.bucket, &i.key, |found| {
                check_preconditions(
                    &found.meta,
                    found.last_modified,
                    i.if_match.as_ref(),
                    i.if_none_match.as_ref(),
                    i.if_modified_since.as_ref(),
                    i.if_unmodified_since.as_ref(),
                )?;
                let size = u64::try_from(found.size).unwrap_or(0);
                let range = resolve_range(i.range.as_ref(), size)?;
                Ok((range, range))
            })
            .await?;
        let size = u64::try_from(found.size).unwrap_or(0);
        let (len, content_range) = match range {
            Some((s, e)) => (e - s, Some(content_range(s, e, size))),
            None => (size, None),
        };
        let blob = StreamingBlob::wrap(sync_wrapper::SyncStream::new(
            stream.map_err(std::io::Error::other),
        ));
        Ok(S3Response::new(GetObjectOutput {
            body: Some(blob),
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            content_type: Some(served_content_type(&found.meta.content_type)),
            e_tag: etag_of(&found.meta),
            last_modified: Some(to_s3_time(found.last_modified)),
            metadata: metadata_of(&found.meta),
            ..GetObjectOutput::default()
        }))
    }

    async fn do_head(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        self.bucket(&i.bucket)?;
        // Answered from the ledger alone: no backend call.
        let found = self.lookup(&i.bucket, &i.key).await?;
        check_preconditions(
            &found.meta,
            found.last_modified,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let size = u64::try_from(found.size).unwrap_or(0);
        let range = resolve_range(i.range.as_ref(), size)?;
        let (len, content_range) = match range {
            Some((s, e)) => (e - s, Some(content_range(s, e, size))),
            None => (size, None),
        };
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            content_type: Some(served_content_type(&found.meta.content_type)),
            e_tag: etag_of(&found.meta),
            last_modified: Some(to_s3_time(found.last_modified)),
            metadata: metadata_of(&found.meta),
            ..HeadObjectOutput::default()
        }))
    }

    async fn delete_key(&self, bucket: &str, key: &str) -> S3Result<()> {
        let displaced = self
            .ledger
            .delete(&keys::ledger_key(bucket, key))
            .await
            .map_err(write_err)?;
        self.remove_displaced(displaced, "deleted").await;
        Ok(())
    }

    async fn do_list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
        after: &str,
        max_keys: Option<i32>,
    ) -> S3Result<crate::ledger::Listing> {
        self.bucket(bucket)?;
        let max = max_keys.unwrap_or(MAX_LIST_KEYS).clamp(0, MAX_LIST_KEYS);
        if max == 0 {
            return Ok(crate::ledger::Listing::default());
        }
        self.ledger
            .list(
                &keys::bucket_prefix(bucket),
                prefix,
                delimiter,
                after,
                i64::from(max),
            )
            .await
            .map_err(read_err)
    }

    async fn upload_for(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<s3o_store::MultipartUpload> {
        self.bucket(bucket)?;
        let up = self.ledger.upload(upload_id).await.map_err(write_err)?;
        // An upload id only works for the key it was created for.
        if up.object_key != keys::ledger_key(bucket, key) {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(up)
    }

    /// Deletes every stored part object of an upload (best effort).
    async fn delete_parts(&self, backend: &str, upload_id: &str) {
        let Some(b) = self.backends.get(backend) else {
            return;
        };
        let dir = keys::path(&keys::upload_dir(upload_id));
        let listed: Vec<_> = b.store.list(Some(&dir)).collect().await;
        for o in listed.into_iter().flatten() {
            if let Err(e) = b.store.delete(&o.location).await {
                tracing::warn!(backend = %backend, path = %o.location, error = %e, "could not delete a part");
            }
        }
    }
}

/// The Content-Type a GET/HEAD answers: the stored one, or S3's default for objects
/// stored without one.
fn served_content_type(stored: &str) -> String {
    if stored.is_empty() {
        "binary/octet-stream".to_owned()
    } else {
        stored.to_owned()
    }
}

fn found_of(copies: Vec<Copy>) -> Found {
    // Copies of one key are the same version (replicas); the first holds the metadata.
    let first = copies[0].clone();
    Found {
        size: first.size,
        last_modified: first.last_modified,
        meta: first.meta,
        backends: copies.into_iter().map(|c| c.backend).collect(),
    }
}

/// The S3 answer for a failed request body: s3s's own error (signature, checksum, length)
/// when it is one, else IncompleteBody.
fn body_error(e: s3s::StdError) -> S3Error {
    match e.downcast::<S3Error>() {
        Ok(s3) => *s3,
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("mismatch") || msg.contains("Mismatch") {
                s3_error!(BadDigest, "{msg}")
            } else {
                s3_error!(IncompleteBody, "{msg}")
            }
        }
    }
}

/// Appends the ledger's series (quota counters, cleanup depths) to a metrics page.
pub(crate) async fn render_store_metrics(ledger: &Ledger, out: &mut String) {
    use std::fmt::Write as _;
    if let Ok(stats) = ledger.quota_stats().await {
        out.push_str("# TYPE s3o_quota_bytes_used gauge\n");
        for (n, s) in &stats {
            let _ = writeln!(
                out,
                "s3o_quota_bytes_used{{backend=\"{n}\"}} {}",
                s.bytes_used
            );
        }
        out.push_str("# TYPE s3o_quota_bytes_limit gauge\n");
        for (n, s) in &stats {
            let _ = writeln!(
                out,
                "s3o_quota_bytes_limit{{backend=\"{n}\"}} {}",
                s.bytes_limit
            );
        }
        out.push_str("# TYPE s3o_quota_orphan_bytes gauge\n");
        for (n, s) in &stats {
            let _ = writeln!(
                out,
                "s3o_quota_orphan_bytes{{backend=\"{n}\"}} {}",
                s.orphan_bytes
            );
        }
    }
    let up = match ledger.cleanup_depths().await {
        // Reading the depths set the store's own gauges, rendered with its other series.
        Ok(_) if crate::store_metrics::installed() => 1,
        Ok((q, d)) => {
            let _ = writeln!(
                out,
                "# TYPE s3o_cleanup_queue_depth gauge\ns3o_cleanup_queue_depth {q}"
            );
            let _ = writeln!(
                out,
                "# TYPE s3o_cleanup_dlq_depth gauge\ns3o_cleanup_dlq_depth {d}"
            );
            1
        }
        Err(_) => 0,
    };
    let _ = writeln!(out, "# TYPE s3o_ledger_up gauge\ns3o_ledger_up {up}");
}

macro_rules! timed {
    ($self:ident, $op:literal, $body:expr) => {{
        let started = Instant::now();
        let r = $body;
        $self.observe($op, &r, started);
        r
    }};
}

#[async_trait::async_trait]
impl S3 for GatewayS3 {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .buckets
            .iter()
            .map(|b| Bucket {
                name: Some(b.clone()),
                bucket_region: Some(self.region.clone()),
                ..Bucket::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..ListBucketsOutput::default()
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..HeadBucketOutput::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.input.bucket)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        timed!(self, "CreateBucket", {
            let b = &req.input.bucket;
            if self.buckets.contains(b) {
                // Buckets are virtual and come from the configuration: creating a configured
                // one succeeds (as S3 answers its owner in us-east-1).
                Ok(S3Response::new(CreateBucketOutput::default()))
            } else {
                Err(s3_error!(
                    AccessDenied,
                    "bucket {b} is not in the gateway configuration; buckets are added there"
                ))
            }
        })
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        timed!(self, "DeleteBucket", {
            let b = &req.input.bucket;
            match self.do_list(b, "", "", "", Some(1)).await {
                Err(e) => Err(e),
                Ok(l) if !l.objects.is_empty() => {
                    Err(s3_error!(BucketNotEmpty, "bucket {b} holds objects"))
                }
                // The virtual bucket stays configured; deleting an empty one is a no-op.
                Ok(_) => Ok(S3Response::new(DeleteBucketOutput::default())),
            }
        })
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        timed!(self, "PutObject", self.do_put(req).await)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        timed!(self, "GetObject", self.do_get(req).await)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        timed!(self, "HeadObject", self.do_head(req).await)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        timed!(self, "DeleteObject", {
            let i = &req.input;
            match self.bucket(&i.bucket) {
                Err(e) => Err(e),
                // Absent keys answer 204 too, as S3 does.
                Ok(()) => self
                    .delete_key(&i.bucket, &i.key)
                    .await
                    .map(|()| S3Response::new(DeleteObjectOutput::default())),
            }
        })
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        timed!(self, "DeleteObjects", {
            let i = req.input;
            let check = self.bucket(&i.bucket).and_then(|()| {
                if i.delete.objects.len() > MAX_DELETE_KEYS {
                    Err(s3_error!(
                        MalformedXML,
                        "at most {MAX_DELETE_KEYS} keys per request"
                    ))
                } else {
                    Ok(())
                }
            });
            match check {
                Err(e) => Err(e),
                Ok(()) => {
                    let quiet = i.delete.quiet.unwrap_or(false);
                    let mut deleted = Vec::new();
                    let mut errors = Vec::new();
                    let lkeys: Vec<String> = i
                        .delete
                        .objects
                        .iter()
                        .map(|o| keys::ledger_key(&i.bucket, &o.key))
                        .collect();
                    // One ledger transaction for the whole batch; the bytes go afterwards.
                    match self.ledger.delete_many(&lkeys).await {
                        Ok(map) => {
                            let bytes: Vec<Displaced> = map.into_values().flatten().collect();
                            self.remove_displaced(bytes, "deleted").await;
                            if !quiet {
                                deleted = i
                                    .delete
                                    .objects
                                    .iter()
                                    .map(|o| DeletedObject {
                                        key: Some(o.key.clone()),
                                        ..DeletedObject::default()
                                    })
                                    .collect();
                            }
                        }
                        Err(e) => {
                            let e = write_err(e);
                            errors = i
                                .delete
                                .objects
                                .iter()
                                .map(|o| Error {
                                    code: Some(e.code().as_str().to_owned()),
                                    key: Some(o.key.clone()),
                                    message: e.message().map(str::to_owned),
                                    ..Error::default()
                                })
                                .collect();
                        }
                    }
                    Ok(S3Response::new(DeleteObjectsOutput {
                        deleted: Some(deleted),
                        errors: (!errors.is_empty()).then_some(errors),
                        ..DeleteObjectsOutput::default()
                    }))
                }
            }
        })
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        timed!(self, "ListObjectsV2", {
            let i = req.input;
            let prefix = i.prefix.clone().unwrap_or_default();
            let delimiter = i.delimiter.clone().unwrap_or_default();
            let url = i
                .encoding_type
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL);
            let after = match &i.continuation_token {
                Some(t) => decode_token(t).map(Some),
                None => Ok(None),
            };
            match after {
                Err(e) => Err(e),
                Ok(token_after) => {
                    let start_after = i.start_after.clone().unwrap_or_default();
                    let after = match token_after {
                        Some(t) if t > start_after => t,
                        _ => start_after,
                    };
                    self.do_list(&i.bucket, &prefix, &delimiter, &after, i.max_keys)
                        .await
                        .map(|l| {
                            let enc = |s: String| if url { url_encode(&s) } else { s };
                            let contents: Vec<Object> = l
                                .objects
                                .into_iter()
                                .map(|(k, c)| object_entry(enc(k), &c))
                                .collect();
                            let prefixes: Vec<CommonPrefix> = l
                                .common_prefixes
                                .into_iter()
                                .map(|p| CommonPrefix {
                                    prefix: Some(enc(p)),
                                })
                                .collect();
                            let count = contents.len() + prefixes.len();
                            S3Response::new(ListObjectsV2Output {
                                name: Some(i.bucket.clone()),
                                prefix: Some(enc(prefix)),
                                delimiter: (!delimiter.is_empty()).then(|| enc(delimiter)),
                                max_keys: Some(i.max_keys.unwrap_or(MAX_LIST_KEYS)),
                                key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
                                continuation_token: i.continuation_token.clone(),
                                start_after: i.start_after.clone().map(enc),
                                is_truncated: Some(l.is_truncated),
                                next_continuation_token: l
                                    .is_truncated
                                    .then(|| encode_token(&l.next_after)),
                                contents: Some(contents),
                                common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
                                encoding_type: i.encoding_type.clone(),
                                ..ListObjectsV2Output::default()
                            })
                        })
                }
            }
        })
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        timed!(self, "ListObjects", {
            let i = req.input;
            let prefix = i.prefix.clone().unwrap_or_default();
            let delimiter = i.delimiter.clone().unwrap_or_default();
            let marker = i.marker.clone().unwrap_or_default();
            let url = i
                .encoding_type
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL);
            self.do_list(&i.bucket, &prefix, &delimiter, &marker, i.max_keys)
                .await
                .map(|l| {
                    let enc = |s: String| if url { url_encode(&s) } else { s };
                    let contents: Vec<Object> = l
                        .objects
                        .into_iter()
                        .map(|(k, c)| object_entry(enc(k), &c))
                        .collect();
                    let prefixes: Vec<CommonPrefix> = l
                        .common_prefixes
                        .into_iter()
                        .map(|p| CommonPrefix {
                            prefix: Some(enc(p)),
                        })
                        .collect();
                    S3Response::new(ListObjectsOutput {
                        name: Some(i.bucket.clone()),
                        prefix: Some(enc(prefix)),
                        marker: Some(enc(marker)),
                        delimiter: (!delimiter.is_empty()).then(|| enc(delimiter)),
                        max_keys: Some(i.max_keys.unwrap_or(MAX_LIST_KEYS)),
                        is_truncated: Some(l.is_truncated),
                        next_marker: l.is_truncated.then(|| enc(l.next_after)),
                        contents: Some(contents),
                        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
                        encoding_type: i.encoding_type.clone(),
                        ..ListObjectsOutput::default()
                    })
                })
        })
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        timed!(self, "CopyObject", self.do_copy(req).await)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        timed!(self, "CreateMultipartUpload", self.do_create_mpu(req).await)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        timed!(self, "UploadPart", self.do_upload_part(req).await)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        timed!(self, "CompleteMultipartUpload", self.do_complete(req).await)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        timed!(self, "AbortMultipartUpload", {
            let i = &req.input;
            match self.upload_for(&i.bucket, &i.key, &i.upload_id).await {
                Err(e) => Err(e),
                Ok(up) => {
                    self.delete_parts(&up.backend_name, &up.upload_id).await;
                    self.ledger
                        .delete_upload(&up.upload_id)
                        .await
                        .map_err(write_err)
                        .map(|()| S3Response::new(AbortMultipartUploadOutput::default()))
                }
            }
        })
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        timed!(self, "ListParts", self.do_list_parts(req).await)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        timed!(
            self,
            "ListMultipartUploads",
            self.do_list_uploads(req).await
        )
    }
}

fn object_entry(key: String, c: &Copy) -> Object {
    Object {
        key: Some(key),
        size: Some(c.size),
        e_tag: etag_of(&c.meta),
        last_modified: Some(to_s3_time(c.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Object::default()
    }
}

impl GatewayS3 {
    async fn do_copy(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        self.bucket(&i.bucket)?;
        let (src_bucket, src_key) = match &i.copy_source {
            CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "access point copy sources are not supported"
                ));
            }
        };
        self.bucket(&src_bucket)?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if src_bucket == i.bucket && src_key == i.key && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
            ));
        }
        let (found, (), stream) = self
            .read_version(&src_bucket, &src_key, |found| {
                check_preconditions(
                    &found.meta,
                    found.last_modified,
                    i.copy_source_if_match.as_ref(),
                    i.copy_source_if_none_match.as_ref(),
                    i.copy_source_if_modified_since.as_ref(),
                    i.copy_source_if_unmodified_since.as_ref(),
                )
                .map_err(|e| {
                    // A failed copy-source condition is 412 whatever the header.
                    if *e.code() == S3ErrorCode::NotModified {
                        s3_error!(PreconditionFailed)
                    } else {
                        e
                    }
                })?;
                Ok(((), None))
            })
            .await?;
        let meta = if replace {
            ObjectMeta {
                content_type: i.content_type.clone().unwrap_or_default(),
                user_metadata: user_metadata(i.metadata.clone()),
                ..ObjectMeta::default()
            }
        } else {
            ObjectMeta {
                content_type: found.meta.content_type.clone(),
                user_metadata: found.meta.user_metadata.clone(),
                ..ObjectMeta::default()
            }
        };
        // A copy keeps the source's ETag when it had one (same bytes).
        let keep = (!found.meta.etag.is_empty()).then(|| found.meta.etag.clone());
        let expect = keep.as_deref().and_then(body::etag_md5);
        let lkey = keys::ledger_key(&i.bucket, &i.key);
        let w = Write {
            bucket: &i.bucket,
            key: &i.key,
            size: found.size,
            meta,
            expect_md5: expect,
            etag: keep,
            backend: None,
            checksums: None,
            cond: WritePrecondition::default(),
        };
        let (meta, _) = self.write_object(w, stream).await?;
        let copied = self.ledger.copies(&lkey).await.ok().map(found_of);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: etag_of(&meta),
                last_modified: Some(to_s3_time(
                    copied.map_or_else(Timestamp::now, |c| c.last_modified),
                )),
                ..CopyObjectResult::default()
            }),
            ..CopyObjectOutput::default()
        }))
    }

    async fn do_create_mpu(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        self.bucket(&i.bucket)?;
        let lkey = keys::ledger_key(&i.bucket, &i.key);
        // Parts land on one backend chosen now (each part is admitted on its own).
        let backend = self
            .ledger
            .pick_backend_for_new_upload(self.backends.order())
            .await
            .map_err(write_err)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        self.ledger
            .create_upload(
                &upload_id,
                &lkey,
                &backend,
                i.content_type.as_deref().unwrap_or(""),
                &user_metadata(i.metadata),
            )
            .await
            .map_err(write_err)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload_id),
            ..CreateMultipartUploadOutput::default()
        }))
    }

    async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = req.input;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(InvalidArgument, "part number must be 1..=10000"));
        }
        let up = self.upload_for(&i.bucket, &i.key, &i.upload_id).await?;
        let size = i
            .content_length
            .ok_or_else(|| s3_error!(MissingContentLength))?;
        // Each part is admitted against the upload's backend quota, counting the parts already
        // there, before its bytes move.
        let _reservation = self
            .ledger
            .admit_part(size, &up.backend_name)
            .await
            .map_err(write_err)?;
        let backend = self.backend(&up.backend_name)?.clone();
        let expect = match &i.content_md5 {
            Some(h) => Some(body::content_md5(h).ok_or_else(|| s3_error!(InvalidDigest))?),
            None => None,
        };
        let part_key = keys::part_attempt_path(&up.upload_id, i.part_number);
        let path = keys::path(&part_key);
        let stream: ByteStream = match i.body {
            Some(b) => Box::pin(b),
            None => Box::pin(futures::stream::empty()),
        };
        let mut checksums = body::ChecksumRequest::new(
            i.checksum_algorithm.as_ref(),
            Checksum {
                checksum_crc32: i.checksum_crc32.clone(),
                checksum_crc32c: i.checksum_crc32c.clone(),
                checksum_sha1: i.checksum_sha1.clone(),
                checksum_sha256: i.checksum_sha256.clone(),
                checksum_crc64nvme: i.checksum_crc64nvme.clone(),
                ..Checksum::default()
            },
            req.trailing_headers,
            &req.headers,
        )?;
        let written = match body::upload(&backend, &path, stream, &mut checksums.hasher, None).await
        {
            Ok(u) => u,
            Err(UploadError::Body(e)) => return Err(body_error(e)),
            Err(UploadError::Backend(e)) => {
                tracing::warn!(backend = %backend.name, error = %e, "part upload failed");
                return Err(s3_error!(
                    InternalError,
                    "backend {} failed to store the part",
                    backend.name
                ));
            }
        };
        let verified = if i64::try_from(written.size).ok() != Some(size) {
            Err(s3_error!(
                IncompleteBody,
                "body length differs from Content-Length"
            ))
        } else if expect.is_some_and(|m| m != written.md5) {
            Err(s3_error!(BadDigest, "Content-MD5 does not match the body"))
        } else {
            checksums.verify()
        };
        let sums = match verified {
            Ok(s) => s,
            Err(e) => {
                // Bytes that failed verification are never recorded. They are this attempt's
                // own: a part accepted earlier under this number keeps its bytes.
                let _ = backend.store.delete(&path).await;
                return Err(e);
            }
        };
        let etag = written.etag();
        if let Err(e) = self
            .ledger
            .record_part(&up.upload_id, i.part_number, &etag, size, &part_key)
            .await
        {
            // Unrecorded (upload aborted meanwhile, ledger down): the attempt's bytes go; what
            // a delete misses lies under the upload's directory, swept with it.
            let _ = backend.store.delete(&path).await;
            return Err(write_err(e));
        }
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..UploadPartOutput::default()
        }))
    }

    async fn do_complete(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        self.bucket(&i.bucket)?;
        let lkey = keys::ledger_key(&i.bucket, &i.key);
        // A retry while the first Complete runs, or after it finished, gets its result.
        if let Some(outcome) = self.completions.get(&i.upload_id) {
            return Ok(complete_answer(i.bucket, i.key, lkey, outcome));
        }
        let asked = i
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.clone())
            .unwrap_or_default();
        let up = match self.upload_for(&i.bucket, &i.key, &i.upload_id).await {
            Ok(up) => up,
            Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => {
                // A retry after a success this process no longer remembers (restart): the
                // object the listed parts make is the key's current version ⇒ that answer.
                return match self.completed_before(&lkey, &asked).await {
                    Some(etag) => {
                        let done = Done {
                            ledger_key: lkey.clone(),
                            etag,
                        };
                        let outcome =
                            futures::FutureExt::shared(Box::pin(
                                async move { Ok::<_, Failed>(done) },
                            )
                                as futures::future::BoxFuture<'static, _>);
                        Ok(complete_answer(i.bucket, i.key, lkey, outcome))
                    }
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let recorded = self.ledger.parts(&up.upload_id).await.map_err(write_err)?;
        if asked.is_empty() {
            return Err(s3_error!(MalformedXML, "the part list is empty"));
        }
        let mut chosen = Vec::with_capacity(asked.len());
        let mut last = 0;
        for (n, p) in asked.iter().enumerate() {
            let num = p.part_number.unwrap_or(0);
            if num <= last {
                return Err(s3_error!(InvalidPartOrder));
            }
            last = num;
            let Some(r) = recorded.iter().find(|r| r.part_number == num) else {
                return Err(s3_error!(InvalidPart, "part {num} was not uploaded"));
            };
            if let Some(e) = &p.e_tag
                && e.value() != r.etag
            {
                return Err(s3_error!(InvalidPart, "part {num} has a different ETag"));
            }
            if n + 1 < asked.len() && r.size_bytes < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "part {num} is smaller than 5 MiB"
                ));
            }
            let md5 = body::etag_md5(&r.etag)
                .ok_or_else(|| s3_error!(InternalError, "part {num} has a malformed ETag"))?;
            let path = if r.storage_key.is_empty() {
                keys::part_path(&up.upload_id, num)
            } else {
                r.storage_key.clone()
            };
            chosen.push(PartRef {
                number: num,
                size: r.size_bytes,
                md5,
                path,
            });
        }
        let cond = precondition(i.if_match.as_ref(), i.if_none_match.as_ref());
        if !cond.is_empty() {
            self.check_write_conditions(&lkey, i.if_match.as_ref(), i.if_none_match.as_ref())
                .await?;
        }
        // The assembly runs in its own task: a client that hangs up does not cancel it, and
        // s3s keeps the connection alive (whitespace) until the answer is ready.
        let this = self.clone();
        let (bucket, key) = (i.bucket.to_string(), i.key.to_string());
        let work = async move {
            this.assemble(&bucket, &key, up, chosen, cond)
                .await
                .map_err(|e| Failed::from(&e))
        };
        let outcome = self.completions.start(&i.upload_id, Box::pin(work));
        Ok(complete_answer(i.bucket, i.key, lkey, outcome))
    }

    /// The ETag of the key's current version when it is the object `asked` (every part named
    /// with its ETag) assembles to: the multipart ETag is a digest of the part MD5s, so a match
    /// means a Complete of exactly these parts already committed.
    async fn completed_before(&self, lkey: &str, asked: &[CompletedPart]) -> Option<String> {
        let md5s: Option<Vec<[u8; 16]>> = asked
            .iter()
            .map(|p| p.e_tag.as_ref().and_then(|e| body::etag_md5(e.value())))
            .collect();
        let want = body::multipart_etag(&md5s.filter(|m| !m.is_empty())?);
        self.current_etag_is(lkey, &want).await.then_some(want)
    }

    /// Whether the current version of `lkey` carries `etag`.
    async fn current_etag_is(&self, lkey: &str, etag: &str) -> bool {
        self.ledger
            .copies(lkey)
            .await
            .is_ok_and(|c| c.first().is_some_and(|c| c.meta.etag == etag))
    }

    /// Writes the parts of `up` as one object (routed like any write when the upload's
    /// backend cannot hold it), then releases the upload: only a committed object ends it, so
    /// a failed Complete leaves the upload and its parts intact for a retry.
    async fn assemble(
        &self,
        bucket: &str,
        key: &str,
        up: s3o_store::MultipartUpload,
        parts: Vec<PartRef>,
        cond: WritePrecondition,
    ) -> S3Result<Done> {
        let size: i64 = parts.iter().map(|p| p.size).sum();
        let etag = body::multipart_etag(&parts.iter().map(|p| p.md5).collect::<Vec<_>>());
        let target = self
            .ledger
            .pick_backend_for_upload(size, &up.backend_name, self.backends.order())
            .await
            .map_err(write_err)?;
        let source = self.backend(&up.backend_name)?.clone();
        let stream = concat_parts(source, parts);
        let meta = ObjectMeta {
            content_type: up.content_type.clone(),
            user_metadata: up.metadata.clone(),
            ..ObjectMeta::default()
        };
        let w = Write {
            bucket,
            key,
            size,
            meta,
            expect_md5: None,
            etag: Some(etag.clone()),
            backend: Some(target),
            checksums: None,
            cond,
        };
        let (meta, _) = match self.write_object(w, stream).await {
            Ok(r) => r,
            Err(e) => {
                // A Complete that committed and was cut off while releasing its parts left the
                // upload row with parts gone: its retry finds the object already there.
                if self.current_etag_is(&up.object_key, &etag).await {
                    self.delete_parts(&up.backend_name, &up.upload_id).await;
                    if self.ledger.delete_upload(&up.upload_id).await.is_ok() {
                        return Ok(Done {
                            ledger_key: up.object_key,
                            etag,
                        });
                    }
                }
                return Err(e);
            }
        };
        // Committed: the upload is over. Its part bytes go first and its row last, so a crash
        // in between leaves the row, and with it the multipart sweeper's way to every part
        // (the other order leaked the parts of a Complete killed after the row went). A retry
        // is answered from memory, or from the ledger once the parts are gone.
        self.delete_parts(&up.backend_name, &up.upload_id).await;
        if let Err(e) = self.ledger.delete_upload(&up.upload_id).await {
            tracing::warn!(upload = %up.upload_id, error = %e, "could not release a completed upload; the sweeper will");
        }
        Ok(Done {
            ledger_key: up.object_key,
            etag: meta.etag,
        })
    }

    async fn do_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        let up = self.upload_for(&i.bucket, &i.key, &i.upload_id).await?;
        let marker = i.part_number_marker.unwrap_or(0);
        let max = i.max_parts.unwrap_or(1000).clamp(1, 1000);
        let all = self.ledger.parts(&up.upload_id).await.map_err(write_err)?;
        let after: Vec<_> = all.into_iter().filter(|p| p.part_number > marker).collect();
        let truncated = after.len() > max as usize;
        let page: Vec<_> = after.into_iter().take(max as usize).collect();
        let next = page.last().map(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(up.upload_id),
            part_number_marker: Some(marker),
            max_parts: Some(max),
            is_truncated: Some(truncated),
            next_part_number_marker: if truncated { next } else { None },
            parts: Some(
                page.into_iter()
                    .map(|p| Part {
                        part_number: Some(p.part_number),
                        size: Some(p.size_bytes),
                        e_tag: Some(ETag::Strong(p.etag)),
                        last_modified: Some(to_s3_time(p.created_at)),
                        ..Part::default()
                    })
                    .collect(),
            ),
            ..ListPartsOutput::default()
        }))
    }

    async fn do_list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        self.bucket(&i.bucket)?;
        let bp = keys::bucket_prefix(&i.bucket);
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = i.max_uploads.unwrap_or(1000).clamp(1, 1000);
        let key_marker = i.key_marker.clone().unwrap_or_default();
        let ups = self
            .ledger
            .uploads(&format!("{bp}{prefix}"), 10_000)
            .await
            .map_err(read_err)?;
        let mut page = Vec::new();
        let mut truncated = false;
        for u in ups {
            let k = u
                .object_key
                .strip_prefix(&bp)
                .unwrap_or(&u.object_key)
                .to_owned();
            if !key_marker.is_empty() && k.as_str() <= key_marker.as_str() {
                continue;
            }
            if page.len() == max as usize {
                truncated = true;
                break;
            }
            page.push(MultipartUpload {
                key: Some(k),
                upload_id: Some(u.upload_id),
                initiated: Some(to_s3_time(u.created_at)),
                ..MultipartUpload::default()
            });
        }
        let next_key = if truncated {
            page.last().and_then(|u| u.key.clone())
        } else {
            None
        };
        let next_id = if truncated {
            page.last().and_then(|u| u.upload_id.clone())
        } else {
            None
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            key_marker: i.key_marker,
            max_uploads: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            uploads: Some(page),
            ..ListMultipartUploadsOutput::default()
        }))
    }
}

/// One part chosen for assembly.
struct PartRef {
    number: i32,
    size: i64,
    md5: [u8; 16],
    /// Backend path of its bytes.
    path: String,
}

/// The answer to a Complete whose assembly `outcome` is running or done: s3s sends it when it
/// resolves, keeping the connection alive meanwhile. An outcome of another key (an upload id
/// reused with another key) answers `NoSuchUpload`.
fn complete_answer(
    bucket: BucketName,
    key: ObjectKey,
    ledger_key: String,
    outcome: crate::completions::Outcome,
) -> S3Response<CompleteMultipartUploadOutput> {
    let answer = async move {
        let done = outcome.await.map_err(S3Error::from)?;
        if done.ledger_key != ledger_key {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(CompleteMultipartUploadOutput {
            bucket: Some(bucket),
            key: Some(key),
            e_tag: (!done.etag.is_empty()).then_some(ETag::Strong(done.etag)),
            ..CompleteMultipartUploadOutput::default()
        })
    };
    S3Response::new(CompleteMultipartUploadOutput {
        future: Some(Box::pin(answer)),
        ..CompleteMultipartUploadOutput::default()
    })
}

/// The parts of an upload read back in order as one stream; each part's bytes are checked
/// against its recorded MD5, so a part replaced under a concurrent Complete fails the whole
/// assembly instead of committing mixed bytes.
fn concat_parts(backend: Arc<Backend>, parts: Vec<PartRef>) -> ByteStream {
    let s = futures::stream::iter(parts).then(move |part| {
        let backend = backend.clone();
        let path = keys::path(&part.path);
        let (num, md5) = (part.number, part.md5);
        async move {
            let r = backend
                .store
                .get(&path)
                .await
                .map_err(|e| Box::new(e) as s3s::StdError)?;
            let hasher = std::sync::Arc::new(std::sync::Mutex::new(Some(md5::Md5::default())));
            let h2 = hasher.clone();
            let inner = r.into_stream().map_err(|e| Box::new(e) as s3s::StdError);
            let checked = inner
                .map(move |item| {
                    if let Ok(b) = &item
                        && let Some(h) = h2.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
                    {
                        md5::Digest::update(h, b);
                    }
                    item
                })
                .chain(futures::stream::once(async move {
                    let h = hasher.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let got = h.map(|h| {
                        let mut out = [0u8; 16];
                        out.copy_from_slice(&md5::Digest::finalize(h));
                        out
                    });
                    if got == Some(md5) {
                        Ok(Bytes::new())
                    } else {
                        Err(Box::new(s3_error!(
                            InvalidPart,
                            "part {num} changed during completion"
                        )) as s3s::StdError)
                    }
                }));
            Ok::<_, s3s::StdError>(checked)
        }
    });
    Box::pin(s.try_flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        for k in ["", "a b", "dir/é+%"] {
            assert_eq!(decode_token(&encode_token(k)).unwrap(), k);
        }
        assert!(decode_token("!!!").is_err());
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        let r = Range::Int {
            first: 2,
            last: Some(5),
        };
        assert_eq!(resolve_range(Some(&r), 10).unwrap(), Some((2, 6)));
        let open = Range::Int {
            first: 7,
            last: None,
        };
        assert_eq!(resolve_range(Some(&open), 10).unwrap(), Some((7, 10)));
        let suffix = Range::Suffix { length: 3 };
        assert_eq!(resolve_range(Some(&suffix), 10).unwrap(), Some((7, 10)));
        let past = Range::Int {
            first: 10,
            last: None,
        };
        assert!(resolve_range(Some(&past), 10).is_err());
        assert_eq!(resolve_range(None, 10).unwrap(), None);
        assert_eq!(content_range(2, 6, 10), "bytes 2-5/10");
    }

    #[test]
    fn preconditions_follow_rfc_order() {
        let meta = ObjectMeta {
            etag: "abc".into(),
            ..ObjectMeta::default()
        };
        let lm = Timestamp::from_micros(1_700_000_000_500_000);
        let same = ETagCondition::ETag(ETag::Strong("abc".into()));
        let other = ETagCondition::ETag(ETag::Strong("zzz".into()));
        assert!(check_preconditions(&meta, lm, Some(&same), None, None, None).is_ok());
        let e = check_preconditions(&meta, lm, Some(&other), None, None, None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::PreconditionFailed);
        let e = check_preconditions(&meta, lm, None, Some(&same), None, None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::NotModified);
        assert!(check_preconditions(&meta, lm, None, Some(&other), None, None).is_ok());
        let at = s3s::dto::Timestamp::from(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        );
        // Same second as Last-Modified: not modified since.
        let e = check_preconditions(&meta, lm, None, None, Some(&at), None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::NotModified);
        assert!(check_preconditions(&meta, lm, None, None, None, Some(&at)).is_ok());
        let before = s3s::dto::Timestamp::from(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000),
        );
        let e = check_preconditions(&meta, lm, None, None, None, Some(&before)).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::PreconditionFailed);
    }
}
