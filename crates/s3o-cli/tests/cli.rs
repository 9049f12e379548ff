//! Every `s3o` subcommand as a real process, against a temp SQLite database and against
//! PostgreSQL (own schema), asserting output and exit codes, error paths included.

use std::process::{Command, Output};
use std::time::Duration;

use s3o_store::StoredForm;

struct Db {
    url: String,
    sqlite_path: Option<std::path::PathBuf>,
    schema: Option<String>,
}

fn unique() -> String {
    format!("{}_{}", std::process::id(), fastrand_like())
}

fn fastrand_like() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn sqlite_db() -> Db {
    let dir = std::env::temp_dir().join(format!("s3o-cli-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.db");
    Db {
        url: format!("sqlite://{}", path.display()),
        sqlite_path: Some(path),
        schema: None,
    }
}

fn pg_db() -> Option<Db> {
    let base = match std::env::var("S3O_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert_ne!(
                std::env::var("S3O_REQUIRE_PG").as_deref(),
                Ok("1"),
                "S3O_REQUIRE_PG=1 but S3O_PG_URL is not set"
            );
            eprintln!("SKIP postgres: S3O_PG_URL not set");
            return None;
        }
    };
    let schema = format!("cli_{}", unique());
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(Db {
        url: format!("{base}{sep}schema={schema}"),
        sqlite_path: None,
        schema: Some(schema),
    })
}

