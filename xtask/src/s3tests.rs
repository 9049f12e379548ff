//! `cargo xtask s3-tests [--engine sqlite|postgres]`: the public ceph/s3-tests suite (the
//! checkout in `../shared/s3-tests`, never modified) against a fresh s3o-gateway, made strict
//! by an expected-failure list kept in the repository.
//!
//! The gateway is the workspace's debug binary with two local-directory backends and a fresh
//! ledger (SQLite in a temp dir, or a fresh schema of `S3O_PG_URL`). The suite's Python
//! requirements go into a throw-away venv under the target directory. `test_s3.py` and
//! `test_headers.py` run with the markers in [`EXCLUDED_MARKERS`] deselected and nothing else;
//! per-test outcomes go to `bench/results/s3-tests.txt`. The run fails when a test fails that
//! `bench/s3-tests-expected-failures.txt` does not list, or when a listed test passes or no
//! longer runs: the list must be edited in both directions.
//!
//! `-k EXPR` runs only the tests pytest's `-k` selects, for iterating on a few: the outcomes
//! are printed (the recorded full results stay), and only the selected
//! tests are compared with the list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use std::{env, fs};

use crate::e2e::{KillOnDrop, free_port, target_dir, wait_healthy};
use crate::{cargo, run};

/// The markers deselected, exactly as issue 22 fixes them (features a pooling gateway does
/// not claim: policies, lifecycle, encryption, IAM/STS, object lock, logging, …).
const EXCLUDED_MARKERS: [&str; 30] = [
    "fails_on_aws",
    "bucket_policy",
    "lifecycle",
    "lifecycle_expiration",
    "lifecycle_transition",
    "encryption",
    "sse_s3",
    "bucket_encryption",
    "s3website",
    "object_lock",
    "storage_class",
    "s3select",
    "sns",
    "iam_account",
    "iam_user",
    "iam_role",
    "iam_tenant",
    "user_policy",
    "group",
    "appendobject",
    "bucket_logging",
    "bucket_logging_cleanup",
    "cloud_transition",
    "cloud_restore",
    "auth_aws2",
    "object_ownership",
    "test_of_sts",
    "webidentity_test",
    "role_policy",
    "session_policy",
];

/// The suite's test files run.
const FILES: [&str; 2] = [
    "s3tests/functional/test_s3.py",
    "s3tests/functional/test_headers.py",
];

/// The users of the suite's configuration: (section, access key, secret key, user id).
const USERS: [(&str, &str, &str, &str); 3] = [
    (
        "s3 main",
        "S3TESTSMAIN0000000001",
        "s3tests-main-secret-000000000000000000001",
        "testid",
    ),
    (
        "s3 alt",
        "S3TESTSALT00000000002",
        "s3tests-alt-secret-0000000000000000000002",
        "altid",
    ),
    (
        "s3 tenant",
        "S3TESTSTENANT0000003",
        "s3tests-tenant-secret-000000000000000003",
        "tenantid",
    ),
];

const RESULTS: &str = "bench/results/s3-tests.txt";
const EXPECTED: &str = "bench/s3-tests-expected-failures.txt";

