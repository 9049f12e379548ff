//! PostgreSQL: s3o (`PgStore`) against `pgbench -M prepared` running the same SQL, and for
//! new-key writes also the reference's own statements.
//!
//! Every side of every write trial runs on its own schema, created, migrated, seeded and
//! vacuumed/analyzed the same way just before it runs, with the same keys; sides interleave
//! (s3o, same SQL, [reference], s3o, ...) for `--trials` rounds. Reads run on one seeded
//! schema per side and store size, identical by construction, interleaved the same way.

use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use s3o_core::MetadataStore;
use s3o_pg::tokio_postgres::{self, Client, NoTls};

use crate::Settings;
use crate::capture::capture;
use crate::harness::{self, Plan};
use crate::report::{self, Cells, Figure, Row};
use crate::script::{self, Binder, Script, Stmt};
use crate::stats::{Measured, Spread};
use crate::values::Value;
use crate::workload::{
    BLOCK, CLAIM_BATCH, Op, READ_BASE, Read, SEED_SIZE, SOURCE, STRIDE, Seed, TARGET, claim_cost,
    init_store, key, key_prelude, read_key,
};

const ENGINE: &str = "postgres";

/// Concurrency levels of every PostgreSQL workload.
const CLIENTS: [usize; 2] = [1, 8];

/// Baseline labels.
const SAME_SQL: &str = "same SQL (pgbench)";
const REFERENCE_SQL: &str = "reference SQL (pgbench)";

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
    /// Schemas created so far (dropped at the end).
    schemas: Vec<String>,
    /// Rows of the results table.
    pub(crate) rows: Vec<Row>,
    /// Derived figures.
    pub(crate) figures: Vec<Figure>,
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

