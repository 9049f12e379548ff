//! `cleanup_queue` and `cleanup_dlq`: outstanding physical deletes and the ones given up on.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use s3o_core::engine::CleanupStore;
use s3o_core::tx::CleanupTx;
use s3o_core::{
    CleanupClaim, CleanupDlqItem, CleanupEntry, CleanupItem, CleanupQueueRow, MAX_ATTEMPTS, Result,
    StoreError, Timestamp, validate,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::{interval_micros, limit_param, null_if_empty, opt_ts, ts};
use crate::error::RowExt;
use crate::error::unknown_backend;
use crate::tx::PgTx;

/// Maps `id, backend_name, object_key, reason, attempts, size_bytes, claimed_at, claimed_by,
/// COALESCE(storage_key, object_key)` (and, when present, `reclaimed` at index 9).
pub(crate) fn item_from_row(r: &Row, with_reclaimed: bool) -> Result<CleanupItem> {
    let claimed_at: Option<std::time::SystemTime> = r.col(6)?;
    Ok(CleanupItem {
        storage_key: r.col(8)?,
        id: r.col(0)?,
        backend_name: r.col(1)?,
        object_key: r.col(2)?,
        reason: r.col(3)?,
        attempts: r.col(4)?,
        size_bytes: r.col(5)?,
        claimed_at: claimed_at.map(Timestamp::from_system_time),
        claimed_by: r.col(7)?,
        reclaimed: with_reclaimed && r.col::<bool>(9)?,
    })
}

/// Every column of a [`CleanupQueueRow`], in the order [`queue_row_from_row`] reads them.
macro_rules! queue_row_cols {
    () => {
        "id, backend_name, object_key, reason, size_bytes, attempts, created_at, last_error, \
         storage_key"
    };
}

fn queue_row_from_row(row: &Row) -> Result<CleanupQueueRow> {
    Ok(CleanupQueueRow {
        id: row.col(0)?,
        backend_name: row.col(1)?,
        object_key: row.col(2)?,
        reason: row.col(3)?,
        size_bytes: row.col(4)?,
        attempts: row.col(5)?,
        created_at: Timestamp::from_system_time(row.col(6)?),
        last_error: row.col::<Option<String>>(7)?.unwrap_or_default(),
        storage_key: row.col::<Option<String>>(8)?.unwrap_or_default(),
    })
}

#[async_trait]
impl CleanupTx for PgTx {
    async fn sum_and_delete_cleanup_queue_rows(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<(i64, i64)> {
        validate::key(key)?;
        validate::backend(backend)?;
        let row = self
            .query_one(
                "sweep cleanup rows",
                "WITH gone AS (DELETE FROM cleanup_queue \
                   WHERE object_key = $1 AND backend_name = $2 RETURNING size_bytes) \
                 SELECT COUNT(*), COALESCE(SUM(size_bytes), 0)::bigint FROM gone",
                &[&key, &backend],
            )
            .await?;
        Ok((row.col(0)?, row.col(1)?))
    }

    async fn count_cleanup_rows(&mut self, key: &str, backend: &str) -> Result<i64> {
        validate::key(key)?;
        validate::backend(backend)?;
        // The queue's (backend_name, object_key) index serves the first count.
        let row = self
            .query_one(
                "count cleanup rows",
                "SELECT (SELECT COUNT(*) FROM cleanup_queue WHERE backend_name = $1 AND object_key = $2) \
                      + (SELECT COUNT(*) FROM cleanup_dlq WHERE backend_name = $1 AND object_key = $2)",
                &[&backend, &key],
            )
            .await?;
        row.col(0)
    }

    async fn get_cleanup_queue_row(&mut self, id: i64) -> Result<CleanupQueueRow> {
        // Row-locks the queue row: a concurrent completion waits for this transaction.
        let row = self
            .query_opt(
                "read cleanup row",
                concat!(
                    "SELECT ",
                    queue_row_cols!(),
                    " FROM cleanup_queue WHERE id = $1 FOR UPDATE"
                ),
                &[&id],
            )
            .await?
            .ok_or(StoreError::CleanupItemNotFound { id })?;
        queue_row_from_row(&row)
    }

    async fn enqueue_cleanup_claimed(
        &mut self,
        entry: &CleanupEntry,
        claimed_by: &str,
    ) -> Result<CleanupClaim> {
        validate::outbox_entry(entry, claimed_by)?;
        let storage_key = null_if_empty(&entry.storage_key);
        // Born claimed (NOW() is the clock claims use), so the worker leaves it to us until
        // the grace cutoff. The foreign key to backend_quotas names an unknown backend.
        let row = self
            .query_one(
                "enqueue claimed cleanup",
                "INSERT INTO cleanup_queue (backend_name, object_key, storage_key, reason, \
                 size_bytes, claimed_at, claimed_by) VALUES ($1, $2, $3, $4, $5, NOW(), $6) \
                 RETURNING id, claimed_at",
                &[
                    &entry.backend_name,
                    &entry.object_key,
                    &storage_key,
                    &entry.reason,
                    &entry.size_bytes,
                    &claimed_by,
                ],
            )
            .await
            .map_err(unknown_backend(&entry.backend_name))?;
        Ok(CleanupClaim {
            id: row.col(0)?,
            claimed_by: claimed_by.to_owned(),
            claimed_at: Timestamp::from_system_time(row.col(1)?),
        })
    }

    async fn lock_claimed_cleanup_row(
        &mut self,
        claim: &CleanupClaim,
    ) -> Result<Option<CleanupQueueRow>> {
        validate::text("claimant", &claim.claimed_by)?;
        // Row-locks the row only while it carries exactly this claim.
        let row = self
            .query_opt(
                "lock claimed cleanup row",
                concat!(
                    "SELECT ",
                    queue_row_cols!(),
                    " FROM cleanup_queue WHERE id = $1 AND claimed_by = $2 AND claimed_at = $3 \
                     FOR UPDATE"
                ),
                &[
                    &claim.id,
                    &claim.claimed_by,
                    &claim.claimed_at.to_system_time(),
                ],
            )
            .await?;
        row.as_ref().map(queue_row_from_row).transpose()
    }

    async fn reschedule_cleanup_row(
        &mut self,
        id: i64,
        backoff: Duration,
        last_error: &str,
    ) -> Result<()> {
        validate::text("last error", last_error)?;
        self.execute(
            "reschedule cleanup row",
            "UPDATE cleanup_queue SET attempts = attempts + 1, \
             next_retry = NOW() + $2::bigint * INTERVAL '1 microsecond', last_error = $3, \
             claimed_at = NULL, claimed_by = NULL WHERE id = $1",
            &[&id, &interval_micros(backoff), &null_if_empty(last_error)],
        )
        .await?;
        Ok(())
    }

    async fn insert_cleanup_dlq(&mut self, row: &CleanupQueueRow) -> Result<()> {
        validate::backend(&row.backend_name)?;
        validate::text("object key", &row.object_key)?;
        validate::text("reason", &row.reason)?;
        validate::text("last error", &row.last_error)?;
        let first = opt_ts(row.created_at);
        let last_error = (!row.last_error.is_empty()).then_some(row.last_error.as_str());
        self.execute(
            "insert dead letter",
            "INSERT INTO cleanup_dlq (original_id, backend_name, object_key, reason, size_bytes, \
             attempts, first_enqueued_at, last_error, storage_key) \
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, NOW()), $8, $9)",
            &[
                &row.id,
                &row.backend_name,
                &row.object_key,
                &row.reason,
                &row.size_bytes,
                &row.attempts,
                &first,
                &last_error,
                &null_if_empty(&row.storage_key),
            ],
        )
        .await
        .map_err(unknown_backend(&row.backend_name))?;
        Ok(())
    }

    async fn delete_cleanup_item(&mut self, id: i64) -> Result<()> {
        self.execute(
            "delete cleanup row",
            "DELETE FROM cleanup_queue WHERE id = $1",
            &[&id],
        )
        .await?;
        Ok(())
    }

    async fn delete_cleanup_dlq_row(&mut self, id: i64) -> Result<Option<(String, i64)>> {
        let row = self
            .query_opt(
                "delete dead letter",
                "DELETE FROM cleanup_dlq WHERE id = $1 RETURNING backend_name, size_bytes",
                &[&id],
            )
            .await?;
        row.map(|r| Ok((r.col(0)?, r.col(1)?))).transpose()
    }
}

/// The claim statement. [`MAX_ATTEMPTS`] is written into the text rather than bound so the
/// planner can prove the partial index's `attempts < 10` predicate in a generic plan too.
/// `idx_cleanup_queue_claim (created_at, id) WHERE attempts < 10` is in the `ORDER BY`'s
/// order, so the scan walks it oldest first, filters due and unclaimed rows on the way and
/// stops after the batch: the cost follows the batch, not the queue. The stamp looks the
/// picked ids up as an array (`= ANY`) rather than joining `picked`: a generic plan guesses
/// `LIMIT $1` at a tenth of the table and would hash-join against a full scan of the queue.
static CLAIM_CLEANUPS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH picked AS ( \
           SELECT id, claimed_at IS NOT NULL AS reclaimed FROM cleanup_queue \
           WHERE next_retry <= NOW() AND attempts < {MAX_ATTEMPTS} \
           AND (claimed_at IS NULL OR claimed_at < NOW() - $3::bigint * INTERVAL '1 microsecond') \
           ORDER BY created_at, id LIMIT $1 \
           FOR UPDATE SKIP LOCKED), \
         claimed AS ( \
           UPDATE cleanup_queue c SET claimed_at = NOW(), claimed_by = $2 \
           WHERE c.id = ANY (ARRAY(SELECT id FROM picked)) \
           RETURNING c.id, c.backend_name, c.object_key, c.reason, c.attempts, \
           c.size_bytes, c.claimed_at, c.claimed_by, \
           COALESCE(c.storage_key, c.object_key) AS path) \
         SELECT claimed.*, picked.reclaimed FROM claimed JOIN picked USING (id) ORDER BY id"
    )
});

