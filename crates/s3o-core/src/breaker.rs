//! The database circuit breaker: closed → open → half-open → closed.
//!
//! Each engine passes every statement through one breaker (its chokepoint), inside
//! transactions too. After `failure_threshold` consecutive database failures the breaker opens
//! and calls fail fast with [`StoreError::DbUnavailable`] without touching the database. After
//! `open_timeout` plus a random jitter of up to a quarter of it, one call is let through as a
//! probe (half-open); its success closes the breaker, its failure reopens it. A probe that
//! never reports back (its future was dropped) releases the half-open state; one that hangs
//! longer than `stale_probe_after` is treated as failed by the next caller.
//!
//! Answers are not failures: not-found, `NoSpaceAvailable`, invalid input, constraint
//! violations and every other non-[`StoreError::Database`] error count as success, and so does
//! a caller's cancellation (a dropped future reports nothing).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{DbErrorKind, Result, StoreError};

/// Source of monotonic time, injectable so tests never sleep.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time elapsed since an arbitrary fixed origin.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Breaker settings.
#[derive(Clone, Debug)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (default 3).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe (default 15 s).
    pub open_timeout: Duration,
    /// A probe in flight longer than this is considered lost (default 2 min).
    pub stale_probe_after: Duration,
    /// Seed of the jitter generator; `None` seeds from the OS.
    pub jitter_seed: Option<u64>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            open_timeout: Duration::from_secs(15),
            stale_probe_after: Duration::from_secs(120),
            jitter_seed: None,
        }
    }
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast with `DbUnavailable`.
    Open,
    /// One probe call is in flight; others fail fast.
    HalfOpen,
}

/// Counters for dashboards and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BreakerStats {
    /// Closed/half-open → open transitions.
    pub opened: u64,
    /// Half-open/forced → closed transitions.
    pub closed: u64,
    /// Calls rejected without reaching the database.
    pub rejected: u64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    last_failure: Duration,
    jitter: Duration,
    probe_started: Option<Duration>,
    probe_seq: u64,
    stats: BreakerStats,
    rng: fastrand::Rng,
}

/// A circuit breaker shared by every statement of one store.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: &'static str,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// Does this outcome count as a database failure? Only [`StoreError::Database`] errors of the
/// kinds that say the database is unhealthy (connection, other) do. Answers (bad input,
/// including values the database itself refused), constraint violations, a missing schema,
/// overload (a pool wait timeout: the database answers, this process has more callers than
/// connections) and retryable conflicts — serialization failures, deadlocks and SQLite's busy
/// timeouts under lock contention — do not: no caller's arguments and no burst of load may
/// take the whole store offline.
pub fn counts_as_failure(err: &StoreError) -> bool {
    matches!(
        err.db_kind(),
        Some(DbErrorKind::Connection | DbErrorKind::Other)
    )
}

/// Permission for one call, from [`CircuitBreaker::pre_check`]. Report the outcome with
/// [`Permit::finish`]; dropping it unreported (cancellation) counts as nothing.
#[derive(Debug)]
#[must_use = "report the call's outcome with finish()"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: Option<u64>,
    done: bool,
}

impl Permit<'_> {
    /// Records the outcome and returns it, replacing a failure by `DbUnavailable` when the
    /// breaker is (now) not closed.
    pub fn finish<T>(mut self, r: Result<T>) -> Result<T> {
        self.done = true;
        self.breaker.post_check(self.probe, r)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let (false, Some(seq)) = (self.done, self.probe) {
            {
                // Cancelled probe: let the next caller probe instead of waiting for staleness.
                let mut g = self.breaker.lock();
                if g.state == BreakerState::HalfOpen && g.probe_seq == seq {
                    g.state = BreakerState::Open;
                    g.probe_started = None;
                    g.jitter = Duration::ZERO;
                    g.last_failure = self
                        .breaker
                        .clock
                        .now()
                        .saturating_sub(self.breaker.config.open_timeout);
                }
            }
        }
    }
}

