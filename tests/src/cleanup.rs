//! The cleanup queue, its claims, retries, completion and dead-letter table.

use std::collections::BTreeSet;
use std::time::Duration;

use s3o_store::*;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

/// Cutoff under which no fresh claim counts as stale.
fn fresh_cutoff() -> Duration {
    5 * MIN
}

/// Age zero: every claim made before now counts as stale.
fn reclaim_all_cutoff() -> Duration {
    Duration::ZERO
}

async fn pending_ids(store: &Db) -> Vec<i64> {
    store
        .get_due_cleanups(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

/// The read-only snapshot lists due rows and never stamps a claim.
pub async fn pending_cleanups_do_not_claim(store: Db) {
    three_backends(&store).await;
    for (i, b) in [A, B, A].iter().enumerate() {
        orphan_bytes_enqueued(&store, b, &format!("k{i}"), 10 * (i as i64 + 1)).await;
    }
    let snap = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(snap.len(), 3);
    for (i, item) in snap.iter().enumerate() {
        assert_eq!(item.object_key, format!("k{i}"), "oldest first");
        assert_eq!(item.size_bytes, 10 * (i as i64 + 1));
        assert_eq!(item.reason, "test");
        assert_eq!(item.attempts, 0);
        assert_eq!((item.claimed_at, item.claimed_by.as_deref()), (None, None));
        assert!(!item.reclaimed);
    }
    assert_eq!(store.get_due_cleanups(2).await.unwrap().len(), 2);
    let snap2 = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(snap2, snap, "reading twice changes nothing");
    let claimed = store
        .claim_pending_cleanups(10, "w1", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3, "a snapshot left claims behind");
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 3);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// A claim stamps `claimed_at`/`claimed_by`; claimed rows are not handed out again.
pub async fn claim_stamps_and_excludes(store: Db) {
    three_backends(&store).await;
    for i in 0..3 {
        orphan_bytes_enqueued(&store, A, &format!("k{i}"), 5).await;
    }
    let t0 = Timestamp::now().minus(MIN);
    let first = store
        .claim_pending_cleanups(2, "w1", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].id < first[1].id, "ordered by id");
    for item in &first {
        assert_eq!(item.claimed_by.as_deref(), Some("w1"));
        assert!(item.claimed_at.is_some_and(|t| t >= t0), "{item:?}");
        assert!(!item.reclaimed);
    }
    let second = store
        .claim_pending_cleanups(10, "w2", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert!(!first.iter().any(|i| i.id == second[0].id));
    assert_eq!(second[0].claimed_by.as_deref(), Some("w2"));
    assert!(
        store
            .claim_pending_cleanups(10, "w3", fresh_cutoff())
            .await
            .unwrap()
            .is_empty()
    );
    // The snapshot shows the claims.
    let snap = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(snap.len(), 3);
    assert!(
        snap.iter()
            .all(|i| i.claimed_by.is_some() && i.claimed_at.is_some())
    );
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Claims take the oldest rows first, at most `limit`.
pub async fn claim_oldest_first_with_limit(store: Db) {
    three_backends(&store).await;
    for i in 0..5 {
        orphan_bytes_enqueued(&store, [A, B][i % 2], &format!("k{i}"), 1).await;
    }
    let all = pending_ids(&store).await;
    assert_eq!(all.len(), 5);
    let got = store
        .claim_pending_cleanups(2, "w", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|i| i.id).collect::<Vec<_>>(),
        all[..2].to_vec()
    );
    assert_eq!(got[0].object_key, "k0");
    let rest = store
        .claim_pending_cleanups(100, "w", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|i| i.id).collect::<Vec<_>>(),
        all[2..].to_vec()
    );
    assert_ledger(&store).await;
}

/// A claim older than the stale-after age is reclaimed with `reclaimed = true`; under a longer
/// age it is not.
pub async fn grace_reclaim_sets_flag(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "k", 9).await;
    let fresh = store
        .claim_pending_cleanups(10, "w1", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    assert!(!fresh[0].reclaimed, "fresh claim flagged as reclaimed");
    let claimed_at = fresh[0].claimed_at.expect("claim stamped");
    // Claims count as stale only after 15 minutes: this one is still live.
    let older = 15 * MIN;
    assert!(
        store
            .claim_pending_cleanups(10, "w2", older)
            .await
            .unwrap()
            .is_empty()
    );
    // A cutoff after the claim: stale, reclaimed.
    let again = store
        .claim_pending_cleanups(10, "w2", reclaim_all_cutoff())
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, fresh[0].id);
    assert!(again[0].reclaimed, "stale claim not flagged");
    assert_eq!(again[0].claimed_by.as_deref(), Some("w2"));
    assert!(again[0].claimed_at.is_some_and(|t| t >= claimed_at));
    assert_eq!(
        orphan(&store, A).await,
        9,
        "claims never touch orphan bytes"
    );
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Retry bumps attempts, records the error and clears the claim: the row is claimable again
/// and not flagged reclaimed.
pub async fn retry_clears_claim(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "k", 9).await;
    let c = store
        .claim_pending_cleanups(1, "w1", fresh_cutoff())
        .await
        .unwrap();
    let id = c[0].id;
    assert_eq!(
        store
            .retry_cleanup_item(&c[0].claim().unwrap(), Duration::ZERO, "boom")
            .await
            .unwrap(),
        CleanupOutcome::Retried
    );
    let snap = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].attempts, 1);
    assert_eq!(
        (snap[0].claimed_at, snap[0].claimed_by.as_deref()),
        (None, None)
    );
    let again = store
        .claim_pending_cleanups(1, "w2", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, id);
    assert!(!again[0].reclaimed, "a retried row is not a reclaim");
    assert_eq!(again[0].attempts, 1);
    // Retrying a missing id, or with a claim that is not the row's, changes nothing.
    for bad in [
        stale_claim(id + 1_000_000),
        stale_claim(id),
        c[0].claim().unwrap(),
    ] {
        assert_eq!(
            store
                .retry_cleanup_item(&bad, Duration::ZERO, "x")
                .await
                .unwrap(),
            CleanupOutcome::StaleClaim
        );
    }
    assert_eq!(store.get_due_cleanups(10).await.unwrap()[0].attempts, 1);
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 1);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// A backoff in the future hides the row from snapshots and claims but not from the depth.
pub async fn retry_with_backoff_defers(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "later", 3).await;
    orphan_bytes_enqueued(&store, A, "now", 4).await;
    let ids = pending_ids(&store).await;
    let claim = claim_of(&store, ids[0]).await;
    store
        .retry_cleanup_item(&claim, Duration::from_secs(3600), "throttled")
        .await
        .unwrap();
    let snap = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(snap.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[1]]);
    let claimed = store
        .claim_pending_cleanups(10, "w", reclaim_all_cutoff())
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 2);
    assert_ledger(&store).await;
}

