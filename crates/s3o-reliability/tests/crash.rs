//! Crash drills: a child process (`s3o-crash-child`) runs PUT and DELETE workflows (intent →
//! record-and-clear → immediate delete → complete) and is killed at a random point, again and
//! again, on one database. After every kill a fresh store must find: every acknowledged write
//! present (the one workflow in flight may have gone either way), `bytes_used == Σ size_bytes`,
//! `orphan_bytes == Σ queue + DLQ bytes`, and, once a reaper and a cleanup worker have run
//! (the dead child's claims are past their grace), no orphaned byte left unaccounted.
//!
//! SQLite: SIGKILL. PostgreSQL: alternately SIGKILL of the child, and `pg_terminate_backend`
//! of the child's own connections (found by its application name, in this test's database
//! only) followed by SIGKILL.
//!
//! Kills per engine: `S3O_CRASH_KILLS` (default 24 in `cargo test`); `cargo xtask crash` runs
//! the full drill (200 per engine).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use s3o_core::{MetadataStore, StoreError};
use s3o_reliability::{Engine, assert_ledger, fresh, pg_admin};

fn kills() -> usize {
    std::env::var("S3O_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// What the child acknowledged, per key, and the key of the workflow it had begun but not
/// acknowledged when it died.
#[derive(Default)]
struct Acks {
    state: BTreeMap<String, Option<(String, i64)>>,
    in_flight: Option<String>,
    acked: usize,
}

impl Acks {
    fn apply(&mut self, line: &str) {
        let w: Vec<&str> = line.split(' ').collect();
        match w[..] {
            ["begin", key] => self.in_flight = Some(key.to_owned()),
            ["ack", "put", key, backend, size] => {
                let size = size.parse().expect("size");
                self.state
                    .insert(key.to_owned(), Some((backend.to_owned(), size)));
                self.in_flight = None;
                self.acked += 1;
            }
            ["ack", "del", key] => {
                self.state.insert(key.to_owned(), None);
                self.in_flight = None;
                self.acked += 1;
            }
            _ => {}
        }
    }
}

async fn open(url: &str) -> MetadataStore {
    if url.starts_with("sqlite") {
        s3o_sqlite::open(url).await.expect("open")
    } else {
        s3o_pg::open(url).await.expect("connect")
    }
}

/// The copies of `key` as `(backend, size)`; empty when none.
async fn placement(store: &MetadataStore, key: &str) -> Vec<(String, i64)> {
    match store.get_all_object_locations(key).await {
        Ok(v) => v
            .into_iter()
            .map(|l| (l.backend_name, l.size_bytes))
            .collect(),
        Err(StoreError::ObjectNotFound { .. }) => Vec::new(),
        Err(e) => panic!("read {key}: {e}"),
    }
}

struct Report {
    kills: usize,
    terminated: usize,
    in_flight: usize,
    acked: usize,
    recovered_rows: usize,
}

async fn drill(engine: Engine) -> Option<Report> {
    let db = fresh(engine).await?;
    db.store
        .sync_quota_limits(&[("b0".into(), 0), ("b1".into(), 0)])
        .await
        .expect("backends");
    let mut acks = Acks::default();
    let mut report = Report {
        kills: 0,
        terminated: 0,
        in_flight: 0,
        acked: 0,
        recovered_rows: 0,
    };
    let started = Instant::now();
    for round in 0..kills() {
        let instance = format!("crash-{}-{round}", std::process::id());
        let url = match engine {
            Engine::Sqlite => db.url.clone(),
            // The application name finds this child's connections, and only them.
            Engine::Postgres => format!("{}&application_name={instance}", db.url),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_s3o-crash-child"))
            .args([&url, &instance, &fastrand::u64(..).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crash child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill only once the child is inside its loop, at a random point of it.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child never became ready");
        assert_eq!(first, "ready");
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..80_000)));
        let terminate = engine == Engine::Postgres && round % 2 == 1;
        if terminate {
            let admin = pg_admin().await;
            let n = admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND datname = current_database()",
                    &[&instance],
                )
                .await
                .expect("terminate child's connections");
            if n > 0 {
                report.terminated += 1;
            }
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        reader.join().expect("reader");
        let lines: Vec<String> = rx.try_iter().collect();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        // Killed by our SIGKILL; after a terminated connection the child may also have
        // stopped on its own with the connection error (exit 3).
        let by_signal = status.signal() == Some(9);
        assert!(
            by_signal || (terminate && status.code() == Some(3)),
            "round {round}: child ended with {status:?}: {stderr}"
        );
        report.kills += 1;
        if engine == Engine::Postgres {
            // The server may still be finishing a statement (a COMMIT already sent) for the
            // dead child: wait until its sessions are gone, so the checks see a settled state.
            let admin = pg_admin().await;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let row = admin
                    .query_one(
                        "SELECT COUNT(*) FROM pg_stat_activity \
                         WHERE application_name = $1 AND datname = current_database()",
                        &[&instance],
                    )
                    .await
                    .expect("child sessions");
                if row.get::<_, i64>(0) == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: child sessions linger"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let before = acks.acked;
        for l in &lines {
            acks.apply(l);
        }
        report.acked += acks.acked - before;
        let in_flight = acks.in_flight.take();
        report.in_flight += usize::from(in_flight.is_some());

        // A fresh store sees every acknowledged write and a consistent ledger.
        let store = open(&db.url).await;
        for (key, want) in &acks.state {
            let got = placement(&store, key).await;
            if Some(key) == in_flight.as_ref() {
                // Unacknowledged: either way is right; checked below.
                continue;
            }
            let want: Vec<(String, i64)> = want.iter().cloned().collect();
            assert_eq!(got, want, "round {round}: acknowledged state of {key} lost");
        }
        if let Some(key) = &in_flight {
            let got = placement(&store, key).await;
            let before: Vec<(String, i64)> =
                acks.state.get(key).cloned().flatten().into_iter().collect();
            assert!(got.len() <= 1, "round {round}: {key} has {got:?}");
            // Whichever way it went is now the truth for the next rounds.
            if got != before {
                eprintln!("round {round}: unacknowledged {key} committed: {got:?}");
            }
            acks.state.insert(key.clone(), got.into_iter().next());
        }
        assert_ledger(&store).await;
        if let Err(e) = s3o_reliability::orphan_drift(&store).await {
            panic!("round {round} after the kill: {e}");
        }

        // The reaper: the in-flight upload never reached a backend here, so its intent goes.
        let stale = store
            .get_stale_pending(Duration::ZERO, 1000)
            .await
            .expect("stale intents");
        assert!(stale.len() <= 1, "round {round}: intents left {stale:?}");
        for p in stale {
            store.delete_pending(&p.intent_id).await.expect("reap");
        }
        // A cleanup worker after the grace cutoff: the dead child's claims are taken over and
        // completed; then nothing is owed and nothing orphaned is left.
        let rows = store
            .claim_pending_cleanups(
                10_000,
                "drill-worker",
                // Every claim is stale now: the claimant is dead.
                Duration::ZERO,
            )
            .await
            .expect("claim");
        report.recovered_rows += rows.len();
        for r in rows {
            let claim = r.claim().expect("claim");
            assert_eq!(
                store.complete_cleanup_item(&claim).await.expect("complete"),
                s3o_core::CleanupOutcome::Completed
            );
        }
        let stats = store.get_quota_stats().await.expect("stats");
        for (b, q) in &stats {
            assert_eq!(
                q.orphan_bytes, 0,
                "round {round}: orphan bytes of {b} unaccounted"
            );
        }
        assert_eq!(store.count_pending().await.expect("pending"), 0);
        store.close().await;
    }
    eprintln!(
        "crash drill {}: {} kills ({} with the child's connections terminated first), {} \
         acknowledged workflows, {} kills with a workflow in flight, {} cleanup rows recovered \
         from dead claimants, {:.1}s",
        engine.name(),
        report.kills,
        report.terminated,
        report.acked,
        report.in_flight,
        report.recovered_rows,
        started.elapsed().as_secs_f64()
    );
    db.cleanup().await;
    Some(report)
}

fn check(engine: Engine) {
    let Some(rt) = s3o_reliability::runtime_for(engine) else {
        return;
    };
    let Some(r) = rt.block_on(drill(engine)) else {
        return;
    };
    assert_eq!(r.kills, kills());
    // The drill must actually interrupt work: most kills land inside a workflow.
    assert!(r.acked > 0, "the child never acknowledged a write");
    assert!(r.in_flight > 0, "no kill interrupted a workflow in flight");
}

#[test]
fn sqlite_survives_kills() {
    check(Engine::Sqlite);
}

#[test]
fn postgres_survives_kills() {
    check(Engine::Postgres);
}
