//! The background workers that repair in the background what goes wrong in the foreground:
//! cleanup of orphaned bytes, the pending-intent reaper, the replicator and the
//! over-replication cleaner, the stale multipart sweeper, lifecycle expiration, the usage
//! counter flush, the integrity scrubber, the reconciler (backend against ledger), the
//! rebalancer (off by default) and the notifier; and the drain command.
//!
//! Each worker but the notifier (unlocked: every gateway drains the notification outbox,
//! delivering at least once) runs its passes under its own store leader lock ([`LockId`]), so several
//! gateways sharing one PostgreSQL ledger run each worker on exactly one of them at a time
//! (on SQLite the lock is a file lock: one process). Every step of a pass is one ledger call
//! made after the backend action it records (or before the one it authorises), so stopping
//! between steps leaves nothing half done and unrecorded; shutdown waits for the step in
//! progress and skips the rest of the pass.

mod cleanup;
mod config;
mod drain;
mod import;
mod lifecycle;
mod multipart;
mod notify;
mod open_uploads;
mod reaper;
mod rebalance;
mod reconcile;
mod replicator;
mod scrub;
pub(crate) mod status;
mod usage;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use s3o_store::{DeletedCopy, LockId, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::LedgerHandle;
use crate::backends::{Backend, Backends};
use crate::keys;
use crate::ledger::{LResult, Ledger};

pub use config::{
    CleanupSettings, DrainSettings, Interval, LifecycleSettings, MultipartSettings, NotifySettings,
    ReaperSettings, ReconcileSettings, ScanSettings, UsageFlushSettings, WorkersConfig,
};
pub(crate) use drain::drain_in;
pub use drain::{DrainProgress, DrainReport, drain};
pub use import::{ImportEvent, ImportOptions, ImportProgress, ImportRefusal, import};

/// One background worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Worker {
    /// Resolves abandoned write intents (`LockId::PendingReaper`).
    Reaper,
    /// Aborts multipart uploads older than the configured age (`LockId::MultipartCleanup`).
    Multipart,
    /// Adds copies to keys below their bucket's replication factor (`LockId::Replicator`).
    Replicator,
    /// Removes copies above the factor (`LockId::OverReplication`).
    OverReplication,
    /// Expires objects and aborts uploads by the buckets' lifecycle rules (`LockId::Lifecycle`).
    Lifecycle,
    /// Deletes queued orphaned bytes, retrying with backoff (`LockId::CleanupQueue`).
    Cleanup,
    /// Flushes the backend usage counters to the ledger (`LockId::UsageFlush`).
    UsageFlush,
    /// Moves copies from the most to the least utilised backend while they differ by more
    /// than a threshold; off unless enabled (`LockId::Rebalancer`).
    Rebalance,
    /// Re-reads copies and checks their bytes against their hash; drops a bad copy unless it
    /// is the last (`LockId::Scrubber`).
    Scrub,
    /// Compares each backend with the ledger: aborts uploads and deletes bytes nothing
    /// references (`LockId::Reconcile`).
    Reconcile,
    /// Delivers the notification outbox to its webhooks. Unlocked (every gateway drains it:
    /// delivery is at least once), so not in [`Worker::ALL`]; it runs with the others in the
    /// background and alone with `run_worker_once`.
    Notify,
}

impl Worker {
    /// Every worker, in the order one full pass runs them: intents resolved and uploads
    /// aborted first (they may queue cleanups), the scrubber (its dropped copies are rebuilt
    /// next), replication and rebalancing next, expiration, cleanup, the reconciler (what the
    /// others ended no longer references the bytes it looks for), and the usage flush last (it
    /// counts what the others spent).
    pub const ALL: [Worker; 10] = [
        Worker::Reaper,
        Worker::Multipart,
        Worker::Scrub,
        Worker::Replicator,
        Worker::OverReplication,
        Worker::Rebalance,
        Worker::Lifecycle,
        Worker::Cleanup,
        Worker::Reconcile,
        Worker::UsageFlush,
    ];

