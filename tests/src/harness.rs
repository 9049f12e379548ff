//! Fresh stores per case, and running a case with its panic caught.
//!
//! SQLite: a new database file in a unique temporary directory, removed afterwards.
//! PostgreSQL: `S3O_PG_URL` plus `schema=c_<case>_<random>`, dropped afterwards. Without
//! `S3O_PG_URL` (and without the `testcontainers` feature finding a Docker engine) PostgreSQL
//! cases are skipped, visibly, unless `S3O_REQUIRE_PG=1`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use std::io::Write as _;

use s3o_store::{OpenOptions, Store};

use crate::{Case, Db};

/// Longest a case may run before it is reported as failed (a hang is a failure, not a skip).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// An engine under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl EngineKind {
    /// Every engine.
    pub const ALL: [EngineKind; 2] = [EngineKind::Sqlite, EngineKind::Postgres];

    /// The name `MetadataStore::engine()` reports.
    pub const fn name(self) -> &'static str {
        match self {
            EngineKind::Sqlite => "sqlite",
            EngineKind::Postgres => "postgres",
        }
    }

    /// Parses `sqlite` / `postgres` (or `pg`).
    pub fn parse(s: &str) -> Option<EngineKind> {
        match s {
            "sqlite" => Some(EngineKind::Sqlite),
            "postgres" | "postgresql" | "pg" => Some(EngineKind::Postgres),
            _ => None,
        }
    }
}

/// The result of one case on one engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Pass,
    /// A panic, an error opening the store, or a timeout; with the message.
    Fail(String),
    /// The engine is not available; with the reason.
    Skip(String),
}

/// True when `S3O_REQUIRE_PG=1`: a missing PostgreSQL is a failure, not a skip.
pub fn require_pg() -> bool {
    std::env::var("S3O_REQUIRE_PG").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Where PostgreSQL cases connect: `S3O_PG_URL`, else (feature `testcontainers`) a container.
/// `Err(reason)` when there is none.
pub async fn pg_base_url() -> Result<String, String> {
    if let Ok(url) = std::env::var("S3O_PG_URL")
        && !url.trim().is_empty()
    {
        return Ok(url);
    }
    #[cfg(feature = "testcontainers")]
    {
        crate::container::url().await
    }
    #[cfg(not(feature = "testcontainers"))]
    {
        Err("S3O_PG_URL not set".to_owned())
    }
}

/// Why an engine cannot run in this build or environment, if it cannot.
pub async fn unavailable(engine: EngineKind) -> Option<String> {
    match engine {
        EngineKind::Sqlite if !cfg!(feature = "sqlite") => {
            Some("compiled without the `sqlite` feature".to_owned())
        }
        EngineKind::Postgres if !cfg!(feature = "postgres") => {
            Some("compiled without the `postgres` feature".to_owned())
        }
        EngineKind::Postgres => pg_base_url().await.err(),
        EngineKind::Sqlite => None,
    }
}

/// A fresh, migrated store and what to do to throw it away.
pub struct Fixture {
    /// The store.
    pub store: Db,
    teardown: Teardown,
}

enum Teardown {
    RemoveDir(PathBuf),
    DropSchema { base_url: String, schema: String },
}

fn unique_suffix() -> String {
    format!("{}_{:08x}", std::process::id(), fastrand::u32(..))
}

/// A PostgreSQL identifier for the case: `c_<case>_<random>`, lower-case, ≤ 63 bytes.
pub fn schema_name(case: &str) -> String {
    let mut base: String = case
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    base.truncate(36);
    format!("c_{base}_{:08x}", fastrand::u32(..))
}

/// Appends `schema=NAME` to a PostgreSQL URL.
pub fn with_schema(base_url: &str, schema: &str) -> String {
    let sep = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{sep}schema={schema}")
}

impl Fixture {
    /// Opens a fresh migrated store of `engine` for `case`.
    pub async fn new(engine: EngineKind, case: &str) -> Result<Fixture, String> {
        match engine {
            EngineKind::Sqlite => {
                let dir = std::env::temp_dir().join(format!(
                    "s3o-conformance-{}-{}",
                    case.replace("::", "-"),
                    unique_suffix()
                ));
                std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
                let url = format!("sqlite://{}", dir.join("meta.db").display());
                match Store::open(&url, OpenOptions { migrate: true }).await {
                    Ok(store) => Ok(Fixture {
                        store,
                        teardown: Teardown::RemoveDir(dir),
                    }),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(format!("open {url}: {e} ({e:?})"))
                    }
                }
            }
            EngineKind::Postgres => {
                let base_url = pg_base_url().await?;
                let schema = schema_name(case);
                let url = with_schema(&base_url, &schema);
                match Store::open(&url, OpenOptions { migrate: true }).await {
                    Ok(store) => Ok(Fixture {
                        store,
                        teardown: Teardown::DropSchema { base_url, schema },
                    }),
                    Err(e) => {
                        drop_schema(&base_url, &schema).await;
                        Err(format!("open {url}: {e} ({e:?})"))
                    }
                }
            }
        }
    }

    /// Closes the store and removes its database.
    pub async fn teardown(self) {
        self.store.close().await;
        drop(self.store);
        match self.teardown {
            Teardown::RemoveDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Teardown::DropSchema { base_url, schema } => drop_schema(&base_url, &schema).await,
        }
    }
}

