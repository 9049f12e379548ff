//! Opening, migrations, the breaker, transactions and commits on SQLite.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_idempotent_and_verify_names_the_fix() {
    let dir = TempDir::new("migrate");
    let store = SqliteStore::open(&dir.url()).await.unwrap();
    let err = store.verify_schema_version().await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Schema));
    assert!(err.to_string().contains("run migrations"), "{err}");

    let v = store.run_migrations().await.unwrap();
    assert_eq!(
        (v.current, v.expected),
        (EXPECTED_SCHEMA_VERSION, EXPECTED_SCHEMA_VERSION)
    );
    let again = store.run_migrations().await.unwrap();
    assert_eq!(again, v);
    assert_eq!(store.verify_schema_version().await.unwrap(), v);
    let (rows, distinct): (i64, i64) = raw(&dir.db_path())
        .query_row(
            "SELECT count(*), count(DISTINCT version) FROM schema_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, distinct, "each migration recorded once");

    raw(&dir.db_path())
        .execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, 'future', 0)",
            [EXPECTED_SCHEMA_VERSION + 1],
        )
        .unwrap();
    let err = store.verify_schema_version().await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Schema));
    assert!(err.to_string().contains("upgrade the binary"), "{err}");
    assert!(store.run_migrations().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_urls_name_the_accepted_forms_and_memory_is_one_database() {
    for url in ["sqlite:", "sqlite://", "mysql://x", "sqlite://a.db?mode=ro"] {
        let err = SqliteStore::open(url).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidInput { why, .. } if why.contains("sqlite::memory:")),
            "{url}: {err}"
        );
    }
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    store.run_migrations().await.unwrap();
    store.sync_quota_limits(&[("b1".into(), 0)]).await.unwrap();
    // Written through the writer, read back through every read path: one database.
    for i in 0..8 {
        store
            .record_object(&format!("k{i}"), "b1", 1, &StoredForm::default())
            .await
            .unwrap();
    }
    let page = store.list_objects("", "", 100).await.unwrap();
    assert_eq!(page.objects.len(), 8);
    assert_eq!(store.engine(), "sqlite");
    // A second in-memory store is a different database.
    let other = SqliteStore::open("sqlite::memory:").await.unwrap();
    other.run_migrations().await.unwrap();
    assert!(other.get_quota_stats().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn breaker_checks_statements_inside_transactions() {
    let dir = TempDir::new("breaker");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    let mut tx = store.begin().await.unwrap();
    let loc = ObjectLocation {
        last_scrubbed_at: None,
        object_key: "k".into(),
        backend_name: "b1".into(),
        size_bytes: 1,
        created_at: Timestamp::ZERO,
        form: StoredForm::default(),
    };
    tx.insert_object_location(&loc).await.unwrap();
    // Three database failures open the breaker while the transaction is open.
    for _ in 0..3 {
        let permit = store.breaker().pre_check().unwrap();
        let _ = permit.finish::<()>(Err(StoreError::database(
            DbErrorKind::Connection,
            "test",
            "simulated outage",
        )));
    }
    assert_eq!(store.breaker().state(), BreakerState::Open);
    assert!(matches!(
        tx.check_object_exists_on_backend("k", "b1").await,
        Err(StoreError::DbUnavailable)
    ));
    assert!(matches!(tx.commit().await, Err(StoreError::DbUnavailable)));
    // Reads and new transactions fail fast too.
    assert!(matches!(
        store.count_pending().await,
        Err(StoreError::DbUnavailable)
    ));
    assert!(matches!(
        store.begin().await.map(drop),
        Err(StoreError::DbUnavailable)
    ));
    store.breaker().recover();
    // The failed commit rolled back; the writer is usable.
    assert!(matches!(
        store.get_all_object_locations("k").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    store
        .record_object("k", "b1", 1, &StoredForm::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_transaction_rolls_back_before_the_next_writer() {
    let dir = TempDir::new("drop");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    {
        let mut tx = store.begin().await.unwrap();
        tx.insert_object_location(&ObjectLocation {
            last_scrubbed_at: None,
            object_key: "ghost".into(),
            backend_name: "b1".into(),
            size_bytes: 5,
            created_at: Timestamp::ZERO,
            form: StoredForm::default(),
        })
        .await
        .unwrap();
        tx.increment_backend_quota("b1", 5).await.unwrap();
        // Dropped without commit: the caller was cancelled.
    }
    store
        .record_object("real", "b1", 2, &StoredForm::default())
        .await
        .unwrap();
    assert!(matches!(
        store.get_all_object_locations("ghost").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].bytes_used, 2);

    // A begin whose caller is gone once BEGIN IMMEDIATE is under way rolls back on its own:
    // another process gets the file's write lock with no later writer in this process
    // resetting the connection.
    for _ in 0..5 {
        let _ = tokio::time::timeout(Duration::ZERO, store.begin()).await;
        // Let the orphaned BEGIN IMMEDIATE (and its rollback) run on the blocking pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = raw(&dir.db_path());
        other.busy_timeout(Duration::from_secs(2)).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
            .expect("a cancelled begin left the write lock held");
    }

    // Operations cancelled at every stage while other writers compete: each applies fully or
    // not at all (a statement of a cancelled transaction never lands in another one), and the
    // writer is never left inside a transaction.
    // Inline statements often finish without yielding, so a round may cancel nothing: run
    // rounds until one does.
    let mut cancelled = 0;
    let mut completed = Vec::new();
    for round in 0..50u64 {
        let mut tasks = Vec::new();
        for i in 0..40u64 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("c{round}-{i}");
                let form = StoredForm::default();
                let fut = s.record_object(&key, "b1", 1, &form);
                let r = tokio::time::timeout(Duration::from_micros(100 * (i % 10)), fut).await;
                (key, r.ok())
            }));
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("w{round}-{i}");
                let r = s.record_object(&key, "b1", 1, &StoredForm::default()).await;
                (key, Some(r))
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                (key, Some(Ok(_))) => completed.push(key),
                (key, Some(Err(e))) => panic!("{key}: {e}"),
                (_, None) => cancelled += 1,
            }
        }
        if cancelled > 0 {
            break;
        }
    }
    assert!(cancelled > 0, "no operation was cancelled");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let other = raw(&dir.db_path());
    other.busy_timeout(Duration::from_secs(2)).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
        .expect("cancellations left the write lock held");
    drop(other);
    for key in &completed {
        let copies = store.get_all_object_locations(key).await.unwrap();
        assert_eq!(copies.len(), 1, "{key}");
    }
    store
        .record_object("after", "b1", 1, &StoredForm::default())
        .await
        .unwrap();
    // Every surviving copy was charged exactly once and nothing else was.
    let rows = ledger(&dir.db_path());
    assert_eq!(rows.len(), 1);
    let (_, used, sum) = &rows[0];
    assert_eq!(
        used, sum,
        "quota charged for copies that do not exist (or vice versa)"
    );
    let keys: i64 = raw(&dir.db_path())
        .query_row("SELECT count(*) FROM object_locations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(*sum, keys + 1, "every copy is 1 byte but `real`'s 2");
    assert!(keys >= completed.len() as i64 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn close_makes_later_calls_fail() {
    let dir = TempDir::new("close");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    store.close().await;
    let err = store.count_pending().await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connection));
    assert!(store.begin().await.is_err());
}

/// Both paths — inline point statements (the default) and every statement on the blocking
/// pool — keep the ledger consistent under concurrent writers and cancelled transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_and_blocking_paths_keep_the_ledger_consistent() {
    for inline in [true, false] {
        ledger_stays_consistent(inline).await;
    }
}

