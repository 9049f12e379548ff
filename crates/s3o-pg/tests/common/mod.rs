//! Harness: a fresh schema per test on the server named by `S3O_PG_URL`.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

use s3o_core::engine::LifecycleAdmin;
use s3o_pg::PgStore;
use s3o_pg::tokio_postgres::{self, NoTls};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The server URL, or `None` (after a visible SKIP line) when unset. With
/// `S3O_REQUIRE_PG=1` a missing URL fails the test instead.
pub fn base_url(test: &str) -> Option<String> {
    match std::env::var("S3O_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("S3O_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("S3O_REQUIRE_PG=1 but S3O_PG_URL is not set ({test})");
            }
            // Written to the process's stderr directly: libtest does not capture it, so the
            // skip is visible in a normal `cargo test` run.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIP {test}: S3O_PG_URL is not set");
            None
        }
    }
}

/// `url` with extra query parameters appended.
pub fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// A unique schema name for `test`.
pub fn schema_name(test: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let clean: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t_{clean}_{}_{n}_{nanos}", std::process::id())
}

/// One test's database: a migrated store in its own schema, backends `a` and `b` unlimited.
pub struct TestDb {
    pub store: PgStore,
    pub schema: String,
    pub base: String,
    pub url: String,
}

impl TestDb {
    /// Sets up a migrated store in a fresh schema, or `None` when skipped.
    pub async fn new(test: &str) -> Option<TestDb> {
        let base = base_url(test)?;
        let schema = schema_name(test);
        let url = with_params(&base, &format!("schema={schema}&pool_max_size=12"));
        let store = PgStore::connect(&url).await.expect("connect");
        store.run_migrations().await.expect("migrate");
        store
            .sync_quota_limits(&[("a".into(), 0), ("b".into(), 0)])
            .await
            .expect("sync quotas");
        Some(TestDb {
            store,
            schema,
            base,
            url,
        })
    }

    /// Another store on the same schema (another "instance").
    pub async fn second_store(&self) -> PgStore {
        PgStore::connect(&self.url)
            .await
            .expect("connect second store")
    }

    /// A plain driver connection with `search_path` set to this test's schema.
    pub async fn raw(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.base, NoTls)
            .await
            .expect("raw connect");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
            .batch_execute(&format!("SET search_path = {}", self.schema))
            .await
            .unwrap();
        client
    }

    /// Drops the schema.
    pub async fn finish(self) {
        self.store.close().await;
        let c = self.raw().await;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}
