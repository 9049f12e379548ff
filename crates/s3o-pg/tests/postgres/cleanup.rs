//! The cleanup queue on PostgreSQL: concurrent claimers, stale claims, the claim index, dead letters.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_claimers_take_every_due_row_exactly_once() {
    let db = setup!("claimers_disjoint");
    let raw = db.raw().await;
    raw.batch_execute(
        "INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes) \
         SELECT 'a', 'k' || g, 'test', 1 FROM generate_series(1, 1000) g",
    )
    .await
    .unwrap();
    let store = Arc::new(db.second_store().await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let me = format!("claimer-{i}");
            let mut got = Vec::new();
            loop {
                let cutoff = Duration::from_secs(300);
                let batch = s.claim_pending_cleanups(17, &me, cutoff).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                for it in &batch {
                    assert_eq!(it.claimed_by.as_deref(), Some(me.as_str()));
                    assert!(!it.reclaimed);
                }
                assert!(batch.windows(2).all(|w| w[0].id < w[1].id), "ordered by id");
                got.extend(batch.into_iter().map(|it| it.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "every row claimed once");
    assert_eq!(unique.len(), 1000, "no row claimed twice");
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_claims_are_reclaimed_retry_clears_and_complete_is_idempotent() {
    let db = setup!("claim_lifecycle");
    let s = &db.store;
    let raw = db.raw().await;
    s.enqueue_cleanup("a", "k", "delete_failed", 10_000)
        .await
        .unwrap();
    s.increment_orphan_bytes("a", 100).await.unwrap();
    let cutoff = || Duration::from_secs(300);
    let first = s.claim_pending_cleanups(10, "w1", cutoff()).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(!first[0].reclaimed);
    // A fresh claim is not taken again.
    assert!(
        s.claim_pending_cleanups(10, "w2", cutoff())
            .await
            .unwrap()
            .is_empty()
    );
    // The snapshot read shows the claim and never stamps.
    let seen = s.get_due_cleanups(10).await.unwrap();
    assert_eq!(seen[0].claimed_by.as_deref(), Some("w1"));
    assert!(!seen[0].reclaimed);
    // Backdate the claim by 10 minutes: reclaimed under a 5-minute cutoff, not under 15.
    raw.batch_execute("UPDATE cleanup_queue SET claimed_at = NOW() - INTERVAL '10 minutes'")
        .await
        .unwrap();
    let old = Duration::from_secs(900);
    assert!(
        s.claim_pending_cleanups(10, "w2", old)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s.claim_pending_cleanups(10, "w2", cutoff()).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].reclaimed);
    assert_eq!(again[0].claimed_by.as_deref(), Some("w2"));
    // Retry clears the claim: after the backoff the row is claimable as fresh.
    s.retry_cleanup_item(&again[0].claim().unwrap(), Duration::ZERO, "boom")
        .await
        .unwrap();
    let fresh = s.claim_pending_cleanups(10, "w3", cutoff()).await.unwrap();
    assert_eq!(fresh.len(), 1);
    assert!(!fresh[0].reclaimed);
    assert_eq!(fresh[0].attempts, 1);
    // Complete: clamps orphan bytes at zero (row 10 000 > orphan 100), second call no-op.
    let claim = fresh[0].claim().unwrap();
    s.complete_cleanup_item(&claim).await.unwrap();
    assert_eq!(s.get_quota_stats().await.unwrap()["a"].orphan_bytes, 0);
    s.increment_orphan_bytes("a", 50).await.unwrap();
    s.complete_cleanup_item(&claim).await.unwrap();
    assert_eq!(s.get_quota_stats().await.unwrap()["a"].orphan_bytes, 50);
    assert_eq!(s.cleanup_queue_depth().await.unwrap(), 0);
    // DLQ round trip.
    s.enqueue_cleanup("b", "d", "r", 7).await.unwrap();
    let id = s.get_due_cleanups(1).await.unwrap()[0].id;
    assert!(s.move_cleanup_to_dlq(id, "gave up").await.unwrap());
    assert!(!s.move_cleanup_to_dlq(id, "gave up").await.unwrap());
    let dlq = s.list_cleanup_dlq(Some("b"), 0).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (dlq[0].original_id, dlq[0].last_error.as_str()),
        (id, "gave up")
    );
    assert_eq!(s.cleanup_bytes_by_backend().await.unwrap()["b"], (0, 7));
    assert_eq!(s.requeue_cleanup_dlq(None).await.unwrap(), 1);
    assert_eq!(s.cleanup_dlq_depth().await.unwrap(), 0);
    assert_eq!(s.cleanup_queue_depth().await.unwrap(), 1);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_over_100k_queued_walks_the_claim_index_and_stops_after_the_batch() {
    let db = setup!("claim_index");
    let raw = db.raw().await;
    // Row g: every 5th not yet due, every 7th exhausted, every 11th freshly claimed by someone
    // else, every 13th carrying a claim older than the grace (claimable, reclaimed).
    raw.batch_execute(
        "INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes, created_at, \
                                    next_retry, attempts, claimed_at, claimed_by) \
         SELECT 'a', 'k' || lpad(g::text, 6, '0'), 'r', 1, \
                NOW() - (100000 - g) * INTERVAL '1 millisecond', \
                CASE WHEN g % 5 = 0 THEN NOW() + INTERVAL '1 hour' \
                     ELSE NOW() - (100000 - g) * INTERVAL '1 millisecond' END, \
                CASE WHEN g % 7 = 0 THEN 10 ELSE 0 END, \
                CASE WHEN g % 11 = 0 THEN NOW() \
                     WHEN g % 13 = 0 THEN NOW() - INTERVAL '2 hours' END, \
                CASE WHEN g % 11 = 0 OR g % 13 = 0 THEN 'other' END \
         FROM generate_series(1, 100000) g; \
         INSERT INTO notification_outbox (event_type, payload, endpoint_url, created_at, \
                                          next_retry, attempts) \
         SELECT 'e', '{}', 'http://n', NOW() - (100000 - g) * INTERVAL '1 millisecond', \
                NOW() - (100000 - g) * INTERVAL '1 millisecond', CASE WHEN g % 7 = 0 THEN 10 ELSE 0 END \
         FROM generate_series(1, 100000) g; \
         ANALYZE cleanup_queue; ANALYZE notification_outbox;",
    )
    .await
    .unwrap();
    for generic in [false, true] {
        if generic {
            raw.batch_execute("SET plan_cache_mode = force_generic_plan")
                .await
                .unwrap();
        }
        let (limit, grace): (i64, i64) = (100, 3_600_000_000);
        let plan = explain(&raw, s3o_pg::claim_statement(), &[&limit, &"me", &grace]).await;
        assert!(
            plan.contains("Index Scan using idx_cleanup_queue_claim"),
            "generic={generic}:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "generic={generic}:\n{plan}");
        // The notifier's due list walks its index the same way.
        let due = explain(&raw, s3o_pg::due_notifications_statement(), &[&limit]).await;
        assert!(
            due.contains("Index Scan using idx_notification_outbox_pending"),
            "generic={generic}:\n{due}"
        );
        assert!(!due.contains("Seq Scan") && !due.contains("Sort"), "{due}");
        // The only sort is of the claimed batch by id, never of the queue.
        let sorts: Vec<&str> = plan.lines().filter(|l| l.contains("Sort Key")).collect();
        assert!(
            sorts.iter().all(|l| l.contains("claimed.id")),
            "generic={generic}:\n{plan}"
        );
    }
    let items = db
        .store
        .claim_pending_cleanups(100, "me", Duration::from_secs(3600))
        .await
        .unwrap();
    let expected: Vec<String> = (1..)
        .filter(|g| g % 5 != 0 && g % 7 != 0 && g % 11 != 0)
        .take(100)
        .map(|g| format!("k{g:06}"))
        .collect();
    let got: Vec<String> = items.iter().map(|i| i.object_key.clone()).collect();
    assert_eq!(got, expected, "the 100 oldest claimable rows, by id");
    for it in &items {
        let g: i64 = it.object_key[1..].parse().unwrap();
        assert_eq!(it.reclaimed, g % 13 == 0, "{}", it.object_key);
        assert_eq!(it.claimed_by.as_deref(), Some("me"));
    }
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_dead_letters_keep_their_order() {
    let db = setup!("requeue_order");
    let s = &db.store;
    for k in ["k1", "k2", "k3"] {
        s.enqueue_cleanup("a", k, "r", 1).await.unwrap();
    }
    let mut items = s.get_due_cleanups(10).await.unwrap();
    // Dead-lettered in reverse: the DLQ ids run k3, k2, k1.
    items.reverse();
    for it in &items {
        assert!(s.move_cleanup_to_dlq(it.id, "boom").await.unwrap());
    }
    assert_eq!(s.requeue_cleanup_dlq(Some("a")).await.unwrap(), 3);
    let order: Vec<String> = s
        .get_due_cleanups(10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.object_key)
        .collect();
    assert_eq!(order, ["k3", "k2", "k1"], "re-inserted in DLQ id order");
    assert_eq!(s.cleanup_dlq_depth().await.unwrap(), 0);
    db.finish().await;
}