/// One test's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// Runs the suite; see the module docs.
pub(crate) fn s3_tests(rest: &[String]) -> Result<(), String> {
    let mut engine = "sqlite".to_owned();
    let mut select: Option<String> = None;
    // `--encrypt`: the gateway seals every object (encryption at rest); the outcomes must be
    // the plaintext run's.
    let mut encrypt = false;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--engine" => engine = it.next().cloned().ok_or("--engine needs a value")?,
            "-k" => select = Some(it.next().cloned().ok_or("-k needs a pytest expression")?),
            "--encrypt" => encrypt = true,
            other => return Err(format!("s3-tests: unknown argument `{other}`")),
        }
    }
    if engine != "sqlite" && engine != "postgres" {
        return Err(format!(
            "s3-tests: unknown engine `{engine}` (sqlite or postgres)"
        ));
    }
    let root = workspace_root();
    let suite = root.join("../shared/s3-tests");
    if !suite.join(FILES[0]).is_file() {
        return Err(format!("s3-tests: the suite is not at {}", suite.display()));
    }
    let started = Instant::now();
    let python = venv(&suite)?;

    let mut build = cargo();
    build.args(["build", "-p", "s3o-gateway", "--bin", "s3o-gateway"]);
    run("build s3o-gateway", build)?;
    let exe = target_dir().join("debug").join("s3o-gateway");

    let dir = env::temp_dir().join(format!("s3o-xtask-s3-tests-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("s3-tests: create {}: {e}", dir.display()))?;
    let (store, schema) = match engine.as_str() {
        "sqlite" => (
            format!("sqlite://{}", dir.join("ledger.db").display()),
            None,
        ),
        _ => {
            let base = env::var("S3O_PG_URL")
                .map_err(|_| "s3-tests --engine postgres needs S3O_PG_URL")?;
            let schema = format!("s3tests_{}", std::process::id());
            let sep = if base.contains('?') { '&' } else { '?' };
            (format!("{base}{sep}schema={schema}"), Some((base, schema)))
        }
    };
    let result = run_suite(
        &suite,
        &python,
        &exe,
        &dir,
        &store,
        &engine,
        select.as_deref(),
        encrypt,
    );
    if let Some((base, schema)) = schema {
        drop_schema(&base, &schema);
    }
    match &result {
        Ok(()) => {
            let _ = fs::remove_dir_all(&dir);
        }
        Err(_) => eprintln!(
            "s3-tests: gateway log and pytest report kept in {}",
            dir.display()
        ),
    }
    println!(
        "s3-tests ({engine}): {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    result
}

#[allow(clippy::too_many_arguments)]
fn run_suite(
    suite: &Path,
    python: &Path,
    exe: &Path,
    dir: &Path,
    store: &str,
    engine: &str,
    select: Option<&str>,
    encrypt: bool,
) -> Result<(), String> {
    let port = free_port()?;
    let config = dir.join("gateway.toml");
    let mut toml = gateway_toml(dir, port, store);
    if encrypt {
        toml.push_str(&encryption_toml(dir)?);
    }
    fs::write(&config, toml).map_err(|e| format!("s3-tests: write {}: {e}", config.display()))?;
    let conf = dir.join("s3tests.conf");
    fs::write(&conf, suite_conf(port))
        .map_err(|e| format!("s3-tests: write {}: {e}", conf.display()))?;
    let log = fs::File::create(dir.join("gateway.log")).map_err(|e| format!("s3-tests: {e}"))?;
    let log2 = log.try_clone().map_err(|e| format!("s3-tests: {e}"))?;
    let child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("s3-tests: cannot start {}: {e}", exe.display()))?;
    let mut gateway = KillOnDrop(child);
    wait_healthy(port, &mut gateway.0)?;

    let junit = dir.join("junit.xml");
    let mut pytest = Command::new(python);
    pytest
        .current_dir(suite)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m"])
        .arg(format!("not ({})", EXCLUDED_MARKERS.join(" or ")))
        .arg(format!("--junitxml={}", junit.display()))
        .args(FILES)
        .args(select.map(|k| ["-k", k]).into_iter().flatten())
        .env("S3TEST_CONF", &conf)
        // The suite's checkout stays untouched: no bytecode written into it.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::null());
    let t = Instant::now();
    // pytest exits non-zero whenever a test fails; the verdict is the comparison below.
    let _ = pytest
        .status()
        .map_err(|e| format!("s3-tests: cannot run pytest: {e}"))?;
    let took = t.elapsed().as_secs_f64();
    let xml = fs::read_to_string(&junit)
        .map_err(|e| format!("s3-tests: no pytest report at {} ({e})", junit.display()))?;
    let outcomes = parse_junit(&xml);
    let count = |o: Outcome| outcomes.values().filter(|v| **v == o).count();
    let (passed, failed, skipped) = (
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::Skipped),
    );
    let root = workspace_root();
    let mut text = format!(
        "# ceph/s3-tests (../shared/s3-tests) against s3o-gateway, {engine} ledger, two local \
         directories: {passed} passed, {failed} failed, {skipped} skipped of {} in {took:.0} s\n\
         # reproduce: cargo xtask s3-tests --engine {engine}\n",
        outcomes.len()
    );
    for (name, o) in &outcomes {
        let word = match o {
            Outcome::Passed => "PASS",
            Outcome::Failed => "FAIL",
            Outcome::Skipped => "SKIP",
        };
        text.push_str(&format!("{word} {name}\n"));
    }
    // A subset run (`-k`) is for iterating on a few tests: it keeps the recorded full results
    // and prints its own.
    let results = match select {
        None => root.join(RESULTS),
        Some(_) => {
            print!("{text}");
            dir.join("s3-tests-subset.txt")
        }
    };
    fs::write(&results, text).map_err(|e| format!("s3-tests: write {}: {e}", results.display()))?;
    println!(
        "s3-tests ({engine}): {passed} passed, {failed} failed, {skipped} skipped of {} in {took:.0} s (per test: {RESULTS})",
        outcomes.len()
    );

    let listed = fs::read_to_string(root.join(EXPECTED))
        .map_err(|e| format!("s3-tests: read {EXPECTED}: {e}"))
        .and_then(|t| parse_expected(&t))?;
    let mut problems = compare(&outcomes, &listed);
    if select.is_some() {
        // Tests outside the selection did not run by request, not by accident.
        problems.retain(|p| !p.starts_with("listed but did not run"));
    }
    if problems.is_empty() {
        println!("s3-tests ({engine}): PASS (every failure is listed in {EXPECTED})");
        Ok(())
    } else {
        for p in &problems {
            println!("  {p}");
        }
        Err(format!(
            "s3-tests ({engine}): {} differences from {EXPECTED}",
            problems.len()
        ))
    }
}