/// Completing deletes the row and releases its bytes once; a second complete, or one with a
/// claim the row does not carry, is `StaleClaim` and changes nothing.
pub async fn complete_is_idempotent(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "k1", 100).await;
    orphan_bytes_enqueued(&store, A, "k2", 50).await;
    let ids = pending_ids(&store).await;
    assert_eq!(orphan(&store, A).await, 150);
    let claim = claim_of(&store, ids[0]).await;
    assert_eq!(
        store
            .complete_cleanup_item(&stale_claim(ids[0]))
            .await
            .unwrap(),
        CleanupOutcome::StaleClaim
    );
    assert_eq!(
        orphan(&store, A).await,
        150,
        "stale claimant changed something"
    );
    assert_eq!(
        store.complete_cleanup_item(&claim).await.unwrap(),
        CleanupOutcome::Completed
    );
    assert_eq!(orphan(&store, A).await, 50);
    assert_eq!(
        store.complete_cleanup_item(&claim).await.unwrap(),
        CleanupOutcome::StaleClaim
    );
    assert_eq!(orphan(&store, A).await, 50, "double decrement");
    assert_eq!(
        store
            .complete_cleanup_item(&stale_claim(987_654_321))
            .await
            .unwrap(),
        CleanupOutcome::StaleClaim
    );
    assert_eq!(pending_ids(&store).await, vec![ids[1]]);
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 1);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Completion clamps orphan bytes at zero (orphan 100, row 10 000 ⇒ 0).
pub async fn complete_clamps_at_zero(store: Db) {
    three_backends(&store).await;
    store.enqueue_cleanup(A, "k", "test", 10_000).await.unwrap();
    store.increment_orphan_bytes(A, 100).await.unwrap();
    orphan_bytes_enqueued(&store, B, "kb", 7).await;
    let ids = pending_ids(&store).await;
    let claim = claim_of(&store, ids[0]).await;
    store.complete_cleanup_item(&claim).await.unwrap();
    assert_eq!(orphan(&store, A).await, 0);
    assert_eq!(orphan(&store, B).await, 7, "other backend untouched");
    assert_ledger(&store).await;
}