/// The claim statement (`$1` limit, `$2` claimant, `$3` grace in microseconds), for tests that
/// EXPLAIN it.
#[doc(hidden)]
pub fn claim_statement() -> &'static str {
    &CLAIM_CLEANUPS
}

#[async_trait]
impl CleanupStore for PgStore {
    async fn enqueue_cleanup(
        &self,
        backend: &str,
        key: &str,
        reason: &str,
        size: i64,
    ) -> Result<()> {
        validate::cleanup_entry(backend, key, reason, size)?;
        self.db
            .execute(
                "enqueue cleanup",
                "INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes) \
                 VALUES ($1, $2, $3, $4)",
                &[&backend, &key, &reason, &size],
            )
            .await
            .map_err(unknown_backend(backend))?;
        Ok(())
    }

    async fn claim_pending_cleanups(
        &self,
        limit: i64,
        instance_id: &str,
        stale_after: Duration,
    ) -> Result<Vec<CleanupItem>> {
        validate::id("instance id", instance_id)?;
        let Some(limit) = validate::batch_limit(limit) else {
            return Ok(Vec::new());
        };
        let limit = limit_param(limit);
        let cutoff = interval_micros(stale_after);
        // One statement: pick due rows that are unclaimed or whose claim is older than the
        // grace cutoff, oldest first, skipping rows another claimer holds locked (SKIP LOCKED:
        // concurrent claimers get disjoint sets), stamp them, and return them by id with
        // `reclaimed` = the row carried a (stale) claim. Walks idx_cleanup_queue_claim in order.
        let rows = self
            .db
            .query(
                "claim cleanups",
                &CLAIM_CLEANUPS,
                &[&limit, &instance_id, &cutoff],
            )
            .await?;
        let items: Vec<CleanupItem> = rows
            .iter()
            .map(|r| item_from_row(r, true))
            .collect::<Result<_>>()?;
        for it in items.iter().filter(|i| i.reclaimed) {
            tracing::warn!(
                id = it.id,
                backend = %it.backend_name,
                key = %it.object_key,
                instance = instance_id,
                "reclaimed cleanup row whose claim went stale"
            );
        }
        Ok(items)
    }

