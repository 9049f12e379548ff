//! The closed-loop load generator: N clients, each running one operation after another.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::Measured;

/// A boxed operation future.
pub(crate) type OpFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One operation of client `client` (0-based), iteration `iter` (1-based, counting warm-up).
pub(crate) type OpFn = Arc<dyn Fn(usize, u64) -> OpFuture + Send + Sync>;

/// Run settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// Unmeasured warm-up (prepares statements, fills pools).
    pub(crate) warmup: Duration,
    /// Measured window.
    pub(crate) duration: Duration,
    /// Most iterations per client (its pre-seeded rows); a client that runs out stops.
    pub(crate) max_iters: u64,
}

/// Runs `op` on `plan.clients` tasks and measures the window after warm-up: throughput is
/// the operations that complete inside the window, latencies are theirs.
pub(crate) async fn run(plan: Plan, op: OpFn) -> Measured {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let mut tasks = Vec::with_capacity(plan.clients);
    for client in 0..plan.clients {
        let op = Arc::clone(&op);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut iter = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end || iter >= plan.max_iters {
                    break;
                }
                iter += 1;
                let r = op(client, iter).await;
                let t1 = Instant::now();
                match r {
                    Ok(()) if t1 >= measure_from && t1 <= end => lat.push(t1 - t0),
                    Ok(()) => {}
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first = None;
    for t in tasks {
        match t.await {
            Ok((lat, e, f)) => {
                all.extend(lat);
                errors += e;
                if first.is_none() {
                    first = f;
                }
            }
            Err(e) => {
                errors += 1;
                first.get_or_insert(format!("client task failed: {e}"));
            }
        }
    }
    // The window ends at `end`, or earlier if every client ran out of rows.
    let stop = Instant::now().min(end);
    let elapsed = stop.saturating_duration_since(measure_from);
    let mut m = Measured::new(all, elapsed, errors);
    m.first_error = first;
    m
}

/// Runs `op` on the current thread (no tasks, no pool): the bare baselines.
pub(crate) fn run_blocking(
    warmup: Duration,
    duration: Duration,
    max_iters: u64,
    mut op: impl FnMut(u64) -> Result<(), String>,
) -> Measured {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first = None;
    let mut iter = 0;
    loop {
        let t0 = Instant::now();
        if t0 >= end || iter >= max_iters {
            break;
        }
        iter += 1;
        let r = op(iter);
        let t1 = Instant::now();
        match r {
            Ok(()) if t1 >= measure_from && t1 <= end => lat.push(t1 - t0),
            Ok(()) => {}
            Err(e) => {
                errors += 1;
                first.get_or_insert(e);
            }
        }
    }
    let stop = Instant::now().min(end);
    let mut m = Measured::new(lat, stop.saturating_duration_since(measure_from), errors);
    m.first_error = first;
    m
}

/// Runs `step` one call after another (one client) for `warmup + duration`; each call
/// returns the part of its work that is measured (it may do untimed set-up or clean-up
/// around it). The result holds the measured parts of the calls that ended inside the window.
pub(crate) async fn run_timed<F, Fut>(warmup: Duration, duration: Duration, mut step: F) -> Measured
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Duration, String>>,
{
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first = None;
    while Instant::now() < end {
        match step().await {
            Ok(d) => {
                let t = Instant::now();
                if t >= measure_from && t <= end {
                    lat.push(d);
                }
            }
            Err(e) => {
                errors += 1;
                first.get_or_insert(e);
                // A failing step fails the same way again: stop rather than spin.
                break;
            }
        }
    }
    let mut m = Measured::new(lat, duration, errors);
    m.first_error = first;
    m
}
