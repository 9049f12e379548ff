//! The object ledger: record, overwrite, delete, batch delete, delete one location, import,
//! move; stored-form round trips; unknown backends; concurrency.

use std::time::Duration;

use s3o_store::*;

use crate::support::*;

fn dc(backend: &str, size: i64) -> (String, i64) {
    (backend.to_owned(), size)
}

fn sorted(v: Vec<DeletedCopy>) -> Vec<(String, i64)> {
    bs(&v)
}

/// A new key: one copy, charged to its backend, nothing displaced.
pub async fn record_new_object_charges_quota(store: Db) {
    three_backends(&store).await;
    let displaced = store
        .record_object("docs/a.txt", A, 100, &StoredForm::default())
        .await
        .unwrap();
    assert!(displaced.is_empty(), "{displaced:?}");
    let c = copies(&store, "docs/a.txt").await;
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].backend_name.as_str(), c[0].size_bytes), (A, 100));
    assert_eq!(c[0].object_key, "docs/a.txt");
    assert!(!c[0].created_at.is_zero(), "created_at set by the store");
    assert_eq!(used(&store, A).await, 100);
    assert_eq!(used(&store, B).await, 0);
    assert_ledger(&store).await;
}

/// Size 0 is a valid object: recorded, listed, no quota change.
pub async fn record_zero_size_object(store: Db) {
    backends(&store, &[(A, 10)]).await;
    put(&store, "empty", A, 0).await;
    assert_eq!(placement(&store, "empty").await, vec![(A.to_owned(), 0)]);
    assert_eq!(used(&store, A).await, 0);
    let page = store.list_objects("", "", 10).await.unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.objects[0].size_bytes, 0);
    assert_eq!(
        sorted(store.delete_object("empty").await.unwrap()),
        vec![dc(A, 0)]
    );
    assert_ledger(&store).await;
}

/// Overwriting on the same backend replaces in place: nothing to clean up, quota by the net.
pub async fn overwrite_same_backend_is_not_displaced(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 100).await;
    let displaced = store
        .record_object("k", A, 250, &StoredForm::default())
        .await
        .unwrap();
    assert!(
        displaced.is_empty(),
        "same-backend overwrite displaced {displaced:?}"
    );
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 250)]);
    assert_eq!(used(&store, A).await, 250);
    let displaced = store
        .record_object("k", A, 40, &StoredForm::default())
        .await
        .unwrap();
    assert!(displaced.is_empty());
    assert_eq!(used(&store, A).await, 40);
    assert_ledger(&store).await;
}

/// Overwriting on another backend displaces the old copy with its exact size.
pub async fn overwrite_other_backend_displaces_copy(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 100).await;
    put(&store, "other", A, 7).await;
    let displaced = store
        .record_object("k", B, 40, &StoredForm::default())
        .await
        .unwrap();
    assert_eq!(sorted(displaced), vec![dc(A, 100)]);
    assert_eq!(placement(&store, "k").await, vec![(B.to_owned(), 40)]);
    assert_eq!(used(&store, A).await, 7);
    assert_eq!(used(&store, B).await, 40);
    assert_eq!(placement(&store, "other").await, vec![(A.to_owned(), 7)]);
    assert_ledger(&store).await;
}

/// A replicated key overwritten on one of its backends displaces every other copy.
pub async fn overwrite_replicated_object_displaces_every_other_copy(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 100).await;
    assert_eq!(
        replicate(&store, "k", B, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 100 }
    );
    assert_eq!(
        replicate(&store, "k", C, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 100 }
    );
    assert_eq!(used(&store, B).await, 100);
    let displaced = store
        .record_object("k", B, 70, &StoredForm::default())
        .await
        .unwrap();
    assert_eq!(sorted(displaced), vec![dc(A, 100), dc(C, 100)]);
    assert_eq!(placement(&store, "k").await, vec![(B.to_owned(), 70)]);
    assert_eq!(
        (
            used(&store, A).await,
            used(&store, B).await,
            used(&store, C).await
        ),
        (0, 70, 0)
    );
    assert_ledger(&store).await;
}

/// An equal-size overwrite leaves the counter alone and refreshes the copy.
pub async fn equal_size_overwrite_keeps_quota(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 512).await;
    let before = copy_on(&store, "k", A).await;
    store
        .record_object("k", A, 512, &hashed_form("abc"))
        .await
        .unwrap();
    let after = copy_on(&store, "k", A).await;
    assert_eq!(used(&store, A).await, 512);
    assert_eq!(
        after.form.content_hash, "abc",
        "overwrite replaces the form"
    );
    assert!(
        after.created_at >= before.created_at,
        "created_at went back"
    );
    assert_ledger(&store).await;
}

/// Every stored-form field survives a round trip: key bytes, key id, plaintext size, hash,
/// managed flag.
pub async fn stored_form_round_trips(store: Db) {
    three_backends(&store).await;
    let forms = [
        encrypted_form(1),
        StoredForm {
            managed: true,
            ..encrypted_form(2)
        },
        hashed_form("0123abcd"),
        StoredForm {
            managed: false,
            ..StoredForm::default()
        },
        StoredForm::default(),
    ];
    for (i, form) in forms.iter().enumerate() {
        let key = format!("form/{i}");
        store.record_object(&key, A, 300, form).await.unwrap();
        let got = copy_on(&store, &key, A).await;
        assert_eq!(&got.form, form, "form {i} round trip");
        assert_eq!(got.size_bytes, 300);
    }
    assert_eq!(used(&store, A).await, 300 * forms.len() as i64);
    assert_ledger(&store).await;
}

