//! The delete-versus-write rule on PostgreSQL's row locks, with a transaction held open by
//! hand: a deletion waits for a commit holding the bucket row (KEY SHARE), a commit waits for
//! a deletion holding it (FOR UPDATE), and a settings update blocks neither.

use super::*;
use s3o_core::{BucketBusy, BucketSettings, BucketSpec, WritePrecondition};

async fn commit(s: &PgStore, bucket: &str, key: &str) -> s3o_core::Result<()> {
    s.record_object_in_bucket(
        bucket,
        key,
        "a",
        4,
        &StoredForm::default(),
        None,
        &WritePrecondition::default(),
    )
    .await
    .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_a_commit_in_flight_and_then_sees_its_object() {
    let db = setup!("bucket_delete_waits");
    let s = Arc::new(db.second_store().await);
    assert!(s.create_bucket(&BucketSpec::new("photos")).await.unwrap());
    let raw = db.raw().await;
    // A commit into the bucket, stopped after its bucket lock and its insert.
    raw.batch_execute(
        "BEGIN; SELECT 1 FROM buckets WHERE name = 'photos' FOR KEY SHARE; \
         INSERT INTO object_locations (object_key, backend_name, size_bytes) \
         VALUES ('photos/k', 'a', 0);",
    )
    .await
    .unwrap();
    let s2 = Arc::clone(&s);
    let deletion = tokio::spawn(async move { s2.delete_bucket("photos").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !deletion.is_finished(),
        "the deletion must wait for the commit"
    );
    raw.batch_execute("COMMIT").await.unwrap();
    match deletion.await.unwrap() {
        Err(StoreError::BucketNotEmpty { reason, .. }) => assert_eq!(reason, BucketBusy::Objects),
        other => panic!("expected BucketNotEmpty, got {other:?}"),
    }
    assert!(s.get_bucket("photos").await.is_ok());
    s.close().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_waits_for_a_deletion_in_flight_and_then_changes_nothing() {
    let db = setup!("bucket_commit_waits");
    let s = Arc::new(db.second_store().await);
    assert!(s.create_bucket(&BucketSpec::new("photos")).await.unwrap());
    let raw = db.raw().await;
    raw.batch_execute(
        "BEGIN; SELECT 1 FROM buckets WHERE name = 'photos' FOR UPDATE; \
         DELETE FROM buckets WHERE name = 'photos';",
    )
    .await
    .unwrap();
    let s2 = Arc::clone(&s);
    let write = tokio::spawn(async move { commit(&s2, "photos", "photos/k").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !write.is_finished(),
        "the commit must wait for the deletion"
    );
    raw.batch_execute("COMMIT").await.unwrap();
    match write.await.unwrap() {
        Err(StoreError::BucketNotFound { bucket }) => assert_eq!(bucket, "photos"),
        other => panic!("expected BucketNotFound, got {other:?}"),
    }
    assert!(matches!(
        s.get_all_object_locations("photos/k").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert_eq!(s.get_quota_stats().await.unwrap()["a"].bytes_used, 0);
    s.close().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_update_blocks_no_commit() {
    let db = setup!("bucket_update_no_block");
    let s = db.second_store().await;
    assert!(s.create_bucket(&BucketSpec::new("photos")).await.unwrap());
    let raw = db.raw().await;
    raw.batch_execute("BEGIN; UPDATE buckets SET max_bytes = 1 WHERE name = 'photos';")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), commit(&s, "photos", "photos/k"))
        .await
        .expect("a commit does not wait for a settings update")
        .unwrap();
    raw.batch_execute("ROLLBACK").await.unwrap();
    s.update_bucket_settings("photos", &BucketSettings::default())
        .await
        .unwrap();
    s.close().await;
    db.finish().await;
}