    /// Name used in logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Worker::Reaper => "pending_reaper",
            Worker::Multipart => "multipart_sweeper",
            Worker::Replicator => "replicator",
            Worker::OverReplication => "over_replication",
            Worker::Cleanup => "cleanup",
            Worker::Reconcile => "reconcile",
            Worker::Lifecycle => "lifecycle",
            Worker::UsageFlush => "usage_flush",
            Worker::Scrub => "scrubber",
            Worker::Rebalance => "rebalancer",
            Worker::Notify => "notifier",
        }
    }

    /// The leader lock its passes run under; `None` for the notifier, which runs unlocked.
    pub const fn lock(self) -> Option<LockId> {
        Some(match self {
            Worker::Reaper => LockId::PendingReaper,
            Worker::Multipart => LockId::MultipartCleanup,
            Worker::Replicator => LockId::Replicator,
            Worker::OverReplication => LockId::OverReplication,
            Worker::Cleanup => LockId::CleanupQueue,
            Worker::Reconcile => LockId::Reconcile,
            Worker::Lifecycle => LockId::Lifecycle,
            Worker::UsageFlush => LockId::UsageFlush,
            Worker::Scrub => LockId::Scrubber,
            Worker::Rebalance => LockId::Rebalancer,
            Worker::Notify => return None,
        })
    }

    fn interval(self, s: &WorkersConfig) -> Duration {
        match self {
            Worker::Reaper => s.reaper.interval.0,
            Worker::Multipart => s.multipart.interval.0,
            Worker::Replicator => s.replicator.interval.0,
            Worker::OverReplication => s.over_replication.interval.0,
            Worker::Cleanup => s.cleanup.interval.0,
            Worker::Reconcile => s.reconcile.interval.0,
            Worker::Lifecycle => s.lifecycle.interval.0,
            Worker::UsageFlush => s.usage_flush.interval.0,
            Worker::Scrub => s.scrub.interval.0,
            Worker::Rebalance => s.rebalance.interval.0,
            Worker::Notify => s.notify.interval.0,
        }
    }
}

/// How one pass of one worker ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassResult {
    /// The pass ran; item results by label (e.g. `deleted`, `retried`, `promoted`).
    Ran(BTreeMap<&'static str, u64>),
    /// Another instance holds the worker's leader lock.
    NotLeader,
    /// The ledger was unavailable: the tick was skipped, not counted as a failure.
    SkippedLedgerUnavailable,
    /// The leader lock was lost mid-pass (its session ended): the pass stopped at its next
    /// step; whoever takes the lock next redoes what was left.
    LeadershipLost,
    /// The pass failed; the message names the cause.
    Failed(String),
}

impl PassResult {
    /// Items counted under `label` (0 unless the pass ran).
    pub fn count(&self, label: &str) -> u64 {
        match self {
            PassResult::Ran(m) => m.get(label).copied().unwrap_or(0),
            _ => 0,
        }
    }

    fn outcome_label(&self) -> &'static str {
        match self {
            PassResult::Ran(m) if m.values().all(|n| *n == 0) => "empty",
            PassResult::Ran(_) => "done",
            PassResult::NotLeader => "not_leader",
            PassResult::SkippedLedgerUnavailable => "skipped_ledger_unavailable",
            PassResult::LeadershipLost => "leadership_lost",
            PassResult::Failed(_) => "failed",
        }
    }
}

/// What one pass of every worker did, in [`Worker::ALL`] order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkersReport {
    /// Each worker's result.
    pub passes: Vec<(Worker, PassResult)>,
}

impl WorkersReport {
    /// The result of `worker`'s pass.
    pub fn get(&self, worker: Worker) -> Option<&PassResult> {
        self.passes
            .iter()
            .find(|(w, _)| *w == worker)
            .map(|(_, r)| r)
    }

