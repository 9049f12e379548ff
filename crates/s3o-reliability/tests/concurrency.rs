//! Real concurrency on both engines: a random mix on a shared key space, then targeted races.
//! After each: no database error reached a caller (bounded retries inside the runner are fine),
//! `bytes_used == Σ size_bytes` per backend, claims were disjoint, and every acknowledged write
//! that nothing later touched is present.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use s3o_core::{
    MetadataStore, MoveOutcome, PendingObject, PendingPromoteResult, StoreError, StoredForm,
    Timestamp,
};
use s3o_reliability::{Engine, assert_ledger, fresh};

const TASKS: usize = 8;
const BACKENDS: [&str; 3] = ["b0", "b1", "b2"];

fn tasks() -> usize {
    std::env::var("S3O_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TASKS)
}

async fn setup(engine: Engine) -> Option<s3o_reliability::TestDb> {
    let db = fresh(engine).await?;
    let limits: Vec<(String, i64)> = BACKENDS.iter().map(|b| (b.to_string(), 0)).collect();
    db.store.sync_quota_limits(&limits).await.expect("limits");
    Some(db)
}

/// Answers are fine under contention; database failures are not.
fn acceptable(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::ObjectNotFound { .. } | StoreError::NoSpaceAvailable
    )
}

fn ok_or_answer<T>(r: s3o_core::Result<T>, what: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if acceptable(&e) => None,
        Err(e) => panic!("{what}: a database error reached the caller: {e:?}"),
    }
}

async fn random_mix(engine: Engine) {
    let Some(db) = setup(engine).await else {
        return;
    };
    let store = db.store.clone();
    let shared: Vec<String> = (0..6).map(|i| format!("shared/{i}")).collect();
    let mut handles = Vec::new();
    for t in 0..tasks() {
        let store = store.clone();
        let shared = shared.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(t as u64 * 7919 + 1);
            let mut private_last: BTreeMap<String, i64> = BTreeMap::new();
            let mut claimed: Vec<i64> = Vec::new();
            for i in 0..60 {
                let key = shared[rng.usize(..shared.len())].clone();
                let b = BACKENDS[rng.usize(..3)];
                let b2 = BACKENDS[rng.usize(..3)];
                match rng.u8(..9) {
                    0 | 1 => {
                        ok_or_answer(
                            store
                                .record_object(&key, b, rng.i64(0..500), &StoredForm::default())
                                .await,
                            "record",
                        );
                    }
                    2 => {
                        ok_or_answer(store.delete_object(&key).await, "delete");
                    }
                    // Default forms: every copy's path is its key. Same backend is bad input.
                    3 if b != b2 => {
                        ok_or_answer(store.move_object_location(&key, b, b2, &key).await, "move");
                    }
                    4 if b != b2 => {
                        ok_or_answer(store.record_replica(&key, b, b2, &key).await, "replica");
                    }
                    5 => {
                        let mut keys = shared.clone();
                        rng.shuffle(&mut keys);
                        keys.truncate(rng.usize(1..4));
                        ok_or_answer(store.delete_objects_batch(&keys).await, "batch delete");
                    }
                    6 => {
                        let p = PendingObject {
                            intent_id: format!("t{t}-{i}"),
                            object_key: key.clone(),
                            backend_name: b.into(),
                            size_bytes: rng.i64(0..300),
                            form: StoredForm::default(),
                            created_at: Timestamp::ZERO,
                        };
                        store.insert_pending(&p).await.expect("insert pending");
                        let stored = store
                            .get_stale_pending(Duration::ZERO, 100_000)
                            .await
                            .expect("stale pending")
                            .into_iter()
                            .find(|q| q.intent_id == p.intent_id)
                            .expect("intent listed");
                        ok_or_answer(store.promote_pending(&stored).await, "promote");
                    }
                    7 => {
                        store
                            .enqueue_cleanup(b, &key, "mix", 10)
                            .await
                            .expect("enqueue");
                        store.increment_orphan_bytes(b, 10).await.expect("orphan");
                        let cutoff = Duration::from_secs(300);
                        let rows = store
                            .claim_pending_cleanups(3, &format!("worker-{t}"), cutoff)
                            .await
                            .expect("claim");
                        for r in rows {
                            claimed.push(r.id);
                            let claim = r.claim().expect("claimed row carries its claim");
                            let done = store.complete_cleanup_item(&claim).await;
                            assert_eq!(
                                done.expect("complete"),
                                s3o_core::CleanupOutcome::Completed
                            );
                        }
                    }
                    _ => {
                        // A key only this task writes: its last acknowledged size must survive.
                        let pk = format!("private/{t}/{}", i % 3);
                        let size = rng.i64(0..400);
                        store
                            .record_object(&pk, b, size, &StoredForm::default())
                            .await
                            .expect("private record");
                        private_last.insert(pk, size);
                    }
                }
            }
            (private_last, claimed)
        }));
    }
    let mut all_claimed = Vec::new();
    let mut private = BTreeMap::new();
    for h in handles {
        let (p, c) = h.await.expect("task panicked");
        private.extend(p);
        all_claimed.extend(c);
    }
    let unique: BTreeSet<i64> = all_claimed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all_claimed.len(),
        "a cleanup row was claimed twice"
    );
    for (k, size) in &private {
        let locs = store
            .get_all_object_locations(k)
            .await
            .expect("private key lost");
        assert_eq!(locs.len(), 1, "{k}");
        assert_eq!(locs[0].size_bytes, *size, "{k}");
    }
    assert_ledger(&store).await;
    eprintln!(
        "{engine:?}: {} tasks x 60 ops, {} claims, {} private keys intact",
        tasks(),
        all_claimed.len(),
        private.len()
    );
    db.cleanup().await;
}

