use async_trait::async_trait;

use super::quota::QuotaDeltas;
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::validate;

struct Sweep<'a> {
    key: &'a str,
    backend: &'a str,
}

#[async_trait]
impl TxBody for Sweep<'_> {
    type Output = i64;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<i64> {
        let (count, bytes) = tx
            .sum_and_delete_cleanup_queue_rows(self.key, self.backend)
            .await?;
        if count > 0 && bytes > 0 {
            tx.decrement_orphan_bytes(self.backend, bytes).await?;
        }
        Ok(count)
    }
}

/// Deletes every cleanup-queue row of `(key, backend)` and decrements the backend's
/// `orphan_bytes` once by their total size (clamped at zero; no SQL when nothing matched or
/// the total is zero). Used by the reconciler after it drops a stale location. Returns the
/// number of rows deleted.
#[tracing::instrument(name = "sweep_stale_cleanup_queue_rows", level = "debug", skip_all, fields(key = %key, backend = %backend))]
pub async fn sweep_stale_cleanup_queue_rows<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
) -> Result<i64> {
    validate::key(key)?;
    validate::backend(backend)?;
    with_tx_val(runner, &Sweep { key, backend }).await
}

struct ToDlq<'a> {
    id: i64,
    last_error: &'a str,
}

#[async_trait]
impl TxBody for ToDlq<'_> {
    type Output = bool;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<bool> {
        let mut row = match tx.get_cleanup_queue_row(self.id).await {
            Ok(row) => row,
            Err(StoreError::CleanupItemNotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if !self.last_error.is_empty() {
            self.last_error.clone_into(&mut row.last_error);
        }
        tx.insert_cleanup_dlq(&row).await?;
        tx.delete_cleanup_item(self.id).await?;
        tracing::warn!(
            id = row.id,
            backend = %row.backend_name,
            key = %row.object_key,
            size = row.size_bytes,
            attempts = row.attempts,
            "cleanup moved to dead-letter table"
        );
        Ok(true)
    }
}

/// Graduates an exhausted cleanup-queue row to the dead-letter table: read, insert, delete, in
/// one transaction. A non-empty `last_error` replaces the row's; an empty one keeps it.
/// `orphan_bytes` is deliberately untouched — the bytes are still on the backend. `false` when
/// the row is already gone (a benign race with another finaliser); an insert failure leaves the
/// queue row in place.
#[tracing::instrument(name = "move_cleanup_to_dlq", level = "debug", skip_all, fields(id))]
pub async fn move_cleanup_to_dlq<R: Runner + ?Sized>(
    runner: &R,
    id: i64,
    last_error: &str,
) -> Result<bool> {
    validate::text("last error", last_error)?;
    with_tx_val(runner, &ToDlq { id, last_error }).await
}

struct WriteOff<'a> {
    ids: &'a [i64],
}

#[async_trait]
impl TxBody for WriteOff<'_> {
    type Output = i64;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<i64> {
        let mut freed = QuotaDeltas::new();
        let mut n = 0;
        for &id in self.ids {
            if let Some((backend, size)) = tx.delete_cleanup_dlq_row(id).await? {
                *freed.entry(backend).or_default() += size;
                n += 1;
            }
        }
        for (backend, bytes) in &freed {
            if *bytes > 0 {
                tx.decrement_orphan_bytes(backend, *bytes).await?;
            }
        }
        Ok(n)
    }
}

/// Operator write-off: deletes the given DLQ rows and releases their bytes from each backend's
/// `orphan_bytes` (in backend order), in one transaction. Unknown ids are skipped. Returns the
/// number of rows written off.
#[tracing::instrument(name = "write_off_cleanup_dlq", level = "debug", skip_all, fields(ids = ids.len()))]
pub async fn write_off_cleanup_dlq<R: Runner + ?Sized>(runner: &R, ids: &[i64]) -> Result<i64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    with_tx_val(runner, &WriteOff { ids: &sorted }).await
}
