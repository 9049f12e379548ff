//! `cargo xtask e2e`: the s3s-e2e conformance cases (s3s's own end-to-end suite, an AWS SDK
//! client) against a running s3o-gateway.
//!
//! s3s-e2e 0.14.1 is installed outside the workspace (`cargo install … --locked` into
//! `$CARGO_HOME/bin`) when it is missing, so aws-sdk-s3 never enters the workspace graph. The
//! gateway is the workspace's debug binary, started with a demo-like configuration (SQLite
//! ledger, two local-directory backends) on a free port in a fresh temp dir, with every bucket
//! the suite creates configured as a virtual bucket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs};

use crate::{cargo, run};

const S3S_E2E_VERSION: &str = "0.14.1";
const ACCESS_KEY: &str = "AKEXAMPLES3S";
const SECRET_KEY: &str = "SKEXAMPLES3S";

/// The cases run by default: the Basic and Advanced cases the gateway serves (every case
/// but those in [`LEFT_OUT`]).
const DEFAULT_FILTERS: [&str; 3] = [
    "^Basic/(Essential|Copy)/",
    "^Basic/Put/test_put_object_(tiny|with_metadata|with_non_ascii_metadata|larger|with_content_checksums)$",
    "^Advanced/(Multipart|ListPagination|PresignedUrl)/",
];

/// The s3s-e2e 0.14.1 cases the default run leaves out, and why (printed with the counts).
const LEFT_OUT: [(&str, &str); 3] = [
    (
        "Basic/Put/test_put_object_with_checksum_algorithm",
        "GetObject with checksum mode does not return the stored x-amz-checksum-* value",
    ),
    (
        "Advanced/STS/test_assume_role",
        "needs an STS AssumeRole endpoint, which a gateway does not have",
    ),
    (
        "Advanced/Tagging/test_object_tagging",
        "object tagging is not a gateway operation (NotImplemented)",
    ),
];

/// Every bucket the s3s-e2e 0.14.1 fixtures create and delete (`src/basic.rs`,
/// `src/advanced.rs`); the gateway only serves configured buckets.
const SUITE_BUCKETS: [&str; 12] = [
    "test-list-buckets-1",
    "test-list-buckets-2",
    "test-list-objects",
    "test-get-object",
    "test-delete-object",
    "test-head-operations",
    "test-put",
    "test-copy",
    "test-multipart",
    "test-tagging",
    "test-list-pagination",
    "test-presigned-url",
];

/// Runs s3s-e2e against a fresh gateway; fails when a case fails, when the suite cannot be
/// installed, or when the gateway does not come up.
pub(crate) fn e2e(rest: &[String]) -> Result<(), String> {
    let mut filters: Vec<String> = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--filter" => filters.push(it.next().cloned().ok_or("--filter needs a regex")?),
            other => return Err(format!("e2e: unknown argument `{other}`")),
        }
    }
    let defaults = filters.is_empty();
    if defaults {
        filters = DEFAULT_FILTERS.iter().map(|f| (*f).to_owned()).collect();
    }
    let suite = s3s_e2e_binary()?;

    let mut build = cargo();
    build.args(["build", "-p", "s3o-gateway", "--bin", "s3o-gateway"]);
    run("build s3o-gateway", build)?;
    let exe = target_dir().join("debug").join("s3o-gateway");

    let dir = env::temp_dir().join(format!("s3o-xtask-e2e-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("e2e: create {}: {e}", dir.display()))?;
    let result = run_suite(&suite, &exe, &dir, &filters, defaults);
    if result.is_ok() {
        let _ = fs::remove_dir_all(&dir);
    } else {
        eprintln!("e2e: gateway log and report kept in {}", dir.display());
    }
    result
}

fn run_suite(
    suite: &Path,
    exe: &Path,
    dir: &Path,
    filters: &[String],
    defaults: bool,
) -> Result<(), String> {
    let port = free_port()?;
    let config = dir.join("gateway.toml");
    fs::write(&config, config_toml(dir, port))
        .map_err(|e| format!("e2e: write {}: {e}", config.display()))?;
    let log = fs::File::create(dir.join("gateway.log")).map_err(|e| format!("e2e: log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| format!("e2e: log: {e}"))?;
    let child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("e2e: cannot start {}: {e}", exe.display()))?;
    let mut gateway = KillOnDrop(child);
    wait_healthy(port, &mut gateway.0)?;

    let report = dir.join("s3s-e2e.json");
    let mut cmd = Command::new(suite);
    for f in filters {
        cmd.args(["--filter", f]);
    }
    cmd.arg("--json")
        .arg(&report)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    if env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "s3s_test=info,s3s_e2e=info");
    }
    let ran = run(&format!("s3s-e2e {}", filters.join(" ")), cmd);
    let counts = fs::read_to_string(&report)
        .map(|json| case_counts(&json))
        .map_err(|e| format!("e2e: no report at {} ({e})", report.display()))?;
    println!(
        "s3s-e2e {S3S_E2E_VERSION} against s3o-gateway: {} cases, {} passed, {} failed",
        counts.passed.len() + counts.failed.len(),
        counts.passed.len(),
        counts.failed.len()
    );
    for name in &counts.failed {
        println!("  FAILED {name}");
    }
    if defaults {
        for (case, why) in LEFT_OUT {
            println!("  not run: {case} ({why})");
        }
    }
    ran?;
    if counts.passed.is_empty() || !counts.failed.is_empty() {
        return Err(format!(
            "s3s-e2e: {} of {} cases failed",
            counts.failed.len(),
            counts.passed.len() + counts.failed.len()
        ));
    }
    println!("e2e: PASS");
    Ok(())
}

