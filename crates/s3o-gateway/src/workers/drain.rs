//! Drain: moves every copy off one backend so that it can be removed from the configuration.
//!
//! Runs under `LockId::Drain` (one drain at a time across instances), behind a write fence:
//! the backend's draining flag in the ledger, set when the run starts and cleared when it
//! ends, keeps every gateway on the ledger from routing a PUT, a new multipart upload, a
//! Complete or a replica to it; passes repeat until writes routed there before the fence have
//! ended and their copies are moved. Per copy on the
//! backend, in key order: pick a target by the routing policy among the other backends that
//! answer and hold no copy of the key, stream the bytes to the same path there, then
//! `move_object_location` in the ledger, then delete the source bytes. A copy whose key
//! already has copies elsewhere and finds no target is dropped instead (the replicator
//! restores the factor when room appears). Source deletes wait a short grace so a read that
//! looked the copy up just before the move still finds its bytes. Everything is resumable:
//! after an interruption, running the drain again re-copies at most one batch and finishes;
//! its last step deletes bytes of the configured buckets left on the backend that no ledger
//! copy, intent or upload references (e.g. the source of a move whose delete was
//! interrupted). Noncurrent versions' copies move the same way, after the current copies
//! (`move_version_location`), so a drained backend ends empty.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use s3o_store::{DeletedCopy, LockId, MoveOutcome, NoncurrentCopy, ObjectLocation, StoreError};

use super::{
    Ctx, backend_up, copy_under_intent, delete_path, delete_queued, end_copy, referenced, settle,
};
use crate::backends::{Backend, Backends};
use crate::ledger::{Displaced, LResult, Ledger};
use crate::{Config, GatewayError};

/// How long a drained copy's bytes stay readable after the ledger moved it.
pub(super) const READ_GRACE: Duration = Duration::from_secs(2);

/// Where a drain stands; reported after every batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainProgress {
    /// The backend being drained.
    pub backend: String,
    /// Copies moved to another backend in this run.
    pub moved: u64,
    /// Bytes of those copies.
    pub moved_bytes: u64,
    /// Copies dropped because their key has copies elsewhere and no backend had room.
    pub dropped: u64,
    /// Copies that could not be moved in this run (retried by the next run).
    pub failed: u64,
    /// Copies the ledger still records on the backend.
    pub remaining: i64,
    /// Bytes of those copies.
    pub remaining_bytes: i64,
}

/// The end of a drain run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// The final progress.
    pub progress: DrainProgress,
    /// Unreferenced objects deleted from the backend by the final sweep.
    pub leftovers_deleted: u64,
}

/// Drains `backend`: see the module documentation. Opens (and migrates) the ledger of
/// `config` like [`crate::Gateway::start`]; `progress` is called after every batch.
/// Copies that could not be moved make the run fail after it went through every copy
/// (run it again to retry them); another drain in progress makes it fail at once.
pub async fn drain(
    config: &Config,
    backend: &str,
    progress: &mut (dyn FnMut(&DrainProgress) + Send),
) -> Result<DrainReport, GatewayError> {
    config.validate()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fail = |why: String| GatewayError::Worker { why };
    let store_err = |source| GatewayError::Store {
        url: config.store.clone(),
        source,
    };
    if !config.backends.iter().any(|b| b.name == backend) {
        return Err(fail(format!(
            "backend {backend:?} is not in the configuration (its bytes must be readable to drain it)"
        )));
    }
    let store = s3o_store::open(&config.store).await.map_err(store_err)?;
    let ledger = Arc::new(Ledger::new(store.clone(), config.routing));
    let limits: Vec<(String, i64)> = config
        .backends
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                i64::try_from(b.quota_bytes).unwrap_or(i64::MAX),
            )
        })
        .collect();
    if let Err(e) = ledger.prepare(&limits).await {
        store.close().await;
        return Err(store_err(e));
    }
    let backends = match Backends::build(&config.backends) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    // The month's usage so far, so that backends over their budgets are not chosen as
    // targets (a serving gateway reads it when it starts).
    if let Err(e) = backends.usage().refresh(&store).await {
        tracing::warn!(error = %e, "could not read this month's usage; budgets count from zero");
    }
    let ctx = Ctx::new(store.clone(), ledger, backends, config);
    let mut report = DrainReport {
        progress: DrainProgress {
            backend: backend.to_owned(),
            ..DrainProgress::default()
        },
        ..DrainReport::default()
    };
    let outcome = store
        .with_advisory_lock(
            LockId::Drain,
            Box::pin(run(&ctx, backend, progress, &mut report)),
        )
        .await;
    store.close().await;
    match outcome {
        Ok(None) => Err(fail(
            "another drain holds the drain lock; wait for it to finish".into(),
        )),
        Ok(Some(Err(e))) | Err(e) => Err(store_err(e)),
        Ok(Some(Ok(()))) if report.progress.failed > 0 => Err(fail(format!(
            "{} copies could not be moved off {backend}; run the drain again",
            report.progress.failed
        ))),
        Ok(Some(Ok(()))) => Ok(report),
    }
}