/// A side of a write trial.
enum Side {
    /// The store.
    S3o,
    /// pgbench running a script; the label names the baseline.
    Pgbench(&'static str, Script, String),
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
            schemas: Vec::new(),
            rows: Vec::new(),
            figures: Vec::new(),
            notes: Vec::new(),
        })
    }

    fn block(&mut self) -> u64 {
        self.next_block += 1;
        self.next_block * BLOCK
    }

    fn schema(&mut self, what: &str) -> String {
        // Schema names are lowercase (`1M` → `1m`).
        let s = format!("s3o_bench_{}_{}", self.pid, what.to_ascii_lowercase());
        if !self.schemas.contains(&s) {
            self.schemas.push(s.clone());
        }
        s
    }

    fn options(&self) -> s3o_pg::PgOptions {
        s3o_pg::PgOptions::default()
    }

    /// A store on `schema` (no migrations: the schema is prepared).
    async fn store(&self, schema: &str) -> Result<MetadataStore, String> {
        // The same-SQL baseline is rebuilt from the traced parameter values: opt in.
        s3o_pg::log_sql_parameter_values(true);
        // The consumer handle, as a downstream holds it (its per-call metrics included).
        s3o_pg::open_with(&with_schema(&self.url, schema), self.options())
            .await
            .map_err(|e| e.to_string())
    }

    /// (Re)creates `schema`: migrated, every backend's quota row at [`crate::workload::QUOTA_LIMIT`], and
    /// the admin connection's `search_path` pointing at it (for seeding).
    async fn prepare(&self, schema: &str) -> Result<(), String> {
        self.admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .map_err(pg_err("drop old schema"))?;
        let store = self.store(schema).await?;
        let r = init_store(&store).await;
        store.close().await;
        r?;
        self.use_schema(schema).await
    }

    async fn use_schema(&self, schema: &str) -> Result<(), String> {
        self.admin
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .map_err(pg_err("set search_path"))
    }

    /// `VACUUM ANALYZE` of every table of `schema`: each side starts with fresh statistics
    /// and a set visibility map, alike.
    async fn settle(&self, schema: &str) -> Result<(), String> {
        let row = self
            .admin
            .query_one(
                "SELECT string_agg(quote_ident(table_schema) || '.' || quote_ident(table_name), \
                 ', ') FROM information_schema.tables WHERE table_schema = $1 \
                 AND table_type = 'BASE TABLE'",
                &[&schema],
            )
            .await
            .map_err(pg_err("list tables"))?;
        let tables: Option<String> = row.get(0);
        if let Some(t) = tables {
            self.admin
                .batch_execute(&format!("VACUUM ANALYZE {t}"))
                .await
                .map_err(pg_err("vacuum analyze"))?;
        }
        Ok(())
    }

    /// Seeds what `seed` needs for `clients` clients × `per_client` iterations at `base`, in
    /// the schema the admin connection uses.
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
                    .map_err(pg_err("seed quota"))
                    .map(drop)
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
                    .map_err(pg_err("seed intents"))
                    .map(drop)
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
                    .map_err(pg_err("seed orphan bytes"))
                    .map(drop)
            }
        }
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

    /// Runs pgbench with `script` at `clients` for `warmup + duration` and measures the
    /// transactions that completed inside the window after the warm-up, from pgbench's
    /// per-transaction log (the same rule the s3o side is measured by). Also returns how many
    /// transactions it ran in all.
    fn pgbench(
        &self,
        slug: &str,
        clients: usize,
        script: &Script,
        schema: &str,
        st: &Settings,
    ) -> (Measured, u64) {
        let failed = (Measured::default(), 0);
        let Some(bin) = &self.pgbench else {
            return failed;
        };
        let dir = self.settings.out_dir.join("pgbench");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{slug}.sql"));
        if let Err(e) = std::fs::write(&path, &script.text) {
            eprintln!("warning: cannot write {}: {e}", path.display());
            return failed;
        }
        let logs = std::env::temp_dir().join(format!("s3o-bench-pgbench-{}", self.pid));
        let _ = std::fs::remove_dir_all(&logs);
        if let Err(e) = std::fs::create_dir_all(&logs) {
            eprintln!("warning: cannot create {}: {e}", logs.display());
            return failed;
        }
        let secs = (st.warmup + st.duration).as_secs_f64().ceil() as u64;
        let mut cmd = Command::new(bin);
        cmd.args(["-n", "-M", "prepared", "--no-vacuum", "-l"])
            .arg(format!("--log-prefix={}", logs.join("tx").display()))
            .arg("-c")
            .arg(clients.to_string())
            .arg("-j")
            .arg(clients.min(2).to_string())
            .arg("-T")
            .arg(secs.max(1).to_string())
            .args(["-D", "i=0"]);
        for (k, v) in &script.defines {
            cmd.arg("-D").arg(format!("{k}={v}"));
        }
        cmd.arg("-f").arg(&path);
        apply_pg_env(&mut cmd, &self.url, schema);
        let m = match cmd.output() {
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                if !o.status.success() || err.contains("aborted") {
                    eprintln!(
                        "warning: pgbench {slug} -c {clients} failed: {}",
                        err.lines().take(3).collect::<Vec<_>>().join(" | ")
                    );
                    failed
                } else {
                    match read_logs(&logs, st.warmup, st.duration) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("warning: pgbench {slug} log: {e}");
                            failed
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("warning: cannot run pgbench: {e}");
                failed
            }
        };
        let _ = std::fs::remove_dir_all(&logs);
        m
    }

    /// Every write operation at 1 and 8 clients (four backends: 8 only).
    pub(crate) async fn writes(&mut self) -> Result<(), String> {
        for op in Op::ALL {
            let (stmts, sample_key) = self.sample(op).await?;
            let levels: &[usize] = if op == Op::RecordNew4 {
                &CLIENTS[1..]
            } else {
                &CLIENTS
            };
            for &clients in levels {
                let ci = CLIENTS.iter().position(|&c| c == clients).unwrap_or(0);
                self.write_cell(op, clients, ci, &stmts, &sample_key)
                    .await?;
            }
        }
        Ok(())
    }

    /// Captures the statements of one sample operation on a scratch schema.
    async fn sample(&mut self, op: Op) -> Result<(Vec<Stmt>, String), String> {
        let schema = self.schema("sample");
        self.prepare(&schema).await?;
        let sample_base = self.block();
        let sample_rows = if op == Op::ClaimComplete {
            (CLAIM_BATCH * 2) as u64
        } else {
            1
        };
        self.seed(op.seed(), sample_base, 1, sample_rows).await?;
        let store = self.store(&schema).await?;
        let sample_key = key(sample_base, 0, 1);
        let (r, events) = capture(op.run_once(&store, &sample_key, 0)).await;
        store.close().await;
        r.map_err(|e| format!("{} sample: {e}", op.name()))?;
        let stmts: Vec<Stmt> = events.iter().map(Stmt::from_pg).collect::<Result<_, _>>()?;
        println!(
            "postgres {}: {} statements per operation ({} transaction-control)",
            op.name(),
            stmts.len(),
            stmts.iter().filter(|s| s.is_control()).count()
        );
        Ok((stmts, sample_key))
    }

    /// One write cell: `--trials` interleaved rounds of every side, each on a fresh schema.
    async fn write_cell(
        &mut self,
        op: Op,
        clients: usize,
        ci: usize,
        stmts: &[Stmt],
        sample_key: &str,
    ) -> Result<(), String> {
        let per_client = if op.seed() == Seed::None {
            STRIDE - 1
        } else {
            self.per_client(ci)
        };
        let seed_n = if op == Op::ClaimComplete {
            // Completes are single-statement commits: budget several times the write rate.
            per_client * clients as u64 * 3 + 5 * CLAIM_BATCH as u64
        } else {
            per_client
        };
        // The same keys for every side and trial: each runs on its own fresh schema.
        let base = self.block();
        let binder: Box<dyn Binder> = if op == Op::ClaimComplete {
            Box::new(ClaimBinder::new(stmts)?)
        } else {
            Box::new(KeyBinder {
                prelude: key_prelude(base),
                sample: Value::Text(sample_key.to_owned()),
                four: op == Op::RecordNew4,
            })
        };
        let mut sides = vec![Side::S3o];
        sides.push(Side::Pgbench(
            SAME_SQL,
            script::generate(op.name(), stmts, &*binder)?,
            op.slug().to_owned(),
        ));
        if op.is_record_new() {
            sides.push(Side::Pgbench(
                REFERENCE_SQL,
                reference_record(base, op == Op::RecordNew4),
                format!("{}_reference", op.slug()),
            ));
        }
        let long = self.settings.long();
        let st = if op == Op::ClaimComplete {
            &long
        } else {
            self.settings
        };
        let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); sides.len()];
        for trial in 0..self.settings.trials {
            for (i, side) in sides.iter().enumerate() {
                let schema = self.schema(&format!("w{i}"));
                self.prepare(&schema).await?;
                self.seed(op.seed(), base, clients, seed_n).await?;
                self.settle(&schema).await?;
                let m = match side {
                    Side::S3o => {
                        let store = self.store(&schema).await?;
                        let plan = op.plan(clients, st, per_client);
                        let m = harness::run(plan, op.call(store.clone(), base)).await;
                        store.close().await;
                        if let Some(e) = &m.first_error {
                            eprintln!("warning: postgres {} errors: {} ({e})", op.name(), m.errors);
                        }
                        m
                    }
                    Side::Pgbench(label, script, slug) => {
                        let before = self.work(op).await?;
                        let (m, total) = self.pgbench(slug, clients, script, &schema, st);
                        let after = self.work(op).await?;
                        // The baseline must do the work it is credited with: a script that ran
                        // out of seeded rows would time no-ops.
                        if let (Some(b), Some(a)) = (before, after)
                            && (a - b).unsigned_abs() != total
                        {
                            let n = format!(
                                "postgres {} c={clients} {label}: {total} transactions changed \
                                 {} rows (should be equal)",
                                op.name(),
                                (a - b).unsigned_abs()
                            );
                            eprintln!("warning: {n}");
                            self.notes.push(n);
                        }
                        m
                    }
                };
                println!(
                    "  trial {} {:<44} c={clients} {:<24} {:>9.1} ops/s",
                    trial + 1,
                    op.name(),
                    match side {
                        Side::S3o => "s3o",
                        Side::Pgbench(l, ..) => l,
                    },
                    m.ops_per_sec()
                );
                runs[i].push(m);
            }
        }
        if op == Op::RecordNew {
            let best = runs
                .iter()
                .map(|r| {
                    Spread::of(&r.iter().map(Measured::ops_per_sec).collect::<Vec<_>>()).median
                })
                .fold(0.0, f64::max);
            self.rate[ci] = best / clients as f64;
        }
        for (i, side) in sides.iter().enumerate().skip(1) {
            let Side::Pgbench(label, ..) = side else {
                continue;
            };
            let base_ops: Vec<f64> = runs[i].iter().map(Measured::ops_per_sec).collect();
            let row = Row::new(
                op.name(),
                ENGINE,
                &clients.to_string(),
                label,
                &runs[0],
                &base_ops,
            );
            println!("{}", line(&row));
            self.rows.push(row);
        }
        Ok(())
    }

    /// A count that each operation of `op` changes by exactly one, in the admin's schema
    /// (`None` for the claim, whose pgbench completions may overlap).
    async fn work(&self, op: Op) -> Result<Option<i64>, String> {
        let sql = match op {
            Op::RecordNew | Op::RecordNew4 | Op::Delete | Op::Replica => {
                "SELECT count(*) FROM object_locations".to_owned()
            }
            Op::RecordOverwrite => format!(
                "SELECT count(*) FROM object_locations WHERE size_bytes = {}",
                2 * SEED_SIZE
            ),
            Op::Move => {
                format!("SELECT count(*) FROM object_locations WHERE backend_name = '{TARGET}'")
            }
            Op::Promote => "SELECT count(*) FROM pending_objects".to_owned(),
            Op::ClaimComplete => return Ok(None),
        };
        let row = self
            .admin
            .query_one(&sql, &[])
            .await
            .map_err(pg_err("count work"))?;
        Ok(Some(row.get(0)))
    }

    /// The reads at every store size (both concurrencies at the first size, 1 client after),
    /// and the claim's cost at a small and a large queue.
    pub(crate) async fn reads(&mut self) -> Result<(), String> {
        let sizes = self.settings.sizes.clone();
        // One schema per size and side, seeded alike; reads leave them unchanged.
        let mut stores = Vec::new();
        let mut scripts = Vec::new();
        for &n in &sizes {
            let mut pair = Vec::new();
            for side in ["s3o", "base"] {
                let schema = self.schema(&format!("r{}_{side}", crate::size_label(n)));
                self.prepare(&schema).await?;
                let t0 = Instant::now();
                self.seed_reads(n).await?;
                self.settle(&schema).await?;
                println!(
                    "postgres: seeded {n} objects in {schema} in {:.1}s",
                    t0.elapsed().as_secs_f64()
                );
                pair.push(schema);
            }
            let store = self.store(&pair[0]).await?;
            let mut per_read = Vec::new();
            for read in [Read::ListPage, Read::GetAll] {
                let sample = read_key(read, n);
                let (r, events) = capture(read.run_once(&store, &sample)).await;
                r.map_err(|e| format!("{} sample: {e}", read.name()))?;
                let stmts: Vec<Stmt> =
                    events.iter().map(Stmt::from_pg).collect::<Result<_, _>>()?;
                let binder = KeyBinder {
                    prelude: read.prelude(n),
                    sample: Value::Text(sample),
                    four: false,
                };
                per_read.push((read, script::generate(read.name(), &stmts, &binder)?));
            }
            stores.push((n, store, pair.pop().unwrap_or_default()));
            scripts.push(per_read);
        }
        // (read, size index, clients) → s3o runs, baseline ops/s.
        let mut cells = Cells::new();
        for trial in 0..self.settings.trials {
            for (si, (n, store, base_schema)) in stores.iter().enumerate() {
                for (ri, (read, script)) in scripts[si].iter().enumerate() {
                    let levels: &[usize] = if si == 0 { &CLIENTS } else { &CLIENTS[..1] };
                    for &clients in levels {
                        let plan = Plan {
                            clients,
                            warmup: self.settings.warmup,
                            duration: self.settings.duration,
                            max_iters: u64::MAX,
                        };
                        let m = harness::run(plan, read.call(store.clone(), *n)).await;
                        let (b, _) = self.pgbench(
                            &format!("{}_{}", read.slug(), crate::size_label(*n)),
                            clients,
                            script,
                            base_schema,
                            self.settings,
                        );
                        println!(
                            "  trial {} {} @{} c={clients}: s3o {:.1} ops/s, pgbench {:.1}",
                            trial + 1,
                            read.name(),
                            crate::size_label(*n),
                            m.ops_per_sec(),
                            b.ops_per_sec()
                        );
                        let cell = cells.entry((ri, si, clients)).or_default();
                        cell.0.push(m);
                        cell.1.push(b.ops_per_sec());
                    }
                }
            }
        }
        for ((ri, si, clients), (s3o, base)) in &cells {
            let (read, _) = scripts[*si][*ri];
            let row = Row::new(
                &format!("{} @{}", read.name(), crate::size_label(stores[*si].0)),
                ENGINE,
                &clients.to_string(),
                SAME_SQL,
                s3o,
                base,
            );
            println!("{}", line(&row));
            self.rows.push(row);
        }
        if let Some(fig) = report::page_scaling(ENGINE, &cells, &sizes) {
            self.figures.push(fig);
        }
        for (_, store, _) in stores {
            store.close().await;
        }
        self.claim_scaling().await
    }

    /// Seeds read keys `READ_BASE + 1 ..= READ_BASE + n` in the admin's schema.
    async fn seed_reads(&self, n: u64) -> Result<(), String> {
        self.admin
            .execute(
                &format!(
                    "INSERT INTO object_locations (object_key, backend_name, size_bytes, \
                     created_at, encrypted, managed) SELECT ($1::bigint + g)::text, \
                     '{SOURCE}', $3::bigint, NOW() - INTERVAL '1 day', false, true \
                     FROM generate_series(1::bigint, $2::bigint) g"
                ),
                &[&(READ_BASE as i64), &(n as i64), &SEED_SIZE],
            )
            .await
            .map_err(pg_err("seed objects"))
            .map(drop)
    }

    /// The cost of claiming [`CLAIM_BATCH`] rows with 1k and with the largest size queued:
    /// each timed claim is followed by an untimed release of what it claimed, so the queue
    /// keeps its depth.
    pub(crate) async fn claim_scaling(&mut self) -> Result<(), String> {
        let depths = [1000, self.settings.claim_depth];
        let mut schemas = Vec::new();
        for d in depths {
            let schema = self.schema(&format!("q{}", crate::size_label(d)));
            self.prepare(&schema).await?;
            self.seed(Seed::Queue, 0, 1, d).await?;
            self.settle(&schema).await?;
            schemas.push(schema);
        }
        let mut p50: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for trial in 0..self.settings.trials {
            for (di, schema) in schemas.iter().enumerate() {
                self.use_schema(schema).await?;
                let store = self.store(schema).await?;
                let admin = &self.admin;
                let r = claim_cost(
                    &store,
                    depths[di],
                    trial,
                    self.settings.warmup,
                    self.settings.duration,
                    |ids: Vec<i64>| async move {
                        admin
                            .execute(
                                "UPDATE cleanup_queue SET claimed_at = NULL, claimed_by = NULL \
                                 WHERE id = ANY($1)",
                                &[&ids],
                            )
                            .await
                            .map(drop)
                            .map_err(pg_err("release claim"))
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

    /// Drops every schema the run created.
    pub(crate) async fn cleanup(&self) {
        for s in &self.schemas {
            if let Err(e) = self
                .admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
                .await
            {
                eprintln!("warning: could not drop schema {s}: {e}");
            }
        }
    }
}

/// The reference's own `record_object` statements for a new key (SPEC §4 and §5.1): key
/// lock on `hashtext(key)`, the copies read `FOR UPDATE` (no order), the insert with
/// `created_at = NOW()` and no encryption columns, and the guarded plain quota `UPDATE`.
fn reference_record(base: u64, four: bool) -> Script {
    let mut text = String::from(
        "-- record_object (new key): the reference's own statements (SPEC §4, §5.1)\n",
    );
    for l in key_prelude(base) {
        text.push_str(&l);
        text.push('\n');
    }
    let backend = if four {
        text.push_str("\\set bk 1 + :client_id % 4\n");
        "('b' || :bk::int)"
    } else {
        ":backend"
    };
    text.push_str(&format!(
        "BEGIN;\n\
         SELECT pg_advisory_xact_lock(hashtext(:key));\n\
         SELECT backend_name, size_bytes, created_at, encrypted, (encryption_key IS NOT NULL \
         AND length(encryption_key) > 0) FROM object_locations WHERE object_key = :key FOR UPDATE;\n\
         INSERT INTO object_locations (object_key, backend_name, size_bytes, encrypted, managed, \
         created_at) VALUES (:key, {backend}, :size, false, true, NOW());\n\
         UPDATE backend_quotas SET bytes_used = bytes_used + :size, updated_at = NOW() \
         WHERE backend_name = {backend} AND (bytes_limit = 0 OR bytes_used + orphan_bytes + :size \
         <= bytes_limit);\n\
         COMMIT;\n"
    ));
    Script {
        text,
        defines: vec![
            ("backend".to_owned(), SOURCE.to_owned()),
            ("size".to_owned(), SEED_SIZE.to_string()),
        ],
    }
}

/// Reads pgbench's per-transaction logs (`client tx latency_us script epoch_s epoch_us …`,
/// one file per thread) and measures the transactions that completed inside
/// `[t0 + warmup, t0 + warmup + duration]`, `t0` being the start of the first transaction.
fn read_logs(dir: &Path, warmup: Duration, duration: Duration) -> Result<(Measured, u64), String> {
    let mut txs: Vec<(u64, u64)> = Vec::new(); // (completion µs since epoch, latency µs)
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        txs.extend(parse_log(&text)?);
    }
    Ok((window(&txs, warmup, duration), txs.len() as u64))
}

/// The `(completion µs, latency µs)` of every line of one pgbench log.
fn parse_log(text: &str) -> Result<Vec<(u64, u64)>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = |i: usize| -> Result<u64, String> {
                f.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("bad pgbench log line `{l}`"))
            };
            Ok((num(4)? * 1_000_000 + num(5)?, num(2)?))
        })
        .collect()
}

