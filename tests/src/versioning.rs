//! Versioning (DESIGN decision 25): the bucket state, versioned commits and deletes, version
//! reads and ListObjectVersions, with exact rows and quotas before and after each step.

use s3o_store::*;

use crate::support::*;

const BKT: &str = "vers";

fn k(name: &str) -> String {
    format!("{BKT}/{name}")
}

/// A form whose ETag names the version, so reads can tell versions apart.
fn form(etag: &str) -> StoredForm {
    StoredForm {
        etag: etag.to_owned(),
        storage_key: format!("path-{etag}"),
        ..StoredForm::default()
    }
}

async fn bucket(store: &Db, state: Versioning) {
    backends(store, &[(A, GIB), (B, GIB)]).await;
    store.create_bucket(&BucketSpec::new(BKT)).await.unwrap();
    if state.is_versioned() {
        store.set_bucket_versioning(BKT, state).await.unwrap();
    }
}

async fn commit(store: &Db, key: &str, backend: &str, size: i64, etag: &str) -> Committed {
    store
        .commit_object_in_bucket(
            BKT,
            &k(key),
            backend,
            size,
            &form(etag),
            None,
            &WritePrecondition::default(),
        )
        .await
        .unwrap()
}

async fn delete(store: &Db, key: &str, version: Option<&str>) -> DeleteOutcome {
    store
        .delete_object_in_bucket(BKT, &k(key), version)
        .await
        .unwrap()
}

/// `(version_id, delete_marker, is_latest, size, etag)` of every version of `key`, newest
/// first, as ListObjectVersions reports them.
async fn versions(store: &Db, key: &str) -> Vec<(String, bool, bool, i64, String)> {
    let page = store
        .list_object_versions(&k(key), "", "", "", 1000)
        .await
        .unwrap();
    page.versions
        .into_iter()
        .filter(|v| v.object_key == k(key))
        .map(|v| {
            (
                v.version_id,
                v.delete_marker,
                v.is_latest,
                v.size_bytes,
                v.etag,
            )
        })
        .collect()
}

/// The ledger invariants with versions: `bytes_used` equals Σ size of every version's copies,
/// and every orphaned byte is queued.
async fn invariants(store: &Db) {
    assert_ledger(store).await;
    assert_orphans_accounted(store).await;
}

/// Enabled and Suspended round-trip; a bucket never returns to unversioned; unknown buckets
/// are `BucketNotFound`.
pub async fn versioning_state_round_trip(store: Db) {
    bucket(&store, Versioning::Unversioned).await;
    assert_eq!(
        store.get_bucket_versioning(BKT).await.unwrap(),
        Versioning::Unversioned
    );
    store
        .set_bucket_versioning(BKT, Versioning::Enabled)
        .await
        .unwrap();
    assert_eq!(
        store.get_bucket_versioning(BKT).await.unwrap(),
        Versioning::Enabled
    );
    store
        .set_bucket_versioning(BKT, Versioning::Suspended)
        .await
        .unwrap();
    assert_invalid(
        store
            .set_bucket_versioning(BKT, Versioning::Unversioned)
            .await,
        "versioning state",
    );
    assert_eq!(
        store.get_bucket_versioning(BKT).await.unwrap(),
        Versioning::Suspended
    );
    assert!(matches!(
        store.get_bucket_versioning("nope").await,
        Err(StoreError::BucketNotFound { .. })
    ));
    assert!(matches!(
        store
            .set_bucket_versioning("nope", Versioning::Enabled)
            .await,
        Err(StoreError::BucketNotFound { .. })
    ));
}

/// Unversioned buckets keep the original contract through the versioned entry points: an
/// overwrite displaces the previous copy into the queue, a delete queues every copy, no
/// version id is reported and no version row is kept.
pub async fn unversioned_bucket_keeps_original_contract(store: Db) {
    bucket(&store, Versioning::Unversioned).await;
    let c1 = commit(&store, "o", A, 10, "e1").await;
    assert_eq!((c1.version_id, c1.displaced.len()), (None, 0));
    let c2 = commit(&store, "o", B, 20, "e2").await;
    assert_eq!(c2.version_id, None);
    assert_eq!(bs(&c2.displaced), [(A.to_owned(), 10)]);
    assert_eq!(quota(&store, A).await, (0, GIB, 10));
    assert_eq!(used(&store, B).await, 20);
    assert_eq!(versions(&store, "o").await.len(), 1, "only the current one");
    let d = delete(&store, "o", None).await;
    assert_eq!((d.version_id, d.delete_marker), (None, false));
    assert_eq!(bs(&d.removed), [(B.to_owned(), 20)]);
    assert_eq!(quota(&store, B).await, (0, GIB, 20));
    assert!(versions(&store, "o").await.is_empty());
    // Deleting an absent key changes nothing.
    let again = delete(&store, "o", None).await;
    assert!(again.removed.is_empty() && again.version_id.is_none());
    invariants(&store).await;
}