/// A moved or dropped copy's source bytes, by key, to release after the read grace.
type Source = (String, Displaced);

enum Step {
    Moved(i64),
    Dropped,
    Skipped,
    Failed,
}

/// Passes over the backend a drain makes at most in one run: the first moves what the ledger
/// listed; the others pick up copies committed behind it by writes that were routed to the
/// backend before its fence was set.
const MAX_PASSES: u32 = 5;

/// How long a drain waits for writes still in flight to the drained backend between passes.
const SETTLE_WAIT: Duration = Duration::from_millis(500);

/// One drain run under the drain lock: the write fence set (the backend's draining flag in
/// the ledger, which every gateway on the ledger honours when it picks a backend for a PUT, a
/// new multipart upload, a Complete or a replica), passes until no copy and no write intent
/// is left on the backend (or [`MAX_PASSES`]), and the fence cleared however the run ends:
/// success, error, failed copies or a cancelled future (the admin API's job). A drain process
/// killed outright leaves the fence set until a drain of the backend runs again and ends.
async fn run(
    ctx: &Ctx,
    backend: &str,
    progress: &mut (dyn FnMut(&DrainProgress) + Send),
    report: &mut DrainReport,
) -> LResult<()> {
    if !ctx.store.set_backend_draining(backend, true).await? {
        return Err(StoreError::UnknownBackend {
            backend: backend.to_owned(),
        });
    }
    let fence = Fence {
        store: Some(ctx.store.clone()),
        backend: backend.to_owned(),
    };
    let mut outcome = Ok(());
    for pass in 1..=MAX_PASSES {
        report.progress.failed = 0;
        outcome = run_pass(ctx, backend, progress, report).await;
        if outcome.is_err() || report.progress.failed > 0 || pass == MAX_PASSES {
            break;
        }
        match settled(ctx, backend).await {
            Ok(true) => break,
            Ok(false) => tokio::time::sleep(SETTLE_WAIT).await,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    fence.lift().await;
    outcome
}

/// True when the ledger records no current copy and no live write intent on `backend`:
/// nothing routed there before the fence can still commit there.
async fn settled(ctx: &Ctx, backend: &str) -> LResult<bool> {
    let copies = ctx
        .store
        .list_objects_by_backend_key_asc(backend, "", 1)
        .await?;
    if !copies.is_empty() {
        return Ok(false);
    }
    let intents = ctx.store.get_stale_pending(Duration::ZERO, 10_000).await?;
    Ok(!intents.iter().any(|p| p.backend_name == backend))
}

/// The drain's write fence: lifted by [`Fence::lift`], or on drop (a cancelled drain) by a
/// task of its own.
struct Fence {
    store: Option<crate::LedgerHandle>,
    backend: String,
}

impl Fence {
    async fn lift(mut self) {
        if let Some(store) = self.store.take() {
            lift_fence(&store, &self.backend).await;
        }
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        if let Some(store) = self.store.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let backend = std::mem::take(&mut self.backend);
            rt.spawn(async move { lift_fence(&store, &backend).await });
        }
    }
}

async fn lift_fence(store: &crate::LedgerHandle, backend: &str) {
    if let Err(e) = store.set_backend_draining(backend, false).await {
        // Left set, the fence keeps writes off a backend that may still hold copies: safe,
        // and the next drain of the backend clears it when it ends.
        tracing::warn!(backend, error = %e, "could not lift the drain's write fence");
    }
}

/// One pass over the copies the ledger records on `backend` (see the module docs).
async fn run_pass(
    ctx: &Ctx,
    backend: &str,
    progress: &mut (dyn FnMut(&DrainProgress) + Send),
    report: &mut DrainReport,
) -> LResult<()> {
    let Some(from) = ctx.backends.get(backend).cloned() else {
        return Ok(());
    };
    let batch = i64::from(ctx.settings.drain.batch_size);
    let concurrency = ctx.settings.drain.concurrency as usize;
    let mut deferred: Vec<(Instant, String, Displaced)> = Vec::new();
    let mut after = String::new();
    let (n, bytes) = ctx.store.backend_object_stats(backend).await?;
    report.progress.remaining = n;
    report.progress.remaining_bytes = bytes;
    progress(&report.progress);
    loop {
        let locs = ctx
            .store
            .list_objects_by_backend_key_asc(backend, &after, batch)
            .await?;
        let Some(last) = locs.last() else { break };
        after = last.object_key.clone();
        let up = up_targets(ctx, backend).await;
        let (from_ref, up_ref) = (&from, &up);
        let steps: Vec<LResult<(Step, Option<Source>)>> = futures::stream::iter(locs)
            .map(|loc| async move { move_one(ctx, from_ref, &loc, up_ref).await })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        settle_batch(ctx, backend, steps, report, &mut deferred, progress).await?;
    }
    drain_noncurrent(ctx, &from, progress, report, &mut deferred).await?;
    if let Some((t, _, _)) = deferred.last() {
        tokio::time::sleep_until((*t).into()).await;
    }
    for (_, k, d) in deferred {
        release_source(ctx, &k, d).await?;
    }
    if report.progress.failed == 0 {
        report.leftovers_deleted = sweep_leftovers(ctx, &from).await?;
    }
    let (n, bytes) = ctx.store.backend_object_stats(backend).await?;
    report.progress.remaining = n;
    report.progress.remaining_bytes = bytes;
    progress(&report.progress);
    Ok(())
}

/// Moves (or drops) one copy; returns the source bytes to delete once the grace is over.
async fn move_one(
    ctx: &Ctx,
    from: &Backend,
    loc: &ObjectLocation,
    up: &[String],
) -> LResult<(Step, Option<Source>)> {
    let key = &loc.object_key;
    let storage_key = loc.form.storage_path(key).to_owned();
    let source = Displaced {
        backend: from.name.clone(),
        storage_key: storage_key.clone(),
        size: loc.size_bytes,
        claim: None,
    };
    let holders: Vec<String> = match ctx.ledger.copies(key).await {
        Ok(c) => c.into_iter().map(|c| c.backend).collect(),
        Err(StoreError::ObjectNotFound { .. }) => return Ok((Step::Skipped, None)),
        Err(e) => return Err(e),
    };
    let candidates: Vec<String> = up
        .iter()
        .filter(|n| !holders.contains(n))
        .cloned()
        .collect();
    let target = if candidates.is_empty() {
        Err(StoreError::NoSpaceAvailable)
    } else {
        ctx.ledger.pick_backend(loc.size_bytes, &candidates).await
    };
    let target = match target {
        Ok(t) => t,
        Err(StoreError::NoSpaceAvailable) if holders.len() > 1 => {
            return match ctx.store.delete_object_location(key, &from.name).await? {
                Some(d) => Ok((
                    Step::Dropped,
                    Some((
                        key.clone(),
                        Displaced {
                            claim: Some(d.cleanup),
                            ..source
                        },
                    )),
                )),
                None => Ok((Step::Skipped, None)),
            };
        }
        Err(StoreError::NoSpaceAvailable) => {
            tracing::warn!(key = %key, backend = %from.name, "no other backend has room for this copy");
            return Ok((Step::Failed, None));
        }
        Err(e) => return Err(e),
    };
    let Some(to) = ctx.backends.get(&target) else {
        return Ok((Step::Failed, None));
    };
    Ok(match move_copy(ctx, from, to, loc).await? {
        Moved::Yes(bytes, source) => (Step::Moved(bytes), Some((key.clone(), source))),
        Moved::NotCopied | Moved::NoRoom | Moved::StillOnSource => (Step::Failed, None),
        Moved::Changed => (Step::Skipped, None),
    })
}

/// The backends other than `from` that answer and are within their monthly usage budgets
/// (DESIGN decision 29; a drain's copy spends the target's ingress and requests), in routing
/// order: where a batch's copies may go. Backends being drained themselves are left out by
/// the routing (the write fence).
async fn up_targets(ctx: &Ctx, from: &str) -> Vec<String> {
    let mut up = Vec::new();
    for name in ctx.backends.order() {
        if name != from
            && !ctx.backends.over_budget(name)
            && let Some(b) = ctx.backends.get(name)
            && backend_up(b).await
        {
            up.push(name.clone());
        }
    }
    up
}

/// The second half of the move loop: every noncurrent version's copy on `from`, in (key,
/// version id) order, moved like a current copy (bytes to the same path on the target under a
/// write intent, then `move_version_location` naming the version and the path copied), so a
/// drained backend ends empty (DESIGN decision 25). Runs after the current copies: a version
/// made current again after the first pass went by its key stays, is counted as failed, and
/// the next run moves it.
async fn drain_noncurrent(
    ctx: &Ctx,
    from: &Backend,
    progress: &mut (dyn FnMut(&DrainProgress) + Send),
    report: &mut DrainReport,
    deferred: &mut Vec<(Instant, String, Displaced)>,
) -> LResult<()> {
    let batch = i64::from(ctx.settings.drain.batch_size);
    let concurrency = ctx.settings.drain.concurrency as usize;
    let (mut after_key, mut after_vid) = (String::new(), String::new());
    loop {
        let page = ctx
            .store
            .list_noncurrent_copies_by_backend(&from.name, &after_key, &after_vid, batch)
            .await?;
        let Some(last) = page.last() else { break };
        after_key = last.location.object_key.clone();
        after_vid = last.version_id.clone();
        let up = up_targets(ctx, &from.name).await;
        let up_ref = &up;
        let steps: Vec<LResult<(Step, Option<Source>)>> = futures::stream::iter(page)
            .map(|c| async move { move_noncurrent_one(ctx, from, &c, up_ref).await })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        settle_batch(ctx, &from.name, steps, report, deferred, progress).await?;
    }
    Ok(())
}

/// Counts one batch's steps into the report, queues their sources for deletion after the read
/// grace, deletes the sources whose grace is over, and reports the progress.
async fn settle_batch(
    ctx: &Ctx,
    backend: &str,
    steps: Vec<LResult<(Step, Option<Source>)>>,
    report: &mut DrainReport,
    deferred: &mut Vec<(Instant, String, Displaced)>,
    progress: &mut (dyn FnMut(&DrainProgress) + Send),
) -> LResult<()> {
    for step in steps {
        let (step, source) = step?;
        match step {
            Step::Moved(size) => {
                report.progress.moved += 1;
                report.progress.moved_bytes += u64::try_from(size).unwrap_or(0);
            }
            Step::Dropped => report.progress.dropped += 1,
            Step::Skipped => {}
            Step::Failed => report.progress.failed += 1,
        }
        if let Some((k, d)) = source {
            deferred.push((Instant::now() + READ_GRACE, k, d));
        }
    }
    let now = Instant::now();
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(deferred)
        .into_iter()
        .partition(|(t, _, _)| *t <= now);
    *deferred = later;
    for (_, k, d) in due {
        release_source(ctx, &k, d).await?;
    }
    let (n, bytes) = ctx.store.backend_object_stats(backend).await?;
    report.progress.remaining = n;
    report.progress.remaining_bytes = bytes;
    progress(&report.progress);
    Ok(())
}

/// Moves one noncurrent version's copy off `from`; returns the source bytes to delete once
/// the grace is over. No target with room fails the copy (a noncurrent copy is never
/// dropped here: the version may have no other).
async fn move_noncurrent_one(
    ctx: &Ctx,
    from: &Backend,
    c: &NoncurrentCopy,
    up: &[String],
) -> LResult<(Step, Option<Source>)> {
    let loc = &c.location;
    let key = &loc.object_key;
    let holders: Vec<String> = match ctx.store.get_object_version(key, &c.version_id).await {
        Ok(v) => v.copies.into_iter().map(|l| l.backend_name).collect(),
        Err(StoreError::VersionNotFound { .. }) => return Ok((Step::Skipped, None)),
        Err(e) => return Err(e),
    };
    let candidates: Vec<String> = up
        .iter()
        .filter(|n| !holders.contains(n))
        .cloned()
        .collect();
    let target = if candidates.is_empty() {
        Err(StoreError::NoSpaceAvailable)
    } else {
        ctx.ledger.pick_backend(loc.size_bytes, &candidates).await
    };
    let target = match target {
        Ok(t) => t,
        Err(StoreError::NoSpaceAvailable) => {
            tracing::warn!(key = %key, version = %c.version_id, backend = %from.name, "no other backend has room for this noncurrent copy");
            return Ok((Step::Failed, None));
        }
        Err(e) => return Err(e),
    };
    let Some(to) = ctx.backends.get(&target) else {
        return Ok((Step::Failed, None));
    };
    Ok(match move_version_copy(ctx, from, to, c).await? {
        Moved::Yes(bytes, source) => (Step::Moved(bytes), Some((key.clone(), source))),
        Moved::NotCopied | Moved::NoRoom | Moved::StillOnSource => (Step::Failed, None),
        Moved::Changed => (Step::Skipped, None),
    })
}

/// Moves noncurrent copy `c` from `from` to `to` as [`move_copy`] moves a current one: bytes
/// streamed to the same path on `to` under a write intent there, `move_version_location`
/// naming the version and the path copied, the intent ended either way. `Changed` when the
/// version has no copy left on the source (deleted, or moved by someone else), `StillOnSource`
/// when it does (it became current again, or already has a copy on `to`).
pub(super) async fn move_version_copy(
    ctx: &Ctx,
    from: &Backend,
    to: &Backend,
    c: &NoncurrentCopy,
) -> LResult<Moved> {
    let loc = &c.location;
    let key = &loc.object_key;
    let storage_key = loc.form.storage_path(key).to_owned();
    let copy = match copy_under_intent(
        ctx,
        from,
        to,
        key,
        &storage_key,
        loc.size_bytes,
        &loc.form.etag,
    )
    .await?
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(key = %key, version = %c.version_id, from = %from.name, to = %to.name, error = %e, "copy for a noncurrent move failed");
            return Ok(Moved::NotCopied);
        }
    };
    let moved = ctx
        .store
        .move_version_location(key, &c.version_id, &from.name, &to.name, &storage_key)
        .await;
    // Moved or not, the copy's intent ends here: it just goes when the moved version's row
    // names that path on the target, else our bytes there are queued and deleted.
    end_copy(ctx, copy).await?;
    match moved {
        Ok(MoveOutcome::Moved { bytes, source }) => {
            return Ok(Moved::Yes(
                bytes,
                Displaced {
                    backend: from.name.clone(),
                    storage_key,
                    size: loc.size_bytes,
                    claim: Some(source.cleanup),
                },
            ));
        }
        Ok(_) => {}
        Err(StoreError::NoSpaceAvailable) => return Ok(Moved::NoRoom),
        Err(e) => return Err(e),
    }
    // Refused. Whatever of the version is still on the source is left for the next run.
    let on_source = |copies: &[ObjectLocation]| copies.iter().any(|l| l.backend_name == from.name);
    let still_on_source = match ctx.store.get_object_version(key, &c.version_id).await {
        Ok(v) => on_source(&v.copies),
        Err(StoreError::VersionNotFound { .. }) => false,
        Err(e) => return Err(e),
    };
    Ok(if still_on_source {
        Moved::StillOnSource
    } else {
        Moved::Changed
    })
}