/// Moving to the DLQ copies the row, overrides `last_error`, deletes the queue row and
/// leaves orphan bytes alone.
pub async fn move_to_dlq_happy_path(store: Db) {
    three_backends(&store).await;
    let start = Timestamp::now().minus(MIN);
    store
        .enqueue_cleanup(A, "dead", "overwrite", 70)
        .await
        .unwrap();
    store.increment_orphan_bytes(A, 70).await.unwrap();
    let id = pending_ids(&store).await[0];
    for e in ["e1", "e2"] {
        let claim = claim_of(&store, id).await;
        store
            .retry_cleanup_item(&claim, Duration::ZERO, e)
            .await
            .unwrap();
    }
    assert!(store.move_cleanup_to_dlq(id, "final").await.unwrap());
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 0);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 1);
    assert!(pending_ids(&store).await.is_empty());
    let dlq = store.list_cleanup_dlq(None, 0).await.unwrap();
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(d.original_id, id);
    assert_eq!(
        (
            d.backend_name.as_str(),
            d.object_key.as_str(),
            d.reason.as_str()
        ),
        (A, "dead", "overwrite")
    );
    assert_eq!((d.size_bytes, d.attempts), (70, 2));
    assert_eq!(d.last_error, "final");
    assert!(d.first_enqueued_at >= start && d.moved_at >= d.first_enqueued_at);
    assert_eq!(
        orphan(&store, A).await,
        70,
        "DLQ move must not release orphan bytes"
    );
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// An empty `last_error` keeps the row's own.
pub async fn move_to_dlq_preserves_last_error(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, B, "k", 1).await;
    orphan_bytes_enqueued(&store, B, "never-retried", 1).await;
    let ids = pending_ids(&store).await;
    let claim = claim_of(&store, ids[0]).await;
    store
        .retry_cleanup_item(&claim, Duration::ZERO, "original")
        .await
        .unwrap();
    assert!(store.move_cleanup_to_dlq(ids[0], "").await.unwrap());
    assert!(store.move_cleanup_to_dlq(ids[1], "").await.unwrap());
    let dlq = store.list_cleanup_dlq(Some(B), 10).await.unwrap();
    let by_orig = |id: i64| dlq.iter().find(|d| d.original_id == id).unwrap().clone();
    assert_eq!(by_orig(ids[0]).last_error, "original");
    assert_eq!(by_orig(ids[1]).last_error, "", "no error stays empty");
    assert_eq!(by_orig(ids[1]).attempts, 0);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// A row already gone ⇒ `false`, no DLQ insert.
