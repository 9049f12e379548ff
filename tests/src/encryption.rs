//! Encryption administration: encrypt/decrypt in place with quota adjustments, rotation,
//! keyset paging.

use s3o_store::*;

use crate::support::*;

fn cursor(key: &str, backend: &str) -> Cursor {
    Cursor {
        object_key: key.to_owned(),
        backend_name: backend.to_owned(),
    }
}

async fn all_unencrypted(store: &Db, page: i64) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..10_000 {
        let rows = store
            .list_unencrypted_locations(page, after.as_ref())
            .await
            .unwrap();
        assert!(rows.len() as i64 <= page);
        let Some(last) = rows.last() else {
            return out;
        };
        after = Some(cursor(&last.object_key, &last.backend_name));
        out.extend(
            rows.into_iter()
                .map(|r| (r.object_key, r.backend_name, r.size_bytes)),
        );
    }
    panic!("keyset paging never ended");
}

async fn all_encrypted(store: &Db, page: i64) -> Vec<EncryptedLocation> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    for _ in 0..10_000 {
        let rows = store
            .list_all_encrypted_locations(page, after.as_ref())
            .await
            .unwrap();
        let Some(last) = rows.last() else {
            return out;
        };
        after = Some(cursor(&last.object_key, &last.backend_name));
        out.extend(rows);
    }
    panic!("keyset paging never ended");
}

/// List plaintext → encrypt (quota +overhead) → list by key id → rotate → list all →
/// decrypt (quota back) → list plaintext.
pub async fn encryption_admin_lifecycle(store: Db) {
    three_backends(&store).await;
    put(&store, "k1", A, 100).await;
    put(&store, "k2", B, 200).await;
    store
        .record_object("k3", A, 50, &hashed_form("h3"))
        .await
        .unwrap();
    assert_eq!(
        all_unencrypted(&store, 1000).await,
        vec![
            ("k1".to_owned(), A.to_owned(), 100),
            ("k2".to_owned(), B.to_owned(), 200),
            ("k3".to_owned(), A.to_owned(), 50)
        ]
    );
    let key1 = vec![9u8, 0, 9, 0xFF];
    assert!(
        store
            .mark_object_encrypted("k1", A, &key1, "v1", 100, 116)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_object_encrypted("k2", B, &[7, 7], "v1", 200, 228)
            .await
            .unwrap()
    );
    assert_eq!((used(&store, A).await, used(&store, B).await), (166, 228));
    let c = copy_on(&store, "k1", A).await;
    assert!(c.form.encrypted);
    assert_eq!(
        (c.size_bytes, c.form.plaintext_size, c.form.key_id.as_str()),
        (116, 100, "v1")
    );
    assert_eq!(c.form.encryption_key, key1);
    let v1 = store.list_encrypted_locations("v1", 10, 0).await.unwrap();
    assert_eq!(
        v1.iter().map(|e| e.object_key.as_str()).collect::<Vec<_>>(),
        vec!["k1", "k2"]
    );
    assert_eq!(v1[0].encryption_key, key1);
    // Rotate k1 to v2.
    assert!(
        store
            .update_encryption_key("k1", A, &[1, 2, 3], "v2")
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_encryption_key("k1", B, &[1], "v2")
            .await
            .unwrap()
    );
    let v1 = store.list_encrypted_locations("v1", 10, 0).await.unwrap();
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0].object_key, "k2");
    let v2 = store.list_encrypted_locations("v2", 10, 0).await.unwrap();
    assert_eq!(v2.len(), 1);
    assert_eq!(
        (
            v2[0].object_key.as_str(),
            v2[0].encryption_key.clone(),
            v2[0].key_id.as_str()
        ),
        ("k1", vec![1, 2, 3], "v2")
    );
    assert_eq!(used(&store, A).await, 166, "rotation changes no size");
    assert_eq!(all_encrypted(&store, 1).await.len(), 2);
    // Decrypt k1.
    assert!(store.mark_object_decrypted("k1", A, 100).await.unwrap());
    assert_eq!(used(&store, A).await, 150);
    let c = copy_on(&store, "k1", A).await;
    assert_eq!(c.form, StoredForm::default());
    assert_eq!(c.size_bytes, 100);
    assert_eq!(
        all_unencrypted(&store, 2)
            .await
            .into_iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        vec!["k1", "k3"]
    );
    assert_ledger(&store).await;
}