    /// Items of `worker` counted under `label`.
    pub fn count(&self, worker: Worker, label: &str) -> u64 {
        self.get(worker).map_or(0, |r| r.count(label))
    }
}

/// Item results of a pass in progress.
#[derive(Debug, Default)]
pub(crate) struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    pub(crate) fn add(&mut self, label: &'static str) {
        *self.0.entry(label).or_default() += 1;
    }
}

/// Worker counters for `/metrics`.
#[derive(Default)]
pub(crate) struct WorkerMetrics {
    /// (worker, outcome) → passes.
    passes: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// (worker, result) → items.
    items: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// worker → seconds the last pass took.
    last: Mutex<BTreeMap<&'static str, f64>>,
}

impl WorkerMetrics {
    fn record(&self, w: Worker, r: &PassResult, took: Duration) {
        {
            let mut p = self.passes.lock().unwrap_or_else(|e| e.into_inner());
            *p.entry((w.name(), r.outcome_label())).or_default() += 1;
        }
        if let PassResult::Ran(m) = r {
            let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
            for (label, n) in m {
                *items.entry((w.name(), label)).or_default() += n;
            }
        }
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(w.name(), took.as_secs_f64());
    }

    /// Renders the worker series in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        out.push_str("# HELP s3o_gateway_worker_passes_total Worker passes by outcome.\n");
        out.push_str("# TYPE s3o_gateway_worker_passes_total counter\n");
        for ((w, o), n) in self.passes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "s3o_gateway_worker_passes_total{{worker=\"{w}\",outcome=\"{o}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP s3o_gateway_worker_items_total Items handled by workers, by result.\n",
        );
        out.push_str("# TYPE s3o_gateway_worker_items_total counter\n");
        for ((w, r), n) in self.items.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "s3o_gateway_worker_items_total{{worker=\"{w}\",result=\"{r}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP s3o_gateway_worker_last_pass_seconds Duration of each worker's last pass.\n",
        );
        out.push_str("# TYPE s3o_gateway_worker_last_pass_seconds gauge\n");
        for (w, s) in self.last.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "s3o_gateway_worker_last_pass_seconds{{worker=\"{w}\"}} {s}"
            );
        }
    }
}

/// Everything a worker pass uses.
pub(crate) struct Ctx {
    pub(crate) store: LedgerHandle,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) backends: Arc<Backends>,
    pub(crate) settings: WorkersConfig,
    /// Virtual bucket → replication factor (≥ 1).
    pub(crate) factors: Vec<(String, i64)>,
    pub(crate) metrics: WorkerMetrics,
    /// Each worker's last pass (the admin API's view).
    pub(crate) status: status::Registry,
    /// The master keys, so the scrubber can open encrypted copies (`None`: no `[encryption]`).
    pub(crate) crypto: Option<Arc<crate::crypto::gateway::Crypto>>,
    stop: AtomicBool,
    /// Scan position per (worker, bucket): the last key examined.
    cursors: Mutex<BTreeMap<(Worker, String), String>>,
}

impl Ctx {
    /// Every bucket and its replication factor as the ledger has them now, so a bucket created
    /// or changed over S3 is served from the next pass on (the snapshot taken at start is kept
    /// in `factors` for callers without a ledger round trip).
    pub(crate) async fn current_factors(&self) -> LResult<Vec<(String, i64)>> {
        Ok(self
            .ledger
            .buckets()
            .await?
            .into_iter()
            .map(|b| (b.name, i64::from(b.settings.replication_factor.max(1))))
            .collect())
    }

    pub(crate) fn new(
        store: LedgerHandle,
        ledger: Arc<Ledger>,
        backends: Arc<Backends>,
        config: &crate::Config,
    ) -> Ctx {
        Ctx {
            store,
            ledger,
            backends,
            settings: config.workers.clone(),
            factors: config
                .buckets
                .iter()
                .map(|b| (b.name.clone(), i64::from(b.replication_factor.max(1))))
                .collect(),
            metrics: WorkerMetrics::default(),
            status: status::Registry::default(),
            crypto: None,
            stop: AtomicBool::new(false),
            cursors: Mutex::default(),
        }
    }

