//! SQLite: s3o (`SqliteStore`: writer gate, reader pool, `spawn_blocking`) against a bare
//! rusqlite loop replaying the same statements on one connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use s3o_core::{LifecycleAdmin, Timestamp};
use s3o_sqlite::SqliteStore;
use s3o_sqlite::rusqlite::{self, Connection, types::Value as SqlValue};

use crate::Settings;
use crate::capture::{Captured, capture};
use crate::harness::{self, Plan};
use crate::report::Row;
use crate::stats::Measured;
use crate::values::{Placeholder, Value, sqlite_params};
use crate::workload::{
    BLOCK, CLAIM_BATCH, Op, READ_BASE, Read, SEED_SIZE, SOURCE, STRIDE, Seed, TARGET, key, read_key,
};

const ENGINE: &str = "sqlite";

/// One statement of the sample operation: text, placeholder values, transaction control.
#[derive(Clone, Debug)]
pub(crate) struct Replayed {
    sql: String,
    params: Vec<(Placeholder, Value)>,
    control: bool,
}

impl Replayed {
    fn from_captured(c: &Captured) -> Result<Replayed, String> {
        let upper = c.sql.trim().to_ascii_uppercase();
        let control = upper.starts_with("BEGIN") || upper == "COMMIT" || upper == "ROLLBACK";
        let params = if control {
            Vec::new()
        } else {
            sqlite_params(&c.sql, &c.expanded)?
        };
        Ok(Replayed {
            sql: c.sql.clone(),
            params,
            control,
        })
    }
}

/// How the bare loop rebinds the sample's values for iteration `iter`.
trait Rebind: Send {
    /// Starts an iteration.
    fn start(&mut self, iter: u64);
    /// The value to bind where the sample bound `v` in statement `stmt`.
    fn value(&mut self, stmt: usize, sql: &str, v: &Value) -> Value;
    /// The first column of every row statement `stmt` returned.
    fn rows(&mut self, _stmt: usize, _sql: &str, _first: Vec<SqlValue>) {}
}

/// Replaces the sample key by the iteration's key.
struct KeyRebind {
    sample: Value,
    next: Box<dyn FnMut(u64) -> String + Send>,
    cur: Value,
}

impl Rebind for KeyRebind {
    fn start(&mut self, iter: u64) {
        self.cur = Value::Text((self.next)(iter));
    }
    fn value(&mut self, _stmt: usize, _sql: &str, v: &Value) -> Value {
        if *v == self.sample {
            self.cur.clone()
        } else {
            v.clone()
        }
    }
}

/// Claim + complete: the stamp statement gets the ids this iteration's claim selected, and
/// each completion the id at the same position as in the sample.
struct ClaimRebind {
    sample_ids: Vec<i64>,
    ids: Vec<i64>,
}

impl Rebind for ClaimRebind {
    fn start(&mut self, _iter: u64) {
        self.ids.clear();
    }
    fn value(&mut self, _stmt: usize, sql: &str, v: &Value) -> Value {
        if sql.contains("json_each") && matches!(v, Value::Text(t) if t.starts_with('[')) {
            let list: Vec<String> = self.ids.iter().map(i64::to_string).collect();
            return Value::Text(format!("[{}]", list.join(",")));
        }
        if sql.starts_with("DELETE FROM cleanup_queue WHERE id")
            && let Value::Int(id) = v
            && let Some(pos) = self.sample_ids.iter().position(|s| s == id)
        {
            return Value::Int(self.ids.get(pos).copied().unwrap_or(*id));
        }
        v.clone()
    }
    fn rows(&mut self, _stmt: usize, sql: &str, first: Vec<SqlValue>) {
        if sql.starts_with("SELECT id, claimed_at IS NOT NULL FROM cleanup_queue") {
            self.ids = first
                .into_iter()
                .filter_map(|v| match v {
                    SqlValue::Integer(i) => Some(i),
                    _ => None,
                })
                .collect();
        }
    }
}