/// Encrypting in place is not limit-guarded: the bytes are already on the backend.
pub async fn mark_encrypted_ignores_limit(store: Db) {
    backends(&store, &[(A, 1000)]).await;
    put(&store, "k", A, 1000).await;
    assert!(
        store
            .mark_object_encrypted("k", A, &[1], "v", 1000, 1100)
            .await
            .unwrap()
    );
    assert_eq!(used(&store, A).await, 1100);
    // Same size: no change.
    assert!(
        store
            .mark_object_encrypted("k", A, &[2], "v", 1000, 1100)
            .await
            .unwrap()
    );
    assert_eq!(used(&store, A).await, 1100);
    assert!(store.mark_object_decrypted("k", A, 1000).await.unwrap());
    assert_eq!(used(&store, A).await, 1000);
    assert_ledger(&store).await;
}

/// Encrypt and decrypt keep the content hash and the managed flag.
pub async fn mark_keeps_hash_and_managed(store: Db) {
    three_backends(&store).await;
    let form = StoredForm {
        content_hash: "cafe".into(),
        managed: false,
        ..StoredForm::default()
    };
    store.record_object("k", A, 10, &form).await.unwrap();
    assert!(
        store
            .mark_object_encrypted("k", A, &[5], "v", 10, 26)
            .await
            .unwrap()
    );
    let c = copy_on(&store, "k", A).await;
    assert_eq!(
        (c.form.content_hash.as_str(), c.form.managed),
        ("cafe", false)
    );
    assert!(store.mark_object_decrypted("k", A, 10).await.unwrap());
    let c = copy_on(&store, "k", A).await;
    assert_eq!(c.form, form);
    assert_ledger(&store).await;
}

