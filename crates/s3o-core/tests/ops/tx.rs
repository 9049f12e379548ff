//! `with_tx_val` and the retry budget.

use std::sync::atomic::Ordering;

use s3o_core::engine::{tx_fn, with_tx_val};
use s3o_core::*;

use crate::fake::*;

// ---------- with_tx_val ----------

#[tokio::test]
async fn with_tx_val_returns_value_on_success() {
    let f = Fake::default();
    let body = tx_fn(|_tx| Box::pin(async { Ok(42) }));
    assert_eq!(with_tx_val(&f, &body).await.unwrap(), 42);
    assert_eq!(f.log(), ["BEGIN", "COMMIT"]);
}

#[tokio::test]
async fn with_tx_val_drops_value_on_body_error_and_rolls_back() {
    let f = Fake::default();
    let body = tx_fn(|tx| {
        Box::pin(async move {
            tx.acquire_key_lock("k").await?;
            Err::<i32, _>(StoreError::NoSpaceAvailable)
        })
    });
    assert!(matches!(
        with_tx_val(&f, &body).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(f.log(), ["BEGIN", "acquire_key_lock(k)", "ROLLBACK"]);
}

#[tokio::test]
async fn with_tx_val_surfaces_runner_errors() {
    let f = Fake {
        fail_begin: true,
        ..Fake::default()
    };
    let body = tx_fn(|_tx| Box::pin(async { Ok(1) }));
    let err = with_tx_val(&f, &body).await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connection));

    // A commit failure after a successful body drops the value too.
    let f = Fake {
        fail_commit: true,
        ..Fake::default()
    };
    assert!(with_tx_val(&f, &body).await.is_err());
    assert_eq!(f.log(), ["BEGIN", "COMMIT"]);
}

#[tokio::test]
async fn runner_retries_retryable_conflicts_a_bounded_number_of_times() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.fail_next("acquire_key_lock", deadlock());
    f.fail_next("acquire_key_lock", deadlock());
    let copies = ops::record_object(&f, "k", "a", 5, &plain(), None)
        .await
        .unwrap();
    assert!(copies.is_empty());
    assert_eq!(f.begins.load(Ordering::SeqCst), 3);
    assert_eq!(f.used("a"), 5);

    let f = Fake::with_backends(&[("a", 0)]);
    for _ in 0..10 {
        f.fail_next("acquire_key_lock", deadlock());
    }
    let err = ops::record_object(&f, "k", "a", 5, &plain(), None)
        .await
        .unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Deadlock));
    assert_eq!(f.begins.load(Ordering::SeqCst), 5, "default max_attempts");
    assert_eq!(f.used("a"), 0);

    // Non-retryable errors are not retried.
    let f = Fake::with_backends(&[("a", 0)]);
    f.fail_next(
        "acquire_key_lock",
        StoreError::database(DbErrorKind::Other, "x", "y"),
    );
    assert!(
        ops::record_object(&f, "k", "a", 5, &plain(), None)
            .await
            .is_err()
    );
    assert_eq!(f.begins.load(Ordering::SeqCst), 1);
}
