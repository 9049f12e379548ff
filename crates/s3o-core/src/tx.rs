//! The transactional seam.
//!
//! An engine implements [`Runner`] (begin a transaction) and [`Transaction`] (its primitives,
//! each a single statement, plus commit and rollback). Every multi-statement operation in
//! [`crate::ops`] is written once against [`TxAdapter`] and run with [`with_tx_val`], which
//! commits on `Ok`, rolls back on `Err`, and reruns the whole body (a bounded number of times)
//! when the database reports a retryable conflict (serialization failure, deadlock, busy).
//! Bodies are therefore written to be safe to rerun: they read everything they act on from
//! locked rows inside the transaction.
//!
//! Lock order, global for every operation: key locks first (sorted, de-duplicated), then row
//! locks, then `backend_quotas` rows in sorted backend order (see [`crate::ops::apply_quota_deltas`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{
    BucketBusy, BucketLock, BucketSpec, CleanupClaim, CleanupEntry, CleanupQueueRow, ExistingCopy,
    KeyedExistingCopy, ObjectLocation, PartBytes, PendingObject, StoredForm,
};

/// A boxed, `Send` future: what transaction closures return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Transactional primitives on `pending_objects`.
#[async_trait]
pub trait PendingTx: Send {
    /// Locks the intent row (`FOR UPDATE` on PostgreSQL) and returns it as stored; `None` when
    /// it no longer exists (another reaper resolved it). Promotion commits this locked row,
    /// never the caller's copy of it.
    async fn claim_pending(&mut self, intent_id: &str) -> Result<Option<PendingObject>>;
    /// Inserts an intent; `created_at` zero means now. Unknown backend ⇒ `UnknownBackend`.
    async fn insert_pending(&mut self, p: &PendingObject) -> Result<()>;
    /// Deletes an intent; missing is a no-op.
    async fn delete_pending(&mut self, intent_id: &str) -> Result<()>;
    /// Deletes every intent of a backend.
    async fn delete_pending_by_backend(&mut self, backend: &str) -> Result<()>;
}

