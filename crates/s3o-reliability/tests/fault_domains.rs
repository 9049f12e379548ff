//! Fault domains on both engines: bad input, schema drift and overload are answered with
//! their own typed errors, never counted as a database outage; a PostgreSQL leader that
//! loses its lock is told so and its critical section is cancelled.
//!
//! Every bad-input class runs [`REPS`] times in a row; after each class the breaker is still
//! closed (and never opened), a valid call succeeds, and a full dump of every table equals
//! the dump taken before the class.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use s3o_core::breaker::BreakerState;
use s3o_core::engine::{AdvisoryLocker, LifecycleAdmin};
use s3o_core::validate::{MAX_SIZE_BYTES, MAX_TIMESTAMP, MIN_TIMESTAMP};
use s3o_core::{
    Access, CreateMultipartUploadParams, DbErrorKind, LockId, MetadataStore, PendingObject,
    S3Error, StoreError, StoredForm, Timestamp, s3_error_for,
};
use s3o_reliability::{Engine, TestDb, fresh, pg_admin, pg_url};

/// Repetitions of every bad-input class.
const REPS: usize = 100;

/// What a class's calls must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Invalid,
    Schema,
}

fn answer_of(e: &StoreError) -> Option<Want> {
    match e {
        StoreError::InvalidInput { .. } => Some(Want::Invalid),
        StoreError::Database {
            kind: DbErrorKind::Schema,
            ..
        } if e.to_string().contains("s3o migrate") => Some(Want::Schema),
        _ => None,
    }
}

fn pending(id: &str, created_at: Timestamp) -> PendingObject {
    PendingObject {
        intent_id: id.into(),
        object_key: "k".into(),
        backend_name: "a".into(),
        size_bytes: 1,
        form: StoredForm::default(),
        created_at,
    }
}

/// The breaker is closed and has never opened.
fn assert_breaker_untouched(db: &TestDb, class: &str) {
    let (state, stats) = db.breaker();
    assert_eq!(state, BreakerState::Closed, "{class}: breaker not closed");
    assert_eq!(stats.opened, 0, "{class}: breaker opened");
    assert_eq!(stats.rejected, 0, "{class}: calls rejected");
}

/// Runs `call` [`REPS`] times expecting `want`, then checks breaker, a valid call and the dump.
macro_rules! class {
    ($db:expr, $counts:expr, $name:expr, $want:expr, $call:expr) => {{
        let db: &TestDb = $db;
        let before = db.dump().await;
        for rep in 0..REPS {
            let r = $call.await;
            let got = r.as_ref().err().and_then(answer_of);
            assert_eq!(
                got,
                Some($want),
                "{} on {} (repetition {rep}): {:?}",
                $name,
                db.engine.name(),
                r.map(|_| ())
            );
        }
        assert_breaker_untouched(db, $name);
        assert_eq!(db.dump().await, before, "{}: the database changed", $name);
        $counts.push(($name, REPS));
    }};
}

async fn seed(s: &MetadataStore) {
    s.sync_quota_limits(&[("a".into(), 0), ("b".into(), 0)])
        .await
        .unwrap();
    s.record_object("seed", "a", 10, &StoredForm::default())
        .await
        .unwrap();
    s.insert_pending(&pending("i-seed", Timestamp::ZERO))
        .await
        .unwrap();
}

