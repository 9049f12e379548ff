use std::time::Duration;

use async_trait::async_trait;

use super::quota::QuotaDeltas;
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{
    CleanupClaim, CleanupEntry, CleanupOutcome, CleanupQueueRow, DeletedCopy, MAX_ATTEMPTS,
};
use crate::validate;

/// The outbox: enqueues one cleanup row per entry, born claimed by `instance`, and adds each
/// entry's bytes to `orphan` (to be charged with the transaction's other quota changes, in
/// backend order, by [`super::quota::apply_ledger_deltas`]). Returns what the caller may delete
/// at once. Call it inside the transaction that takes the copies out of the ledger, before the
/// quota rows are touched (queue rows are row locks; quota rows come last).
pub(crate) async fn enqueue_orphans(
    tx: &mut dyn TxAdapter,
    instance: &str,
    entries: Vec<CleanupEntry>,
    orphan: &mut QuotaDeltas,
) -> Result<Vec<DeletedCopy>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let claim = tx.enqueue_cleanup_claimed(&e, instance).await?;
        *orphan.entry(e.backend_name.clone()).or_default() += e.size_bytes;
        let storage_key = if e.storage_key.is_empty() {
            e.object_key
        } else {
            e.storage_key
        };
        out.push(DeletedCopy {
            backend_name: e.backend_name,
            size_bytes: e.size_bytes,
            storage_key,
            cleanup: claim,
        });
    }
    Ok(out)
}

struct EnqueueOrphaned<'a> {
    entry: &'a CleanupEntry,
    instance: &'a str,
}

#[async_trait]
impl TxBody for EnqueueOrphaned<'_> {
    type Output = DeletedCopy;

    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<DeletedCopy> {
        let mut orphan = QuotaDeltas::new();
        let mut out =
            enqueue_orphans(tx, self.instance, vec![self.entry.clone()], &mut orphan).await?;
        super::quota::apply_ledger_deltas(tx, &QuotaDeltas::new(), &orphan).await?;
        Ok(out.remove(0))
    }
}

/// Queues the deletion of bytes the ledger never recorded (an upload that was never committed,
/// a copy that was not admitted) and charges them to the backend's `orphan_bytes`, **in one
/// transaction**, so `orphan_bytes == Σ queue + DLQ bytes` holds at every commit. The row is
/// born claimed by this store (like every outbox row): the caller may delete the bytes and
/// complete the claim; otherwise a cleanup worker takes it over after its grace period.
/// Unknown backend ⇒ `UnknownBackend`; invalid entry ⇒ `InvalidInput`; nothing changes.
pub async fn enqueue_orphaned_bytes<R: Runner + ?Sized>(
    runner: &R,
    entry: &CleanupEntry,
) -> Result<DeletedCopy> {
    validate::outbox_entry(entry, runner.instance_id())?;
    with_tx_val(
        runner,
        &EnqueueOrphaned {
            entry,
            instance: runner.instance_id(),
        },
    )
    .await
}

/// Moves a (locked) queue row to the dead-letter table: insert, then delete, in the caller's
/// transaction. `orphan_bytes` stays: the bytes are still on the backend.
async fn dead_letter(tx: &mut dyn TxAdapter, row: &CleanupQueueRow, why: &str) -> Result<()> {
    tx.insert_cleanup_dlq(row).await?;
    tx.delete_cleanup_item(row.id).await?;
    tracing::warn!(
        id = row.id,
        backend = %row.backend_name,
        key = %row.object_key,
        size = row.size_bytes,
        attempts = row.attempts,
        why,
        "cleanup moved to dead-letter table"
    );
    Ok(())
}

struct Complete<'a> {
    claim: &'a CleanupClaim,
}

#[async_trait]
impl TxBody for Complete<'_> {
    type Output = CleanupOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<CleanupOutcome> {
        let Some(row) = tx.lock_claimed_cleanup_row(self.claim).await? else {
            return Ok(CleanupOutcome::StaleClaim);
        };
        tx.delete_cleanup_item(row.id).await?;
        if row.size_bytes > 0 {
            tx.decrement_orphan_bytes(&row.backend_name, row.size_bytes)
                .await?;
        }
        Ok(CleanupOutcome::Completed)
    }
}

/// The bytes of a claimed row are gone from the backend: deletes the row and releases its
/// bytes from `orphan_bytes` (clamped at zero), in one transaction, only while the row still
/// carries exactly `claim`. Otherwise (gone, reclaimed by another worker after the grace
/// cutoff, completed twice) `StaleClaim` and nothing changes: a stale claimant can never clear
/// another worker's live claim, nor release bytes twice.
#[tracing::instrument(name = "complete_cleanup_item", level = "debug", skip_all, fields(id = claim.id))]
pub async fn complete_cleanup_item<R: Runner + ?Sized>(
    runner: &R,
    claim: &CleanupClaim,
) -> Result<CleanupOutcome> {
    validate::text("claimant", &claim.claimed_by)?;
    with_tx_val(runner, &Complete { claim }).await
}

struct Retry<'a> {
    claim: &'a CleanupClaim,
    backoff: Duration,
    last_error: &'a str,
}

#[async_trait]
impl TxBody for Retry<'_> {
    type Output = CleanupOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<CleanupOutcome> {
        let Some(mut row) = tx.lock_claimed_cleanup_row(self.claim).await? else {
            return Ok(CleanupOutcome::StaleClaim);
        };
        if row.attempts.saturating_add(1) < MAX_ATTEMPTS {
            tx.reschedule_cleanup_row(row.id, self.backoff, self.last_error)
                .await?;
            return Ok(CleanupOutcome::Retried);
        }
        row.attempts = row.attempts.saturating_add(1);
        self.last_error.clone_into(&mut row.last_error);
        dead_letter(tx, &row, "cleanup reached the attempt limit").await?;
        Ok(CleanupOutcome::DeadLettered)
    }
}

/// A claimed row's delete failed: one more attempt, in one transaction, only while the row
/// still carries exactly `claim` (else `StaleClaim`, nothing changes). Below
/// [`MAX_ATTEMPTS`] the row is rescheduled `backoff` from now with `last_error` and its claim
/// cleared (`Retried`); the retry that reaches the limit moves it to the dead-letter table
/// instead (`DeadLettered`; its bytes stay in `orphan_bytes`). No row is ever left in the
/// queue at the limit, where nothing would claim it.
#[tracing::instrument(name = "retry_cleanup_item", level = "debug", skip_all, fields(id = claim.id))]
pub async fn retry_cleanup_item<R: Runner + ?Sized>(
    runner: &R,
    claim: &CleanupClaim,
    backoff: Duration,
    last_error: &str,
) -> Result<CleanupOutcome> {
    validate::text("claimant", &claim.claimed_by)?;
    validate::text("last error", last_error)?;
    with_tx_val(
        runner,
        &Retry {
            claim,
            backoff,
            last_error,
        },
    )
    .await
}

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
        dead_letter(tx, &row, "cleanup given up").await?;
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
