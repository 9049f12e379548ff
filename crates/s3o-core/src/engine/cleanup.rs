//! The cleanup queue of physical deletes and its dead-letter table.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;
use crate::types::{CleanupDlqItem, CleanupItem};

/// Cleanup queue and orphan-byte tracking.
#[async_trait]
pub trait CleanupStore: Runner {
    /// Enqueues a physical delete (`created_at = next_retry = now`, unclaimed). Does not touch
    /// `orphan_bytes`: pair it with [`CleanupStore::increment_orphan_bytes`]. Only for bytes
    /// the ledger never held (e.g. an upload found without an intent): every operation that
    /// takes a copy out of the ledger already enqueues its bytes in its own transaction.
    async fn enqueue_cleanup(
        &self,
        backend: &str,
        key: &str,
        reason: &str,
        size: i64,
    ) -> Result<()>;
    /// Atomically claims up to `limit` due rows for `instance_id`: rows with `next_retry <=
    /// now`, `attempts < 10` and no claim or a claim made more than `stale_after` ago
    /// (`claimed_at < now - stale_after`; now is the database's clock, which also stamped the
    /// claim), oldest first.
    /// Concurrent claimers (tasks or processes) get disjoint rows. `reclaimed` is true on rows
    /// whose earlier claim had gone stale. Returned ordered by id.
    async fn claim_pending_cleanups(
        &self,
        limit: i64,
        instance_id: &str,
        stale_after: Duration,
    ) -> Result<Vec<CleanupItem>>;
    /// Unguarded `orphan_bytes += amount`; unknown backend ⇒ no-op. Taking `bytes_used +
    /// orphan_bytes` past `i64::MAX` ⇒ `InvalidInput`, nothing changed.
    async fn increment_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()>;
    /// `orphan_bytes = max(0, orphan_bytes − amount)`; unknown backend ⇒ no-op.
    async fn decrement_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()>;
    /// DLQ rows of `backend` (all when `None`), most recently moved first, at most `limit`
    /// (≤ 0 ⇒ 1000).
    async fn list_cleanup_dlq(
        &self,
        backend: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CleanupDlqItem>>;
    /// Per backend with any queue or DLQ row: `(Σ size_bytes of cleanup_queue rows of every
    /// attempt count, Σ size_bytes of cleanup_dlq rows)`. What `orphan_bytes` should equal
    /// when every orphan went through the queue; `s3o verify` reports the difference.
    async fn cleanup_bytes_by_backend(&self) -> Result<BTreeMap<String, (i64, i64)>>;
    /// Moves DLQ rows (of `backend`, or all) back into the queue with fresh defaults
    /// (attempts 0, due now, unclaimed) in one statement; `orphan_bytes` untouched. Returns
    /// the number moved.
    async fn requeue_cleanup_dlq(&self, backend: Option<&str>) -> Result<i64>;
    /// As [`CleanupStore::requeue_cleanup_dlq`], for the DLQ rows with these ids (unknown ids
    /// are skipped; rows go back in id order). Returns the number moved.
    async fn requeue_cleanup_dlq_ids(&self, ids: &[i64]) -> Result<i64>;
    /// One page of the cleanup queue (rows of every state and attempt count, of `backend` or
    /// all), ordered by id: rows with `id > after_id`, at most `limit` (≤ 0 ⇒ 1000). Pass the
    /// last id back as `after_id` for the next page: a cursor that stays exact while rows
    /// come and go (`reclaimed` false).
    async fn list_cleanup_queue(
        &self,
        backend: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<CleanupItem>>;
}
