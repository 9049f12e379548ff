//! UploadPart against the monthly usage budgets: a part for an upload whose backend has
//! reached its budget is refused before its body streams (507 InsufficientStorage, the
//! writes rule: the upload's parts have no other backend), on each ledger engine.

#[path = "workers_support/mod.rs"]
mod support;

use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use support::*;

/// One backend with a 1000-byte monthly ingress budget: a 1000-byte part spends it, the next
/// part of the same upload answers 507 and leaves nothing on the backend or in the ledger,
/// the abort still runs, and the ledger verifies.
async fn drill(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fs = vec![Fs::start("a", &dir.path().join("a")).await];
    let mut cfg = config(url, &fs, 1);
    cfg.backends[0].ingress_byte_limit = 1000;
    let gw = s3o_gateway::Gateway::start(cfg).await.unwrap();
    let c = gw_client(&gw.endpoint());
    let mut mpu = c.put_multipart(&Path::from("big")).await.unwrap();
    mpu.put_part(PutPayload::from(body(1, 1000))).await.unwrap();
    let parts = fs[0].part_paths().await;
    assert_eq!(parts.len(), 1, "{parts:?}");
    let used = gw.store().get_quota_stats().await.unwrap()["a"].bytes_used;
    assert_eq!(used, 1000, "the accepted part is charged");

    let e = mpu
        .put_part(PutPayload::from(body(2, 1000)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("507") || e.contains("InsufficientStorage"),
        "{e}"
    );
    assert_eq!(
        fs[0].part_paths().await,
        parts,
        "no byte of the refused part"
    );
    assert_eq!(
        gw.store().get_quota_stats().await.unwrap()["a"].bytes_used,
        used
    );
    // Aborting spends no ingress: it runs.
    mpu.abort().await.unwrap();
    assert!(fs[0].part_paths().await.is_empty());
    verify(gw.store()).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_refused_over_budget_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    drill(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_refused_over_budget_postgres() {
    let Some((url, schema)) = pg_url() else {
        eprintln!("upload part budget [postgres]: skipped, S3O_PG_URL is not set");
        return;
    };
    drill(&url).await;
    drop_schema(&schema).await;
}