    async fn increment_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", amount)?;
        // A transaction: the orphan bytes and, if they push the backend over its limit, the
        // return of the stripes' unused grants (see `quota.rs`) commit together.
        let mut tx = s3o_core::engine::Runner::begin(self).await?;
        tx.increment_orphan_bytes(backend, amount).await?;
        tx.commit().await
    }

    async fn decrement_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", amount)?;
        self.db
            .execute(
                "release orphan bytes",
                "UPDATE backend_quotas SET orphan_bytes = GREATEST(0, orphan_bytes - $2), \
                 updated_at = NOW() WHERE backend_name = $1",
                &[&backend, &amount],
            )
            .await?;
        Ok(())
    }

    async fn list_cleanup_dlq(
        &self,
        backend: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CleanupDlqItem>> {
        if let Some(b) = backend {
            validate::backend(b)?;
        }
        let limit = limit_param(validate::page(limit));
        let rows = self
            .db
            .query(
                "list dead letters",
                "SELECT id, original_id, backend_name, object_key, reason, size_bytes, attempts, \
                 first_enqueued_at, moved_at, last_error, COALESCE(storage_key, object_key) \
                 FROM cleanup_dlq \
                 WHERE ($1::text IS NULL OR backend_name = $1) \
                 ORDER BY moved_at DESC, id DESC LIMIT $2",
                &[&backend, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| -> Result<CleanupDlqItem> {
                Ok(CleanupDlqItem {
                    id: r.col(0)?,
                    original_id: r.col(1)?,
                    backend_name: r.col(2)?,
                    object_key: r.col(3)?,
                    reason: r.col(4)?,
                    size_bytes: r.col(5)?,
                    attempts: r.col(6)?,
                    first_enqueued_at: ts(r.col(7)?),
                    moved_at: ts(r.col(8)?),
                    last_error: r.col::<Option<String>>(9)?.unwrap_or_default(),
                    storage_key: r.col(10)?,
                })
            })
            .collect()
    }

    async fn list_cleanup_queue(
        &self,
        backend: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<CleanupItem>> {
        if let Some(b) = backend {
            validate::backend(b)?;
        }
        let limit = limit_param(validate::page(limit));
        // Walks the primary key from the cursor.
        let rows = self
            .db
            .query(
                "list cleanup queue",
                "SELECT id, backend_name, object_key, reason, attempts, size_bytes, claimed_at, \
                 claimed_by, COALESCE(storage_key, object_key) FROM cleanup_queue \
                 WHERE id > $1 AND ($2::text IS NULL OR backend_name = $2) ORDER BY id LIMIT $3",
                &[&after_id, &backend, &limit],
            )
            .await?;
        rows.iter().map(|r| item_from_row(r, false)).collect()
    }

    async fn cleanup_bytes_by_backend(&self) -> Result<BTreeMap<String, (i64, i64)>> {
        let rows = self
            .db
            .query(
                "sum cleanup bytes per backend",
                "SELECT backend_name, SUM(queued)::bigint, SUM(dead)::bigint FROM ( \
                   SELECT backend_name, size_bytes AS queued, 0::bigint AS dead FROM cleanup_queue \
                   UNION ALL \
                   SELECT backend_name, 0::bigint, size_bytes FROM cleanup_dlq) rows \
                 GROUP BY backend_name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.col(0)?, (r.col(1)?, r.col(2)?))))
            .collect()
    }

    async fn requeue_cleanup_dlq(&self, backend: Option<&str>) -> Result<i64> {
        if let Some(b) = backend {
            validate::backend(b)?;
        }
        // One statement: lock the rows in id order (the order write-off deletes them in, so
        // the two cannot deadlock), move them back in id order with fresh defaults (attempts
        // 0, due now, unclaimed); orphan_bytes is untouched (the bytes never left the backend).
        let row = self
            .db
            .query_one(
                "requeue dead letters",
                "WITH locked AS MATERIALIZED (SELECT id FROM cleanup_dlq \
                   WHERE ($1::text IS NULL OR backend_name = $1) ORDER BY id FOR UPDATE), \
                 moved AS (DELETE FROM cleanup_dlq d USING locked WHERE d.id = locked.id \
                   RETURNING d.id, d.backend_name, d.object_key, d.reason, d.size_bytes, \
                   d.storage_key), \
                 requeued AS (INSERT INTO cleanup_queue (backend_name, object_key, reason, \
                   size_bytes, storage_key) \
                   SELECT backend_name, object_key, reason, size_bytes, storage_key FROM moved \
                   ORDER BY id RETURNING 1) \
                 SELECT COUNT(*) FROM requeued",
                &[&backend],
            )
            .await?;
        Ok(row.col(0)?)
    }

    async fn requeue_cleanup_dlq_ids(&self, ids: &[i64]) -> Result<i64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        // As the by-backend requeue: rows locked in id order, moved back in one statement.
        let row = self
            .db
            .query_one(
                "requeue dead letters by id",
                "WITH locked AS MATERIALIZED (SELECT id FROM cleanup_dlq \
                   WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE), \
                 moved AS (DELETE FROM cleanup_dlq d USING locked WHERE d.id = locked.id \
                   RETURNING d.id, d.backend_name, d.object_key, d.reason, d.size_bytes, \
                   d.storage_key), \
                 requeued AS (INSERT INTO cleanup_queue (backend_name, object_key, reason, \
                   size_bytes, storage_key) \
                   SELECT backend_name, object_key, reason, size_bytes, storage_key FROM moved \
                   ORDER BY id RETURNING 1) \
                 SELECT COUNT(*) FROM requeued",
                &[&ids],
            )
            .await?;
        Ok(row.col(0)?)
    }
}
