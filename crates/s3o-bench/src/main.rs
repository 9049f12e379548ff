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
//! - **The reference's own statements** for `record_object` of new keys (PostgreSQL, one
//!   backend and four), as a second pgbench baseline.
//!
//! Ratios mean something only if the sides are measured alike: each side of a trial starts
//! from its own identically seeded state (a fresh schema, or a copy of one template file),
//! vacuumed and analyzed alike, with the same warm-up and window; sides alternate within a
//! trial, every cell runs `--trials` (default 3) trials, and the report gives the median
//! per-trial ratio with its min–max.
//!
//! Results are printed and written to `bench/results/latest.md` and `latest.csv`, and the
//! targets table replaces the marked block of the README; generated pgbench scripts go to
//! `bench/results/pgbench/`. Ratios are the claim; absolute numbers vary by machine.
//!
//! ```text
//! cargo xtask bench [--quick] [--trials N] [--engine sqlite|postgres|all]
//!                   [--only claims] [--claim-depth N]
//! ```
//!
//! `--only claims` runs just the claim-cost comparison (1k queued against `--claim-depth`,
//! default 100k with `--quick`, 1M without) and prints it; it writes results only with
//! `--out`, so a partial run never replaces `bench/results/latest.md` or the README block.
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

use report::{Figure, Row, Target};
use stats::Spread;

/// Run settings shared by both engines.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// `--quick`.
    pub(crate) quick: bool,
    /// Unmeasured warm-up per run.
    pub(crate) warmup: Duration,
    /// Measured window per run.
    pub(crate) duration: Duration,
    /// Stored-object counts for the scaling reads.
    pub(crate) sizes: Vec<u64>,
    /// Interleaved trials per cell.
    pub(crate) trials: usize,
    /// The large queue depth of the claim-cost comparison (against 1k).
    pub(crate) claim_depth: u64,
    /// Where results go.
    pub(crate) out_dir: PathBuf,
}

impl Settings {
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

const USAGE: &str = "usage: s3o-bench [--quick] [--trials N] \
                     [--engine sqlite|postgres|all] [--only claims] [--claim-depth N] \
                     [--out DIR]";

/// Parsed command line.
struct Args {
    quick: bool,
    trials: usize,
    engines: Engines,
    /// `--only claims`: just the claim-cost comparison.
    only_claims: bool,
    /// `--claim-depth N`: the large queue depth of the claim-cost comparison.
    claim_depth: Option<u64>,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        trials: 3,
        engines: Engines::All,
        only_claims: false,
        claim_depth: None,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--trials" => {
                a.trials = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("--trials needs a positive number\n{USAGE}"))?;
            }
            "--engine" => {
                a.engines = match args.next().as_deref() {
                    Some("sqlite") => Engines::Sqlite,
                    Some("postgres") => Engines::Postgres,
                    Some("all") => Engines::All,
                    other => return Err(format!("bad --engine {other:?}\n{USAGE}")),
                }
            }
            "--only" => match args.next().as_deref() {
                Some("claims") => a.only_claims = true,
                other => return Err(format!("bad --only {other:?}\n{USAGE}")),
            },
            "--claim-depth" => {
                a.claim_depth = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n| n > 1000)
                        .ok_or_else(|| format!("--claim-depth needs a number > 1000\n{USAGE}"))?,
                );
            }
            "--out" => a.out = args.next().map(PathBuf::from),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The repository root (where `README.md` and `bench/` live).