/// With versioning enabled an overwrite keeps the previous version, its bytes still charged;
/// each version reads back by id with its own copies.
pub async fn enabled_overwrite_keeps_previous_version(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    let v1 = commit(&store, "o", A, 10, "e1").await;
    let v2 = commit(&store, "o", B, 20, "e2").await;
    let (id1, id2) = (v1.version_id.unwrap(), v2.version_id.unwrap());
    assert_ne!(id1, id2);
    assert!(v2.displaced.is_empty(), "nothing leaves the ledger");
    assert_eq!(quota(&store, A).await, (10, GIB, 0));
    assert_eq!(quota(&store, B).await, (20, GIB, 0));
    assert_eq!(placement(&store, &k("o")).await, [(B.to_owned(), 20)]);
    assert_eq!(
        versions(&store, "o").await,
        [
            (id2.clone(), false, true, 20, "e2".to_owned()),
            (id1.clone(), false, false, 10, "e1".to_owned()),
        ]
    );
    let old = store.get_object_version(&k("o"), &id1).await.unwrap();
    assert!(!old.is_latest && !old.delete_marker);
    assert_eq!(old.copies.len(), 1);
    assert_eq!(old.copies[0].backend_name, A);
    assert_eq!(old.copies[0].form.storage_key, "path-e1");
    let cur = store.get_object_version(&k("o"), &id2).await.unwrap();
    assert!(cur.is_latest);
    assert!(matches!(
        store.get_object_version(&k("o"), "nope").await,
        Err(StoreError::VersionNotFound { .. })
    ));
    // The quota reconciliation counts noncurrent bytes too: nothing to correct.
    store.reconcile_usage().await.unwrap();
    assert_eq!((used(&store, A).await, used(&store, B).await), (10, 20));
    invariants(&store).await;
}

/// A delete without a version id writes a delete marker (bytes stay), deleting the marker by
/// id brings the object back.
pub async fn delete_marker_and_undelete(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    let d = delete(&store, "o", None).await;
    assert!(d.delete_marker && d.removed.is_empty());
    let marker = d.version_id.unwrap();
    assert!(
        copies(&store, &k("o")).await.is_empty(),
        "the key reads as absent"
    );
    assert_eq!(quota(&store, A).await, (10, GIB, 0));
    let latest = store.get_latest_version(&k("o")).await.unwrap().unwrap();
    assert!(latest.delete_marker && latest.is_latest);
    assert_eq!(latest.version_id, marker);
    assert_eq!(
        versions(&store, "o").await,
        [
            (marker.clone(), true, true, 0, String::new()),
            (v1.clone(), false, false, 10, "e1".to_owned()),
        ]
    );
    // The deleted key hides from plain listings but holds its bucket.
    let page = store
        .list_objects(&format!("{BKT}/"), "", 100)
        .await
        .unwrap();
    assert!(page.objects.is_empty());
    assert!(matches!(
        store.delete_bucket(BKT).await,
        Err(StoreError::BucketNotEmpty { .. })
    ));
    // Undelete.
    let u = delete(&store, "o", Some(&marker)).await;
    assert!(u.delete_marker && u.removed.is_empty());
    assert_eq!(placement(&store, &k("o")).await, [(A.to_owned(), 10)]);
    assert_eq!(
        versions(&store, "o").await,
        [(v1.clone(), false, true, 10, "e1".to_owned())]
    );
    let cur = store.get_latest_version(&k("o")).await.unwrap().unwrap();
    assert_eq!(cur.version_id, v1);
    invariants(&store).await;
}

/// Deleting a noncurrent version queues its bytes in the same transaction; deleting the
/// current one promotes the newest noncurrent version.
pub async fn delete_version_queues_bytes_and_promotes(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    let v2 = commit(&store, "o", B, 20, "e2").await.version_id.unwrap();
    let v3 = commit(&store, "o", A, 30, "e3").await.version_id.unwrap();
    assert_eq!((used(&store, A).await, used(&store, B).await), (40, 20));
    // Noncurrent v1: its bytes leave.
    let d = delete(&store, "o", Some(&v1)).await;
    assert_eq!(bs(&d.removed), [(A.to_owned(), 10)]);
    assert!(!d.delete_marker);
    assert_eq!(quota(&store, A).await, (30, GIB, 10));
    assert_eq!(d.removed[0].storage_key, "path-e1");
    // Current v3: v2 becomes current with its copy and form.
    let d = delete(&store, "o", Some(&v3)).await;
    assert_eq!(bs(&d.removed), [(A.to_owned(), 30)]);
    assert_eq!(quota(&store, A).await, (0, GIB, 40));
    assert_eq!(placement(&store, &k("o")).await, [(B.to_owned(), 20)]);
    assert_eq!(copy_on(&store, &k("o"), B).await.form.etag, "e2");
    assert_eq!(
        versions(&store, "o").await,
        [(v2.clone(), false, true, 20, "e2".to_owned())]
    );
    // An unknown version id changes nothing.
    let before = snapshot(&store).await;
    let none = delete(&store, "o", Some("no-such-version")).await;
    assert!(none.removed.is_empty());
    assert_eq!(snapshot(&store).await, before);
    // The last version: the key is gone and its bytes queued.
    let d = delete(&store, "o", Some(&v2)).await;
    assert_eq!(bs(&d.removed), [(B.to_owned(), 20)]);
    assert!(versions(&store, "o").await.is_empty());
    assert_eq!(quota(&store, B).await, (0, GIB, 20));
    store.delete_bucket(BKT).await.unwrap();
    invariants(&store).await;
}