/// Transactional primitives on `object_locations`.
#[async_trait]
pub trait ObjectsTx: Send {
    /// Every copy of `key`, row-locked, ordered by `(created_at, backend_name)`. Empty when none.
    async fn get_existing_copies_for_update(&mut self, key: &str) -> Result<Vec<ExistingCopy>>;
    /// Inserts a copy with the normalised stored form; `created_at` is `loc.created_at`, or now
    /// when that is zero. A backend without a quota row ⇒ `UnknownBackend` (checked in the same
    /// statement, not a foreign-key error).
    async fn insert_object_location(&mut self, loc: &ObjectLocation) -> Result<()>;
    /// Deletes every copy of `key`.
    async fn delete_object_copies(&mut self, key: &str) -> Result<()>;
    /// Every copy of any of `keys`, row-locked. Empty input ⇒ empty result without SQL.
    async fn get_copies_for_keys_for_update(
        &mut self,
        keys: &[String],
    ) -> Result<Vec<KeyedExistingCopy>>;
    /// Deletes every copy of any of `keys`. Empty input ⇒ no-op.
    async fn delete_objects_by_keys(&mut self, keys: &[String]) -> Result<()>;
    /// Whether `(key, backend)` has a row.
    async fn check_object_exists_on_backend(&mut self, key: &str, backend: &str) -> Result<bool>;
    /// Row-locks `(key, backend)` and returns its full payload; `None` when the row is gone.
    async fn lock_object_on_backend(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<Option<ObjectLocation>>;
    /// Deletes the single `(key, backend)` row.
    async fn delete_object_from_backend(&mut self, key: &str, backend: &str) -> Result<()>;
    /// Inserts unless `(key, backend)` exists, with the same column mapping as
    /// [`ObjectsTx::insert_object_location`]. `true` when inserted. Unknown backend ⇒
    /// `UnknownBackend`.
    async fn insert_object_location_if_not_exists(&mut self, loc: &ObjectLocation) -> Result<bool>;
    /// Copies the source row (size, every stored-form column and `created_at`: a replica is the
    /// same version of the object) to `target`, only
    /// if the source still exists and the target has no copy. Returns the size the new row was
    /// written with, `None` when nothing was inserted. Unknown target ⇒ `UnknownBackend`.
    async fn insert_replica_conditional(
        &mut self,
        key: &str,
        target: &str,
        source: &str,
    ) -> Result<Option<i64>>;
    /// Rewrites the size and stored form of `(key, backend)`; `false` when the row is gone.
    async fn update_object_form(
        &mut self,
        key: &str,
        backend: &str,
        size_bytes: i64,
        form: &StoredForm,
    ) -> Result<bool>;
    /// Replaces the tags of every copy of `key` (the `tags` column only); returns how many
    /// copies it changed (0: the key has none).
    async fn set_object_tags(&mut self, key: &str, tags: &BTreeMap<String, String>) -> Result<u64>;
}

/// Transactional primitives on `cleanup_queue` and `cleanup_dlq`.
#[async_trait]
pub trait CleanupTx: Send {
    /// Deletes every queue row of `(key, backend)`; returns `(count, Σ size_bytes)`.
    async fn sum_and_delete_cleanup_queue_rows(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<(i64, i64)>;
    /// The full queue row; `CleanupItemNotFound` when gone.
    async fn get_cleanup_queue_row(&mut self, id: i64) -> Result<CleanupQueueRow>;
    /// Inserts a DLQ row from a queue row (`original_id = row.id`,
    /// `first_enqueued_at = row.created_at`, now when zero).
    async fn insert_cleanup_dlq(&mut self, row: &CleanupQueueRow) -> Result<()>;
    /// Deletes a queue row; does not touch `orphan_bytes`.
    async fn delete_cleanup_item(&mut self, id: i64) -> Result<()>;
    /// Deletes one DLQ row, returning its `(backend, size_bytes)`; `None` when gone.
    async fn delete_cleanup_dlq_row(&mut self, id: i64) -> Result<Option<(String, i64)>>;
    /// Inserts a queue row born claimed by `claimed_by` (claim stamped now, by the engine's
    /// clock; due now) and returns its claim. Does not touch `orphan_bytes`. Unknown backend ⇒
    /// `UnknownBackend`.
    async fn enqueue_cleanup_claimed(
        &mut self,
        entry: &CleanupEntry,
        claimed_by: &str,
    ) -> Result<CleanupClaim>;
    /// Row-locks the queue row if it still carries exactly `claim` and returns it; `None` when
    /// it is gone or carries another claim.
    async fn lock_claimed_cleanup_row(
        &mut self,
        claim: &CleanupClaim,
    ) -> Result<Option<CleanupQueueRow>>;
    /// `attempts += 1`, `next_retry = now + backoff`, records `last_error`, clears the claim.
    async fn reschedule_cleanup_row(
        &mut self,
        id: i64,
        backoff: std::time::Duration,
        last_error: &str,
    ) -> Result<()>;
}

/// Transactional primitives on a backend's quota counters. Each locks what it changes until
/// commit: the backend's quota row, or for a PostgreSQL charge one of its quota stripes (the
/// row only when the stripe's grant cannot take the charge).
#[async_trait]
pub trait QuotaTx: Send {
    /// Charges `delta` committed bytes when the backend is unlimited or `bytes_used +
    /// orphan_bytes + delta <= bytes_limit` (exactly; on PostgreSQL through a stripe's grant,
    /// else under the quota row's lock); otherwise `NoSpaceAvailable`. Unknown backend ⇒
    /// `UnknownBackend`. A charge that would take `bytes_used + orphan_bytes` past `i64::MAX`
    /// (possible only on an unlimited backend) ⇒ `InvalidInput`
    /// ([`crate::validate::quota_overflow`]).
    async fn increment_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()>;
    /// `bytes_used = max(0, bytes_used - delta)`. Unknown backend ⇒ no-op.
    async fn decrement_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()>;
    /// `bytes_used = max(0, bytes_used + delta)` without the limit guard (stored-form rewrites:
    /// the bytes are already on the backend). A positive `delta` that would take `bytes_used +
    /// orphan_bytes` past `i64::MAX` ⇒ `InvalidInput`.
    async fn adjust_backend_quota_unguarded(&mut self, backend: &str, delta: i64) -> Result<()>;
    /// `orphan_bytes = max(0, orphan_bytes - delta)`.
    async fn decrement_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()>;
    /// `orphan_bytes += delta` (no limit guard: the bytes already occupy the backend). Taking
    /// `bytes_used + orphan_bytes` past `i64::MAX` ⇒ `InvalidInput`.
    async fn increment_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()>;
    /// `bytes_used` of every backend, row-locked.
    async fn all_backend_bytes_used(&mut self) -> Result<BTreeMap<String, i64>>;
    /// What each backend's `bytes_used` must be: Σ `size_bytes` of its `object_locations`
    /// plus Σ `size_bytes` of the parts of its open multipart uploads (backends with neither
    /// absent).
    async fn sum_charged_bytes_by_backend(&mut self) -> Result<BTreeMap<String, i64>>;
    /// Sets `bytes_used` without the limit guard.
    async fn set_backend_bytes_used(&mut self, backend: &str, value: i64) -> Result<()>;
}

/// Transactional primitives on `multipart_uploads` and `multipart_parts`.
#[async_trait]
pub trait MultipartTx: Send {
    /// Locks the upload row until commit (`FOR UPDATE` on PostgreSQL; SQLite's one writer
    /// already excludes every other) and returns its `(object_key, backend_name)`; `None`
    /// when there is no such upload.
    async fn lock_multipart_upload(&mut self, upload_id: &str) -> Result<Option<(String, String)>>;
    /// The size and path of every recorded part of the upload, by part number (empty when
    /// none). Read under the upload's row lock, so no part changes meanwhile.
    async fn get_part_bytes(&mut self, upload_id: &str) -> Result<Vec<PartBytes>>;
    /// Inserts the part or replaces every column of the one recorded under its number
    /// (`created_at = now`). The caller holds the upload's row lock.
    async fn upsert_part(
        &mut self,
        upload_id: &str,
        part_number: i32,
        etag: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<()>;
    /// Deletes the upload row; its parts go with it (`ON DELETE CASCADE`). `false` when it
    /// had no row.
    async fn delete_multipart_upload_row(&mut self, upload_id: &str) -> Result<bool>;
}

/// Tables holding rows that reference a backend, in the order
/// [`crate::ops::delete_backend_data`] clears them (the quota row itself goes last).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendTable {
    /// `cleanup_queue`.
    CleanupQueue,
    /// `cleanup_dlq`.
    CleanupDlq,
    /// `pending_objects`.
    PendingObjects,
    /// `multipart_uploads` (their parts cascade).
    MultipartUploads,
    /// `object_locations`.
    ObjectLocations,
    /// `object_versions` (noncurrent copies; delete markers reference no backend).
    ObjectVersions,
    /// `backend_usage`.
    BackendUsage,
}

impl BackendTable {
    /// Removal order: queue and dead letters first, copies after intents and uploads, usage
    /// last; the `backend_quotas` row follows all of them.
    pub const REMOVAL_ORDER: [BackendTable; 7] = [
        BackendTable::CleanupQueue,
        BackendTable::CleanupDlq,
        BackendTable::PendingObjects,
        BackendTable::MultipartUploads,
        BackendTable::ObjectLocations,
        BackendTable::ObjectVersions,
        BackendTable::BackendUsage,
    ];

