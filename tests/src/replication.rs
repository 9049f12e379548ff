//! Replication queries and copy adjustments.

use std::collections::BTreeSet;

use s3o_store::*;

use crate::support::*;

fn keys_of(rows: &[ObjectLocation]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r.object_key.clone()).collect();
    v.dedup();
    v
}

/// k1 on A; k2 on A, B; k3 on A, B, C.
async fn replicated_set(store: &Db) {
    three_backends(store).await;
    put(store, "k1", A, 10).await;
    put(store, "k2", A, 20).await;
    replicate(store, "k2", B, A).await.unwrap();
    put(store, "k3", A, 30).await;
    replicate(store, "k3", B, A).await.unwrap();
    replicate(store, "k3", C, A).await.unwrap();
}

/// A replica carries the source's whole stored form and charges the target.
pub async fn replica_copies_stored_form(store: Db) {
    three_backends(&store).await;
    let form = encrypted_form(11);
    store.record_object("k", A, 555, &form).await.unwrap();
    assert_eq!(
        replicate(&store, "k", B, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 555 }
    );
    let replica = copy_on(&store, "k", B).await;
    assert_eq!(replica.form, form);
    assert_eq!(replica.size_bytes, 555);
    assert_eq!((used(&store, A).await, used(&store, B).await), (555, 555));
    assert_ledger(&store).await;
}

/// Existing target ⇒ `TargetHasCopy`; missing source (also on an unknown backend) ⇒
/// `SourceGone`; same backend ⇒ `InvalidInput`; nothing changed in any case.
pub async fn replica_no_op_paths(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 10).await;
    replicate(&store, "k", B, A).await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        replicate(&store, "k", B, A).await.unwrap(),
        ReplicaOutcome::TargetHasCopy
    );
    assert_invalid(replicate(&store, "k", A, A).await, "target == source");
    assert_eq!(
        replicate(&store, "k", C, UNKNOWN).await.unwrap(),
        ReplicaOutcome::SourceGone
    );
    assert_eq!(
        replicate(&store, "missing", C, A).await.unwrap(),
        ReplicaOutcome::SourceGone
    );
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// The target's quota is guarded; a refused replica is rolled back.
pub async fn replica_over_quota_rolls_back(store: Db) {
    backends(&store, &[(A, GIB), (B, 100)]).await;
    put(&store, "big", A, 101).await;
    put(&store, "fits", A, 100).await;
    let before = snapshot(&store).await;
    assert_no_space(replicate(&store, "big", B, A).await);
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        replicate(&store, "fits", B, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 100 }
    );
    assert_eq!(used(&store, B).await, 100);
    assert_ledger(&store).await;
}