async fn ledger_stays_consistent(inline: bool) {
    let dir = TempDir::new("inline");
    let opts = s3o_sqlite::SqliteOptions {
        inline_point_statements: inline,
        ..Default::default()
    };
    let store = std::sync::Arc::new(SqliteStore::open_with(&dir.url(), opts).await.unwrap());
    store.run_migrations().await.unwrap();
    store
        .sync_quota_limits(&[("a".into(), 0), ("b".into(), 1000)])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40i64 {
                let key = format!("k{}", i % 7);
                let b = if (i + t) % 2 == 0 { "a" } else { "b" };
                match s
                    .record_object(&key, b, i * 3, &StoredForm::default())
                    .await
                {
                    Ok(_) | Err(StoreError::NoSpaceAvailable) => {}
                    Err(e) => panic!("{e:?}"),
                }
                let _ = s
                    .move_object_location(&key, "a", "b", &path_on(&*s, &key, "a").await)
                    .await;
                if i % 5 == 0 {
                    // A cancelled write must leave nothing behind.
                    let _ = tokio::time::timeout(
                        Duration::from_micros(50),
                        s.record_object(&format!("c{t}"), "a", 1, &StoredForm::default()),
                    )
                    .await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.get_quota_stats().await.unwrap();
    for (b, q) in &stats {
        let (_, total) = store.backend_object_stats(b).await.unwrap();
        assert_eq!(q.bytes_used, total, "{b}");
    }
    assert!(
        stats["b"].bytes_used <= 1000,
        "quota guard held on the inline path"
    );
    assert!(store.reconcile_usage().await.unwrap().is_empty());
}

/// Migration 0003 dead-letters rows an older binary left stuck at the attempt limit (never
/// claimed again, not counted by the queue depth) and keeps every other row; orphan bytes do
/// not move, so `orphan_bytes == Σ queue + DLQ bytes` holds across the upgrade.
#[tokio::test]
async fn migration_3_dead_letters_rows_stuck_at_the_attempt_limit() {
    let dir = TempDir::new("mig3");
    {
        let c = rusqlite::Connection::open(dir.db_path()).unwrap();
        c.execute_batch(include_str!("../../../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        c.execute_batch(include_str!(
            "../../../../migrations/sqlite/0002_indexes.sql"
        ))
        .unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at INTEGER NOT NULL) STRICT; \
             INSERT INTO schema_version VALUES (1, '0001_init', 1), (2, '0002_indexes', 1); \
             INSERT INTO backend_quotas (backend_name, bytes_used, bytes_limit, orphan_bytes) \
             VALUES ('b1', 0, 0, 111); \
             INSERT INTO cleanup_queue (id, backend_name, object_key, reason, size_bytes, \
               created_at, next_retry, attempts, last_error) VALUES \
               (7, 'b1', 'stuck', 'overwrite', 100, 5, 5, 10, 'gone for good'), \
               (8, 'b1', 'live', 'delete', 11, 6, 6, 3, NULL);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&dir.url()).await.unwrap();
    assert_eq!(
        store.run_migrations().await.unwrap().current,
        EXPECTED_SCHEMA_VERSION
    );
    let dlq = store.list_cleanup_dlq(None, 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(
        (
            d.original_id,
            d.object_key.as_str(),
            d.attempts,
            d.size_bytes,
            d.last_error.as_str(),
            d.storage_key.as_str()
        ),
        (7, "stuck", 10, 100, "gone for good", "stuck")
    );
    assert_eq!(d.first_enqueued_at, Timestamp::from_micros(5));
    let queue = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(queue.iter().map(|i| i.id).collect::<Vec<_>>(), vec![8]);
    assert_eq!(
        store.get_quota_stats().await.unwrap()["b1"].orphan_bytes,
        111
    );
    assert_eq!(
        store.cleanup_bytes_by_backend().await.unwrap()["b1"],
        (11, 100)
    );
}

/// Inline commits (the default) turn the writer's automatic checkpoints off and schedule
/// passive ones in the background: the WAL is still checkpointed as writes go on, so it does
/// not grow with the number of writes. Without any checkpoint, 1000 writes leave every frame
/// they wrote in the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_commits_still_checkpoint_the_wal() {
    let dir = TempDir::new("checkpoints");
    let store = store_at(&dir.url(), &[("a", 0)]).await;
    for i in 0..1000 {
        store
            .record_object(&format!("k{i:04}"), "a", 1, &StoredForm::default())
            .await
            .unwrap();
    }
    // Frames the WAL holds now (a passive checkpoint reports, then copies, them).
    let (log, _): (i64, i64) = raw(&dir.db_path())
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
        .unwrap();
    // The same writes on a raw connection with automatic checkpoints off: the unbounded size.
    let other = TempDir::new("no-checkpoints");
    let unbounded = store_at(&other.url(), &[("a", 0)]).await;
    unbounded.close().await;
    let c = raw(&other.db_path());
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    for i in 0..1000 {
        c.execute_batch(&format!(
            "BEGIN IMMEDIATE; \
             INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at) \
             VALUES ('k{i:04}', 'a', 1, {i}); \
             UPDATE backend_quotas SET bytes_used = bytes_used + 1 WHERE backend_name = 'a'; \
             COMMIT"
        ))
        .unwrap();
    }
    let all: i64 = c
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .unwrap();
    assert!(
        log * 2 < all,
        "the WAL kept {log} frames after 1000 writes; without checkpoints {all}"
    );
    assert_eq!(store.get_quota_stats().await.unwrap()["a"].bytes_used, 1000);
}
