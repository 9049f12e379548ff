//! Per-backend counts for the dashboard.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::engine::DashboardStore;
use s3o_core::{NoncurrentStat, Result, VersionStats};

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

    async fn get_version_stats(&self) -> Result<VersionStats> {
        // One group per backend, and the NULL group: the delete markers.
        let rows = self
            .db
            .query(
                "version stats",
                "SELECT backend_name, COUNT(*), COALESCE(SUM(size_bytes), 0)::bigint \
                 FROM object_versions GROUP BY backend_name",
                &[],
            )
            .await?;
        let mut out = VersionStats::default();
        for r in &rows {
            let (copies, bytes): (i64, i64) = (r.col(1)?, r.col(2)?);
            match r.col::<Option<String>>(0)? {
                Some(b) => {
                    out.noncurrent.insert(b, NoncurrentStat { copies, bytes });
                }
                None => out.delete_markers = copies,
            }
        }
        Ok(out)
    }
}
