//! What every case leans on: backend setup, the ledger invariant, snapshots for "nothing
//! changed" checks, stored forms that exercise every column, and error matchers.

use std::collections::BTreeMap;
use std::fmt::Debug;

use s3o_store::{
    Bucket, CleanupClaim, DeletedCopy, MetadataStore, MoveOutcome, ObjectAttributes,
    ObjectChecksum, ObjectLocation, PartLayout, ReplicaOutcome, Result, StoreError, StoredForm,
    Timestamp,
};

/// The store every case receives.
pub type Db = MetadataStore;

/// First backend.
pub const A: &str = "backend-a";
/// Second backend.
pub const B: &str = "backend-b";
/// Third backend.
pub const C: &str = "backend-c";
/// A backend name with no quota row.
pub const UNKNOWN: &str = "backend-unknown";
/// The default per-backend limit: 1 GiB, as in the reference fixture.
pub const GIB: i64 = 1 << 30;

/// Creates `backends` with their limits through `sync_quota_limits`.
pub async fn backends(store: &Db, backends: &[(&str, i64)]) {
    let limits: Vec<(String, i64)> = backends
        .iter()
        .map(|(b, l)| ((*b).to_owned(), *l))
        .collect();
    store
        .sync_quota_limits(&limits)
        .await
        .expect("sync_quota_limits");
}

/// Creates `backend-a`, `backend-b` and `backend-c` with 1 GiB each.
pub async fn three_backends(store: &Db) {
    backends(store, &[(A, GIB), (B, GIB), (C, GIB)]).await;
}

/// The ledger invariant: for every backend, `bytes_used` equals Σ `size_bytes` of its copies
/// plus Σ `size_bytes` of the recorded parts of its open multipart uploads (parts are charged
/// while their upload is open), and the copy count agrees with the dashboard count.
pub async fn assert_ledger(store: &Db) {
    let stats = store.get_quota_stats().await.expect("get_quota_stats");
    let counts = store.get_object_counts().await.expect("get_object_counts");
    for (backend, stat) in &stats {
        assert_eq!(&stat.backend_name, backend, "quota stat keyed by its name");
        let (copies, bytes) = store
            .backend_object_stats(backend)
            .await
            .expect("backend_object_stats");
        assert_eq!(
            stat.bytes_used,
            bytes + parts_on(store, backend).await,
            "ledger: bytes_used of {backend} must equal the sum of its copies' and open parts' size_bytes"
        );
        assert!(stat.orphan_bytes >= 0, "orphan bytes of {backend} negative");
        assert_eq!(
            counts.get(backend).copied().unwrap_or(0),
            copies,
            "ledger: object count of {backend}"
        );
    }
    for backend in counts.keys() {
        assert!(
            stats.contains_key(backend),
            "copies on {backend}, which has no quota row"
        );
    }
}

/// Σ `size_bytes` of the recorded parts of `backend`'s open multipart uploads.
pub async fn parts_on(store: &Db, backend: &str) -> i64 {
    store
        .backend_capacities(&[backend.to_owned()])
        .await
        .expect("backend_capacities")
        .iter()
        .map(|c| c.inflight_bytes)
        .sum()
}

/// `(bytes_used, bytes_limit, orphan_bytes)` of one backend.
pub async fn quota(store: &Db, backend: &str) -> (i64, i64, i64) {
    let stats = store.get_quota_stats().await.expect("get_quota_stats");
    let s = stats
        .get(backend)
        .unwrap_or_else(|| panic!("no quota row for {backend}"));
    (s.bytes_used, s.bytes_limit, s.orphan_bytes)
}

/// `bytes_used` of one backend.
pub async fn used(store: &Db, backend: &str) -> i64 {
    quota(store, backend).await.0
}

/// `orphan_bytes` of one backend.
pub async fn orphan(store: &Db, backend: &str) -> i64 {
    quota(store, backend).await.2
}

/// Every copy of `key` (empty when none), oldest first.
pub async fn copies(store: &Db, key: &str) -> Vec<ObjectLocation> {
    match store.get_all_object_locations(key).await {
        Ok(v) => {
            assert!(
                !v.is_empty(),
                "get_all_object_locations returned no rows for {key}"
            );
            v
        }
        Err(StoreError::ObjectNotFound { key: k }) => {
            assert_eq!(k, key, "ObjectNotFound names the key");
            Vec::new()
        }
        Err(e) => panic!("get_all_object_locations({key}): {e:?}"),
    }
}

/// Sorted `(backend, size)` of every copy of `key`.
pub async fn placement(store: &Db, key: &str) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = copies(store, key)
        .await
        .into_iter()
        .map(|c| (c.backend_name, c.size_bytes))
        .collect();
    v.sort();
    v
}

/// The one copy of `key` on `backend`.
pub async fn copy_on(store: &Db, key: &str, backend: &str) -> ObjectLocation {
    copies(store, key)
        .await
        .into_iter()
        .find(|c| c.backend_name == backend)
        .unwrap_or_else(|| panic!("no copy of {key} on {backend}"))
}

