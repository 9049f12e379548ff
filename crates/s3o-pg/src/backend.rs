//! Backend removal and per-backend statistics.

use async_trait::async_trait;
use s3o_core::{BackendLifecycleStore, Result, StoreError, Transaction, validate};

use crate::PgStore;
use crate::tx::PgTx;

/// Deletes everything referencing the backend, then its quota row. The quota row is locked
/// first so concurrent writers to this backend wait (and then fail on the foreign key).
async fn delete_backend(tx: &mut PgTx, backend: &str) -> Result<()> {
    let row = tx
        .query_opt(
            "lock backend",
            "SELECT 1 FROM backend_quotas WHERE backend_name = $1 FOR UPDATE",
            &[&backend],
        )
        .await?;
    if row.is_none() {
        return Err(StoreError::UnknownBackend {
            backend: backend.to_owned(),
        });
    }
    const STEPS: [(&str, &str); 7] = [
        (
            "delete cleanup rows of backend",
            "DELETE FROM cleanup_queue WHERE backend_name = $1",
        ),
        (
            "delete dead letters of backend",
            "DELETE FROM cleanup_dlq WHERE backend_name = $1",
        ),
        (
            "delete pending intents of backend",
            "DELETE FROM pending_objects WHERE backend_name = $1",
        ),
        (
            // Parts go with their uploads (ON DELETE CASCADE).
            "delete multipart uploads of backend",
            "DELETE FROM multipart_uploads WHERE backend_name = $1",
        ),
        (
            "delete copies of backend",
            "DELETE FROM object_locations WHERE backend_name = $1",
        ),
        (
            "delete usage of backend",
            "DELETE FROM backend_usage WHERE backend_name = $1",
        ),
        (
            "delete backend quota row",
            "DELETE FROM backend_quotas WHERE backend_name = $1",
        ),
    ];
    for (ctx, sql) in STEPS {
        tx.execute(ctx, sql, &[&backend]).await?;
    }
    Ok(())
}

#[async_trait]
impl BackendLifecycleStore for PgStore {
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)> {
        validate::backend(backend)?;
        let row = self
            .db
            .query_one(
                "backend object stats",
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0)::bigint FROM object_locations \
                 WHERE backend_name = $1",
                &[&backend],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    async fn delete_backend_data(&self, backend: &str) -> Result<()> {
        validate::backend(backend)?;
        let mut tx = Box::new(self.begin_pg().await?);
        match delete_backend(&mut tx, backend).await {
            Ok(()) => {
                tx.commit().await?;
                tracing::warn!(backend, "deleted every row of backend");
                Ok(())
            }
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    tracing::warn!(error = %rb, "rollback failed after backend deletion error");
                }
                Err(e)
            }
        }
    }
}
