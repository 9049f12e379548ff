//! Schema versions, backend statistics and removal, close.

use s3o_store::*;

use crate::support::*;

/// After migrating, the schema is current and verifies.
pub async fn verify_after_migrate(store: Db) {
    let v = store.schema_version().await.unwrap();
    assert!(v.expected > 0, "{v:?}");
    assert_eq!(
        v.current, v.expected,
        "migrated store is not current: {v:?}"
    );
    assert_eq!(store.verify_schema_version().await.unwrap(), v);
}

/// Running migrations again is a no-op that keeps the data.
pub async fn migrate_twice_is_noop(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 10).await;
    let before = snapshot(&store).await;
    let v1 = store.schema_version().await.unwrap();
    let v2 = store.run_migrations().await.unwrap();
    assert_eq!(v1, v2);
    assert_eq!(store.run_migrations().await.unwrap(), v1);
    assert_eq!(snapshot(&store).await, before);
    store.verify_schema_version().await.unwrap();
    assert_ledger(&store).await;
}

/// `(copies, bytes)` per backend.
pub async fn backend_object_stats_counts(store: Db) {
    three_backends(&store).await;
    put(&store, "x", A, 10).await;
    put(&store, "y", A, 32).await;
    replicate(&store, "y", B, A).await.unwrap();
    assert_eq!(store.backend_object_stats(A).await.unwrap(), (2, 42));
    assert_eq!(store.backend_object_stats(B).await.unwrap(), (1, 32));
    assert_eq!(store.backend_object_stats(C).await.unwrap(), (0, 0));
    assert_ledger(&store).await;
}

/// A backend's draining flag: set and cleared by name, listed in name order, kept by a quota
/// sync (a gateway starting during a drain must not lift its fence) and by migrations; an
/// unknown backend ⇒ `false` and nothing changes.
pub async fn backend_draining_flag(store: Db) {
    three_backends(&store).await;
    assert!(store.draining_backends().await.unwrap().is_empty());
    assert!(store.set_backend_draining(C, true).await.unwrap());
    assert!(store.set_backend_draining(A, true).await.unwrap());
    assert_eq!(store.draining_backends().await.unwrap(), [A, C]);
    assert!(!store.set_backend_draining("ghost", true).await.unwrap());
    let limits: Vec<(String, i64)> = [A, B, C].iter().map(|b| (b.to_string(), 1 << 30)).collect();
    store.sync_quota_limits(&limits).await.unwrap();
    store.run_migrations().await.unwrap();
    assert_eq!(store.draining_backends().await.unwrap(), [A, C]);
    assert!(store.set_backend_draining(A, false).await.unwrap());
    assert!(
        store.set_backend_draining(A, false).await.unwrap(),
        "clearing twice is fine"
    );
    assert_eq!(store.draining_backends().await.unwrap(), [C]);
    // The flag fences writes in the gateway's routing, not in the ledger: a write the gateway
    // already routed to the backend still commits (the drain moves it).
    put(&store, "late", C, 7).await;
    assert_eq!(store.backend_object_stats(C).await.unwrap(), (1, 7));
    assert_ledger(&store).await;
}

/// Removing a backend deletes every row that references it — copies, uploads and parts,
/// queue and DLQ rows, intents, usage — then its quota row; other backends are untouched.
pub async fn delete_backend_data_removes_everything(store: Db) {
    three_backends(&store).await;
    put(&store, "only-a", A, 10).await;
    put(&store, "shared", B, 20).await;
    replicate(&store, "shared", A, B).await.unwrap();
    put(&store, "only-b", B, 5).await;
    for (id, b) in [("up-a", A), ("up-b", B)] {
        store
            .create_multipart_upload(&CreateMultipartUploadParams {
                upload_id: id.into(),
                object_key: "mp".into(),
                backend_name: b.into(),
                ..CreateMultipartUploadParams::default()
            })
            .await
            .unwrap();
        store
            .record_part(id, 1, "e", 3, &StoredForm::default())
            .await
            .unwrap();
    }
    orphan_bytes_enqueued(&store, A, "q", 4).await;
    orphan_bytes_enqueued(&store, A, "dlq", 6).await;
    orphan_bytes_enqueued(&store, B, "qb", 1).await;
    let dlq_id = store
        .get_due_cleanups(10)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.object_key == "dlq")
        .unwrap()
        .id;
    assert!(store.move_cleanup_to_dlq(dlq_id, "x").await.unwrap());
    for (id, b) in [("i-a", A), ("i-b", B)] {
        store
            .insert_pending(&PendingObject {
                intent_id: id.into(),
                object_key: "p".into(),
                backend_name: b.into(),
                size_bytes: 1,
                form: StoredForm::default(),
                created_at: Timestamp::ZERO,
            })
            .await
            .unwrap();
    }
    store
        .flush_usage_deltas(A, "2026-04", 1, 1, 1)
        .await
        .unwrap();
    store
        .flush_usage_deltas(B, "2026-04", 2, 2, 2)
        .await
        .unwrap();

    store.delete_backend_data(A).await.unwrap();

    let stats = store.get_quota_stats().await.unwrap();
    assert!(
        !stats.contains_key(A),
        "quota row of the removed backend remains"
    );
    // B's copies (25) and the 3-byte part of its open upload.
    assert_eq!(stats[B].bytes_used, 28);
    assert!(copies(&store, "only-a").await.is_empty());
    assert_eq!(placement(&store, "shared").await, vec![(B.to_owned(), 20)]);
    assert_eq!(placement(&store, "only-b").await, vec![(B.to_owned(), 5)]);
    assert!(store.get_multipart_upload("up-a").await.is_err());
    assert!(store.get_parts("up-a").await.unwrap().is_empty());
    assert_eq!(store.get_parts("up-b").await.unwrap().len(), 1);
    let queue = store.get_due_cleanups(10).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].backend_name, B);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 0);
    assert_eq!(store.count_pending().await.unwrap(), 1);
    let usage = store.get_usage_for_period("2026-04").await.unwrap();
    assert_eq!(usage.keys().collect::<Vec<_>>(), vec![B]);
    assert_eq!(store.backend_object_stats(A).await.unwrap(), (0, 0));
    // The name can be configured again from scratch.
    backends(&store, &[(A, 100)]).await;
    assert_eq!(quota(&store, A).await, (0, 100, 0));
    assert_ledger(&store).await;
}

/// Removing an unknown backend is `UnknownBackend`.
pub async fn delete_backend_data_unknown(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 1).await;
    let before = snapshot(&store).await;
    assert_unknown_backend(store.delete_backend_data(UNKNOWN).await, UNKNOWN);
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// After `close`, calls fail instead of hanging or succeeding.
pub async fn close_then_calls_fail(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 1).await;
    assert_ledger(&store).await;
    store.close().await;
    assert!(store.get_quota_stats().await.is_err(), "read after close");
    assert!(
        store
            .record_object("k2", A, 1, &StoredForm::default())
            .await
            .is_err(),
        "write after close"
    );
    store.close().await;
}