/// Suspended buckets write the `null` version, replacing any earlier `null` version (current
/// or noncurrent, its bytes queued) and keeping versions with ids.
pub async fn suspended_replaces_the_null_version(store: Db) {
    bucket(&store, Versioning::Unversioned).await;
    // Written before versioning: the null version.
    let c = commit(&store, "o", A, 5, "e0").await;
    assert_eq!(c.version_id, None);
    store
        .set_bucket_versioning(BKT, Versioning::Enabled)
        .await
        .unwrap();
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    assert_eq!(
        versions(&store, "o").await,
        [
            (v1.clone(), false, true, 10, "e1".to_owned()),
            (NULL_VERSION_ID.to_owned(), false, false, 5, "e0".to_owned()),
        ]
    );
    store
        .set_bucket_versioning(BKT, Versioning::Suspended)
        .await
        .unwrap();
    let s1 = commit(&store, "o", B, 20, "s1").await;
    assert_eq!(s1.version_id.as_deref(), Some(NULL_VERSION_ID));
    // The old null version (5 bytes on A) is replaced; v1 is kept.
    assert_eq!(bs(&s1.displaced), [(A.to_owned(), 5)]);
    assert_eq!(quota(&store, A).await, (10, GIB, 5));
    assert_eq!(
        versions(&store, "o").await,
        [
            (NULL_VERSION_ID.to_owned(), false, true, 20, "s1".to_owned()),
            (v1.clone(), false, false, 10, "e1".to_owned()),
        ]
    );
    // Overwriting the current null version displaces it, as an unversioned overwrite.
    let s2 = commit(&store, "o", B, 7, "s2").await;
    assert_eq!(bs(&s2.displaced), [(B.to_owned(), 20)]);
    assert_eq!(quota(&store, B).await, (7, GIB, 20));
    // A suspended delete writes the null marker, replacing the null version.
    let d = delete(&store, "o", None).await;
    assert_eq!(d.version_id.as_deref(), Some(NULL_VERSION_ID));
    assert!(d.delete_marker);
    assert_eq!(bs(&d.removed), [(B.to_owned(), 7)]);
    assert_eq!(
        versions(&store, "o").await,
        [
            (NULL_VERSION_ID.to_owned(), true, true, 0, String::new()),
            (v1.clone(), false, false, 10, "e1".to_owned()),
        ]
    );
    // Resuming: a new version with an id; the null marker stays noncurrent.
    store
        .set_bucket_versioning(BKT, Versioning::Enabled)
        .await
        .unwrap();
    let v2 = commit(&store, "o", A, 3, "e2").await.version_id.unwrap();
    let listed: Vec<String> = versions(&store, "o")
        .await
        .into_iter()
        .map(|v| v.0)
        .collect();
    assert_eq!(listed, [v2, NULL_VERSION_ID.to_owned(), v1]);
    invariants(&store).await;
}

/// ListObjectVersions: key order, newest first, pagination by key and version-id markers
/// (never losing or repeating an entry), prefix and delimiter.
pub async fn list_versions_paginates_in_s3_order(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    let mut expected = Vec::new();
    for (key, n) in [("a", 3), ("b/x", 2), ("b/y", 1), ("c", 2)] {
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(
                commit(&store, key, A, 1, &format!("{key}{i}"))
                    .await
                    .version_id
                    .unwrap(),
            );
        }
        ids.reverse();
        expected.extend(ids.into_iter().map(|id| (k(key), id)));
    }
    let marker = delete(&store, "c", None).await.version_id.unwrap();
    expected.insert(6, (k("c"), marker));
    // Every page size walks the same sequence.
    for page_size in [1, 2, 3, 1000] {
        let (mut km, mut vm) = (String::new(), String::new());
        let mut seen = Vec::new();
        loop {
            let page = store
                .list_object_versions(&format!("{BKT}/"), "", &km, &vm, page_size)
                .await
                .unwrap();
            assert!(page.versions.len() <= page_size as usize);
            seen.extend(
                page.versions
                    .iter()
                    .map(|v| (v.object_key.clone(), v.version_id.clone())),
            );
            if !page.is_truncated {
                break;
            }
            (km, vm) = (page.next_key_marker, page.next_version_id_marker);
        }
        assert_eq!(seen, expected, "page size {page_size}");
    }
    // is_latest: the first entry of each key only.
    let all = store
        .list_object_versions(&format!("{BKT}/"), "", "", "", 1000)
        .await
        .unwrap();
    let latest: Vec<bool> = all.versions.iter().map(|v| v.is_latest).collect();
    assert_eq!(
        latest,
        [true, false, false, true, false, true, true, false, false]
    );
    // A key marker alone resumes after every version of that key.
    let after_a = store
        .list_object_versions(&format!("{BKT}/"), "", &k("a"), "", 1000)
        .await
        .unwrap();
    assert_eq!(after_a.versions[0].object_key, k("b/x"));
    // Delimiter: b/ rolls up into one common prefix counted once.
    let d = store
        .list_object_versions(&format!("{BKT}/"), "/", "", "", 4)
        .await
        .unwrap();
    assert_eq!(d.common_prefixes, [k("b/")]);
    assert_eq!(
        d.versions
            .iter()
            .map(|v| v.object_key.as_str())
            .collect::<Vec<_>>(),
        [k("a"), k("a"), k("a")]
    );
    assert!(!d.is_truncated || d.versions.len() + d.common_prefixes.len() == 4);
    let rest = store
        .list_object_versions(&format!("{BKT}/"), "/", &k("b/"), "", 1000)
        .await
        .unwrap();
    assert!(rest.common_prefixes.is_empty());
    assert_eq!(rest.versions.len(), 3, "c's marker and two versions");
    // Prefix.
    let b = store
        .list_object_versions(&k("b/"), "", "", "", 1000)
        .await
        .unwrap();
    assert_eq!(b.versions.len(), 3);
    assert!(!b.is_truncated);
    invariants(&store).await;
}

