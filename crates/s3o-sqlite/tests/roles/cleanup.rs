//! The cleanup queue on SQLite: claims, retries, dead letters and the claim index.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_claims_retry_complete_and_dlq() {
    let dir = TempDir::new("cleanup");
    let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
    store.increment_orphan_bytes("b1", 100).await.unwrap();
    store
        .enqueue_cleanup("b1", "k1", "overwrite", 10_000)
        .await
        .unwrap();
    store
        .enqueue_cleanup("b2", "k2", "delete", 5)
        .await
        .unwrap();
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 2);
    let pending = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(
        pending.iter().all(|p| p.claimed_at.is_none()),
        "reads never stamp"
    );

    let cutoff = Duration::from_secs(300);
    let first = store
        .claim_pending_cleanups(10, "w1", cutoff)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        first
            .iter()
            .all(|i| !i.reclaimed && i.claimed_by.as_deref() == Some("w1"))
    );
    assert!(
        store
            .claim_pending_cleanups(10, "w2", cutoff)
            .await
            .unwrap()
            .is_empty()
    );

    // A claim aged past the cutoff is reclaimed, flagged.
    raw(&dir.db_path())
        .execute(
            "UPDATE cleanup_queue SET claimed_at = ?1",
            [Timestamp::now().minus(Duration::from_secs(600)).as_micros()],
        )
        .unwrap();
    let not_yet = Duration::from_secs(900);
    assert!(
        store
            .claim_pending_cleanups(10, "w2", not_yet)
            .await
            .unwrap()
            .is_empty()
    );
    let re = store.claim_pending_cleanups(1, "w2", cutoff).await.unwrap();
    assert_eq!(re.len(), 1);
    assert!(re[0].reclaimed && re[0].claimed_by.as_deref() == Some("w2"));

    // Retry clears the claim; the row is claimable again, fresh.
    let k2 = first.iter().find(|i| i.object_key == "k2").unwrap().id;
    // Its current claim (w1's, re-stamped by the UPDATE above).
    let k2_claim = store
        .get_due_cleanups(10)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == k2)
        .unwrap()
        .claim()
        .unwrap();
    assert_eq!(
        store
            .retry_cleanup_item(&k2_claim, Duration::ZERO, "503")
            .await
            .unwrap(),
        s3o_core::CleanupOutcome::Retried
    );
    let again = store
        .claim_pending_cleanups(10, "w3", Duration::MAX)
        .await
        .unwrap();
    let row = again
        .iter()
        .find(|i| i.id == k2)
        .expect("k2 claimable after retry");
    assert_eq!((row.attempts, row.reclaimed), (1, false));

    // Complete: clamps orphan bytes at zero, and is idempotent.
    // k1's first claim (w1) went stale and w2 took it over: w1 cannot complete it.
    let k1_stale = first
        .iter()
        .find(|i| i.object_key == "k1")
        .unwrap()
        .claim()
        .unwrap();
    assert_eq!(
        store.complete_cleanup_item(&k1_stale).await.unwrap(),
        s3o_core::CleanupOutcome::StaleClaim
    );
    let k1 = re[0].claim().unwrap();
    assert_eq!(k1.id, k1_stale.id);
    store.complete_cleanup_item(&k1).await.unwrap();
    store.increment_orphan_bytes("b1", 7).await.unwrap();
    store.complete_cleanup_item(&k1).await.unwrap();
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].orphan_bytes, 7);

    // DLQ: move keeps the original error when none is given; requeue resets.
    assert!(store.move_cleanup_to_dlq(k2, "").await.unwrap());
    assert!(!store.move_cleanup_to_dlq(k2, "").await.unwrap());
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 1);
    let dlq = store.list_cleanup_dlq(Some("b2"), 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (
            dlq[0].original_id,
            dlq[0].last_error.as_str(),
            dlq[0].attempts,
            dlq[0].size_bytes
        ),
        (k2, "503", 1, 5)
    );
    assert!(
        store
            .list_cleanup_dlq(Some("b1"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let bytes = store.cleanup_bytes_by_backend().await.unwrap();
    assert_eq!(bytes.get("b2"), Some(&(0, 5)));
    assert_eq!(store.requeue_cleanup_dlq(None).await.unwrap(), 1);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 0);
    let back = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].attempts, back[0].claimed_at), (0, None));

    // Sweep removes rows and their orphan bytes once.
    store.enqueue_cleanup("b1", "s", "x", 3).await.unwrap();
    store.enqueue_cleanup("b1", "s", "x", 4).await.unwrap();
    assert_eq!(
        store
            .sweep_stale_cleanup_queue_rows("s", "b1")
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].orphan_bytes, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_over_100k_queued_walks_the_claim_index_and_stops_after_the_batch() {
    let dir = TempDir::new("claim-index");
    let store = store_at(&dir.url(), &[("a", 0)]).await;
    let now = Timestamp::now().as_micros();
    let hour: i64 = 3_600_000_000;
    // Row g: every 5th not yet due, every 7th exhausted, every 11th freshly claimed by someone
    // else, every 13th carrying a claim older than the grace (claimable, reclaimed).
    raw(&dir.db_path())
        .execute_batch(&format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000) \
             INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes, \
                                        created_at, next_retry, attempts, claimed_at, \
                                        claimed_by) \
             SELECT 'a', printf('k%06d', n), 'r', 1, {now} - (100000 - n) * 1000, \
                    CASE WHEN n % 5 = 0 THEN {now} + {hour} \
                         ELSE {now} - (100000 - n) * 1000 END, \
                    CASE WHEN n % 7 = 0 THEN 10 ELSE 0 END, \
                    CASE WHEN n % 11 = 0 THEN {now} WHEN n % 13 = 0 THEN {now} - 2 * {hour} END, \
                    CASE WHEN n % 11 = 0 OR n % 13 = 0 THEN 'other' END \
             FROM g; \
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000) \
             INSERT INTO notification_outbox (event_type, payload, endpoint_url, created_at, \
                                              next_retry, attempts) \
             SELECT 'e', '{{}}', 'http://n', {now} - (100000 - n) * 1000, \
                    {now} - (100000 - n) * 1000, CASE WHEN n % 7 = 0 THEN 10 ELSE 0 END \
             FROM g; \
             ANALYZE;"
        ))
        .unwrap();
    let c = raw(&dir.db_path());
    let mut st = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            s3o_sqlite::claim_statement()
        ))
        .unwrap();
    let plan: Vec<String> = st
        .query_map([now, now - hour, 100], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("USING INDEX idx_cleanup_queue_claim"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort needed:\n{plan}");
    drop(st);
    // The notifier's due list walks its index the same way.
    let mut st = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            s3o_sqlite::due_notifications_statement()
        ))
        .unwrap();
    let due: Vec<String> = st
        .query_map([now, 100], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let due = due.join("\n");
    assert!(
        due.contains("USING INDEX idx_notification_outbox_pending"),
        "{due}"
    );
    assert!(!due.contains("TEMP B-TREE"), "no sort needed:\n{due}");
    drop(st);
    drop(c);

    let items = store
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
}
