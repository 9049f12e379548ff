use async_trait::async_trait;

use super::cleanup::enqueue_orphans;
use super::objects::{orphan_entry, write_over};
use super::quota::{QuotaDeltas, apply_ledger_deltas};
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{DeletedCopy, ExistingCopy, PendingObject, PendingPromoteResult, Timestamp};
use crate::validate;

/// True when a copy of the key was recorded strictly after the intent: the intent is provably
/// stale. Copies with a zero timestamp are ignored; an equal timestamp does not supersede.
pub fn intent_superseded(intent_created_at: Timestamp, copies: &[ExistingCopy]) -> bool {
    copies
        .iter()
        .any(|c| !c.created_at.is_zero() && c.created_at > intent_created_at)
}

/// Drops the locked intent `p` and, unless a live copy sits at the same physical path on the
/// same backend (a newer write overwrote those bytes in place), enqueues its uploaded bytes
/// for cleanup and charges them to `orphan_bytes`: the end of every intent that is not
/// committed.
async fn drop_intent(
    tx: &mut dyn TxAdapter,
    instance: &str,
    p: &PendingObject,
    existing: &[ExistingCopy],
    reason: &str,
) -> Result<Vec<DeletedCopy>> {
    tx.delete_pending(&p.intent_id).await?;
    let path = p.form.storage_path(&p.object_key);
    let live = existing.iter().any(|c| {
        c.backend_name == p.backend_name
            && (if c.storage_key.is_empty() {
                p.object_key.as_str()
            } else {
                c.storage_key.as_str()
            }) == path
    });
    // A noncurrent version's copy at that path (a drain moved it there under this intent) is
    // live too: its bytes are the version's (DESIGN decision 25).
    let live = live
        || tx
            .key_versions_for_update(&p.object_key)
            .await?
            .iter()
            .any(|v| {
                v.backend_name.as_deref() == Some(p.backend_name.as_str())
                    && (if v.storage_key.is_empty() {
                        p.object_key.as_str()
                    } else {
                        v.storage_key.as_str()
                    }) == path
            });
    if live {
        return Ok(Vec::new());
    }
    let entry = orphan_entry(
        &p.object_key,
        &p.backend_name,
        &p.form.storage_key,
        p.size_bytes,
        reason,
    );
    let mut orphan = QuotaDeltas::new();
    let copies = enqueue_orphans(tx, instance, vec![entry], &mut orphan).await?;
    apply_ledger_deltas(tx, &QuotaDeltas::new(), &orphan).await?;
    Ok(copies)
}

/// Key lock, then the intent row: `None` when the intent is gone; refuses an intent of another
/// key or backend than the caller names (we would hold the wrong key lock).
async fn lock_intent(tx: &mut dyn TxAdapter, p: &PendingObject) -> Result<Option<PendingObject>> {
    // Key lock before the intent row: the write path holds the key lock while it deletes
    // intents, so claiming first could deadlock against it.
    tx.acquire_key_lock(&p.object_key).await?;
    let Some(locked) = tx.claim_pending(&p.intent_id).await? else {
        return Ok(None);
    };
    if locked.object_key != p.object_key || locked.backend_name != p.backend_name {
        return Err(StoreError::invalid(
            "pending intent",
            format!(
                "intent {} belongs to key {:?} on backend {:?}, not to {:?} on {:?}",
                p.intent_id, locked.object_key, locked.backend_name, p.object_key, p.backend_name
            ),
        ));
    }
    Ok(Some(locked))
}

struct Promote<'a> {
    instance: &'a str,
    p: &'a PendingObject,
}

#[async_trait]
impl TxBody for Promote<'_> {
    type Output = (PendingPromoteResult, Vec<DeletedCopy>);
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        let Some(locked) = lock_intent(tx, self.p).await? else {
            return Ok((PendingPromoteResult::AlreadyResolved, Vec::new()));
        };
        // Size, backend and stored form come from the locked row, not from the caller.
        let p = &locked;
        let existing = tx.get_existing_copies_for_update(&p.object_key).await?;
        if intent_superseded(p.created_at, &existing) {
            let orphans = drop_intent(tx, self.instance, p, &existing, "superseded intent").await?;
            return Ok((PendingPromoteResult::Superseded, orphans));
        }
        let displaced = write_over(
            tx,
            self.instance,
            &p.object_key,
            &p.backend_name,
            p.size_bytes,
            &p.form,
            &existing,
            Some(&p.intent_id),
        )
        .await?;
        Ok((PendingPromoteResult::Committed, displaced))
    }
}

