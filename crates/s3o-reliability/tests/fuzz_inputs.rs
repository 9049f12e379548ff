//! A property test over the public API's inputs on both engines: keys, ids, sizes, counters,
//! timestamps, ages and JSON drawn from ranges that include the edges (empty, NUL, over-long,
//! `i64::MIN`/`MAX`, just over each documented limit). Every call must return without
//! panicking, either a correct answer or a typed error that is not a database failure; the
//! breaker stays closed; a call that errs changes no table; `bytes_used == Σ size_bytes` holds
//! after every call. CI cost is kept small: [`CASES`] calls per engine on one store.

use std::cell::Cell;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use s3o_core::breaker::{BreakerState, counts_as_failure};
use s3o_core::validate::{MAX_ID_BYTES, MAX_SIZE_BYTES, MAX_TIMESTAMP, MIN_TIMESTAMP};
use s3o_core::{
    CreateMultipartUploadParams, MetadataStore, PendingObject, StoreError, StoredForm, Timestamp,
};
use s3o_reliability::{Engine, TestDb, assert_ledger, fresh};

/// Calls per engine.
const CASES: u32 = 48;

/// One call of the public API with drawn arguments.
#[derive(Clone, Debug)]
enum Call {
    Record {
        key: String,
        size: i64,
    },
    Get {
        key: String,
    },
    Orphan {
        amount: i64,
    },
    Usage {
        period: String,
        api: i64,
        egress: i64,
    },
    Pending {
        id: String,
        key: String,
        size: i64,
        created_at: i64,
    },
    Stale {
        age: Duration,
    },
    Expired {
        prefix: String,
        age: Duration,
    },
    Claim {
        instance: String,
        age: Duration,
    },
    Notify {
        payload: String,
    },
    Upload {
        id: String,
    },
    Part {
        upload: String,
        part: i32,
        size: i64,
    },
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z/%_]{1,12}",
        1 => Just(String::new()),
        1 => "[a-z]{0,4}\u{0}[a-z]{0,4}",
        1 => (MAX_ID_BYTES - 2..MAX_ID_BYTES + 3).prop_map(|n| "k".repeat(n)),
        1 => (3000usize..13_000).prop_map(|n| "x".repeat(n)),
        2 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => -5i64..5000,
        1 => any::<i64>(),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => Just(MAX_SIZE_BYTES),
        1 => Just(MAX_SIZE_BYTES + 1),
    ]
}

fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => Just(0i64),
        1 => any::<i64>(),
        1 => Just(MIN_TIMESTAMP.as_micros()),
        1 => Just(MIN_TIMESTAMP.as_micros() - 1),
        1 => Just(MAX_TIMESTAMP.as_micros()),
        1 => Just(MAX_TIMESTAMP.as_micros() + 1),
        1 => Just(i64::MIN),
    ]
}

fn age() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..u64::MAX).prop_map(Duration::from_secs),
        (0u64..10_000).prop_map(Duration::from_secs),
    ]
}

fn payload() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => r#"\{"[a-z]{0,3}": ?[0-9]{1,3}\}"#,
        1 => Just(r#"{"a":"\u0000"}"#.to_owned()),
        1 => Just("[1, 2,  3]".to_owned()),
        2 => any::<String>(),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (text(), number()).prop_map(|(key, size)| Call::Record { key, size }),
        text().prop_map(|key| Call::Get { key }),
        number().prop_map(|amount| Call::Orphan { amount }),
        ("[0-9]{4}-[0-9]{2}|[a-z0-9-]{0,8}", number(), number()).prop_map(
            |(period, api, egress)| Call::Usage {
                period,
                api,
                egress
            }
        ),
        (text(), text(), number(), instant()).prop_map(|(id, key, size, created_at)| {
            Call::Pending {
                id,
                key,
                size,
                created_at,
            }
        }),
        age().prop_map(|age| Call::Stale { age }),
        (text(), age()).prop_map(|(prefix, age)| Call::Expired { prefix, age }),
        (text(), age()).prop_map(|(instance, age)| Call::Claim { instance, age }),
        payload().prop_map(|payload| Call::Notify { payload }),
        text().prop_map(|id| Call::Upload { id }),
        (text(), any::<i32>(), number()).prop_map(|(upload, part, size)| Call::Part {
            upload,
            part,
            size
        }),
    ]
}

