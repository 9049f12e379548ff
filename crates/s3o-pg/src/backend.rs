//! Backend removal and per-backend statistics.

use async_trait::async_trait;
use s3o_core::engine::BackendLifecycleStore;
use s3o_core::tx::{BackendTable, BackendTx};
use s3o_core::{Result, validate};

use crate::PgStore;
use crate::error::RowExt;
use crate::tx::PgTx;

#[async_trait]
impl BackendLifecycleStore for PgStore {
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)> {
        validate::backend(backend)?;
        let row = self
            .db
            .query_one(
                "backend object stats",
                // Noncurrent versions' copies are on the backend too (DESIGN decision 25).
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0)::bigint FROM ( \
                   SELECT size_bytes FROM object_locations WHERE backend_name = $1 \
                   UNION ALL \
                   SELECT size_bytes FROM object_versions WHERE backend_name = $1) s",
                &[&backend],
            )
            .await?;
        Ok((row.col(0)?, row.col(1)?))
    }

    async fn set_backend_draining(&self, backend: &str, draining: bool) -> Result<bool> {
        validate::backend(backend)?;
        let n = self
            .db
            .execute(
                "set backend draining",
                "UPDATE backend_quotas SET draining = $2 WHERE backend_name = $1",
                &[&backend, &draining],
            )
            .await?;
        Ok(n > 0)
    }

    async fn draining_backends(&self) -> Result<Vec<String>> {
        let rows = self
            .db
            .query(
                "draining backends",
                "SELECT backend_name FROM backend_quotas WHERE draining ORDER BY backend_name",
                &[],
            )
            .await?;
        rows.iter().map(|r| r.col(0)).collect()
    }
}

#[async_trait]
impl BackendTx for PgTx {
    async fn delete_backend_rows(&mut self, table: BackendTable, backend: &str) -> Result<u64> {
        validate::backend(backend)?;
        let sql = format!("DELETE FROM {} WHERE backend_name = $1", table.table_name());
        self.execute("delete backend rows", &sql, &[&backend]).await
    }

    async fn delete_backend_quota_row(&mut self, backend: &str) -> Result<bool> {
        validate::backend(backend)?;
        let n = self
            .execute(
                "delete backend quota row",
                "DELETE FROM backend_quotas WHERE backend_name = $1",
                &[&backend],
            )
            .await?;
        Ok(n > 0)
    }

    async fn lock_backend_quota_row(&mut self, backend: &str) -> Result<bool> {
        validate::backend(backend)?;
        // The backend's rows first, then its quota row: the order every writer takes them in
        // (key lock → rows → quota, e.g. `record_part` locks its upload row and then charges
        // the quota). Quota first would wait for a writer holding an upload row while that
        // writer waits for the quota row: a deadlock the database aborts, losing a round.
        for table in BackendTable::REMOVAL_ORDER {
            let sql = format!(
                "SELECT 1 FROM {} WHERE backend_name = $1 FOR UPDATE",
                table.table_name()
            );
            self.execute("lock backend rows", &sql, &[&backend]).await?;
        }
        // Row-locks the quota row until commit: writers' guarded updates and the foreign-key
        // checks of their inserts (KEY SHARE) wait for the removal. Rows a writer added since
        // the locks above are deleted too (each DELETE sees every commit before it).
        let row = self
            .query_opt(
                "lock backend quota row",
                "SELECT 1 FROM backend_quotas WHERE backend_name = $1 FOR UPDATE",
                &[&backend],
            )
            .await?;
        Ok(row.is_some())
    }
}