struct Abandon<'a> {
    instance: &'a str,
    p: &'a PendingObject,
}

#[async_trait]
impl TxBody for Abandon<'_> {
    type Output = (PendingPromoteResult, Vec<DeletedCopy>);
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        let Some(locked) = lock_intent(tx, self.p).await? else {
            return Ok((PendingPromoteResult::AlreadyResolved, Vec::new()));
        };
        let existing = tx
            .get_existing_copies_for_update(&locked.object_key)
            .await?;
        let orphans =
            drop_intent(tx, self.instance, &locked, &existing, "abandoned intent").await?;
        Ok((PendingPromoteResult::Abandoned, orphans))
    }
}

/// Resolves an intent whose bytes were found on the backend. Every outcome is final for the
/// intent except an error: no intent is retried forever.
///
/// Locks the key, then claims the intent row, whose stored values (not the caller's copy) are
/// what gets committed. An intent of another key or backend than `p` names is refused
/// (`InvalidInput`, nothing changes). Intent gone ⇒ `AlreadyResolved`. A copy of the key
/// recorded strictly after the intent ⇒ the intent is dropped, `Superseded`, and its bytes are
/// enqueued for cleanup (returned) unless a live copy sits at the same path. Otherwise the
/// intent is committed exactly like [`super::record_object`] with its stored form and deleted
/// in the same transaction: `Committed` plus the displaced copies. When the backend cannot
/// admit it (`NoSpaceAvailable` under [`crate::types::quota_admits`]), a second transaction
/// deletes the intent and enqueues its bytes: `Abandoned` plus those bytes. Other errors change
/// nothing and are returned (there is no `Ambiguous` result alongside them).
#[tracing::instrument(name = "promote_pending", level = "debug", skip_all, fields(intent = %p.intent_id, key = %p.object_key))]
pub async fn promote_pending<R: Runner + ?Sized>(
    runner: &R,
    p: &PendingObject,
) -> Result<(PendingPromoteResult, Vec<DeletedCopy>)> {
    validate::id("intent id", &p.intent_id)?;
    validate::key(&p.object_key)?;
    validate::backend(&p.backend_name)?;
    validate::size("object size", p.size_bytes)?;
    validate::stored_form(&p.form)?;
    let instance = runner.instance_id();
    match with_tx_val(runner, &Promote { instance, p }).await {
        Err(StoreError::NoSpaceAvailable) => with_tx_val(runner, &Abandon { instance, p })
            .await
            .map_err(|e| e.context("abandon pending")),
        other => other.map_err(|e| e.context("promote pending")),
    }
}

/// Abandons a write intent: locks the key, claims the intent row, deletes it and enqueues its
/// bytes for cleanup (charged to `orphan_bytes`) in one transaction, unless a live copy sits
/// at the same path on the same backend. The end of every intent whose write was not
/// acknowledged (decision 21): its bytes never become visible, whatever they hold, and a
/// later DELETE of the key is never undone. Returns `Abandoned` with the queued bytes (their
/// rows born claimed by this store, so the caller may delete them at once and complete the
/// rows), or `AlreadyResolved` when the intent is gone (committed or abandoned before).
/// Only `intent_id`, `object_key` and `backend_name` of `p` are read; an intent of another
/// key or backend is refused (`InvalidInput`) and nothing changes.
#[tracing::instrument(name = "abandon_pending", level = "debug", skip_all, fields(intent = %p.intent_id, key = %p.object_key))]
pub async fn abandon_pending<R: Runner + ?Sized>(
    runner: &R,
    p: &PendingObject,
) -> Result<(PendingPromoteResult, Vec<DeletedCopy>)> {
    validate::id("intent id", &p.intent_id)?;
    validate::key(&p.object_key)?;
    validate::backend(&p.backend_name)?;
    let instance = runner.instance_id();
    with_tx_val(runner, &Abandon { instance, p })
        .await
        .map_err(|e| e.context("abandon pending"))
}