/// How [`move_copy`] ended.
pub(super) enum Moved {
    /// Moved: its bytes, and the source's bytes to release after [`READ_GRACE`].
    Yes(i64, Displaced),
    /// The copy to the target failed (nothing changed; the partial copy went).
    NotCopied,
    /// The target had no room at the commit (nothing changed).
    NoRoom,
    /// The key changed since it was listed and its live version is elsewhere.
    Changed,
    /// The key changed since it was listed and a newer version is still on the source.
    StillOnSource,
}

/// Moves the copy `loc` from `from` to `to` safely: bytes streamed to the same path on `to`
/// under a write intent there, `move_object_location` naming the version copied, the intent
/// ended either way (its bytes deleted unless the moved row now names them). The source's
/// bytes are returned, with the cleanup claim the move queued them under, for
/// [`release_source`] once [`READ_GRACE`] is over.
pub(super) async fn move_copy(
    ctx: &Ctx,
    from: &Backend,
    to: &Backend,
    loc: &ObjectLocation,
) -> LResult<Moved> {
    let key = &loc.object_key;
    let storage_key = loc.form.storage_path(key).to_owned();
    let copy = match copy_under_intent(
        ctx,
        from,
        to,
        key,
        &storage_key,
        loc.size_bytes,
        &loc.form.etag,
    )
    .await?
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(key = %key, from = %from.name, to = %to.name, error = %e, "copy for a move failed");
            return Ok(Moved::NotCopied);
        }
    };
    let moved = ctx
        .store
        .move_object_location(key, &from.name, &to.name, &storage_key)
        .await;
    // Moved or not, the copy's intent ends here: it just goes when the moved row is the live
    // copy at that path, else our bytes on the target are queued and deleted.
    end_copy(ctx, copy).await?;
    match moved {
        Ok(MoveOutcome::Moved { bytes, source: s }) => {
            return Ok(Moved::Yes(
                bytes,
                Displaced {
                    backend: from.name.clone(),
                    storage_key,
                    size: loc.size_bytes,
                    claim: Some(s.cleanup),
                },
            ));
        }
        Ok(_) => {}
        Err(StoreError::NoSpaceAvailable) => return Ok(Moved::NoRoom),
        Err(e) => return Err(e),
    }
    // Refused: the key changed since it was listed (deleted, overwritten, or a copy landed on
    // the target). Nothing is moved back or copied again from here: the ledger already names
    // the live version, wherever its bytes are (moving a row to where its bytes never were lost
    // an overwrite that landed on the target). Our copy went with its intent unless a live
    // copy names that path; a newer version still on the source is left for the next run.
    let still_on_source = ctx
        .ledger
        .copies_or_empty(key)
        .await?
        .iter()
        .any(|c| c.backend == from.name);
    Ok(if still_on_source {
        Moved::StillOnSource
    } else {
        Moved::Changed
    })
}

