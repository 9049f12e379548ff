//! The PostgreSQL server stopped and restarted once during a run. Its own test binary with a
//! single test, so no other PostgreSQL test of this crate runs while the server is down.
//!
//! Runs only where the test can control the server (`pg_ctlcluster` present, running as root,
//! `S3O_PG_RESTART=1`); otherwise it says so visibly and passes. CI sets `S3O_PG_RESTART=1`.

use std::process::Command;
use std::time::Duration;

use s3o_core::breaker::{BreakerConfig, BreakerState};
use s3o_core::{MetadataStore, StoreError, StoredForm};
use s3o_reliability::{assert_ledger, pg_admin, pg_url};

fn cluster() -> Option<String> {
    if std::env::var("S3O_PG_RESTART").as_deref() != Ok("1") {
        eprintln!(
            "SKIP restart: set S3O_PG_RESTART=1 to let this test stop and start the local PostgreSQL"
        );
        return None;
    }
    let versions = std::fs::read_dir("/etc/postgresql").ok()?;
    let mut v: Vec<String> = versions
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v.pop()
}

fn pg_ctl(version: &str, action: &str) {
    let mut cmd = Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", version, "main", action]);
    if action == "stop" {
        cmd.args(["-m", "fast"]);
    }
    let status = cmd.status().expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_opens_and_closes_the_breaker() {
    let Some(base) = pg_url() else { return };
    let Some(version) = cluster() else { return };
    let schema = format!("restart_{}_{}", std::process::id(), fastrand::u32(..));
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}");
    let opts = s3o_pg::PgOptions {
        breaker: BreakerConfig {
            failure_threshold: 3,
            open_timeout: Duration::from_millis(200),
            ..BreakerConfig::default()
        },
        wait_timeout: Duration::from_secs(2),
        create_timeout: Duration::from_secs(2),
        ..s3o_pg::PgOptions::default()
    };
    let store: MetadataStore = s3o_pg::open_with(&url, opts).await.expect("connect");
    let pg = store.clone();
    store.run_migrations().await.expect("migrate");
    store.sync_quota_limits(&[("a".into(), 0)]).await.unwrap();
    store
        .record_object("before", "a", 42, &StoredForm::default())
        .await
        .unwrap();

    pg_ctl(&version, "stop");
    let mut saw_fast_fail = false;
    for i in 0..20 {
        match store
            .record_object(&format!("down/{i}"), "a", 1, &StoredForm::default())
            .await
        {
            Err(StoreError::DbUnavailable) => saw_fast_fail = true,
            Err(StoreError::Database { .. }) => {}
            other => {
                pg_ctl(&version, "start");
                panic!("write succeeded while the server was down: {other:?}");
            }
        }
    }
    let opened = pg.breaker_state() != BreakerState::Closed;
    pg_ctl(&version, "start");
    assert!(
        saw_fast_fail,
        "calls must fail fast with DbUnavailable while the server is down"
    );
    assert!(opened, "the breaker must be open while the server is down");

    let mut closed = false;
    for _ in 0..150 {
        if store.get_all_object_locations("before").await.is_ok()
            && pg.breaker_state() == BreakerState::Closed
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the breaker must close once the server is back");
    let locs = store.get_all_object_locations("before").await.unwrap();
    assert_eq!(
        locs[0].size_bytes, 42,
        "the committed write survived the restart"
    );
    for i in 0..20 {
        assert!(
            matches!(
                store.get_all_object_locations(&format!("down/{i}")).await,
                Err(StoreError::ObjectNotFound { .. })
            ),
            "no write may have landed while the server was down"
        );
    }
    assert_ledger(&store).await;
    eprintln!(
        "postgres: stopped and restarted; breaker opened {} time(s) and closed",
        pg.breaker_stats().opened
    );
    store.close().await;
    let admin = pg_admin().await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}
