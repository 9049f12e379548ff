//! The pending reaper: resolves write intents left behind by writes that died between the
//! intent and the commit (process killed, ledger unreachable at commit time).
//!
//! For each intent older than `min_age`: bytes present on the backend ⇒ `promote_pending`
//! records them, or drops the intent when a later write superseded it or the backend can no
//! longer admit it (`Abandoned`); the bytes the store queued in that transaction (displaced
//! copies, or the intent's own) are deleted at once and their rows completed. Bytes absent ⇒
//! the intent is discarded; backend not answering ⇒ left for a later pass.

use object_store::ObjectStoreExt as _;
use s3o_store::PendingPromoteResult;

use super::{Ctx, DELETE_TIMEOUT, Health, Tally, settle};
use crate::keys;
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let s = &ctx.settings.reaper;
    let stale = ctx
        .store
        .get_stale_pending(s.min_age.0, i64::from(s.batch_size))
        .await?;
    let mut health = Health::default();
    for p in stale {
        if ctx.stopping() {
            break;
        }
        let Some(b) = ctx.backends.get(&p.backend_name) else {
            t.add("backend_not_configured");
            continue;
        };
        if !health.up(b).await {
            t.add("skipped_backend_down");
            continue;
        }
        let storage_key = p.form.storage_path(&p.object_key).to_owned();
        let path = keys::path(&storage_key);
        let head = tokio::time::timeout(DELETE_TIMEOUT, b.store.head(&path)).await;
        match head.unwrap_or_else(|_| {
            Err(object_store::Error::Generic {
                store: "backend",
                source: "no answer".into(),
            })
        }) {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                ctx.store.delete_pending(&p.intent_id).await?;
                t.add("discarded");
                continue;
            }
            Err(e) => {
                if health.recheck(b).await {
                    tracing::warn!(intent = %p.intent_id, error = %e, "intent's bytes unreadable; left for a later pass");
                    t.add("unresolved");
                } else {
                    t.add("skipped_backend_down");
                }
                continue;
            }
        }
        let (result, deleted) = ctx.store.promote_pending(&p).await?;
        t.add(match result {
            PendingPromoteResult::Committed => "promoted",
            PendingPromoteResult::Superseded => "superseded",
            PendingPromoteResult::Abandoned => "abandoned",
            PendingPromoteResult::AlreadyResolved => "already_resolved",
            PendingPromoteResult::Ambiguous => "ambiguous",
        });
        // Displaced copies (promoted) or the intent's own bytes (superseded, abandoned).
        settle(ctx, deleted).await?;
    }
    Ok(())
}
