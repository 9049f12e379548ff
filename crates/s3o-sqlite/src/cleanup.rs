//! `cleanup_queue` and `cleanup_dlq`: physical deletes still owed to backends.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{named_params, params};
use s3o_core::engine::CleanupStore;
use s3o_core::{
    CleanupClaim, CleanupDlqItem, CleanupEntry, CleanupItem, CleanupQueueRow, MAX_ATTEMPTS, Result,
    StoreError, Timestamp, validate,
};

use crate::SqliteStore;
use crate::quota::{adjust_orphan, increment_orphan};
use crate::stmt::{Db, now_minus};

/// Columns of a [`CleanupItem`], in the order [`item_from_row`] reads them.
pub(crate) const ITEM_COLUMNS: &str = "id, backend_name, object_key, reason, attempts, \
     size_bytes, claimed_at, claimed_by, coalesce(storage_key, object_key)";

/// Maps a row selected with [`ITEM_COLUMNS`] (`reclaimed` false).
pub(crate) fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CleanupItem> {
    Ok(CleanupItem {
        id: r.get(0)?,
        backend_name: r.get(1)?,
        object_key: r.get(2)?,
        reason: r.get(3)?,
        attempts: r.get(4)?,
        size_bytes: r.get(5)?,
        claimed_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
        claimed_by: r.get(7)?,
        storage_key: r.get(8)?,
        reclaimed: false,
    })
}

/// Deletes every queue row of `(key, backend)`; returns `(count, Σ size_bytes)`.
pub(crate) fn sum_and_delete(db: &Db<'_>, key: &str, backend: &str) -> Result<(i64, i64)> {
    let sizes = db.query_vec(
        "sum and delete cleanup queue rows",
        "DELETE FROM cleanup_queue WHERE backend_name = ?1 AND object_key = ?2 \
         RETURNING size_bytes",
        params![backend, key],
        |r| r.get::<_, i64>(0),
    )?;
    Ok((sizes.len() as i64, sizes.iter().sum()))
}

/// How many queue and DLQ rows hold bytes of `(key, backend)`; the queue's
/// `idx_cleanup_queue_backend_key` serves the first count.
pub(crate) fn count_rows(db: &Db<'_>, key: &str, backend: &str) -> Result<i64> {
    db.query_one(
        "count cleanup rows",
        "SELECT (SELECT COUNT(*) FROM cleanup_queue WHERE backend_name = ?1 AND object_key = ?2) \
              + (SELECT COUNT(*) FROM cleanup_dlq WHERE backend_name = ?1 AND object_key = ?2)",
        params![backend, key],
        |r| r.get::<_, i64>(0),
    )
}

/// The full queue row; `CleanupItemNotFound` when gone.
pub(crate) fn queue_row(db: &Db<'_>, id: i64) -> Result<CleanupQueueRow> {
    db.query_opt(
        "get cleanup queue row",
        &format!("SELECT {QUEUE_ROW_COLUMNS} FROM cleanup_queue WHERE id = ?1"),
        params![id],
        queue_row_from_row,
    )?
    .ok_or(StoreError::CleanupItemNotFound { id })
}

/// Columns of a [`CleanupQueueRow`], in the order [`queue_row_from_row`] reads them.
const QUEUE_ROW_COLUMNS: &str = "id, backend_name, object_key, reason, size_bytes, attempts, \
     created_at, last_error, storage_key";

fn queue_row_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CleanupQueueRow> {
    Ok(CleanupQueueRow {
        id: r.get(0)?,
        backend_name: r.get(1)?,
        object_key: r.get(2)?,
        reason: r.get(3)?,
        size_bytes: r.get(4)?,
        attempts: r.get(5)?,
        created_at: Timestamp::from_micros(r.get(6)?),
        last_error: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        storage_key: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
    })
}

/// The queue row if it still carries exactly `claim` (the transaction's write lock keeps it
/// so until commit).
pub(crate) fn claimed_row(db: &Db<'_>, claim: &CleanupClaim) -> Result<Option<CleanupQueueRow>> {
    db.query_opt(
        "lock claimed cleanup row",
        &format!(
            "SELECT {QUEUE_ROW_COLUMNS} FROM cleanup_queue \
             WHERE id = ?1 AND claimed_by = ?2 AND claimed_at = ?3"
        ),
        params![claim.id, claim.claimed_by, claim.claimed_at.as_micros()],
        queue_row_from_row,
    )
}