/// The gateway's configuration: the suite's three users, two local directories, no
/// preconfigured bucket (the suite creates its own), the main user's id as the owner.
fn gateway_toml(dir: &Path, port: u16, store: &str) -> String {
    let mut t = format!(
        "listen = \"127.0.0.1:{port}\"\nstore = {store:?}\nregion = \"us-east-1\"\n\
         routing = \"pack\"\n"
    );
    for (_, ak, sk, _) in USERS {
        t.push_str(&format!(
            "\n[[credentials]]\naccess_key = \"{ak}\"\nsecret_key = \"{sk}\"\n"
        ));
    }
    for name in ["disk-a", "disk-b"] {
        t.push_str(&format!(
            "\n[[backends]]\nname = \"{name}\"\nkind = \"local\"\npath = {:?}\n",
            dir.join(name).display().to_string()
        ));
    }
    // The gateway has one owner; the suite's main user is the one it expects as owner.
    let (_, _, _, main_id) = USERS[0];
    t.push_str(&format!(
        "\n[owner]\nid = \"{main_id}\"\ndisplay_name = \"{main_id}\"\n"
    ));
    t
}

/// `[encryption]` for every bucket, with a fresh random master key written (mode 600) in `dir`.
fn encryption_toml(dir: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let key = dir.join("master.key");
    let mut bytes = [0u8; 32];
    let mut f = fs::File::open("/dev/urandom").map_err(|e| format!("s3-tests: {e}"))?;
    std::io::Read::read_exact(&mut f, &mut bytes).map_err(|e| format!("s3-tests: {e}"))?;
    fs::write(&key, bytes).map_err(|e| format!("s3-tests: write {}: {e}", key.display()))?;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("s3-tests: chmod {}: {e}", key.display()))?;
    Ok(format!(
        "\n[encryption]\nencrypt = true\nkey_id = \"s3-tests\"\nmaster_key_file = {:?}\n",
        key.display().to_string()
    ))
}

/// The suite's configuration file for a gateway on `port`.
fn suite_conf(port: u16) -> String {
    let mut t = format!(
        "[DEFAULT]\nhost = 127.0.0.1\nport = {port}\nis_secure = False\nssl_verify = False\n\n\
         [fixtures]\nbucket prefix = s3o-{{random}}-\niam name prefix = s3-tests-\n\
         iam path prefix = /s3-tests/\n"
    );
    for (section, ak, sk, id) in USERS {
        t.push_str(&format!(
            "\n[{section}]\ndisplay_name = {id}\nuser_id = {id}\nemail = {id}@example.com\n\
             access_key = {ak}\nsecret_key = {sk}\n"
        ));
        if section == "s3 tenant" {
            t.push_str("tenant = testx\n");
        }
    }
    // Required by the suite's set-up; only the IAM tests (deselected) use them, so the
    // gateway does not know these keys.
    for (section, n) in [("iam", 'I'), ("iam root", 'R'), ("iam alt root", 'A')] {
        let id = section.replace(' ', "-");
        t.push_str(&format!(
            "\n[{section}]\ndisplay_name = {id}\nuser_id = {id}\nemail = {id}@example.com\n\
             access_key = {}\nsecret_key = {}\n",
            n.to_string().repeat(20),
            n.to_string().repeat(40)
        ));
    }
    t
}

/// The venv's python, the suite's requirements installed (created when missing).
fn venv(suite: &Path) -> Result<PathBuf, String> {
    let venv = target_dir().join("s3-tests-venv");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let mut make = Command::new("python3");
        make.args(["-m", "venv"]).arg(&venv);
        run("python3 -m venv", make)?;
    }
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "-q", "-r"])
        .arg(suite.join("requirements.txt"));
    run("pip install the suite's requirements", pip)?;
    Ok(python)
}

