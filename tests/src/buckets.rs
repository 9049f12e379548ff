//! Buckets as ledger state: create, get, list, settings, sync, deletion and its race with a
//! commit into the bucket.

use std::time::Duration;

use s3o_store::*;

use crate::pending::intent;
use crate::support::*;

fn spec(name: &str) -> BucketSpec {
    BucketSpec::new(name)
}

fn settings() -> BucketSettings {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "cors".into(),
        serde_json::json!([{"allowed_origins": ["*"], "max_age": 3000, "ü": 1.5}]),
    );
    BucketSettings {
        replication_factor: 2,
        max_bytes: 5 * GIB,
        max_objects: 1000,
        routing: vec![B.to_owned(), A.to_owned()],
        extra,
        lifecycle: vec![LifecycleRule {
            id: "tmp".into(),
            enabled: true,
            prefix: "tmp/".into(),
            expiration_days: Some(1),
            ..LifecycleRule::default()
        }],
    }
}

async fn commit(store: &Db, bucket: &str, key: &str, size: i64) -> Result<Vec<DeletedCopy>> {
    store
        .record_object_in_bucket(
            bucket,
            key,
            A,
            size,
            &StoredForm::default(),
            None,
            &WritePrecondition::default(),
        )
        .await
}

#[track_caller]
fn assert_bucket_not_found<T: std::fmt::Debug>(r: Result<T>, name: &str) {
    match r {
        Err(StoreError::BucketNotFound { bucket }) => assert_eq!(bucket, name),
        other => panic!("expected BucketNotFound({name}), got {other:?}"),
    }
}

#[track_caller]
fn assert_not_empty<T: std::fmt::Debug>(r: Result<T>, name: &str, why: BucketBusy) {
    match r {
        Err(StoreError::BucketNotEmpty { bucket, reason }) => {
            assert_eq!((bucket.as_str(), reason), (name, why))
        }
        other => panic!("expected BucketNotEmpty({name}, {why:?}), got {other:?}"),
    }
}

/// A created bucket reads back with every setting and a `created_at` of now.
pub async fn create_get_round_trip(store: Db) {
    let before = Timestamp::now().minus(Duration::from_secs(60));
    let s = BucketSpec {
        name: "photos".into(),
        settings: settings(),
    };
    assert!(store.create_bucket(&s).await.unwrap());
    let b = store.get_bucket("photos").await.unwrap();
    assert_eq!(b.name, "photos");
    assert_eq!(b.settings, settings());
    assert!(
        b.created_at >= before && b.created_at <= Timestamp::now().plus(Duration::from_secs(60))
    );
    assert_eq!(b.key_prefix(), "photos/");
    // Defaults: one copy, no quotas, every backend, no extra settings.
    assert!(store.create_bucket(&spec("plain")).await.unwrap());
    assert_eq!(
        store.get_bucket("plain").await.unwrap().settings,
        BucketSettings::default()
    );
}

/// Creating an existing name answers `false` and changes nothing, its settings included.
pub async fn create_is_idempotent(store: Db) {
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    let first = store.get_bucket("photos").await.unwrap();
    let again = BucketSpec {
        name: "photos".into(),
        settings: settings(),
    };
    assert!(!store.create_bucket(&again).await.unwrap());
    assert_eq!(store.get_bucket("photos").await.unwrap(), first);
    assert_eq!(store.list_buckets().await.unwrap().len(), 1);
}

/// Many creators of one name at once: exactly one is told it created the bucket.
pub async fn concurrent_create_of_one_name(store: Db) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.create_bucket(&spec("race")).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.list_buckets().await.unwrap().len(), 1);
}

/// Listing: every bucket with its `created_at`, names in byte order.
pub async fn list_in_byte_order(store: Db) {
    assert!(store.list_buckets().await.unwrap().is_empty());
    let names = ["b.b", "a0a", "a-a", "a.a", "aaa", "9z9"];
    for n in names {
        assert!(store.create_bucket(&spec(n)).await.unwrap());
    }
    let listed = store.list_buckets().await.unwrap();
    let got: Vec<&str> = listed.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(got, byte_sorted(&names));
    assert_eq!(got, ["9z9", "a-a", "a.a", "a0a", "aaa", "b.b"]);
    for b in &listed {
        assert_eq!(b, &store.get_bucket(&b.name).await.unwrap());
        assert!(b.created_at > Timestamp::ZERO);
    }
}

