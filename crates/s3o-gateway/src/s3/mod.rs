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
use s3o_store::{Access, ObjectAttributes, StoreError, Timestamp, WritePrecondition, s3_error_for};
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

/// How often a write that is still streaming refreshes its intent, at most. The reaper's
/// `min_age` should be a few times longer (its default, 5 minutes, is).
pub(crate) const INTENT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// The heartbeat of running writes and copies under a reaper that abandons intents older than
/// `min_age`: a third of it, between 100 ms and [`INTENT_HEARTBEAT`], so that a live write is
/// refreshed a few times within any `min_age` this gateway is configured with.
pub(crate) fn intent_heartbeat(min_age: std::time::Duration) -> std::time::Duration {
    (min_age / 3).clamp(std::time::Duration::from_millis(100), INTENT_HEARTBEAT)
}

/// The gateway's S3 implementation (cheap to clone: a Complete's assembly task holds one).
#[derive(Clone)]
pub(crate) struct GatewayS3 {
    ledger: Arc<Ledger>,
    backends: Arc<Backends>,
    buckets: Arc<BucketCache>,
    /// Whether CreateBucket is served (`allow_create_bucket`).
    allow_create_bucket: bool,
    region: String,
    metrics: Arc<Metrics>,
    completions: Completions,
    /// See [`intent_heartbeat`].
    heartbeat: std::time::Duration,
    /// Encryption at rest (`[encryption]`); `None`: nothing is sealed or opened.
    crypto: Option<Arc<crate::crypto::gateway::Crypto>>,
    /// The one owner answers name (see [`acl`]).
    owner: Arc<acl::OwnerId>,
    /// Bodies of small objects by storage path (`[server] read_cache_bytes`).
    read_cache: Option<Arc<crate::read_cache::ReadCache>>,
}

mod acl;
mod bucket;
mod checksum;
mod copy;
mod cors;
mod delete;
pub(crate) mod edge;
pub(crate) mod framing;
mod get;
mod lifecycle;
mod list;
mod multipart;
pub(crate) mod post;
mod put;
mod tagging;
mod versioning;

// The families share their helpers through this module (each starts with `use super::*`).
pub(crate) use self::acl::Anonymous;
use self::bucket::BucketCache;
pub(crate) use self::cors::{ask as cors_ask, decorate as cors_decorate, preflight};
use self::get::*;
use self::put::*;

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

/// The S3 answer of one of the store's error mappings (its status, code and message).
fn mapped_error(m: &s3o_store::S3Error) -> S3Error {
    let code = S3ErrorCode::from_bytes(m.code.as_bytes()).unwrap_or(S3ErrorCode::InternalError);
    let mut err = S3Error::with_message(code, m.message);
    if let Ok(status) = hyper::StatusCode::from_u16(m.status) {
        err.set_status_code(status);
    }
    err
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

/// The `x-amz-meta-*` a GET/HEAD answers: the stored user metadata without the gateway's
/// reserved entries ([`multipart::PART_SIZES_KEY`]).
fn metadata_of(meta: &ObjectMeta) -> Option<Metadata> {
    let m = meta
        .user_metadata
        .iter()
        .filter(|(k, _)| k.as_str() != multipart::PART_SIZES_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<HashMap<_, _>>();
    (!m.is_empty()).then_some(m)
}

/// The user metadata a request sends, by lower-case name; a reserved name (possible only as
/// a form field of a POST upload) is dropped.
fn user_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| k.as_str() != multipart::PART_SIZES_KEY)
        .collect()
}

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, s3s::StdError>> + Send>>;

/// A readable version found by a lookup (ledger or broadcast).
struct Found {
    size: i64,
    last_modified: Timestamp,
    meta: ObjectMeta,
    /// Backends holding it, in preference order.
    backends: Vec<String>,
}

impl GatewayS3 {
    /// The S3 face over `ledger` and `backends`; `configured` are the configuration's
    /// buckets (already synced into the ledger), assumed to exist while the ledger is down.
    pub(crate) fn new(
        ledger: Arc<Ledger>,
        backends: Arc<Backends>,
        configured: BTreeSet<String>,
        allow_create_bucket: bool,
        region: String,
        metrics: Arc<Metrics>,
        heartbeat: std::time::Duration,
    ) -> Self {
        GatewayS3 {
            ledger,
            backends,
            buckets: Arc::new(BucketCache::new(configured)),
            allow_create_bucket,
            region,
            metrics,
            completions: Completions::default(),
            heartbeat,
            crypto: None,
            owner: Arc::new(acl::OwnerId::default()),
            read_cache: None,
        }
    }

    /// Answers GETs of small objects from `cache` when it holds their bytes.
    pub(crate) fn with_read_cache(
        mut self,
        cache: Option<Arc<crate::read_cache::ReadCache>>,
    ) -> Self {
        self.read_cache = cache;
        self
    }

    /// Seals new objects and opens sealed ones with `crypto`.
    pub(crate) fn with_crypto(
        mut self,
        crypto: Option<Arc<crate::crypto::gateway::Crypto>>,
    ) -> Self {
        self.crypto = crypto;
        self
    }

    /// The owner S3 answers name (`[owner]`).
    pub(crate) fn with_owner(mut self, id: String, display_name: String) -> Self {
        self.owner = Arc::new(acl::OwnerId { id, display_name });
        self
    }

    fn observe<T>(&self, op: &'static str, r: &S3Result<T>, started: Instant) {
        self.metrics.record(op, http_status(r), started.elapsed());
    }