/// The physical path of `key`'s copy on `backend` now (its `storage_path`), or the key itself
/// when there is no such copy: what a worker reads before copying bytes.
pub async fn path_on(store: &Db, key: &str, backend: &str) -> String {
    // Any answer but a copy (including a refused key: validation cases) reads as the key.
    store
        .get_all_object_locations(key)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.backend_name == backend)
        .map_or_else(|| key.to_owned(), |c| c.form.storage_path(key).to_owned())
}

/// `record_replica` of the version on `source` now (the expected path read first).
pub async fn replicate(
    store: &Db,
    key: &str,
    target: &str,
    source: &str,
) -> Result<ReplicaOutcome> {
    let path = path_on(store, key, source).await;
    store.record_replica(key, target, source, &path).await
}

/// `move_object_location` of the version on `from` now (the expected path read first).
pub async fn move_copy(store: &Db, key: &str, from: &str, to: &str) -> Result<MoveOutcome> {
    let path = path_on(store, key, from).await;
    store.move_object_location(key, from, to, &path).await
}

/// The bytes a move reports; `None` for any refusal.
pub fn moved_bytes(o: &MoveOutcome) -> Option<i64> {
    match o {
        MoveOutcome::Moved { bytes, .. } => Some(*bytes),
        _ => None,
    }
}

/// Records a plaintext object, panicking on error.
pub async fn put(store: &Db, key: &str, backend: &str, size: i64) {
    store
        .record_object(key, backend, size, &StoredForm::default())
        .await
        .unwrap_or_else(|e| panic!("record_object({key}, {backend}, {size}): {e:?}"));
}

/// Records many plaintext objects on `backend`, a few at a time.
pub async fn put_many(store: &Db, keys: &[String], backend: &str, size: i64) {
    for chunk in keys.chunks(8) {
        let mut tasks = Vec::new();
        for k in chunk {
            let s = store.clone();
            let k = k.clone();
            let b = backend.to_owned();
            tasks.push(tokio::spawn(async move { put(&s, &k, &b, size).await }));
        }
        for t in tasks {
            t.await.expect("put task");
        }
    }
}

/// An encrypted, hashed, unmanaged form whose key bytes include 0x00 and 0xFF, with every
/// S3 attribute set (storage key, ETag, content type, non-ASCII user metadata).
pub fn encrypted_form(seed: u8) -> StoredForm {
    StoredForm {
        encrypted: true,
        encryption_key: vec![0x00, 0xFF, seed, 0x7F, 0x80, 0x00, seed.wrapping_mul(3)],
        key_id: format!("mk-v{seed}"),
        plaintext_size: 1000 + i64::from(seed),
        content_hash: format!("{:064x}", u64::from(seed) * 7919),
        managed: false,
        storage_key: format!("blobs/{seed:02x}/ü-{seed}"),
        etag: format!("\"{:032x}\"", u64::from(seed) * 31),
        content_type: "application/x-s3o; charset=utf-8".to_owned(),
        user_metadata: [
            ("owner".to_owned(), format!("seed-{seed}")),
            ("note".to_owned(), "naïve \"quoted\" {json}".to_owned()),
        ]
        .into_iter()
        .collect(),
        attributes: full_attributes(seed),
        tags: [
            ("projet".to_owned(), format!("été-{seed}")),
            ("empty".to_owned(), String::new()),
        ]
        .into_iter()
        .collect(),
    }
}

/// Stored attributes with every field set: headers (one non-ASCII), a composite checksum
/// and a two-part layout.
pub fn full_attributes(seed: u8) -> ObjectAttributes {
    ObjectAttributes {
        headers: [
            ("cache-control".to_owned(), format!("max-age={seed}")),
            (
                "content-disposition".to_owned(),
                "attachment; filename=\"ü.txt\"".to_owned(),
            ),
            (
                "expires".to_owned(),
                "Thu, 01 Dec 2044 16:00:00 GMT".to_owned(),
            ),
        ]
        .into_iter()
        .collect(),
        checksum: Some(ObjectChecksum {
            algorithm: "SHA256".to_owned(),
            kind: "COMPOSITE".to_owned(),
            value: format!("{seed:02x}Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-2"),
        }),
        parts: vec![
            PartLayout {
                size: 5 << 20,
                checksum: "arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0=".to_owned(),
            },
            PartLayout {
                size: i64::from(seed),
                checksum: String::new(),
            },
        ],
    }
}

/// A plaintext form with a content hash.
pub fn hashed_form(hash: &str) -> StoredForm {
    StoredForm {
        content_hash: hash.to_owned(),
        ..StoredForm::default()
    }
}

/// Asserts `r` is `InvalidInput`.
#[track_caller]
pub fn assert_invalid<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(StoreError::InvalidInput { .. }) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

