//! # s3o-sqlite
//!
//! The SQLite engine of the s3o metadata store: [`SqliteStore`] implements every role of
//! [`s3o_core::MetadataStore`] on one database file. It is the embedded default, held to the
//! same contract as the PostgreSQL engine; the multi-statement operations are s3o-core's
//! [`s3o_core::ops`], run unchanged through this crate's [`s3o_core::Runner`].
//!
//! ```no_run
//! # async fn demo() -> s3o_core::Result<()> {
//! use s3o_core::{LifecycleAdmin, ObjectStore, StoredForm};
//! let store = s3o_sqlite::SqliteStore::open("sqlite://data/s3o.db").await?;
//! store.run_migrations().await?;
//! store.sync_quota_limits(&[("b1".into(), 0)]).await?;
//! store.record_object("photos/cat.jpg", "b1", 1234, &StoredForm::default()).await?;
//! # Ok(()) }
//! ```
//!
//! ## URLs
//! - `sqlite://relative/path.db`, `sqlite:///absolute/path.db`: a database file, created if
//!   missing (its directory must exist).
//! - `sqlite::memory:`: a private in-memory database, one per store. It has no reader pool:
//!   every call goes through the single writer connection, so all pooled work sees the same
//!   database (rather than one empty database per pooled connection); reads then wait while a
//!   write transaction is open. Leader locks of an in-memory store are process-local.
//!
//! Anything else is `StoreError::InvalidInput` naming these forms. [`SqliteStore::open`] never
//! migrates: call `LifecycleAdmin::run_migrations` (or check with `verify_schema_version`).
//!
//! ## Connections and concurrency
//! The file runs in WAL mode with `foreign_keys=ON` and an explicit `busy_timeout`. One writer
//! connection serves every write; each write transaction starts with `BEGIN IMMEDIATE`, which
//! takes the file's write lock up front, so two writers (tasks or processes) queue on the
//! busy timeout instead of deadlocking on a lock upgrade. While the writer is busy, reads run
//! on a pool of `query_only` connections and see the last committed state. Because every
//! write transaction holds the file's single write lock, row locks (`FOR UPDATE`) and key
//! locks are unnecessary: `acquire_key_lock` is a no-op. A `BUSY` answer after the timeout is
//! retryable; `with_tx_val` reruns the whole transaction a bounded number of times.
//!
//! Every blocking call — opening, checking out a reader, every statement — runs on tokio's
//! blocking pool via `spawn_blocking`. **A caller's timeout does not cancel a started
//! transaction**: a blocking task cannot be interrupted, so a timed-out call may still
//! commit. Treat a timeout as "outcome unknown", never as "not applied". A transaction whose
//! owner is dropped before commit is rolled back before the writer serves anyone else.
//!
//! ## Durability
//! [`Synchronous::Normal`] (the default) is WAL's usual trade: a commit is atomic and
//! consistent, and survives a crash of the process, but the last transactions before a power
//! loss or OS crash may be rolled back (the database is never corrupted). [`Synchronous::Full`]
//! fsyncs the WAL on every commit, so a committed transaction survives power loss too, at the
//! cost of one fsync per write transaction.
//!
//! ## Time
//! Timestamps are stored as INTEGER microseconds since the Unix epoch (UTC), computed in Rust
//! and bound as parameters, so ordering by time is exact at microsecond precision.
//!
//! ## Circuit breaker
//! Every statement, including those inside transactions, passes the store's
//! [`CircuitBreaker`]; when it is open, calls fail fast with `StoreError::DbUnavailable`.
//! Rollbacks, migrations and leader locks bypass it.
//!
//! ## Leader locks
//! `with_advisory_lock` holds an OS file lock on `<database>.leader-<id>.lock` next to the
//! database file: exclusive across processes and across stores of one process, independent
//! per lock id, and released by the OS when a holder dies.

mod admin;
mod backend;
mod cleanup;
mod conn;
mod dashboard;
mod encryption;
mod error;
mod integrity;
mod locker;
mod multipart;
mod notification;
mod objects;
mod pending;
mod quota;
mod reader;
mod replication;
mod tx;
mod usage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use s3o_core::breaker::{BreakerConfig, CircuitBreaker};
use s3o_core::{MetadataStore, Result, StoreError};

use crate::conn::{Conns, Target};
use crate::locker::LeaderLocks;

/// Re-export of the driver this crate links, so users never mismatch versions.
pub use conn::SQL_TRACE_TARGET;
pub use rusqlite;

/// The schema version this binary expects: the number of the last file in `migrations/sqlite`.
pub const EXPECTED_SCHEMA_VERSION: i64 = 3;

/// The `synchronous` level of the writer connection (see the crate docs on durability).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: commits survive a process crash; the last ones may be lost on
    /// power loss.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced and survives power loss.
    Full,
}

