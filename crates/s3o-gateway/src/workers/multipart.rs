//! The stale multipart sweeper: aborts uploads older than `stale_after`, in the ledger and on
//! the backend. The ledger releases the upload first (its row and parts go, their bytes leave
//! the backend's charge for the cleanup queue, in one transaction), then the parts are deleted:
//! a sweep stopped in between leaves the queue rows, which the cleanup worker finishes.

use futures::StreamExt as _;

use super::{Ctx, Health, Tally, delete_path};
use crate::keys;
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let stale = ctx
        .store
        .get_stale_multipart_uploads(ctx.settings.multipart.stale_after.0)
        .await?;
    let mut health = Health::default();
    for up in stale {
        if ctx.stopping() {
            break;
        }
        t.add(abort(ctx, &up, &mut health).await?);
    }
    Ok(())
}

/// Aborts one upload: released in the ledger (its parts' bytes queued for cleanup and taken
/// off the backend's charge), then its parts deleted on the backend, and whatever else lies
/// under its directory (attempts never recorded). Returns the item's result label (`aborted`,
/// `parts_left`: some bytes are left to the cleanup worker or the reconciler,
/// `skipped_backend_down`: nothing changed).
pub(super) async fn abort(
    ctx: &Ctx,
    up: &s3o_store::MultipartUpload,
    health: &mut Health,
) -> LResult<&'static str> {
    let backend = ctx.backends.get(&up.backend_name);
    if let Some(b) = backend
        && !health.up(b).await
    {
        return Ok("skipped_backend_down");
    }
    let queued = ctx
        .store
        .release_multipart_upload(&up.upload_id, "expired upload")
        .await?;
    tracing::info!(upload = %up.upload_id, key = %up.object_key, "multipart upload aborted");
    let Some(b) = backend else {
        // Not configured: the queue rows wait for the cleanup worker of a gateway that has it.
        return Ok("aborted");
    };
    let mut failed = false;
    for d in queued {
        match delete_path(b, &keys::path(&d.storage_key)).await {
            Ok(()) => {
                ctx.store.complete_cleanup_item(&d.cleanup).await?;
            }
            Err(e) => {
                tracing::warn!(upload = %up.upload_id, backend = %up.backend_name, error = %e, "could not delete a part; left to the cleanup worker");
                failed = true;
            }
        }
    }
    let dir = keys::path(&keys::upload_dir(&up.upload_id));
    let listed: Vec<_> = b.store.list(Some(&dir)).collect().await;
    for o in listed {
        let deleted = match o {
            Ok(o) => delete_path(b, &o.location).await,
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = deleted {
            tracing::warn!(upload = %up.upload_id, backend = %up.backend_name, error = %e, "could not delete a stale part; left to the reconciler");
            failed = true;
        }
    }
    Ok(if failed { "parts_left" } else { "aborted" })
}
