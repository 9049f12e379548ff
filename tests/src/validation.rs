//! Bad input is `InvalidInput`, rejected before any SQL: nothing changes.

use std::time::Duration;

use s3o_store::*;

use crate::support::*;

async fn seeded(store: &Db) -> Snapshot {
    three_backends(store).await;
    put(store, "existing", A, 10).await;
    replicate(store, "existing", B, A).await.unwrap();
    snapshot(store).await
}

fn pending(key: &str, backend: &str, size: i64, form: StoredForm) -> PendingObject {
    PendingObject {
        intent_id: "intent".into(),
        object_key: key.to_owned(),
        backend_name: backend.to_owned(),
        size_bytes: size,
        form,
        created_at: Timestamp::ZERO,
    }
}

async fn every_key_operation_rejects(store: &Db, key: &str, label: &str) {
    let plain = StoredForm::default();
    assert_invalid(store.record_object(key, A, 1, &plain).await, label);
    assert_invalid(
        store
            .record_object_and_clear_pending(key, A, 1, &plain, "i")
            .await,
        label,
    );
    assert_invalid(store.delete_object(key).await, label);
    assert_invalid(store.delete_objects_batch(&[key.to_owned()]).await, label);
    assert_invalid(
        store
            .delete_objects_batch(&["existing".to_owned(), key.to_owned()])
            .await,
        label,
    );
    assert_invalid(store.delete_object_location(key, A).await, label);
    assert_invalid(
        store.import_object(&ImportedObject::new(key, A, 1)).await,
        label,
    );
    assert_invalid(move_copy(store, key, A, C).await, label);
    assert_invalid(replicate(store, key, C, A).await, label);
    assert_invalid(store.remove_excess_copy(key, A, 1).await, label);
    assert_invalid(
        store.mark_object_encrypted(key, A, &[1], "v", 1, 2).await,
        label,
    );
    assert_invalid(store.mark_object_decrypted(key, A, 1).await, label);
    assert_invalid(store.sweep_stale_cleanup_queue_rows(key, A).await, label);
    assert_invalid(
        store
            .insert_pending(&pending(key, A, 1, StoredForm::default()))
            .await,
        label,
    );
    assert_invalid(
        store
            .promote_pending(&pending(key, A, 1, StoredForm::default()))
            .await,
        label,
    );
}

