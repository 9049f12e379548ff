//! Quotas: limits, the admission guard with orphan bytes, unlimited backends, backend
//! selection (charged multipart parts, unknown names), counters.

use s3o_store::*;

use crate::support::*;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Starts a multipart upload on `backend` with one recorded part of `size` bytes (charged to
/// the backend while the upload is open).
pub(crate) async fn in_flight_part(store: &Db, upload_id: &str, backend: &str, size: i64) {
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: upload_id.to_owned(),
            object_key: format!("mp/{upload_id}"),
            backend_name: backend.to_owned(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    store
        .record_part(upload_id, 1, "etag-1", size, &StoredForm::default())
        .await
        .unwrap();
}

/// New backends start at zero; re-syncing changes the limit and keeps used and orphan bytes.
pub async fn sync_quota_limits_keeps_counters(store: Db) {
    backends(&store, &[(A, 1000)]).await;
    put(&store, "k", A, 300).await;
    orphan_bytes_enqueued(&store, A, "gone", 50).await;
    backends(&store, &[(A, 5000), (B, 2000)]).await;
    assert_eq!(quota(&store, A).await, (300, 5000, 50));
    assert_eq!(quota(&store, B).await, (0, 2000, 0));
    // A backend missing from a later sync keeps its row.
    backends(&store, &[(B, 0)]).await;
    assert_eq!(quota(&store, A).await, (300, 5000, 50));
    assert_eq!(quota(&store, B).await, (0, 0, 0));
    assert_eq!(store.get_quota_stats().await.unwrap().len(), 2);
    assert_ledger(&store).await;
}

/// A negative limit is `InvalidInput` and the whole sync is refused.
pub async fn negative_quota_limit_rejected(store: Db) {
    backends(&store, &[(A, 1000)]).await;
    let before = snapshot(&store).await;
    let r = store
        .sync_quota_limits(&[(A.to_owned(), 10), (B.to_owned(), -1)])
        .await;
    assert_invalid(r, "negative limit");
    assert_eq!(snapshot(&store).await, before, "partial sync applied");
    assert_ledger(&store).await;
}

/// The guard counts orphan bytes: admits at the exact byte, refuses one more.
pub async fn quota_guard_counts_orphan_bytes(store: Db) {
    backends(&store, &[(A, 1000)]).await;
    store.increment_orphan_bytes(A, 300).await.unwrap();
    assert_no_space(
        store
            .record_object("k", A, 701, &StoredForm::default())
            .await,
    );
    assert!(copies(&store, "k").await.is_empty());
    put(&store, "k", A, 700).await;
    assert_eq!(quota(&store, A).await, (700, 1000, 300));
    assert_no_space(
        store
            .record_object("one-more", A, 1, &StoredForm::default())
            .await,
    );
    assert_no_space(
        store
            .import_object(&ImportedObject::new("one-more", A, 1))
            .await,
    );
    put(&store, "zero", A, 0).await;
    // Releasing orphan bytes makes room again.
    store.decrement_orphan_bytes(A, 1).await.unwrap();
    put(&store, "one-more", A, 1).await;
    assert_eq!(quota(&store, A).await, (701, 1000, 299));
    assert_ledger(&store).await;
}

/// A limit of 0 means unlimited.
pub async fn unlimited_backend_admits_anything(store: Db) {
    backends(&store, &[(A, 0), (B, 10)]).await;
    let huge = 1i64 << 50;
    put(&store, "huge", A, huge).await;
    store.increment_orphan_bytes(A, huge).await.unwrap();
    put(&store, "huge2", A, huge).await;
    assert_eq!(used(&store, A).await, 2 * huge);
    assert_eq!(
        store
            .get_backend_with_space(1 << 60, &names(&[B, A]))
            .await
            .unwrap(),
        A
    );
    assert_eq!(
        store
            .get_least_utilized_backend(1 << 40, &names(&[A, B]))
            .await
            .unwrap(),
        A
    );
    assert_ledger(&store).await;
}

/// An unlimited backend admits up to `i64::MAX` bytes (used + orphan) and refuses the charge
/// past it with `InvalidInput`, changing nothing and not counting against the breaker, on both
/// engines alike; every quota read keeps answering (PostgreSQL once admitted eight 2^60
/// records through its stripes, whose sum then broke every read).
pub async fn unlimited_backend_refuses_a_charge_past_the_largest_counter(store: Db) {
    backends(&store, &[(A, 0), (B, 10)]).await;
    let max_size = 1i64 << 60;
    for i in 0..7 {
        put(&store, &format!("e{i}"), A, max_size).await;
    }
    assert_eq!(used(&store, A).await, 7 * max_size);
    // The eighth 2^60 record would make 2^63: refused, nothing changed.
    let before = snapshot(&store).await;
    assert_invalid(
        store
            .record_object("e7", A, max_size, &StoredForm::default())
            .await,
        "a record past i64::MAX",
    );
    assert_eq!(
        snapshot(&store).await,
        before,
        "a refused charge changed the ledger"
    );
    // Exactly up to the largest counter is fine.
    let edge = i64::MAX - 7 * max_size;
    put(&store, "edge", A, edge).await;
    assert_eq!(quota(&store, A).await, (i64::MAX, 0, 0));
    let before = snapshot(&store).await;
    assert_invalid(
        store
            .record_object("one", A, 1, &StoredForm::default())
            .await,
        "one byte past i64::MAX",
    );
    // Orphan bytes count too: the backend cannot hold one more byte of them either.
    assert_invalid(
        store
            .enqueue_orphaned_bytes(&CleanupEntry {
                backend_name: A.to_owned(),
                object_key: "stray".to_owned(),
                storage_key: String::new(),
                reason: "test".to_owned(),
                size_bytes: 1,
            })
            .await,
        "an orphan byte past i64::MAX",
    );
    assert_invalid(store.increment_orphan_bytes(A, 1).await, "orphan counter");
    assert_eq!(
        snapshot(&store).await,
        before,
        "a refused charge changed the ledger"
    );
    // Every quota read still answers, and routing no longer offers the full backend.
    let caps = store.backend_capacities(&names(&[A, B])).await.unwrap();
    let a = caps.iter().find(|c| c.backend_name == A).unwrap();
    assert_eq!((a.bytes_used, a.orphan_bytes), (i64::MAX, 0));
    assert_eq!(
        store
            .get_backend_with_space(1, &names(&[A, B]))
            .await
            .unwrap(),
        B
    );
    assert_eq!(
        store
            .get_least_utilized_backend(1, &names(&[A, B]))
            .await
            .unwrap(),
        B
    );
    assert_eq!(
        store.get_backend_with_space(0, &names(&[A])).await.unwrap(),
        A
    );
    assert!(store.reconcile_usage().await.unwrap().is_empty());
    // A delete moves bytes from used to orphan: the total stays at the bound, still full.
    let gone = store.delete_object("e0").await.unwrap();
    assert_eq!(quota(&store, A).await, (i64::MAX - max_size, 0, max_size));
    assert_invalid(
        store
            .record_object("one", A, 1, &StoredForm::default())
            .await,
        "one byte past i64::MAX (orphan bytes included)",
    );
    // Once the bytes are gone, the space is admissible again.
    for d in gone {
        store.complete_cleanup_item(&d.cleanup).await.unwrap();
    }
    put(&store, "one", A, 1).await;
    assert_eq!(quota(&store, A).await, (i64::MAX - max_size + 1, 0, 0));
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    assert_eq!(store.breaker_stats().opened, 0);
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// The first backend of the order with room wins; an unknown name ⇒ `UnknownBackend` naming
/// it (a configuration typo is not "no space"); none ⇒ `NoSpaceAvailable`.
pub async fn backend_with_space_order_and_unknown(store: Db) {
    backends(&store, &[(A, 100), (B, 1000), (C, 1000)]).await;
    put(&store, "fill", A, 100).await;
    assert_eq!(
        store
            .get_backend_with_space(10, &names(&[A, C, B]))
            .await
            .unwrap(),
        C
    );
    for order in [names(&[UNKNOWN, A, C, B]), names(&[A, C, UNKNOWN])] {
        match store.get_backend_with_space(10, &order).await {
            Err(StoreError::UnknownBackend { backend }) => assert_eq!(backend, UNKNOWN),
            other => panic!("{order:?}: expected UnknownBackend, got {other:?}"),
        }
        match store.get_least_utilized_backend(10, &order).await {
            Err(StoreError::UnknownBackend { backend }) => assert_eq!(backend, UNKNOWN),
            other => panic!("{order:?}: expected UnknownBackend, got {other:?}"),
        }
    }
    assert_eq!(
        store
            .get_backend_with_space(1000, &names(&[B, C]))
            .await
            .unwrap(),
        B
    );
    assert_no_space(store.get_backend_with_space(1, &[]).await);
    assert_no_space(store.get_backend_with_space(1001, &names(&[A, B, C])).await);
    assert_eq!(
        store.get_backend_with_space(0, &names(&[A])).await.unwrap(),
        A,
        "a full backend still has room for 0 bytes"
    );
    assert_ledger(&store).await;
}

/// Available bytes subtract orphan bytes and the recorded parts of open uploads (charged to
/// `bytes_used`). Finding 5, one admission rule: routing counts exactly what the commit guard
/// counts; whatever routing picks, the commit admits, and one byte more is refused by both.
pub async fn backend_with_space_counts_orphans_and_multipart(store: Db) {
    backends(&store, &[(A, 1000), (B, 1000)]).await;
    put(&store, "k", A, 100).await;
    store.increment_orphan_bytes(A, 100).await.unwrap();
    in_flight_part(&store, "up-1", A, 300).await;
    assert_eq!(quota(&store, A).await, (400, 1000, 100));
    // 1000 − 100 copy − 300 part − 100 orphan = 500.
    let order = names(&[A, B]);
    assert_eq!(store.get_backend_with_space(500, &order).await.unwrap(), A);
    assert_eq!(store.get_backend_with_space(501, &order).await.unwrap(), B);
    assert_eq!(
        store
            .get_backend_with_space(500, &names(&[A]))
            .await
            .unwrap(),
        A
    );
    assert_no_space(store.get_backend_with_space(501, &names(&[A])).await);
    // The guard agrees at the exact byte.
    assert_no_space(
        store
            .record_object("big", A, 501, &StoredForm::default())
            .await,
    );
    store
        .record_object("big", A, 500, &StoredForm::default())
        .await
        .unwrap();
    assert_eq!(quota(&store, A).await, (900, 1000, 100));
    assert_ledger(&store).await;
    // Ending the upload moves its part from used to the cleanup queue: still no room.
    let queued = store
        .release_multipart_upload("up-1", "aborted upload")
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(quota(&store, A).await, (600, 1000, 400));
    assert_no_space(store.get_backend_with_space(1, &names(&[A])).await);
    assert_ledger(&store).await;
}

/// Least utilised by `(used + orphan) / limit`, unlimited counts as 0, ties by name.
pub async fn least_utilized_backend_choice(store: Db) {
    backends(&store, &[(A, 1000), (B, 1000), (C, 0)]).await;
    put(&store, "a", A, 500).await;
    put(&store, "b", B, 100).await;
    put(&store, "c", C, 900).await;
    let all = names(&[A, B, C]);
    assert_eq!(store.get_least_utilized_backend(1, &all).await.unwrap(), C);
    assert_eq!(
        store
            .get_least_utilized_backend(1, &names(&[A, B]))
            .await
            .unwrap(),
        B
    );
    assert_eq!(
        store
            .get_least_utilized_backend(600, &names(&[A, B]))
            .await
            .unwrap(),
        B
    );
    assert_unknown_backend(
        store
            .get_least_utilized_backend(600, &names(&[A, B, UNKNOWN]))
            .await,
        UNKNOWN,
    );
    assert_eq!(
        store
            .get_least_utilized_backend(901, &names(&[A, B]))
            .await
            .unwrap_err()
            .to_string(),
        StoreError::NoSpaceAvailable.to_string()
    );
    assert_no_space(
        store
            .get_least_utilized_backend(limits::MAX_SIZE_BYTES, &names(&[A, B]))
            .await,
    );
    // Beyond the largest accepted size it is bad input, not a quota answer.
    assert_invalid(
        store
            .get_least_utilized_backend(1 << 62, &names(&[A, B]))
            .await,
        "size over the limit",
    );
    assert_unknown_backend(
        store
            .get_least_utilized_backend(1, &names(&[UNKNOWN]))
            .await,
        UNKNOWN,
    );
    assert_no_space(store.get_least_utilized_backend(1, &[]).await);
    // Ties are broken by name.
    backends(&store, &[("tie-2", 1000), ("tie-1", 1000)]).await;
    assert_eq!(
        store
            .get_least_utilized_backend(1, &names(&["tie-2", "tie-1"]))
            .await
            .unwrap(),
        "tie-1"
    );
    assert_ledger(&store).await;
}

/// Orphan bytes and the parts of open uploads count towards utilisation and room.
pub async fn least_utilized_counts_orphans_and_multipart(store: Db) {
    backends(&store, &[(A, 1000), (B, 1000)]).await;
    put(&store, "a", A, 100).await;
    store.increment_orphan_bytes(A, 500).await.unwrap();
    put(&store, "b", B, 300).await;
    let both = names(&[A, B]);
    // A: 600 of 1000 taken, B: 300.
    assert_eq!(store.get_least_utilized_backend(1, &both).await.unwrap(), B);
    // A part of 600 recorded on B is charged there (one rule with the guard): B 900 of 1000.
    in_flight_part(&store, "up-b", B, 600).await;
    assert_eq!(quota(&store, B).await, (900, 1000, 0));
    assert_eq!(store.get_least_utilized_backend(1, &both).await.unwrap(), A);
    // A: 400 free; B: 100 free.
    assert_eq!(
        store.get_least_utilized_backend(400, &both).await.unwrap(),
        A
    );
    assert_no_space(store.get_least_utilized_backend(401, &both).await);
    assert_ledger(&store).await;
}

/// Quota stats carry name, used, limit, orphan and an update stamp.
pub async fn quota_stats_fields(store: Db) {
    let start = Timestamp::now().minus(std::time::Duration::from_secs(60));
    backends(&store, &[(A, 1234), (B, 0)]).await;
    put(&store, "k", A, 34).await;
    store.increment_orphan_bytes(A, 6).await.unwrap();
    let stats = store.get_quota_stats().await.unwrap();
    assert_eq!(stats.keys().cloned().collect::<Vec<_>>(), names(&[A, B]));
    let a = &stats[A];
    assert_eq!(
        (
            a.backend_name.as_str(),
            a.bytes_used,
            a.bytes_limit,
            a.orphan_bytes
        ),
        (A, 34, 1234, 6)
    );
    assert!(
        a.updated_at >= start,
        "updated_at {} not stamped",
        a.updated_at
    );
    assert_eq!(stats[B].bytes_limit, 0);
    assert_ledger(&store).await;
}

/// A consistent ledger reconciles to an empty drift map, and stays unchanged.
pub async fn reconcile_usage_consistent_is_empty(store: Db) {
    three_backends(&store).await;
    put(&store, "a", A, 10).await;
    put(&store, "b", B, 20).await;
    replicate(&store, "b", C, B).await.unwrap();
    store.delete_object("a").await.unwrap();
    let before = snapshot(&store).await;
    assert!(store.reconcile_usage().await.unwrap().is_empty());
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Orphan counters clamp at zero and ignore unknown backends.
pub async fn orphan_counters_clamp_and_ignore_unknown(store: Db) {
    three_backends(&store).await;
    store.increment_orphan_bytes(A, 100).await.unwrap();
    store.decrement_orphan_bytes(A, 10_000).await.unwrap();
    assert_eq!(orphan(&store, A).await, 0);
    store.decrement_orphan_bytes(A, 5).await.unwrap();
    assert_eq!(orphan(&store, A).await, 0, "decrement at zero is fine");
    store.increment_orphan_bytes(UNKNOWN, 5).await.unwrap();
    store.decrement_orphan_bytes(UNKNOWN, 5).await.unwrap();
    assert!(!store.get_quota_stats().await.unwrap().contains_key(UNKNOWN));
    assert_ledger(&store).await;
}

/// An overwrite at a new storage path leaves the old bytes on the backend (orphans, until
/// cleanup), so it grows the backend by the new object's size even when it is smaller than
/// the old one: that growth passes the guard, to the exact byte. In place (same path) only the
/// difference counts.
pub async fn overwrite_at_a_new_path_is_guarded_by_its_full_size(store: Db) {
    backends(&store, &[(A, 100)]).await;
    let at = |p: &str| StoredForm {
        storage_key: p.into(),
        ..StoredForm::default()
    };
    store.record_object("k", A, 60, &at("k/1")).await.unwrap();
    let before = snapshot(&store).await;
    // 60 orphaned + 50 new = 110 > 100.
    assert_no_space(store.record_object("k", A, 50, &at("k/2")).await);
    assert_eq!(
        snapshot(&store).await,
        before,
        "a refused overwrite changes nothing"
    );
    // 60 orphaned + 40 new = 100: the last byte is admissible.
    let d = store.record_object("k", A, 40, &at("k/2")).await.unwrap();
    assert_eq!(
        (d.len(), d[0].size_bytes, d[0].storage_key.as_str()),
        (1, 60, "k/1")
    );
    assert_eq!(quota(&store, A).await, (40, 100, 60));
    assert_no_space(store.record_object("x", A, 1, &StoredForm::default()).await);
    // In place, a shrink frees room and needs none.
    assert!(
        store
            .record_object("k", A, 30, &at("k/2"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(quota(&store, A).await, (30, 100, 60));
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}