/// Inserts a queue row born claimed by `claimed_by` and returns its claim.
pub(crate) fn enqueue_claimed(
    db: &Db<'_>,
    e: &CleanupEntry,
    claimed_by: &str,
) -> Result<CleanupClaim> {
    let now = Timestamp::now();
    let id = db.query_opt(
        "enqueue claimed cleanup",
        "INSERT INTO cleanup_queue (backend_name, object_key, storage_key, reason, size_bytes, \
                                    created_at, next_retry, attempts, claimed_at, claimed_by) \
         SELECT :backend, :key, :storage_key, :reason, :size, :now, :now, 0, :now, :by \
         WHERE EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :backend) \
         RETURNING id",
        named_params! {
            ":backend": e.backend_name,
            ":key": e.object_key,
            ":storage_key": crate::objects::null_if_empty(&e.storage_key),
            ":reason": e.reason,
            ":size": e.size_bytes,
            ":now": now.as_micros(),
            ":by": claimed_by,
        },
        |r| r.get::<_, i64>(0),
    )?;
    let Some(id) = id else {
        return Err(StoreError::UnknownBackend {
            backend: e.backend_name.clone(),
        });
    };
    Ok(CleanupClaim {
        id,
        claimed_by: claimed_by.to_owned(),
        claimed_at: now,
    })
}

/// `attempts += 1`, `next_retry = now + backoff`, records the error, clears the claim.
pub(crate) fn reschedule(db: &Db<'_>, id: i64, backoff: Duration, last_error: &str) -> Result<()> {
    let next = Timestamp::now().plus(backoff).as_micros();
    db.execute(
        "reschedule cleanup row",
        "UPDATE cleanup_queue SET attempts = attempts + 1, next_retry = ?2, \
                last_error = ?3, claimed_at = NULL, claimed_by = NULL \
         WHERE id = ?1",
        params![id, next, crate::objects::null_if_empty(last_error)],
    )?;
    Ok(())
}

/// Inserts a DLQ row from a queue row.
pub(crate) fn insert_dlq(db: &Db<'_>, row: &CleanupQueueRow) -> Result<()> {
    let now = Timestamp::now();
    let first = if row.created_at.is_zero() {
        now
    } else {
        row.created_at
    };
    let n = db.execute(
        "insert cleanup dlq row",
        "INSERT INTO cleanup_dlq (original_id, backend_name, object_key, reason, size_bytes, \
                                  attempts, first_enqueued_at, moved_at, last_error, \
                                  storage_key) \
         SELECT :id, :backend, :key, :reason, :size, :attempts, :first, :now, :last_error, \
                :storage_key \
         WHERE EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :backend)",
        named_params! {
            ":id": row.id,
            ":backend": row.backend_name,
            ":key": row.object_key,
            ":reason": row.reason,
            ":size": row.size_bytes,
            ":attempts": row.attempts,
            ":first": first.as_micros(),
            ":now": now.as_micros(),
            ":last_error": crate::objects::null_if_empty(&row.last_error),
            ":storage_key": crate::objects::null_if_empty(&row.storage_key),
        },
    )?;
    if n == 0 {
        return Err(StoreError::UnknownBackend {
            backend: row.backend_name.clone(),
        });
    }
    Ok(())
}

/// Deletes a queue row (no orphan change).
pub(crate) fn delete_item(db: &Db<'_>, id: i64) -> Result<()> {
    db.execute(
        "delete cleanup item",
        "DELETE FROM cleanup_queue WHERE id = ?1",
        params![id],
    )?;
    Ok(())
}