/// A plaintext form never stores encryption fields.
pub async fn plaintext_form_drops_encryption_fields(store: Db) {
    three_backends(&store).await;
    let form = StoredForm {
        encrypted: false,
        ..encrypted_form(9)
    };
    store.record_object("k", A, 10, &form).await.unwrap();
    let got = copy_on(&store, "k", A).await;
    assert_eq!(got.form, form.normalized());
    assert!(got.form.encryption_key.is_empty() && got.form.key_id.is_empty());
    assert_eq!(got.form.plaintext_size, 0);
    assert_eq!(got.form.content_hash, form.content_hash, "hash is kept");
    assert_ledger(&store).await;
}

/// Recording on a backend with no quota row fails with `UnknownBackend` and changes
/// nothing, not even the key's existing copy.
pub async fn record_unknown_backend_changes_nothing(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 100).await;
    let before = snapshot(&store).await;
    assert_unknown_backend(
        store
            .record_object("k", UNKNOWN, 5, &StoredForm::default())
            .await,
        UNKNOWN,
    );
    assert_unknown_backend(
        store
            .record_object("new", UNKNOWN, 5, &StoredForm::default())
            .await,
        UNKNOWN,
    );
    assert_eq!(snapshot(&store).await, before);
    assert!(copies(&store, "new").await.is_empty());
    assert_ledger(&store).await;
}

/// A write over the limit is refused and rolled back entirely.
pub async fn record_over_quota_changes_nothing(store: Db) {
    backends(&store, &[(A, 1000), (B, 1000)]).await;
    put(&store, "k1", A, 600).await;
    put(&store, "k2", B, 10).await;
    let before = snapshot(&store).await;
    assert_no_space(
        store
            .record_object("k2", A, 401, &StoredForm::default())
            .await,
    );
    assert_no_space(
        store
            .record_object("k3", A, 401, &StoredForm::default())
            .await,
    );
    assert_eq!(snapshot(&store).await, before, "refused write left traces");
    assert_eq!(placement(&store, "k2").await, vec![(B.to_owned(), 10)]);
    assert_ledger(&store).await;
}

/// An overwrite on the same backend is admitted by its net delta, to the exact byte.
pub async fn overwrite_admitted_by_net_delta(store: Db) {
    backends(&store, &[(A, 1000)]).await;
    put(&store, "k", A, 600).await;
    store
        .record_object("k", A, 1000, &StoredForm::default())
        .await
        .expect("net +400 fits exactly");
    assert_eq!(used(&store, A).await, 1000);
    assert_no_space(
        store
            .record_object("k", A, 1001, &StoredForm::default())
            .await,
    );
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 1000)]);
    assert_ledger(&store).await;
}

/// Delete removes every copy and returns each with its size.
pub async fn delete_object_returns_every_copy(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 100).await;
    replicate(&store, "k", B, A).await.unwrap();
    put(&store, "keep", B, 5).await;
    let deleted = store.delete_object("k").await.unwrap();
    assert_eq!(sorted(deleted), vec![dc(A, 100), dc(B, 100)]);
    assert!(copies(&store, "k").await.is_empty());
    assert_eq!((used(&store, A).await, used(&store, B).await), (0, 5));
    assert_ledger(&store).await;
}

/// Deleting a key with no copy is `ObjectNotFound` and changes nothing.
pub async fn delete_missing_object_is_not_found(store: Db) {
    three_backends(&store).await;
    put(&store, "present", A, 3).await;
    let before = snapshot(&store).await;
    match store.delete_object("absent").await {
        Err(StoreError::ObjectNotFound { key }) => assert_eq!(key, "absent"),
        other => panic!("expected ObjectNotFound, got {other:?}"),
    }
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// A batch delete of nothing returns nothing.
pub async fn batch_delete_empty_input(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 1).await;
    let out = store.delete_objects_batch(&[]).await.unwrap();
    assert!(out.is_empty());
    assert_eq!(placement(&store, "k").await.len(), 1);
    assert_ledger(&store).await;
}

/// Batch delete removes every listed key's rows and debits each backend (−150 / −100);
/// keys without copies are absent from the result.
pub async fn batch_delete_removes_rows_and_debits_quotas(store: Db) {
    three_backends(&store).await;
    put(&store, "k1", A, 100).await;
    put(&store, "k2", A, 50).await;
    put(&store, "k3", B, 100).await;
    put(&store, "k4", B, 9).await;
    let before = (used(&store, A).await, used(&store, B).await);
    let keys: Vec<String> = ["k1", "k2", "k3", "missing"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let out = store.delete_objects_batch(&keys).await.unwrap();
    assert_eq!(
        out.keys().cloned().collect::<Vec<_>>(),
        vec!["k1", "k2", "k3"]
    );
    assert_eq!(sorted(out["k1"].clone()), vec![dc(A, 100)]);
    assert_eq!(sorted(out["k2"].clone()), vec![dc(A, 50)]);
    assert_eq!(sorted(out["k3"].clone()), vec![dc(B, 100)]);
    assert_eq!(used(&store, A).await, before.0 - 150);
    assert_eq!(used(&store, B).await, before.1 - 100);
    for k in ["k1", "k2", "k3"] {
        assert!(copies(&store, k).await.is_empty(), "{k} still present");
    }
    assert_eq!(placement(&store, "k4").await, vec![(B.to_owned(), 9)]);
    assert_ledger(&store).await;
}

/// Duplicated keys are deleted once; every replica of a key is reported.
pub async fn batch_delete_duplicates_and_replicas(store: Db) {
    three_backends(&store).await;
    put(&store, "r", A, 30).await;
    replicate(&store, "r", B, A).await.unwrap();
    replicate(&store, "r", C, A).await.unwrap();
    put(&store, "s", C, 4).await;
    let keys = vec!["r".to_owned(), "s".to_owned(), "r".to_owned()];
    let out = store.delete_objects_batch(&keys).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        sorted(out["r"].clone()),
        vec![dc(A, 30), dc(B, 30), dc(C, 30)]
    );
    assert_eq!(sorted(out["s"].clone()), vec![dc(C, 4)]);
    for b in [A, B, C] {
        assert_eq!(used(&store, b).await, 0, "{b}");
    }
    assert_ledger(&store).await;
}