/// Writing into a versioned bucket charges each new version to its backend's quota; a
/// version that does not fit changes nothing.
pub async fn versioned_commit_over_quota_changes_nothing(store: Db) {
    backends(&store, &[(A, 25)]).await;
    store.create_bucket(&BucketSpec::new(BKT)).await.unwrap();
    store
        .set_bucket_versioning(BKT, Versioning::Enabled)
        .await
        .unwrap();
    commit(&store, "o", A, 20, "e1").await;
    let before = snapshot(&store).await;
    let r = store
        .commit_object_in_bucket(
            BKT,
            &k("o"),
            A,
            10,
            &form("e2"),
            None,
            &WritePrecondition::default(),
        )
        .await;
    assert_no_space(r);
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(versions(&store, "o").await.len(), 1);
    invariants(&store).await;
}

/// One version as the reference model holds it: id, delete marker, backend and size.
type ModelVersion = (String, bool, &'static str, i64);

/// Random puts, deletes with and without version ids and state changes, in versioned and
/// unversioned buckets, against a plain reference model (versions per key, newest first).
/// After every step: the listing equals the model (order, ids, markers, `IsLatest`), each key's
/// current copy is the model's newest data version, `bytes_used` equals the model's Σ size of
/// every version on each backend, and the ledger invariants hold.
pub async fn random_versioned_ops_match_model(store: Db) {
    bucket(&store, Versioning::Unversioned).await;
    let mut rng = fastrand::Rng::with_seed(25);
    let mut state = Versioning::Unversioned;
    let mut model: std::collections::BTreeMap<String, Vec<ModelVersion>> = Default::default();
    let keys = ["k1", "k2", "k3"];
    for step in 0..120 {
        let key = keys[rng.usize(..keys.len())];
        let list = model.entry(k(key)).or_default();
        match rng.u8(..10) {
            0 => {
                state = if rng.bool() {
                    Versioning::Enabled
                } else {
                    Versioning::Suspended
                };
                store.set_bucket_versioning(BKT, state).await.unwrap();
            }
            1..=4 => {
                let backend = if rng.bool() { A } else { B };
                let size = rng.i64(0..100);
                let c = commit(&store, key, backend, size, &format!("s{step}")).await;
                match state {
                    Versioning::Unversioned => {
                        assert_eq!(c.version_id, None);
                        list.clear();
                        list.push((NULL_VERSION_ID.to_owned(), false, backend, size));
                    }
                    Versioning::Enabled => {
                        list.insert(0, (c.version_id.unwrap(), false, backend, size));
                    }
                    Versioning::Suspended => {
                        assert_eq!(c.version_id.as_deref(), Some(NULL_VERSION_ID));
                        list.retain(|v| v.0 != NULL_VERSION_ID);
                        list.insert(0, (NULL_VERSION_ID.to_owned(), false, backend, size));
                    }
                }
            }
            5..=6 => {
                let d = delete(&store, key, None).await;
                match state {
                    Versioning::Unversioned => list.clear(),
                    Versioning::Enabled => list.insert(0, (d.version_id.unwrap(), true, "", 0)),
                    Versioning::Suspended => {
                        list.retain(|v| v.0 != NULL_VERSION_ID);
                        list.insert(0, (NULL_VERSION_ID.to_owned(), true, "", 0));
                    }
                }
            }
            _ => {
                // Delete a version by id: an existing one mostly, sometimes an unknown id.
                let id = if list.is_empty() || rng.u8(..5) == 0 {
                    "unknown-version".to_owned()
                } else {
                    list[rng.usize(..list.len())].0.clone()
                };
                let d = delete(&store, key, Some(&id)).await;
                let gone: i64 = list.iter().filter(|v| v.0 == id).map(|v| v.3).sum();
                assert_eq!(
                    d.removed.iter().map(|c| c.size_bytes).sum::<i64>(),
                    gone,
                    "step {step}: bytes of the deleted version"
                );
                list.retain(|v| v.0 != id);
            }
        }
        // The listing is the model.
        let page = store
            .list_object_versions(&format!("{BKT}/"), "", "", "", 1000)
            .await
            .unwrap();
        let listed: Vec<(String, String, bool, bool)> = page
            .versions
            .iter()
            .map(|v| {
                (
                    v.object_key.clone(),
                    v.version_id.clone(),
                    v.delete_marker,
                    v.is_latest,
                )
            })
            .collect();
        let expected: Vec<(String, String, bool, bool)> = model
            .iter()
            .flat_map(|(key, vs)| {
                vs.iter()
                    .enumerate()
                    .map(move |(i, v)| (key.clone(), v.0.clone(), v.1, i == 0))
            })
            .collect();
        assert_eq!(listed, expected, "step {step}");
        // The current copy is the newest version when it holds data.
        for (key, vs) in &model {
            let want: Vec<(String, i64)> = match vs.first() {
                Some((_, false, b, size)) => vec![((*b).to_owned(), *size)],
                _ => Vec::new(),
            };
            assert_eq!(placement(&store, key).await, want, "step {step}: {key}");
        }
        // Every version's bytes are charged.
        for backend in [A, B] {
            let bytes: i64 = model
                .values()
                .flatten()
                .filter(|v| !v.1 && v.2 == backend)
                .map(|v| v.3)
                .sum();
            assert_eq!(used(&store, backend).await, bytes, "step {step}: {backend}");
        }
        invariants(&store).await;
    }
}

/// `commit_announced_version` against a bucket in `state`, announcing `version_id`.
async fn commit_announced(
    store: &Db,
    key: &str,
    size: i64,
    etag: &str,
    version_id: Option<&str>,
) -> Result<Committed> {
    store
        .commit_announced_version(
            BKT,
            &k(key),
            A,
            size,
            &form(etag),
            None,
            &WritePrecondition::default(),
            version_id,
        )
        .await
}

/// A commit whose version id was announced before it takes exactly that id (enabled), the
/// `null` version (suspended) or none (unversioned); when the bucket's state no longer gives
/// the announced id it is refused with `VersioningChanged` and nothing changes.
pub async fn announced_version_commits_or_changes_nothing(store: Db) {
    bucket(&store, Versioning::Unversioned).await;
    let c = commit_announced(&store, "o", 10, "e1", None).await.unwrap();
    assert_eq!(c.version_id, None);
    let chosen = new_version_id();
    // Unversioned, an announced version id is refused.
    let before = snapshot(&store).await;
    let r = commit_announced(&store, "o", 20, "e2", Some(&chosen)).await;
    assert!(
        matches!(r, Err(StoreError::VersioningChanged { ref bucket }) if bucket == BKT),
        "{r:?}"
    );
    assert_eq!(snapshot(&store).await, before);

    store
        .set_bucket_versioning(BKT, Versioning::Enabled)
        .await
        .unwrap();
    let c = commit_announced(&store, "o", 20, "e2", Some(&chosen))
        .await
        .unwrap();
    assert_eq!(c.version_id.as_deref(), Some(chosen.as_str()));
    assert!(c.displaced.is_empty());
    assert_eq!(
        versions(&store, "o").await,
        [
            (chosen.clone(), false, true, 20, "e2".to_owned()),
            ("null".to_owned(), false, false, 10, "e1".to_owned()),
        ]
    );
    assert_eq!(quota(&store, A).await, (30, GIB, 0));
    // Enabled: announcing none, or the null version, is refused.
    let before = snapshot(&store).await;
    for announced in [None, Some("null")] {
        let r = commit_announced(&store, "o", 5, "e3", announced).await;
        assert!(
            matches!(r, Err(StoreError::VersioningChanged { .. })),
            "{announced:?}: {r:?}"
        );
    }
    assert_eq!(snapshot(&store).await, before);

    store
        .set_bucket_versioning(BKT, Versioning::Suspended)
        .await
        .unwrap();
    let r = commit_announced(&store, "o", 5, "e3", Some(&new_version_id())).await;
    assert!(matches!(r, Err(StoreError::VersioningChanged { .. })));
    assert_eq!(snapshot(&store).await, before);
    // Suspended: the null version, replacing the noncurrent null one (its bytes queued).
    let c = commit_announced(&store, "o", 5, "e3", Some("null"))
        .await
        .unwrap();
    assert_eq!(c.version_id.as_deref(), Some("null"));
    assert_eq!(c.displaced.len(), 1);
    assert_eq!(c.displaced[0].size_bytes, 10);
    assert_eq!(
        versions(&store, "o").await,
        [
            ("null".to_owned(), false, true, 5, "e3".to_owned()),
            (chosen, false, false, 20, "e2".to_owned()),
        ]
    );
    assert_invalid(
        commit_announced(&store, "o", 5, "e4", Some("")).await,
        "version id",
    );
    invariants(&store).await;
}

/// The tags of one version, read back by id.
async fn version_tags(store: &Db, key: &str, version_id: &str) -> Vec<(String, String)> {
    let v = store.get_object_version(&k(key), version_id).await.unwrap();
    v.copies
        .iter()
        .map(|c| c.form.tags.clone().into_iter().collect::<Vec<_>>())
        .reduce(|a, b| {
            assert_eq!(a, b, "every copy of a version carries its tags");
            a
        })
        .unwrap_or_default()
}

/// `set_version_tags` changes the tags of the version named (current or noncurrent, on every
/// copy) and no other, answers its id, and refuses an unknown version or a delete marker
/// (`VersionNotFound`) or a key without a current version (`ObjectNotFound`) changing nothing.
/// Quotas never move.
pub async fn version_tags_change_one_version(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    let id1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    // Two copies of the first version: tags change on both.
    assert!(matches!(
        replicate(&store, &k("o"), B, A).await.unwrap(),
        ReplicaOutcome::Recorded { .. }
    ));
    let id2 = commit(&store, "o", B, 20, "e2").await.version_id.unwrap();
    let tags = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let quotas = (quota(&store, A).await, quota(&store, B).await);
    // The current version, by no id and by its own id.
    let id = store
        .set_version_tags(&k("o"), None, &tags(&[("cur", "1")]))
        .await
        .unwrap();
    assert_eq!(id, id2);
    let id = store
        .set_version_tags(&k("o"), Some(&id2), &tags(&[("cur", "2")]))
        .await
        .unwrap();
    assert_eq!(id, id2);
    // A noncurrent version keeps its own.
    let id = store
        .set_version_tags(&k("o"), Some(&id1), &tags(&[("old", "1")]))
        .await
        .unwrap();
    assert_eq!(id, id1);
    assert_eq!(
        version_tags(&store, "o", &id1).await,
        [("old".to_owned(), "1".to_owned())]
    );
    assert_eq!(
        version_tags(&store, "o", &id2).await,
        [("cur".to_owned(), "2".to_owned())]
    );
    // Cleared alone.
    store
        .set_version_tags(&k("o"), Some(&id1), &tags(&[]))
        .await
        .unwrap();
    assert!(version_tags(&store, "o", &id1).await.is_empty());
    assert_eq!(
        version_tags(&store, "o", &id2).await,
        [("cur".to_owned(), "2".to_owned())]
    );
    assert_eq!((quota(&store, A).await, quota(&store, B).await), quotas);

    // Refusals change nothing.
    let marker = delete(&store, "o", None).await.version_id.unwrap();
    let before = snapshot(&store).await;
    assert!(matches!(
        store
            .set_version_tags(&k("o"), Some("nope"), &tags(&[("x", "y")]))
            .await,
        Err(StoreError::VersionNotFound { .. })
    ));
    assert!(matches!(
        store
            .set_version_tags(&k("o"), Some(&marker), &tags(&[("x", "y")]))
            .await,
        Err(StoreError::VersionNotFound { .. })
    ));
    assert!(matches!(
        store
            .set_version_tags(&k("o"), None, &tags(&[("x", "y")]))
            .await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert_invalid(
        store
            .set_version_tags(&k("o"), Some(""), &tags(&[("x", "y")]))
            .await,
        "version id",
    );
    assert_eq!(snapshot(&store).await, before);
    // The noncurrent (formerly current) version is tagged by id behind the marker.
    store
        .set_version_tags(&k("o"), Some(&id2), &tags(&[("kept", "1")]))
        .await
        .unwrap();
    assert_eq!(
        version_tags(&store, "o", &id2).await,
        [("kept".to_owned(), "1".to_owned())]
    );
    invariants(&store).await;
}

/// `(key, version_id, size, path)` of every noncurrent copy on `backend`, paged two at a time
/// through `list_noncurrent_copies_by_backend` (so the resume bound is exercised).
async fn noncurrent_on(store: &Db, backend: &str) -> Vec<(String, String, i64, String)> {
    let (mut after_key, mut after_vid) = (String::new(), String::new());
    let mut out = Vec::new();
    loop {
        let page = store
            .list_noncurrent_copies_by_backend(backend, &after_key, &after_vid, 2)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        after_key = last.location.object_key.clone();
        after_vid = last.version_id.clone();
        for c in page {
            assert_eq!(c.location.backend_name, backend);
            out.push((
                c.location.object_key.clone(),
                c.version_id,
                c.location.size_bytes,
                c.location.form.storage_key,
            ));
        }
    }
}

/// Every noncurrent copy of both backends, for "nothing changed" beside [`snapshot`].
async fn all_noncurrent(store: &Db) -> [Vec<(String, String, i64, String)>; 2] {
    [noncurrent_on(store, A).await, noncurrent_on(store, B).await]
}

/// Moving a noncurrent version's copy: the row travels whole to the target, the quota moves
/// exactly (the source's bytes queued under this store's claim), the version reads from its
/// new backend, and the listing of noncurrent copies by backend pages in (key, version) order.
pub async fn move_noncurrent_copy_moves_quota_exactly(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    let v2 = commit(&store, "o", A, 20, "e2").await.version_id.unwrap();
    let marker = delete(&store, "o", None).await.version_id.unwrap();
    let w1 = commit(&store, "p", A, 5, "f1").await.version_id.unwrap();
    commit(&store, "p", B, 7, "f2").await;
    assert_eq!(quota(&store, A).await, (35, GIB, 0));
    assert_eq!(quota(&store, B).await, (7, GIB, 0));
    let mut expected_a = vec![
        (k("o"), v1.clone(), 10, "path-e1".to_owned()),
        (k("o"), v2.clone(), 20, "path-e2".to_owned()),
        (k("p"), w1.clone(), 5, "path-f1".to_owned()),
    ];
    expected_a.sort();
    assert_eq!(noncurrent_on(&store, A).await, expected_a);
    assert!(noncurrent_on(&store, B).await.is_empty());
    // Both ≤ 0 limits select nothing.
    assert!(
        store
            .list_noncurrent_copies_by_backend(A, "", "", 0)
            .await
            .unwrap()
            .is_empty()
    );

    let out = store
        .move_version_location(&k("o"), &v1, A, B, "path-e1")
        .await
        .unwrap();
    let MoveOutcome::Moved { bytes, source } = out else {
        panic!("expected Moved, got {out:?}");
    };
    assert_eq!(bytes, 10);
    assert_eq!(
        (
            source.backend_name.as_str(),
            source.size_bytes,
            source.storage_key.as_str()
        ),
        (A, 10, "path-e1")
    );
    assert_eq!(quota(&store, A).await, (25, GIB, 10));
    assert_eq!(quota(&store, B).await, (17, GIB, 0));
    let moved = store.get_object_version(&k("o"), &v1).await.unwrap();
    assert_eq!(moved.copies.len(), 1);
    assert_eq!(moved.copies[0].backend_name, B);
    assert_eq!(moved.copies[0].form.storage_key, "path-e1");
    assert_eq!(moved.copies[0].form.etag, "e1");
    assert!(moved.copies[0].last_scrubbed_at.is_none());
    assert!(!moved.is_latest);
    // The version order is unchanged: the marker still hides the key.
    assert_eq!(
        versions(&store, "o").await,
        [
            (marker.clone(), true, true, 0, String::new()),
            (v2.clone(), false, false, 20, "e2".to_owned()),
            (v1.clone(), false, false, 10, "e1".to_owned()),
        ]
    );
    assert_eq!(
        noncurrent_on(&store, B).await,
        [(k("o"), v1.clone(), 10, "path-e1".to_owned())]
    );
    // Completing the source's claim frees the orphaned bytes.
    assert_eq!(
        store.complete_cleanup_item(&source.cleanup).await.unwrap(),
        CleanupOutcome::Completed
    );
    assert_eq!(quota(&store, A).await, (25, GIB, 0));
    invariants(&store).await;
}

/// Every refusal of `move_version_location` changes nothing: a version gone from the source
/// (moved already, deleted, a delete marker, current again), another path, a copy already on
/// the target, a target without room, an unknown target, the same backend twice.
pub async fn move_noncurrent_copy_refusals_change_nothing(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    backends(&store, &[(A, GIB), (B, GIB), (C, 15)]).await;
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    // v2 has copies on A and B.
    let v2 = commit(&store, "o", A, 20, "e2").await.version_id.unwrap();
    assert!(matches!(
        replicate(&store, &k("o"), B, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 20 }
    ));
    let v3 = commit(&store, "o", A, 30, "e3").await.version_id.unwrap();
    let marker = delete(&store, "o", None).await.version_id.unwrap();
    let before = (snapshot(&store).await, all_noncurrent(&store).await);

    let mv = |v: &str, from: &'static str, to: &'static str, path: &str| {
        let (s, v, path) = (store.clone(), v.to_owned(), path.to_owned());
        async move { s.move_version_location(&k("o"), &v, from, to, &path).await }
    };
    assert_eq!(
        mv(&v1, B, C, "path-e1").await.unwrap(),
        MoveOutcome::SourceGone
    );
    assert_eq!(
        mv(&marker, A, B, "o").await.unwrap(),
        MoveOutcome::SourceGone
    );
    assert_eq!(
        mv("nope", A, B, "x").await.unwrap(),
        MoveOutcome::SourceGone
    );
    assert_eq!(
        mv(&v1, A, B, "path-other").await.unwrap(),
        MoveOutcome::VersionChanged {
            current_storage_key: "path-e1".to_owned()
        }
    );
    assert_eq!(
        mv(&v2, A, B, "path-e2").await.unwrap(),
        MoveOutcome::TargetHasCopy
    );
    // C admits 15 bytes: v2's 20 do not fit.
    assert_no_space(mv(&v2, A, C, "path-e2").await);
    assert_unknown_backend(mv(&v1, A, UNKNOWN, "path-e1").await, UNKNOWN);
    assert_invalid(mv(&v1, A, A, "path-e1").await, "move target");
    assert_invalid(
        store
            .move_version_location(&k("o"), "", A, B, "path-e1")
            .await,
        "version id",
    );
    assert_eq!(
        (snapshot(&store).await, all_noncurrent(&store).await),
        before,
        "refusals change nothing"
    );

    // Undeleting makes v3 current: it is no noncurrent copy any more.
    delete(&store, "o", Some(&marker)).await;
    assert_eq!(
        mv(&v3, A, B, "path-e3").await.unwrap(),
        MoveOutcome::SourceGone
    );
    // A deleted version is gone too.
    delete(&store, "o", Some(&v1)).await;
    assert_eq!(
        mv(&v1, A, B, "path-e1").await.unwrap(),
        MoveOutcome::SourceGone
    );
    invariants(&store).await;
}

/// A drain copies a noncurrent version's bytes under a write intent on the target; once the
/// move names that path, abandoning the intent keeps the bytes (they are the version's), while
/// an intent whose move was refused has its bytes queued.
pub async fn abandoned_copy_intent_keeps_moved_noncurrent_bytes(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    commit(&store, "o", A, 20, "e2").await;
    let intent = |id: &str, path: &str| PendingObject {
        intent_id: id.to_owned(),
        object_key: k("o"),
        backend_name: B.to_owned(),
        size_bytes: 10,
        form: StoredForm {
            storage_key: path.to_owned(),
            ..StoredForm::default()
        },
        created_at: Timestamp::ZERO,
    };
    let moved = intent("i-moved", "path-e1");
    let stray = intent("i-stray", "path-stray");
    store.insert_pending(&moved).await.unwrap();
    store.insert_pending(&stray).await.unwrap();
    let out = store
        .move_version_location(&k("o"), &v1, A, B, "path-e1")
        .await
        .unwrap();
    assert_eq!(moved_bytes(&out), Some(10));
    let (r, queued) = store.abandon_pending(&moved).await.unwrap();
    assert_eq!(r, PendingPromoteResult::Abandoned);
    assert!(queued.is_empty(), "the moved version's bytes are live");
    assert_eq!(quota(&store, B).await, (10, GIB, 0));
    let (_, queued) = store.abandon_pending(&stray).await.unwrap();
    assert_eq!(bs(&queued), [(B.to_owned(), 10)]);
    assert_eq!(quota(&store, B).await, (10, GIB, 10));
    assert_eq!(store.count_pending().await.unwrap(), 0);
    invariants(&store).await;
}

/// A replica and a move of a versioned key's current copy keep its version id: the version
/// still reads by id from every copy, and an overwrite archives it under that id (not as
/// `null`).
pub async fn replica_and_move_keep_the_current_version_id(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    backends(&store, &[(A, GIB), (B, GIB), (C, GIB)]).await;
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    assert!(matches!(
        replicate(&store, &k("o"), B, A).await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 10 }
    ));
    assert_eq!(
        moved_bytes(&move_copy(&store, &k("o"), A, C).await.unwrap()),
        Some(10)
    );
    let v = store.get_object_version(&k("o"), &v1).await.unwrap();
    let mut held: Vec<&str> = v.copies.iter().map(|c| c.backend_name.as_str()).collect();
    held.sort_unstable();
    assert_eq!(held, [B, C], "both copies are version {v1}");
    assert!(v.is_latest);
    let v2 = commit(&store, "o", A, 20, "e2").await.version_id.unwrap();
    assert_eq!(
        versions(&store, "o").await,
        [
            (v2, false, true, 20, "e2".to_owned()),
            (v1.clone(), false, false, 10, "e1".to_owned()),
        ]
    );
    let old = store.get_object_version(&k("o"), &v1).await.unwrap();
    assert_eq!(old.copies.len(), 2);
    assert_eq!(
        (
            used(&store, A).await,
            used(&store, B).await,
            used(&store, C).await
        ),
        (20, 10, 10)
    );
    invariants(&store).await;
}

/// `(key, version, copies)` of a page of `list_noncurrent_replication`.
async fn off_factor(
    store: &Db,
    after: (&str, &str),
    factor: i64,
    limit: i64,
) -> Vec<(String, String, i64)> {
    store
        .list_noncurrent_replication(&k(""), after.0, after.1, factor, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.object_key, r.version_id, r.copies))
        .collect()
}

/// Noncurrent versions reach and keep a replication factor: the off-factor listing pages in
/// (key, version) order, a version-checked replica charges its target, refusals change
/// nothing, and excess removal queues the bytes but never drops the last copy.
pub async fn noncurrent_replicas_and_excess_copies(store: Db) {
    bucket(&store, Versioning::Enabled).await;
    backends(&store, &[(A, GIB), (B, GIB), (C, 15)]).await;
    let v1 = commit(&store, "o", A, 10, "e1").await.version_id.unwrap();
    commit(&store, "o", A, 20, "e2").await;
    let w1 = commit(&store, "p", B, 5, "f1").await.version_id.unwrap();
    commit(&store, "p", B, 7, "f2").await;
    let (o, p) = (k("o"), k("p"));
    assert_eq!(
        off_factor(&store, ("", ""), 2, 100).await,
        [(o.clone(), v1.clone(), 1), (p.clone(), w1.clone(), 1)]
    );
    assert!(off_factor(&store, ("", ""), 1, 100).await.is_empty());
    assert!(off_factor(&store, ("", ""), 2, 0).await.is_empty());
    assert_eq!(
        off_factor(&store, ("", ""), 2, 1).await,
        [(o.clone(), v1.clone(), 1)]
    );
    assert_eq!(
        off_factor(&store, (&o, &v1), 2, 1).await,
        [(p.clone(), w1.clone(), 1)]
    );

    // Refusals first: nothing changes.
    let before = (snapshot(&store).await, all_noncurrent(&store).await);
    let rep = |target: &'static str, source: &'static str, path: &'static str| {
        let (s, o, v) = (store.clone(), o.clone(), v1.clone());
        async move { s.record_version_replica(&o, &v, target, source, path).await }
    };
    assert_eq!(
        rep(B, C, "path-e1").await.unwrap(),
        ReplicaOutcome::SourceGone
    );
    assert_eq!(
        rep(B, A, "path-x").await.unwrap(),
        ReplicaOutcome::VersionChanged {
            current_storage_key: "path-e1".to_owned()
        }
    );
    assert_unknown_backend(rep(UNKNOWN, A, "path-e1").await, UNKNOWN);
    assert_invalid(rep(A, A, "path-e1").await, "replica target");
    assert_eq!(
        (snapshot(&store).await, all_noncurrent(&store).await),
        before
    );

    // The replica: charged to its target, the version reads from both.
    assert_eq!(
        rep(B, A, "path-e1").await.unwrap(),
        ReplicaOutcome::Recorded { bytes: 10 }
    );
    assert_eq!(quota(&store, B).await, (22, GIB, 0));
    assert_eq!(
        rep(B, A, "path-e1").await.unwrap(),
        ReplicaOutcome::TargetHasCopy
    );
    let v = store.get_object_version(&o, &v1).await.unwrap();
    let mut held: Vec<&str> = v.copies.iter().map(|c| c.backend_name.as_str()).collect();
    held.sort_unstable();
    assert_eq!(held, [A, B]);
    assert!(v.copies.iter().all(|c| c.form.storage_key == "path-e1"));
    assert_eq!(
        off_factor(&store, ("", ""), 2, 100).await,
        [(p.clone(), w1.clone(), 1)]
    );
    assert_eq!(
        off_factor(&store, ("", ""), 1, 100).await,
        [(o.clone(), v1.clone(), 2)]
    );
    // C admits 15 bytes: a 20-byte noncurrent version does not fit, nothing changes.
    commit(&store, "q", A, 20, "g1").await;
    commit(&store, "q", A, 1, "g2").await;
    let q_versions = store
        .list_object_versions(&k("q"), "", "", "", 10)
        .await
        .unwrap();
    let old_q = q_versions.versions[1].version_id.clone();
    let before = (snapshot(&store).await, all_noncurrent(&store).await);
    assert_no_space(
        store
            .record_version_replica(&k("q"), &old_q, C, A, "path-g1")
            .await,
    );
    assert_eq!(
        (snapshot(&store).await, all_noncurrent(&store).await),
        before
    );

    // Excess removal: at the factor nothing goes; above it the copy goes, its bytes queued.
    assert_eq!(
        store
            .remove_excess_version_copy(&o, &v1, A, 2)
            .await
            .unwrap(),
        None
    );
    let removed = store
        .remove_excess_version_copy(&o, &v1, A, 1)
        .await
        .unwrap()
        .expect("an excess copy");
    assert_eq!(
        (
            removed.backend_name.as_str(),
            removed.size_bytes,
            removed.storage_key.as_str()
        ),
        (A, 10, "path-e1")
    );
    let v = store.get_object_version(&o, &v1).await.unwrap();
    assert_eq!(v.copies.len(), 1);
    assert_eq!(v.copies[0].backend_name, B);
    // The last copy always stays.
    assert_eq!(
        store
            .remove_excess_version_copy(&o, &v1, B, 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .remove_excess_version_copy(&o, &v1, C, 1)
            .await
            .unwrap(),
        None
    );
    invariants(&store).await;
    assert_eq!(
        store.complete_cleanup_item(&removed.cleanup).await.unwrap(),
        CleanupOutcome::Completed
    );
    invariants(&store).await;
}