pub async fn move_to_dlq_already_gone(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "k", 5).await;
    let id = pending_ids(&store).await[0];
    let claim = claim_of(&store, id).await;
    store.complete_cleanup_item(&claim).await.unwrap();
    assert!(!store.move_cleanup_to_dlq(id, "late").await.unwrap());
    assert!(!store.move_cleanup_to_dlq(424_242, "").await.unwrap());
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 0);
    assert!(store.list_cleanup_dlq(None, 10).await.unwrap().is_empty());
    assert_ledger(&store).await;
}

/// The DLQ listing scopes by backend, orders most recently moved first, honours the limit.
pub async fn list_dlq_scope_and_order(store: Db) {
    three_backends(&store).await;
    for (i, b) in [A, B, A].iter().enumerate() {
        orphan_bytes_enqueued(&store, b, &format!("k{i}"), i as i64 + 1).await;
    }
    for id in pending_ids(&store).await {
        assert!(store.move_cleanup_to_dlq(id, "gave up").await.unwrap());
    }
    let all = store.list_cleanup_dlq(None, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    for w in all.windows(2) {
        assert!(
            w[0].moved_at >= w[1].moved_at,
            "not most recent first: {all:?}"
        );
    }
    let only_a = store.list_cleanup_dlq(Some(A), 100).await.unwrap();
    let mut keys: Vec<&str> = only_a.iter().map(|d| d.object_key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["k0", "k2"]);
    assert!(only_a.iter().all(|d| d.backend_name == A));
    assert_eq!(store.list_cleanup_dlq(Some(B), 100).await.unwrap().len(), 1);
    assert!(
        store
            .list_cleanup_dlq(Some(C), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_cleanup_dlq(None, 1).await.unwrap().len(), 1);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Requeue moves DLQ rows back with fresh defaults; depth grows by the count; orphan bytes
/// untouched.
pub async fn requeue_dlq_moves_rows_back(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "ka", 10).await;
    orphan_bytes_enqueued(&store, B, "kb", 20).await;
    for id in pending_ids(&store).await {
        let claim = claim_of(&store, id).await;
        store
            .retry_cleanup_item(&claim, Duration::ZERO, "e")
            .await
            .unwrap();
        assert!(store.move_cleanup_to_dlq(id, "").await.unwrap());
    }
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 0);
    assert_eq!(store.requeue_cleanup_dlq(Some(A)).await.unwrap(), 1);
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 1);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 1);
    let snap = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(snap.len(), 1);
    assert_eq!(
        (
            snap[0].backend_name.as_str(),
            snap[0].object_key.as_str(),
            snap[0].size_bytes
        ),
        (A, "ka", 10)
    );
    assert_eq!(snap[0].attempts, 0);
    assert_eq!(snap[0].claimed_at, None);
    let claimed = store
        .claim_pending_cleanups(10, "w", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "requeued row is claimable");
    assert_eq!(store.requeue_cleanup_dlq(None).await.unwrap(), 1);
    assert_eq!(store.requeue_cleanup_dlq(None).await.unwrap(), 0);
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 2);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 0);
    assert_eq!((orphan(&store, A).await, orphan(&store, B).await), (10, 20));
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Requeue by id moves exactly the named DLQ rows back (fresh defaults, orphan bytes
/// untouched); unknown ids are skipped and an empty list moves nothing.
pub async fn requeue_dlq_by_id_moves_only_those(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "ka", 10).await;
    orphan_bytes_enqueued(&store, A, "kb", 20).await;
    orphan_bytes_enqueued(&store, B, "kc", 30).await;
    for id in pending_ids(&store).await {
        let claim = claim_of(&store, id).await;
        store
            .retry_cleanup_item(&claim, Duration::ZERO, "e")
            .await
            .unwrap();
        assert!(store.move_cleanup_to_dlq(id, "").await.unwrap());
    }
    let dlq = store.list_cleanup_dlq(None, 100).await.unwrap();
    let kb = dlq.iter().find(|r| r.object_key == "kb").unwrap().id;
    let kc = dlq.iter().find(|r| r.object_key == "kc").unwrap().id;
    let unknown = dlq.iter().map(|r| r.id).max().unwrap() + 100;
    assert_eq!(store.requeue_cleanup_dlq_ids(&[]).await.unwrap(), 0);
    assert_eq!(
        store
            .requeue_cleanup_dlq_ids(&[kc, unknown, kb, kb])
            .await
            .unwrap(),
        2
    );
    let left = store.list_cleanup_dlq(None, 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].object_key, "ka");
    let mut due: Vec<(String, String, i64, i32)> = store
        .get_due_cleanups(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.backend_name, c.object_key, c.size_bytes, c.attempts))
        .collect();
    due.sort();
    assert_eq!(
        due,
        vec![
            (A.to_owned(), "kb".to_owned(), 20, 0),
            (B.to_owned(), "kc".to_owned(), 30, 0)
        ]
    );
    assert_eq!(
        store.requeue_cleanup_dlq_ids(&[kb]).await.unwrap(),
        0,
        "already moved"
    );
    assert_eq!((orphan(&store, A).await, orphan(&store, B).await), (30, 30));
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Write-off deletes DLQ rows and releases their orphan bytes; unknown ids are skipped.
pub async fn write_off_dlq_releases_orphans(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "a1", 30).await;
    orphan_bytes_enqueued(&store, A, "a2", 20).await;
    orphan_bytes_enqueued(&store, B, "b1", 40).await;
    orphan_bytes_enqueued(&store, C, "c1", 5).await;
    for id in pending_ids(&store).await {
        store.move_cleanup_to_dlq(id, "x").await.unwrap();
    }
    let dlq = store.list_cleanup_dlq(None, 100).await.unwrap();
    let mut ids: Vec<i64> = dlq
        .iter()
        .filter(|d| d.backend_name != C)
        .map(|d| d.id)
        .collect();
    assert_eq!(ids.len(), 3);
    ids.push(ids[0]);
    ids.push(99_999_999);
    assert_eq!(store.write_off_cleanup_dlq(&ids).await.unwrap(), 3);
    assert_eq!(
        (
            orphan(&store, A).await,
            orphan(&store, B).await,
            orphan(&store, C).await
        ),
        (0, 0, 5)
    );
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 1);
    assert_eq!(store.write_off_cleanup_dlq(&ids).await.unwrap(), 0);
    assert_eq!(store.write_off_cleanup_dlq(&[]).await.unwrap(), 0);
    assert_eq!(orphan(&store, C).await, 5);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Sweep removes the rows of one `(key, backend)` and their bytes, once.
