//! The cleanup queue and its dead-letter table.

use s3o_core::*;

use crate::fake::*;

// ---------- cleanup ----------

pub(crate) fn queue_row(id: i64, backend: &str, size: i64, last_error: &str) -> CleanupQueueRow {
    CleanupQueueRow {
        id,
        backend_name: backend.into(),
        object_key: format!("key-{id}"),
        reason: "overwrite".into(),
        size_bytes: size,
        attempts: 10,
        created_at: Timestamp::from_micros(5),
        last_error: last_error.into(),
        storage_key: String::new(),
    }
}

#[tokio::test]
async fn move_cleanup_to_dlq_happy_path_reads_inserts_deletes_and_keeps_orphans() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state.lock().unwrap().quotas.get_mut("a").unwrap().2 = 500;
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(7, queue_row(7, "a", 500, "old error"));
    assert!(
        ops::move_cleanup_to_dlq(&f, 7, "final error")
            .await
            .unwrap()
    );
    assert_eq!(
        f.log(),
        [
            "BEGIN",
            "get_cleanup_queue_row(7)",
            "insert_cleanup_dlq(7)",
            "delete_cleanup_item(7)",
            "COMMIT"
        ]
    );
    let s = f.state.lock().unwrap();
    assert_eq!(s.dlq[0].last_error, "final error");
    assert!(s.queue.is_empty());
    drop(s);
    assert_eq!(f.orphan("a"), 500, "orphan bytes untouched");
}

#[tokio::test]
async fn move_cleanup_to_dlq_preserves_last_error_and_handles_absence() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(1, queue_row(1, "a", 5, "kept"));
    assert!(ops::move_cleanup_to_dlq(&f, 1, "").await.unwrap());
    assert_eq!(f.state.lock().unwrap().dlq[0].last_error, "kept");
    f.clear_log();
    assert!(!ops::move_cleanup_to_dlq(&f, 99, "x").await.unwrap());
    assert!(!f.log().iter().any(|c| c.starts_with("insert_cleanup_dlq")));
}

#[tokio::test]
async fn move_cleanup_to_dlq_insert_failure_keeps_the_queue_row() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(3, queue_row(3, "a", 5, ""));
    f.fail_next(
        "insert_cleanup_dlq",
        StoreError::database(DbErrorKind::Other, "dlq", "x"),
    );
    assert!(ops::move_cleanup_to_dlq(&f, 3, "e").await.is_err());
    assert!(!f.log().iter().any(|c| c.starts_with("delete_cleanup_item")));
    assert!(f.state.lock().unwrap().queue.contains_key(&3));
}

#[tokio::test]
async fn sweep_decrements_orphans_once_and_only_when_needed() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state.lock().unwrap().quotas.get_mut("a").unwrap().2 = 100;
    assert_eq!(
        ops::sweep_stale_cleanup_queue_rows(&f, "key-1", "a")
            .await
            .unwrap(),
        0
    );
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("decrement_orphan_bytes"))
    );
    {
        let mut s = f.state.lock().unwrap();
        s.queue.insert(1, queue_row(1, "a", 30, ""));
        let mut second = queue_row(2, "a", 40, "");
        second.object_key = "key-1".into();
        s.queue.insert(2, second);
        let mut zero = queue_row(3, "a", 0, "");
        zero.object_key = "key-3".into();
        s.queue.insert(3, zero);
    }
    f.clear_log();
    assert_eq!(
        ops::sweep_stale_cleanup_queue_rows(&f, "key-1", "a")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        f.log()
            .iter()
            .filter(|c| c.starts_with("decrement_orphan_bytes"))
            .collect::<Vec<_>>(),
        ["decrement_orphan_bytes(a,70)"]
    );
    f.clear_log();
    assert_eq!(
        ops::sweep_stale_cleanup_queue_rows(&f, "key-3", "a")
            .await
            .unwrap(),
        1
    );
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("decrement_orphan_bytes")),
        "zero bytes"
    );
}

#[tokio::test]
async fn write_off_releases_orphans_per_backend_in_order() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    {
        let mut s = f.state.lock().unwrap();
        s.quotas.get_mut("a").unwrap().2 = 100;
        s.quotas.get_mut("b").unwrap().2 = 100;
        s.dlq = vec![
            queue_row(1, "b", 10, ""),
            queue_row(2, "a", 20, ""),
            queue_row(3, "b", 5, ""),
        ];
    }
    assert_eq!(
        ops::write_off_cleanup_dlq(&f, &[3, 1, 2, 2, 42])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        f.log()
            .iter()
            .filter(|c| c.starts_with("decrement_orphan_bytes"))
            .collect::<Vec<_>>(),
        [
            "decrement_orphan_bytes(a,20)",
            "decrement_orphan_bytes(b,15)"
        ]
    );
    assert_eq!((f.orphan("a"), f.orphan("b")), (80, 85));
}

fn orphan_entry(backend: &str, size: i64) -> CleanupEntry {
    CleanupEntry {
        backend_name: backend.into(),
        object_key: "k".into(),
        storage_key: "blobs/k".into(),
        reason: "not committed".into(),
        size_bytes: size,
    }
}

#[tokio::test]
async fn enqueue_orphaned_bytes_queues_then_charges_in_one_transaction() {
    let f = Fake::with_backends(&[("a", 0)]);
    let d = ops::enqueue_orphaned_bytes(&f, &orphan_entry("a", 7))
        .await
        .unwrap();
    assert_eq!(
        f.log(),
        [
            "BEGIN",
            "enqueue_cleanup_claimed(k,a,7)",
            "increment_orphan_bytes(a,7)",
            "COMMIT"
        ]
    );
    assert_eq!((d.storage_key.as_str(), d.size_bytes), ("blobs/k", 7));
    assert_eq!(d.cleanup.claimed_by, "fake-instance");
    assert_eq!(f.orphan("a"), 7);
    assert_eq!(f.state.lock().unwrap().queue.len(), 1);
}

#[tokio::test]
async fn enqueue_orphaned_bytes_unknown_backend_or_bad_entry_changes_nothing() {
    let f = Fake::with_backends(&[("a", 0)]);
    assert!(matches!(
        ops::enqueue_orphaned_bytes(&f, &orphan_entry("zz", 7)).await,
        Err(StoreError::UnknownBackend { .. })
    ));
    assert!(
        !f.log().iter().any(|c| c.starts_with("increment_orphan")),
        "no charge without a row: {:?}",
        f.log()
    );
    assert!(!f.log().iter().any(|c| c == "COMMIT"));
    f.clear_log();
    assert!(matches!(
        ops::enqueue_orphaned_bytes(&f, &orphan_entry("a", -1)).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(f.log().is_empty(), "invalid input opens no transaction");
    assert_eq!(f.orphan("a"), 0);
    assert!(f.state.lock().unwrap().queue.is_empty());
}
