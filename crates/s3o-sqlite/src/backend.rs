//! Backend removal and per-backend totals.

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::{BackendLifecycleStore, Result, StoreError, validate};

use crate::SqliteStore;
use crate::quota::backend_exists;

/// Tables referencing `backend_quotas`, in deletion order (parts cascade with their uploads).
const DEPENDENTS: [(&str, &str); 6] = [
    (
        "delete backend cleanup queue",
        "DELETE FROM cleanup_queue WHERE backend_name = ?1",
    ),
    (
        "delete backend cleanup dlq",
        "DELETE FROM cleanup_dlq WHERE backend_name = ?1",
    ),
    (
        "delete backend pending intents",
        "DELETE FROM pending_objects WHERE backend_name = ?1",
    ),
    (
        "delete backend multipart uploads",
        "DELETE FROM multipart_uploads WHERE backend_name = ?1",
    ),
    (
        "delete backend copies",
        "DELETE FROM object_locations WHERE backend_name = ?1",
    ),
    (
        "delete backend usage",
        "DELETE FROM backend_usage WHERE backend_name = ?1",
    ),
];

#[async_trait]
impl BackendLifecycleStore for SqliteStore {
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        self.conns
            .read("backend object stats", move |db| {
                db.query_one(
                    "backend object stats",
                    "SELECT count(*), coalesce(sum(size_bytes), 0) FROM object_locations \
                     WHERE backend_name = ?1",
                    params![backend],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
    }

    async fn delete_backend_data(&self, backend: &str) -> Result<()> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        let name = backend.clone();
        self.conns
            .write_tx("delete backend data", move |db| {
                if !backend_exists(db, &backend)? {
                    return Err(StoreError::UnknownBackend { backend });
                }
                for (ctx, sql) in DEPENDENTS {
                    db.execute(ctx, sql, params![backend])?;
                }
                db.execute(
                    "delete backend quota row",
                    "DELETE FROM backend_quotas WHERE backend_name = ?1",
                    params![backend],
                )?;
                Ok(())
            })
            .await?;
        tracing::info!(engine = "sqlite", backend = %name, "deleted backend data");
        Ok(())
    }
}