async fn bad_input_classes(engine: Engine) {
    let Some(db) = fresh(engine).await else {
        return;
    };
    let s: &MetadataStore = &db.store;
    seed(s).await;
    // Seven increments of the largest accepted delta leave `b` one increment short of
    // overflowing i64: the eighth passes validation and must be refused by the database.
    for _ in 0..7 {
        s.increment_orphan_bytes("b", MAX_SIZE_BYTES).await.unwrap();
    }
    let huge = "x".repeat(12 * 1024);
    let min = Timestamp::from_micros(i64::MIN);
    let max = Timestamp::from_micros(i64::MAX);
    let mut counts: Vec<(&str, usize)> = Vec::new();
    use Want::*;

    class!(
        &db,
        counts,
        "counter overflow caught by validation",
        Invalid,
        async { s.increment_orphan_bytes("a", i64::MAX).await }
    );
    class!(&db, counts, "usage counter overflow", Invalid, async {
        s.flush_usage_deltas("a", "2026-11", i64::MAX, 0, 0).await
    });
    class!(
        &db,
        counts,
        "counter overflow refused by the database",
        Invalid,
        async { s.increment_orphan_bytes("b", MAX_SIZE_BYTES).await }
    );
    class!(&db, counts, "12 KB intent id", Invalid, async {
        s.insert_pending(&pending(&huge, Timestamp::ZERO)).await
    });
    class!(&db, counts, "12 KB upload id", Invalid, async {
        s.create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: huge.clone(),
            object_key: "k".into(),
            backend_name: "a".into(),
            ..Default::default()
        })
        .await
    });
    class!(&db, counts, "12 KB instance id", Invalid, async {
        s.claim_pending_cleanups(10, &huge, Duration::ZERO)
            .await
            .map(|_| ())
    });
    class!(&db, counts, "created_at i64::MIN", Invalid, async {
        s.insert_pending(&pending("i-min", min)).await
    });
    class!(&db, counts, "created_at i64::MAX", Invalid, async {
        s.insert_pending(&pending("i-max", max)).await
    });
    class!(&db, counts, "created_at in year 10000", Invalid, async {
        let after = Timestamp::from_micros(MAX_TIMESTAMP.as_micros() + 1);
        s.insert_pending(&pending("i-10000", after)).await
    });

    // The extremes of the accepted range are stored and read back alike on both engines;
    // extreme ages (zero, Duration::MAX) are answered without error.
    s.insert_pending(&pending("i-year-1", MIN_TIMESTAMP))
        .await
        .unwrap();
    s.insert_pending(&pending("i-year-9999", MAX_TIMESTAMP))
        .await
        .unwrap();
    let before = db.dump().await;
    for _ in 0..REPS {
        let every = s.get_stale_pending(Duration::ZERO, 10).await.unwrap();
        let ids: Vec<(&str, Timestamp)> = every
            .iter()
            .map(|p| (p.intent_id.as_str(), p.created_at))
            .collect();
        assert_eq!(ids.len(), 2, "{}: {ids:?}", engine.name());
        assert_eq!(ids[0], ("i-year-1", MIN_TIMESTAMP), "{}", engine.name());
        assert_eq!(ids[1].0, "i-seed");
        assert!(
            s.get_stale_pending(Duration::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.list_expired_objects("", Duration::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let expired = s
            .list_expired_objects("", Duration::ZERO, 10)
            .await
            .unwrap();
        assert_eq!(expired.len(), 1, "{}", engine.name());
        assert_eq!(expired[0].object_key, "seed");
        assert!(
            s.claim_pending_cleanups(10, "w", Duration::MAX)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        db.dump().await,
        before,
        "extreme timestamps changed the database"
    );
    counts.push(("extreme valid timestamps and ages answered", REPS));
    s.delete_pending("i-year-1").await.unwrap();
    s.delete_pending("i-year-9999").await.unwrap();

    // A valid call still succeeds after all of it.
    s.record_object("after", "a", 5, &StoredForm::default())
        .await
        .expect("a valid call after the bad-input classes");
    assert_breaker_untouched(&db, "after every class");
    for (name, n) in &counts {
        eprintln!("{}: {name}: {n} calls", engine.name());
    }
    db.cleanup().await;
}

/// A store opened on a database that was never migrated: every call is `Schema` naming
/// `s3o migrate`, the breaker stays closed, and after migrating a valid call succeeds.
async fn unmigrated(engine: Engine) {
    type Probe = Box<dyn Fn() -> BreakerState>;
    let (store, probe, schema): (MetadataStore, Probe, Option<String>) = match engine {
        Engine::Sqlite => {
            let dir = std::env::temp_dir().join(format!(
                "s3o-unmigrated-{}-{}",
                std::process::id(),
                fastrand::u32(..)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("ledger.db").display());
            let s = s3o_sqlite::open(&url).await.unwrap();
            let p = s.clone();
            (s, Box::new(move || p.breaker_state()), None)
        }
        Engine::Postgres => {
            let Some(base) = pg_url() else { return };
            let schema = format!("unmig_{}_{}", std::process::id(), fastrand::u32(..));
            let sep = if base.contains('?') { '&' } else { '?' };
            let s = s3o_pg::open(&format!("{base}{sep}schema={schema}"))
                .await
                .unwrap();
            let p = s.clone();
            (s, Box::new(move || p.breaker_state()), Some(schema))
        }
    };
    for rep in 0..REPS {
        for r in [
            store.get_all_object_locations("k").await.map(|_| ()),
            store
                .record_object("k", "a", 1, &StoredForm::default())
                .await
                .map(|_| ()),
            store.get_quota_stats().await.map(|_| ()),
        ] {
            let e = r.expect_err("an un-migrated database answered");
            assert_eq!(
                answer_of(&e),
                Some(Want::Schema),
                "{} repetition {rep}: {e:?}",
                engine.name()
            );
        }
    }
    assert_eq!(probe(), BreakerState::Closed, "{}", engine.name());
    store.run_migrations().await.unwrap();
    store
        .sync_quota_limits(&[("a".into(), 0)])
        .await
        .expect("valid call after migrating");
    eprintln!(
        "{}: un-migrated database: {} calls answered Schema",
        engine.name(),
        REPS * 3
    );
    store.close().await;
    if let Some(schema) = schema {
        let c = pg_admin().await;
        let _ = c
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }
}

/// A column whose type drifted from the one this binary reads: `Schema`, never a panic.
async fn wrong_column_type(engine: Engine) {
    let Some(db) = fresh(engine).await else {
        return;
    };
    let s: &MetadataStore = &db.store;
    s.sync_quota_limits(&[("a".into(), 0)]).await.unwrap();
    match engine {
        Engine::Sqlite => {
            db.raw_execute(
                "PRAGMA foreign_keys=OFF; DROP TABLE backend_usage; \
                 CREATE TABLE backend_usage (backend_name TEXT NOT NULL, period TEXT NOT NULL, \
                   api_requests TEXT NOT NULL, egress_bytes INTEGER NOT NULL DEFAULT 0, \
                   ingress_bytes INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL, \
                   PRIMARY KEY (backend_name, period)); \
                 INSERT INTO backend_usage VALUES ('a', '2026-11', 'many', 1, 1, 0);",
            )
            .await
        }
        Engine::Postgres => {
            db.raw_execute(
                "ALTER TABLE backend_usage ALTER COLUMN api_requests TYPE text \
                   USING api_requests::text; \
                 INSERT INTO backend_usage (backend_name, period, api_requests) \
                   VALUES ('a', '2026-11', 'many');",
            )
            .await
        }
    }
    let mut counts = Vec::new();
    class!(
        &db,
        counts,
        "column of the wrong type",
        Want::Schema,
        async { s.get_usage_for_period("2026-11").await.map(|_| ()) }
    );
    s.record_object("k", "a", 1, &StoredForm::default())
        .await
        .expect("a valid call elsewhere still succeeds");
    // Drift under the object and dead-letter rows: their PostgreSQL decoders answer `Schema`
    // too (SQLite's tables are STRICT, and rusqlite's row reads return errors anyway).
    if engine == Engine::Postgres {
        db.raw_execute(
            "ALTER TABLE object_locations ALTER COLUMN encrypted DROP DEFAULT, \
               ALTER COLUMN encrypted TYPE int USING encrypted::int; \
             ALTER TABLE cleanup_dlq ALTER COLUMN attempts TYPE bigint; \
             INSERT INTO cleanup_dlq (original_id, backend_name, object_key, reason, \
               attempts, first_enqueued_at) VALUES (1, 'a', 'x', 'drift', 10, NOW());",
        )
        .await;
        class!(
            &db,
            counts,
            "dead letter column of the wrong type",
            Want::Schema,
            async { s.list_cleanup_dlq(None, 10).await.map(|_| ()) }
        );
        class!(
            &db,
            counts,
            "copy column of the wrong type",
            Want::Schema,
            async { s.get_all_object_locations("k").await.map(|_| ()) }
        );
    }
    eprintln!(
        "{}: columns of the wrong type: {} calls",
        engine.name(),
        counts.len() * REPS
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bad_input_classes_never_trip_the_breaker() {
    bad_input_classes(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bad_input_classes_never_trip_the_breaker() {
    bad_input_classes(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unmigrated_database_is_schema() {
    unmigrated(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unmigrated_database_is_schema() {
    unmigrated(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wrong_column_type_is_schema() {
    wrong_column_type(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wrong_column_type_is_schema() {
    wrong_column_type(Engine::Postgres).await;
}

/// Checks one overloaded call's outcome: success, or the overload answer.
fn overload_outcome(r: &Result<(), StoreError>, engine: Engine, ok: &AtomicU64, busy: &AtomicU64) {
    match r {
        Ok(()) => {
            ok.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) if e.db_kind() == Some(DbErrorKind::Overload) => {
            assert_eq!(s3_error_for(e, Access::Write), Some(S3Error::SLOW_DOWN));
            busy.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => panic!("{}: neither success nor overload: {e:?}", engine.name()),
    }
}

/// 64 concurrent `record_object` calls under `prefix`: (successes, overload answers).
async fn burst(store: &MetadataStore, prefix: &str) -> (u64, u64) {
    let (ok, busy) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (s, key) = (store.clone(), format!("{prefix}/{t}"));
        tasks.push(tokio::spawn(async move {
            s.record_object(&key, "a", 1, &StoredForm::default())
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        overload_outcome(&t.await.unwrap(), Engine::Postgres, &ok, &busy);
    }
    (ok.into_inner(), busy.into_inner())
}

/// 64 tasks on a PostgreSQL pool of 4 with a 20 ms wait: first with every connection held
/// (each call must be overload), then free-running (success or overload). The breaker never
/// opens and the ledger stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_overload_is_not_an_outage() {
    let Some(base) = pg_url() else { return };
    let schema = format!("ovl_{}_{}", std::process::id(), fastrand::u32(..));
    let sep = if base.contains('?') { '&' } else { '?' };
    let opts = s3o_pg::PgOptions {
        max_size: 4,
        wait_timeout: Duration::from_millis(20),
        ..s3o_pg::PgOptions::default()
    };
    let store = s3o_pg::open_with(&format!("{base}{sep}schema={schema}"), opts)
        .await
        .unwrap();
    store.run_migrations().await.unwrap();
    store.sync_quota_limits(&[("a".into(), 0)]).await.unwrap();

    // Phase 1: four leader-lock holders occupy all four connections.
    let mut holders = Vec::new();
    let mut releases = Vec::new();
    for lock in &LockId::ALL[..4] {
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        let lock = *lock;
        holders.push(tokio::spawn(async move {
            s.with_advisory_lock(
                lock,
                Box::pin(async move {
                    let _ = entered_tx.send(());
                    let _ = release_rx.await;
                    Ok(())
                }),
            )
            .await
        }));
        entered_rx.await.expect("holder entered");
        releases.push(release_tx);
    }
    let (ok, busy) = burst(&store, "o").await;
    assert_eq!((ok, busy), (0, 64), "every call must be overload");
    for r in releases {
        let _ = r.send(());
    }
    for h in holders {
        assert!(matches!(h.await.unwrap(), Ok(Some(Ok(())))));
    }
    // Phase 2: free-running contention.
    let (ok2, busy2) = burst(&store, "p").await;
    let stats = store.breaker_stats();
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    assert_eq!(stats.opened, 0, "overload opened the breaker");
    store
        .get_all_object_locations("seedless-check")
        .await
        .expect_err("absent key");
    s3o_reliability::assert_ledger(&store).await;
    eprintln!(
        "postgres overload: held pool 64/64 overload; free-running {} ok, {} overload; breaker never opened",
        ok2, busy2
    );
    store.close().await;
    let c = pg_admin().await;
    let _ = c
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}

/// 64 reading tasks on a SQLite reader pool of 4 with a 1 ms wait: every call succeeds or is
/// overload, and the breaker never opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_overload_is_not_an_outage() {
    let dir = std::env::temp_dir().join(format!(
        "s3o-ovl-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    let opts = s3o_sqlite::SqliteOptions {
        readers: 4,
        reader_wait_timeout: Duration::from_millis(1),
        ..s3o_sqlite::SqliteOptions::default()
    };
    let store = s3o_sqlite::open_with(&url, opts).await.unwrap();
    store.run_migrations().await.unwrap();
    store.sync_quota_limits(&[("a".into(), 0)]).await.unwrap();
    for i in 0..200 {
        store
            .record_object(&format!("k/{i:04}"), "a", 1, &StoredForm::default())
            .await
            .unwrap();
    }
    let (ok, busy) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.list_objects_by_backend("a", 1000).await.map(|_| ())
        }));
    }
    for t in tasks {
        overload_outcome(&t.await.unwrap(), Engine::Sqlite, &ok, &busy);
    }
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    assert_eq!(
        store.breaker_stats().opened,
        0,
        "overload opened the breaker"
    );
    assert_eq!(
        store
            .list_objects_by_backend("a", 1000)
            .await
            .unwrap()
            .len(),
        200
    );
    eprintln!(
        "sqlite overload: {} ok, {} overload of 64; breaker never opened",
        ok.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed)
    );
}

/// Sets a flag when dropped: proves the critical section was cancelled, not left running.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Kills the leader's lock connection: the leader's call returns `LeadershipLost` (never
/// `Ok`), its critical section is dropped, another store takes the lock; a store on another
/// schema holds the same lock id independently all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lost_leadership_is_fenced() {
    let Some(base) = pg_url() else { return };
    let tag = format!("{}_{}", std::process::id(), fastrand::u32(..));
    let schema = format!("fence_{tag}");
    let other_schema = format!("fence_other_{tag}");
    let app = format!("s3o_fence_{tag}");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url_a = format!("{base}{sep}schema={schema}&application_name={app}");
    let url_b = format!("{base}{sep}schema={schema}");
    let url_c = format!("{base}{sep}schema={other_schema}");
    let a = Arc::new(s3o_pg::PgStore::connect(&url_a).await.unwrap());
    a.run_migrations().await.unwrap();
    let b = s3o_pg::PgStore::connect(&url_b).await.unwrap();
    let c = s3o_pg::PgStore::connect(&url_c).await.unwrap();
    c.run_migrations().await.unwrap();
    let lock = LockId::Replicator;

    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let leader = {
        let a = a.clone();
        let (dropped, finished) = (dropped.clone(), finished.clone());
        tokio::spawn(async move {
            a.with_advisory_lock(
                lock,
                Box::pin(async move {
                    let _flag = DropFlag(dropped);
                    let _ = entered_tx.send(());
                    // Works "forever": only fencing can end this section.
                    std::future::pending::<()>().await;
                    finished.store(true, Ordering::SeqCst);
                    Ok(())
                }),
            )
            .await
        })
    };
    entered_rx.await.expect("leader entered");

    // Same lock id, same database, other schema: independent.
    let r = c
        .with_advisory_lock(lock, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    assert!(matches!(r, Some(Ok(()))), "other schema excluded: {r:?}");
    // Same schema: excluded while A holds it.
    let r = b
        .with_advisory_lock(lock, Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    assert!(r.is_none(), "second leader admitted: {r:?}");

    // Kill exactly A's lock connection (A's application name, holding an advisory lock).
    let admin = pg_admin().await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
             JOIN pg_stat_activity s ON s.pid = l.pid \
             WHERE l.locktype = 'advisory' AND s.application_name = $1 \
               AND s.datname = current_database()",
            &[&app],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "expected exactly one lock connection");
    let t0 = Instant::now();
    let leader = tokio::spawn(async move { (leader.await, t0.elapsed()) });

    let mut took = None;
    for _ in 0..500 {
        let r = b
            .with_advisory_lock(lock, Box::pin(async { Ok(()) }))
            .await
            .unwrap();
        if matches!(r, Some(Ok(()))) {
            took = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = took.expect("another store never took the lost lock");

    let (outcome, told) = leader.await.unwrap();
    match outcome.unwrap() {
        Err(StoreError::LeadershipLost { lock: l, why }) => {
            assert_eq!(l, lock);
            assert!(!why.is_empty());
        }
        other => panic!("the fenced leader got {other:?}"),
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "critical section not dropped"
    );
    assert!(!finished.load(Ordering::SeqCst));
    eprintln!(
        "fencing: lock connection killed; another store held the lock after {took:?}; \
         the old holder was told after {told:?} (documented bound: {:?} interval + {:?} probe timeout)",
        s3o_pg::LOCK_WATCH_INTERVAL,
        s3o_pg::LOCK_WATCH_TIMEOUT
    );
    for s in [schema, other_schema] {
        let _ = admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
            .await;
    }
}

/// Measures the retry budget on SQLite with default options: another connection holds the
/// write lock, so every attempt waits a full `busy_timeout` (5 s). Ignored in CI (it takes
/// about 10 s); run with `--ignored` to print the figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, about 10 s"]
async fn measure_retry_budget_on_a_held_sqlite_write_lock() {
    let dir = std::env::temp_dir().join(format!(
        "s3o-budget-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.db");
    let store = s3o_sqlite::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.run_migrations().await.unwrap();
    store.sync_quota_limits(&[("a".into(), 0)]).await.unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t0 = Instant::now();
    let r = store
        .record_object("k", "a", 1, &StoredForm::default())
        .await;
    let took = t0.elapsed();
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(r.unwrap_err().db_kind(), Some(DbErrorKind::Busy));
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    eprintln!("retry budget: a write blocked by a held lock gave up after {took:?}");
}
