//! PostgreSQL engine tests against a real server (`S3O_PG_URL`). Each test runs in its own
//! schema, so they run in parallel. Without `S3O_PG_URL` each prints a SKIP line and passes,
//! unless `S3O_REQUIRE_PG=1`.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use s3o_core::breaker::BreakerState;
use s3o_core::engine::*;
use s3o_core::{
    CreateMultipartUploadParams, DbErrorKind, ImportOutcome, ImportedObject, KeyBound, LockId,
    PendingObject, PendingPromoteResult, StoreError, StoredForm, Timestamp,
};
use s3o_pg::{EXPECTED_SCHEMA_VERSION, PgOptions, PgStore};

/// The physical path of `key`'s copy on `backend` now (the key itself when there is none): the
/// expected version a replica or move names.
async fn path_on<S: Engine>(s: &S, key: &str, backend: &str) -> String {
    s.get_all_object_locations(key)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.backend_name == backend)
        .map_or_else(|| key.to_owned(), |c| c.form.storage_path(key).to_owned())
}

macro_rules! setup {
    ($name:expr) => {
        match TestDb::new($name).await {
            Some(db) => db,
            None => return,
        }
    };
}

/// The plan PostgreSQL chooses for `sql` with `params`, one line per plan node.
async fn explain(
    raw: &s3o_pg::tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn s3o_pg::tokio_postgres::types::ToSql + Sync)],
) -> String {
    let stmt = raw.prepare(&format!("EXPLAIN {sql}")).await.unwrap();
    let lines: Vec<String> = raw
        .query(&stmt, params)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    lines.join("\n")
}

fn encrypted_form() -> StoredForm {
    StoredForm {
        encrypted: true,
        encryption_key: vec![1, 2, 3, 4, 5],
        key_id: "mk-1".into(),
        plaintext_size: 90,
        content_hash: "ab".repeat(32),
        managed: false,
        etag: "\"e1\"".into(),
        ..StoredForm::default()
    }
}

mod buckets;
mod cleanup;
mod connections;
mod ledger;
mod schema;