/// Removing one location debits exactly that copy; a second call is `false`.
pub async fn delete_object_location_debits_locked_size(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 100).await;
    replicate(&store, "k", B, A).await.unwrap();
    assert!(
        store
            .delete_object_location("k", B)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 100)]);
    assert_eq!((used(&store, A).await, used(&store, B).await), (100, 0));
    let before = snapshot(&store).await;
    assert!(
        store
            .delete_object_location("k", B)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(snapshot(&store).await, before);
    assert!(
        store
            .delete_object_location("k", A)
            .await
            .unwrap()
            .is_some()
    );
    assert!(copies(&store, "k").await.is_empty());
    assert_eq!(used(&store, A).await, 0);
    assert_ledger(&store).await;
}

/// No copy on that backend (or no key at all) ⇒ `false`, nothing changed.
pub async fn delete_object_location_missing_copy(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 10).await;
    let before = snapshot(&store).await;
    assert!(
        store
            .delete_object_location("k", B)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .delete_object_location("nope", A)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Import adds a plaintext copy at its own key once, with the ETag and time it was found
/// with; importing again is `AlreadyImported` and keeps the first size.
pub async fn import_object_new_then_twice(store: Db) {
    three_backends(&store).await;
    let found = ImportedObject {
        etag: "0123456789abcdef0123456789abcdef".into(),
        created_at: Timestamp::from_micros(1_600_000_000_000_000),
        ..ImportedObject::new("imp", A, 77)
    };
    assert_eq!(
        store.import_object(&found).await.unwrap(),
        ImportOutcome::Imported
    );
    let c = copy_on(&store, "imp", A).await;
    assert_eq!(c.size_bytes, 77);
    assert_eq!(
        c.created_at, found.created_at,
        "the backend's last-modified"
    );
    assert_eq!(
        c.form,
        StoredForm {
            etag: found.etag.clone(),
            storage_key: "imp".into(),
            ..StoredForm::default()
        },
        "import records a plaintext managed copy at its own key"
    );
    assert_eq!(used(&store, A).await, 77);
    let before = snapshot(&store).await;
    assert_eq!(
        store
            .import_object(&ImportedObject::new("imp", A, 999))
            .await
            .unwrap(),
        ImportOutcome::AlreadyImported
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(placement(&store, "imp").await, vec![(A.to_owned(), 77)]);
    assert_ledger(&store).await;
}

/// The ledger wins: a key with a copy anywhere is never joined or replaced by an import, on
/// its own backend (a copy at another path) or on another one.
pub async fn import_never_overwrites(store: Db) {
    three_backends(&store).await;
    let form = encrypted_form(4);
    store.record_object("k", A, 50, &form).await.unwrap();
    store
        .import_object(&ImportedObject::new("i", B, 5))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    for (key, b) in [("k", A), ("k", B), ("i", A), ("i", C)] {
        assert_eq!(
            store
                .import_object(&ImportedObject::new(key, b, 60))
                .await
                .unwrap(),
            ImportOutcome::KeyExists,
            "{key} on {b}"
        );
    }
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(copy_on(&store, "k", A).await.form, form);
    assert_eq!(placement(&store, "i").await, vec![(B.to_owned(), 5)]);
    assert_ledger(&store).await;
}

/// A key with a write intent (on any backend) is in flight: the import changes nothing until
/// the intent is gone.
pub async fn import_refuses_a_key_in_flight(store: Db) {
    three_backends(&store).await;
    let p = PendingObject {
        intent_id: "w-1".into(),
        object_key: "k".into(),
        backend_name: B.into(),
        size_bytes: 10,
        form: StoredForm::default(),
        created_at: Timestamp::ZERO,
    };
    store.insert_pending(&p).await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        store
            .import_object(&ImportedObject::new("k", A, 3))
            .await
            .unwrap(),
        ImportOutcome::InFlight
    );
    assert_eq!(snapshot(&store).await, before);
    store.delete_pending("w-1").await.unwrap();
    assert_eq!(
        store
            .import_object(&ImportedObject::new("k", A, 3))
            .await
            .unwrap(),
        ImportOutcome::Imported
    );
    assert_eq!(used(&store, A).await, 3);
    assert_ledger(&store).await;
}

/// Bytes of the key queued for deletion on the backend (queue or DLQ) are the cleanup's: an
/// object deleted since its import is not brought back while they wait. Other backends and,
/// once the rows are gone, the same one import again.
pub async fn import_refuses_bytes_queued_for_cleanup(store: Db) {
    three_backends(&store).await;
    let first = ImportedObject::new("q", A, 8);
    assert_eq!(
        store.import_object(&first).await.unwrap(),
        ImportOutcome::Imported
    );
    store.delete_object("q").await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        store.import_object(&first).await.unwrap(),
        ImportOutcome::QueuedForCleanup
    );
    assert_eq!(snapshot(&store).await, before);
    // Given up on: the DLQ row still owns the bytes.
    let claimed = store
        .claim_pending_cleanups(10, "me", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(store.move_cleanup_to_dlq(claimed[0].id, "x").await.unwrap());
    assert_eq!(
        store.import_object(&first).await.unwrap(),
        ImportOutcome::QueuedForCleanup
    );
    // Another backend's bytes of the key are not the cleanup's.
    assert_eq!(
        store
            .import_object(&ImportedObject::new("q", B, 2))
            .await
            .unwrap(),
        ImportOutcome::Imported
    );
    store.delete_object("q").await.unwrap();
    let dlq = store.list_cleanup_dlq(Some(A), 10).await.unwrap();
    store
        .write_off_cleanup_dlq(&dlq.iter().map(|d| d.id).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(
        store.import_object(&first).await.unwrap(),
        ImportOutcome::Imported
    );
    assert_eq!(placement(&store, "q").await, vec![(A.to_owned(), 8)]);
    assert_ledger(&store).await;
}

/// With a bucket named, a missing bucket refuses the import; an existing one admits it.
pub async fn import_checks_the_bucket(store: Db) {
    three_backends(&store).await;
    let into = |bucket: &str| ImportedObject {
        bucket: Some(bucket.to_owned()),
        ..ImportedObject::new(&format!("{bucket}/k"), A, 4)
    };
    let before = snapshot(&store).await;
    assert!(matches!(
        store.import_object(&into("nope")).await,
        Err(StoreError::BucketNotFound { bucket }) if bucket == "nope"
    ));
    assert_eq!(snapshot(&store).await, before);
    store
        .create_bucket(&BucketSpec::new("there"))
        .await
        .unwrap();
    assert_eq!(
        store.import_object(&into("there")).await.unwrap(),
        ImportOutcome::Imported
    );
    assert_ledger(&store).await;
}

/// The import's guarded charge refuses past the limit and rolls the row back.
pub async fn import_over_quota_rolls_back(store: Db) {
    backends(&store, &[(A, 100)]).await;
    assert_eq!(
        store
            .import_object(&ImportedObject::new("fits", A, 100))
            .await
            .unwrap(),
        ImportOutcome::Imported
    );
    let before = snapshot(&store).await;
    assert_no_space(
        store
            .import_object(&ImportedObject::new("over", A, 1))
            .await,
    );
    assert_eq!(snapshot(&store).await, before);
    assert!(copies(&store, "over").await.is_empty());
    assert_ledger(&store).await;
}

/// Import on an unknown backend is `UnknownBackend`.
pub async fn import_unknown_backend(store: Db) {
    three_backends(&store).await;
    let before = snapshot(&store).await;
    assert_unknown_backend(
        store
            .import_object(&ImportedObject::new("k", UNKNOWN, 5))
            .await,
        UNKNOWN,
    );
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// A move carries every stored-form column and the original created_at.
pub async fn move_carries_stored_form_and_created_at(store: Db) {
    three_backends(&store).await;
    let form = encrypted_form(5);
    store.record_object("mv", A, 321, &form).await.unwrap();
    let src = copy_on(&store, "mv", A).await;
    assert_eq!(
        moved_bytes(&move_copy(&store, "mv", A, B).await.unwrap()),
        Some(321)
    );
    let c = copies(&store, "mv").await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].backend_name, B);
    assert_eq!(c[0].form, form);
    assert_eq!(c[0].size_bytes, 321);
    assert_eq!(
        c[0].created_at, src.created_at,
        "a move is not a new version"
    );
    assert_eq!((used(&store, A).await, used(&store, B).await), (0, 321));
    assert_ledger(&store).await;
}

/// Target already holding a copy ⇒ `TargetHasCopy`; source gone ⇒ `SourceGone`; from == to ⇒
/// `InvalidInput`; nothing changed in any case.
pub async fn move_no_op_paths(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 10).await;
    replicate(&store, "k", B, A).await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        move_copy(&store, "k", A, B).await.unwrap(),
        MoveOutcome::TargetHasCopy
    );
    assert_eq!(
        move_copy(&store, "k", C, A).await.unwrap(),
        MoveOutcome::SourceGone
    );
    assert_invalid(move_copy(&store, "k", A, A).await, "from == to");
    assert_eq!(
        move_copy(&store, "nope", A, C).await.unwrap(),
        MoveOutcome::SourceGone
    );
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// A move of a version that was overwritten meanwhile is refused with `VersionChanged` naming
/// the current path, changing nothing; a 0-byte move is `Moved { bytes: 0 }`, never confused
/// with a refusal.
pub async fn move_of_an_overwritten_version_is_refused(store: Db) {
    three_backends(&store).await;
    let at = |p: &str| StoredForm {
        storage_key: p.into(),
        ..StoredForm::default()
    };
    store.record_object("k", A, 10, &at("k/v1")).await.unwrap();
    let read = path_on(&store, "k", A).await;
    store.record_object("k", A, 0, &at("k/v2")).await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        store.move_object_location("k", A, B, &read).await.unwrap(),
        MoveOutcome::VersionChanged {
            current_storage_key: "k/v2".into()
        }
    );
    assert_eq!(
        snapshot(&store).await,
        before,
        "a refused move changed the ledger"
    );
    assert_invalid(
        store.move_object_location("k", A, B, "").await,
        "empty expected path",
    );
    match store.move_object_location("k", A, B, "k/v2").await.unwrap() {
        MoveOutcome::Moved { bytes, source } => {
            assert_eq!(bytes, 0);
            assert_eq!((source.backend_name.as_str(), source.size_bytes), (A, 0));
            assert_eq!(source.storage_key, "k/v2");
        }
        other => panic!("the current version must move: {other:?}"),
    }
    assert_eq!(copy_on(&store, "k", B).await.form.storage_key, "k/v2");
    assert!(
        copies(&store, "k")
            .await
            .iter()
            .all(|c| c.backend_name == B)
    );
    assert_orphans_accounted(&store).await;
    assert_ledger(&store).await;
}

