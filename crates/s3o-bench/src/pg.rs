//! PostgreSQL: s3o (`PgStore`) against `pgbench -M prepared` running the same SQL.

use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;

use s3o_core::LifecycleAdmin;
use s3o_pg::PgStore;
use s3o_pg::tokio_postgres::{self, Client, NoTls};

use crate::Settings;
use crate::capture::capture;
use crate::harness::{self, Plan};
use crate::report::Row;
use crate::script::{self, Binder, Script, Stmt};
use crate::values::Value;
use crate::workload::{
    BLOCK, CLAIM_BATCH, Op, READ_BASE, Read, SEED_SIZE, SOURCE, STRIDE, Seed, TARGET, key,
    key_prelude, read_key,
};

const ENGINE: &str = "postgres";

/// Concurrency levels of every PostgreSQL workload.
const CLIENTS: [usize; 2] = [1, 8];

/// The PostgreSQL half of the run.
pub(crate) struct PgRun<'a> {
    url: String,
    settings: &'a Settings,
    admin: Client,
    pid: u32,
    next_block: u64,
    /// Per-client ops/s of `record_object (new key)` at each concurrency (sizes seeding).
    rate: [f64; 2],
    pgbench: Option<String>,
    /// Rows of the results table.
    pub(crate) rows: Vec<Row>,
    /// Notes for the report.
    pub(crate) notes: Vec<String>,
}

/// The URL without s3o's own query parameters (for the admin connection and pgbench).
fn base_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}&pool_max_size=16")
}

fn pg_err(ctx: &str) -> impl Fn(tokio_postgres::Error) -> String + '_ {
    move |e| format!("{ctx}: {e}")
}