    /// True once shutdown began: passes stop between steps.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn cursor(&self, w: Worker, bucket: &str) -> String {
        self.cursors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(w, bucket.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    fn set_cursor(&self, w: Worker, bucket: &str, key: String) {
        self.cursors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((w, bucket.to_owned()), key);
    }
}

/// True when the error says the ledger itself cannot answer now (breaker open, connection
/// lost): such a tick is skipped, not counted as a worker failure.
pub(crate) fn ledger_unavailable(e: &StoreError) -> bool {
    matches!(e, StoreError::DbUnavailable)
        || e.db_kind() == Some(s3o_store::DbErrorKind::Connection)
}

/// Runs one pass of `w` under its leader lock and records it in the metrics and the log.
pub(crate) async fn run_pass(ctx: &Ctx, w: Worker) -> PassResult {
    let started = Instant::now();
    let mut tally = Tally::default();
    let result = {
        let pass: s3o_store::BoxFuture<'_, LResult<()>> = match w {
            Worker::Cleanup => Box::pin(cleanup::pass(ctx, &mut tally)),
            Worker::Reaper => Box::pin(reaper::pass(ctx, &mut tally)),
            Worker::Replicator => Box::pin(replicator::replicate(ctx, &mut tally)),
            Worker::OverReplication => Box::pin(replicator::trim(ctx, &mut tally)),
            Worker::Multipart => Box::pin(multipart::pass(ctx, &mut tally)),
            Worker::Reconcile => Box::pin(reconcile::pass(ctx, &mut tally)),
            Worker::Lifecycle => Box::pin(lifecycle::pass(ctx, &mut tally)),
            Worker::UsageFlush => Box::pin(usage::pass(ctx, &mut tally)),
            Worker::Scrub => Box::pin(scrub::pass(ctx, &mut tally)),
            Worker::Rebalance => Box::pin(rebalance::pass(ctx, &mut tally)),
            Worker::Notify => Box::pin(notify::pass(ctx, &mut tally)),
        };
        match w.lock() {
            Some(lock) => ctx.store.with_advisory_lock(lock, pass).await,
            None => Ok(Some(pass.await)),
        }
    };
    let r = match result {
        Ok(None) => PassResult::NotLeader,
        Ok(Some(Ok(()))) => PassResult::Ran(tally.0),
        Ok(Some(Err(StoreError::LeadershipLost { .. })))
        | Err(StoreError::LeadershipLost { .. }) => PassResult::LeadershipLost,
        Ok(Some(Err(e))) | Err(e) if ledger_unavailable(&e) => PassResult::SkippedLedgerUnavailable,
        Ok(Some(Err(e))) | Err(e) => PassResult::Failed(e.to_string()),
    };
    let took = started.elapsed();
    ctx.metrics.record(w, &r, took);
    ctx.status.record(w, &r, took);
    match &r {
        PassResult::Ran(m) if m.values().any(|n| *n > 0) => {
            tracing::info!(worker = w.name(), items = ?m, took_ms = took.as_millis() as u64, "worker pass");
        }
        PassResult::Ran(_) | PassResult::NotLeader => {
            tracing::debug!(
                worker = w.name(),
                outcome = r.outcome_label(),
                "worker pass"
            );
        }
        PassResult::LeadershipLost => {
            tracing::warn!(worker = w.name(), "leader lock lost mid-pass: pass stopped");
        }
        PassResult::SkippedLedgerUnavailable => {
            tracing::warn!(worker = w.name(), "ledger unavailable: worker pass skipped");
        }
        PassResult::Failed(e) => {
            tracing::error!(worker = w.name(), error = %e, "worker pass failed");
        }
    }
    r
}

