#![doc = include_str!("../README.md")]

mod admin;
mod backend;
mod buckets;
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
mod setup;
mod stmt;
mod tx;
mod usage;
mod versions;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use s3o_core::breaker::{BreakerConfig, CircuitBreaker};
use s3o_core::engine::Engine;
use s3o_core::{MetadataStore, Result, StoreError};

use crate::conn::{Conns, Target};
use crate::locker::LeaderLocks;

#[doc(hidden)]
pub use cleanup::claim_statement;
#[doc(hidden)]
pub use notification::due_notifications_statement;
pub use rusqlite;
/// Re-export of the driver this crate links, so users never mismatch versions.
pub use stmt::{SQL_TRACE_TARGET, log_sql_parameter_values};

/// The schema version this binary expects: the number of the last file in `migrations/sqlite`.
pub const EXPECTED_SCHEMA_VERSION: i64 = 16;

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
    /// failing with a retryable `Busy` error (default 5 s).
    pub busy_timeout: Duration,
    /// Reader connections in the pool (default 4; at least 1).
    pub readers: u32,
    /// How long a read waits for a free reader connection (default 5 s) before failing with
    /// `Database { kind: Overload }`, which the breaker does not count.
    pub reader_wait_timeout: Duration,
    /// The circuit breaker's settings.
    pub breaker: BreakerConfig,
    /// On by default: the non-waiting `BEGIN IMMEDIATE` and the single-row statements of an
    /// open write transaction run on the calling task's thread, falling back to the blocking
    /// pool whenever they would wait (another process holds the write lock, or a cancelled
    /// transaction's statement still runs there). With [`Synchronous::Normal`] its `COMMIT`
    /// does too — a WAL commit then writes without syncing — and the writer's automatic WAL
    /// checkpoints (which sync) are replaced by passive checkpoints on the blocking pool every
    /// 200 writes. A transaction like `record_object` then makes no hand-off to the blocking
    /// pool instead of one per statement (≈19 µs each); with [`Synchronous::Full`] one, its
    /// `COMMIT`. The price is an async worker blocked for each inline statement —
    /// microseconds on a warm page cache, a disk read on a cold one. Off: every SQLite call
    /// runs on tokio's blocking pool, for deployments whose page reads are slow (network file
    /// systems) and whose async workers must never block.
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
            reader_wait_timeout: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
            inline_point_statements: true,
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

/// Opens (creating if missing) the database at `url` with default options and returns the
/// consumer handle. Does not migrate (see [`MetadataStore::run_migrations`]). Bad URL ⇒
/// `InvalidInput`; unopenable file ⇒ `Database { kind: Connection }`.
pub async fn open(url: &str) -> Result<MetadataStore> {
    open_with(url, SqliteOptions::default()).await
}

/// [`open`] with explicit options.
pub async fn open_with(url: &str, opts: SqliteOptions) -> Result<MetadataStore> {
    SqliteStore::open_with(url, opts)
        .await
        .map(MetadataStore::from_engine)
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

impl Engine for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    fn breaker(&self) -> &CircuitBreaker {
        SqliteStore::breaker(self)
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