    /// The SQL table name (identical on both engines).
    pub const fn table_name(self) -> &'static str {
        match self {
            BackendTable::CleanupQueue => "cleanup_queue",
            BackendTable::CleanupDlq => "cleanup_dlq",
            BackendTable::PendingObjects => "pending_objects",
            BackendTable::MultipartUploads => "multipart_uploads",
            BackendTable::ObjectLocations => "object_locations",
            BackendTable::ObjectVersions => "object_versions",
            BackendTable::BackendUsage => "backend_usage",
        }
    }
}

/// Transactional primitives for removing a backend.
#[async_trait]
pub trait BackendTx: Send {
    /// Deletes every row of `table` whose `backend_name` is `backend`; returns how many.
    async fn delete_backend_rows(&mut self, table: BackendTable, backend: &str) -> Result<u64>;
    /// Deletes the backend's `backend_quotas` row; `false` when it had none.
    async fn delete_backend_quota_row(&mut self, backend: &str) -> Result<bool>;
    /// Row-locks the backend's quota row (`FOR UPDATE` on PostgreSQL), so writers to the
    /// backend wait for the removal and then find it gone; `false` when it has none.
    async fn lock_backend_quota_row(&mut self, backend: &str) -> Result<bool>;
}

/// Transactional primitives on `buckets`.
#[async_trait]
pub trait BucketTx: Send {
    /// Locks the bucket row in `mode` until commit and says whether it exists. PostgreSQL:
    /// `SELECT … FOR KEY SHARE` ([`BucketLock::Write`]) or `FOR UPDATE`
    /// ([`BucketLock::Delete`]); a writer waiting on a deletion finds the row gone once the
    /// deletion commits. SQLite: a plain read (the transaction already holds the only write
    /// lock).
    async fn lock_bucket(&mut self, name: &str, mode: BucketLock) -> Result<bool>;
    /// What the keys under `prefix` still hold, in one statement: copies first, then multipart
    /// uploads, then pending intents; `None` when nothing.
    async fn bucket_busy(&mut self, prefix: &str) -> Result<Option<BucketBusy>>;
    /// Deletes the bucket row; `false` when it had none.
    async fn delete_bucket_row(&mut self, name: &str) -> Result<bool>;
    /// Inserts the bucket (`created_at = now`) unless its name exists; `true` when inserted.
    async fn insert_bucket_if_absent(&mut self, spec: &BucketSpec) -> Result<bool>;
    /// Sets the configuration-owned settings of an existing bucket (replication factor,
    /// quotas, routing), keeping `created_at` and `extra`; `false` when it has no row.
    async fn update_bucket_config(&mut self, spec: &BucketSpec) -> Result<bool>;
}

/// Transactional primitives for versioning (`object_versions`, `object_locations.version_id`,
/// `buckets.versioning`; DESIGN decision 25). Called with the key lock held.
#[async_trait]
pub trait VersionsTx: Send {
    /// Locks the bucket row as [`BucketTx::lock_bucket`] does in [`BucketLock::Write`] mode and
    /// returns its versioning state in the same statement; `None` when the bucket has no row.
    async fn lock_bucket_versioning(
        &mut self,
        name: &str,
    ) -> Result<Option<crate::versioning::Versioning>>;
    /// The version id of `key`'s current copies (`"null"` when unset); `None` when the key has
    /// no copy in `object_locations`.
    async fn current_version_id(&mut self, key: &str) -> Result<Option<String>>;
    /// Every row of `object_versions` for `key`, row-locked, newest first (`seq` descending,
    /// then backend name). Empty when none.
    async fn key_versions_for_update(
        &mut self,
        key: &str,
    ) -> Result<Vec<crate::versioning::VersionCopy>>;
    /// Copies every current copy of `key` (every column, `created_at` and the stored form
    /// unchanged) into `object_versions` as version `version_id` with `seq`; returns the rows
    /// copied. The caller deletes the current copies in the same transaction.
    async fn archive_current_copies(
        &mut self,
        key: &str,
        version_id: &str,
        seq: i64,
    ) -> Result<u64>;
    /// Writes a delete marker of `key` (`created_at` = now) into `object_versions`.
    async fn insert_delete_marker(&mut self, key: &str, version_id: &str, seq: i64) -> Result<()>;
    /// Copies every copy of noncurrent version `version_id` of `key` into `object_locations`
    /// as the current version (every column unchanged, `version_id` = it, or `NULL` for
    /// `"null"`); returns the rows copied. The caller deletes the version's rows.
    async fn restore_version(&mut self, key: &str, version_id: &str) -> Result<u64>;
    /// Deletes every row of version `version_id` of `key` from `object_versions`; returns the
    /// rows deleted.
    async fn delete_version_rows(&mut self, key: &str, version_id: &str) -> Result<u64>;
    /// Sets the version id of `key`'s current copies (`None` = the null version).
    async fn set_current_version_id(&mut self, key: &str, version_id: Option<&str>) -> Result<()>;
}

/// Transactional primitives of key rotation (see [`crate::ops::rewrap_stored_key`]).
#[async_trait]
pub trait EncryptionTx: Send {
    /// Replaces the packed key and key id of the row `at`, in one statement, only while the
    /// row still holds exactly `expected` (and, for copies, parts and intents, is encrypted):
    /// a row replaced, removed or re-wrapped since the caller read it is left alone. Nothing
    /// else of the row changes. `true` when the row was changed.
    async fn rewrap_key_row(
        &mut self,
        at: &crate::types::WrappedKeyAt,
        expected: &[u8],
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool>;
    /// Rewrites the size, encryption columns (`encrypted`, `encryption_key`, `key_id`,
    /// `plaintext_size`: cleared when `form` is plaintext) and `storage_key` of the copy of
    /// noncurrent version `version_id` of `key` on `backend` to `size` and `form`'s; every
    /// other column stays. `false` when there is no such row. Called under the key lock.
    async fn update_version_copy_form(
        &mut self,
        key: &str,
        version_id: &str,
        backend: &str,
        size: i64,
        form: &crate::types::StoredForm,
    ) -> Result<bool>;
}

/// The per-engine transactional seam: every primitive a core operation may call.
#[async_trait]
pub trait TxAdapter:
    PendingTx
    + ObjectsTx
    + CleanupTx
    + QuotaTx
    + BackendTx
    + BucketTx
    + MultipartTx
    + VersionsTx
    + EncryptionTx
{
    /// Takes a transaction-scoped lock on `key`, released at commit or rollback. PostgreSQL:
    /// `pg_advisory_xact_lock(KEY_LOCK_CLASS, hashtext(key))`; SQLite: no-op, because its one
    /// writer (`BEGIN IMMEDIATE`) already serialises every write transaction.
    async fn acquire_key_lock(&mut self, key: &str) -> Result<()>;
}

/// An open transaction: the adapter plus its end.
///
/// Dropping a transaction without committing must roll it back (or discard its connection);
/// a caller's cancellation therefore never commits half an operation.
#[async_trait]
pub trait Transaction: TxAdapter {
    /// Commits. An error here means the outcome is unknown only for connection failures.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Rolls back.
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// Opens transactions. Implemented by each engine's store.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Begins a write transaction.
    async fn begin(&self) -> Result<Box<dyn Transaction>>;

