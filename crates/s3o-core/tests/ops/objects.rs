//! Writes, deletes, moves, replicas and excess copies.

use std::sync::atomic::Ordering;

use s3o_core::*;

use crate::fake::*;

// ---------- record_object ----------

#[tokio::test]
async fn record_object_statement_order_and_net_charge() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 100, 10, plain());
    f.put("k", "b", 100, 11, plain());
    let displaced = ops::record_object(&f, "k", "a", 130, &plain(), Some("i1"))
        .await
        .unwrap();
    assert_eq!(
        displaced,
        [DeletedCopy {
            backend_name: "b".into(),
            size_bytes: 100,
            storage_key: "k".into(),
            cleanup: CleanupClaim {
                id: 1,
                claimed_by: "fake-instance".into(),
                claimed_at: Timestamp::from_micros(5_001),
            },
        }]
    );
    assert_eq!(
        f.log(),
        [
            "BEGIN",
            "acquire_key_lock(k)",
            "claim_pending(i1)",
            "get_existing_copies_for_update(k)",
            "delete_object_copies(k)",
            "insert_object_location(k,a)",
            "delete_pending(i1)",
            // The outbox row before any quota row; quota rows last, in backend order.
            "enqueue_cleanup_claimed(k,b,100)",
            "increment_backend_quota(a,30)",
            "decrement_backend_quota(b,100)",
            "increment_orphan_bytes(b,100)",
            "COMMIT"
        ]
    );
    assert_eq!((f.used("a"), f.used("b")), (130, 0));
    assert_eq!(
        f.orphan("b"),
        100,
        "displaced bytes charged in the same transaction"
    );
}

#[tokio::test]
async fn record_object_equal_size_overwrite_issues_no_quota_sql() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.put("k", "a", 100, 10, plain());
    let displaced = ops::record_object(&f, "k", "a", 100, &plain(), None)
        .await
        .unwrap();
    assert!(
        displaced.is_empty(),
        "same-backend copy is overwritten in place"
    );
    assert!(quota_calls(&f.log()).is_empty());
    // Shrinking overwrite decrements.
    ops::record_object(&f, "k", "a", 40, &plain(), None)
        .await
        .unwrap();
    assert_eq!(f.used("a"), 40);
}

#[tokio::test]
async fn record_object_normalises_form_and_rolls_back_on_no_space() {
    let f = Fake::with_backends(&[("a", 50)]);
    let form = StoredForm {
        key_id: "stale".into(),
        encryption_key: vec![1],
        ..plain()
    };
    ops::record_object(&f, "k", "a", 10, &form, None)
        .await
        .unwrap();
    let stored = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert!(stored.form.key_id.is_empty() && stored.form.encryption_key.is_empty());

    let before = f.state.lock().unwrap().copies.len();
    let err = ops::record_object(&f, "k2", "a", 41, &plain(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSpaceAvailable));
    assert_eq!(f.state.lock().unwrap().copies.len(), before);
}