/// Drops the run's PostgreSQL schema with `psql` (left, and said so, when psql is absent).
fn drop_schema(base: &str, schema: &str) {
    let plain = base.split('?').next().unwrap_or(base);
    let dropped = Command::new("psql")
        .args([
            plain,
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !dropped {
        eprintln!("s3-tests: could not drop schema {schema} (psql missing or failed)");
    }
}

/// The workspace root (xtask's parent).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Outcomes from a pytest JUnit report, by `file.py::test` (without a JSON or XML library:
/// each `<testcase` element is read up to the next one).
fn parse_junit(xml: &str) -> BTreeMap<String, Outcome> {
    let attr = |s: &str, name: &str| -> Option<String> {
        let k = format!(" {name}=\"");
        let i = s.find(&k)? + k.len();
        Some(s[i..].split('"').next()?.to_owned())
    };
    let mut out = BTreeMap::new();
    for case in xml.split("<testcase").skip(1) {
        let case = case.split("</testsuite>").next().unwrap_or(case);
        let head = case.split('>').next().unwrap_or(case);
        let (Some(class), Some(name)) = (attr(head, "classname"), attr(head, "name")) else {
            continue;
        };
        // A collection error has no class: the module is the name.
        let file = class.rsplit('.').next().unwrap_or(&class);
        let id = if file.is_empty() {
            name.clone()
        } else {
            format!("{file}.py::{name}")
        };
        let outcome = if case.contains("<failure") || case.contains("<error") {
            Outcome::Failed
        } else if case.contains("<skipped") {
            Outcome::Skipped
        } else {
            Outcome::Passed
        };
        out.insert(id, outcome);
    }
    out
}

/// The expected-failure list: `file.py::test  reason` per line; `#` comments and blank lines
/// ignored. A line without a reason, or a test listed twice, is an error.
fn parse_expected(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if reason.trim().is_empty() {
            return Err(format!("{EXPECTED}:{}: {name} has no reason", n + 1));
        }
        if out
            .insert(name.to_owned(), reason.trim().to_owned())
            .is_some()
        {
            return Err(format!("{EXPECTED}:{}: {name} is listed twice", n + 1));
        }
    }
    Ok(out)
}

/// Every difference between the outcomes and the list, strict both ways.
fn compare(outcomes: &BTreeMap<String, Outcome>, listed: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, o) in outcomes {
        match (o, listed.contains_key(name)) {
            (Outcome::Failed, false) => problems.push(format!("FAILED, not listed: {name}")),
            (Outcome::Passed, true) => {
                problems.push(format!("passes but is listed (remove it): {name}"));
            }
            (Outcome::Skipped, true) => {
                problems.push(format!("skipped but is listed (remove it): {name}"));
            }
            _ => {}
        }
    }
    for name in listed.keys().filter(|n| !outcomes.contains_key(*n)) {
        problems.push(format!("listed but did not run (remove it): {name}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_outcomes_by_file_and_name() {
        let xml = r#"<testsuites><testsuite name="pytest">
<testcase classname="s3tests.functional.test_s3" name="test_a" time="0.1" />
<testcase classname="s3tests.functional.test_s3" name="test_b" time="0.1"><failure message="x">t</failure></testcase>
<testcase classname="s3tests.functional.test_headers" name="test_c" time="0"><skipped message="s" /></testcase>
<testcase classname="s3tests.functional.test_s3" name="test_d" time="0"><error message="e" /></testcase>
</testsuite></testsuites>"#;
        let o = parse_junit(xml);
        assert_eq!(o["test_s3.py::test_a"], Outcome::Passed);
        assert_eq!(o["test_s3.py::test_b"], Outcome::Failed);
        assert_eq!(o["test_headers.py::test_c"], Outcome::Skipped);
        assert_eq!(o["test_s3.py::test_d"], Outcome::Failed);
    }

    #[test]
    fn the_list_is_strict_both_ways() {
        let outcomes: BTreeMap<String, Outcome> = [
            ("f.py::ok", Outcome::Passed),
            ("f.py::bad", Outcome::Failed),
            ("f.py::known", Outcome::Failed),
            ("f.py::fixed", Outcome::Passed),
        ]
        .into_iter()
        .map(|(n, o)| (n.to_owned(), o))
        .collect();
        let listed = parse_expected(
            "# comment\nf.py::known  a reason\nf.py::fixed  was broken\nf.py::gone  renamed\n",
        )
        .unwrap();
        let p = compare(&outcomes, &listed);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().any(|l| l.contains("not listed: f.py::bad")));
        assert!(
            p.iter()
                .any(|l| l.contains("listed (remove it): f.py::fixed"))
        );
        assert!(
            p.iter()
                .any(|l| l.contains("did not run (remove it): f.py::gone"))
        );
        assert!(parse_expected("f.py::x\n").is_err(), "a reason is required");
    }
}