/// Deletes a moved or dropped copy's source bytes once the read grace is over, and completes
/// its cleanup row. Bytes a live copy names again by then (the replicator may have put a
/// replica of the same version back on the drained backend, at the same path) are kept and
/// only the row completed.
pub(super) async fn release_source(ctx: &Ctx, key: &str, d: Displaced) -> LResult<()> {
    let live = referenced(ctx, key, &d.backend, &d.storage_key).await?;
    match d.claim {
        Some(cleanup) if live => {
            ctx.store.complete_cleanup_item(&cleanup).await?;
        }
        Some(cleanup) => {
            let copy = DeletedCopy {
                backend_name: d.backend,
                size_bytes: d.size,
                storage_key: d.storage_key,
                cleanup,
            };
            if let Err(e) = settle(ctx, vec![copy]).await {
                tracing::warn!(error = %e, "completing a drained copy's cleanup failed; left to the cleanup worker");
            }
        }
        None if live => {}
        None => delete_queued(ctx, &d.backend, &d.storage_key).await,
    }
    Ok(())
}

/// How old unreferenced bytes must be before the drain's sweep deletes them: the reaper's
/// `min_age`, and never less than three intent heartbeats.
fn leftover_age(ctx: &Ctx) -> Duration {
    ctx.settings
        .reaper
        .min_age
        .0
        .max(crate::s3::INTENT_HEARTBEAT * 3)
}