impl ClaimRebind {
    fn new(stmts: &[Replayed]) -> Result<Self, String> {
        let json = stmts
            .iter()
            .filter(|s| s.sql.contains("json_each"))
            .flat_map(|s| s.params.iter())
            .find_map(|(_, v)| match v {
                Value::Text(t) if t.starts_with('[') => Some(t.clone()),
                _ => None,
            })
            .ok_or("claim stamp statement not captured")?;
        let sample_ids = json
            .trim_matches(['[', ']'])
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        Ok(ClaimRebind {
            sample_ids,
            ids: Vec::new(),
        })
    }
}

fn to_sql(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) => SqlValue::Integer(i),
        Value::Real(r) => SqlValue::Real(r.parse().unwrap_or(0.0)),
        Value::Text(t) | Value::Other(t) => SqlValue::Text(t),
        Value::Bool(b) => SqlValue::Integer(i64::from(b)),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Time(s, n) => SqlValue::Integer(s * 1_000_000 + i64::from(n / 1000)),
    }
}

/// Replays `stmts` once on `conn` with `rebind`'s values.
fn replay_once(
    conn: &Connection,
    stmts: &[Replayed],
    rebind: &mut dyn Rebind,
    iter: u64,
) -> rusqlite::Result<()> {
    rebind.start(iter);
    let r = (|| {
        for (si, st) in stmts.iter().enumerate() {
            if st.control {
                conn.execute_batch(&st.sql)?;
                continue;
            }
            let mut stmt = conn.prepare_cached(&st.sql)?;
            for (ph, v) in &st.params {
                let idx = match ph {
                    Placeholder::Index(i) => *i,
                    Placeholder::Name(n) => match stmt.parameter_index(n)? {
                        Some(i) => i,
                        None => continue,
                    },
                };
                stmt.raw_bind_parameter(idx, to_sql(rebind.value(si, &st.sql, v)))?;
            }
            if stmt.column_count() == 0 {
                stmt.raw_execute()?;
            } else {
                let mut first = Vec::new();
                let mut rows = stmt.raw_query();
                while let Some(row) = rows.next()? {
                    first.push(row.get::<_, SqlValue>(0)?);
                }
                drop(rows);
                rebind.rows(si, &st.sql, first);
            }
        }
        Ok(())
    })();
    if r.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    r
}

/// A bare connection with the engine writer's settings.
fn bare_conn(path: &Path) -> Result<Connection, String> {
    let c = Connection::open(path).map_err(|e| e.to_string())?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| e.to_string())?;
    c.set_prepared_statement_cache_capacity(128);
    Ok(c)
}

/// The SQLite half of the run.
pub(crate) struct SqliteRun<'a> {
    settings: &'a Settings,
    dir: PathBuf,
    next_block: u64,
    rate: f64,
    /// Rows of the results table.
    pub(crate) rows: Vec<Row>,
    /// Notes for the report.
    pub(crate) notes: Vec<String>,
}