/// Deletes one DLQ row, returning `(backend, size_bytes)`.
pub(crate) fn delete_dlq_row(db: &Db<'_>, id: i64) -> Result<Option<(String, i64)>> {
    db.query_opt(
        "delete cleanup dlq row",
        "DELETE FROM cleanup_dlq WHERE id = ?1 RETURNING backend_name, size_bytes",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn dlq_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CleanupDlqItem> {
    Ok(CleanupDlqItem {
        id: r.get(0)?,
        original_id: r.get(1)?,
        backend_name: r.get(2)?,
        object_key: r.get(3)?,
        reason: r.get(4)?,
        size_bytes: r.get(5)?,
        attempts: r.get(6)?,
        first_enqueued_at: Timestamp::from_micros(r.get(7)?),
        moved_at: Timestamp::from_micros(r.get(8)?),
        last_error: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        storage_key: r.get(10)?,
    })
}

/// The claim's selection (`?1` now, `?2` stale cutoff, `?3` limit, all in microseconds but the
/// limit). `idx_cleanup_queue_claim (created_at, id) WHERE attempts < 10` is in the
/// `ORDER BY`'s order, so SQLite walks it oldest first, filters due and unclaimed rows on the
/// way and stops after the batch: the cost follows the batch, not the queue. [`MAX_ATTEMPTS`]
/// is formatted in as a literal so the partial index applies.
static CLAIMABLE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, claimed_at IS NOT NULL FROM cleanup_queue \
         WHERE next_retry <= ?1 AND attempts < {MAX_ATTEMPTS} \
           AND (claimed_at IS NULL OR claimed_at < ?2) \
         ORDER BY created_at, id LIMIT ?3"
    )
});

/// The claim's selection statement, for tests that EXPLAIN it.
#[doc(hidden)]
pub fn claim_statement() -> &'static str {
    &CLAIMABLE
}

