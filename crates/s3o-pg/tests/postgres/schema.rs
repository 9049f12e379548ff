//! Migrations and schema checks on PostgreSQL.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_migrators_on_one_empty_schema() {
    let Some(base) = common::base_url("five_migrators") else {
        return;
    };
    let schema = common::schema_name("five_migrators");
    let url = common::with_params(&base, &format!("schema={schema}&pool_max_size=2"));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let s = PgStore::connect(&url).await.unwrap();
            let v = s.run_migrations().await.unwrap();
            s.verify_schema_version().await.unwrap();
            v
        }));
    }
    for t in tasks {
        let v = t.await.unwrap();
        assert_eq!(
            (v.current, v.expected),
            (EXPECTED_SCHEMA_VERSION, EXPECTED_SCHEMA_VERSION)
        );
    }
    let s = PgStore::connect(&url).await.unwrap();
    // Twice is a no-op.
    assert_eq!(
        s.run_migrations().await.unwrap().current,
        EXPECTED_SCHEMA_VERSION
    );
    let (c, conn) = s3o_pg::tokio_postgres::connect(&base, s3o_pg::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = c
        .query_one(
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) \
                 FROM {schema}.s3o_schema_version"
            ),
            &[],
        )
        .await
        .unwrap();
    let (n, distinct, max): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(n, distinct, "each migration recorded once");
    assert_eq!(max, EXPECTED_SCHEMA_VERSION);
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_schema_version_names_the_fix() {
    let Some(base) = common::base_url("verify_schema") else {
        return;
    };
    let schema = common::schema_name("verify_schema");
    let url = common::with_params(&base, &format!("schema={schema}"));
    let s = PgStore::connect(&url).await.unwrap();
    let schema_error = |e: StoreError| {
        assert_eq!(e.db_kind(), Some(DbErrorKind::Schema), "{e:?}");
        e.to_string()
    };
    // Unmigrated (the schema does not even exist yet).
    let e = schema_error(s.verify_schema_version().await.unwrap_err());
    assert!(e.contains("run migrations"), "{e}");
    assert_eq!(s.schema_version().await.unwrap().current, 0);
    s.run_migrations().await.unwrap();
    assert_eq!(
        s.verify_schema_version().await.unwrap().current,
        EXPECTED_SCHEMA_VERSION
    );
    // A newer database than this binary.
    let (c, conn) = s3o_pg::tokio_postgres::connect(&base, s3o_pg::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!(
        "INSERT INTO {schema}.s3o_schema_version (version, name) VALUES (99, 'future')"
    ))
    .await
    .unwrap();
    let e = schema_error(s.verify_schema_version().await.unwrap_err());
    assert!(e.contains("upgrade the binary"), "{e}");
    let e = schema_error(s.run_migrations().await.unwrap_err());
    assert!(e.contains("upgrade the binary"), "{e}");
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Migration 3 dead-letters rows an older binary left stuck at the attempt limit and keeps
/// every other row; orphan bytes do not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_3_dead_letters_rows_stuck_at_the_attempt_limit() {
    let Some(base) = common::base_url("migration_3") else {
        return;
    };
    let schema = common::schema_name("migration_3");
    let (c, conn) = s3o_pg::tokio_postgres::connect(&base, s3o_pg::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!(
        "CREATE SCHEMA {schema}; SET search_path = {schema}; {} {} \
         CREATE TABLE s3o_schema_version (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
           applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()); \
         INSERT INTO s3o_schema_version (version, name) VALUES (1, 'init'), (2, 'indexes'); \
         INSERT INTO backend_quotas (backend_name, bytes_used, bytes_limit, orphan_bytes) \
           VALUES ('b1', 0, 0, 111); \
         INSERT INTO cleanup_queue (id, backend_name, object_key, reason, size_bytes, \
           created_at, attempts, last_error) VALUES \
           (7, 'b1', 'stuck', 'overwrite', 100, '2020-01-01T00:00:00Z', 10, 'gone for good'), \
           (8, 'b1', 'live', 'delete', 11, NOW(), 3, NULL);",
        include_str!("../../../../migrations/postgres/0001_init.sql"),
        include_str!("../../../../migrations/postgres/0002_indexes.sql"),
    ))
    .await
    .unwrap();
    let url = common::with_params(&base, &format!("schema={schema}"));
    let s = PgStore::connect(&url).await.unwrap();
    assert_eq!(
        s.run_migrations().await.unwrap().current,
        EXPECTED_SCHEMA_VERSION
    );
    let dlq = s.list_cleanup_dlq(None, 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(
        (
            d.original_id,
            d.object_key.as_str(),
            d.attempts,
            d.size_bytes,
            d.last_error.as_str(),
            d.storage_key.as_str()
        ),
        (7, "stuck", 10, 100, "gone for good", "stuck")
    );
    let queue = s.get_due_cleanups(10).await.unwrap();
    assert_eq!(queue.iter().map(|i| i.id).collect::<Vec<_>>(), vec![8]);
    assert_eq!(s.get_quota_stats().await.unwrap()["b1"].orphan_bytes, 111);
    assert_eq!(s.cleanup_bytes_by_backend().await.unwrap()["b1"], (11, 100));
    s.close().await;
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
