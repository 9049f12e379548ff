//! SQLite-specific concurrency: readers beside an open write transaction, microsecond time
//! ordering, disjoint claims, leader locks, and several writers on one file.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TempDir, ledger, raw, store_at};
use s3o_core::engine::*;
use s3o_core::*;

/// Guards against a hang (a deadlock would otherwise stall the suite); not a timing assertion.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("call did not complete: blocked behind the writer?")
}

fn loc(key: &str, backend: &str, size: i64, at: Timestamp) -> ObjectLocation {
    ObjectLocation {
        last_scrubbed_at: None,
        object_key: key.into(),
        backend_name: backend.into(),
        size_bytes: size,
        created_at: at,
        form: StoredForm::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_complete_while_a_write_transaction_is_open() {
    let dir = TempDir::new("readers");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    store
        .record_object("committed", "b1", 1, &StoredForm::default())
        .await
        .unwrap();

    // This store's own writer is inside a transaction with an uncommitted row.
    let mut tx = store.begin().await.unwrap();
    tx.insert_object_location(&loc("uncommitted", "b1", 1, Timestamp::ZERO))
        .await
        .unwrap();
    let seen = bounded(store.get_all_object_locations("committed"))
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert!(matches!(
        bounded(store.get_all_object_locations("uncommitted")).await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    let page = bounded(store.list_objects("", "", 10)).await.unwrap();
    assert_eq!(page.objects.len(), 1);
    tx.commit().await.unwrap();
    assert_eq!(
        store.list_objects("", "", 10).await.unwrap().objects.len(),
        2
    );

    // Another connection (as another process would) holds the file's write lock.
    let other = raw(&dir.db_path());
    other
        .execute_batch(
            "BEGIN IMMEDIATE; \
             INSERT INTO pending_objects (intent_id, object_key, backend_name, size_bytes, \
                                          created_at) VALUES ('i', 'k', 'b1', 1, 1);",
        )
        .unwrap();
    assert_eq!(bounded(store.count_pending()).await.unwrap(), 0);
    // Only record_object charged quota; the transaction above inserted a bare row.
    assert_eq!(
        bounded(store.get_quota_stats()).await.unwrap()["b1"].bytes_used,
        1
    );
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(store.count_pending().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_ordering_is_exact_at_microsecond_precision() {
    let dir = TempDir::new("micros");
    let store = store_at(&dir.url(), &[("a", 0), ("b", 0), ("c", 0), ("d", 0)]).await;
    // A whole second plus adjacent microseconds: text timestamps with trimmed zeros would
    // mis-order exactly these.
    let t = Timestamp::from_micros(1_700_000_000_000_000);
    let mut tx = store.begin().await.unwrap();
    // Backends named against time order, so an ordering by name would fail.
    tx.insert_object_location(&loc("k", "d", 1, t))
        .await
        .unwrap();
    tx.insert_object_location(&loc("k", "c", 1, Timestamp::from_micros(t.as_micros() + 1)))
        .await
        .unwrap();
    tx.insert_object_location(&loc(
        "k",
        "b",
        1,
        Timestamp::from_micros(t.as_micros() + 10),
    ))
    .await
    .unwrap();
    tx.insert_object_location(&loc(
        "k",
        "a",
        1,
        Timestamp::from_micros(t.as_micros() + 100_000),
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let copies = store.get_all_object_locations("k").await.unwrap();
    assert_eq!(
        copies
            .iter()
            .map(|c| c.backend_name.as_str())
            .collect::<Vec<_>>(),
        vec!["d", "c", "b", "a"]
    );
    assert_eq!(
        copies[1].created_at.as_micros(),
        t.as_micros() + 1,
        "stored exactly"
    );
    // The listing's "oldest copy" is the one a microsecond older.
    let row = store
        .list_objects("", "", 10)
        .await
        .unwrap()
        .objects
        .remove(0);
    assert_eq!(row.backend_name, "d");
    // Ages are measured on the database's clock: the key is a few years old.
    let century = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    assert!(
        store
            .list_expired_objects("", century, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_expired_objects("", std::time::Duration::ZERO, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    for (i, off) in [5, 0, 3, 1, 4, 2].into_iter().enumerate() {
        store
            .insert_pending(&PendingObject {
                intent_id: format!("i{i}"),
                object_key: format!("p{off}"),
                backend_name: "a".into(),
                size_bytes: 1,
                form: StoredForm::default(),
                created_at: Timestamp::from_micros(t.as_micros() + off),
            })
            .await
            .unwrap();
    }
    let stale = store
        .get_stale_pending(std::time::Duration::ZERO, 4)
        .await
        .unwrap();
    assert_eq!(
        stale
            .iter()
            .map(|p| p.object_key.as_str())
            .collect::<Vec<_>>(),
        vec!["p0", "p1", "p2", "p3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_in_one_process_get_disjoint_rows() {
    let dir = TempDir::new("claims");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    // A second store on the same file: its own writer connection competes on the file lock.
    let other = store_at(&dir.url(), &[("b1", 0)]).await;
    const ROWS: usize = 150;
    for i in 0..ROWS {
        store
            .enqueue_cleanup("b1", &format!("k{i}"), "r", 1)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let s = if w % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_pending_cleanups(7, &format!("w{w}"), std::time::Duration::MAX)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                assert!(
                    got.iter()
                        .all(|i| i.claimed_by.as_deref() == Some(&*format!("w{w}")))
                );
                mine.extend(got.into_iter().map(|i| i.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(bounded(t).await.unwrap());
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a row was claimed twice");
    assert_eq!(unique.len(), ROWS, "every row claimed once");
}

#[tokio::test(flavor = "multi_thread")]
async fn writers_on_two_stores_keep_the_ledger_consistent() {
    let dir = TempDir::new("writers");
    let a = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
    let b = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let s = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..20i64 {
                let key = format!("k{}", i % 7);
                let backend = if (i + w) % 2 == 0 { "b1" } else { "b2" };
                s.record_object(&key, backend, i + w, &StoredForm::default())
                    .await
                    .unwrap();
                if i % 5 == 0 {
                    let _ = s
                        .move_object_location(&key, "b1", "b2", &key)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        bounded(t).await.unwrap();
    }
    for (backend, used, sum) in ledger(&dir.db_path()) {
        assert_eq!(used, sum, "{backend}: bytes_used drifted from Σ size_bytes");
    }
    assert!(a.reconcile_usage().await.unwrap().is_empty());
}

/// A lock file deleted while held stops excluding: a newcomer locks a fresh file at the path.
/// The holder must then be told `LeadershipLost`, never `Ok`, however its section ended.
#[tokio::test(flavor = "multi_thread")]
async fn leader_lock_whose_file_was_replaced_reports_leadership_lost() {
    let dir = TempDir::new("locks_replaced");
    let a = store_at(&dir.url(), &[]).await;
    let b = store_at(&dir.url(), &[]).await;
    let lock_file = dir
        .0
        .join(format!("s3o.db.leader-{}.lock", LockId::Reconcile.id()));
    let b2 = b.clone();
    let file = lock_file.clone();
    let first = a
        .with_advisory_lock(
            LockId::Reconcile,
            Box::pin(async move {
                std::fs::remove_file(&file).unwrap();
                let taken = b2
                    .with_advisory_lock(LockId::Reconcile, Box::pin(async { Ok(()) }))
                    .await
                    .unwrap();
                assert!(
                    matches!(taken, Some(Ok(()))),
                    "the newcomer locks the new file"
                );
                Ok(())
            }),
        )
        .await;
    match first {
        Err(StoreError::LeadershipLost { lock, why }) => {
            assert_eq!(lock, LockId::Reconcile);
            assert!(why.contains("release not confirmed"), "{why}");
        }
        other => panic!("the first holder must learn it lost the lock, got {other:?}"),
    }
    // The lock works normally afterwards, for both stores.
    for s in [&a, &b] {
        let again = s
            .with_advisory_lock(LockId::Reconcile, Box::pin(async { Ok(()) }))
            .await
            .unwrap();
        assert!(matches!(again, Some(Ok(()))));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_locks_exclude_per_id_and_release_on_error_and_panic() {
    let dir = TempDir::new("locks");
    let a = store_at(&dir.url(), &[]).await;
    let b = store_at(&dir.url(), &[]).await;
    let b2 = b.clone();
    let inner = a
        .with_advisory_lock(
            LockId::Replicator,
            Box::pin(async move {
                let same = b2
                    .with_advisory_lock(LockId::Replicator, Box::pin(async { Ok(()) }))
                    .await
                    .unwrap();
                assert!(same.is_none(), "another store took a held id");
                let other = b2
                    .with_advisory_lock(LockId::Rebalancer, Box::pin(async { Ok(()) }))
                    .await
                    .unwrap();
                assert!(matches!(other, Some(Ok(()))), "ids are independent");
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert!(matches!(inner, Some(Ok(()))));

    // An error inside the critical section is returned and the lock released.
    let failed = b
        .with_advisory_lock(
            LockId::Replicator,
            Box::pin(async { Err(StoreError::NoSpaceAvailable) }),
        )
        .await
        .unwrap();
    assert!(matches!(failed, Some(Err(StoreError::NoSpaceAvailable))));

    // A panic releases the lock, then propagates.
    let a2 = a.clone();
    let joined = tokio::spawn(async move {
        a2.with_advisory_lock(
            LockId::Scrubber,
            Box::pin(async { panic!("critical section bug") }),
        )
        .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    let after = b
        .with_advisory_lock(LockId::Scrubber, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    assert!(
        matches!(after, Some(Ok(()))),
        "panicking holder released the lock"
    );
    assert!(
        std::fs::metadata(dir.0.join("s3o.db.leader-1010.lock")).is_ok(),
        "lock file lives next to the database"
    );

    // In-memory stores: process-local per-id locks.
    let mem = s3o_sqlite::SqliteStore::open("sqlite::memory:")
        .await
        .unwrap();
    let m2 = mem.clone();
    let got = mem
        .with_advisory_lock(
            LockId::Lifecycle,
            Box::pin(async move {
                let same = m2
                    .with_advisory_lock(LockId::Lifecycle, Box::pin(async { Ok(()) }))
                    .await
                    .unwrap();
                assert!(same.is_none());
                let other = m2
                    .with_advisory_lock(LockId::Drain, Box::pin(async { Ok(()) }))
                    .await
                    .unwrap();
                assert!(other.is_some());
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert!(matches!(got, Some(Ok(()))));
    assert!(
        mem.with_advisory_lock(LockId::Lifecycle, Box::pin(async { Ok(()) }))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrators_on_a_fresh_file_all_succeed() {
    let dir = TempDir::new("migrators");
    let url = dir.url();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // Separate stores: separate writer connections contending on the file, as
            // separate processes would.
            let store = s3o_sqlite::SqliteStore::open(&url).await.unwrap();
            store.run_migrations().await.unwrap()
        }));
    }
    for t in tasks {
        let v = bounded(t).await.unwrap();
        assert_eq!(v.current, s3o_sqlite::EXPECTED_SCHEMA_VERSION);
    }
    let (applied, distinct): (i64, i64) = raw(&dir.db_path())
        .query_row(
            "SELECT count(*), count(DISTINCT version) FROM schema_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(applied, distinct, "each migration applied exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_synchronous_and_a_single_reader_work() {
    let dir = TempDir::new("full");
    let opts = s3o_sqlite::SqliteOptions {
        synchronous: s3o_sqlite::Synchronous::Full,
        readers: 1,
        ..Default::default()
    };
    let store = common::store_with(&dir.url(), opts, &[("b1", 0)]).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{i}");
            s.record_object(&key, "b1", 1, &StoredForm::default())
                .await
                .unwrap();
            // Read-your-writes through the single pooled reader: the committed key is visible.
            let seen: Vec<String> = s
                .list_objects("", "", 100)
                .await
                .unwrap()
                .objects
                .into_iter()
                .map(|o| o.object_key)
                .collect();
            (key, seen)
        }));
    }
    for t in tasks {
        let (key, seen) = bounded(t).await.unwrap();
        assert!(seen.contains(&key), "{key} missing from {seen:?}");
        assert!(seen.len() <= 8, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }
    assert_eq!(
        store.list_objects("", "", 100).await.unwrap().objects.len(),
        8
    );
}
