//! Bucket deletion and the bucket-checked commit: lock order and refusals.

use s3o_core::*;

use crate::fake::*;

fn with_bucket(f: &Fake, name: &str) {
    f.state.lock().unwrap().buckets.insert(name.to_owned());
}

#[tokio::test]
async fn commit_into_a_bucket_locks_key_then_bucket_row_then_the_rest() {
    let f = Fake::with_backends(&[("a", 0)]);
    with_bucket(&f, "photos");
    ops::record_object_in_bucket(&f, "photos", "photos/k", "a", 10, &plain(), None, None)
        .await
        .unwrap();
    let log = f.log();
    assert_eq!(
        &log[..4],
        [
            "BEGIN",
            "acquire_key_lock(photos/k)",
            "lock_bucket_versioning(photos)",
            "get_existing_copies_for_update(photos/k)",
        ]
    );
    assert_eq!(f.used("a"), 10);
}

#[tokio::test]
async fn commit_into_a_missing_bucket_changes_nothing() {
    let f = Fake::with_backends(&[("a", 0)]);
    let e = ops::record_object_in_bucket(&f, "gone", "gone/k", "a", 10, &plain(), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::BucketNotFound { bucket } if bucket == "gone"),
        "{e:?}"
    );
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("insert_object_location"))
    );
    assert_eq!(f.used("a"), 0);
    // A key outside the bucket is refused before any transaction.
    f.clear_log();
    let e = ops::record_object_in_bucket(&f, "gone", "gonex/k", "a", 10, &plain(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
    assert!(f.log().is_empty());
}

#[tokio::test]
async fn delete_bucket_locks_the_row_before_checking_and_refuses_when_busy() {
    let f = Fake::with_backends(&[("a", 0)]);
    with_bucket(&f, "photos");
    f.put("photos/k", "a", 5, 10, plain());
    let e = ops::delete_bucket(&f, "photos").await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::BucketNotEmpty {
                reason: BucketBusy::Objects,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        f.log(),
        [
            "BEGIN",
            "lock_bucket(photos,Delete)",
            "bucket_busy(photos/)",
            "ROLLBACK"
        ]
    );
    assert!(f.state.lock().unwrap().buckets.contains("photos"));
}
