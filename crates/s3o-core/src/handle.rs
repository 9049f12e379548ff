//! The consumer handle: [`MetadataStore`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{BreakerState, BreakerStats};
use crate::engine::{Engine, EngineOps, SchemaVersion};
use crate::error::Result;
use crate::locks::LockId;
use crate::types::*;
use crate::versioning::{Committed, DeleteOutcome, ObjectVersion, VersionListing, Versioning};

/// The metadata store: the one handle consumers hold.
///
/// Cheap to clone (clones share the engine: its connections, breaker and leader locks) and
/// `Send + Sync`; every method returns a `Send` future. Open one with `s3o_store::open` (or an
/// engine crate's `open`/`open_with`).
///
/// The methods are grouped below by the roles of the original design (buckets, objects, reads, quotas,
/// multipart, replication, cleanup, pending intents, integrity, usage, notifications,
/// dashboard, backend lifecycle, encryption, schema, leader locks). Multi-statement operations
/// are written once in [`crate::ops`] and run in one transaction each; nothing here opens a raw
/// transaction or reaches a single-statement primitive.
///
/// **Words**: *pending* always means a pending intent ([`PendingObject`]: an upload in flight,
/// recorded before its bytes are written); cleanup and notification rows ready for work are
/// *due*; a *copy* is one backend's replica of a key (an [`ObjectLocation`]).
///
/// **Limits**, one rule for every method: a listing's `limit`/`max` is a page size per
/// [`crate::validate::page`] (≤ 0 ⇒ 1000, capped at 10 000); a call that hands out or acts on
/// work (cleanup claims, replication batches) takes a batch size per
/// [`crate::validate::batch_limit`] (≤ 0 ⇒ nothing, capped at 10 000).
///
/// **Observability**: with the `metrics` feature (on by default) every call records, through the
/// [`metrics`](https://docs.rs/metrics) facade, `s3o_operation_duration_seconds` (histogram;
/// labels `operation`, `engine`) and, on error, `s3o_operation_errors_total` (labels
/// `operation`, `engine`, `kind`); after every call `s3o_breaker_state` (gauge: 0 closed,
/// 1 half-open, 2 open) and `s3o_breaker_transitions_total` (labels `engine`, `to` = `open` or
/// `closed`). Reading queue depths sets `s3o_cleanup_queue_depth` and `s3o_cleanup_dlq_depth`;
/// claims count `s3o_cleanup_stale_claims_recovered_total`. Install any `metrics` recorder
/// (e.g. a Prometheus exporter) to collect them; without one they cost next to nothing.
#[derive(Clone)]
pub struct MetadataStore {
    inner: Arc<dyn Engine>,
}

impl fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataStore")
            .field("engine", &self.inner.engine())
            .field("breaker", &self.inner.breaker().state())
            .finish()
    }
}

impl MetadataStore {
    /// Wraps an engine. For engine crates (their `open` functions call this); consumers get a
    /// handle from `s3o_store::open`.
    pub fn from_engine<E: Engine>(engine: E) -> Self {
        MetadataStore {
            inner: Arc::new(engine),
        }
    }

    /// Engine name (`"postgres"` or `"sqlite"`).
    pub fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    /// This store's instance id: the claimant of cleanup rows born in its transactions (the
    /// outbox). Cleanup workers of this process pass it to their claims.
    pub fn instance_id(&self) -> &str {
        self.inner.instance_id()
    }

    /// The circuit breaker's state: `Open` means calls fail fast with `DbUnavailable`.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker().state()
    }

    /// The circuit breaker's counters (opened, closed, rejected).
    pub fn breaker_stats(&self) -> BreakerStats {
        self.inner.breaker().stats()
    }

    /// Closes the breaker after an operator fixed the database, without waiting for the next
    /// probe.
    pub fn recover_breaker(&self) {
        self.inner.breaker().recover()
    }

    /// Registers backends with their quota limits (`limit` 0 ⇒ unlimited), updating the limit
    /// of backends already registered; counters are untouched. Same as
    /// [`MetadataStore::sync_quota_limits`].
    pub async fn register_backends(&self, limits: &[(String, i64)]) -> Result<()> {
        self.sync_quota_limits(limits).await
    }

    /// Registered backends with their counters, by name.
    pub async fn list_backends(&self) -> Result<BTreeMap<String, QuotaStat>> {
        self.get_quota_stats().await
    }

    /// Removes a backend and everything recorded on it (see
    /// [`MetadataStore::delete_backend_data`]). Unknown ⇒ `UnknownBackend`.
    pub async fn remove_backend(&self, backend: &str) -> Result<()> {
        self.delete_backend_data(backend).await
    }

    /// Runs one call, recording its latency, its error kind and the breaker's state.
    async fn observe<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let r = call.await;
        #[cfg(feature = "metrics")]
        crate::telemetry::record_call(self.inner.as_ref(), op, started.elapsed(), r.as_ref().err());
        #[cfg(not(feature = "metrics"))]
        let _ = op;
        r
    }
}

