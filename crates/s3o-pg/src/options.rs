//! [`PgOptions`]: pool, breaker, schema and recycling settings.

use std::time::Duration;

use deadpool_postgres::RecyclingMethod;
use s3o_core::breaker::BreakerConfig;

/// Pool, breaker and schema settings. Every timeout is finite.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Most connections the pool holds (default 16).
    pub max_size: usize,
    /// How long a caller waits for a free connection (default 5 s).
    pub wait_timeout: Duration,
    /// How long creating a connection may take, TLS and authentication included (default 5 s).
    pub create_timeout: Duration,
    /// How long recycling (cleaning) a returned connection may take (default 5 s).
    pub recycle_timeout: Duration,
    /// Circuit-breaker settings.
    pub breaker: BreakerConfig,
    /// Schema every pooled connection uses; `None` keeps the server's `search_path`.
    pub schema: Option<String>,
    /// Longest wait for a lock (key lock, row lock) before a statement fails with
    /// `Database { kind: Busy }` (SQLSTATE 55P03): transactions retry a bounded number of
    /// times, and the breaker does not count it. Set on every pooled connection as the
    /// `lock_timeout` startup option (default 5 s; `None` waits forever). Migrations wait
    /// without limit regardless.
    pub lock_timeout: Option<Duration>,
    /// What the pool does with a connection before handing it out again (default
    /// [`Recycling::Fast`]: nothing beyond checking it is open). See [`Recycling`] for why
    /// that is safe and what the other choices cost.
    pub recycling: Recycling,
    /// This store's instance id: the claimant of cleanup rows born in its transactions (the
    /// outbox). `None` (default) ⇒ [`s3o_core::default_instance_id`] (`hostname-pid-random`).
    /// Give each process its own; cleanup workers pass the same id to their claims.
    pub instance_id: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            create_timeout: Duration::from_secs(5),
            recycle_timeout: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
            schema: None,
            lock_timeout: Some(Duration::from_secs(5)),
            recycling: Recycling::Fast,
            instance_id: None,
        }
    }
}

/// How a pooled connection is checked before reuse (`pool_recycling=fast|verified|clean` in
/// the URL).
///
/// **Why `Fast` is the default and safe.** A connection can only carry something into its
/// next checkout if it goes back to the pool holding session state, and none does:
/// - The store never changes session settings on a pooled connection: the schema
///   (`search_path`) and `lock_timeout` are startup options of every connection, so they are
///   the same on every checkout. The one `SET` the store sends (migrations' `lock_timeout =
///   0`) is on a connection that is always closed afterwards, never pooled. No statement uses
///   `LISTEN`, temporary tables, cursors or `SET SESSION`.
/// - Transactions never return mid-way: `COMMIT`/`ROLLBACK` is confirmed before the
///   connection goes back; a transaction dropped mid-statement or whose end fails closes its
///   connection instead (`tx.rs`; `sync_quota_limits` closes its connection on any error).
/// - Session advisory locks return unlocked or not at all: a leader lock is unlocked on its
///   own connection, which is pooled again only when `pg_advisory_unlock` answered `true`
///   (the lock was held exactly once there and is now released); a failed, timed-out or
///   `false` unlock, or a caller gone without a runtime, closes the connection (`locker.rs`).
///   A try-lock that was refused leaves nothing to release. The migration lock's connection
///   is always closed.
///
/// Prepared statements (the per-connection statement cache) are meant to outlive checkouts
/// under every method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recycling {
    /// Reuse the connection as it is if the driver has not seen it close: no round trip per
    /// checkout. A connection whose server silently vanished (a network partition rather than
    /// a restart, which closes the socket) fails its next statement instead of being
    /// replaced at checkout; the breaker and the caller's retry see that failure.
    #[default]
    Fast,
    /// Send an empty query first (one round trip per checkout): a dead connection is replaced
    /// before use.
    Verified,
    /// Reset the session first (one round trip per checkout: `CLOSE ALL`, `RESET ALL`,
    /// `UNLISTEN *`, `pg_advisory_unlock_all()`, `DISCARD TEMP`, …): a safety net against
    /// session state that, per the argument above, the store never leaves behind.
    Clean,
}

impl Recycling {
    pub(crate) fn method(self) -> RecyclingMethod {
        match self {
            Recycling::Fast => RecyclingMethod::Fast,
            Recycling::Verified => RecyclingMethod::Verified,
            Recycling::Clean => RecyclingMethod::Clean,
        }
    }
}
