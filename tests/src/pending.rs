//! Pending intents and their promotion: every `PendingPromoteResult` path.

use std::time::Duration;

use s3o_store::*;

use crate::support::*;

pub(crate) fn intent(
    id: &str,
    key: &str,
    backend: &str,
    size: i64,
    form: StoredForm,
    created_at: Timestamp,
) -> PendingObject {
    PendingObject {
        intent_id: id.to_owned(),
        object_key: key.to_owned(),
        backend_name: backend.to_owned(),
        size_bytes: size,
        form,
        created_at,
    }
}

/// An age that selects every intent: created at or before the database's now.
fn every_intent() -> Duration {
    Duration::ZERO
}

async fn stored_intent(store: &Db, id: &str) -> PendingObject {
    store
        .get_stale_pending(every_intent(), 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.intent_id == id)
        .unwrap_or_else(|| panic!("intent {id} not stored"))
}

/// Every intent field round trips, the managed flag and the S3 attributes included.
pub async fn insert_pending_round_trip(store: Db) {
    three_backends(&store).await;
    let start = Timestamp::now().minus(Duration::from_secs(60));
    let form = encrypted_form(6);
    let p = intent("i-1", "k/é", A, 1234, form.clone(), Timestamp::ZERO);
    store.insert_pending(&p).await.unwrap();
    let got = stored_intent(&store, "i-1").await;
    assert_eq!(
        (
            got.object_key.as_str(),
            got.backend_name.as_str(),
            got.size_bytes
        ),
        ("k/é", A, 1234)
    );
    assert_eq!(got.form, form);
    assert!(!got.form.managed && !got.form.storage_key.is_empty());
    assert!(got.created_at >= start, "ZERO created_at means now");
    let explicit = Timestamp::now().minus(Duration::from_secs(7200));
    store
        .insert_pending(&intent("i-2", "k2", B, 1, StoredForm::default(), explicit))
        .await
        .unwrap();
    assert_eq!(stored_intent(&store, "i-2").await.created_at, explicit);
    assert_eq!(store.count_pending().await.unwrap(), 2);
    assert_ledger(&store).await;
}

