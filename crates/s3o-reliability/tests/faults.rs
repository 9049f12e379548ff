//! Fault injection on PostgreSQL: sessions terminated with `pg_terminate_backend` at random
//! points of a running mix (at least 100 kills). The breaker may open and fail calls fast; it
//! closes after recovery; every invariant holds and no acknowledged write is lost.
//!
//! The server stop/restart run lives in `pg_restart.rs` (its own test binary, so no other
//! PostgreSQL test runs while the server is down).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use s3o_core::breaker::BreakerConfig;
use s3o_core::{MetadataStore, StoreError, StoredForm};
use s3o_reliability::{assert_ledger, pg_admin, pg_url};

const KILLS: u64 = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_terminated_sessions() {
    let Some(base) = pg_url() else { return };
    let app = format!("s3o_fault_{}_{}", std::process::id(), fastrand::u32(..));
    let schema = format!("{app}_s");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}&application_name={app}");
    let opts = s3o_pg::PgOptions {
        breaker: BreakerConfig {
            failure_threshold: 3,
            open_timeout: Duration::from_millis(100),
            ..BreakerConfig::default()
        },
        ..s3o_pg::PgOptions::default()
    };
    let store: MetadataStore = s3o_pg::open_with(&url, opts).await.expect("connect");
    store.run_migrations().await.expect("migrate");
    store
        .sync_quota_limits(&[("a".into(), 0), ("b".into(), 0)])
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let fast_fails = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for t in 0..4u64 {
        let store = store.clone();
        let stop = stop.clone();
        let failures = failures.clone();
        let fast_fails = fast_fails.clone();
        workers.push(tokio::spawn(async move {
            // key -> (last acknowledged size, sizes attempted since without an answer)
            let mut ledger: BTreeMap<String, (Option<i64>, Vec<i64>)> = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("f/{t}/{}", i % 5);
                let size = (i * 13 % 400) as i64;
                let b = if i.is_multiple_of(2) { "a" } else { "b" };
                let r = store
                    .record_object(&key, b, size, &StoredForm::default())
                    .await;
                let entry = ledger.entry(key).or_insert((None, Vec::new()));
                match r {
                    Ok(_) => *entry = (Some(size), Vec::new()),
                    Err(StoreError::DbUnavailable) => {
                        // Failed fast: never reached the database... unless it was the
                        // breaker replacing a failure, so keep it as a possible outcome.
                        fast_fails.fetch_add(1, Ordering::Relaxed);
                        entry.1.push(size);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(StoreError::Database { .. }) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        entry.1.push(size);
                    }
                    Err(e) => panic!("unexpected answer {e:?}"),
                }
                if i.is_multiple_of(7) {
                    // A move may fail like any call here, but only with the database's trouble.
                    let key = format!("f/{t}/{}", i % 5);
                    match store.move_object_location(&key, "a", "b", &key).await {
                        Ok(_) | Err(StoreError::DbUnavailable | StoreError::Database { .. }) => {}
                        Err(e) => panic!("unexpected answer from move: {e:?}"),
                    }
                }
            }
            ledger
        }));
    }

    let admin = pg_admin().await;
    let mut kills = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(2..15))).await;
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid() \
                 ORDER BY random() LIMIT 1",
                &[&app],
            )
            .await
            .expect("terminate");
        if rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
            kills += 1;
        }
    }
    // Let the mix run on a healthy database for a moment, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ledgers = Vec::new();
    for w in workers {
        ledgers.push(w.await.expect("worker panicked"));
    }

    // Recovery: the breaker closes again and calls succeed.
    let mut recovered = false;
    for _ in 0..100 {
        if store.get_quota_stats().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "store did not recover after the kills");

    // Nothing acknowledged is lost; moves may have relocated a copy, sizes are what was written.
    for ledger in &ledgers {
        for (key, (acked, unanswered)) in ledger {
            let got = match store.get_all_object_locations(key).await {
                Ok(l) => {
                    assert_eq!(l.len(), 1, "{key}: {l:?}");
                    Some(l[0].size_bytes)
                }
                Err(StoreError::ObjectNotFound { .. }) => None,
                Err(e) => panic!("{key}: {e:?}"),
            };
            let possible = got == *acked || got.is_some_and(|g| unanswered.contains(&g));
            assert!(
                possible,
                "{key}: found {got:?}, acknowledged {acked:?}, unanswered {unanswered:?}"
            );
        }
    }
    // The kills must have hit work in flight, or this run proved nothing.
    assert!(
        failures.load(Ordering::Relaxed) + fast_fails.load(Ordering::Relaxed) > 0,
        "no call failed: the kills never hit a statement in flight"
    );
    assert_ledger(&store).await;
    assert!(
        store.reconcile_usage().await.unwrap().is_empty(),
        "no quota drift"
    );
    eprintln!(
        "postgres: {kills} sessions killed; {} calls failed with a database error, {} failed fast; invariants hold",
        failures.load(Ordering::Relaxed),
        fast_fails.load(Ordering::Relaxed)
    );
    store.close().await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}