pub async fn sweep_stale_cleanup_rows(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "k", 10).await;
    orphan_bytes_enqueued(&store, A, "k", 20).await;
    orphan_bytes_enqueued(&store, B, "k", 5).await;
    orphan_bytes_enqueued(&store, A, "other", 7).await;
    assert_eq!(
        store.sweep_stale_cleanup_queue_rows("k", A).await.unwrap(),
        2
    );
    assert_eq!((orphan(&store, A).await, orphan(&store, B).await), (7, 5));
    let left: Vec<(String, String)> = store
        .get_due_cleanups(10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.backend_name, i.object_key))
        .collect();
    assert_eq!(
        left,
        vec![
            (B.to_owned(), "k".to_owned()),
            (A.to_owned(), "other".to_owned())
        ]
    );
    assert_eq!(
        store.sweep_stale_cleanup_queue_rows("k", A).await.unwrap(),
        0
    );
    assert_eq!(orphan(&store, A).await, 7);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Zero-byte rows are swept without touching orphan bytes.
pub async fn sweep_zero_bytes_no_decrement(store: Db) {
    three_backends(&store).await;
    store.enqueue_cleanup(A, "z", "test", 0).await.unwrap();
    store.increment_orphan_bytes(A, 11).await.unwrap();
    assert_eq!(
        store.sweep_stale_cleanup_queue_rows("z", A).await.unwrap(),
        1
    );
    assert_eq!(orphan(&store, A).await, 11);
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 0);
    assert_ledger(&store).await;
}

