//! Lifecycle: a bucket's rules stored with its row (seeded, replaced, never touched by a
//! configuration sync) and the version-checked delete the expiration worker uses.

use s3o_store::*;

use crate::support::*;

fn rules() -> Vec<LifecycleRule> {
    vec![
        LifecycleRule {
            id: "logs".into(),
            enabled: true,
            prefix: "logs/ü/".into(),
            expiration_days: Some(30),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: "cutoff".into(),
            enabled: false,
            prefix: String::new(),
            expiration_date: Some(Timestamp::from_micros(1_900_000_000_000_000)),
            abort_incomplete_upload_days: Some(7),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: "tagged".into(),
            enabled: true,
            prefix: "tmp/".into(),
            expiration_days: Some(2),
            tags: [("class", "scratch"), ("ü", "")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: "versions".into(),
            enabled: true,
            prefix: "v/".into(),
            noncurrent_days: Some(3),
            newer_noncurrent_versions: Some(2),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: "markers".into(),
            enabled: true,
            expired_object_delete_marker: true,
            ..LifecycleRule::default()
        },
    ]
}

fn with_rules(name: &str, rules: Vec<LifecycleRule>) -> BucketSpec {
    BucketSpec {
        name: name.into(),
        settings: BucketSettings {
            lifecycle: rules,
            ..BucketSettings::default()
        },
    }
}

/// Rules seeded with the bucket read back exactly; `set_bucket_lifecycle` replaces them and
/// nothing else; a configuration sync keeps them; an empty list clears them.
pub async fn lifecycle_round_trip_and_survives_sync(store: Db) {
    assert_eq!(
        store
            .sync_buckets(&[with_rules("logs", rules())])
            .await
            .unwrap(),
        vec!["logs".to_owned()]
    );
    let b = store.get_bucket("logs").await.unwrap();
    assert_eq!(b.settings.lifecycle, rules());
    // The S3 API replaces the rules; replication factor and created_at stay.
    let one = vec![rules()[1].clone()];
    store.set_bucket_lifecycle("logs", &one).await.unwrap();
    let after = store.get_bucket("logs").await.unwrap();
    assert_eq!(after.settings.lifecycle, one);
    assert_eq!(after.created_at, b.created_at);
    // A sync whose spec carries other rules (or none) does not touch them.
    let mut refreshed = with_rules("logs", Vec::new());
    refreshed.settings.replication_factor = 2;
    store.sync_buckets(&[refreshed]).await.unwrap();
    let synced = store.get_bucket("logs").await.unwrap();
    assert_eq!(
        (
            synced.settings.replication_factor,
            &synced.settings.lifecycle
        ),
        (2, &one)
    );
    store.set_bucket_lifecycle("logs", &[]).await.unwrap();
    assert!(
        store
            .get_bucket("logs")
            .await
            .unwrap()
            .settings
            .lifecycle
            .is_empty()
    );
    // list_buckets decodes the column too.
    store.set_bucket_lifecycle("logs", &rules()).await.unwrap();
    assert_eq!(
        store.list_buckets().await.unwrap()[0].settings.lifecycle,
        rules()
    );
}

/// Bad rules are `InvalidInput` before any SQL and change nothing; an unknown bucket is
/// `BucketNotFound`.
pub async fn lifecycle_bad_rules_change_nothing(store: Db) {
    assert!(
        store
            .create_bucket(&with_rules("logs", rules()))
            .await
            .unwrap()
    );
    let rule = |f: fn(&mut LifecycleRule)| {
        let mut r = LifecycleRule {
            id: "r".into(),
            enabled: true,
            expiration_days: Some(1),
            ..LifecycleRule::default()
        };
        f(&mut r);
        vec![r]
    };
    let bad = [
        rule(|r| r.expiration_days = None),
        rule(|r| r.expiration_days = Some(0)),
        rule(|r| r.abort_incomplete_upload_days = Some(0)),
        rule(|r| r.noncurrent_days = Some(0)),
        rule(|r| r.newer_noncurrent_versions = Some(1)),
        rule(|r| {
            r.noncurrent_days = Some(1);
            r.newer_noncurrent_versions = Some(101);
        }),
        rule(|r| r.expired_object_delete_marker = true),
        rule(|r| {
            r.noncurrent_days = Some(1);
            r.tags.insert("k".into(), "v".into());
        }),
        rule(|r| r.expiration_date = Some(Timestamp::from_micros(1))),
        rule(|r| r.prefix = "a\u{0}b".into()),
        rule(|r| r.prefix = "p".repeat(1025)),
        rule(|r| r.id = "i".repeat(256)),
        rule(|r| {
            r.tags.insert(String::new(), "v".into());
        }),
        rule(|r| {
            r.tags.insert("k".repeat(129), "v".into());
        }),
        rule(|r| {
            r.tags.insert("k".into(), "v".repeat(257));
        }),
        rule(|r| {
            r.tags.insert("k".into(), "v".into());
            r.abort_incomplete_upload_days = Some(1);
        }),
        vec![rule(|_| ())[0].clone(), rule(|_| ())[0].clone()],
    ];
    for rules in bad {
        assert_invalid(store.set_bucket_lifecycle("logs", &rules).await, "set");
        assert_invalid(
            store.create_bucket(&with_rules("other", rules)).await,
            "create",
        );
    }
    assert_eq!(
        store.get_bucket("logs").await.unwrap().settings.lifecycle,
        rules()
    );
    assert_bucket_missing(store.set_bucket_lifecycle("nope", &rules()).await);
    assert_eq!(store.list_buckets().await.unwrap().len(), 1);
}

#[track_caller]
fn assert_bucket_missing(r: Result<()>) {
    match r {
        Err(StoreError::BucketNotFound { bucket }) => assert_eq!(bucket, "nope"),
        other => panic!("expected BucketNotFound, got {other:?}"),
    }
}

fn form(storage_key: &str) -> StoredForm {
    StoredForm {
        storage_key: storage_key.into(),
        ..StoredForm::default()
    }
}

/// The version-checked delete removes the version it names exactly like `delete_object`
/// (quota debited, bytes queued and claimed), and refuses, changing nothing, once the key
/// holds another version or nothing.
pub async fn delete_object_version_spares_newer_writes(store: Db) {
    three_backends(&store).await;
    let key = "logs/old";
    store
        .record_object(key, A, 100, &form("logs/old!1"))
        .await
        .unwrap();
    replicate(&store, key, B, A).await.unwrap();
    // Overwritten after a worker chose it: the newer version stays.
    store
        .record_object(key, A, 40, &form("logs/old!2"))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    assert_eq!(
        store
            .delete_object_version(key, "logs/old!1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(
        store.delete_object_version("logs/none", "x").await.unwrap(),
        None
    );
    // The current version goes, every copy of it.
    replicate(&store, key, C, A).await.unwrap();
    let deleted = store
        .delete_object_version(key, "logs/old!2")
        .await
        .unwrap()
        .expect("current version deleted");
    assert_eq!(bs(&deleted), vec![(A.into(), 40), (C.into(), 40)]);
    assert!(deleted.iter().all(|d| d.cleanup.id > 0));
    assert!(copies(&store, key).await.is_empty());
    assert_eq!((used(&store, A).await, used(&store, C).await), (0, 0));
    assert_invalid(store.delete_object_version("", "x").await, "empty key");
    assert_ledger(&store).await;
    assert_orphans_accounted(&store).await;
}

const VB: &str = "life";

fn vk(name: &str) -> String {
    format!("{VB}/{name}")
}

/// A form whose storage key and ETag name the version.
fn vform(name: &str) -> StoredForm {
    StoredForm {
        etag: name.to_owned(),
        storage_key: format!("path-{name}"),
        ..StoredForm::default()
    }
}

async fn vbucket(store: &Db, state: Versioning) {
    backends(store, &[(A, GIB), (B, GIB)]).await;
    store.create_bucket(&BucketSpec::new(VB)).await.unwrap();
    if state.is_versioned() {
        store.set_bucket_versioning(VB, state).await.unwrap();
    }
}

async fn vcommit(store: &Db, key: &str, backend: &str, size: i64, name: &str) -> Committed {
    store
        .commit_object_in_bucket(
            VB,
            &vk(key),
            backend,
            size,
            &vform(name),
            None,
            &WritePrecondition::default(),
        )
        .await
        .unwrap()
}

/// `(etag or "marker", is_latest)` of every version of `key`, newest first.
async fn vlist(store: &Db, key: &str) -> Vec<(String, bool)> {
    store
        .list_object_versions(&vk(key), "", "", "", 1000)
        .await
        .unwrap()
        .versions
        .into_iter()
        .filter(|v| v.object_key == vk(key))
        .map(|v| {
            let name = if v.delete_marker {
                "marker".to_owned()
            } else {
                v.etag
            };
            (name, v.is_latest)
        })
        .collect()
}

fn named(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(n, l)| ((*n).to_owned(), *l)).collect()
}

fn tagset(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Lifecycle `Expiration` in an unversioned bucket: decided under the key lock, it spares a
/// key overwritten since it was listed or whose tags no longer match the rule (nothing
/// changes), and otherwise removes every copy exactly like a delete (quota debited, bytes
/// queued and claimed).
pub async fn expire_current_version_rechecks_version_and_tags(store: Db) {
    vbucket(&store, Versioning::Unversioned).await;
    let key = vk("tmp/a");
    vcommit(&store, "tmp/a", A, 100, "a1").await;
    replicate(&store, &key, B, A).await.unwrap();
    store
        .set_object_tags(&key, &tagset(&[("class", "scratch")]))
        .await
        .unwrap();
    let rule_tags = tagset(&[("class", "scratch")]);
    let before = snapshot(&store).await;
    // Another version than the one listed: spared.
    assert_eq!(
        store
            .expire_current_version(VB, &key, "path-other", &rule_tags)
            .await
            .unwrap(),
        None
    );
    // Retagged after the listing: spared.
    store
        .set_object_tags(&key, &tagset(&[("class", "keep")]))
        .await
        .unwrap();
    let retagged = snapshot(&store).await;
    assert_eq!(
        store
            .expire_current_version(VB, &key, "path-a1", &rule_tags)
            .await
            .unwrap(),
        None
    );
    assert_eq!(snapshot(&store).await, retagged);
    assert_eq!(before.quotas, retagged.quotas);
    // A missing key: nothing.
    assert_eq!(
        store
            .expire_current_version(VB, &vk("none"), "x", &rule_tags)
            .await
            .unwrap(),
        None
    );
    // Tags matching again (a superset of the rule's): every copy goes, bytes queued.
    store
        .set_object_tags(&key, &tagset(&[("class", "scratch"), ("x", "y")]))
        .await
        .unwrap();
    let out = store
        .expire_current_version(VB, &key, "path-a1", &rule_tags)
        .await
        .unwrap()
        .expect("expired");
    assert_eq!(bs(&out.removed), vec![(A.into(), 100), (B.into(), 100)]);
    assert!(out.removed.iter().all(|d| d.cleanup.id > 0));
    assert!(!out.delete_marker);
    assert!(copies(&store, &key).await.is_empty());
    assert_eq!(quota(&store, A).await.0, 0);
    assert_eq!(
        (orphan(&store, A).await, orphan(&store, B).await),
        (100, 100)
    );
    assert!(vlist(&store, "tmp/a").await.is_empty());
    assert!(matches!(
        store
            .expire_current_version("nope", "nope/k", "x", &rule_tags)
            .await,
        Ok(None)
    ));
    assert_invalid(
        store
            .expire_current_version(VB, "other/k", "x", &rule_tags)
            .await,
        "key outside the bucket",
    );
    assert_ledger(&store).await;
    assert_orphans_accounted(&store).await;
}

/// Lifecycle `Expiration` in a versioned bucket is S3's DELETE without a version id: enabled,
/// a delete marker goes over the current version, whose bytes stay charged as a noncurrent
/// version (nothing queued), and a key already hidden is left alone; suspended, a `null`
/// marker replaces the `null` version, whose bytes are queued.
pub async fn expire_current_version_in_versioned_buckets(store: Db) {
    vbucket(&store, Versioning::Enabled).await;
    vcommit(&store, "e", A, 100, "e1").await;
    vcommit(&store, "e", A, 30, "e2").await;
    let out = store
        .expire_current_version(VB, &vk("e"), "path-e2", &Default::default())
        .await
        .unwrap()
        .expect("marker written");
    assert!(out.delete_marker && out.removed.is_empty());
    assert_eq!(
        vlist(&store, "e").await,
        named(&[("marker", true), ("e2", false), ("e1", false)])
    );
    assert_eq!((used(&store, A).await, orphan(&store, A).await), (130, 0));
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 0);
    // Hidden already: nothing to expire.
    assert_eq!(
        store
            .expire_current_version(VB, &vk("e"), "path-e2", &Default::default())
            .await
            .unwrap(),
        None
    );
    // Suspended: the null version is replaced by a null marker; an older version stays.
    vcommit(&store, "s", B, 10, "s1-enabled").await;
    store
        .set_bucket_versioning(VB, Versioning::Suspended)
        .await
        .unwrap();
    vcommit(&store, "s", B, 40, "s2-null").await;
    let out = store
        .expire_current_version(VB, &vk("s"), "path-s2-null", &Default::default())
        .await
        .unwrap()
        .expect("null version replaced");
    assert!(out.delete_marker);
    assert_eq!(out.version_id.as_deref(), Some(NULL_VERSION_ID));
    assert_eq!(bs(&out.removed), vec![(B.into(), 40)]);
    assert_eq!(
        vlist(&store, "s").await,
        named(&[("marker", true), ("s1-enabled", false)])
    );
    assert_eq!((used(&store, B).await, orphan(&store, B).await), (10, 40));
    assert_ledger(&store).await;
    assert_orphans_accounted(&store).await;
}

fn expiry(age: Option<std::time::Duration>, keep: u32, marker: bool) -> NoncurrentExpiry {
    NoncurrentExpiry {
        noncurrent_for: age,
        keep_newer: keep,
        expired_marker: marker,
    }
}

/// NoncurrentVersionExpiration deletes exactly the noncurrent versions due (noncurrent
/// longer than the age, beyond the newest `keep_newer`), oldest first up to the limit, each
/// like a delete by version id (bytes queued and debited, every copy); the current version
/// and the marker hiding a key never go; ExpiredObjectDeleteMarker removes a marker once it is
/// its key's only version.
pub async fn expire_noncurrent_versions_exact(store: Db) {
    vbucket(&store, Versioning::Enabled).await;
    let zero = Some(std::time::Duration::ZERO);
    for (i, size) in [10, 20, 30, 40].into_iter().enumerate() {
        vcommit(&store, "k", A, size, &format!("v{}", i + 1)).await;
    }
    replicate(&store, &vk("k"), B, A).await.unwrap(); // v4 (current) on both
    assert_eq!((used(&store, A).await, used(&store, B).await), (100, 40));
    // Not noncurrent for an hour yet: nothing.
    let hour = Some(std::time::Duration::from_secs(3600));
    let r = store
        .expire_noncurrent_versions(VB, &vk("k"), &expiry(hour, 0, true), 100)
        .await
        .unwrap();
    assert_eq!(r, VersionExpiry::default());
    // Keep the newest noncurrent version (v3), limit 1: the oldest (v1) goes first.
    let r = store
        .expire_noncurrent_versions(VB, &vk("k"), &expiry(zero, 1, false), 1)
        .await
        .unwrap();
    assert_eq!((r.versions.len(), r.markers.len()), (1, 0));
    assert_eq!(bs(&r.removed), vec![(A.into(), 10)]);
    let r = store
        .expire_noncurrent_versions(VB, &vk("k"), &expiry(zero, 1, false), 100)
        .await
        .unwrap();
    assert_eq!(bs(&r.removed), vec![(A.into(), 20)]);
    assert_eq!(
        vlist(&store, "k").await,
        named(&[("v4", true), ("v3", false)])
    );
    assert_eq!((used(&store, A).await, orphan(&store, A).await), (70, 30));
    // Deleted (a marker over v4), then everything noncurrent goes; the marker hides nothing
    // then, and with ExpiredObjectDeleteMarker it goes too, in the same transaction.
    store
        .delete_object_in_bucket(VB, &vk("k"), None)
        .await
        .unwrap();
    let r = store
        .expire_noncurrent_versions(VB, &vk("k"), &expiry(zero, 0, false), 100)
        .await
        .unwrap();
    assert_eq!(r.versions.len(), 2);
    assert_eq!(
        bs(&r.removed),
        vec![(A.into(), 30), (A.into(), 40), (B.into(), 40)]
    );
    assert_eq!(vlist(&store, "k").await, named(&[("marker", true)]));
    // Without the marker action the lone marker stays; with it, it goes.
    let r = store
        .expire_noncurrent_versions(VB, &vk("k"), &expiry(zero, 0, false), 100)
        .await
        .unwrap();
    assert_eq!(r, VersionExpiry::default());
    let r = store
        .expire_noncurrent_versions(VB, &vk("k"), &expiry(None, 0, true), 100)
        .await
        .unwrap();
    assert_eq!((r.versions.len(), r.markers.len()), (0, 1));
    assert!(r.removed.is_empty());
    assert!(vlist(&store, "k").await.is_empty());
    assert_eq!((used(&store, A).await, used(&store, B).await), (0, 0));
    assert_eq!(
        (orphan(&store, A).await, orphan(&store, B).await),
        (100, 40)
    );
    // A marker hiding a version is not "expired": the marker action alone leaves both.
    vcommit(&store, "h", B, 5, "h1").await;
    store
        .delete_object_in_bucket(VB, &vk("h"), None)
        .await
        .unwrap();
    let r = store
        .expire_noncurrent_versions(VB, &vk("h"), &expiry(None, 0, true), 100)
        .await
        .unwrap();
    assert_eq!(r, VersionExpiry::default());
    assert_eq!(
        vlist(&store, "h").await,
        named(&[("marker", true), ("h1", false)])
    );
    // A current version alone is never touched.
    vcommit(&store, "c", B, 7, "c1").await;
    let r = store
        .expire_noncurrent_versions(VB, &vk("c"), &expiry(zero, 0, true), 100)
        .await
        .unwrap();
    assert_eq!(r, VersionExpiry::default());
    assert_eq!(used(&store, B).await, 12);
    assert!(matches!(
        store
            .expire_noncurrent_versions("nope", "nope/k", &expiry(zero, 0, true), 10)
            .await,
        Err(StoreError::BucketNotFound { .. })
    ));
    assert_ledger(&store).await;
    assert_orphans_accounted(&store).await;
}

/// `get_version_stats` counts noncurrent copies and bytes per backend (a replicated version
/// once per backend) and delete markers, and follows every step: an overwrite adds a
/// noncurrent version, a delete a marker, a delete by version id takes them away.
pub async fn version_stats_count_noncurrent_and_markers(store: Db) {
    vbucket(&store, Versioning::Enabled).await;
    assert_eq!(
        store.get_version_stats().await.unwrap(),
        VersionStats::default()
    );
    vcommit(&store, "a", A, 100, "a1").await;
    replicate(&store, &vk("a"), B, A).await.unwrap();
    vcommit(&store, "a", A, 30, "a2").await;
    vcommit(&store, "b", B, 7, "b1").await;
    store
        .delete_object_in_bucket(VB, &vk("b"), None)
        .await
        .unwrap();
    store
        .delete_object_in_bucket(VB, &vk("ghost"), None)
        .await
        .unwrap();
    let stat = |copies, bytes| NoncurrentStat { copies, bytes };
    let s = store.get_version_stats().await.unwrap();
    assert_eq!(s.delete_markers, 2);
    assert_eq!(
        s.noncurrent.into_iter().collect::<Vec<_>>(),
        vec![(A.to_owned(), stat(1, 100)), (B.to_owned(), stat(2, 107))]
    );
    // The current versions are not counted: a2 (30 on A) is current.
    assert_eq!(used(&store, A).await, 130);
    // Deleting a1 by id (both copies) and the ghost's marker.
    let a1 = vlist_ids(&store, "a").await[1].clone();
    store
        .delete_object_in_bucket(VB, &vk("a"), Some(&a1))
        .await
        .unwrap();
    let ghost = vlist_ids(&store, "ghost").await[0].clone();
    store
        .delete_object_in_bucket(VB, &vk("ghost"), Some(&ghost))
        .await
        .unwrap();
    let s = store.get_version_stats().await.unwrap();
    assert_eq!(s.delete_markers, 1);
    assert_eq!(
        s.noncurrent.into_iter().collect::<Vec<_>>(),
        vec![(B.to_owned(), stat(1, 7))]
    );
    assert_ledger(&store).await;
    assert_orphans_accounted(&store).await;
}

/// Version ids of `key`, newest first.
async fn vlist_ids(store: &Db, key: &str) -> Vec<String> {
    store
        .list_object_versions(&vk(key), "", "", "", 1000)
        .await
        .unwrap()
        .versions
        .into_iter()
        .filter(|v| v.object_key == vk(key))
        .map(|v| v.version_id)
        .collect()
}
