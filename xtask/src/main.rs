//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks, in CI's order: formatting, clippy with warnings denied,
//!   rustdoc with warnings denied (the facade also with its default features alone), every
//!   test of the workspace (the gateway's end-to-end tests included), s3o-pg without TLS, the
//!   conformance suite on both engines, `cargo package` of the library crates with a build of
//!   each packaged crate, and `e2e`. Exits non-zero on the first failure.
//! - `conformance [--engine sqlite|postgres|all]`: the conformance matrix.
//! - `bench [--quick] [--trials N] [--engine sqlite|postgres|all] [--only claims]
//!   [--claim-depth N]`: the benchmarks (see `s3o-bench`); `bench --gateway [--quick] [--trials N]`: the gateway against a direct S3 server, and
//!   its memory.
//! - `soak [--engine sqlite|postgres|all] [--cases N] [--seed S]`: the model-based test with
//!   many sequences (default 2000 per engine), in release mode.
//! - `e2e [--filter REGEX]...`: the s3s-e2e conformance cases against a running s3o-gateway
//!   (see [`mod@e2e`]).
//! - `s3-tests [--engine sqlite|postgres] [-k EXPR] [--encrypt]`: the public ceph/s3-tests suite against a fresh
//!   gateway, strict against `bench/s3-tests-expected-failures.txt` (see [`mod@s3tests`]);
//!   not part of `ci` yet.
//! - `crash [--engine sqlite|postgres|all] [--kills N]`: the crash drills with N kills per
//!   engine (default 200; `cargo test` runs 24).
//! - `kills [--engine sqlite|postgres|all] [--kills N] [--scope writes|complete|replication|
//!   drain|versioned|all]`: the gateway kill drills (`s3o-gateway serve` SIGKILLed under load,
//!   see `crates/s3o-gateway/tests/workers_kills`) with N kills per engine and drill (default
//!   200; `cargo test` runs 24 of the writes, drain and versioned drills). `all` (the default)
//!   runs `writes`, `drain` (whose kills also land in Complete and replication) and
//!   `versioned` (a versioned bucket, kills in Complete too), the drills that are ignored
//!   while the bugs they find are open included.
//!
//! Only the standard library: this crate must build fast and never be the reason CI is slow.

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

mod e2e;
mod s3tests;
use e2e::e2e;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r.to_vec()),
        None => ("help", Vec::new()),
    };
    let result = match cmd {
        "ci" => ci(),
        "conformance" => conformance(&rest),
        "bench" => bench(&rest),
        "soak" => soak(&rest),
        "e2e" => e2e(&rest),
        "crash" => crash(&rest),
        "kills" => kills(&rest),
        "s3-tests" => s3tests::s3_tests(&rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <ci | conformance [--engine sqlite|postgres|all] | \
bench [--quick] [--trials N] [--engine E] [--only claims] [--claim-depth N] | \
bench --gateway [--quick] [--trials N] | soak [--engine E] [--cases N] [--seed S] | e2e [--filter REGEX]... | crash [--engine E] [--kills N] | \
kills [--engine E] [--kills N] [--scope writes|complete|replication|drain|versioned|all] | s3-tests [--engine sqlite|postgres] [-k EXPR] [--encrypt]>";

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(step: &str, mut cmd: Command) -> Result<(), String> {
    println!("\n==> {step}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: could not start: {e}"))?;
    println!(
        "<== {step}: {} in {:.1}s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn engine_arg(rest: &[String]) -> Result<String, String> {
    let mut engine = "all".to_string();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--engine" => engine = it.next().cloned().ok_or("--engine needs a value")?,
            s if s.starts_with("--engine=") => engine = s["--engine=".len()..].to_string(),
            _ => {}
        }
    }
    match engine.as_str() {
        "sqlite" | "postgres" | "all" => Ok(engine),
        other => Err(format!(
            "unknown engine `{other}` (expected sqlite, postgres or all)"
        )),
    }
}