/// Finding 2: the retry that reaches the attempt limit moves the row to the DLQ in the same
/// transaction and says so; no row is ever left in the queue where nothing claims it.
pub async fn exhausted_rows_leave_queue(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "stuck", 8).await;
    orphan_bytes_enqueued(&store, A, "fine", 1).await;
    let ids = pending_ids(&store).await;
    for i in 0..MAX_ATTEMPTS {
        assert_eq!(store.cleanup_queue_depth().await.unwrap(), 2, "attempt {i}");
        let claim = claim_of(&store, ids[0]).await;
        let got = store
            .retry_cleanup_item(&claim, Duration::ZERO, &format!("err {i}"))
            .await
            .unwrap();
        let want = if i + 1 < MAX_ATTEMPTS {
            CleanupOutcome::Retried
        } else {
            CleanupOutcome::DeadLettered
        };
        assert_eq!(got, want, "attempt {i}");
    }
    assert_eq!(pending_ids(&store).await, vec![ids[1]]);
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 1);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 1);
    let d = &store.list_cleanup_dlq(None, 10).await.unwrap()[0];
    assert_eq!(
        (
            d.original_id,
            d.attempts,
            d.last_error.as_str(),
            d.size_bytes
        ),
        (ids[0], 10, "err 9", 8)
    );
    assert_eq!(orphan(&store, A).await, 9, "DLQ bytes stay orphaned");
    assert!(!store.move_cleanup_to_dlq(ids[0], "").await.unwrap());
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Parallel claimers get disjoint rows and, together, every row.
pub async fn concurrent_claimers_disjoint(store: Db) {
    three_backends(&store).await;
    for i in 0..40 {
        store
            .enqueue_cleanup([A, B, C][i % 3], &format!("k{i}"), "test", 1)
            .await
            .unwrap();
    }
    let all: BTreeSet<i64> = pending_ids(&store).await.into_iter().collect();
    assert_eq!(all.len(), 40);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for round in 0.. {
                assert!(round < 1000, "claims never ran dry");
                let got = s
                    .claim_pending_cleanups(3, &format!("w{w}"), fresh_cutoff())
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                for item in got {
                    assert_eq!(item.claimed_by.as_deref(), Some(format!("w{w}").as_str()));
                    mine.push(item.id);
                }
            }
            unreachable!()
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "row {id} claimed twice");
        }
    }
    assert_eq!(seen, all);
    assert_ledger(&store).await;
}

/// Enqueueing for an unknown backend is `UnknownBackend`; nothing is queued.
pub async fn cleanup_unknown_backend_enqueue(store: Db) {
    three_backends(&store).await;
    assert_unknown_backend(store.enqueue_cleanup(UNKNOWN, "k", "r", 1).await, UNKNOWN);
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 0);
    assert_ledger(&store).await;
}