async fn run(s: &MetadataStore, c: &Call) -> Result<(), StoreError> {
    let plain = StoredForm::default();
    match c {
        Call::Record { key, size } => s.record_object(key, "a", *size, &plain).await.map(|_| ()),
        Call::Get { key } => match s.get_all_object_locations(key).await {
            Ok(v) => {
                assert!(!v.is_empty(), "a found key has copies");
                Ok(())
            }
            Err(StoreError::ObjectNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Call::Orphan { amount } => s.increment_orphan_bytes("a", *amount).await,
        Call::Usage {
            period,
            api,
            egress,
        } => s.flush_usage_deltas("a", period, *api, *egress, 0).await,
        Call::Pending {
            id,
            key,
            size,
            created_at,
        } => {
            s.insert_pending(&PendingObject {
                intent_id: id.clone(),
                object_key: key.clone(),
                backend_name: "a".into(),
                size_bytes: *size,
                form: plain,
                created_at: Timestamp::from_micros(*created_at),
            })
            .await
        }
        Call::Stale { age } => s.get_stale_pending(*age, 10).await.map(|_| ()),
        Call::Expired { prefix, age } => s.list_expired_objects(prefix, *age, 10).await.map(|_| ()),
        Call::Claim { instance, age } => s
            .claim_pending_cleanups(5, instance, *age)
            .await
            .map(|_| ()),
        Call::Notify { payload } => s
            .insert_notification("s3:ObjectCreated:Put", payload, "http://127.0.0.1:1/hook")
            .await
            .map(|_| ()),
        Call::Upload { id } => {
            s.create_multipart_upload(&CreateMultipartUploadParams {
                upload_id: id.clone(),
                object_key: "k".into(),
                backend_name: "a".into(),
                ..Default::default()
            })
            .await
        }
        Call::Part { upload, part, size } => {
            match s.record_part(upload, *part, "etag", *size, &plain).await {
                Err(StoreError::MultipartUploadNotFound { .. }) => Ok(()),
                other => other.map(drop),
            }
        }
    }
}

/// Runs the call under every rule; `Ok(true)` when it answered with a typed error.
async fn check(db: &TestDb, c: &Call) -> Result<bool, TestCaseError> {
    let s = &db.store;
    let before = db.dump().await;
    let r = run(s, c).await;
    if let Err(e) = &r {
        prop_assert!(
            !counts_as_failure(e) && !matches!(e, StoreError::DbUnavailable),
            "{}: {c:?} gave a database failure: {e:?}",
            db.engine.name()
        );
        prop_assert_eq!(
            &db.dump().await,
            &before,
            "{}: {:?} failed with {:?} and changed the database",
            db.engine.name(),
            c,
            e
        );
    }
    let (state, stats) = db.breaker();
    prop_assert_eq!(state, BreakerState::Closed);
    prop_assert_eq!(stats.opened, 0);
    assert_ledger(s).await;
    Ok(r.is_err())
}

fn fuzz(engine: Engine) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(db) = rt.block_on(fresh(engine)) else {
        return;
    };
    rt.block_on(async {
        let s = &db.store;
        s.sync_quota_limits(&[("a".into(), 0)]).await.unwrap();
        s.create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "u1".into(),
            object_key: "k".into(),
            backend_name: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let (calls, errors) = (Cell::new(0u32), Cell::new(0u32));
    let result = runner.run(&call(), |c| {
        // Twice: the second run meets the state the first left (duplicates, full counters).
        for _ in 0..2 {
            calls.set(calls.get() + 1);
            if rt.block_on(check(&db, &c))? {
                errors.set(errors.get() + 1);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{}: {e}", engine.name());
    }
    eprintln!(
        "{}: {} fuzzed calls, {} answered with a typed error, none a database failure",
        engine.name(),
        calls.get(),
        errors.get()
    );
    rt.block_on(db.cleanup());
}

#[test]
fn sqlite_public_inputs_never_panic_or_trip_the_breaker() {
    fuzz(Engine::Sqlite);
}

#[test]
fn postgres_public_inputs_never_panic_or_trip_the_breaker() {
    fuzz(Engine::Postgres);
}