/// One pass of every worker, in [`Worker::ALL`] order.
pub(crate) async fn run_all_once(ctx: &Ctx) -> WorkersReport {
    let mut passes = Vec::with_capacity(Worker::ALL.len());
    for w in Worker::ALL {
        passes.push((w, run_pass(ctx, w).await));
    }
    WorkersReport { passes }
}

/// How long shutdown waits for the steps in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The worker tasks of a running gateway.
pub(crate) struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Spawns one loop per worker (none when the section disables them).
    pub(crate) fn start(ctx: &Arc<Ctx>) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if ctx.settings.enabled {
            for w in Worker::ALL.into_iter().chain([Worker::Notify]) {
                tasks.push(tokio::spawn(run_loop(ctx.clone(), w, stopped.clone())));
            }
        }
        Workers { stop, tasks }
    }

    /// Asks every loop to stop without waiting.
    pub(crate) fn signal_stop(&self, ctx: &Ctx) {
        ctx.stop.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
    }

    /// Stops every loop: a pass in progress finishes its current step and returns. A step
    /// still running after [`SHUTDOWN_GRACE`] (a copy from a backend that stopped answering)
    /// is cut like a crash, which every step survives: it is redone by a later pass.
    pub(crate) async fn shutdown(self, ctx: &Ctx) {
        self.signal_stop(ctx);
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!("a worker step did not finish within the shutdown grace: cut");
            for a in aborts {
                a.abort();
            }
        }
    }
}

async fn run_loop(ctx: Arc<Ctx>, w: Worker, mut stopped: watch::Receiver<bool>) {
    let interval = w.interval(&ctx.settings);
    // Random start within half a tick, so instances started together do not contend in step.
    let mut delay = interval.mul_f64(fastrand::f64() * 0.5);
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() || ctx.stopping() {
            break;
        }
        run_pass(&ctx, w).await;
        delay = interval;
    }
}

/// How long a probe may take before its backend counts as down. Backend clients have no
/// overall request timeout (it would cut long streamed bodies), so a backend that accepts
/// and never answers would otherwise stall a worker, and its leader lock, for good.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a worker's single delete may take.
pub(crate) const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a backend answers at all: a HEAD of a path that never exists must come back
/// 404 within [`PROBE_TIMEOUT`]. A backend that rejects only some operations is up; one that
/// refuses connections, answers 5xx or hangs is down, and workers skip it instead of
/// hammering it.
pub(crate) async fn backend_up(b: &Backend) -> bool {
    let path = Path::from(".s3o-probe");
    match tokio::time::timeout(PROBE_TIMEOUT, b.store.head(&path)).await {
        Ok(Ok(_) | Err(object_store::Error::NotFound { .. })) => true,
        Ok(Err(e)) => {
            tracing::warn!(backend = %b.name, error = %e, "backend is down");
            false
        }
        Err(_) => {
            tracing::warn!(backend = %b.name, "backend does not answer");
            false
        }
    }
}

/// Deletes `path` on `b` within [`DELETE_TIMEOUT`]; a missing object counts as deleted.
pub(crate) async fn delete_path(b: &Backend, path: &Path) -> Result<(), String> {
    match tokio::time::timeout(DELETE_TIMEOUT, b.store.delete(path)).await {
        Ok(Ok(()) | Err(object_store::Error::NotFound { .. })) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {DELETE_TIMEOUT:?}")),
    }
}

/// True when `b` may be read by a worker pass that would spend its budget: not over a
/// monthly usage limit. An over-budget backend is left out of the pass (not even probed),
/// counted once per pass as `backend_over_budget` and logged, so the reason is on record.
pub(crate) fn within_budget(ctx: &Ctx, b: &Backend, t: &mut Tally) -> bool {
    if !ctx.backends.over_budget(&b.name) {
        return true;
    }
    tracing::info!(backend = %b.name, "backend over its monthly usage budget: left out of this pass");
    t.add("backend_over_budget");
    false
}