/// S3's bucket-name rules, each refused with `InvalidInput` naming the rule; nothing is
/// created. Names at the edges of the rules are accepted.
pub async fn name_rules(store: Db) {
    let long = "a".repeat(64);
    let cases: [(&str, &str); 16] = [
        ("ab", "3 to 63"),
        (&long, "3 to 63"),
        ("", "3 to 63"),
        ("Photos", "lowercase"),
        ("pho_tos", "lowercase"),
        ("pho tos", "lowercase"),
        ("photos/x", "lowercase"),
        ("-photos", "start and end"),
        ("photos-", "start and end"),
        (".photos", "start and end"),
        ("pho..tos", "adjacent dots"),
        ("192.168.5.4", "IP address"),
        ("xn--photos", "prefix \"xn--\""),
        ("sthree-photos", "prefix \"sthree-\""),
        ("photos-s3alias", "suffix \"-s3alias\""),
        ("photos--ol-s3", "suffix \"--ol-s3\""),
    ];
    for (name, rule) in cases {
        match store.create_bucket(&spec(name)).await {
            Err(StoreError::InvalidInput { what, why }) => {
                assert_eq!(what, "bucket name", "{name:?}");
                assert!(why.contains(rule), "{name:?}: {why:?} should name {rule:?}");
            }
            other => panic!("{name:?}: expected InvalidInput, got {other:?}"),
        }
    }
    assert!(store.list_buckets().await.unwrap().is_empty());
    let max = "a".repeat(63);
    for ok in [
        "abc",
        max.as_str(),
        "my.bucket-1",
        "123",
        "1.2.3",
        "192.168.5.4a",
        "a-s3aliasb",
    ] {
        assert!(store.create_bucket(&spec(ok)).await.unwrap(), "{ok:?}");
    }
    assert_eq!(store.list_buckets().await.unwrap().len(), 7);
}

/// Bad settings are refused before any SQL, on create, update and sync alike, and change
/// nothing.
pub async fn bad_settings_change_nothing(store: Db) {
    three_backends(&store).await;
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    let before = snapshot(&store).await;
    let mut nul = serde_json::Map::new();
    nul.insert("cors".into(), serde_json::json!({"origin": "a\u{0}b"}));
    let bad = [
        BucketSettings {
            replication_factor: 0,
            ..BucketSettings::default()
        },
        BucketSettings {
            max_bytes: -1,
            ..BucketSettings::default()
        },
        BucketSettings {
            max_objects: -1,
            ..BucketSettings::default()
        },
        BucketSettings {
            routing: vec![A.into(), A.into()],
            ..BucketSettings::default()
        },
        BucketSettings {
            routing: vec![String::new()],
            ..BucketSettings::default()
        },
        BucketSettings {
            extra: nul,
            ..BucketSettings::default()
        },
    ];
    for s in bad {
        let create = BucketSpec {
            name: "fresh".into(),
            settings: s.clone(),
        };
        assert_invalid(store.create_bucket(&create).await, "create");
        assert_invalid(store.update_bucket_settings("photos", &s).await, "update");
        let sync = [spec("other"), create];
        assert_invalid(store.sync_buckets(&sync).await, "sync");
    }
    // A name listed twice in one sync is refused whole.
    assert_invalid(
        store
            .sync_buckets(&[spec("new-one"), spec("new-one")])
            .await,
        "sync duplicate",
    );
    assert_invalid(
        store.sync_buckets(&[spec("fine"), spec("Bad")]).await,
        "sync bad name",
    );
    assert_eq!(snapshot(&store).await, before);
}