/// Missing copies ⇒ `false`, nothing changed.
pub async fn mark_missing_copy_false(store: Db) {
    three_backends(&store).await;
    put(&store, "k", A, 10).await;
    let before = snapshot(&store).await;
    assert!(
        !store
            .mark_object_encrypted("k", B, &[1], "v", 10, 20)
            .await
            .unwrap()
    );
    assert!(!store.mark_object_decrypted("nope", A, 10).await.unwrap());
    assert!(
        !store
            .update_encryption_key("nope", A, &[1], "v")
            .await
            .unwrap()
    );
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// Keyset paging over plaintext copies visits each `(key, backend)` once while the set
/// shrinks underneath it.
pub async fn unencrypted_keyset_visits_each_once(store: Db) {
    three_backends(&store).await;
    let keys: Vec<String> = crate::listing::adversarial_keys();
    put_many(&store, &keys, A, 4).await;
    for k in keys.iter().step_by(2) {
        replicate(&store, k, B, A).await.unwrap();
    }
    let mut expected: Vec<(String, String)> = Vec::new();
    for k in &keys {
        expected.push((k.clone(), A.to_owned()));
    }
    for k in keys.iter().step_by(2) {
        expected.push((k.clone(), B.to_owned()));
    }
    expected.sort_by(|x, y| {
        x.0.as_bytes()
            .cmp(y.0.as_bytes())
            .then(x.1.as_bytes().cmp(y.1.as_bytes()))
    });
    for page in [1, 2, 3, 1000] {
        let got: Vec<(String, String)> = all_unencrypted(&store, page)
            .await
            .into_iter()
            .map(|r| (r.0, r.1))
            .collect();
        assert_eq!(got, expected, "page {page}");
    }
    // Encrypt each row right after it is listed: the walk still visits every row once.
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    for round in 0.. {
        assert!(round < 10_000, "keyset walk never ended");
        let rows = store
            .list_unencrypted_locations(2, after.as_ref())
            .await
            .unwrap();
        let Some(last) = rows.last() else { break };
        after = Some(cursor(&last.object_key, &last.backend_name));
        for r in rows {
            assert!(
                store
                    .mark_object_encrypted(&r.object_key, &r.backend_name, &[1], "v", 4, 20)
                    .await
                    .unwrap()
            );
            seen.push((r.object_key, r.backend_name));
        }
    }
    assert_eq!(seen, expected);
    assert!(all_unencrypted(&store, 10).await.is_empty());
    assert_eq!(all_encrypted(&store, 3).await.len(), expected.len());
    assert_ledger(&store).await;
}

/// Offset paging by key id and keyset paging over all encrypted copies, byte order.
pub async fn encrypted_offset_and_keyset_paging(store: Db) {
    three_backends(&store).await;
    let keys = crate::listing::adversarial_keys();
    for (i, k) in keys.iter().enumerate() {
        let form = StoredForm {
            key_id: if i % 2 == 0 {
                "even".into()
            } else {
                "odd".into()
            },
            ..encrypted_form(i as u8)
        };
        store
            .record_object(k, [A, B][i % 2], 10, &form)
            .await
            .unwrap();
    }
    let even: Vec<String> = byte_sorted(
        &keys
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, k)| k.clone())
            .collect::<Vec<_>>(),
    );
    let mut got = Vec::new();
    let mut offset = 0;
    for round in 0.. {
        assert!(round < 10_000, "offset walk never ended");
        let page = store
            .list_encrypted_locations("even", 3, offset)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.iter().all(|e| e.key_id == "even"));
        offset += page.len() as i64;
        got.extend(page.into_iter().map(|e| e.object_key));
    }
    assert_eq!(got, even);
    let all: Vec<String> = all_encrypted(&store, 2)
        .await
        .into_iter()
        .map(|e| e.object_key)
        .collect();
    assert_eq!(all, byte_sorted(&keys));
    assert!(
        store
            .list_encrypted_locations("none", 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// Rotation's compare-and-set: the key is re-wrapped only while the copy still holds the key
/// the caller read; a version written since keeps its own key, plaintext and missing copies
/// are left alone, and no size or other column changes.
pub async fn rewrap_only_the_key_read(store: Db) {
    three_backends(&store).await;
    let sealed = |key: &[u8], id: &str, plain: i64| StoredForm {
        encrypted: true,
        encryption_key: key.to_vec(),
        key_id: id.to_owned(),
        plaintext_size: plain,
        content_hash: "beef".into(),
        etag: "e1".into(),
        ..StoredForm::default()
    };
    store
        .record_object("k", A, 116, &sealed(&[1, 1], "old", 100))
        .await
        .unwrap();
    assert!(
        store
            .rewrap_encryption_key("k", A, &[1, 1], &[2, 2], "new")
            .await
            .unwrap()
    );
    let c = copy_on(&store, "k", A).await;
    assert_eq!(
        c.form,
        sealed(&[2, 2], "new", 100),
        "only the key columns move"
    );
    assert_eq!(c.size_bytes, 116);
    // A second rotation that read the old key (a racing rotation, or an overwrite since)
    // changes nothing.
    assert!(
        !store
            .rewrap_encryption_key("k", A, &[1, 1], &[3, 3], "newer")
            .await
            .unwrap()
    );
    assert_eq!(copy_on(&store, "k", A).await.form.key_id, "new");
    // An overwrite with its own key wins over a rotation that read the previous version.
    store
        .record_object("k", A, 216, &sealed(&[9, 9], "new", 200))
        .await
        .unwrap();
    assert!(
        !store
            .rewrap_encryption_key("k", A, &[2, 2], &[4, 4], "newer")
            .await
            .unwrap()
    );
    assert_eq!(
        copy_on(&store, "k", A).await.form.encryption_key,
        vec![9, 9]
    );
    put(&store, "plain", A, 10).await;
    let before = snapshot(&store).await;
    assert!(
        !store
            .rewrap_encryption_key("plain", A, &[1], &[2], "x")
            .await
            .unwrap()
    );
    assert!(
        !store
            .rewrap_encryption_key("missing", A, &[1], &[2], "x")
            .await
            .unwrap()
    );
    assert!(matches!(
        store.rewrap_encryption_key("k", A, &[9, 9], &[], "x").await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(used(&store, A).await, 226);
    assert_ledger(&store).await;
}

/// Converting a version (encrypt or decrypt in place, at a new path): every copy swaps to the
/// new bytes in one transaction while the version is unchanged — sizes and quota follow, the
/// old bytes are queued (claimed) for cleanup, the intents go, ETag and creation time stay;
/// after an overwrite, or with a copy set that differs, nothing changes.
pub async fn convert_version_swaps_every_copy_or_nothing(store: Db) {
    three_backends(&store).await;
    let old = StoredForm {
        storage_key: "b/k/@v1".into(),
        etag: "e1".into(),
        content_hash: "h".into(),
        ..StoredForm::default()
    };
    store.record_object("b/k", A, 100, &old).await.unwrap();
    let rec = store.record_replica("b/k", B, A, "b/k/@v1").await.unwrap();
    assert!(matches!(rec, ReplicaOutcome::Recorded { .. }));
    let created = copy_on(&store, "b/k", A).await.created_at;
    let intent = |id: &str, backend: &str| PendingObject {
        intent_id: id.into(),
        object_key: "b/k".into(),
        backend_name: backend.into(),
        size_bytes: 116,
        form: StoredForm {
            storage_key: "b/k/@v1.enc".into(),
            ..StoredForm::default()
        },
        created_at: Timestamp::ZERO,
    };
    for (id, b) in [("ia", A), ("ib", B)] {
        store.insert_pending(&intent(id, b)).await.unwrap();
    }
    let sealed = StoredForm {
        encrypted: true,
        encryption_key: vec![7; 8],
        key_id: "k1".into(),
        plaintext_size: 100,
        storage_key: "b/k/@v1.enc".into(),
        ..StoredForm::default()
    };
    let both = [
        ConvertedCopy {
            backend: A.into(),
            size_bytes: 116,
            intent_id: "ia".into(),
        },
        ConvertedCopy {
            backend: B.into(),
            size_bytes: 116,
            intent_id: "ib".into(),
        },
    ];
    // A copy set that is not the key's: nothing changes.
    let before = snapshot(&store).await;
    assert!(
        store
            .convert_version("b/k", "b/k/@v1", &sealed, &both[..1])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(snapshot(&store).await, before);
    let old_bytes = store
        .convert_version("b/k", "b/k/@v1", &sealed, &both)
        .await
        .unwrap()
        .expect("converted");
    assert_eq!(old_bytes.len(), 2);
    assert!(
        old_bytes
            .iter()
            .all(|d| d.storage_key == "b/k/@v1" && d.size_bytes == 100)
    );
    for b in [A, B] {
        let c = copy_on(&store, "b/k", b).await;
        assert_eq!(c.size_bytes, 116);
        assert_eq!(c.created_at, created, "Last-Modified stays");
        assert_eq!(
            (c.form.etag.as_str(), c.form.content_hash.as_str()),
            ("e1", "h")
        );
        assert!(c.form.encrypted && c.form.storage_key == "b/k/@v1.enc");
        assert_eq!(
            quota(&store, b).await.2,
            100,
            "old bytes charged as orphans"
        );
    }
    assert_eq!(store.count_pending().await.unwrap(), 0, "intents cleared");
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 2);
    for d in &old_bytes {
        store.complete_cleanup_item(&d.cleanup).await.unwrap();
    }
    // The version changed meanwhile (an overwrite): a conversion of the old one is refused.
    store
        .record_object(
            "b/k",
            A,
            5,
            &StoredForm {
                storage_key: "b/k/@v2".into(),
                ..StoredForm::default()
            },
        )
        .await
        .unwrap();
    let before = snapshot(&store).await;
    assert!(
        store
            .convert_version(
                "b/k",
                "b/k/@v1.enc",
                &StoredForm::default().clone_with_path("b/k/@v3"),
                &both[..1]
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(snapshot(&store).await, before);
    assert!(matches!(
        store
            .convert_version("b/k", "b/k/@v2", &sealed.clone_with_path("b/k/@v2"), &both)
            .await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_ledger(&store).await;
}

trait WithPath {
    fn clone_with_path(&self, p: &str) -> StoredForm;
}

impl WithPath for StoredForm {
    fn clone_with_path(&self, p: &str) -> StoredForm {
        StoredForm {
            storage_key: p.into(),
            ..self.clone()
        }
    }
}