/// The empty key is rejected everywhere.
pub async fn empty_key_rejected(store: Db) {
    let before = seeded(&store).await;
    every_key_operation_rejects(&store, "", "empty key").await;
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Keys over 1024 bytes (ASCII or multi-byte) are rejected; exactly 1024 bytes is fine.
pub async fn long_key_rejected(store: Db) {
    let before = seeded(&store).await;
    let ascii = "k".repeat(1025);
    let multibyte = format!("{}x", "é".repeat(512));
    assert_eq!(multibyte.len(), 1025);
    every_key_operation_rejects(&store, &ascii, "1025-byte key").await;
    every_key_operation_rejects(&store, &multibyte, "1025-byte UTF-8 key").await;
    assert_eq!(snapshot(&store).await, before);
    let max = "k".repeat(1024);
    put(&store, &max, A, 1).await;
    assert_eq!(placement(&store, &max).await, vec![(A.to_owned(), 1)]);
    assert_ledger(&store).await;
}

/// Keys containing NUL are rejected.
pub async fn nul_key_rejected(store: Db) {
    let before = seeded(&store).await;
    every_key_operation_rejects(&store, "a\0b", "NUL key").await;
    every_key_operation_rejects(&store, "\0", "NUL-only key").await;
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Negative sizes are rejected.
pub async fn negative_sizes_rejected(store: Db) {
    let before = seeded(&store).await;
    let plain = StoredForm::default();
    assert_invalid(store.record_object("n", A, -1, &plain).await, "record -1");
    assert_invalid(
        store.record_object("existing", A, -5, &plain).await,
        "overwrite -5",
    );
    assert_invalid(
        store.import_object(&ImportedObject::new("n", A, -1)).await,
        "import -1",
    );
    let neg_plaintext = StoredForm {
        plaintext_size: -1,
        ..encrypted_form(1)
    };
    assert_invalid(
        store.record_object("n", A, 1, &neg_plaintext).await,
        "plaintext -1",
    );
    assert_invalid(
        store
            .insert_pending(&pending("n", A, -1, StoredForm::default()))
            .await,
        "intent -1",
    );
    assert_invalid(
        store
            .promote_pending(&pending("n", A, -1, StoredForm::default()))
            .await,
        "promote -1",
    );
    assert_invalid(
        store
            .mark_object_encrypted("existing", A, &[1], "v", 10, -1)
            .await,
        "ciphertext -1",
    );
    assert_invalid(
        store.mark_object_decrypted("existing", A, -1).await,
        "plaintext -1",
    );
    assert_invalid(store.enqueue_cleanup(A, "n", "r", -1).await, "cleanup -1");
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u".into(),
            object_key: "m".into(),
            backend_name: A.into(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    assert_invalid(
        store.record_part("u", 1, "e", -1, &plain).await,
        "part size -1",
    );
    assert!(store.get_parts("u").await.unwrap().is_empty());
    store
        .release_multipart_upload("u", "aborted upload")
        .await
        .unwrap();
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Part numbers outside 1..=10000 are rejected before the upload is even looked up.
pub async fn part_numbers_rejected(store: Db) {
    let before = seeded(&store).await;
    let plain = StoredForm::default();
    for n in [0, 10_001, -1, i32::MIN, i32::MAX] {
        assert_invalid(
            store.record_part("no-upload", n, "e", 1, &plain).await,
            "part number",
        );
    }
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// A batch of 1001 keys is rejected whole.
pub async fn oversized_batch_rejected(store: Db) {
    let before = seeded(&store).await;
    let mut keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    keys.push("existing".into());
    assert_eq!(keys.len(), 1001);
    assert_invalid(store.delete_objects_batch(&keys).await, "1001 keys");
    assert_eq!(snapshot(&store).await, before);
    keys.pop();
    assert!(store.delete_objects_batch(&keys).await.unwrap().is_empty());
    assert_ledger(&store).await;
}

/// Empty, NUL-bearing and over-long backend names are `InvalidInput`, not `UnknownBackend`.
pub async fn bad_backend_names_rejected(store: Db) {
    let before = seeded(&store).await;
    let long = "b".repeat(256);
    let plain = StoredForm::default();
    for b in ["", "back\0end", long.as_str()] {
        assert_invalid(store.record_object("k", b, 1, &plain).await, "backend");
        assert_invalid(
            store.import_object(&ImportedObject::new("k", b, 1)).await,
            "backend",
        );
        assert_invalid(move_copy(&store, "existing", A, b).await, "backend");
        assert_invalid(replicate(&store, "existing", b, A).await, "backend");
        assert_invalid(store.delete_object_location("existing", b).await, "backend");
    }
    assert_invalid(
        store.sync_quota_limits(&[(String::new(), 10)]).await,
        "empty backend in sync",
    );
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// NUL bytes in stored text (errors, intent ids, hashes, key ids) are rejected.
pub async fn nul_text_rejected(store: Db) {
    let before = seeded(&store).await;
    store.enqueue_cleanup(A, "q", "r", 0).await.unwrap();
    let id = store.get_due_cleanups(1).await.unwrap()[0].id;
    let before_queue = snapshot(&store).await;
    assert_invalid(
        store.move_cleanup_to_dlq(id, "bad\0error").await,
        "NUL error",
    );
    assert_invalid(
        store
            .record_object_and_clear_pending("k", A, 1, &StoredForm::default(), "i\0d")
            .await,
        "NUL intent id",
    );
    assert_invalid(
        store.record_object("k", A, 1, &hashed_form("ab\0cd")).await,
        "NUL hash",
    );
    let nul_key_id = StoredForm {
        key_id: "v\0".into(),
        ..encrypted_form(2)
    };
    assert_invalid(
        store.record_object("k", A, 1, &nul_key_id).await,
        "NUL key id",
    );
    assert_invalid(
        store
            .retry_cleanup_item(&stale_claim(id), Duration::ZERO, "e\0")
            .await,
        "NUL retry error",
    );
    assert_eq!(snapshot(&store).await, before_queue);
    let claim = claim_of(&store, id).await;
    store.complete_cleanup_item(&claim).await.unwrap();
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Fault domains: values that would overflow a counter, ids over the documented limit and
/// timestamps outside the shared range are `InvalidInput` on both engines (a counter that
/// passes validation but overflows in the database too), and nothing changes; extreme ages
/// are answered.
pub async fn out_of_range_values_rejected(store: Db) {
    let before = seeded(&store).await;
    // Seven flushes of the largest accepted delta: the eighth overflows i64 in the database.
    for _ in 0..7 {
        store
            .flush_usage_deltas(A, "2026-11", limits::MAX_SIZE_BYTES, 0, 0)
            .await
            .unwrap();
    }
    let usage = store.get_usage_for_period("2026-11").await.unwrap();
    let filled = snapshot(&store).await;
    assert_invalid(
        store
            .flush_usage_deltas(A, "2026-11", limits::MAX_SIZE_BYTES, 0, 0)
            .await,
        "usage counter overflow in the database",
    );
    assert_invalid(
        store.flush_usage_deltas(A, "2026-11", i64::MAX, 0, 0).await,
        "usage delta over the limit",
    );
    assert_invalid(
        store.increment_orphan_bytes(A, i64::MAX).await,
        "orphan delta over the limit",
    );
    assert_invalid(
        store
            .record_object("k", A, limits::MAX_SIZE_BYTES + 1, &StoredForm::default())
            .await,
        "object size over the limit",
    );
    let long_id = "i".repeat(limits::MAX_ID_BYTES + 1);
    let mut p = pending("k", A, 1, StoredForm::default());
    p.intent_id = long_id.clone();
    assert_invalid(store.insert_pending(&p).await, "intent id over the limit");
    assert_invalid(
        store
            .create_multipart_upload(&CreateMultipartUploadParams {
                upload_id: long_id.clone(),
                object_key: "k".into(),
                backend_name: A.into(),
                ..Default::default()
            })
            .await,
        "upload id over the limit",
    );
    assert_invalid(
        store
            .claim_pending_cleanups(1, &long_id, Duration::ZERO)
            .await,
        "instance id over the limit",
    );
    for t in [
        i64::MIN,
        i64::MAX,
        limits::MIN_TIMESTAMP.as_micros() - 1,
        limits::MAX_TIMESTAMP.as_micros() + 1,
    ] {
        let mut p = pending("k", A, 1, StoredForm::default());
        p.created_at = Timestamp::from_micros(t);
        assert_invalid(store.insert_pending(&p).await, "created_at out of range");
    }
    for age in [Duration::ZERO, Duration::MAX] {
        store.get_stale_pending(age, 10).await.unwrap();
        store.list_expired_objects("", age, 10).await.unwrap();
    }
    assert!(
        store
            .list_expired_objects("", Duration::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(snapshot(&store).await, filled);
    assert_eq!(filled, before, "usage counters are outside the snapshot");
    assert_eq!(store.get_usage_for_period("2026-11").await.unwrap(), usage);
    assert_ledger(&store).await;
}

/// The extremes of the shared timestamp range are stored and read back exactly.
pub async fn extreme_timestamps_round_trip(store: Db) {
    three_backends(&store).await;
    for (id, t) in [
        ("year-1", limits::MIN_TIMESTAMP),
        ("year-9999", limits::MAX_TIMESTAMP),
    ] {
        let mut p = pending(id, A, 1, StoredForm::default());
        p.intent_id = id.into();
        p.created_at = t;
        store.insert_pending(&p).await.unwrap();
    }
    // Age zero: everything created up to now — the year-1 intent, not the year-9999 one.
    let now = store.get_stale_pending(Duration::ZERO, 10).await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].intent_id, "year-1");
    assert_eq!(now[0].created_at, limits::MIN_TIMESTAMP);
    // The longest age: nothing storable is older.
    assert!(
        store
            .get_stale_pending(Duration::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_pending().await.unwrap(), 2);
    assert_ledger(&store).await;
}
