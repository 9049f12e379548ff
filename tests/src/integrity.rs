//! Integrity scrubbing and the dashboard counts.

use s3o_store::*;

use crate::support::*;

fn keys(rows: &[ObjectLocation]) -> Vec<String> {
    rows.iter().map(|r| r.object_key.clone()).collect()
}

/// Managed copies without a hash, oldest first; a hash update removes a copy from the list.
pub async fn objects_without_hash(store: Db) {
    three_backends(&store).await;
    put(&store, "u1", A, 1).await;
    put(&store, "u2", B, 2).await;
    store
        .record_object("h1", A, 3, &hashed_form("h"))
        .await
        .unwrap();
    let unmanaged = StoredForm {
        managed: false,
        ..StoredForm::default()
    };
    store.record_object("u3", C, 4, &unmanaged).await.unwrap();
    put(&store, "u4", C, 5).await;
    assert_eq!(
        keys(&store.get_objects_without_hash(100, 0).await.unwrap()),
        vec!["u1", "u2", "u4"]
    );
    assert_eq!(
        keys(&store.get_objects_without_hash(1, 1).await.unwrap()),
        vec!["u2"]
    );
    assert_eq!(
        keys(&store.get_objects_without_hash(100, -5).await.unwrap()),
        vec!["u1", "u2", "u4"],
        "negative offset clamps to 0"
    );
    assert!(store.update_content_hash("u1", A, "abc123").await.unwrap());
    assert_eq!(copy_on(&store, "u1", A).await.form.content_hash, "abc123");
    assert_eq!(
        keys(&store.get_objects_without_hash(100, 0).await.unwrap()),
        vec!["u2", "u4"]
    );
    assert!(!store.update_content_hash("u1", B, "x").await.unwrap());
    assert!(!store.update_content_hash("nope", A, "x").await.unwrap());
    assert_ledger(&store).await;
}

/// The scrub queue: never-verified by age first, then least recently verified; a scrub or a
/// hash update moves a copy to the back.
pub async fn least_recently_scrubbed_order(store: Db) {
    three_backends(&store).await;
    for k in ["s1", "s2", "s3"] {
        store
            .record_object(k, A, 1, &hashed_form("h"))
            .await
            .unwrap();
    }
    put(&store, "unhashed", A, 1).await;
    let unmanaged = StoredForm {
        managed: false,
        ..hashed_form("h")
    };
    store
        .record_object("unmanaged", A, 1, &unmanaged)
        .await
        .unwrap();
    let on_a = vec![A.to_owned()];
    let queue = |s: Db| async move {
        keys(
            &s.get_least_recently_scrubbed_objects(100, &[A.to_owned()])
                .await
                .unwrap(),
        )
    };
    assert_eq!(queue(store.clone()).await, vec!["s1", "s2", "s3"]);
    let stamp = |s: Db, k: &'static str| async move {
        s.get_all_object_locations(k).await.unwrap()[0].last_scrubbed_at
    };
    assert_eq!(
        stamp(store.clone(), "s1").await,
        None,
        "a new copy is unverified"
    );
    let before = Timestamp::now();
    assert!(store.mark_object_scrubbed("s1", A).await.unwrap());
    let scrubbed = stamp(store.clone(), "s1").await.expect("stamped");
    assert!(
        scrubbed.as_micros() >= before.as_micros() - 5_000_000,
        "stamp is the scrub time"
    );
    assert_eq!(queue(store.clone()).await, vec!["s2", "s3", "s1"]);
    // A replica is a new, unverified copy even of a verified source.
    replicate(&store, "s1", C, A).await.unwrap();
    let copies = store.get_all_object_locations("s1").await.unwrap();
    let on_c = copies.iter().find(|c| c.backend_name == C).unwrap();
    assert_eq!(on_c.last_scrubbed_at, None);
    assert!(store.mark_object_scrubbed("s2", A).await.unwrap());
    assert_eq!(queue(store.clone()).await, vec!["s3", "s1", "s2"]);
    assert!(store.update_content_hash("s3", A, "h2").await.unwrap());
    assert_eq!(queue(store.clone()).await, vec!["s1", "s2", "s3"]);
    assert!(!store.mark_object_scrubbed("s1", B).await.unwrap());
    assert!(!store.mark_object_scrubbed("nope", A).await.unwrap());
    assert_eq!(
        store
            .get_least_recently_scrubbed_objects(100, &on_a)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_ledger(&store).await;
}

