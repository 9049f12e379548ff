//! The handle records its metrics through the `metrics` facade: latency per operation, errors
//! by kind, breaker state and queue depths, labelled by engine. Its own test binary, because it
//! installs the process-wide recorder.
#![cfg(all(feature = "metrics", feature = "sqlite"))]

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use s3o_store::StoredForm;
use s3o_store::metrics as names;

/// One recorded metric: name, labels, value.
type Recorded = (String, Vec<(String, String)>, DebugValue);

fn find<'a>(snap: &'a [Recorded], name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    snap.iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
}

#[tokio::test]
async fn the_handle_records_operations_errors_breaker_and_depths() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder of this binary");

    let dir = std::env::temp_dir().join(format!("s3o-store-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("meta.db").display());
    let store = s3o_store::open_and_migrate(&url).await.unwrap();
    store.register_backends(&[("a".into(), 0)]).await.unwrap();
    for k in ["x", "y"] {
        store
            .record_object(k, "a", 5, &StoredForm::default())
            .await
            .unwrap();
    }
    // Overwrite on another backend is not needed: a delete enqueues the copy's bytes.
    store.delete_object("x").await.unwrap();
    assert!(store.get_all_object_locations("missing").await.is_err());
    assert_eq!(store.cleanup_queue_depth().await.unwrap(), 1);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 0);
    store.close().await;

    let snap: Vec<Recorded> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(ck, _, _, v)| {
            let key = ck.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, v)
        })
        .collect();
    match find(
        &snap,
        names::OPERATION_DURATION,
        &[("operation", "record_object"), ("engine", "sqlite")],
    ) {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 2, "two writes"),
        other => panic!("record_object latency: {other:?}"),
    }
    match find(
        &snap,
        names::OPERATION_ERRORS,
        &[
            ("operation", "get_all_object_locations"),
            ("kind", "object_not_found"),
        ],
    ) {
        Some(DebugValue::Counter(1)) => {}
        other => panic!("error counter: {other:?}"),
    }
    assert!(
        find(
            &snap,
            names::OPERATION_ERRORS,
            &[("operation", "record_object")]
        )
        .is_none(),
        "successful calls count no error"
    );
    match find(&snap, names::BREAKER_STATE, &[("engine", "sqlite")]) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 0.0, "closed"),
        other => panic!("breaker gauge: {other:?}"),
    }
    match find(&snap, names::CLEANUP_QUEUE_DEPTH, &[("engine", "sqlite")]) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 1.0),
        other => panic!("queue depth: {other:?}"),
    }
    match find(&snap, names::CLEANUP_DLQ_DEPTH, &[("engine", "sqlite")]) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 0.0),
        other => panic!("dlq depth: {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}