/// # Buckets
///
/// Buckets are ledger state (DESIGN decision 23): one row per bucket in `buckets`, its keys
/// being the ledger keys under `"<name>/"`. The rule between a deletion and a concurrent write
/// is in [`crate::ops::delete_bucket`]'s module: commits into a bucket go through
/// [`MetadataStore::record_object_in_bucket`].
impl MetadataStore {
    /// Creates a bucket: `true` when created, `false` when the name already exists (nothing
    /// changes; S3's `BucketAlreadyOwnedByYou`). A name breaking S3's rules
    /// ([`crate::validate::bucket_name`]) or bad settings ⇒ `InvalidInput` naming the rule.
    pub async fn create_bucket(&self, spec: &BucketSpec) -> Result<bool> {
        self.observe("create_bucket", self.inner.create_bucket(spec))
            .await
    }
    /// The bucket; unknown ⇒ `BucketNotFound` (S3 404 `NoSuchBucket`).
    pub async fn get_bucket(&self, name: &str) -> Result<Bucket> {
        self.observe("get_bucket", self.inner.get_bucket(name))
            .await
    }
    /// Every bucket with its `created_at`, by name in byte order.
    pub async fn list_buckets(&self) -> Result<Vec<Bucket>> {
        self.observe("list_buckets", self.inner.list_buckets())
            .await
    }
    /// Replaces every setting of a bucket (`extra` included), keeping its `created_at`.
    /// Unknown ⇒ `BucketNotFound`; bad settings ⇒ `InvalidInput`.
    pub async fn update_bucket_settings(
        &self,
        name: &str,
        settings: &BucketSettings,
    ) -> Result<()> {
        self.observe(
            "update_bucket_settings",
            self.inner.update_bucket_settings(name, settings),
        )
        .await
    }
    /// Replaces a bucket's lifecycle rules (empty = none), leaving its other settings alone.
    /// Unknown ⇒ `BucketNotFound`; bad rules ⇒ `InvalidInput`.
    pub async fn set_bucket_lifecycle(&self, name: &str, rules: &[LifecycleRule]) -> Result<()> {
        self.observe(
            "set_bucket_lifecycle",
            self.inner.set_bucket_lifecycle(name, rules),
        )
        .await
    }
    /// Deletes a bucket that holds nothing (see [`crate::ops::delete_bucket`]): unknown ⇒
    /// `BucketNotFound`; a copy, multipart upload or pending intent of any key under
    /// `"<name>/"` ⇒ `BucketNotEmpty` (S3 409) naming which; checked in the deleting
    /// transaction under the bucket row's lock.
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        self.observe("delete_bucket", self.inner.delete_bucket(name))
            .await
    }
    /// Sets the bucket's CORS configuration, replacing any before it. A configuration breaking
    /// S3's rules ([`crate::cors::check`]: 1..=100 rules, known methods, one wildcard per
    /// origin, …) ⇒ `InvalidInput` and nothing changes; unknown bucket ⇒ `BucketNotFound`.
    /// Deleting the bucket removes it.
    pub async fn put_bucket_cors(&self, name: &str, cors: &crate::cors::CorsConfig) -> Result<()> {
        self.observe(
            "put_bucket_cors",
            self.inner.set_bucket_cors(name, Some(cors)),
        )
        .await
    }
    /// The bucket's CORS configuration, `None` when unset; unknown ⇒ `BucketNotFound`.
    pub async fn get_bucket_cors(&self, name: &str) -> Result<Option<crate::cors::CorsConfig>> {
        self.observe("get_bucket_cors", self.inner.get_bucket_cors(name))
            .await
    }
    /// Removes the bucket's CORS configuration (succeeds when there is none); unknown ⇒
    /// `BucketNotFound`.
    pub async fn delete_bucket_cors(&self, name: &str) -> Result<()> {
        self.observe("delete_bucket_cors", self.inner.set_bucket_cors(name, None))
            .await
    }
    /// Sets (`Some`) or removes (`None`) one field of the bucket's `extra` settings, leaving
    /// every other field and setting alone (one statement). A bad field name or value ⇒
    /// `InvalidInput` ([`crate::validate::bucket_extra_field`]) and nothing changes; unknown
    /// bucket ⇒ `BucketNotFound`.
    pub async fn set_bucket_extra(
        &self,
        name: &str,
        field: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<()> {
        self.observe(
            "set_bucket_extra",
            self.inner.set_bucket_extra(name, field, value),
        )
        .await
    }
    /// Seeds and refreshes buckets from configuration in one transaction: creates missing
    /// ones, sets the configuration-owned settings (replication factor, quotas, routing) of
    /// existing ones, keeps their `created_at`, `extra` and `lifecycle`, never deletes (see
    /// [`crate::ops::sync_buckets`]). Returns the names created.
    pub async fn sync_buckets(&self, specs: &[BucketSpec]) -> Result<Vec<String>> {
        self.observe("sync_buckets", self.inner.sync_buckets(specs))
            .await
    }
    /// [`MetadataStore::record_object_if`] into `bucket`: the commit a bucket's deletion
    /// cannot race (see [`crate::ops::record_object_in_bucket`]). `key` must start with
    /// `"<bucket>/"` (else `InvalidInput`); a bucket that is gone ⇒ `BucketNotFound` and
    /// nothing changes (the intent stays for the caller to abandon).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_object_in_bucket(
        &self,
        bucket: &str,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: Option<&str>,
        cond: &WritePrecondition,
    ) -> Result<Vec<DeletedCopy>> {
        self.observe(
            "record_object_in_bucket",
            self.inner
                .record_object_in_bucket(bucket, key, backend, size, form, intent_id, cond),
        )
        .await
    }
}

