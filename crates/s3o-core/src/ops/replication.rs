use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{DeletedCopy, ReplicaOutcome};
use crate::validate;

struct Replica<'a> {
    key: &'a str,
    target: &'a str,
    source: &'a str,
    expected: &'a str,
}

#[async_trait]
impl TxBody for Replica<'_> {
    type Output = ReplicaOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<ReplicaOutcome> {
        tx.acquire_key_lock(self.key).await?;
        let Some(src) = tx.lock_object_on_backend(self.key, self.source).await? else {
            return Ok(ReplicaOutcome::SourceGone);
        };
        let current = src.form.storage_path(self.key);
        if current != self.expected {
            return Ok(ReplicaOutcome::VersionChanged {
                current_storage_key: current.to_owned(),
            });
        }
        // The source row is locked and the key too: the only reason left to insert nothing
        // is a copy already on the target.
        let Some(size) = tx
            .insert_replica_conditional(self.key, self.target, self.source)
            .await?
        else {
            return Ok(ReplicaOutcome::TargetHasCopy);
        };
        if size > 0 {
            tx.increment_backend_quota(self.target, size).await?;
        }
        Ok(ReplicaOutcome::Recorded { bytes: size })
    }
}

/// Adds a copy of `key` on `target`, copied from the row on `source`, only if the source copy
/// is still the version the caller copied (its physical path, [`crate::StoredForm::storage_path`],
/// equals `expected_storage_key`, read before copying the bytes) and the target has none. The
/// target is charged the size read from the source row in the same transaction, so
/// `bytes_used` agrees with `size_bytes`. Returns [`ReplicaOutcome::Recorded`] with that size,
/// or, with nothing changed, `SourceGone`, `VersionChanged` (with the source's current path)
/// or `TargetHasCopy`, checked in that order under the key lock. The guarded charge may fail
/// with `NoSpaceAvailable`, rolling the replica back. `target == source` ⇒ `InvalidInput`.
#[tracing::instrument(name = "record_replica", level = "debug", skip_all, fields(key = %key, target = %target, source = %source))]
pub async fn record_replica<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    target: &str,
    source: &str,
    expected_storage_key: &str,
) -> Result<ReplicaOutcome> {
    validate::key(key)?;
    validate::backend(target)?;
    validate::backend(source)?;
    validate::storage_path(expected_storage_key)?;
    if target == source {
        return Err(StoreError::invalid(
            "replica target",
            format!("the source and the target are both {source:?}"),
        ));
    }
    with_tx_val(
        runner,
        &Replica {
            key,
            target,
            source,
            expected: expected_storage_key,
        },
    )
    .await
}

struct RemoveExcess<'a> {
    instance: &'a str,
    key: &'a str,
    backend: &'a str,
    factor: usize,
}

#[async_trait]
impl TxBody for RemoveExcess<'_> {
    type Output = Option<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Option<DeletedCopy>> {
        tx.acquire_key_lock(self.key).await?;
        let copies = tx.get_existing_copies_for_update(self.key).await?;
        if copies.len() <= self.factor {
            return Ok(None);
        }
        let Some(target) = copies.iter().find(|c| c.backend_name == self.backend) else {
            return Ok(None);
        };
        let holds_dek = |c: &&crate::types::ExistingCopy| c.encrypted && c.has_dek;
        let other_dek = copies
            .iter()
            .filter(|c| c.backend_name != self.backend)
            .any(|c| holds_dek(&c));
        let keyless_sibling = copies
            .iter()
            .any(|c| c.backend_name != self.backend && c.encrypted && !c.has_dek);
        if holds_dek(&target) && !other_dek && keyless_sibling {
            return Err(StoreError::CopyHoldsOnlyDek {
                key: self.key.to_owned(),
                backend: self.backend.to_owned(),
            });
        }
        tx.delete_object_from_backend(self.key, self.backend)
            .await?;
        super::objects::remove_one_copy(tx, self.instance, self.key, target, "excess copy")
            .await
            .map(Some)
    }
}

/// Removes the copy of `key` on `backend` if the key still has more than `factor` copies,
/// re-checked under the key lock. Refuses (`CopyHoldsOnlyDek`) to drop the only copy holding
/// the data-encryption key while a sibling is encrypted without one. Debits the locked size
/// and enqueues the copy's bytes for cleanup (charged to `orphan_bytes`) in the same
/// transaction. Returns the removed copy with its cleanup claim, born claimed by this store
/// (the caller may delete the bytes at once and complete the claim; otherwise a cleanup worker
/// takes the row over after its grace period). `None` (no change) when at or below the factor
/// or when the copy is gone. `factor` ≥ 1.
#[tracing::instrument(name = "remove_excess_copy", level = "debug", skip_all, fields(key = %key, backend = %backend, factor))]
pub async fn remove_excess_copy<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    factor: i64,
) -> Result<Option<DeletedCopy>> {
    validate::key(key)?;
    validate::backend(backend)?;
    if factor < 1 {
        return Err(StoreError::invalid(
            "replication factor",
            format!("must be at least 1 (got {factor})"),
        ));
    }
    let factor = usize::try_from(factor).unwrap_or(usize::MAX);
    with_tx_val(
        runner,
        &RemoveExcess {
            instance: runner.instance_id(),
            key,
            backend,
            factor,
        },
    )
    .await
}