/// The target's quota is guarded; a refused move leaves the source in place.
pub async fn move_over_target_quota_rolls_back(store: Db) {
    backends(&store, &[(A, GIB), (B, 100)]).await;
    put(&store, "big", A, 101).await;
    let before = snapshot(&store).await;
    assert_no_space(move_copy(&store, "big", A, B).await);
    assert_eq!(snapshot(&store).await, before);
    put(&store, "fits", A, 100).await;
    assert_eq!(
        moved_bytes(&move_copy(&store, "fits", A, B).await.unwrap()),
        Some(100)
    );
    assert_eq!(used(&store, B).await, 100);
    assert_ledger(&store).await;
}

/// Moving to a backend with no quota row is `UnknownBackend`, and the source stays.
pub async fn move_unknown_target_changes_nothing(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 10).await;
    let before = snapshot(&store).await;
    assert_unknown_backend(move_copy(&store, "k", A, UNKNOWN).await, UNKNOWN);
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Backends per key in one query: empty input ⇒ empty; replicas grouped; missing absent.
pub async fn object_backends_for_keys(store: Db) {
    three_backends(&store).await;
    assert!(
        store
            .get_object_backends_for_keys(&[])
            .await
            .unwrap()
            .is_empty()
    );
    put(&store, "one", A, 1).await;
    put(&store, "two", B, 1).await;
    replicate(&store, "two", C, B).await.unwrap();
    let keys = vec!["one".to_owned(), "two".to_owned(), "none".to_owned()];
    let got = store.get_object_backends_for_keys(&keys).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got["one"], vec![A.to_owned()]);
    let mut two = got["two"].clone();
    two.sort();
    assert_eq!(two, vec![B.to_owned(), C.to_owned()]);
    assert!(!got.contains_key("none"));
    assert_ledger(&store).await;
}