impl<'a> PgRun<'a> {
    /// Connects the admin client; `Err` when the server is unreachable.
    pub(crate) async fn connect(url: &str, settings: &'a Settings) -> Result<PgRun<'a>, String> {
        let (admin, conn) = tokio_postgres::connect(base_url(url), NoTls)
            .await
            .map_err(pg_err("connect to PostgreSQL"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let pgbench = ["pgbench", "/usr/bin/pgbench"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .map(str::to_owned);
        Ok(PgRun {
            url: url.to_owned(),
            settings,
            admin,
            pid: std::process::id(),
            next_block: 2,
            rate: [0.0; 2],
            pgbench,
            rows: Vec::new(),
            notes: Vec::new(),
        })
    }

    fn block(&mut self) -> u64 {
        self.next_block += 1;
        self.next_block * BLOCK
    }

    async fn open(&self, schema: &str) -> Result<Arc<PgStore>, String> {
        self.admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .map_err(pg_err("drop old schema"))?;
        // The same-SQL baseline is rebuilt from the traced parameter values: opt in.
        s3o_pg::log_sql_parameter_values(true);
        let opts = s3o_pg::PgOptions {
            fast_recycling: self.settings.fast_paths,
            ..s3o_pg::PgOptions::default()
        };
        let store = PgStore::connect_with(&with_schema(&self.url, schema), opts)
            .await
            .map_err(|e| e.to_string())?;
        store.run_migrations().await.map_err(|e| e.to_string())?;
        store
            .sync_quota_limits(&[(SOURCE.to_owned(), 0), (TARGET.to_owned(), 0)])
            .await
            .map_err(|e| e.to_string())?;
        self.admin
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .map_err(pg_err("set search_path"))?;
        Ok(Arc::new(store))
    }

    async fn drop_schema(&self, store: Arc<PgStore>, schema: &str) {
        store.close().await;
        if let Err(e) = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
        {
            eprintln!("warning: could not drop schema {schema}: {e}");
        }
    }

    /// Seeds what `seed` needs for `clients` clients × `per_client` iterations at `base`.
    async fn seed(
        &self,
        seed: Seed,
        base: u64,
        clients: usize,
        per_client: u64,
    ) -> Result<(), String> {
        let (b, stride, c, k, size) = (
            base as i64,
            STRIDE as i64,
            clients as i32,
            per_client as i64,
            SEED_SIZE,
        );
        let keys = "SELECT ($1::bigint + s * $2::bigint + g)::text AS k \
                    FROM generate_series(0, $3::int - 1) s, generate_series(1::bigint, $4::bigint) g";
        let total = i64::from(c) * k;
        match seed {
            Seed::None => Ok(()),
            Seed::Objects => {
                let sql = format!(
                    "INSERT INTO object_locations (object_key, backend_name, size_bytes, \
                     created_at, encrypted, managed) SELECT k, '{SOURCE}', $5::bigint, \
                     NOW() - INTERVAL '1 hour', false, true FROM ({keys}) x"
                );
                self.admin
                    .execute(&sql, &[&b, &stride, &c, &k, &size])
                    .await
                    .map_err(pg_err("seed copies"))?;
                self.admin
                    .execute(
                        "UPDATE backend_quotas SET bytes_used = bytes_used + $1 \
                         WHERE backend_name = $2",
                        &[&(total * size), &SOURCE],
                    )
                    .await
                    .map_err(pg_err("seed quota"))?;
                self.analyze("object_locations", false).await
            }
            Seed::Pending => {
                let sql = format!(
                    "INSERT INTO pending_objects (intent_id, object_key, backend_name, \
                     size_bytes, encrypted, created_at) SELECT k, k, '{SOURCE}', $5::bigint, \
                     false, NOW() - INTERVAL '1 hour' FROM ({keys}) x"
                );
                self.admin
                    .execute(&sql, &[&b, &stride, &c, &k, &size])
                    .await
                    .map_err(pg_err("seed intents"))?;
                self.analyze("pending_objects", false).await
            }
            Seed::Queue => {
                // `per_client` is the number of rows here (the queue is shared).
                self.admin
                    .execute(
                        "INSERT INTO cleanup_queue (backend_name, object_key, reason, \
                         size_bytes, created_at, next_retry) SELECT $1, 'orphan/' || g, \
                         'bench', $2::bigint, NOW() - INTERVAL '1 hour', \
                         NOW() - INTERVAL '1 hour' FROM generate_series(1::bigint, $3::bigint) g",
                        &[&SOURCE, &size, &k],
                    )
                    .await
                    .map_err(pg_err("seed cleanup queue"))?;
                self.admin
                    .execute(
                        "UPDATE backend_quotas SET orphan_bytes = orphan_bytes + $1 \
                         WHERE backend_name = $2",
                        &[&(k * size), &SOURCE],
                    )
                    .await
                    .map_err(pg_err("seed orphan bytes"))?;
                self.analyze("cleanup_queue", false).await
            }
        }
    }

    /// Refreshes planner statistics; `vacuum` also sets the visibility map (after bulk
    /// loads of the read tables).
    async fn analyze(&self, table: &str, vacuum: bool) -> Result<(), String> {
        let verb = if vacuum { "VACUUM ANALYZE" } else { "ANALYZE" };
        self.admin
            .batch_execute(&format!("{verb} {table}"))
            .await
            .map_err(pg_err("analyze"))
    }

    /// Iterations each client may run (its seeded rows), from the measured write rate.
    fn per_client(&self, ci: usize) -> u64 {
        let s = self.settings;
        let secs = (s.warmup + s.duration).as_secs_f64() + 1.0;
        let rate = if self.rate[ci] > 0.0 {
            self.rate[ci]
        } else {
            2000.0
        };
        (rate * secs * 2.0).ceil() as u64 + 100
    }

    /// Runs pgbench with `script` at `clients`; returns tps.
    fn pgbench(&self, slug: &str, clients: usize, script: &Script, schema: &str, secs: u64) -> f64 {
        let Some(bin) = &self.pgbench else {
            return f64::NAN;
        };
        let dir = self.settings.out_dir.join("pgbench");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{slug}.sql"));
        if let Err(e) = std::fs::write(&path, &script.text) {
            eprintln!("warning: cannot write {}: {e}", path.display());
            return f64::NAN;
        }
        let mut cmd = Command::new(bin);
        cmd.args(["-n", "-M", "prepared", "--no-vacuum"])
            .arg("-c")
            .arg(clients.to_string())
            .arg("-j")
            .arg(clients.min(2).to_string())
            .arg("-T")
            .arg(secs.to_string())
            .args(["-D", "i=0"]);
        for (k, v) in &script.defines {
            cmd.arg("-D").arg(format!("{k}={v}"));
        }
        cmd.arg("-f").arg(&path);
        apply_pg_env(&mut cmd, &self.url, schema);
        match cmd.output() {
            Ok(o) => {
                let out = String::from_utf8_lossy(&o.stdout);
                let err = String::from_utf8_lossy(&o.stderr);
                if !o.status.success() || err.contains("aborted") {
                    eprintln!(
                        "warning: pgbench {slug} -c {clients} failed: {}",
                        err.lines().take(3).collect::<Vec<_>>().join(" | ")
                    );
                    return f64::NAN;
                }
                script::parse_tps(&out).unwrap_or(f64::NAN)
            }
            Err(e) => {
                eprintln!("warning: cannot run pgbench: {e}");
                f64::NAN
            }
        }
    }

    /// Every write operation at 1 and 8 clients, s3o and pgbench.
    pub(crate) async fn writes(&mut self) -> Result<(), String> {
        let schema = format!("s3o_bench_{}_ops", self.pid);
        let store = self.open(&schema).await?;
        let r = self.writes_on(&store, &schema).await;
        self.drop_schema(store, &schema).await;
        r
    }

    async fn writes_on(&mut self, store: &Arc<PgStore>, schema: &str) -> Result<(), String> {
        for op in Op::ALL {
            // The sample operation whose statements become the pgbench script.
            let sample_base = self.block();
            let sample_rows = if op == Op::ClaimComplete {
                (CLAIM_BATCH * 2) as u64
            } else {
                1
            };
            self.seed(op.seed(), sample_base, 1, sample_rows).await?;
            let sample_key = key(sample_base, 0, 1);
            let (r, events) = capture(op.run_once(&**store, &sample_key, 0)).await;
            r.map_err(|e| format!("{} sample: {e}", op.name()))?;
            let stmts: Vec<Stmt> = events.iter().map(Stmt::from_pg).collect::<Result<_, _>>()?;
            println!(
                "postgres {}: {} statements per operation ({} transaction-control)",
                op.name(),
                stmts.len(),
                stmts.iter().filter(|s| s.is_control()).count()
            );
            for (ci, &clients) in CLIENTS.iter().enumerate() {
                let per_client = if op.seed() == Seed::None {
                    STRIDE - 1
                } else {
                    self.per_client(ci)
                };
                // s3o.
                let base = self.block();
                let seed_n = if op == Op::ClaimComplete {
                    self.queue_rows(ci, clients)
                } else {
                    per_client
                };
                self.seed(op.seed(), base, clients, seed_n).await?;
                let long = self.settings.long();
                let st = if op == Op::ClaimComplete {
                    &long
                } else {
                    self.settings
                };
                let plan = Plan {
                    clients,
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
                    eprintln!("warning: postgres {} errors: {} ({e})", op.name(), m.errors);
                }
                // pgbench, same SQL, fresh rows.
                let pbase = self.block();
                self.seed(op.seed(), pbase, clients, seed_n).await?;
                let binder: Box<dyn Binder> = if op == Op::ClaimComplete {
                    Box::new(ClaimBinder::new(&stmts)?)
                } else {
                    Box::new(KeyBinder {
                        prelude: key_prelude(pbase),
                        sample: Value::Text(sample_key.clone()),
                    })
                };
                let script = script::generate(op.name(), &stmts, &*binder)?;
                let tps = self.pgbench(op.slug(), clients, &script, schema, st.pgbench_secs());
                if op == Op::RecordNew {
                    self.rate[ci] = m.ops_per_sec().max(tps.max(0.0)) / clients as f64;
                }
                let row = Row::new(op.name(), ENGINE, &clients.to_string(), &m, tps);
                println!("{}", line(&row));
                self.rows.push(row);
            }
        }
        Ok(())
    }

    fn queue_rows(&self, ci: usize, clients: usize) -> u64 {
        // Completes are single-statement commits: budget several times the write rate.
        self.per_client(ci) * clients as u64 * 3 + 5 * CLAIM_BATCH as u64
    }

    /// The reads at every store size: both concurrencies at the first size, 1 client after.
    pub(crate) async fn reads(&mut self) -> Result<(), String> {
        let schema = format!("s3o_bench_{}_scale", self.pid);
        let store = self.open(&schema).await?;
        let r = self.reads_on(&store, &schema).await;
        self.drop_schema(store, &schema).await;
        r
    }

    async fn reads_on(&mut self, store: &Arc<PgStore>, schema: &str) -> Result<(), String> {
        let mut seeded = 0u64;
        let sizes = self.settings.sizes.clone();
        for (si, &n) in sizes.iter().enumerate() {
            let t0 = std::time::Instant::now();
            self.admin
                .execute(
                    &format!(
                        "INSERT INTO object_locations (object_key, backend_name, size_bytes, \
                         created_at, encrypted, managed) SELECT ($1::bigint + g)::text, \
                         '{SOURCE}', $4::bigint, NOW() - INTERVAL '1 day', false, true \
                         FROM generate_series($2::bigint, $3::bigint) g"
                    ),
                    &[
                        &(READ_BASE as i64),
                        &(seeded as i64 + 1),
                        &(n as i64),
                        &SEED_SIZE,
                    ],
                )
                .await
                .map_err(pg_err("seed objects"))?;
            self.analyze("object_locations", true).await?;
            println!(
                "postgres: seeded {} objects ({} total) in {:.1}s",
                n - seeded,
                n,
                t0.elapsed().as_secs_f64()
            );
            seeded = n;
            for read in [Read::ListPage, Read::GetAll] {
                let sample = read_key(read, n);
                let (r, events) = capture(read.run_once(&**store, &sample)).await;
                r.map_err(|e| format!("{} sample: {e}", read.name()))?;
                let stmts: Vec<Stmt> =
                    events.iter().map(Stmt::from_pg).collect::<Result<_, _>>()?;
                let binder = KeyBinder {
                    prelude: read.prelude(n),
                    sample: Value::Text(sample),
                };
                let script = script::generate(read.name(), &stmts, &binder)?;
                let levels: &[usize] = if si == 0 { &CLIENTS } else { &CLIENTS[..1] };
                for &clients in levels {
                    let plan = Plan {
                        clients,
                        warmup: self.settings.warmup,
                        duration: self.settings.duration,
                        max_iters: u64::MAX,
                    };
                    let m = harness::run(plan, read.call(Arc::clone(store), n)).await;
                    let tps = self.pgbench(
                        &format!("{}_{}", read.slug(), crate::size_label(n)),
                        clients,
                        &script,
                        schema,
                        self.settings.pgbench_secs(),
                    );
                    let row = Row::new(
                        &format!("{} @{}", read.name(), crate::size_label(n)),
                        ENGINE,
                        &clients.to_string(),
                        &m,
                        tps,
                    );
                    println!("{}", line(&row));
                    self.rows.push(row);
                }
            }
        }
        Ok(())
    }
}

/// One console line for a row.
pub(crate) fn line(r: &Row) -> String {
    format!(
        "  {:<56} {:<8} c={:<6} {:>9.1} ops/s  p50 {:>8.3} ms  p99 {:>8.3} ms  base {:>9.1}  ratio {:>5.2}",
        r.op,
        r.engine,
        r.conc,
        r.ops,
        r.p50,
        r.p99,
        r.base,
        r.ratio()
    )
}

/// libpq environment for pgbench from the URL (host, port, user, password, database) and the
/// schema (`PGOPTIONS=-c search_path=…`).
fn apply_pg_env(cmd: &mut Command, url: &str, schema: &str) {
    if let Ok(cfg) = tokio_postgres::Config::from_str(base_url(url)) {
        if let Some(h) = cfg.get_hosts().first() {
            match h {
                tokio_postgres::config::Host::Tcp(name) => {
                    cmd.env("PGHOST", name);
                }
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => {
                    cmd.env("PGHOST", p);
                }
            }
        }
        if let Some(p) = cfg.get_ports().first() {
            cmd.env("PGPORT", p.to_string());
        }
        if let Some(u) = cfg.get_user() {
            cmd.env("PGUSER", u);
        }
        if let Some(pw) = cfg.get_password() {
            cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).as_ref());
        }
        if let Some(db) = cfg.get_dbname() {
            cmd.env("PGDATABASE", db);
        }
    }
    cmd.env("PGOPTIONS", format!("-c search_path={schema}"));
}

/// Binds the sample key to `:key`, computed by `prelude`.
struct KeyBinder {
    prelude: Vec<String>,
    sample: Value,
}

impl Binder for KeyBinder {
    fn prelude(&self) -> Vec<String> {
        self.prelude.clone()
    }
    fn bind(&self, _stmt: usize, _sql: &str, _param: usize, value: &Value) -> Option<String> {
        (*value == self.sample).then(|| "key".to_owned())
    }
}

/// The claim returns rows ordered by id; `\aset` keeps the last row's columns, so `:id` is
/// the largest claimed id and the completes delete `:id − 99 … :id` (the claimed block when
/// claims do not interleave; otherwise neighbouring rows, at the same cost).
struct ClaimBinder {
    claim: usize,
    first_complete: usize,
    completes: usize,
}

impl ClaimBinder {
    fn new(stmts: &[Stmt]) -> Result<Self, String> {
        let claim = stmts
            .iter()
            .position(|s| s.sql.contains("FOR UPDATE SKIP LOCKED"))
            .ok_or("claim statement not captured")?;
        let first_complete = stmts
            .iter()
            .position(|s| s.sql.contains("DELETE FROM cleanup_queue WHERE id = $1"))
            .ok_or("complete statement not captured")?;
        let completes = stmts.len() - first_complete;
        Ok(ClaimBinder {
            claim,
            first_complete,
            completes,
        })
    }
}

impl Binder for ClaimBinder {
    fn prelude(&self) -> Vec<String> {
        Vec::new()
    }
    fn bind(&self, stmt: usize, sql: &str, param: usize, _value: &Value) -> Option<String> {
        (stmt >= self.first_complete && param == 0 && sql.contains("cleanup_queue WHERE id"))
            .then(|| format!("c{}", stmt - self.first_complete))
    }
    fn terminator(&self, stmt: usize) -> Option<String> {
        (stmt == self.claim).then(|| "\\aset".to_owned())
    }
    fn after(&self, stmt: usize) -> Vec<String> {
        if stmt != self.claim {
            return Vec::new();
        }
        (0..self.completes)
            .map(|j| format!("\\set c{j} :id - {}", self.completes - 1 - j))
            .collect()
    }
}