impl CircuitBreaker {
    /// A breaker on the real clock.
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        Self::with_clock(name, config, Arc::new(SystemClock::default()))
    }

    /// A breaker on the given clock.
    pub fn with_clock(name: &'static str, config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        let rng = match config.jitter_seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        CircuitBreaker {
            name,
            config,
            clock,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                last_failure: Duration::ZERO,
                jitter: Duration::ZERO,
                probe_started: None,
                probe_seq: 0,
                stats: BreakerStats::default(),
                rng,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way
        // that matters more than refusing all further calls would.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Transition counters.
    pub fn stats(&self) -> BreakerStats {
        self.lock().stats
    }

    /// Asks to make a call. Fails fast with [`StoreError::DbUnavailable`] while open.
    pub fn pre_check(&self) -> Result<Permit<'_>> {
        let now = self.clock.now();
        let mut g = self.lock();
        match g.state {
            BreakerState::Closed => Ok(Permit {
                breaker: self,
                probe: None,
                done: false,
            }),
            BreakerState::Open => {
                if now.saturating_sub(g.last_failure) >= self.config.open_timeout + g.jitter {
                    g.state = BreakerState::HalfOpen;
                    g.probe_started = Some(now);
                    g.probe_seq += 1;
                    tracing::info!(breaker = self.name, "circuit breaker half-open: probing");
                    Ok(Permit {
                        breaker: self,
                        probe: Some(g.probe_seq),
                        done: false,
                    })
                } else {
                    g.stats.rejected += 1;
                    Err(StoreError::DbUnavailable)
                }
            }
            BreakerState::HalfOpen => {
                if g.probe_started
                    .is_some_and(|s| now.saturating_sub(s) >= self.config.stale_probe_after)
                {
                    self.open(&mut g, now, "stale probe");
                }
                g.stats.rejected += 1;
                Err(StoreError::DbUnavailable)
            }
        }
    }

    fn open(&self, g: &mut Inner, now: Duration, why: &str) {
        let from = g.state;
        g.state = BreakerState::Open;
        g.last_failure = now;
        g.probe_started = None;
        let quarter = self.config.open_timeout.as_micros() as u64 / 4;
        g.jitter = Duration::from_micros(if quarter == 0 {
            0
        } else {
            g.rng.u64(0..quarter)
        });
        g.stats.opened += 1;
        tracing::warn!(
            breaker = self.name,
            ?from,
            why,
            failures = g.failures,
            "circuit breaker opened"
        );
    }

    fn post_check<T>(&self, probe: Option<u64>, r: Result<T>) -> Result<T> {
        let failed = matches!(&r, Err(e) if counts_as_failure(e));
        let now = self.clock.now();
        let mut g = self.lock();
        let is_current_probe =
            probe.is_some() && probe == Some(g.probe_seq) && g.state == BreakerState::HalfOpen;
        if !failed {
            if is_current_probe || g.state == BreakerState::Closed {
                if g.state != BreakerState::Closed {
                    g.stats.closed += 1;
                    tracing::info!(
                        breaker = self.name,
                        "circuit breaker closed: database recovered"
                    );
                }
                g.state = BreakerState::Closed;
                g.failures = 0;
                g.probe_started = None;
            }
            return r;
        }
        g.failures = g.failures.saturating_add(1);
        g.last_failure = now;
        match g.state {
            BreakerState::HalfOpen if is_current_probe => self.open(&mut g, now, "probe failed"),
            BreakerState::Closed if g.failures >= self.config.failure_threshold => {
                self.open(&mut g, now, "failure threshold reached")
            }
            _ => {}
        }
        if g.state != BreakerState::Closed {
            if let Err(e) = &r {
                tracing::debug!(breaker = self.name, error = %e, "database failure replaced by DbUnavailable");
            }
            return Err(StoreError::DbUnavailable);
        }
        r
    }

    /// Runs `f` under the breaker: fail fast when open, record the outcome otherwise.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let permit = self.pre_check()?;
        permit.finish(f.await)
    }

    /// Watchdog hook: turns a probe stuck longer than `stale_probe_after` into a failure.
    pub fn reset_stale_probe(&self) {
        let now = self.clock.now();
        let mut g = self.lock();
        if g.state == BreakerState::HalfOpen
            && g.probe_started
                .is_some_and(|s| now.saturating_sub(s) >= self.config.stale_probe_after)
        {
            self.open(&mut g, now, "stale probe");
        }
    }

    /// Forces the breaker closed with zero failures (operator action).
    pub fn recover(&self) {
        let mut g = self.lock();
        if g.state != BreakerState::Closed {
            g.stats.closed += 1;
            tracing::info!(breaker = self.name, "circuit breaker forced closed");
        }
        g.state = BreakerState::Closed;
        g.failures = 0;
        g.probe_started = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug, Default)]
    struct FakeClock(AtomicU64);
    impl FakeClock {
        fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_micros() as u64, Ordering::SeqCst);
        }
    }
    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            Duration::from_micros(self.0.load(Ordering::SeqCst))
        }
    }

    fn db_fail() -> Result<()> {
        Err(StoreError::database(
            DbErrorKind::Connection,
            "ping",
            "connection refused",
        ))
    }

    fn breaker(clock: Arc<FakeClock>) -> CircuitBreaker {
        let cfg = BreakerConfig {
            failure_threshold: 3,
            open_timeout: Duration::from_secs(15),
            stale_probe_after: Duration::from_secs(120),
            jitter_seed: Some(7),
        };
        CircuitBreaker::with_clock("test", cfg, clock)
    }

    fn run(b: &CircuitBreaker, r: Result<()>) -> Result<()> {
        b.pre_check()?.finish(r)
    }

    #[test]
    fn opens_after_threshold_and_fails_fast() {
        let clock = Arc::new(FakeClock::default());
        let b = breaker(clock.clone());
        assert!(matches!(
            run(&b, db_fail()),
            Err(StoreError::Database { .. })
        ));
        assert!(matches!(
            run(&b, db_fail()),
            Err(StoreError::Database { .. })
        ));
        // Third failure opens and is replaced by the sentinel.
        assert!(matches!(run(&b, db_fail()), Err(StoreError::DbUnavailable)));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(b.pre_check(), Err(StoreError::DbUnavailable)));
        assert_eq!(b.stats().rejected, 1);
        assert_eq!(b.stats().opened, 1);
    }

    #[test]
    fn answers_do_not_count_and_success_resets_failures() {
        let b = breaker(Arc::new(FakeClock::default()));
        for _ in 0..10 {
            let r: Result<()> = Err(StoreError::ObjectNotFound { key: "k".into() });
            assert!(matches!(run(&b, r), Err(StoreError::ObjectNotFound { .. })));
            assert!(matches!(
                run(&b, Err(StoreError::NoSpaceAvailable)),
                Err(StoreError::NoSpaceAvailable)
            ));
            let uv: Result<()> = Err(StoreError::database(
                DbErrorKind::UniqueViolation,
                "i",
                "dup",
            ));
            assert!(run(&b, uv).is_err());
            let busy: Result<()> = Err(StoreError::database(DbErrorKind::Busy, "begin", "locked"));
            assert!(matches!(run(&b, busy), Err(StoreError::Database { .. })));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let _ = run(&b, db_fail());
        let _ = run(&b, db_fail());
        run(&b, Ok(())).unwrap();
        let _ = run(&b, db_fail());
        let _ = run(&b, db_fail());
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "success in between resets the count"
        );
    }

    #[test]
    fn half_open_probe_closes_on_success_and_reopens_on_failure() {
        let clock = Arc::new(FakeClock::default());
        let b = breaker(clock.clone());
        for _ in 0..3 {
            let _ = run(&b, db_fail());
        }
        clock.advance(Duration::from_secs(14));
        assert!(
            matches!(b.pre_check(), Err(StoreError::DbUnavailable)),
            "before timeout"
        );
        // Past timeout + max jitter (15 s / 4) the probe is allowed.
        clock.advance(Duration::from_secs(5));
        let probe = b.pre_check().expect("probe allowed");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(
            matches!(b.pre_check(), Err(StoreError::DbUnavailable)),
            "one probe at a time"
        );
        assert!(matches!(
            probe.finish(db_fail()),
            Err(StoreError::DbUnavailable)
        ));
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(19));
        let probe = b.pre_check().expect("second probe");
        probe.finish(Ok(())).unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.stats().opened, 2);
        assert_eq!(b.stats().closed, 1);
    }

    #[test]
    fn jitter_stays_within_a_quarter_of_the_timeout() {
        for seed in 0..50 {
            let clock = Arc::new(FakeClock::default());
            let cfg = BreakerConfig {
                jitter_seed: Some(seed),
                ..BreakerConfig::default()
            };
            let b = CircuitBreaker::with_clock("j", cfg, clock.clone());
            for _ in 0..3 {
                let _ = run(&b, db_fail());
            }
            clock.advance(Duration::from_millis(14_999));
            assert!(b.pre_check().is_err(), "seed {seed}: probe before timeout");
            clock.advance(Duration::from_millis(3_751));
            assert!(
                b.pre_check().is_ok(),
                "seed {seed}: no probe after timeout + T/4"
            );
        }
    }

    #[test]
    fn stale_probe_is_reset_and_cancelled_probe_frees_half_open() {
        let clock = Arc::new(FakeClock::default());
        let b = breaker(clock.clone());
        for _ in 0..3 {
            let _ = run(&b, db_fail());
        }
        clock.advance(Duration::from_secs(20));
        let hung = b.pre_check().unwrap();
        clock.advance(Duration::from_secs(121));
        b.reset_stale_probe();
        assert_eq!(b.state(), BreakerState::Open);
        // The hung probe reporting late does not close the breaker.
        hung.finish(Ok(())).unwrap();
        assert_eq!(b.state(), BreakerState::Open);

        clock.advance(Duration::from_secs(20));
        let cancelled = b.pre_check().unwrap();
        drop(cancelled);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(
            b.pre_check().is_ok(),
            "a cancelled probe lets the next caller probe at once"
        );
    }

    #[test]
    fn recover_forces_closed() {
        let b = breaker(Arc::new(FakeClock::default()));
        for _ in 0..3 {
            let _ = run(&b, db_fail());
        }
        b.recover();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.pre_check().is_ok());
    }
}
