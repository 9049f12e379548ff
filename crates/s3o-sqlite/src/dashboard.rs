//! Per-backend counts for the dashboard.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::engine::DashboardStore;
use s3o_core::{NoncurrentStat, Result, VersionStats};

use crate::SqliteStore;

async fn counts(
    store: &SqliteStore,
    ctx: &'static str,
    sql: &'static str,
) -> Result<BTreeMap<String, i64>> {
    let rows = store
        .conns
        .read(ctx, move |db| {
            db.query_vec(ctx, sql, [], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
        })
        .await?;
    Ok(rows.into_iter().collect())
}

#[async_trait]
impl DashboardStore for SqliteStore {
    async fn get_object_counts(&self) -> Result<BTreeMap<String, i64>> {
        counts(
            self,
            "get object counts",
            // Copies of current and noncurrent versions (DESIGN decision 25).
            "SELECT backend_name, count(*) FROM ( \
               SELECT backend_name FROM object_locations UNION ALL \
               SELECT backend_name FROM object_versions WHERE backend_name IS NOT NULL) \
             GROUP BY backend_name",
        )
        .await
    }

    async fn get_unverified_object_counts(&self) -> Result<BTreeMap<String, i64>> {
        counts(
            self,
            "get unverified object counts",
            "SELECT backend_name, count(*) FROM object_locations \
             WHERE content_hash IS NULL GROUP BY backend_name",
        )
        .await
    }

    async fn get_active_multipart_counts(&self) -> Result<BTreeMap<String, i64>> {
        counts(
            self,
            "get active multipart counts",
            "SELECT backend_name, count(*) FROM multipart_uploads GROUP BY backend_name",
        )
        .await
    }

    async fn get_version_stats(&self) -> Result<VersionStats> {
        // One group per backend, and the NULL group: the delete markers.
        let rows = self
            .conns
            .read("get version stats", move |db| {
                db.query_vec(
                    "get version stats",
                    "SELECT backend_name, count(*), coalesce(sum(size_bytes), 0) \
                     FROM object_versions GROUP BY backend_name",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
            })
            .await?;
        let mut out = VersionStats::default();
        for (backend, copies, bytes) in rows {
            match backend {
                Some(b) => {
                    out.noncurrent.insert(b, NoncurrentStat { copies, bytes });
                }
                None => out.delete_markers = copies,
            }
        }
        Ok(out)
    }
}
