//! `conformance [--engine sqlite|postgres|all] [--jobs N] [--filter TEXT] [--list]`
//!
//! Runs every conformance case against each requested engine (a fresh store per case, a few
//! cases at a time, each in its own task so a panic is a failure, not a crash), prints a
//! case × engine matrix and totals, and exits non-zero on any failure. PostgreSQL comes from
//! `S3O_PG_URL`; without it its cases are skipped, or failed under `S3O_REQUIRE_PG=1`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use s3o_conformance::harness::{self, EngineKind, Outcome};
use s3o_conformance::{Case, cases};
use tokio::sync::Semaphore;

struct Args {
    engines: Vec<EngineKind>,
    jobs: usize,
    filter: Option<String>,
    list: bool,
}

const USAGE: &str =
    "usage: conformance [--engine sqlite|postgres|all] [--jobs N] [--filter TEXT] [--list]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        engines: EngineKind::ALL.to_vec(),
        jobs: 4,
        filter: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--engine" => {
                let v = value("--engine")?;
                args.engines = if v == "all" {
                    EngineKind::ALL.to_vec()
                } else {
                    vec![
                        EngineKind::parse(&v)
                            .ok_or_else(|| format!("unknown engine {v:?}\n{USAGE}"))?,
                    ]
                };
            }
            "--jobs" | "-j" => {
                let v = value("--jobs")?;
                args.jobs = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("bad --jobs {v:?}\n{USAGE}"))?;
            }
            "--filter" => args.filter = Some(value("--filter")?),
            "--list" => args.list = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let selected: Vec<Case> = cases()
        .into_iter()
        .filter(|c| args.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    if args.list {
        for c in &selected {
            println!("{}", c.name);
        }
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.jobs.clamp(2, 8))
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args, selected))
}

async fn run(args: Args, selected: Vec<Case>) -> ExitCode {
    harness::install_quiet_panic_hook();
    let mut results: BTreeMap<(usize, EngineKind), Outcome> = BTreeMap::new();
    for &engine in &args.engines {
        if let Some(why) = harness::unavailable(engine).await {
            let verdict = if engine == EngineKind::Postgres && harness::require_pg() {
                "FAIL (S3O_REQUIRE_PG=1)"
            } else {
                "skipping its cases"
            };
            eprintln!("SKIP {}: {why} — {verdict}", engine.name());
        }
        let gate = Arc::new(Semaphore::new(args.jobs));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, case) in selected.iter().copied().enumerate() {
            let gate = gate.clone();
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                (i, harness::run_case(engine, &case).await)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, outcome) = done.expect("case runner task");
            if let Outcome::Fail(msg) = &outcome {
                eprintln!("FAIL {} on {}: {msg}", selected[i].name, engine.name());
            }
            results.insert((i, engine), outcome);
        }
    }
    print_matrix(&args.engines, &selected, &results)
}

fn print_matrix(
    engines: &[EngineKind],
    selected: &[Case],
    results: &BTreeMap<(usize, EngineKind), Outcome>,
) -> ExitCode {
    let width = selected
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut header = format!("{:width$}", "case");
    for e in engines {
        header.push_str(&format!("  {:8}", e.name()));
    }
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    let mut totals: BTreeMap<EngineKind, (usize, usize, usize)> = BTreeMap::new();
    for (i, case) in selected.iter().enumerate() {
        let mut line = format!("{:width$}", case.name);
        for &e in engines {
            let t = totals.entry(e).or_default();
            let cell = match results.get(&(i, e)) {
                Some(Outcome::Pass) => {
                    t.0 += 1;
                    "pass"
                }
                Some(Outcome::Fail(_)) | None => {
                    t.1 += 1;
                    "FAIL"
                }
                Some(Outcome::Skip(_)) => {
                    t.2 += 1;
                    "skip"
                }
            };
            line.push_str(&format!("  {cell:8}"));
        }
        println!("{line}");
    }
    println!("{}", "-".repeat(header.len()));
    let mut failed = false;
    for e in engines {
        let (pass, fail, skip) = totals.get(e).copied().unwrap_or_default();
        failed |= fail > 0;
        println!(
            "{:>8}: {pass} pass, {fail} FAIL, {skip} skip (of {})",
            e.name(),
            selected.len()
        );
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|((i, e), o)| match o {
            Outcome::Fail(msg) => Some(format!("  {} on {}: {msg}", selected[*i].name, e.name())),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        println!("\nfailures:");
        for f in failures {
            println!("{f}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