/// Advisory-lock id the harness holds while a leader-lock case runs on PostgreSQL. Outside
/// the store's own ids (1001..=1011, the migration lock).
const SERIAL_LOCK_ID: i64 = 0x7333_6f00_0000_0c5e;

/// A session advisory lock on its own connection; released when dropped (the connection
/// closes).
struct SerialGuard {
    _client: tokio_postgres::Client,
    _conn: tokio::task::JoinHandle<()>,
}

impl SerialGuard {
    async fn acquire(base_url: &str) -> Result<SerialGuard, String> {
        let (client, conn) = tokio_postgres::connect(base_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connect {base_url}: {e}"))?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SERIAL_LOCK_ID])
            .await
            .map_err(|e| format!("pg_advisory_lock: {e}"))?;
        Ok(SerialGuard {
            _client: client,
            _conn: conn,
        })
    }
}

/// Drops a case's schema; best effort (a leftover schema is harmless).
async fn drop_schema(base_url: &str, schema: &str) {
    let Ok((client, conn)) = tokio_postgres::connect(base_url, tokio_postgres::NoTls).await else {
        return;
    };
    let task = tokio::spawn(conn);
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
    drop(client);
    let _ = task.await;
}

/// Runs `case` on a fresh store of `engine`: panics and timeouts become `Fail`, an
/// unavailable engine `Skip` (or `Fail` for PostgreSQL under `S3O_REQUIRE_PG=1`).
pub async fn run_case(engine: EngineKind, case: &Case) -> Outcome {
    if let Some(why) = unavailable(engine).await {
        if engine == EngineKind::Postgres && require_pg() {
            return Outcome::Fail(format!("postgres required (S3O_REQUIRE_PG=1): {why}"));
        }
        return Outcome::Skip(why);
    }
    // PostgreSQL leader locks are database-wide, not per schema: cases that take them run one
    // at a time across every process sharing the test database.
    let _serial = match engine {
        EngineKind::Postgres if case.name.starts_with("locks::") => match pg_base_url().await {
            Ok(url) => match SerialGuard::acquire(&url).await {
                Ok(g) => Some(g),
                Err(e) => return Outcome::Fail(format!("could not serialise lock cases: {e}")),
            },
            Err(e) => return Outcome::Fail(e),
        },
        _ => None,
    };
    let fixture = match Fixture::new(engine, case.name).await {
        Ok(f) => f,
        Err(e) => return Outcome::Fail(format!("could not open a fresh store: {e}")),
    };
    let reported = fixture.store.engine();
    if reported != engine.name() {
        fixture.teardown().await;
        return Outcome::Fail(format!(
            "engine() reports {reported:?}, expected {:?}",
            engine.name()
        ));
    }
    let label = format!("{}@{}", case.name, engine.name());
    let task = tokio::spawn(CASE_LABEL.scope(label.clone(), (case.run)(fixture.store.clone())));
    let abort = task.abort_handle();
    let outcome = match tokio::time::timeout(CASE_TIMEOUT, task).await {
        Ok(Ok(())) => Outcome::Pass,
        Ok(Err(join)) if join.is_panic() => {
            let mut msg = panic_message(join.into_panic());
            if let Some(at) = take_panic_location(&label) {
                msg = format!("{msg} (at {at})");
            }
            Outcome::Fail(msg)
        }
        Ok(Err(join)) => Outcome::Fail(format!("case task failed: {join}")),
        Err(_) => {
            abort.abort();
            Outcome::Fail(format!("timed out after {CASE_TIMEOUT:?}"))
        }
    };
    fixture.teardown().await;
    outcome
}

/// Runs one case for `cargo test`: passes, prints a visible SKIP, or panics with the failure.
pub async fn run_test(engine: EngineKind, case: Case) {
    match run_case(engine, &case).await {
        Outcome::Pass => {}
        Outcome::Skip(why) => {
            // Written past libtest's capture, so a skip is visible in `cargo test` output.
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {}: {why} ({})",
                engine.name(),
                case.name
            );
        }
        Outcome::Fail(msg) => panic!("{} on {}: {msg}", case.name, engine.name()),
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Cases that panic on purpose put this in the message; the quiet hook does not print them.
pub const EXPECTED_PANIC: &str = "(expected panic)";

tokio::task_local! {
    /// `case@engine` of the case a task runs, so the panic hook can attribute a panic.
    static CASE_LABEL: String;
}

static PANIC_LOCATIONS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn take_panic_location(label: &str) -> Option<String> {
    PANIC_LOCATIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(label)
}

/// Replaces the panic hook so that panics inside a case's own task are recorded (with their
/// location, reported in the `Fail` message) instead of printed; other panics print as usual.
/// For the matrix binary, whose output would otherwise interleave backtraces.
pub fn install_quiet_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        match CASE_LABEL.try_with(Clone::clone) {
            Ok(label) => {
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                PANIC_LOCATIONS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(label, at);
            }
            Err(_) => {
                let expected = info
                    .payload()
                    .downcast_ref::<&str>()
                    .is_some_and(|m| m.contains(EXPECTED_PANIC));
                if !expected {
                    default(info);
                }
            }
        }
    }));
}
