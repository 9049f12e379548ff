use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{DeletedCopy, ExistingCopy, ReplicaOutcome};
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

/// The only copy holding the data-encryption key may not go while a sibling is encrypted
/// without one (DESIGN decision 13).
fn refuse_only_dek(
    copies: &[ExistingCopy],
    target: &ExistingCopy,
    key: &str,
    backend: &str,
) -> Result<()> {
    let holds_dek = |c: &ExistingCopy| c.encrypted && c.has_dek;
    let other_dek = copies
        .iter()
        .filter(|c| c.backend_name != backend)
        .any(holds_dek);
    let keyless_sibling = copies
        .iter()
        .any(|c| c.backend_name != backend && c.encrypted && !c.has_dek);
    if holds_dek(target) && !other_dek && keyless_sibling {
        return Err(StoreError::CopyHoldsOnlyDek {
            key: key.to_owned(),
            backend: backend.to_owned(),
        });
    }
    Ok(())
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
        refuse_only_dek(&copies, target, self.key, self.backend)?;
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

struct VersionReplica<'a> {
    key: &'a str,
    version_id: &'a str,
    target: &'a str,
    source: &'a str,
    expected: &'a str,
}

#[async_trait]
impl TxBody for VersionReplica<'_> {
    type Output = ReplicaOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<ReplicaOutcome> {
        tx.acquire_key_lock(self.key).await?;
        let copies = tx
            .version_copies_for_update(self.key, self.version_id)
            .await?;
        let Some(src) = copies.iter().find(|c| c.backend_name == self.source) else {
            return Ok(ReplicaOutcome::SourceGone);
        };
        let current = if src.storage_key.is_empty() {
            self.key
        } else {
            src.storage_key.as_str()
        };
        if current != self.expected {
            return Ok(ReplicaOutcome::VersionChanged {
                current_storage_key: current.to_owned(),
            });
        }
        if copies.iter().any(|c| c.backend_name == self.target) {
            return Ok(ReplicaOutcome::TargetHasCopy);
        }
        // The source row is there and the target has none, under the key lock: nothing
        // inserted means the target has no quota row.
        let Some(size) = tx
            .insert_version_replica(self.key, self.version_id, self.target, self.source)
            .await?
        else {
            return Err(StoreError::UnknownBackend {
                backend: self.target.to_owned(),
            });
        };
        if size > 0 {
            tx.increment_backend_quota(self.target, size).await?;
        }
        Ok(ReplicaOutcome::Recorded { bytes: size })
    }
}

/// Adds a copy of noncurrent version `version_id` of `key` on `target`, copied from its row on
/// `source`, as [`record_replica`] does for a current version: only while that row is still a
/// noncurrent copy of the version at `expected_storage_key` (the path the caller read before
/// copying the bytes) and the version has no copy on `target`; the target is charged the row's
/// size in the same transaction (guarded: `NoSpaceAvailable` rolls back). Otherwise, with
/// nothing changed, `SourceGone` (the version was deleted, became current, or has no copy on
/// `source`), `VersionChanged` or `TargetHasCopy`, in that order under the key lock. `target
/// == source` ⇒ `InvalidInput`; an unknown target ⇒ `UnknownBackend`.
#[tracing::instrument(name = "record_version_replica", level = "debug", skip_all, fields(key = %key, version = %version_id, target = %target, source = %source))]
pub async fn record_version_replica<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    version_id: &str,
    target: &str,
    source: &str,
    expected_storage_key: &str,
) -> Result<ReplicaOutcome> {
    validate::key(key)?;
    validate::text("version id", version_id)?;
    if version_id.is_empty() {
        return Err(StoreError::invalid("version id", "must not be empty"));
    }
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
        &VersionReplica {
            key,
            version_id,
            target,
            source,
            expected: expected_storage_key,
        },
    )
    .await
}

struct RemoveExcessVersion<'a> {
    instance: &'a str,
    key: &'a str,
    version_id: &'a str,
    backend: &'a str,
    factor: usize,
}

#[async_trait]
impl TxBody for RemoveExcessVersion<'_> {
    type Output = Option<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Option<DeletedCopy>> {
        tx.acquire_key_lock(self.key).await?;
        let copies = tx
            .version_copies_for_update(self.key, self.version_id)
            .await?;
        if copies.len() <= self.factor {
            return Ok(None);
        }
        let Some(target) = copies.iter().find(|c| c.backend_name == self.backend) else {
            return Ok(None);
        };
        refuse_only_dek(&copies, target, self.key, self.backend)?;
        tx.delete_version_copy(self.key, self.version_id, self.backend)
            .await?;
        super::objects::remove_one_copy(tx, self.instance, self.key, target, "excess copy")
            .await
            .map(Some)
    }
}

/// Removes the copy of noncurrent version `version_id` of `key` on `backend` while the version
/// still has more than `factor` copies, re-checked under the key lock, as
/// [`remove_excess_copy`] does for a current version: never the last copy, never the only
/// copy holding the data-encryption key while a sibling is encrypted without one
/// (`CopyHoldsOnlyDek`). Debits the copy's size and enqueues its bytes for cleanup (born
/// claimed by this store, returned) in the same transaction. `None` (no change) when at or
/// below the factor or when the copy is gone. `factor` ≥ 1.
#[tracing::instrument(name = "remove_excess_version_copy", level = "debug", skip_all, fields(key = %key, version = %version_id, backend = %backend, factor))]
pub async fn remove_excess_version_copy<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    version_id: &str,
    backend: &str,
    factor: i64,
) -> Result<Option<DeletedCopy>> {
    validate::key(key)?;
    validate::text("version id", version_id)?;
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
        &RemoveExcessVersion {
            instance: runner.instance_id(),
            key,
            version_id,
            backend,
            factor,
        },
    )
    .await
}
