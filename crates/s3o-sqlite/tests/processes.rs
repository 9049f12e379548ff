//! Two processes on one database file. Each test re-invokes this test binary as the second
//! process (`--exact <same test>` with `S3O_SQLITE_CHILD` naming the child's role); in the
//! child, the test body plays that role instead of the parent's.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, ledger, raw, store_at, url_of};
use s3o_core::engine::*;
use s3o_core::*;
use s3o_sqlite::SqliteStore;

const CHILD: &str = "S3O_SQLITE_CHILD";
const CHILD_DB: &str = "S3O_SQLITE_CHILD_DB";
const CHILD_OUT: &str = "S3O_SQLITE_CHILD_OUT";

/// The role this process plays, when it is a child.
fn child_role() -> Option<(String, PathBuf, PathBuf)> {
    let role = std::env::var(CHILD).ok()?;
    let db = PathBuf::from(std::env::var(CHILD_DB).expect("child db"));
    let out = PathBuf::from(std::env::var(CHILD_OUT).expect("child out"));
    Some((role, db, out))
}

fn spawn_child(test: &str, role: &str, db: &Path, out: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .env(CHILD_DB, db)
        .env(CHILD_OUT, out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child process")
}

/// Waits for the child to write `out` (a deadline guards against hangs; not a timing check).
fn wait_for_file(out: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(s) = std::fs::read_to_string(out)
            && s.ends_with('\n')
        {
            return s;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child exited early: {status}");
        }
        assert!(Instant::now() < deadline, "child never reported");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_out(out: &Path, text: &str) {
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, format!("{text}\n")).unwrap();
    std::fs::rename(tmp, out).unwrap();
}

async fn claim_all(store: &SqliteStore, me: &str) -> Vec<i64> {
    let mut mine = Vec::new();
    loop {
        let got = store
            .claim_pending_cleanups(3, me, std::time::Duration::MAX)
            .await
            .unwrap();
        if got.is_empty() {
            return mine;
        }
        mine.extend(got.into_iter().map(|i| i.id));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_are_disjoint_across_two_processes() {
    const TEST: &str = "claims_are_disjoint_across_two_processes";
    if let Some((_, db, out)) = child_role() {
        let store = SqliteStore::open(&url_of(&db)).await.unwrap();
        let ids = claim_all(&store, "child").await;
        let text: Vec<String> = ids.iter().map(i64::to_string).collect();
        write_out(&out, &text.join(","));
        return;
    }
    let dir = TempDir::new("xproc-claims");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    const ROWS: usize = 400;
    for i in 0..ROWS {
        store
            .enqueue_cleanup("b1", &format!("k{i}"), "r", 1)
            .await
            .unwrap();
    }
    let out = dir.0.join("child.out");
    let mut child = spawn_child(TEST, "claim", &dir.db_path(), &out);
    let mine = claim_all(&store, "parent").await;
    let report = wait_for_file(&out, &mut child);
    assert!(child.wait().unwrap().success());
    let theirs: Vec<i64> = report
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();

    let a: BTreeSet<i64> = mine.iter().copied().collect();
    let b: BTreeSet<i64> = theirs.iter().copied().collect();
    assert_eq!(a.len(), mine.len(), "parent got a row twice");
    assert_eq!(b.len(), theirs.len(), "child got a row twice");
    assert!(a.is_disjoint(&b), "a row was claimed by both processes");
    assert_eq!(a.len() + b.len(), ROWS, "every row claimed");
    // The database agrees with what each process was told.
    let c = raw(&dir.db_path());
    let mut st = c
        .prepare("SELECT id, claimed_by FROM cleanup_queue")
        .unwrap();
    let rows: Vec<(i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, by) in rows {
        let expected = if a.contains(&id) { "parent" } else { "child" };
        assert_eq!(by, expected, "row {id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_locks_exclude_another_process_and_die_with_it() {
    const TEST: &str = "leader_locks_exclude_another_process_and_die_with_it";
    if let Some((role, db, out)) = child_role() {
        let store = SqliteStore::open(&url_of(&db)).await.unwrap();
        let probe = |lock| {
            let store = store.clone();
            async move {
                match store
                    .with_advisory_lock(lock, Box::pin(async { Ok(()) }))
                    .await
                    .unwrap()
                {
                    Some(_) => "some",
                    None => "none",
                }
            }
        };
        match role.as_str() {
            "probe" => {
                let r = probe(LockId::Reconcile).await;
                let p = probe(LockId::Replicator).await;
                write_out(&out, &format!("reconcile={r} replicator={p}"));
            }
            "hold" => {
                let out2 = out.clone();
                store
                    .with_advisory_lock(
                        LockId::Reconcile,
                        Box::pin(async move {
                            write_out(&out2, "held");
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            Ok(())
                        }),
                    )
                    .await
                    .unwrap();
            }
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let dir = TempDir::new("xproc-locks");
    let store = store_at(&dir.url(), &[]).await;

    // While this process holds Reconcile, the other cannot take it but can take Replicator.
    let out = dir.0.join("probe1.out");
    let db = dir.db_path();
    let out2 = out.clone();
    let held = store
        .with_advisory_lock(
            LockId::Reconcile,
            Box::pin(async move {
                let report = tokio::task::spawn_blocking(move || {
                    let mut child = spawn_child(TEST, "probe", &db, &out2);
                    let r = wait_for_file(&out2, &mut child);
                    assert!(child.wait().unwrap().success());
                    r
                })
                .await
                .unwrap();
                assert_eq!(report.trim(), "reconcile=none replicator=some");
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert!(matches!(held, Some(Ok(()))));

    // Released: the other process takes it.
    let out = dir.0.join("probe2.out");
    let mut child = spawn_child(TEST, "probe", &dir.db_path(), &out);
    assert_eq!(
        wait_for_file(&out, &mut child).trim(),
        "reconcile=some replicator=some"
    );
    assert!(child.wait().unwrap().success());

    // A holder killed with SIGKILL releases the lock with its process.
    let out = dir.0.join("hold.out");
    let mut child = spawn_child(TEST, "hold", &dir.db_path(), &out);
    assert_eq!(wait_for_file(&out, &mut child).trim(), "held");
    let busy = store
        .with_advisory_lock(LockId::Reconcile, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    assert!(busy.is_none(), "the other process holds it");
    child.kill().unwrap();
    child.wait().unwrap();
    let after = store
        .with_advisory_lock(LockId::Reconcile, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    assert!(
        matches!(after, Some(Ok(()))),
        "a dead holder's lock is free"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_killed_mid_transaction_leaves_a_consistent_database() {
    const TEST: &str = "a_process_killed_mid_transaction_leaves_a_consistent_database";
    if let Some((_, db, out)) = child_role() {
        let store = SqliteStore::open(&url_of(&db)).await.unwrap();
        for i in 0..20 {
            store
                .record_object(&format!("c{i}"), "b1", 10 + i, &StoredForm::default())
                .await
                .unwrap();
        }
        let mut tx = store.begin().await.unwrap();
        for i in 0..50 {
            tx.insert_object_location(&ObjectLocation {
                last_scrubbed_at: None,
                object_key: format!("u{i}"),
                backend_name: "b1".into(),
                size_bytes: 1000,
                created_at: Timestamp::ZERO,
                form: StoredForm::default(),
            })
            .await
            .unwrap();
            tx.increment_backend_quota("b1", 1000).await.unwrap();
        }
        tx.delete_object_copies("c0").await.unwrap();
        write_out(&out, "in-tx");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        unreachable!("killed by the parent");
    }
    let dir = TempDir::new("xproc-kill");
    {
        let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
        store
            .record_object("before", "b2", 5, &StoredForm::default())
            .await
            .unwrap();
        store.close().await;
    }
    let out = dir.0.join("kill.out");
    let mut child = spawn_child(TEST, "kill-mid-tx", &dir.db_path(), &out);
    assert_eq!(wait_for_file(&out, &mut child).trim(), "in-tx");
    child.kill().unwrap(); // SIGKILL on Unix: no rollback, no cleanup.
    child.wait().unwrap();

    let store = SqliteStore::open(&dir.url()).await.unwrap();
    store.verify_schema_version().await.unwrap();
    let check: String = raw(&dir.db_path())
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for (backend, used, sum) in ledger(&dir.db_path()) {
        assert_eq!(used, sum, "{backend}: bytes_used must equal Σ size_bytes");
    }
    let stats = store.get_quota_stats().await.unwrap();
    assert_eq!(stats["b1"].bytes_used, (0..20).map(|i| 10 + i).sum::<i64>());
    assert_eq!(store.get_all_object_locations("c0").await.unwrap().len(), 1);
    assert!(matches!(
        store.get_all_object_locations("u0").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    // The dead process's write lock is gone: writing works at once.
    store
        .record_object("after", "b1", 1, &StoredForm::default())
        .await
        .unwrap();
    assert!(store.reconcile_usage().await.unwrap().is_empty());
}
