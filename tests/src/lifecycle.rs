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