/// Asserts `r` is `UnknownBackend` naming `backend`.
#[track_caller]
pub fn assert_unknown_backend<T: Debug>(r: Result<T>, backend: &str) {
    match r {
        Err(StoreError::UnknownBackend { backend: b }) => assert_eq!(b, backend),
        other => panic!("expected UnknownBackend({backend}), got {other:?}"),
    }
}

/// Asserts `r` is `NoSpaceAvailable`.
#[track_caller]
pub fn assert_no_space<T: Debug>(r: Result<T>) {
    match r {
        Err(StoreError::NoSpaceAvailable) => {}
        other => panic!("expected NoSpaceAvailable, got {other:?}"),
    }
}

/// Everything observable about the ledger, for "nothing changed" assertions.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `(used, limit, orphan)` per backend.
    pub quotas: BTreeMap<String, (i64, i64, i64)>,
    /// Every copy of every backend, full rows as the by-backend listing returns them.
    pub copies: BTreeMap<String, Vec<ObjectLocation>>,
    /// Number of pending intents.
    pub pending: i64,
    /// Cleanup queue depth.
    pub queue: i64,
    /// DLQ depth.
    pub dlq: i64,
    /// Active multipart uploads per backend.
    pub multipart: BTreeMap<String, i64>,
    /// Every bucket, settings and `created_at` included.
    pub buckets: Vec<Bucket>,
}

/// Takes a [`Snapshot`].
pub async fn snapshot(store: &Db) -> Snapshot {
    let stats = store.get_quota_stats().await.expect("get_quota_stats");
    let mut copies = BTreeMap::new();
    for b in stats.keys() {
        let rows = store
            .list_objects_by_backend_key_asc(b, "", 1000)
            .await
            .expect("list_objects_by_backend_key_asc");
        let mut full = Vec::new();
        for r in rows {
            full.push(copy_on(store, &r.object_key, b).await);
        }
        copies.insert(b.clone(), full);
    }
    Snapshot {
        quotas: stats
            .into_iter()
            .map(|(b, s)| (b, (s.bytes_used, s.bytes_limit, s.orphan_bytes)))
            .collect(),
        copies,
        pending: store.count_pending().await.expect("count_pending"),
        queue: store.cleanup_queue_depth().await.expect("queue depth"),
        dlq: store.cleanup_dlq_depth().await.expect("dlq depth"),
        multipart: store
            .get_active_multipart_counts()
            .await
            .expect("multipart counts"),
        buckets: store.list_buckets().await.expect("list_buckets"),
    }
}

/// Keys sorted as UTF-8 bytes (Rust's `str` order is byte order).
pub fn byte_sorted<S: AsRef<str>>(keys: &[S]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
    v.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    v.dedup();
    v
}

/// `(backend, size)` of removed copies, sorted: what a test compares (the cleanup claims
/// carry engine ids and times).
pub fn bs(v: &[DeletedCopy]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = v
        .iter()
        .map(|d| (d.backend_name.clone(), d.size_bytes))
        .collect();
    out.sort();
    out
}

/// Claims every due row (stale claims included) as `tester` and returns the claim on `id`.
pub async fn claim_of(store: &Db, id: i64) -> CleanupClaim {
    store
        .claim_pending_cleanups(
            10_000,
            "tester",
            // Every claim counts as stale: made before now.
            std::time::Duration::ZERO,
        )
        .await
        .expect("claim_pending_cleanups")
        .into_iter()
        .find(|i| i.id == id)
        .and_then(|i| i.claim())
        .unwrap_or_else(|| panic!("row {id} not claimable"))
}

/// A claim nobody holds, for stale-claimant checks.
pub fn stale_claim(id: i64) -> CleanupClaim {
    CleanupClaim {
        id,
        claimed_by: "nobody".into(),
        claimed_at: Timestamp::from_micros(1),
    }
}

/// Enqueues a cleanup row and counts its bytes as orphaned (for bytes the ledger never held).
/// Returns nothing: ids come from `get_due_cleanups` or claims.
pub async fn orphan_bytes_enqueued(store: &Db, backend: &str, key: &str, size: i64) {
    store
        .enqueue_cleanup(backend, key, "test", size)
        .await
        .expect("enqueue_cleanup");
    store
        .increment_orphan_bytes(backend, size)
        .await
        .expect("increment_orphan_bytes");
}

/// Every orphan went through the queue: per backend, `orphan_bytes` equals the bytes of its
/// cleanup-queue rows (any attempt count) plus its DLQ rows.
pub async fn assert_orphans_accounted(store: &Db) {
    let stats = store.get_quota_stats().await.expect("get_quota_stats");
    let queued = store
        .cleanup_bytes_by_backend()
        .await
        .expect("cleanup_bytes_by_backend");
    for (backend, stat) in &stats {
        let (q, d) = queued.get(backend).copied().unwrap_or((0, 0));
        assert_eq!(
            stat.orphan_bytes,
            q + d,
            "orphan bytes of {backend} != queue {q} + DLQ {d}"
        );
    }
    for backend in queued.keys() {
        assert!(
            stats.contains_key(backend),
            "queue rows for unknown {backend}"
        );
    }
}