/// The scrub queue covers only the given backends; empty backends ⇒ empty; limit honoured.
pub async fn scrub_backend_filter_and_limit(store: Db) {
    three_backends(&store).await;
    for (k, b) in [("a1", A), ("b1", B), ("a2", A), ("c1", C)] {
        store
            .record_object(k, b, 1, &hashed_form("h"))
            .await
            .unwrap();
    }
    let got = store
        .get_least_recently_scrubbed_objects(100, &[B.to_owned(), C.to_owned()])
        .await
        .unwrap();
    assert_eq!(keys(&got), vec!["b1", "c1"]);
    assert!(got.iter().all(|r| r.backend_name != A));
    assert!(
        store
            .get_least_recently_scrubbed_objects(100, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let one = store
        .get_least_recently_scrubbed_objects(1, &[A.to_owned()])
        .await
        .unwrap();
    assert_eq!(keys(&one), vec!["a1"]);
    assert_eq!(one[0].form.content_hash, "h");
    assert_ledger(&store).await;
}

/// Copies, unhashed copies and active uploads per backend.
pub async fn dashboard_counts(store: Db) {
    three_backends(&store).await;
    put(&store, "x", A, 1).await;
    store
        .record_object("y", A, 1, &hashed_form("h"))
        .await
        .unwrap();
    replicate(&store, "y", B, A).await.unwrap();
    put(&store, "z", B, 1).await;
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u".into(),
            object_key: "m".into(),
            backend_name: C.into(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    let counts = store.get_object_counts().await.unwrap();
    assert_eq!((counts.get(A), counts.get(B)), (Some(&2), Some(&2)));
    assert_eq!(counts.get(C).copied().unwrap_or(0), 0);
    let unverified = store.get_unverified_object_counts().await.unwrap();
    assert_eq!((unverified.get(A), unverified.get(B)), (Some(&1), Some(&1)));
    assert_eq!(unverified.get(C).copied().unwrap_or(0), 0);
    let mp = store.get_active_multipart_counts().await.unwrap();
    assert_eq!(mp.get(C), Some(&1));
    assert_eq!(mp.get(A).copied().unwrap_or(0), 0);
    assert_ledger(&store).await;
}

/// `remove_bad_copy`: a copy is removed only while it is the one checked (same path, same
/// `created_at`) and another backend holds the same version; an overwrite since the check, a
/// wrong path or time, a missing key or backend are `Changed`; the last copy of a version is
/// `LastCopy` and the only DEK holder beside a keyless sibling `OnlyKeyHolder`, all changing
/// nothing; bad input is `InvalidInput`. A removal debits the copy and queues its bytes
/// (claimed by this store) in one transaction.
pub async fn remove_bad_copy_checks_the_version(store: Db) {
    three_backends(&store).await;
    put(&store, "m", A, 10).await;
    replicate(&store, "m", B, A).await.unwrap();
    let on_b = copy_on(&store, "m", B).await;
    let path = on_b.form.storage_path("m").to_owned();
    let before = snapshot(&store).await;
    let micro = std::time::Duration::from_micros(1);
    for (key, backend, p, at) in [
        ("m", B, "other", on_b.created_at),
        ("m", B, path.as_str(), on_b.created_at.plus(micro)),
        ("m", C, path.as_str(), on_b.created_at),
        ("nope", B, path.as_str(), on_b.created_at),
    ] {
        assert_eq!(
            store.remove_bad_copy(key, backend, p, at).await.unwrap(),
            BadCopyRemoval::Changed,
            "{key} {backend} {p}"
        );
    }
    assert_invalid(
        store.remove_bad_copy("", B, &path, on_b.created_at).await,
        "empty key",
    );
    assert_invalid(
        store.remove_bad_copy("m", "", &path, on_b.created_at).await,
        "empty backend",
    );
    assert_eq!(snapshot(&store).await, before);
    // The checked copy goes: debited, its bytes queued and claimed.
    let BadCopyRemoval::Removed(d) = store
        .remove_bad_copy("m", B, &path, on_b.created_at)
        .await
        .unwrap()
    else {
        panic!("not removed")
    };
    assert_eq!(
        (
            d.backend_name.as_str(),
            d.size_bytes,
            d.storage_key.as_str()
        ),
        (B, 10, path.as_str())
    );
    assert_eq!((used(&store, B).await, orphan(&store, B).await), (0, 10));
    assert_eq!(placement(&store, "m").await, vec![(A.to_owned(), 10)]);
    assert_ledger(&store).await;
    store.complete_cleanup_item(&d.cleanup).await.unwrap();
    assert_eq!(orphan(&store, B).await, 0);
    // The last copy of the version is kept.
    let on_a = copy_on(&store, "m", A).await;
    let before = snapshot(&store).await;
    assert_eq!(
        store
            .remove_bad_copy("m", A, &path, on_a.created_at)
            .await
            .unwrap(),
        BadCopyRemoval::LastCopy
    );
    assert_eq!(snapshot(&store).await, before);
    // Overwritten after the check: the new version is never removed for the old bytes.
    put(&store, "w", A, 5).await;
    replicate(&store, "w", B, A).await.unwrap();
    let checked = copy_on(&store, "w", B).await;
    let newer = StoredForm {
        storage_key: "w/@2".into(),
        ..StoredForm::default()
    };
    store.record_object("w", B, 7, &newer).await.unwrap();
    replicate(&store, "w", C, B).await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        store
            .remove_bad_copy("w", B, checked.form.storage_path("w"), checked.created_at)
            .await
            .unwrap(),
        BadCopyRemoval::Changed
    );
    assert_eq!(snapshot(&store).await, before);
    // The only copy holding the data key beside a keyless sibling is kept; the sibling goes.
    let form = StoredForm {
        managed: true,
        ..encrypted_form(21)
    };
    store.record_object("e", A, 100, &form).await.unwrap();
    replicate(&store, "e", B, A).await.unwrap();
    assert!(
        store
            .mark_object_encrypted("e", B, &[], "mk-x", 90, 100)
            .await
            .unwrap()
    );
    let (a, b) = (copy_on(&store, "e", A).await, copy_on(&store, "e", B).await);
    let before = snapshot(&store).await;
    assert_eq!(
        store
            .remove_bad_copy("e", A, a.form.storage_path("e"), a.created_at)
            .await
            .unwrap(),
        BadCopyRemoval::OnlyKeyHolder
    );
    assert_eq!(snapshot(&store).await, before);
    assert!(matches!(
        store
            .remove_bad_copy("e", B, b.form.storage_path("e"), b.created_at)
            .await
            .unwrap(),
        BadCopyRemoval::Removed(_)
    ));
    assert_eq!(placement(&store, "e").await, vec![(A.to_owned(), 100)]);
    assert_ledger(&store).await;
}