/// The gateway process, killed when the run ends however it ends.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A demo-like configuration: SQLite ledger, two local directories, every suite bucket.
fn config_toml(dir: &Path, port: u16) -> String {
    let mut t = format!(
        "listen = \"127.0.0.1:{port}\"\nstore = {:?}\nregion = \"us-east-1\"\nrouting = \"pack\"\n\n\
         [[credentials]]\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n",
        format!("sqlite://{}", dir.join("ledger.db").display())
    );
    for b in SUITE_BUCKETS {
        t.push_str(&format!("\n[[buckets]]\nname = \"{b}\"\n"));
    }
    for (name, quota) in [("disk-a", 64 << 20), ("disk-b", 0)] {
        t.push_str(&format!(
            "\n[[backends]]\nname = \"{name}\"\nkind = \"local\"\npath = {:?}\nquota_bytes = {quota}\n",
            dir.join(name).display().to_string()
        ));
    }
    t
}

/// `s3s-e2e` from PATH or `$CARGO_HOME/bin`, installed there when missing.
fn s3s_e2e_binary() -> Result<PathBuf, String> {
    let cargo_bin = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin"));
    let installed = |p: &Path| p.is_file() && version_matches(p);
    let on_path = env::var_os("PATH")
        .map(|p| {
            env::split_paths(&p)
                .map(|d| d.join("s3s-e2e"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let Some(found) = cargo_bin
        .iter()
        .map(|b| b.join("s3s-e2e"))
        .chain(on_path)
        .find(|p| installed(p))
    {
        return Ok(found);
    }
    println!("e2e: s3s-e2e {S3S_E2E_VERSION} not found; installing it outside the workspace");
    let mut install = cargo();
    // From the temp dir, so no workspace config or lock file takes part.
    install.current_dir(env::temp_dir()).args([
        "install",
        "s3s-e2e",
        "--version",
        S3S_E2E_VERSION,
        "--locked",
    ]);
    run(&format!("cargo install s3s-e2e {S3S_E2E_VERSION}"), install).map_err(|e| {
        format!("e2e: cannot install s3s-e2e {S3S_E2E_VERSION} (needed by CI): {e}")
    })?;
    cargo_bin
        .map(|b| b.join("s3s-e2e"))
        .filter(|p| installed(p))
        .ok_or_else(|| "e2e: s3s-e2e was installed but is not in $CARGO_HOME/bin".into())
}

/// True when `exe --version` names the pinned version.
fn version_matches(exe: &Path) -> bool {
    Command::new(exe)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(S3S_E2E_VERSION))
        .unwrap_or(false)
}

/// The workspace's target directory.
pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("xtask lives in the workspace")
                .join("target")
        })
}

/// A port that was free a moment ago (the gateway binds it next).
pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("e2e: no free port: {e}"))
}

/// Waits until `GET /health` answers 200, or the process exits, or 60 s pass.
pub(crate) fn wait_healthy(port: u16, child: &mut Child) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("e2e: the gateway exited at start-up ({status})"));
        }
        if health(port).unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err("e2e: the gateway did not answer /health within 60 s".into())
}

fn health(port: u16) -> std::io::Result<bool> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 16];
    let n = s.read(&mut head)?;
    Ok(head[..n].starts_with(b"HTTP/1.1 200"))
}

/// Case names of a s3s-test JSON report, split by outcome.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    passed: Vec<String>,
    failed: Vec<String>,
}

/// Reads the report without a JSON library (xtask stays dependency-free). Fields come in
/// struct order: a suite's `"name"` precedes its `"fixture_count"`, a fixture's its
/// `"case_count"`, and every boolean `"passed"` belongs to a case, named by the closest
/// `"name"` before it. Cases are reported as `Suite/Fixture/case`.
fn case_counts(json: &str) -> Counts {
    let mut counts = Counts::default();
    let (mut suite, mut fixture, mut last_name) = (String::new(), String::new(), String::new());
    let mut rest = json;
    while let Some(i) = rest.find('"') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('"') else { break };
        let token = &rest[..end];
        rest = &rest[end + 1..];
        let value = rest.trim_start().strip_prefix(':').map(str::trim_start);
        let case = || format!("{suite}/{fixture}/{last_name}");
        match (token, value) {
            ("name", Some(v)) if v.starts_with('"') => {
                last_name = v[1..].split('"').next().unwrap_or_default().to_owned();
            }
            ("fixture_count", _) => suite = last_name.clone(),
            ("case_count", _) => fixture = last_name.clone(),
            ("passed", Some(v)) if v.starts_with("true") => counts.passed.push(case()),
            ("passed", Some(v)) if v.starts_with("false") => counts.failed.push(case()),
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_counts_reads_case_outcomes_only() {
        let json = r#"{
  "suite_count": { "total": 1, "passed": 0, "failed": 1, "ignored": 0 },
  "suites": [ { "name": "Basic", "fixture_count": { "total": 1, "passed": 0 },
    "fixtures": [ { "name": "Put",
    "case_count": { "total": 2, "passed": 1, "failed": 1, "ignored": 0 },
    "cases": [
      { "name": "test_put_object_tiny", "passed": true, "ignored": false },
      { "name": "test_put_object_larger", "passed": false, "ignored": false }
    ] } ] } ]
}"#;
        let c = case_counts(json);
        assert_eq!(c.passed, ["Basic/Put/test_put_object_tiny"]);
        assert_eq!(c.failed, ["Basic/Put/test_put_object_larger"]);
    }

    #[test]
    fn config_names_every_suite_bucket() {
        let t = config_toml(Path::new("/tmp/x"), 1234);
        assert!(t.starts_with("listen = \"127.0.0.1:1234\""));
        for b in SUITE_BUCKETS {
            assert!(t.contains(&format!("name = \"{b}\"")), "{b}");
        }
    }
}
