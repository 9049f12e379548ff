//! Quota deltas, reconcile, encryption and backend removal.

use s3o_core::engine::{tx_fn, with_tx_val};
use s3o_core::*;

use std::collections::BTreeMap;

use crate::cleanup::queue_row;
use crate::fake::*;
use crate::pending::intent;

// ---------- quota deltas ----------

#[tokio::test]
async fn quota_deltas_apply_sorted_skip_zero_and_abort_on_first_error() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0), ("c", 0), ("d", 10)]);
    let mut deltas = ops::QuotaDeltas::new();
    deltas.insert("c".into(), 5);
    deltas.insert("a".into(), -3);
    deltas.insert("b".into(), 0);
    let body = tx_fn(move |tx| {
        let d = deltas.clone();
        Box::pin(async move { ops::apply_quota_deltas(tx, &d).await })
    });
    with_tx_val(&f, &body).await.unwrap();
    assert_eq!(
        quota_calls(&f.log()),
        [
            "decrement_backend_quota(a,3)",
            "increment_backend_quota(c,5)"
        ]
    );

    f.clear_log();
    let mut deltas = ops::QuotaDeltas::new();
    deltas.insert("d".into(), 11);
    deltas.insert("e".into(), -1);
    deltas.insert("c".into(), 1);
    let body = tx_fn(move |tx| {
        let d = deltas.clone();
        Box::pin(async move { ops::apply_quota_deltas(tx, &d).await })
    });
    assert!(matches!(
        with_tx_val(&f, &body).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(
        quota_calls(&f.log()),
        [
            "increment_backend_quota(c,1)",
            "increment_backend_quota(d,11)"
        ],
        "stops at the failing backend"
    );
    assert_eq!(f.used("c"), 5, "rolled back");
}

#[tokio::test]
async fn ledger_deltas_guard_the_growth_of_a_shrinking_overwrite_at_a_new_path() {
    let f = Fake::with_backends(&[("a", 100), ("b", 0)]);
    f.put("k", "a", 60, 0, StoredForm::default());
    f.put("m", "b", 10, 0, StoredForm::default());
    let apply = |used: &[(&str, i64)], orphan: &[(&str, i64)]| {
        let used: ops::QuotaDeltas = used.iter().map(|(b, d)| ((*b).to_owned(), *d)).collect();
        let orphan: ops::QuotaDeltas = orphan.iter().map(|(b, d)| ((*b).to_owned(), *d)).collect();
        tx_fn(move |tx| {
            let (u, o) = (used.clone(), orphan.clone());
            Box::pin(async move { ops::apply_ledger_deltas(tx, &u, &o).await })
        })
    };
    let calls = |f: &Fake| -> Vec<String> {
        f.log()
            .into_iter()
            .filter(|c| c.contains("_backend_quota") || c.contains("orphan_bytes"))
            .collect()
    };
    // 60 -> 50 at a new path: the 60 stay as orphans, the backend grows by 50 > 40 free.
    assert!(matches!(
        with_tx_val(&f, &apply(&[("a", -10)], &[("a", 60)])).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(
        calls(&f),
        [
            "decrement_backend_quota(a,60)",
            "increment_orphan_bytes(a,60)",
            "increment_backend_quota(a,50)"
        ]
    );
    assert_eq!((f.used("a"), f.orphan("a")), (60, 0), "rolled back");
    // 60 -> 40: exactly the room left.
    f.clear_log();
    with_tx_val(&f, &apply(&[("a", -20)], &[("a", 60)]))
        .await
        .unwrap();
    assert_eq!((f.used("a"), f.orphan("a")), (40, 60));
    // A delete (growth 0) and a move source keep the plain debit.
    f.clear_log();
    with_tx_val(&f, &apply(&[("b", -10)], &[("b", 10)]))
        .await
        .unwrap();
    assert_eq!(
        calls(&f),
        [
            "decrement_backend_quota(b,10)",
            "increment_orphan_bytes(b,10)"
        ]
    );
}

// ---------- reconcile, encryption ----------

#[tokio::test]
async fn reconcile_usage_corrects_drift_only_where_it_exists() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 10, 1, plain());
    f.state.lock().unwrap().quotas.get_mut("a").unwrap().0 += 99_999;
    let drift = ops::reconcile_usage(&f).await.unwrap();
    assert_eq!(drift, BTreeMap::from([("a".to_string(), -99_999)]));
    assert_eq!(f.used("a"), 10);
    assert!(ops::reconcile_usage(&f).await.unwrap().is_empty());
}

#[tokio::test]
async fn mark_encrypted_and_decrypted_adjust_by_the_locked_size() {
    let f = Fake::with_backends(&[("a", 100)]);
    f.put(
        "k",
        "a",
        90,
        1,
        StoredForm {
            content_hash: "h".into(),
            ..plain()
        },
    );
    // Unguarded: the bytes are already on the backend, so exceeding the limit is allowed.
    assert!(
        ops::mark_object_encrypted(&f, "k", "a", &[1, 2], "kv", 90, 120)
            .await
            .unwrap()
    );
    assert_eq!(f.used("a"), 120);
    let row = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert!(row.form.encrypted && row.form.content_hash == "h" && row.form.plaintext_size == 90);
    assert!(ops::mark_object_decrypted(&f, "k", "a", 90).await.unwrap());
    assert_eq!(f.used("a"), 90);
    let row = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert!(!row.form.encrypted && row.form.encryption_key.is_empty());
    assert!(
        !ops::mark_object_decrypted(&f, "gone", "a", 1)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn delete_backend_data_clears_dependents_before_the_quota_row() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 5, 1, plain());
    f.put("k", "b", 5, 2, plain());
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(1, queue_row(1, "a", 3, ""));
    ops::delete_backend_data(&f, "a").await.unwrap();
    let log = f.log();
    let steps: Vec<&String> = log
        .iter()
        .filter(|c| c.starts_with("delete_backend"))
        .collect();
    assert_eq!(
        steps,
        [
            "delete_backend_rows(cleanup_queue,a)",
            "delete_backend_rows(cleanup_dlq,a)",
            "delete_backend_rows(pending_objects,a)",
            "delete_backend_rows(multipart_uploads,a)",
            "delete_backend_rows(object_locations,a)",
            "delete_backend_rows(object_versions,a)",
            "delete_backend_rows(backend_usage,a)",
            "delete_backend_quota_row(a)",
        ]
    );
    {
        let s = f.state.lock().unwrap();
        assert!(!s.quotas.contains_key("a") && s.queue.is_empty() && s.copies.len() == 1);
    }
    assert!(matches!(
        ops::delete_backend_data(&f, "ghost").await,
        Err(StoreError::UnknownBackend { .. })
    ));
    assert!(
        f.state.lock().unwrap().quotas.contains_key("b"),
        "unknown backend changes nothing"
    );
}

#[tokio::test]
async fn promote_pending_commits_the_locked_row_not_the_callers_copy() {
    let f = Fake::with_backends(&[("a", 0)]);
    let stored = intent("i1", "k", "a", 8, 20);
    f.state.lock().unwrap().pending.insert("i1".into(), stored);
    let mut tampered = intent("i1", "k", "a", 999, 20);
    tampered.form.content_hash = "forged".into();
    let (res, _) = ops::promote_pending(&f, &tampered).await.unwrap();
    assert_eq!(res, PendingPromoteResult::Committed);
    assert_eq!(f.used("a"), 8, "charged the stored size");
    let copy = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert_eq!((copy.size_bytes, copy.form.content_hash.as_str()), (8, "h"));

    f.state
        .lock()
        .unwrap()
        .pending
        .insert("i2".into(), intent("i2", "other", "a", 1, 30));
    let wrong_key = intent("i2", "k", "a", 1, 30);
    assert!(matches!(
        ops::promote_pending(&f, &wrong_key).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(f.state.lock().unwrap().pending.contains_key("i2"));
}
