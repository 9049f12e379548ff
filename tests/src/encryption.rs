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

// ----- Rotation of every row holding a wrapped key (current and noncurrent copies, open
// uploads, their parts, write intents). -----

const VBKT: &str = "rot";

/// A sealed form under `key` / `id`, with the other columns set so a rewrap that touched
/// them would show.
fn sealed_under(key: &[u8], id: &str, etag: &str) -> StoredForm {
    StoredForm {
        encrypted: true,
        encryption_key: key.to_vec(),
        key_id: id.to_owned(),
        plaintext_size: 100,
        content_hash: "feed".into(),
        storage_key: format!("rot/path-{etag}.enc"),
        etag: etag.to_owned(),
        ..StoredForm::default()
    }
}

async fn commit_in(store: &Db, key: &str, backend: &str, size: i64, form: &StoredForm) -> String {
    store
        .commit_object_in_bucket(
            VBKT,
            key,
            backend,
            size,
            form,
            None,
            &WritePrecondition::default(),
        )
        .await
        .unwrap()
        .version_id
        .expect("versioned bucket")
}

/// Every row of `holder` holding a wrapped key, walked in pages of `page`.
async fn all_wrapped(
    store: &Db,
    holder: KeyHolder,
    page: i64,
) -> Vec<(WrappedKeyAt, Vec<u8>, String)> {
    let mut out = Vec::new();
    let mut after: Option<WrappedKeyAt> = None;
    for _ in 0..10_000 {
        let rows = store
            .list_wrapped_keys(holder, page, after.as_ref())
            .await
            .unwrap();
        assert!(rows.len() as i64 <= page);
        let Some(last) = rows.last() else {
            return out;
        };
        after = Some(last.at.clone());
        out.extend(rows.into_iter().map(|w| (w.at, w.encryption_key, w.key_id)));
    }
    panic!("keyset paging never ended");
}

/// `(holder, key id, rows)` of the census.
async fn census(store: &Db) -> Vec<(KeyHolder, String, i64)> {
    store
        .wrapped_key_census()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.holder, c.key_id, c.rows))
        .collect()
}

/// Every full row that can hold a key, for "exactly these columns changed" comparisons.
#[derive(Debug, PartialEq, Eq)]
struct KeyRows {
    current: Vec<ObjectLocation>,
    noncurrent: Vec<ObjectLocation>,
    upload: MultipartUpload,
    parts: Vec<MultipartPart>,
    pending: Vec<PendingObject>,
}

async fn key_rows(store: &Db, keys: &[&str], upload: &str) -> KeyRows {
    let mut current = Vec::new();
    let mut noncurrent = Vec::new();
    for k in keys {
        current.extend(copies(store, k).await);
        noncurrent.extend(store.get_noncurrent_copies(k).await.unwrap());
    }
    KeyRows {
        current,
        noncurrent,
        upload: store.get_multipart_upload(upload).await.unwrap(),
        parts: store.get_parts(upload).await.unwrap(),
        pending: store
            .get_stale_pending(std::time::Duration::ZERO, 1000)
            .await
            .unwrap(),
    }
}

/// The rotated form of a packed key in these cases: the old bytes with 0xEE appended.
fn rotated(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0xEE);
    k
}