#[async_trait]
impl CleanupStore for SqliteStore {
    async fn enqueue_cleanup(
        &self,
        backend: &str,
        key: &str,
        reason: &str,
        size: i64,
    ) -> Result<()> {
        validate::cleanup_entry(backend, key, reason, size)?;
        let (backend, key, reason) = (backend.to_owned(), key.to_owned(), reason.to_owned());
        self.conns
            .write("enqueue cleanup", move |db| {
                let now = Timestamp::now().as_micros();
                let n = db.execute(
                    "enqueue cleanup",
                    "INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes, \
                                                created_at, next_retry, attempts) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?5, 0 \
                     WHERE EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = ?1)",
                    params![backend, key, reason, size, now],
                )?;
                if n == 0 {
                    return Err(StoreError::UnknownBackend { backend });
                }
                Ok(())
            })
            .await
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let instance = instance_id.to_owned();
        let items = self
            .conns
            .write_tx("claim pending cleanups", move |db| {
                let now = Timestamp::now().as_micros();
                // The write lock taken by BEGIN IMMEDIATE makes select-then-stamp atomic across
                // connections and processes: concurrent claimers get disjoint rows.
                let picked = db.query_vec(
                    "select claimable cleanups",
                    &CLAIMABLE,
                    params![now, now_minus(stale_after), limit],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)),
                )?;
                if picked.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<i64> = picked.iter().map(|(id, _)| *id).collect();
                let mut items = db.query_vec(
                    "stamp cleanup claims",
                    &format!(
                        "UPDATE cleanup_queue SET claimed_at = ?1, claimed_by = ?2 \
                         WHERE id IN (SELECT value FROM json_each(?3)) \
                         RETURNING {ITEM_COLUMNS}"
                    ),
                    params![now, instance, serde_json::Value::from(ids).to_string()],
                    item_from_row,
                )?;
                for item in &mut items {
                    item.reclaimed = picked.iter().any(|(id, was)| *id == item.id && *was);
                }
                items.sort_by_key(|i| i.id);
                Ok(items)
            })
            .await?;
        for item in items.iter().filter(|i| i.reclaimed) {
            tracing::warn!(
                engine = "sqlite",
                id = item.id,
                backend = %item.backend_name,
                key = %item.object_key,
                "reclaimed a cleanup row whose claim went stale"
            );
        }
        Ok(items)
    }

    async fn increment_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", amount)?;
        let backend = backend.to_owned();
        self.conns
            .write("increment orphan bytes", move |db| {
                increment_orphan(db, &backend, amount)
            })
            .await
    }

    async fn decrement_orphan_bytes(&self, backend: &str, amount: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("orphan bytes", amount)?;
        let backend = backend.to_owned();
        self.conns
            .write("decrement orphan bytes", move |db| {
                adjust_orphan(db, &backend, -amount)
            })
            .await
    }

    async fn list_cleanup_dlq(
        &self,
        backend: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CleanupDlqItem>> {
        if let Some(b) = backend {
            validate::backend(b)?;
        }
        let limit = crate::reader::page_limit(limit);
        let backend = backend.map(str::to_owned);
        self.conns
            .read("list cleanup dlq", move |db| {
                db.query_vec(
                    "list cleanup dlq",
                    "SELECT id, original_id, backend_name, object_key, reason, size_bytes, \
                            attempts, first_enqueued_at, moved_at, last_error, \
                            coalesce(storage_key, object_key) \
                     FROM cleanup_dlq WHERE ?1 IS NULL OR backend_name = ?1 \
                     ORDER BY moved_at DESC, id DESC LIMIT ?2",
                    params![backend, limit],
                    dlq_from_row,
                )
            })
            .await
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
        let limit = crate::reader::page_limit(limit);
        let backend = backend.map(str::to_owned);
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM cleanup_queue \
             WHERE id > ?1 AND (?2 IS NULL OR backend_name = ?2) ORDER BY id LIMIT ?3"
        );
        self.conns
            .read("list cleanup queue", move |db| {
                // Walks the primary key from the cursor.
                db.query_vec(
                    "list cleanup queue",
                    &sql,
                    params![after_id, backend, limit],
                    item_from_row,
                )
            })
            .await
    }

    async fn cleanup_bytes_by_backend(&self) -> Result<BTreeMap<String, (i64, i64)>> {
        let rows = self
            .conns
            .read("cleanup bytes by backend", |db| {
                db.query_vec(
                    "cleanup bytes by backend",
                    "SELECT backend_name, sum(queued), sum(dead) FROM ( \
                         SELECT backend_name, size_bytes AS queued, 0 AS dead FROM cleanup_queue \
                         UNION ALL \
                         SELECT backend_name, 0, size_bytes FROM cleanup_dlq) \
                     GROUP BY backend_name ORDER BY backend_name",
                    [],
                    |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))),
                )
            })
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn requeue_cleanup_dlq(&self, backend: Option<&str>) -> Result<i64> {
        if let Some(b) = backend {
            validate::backend(b)?;
        }
        let backend = backend.map(str::to_owned);
        self.conns
            .write_tx("requeue cleanup dlq", move |db| {
                let now = Timestamp::now().as_micros();
                // Both statements see the same rows: the transaction holds the write lock. Rows
                // are re-queued in DLQ id order (the order they died in), as on PostgreSQL.
                db.execute(
                    "requeue cleanup dlq",
                    "INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes, \
                                                created_at, next_retry, attempts, storage_key) \
                     SELECT backend_name, object_key, reason, size_bytes, ?2, ?2, 0, \
                            storage_key \
                     FROM cleanup_dlq WHERE ?1 IS NULL OR backend_name = ?1 ORDER BY id",
                    params![backend, now],
                )?;
                let n = db.execute(
                    "requeue cleanup dlq",
                    "DELETE FROM cleanup_dlq WHERE ?1 IS NULL OR backend_name = ?1",
                    params![backend],
                )?;
                Ok(n as i64)
            })
            .await
    }

    async fn requeue_cleanup_dlq_ids(&self, ids: &[i64]) -> Result<i64> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(0);
        }
        self.conns
            .write_tx("requeue cleanup dlq ids", move |db| {
                let now = Timestamp::now().as_micros();
                let mut n = 0i64;
                // One transaction, in id order, the same statements as the by-backend requeue.
                for id in &ids {
                    db.execute(
                        "requeue cleanup dlq ids",
                        "INSERT INTO cleanup_queue (backend_name, object_key, reason, size_bytes, \
                                                    created_at, next_retry, attempts, storage_key) \
                         SELECT backend_name, object_key, reason, size_bytes, ?2, ?2, 0, \
                                storage_key \
                         FROM cleanup_dlq WHERE id = ?1",
                        params![id, now],
                    )?;
                    n += db.execute(
                        "requeue cleanup dlq ids",
                        "DELETE FROM cleanup_dlq WHERE id = ?1",
                        params![id],
                    )? as i64;
                }
                Ok(n)
            })
            .await
    }
}
