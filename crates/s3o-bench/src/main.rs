//! # s3o-bench
//!
//! What does s3o cost on top of the database it runs on? Each headline operation runs through
//! the store and, in the same invocation, as a baseline running exactly the SQL the store
//! sent for it:
//!
//! - **PostgreSQL**: `pgbench -M prepared -n` against the same server with the same client
//!   count, running a custom script generated from the statements captured from the engine
//!   (target `s3o::sql` trace events: statement text plus parameters), so the two cannot drift.
//! - **SQLite**: a bare rusqlite loop replaying the captured statements (`BEGIN IMMEDIATE` …
//!   `COMMIT` as the engine sent them) on one connection, without pool or `spawn_blocking`.
//!
//! Results (ops/s, p50, p99, baseline ops/s, ratio) are printed and written to
//! `bench/results/latest.md` and `bench/results/latest.csv`; generated pgbench scripts go to
//! `bench/results/pgbench/`. Ratios are the claim; absolute numbers vary by machine.
//!
//! ```text
//! cargo xtask bench [--quick] [--engine sqlite|postgres|all]
//! ```
//!
//! The PostgreSQL server is `S3O_PG_URL`, else `postgres://postgres@127.0.0.1:5432/test`;
//! every run uses fresh schemas (dropped afterwards) and temporary SQLite files.

mod capture;
mod harness;
mod pg;
mod report;
mod script;
mod sqlite;
mod stats;
mod values;
mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::Row;

/// Run settings shared by both engines.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// `--quick`.
    pub(crate) quick: bool,
    /// `--fast-paths`: open stores with `SqliteOptions::inline_point_statements` and
    /// `PgOptions::fast_recycling` on.
    pub(crate) fast_paths: bool,
    /// Unmeasured warm-up per run.
    pub(crate) warmup: Duration,
    /// Measured window per run.
    pub(crate) duration: Duration,
    /// Stored-object counts for the scaling reads.
    pub(crate) sizes: Vec<u64>,
    /// Where results go.
    pub(crate) out_dir: PathBuf,
}

impl Settings {
    /// pgbench's `-T` (whole seconds).
    pub(crate) fn pgbench_secs(&self) -> u64 {
        self.duration.as_secs().max(1)
    }

    /// Settings for an operation that takes many commits (claim + 100 completions): a longer
    /// window and a warm-up of at least one operation, so several complete inside it.
    pub(crate) fn long(&self) -> Settings {
        let (warmup, duration) = if self.quick {
            (Duration::from_millis(500), Duration::from_secs(2))
        } else {
            (
                self.warmup.max(Duration::from_secs(1)),
                (self.duration * 2).max(Duration::from_secs(4)),
            )
        };
        Settings {
            warmup,
            duration,
            ..self.clone()
        }
    }
}

/// `10k`, `100k`, `1M`.
pub(crate) fn size_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Engines {
    Sqlite,
    Postgres,
    All,
}

const USAGE: &str =
    "usage: s3o-bench [--quick] [--fast-paths] [--engine sqlite|postgres|all] [--out DIR]";

fn parse_args() -> Result<(bool, bool, Engines, Option<PathBuf>), String> {
    let mut quick = false;
    let mut fast_paths = false;
    let mut engines = Engines::All;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--fast-paths" => fast_paths = true,
            "--engine" => {
                engines = match args.next().as_deref() {
                    Some("sqlite") => Engines::Sqlite,
                    Some("postgres") => Engines::Postgres,
                    Some("all") => Engines::All,
                    other => return Err(format!("bad --engine {other:?}\n{USAGE}")),
                }
            }
            "--out" => out = args.next().map(PathBuf::from),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok((quick, fast_paths, engines, out))
}

