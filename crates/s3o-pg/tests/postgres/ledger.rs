//! Objects, quotas, listings, multipart, replication and encryption on PostgreSQL.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_round_trips_every_stored_form_field() {
    let db = setup!("record_round_trip");
    let s = &db.store;
    assert_eq!(s.engine(), "postgres");
    let before = Timestamp::now();
    s.record_object("enc", "a", 100, &encrypted_form())
        .await
        .unwrap();
    s.record_object("plain", "b", 7, &StoredForm::default())
        .await
        .unwrap();

    let enc = s.get_all_object_locations("enc").await.unwrap();
    assert_eq!(enc.len(), 1);
    assert_eq!(enc[0].object_key, "enc");
    assert_eq!(enc[0].backend_name, "a");
    assert_eq!(enc[0].size_bytes, 100);
    assert_eq!(enc[0].form, encrypted_form());
    assert!(enc[0].created_at >= before.minus(Duration::from_secs(60)));

    let plain = s.get_all_object_locations("plain").await.unwrap();
    assert_eq!(
        plain[0].form,
        StoredForm::default(),
        "NULLs read back as zero values"
    );

    // A replica carries the whole stored form and the creation time.
    assert_eq!(
        s.record_replica("enc", "b", "a", &path_on(s, "enc", "a").await)
            .await
            .unwrap(),
        s3o_core::ReplicaOutcome::Recorded { bytes: 100 }
    );
    let both = s.get_all_object_locations("enc").await.unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(both[1].form, encrypted_form());
    assert_eq!(both[0].created_at, both[1].created_at);

    // Unencrypted forms drop stray encryption fields (the normalised form is stored).
    let stray = StoredForm {
        encrypted: false,
        encryption_key: vec![9],
        key_id: "x".into(),
        plaintext_size: 3,
        content_hash: "h".into(),
        managed: true,
        ..StoredForm::default()
    };
    s.record_object("stray", "a", 1, &stray).await.unwrap();
    let got = &s.get_all_object_locations("stray").await.unwrap()[0];
    assert_eq!(got.form, stray.normalized());

    let missing = s.get_all_object_locations("nope").await.unwrap_err();
    assert!(
        matches!(missing, StoreError::ObjectNotFound { .. }),
        "{missing:?}"
    );

    let stats = s.get_quota_stats().await.unwrap();
    assert_eq!(stats["a"].bytes_used, 101);
    assert_eq!(stats["b"].bytes_used, 107);
    assert!(s.reconcile_usage().await.unwrap().is_empty());
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_backends_are_answers_not_foreign_key_errors() {
    let db = setup!("unknown_backend");
    let s = &db.store;
    let unknown = |r: Result<(), StoreError>| match r {
        Err(StoreError::UnknownBackend { backend }) => assert_eq!(backend, "ghost"),
        other => panic!("expected UnknownBackend, got {other:?}"),
    };
    unknown(
        s.record_object("k", "ghost", 1, &StoredForm::default())
            .await
            .map(|_| ()),
    );
    unknown(s.enqueue_cleanup("ghost", "k", "r", 1).await);
    unknown(
        s.insert_pending(&PendingObject {
            intent_id: "i1".into(),
            object_key: "k".into(),
            backend_name: "ghost".into(),
            size_bytes: 1,
            form: StoredForm::default(),
            created_at: Timestamp::ZERO,
        })
        .await,
    );
    unknown(
        s.create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u".into(),
            object_key: "k".into(),
            backend_name: "ghost".into(),
            ..Default::default()
        })
        .await,
    );
    unknown(s.flush_usage_deltas("ghost", "2026-01", 1, 1, 1).await);
    unknown(s.delete_backend_data("ghost").await);
    s.record_object("k", "a", 5, &StoredForm::default())
        .await
        .unwrap();
    unknown(
        s.record_replica("k", "ghost", "a", &path_on(s, "k", "a").await)
            .await
            .map(|_| ()),
    );
    unknown(
        s.move_object_location("k", "a", "ghost", &path_on(s, "k", "a").await)
            .await
            .map(|_| ()),
    );
    // Nothing moved: the failed move rolled back.
    assert_eq!(
        s.get_all_object_locations("k").await.unwrap()[0].backend_name,
        "a"
    );
    // Answers never trip the breaker.
    assert_eq!(s.breaker().state(), BreakerState::Closed);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_admits_up_to_the_exact_byte_counting_orphans() {
    let db = setup!("quota_exact_byte");
    let s = &db.store;
    s.sync_quota_limits(&[("a".into(), 1000)]).await.unwrap();
    s.increment_orphan_bytes("a", 100).await.unwrap();
    s.record_object("k1", "a", 800, &StoredForm::default())
        .await
        .unwrap();
    // used 800 + orphan 100 + 101 = 1001 > 1000.
    let e = s
        .record_object("k2", "a", 101, &StoredForm::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSpaceAvailable), "{e:?}");
    assert!(matches!(
        s.get_all_object_locations("k2").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    // Exactly 1000 is admitted.
    s.record_object("k2", "a", 100, &StoredForm::default())
        .await
        .unwrap();
    let st = &s.get_quota_stats().await.unwrap()["a"];
    assert_eq!(
        (st.bytes_used, st.orphan_bytes, st.bytes_limit),
        (900, 100, 1000)
    );
    // A zero-byte write still fits; one more byte does not.
    s.record_object("k3", "a", 0, &StoredForm::default())
        .await
        .unwrap();
    assert!(matches!(
        s.import_object(&ImportedObject::new("k4", "a", 1)).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    // Admission reads subtract orphans too.
    assert!(matches!(
        s.get_backend_with_space(1, &["a".into()]).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert!(matches!(
        s.get_backend_with_space(1, &["ghost".into(), "a".into(), "b".into()])
            .await,
        Err(StoreError::UnknownBackend { backend }) if backend == "ghost"
    ));
    assert_eq!(
        s.get_backend_with_space(1, &["a".into(), "b".into()])
            .await
            .unwrap(),
        "b"
    );
    assert_eq!(
        s.get_least_utilized_backend(5, &["a".into(), "b".into()])
            .await
            .unwrap(),
        "b"
    );
    // Releasing the orphans makes room again.
    s.decrement_orphan_bytes("a", 1_000_000).await.unwrap();
    assert_eq!(s.get_quota_stats().await.unwrap()["a"].orphan_bytes, 0);
    assert_eq!(
        s.import_object(&ImportedObject::new("k4", "a", 100))
            .await
            .unwrap(),
        ImportOutcome::Imported
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_page_over_100k_rows_uses_the_byte_order_index() {
    let db = setup!("listing_index");
    let raw = db.raw().await;
    raw.batch_execute(
        "INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at) \
         SELECT 'p' || (g % 7) || '/' || lpad(g::text, 7, '0'), \
                CASE WHEN g % 3 = 0 THEN 'b' ELSE 'a' END, g, \
                NOW() - g * INTERVAL '1 second' \
         FROM generate_series(1, 100000) g; \
         ANALYZE object_locations;",
    )
    .await
    .unwrap();
    let cases = [
        ("p3/", KeyBound::Start),
        ("p3/", KeyBound::After("p3/0050000")),
        ("", KeyBound::After("p5/")),
        ("p1/", KeyBound::From("p1/0000500")),
    ];
    for generic in [false, true] {
        if generic {
            raw.batch_execute("SET plan_cache_mode = force_generic_plan")
                .await
                .unwrap();
        }
        for (prefix, bound) in cases {
            let (sql, params) = s3o_pg::listing_statement(prefix, bound);
            let limit: i64 = 1001;
            let mut p: Vec<&(dyn s3o_pg::tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|s| s as _).collect();
            p.push(&limit);
            let plan = explain(&raw, &sql, &p).await;
            assert!(
                plan.contains("idx_object_locations_key_collate_c"),
                "generic={generic} {prefix:?} {bound:?}:\n{plan}"
            );
            assert!(!plan.contains("Seq Scan"), "{plan}");
            assert!(!plan.contains("Sort"), "no sort needed:\n{plan}");
        }
    }
    // And the store's page is right: one row per key, in byte order, after the token.
    let page = db.store.list_objects("p3/", "p3/0050000", 5).await.unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| o.object_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "p3/0050004",
            "p3/0050011",
            "p3/0050018",
            "p3/0050025",
            "p3/0050032"
        ]
    );
    assert!(page.is_truncated);
    assert_eq!(page.next_continuation_token, "p3/0050032");
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_byte_ordered_and_prefixes_wildcard_safe() {
    let db = setup!("listing_byte_order");
    let s = &db.store;
    let keys = [
        "A",
        "a",
        "B",
        "b",
        "Zoo",
        "zoo",
        "a/b",
        "a-b",
        "a.b",
        "a_b",
        "A1",
        "a1",
        "ab",
        "Ab",
        "a%x",
        "a\\y",
        "é",
        "z\u{10FFFF}",
    ];
    for k in keys {
        s.record_object(k, "a", 1, &StoredForm::default())
            .await
            .unwrap();
    }
    // A second, younger copy of "ab": listings report the oldest copy once.
    s.record_replica("ab", "b", "a", &path_on(s, "ab", "a").await)
        .await
        .unwrap();
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = s.list_objects("", &token, 3).await.unwrap();
        seen.extend(page.objects.iter().map(|o| o.object_key.clone()));
        if !page.is_truncated {
            break;
        }
        token = page.next_continuation_token;
    }
    assert_eq!(seen, expected);
    let under = |p: &str| {
        let p = p.to_owned();
        async move {
            s.list_objects(&p, "", 0)
                .await
                .unwrap()
                .objects
                .into_iter()
                .map(|o| o.object_key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(under("a_").await, ["a_b"]);
    assert_eq!(under("a%").await, ["a%x"]);
    assert_eq!(under("a\\").await, ["a\\y"]);
    assert_eq!(under("A").await, ["A", "A1", "Ab"]);
    assert_eq!(under("z").await, ["zoo", "z\u{10FFFF}"]);
    let d = s.list_objects_delimited("a", "/", "", 100).await.unwrap();
    assert_eq!(d.common_prefixes, ["a/"]);
    // Expired listing honours the prefix as a range too.
    let cutoff = Duration::ZERO;
    let exp: Vec<String> = s
        .list_expired_objects("a_", cutoff, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.object_key)
        .collect();
    assert_eq!(exp, ["a_b"]);
    // Reconcile cursor walks one backend in byte order.
    let walk = s
        .list_objects_by_backend_key_asc("a", "Zoo", 3)
        .await
        .unwrap();
    let walk: Vec<&str> = walk.iter().map(|o| o.object_key.as_str()).collect();
    assert_eq!(walk, ["a", "a%x", "a-b"]);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_overwrites_leave_one_copy_and_consistent_quotas() {
    let db = setup!("racing_overwrites");
    let s = Arc::new(db.second_store().await);
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let backend = if i % 2 == 0 { "a" } else { "b" };
            s.record_object("hot", backend, 10 + i, &StoredForm::default())
                .await
                .unwrap();
            // Opposite moves and batch deletes on other keys at the same time.
            let k = format!("m{}", i % 4);
            s.record_object(&k, "a", 3, &StoredForm::default())
                .await
                .unwrap();
            s.move_object_location(&k, "a", "b", &path_on(&*s, &k, "a").await)
                .await
                .unwrap();
            s.move_object_location(&k, "b", "a", &path_on(&*s, &k, "b").await)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get_all_object_locations("hot").await.unwrap().len(), 1);
    assert!(
        s.reconcile_usage().await.unwrap().is_empty(),
        "quotas match the ledger"
    );
    let deleted = s
        .delete_objects_batch(&["m0".into(), "m1".into(), "hot".into(), "none".into()])
        .await
        .unwrap();
    assert_eq!(deleted.len(), 3);
    assert!(s.reconcile_usage().await.unwrap().is_empty());
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_backend_data_removes_every_referencing_row() {
    let db = setup!("delete_backend");
    let s = &db.store;
    s.record_object("k", "b", 5, &StoredForm::default())
        .await
        .unwrap();
    s.record_object("keep", "a", 5, &StoredForm::default())
        .await
        .unwrap();
    s.enqueue_cleanup("b", "x", "r", 1).await.unwrap();
    s.enqueue_cleanup("b", "y", "r", 1).await.unwrap();
    let id = s.get_due_cleanups(1).await.unwrap()[0].id;
    s.move_cleanup_to_dlq(id, "e").await.unwrap();
    s.insert_pending(&PendingObject {
        intent_id: "i".into(),
        object_key: "p".into(),
        backend_name: "b".into(),
        size_bytes: 1,
        form: StoredForm::default(),
        created_at: Timestamp::ZERO,
    })
    .await
    .unwrap();
    s.create_multipart_upload(&CreateMultipartUploadParams {
        upload_id: "u".into(),
        object_key: "m".into(),
        backend_name: "b".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    s.record_part("u", 1, "e1", 3, &StoredForm::default())
        .await
        .unwrap();
    s.flush_usage_deltas("b", "2026-01", 1, 2, 3).await.unwrap();
    assert_eq!(s.backend_object_stats("b").await.unwrap(), (1, 5));
    s.delete_backend_data("b").await.unwrap();
    assert!(!s.get_quota_stats().await.unwrap().contains_key("b"));
    assert_eq!(s.backend_object_stats("b").await.unwrap(), (0, 0));
    assert_eq!(s.count_pending().await.unwrap(), 0);
    assert_eq!(s.cleanup_dlq_depth().await.unwrap(), 0);
    assert_eq!(s.cleanup_queue_depth().await.unwrap(), 0);
    assert!(s.get_parts("u").await.unwrap().is_empty());
    assert!(s.get_usage_for_period("2026-01").await.unwrap().is_empty());
    assert_eq!(s.get_all_object_locations("keep").await.unwrap().len(), 1);
    assert!(matches!(
        s.delete_backend_data("b").await,
        Err(StoreError::UnknownBackend { .. })
    ));
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_pending_and_outbox_round_trip() {
    let db = setup!("multipart_pending_outbox");
    let s = &db.store;
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("color".to_owned(), "blue".to_owned());
    s.create_multipart_upload(&CreateMultipartUploadParams {
        upload_id: "u1".into(),
        object_key: "big/file".into(),
        backend_name: "a".into(),
        content_type: "text/plain".into(),
        metadata: meta.clone(),
        encryption_key: vec![7; 8],
        key_id: "mk".into(),
        ..CreateMultipartUploadParams::default()
    })
    .await
    .unwrap();
    let up = s.get_multipart_upload("u1").await.unwrap();
    assert_eq!(up.metadata, meta);
    assert!(up.encrypted);
    assert_eq!(
        (up.content_type.as_str(), up.key_id.as_str()),
        ("text/plain", "mk")
    );
    assert!(matches!(
        s.get_multipart_upload("nope").await,
        Err(StoreError::MultipartUploadNotFound { .. })
    ));
    assert!(matches!(
        s.record_part("nope", 1, "e", 1, &StoredForm::default())
            .await,
        Err(StoreError::MultipartUploadNotFound { .. })
    ));
    assert!(matches!(
        s.record_part("u1", 10_001, "e", 1, &StoredForm::default())
            .await,
        Err(StoreError::InvalidInput { .. })
    ));
    s.record_part("u1", 2, "e2", 20, &encrypted_form())
        .await
        .unwrap();
    s.record_part("u1", 1, "e1", 10, &StoredForm::default())
        .await
        .unwrap();
    s.record_part("u1", 1, "e1b", 11, &StoredForm::default())
        .await
        .unwrap();
    let parts = s.get_parts("u1").await.unwrap();
    assert_eq!(
        parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!((parts[0].etag.as_str(), parts[0].size_bytes), ("e1b", 11));
    assert_eq!(parts[1].encryption_key, encrypted_form().encryption_key);
    assert_eq!(s.count_active_multipart_uploads("big/").await.unwrap(), 1);
    assert_eq!(s.count_active_multipart_uploads("BIG/").await.unwrap(), 0);
    assert_eq!(s.list_multipart_uploads("big", 0).await.unwrap().len(), 1);
    assert_eq!(
        s.get_stale_multipart_uploads(Duration::ZERO)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.get_active_multipart_counts().await.unwrap()["a"], 1);
    // Recorded parts (11 + 20 bytes) are charged: admission counts them (one rule with the
    // commit guard).
    s.sync_quota_limits(&[("a".into(), 100)]).await.unwrap();
    assert_eq!(s.get_quota_stats().await.unwrap()["a"].bytes_used, 31);
    assert!(matches!(
        s.get_backend_with_space(70, &["a".into()]).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(
        s.get_backend_with_space(69, &["a".into()]).await.unwrap(),
        "a"
    );
    s.release_multipart_upload("u1", "aborted upload")
        .await
        .unwrap();
    assert!(s.get_parts("u1").await.unwrap().is_empty());

    // Pending intents: every field survives, promote commits them.
    let p = PendingObject {
        intent_id: "i-1".into(),
        object_key: "obj".into(),
        backend_name: "b".into(),
        size_bytes: 100,
        form: StoredForm {
            managed: true,
            ..encrypted_form()
        },
        created_at: Timestamp::ZERO,
    };
    s.insert_pending(&p).await.unwrap();
    let dup = s.insert_pending(&p).await.unwrap_err();
    assert_eq!(dup.db_kind(), Some(DbErrorKind::UniqueViolation), "{dup:?}");
    let stale = s.get_stale_pending(Duration::ZERO, 0).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].form, p.form);
    assert!(!stale[0].created_at.is_zero());
    let (res, displaced) = s.promote_pending(&stale[0]).await.unwrap();
    assert_eq!(res, PendingPromoteResult::Committed);
    assert!(displaced.is_empty());
    assert_eq!(s.count_pending().await.unwrap(), 0);
    let (res, _) = s.promote_pending(&stale[0]).await.unwrap();
    assert_eq!(res, PendingPromoteResult::AlreadyResolved);
    assert_eq!(
        s.get_all_object_locations("obj").await.unwrap()[0].form,
        p.form
    );

    // Outbox: JSON checked before SQL, lifecycle insert → pending → retry → complete.
    assert!(matches!(
        s.insert_notification("put", "{not json", "http://x").await,
        Err(StoreError::InvalidInput { .. })
    ));
    let id = s
        .insert_notification(
            "s3:ObjectCreated:Put",
            r#"{"key": "obj", "n": 1}"#,
            "http://x",
        )
        .await
        .unwrap();
    let pending = s.get_due_notifications(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&pending[0].payload).unwrap();
    assert_eq!(v["key"], "obj");
    s.retry_notification(id, Duration::from_secs(3600), "503")
        .await
        .unwrap();
    assert!(s.get_due_notifications(10).await.unwrap().is_empty());
    s.complete_notification(id).await.unwrap();

    // Usage: two flushes accumulate.
    s.flush_usage_deltas("a", "2026-02", 1, 10, 100)
        .await
        .unwrap();
    s.flush_usage_deltas("a", "2026-02", 2, 20, 200)
        .await
        .unwrap();
    let u = s.get_usage_for_period("2026-02").await.unwrap()["a"];
    assert_eq!(
        (u.api_requests, u.egress_bytes, u.ingress_bytes),
        (3, 30, 300)
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_integrity_and_encryption_admin_queries() {
    let db = setup!("replication_integrity_admin");
    let s = &db.store;
    s.sync_quota_limits(&[("c".into(), 0)]).await.unwrap();
    s.record_object("one", "a", 10, &StoredForm::default())
        .await
        .unwrap();
    s.record_object("two", "a", 20, &StoredForm::default())
        .await
        .unwrap();
    s.record_replica("two", "b", "a", &path_on(s, "two", "a").await)
        .await
        .unwrap();
    s.record_object(
        "unmanaged",
        "a",
        5,
        &StoredForm {
            managed: false,
            ..StoredForm::default()
        },
    )
    .await
    .unwrap();
    let under: BTreeSet<String> = s
        .get_under_replicated_objects(2, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.object_key)
        .collect();
    assert_eq!(under, BTreeSet::from(["one".to_owned()]));
    let excl: Vec<String> = s
        .get_under_replicated_objects_excluding(2, 10, &["b".into()])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.object_key)
        .collect();
    assert_eq!(excl, ["one", "two", "two"], "all rows of the chosen keys");
    s.record_replica("two", "c", "a", &path_on(s, "two", "a").await)
        .await
        .unwrap();
    assert_eq!(s.count_over_replicated_objects(2).await.unwrap(), 1);
    assert_eq!(s.get_over_replicated_objects(2, 10).await.unwrap().len(), 3);
    assert!(
        s.get_over_replicated_objects(2, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.remove_excess_copy("two", "c", 2).await.unwrap().is_some());
    assert!(s.remove_excess_copy("two", "b", 2).await.unwrap().is_none());

    // Integrity: unhashed managed copies, hashing, the scrub queue.
    let unhashed = s.get_objects_without_hash(100, 0).await.unwrap();
    assert_eq!(unhashed.len(), 3);
    assert!(s.update_content_hash("one", "a", "h1").await.unwrap());
    assert!(!s.update_content_hash("one", "zz", "h1").await.unwrap());
    assert!(s.update_content_hash("two", "a", "h2").await.unwrap());
    assert!(s.update_content_hash("two", "b", "h2").await.unwrap());
    assert!(
        s.get_least_recently_scrubbed_objects(10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let q = s
        .get_least_recently_scrubbed_objects(10, &["a".into()])
        .await
        .unwrap();
    assert_eq!(q.len(), 2);
    assert!(s.mark_object_scrubbed(&q[0].object_key, "a").await.unwrap());
    let q2 = s
        .get_least_recently_scrubbed_objects(10, &["a".into()])
        .await
        .unwrap();
    assert_eq!(q2[1].object_key, q[0].object_key, "scrubbed copy goes last");
    assert_eq!(s.get_unverified_object_counts().await.unwrap()["a"], 1);
    assert_eq!(s.get_object_counts().await.unwrap()["a"], 3);

    // Encryption admin: keyset paging, mark encrypted/decrypted with quota adjustments.
    let plain = s.list_unencrypted_locations(2, None).await.unwrap();
    assert_eq!(plain.len(), 2);
    let cursor = s3o_core::Cursor {
        object_key: plain[1].object_key.clone(),
        backend_name: plain[1].backend_name.clone(),
    };
    let rest = s
        .list_unencrypted_locations(10, Some(&cursor))
        .await
        .unwrap();
    assert_eq!(plain.len() + rest.len(), 4);
    assert!(
        s.mark_object_encrypted("one", "a", &[1, 2], "k1", 10, 16)
            .await
            .unwrap()
    );
    assert_eq!(
        s.list_encrypted_locations("k1", 10, 0).await.unwrap().len(),
        1
    );
    assert!(
        s.update_encryption_key("one", "a", &[3, 4], "k2")
            .await
            .unwrap()
    );
    let all = s.list_all_encrypted_locations(10, None).await.unwrap();
    assert_eq!((all.len(), all[0].key_id.as_str()), (1, "k2"));
    assert!(s.mark_object_decrypted("one", "a", 10).await.unwrap());
    assert!(s.reconcile_usage().await.unwrap().is_empty());
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_of_a_plaintext_copy_changes_nothing() {
    let db = setup!("rotate_plaintext");
    let s = &db.store;
    s.record_object("plain", "a", 10, &StoredForm::default())
        .await
        .unwrap();
    s.record_object("sealed", "a", 100, &encrypted_form())
        .await
        .unwrap();
    let before = s.get_all_object_locations("plain").await.unwrap();
    assert!(
        !s.update_encryption_key("plain", "a", &[7, 7, 7], "mk-2")
            .await
            .unwrap(),
        "a plaintext copy has no key to rotate"
    );
    assert_eq!(s.get_all_object_locations("plain").await.unwrap(), before);
    assert!(
        s.list_all_encrypted_locations(10, None)
            .await
            .unwrap()
            .iter()
            .all(|l| l.object_key != "plain")
    );
    // Gone copies answer false too; encrypted copies rotate.
    assert!(
        !s.update_encryption_key("nothing", "a", &[1], "mk-2")
            .await
            .unwrap()
    );
    assert!(
        s.update_encryption_key("sealed", "a", &[7, 7, 7], "mk-2")
            .await
            .unwrap()
    );
    let sealed = &s.get_all_object_locations("sealed").await.unwrap()[0];
    assert_eq!(sealed.form.encryption_key, vec![7, 7, 7]);
    assert_eq!(sealed.form.key_id, "mk-2");
    assert!(sealed.form.encrypted);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_to_an_unknown_target_is_unknown_backend_with_or_without_source() {
    let db = setup!("replica_unknown_target");
    let s = &db.store;
    s.record_object("k", "a", 5, &encrypted_form())
        .await
        .unwrap();
    let mut tx = s3o_core::engine::Runner::begin(s).await.unwrap();
    for (key, source) in [("missing", "a"), ("k", "a"), ("k", "ghost-source")] {
        match tx.insert_replica_conditional(key, "ghost", source).await {
            Err(StoreError::UnknownBackend { backend }) => assert_eq!(backend, "ghost"),
            other => panic!("{key} from {source}: expected UnknownBackend, got {other:?}"),
        }
    }
    // The refusals were answers: the transaction is still usable and commits.
    assert_eq!(
        tx.insert_replica_conditional("missing", "b", "a")
            .await
            .unwrap(),
        None,
        "known target, no source: nothing"
    );
    assert_eq!(
        tx.insert_replica_conditional("k", "b", "a").await.unwrap(),
        Some(5)
    );
    assert_eq!(
        tx.insert_replica_conditional("k", "b", "a").await.unwrap(),
        None,
        "target already holds a copy"
    );
    tx.commit().await.unwrap();
    let copies = s.get_all_object_locations("k").await.unwrap();
    assert_eq!(copies.len(), 2);
    assert_eq!(
        copies[1].form, copies[0].form,
        "replica carries the stored form"
    );
    assert_eq!(s.breaker().state(), BreakerState::Closed);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_utilized_backend_is_exact_and_ties_by_name() {
    let db = setup!("least_utilized_exact");
    let s = &db.store;
    s.sync_quota_limits(&[("c".into(), 0)]).await.unwrap();
    let c = db.raw().await;
    let set = |b: &'static str, limit: i64, used: i64| {
        let c = &c;
        async move {
            c.execute(
                "UPDATE backend_quotas SET bytes_limit = $2, bytes_used = $3 \
                 WHERE backend_name = $1",
                &[&b, &limit, &used],
            )
            .await
            .unwrap();
        }
    };
    let eligible: Vec<String> = vec!["a".into(), "b".into()];
    // 2^53 + 1 and 2^53 are the same f64: only exact arithmetic sees that b is emptier.
    set("a", 1 << 62, (1 << 53) + 1).await;
    set("b", 1 << 62, 1 << 53).await;
    assert_eq!(
        s.get_least_utilized_backend(0, &eligible).await.unwrap(),
        "b"
    );
    // Equal fractions (1/4 = 2/8) tie; the name decides.
    set("a", 4, 1).await;
    set("b", 8, 2).await;
    assert_eq!(
        s.get_least_utilized_backend(1, &eligible).await.unwrap(),
        "a"
    );
    assert_eq!(
        s.get_least_utilized_backend(1, &["b".into(), "a".into()])
            .await
            .unwrap(),
        "a",
        "the order of the list does not matter"
    );
    // A backend without room is skipped; unlimited counts as empty.
    assert_eq!(
        s.get_least_utilized_backend(4, &eligible).await.unwrap(),
        "b"
    );
    assert_eq!(
        s.get_least_utilized_backend(1, &["a".into(), "c".into()])
            .await
            .unwrap(),
        "c"
    );
    // Unknown names are `UnknownBackend`, invalid ones refused before any SQL.
    assert!(matches!(
        s.get_least_utilized_backend(1, &["ghost".into(), "b".into()])
            .await,
        Err(StoreError::UnknownBackend { backend }) if backend == "ghost"
    ));
    for bad in [String::new(), "x\0y".to_owned()] {
        assert!(matches!(
            s.get_least_utilized_backend(1, &["a".into(), bad.clone()])
                .await,
            Err(StoreError::InvalidInput { .. })
        ));
        assert!(matches!(
            s.get_backend_with_space(1, &["a".into(), bad]).await,
            Err(StoreError::InvalidInput { .. })
        ));
    }
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_limit_rules_zero_means_nothing_or_a_default_page() {
    let db = setup!("shared_limits");
    let s = &db.store;
    s.record_object("one", "a", 1, &StoredForm::default())
        .await
        .unwrap();
    s.enqueue_cleanup("a", "gone", "r", 1).await.unwrap();
    for limit in [0, -1] {
        // Batches that select work: ≤ 0 ⇒ nothing.
        assert!(
            s.get_under_replicated_objects(2, limit)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.get_under_replicated_objects_excluding(2, limit, &["b".into()])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.get_over_replicated_objects(0, limit)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.claim_pending_cleanups(limit, "w", Duration::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        // Listings: ≤ 0 ⇒ the default page.
        assert_eq!(s.get_objects_without_hash(limit, 0).await.unwrap().len(), 1);
        assert_eq!(
            s.list_objects_by_backend("a", limit).await.unwrap().len(),
            1
        );
        assert_eq!(s.get_due_cleanups(limit).await.unwrap().len(), 1);
    }
    assert_eq!(s.get_under_replicated_objects(2, 1).await.unwrap().len(), 1);
    // Usage periods and deltas are validated before any SQL.
    for (period, delta) in [("2026-13", 1), ("2026-1", 1), ("2026-01", -1)] {
        assert!(matches!(
            s.flush_usage_deltas("a", period, delta, 0, 0).await,
            Err(StoreError::InvalidInput { .. })
        ));
    }
    assert!(matches!(
        s.get_usage_for_period("January").await,
        Err(StoreError::InvalidInput { .. })
    ));
    // A batch lookup takes at most 1000 keys.
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    assert!(matches!(
        s.get_object_backends_for_keys(&keys).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(
        s.get_object_backends_for_keys(&keys[..1000])
            .await
            .unwrap()
            .is_empty()
    );
    db.finish().await;
}

/// The striped quota: eight writers charging one limited backend (with overwrites and deletes
/// turning bytes into orphans, and limit syncs and reconciles running meanwhile) never push `used + orphan` past the limit in any committed state, stripes
/// really carry charges in parallel, and at the end the ledger is exact and the last free
/// byte is still admissible — no room is stranded in the stripes' grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn striped_quota_never_over_admits_and_strands_no_room() {
    let db = setup!("quota_stripes");
    const LIMIT: i64 = 20_000;
    let store = Arc::new(PgStore::connect(&db.url).await.unwrap());
    store
        .sync_quota_limits(&[("q".into(), LIMIT)])
        .await
        .unwrap();
    let raw = db.raw().await;
    let stripes: i64 = raw
        .query_one(
            "SELECT count(*) FROM backend_quota_stripes WHERE backend_name = 'q'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stripes, 16);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // One statement, one snapshot: a committed state of the row and all its stripes.
    let checker = {
        let done = done.clone();
        let raw = db.raw().await;
        tokio::spawn(async move {
            let (mut checks, mut busiest) = (0, 0i64);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let r = raw
                    .query_one(
                        "SELECT (q.bytes_used + q.orphan_bytes + SUM(s.bytes_used))::bigint, \
                                (q.bytes_used + q.orphan_bytes + SUM(s.bytes_granted))::bigint, \
                                count(*) FILTER (WHERE s.bytes_used > 0), \
                                count(*) FILTER (WHERE s.bytes_used > s.bytes_granted) \
                         FROM backend_quotas q JOIN backend_quota_stripes s USING (backend_name) \
                         WHERE q.backend_name = 'q' \
                         GROUP BY q.bytes_used, q.orphan_bytes",
                        &[],
                    )
                    .await
                    .unwrap();
                let (charged, reserved): (i64, i64) = (r.get(0), r.get(1));
                assert!(charged <= LIMIT, "over-admitted: {charged} > {LIMIT}");
                assert!(
                    reserved <= LIMIT,
                    "grants exceed the room: {reserved} > {LIMIT}"
                );
                checks += 1;
                busiest = busiest.max(r.get::<_, i64>(2));
                assert_eq!(r.get::<_, i64>(3), 0, "a stripe charged past its grant");
            }
            (checks, busiest)
        })
    };
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let (mut admitted, mut refused) = (0, 0);
            for i in 0..40i64 {
                let key = format!("k{t}/{i}");
                let size = 1 + (i * 37 + t * 101) % 700;
                match s
                    .record_object(&key, "q", size, &StoredForm::default())
                    .await
                {
                    Ok(_) => admitted += 1,
                    Err(StoreError::NoSpaceAvailable) => refused += 1,
                    Err(e) => panic!("{e:?}"),
                }
                if i % 5 == 4 {
                    // An overwrite at a new path by a smaller object: the old bytes stay as
                    // orphans, and the growth (the new size) passes the guard.
                    let form = StoredForm {
                        storage_key: format!("k{t}/{}/v2", i - 1),
                        ..StoredForm::default()
                    };
                    match s
                        .record_object(&format!("k{t}/{}", i - 1), "q", size / 2 + 1, &form)
                        .await
                    {
                        Ok(_) | Err(StoreError::NoSpaceAvailable) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
                if i % 6 == 5 {
                    // The key may have been refused: then there is nothing to delete.
                    match s.delete_object(&format!("k{t}/{}", i - 3)).await {
                        Ok(_) | Err(StoreError::ObjectNotFound { .. }) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
            (admitted, refused)
        }));
    }
    // Limit syncs and reconciles while the writers run: both fold every stripe under the quota
    // row (per backend, in the global lock order) and must neither fail nor find drift.
    let churn = {
        let s = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                s.sync_quota_limits(&[("q".into(), LIMIT)]).await.unwrap();
                let drift = s.reconcile_usage().await.unwrap();
                assert!(drift.is_empty(), "drift while writing: {drift:?}");
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            rounds
        })
    };
    let (mut admitted, mut refused) = (0, 0);
    for t in tasks {
        let (a, r) = t.await.unwrap();
        admitted += a;
        refused += r;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (checks, busiest) = checker.await.unwrap();
    assert!(checks > 0);
    assert!(churn.await.unwrap() > 0, "no sync or reconcile ran");
    assert!(
        admitted > 0 && refused > 0,
        "{admitted} admitted, {refused} refused"
    );
    assert!(
        busiest >= 2,
        "charges never spread over stripes ({busiest})"
    );
    let stats = store.get_quota_stats().await.unwrap();
    let q = &stats["q"];
    let (_, stored) = store.backend_object_stats("q").await.unwrap();
    assert_eq!(q.bytes_used, stored, "the ledger is exact");
    assert!(q.bytes_used + q.orphan_bytes <= LIMIT);
    assert!(store.reconcile_usage().await.unwrap().is_empty());
    // Exactly the remainder is admissible, not a byte more.
    let free = LIMIT - q.bytes_used - q.orphan_bytes;
    if free > 0 {
        db.store
            .record_object("last", "q", free, &StoredForm::default())
            .await
            .unwrap();
    }
    let over = store
        .record_object("over", "q", 1, &StoredForm::default())
        .await
        .unwrap_err();
    assert!(matches!(over, StoreError::NoSpaceAvailable), "{over:?}");
    let stats = store.get_quota_stats().await.unwrap();
    assert_eq!(stats["q"].bytes_used + stats["q"].orphan_bytes, LIMIT);
    store.close().await;
    db.finish().await;
}