/// # Objects
///
/// The seed's `ObjectStore` role.
impl MetadataStore {
    /// Backends holding each key, for many keys in one query. Empty input ⇒ empty map without
    /// a query; keys without copies are absent.
    pub async fn get_object_backends_for_keys(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        self.observe(
            "get_object_backends_for_keys",
            self.inner.get_object_backends_for_keys(keys),
        )
        .await
    }
    /// Records `key` on `backend` (see [`ops::record_object`](crate::ops::record_object)). Returns copies displaced from
    /// other backends, for cleanup.
    pub async fn record_object(
        &self,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<Vec<DeletedCopy>> {
        self.observe(
            "record_object",
            self.inner.record_object(key, backend, size, form),
        )
        .await
    }
    /// [`MetadataStore::record_object`] that also deletes the write's pending intent in the same
    /// transaction. The intent must be this write's own (same key and backend): another one is
    /// refused with `InvalidInput` and nothing changes; a missing intent is fine.
    pub async fn record_object_and_clear_pending(
        &self,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: &str,
    ) -> Result<Vec<DeletedCopy>> {
        self.observe(
            "record_object_and_clear_pending",
            self.inner
                .record_object_and_clear_pending(key, backend, size, form, intent_id),
        )
        .await
    }
    /// [`MetadataStore::record_object_and_clear_pending`] under a precondition decided in the
    /// commit transaction under the key lock (see
    /// [`ops::record_object_if`](crate::ops::record_object_if)): `If-Match` on an absent key ⇒
    /// `ObjectNotFound`, an unmet condition ⇒ `PreconditionFailed`, and nothing changes (the
    /// intent stays for the caller to abandon). `intent_id` optional.
    pub async fn record_object_if(
        &self,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: Option<&str>,
        cond: &WritePrecondition,
    ) -> Result<Vec<DeletedCopy>> {
        self.observe(
            "record_object_if",
            self.inner
                .record_object_if(key, backend, size, form, intent_id, cond),
        )
        .await
    }
    /// Removes every copy of `key` (see [`ops::delete_object`](crate::ops::delete_object)). No copy ⇒ `ObjectNotFound`.
    pub async fn delete_object(&self, key: &str) -> Result<Vec<DeletedCopy>> {
        self.observe("delete_object", self.inner.delete_object(key))
            .await
    }
    /// Removes every copy of `key` while they are the version stored at `storage_key` (see
    /// [`ops::delete_object_version`](crate::ops::delete_object_version)): `None` when the key
    /// now holds another version or nothing, and nothing changed.
    pub async fn delete_object_version(
        &self,
        key: &str,
        storage_key: &str,
    ) -> Result<Option<Vec<DeletedCopy>>> {
        self.observe(
            "delete_object_version",
            self.inner.delete_object_version(key, storage_key),
        )
        .await
    }
    /// Replaces the tags of the current version of `key` on every copy, under the key lock
    /// (see [`ops::set_object_tags`](crate::ops::set_object_tags)); an empty map removes them.
    /// No copy ⇒ `ObjectNotFound`; tags outside S3's limits ⇒ `InvalidInput`.
    pub async fn set_object_tags(&self, key: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        self.observe("set_object_tags", self.inner.set_object_tags(key, tags))
            .await
    }
    /// Removes every copy of each key in one transaction (see [`ops::delete_objects_batch`](crate::ops::delete_objects_batch)).
    pub async fn delete_objects_batch(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<DeletedCopy>>> {
        self.observe(
            "delete_objects_batch",
            self.inner.delete_objects_batch(keys),
        )
        .await
    }
    /// Removes one copy, debits its locked size and enqueues its bytes for cleanup (see
    /// [`ops::delete_object_location`](crate::ops::delete_object_location)). Returns the
    /// removed copy with its cleanup claim, born claimed by this store: delete the bytes at
    /// once, then [`MetadataStore::complete_cleanup_item`]. `None` when the copy was already
    /// gone.
    pub async fn delete_object_location(
        &self,
        key: &str,
        backend: &str,
    ) -> Result<Option<DeletedCopy>> {
        self.observe(
            "delete_object_location",
            self.inner.delete_object_location(key, backend),
        )
        .await
    }
    /// Records a pre-existing object without overwriting (see [`ops::import_object`](crate::ops::import_object)).
    pub async fn import_object(&self, key: &str, backend: &str, size: i64) -> Result<bool> {
        self.observe(
            "import_object",
            self.inner.import_object(key, backend, size),
        )
        .await
    }
    /// Moves the copy of `key` from `from` to `to`, only while the source copy is still at
    /// `expected_storage_key` (its [`StoredForm::storage_path`], read before copying the
    /// bytes); see [`ops::move_object_location`](crate::ops::move_object_location).
    /// [`MoveOutcome::Moved`] carries the source's bytes with their cleanup claim, born claimed
    /// by this store: delete them, then [`MetadataStore::complete_cleanup_item`]. Otherwise
    /// nothing changed and the outcome says why (`SourceGone`, `VersionChanged`,
    /// `TargetHasCopy`). `from == to` ⇒ `InvalidInput`.
    pub async fn move_object_location(
        &self,
        key: &str,
        from: &str,
        to: &str,
        expected_storage_key: &str,
    ) -> Result<MoveOutcome> {
        self.observe(
            "move_object_location",
            self.inner
                .move_object_location(key, from, to, expected_storage_key),
        )
        .await
    }
    /// Flat listing page (see [`ops::list_objects`](crate::ops::list_objects)).
    pub async fn list_objects(
        &self,
        prefix: &str,
        start_after: &str,
        max_keys: i64,
    ) -> Result<ListObjectsResult> {
        self.observe(
            "list_objects",
            self.inner.list_objects(prefix, start_after, max_keys),
        )
        .await
    }
    /// Delimited listing page (see [`ops::list_objects_delimited`](crate::ops::list_objects_delimited)).
    pub async fn list_objects_delimited(
        &self,
        prefix: &str,
        delimiter: &str,
        start_after: &str,
        max_keys: i64,
    ) -> Result<ListDelimitedResult> {
        self.observe(
            "list_objects_delimited",
            self.inner
                .list_objects_delimited(prefix, delimiter, start_after, max_keys),
        )
        .await
    }
}

/// # Reads without a transaction
///
/// The seed's `Reader` role.
impl MetadataStore {
    /// Intents created at least `older_than` ago by the database's clock (`created_at <= now -
    /// older_than`, so [`Duration::ZERO`] selects every intent), oldest first, at most `limit`
    /// (see [`crate::validate::page`]). Ages are capped at [`crate::validate::MAX_AGE`].
    pub async fn get_stale_pending(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<PendingObject>> {
        self.observe(
            "get_stale_pending",
            self.inner.get_stale_pending(older_than, limit),
        )
        .await
    }
    /// Number of pending intents.
    pub async fn count_pending(&self) -> Result<i64> {
        self.observe("count_pending", self.inner.count_pending())
            .await
    }
    /// Every copy of `key`, full columns, oldest first, ties by backend name. Replicas and
    /// moved copies keep the `created_at` of the version they copy (a replica is the same
    /// version of the object), so "oldest" is the version's time, not the copy's.
    /// No copy ⇒ `ObjectNotFound`, never an empty vector.
    pub async fn get_all_object_locations(&self, key: &str) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "get_all_object_locations",
            self.inner.get_all_object_locations(key),
        )
        .await
    }
    /// Copies on `backend`, smallest first, at most `limit` (≤ 0 ⇒ 1000).
    pub async fn list_objects_by_backend(
        &self,
        backend: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "list_objects_by_backend",
            self.inner.list_objects_by_backend(backend, limit),
        )
        .await
    }
    /// Copies on `backend` with key strictly after `after_key` in byte order, ascending;
    /// `""` starts at the first key. At most `limit` (≤ 0 ⇒ 1000).
    pub async fn list_objects_by_backend_key_asc(
        &self,
        backend: &str,
        after_key: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "list_objects_by_backend_key_asc",
            self.inner
                .list_objects_by_backend_key_asc(backend, after_key, limit),
        )
        .await
    }
    /// One row per key (its oldest copy, ties broken by backend name) whose key starts with
    /// `prefix` (byte-wise, case-sensitive, `%`/`_`/`\` ordinary) and satisfies `bound`, in
    /// byte order, at most `limit` rows. The raw material of every listing.
    pub async fn list_objects_by_prefix(
        &self,
        prefix: &str,
        bound: KeyBound<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "list_objects_by_prefix",
            self.inner.list_objects_by_prefix(prefix, bound, limit),
        )
        .await
    }
    /// One row per key (its oldest copy) matching `prefix` whose oldest copy was created more
    /// than `older_than` ago by the database's clock (`created_at < now - older_than`), in
    /// byte order, at most `limit` (≤ 0 ⇒ 1000).
    pub async fn list_expired_objects(
        &self,
        prefix: &str,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "list_expired_objects",
            self.inner.list_expired_objects(prefix, older_than, limit),
        )
        .await
    }
    /// Read-only snapshot of due rows (`next_retry <= now AND attempts < MAX_ATTEMPTS`), oldest
    /// first, with their claim columns; never stamps a claim. At most `limit` (see
    /// [`crate::validate::page`]).
    pub async fn get_due_cleanups(&self, limit: i64) -> Result<Vec<CleanupItem>> {
        self.observe("get_due_cleanups", self.inner.get_due_cleanups(limit))
            .await
    }
    /// Queue rows with `attempts < 10` (regardless of `next_retry`).
    pub async fn cleanup_queue_depth(&self) -> Result<i64> {
        let depth = self
            .observe("cleanup_queue_depth", self.inner.cleanup_queue_depth())
            .await?;
        #[cfg(feature = "metrics")]
        crate::telemetry::record_depths(self.engine(), Some(depth), None);
        Ok(depth)
    }
    /// Rows in the dead-letter table.
    pub async fn cleanup_dlq_depth(&self) -> Result<i64> {
        let depth = self
            .observe("cleanup_dlq_depth", self.inner.cleanup_dlq_depth())
            .await?;
        #[cfg(feature = "metrics")]
        crate::telemetry::record_depths(self.engine(), None, Some(depth));
        Ok(depth)
    }
    /// Every queue row counted in exactly one state: claimed, due or waiting (see
    /// [`crate::CleanupQueueStates`]).
    pub async fn cleanup_queue_states(&self) -> Result<crate::CleanupQueueStates> {
        self.observe("cleanup_queue_states", self.inner.cleanup_queue_states())
            .await
    }
}