/// Deletes objects under the configured buckets' directories on `b` that no ledger copy on
/// `b` references and that are older than [`leftover_age`]. Bytes younger than that may belong
/// to a write or a replica whose commit is still on its way (a write keeps its intent fresh
/// with a heartbeat, and the reaper only abandons intents older than its `min_age`), so they
/// are never touched; the copies are read after the listing, so every commit that precedes
/// the listing is seen. Run the drain again later to sweep what was too young.
async fn sweep_leftovers(ctx: &Ctx, b: &Backend) -> LResult<u64> {
    let fence = std::time::SystemTime::now().checked_sub(leftover_age(ctx));
    let mut listed = Vec::new();
    for (bucket, _) in &ctx.current_factors().await? {
        let dir = Path::from(bucket.as_str());
        let found: Vec<_> = b
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .unwrap_or_default();
        // A backend clock a little ahead of ours only makes bytes look younger: safe.
        listed.extend(
            found
                .into_iter()
                .filter(|o| fence.is_some_and(|f| std::time::SystemTime::from(o.last_modified) < f))
                .map(|o| o.location),
        );
    }
    if listed.is_empty() {
        return Ok(0);
    }
    let mut keep: BTreeSet<String> = BTreeSet::new();
    // Intents whose bytes are older than the fence belong to writes the reaper ends anyway;
    // keeping the oldest ones' paths costs nothing and leaves their deletion to it.
    let intents = ctx.store.get_stale_pending(Duration::ZERO, 1000).await?;
    for p in intents.iter().filter(|p| p.backend_name == b.name) {
        keep.insert(p.form.storage_path(&p.object_key).to_owned());
    }
    let mut after = String::new();
    loop {
        let copies = ctx
            .store
            .list_objects_by_backend_key_asc(&b.name, &after, 1000)
            .await?;
        let Some(last) = copies.last() else { break };
        after = last.object_key.clone();
        for c in &copies {
            keep.insert(c.form.storage_path(&c.object_key).to_owned());
        }
    }
    let mut deleted = 0;
    for path in listed {
        if keep.contains(path.as_ref()) {
            continue;
        }
        // A noncurrent version's copy the move loop could not take (it runs only when every
        // copy moved, but a version may land here meanwhile) is never a leftover (DESIGN
        // decision 25).
        if let Some((bucket, key)) = super::reconcile::decode_object_path(path.as_ref()) {
            let owner = crate::keys::ledger_key(&bucket, &key);
            if s3o_store::limits::key(&owner).is_ok()
                && ctx
                    .store
                    .get_noncurrent_copies(&owner)
                    .await?
                    .iter()
                    .any(|l| {
                        l.backend_name == b.name && l.form.storage_path(&owner) == path.as_ref()
                    })
            {
                continue;
            }
        }
        match delete_path(b, &path).await {
            Ok(()) => deleted += 1,
            Err(e) => {
                tracing::warn!(backend = %b.name, path = %path, error = %e, "could not delete a leftover")
            }
        }
    }
    if deleted > 0 {
        tracing::info!(backend = %b.name, deleted, "drain deleted unreferenced leftovers");
    }
    Ok(deleted)
}