fn ci() -> Result<(), String> {
    if env::var("S3O_REQUIRE_PG").as_deref() == Ok("1") && env::var("S3O_PG_URL").is_err() {
        return Err(
            "S3O_REQUIRE_PG=1 but S3O_PG_URL is not set: point it at a PostgreSQL \
                    server (e.g. postgres://postgres@127.0.0.1:5432/test)"
                .into(),
        );
    }
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -D warnings", clippy)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc (warnings denied)", doc)?;

    // The workspace build unifies features; a user of the facade gets its defaults alone.
    let mut facade_doc = cargo();
    facade_doc
        .args(["doc", "-p", "s3o-store", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc -p s3o-store, default features", facade_doc)?;

    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run("cargo test --workspace", test)?;

    // Feature unification hides a crate that only builds with TLS; check s3o-pg without it.
    let mut no_tls = cargo();
    no_tls.args([
        "clippy",
        "-p",
        "s3o-pg",
        "--no-default-features",
        "--lib",
        "--tests",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -p s3o-pg --no-default-features", no_tls)?;
    let mut no_tls_test = cargo();
    no_tls_test.args(["test", "-p", "s3o-pg", "--no-default-features", "--lib"]);
    run(
        "cargo test -p s3o-pg --no-default-features --lib",
        no_tls_test,
    )?;

    conformance(&["--engine".into(), "all".into()])?;

    package()?;

    // The gateway against s3s's own end-to-end suite (installed outside the workspace).
    e2e(&[])
}

/// The library crates, in dependency order.
const PUBLISHED: [&str; 4] = ["s3o-core", "s3o-sqlite", "s3o-pg", "s3o-store"];

/// `cargo package` of every library crate, then a build of each packaged crate on its own
/// (cargo resolves their path dependencies on each other through a temporary local registry),
/// so a file left outside a crate folder, or a feature only the workspace turned on, fails here.
fn package() -> Result<(), String> {
    let mut cmd = cargo();
    cmd.arg("package");
    for krate in PUBLISHED {
        cmd.args(["-p", krate]);
    }
    // CI runs on the tree as it is; publishing itself refuses a dirty tree.
    cmd.arg("--allow-dirty");
    run("cargo package (library crates, verified)", cmd)
}

fn conformance(rest: &[String]) -> Result<(), String> {
    let engine = engine_arg(rest)?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "s3o-conformance",
        "--bin",
        "conformance",
        "--",
        "--engine",
        &engine,
    ]);
    run(&format!("conformance matrix ({engine})"), cmd)
}

fn flag(rest: &[String], name: &str) -> Option<String> {
    rest.iter()
        .position(|a| a == name)
        .and_then(|i| rest.get(i + 1).cloned())
}

fn soak(rest: &[String]) -> Result<(), String> {
    let engine = engine_arg(rest)?;
    let cases = flag(rest, "--cases").unwrap_or_else(|| "2000".into());
    cases
        .parse::<u32>()
        .map_err(|_| format!("--cases takes a number, got {cases}"))?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "s3o-reliability",
        "--test",
        "model_based",
        "--",
    ]);
    if engine != "all" {
        cmd.arg(engine.as_str());
    }
    cmd.args(["--nocapture", "--test-threads", "1"])
        .env("S3O_MODEL_CASES", &cases);
    if let Some(seed) = flag(rest, "--seed") {
        cmd.env("S3O_MODEL_SEED", seed);
    }
    run(
        &format!("model-based soak ({engine}, {cases} sequences per engine)"),
        cmd,
    )
}

fn crash(rest: &[String]) -> Result<(), String> {
    let engine = engine_arg(rest)?;
    let kills = flag(rest, "--kills").unwrap_or_else(|| "200".into());
    kills
        .parse::<u32>()
        .map_err(|_| format!("--kills takes a number, got {kills}"))?;
    let mut cmd = cargo();
    cmd.args(["test", "-p", "s3o-reliability", "--test", "crash", "--"]);
    if engine != "all" {
        cmd.arg(engine.as_str());
    }
    cmd.args(["--nocapture", "--test-threads", "1"])
        .env("S3O_CRASH_KILLS", &kills);
    run(
        &format!("crash drills ({engine}, {kills} kills per engine)"),
        cmd,
    )
}

/// The kill drills of `crates/s3o-gateway/tests/workers_drills.rs`, by scope: test modules
/// whose `sqlite` and `postgres` tests run one engine each.
const KILL_DRILLS: [(&str, &str); 5] = [
    ("writes", "sigkill_during_writes_loses_nothing_acknowledged"),
    ("complete", "sigkill_during_complete"),
    ("replication", "sigkill_during_replication"),
    ("drain", "sigkill_during_drain"),
    ("versioned", "sigkill_during_versioned_writes"),
];

fn kills(rest: &[String]) -> Result<(), String> {
    let engine = engine_arg(rest)?;
    let kills = flag(rest, "--kills").unwrap_or_else(|| "200".into());
    kills
        .parse::<u32>()
        .map_err(|_| format!("--kills takes a number, got {kills}"))?;
    let scope = flag(rest, "--scope").unwrap_or_else(|| "all".into());
    let drills: Vec<&str> = KILL_DRILLS
        .iter()
        // The drain drill's kills also land in Complete and in replication.
        .filter(|(s, _)| {
            *s == scope || (scope == "all" && matches!(*s, "writes" | "drain" | "versioned"))
        })
        .map(|(_, m)| *m)
        .collect();
    if drills.is_empty() {
        return Err(format!(
            "unknown scope `{scope}` (expected writes, complete, replication, drain, versioned or all)"
        ));
    }
    // A PostgreSQL run without a server would skip its drills and still pass.
    if engine != "sqlite" && env::var("S3O_PG_URL").is_err() {
        return Err(format!(
            "--engine {engine} needs S3O_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test); \
             use --engine sqlite without PostgreSQL"
        ));
    }
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "s3o-gateway",
        "--test",
        "workers_drills",
        "--",
    ]);
    for m in &drills {
        match engine.as_str() {
            "all" => cmd.arg(format!("{m}::")),
            e => cmd.arg(format!("{m}::{e}")),
        };
    }
    cmd.args(["--include-ignored", "--nocapture", "--test-threads", "1"])
        .env("S3O_KILL_DRILL_KILLS", &kills);
    if engine != "sqlite" {
        cmd.env("S3O_REQUIRE_PG", "1");
    }
    run(
        &format!("gateway kill drills ({scope}; {engine}, {kills} kills per engine and drill)"),
        cmd,
    )
}

fn bench(rest: &[String]) -> Result<(), String> {
    if rest.iter().any(|a| a == "--gateway") {
        // The gateway against a direct s3s-fs server (crates/s3o-gateway/benches/gateway.rs).
        let mut cmd = cargo();
        cmd.args(["bench", "-p", "s3o-gateway", "--bench", "gateway", "--"]);
        cmd.args(rest.iter().filter(|a| *a != "--gateway"));
        return run("gateway benchmark", cmd);
    }
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "s3o-bench", "--"]);
    cmd.args(rest);
    run("benchmarks", cmd)
}
