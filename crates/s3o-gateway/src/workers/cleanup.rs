//! The cleanup worker: deletes queued orphaned bytes from their backends.
//!
//! Claims due rows, deletes each row's bytes (404 counts as deleted) and completes the row,
//! which releases its orphan bytes. Bytes a live copy names again (a replica or a moved copy
//! of the same version recorded at the row's backend and path after it was queued) are kept
//! and the row completed. A failed delete is retried with exponential backoff and
//! jitter; the attempt that reaches the limit moves the row to the dead-letter table, from
//! which `s3o dlq requeue` brings it back. A backend that does not answer at all is skipped:
//! its rows stay claimed and are taken over after the claim grace, without spending attempts.

use std::time::Duration;

use s3o_store::{CleanupClaim, CleanupItem, CleanupOutcome};

use super::{Ctx, Health, Tally, delete_path, referenced};
use crate::keys;
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let s = &ctx.settings.cleanup;
    let items = ctx
        .store
        .claim_pending_cleanups(
            i64::from(s.batch_size),
            ctx.store.instance_id(),
            s.claim_grace.0,
        )
        .await?;
    let mut health = Health::default();
    for item in items {
        if ctx.stopping() {
            // Left claimed: another pass takes it over after the grace.
            t.add("left_for_later");
            continue;
        }
        if item.reclaimed {
            t.add("reclaimed");
        }
        let Some(claim) = item.claim() else {
            continue;
        };
        let Some(b) = ctx.backends.get(&item.backend_name) else {
            fail(ctx, &item, &claim, "backend is not configured", t).await?;
            continue;
        };
        if !health.up(b).await {
            t.add("skipped_backend_down");
            continue;
        }
        // The row names a backend and a path; a copy recorded there after the row was queued
        // (a replica or a drained copy of the same version) owns those bytes now: the row is
        // done without deleting them.
        if referenced(ctx, &item.object_key, &item.backend_name, &item.storage_key).await? {
            match ctx.store.complete_cleanup_item(&claim).await? {
                CleanupOutcome::Completed => t.add("kept_live_copy"),
                _ => t.add("stale_claim"),
            }
            continue;
        }
        match delete_path(b, &keys::path(&item.storage_key)).await {
            Ok(()) => match ctx.store.complete_cleanup_item(&claim).await? {
                CleanupOutcome::Completed => t.add("deleted"),
                _ => t.add("stale_claim"),
            },
            Err(e) => {
                if health.recheck(b).await {
                    fail(ctx, &item, &claim, &e, t).await?;
                } else {
                    t.add("skipped_backend_down");
                }
            }
        }
    }
    Ok(())
}

/// One more failed attempt: rescheduled with backoff, or dead-lettered at the limit (the
/// store decides, in the same transaction).
async fn fail(
    ctx: &Ctx,
    item: &CleanupItem,
    claim: &CleanupClaim,
    why: &str,
    t: &mut Tally,
) -> LResult<()> {
    tracing::warn!(
        id = item.id,
        backend = %item.backend_name,
        key = %item.object_key,
        attempts = item.attempts + 1,
        error = %why,
        "cleanup delete failed"
    );
    let s = &ctx.settings.cleanup;
    let wait = backoff(s.backoff_base.0, s.backoff_max.0, item.attempts);
    match ctx.store.retry_cleanup_item(claim, wait, why).await? {
        CleanupOutcome::Retried => t.add("retried"),
        CleanupOutcome::DeadLettered => t.add("dead_lettered"),
        _ => t.add("stale_claim"),
    }
    Ok(())
}

/// `base · 2^attempts`, capped at `max`, then jittered to between half and all of it so rows
/// that failed together do not retry together.
pub(crate) fn backoff(base: Duration, max: Duration, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    full.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(3600);
        for attempts in 0..12 {
            let full = base.saturating_mul(1 << attempts).min(max);
            let d = backoff(base, max, attempts);
            assert!(d >= full / 2 && d <= full, "{attempts}: {d:?} vs {full:?}");
        }
        assert_eq!(backoff(Duration::ZERO, Duration::ZERO, 5), Duration::ZERO);
        assert!(backoff(base, max, 100) <= max);
    }
}