/// # Quotas and routing
///
/// The seed's `QuotaStore` role.
impl MetadataStore {
    /// Admission numbers of the named backends, in one read and in no particular order:
    /// `bytes_limit`, `bytes_used` (committed copies and the recorded parts of open uploads;
    /// on PostgreSQL the quota row plus its stripes), `orphan_bytes` (bytes awaiting cleanup)
    /// and `inflight_bytes` (Σ part sizes of the backend's open multipart uploads, the part
    /// of `bytes_used` that is parts: reported, counted by admission through `bytes_used`). Pending write intents are counted nowhere. A name without a quota
    /// row is absent from the result (no error); an invalid name (empty, over-long, NUL) ⇒
    /// `InvalidInput`.
    pub async fn backend_capacities(&self, names: &[String]) -> Result<Vec<BackendCapacity>> {
        self.observe("backend_capacities", self.inner.backend_capacities(names))
            .await
    }
    /// The first backend of `order` that admits `size` more committed bytes by
    /// [`quota_admits`](crate::quota_admits), the rule the commit guard applies: `used +
    /// orphan + size <= limit`, or, unlimited, `<= i64::MAX`. Recorded multipart parts count
    /// (they are in `used`); pending write intents do not (charged at their commit, whose guard
    /// decides then). Invalid names ⇒ `InvalidInput`; any name without
    /// a quota row ⇒ `UnknownBackend` naming the first such name in list order, before space
    /// is considered (a configuration typo is never "no space"). An empty list, or no backend
    /// with room ⇒ `NoSpaceAvailable`. A read, not a reservation.
    pub async fn get_backend_with_space(&self, size: i64, order: &[String]) -> Result<String> {
        self.observe(
            "get_backend_with_space",
            self.inner.get_backend_with_space(size, order),
        )
        .await
    }
    /// Among `eligible` backends that admit `size` (the rule and the exclusions of
    /// [`MetadataStore::get_backend_with_space`]: recorded parts count, pending intents do not), the least utilised: `(used + orphan) / limit` compared exactly,
    /// unlimited = 0, ties by name in byte order. Invalid names ⇒ `InvalidInput`; any name
    /// without a quota row ⇒ `UnknownBackend` (the first in list order); an empty list or no
    /// backend with room ⇒ `NoSpaceAvailable`.
    pub async fn get_least_utilized_backend(
        &self,
        size: i64,
        eligible: &[String],
    ) -> Result<String> {
        self.observe(
            "get_least_utilized_backend",
            self.inner.get_least_utilized_backend(size, eligible),
        )
        .await
    }
    /// Every backend's counters.
    pub async fn get_quota_stats(&self) -> Result<BTreeMap<String, QuotaStat>> {
        self.observe("get_quota_stats", self.inner.get_quota_stats())
            .await
    }
    /// Sets `bytes_used` to Σ `size_bytes` where they differ (see [`ops::reconcile_usage`](crate::ops::reconcile_usage)).
    /// Returns `truth − stored` per drifted backend; empty when consistent.
    pub async fn reconcile_usage(&self) -> Result<BTreeMap<String, i64>> {
        self.observe("reconcile_usage", self.inner.reconcile_usage())
            .await
    }
}

/// # Multipart uploads
///
/// The seed's `MultipartStore` role.
impl MetadataStore {
    /// Creates the upload row (`created_at = now`). Unknown backend ⇒ `UnknownBackend`.
    pub async fn create_multipart_upload(
        &self,
        params: &CreateMultipartUploadParams,
    ) -> Result<()> {
        self.observe(
            "create_multipart_upload",
            self.inner.create_multipart_upload(params),
        )
        .await
    }
    /// The upload; unknown id ⇒ `MultipartUploadNotFound`.
    pub async fn get_multipart_upload(&self, upload_id: &str) -> Result<MultipartUpload> {
        self.observe(
            "get_multipart_upload",
            self.inner.get_multipart_upload(upload_id),
        )
        .await
    }
    /// Records (or replaces) a part and charges its bytes to the upload's backend quota in the
    /// same transaction (see [`ops::record_part`](crate::ops::record_part)): doesn't fit ⇒
    /// `NoSpaceAvailable`, nothing changes. Part number outside 1..=10000 ⇒ `InvalidInput`
    /// before any SQL; unknown upload ⇒ `MultipartUploadNotFound`. Encryption fields are kept
    /// only when `form.encrypted`. Returns the bytes of the part it replaced (queued for
    /// cleanup, claimed by this store), if they were at another path.
    pub async fn record_part(
        &self,
        upload_id: &str,
        part_number: i32,
        etag: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<Vec<DeletedCopy>> {
        self.observe(
            "record_part",
            self.inner
                .record_part(upload_id, part_number, etag, size, form),
        )
        .await
    }
    /// Parts ordered by number; unknown upload ⇒ empty.
    pub async fn get_parts(&self, upload_id: &str) -> Result<Vec<MultipartPart>> {
        self.observe("get_parts", self.inner.get_parts(upload_id))
            .await
    }
    /// Ends an upload (Complete after its commit, Abort, expiry): deletes it with its parts and
    /// moves the parts' bytes from `bytes_used` to the cleanup queue in one transaction (see
    /// [`ops::release_multipart_upload`](crate::ops::release_multipart_upload)). Returns the
    /// queued parts, claimed by this store (delete them, then complete the rows). Missing ⇒
    /// empty, nothing changes.
    pub async fn release_multipart_upload(
        &self,
        upload_id: &str,
        reason: &str,
    ) -> Result<Vec<DeletedCopy>> {
        self.observe(
            "release_multipart_upload",
            self.inner.release_multipart_upload(upload_id, reason),
        )
        .await
    }
    /// Uploads whose key starts with `prefix`, ordered by `(key, created_at)`, slim (no
    /// backend or encryption fields), at most `max` (≤ 0 ⇒ 1000).
    pub async fn list_multipart_uploads(
        &self,
        prefix: &str,
        max: i64,
    ) -> Result<Vec<MultipartUpload>> {
        self.observe(
            "list_multipart_uploads",
            self.inner.list_multipart_uploads(prefix, max),
        )
        .await
    }
    /// Uploads whose key starts with `prefix`.
    pub async fn count_active_multipart_uploads(&self, prefix: &str) -> Result<i64> {
        self.observe(
            "count_active_multipart_uploads",
            self.inner.count_active_multipart_uploads(prefix),
        )
        .await
    }
    /// Uploads created more than `older_than` ago (zero ⇒ every upload).
    pub async fn get_stale_multipart_uploads(
        &self,
        older_than: Duration,
    ) -> Result<Vec<MultipartUpload>> {
        self.observe(
            "get_stale_multipart_uploads",
            self.inner.get_stale_multipart_uploads(older_than),
        )
        .await
    }
    /// Uploads on `backend`.
    pub async fn get_multipart_uploads_by_backend(
        &self,
        backend: &str,
    ) -> Result<Vec<MultipartUpload>> {
        self.observe(
            "get_multipart_uploads_by_backend",
            self.inner.get_multipart_uploads_by_backend(backend),
        )
        .await
    }
}

/// # Replication
///
/// The seed's `ReplicationStore` role.
impl MetadataStore {
    /// Every row of up to `limit` keys whose managed copies number fewer than `factor`,
    /// ordered by `(key, created_at)`. `limit` per [`crate::validate::batch_limit`]: ≤ 0 ⇒
    /// nothing.
    pub async fn get_under_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "get_under_replicated_objects",
            self.inner.get_under_replicated_objects(factor, limit),
        )
        .await
    }
    /// As [`MetadataStore::get_under_replicated_objects`], not counting copies on
    /// `excluded` backends: a key whose only managed copies sit on excluded (e.g. draining)
    /// backends is returned.
    pub async fn get_under_replicated_objects_excluding(
        &self,
        factor: i64,
        limit: i64,
        excluded: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "get_under_replicated_objects_excluding",
            self.inner
                .get_under_replicated_objects_excluding(factor, limit, excluded),
        )
        .await
    }
    /// Every row of up to `limit` keys with more than `factor` managed copies (limit ≤ 0 ⇒
    /// nothing).
    pub async fn get_over_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "get_over_replicated_objects",
            self.inner.get_over_replicated_objects(factor, limit),
        )
        .await
    }
    /// Number of keys with more than `factor` managed copies.
    pub async fn count_over_replicated_objects(&self, factor: i64) -> Result<i64> {
        self.observe(
            "count_over_replicated_objects",
            self.inner.count_over_replicated_objects(factor),
        )
        .await
    }
    /// Adds a replica on `target` copied from `source`, only while the source copy is still at
    /// `expected_storage_key` (its [`StoredForm::storage_path`], read before copying the
    /// bytes); see [`ops::record_replica`](crate::ops::record_replica). Anything but
    /// [`ReplicaOutcome::Recorded`] changed nothing and says why. `target == source` ⇒
    /// `InvalidInput`.
    pub async fn record_replica(
        &self,
        key: &str,
        target: &str,
        source: &str,
        expected_storage_key: &str,
    ) -> Result<ReplicaOutcome> {
        self.observe(
            "record_replica",
            self.inner
                .record_replica(key, target, source, expected_storage_key),
        )
        .await
    }
    /// Removes the copy on `backend` if the key still has more than `factor` copies (see
    /// [`ops::remove_excess_copy`](crate::ops::remove_excess_copy)). Returns the removed copy
    /// with its cleanup claim, born claimed by this store: delete the bytes at once, then
    /// [`MetadataStore::complete_cleanup_item`]. `None` when nothing was removed.
    pub async fn remove_excess_copy(
        &self,
        key: &str,
        backend: &str,
        factor: i64,
    ) -> Result<Option<DeletedCopy>> {
        self.observe(
            "remove_excess_copy",
            self.inner.remove_excess_copy(key, backend, factor),
        )
        .await
    }
    /// Removes the copy of `key` on `backend` that a check found bad (bytes missing or not
    /// matching), only while it is still the copy checked (same `storage_key` path and
    /// `created_at`, re-read under the key lock), and never the last copy of its version (see
    /// [`ops::remove_bad_copy`](crate::ops::remove_bad_copy)). `Removed` carries the cleanup
    /// claim, born claimed by this store: delete the bytes, then
    /// [`MetadataStore::complete_cleanup_item`].
    pub async fn remove_bad_copy(
        &self,
        key: &str,
        backend: &str,
        storage_key: &str,
        created_at: Timestamp,
    ) -> Result<BadCopyRemoval> {
        self.observe(
            "remove_bad_copy",
            self.inner
                .remove_bad_copy(key, backend, storage_key, created_at),
        )
        .await
    }
}

