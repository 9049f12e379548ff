//! One table of bad-input classes run against both engines: each call gives its typed error
//! and the database is unchanged (a full dump of every table before and after is compared).

use s3o_core::{
    CreateMultipartUploadParams, ImportedObject, MetadataStore, PendingObject, StoreError,
    StoredForm, Timestamp,
};
use s3o_reliability::{Engine, fresh};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Invalid,
    UnknownBackend,
}

fn class(e: &StoreError) -> Option<Want> {
    match e {
        StoreError::InvalidInput { .. } => Some(Want::Invalid),
        StoreError::UnknownBackend { .. } => Some(Want::UnknownBackend),
        _ => None,
    }
}

async fn run_table(engine: Engine) {
    let Some(db) = fresh(engine).await else {
        return;
    };
    let s: &MetadataStore = &db.store;
    s.sync_quota_limits(&[("a".into(), 1000), ("b".into(), 0)])
        .await
        .unwrap();
    s.record_object("seed", "a", 10, &StoredForm::default())
        .await
        .unwrap();
    s.create_multipart_upload(&CreateMultipartUploadParams {
        upload_id: "u1".into(),
        object_key: "seed".into(),
        backend_name: "a".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let long = "k".repeat(1025);
    let plain = StoredForm::default();
    let batch: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let pending = |key: &str, backend: &str, size: i64| PendingObject {
        intent_id: "i1".into(),
        object_key: key.into(),
        backend_name: backend.into(),
        size_bytes: size,
        form: StoredForm::default(),
        created_at: Timestamp::ZERO,
    };
    let before = db.dump().await;
    let mut checked = 0;
    macro_rules! case {
        ($name:expr, $want:expr, $call:expr) => {{
            let r = $call.await;
            let got = r.as_ref().err().and_then(class);
            assert_eq!(
                got,
                Some($want),
                "{} on {}: {:?}",
                $name,
                engine.name(),
                r.map(|_| ())
            );
            checked += 1;
        }};
    }
    use Want::*;
    case!("empty key", Invalid, s.record_object("", "a", 1, &plain));
    case!(
        "1025-byte key",
        Invalid,
        s.record_object(&long, "a", 1, &plain)
    );
    case!(
        "key with NUL",
        Invalid,
        s.record_object("a\0b", "a", 1, &plain)
    );
    case!(
        "negative size",
        Invalid,
        s.record_object("k", "a", -1, &plain)
    );
    case!(
        "negative plaintext size",
        Invalid,
        s.record_object(
            "k",
            "a",
            1,
            &StoredForm {
                encrypted: true,
                plaintext_size: -5,
                ..StoredForm::default()
            }
        )
    );
    case!(
        "unknown backend (record)",
        UnknownBackend,
        s.record_object("k", "nope", 1, &plain)
    );
    case!(
        "unknown backend (import)",
        UnknownBackend,
        s.import_object(&ImportedObject::new("k", "nope", 1))
    );
    case!(
        "negative size (import)",
        Invalid,
        s.import_object(&ImportedObject::new("k", "a", -3))
    );
    case!("empty key (delete)", Invalid, s.delete_object(""));
    case!("NUL key (get)", Invalid, s.get_all_object_locations("x\0"));
    case!("oversized batch", Invalid, s.delete_objects_batch(&batch));
    case!(
        "batch with empty key",
        Invalid,
        s.delete_objects_batch(&["ok".into(), String::new()])
    );
    case!(
        "part number 0",
        Invalid,
        s.record_part("u1", 0, "e", 1, &plain)
    );
    case!(
        "part number 10001",
        Invalid,
        s.record_part("u1", 10_001, "e", 1, &plain)
    );
    case!(
        "negative part size",
        Invalid,
        s.record_part("u1", 1, "e", -1, &plain)
    );
    case!(
        "negative quota limit",
        Invalid,
        s.sync_quota_limits(&[("a".into(), -1)])
    );
    case!(
        "empty backend name",
        Invalid,
        s.sync_quota_limits(&[(String::new(), 5)])
    );
    case!(
        "negative cleanup size",
        Invalid,
        s.enqueue_cleanup("a", "k", "r", -1)
    );
    case!(
        "unknown backend (cleanup)",
        UnknownBackend,
        s.enqueue_cleanup("nope", "k", "r", 1)
    );
    case!(
        "empty key (cleanup)",
        Invalid,
        s.enqueue_cleanup("a", "", "r", 1)
    );
    case!(
        "unknown backend (pending)",
        UnknownBackend,
        s.insert_pending(&pending("k", "nope", 1))
    );
    case!(
        "negative size (pending)",
        Invalid,
        s.insert_pending(&pending("k", "a", -1))
    );
    case!(
        "NUL key (pending)",
        Invalid,
        s.insert_pending(&pending("k\0", "a", 1))
    );
    case!(
        "unknown backend (multipart)",
        UnknownBackend,
        s.create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u2".into(),
            object_key: "k".into(),
            backend_name: "nope".into(),
            ..Default::default()
        })
    );
    case!(
        "empty key (multipart)",
        Invalid,
        s.create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u3".into(),
            object_key: String::new(),
            backend_name: "a".into(),
            ..Default::default()
        })
    );
    case!(
        "unknown backend (usage)",
        UnknownBackend,
        s.flush_usage_deltas("nope", "2026-11", 1, 1, 1)
    );
    case!(
        "replication factor 0",
        Invalid,
        s.remove_excess_copy("seed", "a", 0)
    );
    case!("NUL prefix (list)", Invalid, s.list_objects("p\0", "", 10));
    case!(
        "oversized prefix (list)",
        Invalid,
        s.list_objects(&long, "", 10)
    );
    case!(
        "invalid JSON payload",
        Invalid,
        s.insert_notification(
            "s3:ObjectCreated:Put",
            "{not json",
            "http://127.0.0.1:1/hook"
        )
    );
    let after = db.dump().await;
    assert_eq!(
        before,
        after,
        "{}: a rejected call changed the database",
        engine.name()
    );
    eprintln!(
        "{}: {checked} bad-input classes rejected with the database unchanged",
        engine.name()
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rejects_bad_input_and_changes_nothing() {
    run_table(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rejects_bad_input_and_changes_nothing() {
    run_table(Engine::Postgres).await;
}

#[tokio::test]
async fn malformed_urls_give_typed_errors() {
    let bad_sqlite = ["sqlite:", "sqlite://", "sqlit://x.db", "sqlite:memory"];
    for url in bad_sqlite {
        match s3o_sqlite::SqliteStore::open(url).await {
            Err(StoreError::InvalidInput { .. }) => {}
            Err(e) => panic!("{url}: wrong error {e:?}"),
            Ok(_) => panic!("{url}: accepted"),
        }
    }
    let bad_pg = [
        "postgres://",
        "mysql://root@127.0.0.1/x",
        "postgres://u@h:notaport/db",
        "postgres://u:secret@127.0.0.1:5432/db?sslmode=bogus",
    ];
    for url in bad_pg {
        match s3o_pg::PgStore::connect(url).await {
            Err(e @ StoreError::InvalidInput { .. }) => {
                assert!(
                    !e.to_string().contains("secret"),
                    "{url}: password leaked: {e}"
                );
            }
            Err(e) => panic!("{url}: wrong error {e:?}"),
            Ok(_) => panic!("{url}: accepted"),
        }
    }
}