/// An unknown bucket is `BucketNotFound` to get, update and delete.
pub async fn unknown_bucket_not_found(store: Db) {
    assert_bucket_not_found(store.get_bucket("nope").await, "nope");
    assert_bucket_not_found(
        store
            .update_bucket_settings("nope", &BucketSettings::default())
            .await,
        "nope",
    );
    assert_bucket_not_found(store.delete_bucket("nope").await, "nope");
    // Names breaking S3's rules are looked up, not refused: they are simply not there.
    assert_bucket_not_found(store.get_bucket("Nope_").await, "Nope_");
    assert_invalid(store.get_bucket("").await, "empty name");
    assert!(store.list_buckets().await.unwrap().is_empty());
}

/// An update replaces every setting, `extra` included, and keeps `created_at`.
pub async fn update_replaces_settings_and_keeps_created_at(store: Db) {
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    let created = store.get_bucket("photos").await.unwrap().created_at;
    store
        .update_bucket_settings("photos", &settings())
        .await
        .unwrap();
    let b = store.get_bucket("photos").await.unwrap();
    assert_eq!((b.settings, b.created_at), (settings(), created));
    store
        .update_bucket_settings("photos", &BucketSettings::default())
        .await
        .unwrap();
    let b = store.get_bucket("photos").await.unwrap();
    assert_eq!(
        (b.settings, b.created_at),
        (BucketSettings::default(), created)
    );
}

/// One field of `extra` is set, replaced and removed on its own: the other fields, the other
/// settings and `created_at` stay as they were; removing an absent field succeeds.
pub async fn extra_field_set_and_removed_alone(store: Db) {
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    store
        .update_bucket_settings("photos", &settings())
        .await
        .unwrap();
    let before = store.get_bucket("photos").await.unwrap();
    let acl = serde_json::json!("public-read");
    store
        .set_bucket_extra("photos", "acl", Some(&acl))
        .await
        .unwrap();
    let tags = serde_json::json!({"Ünï": "v", "k": ""});
    store
        .set_bucket_extra("photos", "tags", Some(&tags))
        .await
        .unwrap();
    let b = store.get_bucket("photos").await.unwrap();
    let mut want = before.clone();
    want.settings.extra.insert("acl".into(), acl);
    want.settings.extra.insert("tags".into(), tags);
    assert_eq!(b, want);
    let other = serde_json::json!("private");
    store
        .set_bucket_extra("photos", "acl", Some(&other))
        .await
        .unwrap();
    store
        .set_bucket_extra("photos", "tags", None)
        .await
        .unwrap();
    store
        .set_bucket_extra("photos", "tags", None)
        .await
        .unwrap();
    let b = store.get_bucket("photos").await.unwrap();
    let mut want = before;
    want.settings.extra.insert("acl".into(), other);
    assert_eq!(b, want);
}

/// A bad field name or value, or an unknown bucket, is refused and changes nothing.
pub async fn extra_field_refusals_change_nothing(store: Db) {
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    let before = store.get_bucket("photos").await.unwrap();
    let v = serde_json::json!(1);
    let long = "a".repeat(limits::MAX_BUCKET_EXTRA_FIELD_BYTES + 1);
    for field in ["", "a.b", "A", "x\"y", "$", long.as_str()] {
        let r = store.set_bucket_extra("photos", field, Some(&v)).await;
        assert!(
            matches!(r, Err(StoreError::InvalidInput { .. })),
            "{field:?}: {r:?}"
        );
    }
    let nul = serde_json::json!({"a": "x\u{0}y"});
    let r = store.set_bucket_extra("photos", "tags", Some(&nul)).await;
    assert!(matches!(r, Err(StoreError::InvalidInput { .. })), "{r:?}");
    let big = serde_json::json!("x".repeat(limits::MAX_BUCKET_EXTRA_BYTES));
    let r = store.set_bucket_extra("photos", "tags", Some(&big)).await;
    assert!(matches!(r, Err(StoreError::InvalidInput { .. })), "{r:?}");
    assert_eq!(store.get_bucket("photos").await.unwrap(), before);
    assert_bucket_not_found(
        store.set_bucket_extra("nope", "acl", Some(&v)).await,
        "nope",
    );
    assert_bucket_not_found(store.set_bucket_extra("nope", "acl", None).await, "nope");
}

