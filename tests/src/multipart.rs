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
    store
        .release_multipart_upload("nope", "aborted upload")
        .await
        .unwrap();
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
    store
        .release_multipart_upload("gone", "aborted upload")
        .await
        .unwrap();
    assert!(store.get_multipart_upload("gone").await.is_err());
    assert!(store.get_parts("gone").await.unwrap().is_empty());
    store
        .release_multipart_upload("gone", "aborted upload")
        .await
        .unwrap();
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

/// A part recorded at `path` (its storage key).
fn part_at(path: &str) -> StoredForm {
    StoredForm {
        storage_key: path.to_owned(),
        ..StoredForm::default()
    }
}

/// `(backend, size, path)` of queued bytes.
fn queued(v: &[DeletedCopy]) -> Vec<(String, i64, String)> {
    let mut q: Vec<_> = v
        .iter()
        .map(|d| (d.backend_name.clone(), d.size_bytes, d.storage_key.clone()))
        .collect();
    q.sort();
    q
}

/// Every invariant after a step: `bytes_used == Σ copies + Σ open parts`, orphans == queue.
async fn invariants(store: &Db) {
    assert_ledger(store).await;
    assert_orphans_accounted(store).await;
}

/// Parts are charged to their upload's backend when recorded, under the quota guard: exact
/// quota rows before and after each step; a part that does not fit is refused with
/// `NoSpaceAvailable` and changes nothing; a part recorded again swaps the charge (the old
/// attempt's bytes queued as orphans in the same transaction, or replaced in place at the
/// same path); releasing the upload moves every part's bytes from used to the queue.
pub async fn parts_are_charged_swapped_and_released(store: Db) {
    backends(&store, &[(A, 100), (B, 100)]).await;
    create(&store, "u", "mp/k", A).await;
    assert_eq!(quota(&store, A).await, (0, 100, 0));
    let none = store
        .record_part("u", 1, "e1", 40, &part_at(".mpu/u/00001-a"))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(quota(&store, A).await, (40, 100, 0));
    store
        .record_part("u", 2, "e2", 50, &part_at(".mpu/u/00002-b"))
        .await
        .unwrap();
    assert_eq!(quota(&store, A).await, (90, 100, 0));
    assert_eq!(
        quota(&store, B).await,
        (0, 100, 0),
        "only the upload's backend"
    );
    invariants(&store).await;
    // 11 more do not fit: refused, nothing recorded or charged.
    let before = snapshot(&store).await;
    assert_no_space(
        store
            .record_part("u", 3, "e3", 11, &part_at(".mpu/u/00003-c"))
            .await,
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(store.get_parts("u").await.unwrap().len(), 2);
    // Part 1 again, at a new path: the old 40 bytes stay on the backend until cleanup, so the
    // guard admits the new 10 on top of them (90 + 10 = 100) and they move to the queue.
    let old = store
        .record_part("u", 1, "e1b", 10, &part_at(".mpu/u/00001-d"))
        .await
        .unwrap();
    assert_eq!(queued(&old), vec![(A.into(), 40, ".mpu/u/00001-a".into())]);
    assert_eq!(quota(&store, A).await, (60, 100, 40));
    invariants(&store).await;
    // Part 2 again in place (same path): only the difference counts; 1 byte more is refused.
    let same = store
        .record_part("u", 2, "e2b", 50, &part_at(".mpu/u/00002-b"))
        .await
        .unwrap();
    assert!(same.is_empty(), "in place: nothing queued");
    assert_eq!(quota(&store, A).await, (60, 100, 40));
    let before = snapshot(&store).await;
    assert_no_space(
        store
            .record_part("u", 2, "e2c", 51, &part_at(".mpu/u/00002-b"))
            .await,
    );
    assert_eq!(snapshot(&store).await, before);
    // Cleanup frees the old attempt's bytes; then room for a part without a storage key.
    store.complete_cleanup_item(&old[0].cleanup).await.unwrap();
    assert_eq!(quota(&store, A).await, (60, 100, 0));
    store
        .record_part("u", 3, "e3", 40, &StoredForm::default())
        .await
        .unwrap();
    assert_eq!(quota(&store, A).await, (100, 100, 0));
    // The charge is what reconcile computes: no drift.
    assert!(store.reconcile_usage().await.unwrap().is_empty());
    invariants(&store).await;
    // Release: every part's bytes leave used for the queue, at their paths (a part recorded
    // without a storage key at the fixed part path, never the object key).
    let released = store
        .release_multipart_upload("u", "aborted upload")
        .await
        .unwrap();
    assert_eq!(
        queued(&released),
        vec![
            (A.into(), 10, ".mpu/u/00001-d".into()),
            (A.into(), 40, default_part_path("u", 3)),
            (A.into(), 50, ".mpu/u/00002-b".into()),
        ]
    );
    assert_eq!(default_part_path("u", 3), ".mpu/u/00003");
    assert_eq!(quota(&store, A).await, (0, 100, 100));
    assert!(store.get_multipart_upload("u").await.is_err());
    assert!(store.get_parts("u").await.unwrap().is_empty());
    invariants(&store).await;
    // Released again (or never known): nothing changes.
    let before = snapshot(&store).await;
    assert!(
        store
            .release_multipart_upload("u", "aborted upload")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(snapshot(&store).await, before);
    assert!(matches!(
        store
            .record_part("u", 1, "e", 1, &part_at(".mpu/u/00001-e"))
            .await,
        Err(StoreError::MultipartUploadNotFound { .. })
    ));
    assert_eq!(snapshot(&store).await, before);
}

/// Complete in the ledger: the assembled object is committed beside the parts (both are on
/// the backend, so the guard wants room for both), then the upload is released and the parts'
/// charge becomes orphan bytes: every byte is counted once, as the object's or as queued.
pub async fn complete_turns_parts_into_the_object(store: Db) {
    backends(&store, &[(A, 1000), (B, 1000)]).await;
    create(&store, "u", "mp/k", A).await;
    for (n, size) in [(1, 300), (2, 200)] {
        store
            .record_part("u", n, "e", size, &part_at(&format!(".mpu/u/{n:05}-x")))
            .await
            .unwrap();
    }
    // An unused part (not named by the Complete) is released with the others.
    store
        .record_part("u", 3, "e", 7, &part_at(".mpu/u/00003-x"))
        .await
        .unwrap();
    assert_eq!(quota(&store, A).await, (507, 1000, 0));
    // The object (500) fits beside the parts (507): 1007 > 1000 on A, so it goes to B.
    assert_no_space(
        store
            .record_object("mp/k", A, 500, &part_at("mp/k/@1"))
            .await,
    );
    assert_eq!(
        store
            .get_backend_with_space(500, &[A.to_owned(), B.to_owned()])
            .await
            .unwrap(),
        B
    );
    store
        .record_object("mp/k", B, 500, &part_at("mp/k/@1"))
        .await
        .unwrap();
    assert_eq!(quota(&store, A).await, (507, 1000, 0));
    assert_eq!(quota(&store, B).await, (500, 1000, 0));
    invariants(&store).await;
    let released = store
        .release_multipart_upload("u", "completed upload")
        .await
        .unwrap();
    assert_eq!(released.len(), 3);
    assert_eq!(quota(&store, A).await, (0, 1000, 507));
    assert_eq!(quota(&store, B).await, (500, 1000, 0));
    invariants(&store).await;
    // On one backend with room for both: object charged, then the parts leave used.
    create(&store, "v", "mp/v", B).await;
    store
        .record_part("v", 1, "e", 200, &part_at(".mpu/v/00001-x"))
        .await
        .unwrap();
    store
        .record_object("mp/v", B, 200, &part_at("mp/v/@1"))
        .await
        .unwrap();
    assert_eq!(quota(&store, B).await, (900, 1000, 0));
    store
        .release_multipart_upload("v", "completed upload")
        .await
        .unwrap();
    assert_eq!(quota(&store, B).await, (700, 1000, 200));
    invariants(&store).await;
}

/// Concurrent parts of two uploads on one backend: exactly as many as fit are admitted, the
/// others refused with `NoSpaceAvailable`; the quota row ends exactly full.
pub async fn concurrent_parts_admitted_exactly(store: Db) {
    backends(&store, &[(A, 1000)]).await;
    create(&store, "u1", "mp/1", A).await;
    create(&store, "u2", "mp/2", A).await;
    let tasks: Vec<_> = (1..=24)
        .map(|n: i32| {
            let s = store.clone();
            let id = if n % 2 == 0 { "u1" } else { "u2" };
            tokio::spawn(async move {
                s.record_part(id, n, "e", 100, &part_at(&format!(".mpu/{id}/{n:05}")))
                    .await
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(q) => {
                assert!(q.is_empty());
                ok += 1;
            }
            Err(StoreError::NoSpaceAvailable) => refused += 1,
            Err(e) => panic!("record_part: {e:?}"),
        }
    }
    assert_eq!((ok, refused), (10, 14));
    assert_eq!(quota(&store, A).await, (1000, 1000, 0));
    let parts =
        store.get_parts("u1").await.unwrap().len() + store.get_parts("u2").await.unwrap().len();
    assert_eq!(parts, 10);
    invariants(&store).await;
}
