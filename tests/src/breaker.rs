//! The circuit breaker, as far as a healthy database shows it.

use s3o_store::*;

use crate::support::*;

/// Calls succeed while the breaker is closed.
pub async fn calls_succeed_while_closed(store: Db) {
    three_backends(&store).await;
    for i in 0..50 {
        put(&store, &format!("k{i}"), [A, B, C][i % 3], 1).await;
        store.get_quota_stats().await.expect("read while closed");
    }
    assert_eq!(
        store
            .list_objects("", "", 1000)
            .await
            .unwrap()
            .objects
            .len(),
        50
    );
    assert_ledger(&store).await;
}

/// Answers about data (not found, unknown backend, bad input, no space) are not database
/// failures: many of them in a row never open the breaker.
pub async fn answers_do_not_open_breaker(store: Db) {
    backends(&store, &[(A, 10)]).await;
    for i in 0..30 {
        assert!(matches!(
            store
                .get_all_object_locations(&format!("missing-{i}"))
                .await,
            Err(StoreError::ObjectNotFound { .. })
        ));
        assert!(matches!(
            store.delete_object("missing").await,
            Err(StoreError::ObjectNotFound { .. })
        ));
        assert!(matches!(
            store.get_multipart_upload("missing").await,
            Err(StoreError::MultipartUploadNotFound { .. })
        ));
        assert_unknown_backend(
            store
                .record_object("k", UNKNOWN, 1, &StoredForm::default())
                .await,
            UNKNOWN,
        );
        assert_no_space(
            store
                .record_object("k", A, 11, &StoredForm::default())
                .await,
        );
        assert_invalid(
            store.record_object("", A, 1, &StoredForm::default()).await,
            "empty key",
        );
    }
    put(&store, "k", A, 10).await;
    assert_eq!(placement(&store, "k").await, vec![(A.to_owned(), 10)]);
    assert_ledger(&store).await;
}
