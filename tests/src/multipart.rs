//! Multipart upload bookkeeping.

use std::collections::BTreeMap;
use std::time::Duration;

use s3o_store::*;

use crate::support::*;

fn params(id: &str, key: &str, backend: &str) -> CreateMultipartUploadParams {
    CreateMultipartUploadParams {
        upload_id: id.to_owned(),
        object_key: key.to_owned(),
        backend_name: backend.to_owned(),
        ..CreateMultipartUploadParams::default()
    }
}

async fn create(store: &Db, id: &str, key: &str, backend: &str) {
    store
        .create_multipart_upload(&params(id, key, backend))
        .await
        .unwrap();
}

fn ids(v: &[MultipartUpload]) -> Vec<String> {
    v.iter().map(|u| u.upload_id.clone()).collect()
}

fn sorted_ids(v: &[MultipartUpload]) -> Vec<String> {
    let mut i = ids(v);
    i.sort();
    i
}

/// Every upload field round trips, metadata and upload-level key included.
pub async fn create_get_round_trip(store: Db) {
    three_backends(&store).await;
    let start = Timestamp::now().minus(Duration::from_secs(60));
    let metadata: BTreeMap<String, String> = [("owner", "ü-ser"), ("x", "{\"json\": true}")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let p = CreateMultipartUploadParams {
        content_type: "video/mp4".into(),
        metadata: metadata.clone(),
        encryption_key: vec![0, 1, 2, 0xFF, 0],
        key_id: "mk-3".into(),
        ..params("up-1", "videos/big.mp4", B)
    };
    store.create_multipart_upload(&p).await.unwrap();
    let u = store.get_multipart_upload("up-1").await.unwrap();
    assert_eq!(u.upload_id, "up-1");
    assert_eq!(u.object_key, "videos/big.mp4");
    assert_eq!(u.backend_name, B);
    assert_eq!(u.content_type, "video/mp4");
    assert_eq!(u.metadata, metadata);
    assert!(u.encrypted);
    assert_eq!(u.encryption_key, vec![0, 1, 2, 0xFF, 0]);
    assert_eq!(u.key_id, "mk-3");
    assert!(u.created_at >= start);
    assert_ledger(&store).await;
}

/// A plain upload has empty optional fields and is not encrypted.
pub async fn create_plain_upload(store: Db) {
    three_backends(&store).await;
    create(&store, "plain", "k", A).await;
    let u = store.get_multipart_upload("plain").await.unwrap();
    assert!(!u.encrypted);
    assert!(u.encryption_key.is_empty() && u.key_id.is_empty());
    assert!(u.content_type.is_empty());
    assert!(u.metadata.is_empty());
    assert_ledger(&store).await;
}

/// Unknown upload ids are `MultipartUploadNotFound`.
pub async fn unknown_upload_not_found(store: Db) {
    three_backends(&store).await;
    match store.get_multipart_upload("nope").await {
        Err(StoreError::MultipartUploadNotFound { upload_id }) => assert_eq!(upload_id, "nope"),
        other => panic!("expected MultipartUploadNotFound, got {other:?}"),
    }
    assert!(store.get_parts("nope").await.unwrap().is_empty());
    store.delete_multipart_upload("nope").await.unwrap();
    assert_ledger(&store).await;
}

/// Creating an upload on an unknown backend is `UnknownBackend`.
pub async fn create_unknown_backend(store: Db) {
    three_backends(&store).await;
    assert_unknown_backend(
        store
            .create_multipart_upload(&params("u", "k", UNKNOWN))
            .await,
        UNKNOWN,
    );
    assert!(store.get_multipart_upload("u").await.is_err());
    assert!(
        store
            .get_active_multipart_counts()
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// Part numbers 0 and 10001 are `InvalidInput`; 1 and 10000 are accepted.
pub async fn part_number_bounds(store: Db) {
    three_backends(&store).await;
    create(&store, "u", "k", A).await;
    let plain = StoredForm::default();
    assert_invalid(store.record_part("u", 0, "e", 1, &plain).await, "part 0");
    assert_invalid(
        store.record_part("u", 10_001, "e", 1, &plain).await,
        "part 10001",
    );
    assert_invalid(store.record_part("u", -1, "e", 1, &plain).await, "part -1");
    assert!(store.get_parts("u").await.unwrap().is_empty());
    store.record_part("u", 1, "e1", 5, &plain).await.unwrap();
    store
        .record_part("u", 10_000, "e2", 6, &plain)
        .await
        .unwrap();
    let parts = store.get_parts("u").await.unwrap();
    assert_eq!(
        parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        vec![1, 10_000]
    );
    assert_ledger(&store).await;
}

/// Recording a part of an unknown upload is `MultipartUploadNotFound`.
pub async fn record_part_unknown_upload(store: Db) {
    three_backends(&store).await;
    match store
        .record_part("ghost", 1, "e", 1, &StoredForm::default())
        .await
    {
        Err(StoreError::MultipartUploadNotFound { upload_id }) => assert_eq!(upload_id, "ghost"),
        other => panic!("expected MultipartUploadNotFound, got {other:?}"),
    }
    assert!(store.get_parts("ghost").await.unwrap().is_empty());
    assert_ledger(&store).await;
}

/// Parts come back ordered by number; recording a number again replaces it.
pub async fn parts_ordered_and_upserted(store: Db) {
    three_backends(&store).await;
    create(&store, "u", "k", A).await;
    let plain = StoredForm::default();
    for n in [3, 1, 2] {
        store
            .record_part("u", n, &format!("etag-{n}"), i64::from(n) * 100, &plain)
            .await
            .unwrap();
    }
    store
        .record_part("u", 2, "etag-2b", 999, &plain)
        .await
        .unwrap();
    let parts = store.get_parts("u").await.unwrap();
    let got: Vec<(i32, &str, i64)> = parts
        .iter()
        .map(|p| (p.part_number, p.etag.as_str(), p.size_bytes))
        .collect();
    assert_eq!(
        got,
        vec![(1, "etag-1", 100), (2, "etag-2b", 999), (3, "etag-3", 300)]
    );
    assert!(parts.iter().all(|p| !p.created_at.is_zero()));
    assert_ledger(&store).await;
}

/// Part encryption fields are kept only for encrypted parts.
pub async fn part_encryption_fields(store: Db) {
    three_backends(&store).await;
    create(&store, "u", "k", A).await;
    let enc = encrypted_form(8);
    store.record_part("u", 1, "e1", 1100, &enc).await.unwrap();
    let plain_with_junk = StoredForm {
        encrypted: false,
        ..encrypted_form(9)
    };
    store
        .record_part("u", 2, "e2", 50, &plain_with_junk)
        .await
        .unwrap();
    let parts = store.get_parts("u").await.unwrap();
    assert!(parts[0].encrypted);
    assert_eq!(parts[0].encryption_key, enc.encryption_key);
    assert_eq!(parts[0].key_id, enc.key_id);
    assert_eq!(parts[0].plaintext_size, enc.plaintext_size);
    assert_eq!(parts[0].size_bytes, 1100);
    assert!(!parts[1].encrypted);
    assert!(parts[1].encryption_key.is_empty() && parts[1].key_id.is_empty());
    assert_eq!(parts[1].plaintext_size, 0);
    assert_ledger(&store).await;
}

/// Listing and counting by prefix: byte-wise, case-sensitive, wildcards literal; slim rows.
pub async fn list_and_count_by_prefix(store: Db) {
    three_backends(&store).await;
    let uploads = [
        ("u1", "photos/a"),
        ("u2", "photos/b"),
        ("u3", "Photos/c"),
        ("u4", "photos_x"),
        ("u5", "photos%/y"),
        ("u6", "photos/a"),
        ("u7", "日本/1"),
    ];
    for (i, (id, key)) in uploads.iter().enumerate() {
        create(&store, id, key, [A, B][i % 2]).await;
    }
    for prefix in [
        "photos/", "photos", "Photos", "photos_", "photos%", "日本", "", "nothing",
    ] {
        let mut expected: Vec<(&str, &str)> = uploads
            .iter()
            .filter(|(_, k)| k.starts_with(prefix))
            .copied()
            .collect();
        expected.sort_by(|x, y| x.1.as_bytes().cmp(y.1.as_bytes()).then(x.0.cmp(y.0)));
        let listed = store.list_multipart_uploads(prefix, 0).await.unwrap();
        let got: Vec<&str> = listed.iter().map(|u| u.object_key.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|(_, k)| *k).collect();
        assert_eq!(got, want, "prefix {prefix:?}");
        let mut got_ids = ids(&listed);
        got_ids.sort();
        let mut want_ids: Vec<String> = expected.iter().map(|(i, _)| (*i).to_owned()).collect();
        want_ids.sort();
        assert_eq!(got_ids, want_ids, "prefix {prefix:?}");
        assert_eq!(
            store.count_active_multipart_uploads(prefix).await.unwrap(),
            expected.len() as i64,
            "count {prefix:?}"
        );
    }
    assert_eq!(
        store
            .list_multipart_uploads("photos", 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_ledger(&store).await;
}

/// Stale uploads: zero age ⇒ every upload; an hour ⇒ none of the fresh ones.
pub async fn stale_uploads(store: Db) {
    three_backends(&store).await;
    create(&store, "s1", "k1", A).await;
    create(&store, "s2", "k2", B).await;
    let all = store
        .get_stale_multipart_uploads(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(sorted_ids(&all), vec!["s1", "s2"]);
    let s1 = all.iter().find(|u| u.upload_id == "s1").unwrap();
    assert_eq!(
        (s1.object_key.as_str(), s1.backend_name.as_str()),
        ("k1", A)
    );
    assert!(
        store
            .get_stale_multipart_uploads(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// Uploads by backend.
pub async fn uploads_by_backend(store: Db) {
    three_backends(&store).await;
    create(&store, "a1", "x", A).await;
    create(&store, "a2", "y", A).await;
    create(&store, "b1", "z", B).await;
    let on_a = store.get_multipart_uploads_by_backend(A).await.unwrap();
    assert_eq!(sorted_ids(&on_a), vec!["a1", "a2"]);
    assert!(on_a.iter().all(|u| u.backend_name == A));
    assert_eq!(
        sorted_ids(&store.get_multipart_uploads_by_backend(B).await.unwrap()),
        vec!["b1"]
    );
    assert!(
        store
            .get_multipart_uploads_by_backend(C)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = store.get_active_multipart_counts().await.unwrap();
    assert_eq!(counts.get(A), Some(&2));
    assert_eq!(counts.get(B), Some(&1));
    assert_eq!(counts.get(C).copied().unwrap_or(0), 0);
    assert_ledger(&store).await;
}

/// Deleting an upload removes its parts; deleting again is a no-op.
pub async fn delete_upload_cascades_parts(store: Db) {
    three_backends(&store).await;
    create(&store, "gone", "k", A).await;
    create(&store, "kept", "k", A).await;
    for n in 1..=3 {
        store
            .record_part("gone", n, "e", 10, &StoredForm::default())
            .await
            .unwrap();
    }
    store
        .record_part("kept", 1, "e", 10, &StoredForm::default())
        .await
        .unwrap();
    store.delete_multipart_upload("gone").await.unwrap();
    assert!(store.get_multipart_upload("gone").await.is_err());
    assert!(store.get_parts("gone").await.unwrap().is_empty());
    store.delete_multipart_upload("gone").await.unwrap();
    assert_eq!(store.get_parts("kept").await.unwrap().len(), 1);
    // A recreated upload with the old id starts without parts.
    create(&store, "gone", "k2", B).await;
    assert!(store.get_parts("gone").await.unwrap().is_empty());
    assert_ledger(&store).await;
}

/// Concurrent part uploads, some to the same number, leave one row per number.
pub async fn concurrent_part_upserts(store: Db) {
    three_backends(&store).await;
    create(&store, "u", "k", A).await;
    let mut tasks = Vec::new();
    for i in 0..24i32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let n = i % 8 + 1;
            s.record_part(
                "u",
                n,
                &format!("etag-{i}"),
                i64::from(n),
                &StoredForm::default(),
            )
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let parts = store.get_parts("u").await.unwrap();
    assert_eq!(
        parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    for p in &parts {
        assert_eq!(p.size_bytes, i64::from(p.part_number));
        let writer: i32 = p.etag.trim_start_matches("etag-").parse().unwrap();
        assert_eq!(writer % 8 + 1, p.part_number, "etag of another part: {p:?}");
    }
    assert_ledger(&store).await;
}

/// A part's backend path is stored with it and replaced with the rest of the row by a
/// re-upload of the same number; a part recorded without one reads back empty.
pub async fn part_storage_key_round_trips_and_upserts(store: Db) {
    three_backends(&store).await;
    create(&store, "u", "k", A).await;
    let at = |p: &str| StoredForm {
        storage_key: p.to_owned(),
        ..StoredForm::default()
    };
    store
        .record_part("u", 1, "e1", 10, &at(".mpu/u/00001-a"))
        .await
        .unwrap();
    store
        .record_part("u", 2, "e2", 20, &StoredForm::default())
        .await
        .unwrap();
    store
        .record_part("u", 1, "e1b", 11, &at(".mpu/u/00001-b"))
        .await
        .unwrap();
    let got: Vec<(i32, String, String)> = store
        .get_parts("u")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.part_number, p.etag, p.storage_key))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "e1b".to_owned(), ".mpu/u/00001-b".to_owned()),
            (2, "e2".to_owned(), String::new()),
        ]
    );
    assert_ledger(&store).await;
}