/// All locations of a key come oldest first (ties by backend name); no replica is older
/// than the primary it was copied from.
pub async fn locations_oldest_first(store: Db) {
    three_backends(&store).await;
    put(&store, "k", B, 10).await;
    let primary = copy_on(&store, "k", B).await.created_at;
    replicate(&store, "k", A, B).await.unwrap();
    replicate(&store, "k", C, B).await.unwrap();
    let c = copies(&store, "k").await;
    assert_eq!(c.len(), 3);
    for w in c.windows(2) {
        assert!(
            (w[0].created_at, w[0].backend_name.as_bytes())
                <= (w[1].created_at, w[1].backend_name.as_bytes()),
            "not oldest first (ties by backend): {c:?}"
        );
    }
    assert_eq!(c[0].created_at, primary, "the primary's age leads: {c:?}");
    assert!(c.iter().all(|x| x.created_at >= primary));
    assert_ledger(&store).await;
}

/// `record_object_and_clear_pending` commits the copy and removes its intent atomically.
pub async fn record_and_clear_pending(store: Db) {
    three_backends(&store).await;
    let intent = PendingObject {
        intent_id: "intent-1".into(),
        object_key: "k".into(),
        backend_name: A.into(),
        size_bytes: 10,
        form: StoredForm::default(),
        created_at: Timestamp::ZERO,
    };
    store.insert_pending(&intent).await.unwrap();
    let other = PendingObject {
        intent_id: "intent-2".into(),
        ..intent.clone()
    };
    store.insert_pending(&other).await.unwrap();
    assert_eq!(store.count_pending().await.unwrap(), 2);
    let displaced = store
        .record_object_and_clear_pending("k", A, 10, &StoredForm::default(), "intent-1")
        .await
        .unwrap();
    assert!(displaced.is_empty());
    assert_eq!(store.count_pending().await.unwrap(), 1);
    let left = store
        .get_stale_pending(std::time::Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].intent_id, "intent-2");
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 10)]);
    // A missing intent id is fine: the write still commits.
    store
        .record_object_and_clear_pending("k2", A, 3, &StoredForm::default(), "never-existed")
        .await
        .unwrap();
    assert_eq!(placement(&store, "k2").await, vec![(A.to_owned(), 3)]);
    assert_ledger(&store).await;
}

/// Keys with multi-byte UTF-8, wildcards, backslashes, spaces and exactly 1024 bytes round
/// trip byte for byte.
pub async fn unicode_and_limit_keys_round_trip(store: Db) {
    three_backends(&store).await;
    let max = "é".repeat(512);
    assert_eq!(max.len(), 1024);
    let keys = [
        "日本/語/ファイル.txt".to_owned(),
        "emoji/😀".to_owned(),
        "100%_done\\ok".to_owned(),
        " leading and trailing ".to_owned(),
        "a'b\"c;--".to_owned(),
        max,
    ];
    for (i, k) in keys.iter().enumerate() {
        put(&store, k, A, i as i64 + 1).await;
    }
    for (i, k) in keys.iter().enumerate() {
        let c = copies(&store, k).await;
        assert_eq!(c.len(), 1, "{k}");
        assert_eq!(&c[0].object_key, k);
        assert_eq!(c[0].size_bytes, i as i64 + 1);
    }
    let listed: Vec<String> = store
        .list_objects("", "", 100)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.object_key)
        .collect();
    assert_eq!(listed, byte_sorted(&keys));
    assert_ledger(&store).await;
}

