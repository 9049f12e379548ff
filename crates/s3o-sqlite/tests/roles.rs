//! One smoke test per role: the SQLite mapping round-trips every field and answers absence,
//! unknown backends and quota limits with the documented typed errors.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TempDir, ledger, raw, store_at};
use s3o_core::breaker::BreakerState;
use s3o_core::engine::*;
use s3o_core::*;
use s3o_sqlite::{EXPECTED_SCHEMA_VERSION, SqliteStore};

fn encrypted_form() -> StoredForm {
    StoredForm {
        encrypted: true,
        encryption_key: vec![1, 2, 3, 0, 255],
        key_id: "mk-7".into(),
        plaintext_size: 90,
        content_hash: "ab".repeat(32),
        managed: false,
        etag: "\"e1\"".into(),
        ..StoredForm::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_idempotent_and_verify_names_the_fix() {
    let dir = TempDir::new("migrate");
    let store = SqliteStore::open(&dir.url()).await.unwrap();
    let err = store.verify_schema_version().await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Schema));
    assert!(err.to_string().contains("run migrations"), "{err}");

    let v = store.run_migrations().await.unwrap();
    assert_eq!(
        (v.current, v.expected),
        (EXPECTED_SCHEMA_VERSION, EXPECTED_SCHEMA_VERSION)
    );
    let again = store.run_migrations().await.unwrap();
    assert_eq!(again, v);
    assert_eq!(store.verify_schema_version().await.unwrap(), v);
    let (rows, distinct): (i64, i64) = raw(&dir.db_path())
        .query_row(
            "SELECT count(*), count(DISTINCT version) FROM schema_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, distinct, "each migration recorded once");

    raw(&dir.db_path())
        .execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (9, 'future', 0)",
            [],
        )
        .unwrap();
    let err = store.verify_schema_version().await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Schema));
    assert!(err.to_string().contains("upgrade the binary"), "{err}");
    assert!(store.run_migrations().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_urls_name_the_accepted_forms_and_memory_is_one_database() {
    for url in ["sqlite:", "sqlite://", "mysql://x", "sqlite://a.db?mode=ro"] {
        let err = SqliteStore::open(url).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidInput { why, .. } if why.contains("sqlite::memory:")),
            "{url}: {err}"
        );
    }
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    store.run_migrations().await.unwrap();
    store.sync_quota_limits(&[("b1".into(), 0)]).await.unwrap();
    // Written through the writer, read back through every read path: one database.
    for i in 0..8 {
        store
            .record_object(&format!("k{i}"), "b1", 1, &StoredForm::default())
            .await
            .unwrap();
    }
    let page = store.list_objects("", "", 100).await.unwrap();
    assert_eq!(page.objects.len(), 8);
    assert_eq!(store.engine(), "sqlite");
    // A second in-memory store is a different database.
    let other = SqliteStore::open("sqlite::memory:").await.unwrap();
    other.run_migrations().await.unwrap();
    assert!(other.get_quota_stats().await.unwrap().is_empty());
}

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
        store.record_replica("r", "b2", "b1").await.unwrap(),
        (120, true)
    );
    assert_eq!(
        store.record_replica("r", "b2", "b1").await.unwrap(),
        (0, false)
    );
    let locs = store.get_all_object_locations("r").await.unwrap();
    assert_eq!(locs.len(), 2);
    assert!(locs.iter().all(|l| l.form == form && l.size_bytes == 120));
    assert_eq!(
        locs[0].created_at, locs[1].created_at,
        "a replica is the same version"
    );
    store.delete_object_location("r", "b2").await.unwrap();
    assert_eq!(
        store.move_object_location("r", "b1", "b2").await.unwrap(),
        120
    );
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
        store.import_object("k", "ghost", 1).await.map(drop)
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
        store.record_replica("k", "ghost", "b1").await.map(drop)
    ));
    assert!(unknown(
        store
            .move_object_location("k", "b1", "ghost")
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
        store.import_object("c", "b1", 1).await,
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
async fn cleanup_claims_retry_complete_and_dlq() {
    let dir = TempDir::new("cleanup");
    let store = store_at(&dir.url(), &[("b1", 0), ("b2", 0)]).await;
    store.increment_orphan_bytes("b1", 100).await.unwrap();
    store
        .enqueue_cleanup("b1", "k1", "overwrite", 10_000)
        .await
        .unwrap();
    store
        .enqueue_cleanup("b2", "k2", "delete", 5)
        .await
        .unwrap();
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 2);
    let pending = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(
        pending.iter().all(|p| p.claimed_at.is_none()),
        "reads never stamp"
    );

    let cutoff = Duration::from_secs(300);
    let first = store
        .claim_pending_cleanups(10, "w1", cutoff)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        first
            .iter()
            .all(|i| !i.reclaimed && i.claimed_by.as_deref() == Some("w1"))
    );
    assert!(
        store
            .claim_pending_cleanups(10, "w2", cutoff)
            .await
            .unwrap()
            .is_empty()
    );

    // A claim aged past the cutoff is reclaimed, flagged.
    raw(&dir.db_path())
        .execute(
            "UPDATE cleanup_queue SET claimed_at = ?1",
            [Timestamp::now().minus(Duration::from_secs(600)).as_micros()],
        )
        .unwrap();
    let not_yet = Duration::from_secs(900);
    assert!(
        store
            .claim_pending_cleanups(10, "w2", not_yet)
            .await
            .unwrap()
            .is_empty()
    );
    let re = store.claim_pending_cleanups(1, "w2", cutoff).await.unwrap();
    assert_eq!(re.len(), 1);
    assert!(re[0].reclaimed && re[0].claimed_by.as_deref() == Some("w2"));

    // Retry clears the claim; the row is claimable again, fresh.
    let k2 = first.iter().find(|i| i.object_key == "k2").unwrap().id;
    // Its current claim (w1's, re-stamped by the UPDATE above).
    let k2_claim = store
        .get_due_cleanups(10)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == k2)
        .unwrap()
        .claim()
        .unwrap();
    assert_eq!(
        store
            .retry_cleanup_item(&k2_claim, Duration::ZERO, "503")
            .await
            .unwrap(),
        s3o_core::CleanupOutcome::Retried
    );
    let again = store
        .claim_pending_cleanups(10, "w3", Duration::MAX)
        .await
        .unwrap();
    let row = again
        .iter()
        .find(|i| i.id == k2)
        .expect("k2 claimable after retry");
    assert_eq!((row.attempts, row.reclaimed), (1, false));

    // Complete: clamps orphan bytes at zero, and is idempotent.
    // k1's first claim (w1) went stale and w2 took it over: w1 cannot complete it.
    let k1_stale = first
        .iter()
        .find(|i| i.object_key == "k1")
        .unwrap()
        .claim()
        .unwrap();
    assert_eq!(
        store.complete_cleanup_item(&k1_stale).await.unwrap(),
        s3o_core::CleanupOutcome::StaleClaim
    );
    let k1 = re[0].claim().unwrap();
    assert_eq!(k1.id, k1_stale.id);
    store.complete_cleanup_item(&k1).await.unwrap();
    store.increment_orphan_bytes("b1", 7).await.unwrap();
    store.complete_cleanup_item(&k1).await.unwrap();
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].orphan_bytes, 7);

    // DLQ: move keeps the original error when none is given; requeue resets.
    assert!(store.move_cleanup_to_dlq(k2, "").await.unwrap());
    assert!(!store.move_cleanup_to_dlq(k2, "").await.unwrap());
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 1);
    let dlq = store.list_cleanup_dlq(Some("b2"), 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (
            dlq[0].original_id,
            dlq[0].last_error.as_str(),
            dlq[0].attempts,
            dlq[0].size_bytes
        ),
        (k2, "503", 1, 5)
    );
    assert!(
        store
            .list_cleanup_dlq(Some("b1"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let bytes = store.cleanup_bytes_by_backend().await.unwrap();
    assert_eq!(bytes.get("b2"), Some(&(0, 5)));
    assert_eq!(store.requeue_cleanup_dlq(None).await.unwrap(), 1);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 0);
    let back = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].attempts, back[0].claimed_at), (0, None));

    // Sweep removes rows and their orphan bytes once.
    store.enqueue_cleanup("b1", "s", "x", 3).await.unwrap();
    store.enqueue_cleanup("b1", "s", "x", 4).await.unwrap();
    assert_eq!(
        store
            .sweep_stale_cleanup_queue_rows("s", "b1")
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].orphan_bytes, 0);
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

    store.delete_multipart_upload("u1").await.unwrap();
    assert!(
        store.get_parts("u1").await.unwrap().is_empty(),
        "parts cascade"
    );
    store.delete_multipart_upload("u1").await.unwrap();
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
    store.record_replica("a", "b1", "b2").await.unwrap();
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
    store.record_replica("two", "b2", "b1").await.unwrap();
    store.record_replica("two", "b3", "b1").await.unwrap();
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
    assert!(store.remove_excess_copy("two", "b3", 2).await.unwrap());
    assert!(!store.remove_excess_copy("two", "b2", 2).await.unwrap());

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

