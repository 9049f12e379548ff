//! The pending reaper: resolves write intents left behind by writes that died between the
//! intent and the commit (process killed, ledger unreachable at commit time).
//!
//! For each intent older than `min_age`: bytes present on the backend ⇒ `promote_pending`
//! records them (unless a later write superseded them), and the bytes the promotion displaced
//! are deleted; bytes absent ⇒ the intent is discarded; backend not answering ⇒ left for a
//! later pass.

use object_store::ObjectStoreExt as _;
use s3o_store::{PendingPromoteResult, StoreError, Timestamp};

use super::{Ctx, Health, Tally, referenced, remove_bytes};
use crate::keys;
use crate::ledger::{Displaced, LResult};

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let s = &ctx.settings.reaper;
    let stale = ctx
        .store
        .get_stale_pending(
            Timestamp::now().minus(s.min_age.0),
            i64::from(s.batch_size),
        )
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
        let storage_key = p.form.storage_path(&p.object_key).to_owned();
        match b.store.head(&keys::path(&storage_key)).await {
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
        // The displaced copies come back without their paths: read them first.
        let before = match ctx.ledger.copies(&p.object_key).await {
            Ok(c) => c,
            Err(StoreError::ObjectNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let (result, deleted) = match ctx.store.promote_pending(&p).await {
            Ok(r) => r,
            Err(StoreError::NoSpaceAvailable) => {
                // The backend can no longer admit the bytes: drop the write (it was never
                // acknowledged) so the intent is not retried forever.
                ctx.store.delete_pending(&p.intent_id).await?;
                remove_unreferenced(ctx, &p.object_key, &p.backend_name, &storage_key).await?;
                t.add("abandoned");
                continue;
            }
            Err(e) => return Err(e),
        };
        match result {
            PendingPromoteResult::Committed => {
                t.add("promoted");
                for c in before {
                    let taken = deleted.iter().any(|d| d.backend_name == c.backend);
                    let replaced = c.backend == p.backend_name && c.meta.storage_key != storage_key;
                    if taken || replaced {
                        let d = Displaced {
                            backend: c.backend,
                            storage_key: c.meta.storage_key,
                            size: c.size,
                        };
                        remove_bytes(ctx, &d, "overwritten").await;
                    }
                }
            }
            PendingPromoteResult::Superseded => {
                t.add("superseded");
                remove_unreferenced(ctx, &p.object_key, &p.backend_name, &storage_key).await?;
            }
            PendingPromoteResult::AlreadyResolved => t.add("already_resolved"),
            PendingPromoteResult::Ambiguous => t.add("ambiguous"),
        }
    }
    Ok(())
}

/// Deletes the bytes of an intent that will never be recorded, unless a ledger copy lives at
/// the same path.
async fn remove_unreferenced(
    ctx: &Ctx,
    key: &str,
    backend: &str,
    storage_key: &str,
) -> LResult<()> {
    if !referenced(ctx, key, backend, storage_key).await? {
        // Never recorded, so never charged: a failed delete is queued with its size unknown
        // to quota (0 bytes) rather than charged as orphan bytes the ledger never counted.
        let d = Displaced {
            backend: backend.to_owned(),
            storage_key: storage_key.to_owned(),
            size: 0,
        };
        remove_bytes(ctx, &d, "abandoned write").await;
    }
    Ok(())
}