/// Per-pass memo of [`backend_up`].
#[derive(Default)]
pub(crate) struct Health(BTreeMap<String, bool>);

impl Health {
    pub(crate) async fn up(&mut self, b: &Backend) -> bool {
        if let Some(v) = self.0.get(&b.name) {
            return *v;
        }
        let v = backend_up(b).await;
        self.0.insert(b.name.clone(), v);
        v
    }

    /// Records that `b` failed mid-pass, when a probe confirms it is down.
    pub(crate) async fn recheck(&mut self, b: &Backend) -> bool {
        self.0.remove(&b.name);
        self.up(b).await
    }
}

/// Copies the bytes at `path` from `src` to the same path on `dst`, streaming with the
/// upload's bounded buffer. The copy must have `size` bytes and, for a single-PUT ETag, the
/// MD5 it names; otherwise the partial copy is deleted and the error returned.
pub(crate) async fn copy_bytes(
    src: &Backend,
    dst: &Backend,
    path: &Path,
    size: i64,
    etag: &str,
    record: Option<crate::body::RecordUpload<'_>>,
) -> Result<(), String> {
    let got = src
        .store
        .get(path)
        .await
        .map_err(|e| format!("read from {}: {e}", src.name))?;
    let stream = got.into_stream().map_err(|e| Box::new(e) as s3s::StdError);
    let mut hasher = s3s::checksum::ChecksumHasher::default();
    let up = crate::body::upload(
        dst,
        path,
        stream,
        u64::try_from(size).ok(),
        &mut hasher,
        record,
    )
    .await
    .map_err(|e| match e {
        crate::body::UploadError::Body(e) => format!("read from {}: {e}", src.name),
        crate::body::UploadError::Backend(e) => format!("write to {}: {e}", dst.name),
    })?;
    // An encrypted version's ETag is its plaintext's MD5: its ciphertext is copied as is and
    // authenticated chunk by chunk when read.
    let md5_ok = crate::crypto::gateway::is_sealed_path(path.as_ref())
        || crate::body::etag_md5(etag).is_none_or(|m| m == up.md5);
    if i64::try_from(up.size).ok() != Some(size) || !md5_ok {
        let _ = dst.store.delete(path).await;
        return Err(format!(
            "copy from {} to {} does not match the ledger (size {} vs {size}, md5 ok: {md5_ok})",
            src.name, dst.name, up.size
        ));
    }
    Ok(())
}

/// A copy of a version's bytes written to another backend (a replica or a drained copy) under
/// a write intent on that backend, so that a worker killed between the copy and its ledger
/// record leaves nothing the reaper cannot find. End it with [`end_copy`] whatever happened.
pub(crate) struct CopyIntent {
    intent: s3o_store::PendingObject,
}