/// The configuration sync creates missing buckets, refreshes the configuration-owned settings
/// of existing ones (keeping `created_at` and `extra`), and never deletes.
pub async fn sync_creates_refreshes_and_never_deletes(store: Db) {
    assert!(store.create_bucket(&spec("kept")).await.unwrap());
    let mut s = settings();
    s.replication_factor = 1;
    store.update_bucket_settings("kept", &s).await.unwrap();
    let kept = store.get_bucket("kept").await.unwrap();
    let config = [
        BucketSpec {
            name: "new-b".into(),
            settings: BucketSettings {
                replication_factor: 3,
                ..BucketSettings::default()
            },
        },
        BucketSpec {
            name: "kept".into(),
            settings: BucketSettings {
                replication_factor: 2,
                max_bytes: 7,
                max_objects: 8,
                routing: vec![C.into()],
                extra: serde_json::Map::new(),
                lifecycle: Vec::new(),
            },
        },
        spec("new-a"),
    ];
    let created = store.sync_buckets(&config).await.unwrap();
    assert_eq!(created, ["new-a", "new-b"]);
    let k = store.get_bucket("kept").await.unwrap();
    assert_eq!(k.created_at, kept.created_at);
    assert_eq!(
        (
            k.settings.replication_factor,
            k.settings.max_bytes,
            k.settings.max_objects
        ),
        (2, 7, 8)
    );
    assert_eq!(k.settings.routing, [C]);
    assert_eq!(
        k.settings.extra,
        settings().extra,
        "extra is S3-managed: kept"
    );
    assert_eq!(
        store
            .get_bucket("new-b")
            .await
            .unwrap()
            .settings
            .replication_factor,
        3
    );
    // Again: nothing new; a bucket missing from the configuration stays.
    assert!(store.sync_buckets(&config[..1]).await.unwrap().is_empty());
    let names: Vec<String> = store
        .list_buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["kept", "new-a", "new-b"]);
    assert!(store.sync_buckets(&[]).await.unwrap().is_empty());
}

/// An empty bucket is deleted; its name can be created again.
pub async fn delete_empty_bucket(store: Db) {
    three_backends(&store).await;
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    // Neighbours of the bucket's prefix are other buckets' keys.
    put(&store, "photos", A, 1).await;
    put(&store, "photos-x/k", A, 1).await;
    put(&store, "photos0", A, 1).await;
    put(&store, "photo/k", A, 1).await;
    store.delete_bucket("photos").await.unwrap();
    assert_bucket_not_found(store.get_bucket("photos").await, "photos");
    assert_bucket_not_found(store.delete_bucket("photos").await, "photos");
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    assert_ledger(&store).await;
}

/// A bucket holding an object is not deleted, and nothing changes.
pub async fn delete_refused_while_objects(store: Db) {
    three_backends(&store).await;
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    commit(&store, "photos", "photos/a/b.jpg", 10)
        .await
        .unwrap();
    let before = snapshot(&store).await;
    assert_not_empty(
        store.delete_bucket("photos").await,
        "photos",
        BucketBusy::Objects,
    );
    assert_eq!(snapshot(&store).await, before);
    store.delete_object("photos/a/b.jpg").await.unwrap();
    store.delete_bucket("photos").await.unwrap();
    assert_ledger(&store).await;
}

