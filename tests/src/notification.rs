//! The notification outbox.

use std::time::Duration;

use crate::support::*;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("payload is JSON")
}

/// insert → pending → retry (deferred) → retry (due) → complete.
pub async fn outbox_lifecycle(store: Db) {
    three_backends(&store).await;
    let payload = r#"{"specversion": "1.0", "type": "s3:ObjectCreated:Put", "data": {"key": "photos/ü.jpg", "size": 42}}"#;
    let id = store
        .insert_notification("s3:ObjectCreated:Put", payload, "https://hooks.example/x")
        .await
        .unwrap();
    let pending = store.get_due_notifications(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let n = &pending[0];
    assert_eq!(n.id, id);
    assert_eq!(n.event_type, "s3:ObjectCreated:Put");
    assert_eq!(n.endpoint_url, "https://hooks.example/x");
    assert_eq!(n.attempts, 0);
    assert_eq!(json(&n.payload), json(payload));
    assert_eq!(json(&n.payload)["data"]["key"], "photos/ü.jpg");
    store
        .retry_notification(id, Duration::from_secs(3600), "503")
        .await
        .unwrap();
    assert!(store.get_due_notifications(10).await.unwrap().is_empty());
    store
        .retry_notification(id, Duration::ZERO, "timeout")
        .await
        .unwrap();
    let again = store.get_due_notifications(10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    store.complete_notification(id).await.unwrap();
    assert!(store.get_due_notifications(10).await.unwrap().is_empty());
    store.complete_notification(id).await.unwrap();
    assert_ledger(&store).await;
}

/// A payload that is not JSON is `InvalidInput` and nothing is queued.
pub async fn outbox_rejects_invalid_json(store: Db) {
    three_backends(&store).await;
    for bad in ["{not json", "", "{\"a\": }"] {
        assert_invalid(
            store.insert_notification("t", bad, "http://x").await,
            "invalid JSON payload",
        );
    }
    assert!(store.get_due_notifications(10).await.unwrap().is_empty());
    assert_ledger(&store).await;
}

/// Oldest first, at most `limit`.
pub async fn outbox_order_and_limit(store: Db) {
    three_backends(&store).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            store
                .insert_notification("t", &format!("{{\"n\": {i}}}"), "http://x")
                .await
                .unwrap(),
        );
    }
    let all = store.get_due_notifications(10).await.unwrap();
    assert_eq!(all.iter().map(|n| n.id).collect::<Vec<_>>(), ids);
    for (i, n) in all.iter().enumerate() {
        assert_eq!(json(&n.payload)["n"], i);
    }
    let two = store.get_due_notifications(2).await.unwrap();
    assert_eq!(
        two.iter().map(|n| n.id).collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    assert_ledger(&store).await;
}

/// After ten attempts a row is never returned again.
pub async fn outbox_drops_after_ten_attempts(store: Db) {
    three_backends(&store).await;
    let id = store
        .insert_notification("t", "{}", "http://x")
        .await
        .unwrap();
    let other = store
        .insert_notification("t", "[1, 2]", "http://y")
        .await
        .unwrap();
    for i in 0..10 {
        assert!(
            store
                .get_due_notifications(10)
                .await
                .unwrap()
                .iter()
                .any(|n| n.id == id),
            "dropped early at attempt {i}"
        );
        store
            .retry_notification(id, Duration::ZERO, "x")
            .await
            .unwrap();
    }
    let left = store.get_due_notifications(10).await.unwrap();
    assert_eq!(left.iter().map(|n| n.id).collect::<Vec<_>>(), vec![other]);
    assert_ledger(&store).await;
}

/// One payload form on both engines: the text comes back exactly as given (whitespace, key
/// order and duplicate keys included); NUL, raw or escaped, is refused on both.
pub async fn outbox_payload_stored_verbatim(store: Db) {
    three_backends(&store).await;
    let payloads = [
        r#"{"b":1,   "a" : [1.50, 1e2, -0],"b":2}"#,
        "  [ \"ü\\n\", {\"z\": null}, true ]  ",
        r#""just a string""#,
        "42",
    ];
    let mut ids = Vec::new();
    for p in payloads {
        ids.push(store.insert_notification("t", p, "http://x").await.unwrap());
    }
    let got = store.get_due_notifications(10).await.unwrap();
    assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), ids);
    for (n, p) in got.iter().zip(payloads) {
        assert_eq!(n.payload, p, "payload rewritten");
    }
    for bad in [r#"{"a":"x\u0000"}"#, r#"{"\u0000":1}"#, "\"a\0\""] {
        assert_invalid(store.insert_notification("t", bad, "http://x").await, bad);
    }
    assert_eq!(store.get_due_notifications(10).await.unwrap().len(), 4);
    assert_ledger(&store).await;
}