/// A versioned bucket holding, under master key `old`: a key with a current and two
/// noncurrent sealed versions on two backends, a deleted key (sealed version under a delete
/// marker), a plaintext noncurrent version, an open sealed upload with two parts, an open
/// plaintext upload, and a sealed write intent. Returns the sealed upload's id.
async fn rotation_fixture(store: &Db) -> &'static str {
    three_backends(store).await;
    store.create_bucket(&BucketSpec::new(VBKT)).await.unwrap();
    store
        .set_bucket_versioning(VBKT, Versioning::Enabled)
        .await
        .unwrap();
    commit_in(
        store,
        "rot/a",
        A,
        116,
        &sealed_under(&[1, 0, 1], "old", "a1"),
    )
    .await;
    commit_in(
        store,
        "rot/a",
        B,
        116,
        &sealed_under(&[1, 0, 2], "old", "a2"),
    )
    .await;
    commit_in(
        store,
        "rot/a",
        A,
        116,
        &sealed_under(&[1, 0, 3], "old", "a3"),
    )
    .await;
    commit_in(
        store,
        "rot/b",
        B,
        116,
        &sealed_under(&[2, 0xFF], "old", "b1"),
    )
    .await;
    store
        .delete_object_in_bucket(VBKT, "rot/b", None)
        .await
        .unwrap();
    commit_in(store, "rot/p", A, 10, &StoredForm::default()).await;
    commit_in(store, "rot/p", A, 10, &sealed_under(&[3], "new", "p2")).await;
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "up-sealed".into(),
            object_key: "rot/m".into(),
            backend_name: C.into(),
            encryption_key: vec![4, 4],
            key_id: "old".into(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    for (n, key) in [(1, vec![4, 1]), (2, vec![4, 2])] {
        store
            .record_part(
                "up-sealed",
                n,
                &format!("e{n}"),
                32,
                &sealed_under(&key, "old", "x"),
            )
            .await
            .unwrap();
    }
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "up-plain".into(),
            object_key: "rot/n".into(),
            backend_name: C.into(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    store
        .record_part("up-plain", 1, "e", 8, &StoredForm::default())
        .await
        .unwrap();
    store
        .insert_pending(&PendingObject {
            intent_id: "intent-1".into(),
            object_key: "rot/w".into(),
            backend_name: A.into(),
            size_bytes: 116,
            form: sealed_under(&[5, 5], "old", "w"),
            created_at: Timestamp::ZERO,
        })
        .await
        .unwrap();
    "up-sealed"
}

/// Rotation reaches every row holding a wrapped key: the listing names exactly the sealed
/// rows of each table (not markers, not plaintext versions, parts or uploads) in key order;
/// each compare-and-set changes only the key and key id of its row; the census moves from the
/// old master key to the new one; no quota moves; a stale expected key changes nothing.
pub async fn rewrap_reaches_every_holder(store: Db) {
    let upload = rotation_fixture(&store).await;
    let keys = ["rot/a", "rot/b", "rot/p"];
    let vid = |k: &str, i: usize| {
        let store = store.clone();
        let k = k.to_owned();
        async move {
            let page = store
                .list_object_versions(&k, "", "", "", 1000)
                .await
                .unwrap();
            page.versions
                .into_iter()
                .filter(|v| v.object_key == k && !v.delete_marker)
                .map(|v| v.version_id)
                .nth(i)
                .unwrap()
        }
    };
    let (a1, a2, b1) = (
        vid("rot/a", 2).await,
        vid("rot/a", 1).await,
        vid("rot/b", 0).await,
    );
    assert_eq!(
        all_wrapped(&store, KeyHolder::Current, 1000).await,
        vec![
            (
                WrappedKeyAt::Current {
                    object_key: "rot/a".into(),
                    backend_name: A.into()
                },
                vec![1, 0, 3],
                "old".into()
            ),
            (
                WrappedKeyAt::Current {
                    object_key: "rot/p".into(),
                    backend_name: A.into()
                },
                vec![3],
                "new".into()
            ),
        ]
    );
    let mut want_versions = vec![
        (
            WrappedKeyAt::Version {
                object_key: "rot/a".into(),
                version_id: a1.clone(),
                backend_name: A.into(),
            },
            vec![1, 0, 1],
            "old".to_owned(),
        ),
        (
            WrappedKeyAt::Version {
                object_key: "rot/a".into(),
                version_id: a2.clone(),
                backend_name: B.into(),
            },
            vec![1, 0, 2],
            "old".to_owned(),
        ),
        (
            WrappedKeyAt::Version {
                object_key: "rot/b".into(),
                version_id: b1.clone(),
                backend_name: B.into(),
            },
            vec![2, 0xFF],
            "old".to_owned(),
        ),
    ];
    want_versions.sort();
    let mut got_versions = all_wrapped(&store, KeyHolder::Version, 1000).await;
    // Version ids are opaque: order among one key's versions is byte order of the id, which
    // the engine applies; compare as sets here and check the order below.
    let listed_order: Vec<WrappedKeyAt> = got_versions.iter().map(|w| w.0.clone()).collect();
    got_versions.sort();
    assert_eq!(got_versions, want_versions);
    let mut byte_order = listed_order.clone();
    byte_order.sort_by(|x, y| match (x, y) {
        (
            WrappedKeyAt::Version {
                object_key: k1,
                version_id: v1,
                backend_name: b1,
            },
            WrappedKeyAt::Version {
                object_key: k2,
                version_id: v2,
                backend_name: b2,
            },
        ) => (k1.as_bytes(), v1.as_bytes(), b1.as_bytes()).cmp(&(
            k2.as_bytes(),
            v2.as_bytes(),
            b2.as_bytes(),
        )),
        _ => unreachable!(),
    });
    assert_eq!(
        listed_order, byte_order,
        "versions listed in key, id, backend order"
    );
    assert_eq!(
        all_wrapped(&store, KeyHolder::Upload, 1000).await,
        vec![(
            WrappedKeyAt::Upload {
                upload_id: upload.into()
            },
            vec![4, 4],
            "old".into()
        )]
    );
    assert_eq!(
        all_wrapped(&store, KeyHolder::Part, 1000).await,
        vec![
            (
                WrappedKeyAt::Part {
                    upload_id: upload.into(),
                    part_number: 1
                },
                vec![4, 1],
                "old".into()
            ),
            (
                WrappedKeyAt::Part {
                    upload_id: upload.into(),
                    part_number: 2
                },
                vec![4, 2],
                "old".into()
            ),
        ]
    );
    assert_eq!(
        all_wrapped(&store, KeyHolder::Pending, 1000).await,
        vec![(
            WrappedKeyAt::Pending {
                intent_id: "intent-1".into()
            },
            vec![5, 5],
            "old".into()
        )]
    );
    for holder in KeyHolder::ALL {
        assert_eq!(
            all_wrapped(&store, holder, 1).await,
            all_wrapped(&store, holder, 1000).await,
            "{holder:?}: pages of one walk the same rows"
        );
    }
    assert_eq!(
        census(&store).await,
        vec![
            (KeyHolder::Current, "new".into(), 1),
            (KeyHolder::Current, "old".into(), 1),
            (KeyHolder::Version, "old".into(), 3),
            (KeyHolder::Upload, "old".into(), 1),
            (KeyHolder::Part, "old".into(), 2),
            (KeyHolder::Pending, "old".into(), 1),
        ]
    );

    let before = key_rows(&store, &keys, upload).await;
    let quotas = snapshot(&store).await.quotas;
    let mut rewrapped = 0;
    for holder in KeyHolder::ALL {
        for (at, key, id) in all_wrapped(&store, holder, 1000).await {
            if id == "new" {
                continue;
            }
            assert!(
                store
                    .rewrap_stored_key(&at, &key, &rotated(&key), "new")
                    .await
                    .unwrap(),
                "{at:?}"
            );
            rewrapped += 1;
            // A second rotation that read the old key finds the row changed.
            assert!(
                !store
                    .rewrap_stored_key(&at, &key, &[9], "newer")
                    .await
                    .unwrap(),
                "{at:?}"
            );
        }
    }
    assert_eq!(rewrapped, 8);
    assert_eq!(
        census(&store).await,
        vec![
            (KeyHolder::Current, "new".into(), 2),
            (KeyHolder::Version, "new".into(), 3),
            (KeyHolder::Upload, "new".into(), 1),
            (KeyHolder::Part, "new".into(), 2),
            (KeyHolder::Pending, "new".into(), 1),
        ]
    );
    // Exactly the key columns of exactly the sealed rows changed.
    let mut want = before;
    let turn = |f: &mut StoredForm| {
        if f.encrypted && f.key_id == "old" {
            f.encryption_key = rotated(&f.encryption_key);
            f.key_id = "new".into();
        }
    };
    want.current.iter_mut().for_each(|c| turn(&mut c.form));
    want.noncurrent.iter_mut().for_each(|c| turn(&mut c.form));
    want.pending.iter_mut().for_each(|p| turn(&mut p.form));
    want.upload.encryption_key = rotated(&want.upload.encryption_key);
    want.upload.key_id = "new".into();
    for p in &mut want.parts {
        p.encryption_key = rotated(&p.encryption_key);
        p.key_id = "new".into();
    }
    assert_eq!(key_rows(&store, &keys, upload).await, want);
    assert_eq!(
        snapshot(&store).await.quotas,
        quotas,
        "rotation moves no quota"
    );
    let plain = store.get_parts("up-plain").await.unwrap();
    assert!(!plain[0].encrypted && plain[0].encryption_key.is_empty());
    assert!(
        store
            .get_multipart_upload("up-plain")
            .await
            .unwrap()
            .key_id
            .is_empty()
    );

    // Refusals: empty keys, a cursor of another table, a bad part number.
    let at = WrappedKeyAt::Upload {
        upload_id: upload.into(),
    };
    let before = key_rows(&store, &keys, upload).await;
    assert_invalid(
        store.rewrap_stored_key(&at, &[4, 4, 0xEE], &[], "x").await,
        "empty key",
    );
    assert_invalid(
        store.rewrap_stored_key(&at, &[], &[1], "x").await,
        "empty expected",
    );
    assert_invalid(
        store.rewrap_stored_key(&at, &[4, 4, 0xEE], &[1], "").await,
        "empty id",
    );
    assert_invalid(
        store
            .rewrap_stored_key(
                &WrappedKeyAt::Part {
                    upload_id: upload.into(),
                    part_number: 0,
                },
                &[1],
                &[2],
                "x",
            )
            .await,
        "part 0",
    );
    assert_invalid(
        store
            .list_wrapped_keys(KeyHolder::Part, 10, Some(&at))
            .await,
        "cursor of another table",
    );
    assert_eq!(key_rows(&store, &keys, upload).await, before);
    assert_ledger(&store).await;
}

/// The client's write wins over a rotation that read the row before it: a noncurrent version
/// deleted or restored as current, an upload completed (released), a part re-uploaded with a
/// fresh nonce, an intent abandoned — the compare-and-set answers `false` and the row (where it
/// is now) keeps what the write left; the next run re-wraps the row where it moved.
pub async fn rewrap_loses_to_client_writes(store: Db) {
    let upload = rotation_fixture(&store).await;
    let versions = all_wrapped(&store, KeyHolder::Version, 1000).await;
    let find = |k: &str, key: &[u8]| {
        versions
            .iter()
            .find(|(at, kk, _)| {
                matches!(at, WrappedKeyAt::Version { object_key, .. } if object_key == k)
                    && kk == key
            })
            .cloned()
            .unwrap()
    };
    // rot/b's sealed version is deleted (by id) after the rotation read it.
    let (at_b, key_b, _) = find("rot/b", &[2, 0xFF]);
    let WrappedKeyAt::Version { version_id, .. } = &at_b else {
        unreachable!()
    };
    store
        .delete_object_in_bucket(VBKT, "rot/b", Some(version_id))
        .await
        .unwrap();
    assert!(
        !store
            .rewrap_stored_key(&at_b, &key_b, &rotated(&key_b), "new")
            .await
            .unwrap()
    );
    // rot/a's newest noncurrent version becomes current when the current one is deleted: the
    // version row is gone, its copy now lives in object_locations with the old key, and a
    // rewrap of it as a current copy succeeds.
    let (at_a2, key_a2, _) = find("rot/a", &[1, 0, 2]);
    let current_vid = store
        .get_latest_version("rot/a")
        .await
        .unwrap()
        .unwrap()
        .version_id;
    store
        .delete_object_in_bucket(VBKT, "rot/a", Some(&current_vid))
        .await
        .unwrap();
    assert!(
        !store
            .rewrap_stored_key(&at_a2, &key_a2, &rotated(&key_a2), "new")
            .await
            .unwrap()
    );
    let restored = copy_on(&store, "rot/a", B).await;
    assert_eq!(
        (
            restored.form.encryption_key.clone(),
            restored.form.key_id.as_str()
        ),
        (key_a2.clone(), "old")
    );
    let cur = WrappedKeyAt::Current {
        object_key: "rot/a".into(),
        backend_name: B.into(),
    };
    assert!(
        store
            .rewrap_stored_key(&cur, &key_a2, &rotated(&key_a2), "new")
            .await
            .unwrap()
    );
    assert_eq!(copy_on(&store, "rot/a", B).await.form.key_id, "new");

    // Part 2 is uploaded again (a fresh nonce, so other key bytes) after the rotation read it.
    let part2 = WrappedKeyAt::Part {
        upload_id: upload.into(),
        part_number: 2,
    };
    store
        .record_part(upload, 2, "e2b", 32, &sealed_under(&[4, 9], "old", "x"))
        .await
        .unwrap();
    assert!(
        !store
            .rewrap_stored_key(&part2, &[4, 2], &[4, 2, 0xEE], "new")
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_parts(upload).await.unwrap()[1].encryption_key,
        vec![4, 9],
        "the re-upload's key stays"
    );
    // The upload completes (released) after the rotation read it: nothing to re-wrap.
    let up = WrappedKeyAt::Upload {
        upload_id: upload.into(),
    };
    let queued = store
        .release_multipart_upload(upload, "completed")
        .await
        .unwrap();
    assert!(
        !store
            .rewrap_stored_key(&up, &[4, 4], &[4, 4, 0xEE], "new")
            .await
            .unwrap()
    );
    let part1 = WrappedKeyAt::Part {
        upload_id: upload.into(),
        part_number: 1,
    };
    assert!(
        !store
            .rewrap_stored_key(&part1, &[4, 1], &[4, 1, 0xEE], "new")
            .await
            .unwrap()
    );
    for d in &queued {
        store.complete_cleanup_item(&d.cleanup).await.unwrap();
    }
    // The intent ends (its write failed and was abandoned) after the rotation read it.
    let intent = store
        .get_stale_pending(std::time::Duration::ZERO, 10)
        .await
        .unwrap()
        .remove(0);
    let pend = WrappedKeyAt::Pending {
        intent_id: intent.intent_id.clone(),
    };
    store.abandon_pending(&intent).await.unwrap();
    assert!(
        !store
            .rewrap_stored_key(&pend, &[5, 5], &[5, 5, 0xEE], "new")
            .await
            .unwrap()
    );
    assert!(all_wrapped(&store, KeyHolder::Pending, 10).await.is_empty());
    assert!(all_wrapped(&store, KeyHolder::Upload, 10).await.is_empty());
    assert!(all_wrapped(&store, KeyHolder::Part, 10).await.is_empty());
    assert_ledger(&store).await;
}

/// Re-wraps racing real concurrent re-uploads of the same parts: whatever the interleaving
/// (re-wrap first, then the re-upload replaces the row; or the re-upload first, and the
/// re-wrap finds other key bytes), every part ends with the re-upload's key and ETag — a
/// re-wrap never lands on the key the re-upload replaced.
pub async fn rewrap_racing_part_uploads(store: Db) {
    three_backends(&store).await;
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "race".into(),
            object_key: "race/m".into(),
            backend_name: A.into(),
            encryption_key: vec![7],
            key_id: "old".into(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    const PARTS: i32 = 24;
    for n in 1..=PARTS {
        store
            .record_part("race", n, "e", 10, &sealed_under(&[7, n as u8], "old", "x"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for n in 1..=PARTS {
        let s1 = store.clone();
        let s2 = store.clone();
        tasks.push(tokio::spawn(async move {
            let at = WrappedKeyAt::Part {
                upload_id: "race".into(),
                part_number: n,
            };
            let old = vec![7, n as u8];
            let (new, form) = (rotated(&old), sealed_under(&[8, n as u8], "old", "y"));
            let rewrap = s1.rewrap_stored_key(&at, &old, &new, "new");
            let upload = s2.record_part("race", n, "e2", 10, &form);
            let (r, u) = tokio::join!(rewrap, upload);
            (r.unwrap(), u.unwrap())
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for p in store.get_parts("race").await.unwrap() {
        assert_eq!(
            (p.encryption_key.clone(), p.key_id.as_str(), p.etag.as_str()),
            (vec![8, p.part_number as u8], "old", "e2"),
            "part {}: the re-upload wins",
            p.part_number
        );
    }
    assert_ledger(&store).await;
}

/// Converting a noncurrent version swaps every copy's bytes in one transaction while the
/// version is unchanged: sizes and `bytes_used` follow (noncurrent copies stay charged), the
/// old bytes are queued (claimed) and charged as orphans, the intents go, ETag, creation time
/// and order stay, the plaintext listing loses the version; a copy set that differs, or a
/// version deleted or restored as current since, changes nothing.
pub async fn convert_noncurrent_version_swaps_or_nothing(store: Db) {
    three_backends(&store).await;
    store.create_bucket(&BucketSpec::new(VBKT)).await.unwrap();
    store
        .set_bucket_versioning(VBKT, Versioning::Enabled)
        .await
        .unwrap();
    let plain = |p: &str| StoredForm {
        storage_key: p.into(),
        etag: format!("e-{p}"),
        content_hash: "h".into(),
        ..StoredForm::default()
    };
    let v1 = commit_in(&store, "rot/k", A, 100, &plain("rot/k/@v1")).await;
    let rec = store
        .record_replica("rot/k", B, A, "rot/k/@v1")
        .await
        .unwrap();
    assert!(matches!(rec, ReplicaOutcome::Recorded { .. }));
    let v2 = commit_in(&store, "rot/k", C, 7, &plain("rot/k/@v2")).await;
    let listed = |store: Db| async move {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_plaintext_version_copies(1, after.as_ref())
                .await
                .unwrap();
            let Some(last) = page.last().cloned() else {
                return out;
            };
            after = Some(last);
            out.extend(page);
        }
    };
    let at = |b: &str| WrappedKeyAt::Version {
        object_key: "rot/k".into(),
        version_id: v1.clone(),
        backend_name: b.into(),
    };
    assert_eq!(listed(store.clone()).await, vec![at(A), at(B)]);
    let before_v1 = store.get_object_version("rot/k", &v1).await.unwrap();
    let intent = |id: &str, backend: &str| PendingObject {
        intent_id: id.into(),
        object_key: "rot/k".into(),
        backend_name: backend.into(),
        size_bytes: 116,
        form: StoredForm {
            storage_key: "rot/k/@v1.enc".into(),
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
        storage_key: "rot/k/@v1.enc".into(),
        ..StoredForm::default()
    };
    let conv = |b: &str, id: &str, size: i64| ConvertedCopy {
        backend: b.into(),
        size_bytes: size,
        intent_id: id.into(),
    };
    let both = [conv(A, "ia", 116), conv(B, "ib", 116)];
    // Not the version's copy set, not its path, the current version: nothing changes.
    let before = snapshot(&store).await;
    for r in [
        store
            .convert_noncurrent_version("rot/k", &v1, "rot/k/@v1", &sealed, &both[..1])
            .await,
        store
            .convert_noncurrent_version("rot/k", &v1, "rot/k/@vX", &sealed, &both)
            .await,
        store
            .convert_noncurrent_version("rot/k", &v2, "rot/k/@v2", &sealed, &[conv(C, "ia", 23)])
            .await,
    ] {
        assert!(r.unwrap().is_none());
    }
    assert_eq!(snapshot(&store).await, before);
    let (used_a, used_b) = (used(&store, A).await, used(&store, B).await);
    let old = store
        .convert_noncurrent_version("rot/k", &v1, "rot/k/@v1", &sealed, &both)
        .await
        .unwrap()
        .expect("converted");
    assert_eq!(bs(&old), vec![(A.to_owned(), 100), (B.to_owned(), 100)]);
    assert!(old.iter().all(|d| d.storage_key == "rot/k/@v1"));
    assert_eq!(
        (used(&store, A).await, used(&store, B).await),
        (used_a + 16, used_b + 16),
        "noncurrent copies stay charged, at their new size"
    );
    assert_eq!(
        (orphan(&store, A).await, orphan(&store, B).await),
        (100, 100)
    );
    assert_eq!(store.count_pending().await.unwrap(), 0, "intents cleared");
    let after_v1 = store.get_object_version("rot/k", &v1).await.unwrap();
    assert_eq!(
        (
            after_v1.seq,
            after_v1.created_at,
            &after_v1.etag,
            after_v1.size_bytes
        ),
        (before_v1.seq, before_v1.created_at, &before_v1.etag, 100),
        "order, Last-Modified, ETag and client size stay"
    );
    for (b, a) in before_v1.copies.iter().zip(&after_v1.copies) {
        let want = StoredForm {
            encrypted: true,
            encryption_key: vec![7; 8],
            key_id: "k1".into(),
            plaintext_size: 100,
            storage_key: "rot/k/@v1.enc".into(),
            ..b.form.clone()
        };
        assert_eq!(
            (a.size_bytes, &a.form, a.created_at),
            (116, &want, b.created_at)
        );
    }
    assert!(listed(store.clone()).await.is_empty());
    assert_eq!(
        all_wrapped(&store, KeyHolder::Version, 10).await.len(),
        2,
        "both copies now hold the key"
    );
    for d in &old {
        store.complete_cleanup_item(&d.cleanup).await.unwrap();
    }
    assert_ledger(&store).await;

    // Decrypt it back, racing: the version deleted since is left alone.
    store
        .insert_pending(&PendingObject {
            form: StoredForm {
                storage_key: "rot/k/@v1.dec".into(),
                ..StoredForm::default()
            },
            ..intent("ic", A)
        })
        .await
        .unwrap();
    let opened = StoredForm {
        storage_key: "rot/k/@v1.dec".into(),
        ..StoredForm::default()
    };
    store
        .delete_object_in_bucket(VBKT, "rot/k", Some(&v2))
        .await
        .unwrap();
    // v1 is current again: as a noncurrent version it is gone.
    let before = snapshot(&store).await;
    assert!(
        store
            .convert_noncurrent_version(
                "rot/k",
                &v1,
                "rot/k/@v1.enc",
                &opened,
                &[conv(A, "ic", 100), conv(B, "ic", 100)]
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(snapshot(&store).await, before);
    store.delete_pending("ic").await.unwrap();
    assert_orphans_accounted(&store).await;
}