/// # Cleanup queue and dead letters
///
/// The seed's `CleanupStore` role.
impl MetadataStore {
    /// Enqueues a physical delete (`created_at = next_retry = now`, unclaimed). Does not touch
    /// `orphan_bytes`: pair it with [`MetadataStore::increment_orphan_bytes`]. Only for bytes
    /// the ledger never held (e.g. an upload found without an intent): every operation that
    /// takes a copy out of the ledger already enqueues its bytes in its own transaction.
    pub async fn enqueue_cleanup(
        &self,
        backend: &str,
        key: &str,
        reason: &str,
        size: i64,
    ) -> Result<()> {
        self.observe(
            "enqueue_cleanup",
            self.inner.enqueue_cleanup(backend, key, reason, size),
        )
        .await
    }
    /// Atomically claims up to `limit` due rows for `instance_id`: rows with `next_retry <=
    /// now`, `attempts < 10` and no claim or a claim made more than `stale_after` ago
    /// (`claimed_at < now - stale_after`; now is the database's clock, which also stamped the
    /// claim), oldest first.
    /// Concurrent claimers (tasks or processes) get disjoint rows. `reclaimed` is true on rows
    /// whose earlier claim had gone stale. Returned ordered by id.
    pub async fn claim_pending_cleanups(
        &self,
        limit: i64,
        instance_id: &str,
        stale_after: Duration,
    ) -> Result<Vec<CleanupItem>> {
        let items = self
            .observe(
                "claim_pending_cleanups",
                self.inner
                    .claim_pending_cleanups(limit, instance_id, stale_after),
            )
            .await?;
        #[cfg(feature = "metrics")]
        crate::telemetry::record_reclaimed(
            self.engine(),
            items.iter().filter(|i| i.reclaimed).count() as u64,
        );
        Ok(items)
    }
    /// Deletes the claimed row and releases its bytes, only while it still carries `claim`
    /// (see [`ops::complete_cleanup_item`](crate::ops::complete_cleanup_item)): `Completed` or `StaleClaim`.
    pub async fn complete_cleanup_item(&self, claim: &CleanupClaim) -> Result<CleanupOutcome> {
        self.observe(
            "complete_cleanup_item",
            self.inner.complete_cleanup_item(claim),
        )
        .await
    }
    /// One more attempt for the claimed row, or the dead-letter table when that reaches
    /// [`crate::MAX_ATTEMPTS`] (see [`ops::retry_cleanup_item`](crate::ops::retry_cleanup_item)): `Retried`, `DeadLettered` or
    /// `StaleClaim`.
    pub async fn retry_cleanup_item(
        &self,
        claim: &CleanupClaim,
        backoff: Duration,
        last_error: &str,
    ) -> Result<CleanupOutcome> {
        self.observe(
            "retry_cleanup_item",
            self.inner.retry_cleanup_item(claim, backoff, last_error),
        )
        .await
    }
    /// Unguarded `orphan_bytes += amount`; unknown backend ⇒ no-op.
    pub async fn increment_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()> {
        self.observe(
            "increment_orphan_bytes",
            self.inner.increment_orphan_bytes(backend, amount),
        )
        .await
    }
    /// `orphan_bytes = max(0, orphan_bytes − amount)`; unknown backend ⇒ no-op.
    pub async fn decrement_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()> {
        self.observe(
            "decrement_orphan_bytes",
            self.inner.decrement_orphan_bytes(backend, amount),
        )
        .await
    }
    /// DLQ rows of `backend` (all when `None`), most recently moved first, at most `limit`
    /// (≤ 0 ⇒ 1000).
    pub async fn list_cleanup_dlq(
        &self,
        backend: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CleanupDlqItem>> {
        self.observe(
            "list_cleanup_dlq",
            self.inner.list_cleanup_dlq(backend, limit),
        )
        .await
    }
    /// Per backend with any queue or DLQ row: `(Σ size_bytes of cleanup_queue rows of every
    /// attempt count, Σ size_bytes of cleanup_dlq rows)`. What `orphan_bytes` should equal
    /// when every orphan went through the queue; `s3o verify` reports the difference.
    pub async fn cleanup_bytes_by_backend(&self) -> Result<BTreeMap<String, (i64, i64)>> {
        self.observe(
            "cleanup_bytes_by_backend",
            self.inner.cleanup_bytes_by_backend(),
        )
        .await
    }
    /// Moves DLQ rows (of `backend`, or all) back into the queue with fresh defaults
    /// (attempts 0, due now, unclaimed) in one statement; `orphan_bytes` untouched. Returns
    /// the number moved.
    pub async fn requeue_cleanup_dlq(&self, backend: Option<&str>) -> Result<i64> {
        self.observe(
            "requeue_cleanup_dlq",
            self.inner.requeue_cleanup_dlq(backend),
        )
        .await
    }
    /// Moves the DLQ rows with these ids back into the queue with fresh defaults, like
    /// [`MetadataStore::requeue_cleanup_dlq`]; unknown ids are skipped. Returns the number
    /// moved.
    pub async fn requeue_cleanup_dlq_ids(&self, ids: &[i64]) -> Result<i64> {
        self.observe(
            "requeue_cleanup_dlq_ids",
            self.inner.requeue_cleanup_dlq_ids(ids),
        )
        .await
    }
    /// Queues the deletion of bytes the ledger never recorded (an upload that was never
    /// committed, a copy that was not admitted) and charges them to the backend's
    /// `orphan_bytes`, in one transaction (see
    /// [`ops::enqueue_orphaned_bytes`](crate::ops::enqueue_orphaned_bytes)). The row is born
    /// claimed by this store: delete the bytes and complete `cleanup`, or leave it to a cleanup
    /// worker, which takes it over after its grace period. Prefer this to
    /// [`MetadataStore::enqueue_cleanup`] + [`MetadataStore::increment_orphan_bytes`], two
    /// transactions between which a crash loses the accounting.
    pub async fn enqueue_orphaned_bytes(&self, entry: &CleanupEntry) -> Result<DeletedCopy> {
        self.observe(
            "enqueue_orphaned_bytes",
            self.inner.enqueue_orphaned_bytes(entry),
        )
        .await
    }
    /// Removes queue rows of `(key, backend)` and their orphan bytes (see
    /// [`ops::sweep_stale_cleanup_queue_rows`](crate::ops::sweep_stale_cleanup_queue_rows)).
    pub async fn sweep_stale_cleanup_queue_rows(&self, key: &str, backend: &str) -> Result<i64> {
        self.observe(
            "sweep_stale_cleanup_queue_rows",
            self.inner.sweep_stale_cleanup_queue_rows(key, backend),
        )
        .await
    }
    /// Graduates an exhausted queue row to the DLQ (see [`ops::move_cleanup_to_dlq`](crate::ops::move_cleanup_to_dlq)).
    pub async fn move_cleanup_to_dlq(&self, id: i64, last_error: &str) -> Result<bool> {
        self.observe(
            "move_cleanup_to_dlq",
            self.inner.move_cleanup_to_dlq(id, last_error),
        )
        .await
    }
    /// Operator write-off of DLQ rows (see [`ops::write_off_cleanup_dlq`](crate::ops::write_off_cleanup_dlq)).
    pub async fn write_off_cleanup_dlq(&self, ids: &[i64]) -> Result<i64> {
        self.observe(
            "write_off_cleanup_dlq",
            self.inner.write_off_cleanup_dlq(ids),
        )
        .await
    }
}

/// # Pending intents
///
/// The seed's `PendingStore` role.
impl MetadataStore {
    /// Records an intent before the backend PUT. Unknown backend ⇒ `UnknownBackend`;
    /// duplicate intent id ⇒ `Database { kind: UniqueViolation }`.
    pub async fn insert_pending(&self, p: &PendingObject) -> Result<()> {
        self.observe("insert_pending", self.inner.insert_pending(p))
            .await
    }
    /// Deletes an intent; missing ⇒ no-op.
    pub async fn delete_pending(&self, intent_id: &str) -> Result<()> {
        self.observe("delete_pending", self.inner.delete_pending(intent_id))
            .await
    }
    /// Heartbeat of writes still running: each listed intent's `created_at` becomes the
    /// database's now, so the reaper leaves it alone (missing ids skipped). Returns how many
    /// were touched. At most [`crate::validate::MAX_BATCH_KEYS`] ids, else `InvalidInput`.
    pub async fn touch_pending(&self, intent_ids: &[String]) -> Result<i64> {
        self.observe("touch_pending", self.inner.touch_pending(intent_ids))
            .await
    }
    /// Records the multipart upload a write opened on its backend with the write's intent, so
    /// whoever ends the intent can abort it. `false` when the intent is gone.
    pub async fn set_pending_backend_upload(
        &self,
        intent_id: &str,
        upload_id: &str,
    ) -> Result<bool> {
        self.observe(
            "set_pending_backend_upload",
            self.inner.set_pending_backend_upload(intent_id, upload_id),
        )
        .await
    }
    /// The backend multipart upload recorded with an intent (`None`: none, or intent gone).
    pub async fn get_pending_backend_upload(&self, intent_id: &str) -> Result<Option<String>> {
        self.observe(
            "get_pending_backend_upload",
            self.inner.get_pending_backend_upload(intent_id),
        )
        .await
    }
    /// Deletes every intent of a backend; returns how many.
    pub async fn delete_pending_by_backend(&self, backend: &str) -> Result<i64> {
        self.observe(
            "delete_pending_by_backend",
            self.inner.delete_pending_by_backend(backend),
        )
        .await
    }
    /// Abandons a write intent: drops it and enqueues its bytes, claimed by this store, in one
    /// transaction (see [`ops::abandon_pending`](crate::ops::abandon_pending)). What the gateway
    /// does with every intent that outlives its request.
    pub async fn abandon_pending(
        &self,
        p: &PendingObject,
    ) -> Result<(PendingPromoteResult, Vec<DeletedCopy>)> {
        self.observe("abandon_pending", self.inner.abandon_pending(p))
            .await
    }
    /// Resolves an intent whose bytes are on the backend (see [`ops::promote_pending`](crate::ops::promote_pending)).
    pub async fn promote_pending(
        &self,
        p: &PendingObject,
    ) -> Result<(PendingPromoteResult, Vec<DeletedCopy>)> {
        self.observe("promote_pending", self.inner.promote_pending(p))
            .await
    }
}

/// # Integrity (content hashes, scrubbing)
///
/// The seed's `IntegrityStore` role.
impl MetadataStore {
    /// Managed copies with no content hash, oldest first; `limit` per [`crate::validate::page`],
    /// negative `offset` treated as 0.
    pub async fn get_objects_without_hash(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "get_objects_without_hash",
            self.inner.get_objects_without_hash(limit, offset),
        )
        .await
    }
    /// Sets the content hash of one copy and stamps it verified now. `false` when gone.
    pub async fn update_content_hash(&self, key: &str, backend: &str, hash: &str) -> Result<bool> {
        self.observe(
            "update_content_hash",
            self.inner.update_content_hash(key, backend, hash),
        )
        .await
    }
    /// Hashed, managed copies on `backends`, least recently verified first (never-verified by
    /// age), ties by key. Deterministic, unlike sampling. Empty `backends` ⇒ empty result.
    pub async fn get_least_recently_scrubbed_objects(
        &self,
        limit: i64,
        backends: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "get_least_recently_scrubbed_objects",
            self.inner
                .get_least_recently_scrubbed_objects(limit, backends),
        )
        .await
    }
    /// Stamps one copy verified now. `false` when gone.
    pub async fn mark_object_scrubbed(&self, key: &str, backend: &str) -> Result<bool> {
        self.observe(
            "mark_object_scrubbed",
            self.inner.mark_object_scrubbed(key, backend),
        )
        .await
    }
}