/// The measured window of a set of `(completion µs, latency µs)` transactions.
fn window(txs: &[(u64, u64)], warmup: Duration, duration: Duration) -> Measured {
    let Some(t0) = txs.iter().map(|&(end, lat)| end.saturating_sub(lat)).min() else {
        return Measured::default();
    };
    let from = t0 + warmup.as_micros() as u64;
    let to = from + duration.as_micros() as u64;
    let lat: Vec<Duration> = txs
        .iter()
        .filter(|&&(end, _)| end >= from && end <= to)
        .map(|&(_, lat)| Duration::from_micros(lat))
        .collect();
    Measured::new(lat, duration, 0)
}

/// One console line for a row.
pub(crate) fn line(r: &Row) -> String {
    format!(
        "  {:<56} {:<8} c={:<6} {:>9.1} ops/s  p50 {:>8.3} ms  base {:>9.1} ({})  ratio {}",
        r.op,
        r.engine,
        r.conc,
        r.ops,
        r.p50,
        r.base,
        r.vs,
        r.ratio.text()
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

/// Binds the sample key to `:key`, computed by `prelude`; with `four`, the sample's backend
/// to the client's backend (`b1` … `b4` by client id, as [`crate::workload::backend_of`]);
/// the quota stripe a charge goes to (s3o: round robin over 16) to the client's own stripe,
/// `:client_id % 16`, so concurrent pgbench clients never share a stripe row either.
struct KeyBinder {
    prelude: Vec<String>,
    sample: Value,
    four: bool,
}

impl Binder for KeyBinder {
    fn prelude(&self) -> Vec<String> {
        let mut p = self.prelude.clone();
        if self.four {
            p.push("\\set bk 1 + :client_id % 4".to_owned());
        }
        p
    }
    fn bind(&self, _stmt: usize, sql: &str, param: usize, value: &Value) -> Option<String> {
        if param == 2 && sql.starts_with("UPDATE backend_quota_stripes") {
            Some("(:client_id % 16)".to_owned())
        } else if *value == self.sample {
            Some(":key".to_owned())
        } else if self.four && *value == Value::Text(SOURCE.to_owned()) {
            Some("('b' || :bk::int)".to_owned())
        } else {
            None
        }
    }
}

/// The claim returns rows ordered by id; `\aset` keeps the last row's columns, so `:id` is
/// the largest claimed id and the completes target `:id − 99 … :id` (the claimed block when
/// claims do not interleave; otherwise neighbouring rows, at the same cost). Each complete is
/// a transaction whose statements name its row: the claim check (`… WHERE id = $1 AND
/// claimed_by = $2 AND claimed_at = $3 FOR UPDATE`, bound to the claim's own `:claimed_by` and
/// `:claimed_at`, which every row of one claim shares) and the delete.
struct ClaimBinder {
    claim: usize,
    /// For each statement, the complete it belongs to when it names a queue row by id.
    complete_of: Vec<Option<usize>>,
    completes: usize,
}

impl ClaimBinder {
    fn new(stmts: &[Stmt]) -> Result<Self, String> {
        let claim = stmts
            .iter()
            .position(|s| s.sql.contains("FOR UPDATE SKIP LOCKED"))
            .ok_or("claim statement not captured")?;
        let mut complete_of = vec![None; stmts.len()];
        let mut k = 0;
        for (i, st) in stmts.iter().enumerate().skip(claim + 1) {
            // The delete ends a complete; the claim check before it belongs to the same one.
            if st.sql.contains("DELETE FROM cleanup_queue WHERE id = $1") {
                complete_of[i] = Some(k);
                k += 1;
            } else if st.sql.contains("FROM cleanup_queue WHERE id = $1") {
                complete_of[i] = Some(k);
            }
        }
        if k == 0 {
            return Err("complete statement not captured".into());
        }
        Ok(ClaimBinder {
            claim,
            complete_of,
            completes: k,
        })
    }
}

impl Binder for ClaimBinder {
    fn prelude(&self) -> Vec<String> {
        Vec::new()
    }
    fn bind(&self, stmt: usize, sql: &str, param: usize, _value: &Value) -> Option<String> {
        let k = self.complete_of.get(stmt).copied().flatten()?;
        match param {
            0 => Some(format!(":c{k}")),
            1 if sql.contains("claimed_by = $2") => Some(":claimed_by".to_owned()),
            2 if sql.contains("claimed_at = $3") => Some(":claimed_at".to_owned()),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_logs_are_windowed_like_the_s3o_side() {
        // Three transactions: one ends inside the warm-up, two inside the window, one after.
        let log = "0 0 1000 0 100 1000\n0 1 500 0 100 600000\n1 0 700 0 101 200000\n\
                   1 1 100 0 103 0\n";
        let txs = parse_log(log).unwrap();
        assert_eq!(txs.len(), 4);
        assert_eq!(txs[0], (100_001_000, 1000));
        // t0 = 100.000000 s; window [100.5, 101.5].
        let m = window(&txs, Duration::from_millis(500), Duration::from_secs(1));
        assert_eq!(m.ops, 2);
        assert_eq!(
            m.sorted,
            vec![Duration::from_micros(500), Duration::from_micros(700)]
        );
        assert!((m.ops_per_sec() - 2.0).abs() < 1e-9);
        assert!(parse_log("0 0 x 0 1 2\n").is_err());
        assert_eq!(window(&[], Duration::ZERO, Duration::from_secs(1)).ops, 0);
    }

    #[test]
    fn the_reference_script_names_every_variable_it_uses() {
        for four in [false, true] {
            let s = reference_record(7 * BLOCK, four);
            assert!(s.text.contains("pg_advisory_xact_lock(hashtext(:key))"));
            assert!(
                s.text
                    .contains("bytes_used + orphan_bytes + :size <= bytes_limit")
            );
            assert!(!s.text.contains("ORDER BY"));
            assert_eq!(s.text.contains(":bk"), four);
            for (k, _) in &s.defines {
                assert!(s.text.contains(&format!(":{k}")) || four && k == "backend");
            }
        }
    }

    #[test]
    fn claim_binding_numbers_completes_not_statements() {
        let st = |sql: &str, params: Vec<Value>| Stmt {
            sql: sql.to_owned(),
            params,
        };
        let complete = |id: i64| {
            vec![
                st("BEGIN", vec![]),
                st(
                    "SELECT id FROM cleanup_queue WHERE id = $1 AND claimed_by = $2 \
                     AND claimed_at = $3 FOR UPDATE",
                    vec![
                        Value::Int(id),
                        Value::Text("me".into()),
                        Value::Text("t".into()),
                    ],
                ),
                st(
                    "DELETE FROM cleanup_queue WHERE id = $1",
                    vec![Value::Int(id)],
                ),
                st(
                    "UPDATE backend_quotas SET orphan_bytes = orphan_bytes - $2",
                    vec![Value::Text("b".into()), Value::Int(1)],
                ),
                st("COMMIT", vec![]),
            ]
        };
        let mut stmts = vec![st(
            "WITH picked AS (SELECT id FROM cleanup_queue FOR UPDATE SKIP LOCKED) SELECT 1",
            vec![Value::Int(100)],
        )];
        stmts.extend(complete(7));
        stmts.extend(complete(8));
        let b = ClaimBinder::new(&stmts).unwrap();
        assert_eq!(b.completes, 2);
        let lock = &stmts[2].sql;
        let delete = &stmts[3].sql;
        let lock2 = &stmts[7].sql;
        assert_eq!(b.bind(2, lock, 0, &Value::Int(7)).as_deref(), Some(":c0"));
        assert_eq!(
            b.bind(2, lock, 1, &Value::Null).as_deref(),
            Some(":claimed_by")
        );
        assert_eq!(
            b.bind(2, lock, 2, &Value::Null).as_deref(),
            Some(":claimed_at")
        );
        assert_eq!(b.bind(3, delete, 0, &Value::Int(7)).as_deref(), Some(":c0"));
        assert_eq!(b.bind(7, lock2, 0, &Value::Int(8)).as_deref(), Some(":c1"));
        assert_eq!(b.bind(4, &stmts[4].sql, 0, &Value::Null), None);
        assert_eq!(b.after(0), ["\\set c0 :id - 1", "\\set c1 :id - 0"]);
    }

    #[test]
    fn four_backend_binding_follows_the_client() {
        let b = KeyBinder {
            prelude: Vec::new(),
            sample: Value::Text("11".into()),
            four: true,
        };
        assert_eq!(
            b.bind(0, "", 0, &Value::Text("11".into())).as_deref(),
            Some(":key")
        );
        assert_eq!(
            b.bind(0, "", 1, &Value::Text(SOURCE.into())).as_deref(),
            Some("('b' || :bk::int)")
        );
        assert_eq!(b.bind(0, "", 2, &Value::Int(5)), None);
        assert!(b.prelude().iter().any(|l| l.contains(":client_id % 4")));
    }
}
