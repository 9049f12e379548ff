//! `backend_quotas`: the guarded counters and the admission reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::engine::QuotaStore;
use s3o_core::tx::QuotaTx;
use s3o_core::{BackendCapacity, QuotaStat, Result, StoreError, validate};

use crate::PgStore;
use crate::conn::ts;
use crate::error::RowExt;
use crate::tx::PgTx;

#[async_trait]
impl QuotaTx for PgTx {
    async fn increment_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("quota delta", delta)?;
        // One statement: the guarded UPDATE (row-locks the quota row until commit) plus an
        // existence probe, so a refusal tells "no room" from "no such backend".
        let row = self
            .query_one(
                "charge backend quota",
                "WITH known AS (SELECT 1 FROM backend_quotas WHERE backend_name = $1), \
                 charged AS (UPDATE backend_quotas \
                   SET bytes_used = bytes_used + $2, updated_at = NOW() \
                   WHERE backend_name = $1 \
                   AND (bytes_limit = 0 OR bytes_used + orphan_bytes + $2 <= bytes_limit) \
                   RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM known), EXISTS (SELECT 1 FROM charged)",
                &[&backend, &delta],
            )
            .await?;
        let (known, charged): (bool, bool) = (row.col(0)?, row.col(1)?);
        match (known, charged) {
            (_, true) => Ok(()),
            (false, false) => Err(StoreError::UnknownBackend {
                backend: backend.to_owned(),
            }),
            (true, false) => Err(StoreError::NoSpaceAvailable),
        }
    }

    async fn decrement_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("quota delta", delta)?;
        self.execute(
            "debit backend quota",
            "UPDATE backend_quotas SET bytes_used = GREATEST(0, bytes_used - $2), \
             updated_at = NOW() WHERE backend_name = $1",
            &[&backend, &delta],
        )
        .await?;
        Ok(())
    }

    async fn adjust_backend_quota_unguarded(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        self.execute(
            "adjust backend quota",
            "UPDATE backend_quotas SET bytes_used = GREATEST(0, bytes_used + $2), \
             updated_at = NOW() WHERE backend_name = $1",
            &[&backend, &delta],
        )
        .await?;
        Ok(())
    }

    async fn decrement_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", delta)?;
        self.execute(
            "release orphan bytes",
            "UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - $2), \
             updated_at = NOW() WHERE backend_name = $1",
            &[&backend, &delta],
        )
        .await?;
        Ok(())
    }

    async fn increment_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", delta)?;
        self.execute(
            "charge orphan bytes",
            "UPDATE backend_quotas SET orphan_bytes = orphan_bytes + $2, updated_at = NOW() \
             WHERE backend_name = $1",
            &[&backend, &delta],
        )
        .await?;
        Ok(())
    }

    async fn all_backend_bytes_used(&mut self) -> Result<BTreeMap<String, i64>> {
        // Row-locks every quota row, in backend order (the global quota lock order).
        let rows = self
            .query(
                "read bytes used",
                "SELECT backend_name, bytes_used FROM backend_quotas \
                 ORDER BY backend_name COLLATE \"C\" FOR UPDATE",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.col(0)?, r.col(1)?)))
            .collect::<Result<_>>()?)
    }

    async fn sum_object_sizes_by_backend(&mut self) -> Result<BTreeMap<String, i64>> {
        let rows = self
            .query(
                "sum object sizes",
                "SELECT backend_name, SUM(size_bytes)::bigint FROM object_locations \
                 GROUP BY backend_name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.col(0)?, r.col(1)?)))
            .collect::<Result<_>>()?)
    }

    async fn set_backend_bytes_used(&mut self, backend: &str, value: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("bytes used", value)?;
        self.execute(
            "set bytes used",
            "UPDATE backend_quotas SET bytes_used = $2, updated_at = NOW() \
             WHERE backend_name = $1",
            &[&backend, &value],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl QuotaStore for PgStore {
    async fn backend_capacities(&self, names: &[String]) -> Result<Vec<BackendCapacity>> {
        validate::backend_names(names)?;
        // One query: the quota rows plus each backend's in-flight multipart bytes.
        let rows = self
            .db
            .query(
                "read backend capacity",
                "SELECT q.backend_name, q.bytes_limit, q.bytes_used, q.orphan_bytes, \
                 COALESCE((SELECT SUM(p.size_bytes) FROM multipart_uploads u \
                   JOIN multipart_parts p ON p.upload_id = u.upload_id \
                   WHERE u.backend_name = q.backend_name), 0)::bigint \
                 FROM backend_quotas q WHERE q.backend_name = ANY($1)",
                &[&names],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(BackendCapacity {
                    backend_name: r.col(0)?,
                    bytes_limit: r.col(1)?,
                    bytes_used: r.col(2)?,
                    orphan_bytes: r.col(3)?,
                    inflight_bytes: r.col(4)?,
                })
            })
            .collect::<Result<_>>()?)
    }

    async fn get_quota_stats(&self) -> Result<BTreeMap<String, QuotaStat>> {
        let rows = self
            .db
            .query(
                "read quota stats",
                "SELECT backend_name, bytes_used, bytes_limit, orphan_bytes, updated_at \
                 FROM backend_quotas",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok({
                    let stat = QuotaStat {
                        backend_name: r.col(0)?,
                        bytes_used: r.col(1)?,
                        bytes_limit: r.col(2)?,
                        orphan_bytes: r.col(3)?,
                        updated_at: ts(r.col(4)?),
                    };
                    (stat.backend_name.clone(), stat)
                })
            })
            .collect::<Result<_>>()?)
    }
}