/// # Usage counters
///
/// The seed's `UsageStore` role.
impl MetadataStore {
    /// Adds the deltas to `(backend, period)` (created at zero if absent). Concurrent flushers
    /// converge without loss. `period` is `YYYY-MM`. Unknown backend ⇒ `UnknownBackend`.
    pub async fn flush_usage_deltas(
        &self,
        backend: &str,
        period: &str,
        api_requests: i64,
        egress_bytes: i64,
        ingress_bytes: i64,
    ) -> Result<()> {
        self.observe(
            "flush_usage_deltas",
            self.inner.flush_usage_deltas(
                backend,
                period,
                api_requests,
                egress_bytes,
                ingress_bytes,
            ),
        )
        .await
    }
    /// Counters of every backend for `period`.
    pub async fn get_usage_for_period(&self, period: &str) -> Result<BTreeMap<String, UsageStat>> {
        self.observe(
            "get_usage_for_period",
            self.inner.get_usage_for_period(period),
        )
        .await
    }
}

/// # Notification outbox
///
/// The seed's `NotificationOutbox` role.
impl MetadataStore {
    /// Enqueues an event; `payload` must be valid JSON (`InvalidInput` otherwise). Returns the
    /// row id.
    pub async fn insert_notification(
        &self,
        event_type: &str,
        payload: &str,
        endpoint_url: &str,
    ) -> Result<i64> {
        self.observe(
            "insert_notification",
            self.inner
                .insert_notification(event_type, payload, endpoint_url),
        )
        .await
    }
    /// Due rows (`next_retry <= now AND attempts < 10`), oldest first, at most `limit`.
    pub async fn get_due_notifications(&self, limit: i64) -> Result<Vec<NotificationRow>> {
        self.observe(
            "get_due_notifications",
            self.inner.get_due_notifications(limit),
        )
        .await
    }
    /// Deletes a delivered row; missing ⇒ no-op.
    pub async fn complete_notification(&self, id: i64) -> Result<()> {
        self.observe(
            "complete_notification",
            self.inner.complete_notification(id),
        )
        .await
    }
    /// `attempts += 1`, `next_retry = now + backoff`, records the error.
    pub async fn retry_notification(
        &self,
        id: i64,
        backoff: Duration,
        last_error: &str,
    ) -> Result<()> {
        self.observe(
            "retry_notification",
            self.inner.retry_notification(id, backoff, last_error),
        )
        .await
    }
}

