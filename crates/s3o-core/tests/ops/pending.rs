//! Pending intents: superseded rules and promotion.

use s3o_core::*;

use crate::fake::*;

// ---------- pending ----------

pub(crate) fn intent(id: &str, key: &str, backend: &str, size: i64, created: i64) -> PendingObject {
    PendingObject {
        intent_id: id.into(),
        object_key: key.into(),
        backend_name: backend.into(),
        size_bytes: size,
        form: StoredForm {
            content_hash: "h".into(),
            ..plain()
        },
        created_at: Timestamp::from_micros(created),
    }
}

fn copy_at(micros: i64) -> ExistingCopy {
    ExistingCopy {
        backend_name: "a".into(),
        size_bytes: 1,
        created_at: Timestamp::from_micros(micros),
        encrypted: false,
        has_dek: false,
        storage_key: String::new(),
        etag: String::new(),
    }
}

#[test]
fn intent_superseded_rules() {
    let t = Timestamp::from_micros(100);
    assert!(!ops::intent_superseded(t, &[]));
    assert!(!ops::intent_superseded(t, &[copy_at(50), copy_at(99)]));
    assert!(ops::intent_superseded(t, &[copy_at(50), copy_at(101)]));
    assert!(
        !ops::intent_superseded(t, &[copy_at(100)]),
        "equal timestamps promote"
    );
    assert!(
        !ops::intent_superseded(t, &[copy_at(0)]),
        "zero timestamps are ignored"
    );
}

#[tokio::test]
async fn promote_pending_locks_key_before_claiming_and_commits() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "b", 5, 10, plain());
    let p = intent("i1", "k", "a", 8, 20);
    f.state
        .lock()
        .unwrap()
        .pending
        .insert("i1".into(), p.clone());
    f.clear_log();
    let (res, displaced) = ops::promote_pending(&f, &p).await.unwrap();
    assert_eq!(res, PendingPromoteResult::Committed);
    assert_eq!(
        displaced,
        [DeletedCopy {
            backend_name: "b".into(),
            size_bytes: 5,
            storage_key: "k".into(),
            cleanup: CleanupClaim {
                id: 1,
                claimed_by: "fake-instance".into(),
                claimed_at: Timestamp::from_micros(5_001),
            },
        }]
    );
    let log = f.log();
    assert_eq!(&log[1..3], ["acquire_key_lock(k)", "claim_pending(i1)"]);
    assert!(log.contains(&"delete_pending(i1)".to_string()));
    let s = f.state.lock().unwrap();
    assert!(s.pending.is_empty());
    assert_eq!(
        s.copies[&("k".to_string(), "a".to_string())]
            .form
            .content_hash,
        "h"
    );
}

#[tokio::test]
async fn promote_pending_already_resolved_and_superseded() {
    let f = Fake::with_backends(&[("a", 0)]);
    let p = intent("gone", "k", "a", 8, 20);
    let (res, d) = ops::promote_pending(&f, &p).await.unwrap();
    assert_eq!((res, d.len()), (PendingPromoteResult::AlreadyResolved, 0));
    assert_eq!(PendingPromoteResult::AlreadyResolved.as_u8(), 2);

    f.put("k", "a", 3, 30, plain());
    f.state
        .lock()
        .unwrap()
        .pending
        .insert("old".into(), intent("old", "k", "a", 8, 20));
    let (res, _) = ops::promote_pending(&f, &intent("old", "k", "a", 8, 20))
        .await
        .unwrap();
    assert_eq!(res, PendingPromoteResult::Superseded);
    assert!(f.state.lock().unwrap().pending.is_empty());
    assert_eq!(f.used("a"), 3, "superseded intent writes no metadata");
    assert_eq!(
        [
            PendingPromoteResult::Committed.as_u8(),
            PendingPromoteResult::Ambiguous.as_u8(),
            PendingPromoteResult::Superseded.as_u8()
        ],
        [0, 1, 3]
    );
}