fn s3o(db: &Db, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s3o"))
        .arg("--db")
        .arg(&db.url)
        .args(args)
        .env_remove("S3O_DATABASE_URL")
        .output()
        .expect("run s3o")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

async fn corrupt_bytes_used(db: &Db, backend: &str, delta: i64) {
    if let Some(path) = &db.sqlite_path {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute(
            "UPDATE backend_quotas SET bytes_used = bytes_used + ?1 WHERE backend_name = ?2",
            rusqlite::params![delta, backend],
        )
        .unwrap();
    } else {
        let base = std::env::var("S3O_PG_URL").unwrap();
        let (c, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let schema = db.schema.as_ref().unwrap();
        c.execute(
            &format!("UPDATE \"{schema}\".backend_quotas SET bytes_used = bytes_used + $1 WHERE backend_name = $2"),
            &[&delta, &backend],
        )
        .await
        .unwrap();
    }
}

async fn drop_schema(db: &Db) {
    if let Some(schema) = &db.schema {
        let base = std::env::var("S3O_PG_URL").unwrap();
        let (c, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let _ = c
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }
}

async fn walkthrough(db: Db) {
    // Before migrating: the error names the fix.
    let o = s3o(&db, &["status"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("s3o migrate"), "{}", text(&o));
    let o = s3o(&db, &["schema"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("behind"), "{}", text(&o));

    let o = s3o(&db, &["migrate"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = s3o(&db, &["--json", "schema"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["current"], v["expected"]);

    let o = s3o(&db, &["backends", "set", "backend-a", "--limit", "10GiB"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = s3o(&db, &["backends", "set", "backend-b", "--limit", "0"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("unlimited"));
    let o = s3o(&db, &["backends", "set", "backend-c", "--limit", "ten"]);
    assert_eq!(code(&o), 2, "{}", text(&o));

    // Seed the ledger through the library, as the orchestrator would.
    let store = s3o_store::open(&db.url).await.unwrap();
    store
        .record_object(
            "photos/cat.jpg",
            "backend-a",
            3 << 20,
            &StoredForm::default(),
        )
        .await
        .unwrap();
    store
        .record_object("photos/dog.jpg", "backend-b", 1000, &StoredForm::default())
        .await
        .unwrap();
    for (key, size) in [("old/1", 500), ("old/2", 700)] {
        store
            .enqueue_cleanup("backend-a", key, "overwrite", size)
            .await
            .unwrap();
        store
            .increment_orphan_bytes("backend-a", size)
            .await
            .unwrap();
    }
    let claimed = store
        .claim_pending_cleanups(10, "test", Duration::from_secs(300))
        .await
        .unwrap();
    for item in &claimed {
        assert!(
            store
                .move_cleanup_to_dlq(item.id, "403 from backend")
                .await
                .unwrap()
        );
    }
    store
        .insert_pending(&s3o_store::PendingObject {
            intent_id: "intent-1".into(),
            object_key: "photos/bird.jpg".into(),
            backend_name: "backend-b".into(),
            size_bytes: 42,
            form: StoredForm::default(),
            created_at: s3o_store::Timestamp::ZERO,
        })
        .await
        .unwrap();

    // One queue row in each state: due, claimed (born claimed by a delete), none waiting.
    store
        .enqueue_cleanup("backend-b", "stray", "found", 5)
        .await
        .unwrap();
    store.increment_orphan_bytes("backend-b", 5).await.unwrap();
    store
        .record_object("tmp", "backend-b", 7, &StoredForm::default())
        .await
        .unwrap();
    store.delete_object("tmp").await.unwrap();

    let o = s3o(&db, &["status"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("backend-a") && t.contains("10.0 GiB") && t.contains("3.0 MiB"),
        "{t}"
    );
    assert!(
        t.contains("cleanup queue 2 (due 1, claimed 1, waiting 0)"),
        "{t}"
    );
    assert!(
        t.contains("dead letters  2") && t.contains("pending       1"),
        "{t}"
    );
    let o = s3o(&db, &["--json", "--bytes", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cleanup_dlq_depth"], 2);
    assert_eq!(
        v["cleanup_queue"],
        serde_json::json!({"due": 1, "claimed": 1, "waiting": 0})
    );
    let a = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "backend-a")
        .unwrap()
        .clone();
    assert_eq!(a["bytes_used"], 3 << 20);
    assert_eq!(a["orphan_bytes"], 1200);
    assert_eq!(a["available_bytes"], (10i64 << 30) - (3 << 20) - 1200);

    let o = s3o(&db, &["--json", "dlq", "list", "--backend", "backend-a"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["last_error"] == "403 from backend"));
    let o = s3o(&db, &["--json", "dlq", "list", "--backend", "backend-b"]);
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
            .unwrap()
            .len(),
        0
    );

    // verify: consistent ledger (orphan bytes equal queue + DLQ bytes).
    let o = s3o(&db, &["verify"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("ledger consistent"));

    // Write off one DLQ row: its bytes leave orphan_bytes in the same transaction.
    let first = rows[0]["id"].as_i64().unwrap();
    let size = rows[0]["size_bytes"].as_i64().unwrap();
    let o = s3o(&db, &["dlq", "write-off", &first.to_string()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let stats = store.get_quota_stats().await.unwrap();
    assert_eq!(stats["backend-a"].orphan_bytes, 1200 - size);
    let o = s3o(&db, &["dlq", "write-off", "999999"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let o = s3o(&db, &["dlq", "write-off", "abc"]);
    assert_eq!(code(&o), 2, "{}", text(&o));

    let o = s3o(&db, &["--json", "dlq", "requeue"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["requeued"], 1);
    assert_eq!(store.cleanup_dlq_depth().await.unwrap(), 0);

    let o = s3o(&db, &["--json", "pending", "list"]);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["intent_id"], "intent-1");
    let o = s3o(&db, &["--json", "pending", "list", "--older-than", "2h"]);
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
            .unwrap()
            .len(),
        0
    );
    let o = s3o(&db, &["pending", "list", "--older-than", "soon"]);
    assert_eq!(code(&o), 2);

    // Drift: verify fails with 1, --repair fixes bytes_used and says what it changed.
    corrupt_bytes_used(&db, "backend-b", 99_999).await;
    let o = s3o(&db, &["verify"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("99999"), "{}", text(&o));
    let o = s3o(&db, &["verify", "--repair"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("repaired backend-b: bytes_used changed by -99999"),
        "{}",
        text(&o)
    );
    let o = s3o(&db, &["verify"]);
    assert_eq!(code(&o), 0, "{}", text(&o));

    // Backend removal needs --yes; unknown backends name the fix.
    let o = s3o(&db, &["backends", "remove", "backend-b"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("--yes"));
    let o = s3o(&db, &["backends", "remove", "ghost", "--yes"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("unknown backend"), "{}", text(&o));
    let o = s3o(&db, &["backends", "remove", "backend-b", "--yes"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        !store
            .get_quota_stats()
            .await
            .unwrap()
            .contains_key("backend-b")
    );

    // Month usage: what the gateways flushed, per backend; a backend without calls shows 0.
    store
        .flush_usage_deltas("backend-a", "2026-11", 7, 2048, 100)
        .await
        .unwrap();
    store
        .flush_usage_deltas("backend-a", "2026-11", 3, 0, 0)
        .await
        .unwrap();
    store
        .flush_usage_deltas("backend-a", "2026-10", 99, 99, 99)
        .await
        .unwrap();
    let o = s3o(&db, &["--json", "usage", "--month", "2026-11"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["month"], "2026-11");
    let a = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "backend-a")
        .unwrap()
        .clone();
    assert_eq!(
        (
            a["api_requests"].as_i64(),
            a["egress_bytes"].as_i64(),
            a["ingress_bytes"].as_i64()
        ),
        (Some(10), Some(2048), Some(100))
    );
    let o = s3o(&db, &["usage", "--month", "2026-11"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("2.0 KiB"), "{}", text(&o));
    let o = s3o(&db, &["--json", "usage"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["month"].as_str().unwrap().len(), 7, "the current month");
    let o = s3o(&db, &["usage", "--month", "2026-13"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("YYYY-MM"), "{}", text(&o));

    let o = s3o(&db, &["frobnicate"]);
    assert_eq!(code(&o), 2);
    store.close().await;
    drop_schema(&db).await;
}

/// `s3o status` counts what versioning keeps: noncurrent copies and bytes per backend and
/// the delete markers, in the table and in `--json`.
async fn status_counts_versions(db: Db) {
    let o = s3o(&db, &["migrate"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    for b in ["backend-a", "backend-b"] {
        let o = s3o(&db, &["backends", "set", b, "--limit", "0"]);
        assert_eq!(code(&o), 0, "{}", text(&o));
    }
    let store = s3o_store::open(&db.url).await.unwrap();
    store
        .create_bucket(&s3o_store::BucketSpec::new("vers"))
        .await
        .unwrap();
    store
        .set_bucket_versioning("vers", s3o_store::Versioning::Enabled)
        .await
        .unwrap();
    let commit = |key: &'static str, backend: &'static str, size: i64| {
        let store = store.clone();
        async move {
            store
                .commit_object_in_bucket(
                    "vers",
                    key,
                    backend,
                    size,
                    &StoredForm {
                        storage_key: format!("{key}-{size}"),
                        ..StoredForm::default()
                    },
                    None,
                    &s3o_store::WritePrecondition::default(),
                )
                .await
                .unwrap()
        }
    };
    commit("vers/a", "backend-a", 3000).await;
    commit("vers/a", "backend-a", 10).await;
    commit("vers/b", "backend-b", 700).await;
    store
        .delete_object_in_bucket("vers", "vers/b", None)
        .await
        .unwrap();
    store
        .delete_object_in_bucket("vers", "vers/ghost", None)
        .await
        .unwrap();
    let o = s3o(&db, &["--bytes", "status"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("NONCURRENT BYTES"), "{t}");
    assert!(t.contains("delete markers 2"), "{t}");
    let row = |b: &str| {
        t.lines()
            .find(|l| l.starts_with(b))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // BACKEND LIMIT USED ORPHAN AVAILABLE OBJECTS NONCURRENT NONCURRENT-BYTES
    assert_eq!(row("backend-a")[5..], ["2", "1", "3000"], "{t}");
    assert_eq!(row("backend-b")[5..], ["1", "1", "700"], "{t}");
    let o = s3o(&db, &["--json", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["delete_markers"], 2);
    let a = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "backend-a")
        .unwrap()
        .clone();
    assert_eq!(
        (
            &a["noncurrent_versions"],
            &a["noncurrent_bytes"],
            &a["bytes_used"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(3000),
            &serde_json::json!(3010)
        )
    );
    store.close().await;
    drop_schema(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_versions_sqlite() {
    status_counts_versions(sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_versions_postgres() {
    if let Some(db) = pg_db() {
        status_counts_versions(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_walkthrough() {
    walkthrough(sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_walkthrough() {
    if let Some(db) = pg_db() {
        walkthrough(db).await;
    }
}

#[test]
fn unreachable_database_exits_2_without_echoing_the_password() {
    let db = Db {
        url: "postgres://admin:hunter2@127.0.0.1:1/ledger?connect_timeout=2".into(),
        sqlite_path: None,
        schema: None,
    };
    let o = s3o(&db, &["status"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let t = text(&o);
    assert!(!t.contains("hunter2"), "password echoed: {t}");
    assert!(t.contains("admin:***@127.0.0.1:1"), "{t}");
    let db = Db {
        url: "mysql://root@localhost/x".into(),
        sqlite_path: None,
        schema: None,
    };
    let o = s3o(&db, &["status"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o).contains("accepted schemes"), "{}", text(&o));
}