/// # Dashboard counts
///
/// The seed's `DashboardStore` role.
impl MetadataStore {
    /// Copies per backend.
    pub async fn get_object_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.observe("get_object_counts", self.inner.get_object_counts())
            .await
    }
    /// Copies without a content hash per backend.
    pub async fn get_unverified_object_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.observe(
            "get_unverified_object_counts",
            self.inner.get_unverified_object_counts(),
        )
        .await
    }
    /// Active multipart uploads per backend.
    pub async fn get_active_multipart_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.observe(
            "get_active_multipart_counts",
            self.inner.get_active_multipart_counts(),
        )
        .await
    }
}

/// # Backend lifecycle
///
/// The seed's `BackendLifecycleStore` role.
impl MetadataStore {
    /// `(copies, Σ size_bytes)` on `backend`.
    pub async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)> {
        self.observe(
            "backend_object_stats",
            self.inner.backend_object_stats(backend),
        )
        .await
    }
    /// Removes everything that references `backend` — cleanup queue and DLQ rows, pending
    /// intents, multipart uploads (parts cascade), copies, usage rows — and then its quota
    /// row, in one transaction (see [`ops::delete_backend_data`](crate::ops::delete_backend_data)). Unknown backend ⇒
    /// `UnknownBackend`.
    pub async fn delete_backend_data(&self, backend: &str) -> Result<()> {
        self.observe(
            "delete_backend_data",
            self.inner.delete_backend_data(backend),
        )
        .await
    }
}