/// How a [`SqliteStore`] is opened.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Durability level of commits (default [`Synchronous::Normal`]).
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock held by another connection or process before
    /// failing with a retryable `Busy` error (default 5 s). Also bounds, with a floor of 5 s,
    /// the wait for a free reader connection.
    pub busy_timeout: Duration,
    /// Reader connections in the pool (default 4; at least 1).
    pub readers: u32,
    /// The circuit breaker's settings.
    pub breaker: BreakerConfig,
    /// Off by default: every SQLite call then runs on tokio's blocking pool. When on, the
    /// non-waiting `BEGIN IMMEDIATE` and single-row statements inside an open write
    /// transaction run on the calling task's thread instead (falling back to the blocking pool
    /// whenever they would wait), saving one thread hand-off each: measured 0.35× → 0.61× of
    /// a bare rusqlite loop for `record_object`. The price is an async worker blocked for the
    /// statement's duration — microseconds on a warm page cache, a disk read on a cold one.
    pub inline_point_statements: bool,
    /// This store's instance id: the claimant of cleanup rows born in its transactions (the
    /// outbox). `None` (default) ⇒ [`s3o_core::default_instance_id`] (`hostname-pid-random`).
    /// Give each process its own; cleanup workers pass the same id to their claims.
    pub instance_id: Option<String>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            breaker: BreakerConfig::default(),
            inline_point_statements: false,
            instance_id: None,
        }
    }
}

/// The SQLite metadata store. Cheap to clone: clones share the connections, the breaker and
/// the leader locks.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) conns: Arc<Conns>,
    pub(crate) locks: Arc<LeaderLocks>,
    pub(crate) instance_id: Arc<str>,
}

const ACCEPTED_URLS: &str =
    "expected `sqlite://relative/path`, `sqlite:///absolute/path` or `sqlite::memory:`";

/// Parses a store URL into where the database lives.
pub(crate) fn parse_url(url: &str) -> Result<Target> {
    let invalid = |why: String| StoreError::invalid("sqlite url", why);
    if url == "sqlite::memory:" {
        return Ok(Target::Memory);
    }
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Err(invalid(format!("`{url}`: {ACCEPTED_URLS}")));
    };
    if rest == ":memory:" {
        return Ok(Target::Memory);
    }
    if rest.is_empty() || rest == "/" {
        return Err(invalid(format!("`{url}` names no file: {ACCEPTED_URLS}")));
    }
    if rest.contains(['?', '#', '\0']) {
        return Err(invalid(format!(
            "`{url}`: query strings and fragments are not supported; {ACCEPTED_URLS}"
        )));
    }
    Ok(Target::File(PathBuf::from(rest)))
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` with default options. Does not
    /// migrate. Bad URL ⇒ `InvalidInput`; unopenable file ⇒ `Database { kind: Connection }`.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        Self::open_with(url, SqliteOptions::default()).await
    }

    /// Opens the database at `url` with `opts`. Does not migrate.
    pub async fn open_with(url: &str, opts: SqliteOptions) -> Result<SqliteStore> {
        let target = parse_url(url)?;
        let instance_id: Arc<str> = match &opts.instance_id {
            Some(id) => {
                s3o_core::validate::text("instance id", id)?;
                id.as_str().into()
            }
            None => s3o_core::default_instance_id().into(),
        };
        let breaker = Arc::new(CircuitBreaker::new("sqlite", opts.breaker.clone()));
        let open_target = target.clone();
        let conns = tokio::task::spawn_blocking(move || Conns::open(&open_target, &opts, breaker))
            .await
            .map_err(|e| error::join_err("open database", e))??;
        tracing::info!(engine = "sqlite", url, "opened metadata store");
        Ok(SqliteStore {
            conns: Arc::new(conns),
            locks: Arc::new(LeaderLocks::new(&target)),
            instance_id,
        })
    }

    /// The circuit breaker every statement of this store passes.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.conns.breaker
    }
}

impl MetadataStore for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_name_the_accepted_forms() {
        assert_eq!(parse_url("sqlite::memory:").unwrap(), Target::Memory);
        assert_eq!(
            parse_url("sqlite://data/s3o.db").unwrap(),
            Target::File(PathBuf::from("data/s3o.db"))
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/s3o.db").unwrap(),
            Target::File(PathBuf::from("/var/lib/s3o.db"))
        );
        for bad in [
            "postgres://x",
            "sqlite://",
            "sqlite:relative",
            "sqlite://a.db?mode=ro",
            "",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(
                matches!(&e, StoreError::InvalidInput { why, .. } if why.contains("sqlite::memory:")),
                "{bad}: {e}"
            );
        }
    }
}
