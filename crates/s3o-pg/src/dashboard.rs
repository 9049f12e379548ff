//! Per-backend counts for the dashboard.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::Result;
use s3o_core::engine::DashboardStore;

use crate::PgStore;
use crate::error::RowExt;

impl PgStore {
    async fn counts(&self, ctx: &str, sql: &str) -> Result<BTreeMap<String, i64>> {
        let rows = self.db.query(ctx, sql, &[]).await?;
        rows.iter().map(|r| Ok((r.col(0)?, r.col(1)?))).collect()
    }
}

#[async_trait]
impl DashboardStore for PgStore {
    async fn get_object_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.counts(
            "count objects per backend",
            // Copies of current and noncurrent versions (DESIGN decision 25).
            "SELECT backend_name, COUNT(*) FROM ( \
               SELECT backend_name FROM object_locations UNION ALL \
               SELECT backend_name FROM object_versions WHERE backend_name IS NOT NULL) s \
             GROUP BY backend_name",
        )
        .await
    }

    async fn get_unverified_object_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.counts(
            "count unverified objects per backend",
            "SELECT backend_name, COUNT(*) FROM object_locations WHERE content_hash IS NULL \
             GROUP BY backend_name",
        )
        .await
    }

    async fn get_active_multipart_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.counts(
            "count multipart uploads per backend",
            "SELECT backend_name, COUNT(*) FROM multipart_uploads GROUP BY backend_name",
        )
        .await
    }
}
