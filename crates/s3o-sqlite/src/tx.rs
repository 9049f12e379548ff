//! The transaction adapter: [`s3o_core::engine::Runner`] and [`s3o_core::engine::Transaction`] on the writer
//! connection.
//!
//! A transaction owns the writer from `BEGIN IMMEDIATE` to `COMMIT`/`ROLLBACK` (the async gate
//! of [`crate::conn::Conns`] is held throughout), so its reads and writes are serialised
//! against every other writer, in this process and others: that is what stands in for
//! PostgreSQL's row and key locks. Each primitive is one statement, checked by the circuit
//! breaker: point statements (and, with `Synchronous::Normal`, `COMMIT`) run on the caller's
//! thread by default (see [`crate::SqliteOptions::inline_point_statements`]), statements that
//! may touch many rows on the blocking pool. Dropping an unfinished transaction rolls it back before the
//! writer serves anyone else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use s3o_core::engine::{Runner, Transaction, TxAdapter};
use s3o_core::tx::{
    BackendTable, BackendTx, BucketTx, CleanupTx, EncryptionTx, MultipartTx, ObjectsTx, PendingTx,
    QuotaTx, VersionsTx,
};
use s3o_core::{
    BucketBusy, BucketLock, BucketSpec, CleanupClaim, CleanupEntry, CleanupQueueRow, DbErrorKind,
    ExistingCopy, KeyedExistingCopy, ObjectLocation, PartBytes, PendingObject, Result, StoreError,
    StoredForm, VersionCopy, Versioning, validate,
};

use crate::conn::{Conns, TxGuard};
use crate::stmt::Db;
use crate::{
    SqliteStore, backend, buckets, cleanup, encryption, multipart, objects, pending, quota,
    versions,
};

/// An open write transaction on the writer connection.
pub(crate) struct SqliteTx {
    conns: Arc<Conns>,
    guard: Option<TxGuard>,
    /// The transaction's generation: a statement of this transaction still queued on the
    /// blocking pool after it ended never runs inside a later one.
    generation: u64,
}

impl SqliteTx {
    async fn run<T, F>(&self, ctx: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        if self.guard.is_none() {
            return Err(StoreError::database(
                DbErrorKind::Other,
                ctx,
                "the transaction has ended",
            ));
        }
        self.conns.in_tx(ctx, self.generation, f).await
    }

    /// [`SqliteTx::run`] for a point statement: runs on the calling thread when
    /// `inline_point_statements` is on (the default; see [`Conns::try_in_tx_now`]), else on
    /// the blocking pool like every other call. Statements that may touch many rows always use `run`.
    async fn run_now<T, F>(&self, ctx: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        if self.guard.is_none() {
            return Err(StoreError::database(
                DbErrorKind::Other,
                ctx,
                "the transaction has ended",
            ));
        }
        match self.conns.try_in_tx_now(ctx, self.generation, f) {
            Ok(r) => r,
            Err(f) => self.conns.in_tx(ctx, self.generation, f).await,
        }
    }

    async fn end(mut self: Box<Self>, commit: bool) -> Result<()> {
        let Some(guard) = self.guard.take() else {
            return Ok(());
        };
        self.conns.end_tx(guard, commit).await
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            tracing::debug!(
                engine = "sqlite",
                "transaction dropped before commit; rolling back"
            );
            // Dropping the guard rolls back, then releases the writer.
            drop(guard);
        }
    }
}

#[async_trait]
impl Runner for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let guard = self.conns.begin_tx().await?;
        Ok(Box::new(SqliteTx {
            conns: self.conns.clone(),
            generation: guard.generation(),
            guard: Some(guard),
        }))
    }

    fn instance_id(&self) -> &str {
        &self.instance_id
    }
}

#[async_trait]
impl Transaction for SqliteTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        self.end(true).await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.end(false).await
    }
}