/// Racing overwrites of one key on different backends leave exactly one copy and a
/// consistent ledger.
pub async fn concurrent_overwrites_keep_one_copy(store: Db) {
    three_backends(&store).await;
    let mut tasks = Vec::new();
    for i in 0..12i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let b = [A, B, C][(i % 3) as usize];
            s.record_object("hot", b, 100 + i, &StoredForm::default())
                .await
                .unwrap()
        }));
    }
    let mut displaced_total = 0;
    for t in tasks {
        displaced_total += t.await.unwrap().len();
    }
    let c = copies(&store, "hot").await;
    assert_eq!(c.len(), 1, "one copy survives: {c:?}");
    assert!(displaced_total <= 11);
    let total: i64 = [
        used(&store, A).await,
        used(&store, B).await,
        used(&store, C).await,
    ]
    .iter()
    .sum();
    assert_eq!(total, c[0].size_bytes);
    assert_ledger(&store).await;
}

/// Opposite moves over the same backends complete (no deadlock) and keep the ledger.
pub async fn concurrent_opposite_moves(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = (0..16).map(|i| format!("m/{i:02}")).collect();
    for (i, k) in keys.iter().enumerate() {
        put(&store, k, if i % 2 == 0 { A } else { B }, 10 + i as i64).await;
    }
    let mut tasks = Vec::new();
    for round in 0..3 {
        for (i, k) in keys.iter().enumerate() {
            let s = store.clone();
            let k = k.clone();
            let (from, to) = if (i + round) % 2 == 0 { (A, B) } else { (B, A) };
            tasks.push(tokio::spawn(async move {
                move_copy(&s, &k, from, to).await.unwrap()
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = 0;
    for (i, k) in keys.iter().enumerate() {
        let p = placement(&store, k).await;
        assert_eq!(p.len(), 1, "{k}: {p:?}");
        assert_eq!(p[0].1, 10 + i as i64);
        total += p[0].1;
    }
    assert_eq!(used(&store, A).await + used(&store, B).await, total);
    assert_ledger(&store).await;
}

/// Batch deletes over overlapping keys in opposite orders complete and delete each copy once.
pub async fn concurrent_batch_deletes_overlapping(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = (0..20).map(|i| format!("b/{i:02}")).collect();
    for (i, k) in keys.iter().enumerate() {
        put(&store, k, [A, B, C][i % 3], 5).await;
    }
    let forward = keys.clone();
    let mut backward = keys.clone();
    backward.reverse();
    let (s1, s2) = (store.clone(), store.clone());
    let t1 = tokio::spawn(async move { s1.delete_objects_batch(&forward).await.unwrap() });
    let t2 = tokio::spawn(async move { s2.delete_objects_batch(&backward).await.unwrap() });
    let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
    let mut seen: Vec<&String> = r1.keys().chain(r2.keys()).collect();
    seen.sort();
    assert_eq!(
        seen,
        keys.iter().collect::<Vec<_>>(),
        "each key deleted exactly once"
    );
    for b in [A, B, C] {
        assert_eq!(used(&store, b).await, 0);
    }
    assert_ledger(&store).await;
}

/// A batch of exactly 1000 keys (the limit) deletes every copy in one call.
pub async fn batch_delete_max_keys(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = (0..1000).map(|i| format!("max/{i:04}")).collect();
    put_many(&store, &keys[..600], A, 2).await;
    put(&store, "survivor", B, 9).await;
    let out = store.delete_objects_batch(&keys).await.unwrap();
    assert_eq!(out.len(), 600);
    assert!(out.values().all(|v| sorted(v.clone()) == vec![dc(A, 2)]));
    assert_eq!(used(&store, A).await, 0);
    assert_eq!(placement(&store, "survivor").await, vec![(B.to_owned(), 9)]);
    assert_ledger(&store).await;
}

/// Backends for 1000 keys in one query, half of them present.
pub async fn object_backends_for_many_keys(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = (0..1000).map(|i| format!("many/{i:04}")).collect();
    let present: Vec<String> = keys.iter().step_by(2).cloned().collect();
    put_many(&store, &present, C, 1).await;
    let got = store.get_object_backends_for_keys(&keys).await.unwrap();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), present);
    assert!(got.values().all(|v| v == &vec![C.to_owned()]));
    assert_ledger(&store).await;
}

/// Overwriting an encrypted copy with a plaintext one clears every encryption column.
pub async fn overwrite_encrypted_with_plaintext(store: Db) {
    three_backends(&store).await;
    store
        .record_object("k", A, 1100, &encrypted_form(21))
        .await
        .unwrap();
    put(&store, "k", A, 1000).await;
    let c = copy_on(&store, "k", A).await;
    assert_eq!(c.form, StoredForm::default());
    assert_eq!(c.size_bytes, 1000);
    assert_eq!(used(&store, A).await, 1000);
    let listed = store.list_objects("", "", 10).await.unwrap();
    assert_eq!(
        listed.objects[0].size_bytes, 1000,
        "plaintext size is the stored size"
    );
    assert_ledger(&store).await;
}

/// Record, delete and record again: listings, locations and counters follow each step.
pub async fn record_delete_record_cycle(store: Db) {
    three_backends(&store).await;
    for round in 0..3i64 {
        put(&store, "cycle", [A, B, C][round as usize], 10 + round).await;
        let page = store.list_objects("cy", "", 10).await.unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].size_bytes, 10 + round);
        store.delete_object("cycle").await.unwrap();
        assert!(
            store
                .list_objects("cy", "", 10)
                .await
                .unwrap()
                .objects
                .is_empty()
        );
        assert!(copies(&store, "cycle").await.is_empty());
        assert_ledger(&store).await;
    }
    for b in [A, B, C] {
        assert_eq!(used(&store, b).await, 0);
    }
}

/// The gateway's fields (storage key, ETag, content type, user metadata) round trip through
/// record, every full-form read and listing, replica, move and an in-place re-encryption; an
/// empty map and empty strings read back empty; over-long values are `InvalidInput` and
/// change nothing.
pub async fn gateway_fields_round_trip(store: Db) {
    three_backends(&store).await;
    let form = StoredForm {
        storage_key: "data/7f/0001-ü".into(),
        etag: "\"0123456789abcdef0123456789abcdef-2\"".into(),
        content_type: "image/png".into(),
        user_metadata: [
            ("camera".to_owned(), "x100 \"v\"".to_owned()),
            ("ünï".to_owned(), "{}[]\\".to_owned()),
        ]
        .into_iter()
        .collect(),
        ..StoredForm::default()
    };
    store.record_object("gw/k", A, 40, &form).await.unwrap();
    assert_eq!(copy_on(&store, "gw/k", A).await.form, form);
    let by_backend = store.list_objects_by_backend(A, 10).await.unwrap();
    assert_eq!(by_backend[0].form, form);
    let by_prefix = store
        .list_objects_by_prefix("gw/", KeyBound::Start, 10)
        .await
        .unwrap();
    assert_eq!(by_prefix[0].form, form);
    let page = store.list_objects("gw/", "", 10).await.unwrap();
    assert_eq!(
        page.objects[0].form, form,
        "flat listing carries the full form"
    );
    // Replica then move: both carry every field.
    assert_eq!(
        replicate(&store, "gw/k", B, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 40 }
    );
    assert_eq!(copy_on(&store, "gw/k", B).await.form, form);
    assert_eq!(
        moved_bytes(&move_copy(&store, "gw/k", B, C).await.unwrap()),
        Some(40)
    );
    assert_eq!(copy_on(&store, "gw/k", C).await.form, form);
    // Encrypting in place changes only the envelope.
    assert!(
        store
            .mark_object_encrypted("gw/k", A, &[1, 2, 3], "mk-1", 40, 56)
            .await
            .unwrap()
    );
    let enc = copy_on(&store, "gw/k", A).await.form;
    assert_eq!(
        (
            &enc.storage_key,
            &enc.etag,
            &enc.content_type,
            &enc.user_metadata
        ),
        (
            &form.storage_key,
            &form.etag,
            &form.content_type,
            &form.user_metadata
        )
    );
    assert!(enc.encrypted);
    // Empty values read back empty (stored as NULL).
    store
        .record_object("gw/plain", A, 1, &StoredForm::default())
        .await
        .unwrap();
    assert_eq!(
        copy_on(&store, "gw/plain", A).await.form,
        StoredForm::default()
    );
    assert_eq!(form.storage_path("gw/k"), "data/7f/0001-ü");
    assert_eq!(StoredForm::default().storage_path("gw/k"), "gw/k");

    let before = snapshot(&store).await;
    let bad = [
        StoredForm {
            storage_key: "s".repeat(limits::MAX_STORAGE_KEY_BYTES + 1),
            ..form.clone()
        },
        StoredForm {
            storage_key: "a\0b".into(),
            ..form.clone()
        },
        StoredForm {
            etag: "e".repeat(limits::MAX_ETAG_BYTES + 1),
            ..form.clone()
        },
        StoredForm {
            content_type: "t".repeat(limits::MAX_CONTENT_TYPE_BYTES + 1),
            ..form.clone()
        },
        StoredForm {
            user_metadata: [(
                "k".to_owned(),
                "v".repeat(limits::MAX_USER_METADATA_JSON_BYTES),
            )]
            .into_iter()
            .collect(),
            ..form.clone()
        },
        StoredForm {
            user_metadata: [(String::new(), "v".to_owned())].into_iter().collect(),
            ..form.clone()
        },
        StoredForm {
            user_metadata: [("k".to_owned(), "v\0".to_owned())].into_iter().collect(),
            ..form.clone()
        },
    ];
    for (i, f) in bad.iter().enumerate() {
        assert_invalid(
            store.record_object("gw/bad", A, 1, f).await,
            &format!("bad form {i}"),
        );
        let p = PendingObject {
            intent_id: format!("bad-{i}"),
            object_key: "gw/bad".into(),
            backend_name: A.into(),
            size_bytes: 1,
            form: f.clone(),
            created_at: Timestamp::ZERO,
        };
        assert_invalid(store.insert_pending(&p).await, &format!("bad intent {i}"));
    }
    // At the limits exactly: accepted.
    let edge = StoredForm {
        storage_key: "s".repeat(limits::MAX_STORAGE_KEY_BYTES),
        etag: "e".repeat(limits::MAX_ETAG_BYTES),
        content_type: "t".repeat(limits::MAX_CONTENT_TYPE_BYTES),
        ..StoredForm::default()
    };
    assert_eq!(snapshot(&store).await, before);
    store.record_object("gw/edge", A, 1, &edge).await.unwrap();
    assert_eq!(copy_on(&store, "gw/edge", A).await.form, edge);
    assert_ledger(&store).await;
}

fn form_with_etag(etag: &str, path: &str) -> StoredForm {
    StoredForm {
        storage_key: path.to_owned(),
        etag: etag.to_owned(),
        ..StoredForm::default()
    }
}

fn cond(if_match: Option<&str>, if_none_match: Option<&str>) -> WritePrecondition {
    WritePrecondition {
        if_match: if_match.map(str::to_owned),
        if_none_match: if_none_match.map(str::to_owned),
    }
}

/// `If-None-Match: *` commits only while the key has no version; the loser's intent and
/// every counter stay as they were (the caller abandons the intent).
pub async fn conditional_if_none_match_first_committer_wins(store: Db) {
    three_backends(&store).await;
    let first = store
        .record_object_if(
            "k",
            A,
            10,
            &form_with_etag("e1", "k/@1"),
            None,
            &cond(None, Some("*")),
        )
        .await
        .unwrap();
    assert!(first.is_empty());
    store
        .insert_pending(&PendingObject {
            intent_id: "late".into(),
            object_key: "k".into(),
            backend_name: B.into(),
            size_bytes: 20,
            form: form_with_etag("e2", "k/@2"),
            created_at: Timestamp::ZERO,
        })
        .await
        .unwrap();
    let before = snapshot(&store).await;
    let lost = store
        .record_object_if(
            "k",
            B,
            20,
            &form_with_etag("e2", "k/@2"),
            Some("late"),
            &cond(None, Some("*")),
        )
        .await;
    assert!(
        matches!(lost, Err(StoreError::PreconditionFailed { ref key }) if key == "k"),
        "{lost:?}"
    );
    assert_eq!(
        snapshot(&store).await,
        before,
        "a refused write changes nothing"
    );
    assert_eq!(store.count_pending().await.unwrap(), 1, "the intent stays");
    // An If-None-Match naming another ETag passes; naming the current one fails.
    let r = store
        .record_object_if(
            "k",
            A,
            11,
            &form_with_etag("e3", "k/@3"),
            None,
            &cond(None, Some("e1")),
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::PreconditionFailed { .. })),
        "{r:?}"
    );
    store
        .record_object_if(
            "k",
            A,
            11,
            &form_with_etag("e3", "k/@3"),
            None,
            &cond(None, Some("zz")),
        )
        .await
        .unwrap();
    assert_eq!(copy_on(&store, "k", A).await.form.etag, "e3");
    assert_ledger(&store).await;
}