async fn opposite_moves(engine: Engine) {
    let Some(db) = setup(engine).await else {
        return;
    };
    let s = db.store.clone();
    for i in 0..40 {
        let b = if i % 2 == 0 { "b0" } else { "b1" };
        s.record_object(&format!("m/{i}"), b, 100 + i, &StoredForm::default())
            .await
            .unwrap();
    }
    let mover = |s: MetadataStore, parity: i64| {
        tokio::spawn(async move {
            let mut moved = 0;
            for round in 0..3 {
                for i in (0..40).filter(|i| i % 2 == parity) {
                    let (from, to) = if (parity + round) % 2 == 0 {
                        ("b0", "b1")
                    } else {
                        ("b1", "b0")
                    };
                    let key = format!("m/{i}");
                    if let MoveOutcome::Moved { bytes, .. } = s
                        .move_object_location(&key, from, to, &key)
                        .await
                        .expect("move")
                    {
                        moved += bytes;
                    }
                }
            }
            moved
        })
    };
    let (a, b) = tokio::join!(mover(s.clone(), 0), mover(s.clone(), 1));
    assert!(a.unwrap() > 0 && b.unwrap() > 0, "both movers moved bytes");
    assert_ledger(&s).await;
    let total: i64 = (0..40).map(|i| 100 + i).sum();
    let (_, b0) = s.backend_object_stats("b0").await.unwrap();
    let (_, b1) = s.backend_object_stats("b1").await.unwrap();
    assert_eq!(b0 + b1, total, "moves neither lose nor duplicate bytes");
    db.cleanup().await;
}

async fn overwrite_vs_delete(engine: Engine) {
    let Some(db) = setup(engine).await else {
        return;
    };
    let s = db.store.clone();
    let w = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                s.record_object("hot", BACKENDS[i % 3], i as i64, &StoredForm::default())
                    .await
                    .expect("record");
            }
        })
    };
    let d = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                ok_or_answer(s.delete_object("hot").await, "delete");
            }
        })
    };
    let (a, b) = tokio::join!(w, d);
    a.unwrap();
    b.unwrap();
    if let Ok(locs) = s.get_all_object_locations("hot").await {
        assert_eq!(locs.len(), 1, "an overwrite leaves exactly one copy");
    }
    assert_ledger(&s).await;
    db.cleanup().await;
}