    /// The backends a new write may go to, in routing order: those within their monthly
    /// usage budgets. None left ⇒ 507 `InsufficientStorage`.
    fn write_candidates(&self) -> S3Result<Vec<String>> {
        let ok = self.backends.writable();
        if ok.is_empty() {
            return Err(mapped_error(&s3o_store::S3Error::INSUFFICIENT_STORAGE));
        }
        Ok(ok)
    }

    fn backend(&self, name: &str) -> S3Result<&Arc<Backend>> {
        self.backends
            .get(name)
            .ok_or_else(|| s3_error!(InternalError, "backend {name} is not configured"))
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
    render_version_metrics(ledger, out).await;
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

/// Versioning's share of the ledger: noncurrent copies and bytes per backend (every
/// registered backend, 0 when it holds none) and delete markers.
async fn render_version_metrics(ledger: &Ledger, out: &mut String) {
    use std::fmt::Write as _;
    let (Ok(stats), Ok(v)) = (
        ledger.quota_stats().await,
        ledger.store().get_version_stats().await,
    ) else {
        return;
    };
    let of = |b: &str| v.noncurrent.get(b).copied().unwrap_or_default();
    out.push_str("# TYPE s3o_noncurrent_versions gauge\n");
    for n in stats.keys() {
        let _ = writeln!(
            out,
            "s3o_noncurrent_versions{{backend=\"{n}\"}} {}",
            of(n).copies
        );
    }
    out.push_str("# TYPE s3o_noncurrent_bytes gauge\n");
    for n in stats.keys() {
        let _ = writeln!(
            out,
            "s3o_noncurrent_bytes{{backend=\"{n}\"}} {}",
            of(n).bytes
        );
    }
    let _ = writeln!(
        out,
        "# TYPE s3o_delete_markers gauge\ns3o_delete_markers {}",
        v.delete_markers
    );
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
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.do_list_buckets(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.do_head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.do_get_bucket_location(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        timed!(self, "CreateBucket", self.do_create_bucket(req).await)
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        timed!(self, "DeleteBucket", self.do_delete_bucket(req).await)
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        timed!(
            self,
            "PutBucketVersioning",
            self.do_put_bucket_versioning(req).await
        )
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        timed!(
            self,
            "GetBucketVersioning",
            self.do_get_bucket_versioning(req).await
        )
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        timed!(
            self,
            "PutBucketLifecycleConfiguration",
            self.do_put_lifecycle(req).await
        )
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        timed!(
            self,
            "GetBucketLifecycleConfiguration",
            self.do_get_lifecycle(req).await
        )
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        timed!(
            self,
            "DeleteBucketLifecycle",
            self.do_delete_lifecycle(req).await
        )
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        timed!(self, "GetBucketAcl", self.do_get_bucket_acl(req).await)
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        timed!(self, "PutBucketAcl", self.do_put_bucket_acl(req).await)
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        timed!(self, "GetObjectAcl", self.do_get_object_acl(req).await)
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        timed!(self, "PutObjectAcl", self.do_put_object_acl(req).await)
    }

    async fn get_object_torrent(
        &self,
        req: S3Request<GetObjectTorrentInput>,
    ) -> S3Result<S3Response<GetObjectTorrentOutput>> {
        timed!(
            self,
            "GetObjectTorrent",
            self.do_get_object_torrent(req).await
        )
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        timed!(self, "PutBucketCors", self.do_put_bucket_cors(req).await)
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        timed!(self, "GetBucketCors", self.do_get_bucket_cors(req).await)
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        timed!(
            self,
            "DeleteBucketCors",
            self.do_delete_bucket_cors(req).await
        )
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        // A POST Object form arrives here too (s3s's `post_object`): its policy's expiration
        // text is checked first.
        if let Some(form) = req.extensions.get::<post::FormHead>() {
            form.check_expiration()?;
        }
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
        timed!(self, "DeleteObject", self.do_delete_object(req).await)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        timed!(self, "DeleteObjects", self.do_delete_objects(req).await)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        timed!(self, "ListObjectsV2", self.do_list_objects_v2(req).await)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        timed!(self, "ListObjects", self.do_list_objects(req).await)
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        timed!(
            self,
            "ListObjectVersions",
            self.do_list_object_versions(req).await
        )
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

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        timed!(self, "UploadPartCopy", self.do_upload_part_copy(req).await)
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
        timed!(
            self,
            "AbortMultipartUpload",
            self.do_abort_multipart_upload(req).await
        )
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

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        timed!(
            self,
            "PutBucketTagging",
            self.do_put_bucket_tagging(req).await
        )
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        timed!(
            self,
            "GetBucketTagging",
            self.do_get_bucket_tagging(req).await
        )
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        timed!(
            self,
            "DeleteBucketTagging",
            self.do_delete_bucket_tagging(req).await
        )
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        timed!(
            self,
            "PutObjectTagging",
            self.do_put_object_tagging(req).await
        )
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        timed!(
            self,
            "GetObjectTagging",
            self.do_get_object_tagging(req).await
        )
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        timed!(
            self,
            "DeleteObjectTagging",
            self.do_delete_object_tagging(req).await
        )
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        timed!(
            self,
            "GetObjectAttributes",
            self.do_get_object_attributes(req).await
        )
    }
}

#[cfg(test)]
mod tests {
    use super::list::{decode_token, encode_token, url_encode};
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