#[tokio::test]
async fn invalid_input_opens_no_transaction() {
    let f = Fake::with_backends(&[("a", 0)]);
    let long = "x".repeat(1025);
    let bad: Vec<Result<Vec<DeletedCopy>>> = vec![
        ops::record_object(&f, "", "a", 1, &plain(), None).await,
        ops::record_object(&f, &long, "a", 1, &plain(), None).await,
        ops::record_object(&f, "a\0b", "a", 1, &plain(), None).await,
        ops::record_object(&f, "k", "a", -1, &plain(), None).await,
        ops::record_object(&f, "k", "", 1, &plain(), None).await,
    ];
    for r in bad {
        assert!(matches!(r, Err(StoreError::InvalidInput { .. })), "{r:?}");
    }
    assert!(matches!(
        ops::remove_excess_copy(&f, "k", "a", 0).await,
        Err(StoreError::InvalidInput { .. })
    ));
    let too_many = vec!["k".to_string(); 1001];
    assert!(matches!(
        ops::delete_objects_batch(&f, &too_many).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(f.begins.load(Ordering::SeqCst), 0);
}

// ---------- delete paths ----------

#[tokio::test]
async fn delete_object_locks_key_first_and_reports_not_found() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    assert!(matches!(
        ops::delete_object(&f, "nope").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    f.put("k", "b", 7, 1, plain());
    f.put("k", "a", 7, 2, plain());
    f.clear_log();
    let copies = ops::delete_object(&f, "k").await.unwrap();
    assert_eq!(copies.len(), 2);
    let log = f.log();
    assert_eq!(log[1], "acquire_key_lock(k)");
    assert_eq!(
        quota_calls(&log),
        [
            "decrement_backend_quota(a,7)",
            "decrement_backend_quota(b,7)"
        ]
    );
}

#[tokio::test]
async fn delete_objects_batch_empty_input_opens_no_transaction() {
    let f = Fake::default();
    assert!(ops::delete_objects_batch(&f, &[]).await.unwrap().is_empty());
    assert_eq!(f.begins.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn delete_objects_batch_locks_sorted_unique_keys_and_debits_once_per_backend() {
    let f = Fake::with_backends(&[("backend-a", 0), ("backend-b", 0)]);
    f.put("x", "backend-a", 100, 1, plain());
    f.put("y", "backend-a", 50, 1, plain());
    f.put("y", "backend-b", 100, 2, plain());
    let keys: Vec<String> = ["y", "x", "y", "missing"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = ops::delete_objects_batch(&f, &keys).await.unwrap();
    assert_eq!(out.keys().cloned().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(out["y"].len(), 2);
    let log = f.log();
    let locks: Vec<&String> = log
        .iter()
        .filter(|c| c.starts_with("acquire_key_lock"))
        .collect();
    assert_eq!(
        locks,
        [
            "acquire_key_lock(missing)",
            "acquire_key_lock(x)",
            "acquire_key_lock(y)"
        ]
    );
    assert_eq!(
        quota_calls(&log),
        [
            "decrement_backend_quota(backend-a,150)",
            "decrement_backend_quota(backend-b,100)"
        ]
    );
}

#[tokio::test]
async fn delete_object_location_debits_locked_size_or_does_nothing() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.put("k", "a", 64, 1, plain());
    let gone = ops::delete_object_location(&f, "k", "a")
        .await
        .unwrap()
        .expect("the copy is removed");
    assert_eq!((gone.backend_name.as_str(), gone.size_bytes), ("a", 64));
    assert_eq!(gone.storage_key, "k");
    assert_eq!(quota_calls(&f.log()), ["decrement_backend_quota(a,64)"]);
    assert_eq!(f.used("a"), 0);
    f.clear_log();
    assert!(
        ops::delete_object_location(&f, "k", "a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(quota_calls(&f.log()).is_empty());
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("delete_object_from_backend"))
    );

    // A read error surfaces and mutates nothing.
    f.put("k", "a", 64, 1, plain());
    f.fail_next(
        "get_existing_copies_for_update",
        StoreError::database(DbErrorKind::Other, "read", "boom"),
    );
    assert!(ops::delete_object_location(&f, "k", "a").await.is_err());
    assert_eq!(f.used("a"), 64);
    // A quota error surfaces and rolls back the delete.
    f.fail_next(
        "decrement_backend_quota",
        StoreError::database(DbErrorKind::Other, "q", "x"),
    );
    assert!(ops::delete_object_location(&f, "k", "a").await.is_err());
    assert!(
        f.state
            .lock()
            .unwrap()
            .copies
            .contains_key(&("k".into(), "a".into()))
    );
}

// ---------- move, replica, excess ----------

#[tokio::test]
async fn move_carries_every_stored_form_column_and_orders_quota_rows() {
    let f = Fake::with_backends(&[("a", 0), ("z", 0)]);
    let form = StoredForm {
        encrypted: true,
        encryption_key: vec![9, 9],
        key_id: "kv1".into(),
        plaintext_size: 90,
        content_hash: "abc".into(),
        managed: false,
        storage_key: "blob/k".into(),
        etag: "\"e\"".into(),
        content_type: "text/plain".into(),
        user_metadata: [("a".to_owned(), "b".to_owned())].into_iter().collect(),
        attributes: s3o_core::ObjectAttributes {
            headers: [("cache-control".to_owned(), "no-cache".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        },
        tags: [("t".to_owned(), "v".to_owned())].into_iter().collect(),
    };
    f.put("k", "z", 100, 77, form.clone());
    // A stale expected path (the key was overwritten) changes nothing.
    assert_eq!(
        ops::move_object_location(&f, "k", "z", "a", "blob/old")
            .await
            .unwrap(),
        MoveOutcome::VersionChanged {
            current_storage_key: "blob/k".into()
        }
    );
    assert!(quota_calls(&f.log()).is_empty());
    match ops::move_object_location(&f, "k", "z", "a", "blob/k")
        .await
        .unwrap()
    {
        MoveOutcome::Moved { bytes, source } => {
            assert_eq!(bytes, 100);
            assert_eq!(
                (source.backend_name.as_str(), source.storage_key.as_str()),
                ("z", "blob/k")
            );
        }
        other => panic!("{other:?}"),
    }
    let moved = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert_eq!(moved.form, form);
    assert_eq!(moved.created_at, Timestamp::from_micros(77));
    assert_eq!(
        quota_calls(&f.log()),
        [
            "increment_backend_quota(a,100)",
            "decrement_backend_quota(z,100)"
        ]
    );
    // Target already holds a copy: no-op.
    f.clear_log();
    f.put("k", "z", 100, 78, plain());
    assert_eq!(
        ops::move_object_location(&f, "k", "z", "a", "k")
            .await
            .unwrap(),
        MoveOutcome::TargetHasCopy
    );
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("delete_object_from_backend"))
    );
}

#[tokio::test]
async fn record_replica_charges_the_size_read_from_the_source_row() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 321, 1, plain());
    assert_eq!(
        ops::record_replica(&f, "k", "b", "a", "k").await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 321 }
    );
    assert_eq!(f.used("b"), 321);
    assert_eq!(
        ops::record_replica(&f, "gone", "b", "a", "gone")
            .await
            .unwrap(),
        ReplicaOutcome::SourceGone
    );
}

#[tokio::test]
async fn remove_excess_copy_rechecks_count_and_guards_the_only_dek() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0), ("c", 0)]);
    let with_dek = StoredForm {
        encrypted: true,
        encryption_key: vec![1],
        ..plain()
    };
    let keyless = StoredForm {
        encrypted: true,
        ..plain()
    };
    f.put("k", "a", 10, 1, with_dek);
    f.put("k", "b", 10, 2, keyless);
    assert!(
        ops::remove_excess_copy(&f, "k", "a", 2)
            .await
            .unwrap()
            .is_none(),
        "at factor"
    );
    assert!(matches!(
        ops::remove_excess_copy(&f, "k", "a", 1).await,
        Err(StoreError::CopyHoldsOnlyDek { .. })
    ));
    let removed = ops::remove_excess_copy(&f, "k", "b", 1).await.unwrap();
    assert_eq!(
        removed.map(|d| (d.backend_name, d.size_bytes)),
        Some(("b".into(), 10))
    );
    assert_eq!(f.used("b"), 0);
    // Above the factor but no copy on the named backend: nothing to remove.
    f.put("k", "b", 10, 3, plain());
    assert!(
        ops::remove_excess_copy(&f, "k", "c", 1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(f.state.lock().unwrap().copies.len(), 2);
}