    /// How many times [`with_tx_val`] runs a body that keeps failing with a retryable
    /// conflict (default 5, counting the first run).
    fn max_attempts(&self) -> u32 {
        5
    }
    /// This store's instance id: the claimant of cleanup rows born in its transactions.
    fn instance_id(&self) -> &str;

    /// How long [`with_tx_val`] may keep retrying (see [`RetryBudget`]).
    fn retry_budget(&self) -> RetryBudget {
        RetryBudget::default()
    }
}

/// The bound on retries of one [`with_tx_val`] call.
///
/// After a retryable failure the runner sleeps a random time in `[0, min(max_backoff,
/// first_backoff × 2^(retry-1))]` ("full jitter", so colliding writers spread out instead of
/// colliding again in lockstep), and starts another attempt only while the time since the
/// call began plus that sleep stays within `max_total`. A call therefore returns within
/// `max_total` plus the duration of one attempt, which the engine's own lock wait bounds
/// (`busy_timeout` on SQLite, `lock_timeout` on PostgreSQL, 5 s each by default): at most
/// about 15 s with the defaults, where five unspaced attempts of a full busy wait each took
/// 25 s before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudget {
    /// Upper bound of the first backoff (default 10 ms).
    pub first_backoff: Duration,
    /// Upper bound of any one backoff (default 500 ms).
    pub max_backoff: Duration,
    /// No new attempt starts later than this after the call began (default 10 s).
    pub max_total: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
            max_total: Duration::from_secs(10),
        }
    }
}

