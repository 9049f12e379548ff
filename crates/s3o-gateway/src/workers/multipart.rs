//! The stale multipart sweeper: aborts uploads older than `stale_after`, on the backend and
//! in the ledger. The parts are deleted first and the upload row last, so a sweep stopped in
//! between leaves the row, and the next sweep deletes what is left.

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

/// Aborts one upload: its parts deleted on the backend, then its ledger row. Returns the
/// item's result label (`aborted`, `parts_left`, `skipped_backend_down`).
pub(super) async fn abort(
    ctx: &Ctx,
    up: &s3o_store::MultipartUpload,
    health: &mut Health,
) -> LResult<&'static str> {
    if let Some(b) = ctx.backends.get(&up.backend_name) {
        if !health.up(b).await {
            return Ok("skipped_backend_down");
        }
        let dir = keys::path(&keys::upload_dir(&up.upload_id));
        let listed: Vec<_> = b.store.list(Some(&dir)).collect().await;
        let mut failed = false;
        for o in listed {
            let deleted = match o {
                Ok(o) => delete_path(b, &o.location).await,
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = deleted {
                tracing::warn!(upload = %up.upload_id, backend = %up.backend_name, error = %e, "could not delete a stale part");
                failed = true;
            }
        }
        if failed {
            return Ok("parts_left");
        }
    }
    ctx.store.delete_multipart_upload(&up.upload_id).await?;
    tracing::info!(upload = %up.upload_id, key = %up.object_key, "multipart upload aborted");
    Ok("aborted")
}