/// Records an intent for `storage_key` on `dst`, then copies the bytes there from `src`
/// (refreshing the intent while the copy streams, and recording a backend multipart upload
/// with it). The outer error is the ledger's; the inner one says why the copy failed, in which
/// case the intent has been ended already.
pub(crate) async fn copy_under_intent(
    ctx: &Ctx,
    src: &Backend,
    dst: &Backend,
    key: &str,
    storage_key: &str,
    size: i64,
    etag: &str,
) -> LResult<Result<CopyIntent, String>> {
    let intent = s3o_store::PendingObject {
        intent_id: uuid::Uuid::new_v4().to_string(),
        object_key: key.to_owned(),
        backend_name: dst.name.clone(),
        size_bytes: size,
        form: s3o_store::StoredForm {
            storage_key: storage_key.to_owned(),
            ..s3o_store::StoredForm::default()
        },
        created_at: s3o_store::Timestamp::ZERO,
    };
    ctx.store.insert_pending(&intent).await?;
    let copy = CopyIntent { intent };
    let id = copy.intent.intent_id.clone();
    let store = ctx.store.clone();
    let record =
        move |upload_id: String| -> futures::future::BoxFuture<'static, Result<(), String>> {
            let (store, id) = (store.clone(), id.clone());
            Box::pin(async move {
                match store.set_pending_backend_upload(&id, &upload_id).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("the copy's intent is gone".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            })
        };
    let path = keys::path(storage_key);
    let copied = {
        let work = copy_bytes(src, dst, &path, size, etag, Some(&record));
        tokio::pin!(work);
        let ids = [copy.intent.intent_id.clone()];
        let heartbeat = async {
            loop {
                tokio::time::sleep(crate::s3::intent_heartbeat(ctx.settings.reaper.min_age.0))
                    .await;
                if let Err(e) = ctx.store.touch_pending(&ids).await {
                    tracing::warn!(error = %e, "could not refresh a copy's intent");
                }
            }
        };
        tokio::pin!(heartbeat);
        tokio::select! {
            r = &mut work => r,
            () = &mut heartbeat => unreachable!("the heartbeat never ends"),
        }
    };
    match copied {
        Ok(()) => Ok(Ok(copy)),
        Err(e) => {
            end_copy(ctx, copy).await?;
            Ok(Err(e))
        }
    }
}

/// Ends a copy's intent in one ledger transaction: when a live copy was recorded at its
/// backend and path (the replica or move went through) the intent just goes; otherwise its
/// bytes are queued and deleted now.
pub(crate) async fn end_copy(ctx: &Ctx, copy: CopyIntent) -> LResult<()> {
    let (_, queued) = ctx.store.abandon_pending(&copy.intent).await?;
    settle(ctx, queued).await
}

/// Deletes the bytes of copies the ledger took out (their cleanup rows were enqueued and
/// claimed by this store in the same transaction) and completes each row; a delete that
/// fails leaves its row for the cleanup worker, which takes it over after the claim grace.
pub(crate) async fn settle(ctx: &Ctx, deleted: Vec<DeletedCopy>) -> LResult<()> {
    for d in deleted {
        let Some(b) = ctx.backends.get(&d.backend_name) else {
            continue;
        };
        match delete_path(b, &keys::path(&d.storage_key)).await {
            Ok(()) => {
                ctx.store.complete_cleanup_item(&d.cleanup).await?;
            }
            Err(e) => {
                tracing::warn!(backend = %d.backend_name, key = %d.storage_key, error = %e, "delete failed; left to the cleanup worker");
            }
        }
    }
    Ok(())
}

/// Deletes bytes the ledger's outbox already queued but returned no claim for (excess copy,
/// source of a move): deleting them now frees the space at once; the cleanup worker finds them
/// gone (404 counts as deleted) when it completes their rows.
pub(crate) async fn delete_queued(ctx: &Ctx, backend: &str, storage_key: &str) {
    if let Some(b) = ctx.backends.get(backend)
        && let Err(e) = delete_path(b, &keys::path(storage_key)).await
    {
        tracing::warn!(backend = %backend, key = %storage_key, error = %e, "delete failed; left to the cleanup worker");
    }
}

/// True when some ledger copy of `key` on `backend` lives at `storage_key`, of the current
/// version or of a noncurrent one (DESIGN decision 25): bytes there are not ours to delete.
pub(crate) async fn referenced(
    ctx: &Ctx,
    key: &str,
    backend: &str,
    storage_key: &str,
) -> LResult<bool> {
    let current = ctx
        .ledger
        .copies_or_empty(key)
        .await?
        .iter()
        .any(|c| c.backend == backend && c.meta.storage_key == storage_key);
    if current || s3o_store::limits::key(key).is_err() {
        return Ok(current);
    }
    Ok(ctx
        .store
        .get_noncurrent_copies(key)
        .await?
        .iter()
        .any(|l| l.backend_name == backend && l.form.storage_key == storage_key))
}