impl RetryBudget {
    /// The sleep before retry number `retry` (1 = the first retry), drawn from `rng`.
    pub fn backoff(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self
            .first_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.u64(0..=micros))
    }
}

/// A transaction body: a multi-statement operation run inside one transaction.
///
/// Closures of the shape `|tx| Box::pin(async move { ... })` returning [`BoxFuture`] implement
/// it; operations in [`crate::ops`] implement it on small structs that borrow their input.
#[async_trait]
pub trait TxBody: Send + Sync {
    /// What the body returns on success.
    type Output: Send;
    /// Runs the body against the open transaction. May be called more than once (retries).
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output>;
}

#[async_trait]
impl<T, F> TxBody for F
where
    T: Send,
    F: for<'c> Fn(&'c mut dyn TxAdapter) -> BoxFuture<'c, Result<T>> + Send + Sync,
{
    type Output = T;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<T> {
        (self)(tx).await
    }
}

/// Pins a closure to the higher-ranked shape [`TxBody`] needs, which closure inference does not
/// find on its own: `with_tx_val(&store, &tx_fn(|tx| Box::pin(async move { ... }))).await`.
/// Owned data the body needs should be cloned inside the closure, since it may run again on
/// retry.
pub fn tx_fn<T, F>(f: F) -> F
where
    F: for<'c> Fn(&'c mut dyn TxAdapter) -> BoxFuture<'c, Result<T>> + Send + Sync,
{
    f
}

impl dyn Runner + '_ {
    /// Runs `body` in one transaction: commit on `Ok`, rollback on `Err`.
    pub async fn with_tx<B: TxBody<Output = ()> + ?Sized>(&self, body: &B) -> Result<()> {
        with_tx_val(self, body).await
    }
}