/// Queue and DLQ bytes per backend: every attempt count counts, the DLQ separately.
pub async fn cleanup_bytes_by_backend_sums(store: Db) {
    three_backends(&store).await;
    assert!(store.cleanup_bytes_by_backend().await.unwrap().is_empty());
    orphan_bytes_enqueued(&store, A, "q1", 10).await;
    orphan_bytes_enqueued(&store, A, "q2", 20).await;
    orphan_bytes_enqueued(&store, A, "d1", 40).await;
    orphan_bytes_enqueued(&store, B, "exhausted", 8).await;
    let items = store.get_due_cleanups(10).await.unwrap();
    let id_of = |k: &str| items.iter().find(|i| i.object_key == k).unwrap().id;
    assert!(store.move_cleanup_to_dlq(id_of("d1"), "x").await.unwrap());
    for _ in 0..MAX_ATTEMPTS {
        let claim = claim_of(&store, id_of("exhausted")).await;
        store
            .retry_cleanup_item(&claim, Duration::ZERO, "e")
            .await
            .unwrap();
    }
    let sums = store.cleanup_bytes_by_backend().await.unwrap();
    assert_eq!(sums.get(A), Some(&(30, 40)));
    assert_eq!(
        sums.get(B),
        Some(&(0, 8)),
        "exhausted rows dead-lettered, still counted"
    );
    assert!(!sums.contains_key(C));
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Queue rows carry their fields verbatim: unicode keys, reasons, sizes, backends.
pub async fn enqueue_fields_round_trip(store: Db) {
    three_backends(&store).await;
    let rows = [
        (A, "日本/ファイル%_\\", "overwrite", 123_456_789_012i64),
        (C, "plain", "delete: copy displaced", 0),
    ];
    for (b, k, r, s) in rows {
        store.enqueue_cleanup(b, k, r, s).await.unwrap();
    }
    let claimed = store
        .claim_pending_cleanups(10, "instance-ü", fresh_cutoff())
        .await
        .unwrap();
    let got: Vec<(&str, &str, &str, i64)> = claimed
        .iter()
        .map(|i| {
            (
                i.backend_name.as_str(),
                i.object_key.as_str(),
                i.reason.as_str(),
                i.size_bytes,
            )
        })
        .collect();
    assert_eq!(got, rows.to_vec());
    assert!(
        claimed
            .iter()
            .all(|i| i.claimed_by.as_deref() == Some("instance-ü"))
    );
    assert_ledger(&store).await;
}

/// The queue listing is a cursor over ids: pages of any size together give every queued row
/// once, in id order, with its claim; a backend filter keeps that backend's rows; dead
/// letters are not queue rows; a cursor past the last id is an empty page.
pub async fn list_cleanup_queue_pages_by_id(store: Db) {
    three_backends(&store).await;
    for (b, k, n) in [
        (A, "ka", 10),
        (A, "kb", 20),
        (B, "kc", 30),
        (A, "kd", 40),
        (C, "ke", 50),
    ] {
        orphan_bytes_enqueued(&store, b, k, n).await;
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.list_cleanup_queue(None, after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.id;
        seen.extend(page);
    }
    let keys: Vec<(&str, &str, i64)> = seen
        .iter()
        .map(|r| (r.backend_name.as_str(), r.object_key.as_str(), r.size_bytes))
        .collect();
    assert_eq!(
        keys,
        [
            (A, "ka", 10),
            (A, "kb", 20),
            (B, "kc", 30),
            (A, "kd", 40),
            (C, "ke", 50)
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].id < w[1].id), "id order");
    assert!(
        seen.iter()
            .all(|r| r.storage_key == r.object_key && !r.reclaimed)
    );
    let only_a: Vec<String> = store
        .list_cleanup_queue(Some(A), 0, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.object_key)
        .collect();
    assert_eq!(only_a, ["ka", "kb", "kd"]);
    assert!(
        store
            .list_cleanup_queue(None, after, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A claim shows; a dead letter leaves the queue listing.
    let claimed = store
        .claim_pending_cleanups(1, "lister", fresh_cutoff())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let first = &store.list_cleanup_queue(None, 0, 1).await.unwrap()[0];
    assert_eq!(first.id, claimed[0].id);
    assert_eq!(first.claimed_by.as_deref(), Some("lister"));
    assert!(first.claimed_at.is_some());
    let kc = seen.iter().find(|r| r.object_key == "kc").unwrap().id;
    assert!(store.move_cleanup_to_dlq(kc, "dead").await.unwrap());
    let left: Vec<String> = store
        .list_cleanup_queue(None, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.object_key)
        .collect();
    assert_eq!(left, ["ka", "kb", "kd", "ke"]);
    assert!(
        store
            .list_cleanup_queue(Some(B), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}