#[async_trait]
impl TxAdapter for SqliteTx {
    /// No-op: the transaction already holds the database's only write lock.
    async fn acquire_key_lock(&mut self, _key: &str) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl PendingTx for SqliteTx {
    async fn claim_pending(&mut self, intent_id: &str) -> Result<Option<PendingObject>> {
        validate::id("intent id", intent_id)?;
        let id = intent_id.to_owned();
        self.run_now("claim pending", move |db| pending::claim(db, &id))
            .await
    }

    async fn insert_pending(&mut self, p: &PendingObject) -> Result<()> {
        validate::pending(p)?;
        let p = p.clone();
        self.run_now("insert pending", move |db| pending::insert(db, &p))
            .await
    }

    async fn delete_pending(&mut self, intent_id: &str) -> Result<()> {
        validate::id("intent id", intent_id)?;
        let id = intent_id.to_owned();
        self.run_now("delete pending", move |db| pending::delete(db, &id))
            .await
    }

    async fn delete_pending_by_backend(&mut self, backend: &str) -> Result<()> {
        validate::backend(backend)?;
        let b = backend.to_owned();
        self.run("delete pending by backend", move |db| {
            pending::delete_by_backend(db, &b).map(drop)
        })
        .await
    }
}

#[async_trait]
impl ObjectsTx for SqliteTx {
    async fn get_existing_copies_for_update(&mut self, key: &str) -> Result<Vec<ExistingCopy>> {
        validate::key(key)?;
        let key = key.to_owned();
        self.run_now("get existing copies", move |db| {
            objects::existing_copies(db, &key)
        })
        .await
    }

    async fn insert_object_location(&mut self, loc: &ObjectLocation) -> Result<()> {
        validate::location(loc)?;
        let loc = loc.clone();
        self.run_now("insert object location", move |db| {
            objects::insert_location(db, &loc)
        })
        .await
    }

    async fn delete_object_copies(&mut self, key: &str) -> Result<()> {
        validate::key(key)?;
        let key = key.to_owned();
        self.run_now("delete object copies", move |db| {
            objects::delete_copies(db, &key)
        })
        .await
    }

    async fn get_copies_for_keys_for_update(
        &mut self,
        keys: &[String],
    ) -> Result<Vec<KeyedExistingCopy>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        validate::keys(keys)?;
        let keys = keys.to_vec();
        self.run("get copies for keys", move |db| {
            objects::copies_for_keys(db, &keys)
        })
        .await
    }

    async fn delete_objects_by_keys(&mut self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        validate::keys(keys)?;
        let keys = keys.to_vec();
        self.run("delete objects by keys", move |db| {
            objects::delete_keys(db, &keys)
        })
        .await
    }

    async fn check_object_exists_on_backend(&mut self, key: &str, backend: &str) -> Result<bool> {
        validate::key(key)?;
        validate::backend(backend)?;
        let (key, backend) = (key.to_owned(), backend.to_owned());
        self.run_now("check object exists on backend", move |db| {
            objects::exists_on_backend(db, &key, &backend)
        })
        .await
    }

