//! Reliability testing of both s3o engines: a reference model for model-based testing, fresh
//! isolated stores per engine, and raw table dumps that see what the store API does not.
//!
//! PostgreSQL comes from `S3O_PG_URL` (each store gets its own schema); without it the
//! PostgreSQL half is skipped with a visible message, unless `S3O_REQUIRE_PG=1`.

pub mod model;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use s3o_core::MetadataStore;
use s3o_core::breaker::{BreakerState, BreakerStats};

/// An engine under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// s3o-sqlite on a file in a temp dir.
    Sqlite,
    /// s3o-pg on `S3O_PG_URL`, in a schema of its own.
    Postgres,
}

impl Engine {
    /// Both engines.
    pub const ALL: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// The PostgreSQL URL, or `None` (after printing a SKIP line) when absent and not required.
pub fn pg_url() -> Option<String> {
    match std::env::var("S3O_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("S3O_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("S3O_REQUIRE_PG=1 but S3O_PG_URL is not set");
            }
            eprintln!("SKIP postgres: S3O_PG_URL not set");
            None
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique(tag: &str) -> String {
    format!(
        "{tag}_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

/// A fresh, migrated store and the means to inspect its database directly.
pub struct TestDb {
    /// The store under test.
    pub store: MetadataStore,
    /// Its engine.
    pub engine: Engine,
    /// The URL it was opened with.
    pub url: String,
    /// SQLite: the database file.
    pub path: Option<PathBuf>,
    /// PostgreSQL: the schema.
    pub schema: Option<String>,
    /// Reads the store's circuit breaker.
    breaker: Box<dyn Fn() -> (BreakerState, BreakerStats) + Send + Sync>,
}

/// Opens a fresh migrated store on `engine`, or `None` when PostgreSQL is unavailable and not
/// required.
pub async fn fresh(engine: Engine) -> Option<TestDb> {
    match engine {
        Engine::Sqlite => {
            let dir = std::env::temp_dir().join(unique("s3o-rel"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("ledger.db");
            let url = format!("sqlite://{}", path.display());
            let store = s3o_sqlite::open(&url).await.expect("open sqlite");
            store.run_migrations().await.expect("migrate sqlite");
            let probe = store.clone();
            Some(TestDb {
                store,
                engine,
                url,
                path: Some(path),
                schema: None,
                breaker: Box::new(move || (probe.breaker_state(), probe.breaker_stats())),
            })
        }
        Engine::Postgres => {
            let base = pg_url()?;
            let schema = unique("rel");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}schema={schema}");
            let store = s3o_pg::open(&url).await.expect("connect postgres");
            store.run_migrations().await.expect("migrate postgres");
            let probe = store.clone();
            Some(TestDb {
                store,
                engine,
                url,
                path: None,
                schema: Some(schema),
                breaker: Box::new(move || (probe.breaker_state(), probe.breaker_stats())),
            })
        }
    }
}

/// A raw connection to the PostgreSQL test server (for dumps and `pg_terminate_backend`).
pub async fn pg_admin() -> tokio_postgres::Client {
    let url = pg_url().expect("postgres required here");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("admin connection to postgres");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

impl TestDb {
    /// The breaker's state and counters.
    pub fn breaker(&self) -> (BreakerState, BreakerStats) {
        (self.breaker)()
    }

    /// Runs `sql` on the store's database directly (outside the store): schema surgery for
    /// drift tests. SQLite: on its file; PostgreSQL: in its schema.
    pub async fn raw_execute(&self, sql: &str) {
        match self.engine {
            Engine::Sqlite => {
                let path = self.path.clone().expect("sqlite path");
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let c = rusqlite::Connection::open(&path).expect("open sqlite");
                    c.busy_timeout(std::time::Duration::from_secs(5))
                        .expect("busy timeout");
                    c.execute_batch(&sql).expect("raw sql");
                })
                .await
                .expect("raw sql task");
            }
            Engine::Postgres => {
                let schema = self.schema.clone().expect("pg schema");
                let c = pg_admin().await;
                c.batch_execute(&format!("SET search_path = \"{schema}\"; {sql}"))
                    .await
                    .expect("raw sql");
            }
        }
    }

    /// Every row of every table, rendered as text and sorted, per table. Two equal dumps mean
    /// the database did not change.
    pub async fn dump(&self) -> BTreeMap<String, Vec<String>> {
        match self.engine {
            Engine::Sqlite => {
                let path = self.path.clone().expect("sqlite path");
                tokio::task::spawn_blocking(move || dump_sqlite(&path))
                    .await
                    .expect("dump task")
            }
            Engine::Postgres => {
                let schema = self.schema.clone().expect("pg schema");
                let c = pg_admin().await;
                let tables = c
                    .query(
                        "SELECT table_name::text FROM information_schema.tables \
                         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
                        &[&schema],
                    )
                    .await
                    .expect("list tables");
                let mut out = BTreeMap::new();
                for t in tables {
                    let name: String = t.get(0);
                    let rows = c
                        .query(
                            &format!("SELECT row_to_json(t)::text FROM \"{schema}\".\"{name}\" t"),
                            &[],
                        )
                        .await
                        .expect("dump table");
                    let mut v: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                    v.sort();
                    out.insert(name, v);
                }
                out
            }
        }
    }

    /// Drops the PostgreSQL schema (best effort); SQLite files live in the temp dir.
    pub async fn cleanup(self) {
        if let Some(schema) = &self.schema {
            self.store.close().await;
            let c = pg_admin().await;
            let _ = c
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await;
        }
    }
}

fn dump_sqlite(path: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .expect("open sqlite for dump");
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("list tables");
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("tables")
        .map(|r| r.expect("name"))
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut q = conn
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = q.column_count();
        let mut rows: Vec<String> = q
            .query_map([], |r| {
                let mut cells = Vec::with_capacity(n);
                for i in 0..n {
                    cells.push(match r.get_ref(i)? {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(v) => v.to_string(),
                        ValueRef::Real(v) => v.to_string(),
                        ValueRef::Text(v) => format!("{:?}", String::from_utf8_lossy(v)),
                        ValueRef::Blob(v) => format!("x{v:02x?}"),
                    });
                }
                Ok(cells.join("|"))
            })
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// Asserts `bytes_used == Σ size_bytes of copies + Σ size_bytes of open uploads' parts` for
/// every backend.
pub async fn assert_ledger(store: &MetadataStore) {
    let stats = store.get_quota_stats().await.expect("quota stats");
    for (backend, q) in stats {
        let (_, total) = store
            .backend_object_stats(&backend)
            .await
            .expect("backend stats");
        // Recorded parts of open uploads are charged too.
        let parts: i64 = store
            .backend_capacities(std::slice::from_ref(&backend))
            .await
            .expect("backend capacities")
            .iter()
            .map(|c| c.inflight_bytes)
            .sum();
        assert_eq!(
            q.bytes_used,
            total + parts,
            "bytes_used drifted from Σ size_bytes of copies ({total}) + parts ({parts}) on {backend}"
        );
        assert!(q.orphan_bytes >= 0, "negative orphan bytes on {backend}");
    }
}

/// The outbox invariant: every backend's `orphan_bytes` equals the bytes of its cleanup-queue
/// and dead-letter rows. `Err` names the first backend that differs.
pub async fn orphan_drift(store: &MetadataStore) -> Result<(), String> {
    let stats = store.get_quota_stats().await.map_err(|e| e.to_string())?;
    let owed = store
        .cleanup_bytes_by_backend()
        .await
        .map_err(|e| e.to_string())?;
    for (b, q) in &stats {
        let (queued, dead) = owed.get(b).copied().unwrap_or((0, 0));
        if q.orphan_bytes != queued + dead {
            return Err(format!(
                "orphan_bytes of {b} is {}, queue {queued} + DLQ {dead}",
                q.orphan_bytes
            ));
        }
    }
    Ok(())
}

/// The runtime a drill runs `engine` on (two workers), or `None` when it is PostgreSQL and no
/// server is configured (skipped visibly by [`pg_url`]).
pub fn runtime_for(engine: Engine) -> Option<tokio::runtime::Runtime> {
    if engine == Engine::Postgres && pg_url().is_none() {
        return None;
    }
    Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    )
}