impl<'a> SqliteRun<'a> {
    /// A run in a fresh temporary directory.
    pub(crate) fn new(settings: &'a Settings) -> Result<SqliteRun<'a>, String> {
        let dir = std::env::temp_dir().join(format!("s3o-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(SqliteRun {
            settings,
            dir,
            next_block: 2,
            rate: 0.0,
            rows: Vec::new(),
            notes: Vec::new(),
        })
    }

    fn block(&mut self) -> u64 {
        self.next_block += 1;
        self.next_block * BLOCK
    }

    async fn open(&self, name: &str) -> Result<(Arc<SqliteStore>, PathBuf), String> {
        let path = self.dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        // The same-SQL baseline is rebuilt from the traced parameter values: opt in.
        s3o_sqlite::log_sql_parameter_values(true);
        let opts = s3o_sqlite::SqliteOptions {
            inline_point_statements: self.settings.fast_paths,
            ..s3o_sqlite::SqliteOptions::default()
        };
        let store = SqliteStore::open_with(&format!("sqlite://{}", path.display()), opts)
            .await
            .map_err(|e| e.to_string())?;
        store.run_migrations().await.map_err(|e| e.to_string())?;
        store
            .sync_quota_limits(&[(SOURCE.to_owned(), 0), (TARGET.to_owned(), 0)])
            .await
            .map_err(|e| e.to_string())?;
        Ok((Arc::new(store), path))
    }

    fn per_client(&self) -> u64 {
        let s = self.settings;
        let secs = (s.warmup + s.duration).as_secs_f64() + 1.0;
        let rate = if self.rate > 0.0 { self.rate } else { 20_000.0 };
        (rate * secs * 2.0).ceil() as u64 + 100
    }

    /// Every write operation: s3o with one writer, and the bare loop.
    pub(crate) async fn writes(&mut self) -> Result<(), String> {
        let (store, path) = self.open("ops.db").await?;
        let r = self.writes_on(&store, &path).await;
        store.close().await;
        r
    }

    async fn writes_on(&mut self, store: &Arc<SqliteStore>, path: &Path) -> Result<(), String> {
        let seeder = bare_conn(path)?;
        for op in Op::ALL {
            let sample_base = self.block();
            let sample_rows = if op == Op::ClaimComplete {
                (CLAIM_BATCH * 2) as u64
            } else {
                1
            };
            seed(&seeder, op.seed(), sample_base, 1, sample_rows)?;
            let sample_key = key(sample_base, 0, 1);
            let (r, events) = capture(op.run_once(&**store, &sample_key, 0)).await;
            r.map_err(|e| format!("{} sample: {e}", op.name()))?;
            let stmts: Vec<Replayed> = events
                .iter()
                .map(Replayed::from_captured)
                .collect::<Result<_, _>>()?;
            println!(
                "sqlite {}: {} statements per operation ({} transaction-control)",
                op.name(),
                stmts.len(),
                stmts.iter().filter(|s| s.control).count()
            );
            let per_client = if op.seed() == Seed::None {
                STRIDE - 1
            } else {
                self.per_client()
            };
            let seed_n = if op == Op::ClaimComplete {
                per_client * 3 + 5 * CLAIM_BATCH as u64
            } else {
                per_client
            };
            // s3o, one writer.
            let base = self.block();
            seed(&seeder, op.seed(), base, 1, seed_n)?;
            let long = self.settings.long();
            let st = if op == Op::ClaimComplete {
                &long
            } else {
                self.settings
            };
            let plan = Plan {
                clients: 1,
                warmup: st.warmup,
                duration: st.duration,
                max_iters: if op == Op::ClaimComplete {
                    u64::MAX
                } else {
                    per_client
                },
            };
            let m = harness::run(plan, op.call(Arc::clone(store), base)).await;
            if let Some(e) = &m.first_error {
                eprintln!("warning: sqlite {} errors: {} ({e})", op.name(), m.errors);
            }
            // Bare loop, same statements, fresh rows.
            let bbase = self.block();
            seed(&seeder, op.seed(), bbase, 1, seed_n)?;
            let rebind: Box<dyn Rebind> = if op == Op::ClaimComplete {
                Box::new(ClaimRebind::new(&stmts)?)
            } else {
                Box::new(KeyRebind {
                    sample: Value::Text(sample_key.clone()),
                    next: Box::new(move |i| key(bbase, 0, i)),
                    cur: Value::Null,
                })
            };
            let b = self.bare(st, path, stmts, rebind, per_client).await?;
            if op == Op::RecordNew {
                self.rate = m.ops_per_sec().max(b.ops_per_sec());
            }
            let row = Row::new(op.name(), ENGINE, "1w", &m, b.ops_per_sec());
            println!("{}", crate::pg::line(&row));
            self.rows.push(row);
        }
        Ok(())
    }

    async fn bare(
        &self,
        st: &Settings,
        path: &Path,
        stmts: Vec<Replayed>,
        mut rebind: Box<dyn Rebind>,
        max_iters: u64,
    ) -> Result<Measured, String> {
        let conn = bare_conn(path)?;
        let (warmup, duration) = (st.warmup, st.duration);
        let m = tokio::task::spawn_blocking(move || {
            harness::run_blocking(warmup, duration, max_iters, |iter| {
                replay_once(&conn, &stmts, &mut *rebind, iter).map_err(|e| e.to_string())
            })
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Some(e) = &m.first_error {
            eprintln!("warning: sqlite bare loop errors: {} ({e})", m.errors);
        }
        Ok(m)
    }

    /// Reads at every size (s3o through the reader pool vs the bare loop), and reader
    /// throughput with 1 and 2 readers while a writer runs.
    pub(crate) async fn reads(&mut self) -> Result<(), String> {
        let (store, path) = self.open("scale.db").await?;
        let r = self.reads_on(&store, &path).await;
        store.close().await;
        r
    }

    async fn reads_on(&mut self, store: &Arc<SqliteStore>, path: &Path) -> Result<(), String> {
        let seeder = bare_conn(path)?;
        let mut seeded = 0u64;
        let sizes = self.settings.sizes.clone();
        for (si, &n) in sizes.iter().enumerate() {
            let t0 = Instant::now();
            seed_reads(&seeder, seeded + 1, n)?;
            println!(
                "sqlite: seeded {} objects ({} total) in {:.1}s",
                n - seeded,
                n,
                t0.elapsed().as_secs_f64()
            );
            seeded = n;
            for read in [Read::ListPage, Read::GetAll] {
                let sample = read_key(read, n);
                let (r, events) = capture(read.run_once(&**store, &sample)).await;
                r.map_err(|e| format!("{} sample: {e}", read.name()))?;
                let stmts: Vec<Replayed> = events
                    .iter()
                    .map(Replayed::from_captured)
                    .collect::<Result<_, _>>()?;
                let plan = Plan {
                    clients: 1,
                    warmup: self.settings.warmup,
                    duration: self.settings.duration,
                    max_iters: u64::MAX,
                };
                let m = harness::run(plan, read.call(Arc::clone(store), n)).await;
                let rebind = Box::new(KeyRebind {
                    sample: Value::Text(sample),
                    next: Box::new(move |_| read_key(read, n)),
                    cur: Value::Null,
                });
                let b = self
                    .bare(self.settings, path, stmts, rebind, u64::MAX)
                    .await?;
                let row = Row::new(
                    &format!("{} @{}", read.name(), crate::size_label(n)),
                    ENGINE,
                    "1",
                    &m,
                    b.ops_per_sec(),
                );
                println!("{}", crate::pg::line(&row));
                self.rows.push(row);
            }
            if si == 0 {
                self.readers_under_writer(store, n).await;
            }
        }
        Ok(())
    }

    /// Reader throughput with 1 and 2 readers while one writer records new keys.
    async fn readers_under_writer(&mut self, store: &Arc<SqliteStore>, n: u64) {
        for read in [Read::GetAll, Read::ListPage] {
            let mut one = f64::NAN;
            for readers in [1usize, 2] {
                let base = self.block();
                let wplan = Plan {
                    clients: 1,
                    warmup: self.settings.warmup,
                    duration: self.settings.duration,
                    max_iters: STRIDE - 1,
                };
                let rplan = Plan {
                    clients: readers,
                    ..wplan
                };
                let (w, r) = tokio::join!(
                    harness::run(wplan, Op::RecordNew.call(Arc::clone(store), base)),
                    harness::run(rplan, read.call(Arc::clone(store), n))
                );
                let label = format!("1w+{readers}r");
                // For these rows the baseline column is the 1-reader throughput, so the
                // ratio is the reader scaling.
                let row = Row::new(
                    &format!(
                        "{} @{} (readers while writing)",
                        read.name(),
                        crate::size_label(n)
                    ),
                    ENGINE,
                    &label,
                    &r,
                    if readers == 2 { one } else { f64::NAN },
                );
                println!("{}", crate::pg::line(&row));
                self.notes.push(format!(
                    "sqlite {label} {}: writer {:.0} ops/s alongside {:.0} reader ops/s",
                    read.name(),
                    w.ops_per_sec(),
                    r.ops_per_sec()
                ));
                if readers == 1 {
                    one = r.ops_per_sec();
                }
                self.rows.push(row);
            }
        }
    }
}

impl Drop for SqliteRun<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn micros_ago(secs: u64) -> i64 {
    Timestamp::now()
        .minus(std::time::Duration::from_secs(secs))
        .as_micros()
}

/// Seeds `seed` rows for `clients` × `per_client` keys at `base` in one transaction.
fn seed(
    conn: &Connection,
    seed: Seed,
    base: u64,
    clients: usize,
    per_client: u64,
) -> Result<(), String> {
    let ts = micros_ago(3600);
    let keys = "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < ?3 - 1), \
                g(y) AS (SELECT 1 UNION ALL SELECT y + 1 FROM g WHERE y < ?4) ";
    let key = "CAST(?1 + x * ?2 + y AS TEXT)";
    let (b, stride, c, k) = (
        base as i64,
        STRIDE as i64,
        clients as i64,
        per_client as i64,
    );
    let total = c * k;
    let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<(), String> {
        conn.execute(sql, p)
            .map(drop)
            .map_err(|e| format!("seed: {e}"))
    };
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    let r = match seed {
        Seed::None => Ok(()),
        Seed::Objects => run(
            &format!(
                "{keys}INSERT INTO object_locations (object_key, backend_name, size_bytes, \
                 created_at, encrypted, managed) SELECT {key}, '{SOURCE}', ?5, ?6, 0, 1 FROM s, g"
            ),
            &[&b, &stride, &c, &k, &SEED_SIZE, &ts],
        )
        .and_then(|()| {
            run(
                "UPDATE backend_quotas SET bytes_used = bytes_used + ?1 WHERE backend_name = ?2",
                &[&(total * SEED_SIZE), &SOURCE],
            )
        }),
        Seed::Pending => run(
            &format!(
                "{keys}INSERT INTO pending_objects (intent_id, object_key, backend_name, \
                 size_bytes, encrypted, created_at) SELECT {key}, {key}, '{SOURCE}', ?5, 0, ?6 \
                 FROM s, g"
            ),
            &[&b, &stride, &c, &k, &SEED_SIZE, &ts],
        ),
        Seed::Queue => run(
            "WITH RECURSIVE g(y) AS (SELECT 1 UNION ALL SELECT y + 1 FROM g WHERE y < ?1) \
             INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes, \
             created_at, next_retry) SELECT ?2, 'orphan/' || y, 'bench', ?3, ?4, ?4 FROM g",
            &[&k, &SOURCE, &SEED_SIZE, &ts],
        )
        .and_then(|()| {
            run(
                "UPDATE backend_quotas SET orphan_bytes = orphan_bytes + ?1 \
                 WHERE backend_name = ?2",
                &[&(k * SEED_SIZE), &SOURCE],
            )
        }),
    };
    match r {
        Ok(()) => conn
            .execute_batch("COMMIT; ANALYZE;")
            .map_err(|e| e.to_string()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Seeds read keys `READ_BASE + from ..= READ_BASE + to` in one transaction, then ANALYZE.
fn seed_reads(conn: &Connection, from: u64, to: u64) -> Result<(), String> {
    let ts = micros_ago(86_400);
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    let r = conn.execute(
        &format!(
            "WITH RECURSIVE g(y) AS (SELECT ?2 UNION ALL SELECT y + 1 FROM g WHERE y < ?3) \
             INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at, \
             encrypted, managed) SELECT CAST(?1 + y AS TEXT), '{SOURCE}', ?4, ?5, 0, 1 FROM g"
        ),
        rusqlite::params![READ_BASE as i64, from as i64, to as i64, SEED_SIZE, ts],
    );
    match r {
        Ok(_) => conn
            .execute_batch("COMMIT; ANALYZE;")
            .map_err(|e| e.to_string()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(format!("seed reads: {e}"))
        }
    }
}
