//! Issue 11: workflows that cannot lose a byte. One case per numbered finding, with exact
//! queue, orphan, DLQ, intent and quota values before and after.

use std::time::Duration;

use s3o_store::*;

use crate::support::*;

/// Finding 1: every removal enqueues its bytes and charges `orphan_bytes` in its own
/// transaction, born claimed by this store; the caller deletes and completes.
pub async fn removals_enqueue_their_bytes(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 100).await;
    replicate(&store, "k", B, A).await.unwrap();
    let snap = snapshot(&store).await;
    assert_eq!(
        (snap.queue, snap.quotas[A], snap.quotas[B]),
        (0, (100, GIB, 0), (100, GIB, 0))
    );
    let gone = store.delete_object("k").await.unwrap();
    assert_eq!(bs(&gone), vec![(A.into(), 100), (B.into(), 100)]);
    let after = snapshot(&store).await;
    assert_eq!(
        (after.quotas[A], after.quotas[B]),
        ((0, GIB, 100), (0, GIB, 100))
    );
    assert_eq!(after.queue, 2);
    let states = store.cleanup_queue_states().await.unwrap();
    assert_eq!((states.claimed, states.due, states.waiting), (2, 0, 0));
    for d in &gone {
        assert_eq!(d.storage_key, "k");
        assert_eq!(d.cleanup.claimed_by, store.instance_id());
    }
    assert_orphans_accounted(&store).await;
    // A fresh-claim worker does not race the caller's immediate delete.
    let fresh_cutoff = Duration::from_secs(300);
    assert!(
        store
            .claim_pending_cleanups(10, "worker", fresh_cutoff)
            .await
            .unwrap()
            .is_empty()
    );
    for d in &gone {
        assert_eq!(
            store.complete_cleanup_item(&d.cleanup).await.unwrap(),
            CleanupOutcome::Completed
        );
    }
    let done = snapshot(&store).await;
    assert_eq!((done.queue, done.quotas[A].2, done.quotas[B].2), (0, 0, 0));

    // An overwrite on the same backend at another storage path displaces the old bytes; at
    // the same path it does not.
    let at = |p: &str| StoredForm {
        storage_key: p.into(),
        ..StoredForm::default()
    };
    store.record_object("v", A, 10, &at("v/1")).await.unwrap();
    let d = store.record_object("v", A, 12, &at("v/2")).await.unwrap();
    assert_eq!(bs(&d), vec![(A.into(), 10)]);
    assert_eq!(d[0].storage_key, "v/1");
    let d = store.record_object("v", A, 13, &at("v/2")).await.unwrap();
    assert!(d.is_empty());
    assert_eq!(quota(&store, A).await, (13, GIB, 10));
    // Move, location delete and excess-copy removal leave the source's bytes to the queue.
    replicate(&store, "v", B, A).await.unwrap();
    assert_eq!(
        moved_bytes(&move_copy(&store, "v", B, C).await.unwrap()),
        Some(13)
    );
    assert_eq!(quota(&store, B).await, (0, GIB, 13));
    assert!(store.remove_excess_copy("v", C, 1).await.unwrap().is_some());
    assert_eq!(quota(&store, C).await, (0, GIB, 13));
    assert!(
        store
            .delete_object_location("v", A)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(quota(&store, A).await, (0, GIB, 23));
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 4);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Finding 2: a claimant whose claim went stale (a worker reclaimed the row after the grace
/// cutoff) cannot complete or retry it; the new claimant can.
pub async fn stale_claimant_changes_nothing(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 40).await;
    let gone = store.delete_object("k").await.unwrap();
    let mine = gone[0].cleanup.clone();
    // The writer "died": a worker reclaims after the grace cutoff.
    let taken = store
        .claim_pending_cleanups(10, "worker", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(taken[0].reclaimed);
    let theirs = taken[0].claim().unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        store.complete_cleanup_item(&mine).await.unwrap(),
        CleanupOutcome::StaleClaim
    );
    assert_eq!(
        store
            .retry_cleanup_item(&mine, Duration::ZERO, "late")
            .await
            .unwrap(),
        CleanupOutcome::StaleClaim
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        store.complete_cleanup_item(&theirs).await.unwrap(),
        CleanupOutcome::Completed
    );
    assert_eq!(quota(&store, A).await, (0, GIB, 0));
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Finding 3: clearing an intent of another key, or of the same key on another backend, is
/// refused and changes nothing; the write's own intent is cleared.
pub async fn clear_pending_checks_ownership(store: Db) {
    three_backends(&store).await;
    let intent = |id: &str, key: &str, b: &str| PendingObject {
        intent_id: id.into(),
        object_key: key.into(),
        backend_name: b.into(),
        size_bytes: 7,
        form: StoredForm::default(),
        created_at: Timestamp::ZERO,
    };
    store
        .insert_pending(&intent("other", "OTHER", A))
        .await
        .unwrap();
    store
        .insert_pending(&intent("elsewhere", "MINE", B))
        .await
        .unwrap();
    store
        .insert_pending(&intent("mine", "MINE", A))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    for id in ["other", "elsewhere"] {
        assert_invalid(
            store
                .record_object_and_clear_pending("MINE", A, 7, &StoredForm::default(), id)
                .await,
            id,
        );
        assert_eq!(snapshot(&store).await, before, "{id}");
    }
    assert_eq!(before.pending, 3);
    store
        .record_object_and_clear_pending("MINE", A, 7, &StoredForm::default(), "mine")
        .await
        .unwrap();
    let after = snapshot(&store).await;
    assert_eq!((after.pending, after.quotas[A].0), (2, 7));
    assert_ledger(&store).await;
}

/// Finding 6: removing a backend while writers target it: every write either commits before
/// the removal or fails with `UnknownBackend` (never a foreign-key error), and nothing is left
/// referencing the backend.
pub async fn backend_removal_racing_writes(store: Db) {
    for round in 0..4 {
        three_backends(&store).await;
        let mut writers = Vec::new();
        for w in 0..4 {
            let s = store.clone();
            writers.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..15 {
                    let key = format!("r{round}/w{w}/{i}");
                    let r = s.record_object(&key, C, 3, &StoredForm::default()).await;
                    let d = s.delete_object(&key).await.map(|_| ());
                    answers.push(r.map(|_| ()));
                    answers.push(d);
                }
                answers
            }));
        }
        tokio::task::yield_now().await;
        if let Err(e) = store.delete_backend_data(C).await {
            panic!("round {round}: removal racing writes failed: {e:?}");
        }
        for w in writers {
            for a in w.await.unwrap() {
                match a {
                    Ok(())
                    | Err(StoreError::UnknownBackend { .. })
                    | Err(StoreError::ObjectNotFound { .. }) => {}
                    Err(e) => panic!("round {round}: write racing removal failed with {e:?}"),
                }
            }
        }
        let stats = store.get_quota_stats().await.unwrap();
        assert!(!stats.contains_key(C), "round {round}");
        assert!(
            !store
                .cleanup_bytes_by_backend()
                .await
                .unwrap()
                .contains_key(C)
        );
        assert_eq!(store.backend_object_stats(C).await.unwrap(), (0, 0));
        assert_ledger(&store).await;
    }
}