/// # Encryption administration
///
/// The seed's `EncryptionAdmin` role.
impl MetadataStore {
    /// Encrypted copies under master-key version `key_id`, ordered by `(key, backend)`.
    pub async fn list_encrypted_locations(
        &self,
        key_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<EncryptedLocation>> {
        self.observe(
            "list_encrypted_locations",
            self.inner.list_encrypted_locations(key_id, limit, offset),
        )
        .await
    }
    /// Rows of `holder`'s table holding a wrapped data key after `after`, in primary-key
    /// byte order (see [`EncryptionAdmin::list_wrapped_keys`](crate::engine::EncryptionAdmin::list_wrapped_keys)).
    pub async fn list_wrapped_keys(
        &self,
        holder: KeyHolder,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKey>> {
        self.observe(
            "list_wrapped_keys",
            self.inner.list_wrapped_keys(holder, limit, after),
        )
        .await
    }
    /// Plaintext copies of noncurrent versions after `after` (see
    /// [`EncryptionAdmin::list_plaintext_version_copies`](crate::engine::EncryptionAdmin::list_plaintext_version_copies)).
    pub async fn list_plaintext_version_copies(
        &self,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKeyAt>> {
        self.observe(
            "list_plaintext_version_copies",
            self.inner.list_plaintext_version_copies(limit, after),
        )
        .await
    }
    /// Rows holding a wrapped data key, per table and master key (see
    /// [`EncryptionAdmin::wrapped_key_census`](crate::engine::EncryptionAdmin::wrapped_key_census)).
    pub async fn wrapped_key_census(&self) -> Result<Vec<KeyCensus>> {
        self.observe("wrapped_key_census", self.inner.wrapped_key_census())
            .await
    }
    /// Every encrypted copy after `after` (keyset), ordered by `(key, backend)`.
    pub async fn list_all_encrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<EncryptedLocation>> {
        self.observe(
            "list_all_encrypted_locations",
            self.inner.list_all_encrypted_locations(limit, after),
        )
        .await
    }
    /// Plaintext copies after `after` (keyset: offset paging skips rows while the set shrinks),
    /// ordered by `(key, backend)`.
    pub async fn list_unencrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<UnencryptedLocation>> {
        self.observe(
            "list_unencrypted_locations",
            self.inner.list_unencrypted_locations(limit, after),
        )
        .await
    }
    /// Replaces the wrapped key of one copy (rotation). `false` when the copy is gone.
    pub async fn update_encryption_key(
        &self,
        key: &str,
        backend: &str,
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool> {
        self.observe(
            "update_encryption_key",
            self.inner
                .update_encryption_key(key, backend, new_key, new_key_id),
        )
        .await
    }
    /// Marks a copy encrypted in place (see [`ops::mark_object_encrypted`](crate::ops::mark_object_encrypted)).
    pub async fn mark_object_encrypted(
        &self,
        key: &str,
        backend: &str,
        encryption_key: &[u8],
        key_id: &str,
        plaintext_size: i64,
        ciphertext_size: i64,
    ) -> Result<bool> {
        self.observe(
            "mark_object_encrypted",
            self.inner.mark_object_encrypted(
                key,
                backend,
                encryption_key,
                key_id,
                plaintext_size,
                ciphertext_size,
            ),
        )
        .await
    }
    /// Re-wraps a copy's data key while it still holds `expected_key`; `false` (nothing
    /// changed) when the copy is gone or holds another key (see
    /// [`ops::rewrap_encryption_key`](crate::ops::rewrap_encryption_key)).
    pub async fn rewrap_encryption_key(
        &self,
        key: &str,
        backend: &str,
        expected_key: &[u8],
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool> {
        self.observe(
            "rewrap_encryption_key",
            self.inner
                .rewrap_encryption_key(key, backend, expected_key, new_key, new_key_id),
        )
        .await
    }
    /// Re-wraps the data key held by the row `at` (current or noncurrent copy, open upload,
    /// part, write intent) while it still holds `expected_key`; `false` (nothing changed) when
    /// the row is gone or holds another key (see
    /// [`ops::rewrap_stored_key`](crate::ops::rewrap_stored_key)).
    pub async fn rewrap_stored_key(
        &self,
        at: &WrappedKeyAt,
        expected_key: &[u8],
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool> {
        self.observe(
            "rewrap_stored_key",
            self.inner
                .rewrap_stored_key(at, expected_key, new_key, new_key_id),
        )
        .await
    }
    /// Swaps every copy of `key` for rewritten (encrypted or decrypted) bytes while its
    /// version is still the one at `expected_storage_key`; `None` (nothing changed) when a
    /// concurrent write won (see [`ops::convert_version`](crate::ops::convert_version)).
    pub async fn convert_version(
        &self,
        key: &str,
        expected_storage_key: &str,
        envelope: &StoredForm,
        copies: &[ConvertedCopy],
    ) -> Result<Option<Vec<DeletedCopy>>> {
        self.observe(
            "convert_version",
            self.inner
                .convert_version(key, expected_storage_key, envelope, copies),
        )
        .await
    }
    /// Swaps every copy of noncurrent version `version_id` of `key` for rewritten bytes while
    /// it is still that noncurrent version at `expected_storage_key`; `None` (nothing changed)
    /// when a concurrent delete or restore won (see
    /// [`ops::convert_noncurrent_version`](crate::ops::convert_noncurrent_version)).
    pub async fn convert_noncurrent_version(
        &self,
        key: &str,
        version_id: &str,
        expected_storage_key: &str,
        envelope: &StoredForm,
        copies: &[ConvertedCopy],
    ) -> Result<Option<Vec<DeletedCopy>>> {
        self.observe(
            "convert_noncurrent_version",
            self.inner.convert_noncurrent_version(
                key,
                version_id,
                expected_storage_key,
                envelope,
                copies,
            ),
        )
        .await
    }
    /// Marks a copy decrypted in place (see [`ops::mark_object_decrypted`](crate::ops::mark_object_decrypted)).
    pub async fn mark_object_decrypted(
        &self,
        key: &str,
        backend: &str,
        plaintext_size: i64,
    ) -> Result<bool> {
        self.observe(
            "mark_object_decrypted",
            self.inner
                .mark_object_decrypted(key, backend, plaintext_size),
        )
        .await
    }
}

/// # Schema and lifecycle
///
/// The seed's `LifecycleAdmin` role.
impl MetadataStore {
    /// Applies every pending migration, in order. Safe to run concurrently from several
    /// processes; running it twice is a no-op. Returns the resulting version.
    pub async fn run_migrations(&self) -> Result<SchemaVersion> {
        self.observe("run_migrations", self.inner.run_migrations())
            .await
    }
    /// The current and expected versions, without checking them.
    pub async fn schema_version(&self) -> Result<SchemaVersion> {
        self.observe("schema_version", self.inner.schema_version())
            .await
    }
    /// Errors with `Database { kind: Schema }` naming the fix when the database is behind
    /// ("run migrations") or ahead ("upgrade the binary").
    pub async fn verify_schema_version(&self) -> Result<SchemaVersion> {
        self.observe("verify_schema_version", self.inner.verify_schema_version())
            .await
    }
    /// Upserts `(backend, bytes_limit)` rows in one transaction: new backends start at zero
    /// used; existing rows keep used and orphan bytes. Negative limits ⇒ `InvalidInput`.
    pub async fn sync_quota_limits(&self, limits: &[(String, i64)]) -> Result<()> {
        self.observe("sync_quota_limits", self.inner.sync_quota_limits(limits))
            .await
    }
    /// Releases pooled connections. Later calls fail.
    pub async fn close(&self) {
        self.inner.close().await
    }
}

/// # Leader locks
///
/// The seed's `AdvisoryLocker` role.
impl MetadataStore {
    /// Tries to take `lock` without waiting. Not taken ⇒ `Ok(None)` and `critical` never runs.
    /// Taken ⇒ runs `critical`, releases the lock (also when `critical` errors or panics, and
    /// when the holder's connection or process dies) and returns `Ok(Some(its result))`.
    /// An error acquiring ⇒ `Err`. Locks with different ids are independent.
    ///
    /// Fenced: if the lock is lost while `critical` runs (PostgreSQL: the lock's session
    /// ended, noticed within the engine's documented bound), `critical` is dropped at its
    /// next `.await` and the call returns `Err(StoreError::LeadershipLost)`, never `Ok`.
    /// `Ok(Some(_))` also requires a confirmed release: when the engine cannot confirm that
    /// the lock was still held when `critical` finished (PostgreSQL: the unlock on the lock's
    /// own connection failed, timed out or answered `false`; SQLite: the lock file was
    /// replaced while held), the call returns `LeadershipLost` instead, whatever `critical`
    /// returned. (SQLite's lock is a file lock held by the process: it cannot be lost while
    /// the process lives and its lock file stays in place.) Locks are scoped to the store's
    /// database and, on PostgreSQL, schema.
    pub async fn with_advisory_lock<F>(
        &self,
        lock: LockId,
        critical: F,
    ) -> Result<Option<Result<()>>>
    where
        F: Future<Output = Result<()>> + Send,
    {
        self.observe(
            "with_advisory_lock",
            self.inner.with_advisory_lock(lock, Box::pin(critical)),
        )
        .await
    }
}

/// # Versions
///
/// S3 versioning (DESIGN decision 25): the bucket's state, version-aware commits and deletes,
/// version reads and ListObjectVersions.
impl MetadataStore {
    /// Sets the bucket's versioning state; `Unversioned` ⇒ `InvalidInput` (a bucket never
    /// returns to unversioned); unknown ⇒ `BucketNotFound`.
    pub async fn set_bucket_versioning(&self, name: &str, state: Versioning) -> Result<()> {
        self.observe(
            "set_bucket_versioning",
            self.inner.set_bucket_versioning(name, state),
        )
        .await
    }
    /// The bucket's versioning state; unknown ⇒ `BucketNotFound`.
    pub async fn get_bucket_versioning(&self, name: &str) -> Result<Versioning> {
        self.observe(
            "get_bucket_versioning",
            self.inner.get_bucket_versioning(name),
        )
        .await
    }
    /// A commit into `bucket` following its versioning state (see
    /// [`ops::commit_object_in_bucket`](crate::ops::commit_object_in_bucket)).
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_object_in_bucket(
        &self,
        bucket: &str,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: Option<&str>,
        cond: &WritePrecondition,
    ) -> Result<Committed> {
        self.observe(
            "commit_object_in_bucket",
            self.inner
                .commit_object_in_bucket(bucket, key, backend, size, form, intent_id, cond),
        )
        .await
    }
    /// S3 DeleteObject (see [`ops::delete_object_in_bucket`](crate::ops::delete_object_in_bucket)).
    pub async fn delete_object_in_bucket(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteOutcome> {
        self.observe(
            "delete_object_in_bucket",
            self.inner.delete_object_in_bucket(bucket, key, version_id),
        )
        .await
    }
    /// Version `version_id` of `key` with its copies; none ⇒ `VersionNotFound`.
    pub async fn get_object_version(&self, key: &str, version_id: &str) -> Result<ObjectVersion> {
        self.observe(
            "get_object_version",
            self.inner.get_object_version(key, version_id),
        )
        .await
    }
    /// The newest version of `key` (current, or the delete marker hiding it); `None` when none.
    pub async fn get_latest_version(&self, key: &str) -> Result<Option<ObjectVersion>> {
        self.observe("get_latest_version", self.inner.get_latest_version(key))
            .await
    }
    /// Every copy of every noncurrent version of `key`, newest version first (empty when none):
    /// bytes a worker must never treat as unreferenced.
    pub async fn get_noncurrent_copies(&self, key: &str) -> Result<Vec<ObjectLocation>> {
        self.observe(
            "get_noncurrent_copies",
            self.inner.get_noncurrent_copies(key),
        )
        .await
    }
    /// One page of ListObjectVersions (see
    /// [`ops::list_object_versions`](crate::ops::list_object_versions)).
    pub async fn list_object_versions(
        &self,
        prefix: &str,
        delimiter: &str,
        key_marker: &str,
        version_id_marker: &str,
        max_keys: i64,
    ) -> Result<VersionListing> {
        self.observe(
            "list_object_versions",
            self.inner.list_object_versions(
                prefix,
                delimiter,
                key_marker,
                version_id_marker,
                max_keys,
            ),
        )
        .await
    }
}
