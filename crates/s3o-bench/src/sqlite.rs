//! SQLite: s3o (`SqliteStore`: writer gate, reader pool, `spawn_blocking`) against a bare
//! rusqlite loop replaying the same statements on one connection.

use std::path::{Path, PathBuf};
use std::time::Instant;

use s3o_core::MetadataStore;
use s3o_core::Timestamp;
use s3o_sqlite::rusqlite::{self, Connection, types::Value as SqlValue};

use crate::Settings;
use crate::capture::{Captured, capture};
use crate::harness::{self, Plan};
use crate::report::{self, Cells, Figure, Row};
use crate::stats::{Measured, Spread};
use crate::values::{Placeholder, Value, sqlite_params};
use crate::workload::{
    BLOCK, CLAIM_BATCH, Op, READ_BASE, Read, SEED_SIZE, SOURCE, STRIDE, Seed, claim_cost,
    init_store, key, read_key,
};

const ENGINE: &str = "sqlite";

/// The baseline label.
const BARE: &str = "bare rusqlite loop";

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
///
/// Every side of every write trial runs on its own copy of one template file (migrated,
/// seeded, `VACUUM`ed, `ANALYZE`d and checkpointed once), so s3o and the bare loop start from
/// byte-identical databases; sides interleave for `--trials` rounds.
pub(crate) struct SqliteRun<'a> {
    settings: &'a Settings,
    dir: PathBuf,
    next_block: u64,
    rate: f64,
    /// Rows of the results table.
    pub(crate) rows: Vec<Row>,
    /// Derived figures.
    pub(crate) figures: Vec<Figure>,
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
            figures: Vec::new(),
            notes: Vec::new(),
        })
    }

    fn block(&mut self) -> u64 {
        self.next_block += 1;
        self.next_block * BLOCK
    }

    fn options(&self) -> s3o_sqlite::SqliteOptions {
        s3o_sqlite::SqliteOptions::default()
    }

    /// A store on the prepared file at `path` (no migrations).
    async fn store(&self, path: &Path) -> Result<MetadataStore, String> {
        // The same-SQL baseline is rebuilt from the traced parameter values: opt in.
        s3o_sqlite::log_sql_parameter_values(true);
        // The consumer handle, as a downstream holds it (its per-call metrics included).
        s3o_sqlite::open_with(&format!("sqlite://{}", path.display()), self.options())
            .await
            .map_err(|e| e.to_string())
    }

    /// Creates `name` afresh: migrated, every backend's quota row at [`crate::workload::QUOTA_LIMIT`].
    async fn prepare(&self, name: &str) -> Result<PathBuf, String> {
        let path = self.dir.join(name);
        remove_db(&path);
        let store = self.store(&path).await?;
        let r = init_store(&store).await;
        store.close().await;
        r.map(|()| path)
    }

    /// A copy of the template `from` named `name` (for one side of one trial).
    fn copy(&self, from: &Path, name: &str) -> Result<PathBuf, String> {
        let to = self.dir.join(name);
        remove_db(&to);
        std::fs::copy(from, &to).map_err(|e| format!("copy {}: {e}", from.display()))?;
        Ok(to)
    }

    fn per_client(&self) -> u64 {
        let s = self.settings;
        let secs = (s.warmup + s.duration).as_secs_f64() + 1.0;
        let rate = if self.rate > 0.0 { self.rate } else { 20_000.0 };
        (rate * secs * 2.0).ceil() as u64 + 100
    }

    /// Every write operation: s3o with one writer, and the bare loop.
    pub(crate) async fn writes(&mut self) -> Result<(), String> {
        for op in Op::ALL {
            // One writer: spreading it over four backends measures nothing new.
            if op == Op::RecordNew4 {
                continue;
            }
            self.write_cell(op).await?;
        }
        Ok(())
    }

    async fn write_cell(&mut self, op: Op) -> Result<(), String> {
        // The sample operation, on a scratch file.
        let sample_base = self.block();
        let sample_rows = if op == Op::ClaimComplete {
            (CLAIM_BATCH * 2) as u64
        } else {
            1
        };
        let scratch = self.prepare("sample.db").await?;
        seed(
            &bare_conn(&scratch)?,
            op.seed(),
            sample_base,
            1,
            sample_rows,
        )?;
        let store = self.store(&scratch).await?;
        let sample_key = key(sample_base, 0, 1);
        let (r, events) = capture(op.run_once(&store, &sample_key, 0)).await;
        store.close().await;
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
        // The template both sides copy: same keys, same rows, same pages.
        let base = self.block();
        let tmpl = self.prepare("template.db").await?;
        {
            let seeder = bare_conn(&tmpl)?;
            seed(&seeder, op.seed(), base, 1, seed_n)?;
            settle(&seeder)?;
        }
        let long = self.settings.long();
        let st = if op == Op::ClaimComplete {
            &long
        } else {
            self.settings
        };
        let (mut s3o, mut bare) = (Vec::new(), Vec::new());
        for trial in 0..self.settings.trials {
            let path = self.copy(&tmpl, "s3o.db")?;
            let store = self.store(&path).await?;
            let plan = op.plan(1, st, per_client);
            let m = harness::run(plan, op.call(store.clone(), base)).await;
            store.close().await;
            if let Some(e) = &m.first_error {
                eprintln!("warning: sqlite {} errors: {} ({e})", op.name(), m.errors);
            }
            let path = self.copy(&tmpl, "bare.db")?;
            let rebind: Box<dyn Rebind> = if op == Op::ClaimComplete {
                Box::new(ClaimRebind::new(&stmts)?)
            } else {
                Box::new(KeyRebind {
                    sample: Value::Text(sample_key.clone()),
                    next: Box::new(move |i| key(base, 0, i)),
                    cur: Value::Null,
                })
            };
            let b = self
                .bare(st, &path, stmts.clone(), rebind, per_client)
                .await?;
            println!(
                "  trial {} {:<44} s3o {:>9.1} ops/s, bare loop {:>9.1}",
                trial + 1,
                op.name(),
                m.ops_per_sec(),
                b.ops_per_sec()
            );
            s3o.push(m);
            bare.push(b.ops_per_sec());
        }
        if op == Op::RecordNew {
            self.rate = Spread::of(&bare)
                .median
                .max(Spread::of(&s3o.iter().map(Measured::ops_per_sec).collect::<Vec<_>>()).median);
        }
        let row = Row::new(op.name(), ENGINE, "1w", BARE, &s3o, &bare);
        println!("{}", crate::pg::line(&row));
        self.rows.push(row);
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

    /// Reads at every size (s3o through the reader pool vs the bare loop, each on its own
    /// copy of the size's template), reader throughput with 1 and 2 readers while a writer
    /// runs, and the claim's cost at a small and a large queue.
    pub(crate) async fn reads(&mut self) -> Result<(), String> {
        let sizes = self.settings.sizes.clone();
        let mut states = Vec::new();
        for &n in &sizes {
            let t0 = Instant::now();
            let label = crate::size_label(n);
            let tmpl = self.prepare(&format!("r{label}.db")).await?;
            {
                let seeder = bare_conn(&tmpl)?;
                seed_reads(&seeder, 1, n)?;
                settle(&seeder)?;
            }
            println!(
                "sqlite: seeded {n} objects in {:.1}s",
                t0.elapsed().as_secs_f64()
            );
            let store = self
                .store(&self.copy(&tmpl, &format!("rs{label}.db"))?)
                .await?;
            let bare_path = self.copy(&tmpl, &format!("rb{label}.db"))?;
            let mut per_read = Vec::new();
            for read in [Read::ListPage, Read::GetAll] {
                let sample = read_key(read, n);
                let (r, events) = capture(read.run_once(&store, &sample)).await;
                r.map_err(|e| format!("{} sample: {e}", read.name()))?;
                let stmts: Vec<Replayed> = events
                    .iter()
                    .map(Replayed::from_captured)
                    .collect::<Result<_, _>>()?;
                per_read.push((read, sample, stmts));
            }
            states.push((n, tmpl, store, bare_path, per_read));
        }
        let mut cells = Cells::new();
        for trial in 0..self.settings.trials {
            for (si, (n, _, store, bare_path, per_read)) in states.iter().enumerate() {
                for (ri, (read, sample, stmts)) in per_read.iter().enumerate() {
                    let plan = Plan {
                        clients: 1,
                        warmup: self.settings.warmup,
                        duration: self.settings.duration,
                        max_iters: u64::MAX,
                    };
                    let m = harness::run(plan, read.call(store.clone(), *n)).await;
                    let (read, n) = (*read, *n);
                    let rebind = Box::new(KeyRebind {
                        sample: Value::Text(sample.clone()),
                        next: Box::new(move |_| read_key(read, n)),
                        cur: Value::Null,
                    });
                    let b = self
                        .bare(self.settings, bare_path, stmts.clone(), rebind, u64::MAX)
                        .await?;
                    println!(
                        "  trial {} {} @{}: s3o {:.1} ops/s, bare loop {:.1}",
                        trial + 1,
                        read.name(),
                        crate::size_label(n),
                        m.ops_per_sec(),
                        b.ops_per_sec()
                    );
                    let cell = cells.entry((ri, si, 1)).or_default();
                    cell.0.push(m);
                    cell.1.push(b.ops_per_sec());
                }
            }
        }
        for ((ri, si, _), (s3o, base)) in &cells {
            let row = Row::new(
                &format!(
                    "{} @{}",
                    states[*si].4[*ri].0.name(),
                    crate::size_label(states[*si].0)
                ),
                ENGINE,
                "1",
                BARE,
                s3o,
                base,
            );
            println!("{}", crate::pg::line(&row));
            self.rows.push(row);
        }
        if let Some(fig) = report::page_scaling(ENGINE, &cells, &sizes) {
            self.figures.push(fig);
        }
        let first = states.first().map(|s| (s.0, s.1.clone()));
        for (_, _, store, _, _) in states {
            store.close().await;
        }
        if let Some((n, tmpl)) = first {
            self.readers_under_writer(&tmpl, n).await?;
        }
        self.claim_scaling().await
    }

    /// Reader throughput with 1 and 2 readers while one writer records new keys, each run on
    /// a fresh copy of the smallest read template.
    async fn readers_under_writer(&mut self, tmpl: &Path, n: u64) -> Result<(), String> {
        for read in [Read::GetAll, Read::ListPage] {
            let mut runs: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
            let mut writer: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            for trial in 0..self.settings.trials {
                for readers in [1usize, 2] {
                    let path = self.copy(tmpl, "rw.db")?;
                    let store = self.store(&path).await?;
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
                        harness::run(wplan, Op::RecordNew.call(store.clone(), base)),
                        harness::run(rplan, read.call(store.clone(), n))
                    );
                    store.close().await;
                    println!(
                        "  trial {} {} 1w+{readers}r: readers {:.1} ops/s, writer {:.1}",
                        trial + 1,
                        read.name(),
                        r.ops_per_sec(),
                        w.ops_per_sec()
                    );
                    writer[readers - 1].push(w.ops_per_sec());
                    runs[readers - 1].push(r);
                }
            }
            let op = format!(
                "{} @{} (readers while writing)",
                read.name(),
                crate::size_label(n)
            );
            let one: Vec<f64> = runs[0].iter().map(Measured::ops_per_sec).collect();
            let rows = [
                Row::new(&op, ENGINE, "1w+1r", "", &runs[0], &[]),
                // The baseline of the 2-reader row is the 1-reader throughput of the same
                // trial, so its ratio is the reader scaling.
                Row::new(&op, ENGINE, "1w+2r", "1w+1r", &runs[1], &one),
            ];
            for (i, row) in rows.into_iter().enumerate() {
                println!("{}", crate::pg::line(&row));
                self.notes.push(format!(
                    "sqlite {} {}: writer {:.0} ops/s (median) alongside the readers",
                    row.conc,
                    read.name(),
                    Spread::of(&writer[i]).median
                ));
                self.rows.push(row);
            }
        }
        Ok(())
    }

    /// The cost of claiming [`CLAIM_BATCH`] rows with 1k and with the large depth queued;
    /// each timed claim is followed by an untimed release of what it claimed.
    pub(crate) async fn claim_scaling(&mut self) -> Result<(), String> {
        let depths = [1000, self.settings.claim_depth];
        let mut paths = Vec::new();
        for d in depths {
            let path = self
                .prepare(&format!("q{}.db", crate::size_label(d)))
                .await?;
            let seeder = bare_conn(&path)?;
            seed(&seeder, Seed::Queue, 0, 1, d)?;
            settle(&seeder)?;
            paths.push(path);
        }
        let mut p50: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for trial in 0..self.settings.trials {
            for (di, path) in paths.iter().enumerate() {
                let store = self.store(path).await?;
                let releaser = bare_conn(path)?;
                let releaser = &releaser;
                let r = claim_cost(
                    &store,
                    depths[di],
                    trial,
                    self.settings.warmup,
                    self.settings.duration,
                    |ids: Vec<i64>| async move {
                        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                        releaser
                            .execute(
                                "UPDATE cleanup_queue SET claimed_at = NULL, claimed_by = NULL \
                                 WHERE id IN (SELECT value FROM json_each(?1))",
                                [format!("[{}]", list.join(","))],
                            )
                            .map(drop)
                            .map_err(|e| format!("release claim: {e}"))
                    },
                )
                .await;
                store.close().await;
                p50[di].push(r?);
            }
        }
        let (fig, mut notes) = report::claim_scaling(ENGINE, depths, &p50);
        self.figures.push(fig);
        self.notes.append(&mut notes);
        Ok(())
    }
}

/// Removes a database file and its WAL companions.
fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Brings a freshly seeded template to the state every side starts from: rebuilt pages
/// (`VACUUM`), fresh statistics (`ANALYZE`) and everything in the main file (checkpoint), so
/// a copy of the main file is the whole database.
fn settle(conn: &Connection) -> Result<(), String> {
    conn.execute_batch("VACUUM; ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(|e| format!("settle: {e}"))
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
        Ok(()) => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Seeds read keys `READ_BASE + from ..= READ_BASE + to` in one transaction.
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
        Ok(_) => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(format!("seed reads: {e}"))
        }
    }
}