/// `cleanup_queue_states` counts every row once: claimed, due or waiting.
pub async fn queue_states_partition_rows(store: Db) {
    three_backends(&store).await;
    orphan_bytes_enqueued(&store, A, "due", 1).await;
    orphan_bytes_enqueued(&store, A, "later", 2).await;
    put(&store, "k", B, 3).await;
    store.delete_object("k").await.unwrap();
    let later = store
        .get_due_cleanups(10)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.object_key == "later")
        .unwrap()
        .id;
    let claim = claim_of(&store, later).await;
    store
        .retry_cleanup_item(&claim, Duration::from_secs(3600), "throttled")
        .await
        .unwrap();
    // claim_of claimed "due" too (and re-claimed the born-claimed row).
    let s = store.cleanup_queue_states().await.unwrap();
    assert_eq!((s.claimed, s.due, s.waiting), (2, 0, 1));
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 3);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Bytes the ledger never recorded are queued and charged in one transaction, born claimed by
/// this store; completing the claim releases them; bad input and unknown backends change
/// nothing.
pub async fn orphaned_bytes_enqueue_and_charge_together(store: Db) {
    three_backends(&store).await;
    let entry = |backend: &str, size: i64| CleanupEntry {
        backend_name: backend.into(),
        object_key: "upload/1".into(),
        storage_key: "blobs/upload-1".into(),
        reason: "upload not committed".into(),
        size_bytes: size,
    };
    let d = store.enqueue_orphaned_bytes(&entry(A, 40)).await.unwrap();
    assert_eq!((d.backend_name.as_str(), d.size_bytes), (A, 40));
    assert_eq!(d.storage_key, "blobs/upload-1");
    assert_eq!(d.cleanup.claimed_by, store.instance_id());
    assert_eq!(quota(&store, A).await, (0, GIB, 40));
    let states = store.cleanup_queue_states().await.unwrap();
    assert_eq!((states.claimed, states.due, states.waiting), (1, 0, 0));
    assert_orphans_accounted(&store).await;

    let before = snapshot(&store).await;
    assert_unknown_backend(
        store.enqueue_orphaned_bytes(&entry(UNKNOWN, 1)).await,
        UNKNOWN,
    );
    assert_invalid(
        store.enqueue_orphaned_bytes(&entry(A, -1)).await,
        "negative size",
    );
    assert_invalid(
        store.enqueue_orphaned_bytes(&entry("", 1)).await,
        "empty backend",
    );
    assert_eq!(
        snapshot(&store).await,
        before,
        "refused entries change nothing"
    );

    assert_eq!(
        store.complete_cleanup_item(&d.cleanup).await.unwrap(),
        CleanupOutcome::Completed
    );
    assert_eq!(quota(&store, A).await, (0, GIB, 0));
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 0);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// Move, location delete and excess-copy removal return the claim of the row they enqueue, born
/// claimed by this store, like `delete_object`: the caller deletes the bytes at once and
/// completes the claim, leaving nothing for a worker to wait on.
pub async fn single_copy_removals_return_their_claims(store: Db) {
    three_backends(&store).await;
    let at = |p: &str| StoredForm {
        storage_key: p.into(),
        ..StoredForm::default()
    };
    store.record_object("v", A, 10, &at("v/1")).await.unwrap();
    replicate(&store, "v", B, A).await.unwrap();

    let moved = store.move_object_location("v", B, C, "v/1").await.unwrap();
    let MoveOutcome::Moved { bytes, source } = moved else {
        panic!("move refused: {moved:?}");
    };
    assert_eq!(bytes, 10);
    assert_eq!(
        (
            source.backend_name.as_str(),
            source.size_bytes,
            source.storage_key.as_str()
        ),
        (B, 10, "v/1")
    );
    let excess = store.remove_excess_copy("v", C, 1).await.unwrap().unwrap();
    assert_eq!((excess.backend_name.as_str(), excess.size_bytes), (C, 10));
    assert_eq!(excess.storage_key, "v/1");
    let located = store.delete_object_location("v", A).await.unwrap().unwrap();
    assert_eq!((located.backend_name.as_str(), located.size_bytes), (A, 10));
    assert_eq!(located.storage_key, "v/1");
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 3);
    // A worker with a short grace finds nothing to take: the rows are this store's.
    let taken = store
        .claim_pending_cleanups(10, "worker", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        taken.is_empty(),
        "claimed rows handed to a worker: {taken:?}"
    );
    for d in [source, excess, located] {
        assert_eq!(
            store.complete_cleanup_item(&d.cleanup).await.unwrap(),
            CleanupOutcome::Completed
        );
    }
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 0);
    for b in [A, B, C] {
        assert_eq!(quota(&store, b).await, (0, GIB, 0), "{b}");
    }
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}