/// Runs `body` in one transaction and surfaces its value.
///
/// `Ok(value)` only when the body succeeded *and* the commit succeeded; on any error (begin,
/// body, commit) the body's value is dropped and the error returned — the Rust form of the
/// reference's "zero value on error". Retryable conflicts (serialization failure, deadlock,
/// busy) rerun the body, at most [`Runner::max_attempts`] times in all and within
/// [`Runner::retry_budget`]: each retry waits a jittered, exponentially growing backoff, and
/// no attempt starts once the budget's total would be exceeded, so the call returns within
/// `max_total` plus one attempt. When the budget or the attempts run out, the last
/// retryable error is returned. Overload (a pool wait timeout) is not retried: the caller
/// already waited its share.
pub async fn with_tx_val<R, B>(runner: &R, body: &B) -> Result<B::Output>
where
    R: Runner + ?Sized,
    B: TxBody + ?Sized,
{
    let attempts = runner.max_attempts().max(1);
    let budget = runner.retry_budget();
    // tokio's clock, so tests can run the budget on paused (virtual) time.
    let started = tokio::time::Instant::now();
    let mut rng = fastrand::Rng::new();
    let mut attempt = 1;
    loop {
        match run_once(runner, body).await {
            Err(e) if e.is_retryable() && attempt < attempts => {
                let pause = budget.backoff(attempt, &mut rng);
                if started.elapsed() + pause > budget.max_total {
                    tracing::debug!(attempt, error = %e, "retry budget spent");
                    return Err(e);
                }
                tracing::debug!(attempt, ?pause, error = %e, "retrying transaction after conflict");
                sleep(pause).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Waits `d` on tokio's timer (every engine runs on tokio).
async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

async fn run_once<R, B>(runner: &R, body: &B) -> Result<B::Output>
where
    R: Runner + ?Sized,
    B: TxBody + ?Sized,
{
    let mut tx = runner.begin().await?;
    match body.run(&mut *tx).await {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rb) = tx.rollback().await {
                tracing::warn!(error = %rb, "rollback failed after transaction error");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{DbErrorKind, StoreError};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A runner whose every `begin` takes `cost` of (virtual) time and reports `Busy`.
    struct AlwaysBusy {
        begins: Arc<AtomicU32>,
        cost: Duration,
    }

    #[async_trait]
    impl Runner for AlwaysBusy {
        async fn begin(&self) -> Result<Box<dyn Transaction>> {
            self.begins.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.cost).await;
            Err(StoreError::database(
                DbErrorKind::Busy,
                "begin",
                "database is locked",
            ))
        }

        fn instance_id(&self) -> &str {
            "always-busy"
        }
    }

    async fn run(cost: Duration) -> (u32, Duration, Result<()>) {
        let begins = Arc::new(AtomicU32::new(0));
        let runner = AlwaysBusy {
            begins: begins.clone(),
            cost,
        };
        let body = tx_fn(|_tx| Box::pin(async { Ok(()) }));
        let t0 = tokio::time::Instant::now();
        let r = with_tx_val(&runner, &body).await;
        (begins.load(Ordering::SeqCst), t0.elapsed(), r)
    }

    #[tokio::test(start_paused = true)]
    async fn busy_waits_are_bounded_by_the_budget() {
        // Each attempt waits a full 5 s busy timeout: the budget stops after the second
        // attempt (≈10 s) where five unspaced attempts took 25 s.
        let budget = RetryBudget::default();
        let (begins, took, r) = run(Duration::from_secs(5)).await;
        assert_eq!(r.unwrap_err().db_kind(), Some(DbErrorKind::Busy));
        assert_eq!(begins, 2);
        assert!(
            took <= budget.max_total + Duration::from_secs(5),
            "{took:?}"
        );
        assert!(took >= Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn quick_conflicts_retry_with_growing_jittered_backoff() {
        let (begins, took, r) = run(Duration::ZERO).await;
        assert!(r.is_err());
        assert_eq!(begins, 5, "max_attempts bounds fast conflicts");
        // Four backoffs of at most 10, 20, 40 and 80 ms.
        assert!(took <= Duration::from_millis(150), "{took:?}");
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let budget = RetryBudget::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for retry in 1..=12u32 {
            let ceiling = (budget.first_backoff * 2u32.pow(retry - 1)).min(budget.max_backoff);
            let draws: Vec<Duration> = (0..200).map(|_| budget.backoff(retry, &mut rng)).collect();
            assert!(draws.iter().all(|d| *d <= ceiling), "retry {retry}");
            // Jitter: the draws spread over the range instead of repeating one value.
            assert!(draws.iter().any(|d| *d < ceiling / 2), "retry {retry}");
        }
        assert!(budget.backoff(40, &mut rng) <= budget.max_backoff);
    }
}