/// Nullable intent fields read back as empty values.
pub async fn insert_pending_plain_nullable_fields(store: Db) {
    three_backends(&store).await;
    store
        .insert_pending(&intent(
            "p",
            "k",
            A,
            0,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    let got = stored_intent(&store, "p").await;
    assert!(!got.form.encrypted);
    assert!(got.form.encryption_key.is_empty());
    assert!(got.form.key_id.is_empty());
    assert_eq!(got.form.plaintext_size, 0);
    assert!(got.form.content_hash.is_empty());
    let hashed = intent("h", "k", A, 5, hashed_form("feed"), Timestamp::ZERO);
    store.insert_pending(&hashed).await.unwrap();
    assert_eq!(stored_intent(&store, "h").await.form.content_hash, "feed");
    assert_ledger(&store).await;
}

/// An intent for an unknown backend is `UnknownBackend`.
pub async fn insert_pending_unknown_backend(store: Db) {
    three_backends(&store).await;
    let p = intent("x", "k", UNKNOWN, 1, StoredForm::default(), Timestamp::ZERO);
    assert_unknown_backend(store.insert_pending(&p).await, UNKNOWN);
    assert_eq!(store.count_pending().await.unwrap(), 0);
    assert_ledger(&store).await;
}

/// A duplicate intent id is a unique violation and keeps the first intent.
pub async fn insert_pending_duplicate_id(store: Db) {
    three_backends(&store).await;
    let p = intent("dup", "k", A, 1, StoredForm::default(), Timestamp::ZERO);
    store.insert_pending(&p).await.unwrap();
    let again = intent("dup", "other", B, 2, StoredForm::default(), Timestamp::ZERO);
    match store.insert_pending(&again).await {
        Err(e) => assert_eq!(e.db_kind(), Some(DbErrorKind::UniqueViolation), "{e:?}"),
        Ok(()) => panic!("duplicate intent id accepted"),
    }
    assert_eq!(store.count_pending().await.unwrap(), 1);
    assert_eq!(stored_intent(&store, "dup").await.object_key, "k");
    assert_ledger(&store).await;
}

/// Deleting one intent, a missing one, and every intent of a backend.
pub async fn delete_pending_and_by_backend(store: Db) {
    three_backends(&store).await;
    for (i, b) in [A, A, B, A].iter().enumerate() {
        store
            .insert_pending(&intent(
                &format!("i{i}"),
                &format!("k{i}"),
                b,
                1,
                StoredForm::default(),
                Timestamp::ZERO,
            ))
            .await
            .unwrap();
    }
    store.delete_pending("i0").await.unwrap();
    store.delete_pending("i0").await.unwrap();
    store.delete_pending("missing").await.unwrap();
    assert_eq!(store.count_pending().await.unwrap(), 3);
    assert_eq!(store.delete_pending_by_backend(A).await.unwrap(), 2);
    assert_eq!(store.delete_pending_by_backend(A).await.unwrap(), 0);
    assert_eq!(store.count_pending().await.unwrap(), 1);
    assert_eq!(stored_intent(&store, "i2").await.backend_name, B);
    assert_ledger(&store).await;
}

/// Stale intents: created at least `older_than` ago by the database's clock, oldest first,
/// limited.
pub async fn stale_pending_cutoff_and_limit(store: Db) {
    three_backends(&store).await;
    let now = Timestamp::now();
    let hour = Duration::from_secs(3600);
    let ages = [
        ("new", now),
        ("old", now.minus(2 * hour)),
        ("mid", now.minus(hour)),
    ];
    for (id, at) in ages {
        store
            .insert_pending(&intent(id, id, A, 1, StoredForm::default(), at))
            .await
            .unwrap();
    }
    let ids = |v: Vec<PendingObject>| v.into_iter().map(|p| p.intent_id).collect::<Vec<_>>();
    let half_hour = Duration::from_secs(1800);
    assert_eq!(
        ids(store.get_stale_pending(half_hour, 10).await.unwrap()),
        vec!["old", "mid"]
    );
    assert_eq!(
        ids(store.get_stale_pending(half_hour, 1).await.unwrap()),
        vec!["old"]
    );
    assert_eq!(
        ids(store.get_stale_pending(hour + half_hour, 10).await.unwrap()),
        vec!["old"]
    );
    assert_eq!(
        ids(store.get_stale_pending(every_intent(), 0).await.unwrap()),
        vec!["old", "mid", "new"]
    );
    assert!(
        store
            .get_stale_pending(3 * hour, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// A committed promotion records the intent's stored form (storage key, ETag, content type,
/// user metadata, `managed = false`) and clears the intent.
pub async fn promote_committed_carries_stored_form(store: Db) {
    three_backends(&store).await;
    let form = encrypted_form(7);
    assert!(!form.managed);
    store
        .insert_pending(&intent("i", "k", A, 900, form.clone(), Timestamp::ZERO))
        .await
        .unwrap();
    let p = stored_intent(&store, "i").await;
    let (result, displaced) = store.promote_pending(&p).await.unwrap();
    assert_eq!(result, PendingPromoteResult::Committed);
    assert!(displaced.is_empty());
    let c = copy_on(&store, "k", A).await;
    assert_eq!(c.size_bytes, 900);
    assert_eq!(
        c.form, form,
        "every field of the intent's form, managed = false included"
    );
    assert_eq!(
        store.count_pending().await.unwrap(),
        0,
        "intent not cleared"
    );
    assert_eq!(used(&store, A).await, 900);
    assert_ledger(&store).await;
}

/// A committed promotion displaces copies recorded before the intent.
pub async fn promote_committed_displaces_older_copies(store: Db) {
    three_backends(&store).await;
    put(&store, "k", B, 40).await;
    replicate(&store, "k", C, B).await.unwrap();
    let older = copies(&store, "k").await;
    let after_copies = older.iter().map(|c| c.created_at).max().unwrap();
    let p = intent(
        "i",
        "k",
        A,
        10,
        StoredForm::default(),
        after_copies.plus(Duration::from_micros(1)),
    );
    store.insert_pending(&p).await.unwrap();
    let (result, displaced) = store.promote_pending(&p).await.unwrap();
    assert_eq!(result, PendingPromoteResult::Committed);
    assert_eq!(bs(&displaced), vec![(B.into(), 40), (C.into(), 40)]);
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 10)]);
    assert_eq!((used(&store, B).await, used(&store, C).await), (0, 0));
    assert_ledger(&store).await;
}

/// An intent that is gone resolves as `AlreadyResolved` and changes nothing.
pub async fn promote_already_resolved(store: Db) {
    three_backends(&store).await;
    put(&store, "k", B, 5).await;
    let p = intent("ghost", "k", A, 10, StoredForm::default(), Timestamp::now());
    let before = snapshot(&store).await;
    let (result, displaced) = store.promote_pending(&p).await.unwrap();
    assert_eq!(result, PendingPromoteResult::AlreadyResolved);
    assert_eq!(result.as_u8(), 2);
    assert!(displaced.is_empty());
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// A write of the key committed after the intent supersedes it: intent dropped, copy kept.
pub async fn promote_superseded_by_newer_write(store: Db) {
    three_backends(&store).await;
    let p = intent(
        "old",
        "k",
        A,
        10,
        StoredForm::default(),
        Timestamp::now().minus(Duration::from_secs(3600)),
    );
    store.insert_pending(&p).await.unwrap();
    put(&store, "k", B, 77).await;
    let before_quotas = snapshot(&store).await.quotas;
    let (result, orphans) = store.promote_pending(&p).await.unwrap();
    assert_eq!(result, PendingPromoteResult::Superseded);
    assert_eq!(result.as_u8(), 3);
    // The intent's bytes on A are garbage now: enqueued for cleanup, charged to A's orphans.
    assert_eq!(bs(&orphans), vec![(A.to_owned(), 10)]);
    assert_eq!(orphans[0].storage_key, "k");
    assert_eq!(placement(&store, "k").await, vec![(B.to_owned(), 77)]);
    assert_eq!(
        store.count_pending().await.unwrap(),
        0,
        "superseded intent kept"
    );
    let after = snapshot(&store).await;
    assert_eq!(
        after.quotas[A],
        (before_quotas[A].0, before_quotas[A].1, 10)
    );
    assert_eq!(after.quotas[B], before_quotas[B]);
    assert_eq!(after.queue, 1);
    assert_orphans_accounted(&store).await;
    // A newer write at the intent's own path on its backend overwrote those bytes: nothing
    // to clean, the intent just goes.
    let p2 = intent(
        "old2",
        "k2",
        A,
        10,
        StoredForm::default(),
        Timestamp::now().minus(Duration::from_secs(3600)),
    );
    store.insert_pending(&p2).await.unwrap();
    put(&store, "k2", A, 5).await;
    let (result, orphans) = store.promote_pending(&p2).await.unwrap();
    assert_eq!(
        (result, orphans.len()),
        (PendingPromoteResult::Superseded, 0)
    );
    assert_eq!(store.count_pending().await.unwrap(), 0);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// A copy with exactly the intent's timestamp does not supersede it: the intent commits.
pub async fn promote_equal_timestamp_promotes(store: Db) {
    three_backends(&store).await;
    put(&store, "k", B, 30).await;
    let t = copy_on(&store, "k", B).await.created_at;
    let p = intent("eq", "k", A, 20, StoredForm::default(), t);
    store.insert_pending(&p).await.unwrap();
    let stored = stored_intent(&store, "eq").await;
    assert_eq!(stored.created_at, t);
    let (result, displaced) = store.promote_pending(&stored).await.unwrap();
    assert_eq!(result, PendingPromoteResult::Committed);
    assert_eq!(result.as_u8(), 0);
    assert_eq!(bs(&displaced), vec![(B.into(), 30)]);
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 20)]);
    assert_ledger(&store).await;
}

/// Promoting the same intent twice: the second is `AlreadyResolved`.
pub async fn promote_twice_second_already_resolved(store: Db) {
    three_backends(&store).await;
    let p = intent("once", "k", A, 3, StoredForm::default(), Timestamp::ZERO);
    store.insert_pending(&p).await.unwrap();
    let p = stored_intent(&store, "once").await;
    assert_eq!(
        store.promote_pending(&p).await.unwrap().0,
        PendingPromoteResult::Committed
    );
    let before = snapshot(&store).await;
    assert_eq!(
        store.promote_pending(&p).await.unwrap().0,
        PendingPromoteResult::AlreadyResolved
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(used(&store, A).await, 3, "charged once");
    assert_ledger(&store).await;
}

/// A promotion that does not fit the quota errors and changes nothing; the intent stays.
pub async fn promote_over_quota_is_abandoned(store: Db) {
    backends(&store, &[(A, 100)]).await;
    let form = StoredForm {
        storage_key: "blobs/big".into(),
        ..StoredForm::default()
    };
    let p = intent("big", "k", A, 200, form, Timestamp::ZERO);
    store.insert_pending(&p).await.unwrap();
    let p = stored_intent(&store, "big").await;
    let before = snapshot(&store).await;
    assert_eq!(
        (before.pending, before.queue, before.quotas[A]),
        (1, 0, (0, 100, 0))
    );
    // Finding 5: the reaper must not loop. The promotion cannot be admitted, so it ends:
    // the intent is deleted and its uploaded bytes enqueued, in one transaction.
    let (result, orphans) = store.promote_pending(&p).await.unwrap();
    assert_eq!(result, PendingPromoteResult::Abandoned);
    assert_eq!(result.as_u8(), 4);
    assert_eq!(bs(&orphans), vec![(A.to_owned(), 200)]);
    assert_eq!(orphans[0].storage_key, "blobs/big");
    let after = snapshot(&store).await;
    assert_eq!((after.pending, after.queue, after.dlq), (0, 1, 0));
    assert_eq!(
        after.quotas[A],
        (0, 100, 200),
        "uploaded bytes counted as orphans"
    );
    assert_eq!(after.copies, before.copies, "nothing committed");
    assert_orphans_accounted(&store).await;
    // The next reaper pass finds it resolved.
    let again = store.promote_pending(&p).await.unwrap();
    assert_eq!(
        (again.0, again.1.len()),
        (PendingPromoteResult::AlreadyResolved, 0)
    );
    // The caller deletes the bytes and completes the row it was handed.
    assert_eq!(
        store
            .complete_cleanup_item(&orphans[0].cleanup)
            .await
            .unwrap(),
        CleanupOutcome::Completed
    );
    assert_eq!(snapshot(&store).await.quotas[A], (0, 100, 0));
    assert_ledger(&store).await;
}

/// Racing reapers promote one intent: exactly one commits, the rest see it resolved.
pub async fn concurrent_promotions_commit_once(store: Db) {
    three_backends(&store).await;
    store
        .insert_pending(&intent(
            "race",
            "k",
            A,
            64,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    let p = stored_intent(&store, "race").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let s = store.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            s.promote_pending(&p).await.unwrap().0
        }));
    }
    let mut committed = 0;
    for t in tasks {
        match t.await.unwrap() {
            PendingPromoteResult::Committed => committed += 1,
            PendingPromoteResult::AlreadyResolved => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(committed, 1);
    assert_eq!(used(&store, A).await, 64);
    assert_ledger(&store).await;
}

/// A promotion racing the write that owns the intent: key lock before claim on both sides,
/// so neither deadlocks; one copy remains and no intent is left.
pub async fn promote_races_write_lock_then_claim(store: Db) {
    three_backends(&store).await;
    for round in 0..10 {
        let id = format!("w{round}");
        let p = intent(
            &id,
            "contended",
            A,
            10 + round,
            StoredForm::default(),
            Timestamp::ZERO,
        );
        store.insert_pending(&p).await.unwrap();
        let p = stored_intent(&store, &id).await;
        let (s1, s2) = (store.clone(), store.clone());
        let writer = tokio::spawn(async move {
            s1.record_object_and_clear_pending("contended", A, 5, &StoredForm::default(), &id)
                .await
                .unwrap()
        });
        let reaper = tokio::spawn(async move { s2.promote_pending(&p).await.unwrap().0 });
        writer.await.unwrap();
        let r = reaper.await.unwrap();
        assert!(
            matches!(
                r,
                PendingPromoteResult::Committed | PendingPromoteResult::AlreadyResolved
            ),
            "{r:?}"
        );
        assert_eq!(store.count_pending().await.unwrap(), 0, "round {round}");
        assert_eq!(copies(&store, "contended").await.len(), 1);
        assert_ledger(&store).await;
    }
}

/// A replica of an older version made while a newer write's intent is pending is not a
/// newer write: the intent still commits (replication is not a new version of the key).
pub async fn replica_does_not_supersede_newer_intent(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 10).await;
    let old_version = copy_on(&store, "k", A).await.created_at;
    let p = intent(
        "newer",
        "k",
        C,
        99,
        StoredForm::default(),
        old_version.plus(Duration::from_micros(1)),
    );
    store.insert_pending(&p).await.unwrap();
    let p = stored_intent(&store, "newer").await;
    // The replicator copies the old version after the intent was recorded.
    assert_eq!(
        replicate(&store, "k", B, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 10 }
    );
    let (result, displaced) = store.promote_pending(&p).await.unwrap();
    assert_eq!(
        result,
        PendingPromoteResult::Committed,
        "a replica of the old version superseded a newer write"
    );
    assert_eq!(bs(&displaced), vec![(A.into(), 10), (B.into(), 10)]);
    assert_eq!(placement(&store, "k").await, vec![(C.to_owned(), 99)]);
    assert_ledger(&store).await;
}

/// Promotion commits the stored intent (size, backend, form), not the caller's copy of it.
pub async fn promote_uses_stored_intent_not_caller_copy(store: Db) {
    three_backends(&store).await;
    let form = StoredForm {
        managed: true,
        ..encrypted_form(31)
    };
    store
        .insert_pending(&intent("s", "k", A, 900, form.clone(), Timestamp::ZERO))
        .await
        .unwrap();
    let stale_copy = intent("s", "k", A, 5, StoredForm::default(), Timestamp::ZERO);
    let (result, displaced) = store.promote_pending(&stale_copy).await.unwrap();
    assert_eq!(result, PendingPromoteResult::Committed);
    assert!(displaced.is_empty());
    let c = copies(&store, "k").await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!((c[0].backend_name.as_str(), c[0].size_bytes), (A, 900));
    assert_eq!(c[0].form, form);
    assert_eq!((used(&store, A).await, used(&store, B).await), (900, 0));
    assert_eq!(store.count_pending().await.unwrap(), 0);
    // Naming the intent with another backend (or key) is refused: nothing changes.
    store
        .insert_pending(&intent(
            "s2",
            "k2",
            A,
            9,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    let wrong_backend = intent("s2", "k2", B, 9, StoredForm::default(), Timestamp::ZERO);
    assert_invalid(store.promote_pending(&wrong_backend).await, "other backend");
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// An intent id paired with another key is refused (the wrong key is locked); nothing
/// changes and the intent stays.
pub async fn promote_intent_of_another_key_refused(store: Db) {
    three_backends(&store).await;
    store
        .insert_pending(&intent(
            "x",
            "k1",
            A,
            10,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    let wrong = intent("x", "k2", A, 10, StoredForm::default(), Timestamp::ZERO);
    assert_invalid(store.promote_pending(&wrong).await, "intent of another key");
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(stored_intent(&store, "x").await.object_key, "k1");
    assert_ledger(&store).await;
}

/// Abandoning an intent drops it and queues its bytes (orphan-charged, claimed by this store)
/// in one transaction, even when the key was deleted or rewritten meanwhile: the intent's
/// bytes never become the object. Twice ⇒ `AlreadyResolved`, nothing changes.
pub async fn abandon_queues_bytes_and_never_promotes(store: Db) {
    three_backends(&store).await;
    put(&store, "k", B, 40).await;
    let form = StoredForm {
        storage_key: "k/@abandoned".into(),
        etag: "bad".into(),
        ..StoredForm::default()
    };
    store
        .insert_pending(&intent("i", "k", A, 25, form, Timestamp::ZERO))
        .await
        .unwrap();
    let p = stored_intent(&store, "i").await;
    let (result, queued) = store.abandon_pending(&p).await.unwrap();
    assert_eq!(result, PendingPromoteResult::Abandoned);
    assert_eq!(bs(&queued), vec![(A.to_owned(), 25)]);
    assert_eq!(queued[0].storage_key, "k/@abandoned");
    assert_eq!(store.count_pending().await.unwrap(), 0);
    assert_eq!(
        placement(&store, "k").await,
        vec![(B.to_owned(), 40)],
        "the live version stays"
    );
    assert_eq!((used(&store, A).await, orphan(&store, A).await), (0, 25));
    assert_eq!(
        store
            .cleanup_bytes_by_backend()
            .await
            .unwrap()
            .get(A)
            .copied(),
        Some((25, 0)),
        "the intent's bytes are queued"
    );
    assert_orphans_accounted(&store).await;
    // The row is born claimed by this store: completing it releases the orphan bytes.
    store
        .complete_cleanup_item(&queued[0].cleanup)
        .await
        .unwrap();
    assert_eq!(orphan(&store, A).await, 0);
    let before = snapshot(&store).await;
    let (again, none) = store.abandon_pending(&p).await.unwrap();
    assert_eq!(again, PendingPromoteResult::AlreadyResolved);
    assert!(none.is_empty());
    assert_eq!(snapshot(&store).await, before);
    // An intent named under another key is refused and stays.
    store
        .insert_pending(&intent(
            "j",
            "k2",
            A,
            3,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    let wrong = PendingObject {
        object_key: "other".into(),
        ..stored_intent(&store, "j").await
    };
    let r = store.abandon_pending(&wrong).await;
    assert!(matches!(r, Err(StoreError::InvalidInput { .. })), "{r:?}");
    assert_eq!(store.count_pending().await.unwrap(), 1);
    assert_ledger(&store).await;
}

/// A heartbeat makes an old intent young again (the reaper's age cut skips it); unknown ids
/// are skipped; a commit naming an intent that is gone is refused and changes nothing.
pub async fn touch_keeps_running_writes_and_gone_intents_refuse_commits(store: Db) {
    three_backends(&store).await;
    let old = Timestamp::now().minus(Duration::from_secs(3600));
    store
        .insert_pending(&intent("run", "k", A, 5, StoredForm::default(), old))
        .await
        .unwrap();
    let stale = |s: Db| async move {
        s.get_stale_pending(Duration::from_secs(600), 100)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(stale(store.clone()).await, 1);
    let n = store
        .touch_pending(&["run".to_owned(), "nobody".to_owned()])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(stale(store.clone()).await, 0, "a touched intent is young");
    assert_eq!(store.touch_pending(&[]).await.unwrap(), 0);
    let too_many: Vec<String> = (0..1001).map(|i| format!("i{i}")).collect();
    assert!(matches!(
        store.touch_pending(&too_many).await,
        Err(StoreError::InvalidInput { .. })
    ));
    let before = snapshot(&store).await;
    let r = store
        .record_object_if(
            "k",
            A,
            5,
            &StoredForm::default(),
            Some("abandoned-meanwhile"),
            &WritePrecondition::default(),
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::PendingIntentGone { .. })),
        "{r:?}"
    );
    assert_eq!(snapshot(&store).await, before);
    store
        .record_object_if(
            "k",
            A,
            5,
            &StoredForm::default(),
            Some("run"),
            &WritePrecondition::default(),
        )
        .await
        .unwrap();
    assert_eq!(store.count_pending().await.unwrap(), 0);
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 5)]);
    assert_ledger(&store).await;
}

/// The backend multipart upload a write opened is recorded with its intent (replaced by a later
/// one), read back by id, and gone with the intent; an unknown intent records nothing.
pub async fn backend_upload_id_rides_with_the_intent(store: Db) {
    three_backends(&store).await;
    store
        .insert_pending(&intent(
            "w",
            "k",
            A,
            9,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    assert_eq!(store.get_pending_backend_upload("w").await.unwrap(), None);
    assert!(store.set_pending_backend_upload("w", "up-1").await.unwrap());
    assert!(store.set_pending_backend_upload("w", "up-2").await.unwrap());
    assert_eq!(
        store
            .get_pending_backend_upload("w")
            .await
            .unwrap()
            .as_deref(),
        Some("up-2")
    );
    assert!(
        !store
            .set_pending_backend_upload("ghost", "up")
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_pending_backend_upload("ghost").await.unwrap(),
        None
    );
    assert!(matches!(
        store.set_pending_backend_upload("w", "").await,
        Err(StoreError::InvalidInput { .. })
    ));
    let p = stored_intent(&store, "w").await;
    assert_eq!(p.size_bytes, 9, "the intent itself is unchanged");
    store.abandon_pending(&p).await.unwrap();
    assert_eq!(store.get_pending_backend_upload("w").await.unwrap(), None);
    assert_ledger(&store).await;
}
