//! Monthly usage counters.

use s3o_store::*;

use crate::support::*;

fn stat(api: i64, egress: i64, ingress: i64) -> UsageStat {
    UsageStat {
        api_requests: api,
        egress_bytes: egress,
        ingress_bytes: ingress,
    }
}

/// Two flushes accumulate; periods and backends are separate.
pub async fn usage_flush_accumulates(store: Db) {
    three_backends(&store).await;
    store
        .flush_usage_deltas(A, "2026-04", 10, 100, 1000)
        .await
        .unwrap();
    store
        .flush_usage_deltas(A, "2026-04", 5, 50, 500)
        .await
        .unwrap();
    store
        .flush_usage_deltas(B, "2026-04", 1, 0, 0)
        .await
        .unwrap();
    store
        .flush_usage_deltas(A, "2026-05", 7, 7, 7)
        .await
        .unwrap();
    let april = store.get_usage_for_period("2026-04").await.unwrap();
    assert_eq!(april.len(), 2);
    assert_eq!(april[A], stat(15, 150, 1500));
    assert_eq!(april[B], stat(1, 0, 0));
    let may = store.get_usage_for_period("2026-05").await.unwrap();
    assert_eq!(may.len(), 1);
    assert_eq!(may[A], stat(7, 7, 7));
    assert!(
        store
            .get_usage_for_period("2020-01")
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// Flushing for an unknown backend is `UnknownBackend`.
pub async fn usage_unknown_backend(store: Db) {
    three_backends(&store).await;
    assert_unknown_backend(
        store.flush_usage_deltas(UNKNOWN, "2026-04", 1, 1, 1).await,
        UNKNOWN,
    );
    assert!(
        store
            .get_usage_for_period("2026-04")
            .await
            .unwrap()
            .is_empty()
    );
    assert_ledger(&store).await;
}

/// Concurrent flushers converge without losing a delta.
pub async fn concurrent_usage_flushes_converge(store: Db) {
    three_backends(&store).await;
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.flush_usage_deltas(A, "2026-06", 1, i, 2 * i)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total: i64 = (0..16).sum();
    assert_eq!(
        store.get_usage_for_period("2026-06").await.unwrap()[A],
        stat(16, total, 2 * total)
    );
    assert_ledger(&store).await;
}
