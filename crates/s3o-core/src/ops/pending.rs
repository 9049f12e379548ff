use async_trait::async_trait;

use super::objects::write_over;
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

struct Promote<'a> {
    p: &'a PendingObject,
}

#[async_trait]
impl TxBody for Promote<'_> {
    type Output = (PendingPromoteResult, Vec<DeletedCopy>);
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        // Key lock before the intent row: the write path holds the key lock while it deletes
        // intents, so claiming first could deadlock against it.
        tx.acquire_key_lock(&self.p.object_key).await?;
        let Some(locked) = tx.claim_pending(&self.p.intent_id).await? else {
            return Ok((PendingPromoteResult::AlreadyResolved, Vec::new()));
        };
        if locked.object_key != self.p.object_key {
            // The id names an intent of another key: we hold the wrong key lock. Refuse rather
            // than write under it.
            return Err(StoreError::invalid(
                "pending intent",
                format!("intent {} is for another key", self.p.intent_id),
            ));
        }
        // Size, backend and stored form come from the locked row, not from the caller.
        let p = &locked;
        let existing = tx.get_existing_copies_for_update(&p.object_key).await?;
        if intent_superseded(p.created_at, &existing) {
            tx.delete_pending(&p.intent_id).await?;
            return Ok((PendingPromoteResult::Superseded, Vec::new()));
        }
        let displaced = write_over(
            tx,
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

/// Resolves an intent whose bytes were found on the backend.
///
/// Locks the key, then claims the intent row, whose stored values (not the caller's copy) are
/// what gets committed. Intent gone ⇒ `AlreadyResolved`. A copy of the
/// key recorded strictly after the intent ⇒ the intent is dropped, `Superseded`. Otherwise the
/// intent is committed exactly like [`super::record_object`] with its stored metadata and
/// deleted in the same transaction: `Committed` plus the displaced copies. On error nothing
/// changes and the error is returned (there is no `Ambiguous` result alongside it).
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
    with_tx_val(runner, &Promote { p })
        .await
        .map_err(|e| e.context("promote pending"))
}
