//! Backend removal and per-backend totals.

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::engine::BackendLifecycleStore;
use s3o_core::tx::BackendTable;
use s3o_core::{Result, validate};

use crate::stmt::Db;

use crate::SqliteStore;

#[async_trait]
impl BackendLifecycleStore for SqliteStore {
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        self.conns
            .read("backend object stats", move |db| {
                db.query_one(
                    "backend object stats",
                    // Noncurrent versions' copies are on the backend too (DESIGN decision 25).
                    "SELECT count(*), coalesce(sum(size_bytes), 0) FROM ( \
                       SELECT size_bytes FROM object_locations WHERE backend_name = ?1 \
                       UNION ALL \
                       SELECT size_bytes FROM object_versions WHERE backend_name = ?1)",
                    params![backend],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
    }

    async fn set_backend_draining(&self, backend: &str, draining: bool) -> Result<bool> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        self.conns
            .write("set backend draining", move |db| {
                let n = db.execute(
                    "set backend draining",
                    "UPDATE backend_quotas SET draining = ?2 WHERE backend_name = ?1",
                    params![backend, draining],
                )?;
                Ok(n > 0)
            })
            .await
    }

    async fn draining_backends(&self) -> Result<Vec<String>> {
        self.conns
            .read("draining backends", move |db| {
                db.query_vec(
                    "draining backends",
                    "SELECT backend_name FROM backend_quotas WHERE draining ORDER BY backend_name",
                    params![],
                    |r| r.get(0),
                )
            })
            .await
    }
}

/// Deletes the rows of one dependent table that reference `backend`.
pub(crate) fn delete_rows(db: &Db<'_>, table: BackendTable, backend: &str) -> Result<u64> {
    let sql = format!("DELETE FROM {} WHERE backend_name = ?1", table.table_name());
    let n = db.execute("delete backend rows", &sql, params![backend])?;
    Ok(n as u64)
}

/// Deletes the backend's quota row; `false` when there was none.
pub(crate) fn delete_quota_row(db: &Db<'_>, backend: &str) -> Result<bool> {
    let n = db.execute(
        "delete backend quota row",
        "DELETE FROM backend_quotas WHERE backend_name = ?1",
        params![backend],
    )?;
    Ok(n > 0)
}