/// `If-Match` commits only over the named version: absent ⇒ `ObjectNotFound`, another ETag ⇒
/// `PreconditionFailed`, `*` ⇒ any version; a match displaces the old bytes as usual.
pub async fn conditional_if_match_checks_the_locked_version(store: Db) {
    three_backends(&store).await;
    let absent = store
        .record_object_if(
            "k",
            A,
            5,
            &form_with_etag("e1", "k/@1"),
            None,
            &cond(Some("*"), None),
        )
        .await;
    assert!(
        matches!(absent, Err(StoreError::ObjectNotFound { .. })),
        "{absent:?}"
    );
    assert!(copies(&store, "k").await.is_empty());
    store
        .record_object("k", A, 5, &form_with_etag("e1", "k/@1"))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    let wrong = store
        .record_object_if(
            "k",
            B,
            7,
            &form_with_etag("e2", "k/@2"),
            None,
            &cond(Some("e0"), None),
        )
        .await;
    assert!(
        matches!(wrong, Err(StoreError::PreconditionFailed { .. })),
        "{wrong:?}"
    );
    assert_eq!(snapshot(&store).await, before);
    let displaced = store
        .record_object_if(
            "k",
            B,
            7,
            &form_with_etag("e2", "k/@2"),
            None,
            &cond(Some("e1"), None),
        )
        .await
        .unwrap();
    assert_eq!(bs(&displaced), vec![(A.to_owned(), 5)]);
    let any = store
        .record_object_if(
            "k",
            B,
            8,
            &form_with_etag("e3", "k/@3"),
            None,
            &cond(Some("*"), None),
        )
        .await
        .unwrap();
    assert_eq!(bs(&any), vec![(B.to_owned(), 7)]);
    assert_eq!(placement(&store, "k").await, vec![(B.to_owned(), 8)]);
    // Bad input is refused before any SQL.
    let bad = store
        .record_object_if(
            "k",
            B,
            8,
            &form_with_etag("e4", "k/@4"),
            None,
            &cond(Some("a\0b"), None),
        )
        .await;
    assert!(
        matches!(bad, Err(StoreError::InvalidInput { .. })),
        "{bad:?}"
    );
    assert_ledger(&store).await;
}

/// N concurrent `If-None-Match: *` commits of one key: exactly one wins, the others are
/// refused, and the ledger holds the winner's copy only.
pub async fn concurrent_conditional_writes_commit_once(store: Db) {
    three_backends(&store).await;
    for round in 0..5 {
        let key = format!("race/{round}");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    s.record_object_if(
                        &key,
                        A,
                        1 + i,
                        &form_with_etag(&format!("e{i}"), &format!("{key}/@{i}")),
                        None,
                        &cond(None, Some("*")),
                    )
                    .await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(d) => {
                    assert!(d.is_empty());
                    won += 1;
                }
                Err(StoreError::PreconditionFailed { .. }) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one committer wins");
        assert_eq!(copies(&store, &key).await.len(), 1);
    }
    assert_ledger(&store).await;
}