fn main() -> ExitCode {
    let (quick, fast_paths, engines, out) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    capture::install();
    let out_dir = out.unwrap_or_else(|| {
        let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = crate_dir.ancestors().nth(2).map(PathBuf::from);
        root.unwrap_or(crate_dir).join("bench").join("results")
    });
    let settings = if quick {
        Settings {
            quick,
            fast_paths,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(1),
            sizes: vec![10_000, 100_000],
            out_dir,
        }
    } else {
        Settings {
            quick,
            fast_paths,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            sizes: vec![10_000, 100_000, 1_000_000],
            out_dir,
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&settings, engines)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3o-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: &Settings, engines: Engines) -> Result<(), String> {
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    notes.push(if settings.fast_paths {
        "--fast-paths: stores opened with SqliteOptions::inline_point_statements and \
         PgOptions::fast_recycling on (both off by default)."
            .to_owned()
    } else {
        "default store options (every SQLite call on the blocking pool, PostgreSQL connections \
         cleaned on return); --fast-paths measures the opt-in options."
            .to_owned()
    });
    if settings.quick {
        notes.push(format!(
            "--quick: {} s windows, stores up to {} objects (the 1M scaling point is skipped; \
             run without --quick for it).",
            settings.duration.as_secs_f64(),
            size_label(*settings.sizes.last().unwrap_or(&0))
        ));
    }
    if matches!(engines, Engines::Postgres | Engines::All) {
        let url = std::env::var("S3O_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        println!("== postgres ({})", url.split('@').next_back().unwrap_or(""));
        match pg::PgRun::connect(&url, settings).await {
            Ok(mut p) => {
                let r = async {
                    p.writes().await?;
                    p.reads().await
                }
                .await;
                rows.append(&mut p.rows);
                notes.append(&mut p.notes);
                r?;
            }
            Err(e) if engines == Engines::All => {
                notes.push(format!("postgres skipped: {e}"));
                eprintln!("postgres skipped: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    if matches!(engines, Engines::Sqlite | Engines::All) {
        println!("== sqlite");
        let mut s = sqlite::SqliteRun::new(settings)?;
        let r = async {
            s.writes().await?;
            s.reads().await
        }
        .await;
        rows.append(&mut s.rows);
        notes.append(&mut s.notes);
        r?;
    }
    let targets = targets(&rows);
    let md = render(settings, &rows, &targets, &notes, started.elapsed());
    println!("\n{md}");
    std::fs::create_dir_all(&settings.out_dir).map_err(|e| e.to_string())?;
    let md_path = settings.out_dir.join("latest.md");
    let csv_path = settings.out_dir.join("latest.csv");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    std::fs::write(&csv_path, report::csv(&rows))
        .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    println!("wrote {} and {}", md_path.display(), csv_path.display());
    Ok(())
}

fn find<'r>(rows: &'r [Row], engine: &str, op_prefix: &str, conc: &str) -> Option<&'r Row> {
    rows.iter()
        .find(|r| r.engine == engine && r.op.starts_with(op_prefix) && r.conc == conc)
}

/// One line per target: the figure, the bar, met or missed.
fn targets(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: String, v: Option<f64>, bar: f64, at_least: bool| {
        let line = match v {
            Some(v) if v.is_finite() => {
                let met = if at_least { v >= bar } else { v <= bar };
                format!(
                    "{} {what}: {v:.2} (target {} {bar})",
                    if met { "MET   " } else { "MISSED" },
                    if at_least { "≥" } else { "≤" }
                )
            }
            _ => format!("n/a    {what}: not measured"),
        };
        out.push(line);
    };
    let pg_record = workload::Op::RecordNew.name();
    check(
        "postgres record_object (new key) ÷ pgbench, 8 clients".into(),
        find(rows, "postgres", pg_record, "8").map(Row::ratio),
        0.85,
        true,
    );
    for c in ["1", "8"] {
        check(
            format!("postgres claim + complete ÷ pgbench, {c} client(s)"),
            find(rows, "postgres", "claim_pending_cleanups", c).map(Row::ratio),
            0.8,
            true,
        );
    }
    check(
        "sqlite record_object (new key) ÷ bare rusqlite loop".into(),
        find(rows, "sqlite", pg_record, "1w").map(Row::ratio),
        0.6,
        true,
    );
    for read in [workload::Read::GetAll, workload::Read::ListPage] {
        let two = rows
            .iter()
            .find(|r| r.engine == "sqlite" && r.conc == "1w+2r" && r.op.starts_with(read.name()));
        check(
            format!(
                "sqlite {} reader throughput while writing, 2 readers ÷ 1",
                read.name()
            ),
            two.map(Row::ratio),
            1.5,
            true,
        );
    }
    for engine in ["postgres", "sqlite"] {
        let pages: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                r.engine == engine
                    && r.conc == "1"
                    && r.op.starts_with(workload::Read::ListPage.name())
                    && !r.op.contains("writing")
            })
            .collect();
        if let (Some(first), Some(last)) = (pages.first(), pages.last())
            && pages.len() > 1
        {
            check(
                format!(
                    "{engine} list page latency at {} ÷ at {} (mean, 1/ops)",
                    last.op.rsplit('@').next().unwrap_or("?"),
                    first.op.rsplit('@').next().unwrap_or("?")
                ),
                Some(first.ops / last.ops),
                1.5,
                false,
            );
        }
    }
    out
}

fn render(
    settings: &Settings,
    rows: &[Row],
    targets: &[String],
    notes: &[String],
    took: Duration,
) -> String {
    let mut s = String::from("# s3o benchmarks\n\n");
    let _ = writeln!(
        s,
        "Generated by `cargo xtask bench{}` in {:.0} s on {} CPU(s). Ratios = s3o ops/s ÷ \
         baseline ops/s (same SQL: `pgbench -M prepared` for PostgreSQL with the same client \
         count, a bare rusqlite loop on one connection for SQLite). Latencies are s3o's. \
         Ratios are the claim; absolute numbers vary by machine.\n",
        if settings.quick { " --quick" } else { "" },
        took.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    s.push_str(&report::markdown(rows));
    s.push_str("\n## Targets\n\n");
    for t in targets {
        let _ = writeln!(s, "- {t}");
    }
    s.push_str(
        "\n## How to read this\n\n\
         - Concurrency: PostgreSQL client count (s3o tasks sharing one pool; pgbench `-c`). \
         SQLite `1w` = one writer; `1` = one reader; `1w+Nr` = N reader tasks while one task \
         records new keys — for the `1w+2r` rows the baseline column holds the `1w+1r` reader \
         throughput, so the ratio is the reader scaling.\n\
         - Every write run gets fresh keys and freshly seeded rows (copies to delete, replicate \
         or move, intents to promote, due cleanup rows), identical for s3o and the baseline.\n\
         - Scripts: `bench/results/pgbench/*.sql` are the generated pgbench scripts (the \
         captured statements with `$n` replaced by pgbench variables; `NULL` parameters \
         inlined, since pgbench variables cannot carry NULL).\n\
         - claim + complete: the claim and each completion are autocommit statements in s3o, \
         so the script has no BEGIN/COMMIT either. pgbench keeps only the last claimed row \
         (`\\aset`), so its completions target `:id − 99 … :id`.\n",
    );
    if !notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels() {
        assert_eq!(size_label(10_000), "10k");
        assert_eq!(size_label(1_000_000), "1M");
        assert_eq!(size_label(1500), "1500");
    }
}