#[tokio::test(flavor = "multi_thread")]
async fn breaker_checks_statements_inside_transactions() {
    let dir = TempDir::new("breaker");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    let mut tx = store.begin().await.unwrap();
    let loc = ObjectLocation {
        last_scrubbed_at: None,
        object_key: "k".into(),
        backend_name: "b1".into(),
        size_bytes: 1,
        created_at: Timestamp::ZERO,
        form: StoredForm::default(),
    };
    tx.insert_object_location(&loc).await.unwrap();
    // Three database failures open the breaker while the transaction is open.
    for _ in 0..3 {
        let permit = store.breaker().pre_check().unwrap();
        let _ = permit.finish::<()>(Err(StoreError::database(
            DbErrorKind::Connection,
            "test",
            "simulated outage",
        )));
    }
    assert_eq!(store.breaker().state(), BreakerState::Open);
    assert!(matches!(
        tx.check_object_exists_on_backend("k", "b1").await,
        Err(StoreError::DbUnavailable)
    ));
    assert!(matches!(tx.commit().await, Err(StoreError::DbUnavailable)));
    // Reads and new transactions fail fast too.
    assert!(matches!(
        store.count_pending().await,
        Err(StoreError::DbUnavailable)
    ));
    assert!(matches!(
        store.begin().await.map(drop),
        Err(StoreError::DbUnavailable)
    ));
    store.breaker().recover();
    // The failed commit rolled back; the writer is usable.
    assert!(matches!(
        store.get_all_object_locations("k").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    store
        .record_object("k", "b1", 1, &StoredForm::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_transaction_rolls_back_before_the_next_writer() {
    let dir = TempDir::new("drop");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    {
        let mut tx = store.begin().await.unwrap();
        tx.insert_object_location(&ObjectLocation {
            last_scrubbed_at: None,
            object_key: "ghost".into(),
            backend_name: "b1".into(),
            size_bytes: 5,
            created_at: Timestamp::ZERO,
            form: StoredForm::default(),
        })
        .await
        .unwrap();
        tx.increment_backend_quota("b1", 5).await.unwrap();
        // Dropped without commit: the caller was cancelled.
    }
    store
        .record_object("real", "b1", 2, &StoredForm::default())
        .await
        .unwrap();
    assert!(matches!(
        store.get_all_object_locations("ghost").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert_eq!(store.get_quota_stats().await.unwrap()["b1"].bytes_used, 2);

    // A begin whose caller is gone once BEGIN IMMEDIATE is under way rolls back on its own:
    // another process gets the file's write lock with no later writer in this process
    // resetting the connection.
    for _ in 0..5 {
        let _ = tokio::time::timeout(Duration::ZERO, store.begin()).await;
        // Let the orphaned BEGIN IMMEDIATE (and its rollback) run on the blocking pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = raw(&dir.db_path());
        other.busy_timeout(Duration::from_secs(2)).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
            .expect("a cancelled begin left the write lock held");
    }

    // Operations cancelled at every stage while other writers compete: each applies fully or
    // not at all (a statement of a cancelled transaction never lands in another one), and the
    // writer is never left inside a transaction.
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("c{i}");
            let form = StoredForm::default();
            let fut = s.record_object(&key, "b1", 1, &form);
            let r = tokio::time::timeout(Duration::from_micros(100 * (i % 10)), fut).await;
            (key, r.ok())
        }));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("w{i}");
            let r = s.record_object(&key, "b1", 1, &StoredForm::default()).await;
            (key, Some(r))
        }));
    }
    let mut cancelled = 0;
    let mut completed = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (key, Some(Ok(_))) => completed.push(key),
            (key, Some(Err(e))) => panic!("{key}: {e}"),
            (_, None) => cancelled += 1,
        }
    }
    assert!(cancelled > 0, "no operation was cancelled");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let other = raw(&dir.db_path());
    other.busy_timeout(Duration::from_secs(2)).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
        .expect("cancellations left the write lock held");
    drop(other);
    for key in &completed {
        let copies = store.get_all_object_locations(key).await.unwrap();
        assert_eq!(copies.len(), 1, "{key}");
    }
    store
        .record_object("after", "b1", 1, &StoredForm::default())
        .await
        .unwrap();
    // Every surviving copy was charged exactly once and nothing else was.
    let rows = ledger(&dir.db_path());
    assert_eq!(rows.len(), 1);
    let (_, used, sum) = &rows[0];
    assert_eq!(
        used, sum,
        "quota charged for copies that do not exist (or vice versa)"
    );
    let keys: i64 = raw(&dir.db_path())
        .query_row("SELECT count(*) FROM object_locations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(*sum, keys + 1, "every copy is 1 byte but `real`'s 2");
    assert!(keys >= completed.len() as i64 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn close_makes_later_calls_fail() {
    let dir = TempDir::new("close");
    let store = store_at(&dir.url(), &[("b1", 0)]).await;
    store.close().await;
    let err = store.count_pending().await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connection));
    assert!(store.begin().await.is_err());
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
        .record_replica("b1-drain", "drain", "b1")
        .await
        .unwrap();
    store.record_object("b1-b2", "b1", 1, &form).await.unwrap();
    store.record_replica("b1-b2", "b2", "b1").await.unwrap();
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

/// Both paths — inline point statements (the default) and every statement on the blocking
/// pool — keep the ledger consistent under concurrent writers and cancelled transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_and_blocking_paths_keep_the_ledger_consistent() {
    for inline in [true, false] {
        ledger_stays_consistent(inline).await;
    }
}