    async fn lock_object_on_backend(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<Option<ObjectLocation>> {
        validate::key(key)?;
        validate::backend(backend)?;
        let (key, backend) = (key.to_owned(), backend.to_owned());
        self.run_now("lock object on backend", move |db| {
            objects::location_on_backend(db, &key, &backend)
        })
        .await
    }

    async fn delete_object_from_backend(&mut self, key: &str, backend: &str) -> Result<()> {
        validate::key(key)?;
        validate::backend(backend)?;
        let (key, backend) = (key.to_owned(), backend.to_owned());
        self.run_now("delete object from backend", move |db| {
            objects::delete_from_backend(db, &key, &backend)
        })
        .await
    }

    async fn insert_object_location_if_not_exists(&mut self, loc: &ObjectLocation) -> Result<bool> {
        validate::location(loc)?;
        let loc = loc.clone();
        self.run_now("insert object location if absent", move |db| {
            objects::insert_location_if_absent(db, &loc)
        })
        .await
    }

    async fn insert_replica_conditional(
        &mut self,
        key: &str,
        target: &str,
        source: &str,
    ) -> Result<Option<i64>> {
        validate::key(key)?;
        validate::backend(target)?;
        validate::backend(source)?;
        let (key, target, source) = (key.to_owned(), target.to_owned(), source.to_owned());
        self.run_now("insert replica", move |db| {
            objects::insert_replica(db, &key, &target, &source)
        })
        .await
    }

    async fn update_object_form(
        &mut self,
        key: &str,
        backend: &str,
        size_bytes: i64,
        form: &StoredForm,
    ) -> Result<bool> {
        validate::copy(key, backend, size_bytes, form)?;
        let (key, backend, form) = (key.to_owned(), backend.to_owned(), form.clone());
        self.run_now("update object form", move |db| {
            objects::update_form(db, &key, &backend, size_bytes, &form)
        })
        .await
    }

    async fn set_object_tags(
        &mut self,
        key: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<u64> {
        validate::key(key)?;
        validate::tags(tags)?;
        let (key, json) = (key.to_owned(), s3o_core::user_metadata_to_json(tags));
        self.run_now("set object tags", move |db| {
            objects::set_tags(db, &key, json.as_deref())
        })
        .await
    }
}

#[async_trait]
impl CleanupTx for SqliteTx {
    async fn sum_and_delete_cleanup_queue_rows(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<(i64, i64)> {
        validate::key(key)?;
        validate::backend(backend)?;
        let (key, backend) = (key.to_owned(), backend.to_owned());
        self.run("sum and delete cleanup queue rows", move |db| {
            cleanup::sum_and_delete(db, &key, &backend)
        })
        .await
    }

    async fn get_cleanup_queue_row(&mut self, id: i64) -> Result<CleanupQueueRow> {
        self.run_now("get cleanup queue row", move |db| {
            cleanup::queue_row(db, id)
        })
        .await
    }

    async fn insert_cleanup_dlq(&mut self, row: &CleanupQueueRow) -> Result<()> {
        validate::backend(&row.backend_name)?;
        validate::text("object key", &row.object_key)?;
        validate::text("reason", &row.reason)?;
        validate::text("last error", &row.last_error)?;
        let row = row.clone();
        self.run_now("insert cleanup dlq row", move |db| {
            cleanup::insert_dlq(db, &row)
        })
        .await
    }

    async fn delete_cleanup_item(&mut self, id: i64) -> Result<()> {
        self.run_now("delete cleanup item", move |db| {
            cleanup::delete_item(db, id)
        })
        .await
    }

    async fn delete_cleanup_dlq_row(&mut self, id: i64) -> Result<Option<(String, i64)>> {
        self.run_now("delete cleanup dlq row", move |db| {
            cleanup::delete_dlq_row(db, id)
        })
        .await
    }

    async fn enqueue_cleanup_claimed(
        &mut self,
        entry: &CleanupEntry,
        claimed_by: &str,
    ) -> Result<CleanupClaim> {
        validate::outbox_entry(entry, claimed_by)?;
        let (entry, by) = (entry.clone(), claimed_by.to_owned());
        self.run_now("enqueue claimed cleanup", move |db| {
            cleanup::enqueue_claimed(db, &entry, &by)
        })
        .await
    }

    async fn lock_claimed_cleanup_row(
        &mut self,
        claim: &CleanupClaim,
    ) -> Result<Option<CleanupQueueRow>> {
        validate::text("claimant", &claim.claimed_by)?;
        let claim = claim.clone();
        self.run_now("lock claimed cleanup row", move |db| {
            cleanup::claimed_row(db, &claim)
        })
        .await
    }

    async fn reschedule_cleanup_row(
        &mut self,
        id: i64,
        backoff: Duration,
        last_error: &str,
    ) -> Result<()> {
        validate::text("last error", last_error)?;
        let last_error = last_error.to_owned();
        self.run_now("reschedule cleanup row", move |db| {
            cleanup::reschedule(db, id, backoff, &last_error)
        })
        .await
    }
}

#[async_trait]
impl BackendTx for SqliteTx {
    async fn delete_backend_rows(&mut self, table: BackendTable, backend: &str) -> Result<u64> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        self.run("delete backend rows", move |db| {
            backend::delete_rows(db, table, &backend)
        })
        .await
    }

    async fn delete_backend_quota_row(&mut self, backend: &str) -> Result<bool> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        self.run("delete backend quota row", move |db| {
            backend::delete_quota_row(db, &backend)
        })
        .await
    }

    async fn lock_backend_quota_row(&mut self, backend: &str) -> Result<bool> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        // The transaction's write lock (BEGIN IMMEDIATE) already excludes every writer: this
        // only says whether the row exists.
        self.run_now("lock backend quota row", move |db| {
            quota::backend_exists(db, &backend)
        })
        .await
    }
}

