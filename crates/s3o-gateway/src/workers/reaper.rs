//! The pending reaper: ends write intents left behind by writes that died between the intent
//! and the commit (process killed, ledger unreachable at commit time, a refused body whose
//! immediate cleanup failed).
//!
//! Every write has its own backend path, so an intent that outlives its request never holds
//! the object's only bytes: the client was told the write failed, or never told anything. Each
//! intent older than `min_age` is therefore **abandoned** (`abandon_pending`: intent dropped,
//! its bytes queued and charged as orphans, in one transaction) and its bytes deleted at once,
//! the row completed; a delete that fails is left to the cleanup worker. An intent is never
//! promoted over what clients were told (DESIGN decision 21): a refused body never goes live,
//! and an acknowledged DELETE is never undone. A write that was streaming a large body had its
//! backend multipart upload recorded with the intent: that upload is aborted first (its parts
//! are billed until then), and an intent whose abort cannot be confirmed (backend down) waits
//! for a later pass so the upload id is not lost.

use s3o_store::PendingPromoteResult;

use super::{Ctx, DELETE_TIMEOUT, Health, Tally, settle};
use crate::keys;
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let s = &ctx.settings.reaper;
    let mut health = Health::default();
    let stale = ctx
        .store
        .get_stale_pending(s.min_age.0, i64::from(s.batch_size))
        .await?;
    for p in stale {
        if ctx.stopping() {
            break;
        }
        if let Some(upload_id) = ctx.store.get_pending_backend_upload(&p.intent_id).await?
            && let Some(b) = ctx.backends.get(&p.backend_name)
            && let Some(mp) = &b.multipart
        {
            let path = keys::path(p.form.storage_path(&p.object_key));
            let id = upload_id.clone();
            let aborted =
                tokio::time::timeout(DELETE_TIMEOUT, mp.abort_multipart(&path, &id)).await;
            match aborted {
                Ok(Ok(())) => t.add("backend_upload_aborted"),
                // The backend answers but will not abort: the upload is gone already (it
                // completed, so its bytes sit at the path the abandonment queues, or it was
                // aborted), or the backend refuses; either way nothing more can be done here.
                Ok(Err(e)) if health.recheck(b).await => {
                    tracing::info!(intent = %p.intent_id, backend = %p.backend_name, error = %e, "backend upload not aborted (gone already?)");
                    t.add("backend_upload_gone");
                }
                _ => {
                    // Backend down: keep the intent (and the upload id) for a later pass.
                    t.add("skipped_backend_down");
                    continue;
                }
            }
        }
        let (result, queued) = ctx.store.abandon_pending(&p).await?;
        t.add(match result {
            PendingPromoteResult::AlreadyResolved => "already_resolved",
            _ => "abandoned",
        });
        if ctx.backends.get(&p.backend_name).is_none() {
            t.add("backend_not_configured");
        }
        // The queued rows are claimed by this instance: delete now, or leave them to the
        // cleanup worker after its grace period.
        settle(ctx, queued).await?;
    }
    Ok(())
}