fn repo_root() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.ancestors().nth(2).map(PathBuf::from);
    root.unwrap_or(crate_dir)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    capture::install();
    // The README's block is regenerated only by full runs that write the repository's results.
    let readme = (args.out.is_none() && !args.only_claims).then(|| repo_root().join("README.md"));
    let write_results = args.out.is_some() || !args.only_claims;
    let out_dir = args
        .out
        .unwrap_or_else(|| repo_root().join("bench").join("results"));
    let settings = if args.quick {
        Settings {
            quick: true,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(1),
            sizes: vec![10_000, 100_000],
            trials: args.trials,
            claim_depth: args.claim_depth.unwrap_or(100_000),
            out_dir,
        }
    } else {
        Settings {
            quick: false,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(3),
            sizes: vec![10_000, 100_000, 1_000_000],
            trials: args.trials,
            claim_depth: args.claim_depth.unwrap_or(1_000_000),
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
    let what = if args.only_claims {
        Only::Claims
    } else {
        Only::All
    };
    match rt.block_on(run(&settings, args.engines, what, write_results, readme)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3o-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which cells a run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    /// Every cell.
    All,
    /// Only the claim-cost comparison.
    Claims,
}

async fn run(
    settings: &Settings,
    engines: Engines,
    what: Only,
    write_results: bool,
    readme: Option<PathBuf>,
) -> Result<(), String> {
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut figures: Vec<Figure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    notes.push(
        "default store options (SQLite: inline point statements; PostgreSQL: fast recycling)."
            .to_owned(),
    );
    if settings.quick {
        notes.push(format!(
            "--quick: {} s windows, stores up to {} objects, claims at up to {} queued (run \
             without --quick for the 1M points).",
            settings.duration.as_secs_f64(),
            size_label(*settings.sizes.last().unwrap_or(&0)),
            size_label(settings.claim_depth)
        ));
    }
    if matches!(engines, Engines::Postgres | Engines::All) {
        let url = std::env::var("S3O_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        println!("== postgres ({})", url.split('@').next_back().unwrap_or(""));
        match pg::PgRun::connect(&url, settings).await {
            Ok(mut p) => {
                let r = async {
                    if what == Only::Claims {
                        return p.claim_scaling().await;
                    }
                    p.writes().await?;
                    p.reads().await
                }
                .await;
                p.cleanup().await;
                rows.append(&mut p.rows);
                figures.append(&mut p.figures);
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
            if what == Only::Claims {
                return s.claim_scaling().await;
            }
            s.writes().await?;
            s.reads().await
        }
        .await;
        rows.append(&mut s.rows);
        figures.append(&mut s.figures);
        notes.append(&mut s.notes);
        r?;
    }
    let targets = targets(&rows, &figures);
    let md = render(
        settings,
        &rows,
        &figures,
        &targets,
        &notes,
        started.elapsed(),
    );
    println!("\n{md}");
    if !write_results {
        println!("--only: results not written (pass --out DIR to keep them)");
        return Ok(());
    }
    std::fs::create_dir_all(&settings.out_dir).map_err(|e| e.to_string())?;
    let md_path = settings.out_dir.join("latest.md");
    let csv_path = settings.out_dir.join("latest.csv");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    std::fs::write(&csv_path, report::csv(&rows))
        .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    println!("wrote {} and {}", md_path.display(), csv_path.display());
    if let Some(path) = readme {
        let block = readme_block(settings, &targets);
        let old = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        match report::splice_readme(&old, &block) {
            Some(new) => {
                std::fs::write(&path, new).map_err(|e| format!("{}: {e}", path.display()))?;
                println!("regenerated the benchmark block of {}", path.display());
            }
            None => eprintln!(
                "warning: {} has no `{}` … `{}` block; not updated",
                path.display(),
                report::README_BEGIN,
                report::README_END
            ),
        }
    }
    Ok(())
}

/// The row of `engine`, operation starting with `op`, concurrency `conc`, baseline `vs`.
fn find<'r>(rows: &'r [Row], engine: &str, op: &str, conc: &str, vs: &str) -> Option<&'r Row> {
    rows.iter().find(|r| {
        r.engine == engine && r.op.starts_with(op) && r.conc == conc && r.vs.starts_with(vs)
    })
}

/// The issue's targets, judged on this run.
fn targets(rows: &[Row], figures: &[Figure]) -> Vec<Target> {
    let mut out = Vec::new();
    let ratio = |r: Option<&Row>| r.map_or(Spread::of(&[]), |r| r.ratio);
    let mut t = |what: String, got: Spread, bar: f64, at_least: bool| {
        out.push(Target {
            what,
            got,
            bar,
            at_least,
        });
    };
    let one = workload::Op::RecordNew.name();
    let four = workload::Op::RecordNew4.name();
    t(
        "PostgreSQL `record_object` (new keys), 8 clients, one backend ÷ reference SQL (floor 1.0)"
            .into(),
        ratio(rows.iter().find(|r| {
            r.engine == "postgres" && r.op == one && r.conc == "8" && r.vs.starts_with("reference")
        })),
        1.5,
        true,
    );
    t(
        "PostgreSQL `record_object` (new keys), 8 clients, four backends ÷ reference SQL".into(),
        ratio(find(rows, "postgres", four, "8", "reference")),
        1.0,
        true,
    );
    for c in ["1", "8"] {
        t(
            format!("PostgreSQL claim 100 + complete ÷ same SQL, {c} client(s)"),
            ratio(find(rows, "postgres", "claim_pending_cleanups", c, "same")),
            1.0,
            true,
        );
    }
    for engine in ["postgres", "sqlite"] {
        if let Some(f) = figures
            .iter()
            .find(|f| f.engine == engine && f.what.starts_with("claim"))
        {
            t(format!("{engine}: {}", f.what), f.spread, 1.5, false);
        }
    }
    t(
        "SQLite `record_object` (new key) ÷ bare loop on a fresh file".into(),
        ratio(find(rows, "sqlite", one, "1w", "bare")),
        0.8,
        true,
    );
    t(
        "SQLite point reads while writing, 2 readers ÷ 1".into(),
        ratio(find(
            rows,
            "sqlite",
            workload::Read::GetAll.name(),
            "1w+2r",
            "",
        )),
        1.5,
        true,
    );
    let first = rows.iter().find(|r| {
        r.engine == "postgres" && r.conc == "1" && r.op.starts_with(workload::Read::GetAll.name())
    });
    t(
        format!(
            "PostgreSQL `get_all_object_locations`, 1 client ÷ pgbench{}",
            first.map_or(String::new(), |r| format!(
                " ({})",
                r.op.rsplit(' ').next().unwrap_or("")
            ))
        ),
        ratio(first),
        0.9,
        true,
    );
    for engine in ["postgres", "sqlite"] {
        if let Some(f) = figures
            .iter()
            .find(|f| f.engine == engine && f.what.starts_with("list page"))
        {
            t(format!("{engine}: {}", f.what), f.spread, 1.3, false);
        }
    }
    out
}

/// The flags of this run that change what is measured, as typed after `cargo xtask bench`.
fn flags(settings: &Settings) -> String {
    let mut f = String::new();
    if settings.quick {
        f.push_str(" --quick");
    }
    let default_depth = if settings.quick { 100_000 } else { 1_000_000 };
    if settings.claim_depth != default_depth {
        let _ = write!(f, " --claim-depth {}", settings.claim_depth);
    }
    f
}

/// The README's generated block: how the figures were made, and the targets.
fn readme_block(settings: &Settings, targets: &[Target]) -> String {
    format!(
        "Generated by `cargo xtask bench{}` ({} interleaved trials per cell; medians with \
         their min–max; full table in [`bench/results/latest.md`](bench/results/latest.md)):\n\n{}",
        flags(settings),
        settings.trials,
        report::targets_markdown(targets)
    )
}

fn render(
    settings: &Settings,
    rows: &[Row],
    figures: &[Figure],
    targets: &[Target],
    notes: &[String],
    took: Duration,
) -> String {
    let mut s = String::from("# s3o benchmarks\n\n");
    let _ = writeln!(
        s,
        "Generated by `cargo xtask bench{}` in {:.0} s on {} CPU(s): {} interleaved trials \
         per cell, {:.1} s warm-up and {:.1} s measured window for every side. Ratios = s3o \
         ops/s ÷ baseline ops/s of the same trial; the table gives their median and min–max. \
         Latencies are s3o's. Ratios are the claim; absolute numbers vary by machine.\n",
        flags(settings),
        took.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, usize::from),
        settings.trials,
        settings.warmup.as_secs_f64(),
        settings.duration.as_secs_f64()
    );
    s.push_str("## Targets\n\n");
    s.push_str(&report::targets_markdown(targets));
    s.push_str("\n## Results\n\n");
    s.push_str(&report::markdown(rows));
    s.push_str("\n## Scaling\n\n");
    s.push_str(&report::figures_markdown(figures));
    s.push_str(
        "\n## How to read this\n\n\
         - Baselines: `same SQL (pgbench)` is `pgbench -M prepared` running the statements s3o \
         sent for a captured sample operation, with the same client count; `reference SQL \
         (pgbench)` runs the reference's own `record_object` statements (key lock on \
         `hashtext(key)`, copies `FOR UPDATE`, insert, guarded plain quota `UPDATE`); `bare \
         rusqlite loop` replays the captured SQLite statements on one connection without pool \
         or `spawn_blocking`.\n\
         - Fairness: every side of a write trial starts from its own identically seeded state \
         (PostgreSQL: a fresh schema, migrated, seeded with the same keys and `VACUUM \
         ANALYZE`d; SQLite: a copy of one seeded, vacuumed, analyzed and checkpointed \
         template file). Reads run on one such state per side and store size. Every side \
         gets the same warm-up and window (pgbench's transactions are windowed from its \
         per-transaction log), and sides alternate within each trial. Quota limits are finite, \
         so every guard is evaluated.\n\
         - Concurrency: PostgreSQL client count (s3o tasks sharing one pool; pgbench `-c`). \
         SQLite `1w` = one writer; `1` = one reader; `1w+Nr` = N reader tasks while one task \
         records new keys; the `1w+2r` row's baseline is the `1w+1r` reader throughput of the \
         same trial, so its ratio is the reader scaling.\n\
         - Scaling: the list-page figure is the 1-client page latency at the largest store ÷ at \
         10k (per trial); the claim figure is the p50 latency of claiming 100 rows with the \
         large depth queued ÷ with 1k queued, each claim released (untimed) so the depth stays.\n\
         - SQLite checkpoints: with default options s3o's writer runs its WAL checkpoints on \
         the blocking pool (every 200 writes, off the commit path), while the bare loop's \
         connection checkpoints inside its commits (SQLite's default, every 1000 pages); on a \
         multi-core machine part of s3o's write ratio comes from that overlap.\n\
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