/// A bucket with a multipart upload in progress is not deleted, and nothing changes.
pub async fn delete_refused_while_multipart_upload(store: Db) {
    three_backends(&store).await;
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "up-1".into(),
            object_key: "photos/big.bin".into(),
            backend_name: B.into(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    let before = snapshot(&store).await;
    assert_not_empty(
        store.delete_bucket("photos").await,
        "photos",
        BucketBusy::MultipartUploads,
    );
    assert_eq!(snapshot(&store).await, before);
    store
        .release_multipart_upload("up-1", "aborted upload")
        .await
        .unwrap();
    store.delete_bucket("photos").await.unwrap();
}

/// A bucket with a write in flight (a pending intent) is not deleted, and nothing changes.
pub async fn delete_refused_while_pending_write(store: Db) {
    three_backends(&store).await;
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    store
        .insert_pending(&intent(
            "i-1",
            "photos/new.jpg",
            A,
            10,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    assert_not_empty(
        store.delete_bucket("photos").await,
        "photos",
        BucketBusy::PendingWrites,
    );
    assert_eq!(snapshot(&store).await, before);
    store.delete_pending("i-1").await.unwrap();
    store.delete_bucket("photos").await.unwrap();
}

/// A commit into a bucket: the key must be the bucket's; a missing bucket refuses the commit
/// and nothing changes (the intent stays for the caller to abandon).
pub async fn commit_into_bucket_requires_the_bucket(store: Db) {
    three_backends(&store).await;
    assert_invalid(
        commit(&store, "photos", "photosx/k", 1).await,
        "key outside",
    );
    assert_invalid(
        commit(&store, "photos", "photos", 1).await,
        "bucket name as key",
    );
    store
        .insert_pending(&intent(
            "i-1",
            "photos/k",
            A,
            5,
            StoredForm::default(),
            Timestamp::ZERO,
        ))
        .await
        .unwrap();
    let before = snapshot(&store).await;
    let r = store
        .record_object_in_bucket(
            "photos",
            "photos/k",
            A,
            5,
            &StoredForm::default(),
            Some("i-1"),
            &WritePrecondition::default(),
        )
        .await;
    assert_bucket_not_found(r, "photos");
    assert_eq!(snapshot(&store).await, before);
    assert!(store.create_bucket(&spec("photos")).await.unwrap());
    store
        .record_object_in_bucket(
            "photos",
            "photos/k",
            A,
            5,
            &StoredForm::default(),
            Some("i-1"),
            &WritePrecondition::default(),
        )
        .await
        .unwrap();
    assert_eq!(placement(&store, "photos/k").await, [(A.to_owned(), 5)]);
    assert_eq!(store.count_pending().await.unwrap(), 0);
    // Its preconditions still hold: If-None-Match * against the existing version.
    let r = store
        .record_object_in_bucket(
            "photos",
            "photos/k",
            A,
            6,
            &StoredForm::default(),
            None,
            &WritePrecondition {
                if_none_match: Some("*".into()),
                ..WritePrecondition::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::PreconditionFailed { .. })),
        "{r:?}"
    );
    assert_ledger(&store).await;
}

/// The delete-versus-write rule: a commit into a bucket and the bucket's deletion, started
/// together, never both succeed. Either the commit wins (the deletion answers
/// `BucketNotEmpty` and the object is there) or the deletion wins (the commit answers
/// `BucketNotFound` and changed nothing).
pub async fn delete_and_commit_never_both_succeed(store: Db) {
    three_backends(&store).await;
    let (mut commits_won, mut deletes_won) = (0, 0);
    for round in 0..24 {
        let name = format!("race-{round}");
        let key = format!("{name}/k");
        assert!(store.create_bucket(&spec(&name)).await.unwrap());
        let (s1, s2) = (store.clone(), store.clone());
        let (n1, k1, n2) = (name.clone(), key.clone(), name.clone());
        let writer = tokio::spawn(async move { commit(&s1, &n1, &k1, 3).await });
        let deleter = tokio::spawn(async move { s2.delete_bucket(&n2).await });
        let (w, d) = (writer.await.unwrap(), deleter.await.unwrap());
        match (&w, &d) {
            (Ok(_), Err(StoreError::BucketNotEmpty { reason, .. })) => {
                assert_eq!(*reason, BucketBusy::Objects);
                assert!(store.get_bucket(&name).await.is_ok());
                assert_eq!(placement(&store, &key).await, [(A.to_owned(), 3)]);
                commits_won += 1;
            }
            (Err(StoreError::BucketNotFound { .. }), Ok(())) => {
                assert_bucket_not_found(store.get_bucket(&name).await, &name);
                assert!(placement(&store, &key).await.is_empty());
                deletes_won += 1;
            }
            other => panic!("round {round}: commit and delete disagree: {other:?}"),
        }
    }
    assert_eq!(commits_won + deletes_won, 24);
    assert_ledger(&store).await;
}