#[async_trait]
impl MultipartTx for SqliteTx {
    async fn lock_multipart_upload(&mut self, upload_id: &str) -> Result<Option<(String, String)>> {
        validate::id("upload id", upload_id)?;
        let id = upload_id.to_owned();
        // The transaction's write lock (BEGIN IMMEDIATE) already excludes every writer.
        self.run_now("lock multipart upload", move |db| {
            multipart::upload_home(db, &id)
        })
        .await
    }

    async fn get_part_bytes(&mut self, upload_id: &str) -> Result<Vec<PartBytes>> {
        validate::id("upload id", upload_id)?;
        let id = upload_id.to_owned();
        self.run("read part bytes", move |db| multipart::part_bytes(db, &id))
            .await
    }

    async fn upsert_part(
        &mut self,
        upload_id: &str,
        part_number: i32,
        etag: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<()> {
        validate::part(upload_id, part_number, etag, size, form)?;
        let (id, etag, form) = (upload_id.to_owned(), etag.to_owned(), form.clone());
        self.run_now("record part", move |db| {
            multipart::upsert_part(db, &id, part_number, &etag, size, &form)
        })
        .await
    }

    async fn delete_multipart_upload_row(&mut self, upload_id: &str) -> Result<bool> {
        validate::id("upload id", upload_id)?;
        let id = upload_id.to_owned();
        self.run("delete multipart upload", move |db| {
            multipart::delete_upload(db, &id)
        })
        .await
    }
}

#[async_trait]
impl VersionsTx for SqliteTx {
    async fn lock_bucket_versioning(&mut self, name: &str) -> Result<Option<Versioning>> {
        validate::bucket_lookup(name)?;
        let name = name.to_owned();
        // As lock_bucket: the write lock already excludes a deletion; this reads the state.
        self.run_now("lock bucket", move |db| {
            versions::bucket_versioning(db, &name)
        })
        .await
    }

    async fn current_version_id(&mut self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.run_now("read current version id", move |db| {
            versions::current_version_id(db, &key)
        })
        .await
    }

    async fn key_versions_for_update(&mut self, key: &str) -> Result<Vec<VersionCopy>> {
        let key = key.to_owned();
        self.run_now("read key versions", move |db| {
            versions::key_versions(db, &key)
        })
        .await
    }

    async fn archive_current_copies(
        &mut self,
        key: &str,
        version_id: &str,
        seq: i64,
    ) -> Result<u64> {
        let (key, vid) = (key.to_owned(), version_id.to_owned());
        self.run_now("archive current version", move |db| {
            versions::archive_current(db, &key, &vid, seq)
        })
        .await
    }

    async fn insert_delete_marker(&mut self, key: &str, version_id: &str, seq: i64) -> Result<()> {
        let (key, vid) = (key.to_owned(), version_id.to_owned());
        self.run_now("insert delete marker", move |db| {
            versions::insert_marker(db, &key, &vid, seq)
        })
        .await
    }

    async fn restore_version(&mut self, key: &str, version_id: &str) -> Result<u64> {
        let (key, vid) = (key.to_owned(), version_id.to_owned());
        self.run_now("restore version", move |db| {
            versions::restore(db, &key, &vid)
        })
        .await
    }

    async fn delete_version_rows(&mut self, key: &str, version_id: &str) -> Result<u64> {
        let (key, vid) = (key.to_owned(), version_id.to_owned());
        self.run_now("delete version rows", move |db| {
            versions::delete_rows(db, &key, &vid)
        })
        .await
    }

