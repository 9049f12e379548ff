//! One smoke test per role: the SQLite mapping round-trips every field and answers absence,
//! unknown backends and quota limits with the documented typed errors.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TempDir, ledger, raw, store_at};
use s3o_core::breaker::BreakerState;
use s3o_core::engine::*;
use s3o_core::*;
use s3o_sqlite::{EXPECTED_SCHEMA_VERSION, SqliteStore};

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

fn encrypted_form() -> StoredForm {
    StoredForm {
        encrypted: true,
        encryption_key: vec![1, 2, 3, 0, 255],
        key_id: "mk-7".into(),
        plaintext_size: 90,
        content_hash: "ab".repeat(32),
        managed: false,
        etag: "\"e1\"".into(),
        ..StoredForm::default()
    }
}

mod cleanup;
mod engine;
mod ledger;
