//! Objects, quotas, intents, multipart, listings, replication and validation on SQLite.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn record_round_trips_every_stored_form_field() {
    let dir = TempDir::new("objects");
    let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
    let form = encrypted_form();
    let before = Timestamp::now();
    let displaced = store
        .record_object("dir/k", "b1", 120, &form)
        .await
        .unwrap();
    assert!(displaced.is_empty());
    let locs = store.get_all_object_locations("dir/k").await.unwrap();
    assert_eq!(locs.len(), 1);
    let loc = &locs[0];
    assert_eq!(
        (
            loc.object_key.as_str(),
            loc.backend_name.as_str(),
            loc.size_bytes
        ),
        ("dir/k", "b1", 120)
    );
    assert_eq!(loc.form, form);
    assert!(loc.created_at >= before && loc.created_at <= Timestamp::now());

    // Plaintext: encryption columns stored as NULL read back empty even if the caller set them.
    let sloppy = StoredForm {
        encrypted: false,
        encryption_key: vec![9],
        key_id: "x".into(),
        plaintext_size: 5,
        ..StoredForm::default()
    };
    let displaced = store
        .record_object("dir/k", "b2", 7, &sloppy)
        .await
        .unwrap();
    assert_eq!(
        displaced
            .iter()
            .map(|d| (
                d.backend_name.as_str(),
                d.size_bytes,
                d.storage_key.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![("b1", 120, "dir/k")]
    );
    assert_eq!(displaced[0].cleanup.claimed_by, store.instance_id());
    let locs = store.get_all_object_locations("dir/k").await.unwrap();
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0].form, StoredForm::default());

    // Replica and move carry every stored-form column.
    store.record_object("r", "b1", 120, &form).await.unwrap();
    assert_eq!(
        store
            .record_replica("r", "b2", "b1", &path_on(&store, "r", "b1").await)
            .await
            .unwrap(),
        ReplicaOutcome::Recorded { bytes: 120 }
    );
    assert_eq!(
        store
            .record_replica("r", "b2", "b1", &path_on(&store, "r", "b1").await)
            .await
            .unwrap(),
        ReplicaOutcome::TargetHasCopy
    );
    let locs = store.get_all_object_locations("r").await.unwrap();
    assert_eq!(locs.len(), 2);
    assert!(locs.iter().all(|l| l.form == form && l.size_bytes == 120));
    assert_eq!(
        locs[0].created_at, locs[1].created_at,
        "a replica is the same version"
    );
    store.delete_object_location("r", "b2").await.unwrap();
    assert!(matches!(
        store
            .move_object_location("r", "b1", "b2", &path_on(&store, "r", "b1").await)
            .await
            .unwrap(),
        MoveOutcome::Moved { bytes: 120, .. }
    ));
    let moved = store.get_all_object_locations("r").await.unwrap();
    assert_eq!(
        (moved[0].backend_name.as_str(), &moved[0].form),
        ("b2", &form)
    );

    let backends = store
        .get_object_backends_for_keys(&["r".into(), "dir/k".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(backends.get("r"), Some(&vec!["b2".to_string()]));
    assert_eq!(backends.get("dir/k"), Some(&vec!["b2".to_string()]));
    assert!(!backends.contains_key("nope"));

    assert!(matches!(
        store.get_all_object_locations("nope").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    for (b, used, sum) in ledger(&dir.db_path()) {
        assert_eq!(used, sum, "{b}: bytes_used must equal Σ size_bytes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_backends_are_typed_errors_everywhere() {
    let dir = TempDir::new("unknown");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    let unknown = |r: Result<()>| matches!(r, Err(StoreError::UnknownBackend { backend }) if backend == "ghost");
    assert!(unknown(
        store
            .record_object("k", "ghost", 1, &StoredForm::default())
            .await
            .map(drop)
    ));
    assert!(unknown(
        store
            .import_object(&ImportedObject::new("k", "ghost", 1))
            .await
            .map(drop)
    ));
    assert!(unknown(store.enqueue_cleanup("ghost", "k", "r", 1).await));
    assert!(unknown(
        store
            .insert_pending(&PendingObject {
                intent_id: "i".into(),
                object_key: "k".into(),
                backend_name: "ghost".into(),
                size_bytes: 1,
                form: StoredForm::default(),
                created_at: Timestamp::ZERO,
            })
            .await
    ));
    assert!(unknown(
        store
            .create_multipart_upload(&CreateMultipartUploadParams {
                upload_id: "u".into(),
                object_key: "k".into(),
                backend_name: "ghost".into(),
                ..Default::default()
            })
            .await
    ));
    assert!(unknown(
        store.flush_usage_deltas("ghost", "2024-01", 1, 1, 1).await
    ));
    assert!(unknown(store.delete_backend_data("ghost").await));
    store
        .record_object("k", "b1", 1, &StoredForm::default())
        .await
        .unwrap();
    assert!(unknown(
        store
            .record_replica("k", "ghost", "b1", &path_on(&store, "k", "b1").await)
            .await
            .map(drop)
    ));
    assert!(unknown(
        store
            .move_object_location("k", "b1", "ghost", &path_on(&store, "k", "b1").await)
            .await
            .map(drop)
    ));
    // Nothing leaked: the copy is still on b1 only.
    let locs = store.get_all_object_locations("k").await.unwrap();
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0].backend_name, "b1");
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_guard_counts_orphan_bytes_to_the_exact_byte() {
    let dir = TempDir::new("quota");
    let store = store_at(&dir.url(), &[("b1", 1000), ("big", 0)]).await;
    store.increment_orphan_bytes("b1", 100).await.unwrap();
    store
        .record_object("a", "b1", 899, &StoredForm::default())
        .await
        .unwrap();
    assert!(matches!(
        store
            .record_object("b", "b1", 2, &StoredForm::default())
            .await,
        Err(StoreError::NoSpaceAvailable)
    ));
    store
        .record_object("b", "b1", 1, &StoredForm::default())
        .await
        .unwrap();
    let stats = store.get_quota_stats().await.unwrap();
    let b1 = &stats["b1"];
    assert_eq!(
        (b1.bytes_used, b1.orphan_bytes, b1.bytes_limit),
        (900, 100, 1000)
    );
    assert!(!b1.updated_at.is_zero());
    assert!(matches!(
        store
            .import_object(&ImportedObject::new("c", "b1", 1))
            .await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert!(matches!(
        store.get_all_object_locations("c").await,
        Err(StoreError::ObjectNotFound { .. })
    ));

    // Routing reads: b1 is full, unknown names are refused, unlimited always admits.
    assert!(matches!(
        store.get_backend_with_space(1, &["ghost".into(), "b1".into()]).await,
        Err(StoreError::UnknownBackend { backend }) if backend == "ghost"
    ));
    let order = vec!["b1".to_string(), "big".to_string()];
    assert_eq!(
        store.get_backend_with_space(1, &order).await.unwrap(),
        "big"
    );
    assert_eq!(store.get_backend_with_space(0, &order).await.unwrap(), "b1");
    assert!(matches!(
        store.get_backend_with_space(1, &order[..1]).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert!(matches!(
        store.get_backend_with_space(1, &[]).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(
        store.get_least_utilized_backend(1, &order).await.unwrap(),
        "big"
    );
    assert!(matches!(
        store
            .get_least_utilized_backend(s3o_core::validate::MAX_SIZE_BYTES, &order[..1])
            .await,
        Err(StoreError::NoSpaceAvailable)
    ));

    // Drift repair.
    raw(&dir.db_path())
        .execute(
            "UPDATE backend_quotas SET bytes_used = 5 WHERE backend_name = 'b1'",
            [],
        )
        .unwrap();
    let drift = store.reconcile_usage().await.unwrap();
    assert_eq!(drift, BTreeMap::from([("b1".to_string(), 895)]));
    assert!(store.reconcile_usage().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_intents_round_trip_and_promote() {
    let dir = TempDir::new("pending");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    let plain = PendingObject {
        intent_id: "i-plain".into(),
        object_key: "k".into(),
        backend_name: "b1".into(),
        size_bytes: 10,
        form: StoredForm::default(),
        created_at: Timestamp::from_micros(1_000_001),
    };
    let mut enc = plain.clone();
    enc.intent_id = "i-enc".into();
    enc.form = StoredForm {
        managed: true,
        ..encrypted_form()
    };
    enc.created_at = Timestamp::from_micros(1_000_002);
    store.insert_pending(&plain).await.unwrap();
    store.insert_pending(&enc).await.unwrap();
    let dup = store.insert_pending(&plain).await.unwrap_err();
    assert_eq!(dup.db_kind(), Some(DbErrorKind::UniqueViolation));
    let stale = store.get_stale_pending(Duration::ZERO, 10).await.unwrap();
    assert_eq!(stale, vec![plain.clone(), enc.clone()]);
    assert_eq!(store.count_pending().await.unwrap(), 2);

    let (res, displaced) = store.promote_pending(&enc).await.unwrap();
    assert_eq!(res, PendingPromoteResult::Committed);
    assert!(displaced.is_empty());
    assert_eq!(
        store.promote_pending(&enc).await.unwrap().0,
        PendingPromoteResult::AlreadyResolved
    );
    // The committed copy is newer than the plain intent: superseded.
    assert_eq!(
        store.promote_pending(&plain).await.unwrap().0,
        PendingPromoteResult::Superseded
    );
    assert_eq!(store.count_pending().await.unwrap(), 0);
    let locs = store.get_all_object_locations("k").await.unwrap();
    assert_eq!(locs[0].form, enc.form);

    store.insert_pending(&plain).await.unwrap();
    assert_eq!(store.delete_pending_by_backend("b1").await.unwrap(), 1);
    store.delete_pending("never-existed").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_round_trip() {
    let dir = TempDir::new("multipart");
    let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
    let params = CreateMultipartUploadParams {
        upload_id: "u1".into(),
        object_key: "docs/Big".into(),
        backend_name: "b1".into(),
        content_type: "text/plain".into(),
        metadata: BTreeMap::from([("owner".into(), "me".into())]),
        encryption_key: vec![7; 40],
        key_id: "mk-1".into(),
        ..CreateMultipartUploadParams::default()
    };
    store.create_multipart_upload(&params).await.unwrap();
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u2".into(),
            object_key: "docs/big".into(),
            backend_name: "b2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let u = store.get_multipart_upload("u1").await.unwrap();
    assert_eq!(
        (
            u.object_key.as_str(),
            u.backend_name.as_str(),
            u.content_type.as_str()
        ),
        ("docs/Big", "b1", "text/plain")
    );
    assert_eq!(u.metadata, params.metadata);
    assert!(u.encrypted && u.encryption_key == params.encryption_key && u.key_id == "mk-1");
    let u2 = store.get_multipart_upload("u2").await.unwrap();
    assert!(!u2.encrypted && u2.metadata.is_empty() && u2.content_type.is_empty());
    assert!(matches!(
        store.get_multipart_upload("nope").await,
        Err(StoreError::MultipartUploadNotFound { .. })
    ));

    let form = encrypted_form();
    store.record_part("u1", 2, "e2", 20, &form).await.unwrap();
    store
        .record_part("u1", 1, "e1", 10, &StoredForm::default())
        .await
        .unwrap();
    store
        .record_part("u1", 1, "e1b", 11, &StoredForm::default())
        .await
        .unwrap();
    for bad in [0, 10_001] {
        assert!(matches!(
            store
                .record_part("u1", bad, "e", 1, &StoredForm::default())
                .await,
            Err(StoreError::InvalidInput { .. })
        ));
    }
    assert!(matches!(
        store
            .record_part("nope", 1, "e", 1, &StoredForm::default())
            .await,
        Err(StoreError::MultipartUploadNotFound { .. })
    ));
    let parts = store.get_parts("u1").await.unwrap();
    assert_eq!(
        parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!((parts[0].etag.as_str(), parts[0].size_bytes), ("e1b", 11));
    assert!(parts[1].encrypted && parts[1].encryption_key == form.encryption_key);
    assert_eq!(
        (parts[1].key_id.as_str(), parts[1].plaintext_size),
        ("mk-7", 90)
    );

    // In-flight part bytes do not count against routing (one rule with the commit guard).
    store.sync_quota_limits(&[("b1".into(), 40)]).await.unwrap();
    let q = store.get_quota_stats().await.unwrap()["b1"].clone();
    let room = 40 - q.bytes_used - q.orphan_bytes;
    assert!(matches!(
        store.get_backend_with_space(room + 1, &["b1".into()]).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(
        store
            .get_backend_with_space(room, &["b1".into()])
            .await
            .unwrap(),
        "b1"
    );

    // Prefixes are case-sensitive byte ranges.
    let listed = store.list_multipart_uploads("docs/B", 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].upload_id.as_str(),
            listed[0].backend_name.as_str()
        ),
        ("u1", "")
    );
    assert_eq!(
        store.count_active_multipart_uploads("docs/").await.unwrap(),
        2
    );
    assert_eq!(
        store
            .count_active_multipart_uploads("docs/b")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .get_stale_multipart_uploads(Duration::ZERO)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .get_stale_multipart_uploads(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_multipart_uploads_by_backend("b2").await.unwrap()[0].upload_id,
        "u2"
    );
    assert_eq!(store.get_active_multipart_counts().await.unwrap()["b1"], 1);

    store
        .release_multipart_upload("u1", "aborted upload")
        .await
        .unwrap();
    assert!(
        store.get_parts("u1").await.unwrap().is_empty(),
        "parts cascade"
    );
    store
        .release_multipart_upload("u1", "aborted upload")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_are_byte_ordered_and_prefixes_literal() {
    let dir = TempDir::new("listing");
    let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
    let keys = [
        "A", "a", "B", "b", "Zoo", "zoo", "a/b", "a-b", "a.b", "a_b", "A1", "a1", "ab", "Ab",
        "a%b", "a\\b", "é", "a%%",
    ];
    for k in keys {
        store
            .record_object(k, "b2", 1, &StoredForm::default())
            .await
            .unwrap();
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = store.list_objects("", &token, 3).await.unwrap();
        seen.extend(page.objects.iter().map(|o| o.object_key.clone()));
        if !page.is_truncated {
            break;
        }
        token = page.next_continuation_token;
    }
    assert_eq!(seen, expected);

    let only = |prefix: &'static str| {
        let store = store.clone();
        async move {
            store
                .list_objects(prefix, "", 100)
                .await
                .unwrap()
                .objects
                .into_iter()
                .map(|o| o.object_key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only("a%").await, vec!["a%%", "a%b"]);
    assert_eq!(only("a_").await, vec!["a_b"]);
    assert_eq!(only("a\\").await, vec!["a\\b"]);
    assert_eq!(only("A").await, vec!["A", "A1", "Ab"]);
    assert_eq!(only("é").await, vec!["é"]);

    let delimited = store
        .list_objects_delimited("", "/", "", 100)
        .await
        .unwrap();
    assert_eq!(delimited.common_prefixes, vec!["a/"]);
    assert!(!delimited.objects.iter().any(|o| o.object_key == "a/b"));

    // One row per key: the oldest copy; replicas do not duplicate keys.
    store
        .record_replica("a", "b1", "b2", &path_on(&store, "a", "b2").await)
        .await
        .unwrap();
    let rows = store
        .list_objects_by_prefix("a", KeyBound::Start, 100)
        .await
        .unwrap();
    assert_eq!(rows.iter().filter(|r| r.object_key == "a").count(), 1);
    let a = rows.iter().find(|r| r.object_key == "a").unwrap();
    assert_eq!(
        a.backend_name, "b1",
        "equal created_at: ties broken by backend name"
    );
    let from = store
        .list_objects_by_prefix("a", KeyBound::From("a1"), 2)
        .await
        .unwrap();
    assert_eq!(
        from.iter()
            .map(|r| r.object_key.as_str())
            .collect::<Vec<_>>(),
        vec!["a1", "a\\b"]
    );

    let by_backend = store
        .list_objects_by_backend_key_asc("b2", "a\\b", 3)
        .await
        .unwrap();
    assert_eq!(
        by_backend
            .iter()
            .map(|r| r.object_key.as_str())
            .collect::<Vec<_>>(),
        vec!["a_b", "ab", "b"]
    );
    let expired = store
        .list_expired_objects("a%", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(expired.len(), 2);
    assert!(
        store
            .list_expired_objects("", Duration::from_secs(3600), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_integrity_usage_notifications_dashboard_encryption() {
    let dir = TempDir::new("misc");
    let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0), ("b3", 0)]).await;
    let plain = StoredForm::default();
    store.record_object("one", "b1", 10, &plain).await.unwrap();
    store.record_object("two", "b1", 20, &plain).await.unwrap();
    store
        .record_replica("two", "b2", "b1", &path_on(&store, "two", "b1").await)
        .await
        .unwrap();
    store
        .record_replica("two", "b3", "b1", &path_on(&store, "two", "b1").await)
        .await
        .unwrap();
    let unmanaged = StoredForm {
        managed: false,
        ..plain.clone()
    };
    store
        .record_object("free", "b2", 5, &unmanaged)
        .await
        .unwrap();

    let under = store.get_under_replicated_objects(2, 10).await.unwrap();
    assert_eq!(
        under
            .iter()
            .map(|l| l.object_key.as_str())
            .collect::<Vec<_>>(),
        vec!["one"]
    );
    let under_ex = store
        .get_under_replicated_objects_excluding(3, 10, &["b3".into()])
        .await
        .unwrap();
    assert_eq!(under_ex.iter().filter(|l| l.object_key == "two").count(), 3);
    let over = store.get_over_replicated_objects(2, 10).await.unwrap();
    assert_eq!(over.len(), 3);
    assert!(
        store
            .get_over_replicated_objects(2, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_over_replicated_objects(2).await.unwrap(), 1);
    assert!(
        store
            .remove_excess_copy("two", "b3", 2)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .remove_excess_copy("two", "b2", 2)
            .await
            .unwrap()
            .is_none()
    );

    // Integrity: unmanaged copies are not scrubbed; hashing moves rows between queues.
    let unhashed = store.get_objects_without_hash(10, 0).await.unwrap();
    assert_eq!(unhashed.len(), 3);
    assert_eq!(store.get_unverified_object_counts().await.unwrap()["b1"], 2);
    assert!(store.update_content_hash("one", "b1", "h1").await.unwrap());
    assert!(store.update_content_hash("two", "b1", "h2").await.unwrap());
    assert!(!store.update_content_hash("zzz", "b1", "h").await.unwrap());
    assert_eq!(
        store.get_objects_without_hash(10, 0).await.unwrap().len(),
        1
    );
    let queue = store
        .get_least_recently_scrubbed_objects(10, &["b1".into()])
        .await
        .unwrap();
    assert_eq!(queue.len(), 2);
    assert!(
        store
            .mark_object_scrubbed(&queue[0].object_key, "b1")
            .await
            .unwrap()
    );
    let queue2 = store
        .get_least_recently_scrubbed_objects(10, &["b1".into()])
        .await
        .unwrap();
    assert_eq!(
        queue2[1].object_key, queue[0].object_key,
        "just-scrubbed goes last"
    );
    assert!(
        store
            .get_least_recently_scrubbed_objects(10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_object_counts().await.unwrap()["b1"], 2);
    assert_eq!(store.backend_object_stats("b1").await.unwrap(), (2, 30));

    // Usage flushes accumulate.
    store
        .flush_usage_deltas("b1", "2024-05", 1, 2, 3)
        .await
        .unwrap();
    store
        .flush_usage_deltas("b1", "2024-05", 10, 20, 30)
        .await
        .unwrap();
    let usage = store.get_usage_for_period("2024-05").await.unwrap();
    assert_eq!(
        usage["b1"],
        UsageStat {
            api_requests: 11,
            egress_bytes: 22,
            ingress_bytes: 33
        }
    );

    // Notification outbox lifecycle; payload stored verbatim.
    assert!(matches!(
        store
            .insert_notification("t", "{not json", "http://x")
            .await,
        Err(StoreError::InvalidInput { .. })
    ));
    let payload = r#"{"key": "one",  "v": 1}"#;
    let id = store
        .insert_notification("s3:Put", payload, "http://hook")
        .await
        .unwrap();
    let due = store.get_due_notifications(10).await.unwrap();
    assert_eq!((due[0].id, due[0].payload.as_str()), (id, payload));
    store
        .retry_notification(id, Duration::from_secs(3600), "boom")
        .await
        .unwrap();
    assert!(store.get_due_notifications(10).await.unwrap().is_empty());
    store.complete_notification(id).await.unwrap();

    // Encryption admin lifecycle.
    let plain_rows = store.list_unencrypted_locations(10, None).await.unwrap();
    assert_eq!(plain_rows.len(), 4);
    let after = Cursor {
        object_key: plain_rows[0].object_key.clone(),
        backend_name: plain_rows[0].backend_name.clone(),
    };
    assert_eq!(
        store
            .list_unencrypted_locations(10, Some(&after))
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .mark_object_encrypted("one", "b1", &[1, 2], "k1", 10, 38)
            .await
            .unwrap()
    );
    let by_key = store.list_encrypted_locations("k1", 10, 0).await.unwrap();
    assert_eq!(by_key.len(), 1);
    assert!(
        store
            .update_encryption_key("one", "b1", &[3], "k2")
            .await
            .unwrap()
    );
    let all = store.list_all_encrypted_locations(10, None).await.unwrap();
    assert_eq!(
        (all[0].key_id.as_str(), all[0].encryption_key.clone()),
        ("k2", vec![3])
    );
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].bytes_used, 58);
    assert!(store.mark_object_decrypted("one", "b1", 10).await.unwrap());
    let one = store.get_all_object_locations("one").await.unwrap();
    assert!(!one[0].form.encrypted);
    assert_eq!(one[0].form.content_hash, "h1", "hash survives decrypt");
    for (b, used, sum) in ledger(&dir.db_path()) {
        assert_eq!(used, sum, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_backend_data_removes_every_reference() {
    let dir = TempDir::new("backend");
    let store = store_at(&dir.url(), &[("gone", 0), ("kept", 0)]).await;
    let plain = StoredForm::default();
    store.record_object("k", "gone", 3, &plain).await.unwrap();
    store.record_object("k2", "kept", 4, &plain).await.unwrap();
    store.enqueue_cleanup("gone", "x", "r", 1).await.unwrap();
    store.enqueue_cleanup("gone", "y", "r", 1).await.unwrap();
    let id = store.get_due_cleanups(10).await.unwrap()[0].id;
    assert!(store.move_cleanup_to_dlq(id, "dead").await.unwrap());
    store
        .insert_pending(&PendingObject {
            intent_id: "i".into(),
            object_key: "p".into(),
            backend_name: "gone".into(),
            size_bytes: 1,
            form: plain.clone(),
            created_at: Timestamp::ZERO,
        })
        .await
        .unwrap();
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u".into(),
            object_key: "m".into(),
            backend_name: "gone".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    store.record_part("u", 1, "e", 1, &plain).await.unwrap();
    store
        .flush_usage_deltas("gone", "2024-01", 1, 1, 1)
        .await
        .unwrap();

    store.delete_backend_data("gone").await.unwrap();
    let stats = store.get_quota_stats().await.unwrap();
    assert!(!stats.contains_key("gone") && stats.contains_key("kept"));
    let c = raw(&dir.db_path());
    for table in [
        "object_locations",
        "cleanup_queue",
        "cleanup_dlq",
        "pending_objects",
        "multipart_uploads",
        "backend_usage",
    ] {
        let n: i64 = c
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE backend_name = 'gone'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let parts: i64 = c
        .query_row("SELECT count(*) FROM multipart_parts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(parts, 0);
    assert_eq!(store.get_all_object_locations("k2").await.unwrap().len(), 1);
    assert!(matches!(
        store.delete_backend_data("gone").await,
        Err(StoreError::UnknownBackend { .. })
    ));
}

fn keys_of(rows: &[ObjectLocation]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r.object_key.clone(), r.backend_name.clone()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, b)| (k.to_string(), b.to_string()))
        .collect()
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StoreError::InvalidInput { .. }))
}

#[tokio::test(flavor = "multi_thread")]
async fn under_replication_discounts_excluded_copies_without_hiding_keys() {
    let dir = TempDir::new("under");
    let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0), ("drain", 0)]).await;
    let form = StoredForm::default();
    store
        .record_object("only-drain", "drain", 1, &form)
        .await
        .unwrap();
    store
        .record_object("b1-drain", "b1", 1, &form)
        .await
        .unwrap();
    store
        .record_replica(
            "b1-drain",
            "drain",
            "b1",
            &path_on(&store, "b1-drain", "b1").await,
        )
        .await
        .unwrap();
    store.record_object("b1-b2", "b1", 1, &form).await.unwrap();
    store
        .record_replica("b1-b2", "b2", "b1", &path_on(&store, "b1-b2", "b1").await)
        .await
        .unwrap();
    let unmanaged = StoredForm {
        managed: false,
        ..StoredForm::default()
    };
    store
        .record_object("unmanaged", "b1", 1, &unmanaged)
        .await
        .unwrap();

    let drain = ["drain".to_string()];
    // A key living only on the excluded backend counts 0 copies and is returned.
    let rows = store
        .get_under_replicated_objects_excluding(2, 10, &drain)
        .await
        .unwrap();
    assert_eq!(
        keys_of(&rows),
        pairs(&[
            ("b1-drain", "b1"),
            ("b1-drain", "drain"),
            ("only-drain", "drain")
        ])
    );
    let rows = store
        .get_under_replicated_objects_excluding(1, 10, &drain)
        .await
        .unwrap();
    assert_eq!(keys_of(&rows), pairs(&[("only-drain", "drain")]));
    // The key limit counts keys, not rows.
    let rows = store
        .get_under_replicated_objects_excluding(2, 1, &drain)
        .await
        .unwrap();
    assert_eq!(
        keys_of(&rows),
        pairs(&[("b1-drain", "b1"), ("b1-drain", "drain")])
    );
    let rows = store.get_under_replicated_objects(2, 10).await.unwrap();
    assert_eq!(keys_of(&rows), pairs(&[("only-drain", "drain")]));
    // batch_limit: ≤ 0 selects nothing.
    for limit in [0, -1] {
        assert!(
            store
                .get_under_replicated_objects_excluding(2, limit, &drain)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .get_under_replicated_objects(5, limit)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .get_over_replicated_objects(0, limit)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let rows = store.get_over_replicated_objects(1, 10).await.unwrap();
    assert_eq!(
        keys_of(&rows),
        pairs(&[
            ("b1-b2", "b1"),
            ("b1-b2", "b2"),
            ("b1-drain", "b1"),
            ("b1-drain", "drain")
        ])
    );
    assert!(is_invalid(
        store
            .get_under_replicated_objects_excluding(2, 10, &["".to_string()])
            .await
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_validation_rules_apply_before_any_sql() {
    let dir = TempDir::new("rules");
    let store = store_at(&dir.url(), &[("b1", 100)]).await;
    store
        .record_object("k", "b1", 10, &StoredForm::default())
        .await
        .unwrap();

    // Transaction primitives validate like PostgreSQL's: nothing runs, nothing changes.
    let mut tx = store.begin().await.unwrap();
    assert!(is_invalid(tx.decrement_backend_quota("b1", -5).await));
    assert!(is_invalid(tx.increment_backend_quota("b1", -5).await));
    assert!(is_invalid(tx.decrement_orphan_bytes("b1", -5).await));
    assert!(is_invalid(tx.set_backend_bytes_used("b1", -1).await));
    assert!(is_invalid(tx.adjust_backend_quota_unguarded("", 1).await));
    assert!(is_invalid(tx.get_existing_copies_for_update("").await));
    assert!(is_invalid(tx.delete_object_copies("a\0b").await));
    assert!(is_invalid(tx.check_object_exists_on_backend("k", "").await));
    assert!(is_invalid(
        tx.insert_object_location(&ObjectLocation {
            last_scrubbed_at: None,
            object_key: "n".into(),
            backend_name: "b1".into(),
            size_bytes: -1,
            created_at: Timestamp::ZERO,
            form: StoredForm::default(),
        })
        .await
    ));
    let too_many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    assert!(is_invalid(tx.delete_objects_by_keys(&too_many).await));
    assert!(is_invalid(
        tx.get_copies_for_keys_for_update(&too_many).await
    ));
    assert!(is_invalid(
        tx.insert_replica_conditional("k", "", "b1").await
    ));
    // The transaction is still usable after refused calls.
    assert!(tx.check_object_exists_on_backend("k", "b1").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].bytes_used, 10);
    assert!(is_invalid(
        store.get_object_backends_for_keys(&too_many).await
    ));

    // Quota limits: validated as a whole, sorted, a repeated name keeps its last limit.
    assert!(is_invalid(
        store
            .sync_quota_limits(&[("ok".into(), 1), (String::new(), 2)])
            .await
    ));
    assert!(!store.get_quota_stats().await.unwrap().contains_key("ok"));
    store
        .sync_quota_limits(&[("b9".into(), 5), ("b2".into(), 0), ("b9".into(), 7)])
        .await
        .unwrap();
    let stats = store.get_quota_stats().await.unwrap();
    assert_eq!(stats["b9"].bytes_limit, 7);
    assert_eq!(stats["b2"].bytes_limit, 0);

    // Preference lists: invalid names refused, unknown ones `UnknownBackend`.
    assert!(is_invalid(
        store
            .get_backend_with_space(1, &[String::new(), "b1".into()])
            .await
    ));
    assert!(is_invalid(
        store.get_least_utilized_backend(1, &["b\0".into()]).await
    ));
    assert!(matches!(
        store.get_backend_with_space(1, &["nope".into()]).await,
        Err(StoreError::UnknownBackend { .. })
    ));
    assert!(matches!(
        store
            .get_backend_with_space(1, &["nope".into(), "b1".into()])
            .await,
        Err(StoreError::UnknownBackend { backend }) if backend == "nope"
    ));
    assert!(matches!(
        store
            .get_least_utilized_backend(1, &["nope".into(), "b1".into()])
            .await,
        Err(StoreError::UnknownBackend { backend }) if backend == "nope"
    ));

    // Usage periods: YYYY-MM with a real month; deltas non-negative.
    assert!(is_invalid(
        store.flush_usage_deltas("b1", "2024-13", 1, 0, 0).await
    ));
    assert!(is_invalid(
        store.flush_usage_deltas("b1", "2024-05", -1, 0, 0).await
    ));
    assert!(is_invalid(store.get_usage_for_period("2024-00").await));
    store
        .flush_usage_deltas("b1", "2024-05", 1, 2, 3)
        .await
        .unwrap();
    assert_eq!(
        store.get_usage_for_period("2024-05").await.unwrap()["b1"].ingress_bytes,
        3
    );

    // Listing limits: ≤ 0 means the default page; claims with ≤ 0 claim nothing.
    store
        .enqueue_cleanup("b1", "gone", "test", 1)
        .await
        .unwrap();
    let cutoff = Duration::ZERO;
    for limit in [0, -7] {
        assert_eq!(store.get_due_cleanups(limit).await.unwrap().len(), 1);
        assert!(
            store
                .claim_pending_cleanups(limit, "me", cutoff)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .list_objects_by_backend("b1", limit)
                .await
                .unwrap()
                .len(),
            1
        );
    }
    assert_eq!(
        store
            .claim_pending_cleanups(5, "me", cutoff)
            .await
            .unwrap()
            .len(),
        1
    );
}