    async fn set_current_version_id(&mut self, key: &str, version_id: Option<&str>) -> Result<()> {
        let (key, vid) = (key.to_owned(), version_id.map(str::to_owned));
        self.run_now("set current version id", move |db| {
            versions::set_current_id(db, &key, vid.as_deref())
        })
        .await
    }
}

#[async_trait]
impl EncryptionTx for SqliteTx {
    async fn rewrap_key_row(
        &mut self,
        at: &s3o_core::WrappedKeyAt,
        expected: &[u8],
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool> {
        let (at, expected, new_key, new_key_id) = (
            at.clone(),
            expected.to_vec(),
            new_key.to_vec(),
            new_key_id.to_owned(),
        );
        self.run_now("rewrap data key", move |db| {
            encryption::rewrap_row(db, &at, &expected, &new_key, &new_key_id)
        })
        .await
    }

    async fn update_version_copy_form(
        &mut self,
        key: &str,
        version_id: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<bool> {
        let (key, vid, backend, form) = (
            key.to_owned(),
            version_id.to_owned(),
            backend.to_owned(),
            form.clone(),
        );
        self.run_now("update version copy form", move |db| {
            encryption::update_version_copy(db, &key, &vid, &backend, size, &form)
        })
        .await
    }
}

#[async_trait]
impl BucketTx for SqliteTx {
    async fn lock_bucket(&mut self, name: &str, _mode: BucketLock) -> Result<bool> {
        validate::bucket_lookup(name)?;
        let name = name.to_owned();
        // The transaction's write lock (BEGIN IMMEDIATE) already excludes every writer, a
        // bucket's deletion included: this only says whether the row exists.
        self.run_now("lock bucket", move |db| buckets::exists(db, &name))
            .await
    }

    async fn bucket_busy(&mut self, prefix: &str) -> Result<Option<BucketBusy>> {
        validate::prefix("bucket prefix", prefix)?;
        let prefix = prefix.to_owned();
        self.run_now("check bucket contents", move |db| {
            buckets::busy(db, &prefix)
        })
        .await
    }

    async fn delete_bucket_row(&mut self, name: &str) -> Result<bool> {
        validate::bucket_lookup(name)?;
        let name = name.to_owned();
        self.run_now("delete bucket", move |db| buckets::delete_row(db, &name))
            .await
    }

    async fn insert_bucket_if_absent(&mut self, spec: &BucketSpec) -> Result<bool> {
        validate::bucket_spec(spec)?;
        let spec = spec.clone();
        self.run_now("create bucket", move |db| {
            buckets::insert_if_absent(db, &spec)
        })
        .await
    }

    async fn update_bucket_config(&mut self, spec: &BucketSpec) -> Result<bool> {
        validate::bucket_spec(spec)?;
        let spec = spec.clone();
        self.run_now("update bucket config", move |db| {
            buckets::update_config(db, &spec)
        })
        .await
    }
}

#[async_trait]
impl QuotaTx for SqliteTx {
    async fn increment_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("quota delta", delta)?;
        let backend = backend.to_owned();
        self.run_now("increment backend quota", move |db| {
            quota::increment(db, &backend, delta)
        })
        .await
    }

    async fn decrement_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("quota delta", delta)?;
        let backend = backend.to_owned();
        self.run_now("decrement backend quota", move |db| {
            quota::adjust_unguarded(db, &backend, delta.saturating_neg())
        })
        .await
    }

    async fn adjust_backend_quota_unguarded(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        self.run_now("adjust backend quota", move |db| {
            quota::adjust_unguarded(db, &backend, delta)
        })
        .await
    }

    async fn decrement_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", delta)?;
        let backend = backend.to_owned();
        self.run_now("decrement orphan bytes", move |db| {
            quota::adjust_orphan(db, &backend, delta.saturating_neg())
        })
        .await
    }

    async fn increment_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", delta)?;
        let backend = backend.to_owned();
        self.run_now("increment orphan bytes", move |db| {
            quota::increment_orphan(db, &backend, delta)
        })
        .await
    }

    async fn all_backend_bytes_used(&mut self) -> Result<BTreeMap<String, i64>> {
        self.run("read all backend bytes used", quota::all_bytes_used)
            .await
    }

    async fn sum_charged_bytes_by_backend(&mut self) -> Result<BTreeMap<String, i64>> {
        self.run(
            "sum charged bytes by backend",
            quota::sum_charged_by_backend,
        )
        .await
    }

    async fn set_backend_bytes_used(&mut self, backend: &str, value: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("bytes used", value)?;
        let backend = backend.to_owned();
        self.run_now("set backend bytes used", move |db| {
            quota::set_bytes_used(db, &backend, value)
        })
        .await
    }
}
