//! A bucket's CORS configuration: set/get/delete round trip, S3's rules enforced before any
//! change, kept apart from the configuration-owned settings, gone with its bucket.

use s3o_store::*;

use crate::support::*;

fn rule(origin: &str, methods: &[&str]) -> CorsRule {
    CorsRule {
        id: None,
        allowed_methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        allowed_origins: vec![origin.to_owned()],
        allowed_headers: Vec::new(),
        expose_headers: Vec::new(),
        max_age_seconds: None,
    }
}

fn config() -> CorsConfig {
    CorsConfig {
        rules: vec![
            CorsRule {
                id: Some("règle-1".into()),
                allowed_methods: vec!["GET".into(), "HEAD".into()],
                allowed_origins: vec!["https://*.example.com".into(), "http://a.test".into()],
                allowed_headers: vec!["*".into(), "x-amz-meta-ü".into()],
                expose_headers: vec!["ETag".into(), "x-amz-meta-a".into()],
                max_age_seconds: Some(3000),
            },
            rule("*", &["PUT", "POST", "DELETE"]),
        ],
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T>) {
    assert!(
        matches!(r, Err(StoreError::InvalidInput { .. })),
        "expected InvalidInput, got {r:?}"
    );
}

/// Set, read back exactly (rule order, every field), replace, delete; deleting twice succeeds.
pub async fn cors_set_get_delete_round_trip(store: Db) {
    assert!(store.create_bucket(&BucketSpec::new("site")).await.unwrap());
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), None);
    store.put_bucket_cors("site", &config()).await.unwrap();
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), Some(config()));
    let other = CorsConfig {
        rules: vec![rule("http://b.test", &["GET"])],
    };
    store.put_bucket_cors("site", &other).await.unwrap();
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), Some(other));
    store.delete_bucket_cors("site").await.unwrap();
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), None);
    store.delete_bucket_cors("site").await.unwrap();
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), None);
}

/// A configuration breaking S3's rules is refused and the stored one stays as it was.
pub async fn cors_invalid_config_changes_nothing(store: Db) {
    assert!(store.create_bucket(&BucketSpec::new("site")).await.unwrap());
    store.put_bucket_cors("site", &config()).await.unwrap();
    let bad = [
        CorsConfig { rules: Vec::new() },
        CorsConfig {
            rules: vec![rule("*", &["GET"]); cors::MAX_CORS_RULES + 1],
        },
        CorsConfig {
            rules: vec![rule("*", &["PATCH"])],
        },
        CorsConfig {
            rules: vec![rule("*", &["get"])],
        },
        CorsConfig {
            rules: vec![rule("*", &[])],
        },
        CorsConfig {
            rules: vec![rule("*.*.example", &["GET"])],
        },
        CorsConfig {
            rules: vec![CorsRule {
                allowed_origins: Vec::new(),
                ..rule("*", &["GET"])
            }],
        },
        CorsConfig {
            rules: vec![CorsRule {
                max_age_seconds: Some(-1),
                ..rule("*", &["GET"])
            }],
        },
        CorsConfig {
            rules: vec![CorsRule {
                allowed_headers: vec!["x-\0".into()],
                ..rule("*", &["GET"])
            }],
        },
    ];
    for c in &bad {
        assert_invalid(store.put_bucket_cors("site", c).await);
        assert_eq!(store.get_bucket_cors("site").await.unwrap(), Some(config()));
    }
    // The limit itself is accepted.
    let full = CorsConfig {
        rules: vec![rule("*", &["GET"]); cors::MAX_CORS_RULES],
    };
    store.put_bucket_cors("site", &full).await.unwrap();
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), Some(full));
}

/// Every CORS call on a bucket that does not exist answers `BucketNotFound` and creates
/// nothing; a malformed name is `InvalidInput`.
pub async fn cors_unknown_bucket_not_found(store: Db) {
    for r in [
        store.put_bucket_cors("ghost", &config()).await,
        store.delete_bucket_cors("ghost").await,
    ] {
        assert!(
            matches!(&r, Err(StoreError::BucketNotFound { bucket }) if bucket == "ghost"),
            "{r:?}"
        );
    }
    let r = store.get_bucket_cors("ghost").await;
    assert!(
        matches!(&r, Err(StoreError::BucketNotFound { bucket }) if bucket == "ghost"),
        "{r:?}"
    );
    assert!(store.list_buckets().await.unwrap().is_empty());
}

/// Deleting the bucket removes its CORS configuration: a bucket re-created under the name
/// starts without one.
pub async fn cors_removed_with_its_bucket(store: Db) {
    assert!(store.create_bucket(&BucketSpec::new("site")).await.unwrap());
    store.put_bucket_cors("site", &config()).await.unwrap();
    store.delete_bucket("site").await.unwrap();
    assert!(matches!(
        store.get_bucket_cors("site").await,
        Err(StoreError::BucketNotFound { .. })
    ));
    assert!(store.create_bucket(&BucketSpec::new("site")).await.unwrap());
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), None);
}

/// The configuration sync and a settings update leave the CORS configuration alone, and
/// setting CORS leaves the other settings alone.
pub async fn cors_independent_of_bucket_settings(store: Db) {
    assert!(store.create_bucket(&BucketSpec::new("site")).await.unwrap());
    store.put_bucket_cors("site", &config()).await.unwrap();
    let settings = BucketSettings {
        replication_factor: 2,
        max_bytes: 10,
        ..BucketSettings::default()
    };
    store
        .update_bucket_settings("site", &settings)
        .await
        .unwrap();
    let spec = BucketSpec {
        name: "site".into(),
        settings: BucketSettings {
            replication_factor: 3,
            routing: vec![A.into()],
            ..BucketSettings::default()
        },
    };
    assert!(
        store
            .sync_buckets(std::slice::from_ref(&spec))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_bucket_cors("site").await.unwrap(), Some(config()));
    store.delete_bucket_cors("site").await.unwrap();
    assert_eq!(
        store.get_bucket("site").await.unwrap().settings,
        spec.settings
    );
}