/// Drains `backend` with a running gateway's workers context (the admin API's drain): same
/// steps, lock and outcome rules as [`drain`], without opening a second ledger handle.
/// Dropping the future stops the drain like an interruption (resumable, see the module docs).
pub(crate) async fn drain_in(
    ctx: &Ctx,
    backend: &str,
    progress: &mut (dyn FnMut(&DrainProgress) + Send),
) -> Result<DrainReport, String> {
    if ctx.backends.get(backend).is_none() {
        return Err(format!(
            "backend {backend:?} is not in the configuration (its bytes must be readable to drain it)"
        ));
    }
    let mut report = DrainReport {
        progress: DrainProgress {
            backend: backend.to_owned(),
            ..DrainProgress::default()
        },
        ..DrainReport::default()
    };
    let outcome = ctx
        .store
        .with_advisory_lock(
            LockId::Drain,
            Box::pin(run(ctx, backend, progress, &mut report)),
        )
        .await;
    match outcome {
        Ok(None) => Err("another drain holds the drain lock; wait for it to finish".into()),
        Ok(Some(Err(e))) | Err(e) => Err(e.to_string()),
        Ok(Some(Ok(()))) if report.progress.failed > 0 => Err(format!(
            "{} copies could not be moved off {backend}; run the drain again",
            report.progress.failed
        )),
        Ok(Some(Ok(()))) => Ok(report),
    }
}