/// Under-replicated keys: every row of keys with fewer managed copies than the factor,
/// ordered by key then age, limited by keys.
pub async fn under_replicated_objects(store: Db) {
    replicated_set(&store).await;
    let two = store.get_under_replicated_objects(2, 100).await.unwrap();
    assert_eq!(keys_of(&two), vec!["k1"]);
    assert_eq!(two.len(), 1);
    let three = store.get_under_replicated_objects(3, 100).await.unwrap();
    assert_eq!(keys_of(&three), vec!["k1", "k2"]);
    assert_eq!(three.len(), 3, "every row of each key: {three:?}");
    let k2_rows: Vec<&ObjectLocation> = three.iter().filter(|r| r.object_key == "k2").collect();
    assert_eq!(k2_rows[0].backend_name, A, "oldest copy first");
    assert!(k2_rows[0].created_at <= k2_rows[1].created_at);
    let limited = store.get_under_replicated_objects(3, 1).await.unwrap();
    assert_eq!(keys_of(&limited), vec!["k1"]);
    assert!(
        store
            .get_under_replicated_objects(1, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// Copies on excluded backends do not count towards the factor.
pub async fn under_replicated_excluding(store: Db) {
    replicated_set(&store).await;
    let got = store
        .get_under_replicated_objects_excluding(2, 100, &[B.to_owned()])
        .await
        .unwrap();
    let keys: BTreeSet<String> = got.iter().map(|r| r.object_key.clone()).collect();
    assert_eq!(keys, ["k1", "k2"].iter().map(|s| (*s).to_owned()).collect());
    let none_excluded = store
        .get_under_replicated_objects_excluding(2, 100, &[])
        .await
        .unwrap();
    assert_eq!(keys_of(&none_excluded), vec!["k1"]);
    let both = store
        .get_under_replicated_objects_excluding(2, 100, &[B.to_owned(), C.to_owned()])
        .await
        .unwrap();
    let keys: BTreeSet<String> = both.iter().map(|r| r.object_key.clone()).collect();
    assert_eq!(keys.len(), 3);
    assert_ledger(&store).await;
}

/// Over-replicated keys and their count; limit ≤ 0 ⇒ nothing.
pub async fn over_replicated_objects_and_count(store: Db) {
    replicated_set(&store).await;
    let one = store.get_over_replicated_objects(1, 100).await.unwrap();
    assert_eq!(keys_of(&one), vec!["k2", "k3"]);
    assert_eq!(one.len(), 5);
    let two = store.get_over_replicated_objects(2, 100).await.unwrap();
    assert_eq!(keys_of(&two), vec!["k3"]);
    assert_eq!(two.len(), 3);
    assert_eq!(
        keys_of(&store.get_over_replicated_objects(1, 1).await.unwrap()),
        vec!["k2"]
    );
    assert!(
        store
            .get_over_replicated_objects(1, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_over_replicated_objects(3, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_over_replicated_objects(1).await.unwrap(), 2);
    assert_eq!(store.count_over_replicated_objects(2).await.unwrap(), 1);
    assert_eq!(store.count_over_replicated_objects(3).await.unwrap(), 0);
    assert_ledger(&store).await;
}

/// Excess-copy removal: only above the factor, debits the copy, false when gone.
pub async fn remove_excess_copy_paths(store: Db) {
    replicated_set(&store).await;
    let before = snapshot(&store).await;
    assert!(
        store
            .remove_excess_copy("k3", C, 3)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .remove_excess_copy("k1", A, 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .remove_excess_copy("missing", A, 1)
            .await
            .unwrap()
            .is_none()
    );
    assert_invalid(store.remove_excess_copy("k3", C, 0).await, "factor 0");
    assert_eq!(snapshot(&store).await, before);
    assert!(
        store
            .remove_excess_copy("k3", C, 2)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(used(&store, C).await, 0);
    assert!(
        store
            .remove_excess_copy("k3", C, 1)
            .await
            .unwrap()
            .is_none(),
        "copy already gone"
    );
    assert!(
        store
            .remove_excess_copy("k3", B, 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .remove_excess_copy("k3", A, 1)
            .await
            .unwrap()
            .is_none(),
        "last copy kept"
    );
    assert_eq!(placement(&store, "k3").await, vec![(A.to_owned(), 30)]);
    assert_eq!(used(&store, B).await, 20);
    assert_ledger(&store).await;
}

/// The only copy holding the DEK is never dropped while a sibling is encrypted without one.
pub async fn remove_excess_refuses_last_dek_holder(store: Db) {
    three_backends(&store).await;
    let form = StoredForm {
        managed: true,
        ..encrypted_form(12)
    };
    store.record_object("k", A, 100, &form).await.unwrap();
    replicate(&store, "k", B, A).await.unwrap();
    // Make B's copy keyless (encrypted, no DEK).
    assert!(
        store
            .mark_object_encrypted("k", B, &[], "mk-x", 90, 100)
            .await
            .unwrap()
    );
    assert!(copy_on(&store, "k", B).await.form.encryption_key.is_empty());
    let before = snapshot(&store).await;
    match store.remove_excess_copy("k", A, 1).await {
        Err(StoreError::CopyHoldsOnlyDek { key, backend }) => {
            assert_eq!((key.as_str(), backend.as_str()), ("k", A));
        }
        other => panic!("expected CopyHoldsOnlyDek, got {other:?}"),
    }
    assert_eq!(snapshot(&store).await, before);
    assert!(store.remove_excess_copy("k", B, 1).await.unwrap().is_some());
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 100)]);
    assert_eq!(copy_on(&store, "k", A).await.form, form);
    assert_ledger(&store).await;
}

/// A replica of a version that was overwritten meanwhile (the source copy is at another path
/// now) is refused with `VersionChanged` naming the current path, changing nothing; the
/// current version replicates.
pub async fn replica_of_an_overwritten_version_is_refused(store: Db) {
    three_backends(&store).await;
    let at = |p: &str| StoredForm {
        storage_key: p.into(),
        ..StoredForm::default()
    };
    store.record_object("k", A, 10, &at("k/v1")).await.unwrap();
    // The worker read k/v1 and copied its bytes; then the key was overwritten.
    let read = path_on(&store, "k", A).await;
    assert_eq!(read, "k/v1");
    store.record_object("k", A, 20, &at("k/v2")).await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        store.record_replica("k", B, A, &read).await.unwrap(),
        ReplicaOutcome::VersionChanged {
            current_storage_key: "k/v2".into()
        }
    );
    assert_eq!(
        snapshot(&store).await,
        before,
        "a refused replica changed the ledger"
    );
    assert_invalid(
        store.record_replica("k", B, A, "").await,
        "empty expected path",
    );
    assert_eq!(
        store.record_replica("k", B, A, "k/v2").await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 20 }
    );
    assert_eq!(copy_on(&store, "k", B).await.form.storage_key, "k/v2");
    assert_eq!(used(&store, B).await, 20);
    // A copy without a storage key is at the object key.
    put(&store, "plain", A, 0).await;
    assert_eq!(
        store.record_replica("plain", B, A, "plain").await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 0 }
    );
    assert_ledger(&store).await;
}