async fn promote_vs_record(engine: Engine) {
    let Some(db) = setup(engine).await else {
        return;
    };
    let s = db.store.clone();
    for round in 0..20 {
        let key = format!("p/{round}");
        let p = PendingObject {
            intent_id: format!("i-{round}"),
            object_key: key.clone(),
            backend_name: "b0".into(),
            size_bytes: 50,
            form: StoredForm::default(),
            created_at: Timestamp::ZERO,
        };
        s.insert_pending(&p).await.unwrap();
        let stored = s
            .get_stale_pending(Duration::ZERO, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|q| q.intent_id == p.intent_id)
            .unwrap();
        let plain = StoredForm::default();
        let (pr, rr) = tokio::join!(
            s.promote_pending(&stored),
            s.record_object(&key, "b1", 70, &plain)
        );
        let (res, _) = pr.expect("promote");
        rr.expect("record");
        assert!(
            matches!(
                res,
                PendingPromoteResult::Committed | PendingPromoteResult::Superseded
            ),
            "{res:?}"
        );
        let locs = s.get_all_object_locations(&key).await.unwrap();
        // Either the promotion committed first and the later write displaced it, or the write
        // came first and the intent was superseded: the write's copy is what remains.
        assert_eq!(locs.len(), 1, "one copy remains: {locs:?}");
        assert_eq!(locs[0].backend_name, "b1", "{res:?}");
    }
    assert_eq!(s.count_pending().await.unwrap(), 0, "every intent resolved");
    assert_ledger(&s).await;
    db.cleanup().await;
}

async fn overlapping_batches(engine: Engine) {
    let Some(db) = setup(engine).await else {
        return;
    };
    let s = db.store.clone();
    let keys: Vec<String> = (0..20).map(|i| format!("bd/{i:02}")).collect();
    for (i, k) in keys.iter().enumerate() {
        s.record_object(k, BACKENDS[i % 3], 10, &StoredForm::default())
            .await
            .unwrap();
    }
    let first: Vec<String> = keys[..15].to_vec();
    let mut second: Vec<String> = keys[5..].to_vec();
    second.reverse();
    let (a, b) = tokio::join!(
        s.delete_objects_batch(&first),
        s.delete_objects_batch(&second)
    );
    let (a, b) = (a.expect("batch 1"), b.expect("batch 2"));
    for k in &keys {
        let n = usize::from(a.contains_key(k)) + usize::from(b.contains_key(k));
        assert_eq!(n, 1, "{k} deleted by exactly one batch");
    }
    assert_ledger(&s).await;
    db.cleanup().await;
}

async fn replica_vs_delete(engine: Engine) {
    let Some(db) = setup(engine).await else {
        return;
    };
    let s = db.store.clone();
    for round in 0..30 {
        let key = format!("r/{round}");
        s.record_object(&key, "b0", 33, &StoredForm::default())
            .await
            .unwrap();
        let (rep, del) = tokio::join!(
            s.record_replica(&key, "b1", "b0", &key),
            s.delete_object(&key)
        );
        rep.expect("replica");
        del.expect("delete");
        match s.get_all_object_locations(&key).await {
            Err(StoreError::ObjectNotFound { .. }) => {}
            other => panic!("no copy may survive a delete racing its replica: {other:?}"),
        }
    }
    assert_ledger(&s).await;
    db.cleanup().await;
}

async fn claimers_disjoint(engine: Engine) {
    let Some(db) = setup(engine).await else {
        return;
    };
    let s = db.store.clone();
    for i in 0..200 {
        s.enqueue_cleanup(BACKENDS[i % 3], &format!("c/{i}"), "overwrite", 1)
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    for w in 0..tasks() {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let rows = s
                    .claim_pending_cleanups(7, &format!("w{w}"), Duration::from_secs(300))
                    .await
                    .expect("claim");
                if rows.is_empty() {
                    return mine;
                }
                mine.extend(rows.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every row claimed");
    assert_eq!(unique.len(), 200, "no row claimed twice");
    db.cleanup().await;
}

macro_rules! per_engine {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Engine::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Engine::Postgres).await }
            )*
        }
    };
}

per_engine!(
    random_mix,
    opposite_moves,
    overwrite_vs_delete,
    promote_vs_record,
    overlapping_batches,
    replica_vs_delete,
    claimers_disjoint,
);