async fn ledger_stays_consistent(inline: bool) {
    let dir = TempDir::new("inline");
    let opts = s3o_sqlite::SqliteOptions {
        inline_point_statements: inline,
        ..Default::default()
    };
    let store = std::sync::Arc::new(SqliteStore::open_with(&dir.url(), opts).await.unwrap());
    store.run_migrations().await.unwrap();
    store
        .sync_quota_limits(&[("a".into(), 0), ("b".into(), 1000)])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40i64 {
                let key = format!("k{}", i % 7);
                let b = if (i + t) % 2 == 0 { "a" } else { "b" };
                match s
                    .record_object(&key, b, i * 3, &StoredForm::default())
                    .await
                {
                    Ok(_) | Err(StoreError::NoSpaceAvailable) => {}
                    Err(e) => panic!("{e:?}"),
                }
                let _ = s.move_object_location(&key, "a", "b").await;
                if i % 5 == 0 {
                    // A cancelled write must leave nothing behind.
                    let _ = tokio::time::timeout(
                        Duration::from_micros(50),
                        s.record_object(&format!("c{t}"), "a", 1, &StoredForm::default()),
                    )
                    .await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.get_quota_stats().await.unwrap();
    for (b, q) in &stats {
        let (_, total) = store.backend_object_stats(b).await.unwrap();
        assert_eq!(q.bytes_used, total, "{b}");
    }
    assert!(
        stats["b"].bytes_used <= 1000,
        "quota guard held on the inline path"
    );
    assert!(store.reconcile_usage().await.unwrap().is_empty());
}

/// Migration 0003 dead-letters rows an older binary left stuck at the attempt limit (never
/// claimed again, not counted by the queue depth) and keeps every other row; orphan bytes do
/// not move, so `orphan_bytes == Σ queue + DLQ bytes` holds across the upgrade.
#[tokio::test]
async fn migration_3_dead_letters_rows_stuck_at_the_attempt_limit() {
    let dir = TempDir::new("mig3");
    {
        let c = rusqlite::Connection::open(dir.db_path()).unwrap();
        c.execute_batch(include_str!("../../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        c.execute_batch(include_str!("../../../migrations/sqlite/0002_indexes.sql"))
            .unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at INTEGER NOT NULL) STRICT; \
             INSERT INTO schema_version VALUES (1, '0001_init', 1), (2, '0002_indexes', 1); \
             INSERT INTO backend_quotas (backend_name, bytes_used, bytes_limit, orphan_bytes) \
             VALUES ('b1', 0, 0, 111); \
             INSERT INTO cleanup_queue (id, backend_name, object_key, reason, size_bytes, \
               created_at, next_retry, attempts, last_error) VALUES \
               (7, 'b1', 'stuck', 'overwrite', 100, 5, 5, 10, 'gone for good'), \
               (8, 'b1', 'live', 'delete', 11, 6, 6, 3, NULL);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&dir.url()).await.unwrap();
    assert_eq!(
        store.run_migrations().await.unwrap().current,
        EXPECTED_SCHEMA_VERSION
    );
    let dlq = store.list_cleanup_dlq(None, 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(
        (
            d.original_id,
            d.object_key.as_str(),
            d.attempts,
            d.size_bytes,
            d.last_error.as_str(),
            d.storage_key.as_str()
        ),
        (7, "stuck", 10, 100, "gone for good", "stuck")
    );
    assert_eq!(d.first_enqueued_at, Timestamp::from_micros(5));
    let queue = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(queue.iter().map(|i| i.id).collect::<Vec<_>>(), vec![8]);
    assert_eq!(
        store.get_quota_stats().await.unwrap()["b1"].orphan_bytes,
        111
    );
    assert_eq!(
        store.cleanup_bytes_by_backend().await.unwrap()["b1"],
        (11, 100)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_over_100k_queued_walks_the_claim_index_and_stops_after_the_batch() {
    let dir = TempDir::new("claim-index");
    let store = store_at(&dir.url(), &[("a", 0)]).await;
    let now = Timestamp::now().as_micros();
    let hour: i64 = 3_600_000_000;
    // Row g: every 5th not yet due, every 7th exhausted, every 11th freshly claimed by someone
    // else, every 13th carrying a claim older than the grace (claimable, reclaimed).
    raw(&dir.db_path())
        .execute_batch(&format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000) \
             INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes, \
                                        created_at, next_retry, attempts, claimed_at, \
                                        claimed_by) \
             SELECT 'a', printf('k%06d', n), 'r', 1, {now} - (100000 - n) * 1000, \
                    CASE WHEN n % 5 = 0 THEN {now} + {hour} \
                         ELSE {now} - (100000 - n) * 1000 END, \
                    CASE WHEN n % 7 = 0 THEN 10 ELSE 0 END, \
                    CASE WHEN n % 11 = 0 THEN {now} WHEN n % 13 = 0 THEN {now} - 2 * {hour} END, \
                    CASE WHEN n % 11 = 0 OR n % 13 = 0 THEN 'other' END \
             FROM g; \
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000) \
             INSERT INTO notification_outbox (event_type, payload, endpoint_url, created_at, \
                                              next_retry, attempts) \
             SELECT 'e', '{{}}', 'http://n', {now} - (100000 - n) * 1000, \
                    {now} - (100000 - n) * 1000, CASE WHEN n % 7 = 0 THEN 10 ELSE 0 END \
             FROM g; \
             ANALYZE;"
        ))
        .unwrap();
    let c = raw(&dir.db_path());
    let mut st = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            s3o_sqlite::claim_statement()
        ))
        .unwrap();
    let plan: Vec<String> = st
        .query_map([now, now - hour, 100], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("USING INDEX idx_cleanup_queue_claim"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort needed:\n{plan}");
    drop(st);
    // The notifier's due list walks its index the same way.
    let mut st = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            s3o_sqlite::due_notifications_statement()
        ))
        .unwrap();
    let due: Vec<String> = st
        .query_map([now, 100], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let due = due.join("\n");
    assert!(
        due.contains("USING INDEX idx_notification_outbox_pending"),
        "{due}"
    );
    assert!(!due.contains("TEMP B-TREE"), "no sort needed:\n{due}");
    drop(st);
    drop(c);

    let items = store
        .claim_pending_cleanups(100, "me", Duration::from_secs(3600))
        .await
        .unwrap();
    let expected: Vec<String> = (1..)
        .filter(|g| g % 5 != 0 && g % 7 != 0 && g % 11 != 0)
        .take(100)
        .map(|g| format!("k{g:06}"))
        .collect();
    let got: Vec<String> = items.iter().map(|i| i.object_key.clone()).collect();
    assert_eq!(got, expected, "the 100 oldest claimable rows, by id");
    for it in &items {
        let g: i64 = it.object_key[1..].parse().unwrap();
        assert_eq!(it.reclaimed, g % 13 == 0, "{}", it.object_key);
        assert_eq!(it.claimed_by.as_deref(), Some("me"));
    }
}

/// Inline commits (the default) turn the writer's automatic checkpoints off and schedule
/// passive ones in the background: the WAL is still checkpointed as writes go on, so it does
/// not grow with the number of writes. Without any checkpoint, 1000 writes leave every frame
/// they wrote in the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_commits_still_checkpoint_the_wal() {
    let dir = TempDir::new("checkpoints");
    let store = store_at(&dir.url(), &[("a", 0)]).await;
    for i in 0..1000 {
        store
            .record_object(&format!("k{i:04}"), "a", 1, &StoredForm::default())
            .await
            .unwrap();
    }
    // Frames the WAL holds now (a passive checkpoint reports, then copies, them).
    let (log, _): (i64, i64) = raw(&dir.db_path())
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
        .unwrap();
    // The same writes on a raw connection with automatic checkpoints off: the unbounded size.
    let other = TempDir::new("no-checkpoints");
    let unbounded = store_at(&other.url(), &[("a", 0)]).await;
    unbounded.close().await;
    let c = raw(&other.db_path());
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0")
        .unwrap();
    for i in 0..1000 {
        c.execute_batch(&format!(
            "BEGIN IMMEDIATE; \
             INSERT INTO object_locations (object_key, backend_name, size_bytes, created_at) \
             VALUES ('k{i:04}', 'a', 1, {i}); \
             UPDATE backend_quotas SET bytes_used = bytes_used + 1 WHERE backend_name = 'a'; \
             COMMIT"
        ))
        .unwrap();
    }
    let all: i64 = c
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .unwrap();
    assert!(
        log * 2 < all,
        "the WAL kept {log} frames after 1000 writes; without checkpoints {all}"
    );
    assert_eq!(store.get_quota_stats().await.unwrap()["a"].bytes_used, 1000);
}
