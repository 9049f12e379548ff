//! `backend_quotas`: admission reads, counters, and the guarded increment.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::engine::QuotaStore;
use s3o_core::{BackendCapacity, QuotaStat, Result, StoreError, Timestamp, validate};

use crate::SqliteStore;
use crate::objects::json_list;
use crate::stmt::Db;

/// Whether `backend` has a quota row.
pub(crate) fn backend_exists(db: &Db<'_>, backend: &str) -> Result<bool> {
    db.query_one(
        "check backend exists",
        "SELECT EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = ?1)",
        params![backend],
        |r| r.get(0),
    )
}

/// `(bytes_used, orphan_bytes)` of `backend`, `None` without a quota row.
fn counters(db: &Db<'_>, backend: &str) -> Result<Option<(i64, i64)>> {
    db.query_opt(
        "read backend quota counters",
        "SELECT bytes_used, orphan_bytes FROM backend_quotas WHERE backend_name = ?1",
        params![backend],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The guarded charge: `bytes_used += delta` only when `bytes_limit = 0 OR bytes_used +
/// orphan_bytes + delta <= bytes_limit`, and never past `i64::MAX` (SQLite turns an
/// overflowing `+` into a float, which still compares correctly against the bound). No row
/// changed ⇒ `UnknownBackend` without a row, `InvalidInput` when the sum would overflow, else
/// `NoSpaceAvailable`.
pub(crate) fn increment(db: &Db<'_>, backend: &str, delta: i64) -> Result<()> {
    let n = db.execute(
        "increment backend quota",
        "UPDATE backend_quotas SET bytes_used = bytes_used + ?2, updated_at = ?3 \
         WHERE backend_name = ?1 \
           AND (bytes_limit = 0 OR bytes_used + orphan_bytes + ?2 <= bytes_limit) \
           AND bytes_used + orphan_bytes + ?2 <= 9223372036854775807",
        params![backend, delta, Timestamp::now().as_micros()],
    )?;
    if n == 0 {
        return match counters(db, backend)? {
            None => Err(StoreError::UnknownBackend {
                backend: backend.to_owned(),
            }),
            Some((used, orphan)) if validate::quota_overflows(used, orphan, delta) => Err(
                validate::quota_overflow(backend, i128::from(used) + i128::from(orphan), delta),
            ),
            Some(_) => Err(StoreError::NoSpaceAvailable),
        };
    }
    Ok(())
}

/// `bytes_used = max(0, bytes_used + delta)`, unguarded (decrements and stored-form rewrites),
/// except that a growth taking `bytes_used + orphan_bytes` past `i64::MAX` is refused
/// (`InvalidInput`). Unknown backend ⇒ no-op.
pub(crate) fn adjust_unguarded(db: &Db<'_>, backend: &str, delta: i64) -> Result<()> {
    let n = db.execute(
        "adjust backend quota",
        "UPDATE backend_quotas SET bytes_used = max(0, bytes_used + ?2), updated_at = ?3 \
         WHERE backend_name = ?1 \
           AND (?2 <= 0 OR bytes_used + orphan_bytes + ?2 <= 9223372036854775807)",
        params![backend, delta, Timestamp::now().as_micros()],
    )?;
    if n == 0
        && delta > 0
        && let Some((used, orphan)) = counters(db, backend)?
    {
        return Err(validate::quota_overflow(
            backend,
            i128::from(used) + i128::from(orphan),
            delta,
        ));
    }
    Ok(())
}

/// `orphan_bytes = max(0, orphan_bytes + delta)`. Unknown backend ⇒ no-op.
pub(crate) fn adjust_orphan(db: &Db<'_>, backend: &str, delta: i64) -> Result<()> {
    db.execute(
        "adjust orphan bytes",
        "UPDATE backend_quotas SET orphan_bytes = max(0, orphan_bytes + ?2), updated_at = ?3 \
         WHERE backend_name = ?1",
        params![backend, delta, Timestamp::now().as_micros()],
    )?;
    Ok(())
}

/// `orphan_bytes += delta` (`delta >= 0`), refused (`InvalidInput`) when `bytes_used +
/// orphan_bytes` would pass `i64::MAX`. Unknown backend ⇒ no-op.
pub(crate) fn increment_orphan(db: &Db<'_>, backend: &str, delta: i64) -> Result<()> {
    let n = db.execute(
        "increment orphan bytes",
        "UPDATE backend_quotas SET orphan_bytes = orphan_bytes + ?2, updated_at = ?3 \
         WHERE backend_name = ?1 AND bytes_used + orphan_bytes + ?2 <= 9223372036854775807",
        params![backend, delta, Timestamp::now().as_micros()],
    )?;
    if n == 0
        && let Some((used, orphan)) = counters(db, backend)?
    {
        return Err(validate::quota_overflow(
            backend,
            i128::from(used) + i128::from(orphan),
            delta,
        ));
    }
    Ok(())
}

/// `bytes_used` of every backend.
pub(crate) fn all_bytes_used(db: &Db<'_>) -> Result<BTreeMap<String, i64>> {
    let rows = db.query_vec(
        "read all backend bytes used",
        "SELECT backend_name, bytes_used FROM backend_quotas ORDER BY backend_name",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// Σ `size_bytes` charged to each backend that has any: current copies, noncurrent versions
/// (DESIGN decision 25) and the parts of open uploads (decision 27) — what `bytes_used` charges.
pub(crate) fn sum_charged_by_backend(db: &Db<'_>) -> Result<BTreeMap<String, i64>> {
    let rows = db.query_vec(
        "sum charged bytes by backend",
        "SELECT backend_name, sum(size_bytes) FROM ( \
             SELECT backend_name, size_bytes FROM object_locations \
             UNION ALL \
             SELECT backend_name, size_bytes FROM object_versions WHERE backend_name IS NOT NULL \
             UNION ALL \
             SELECT u.backend_name, p.size_bytes FROM multipart_parts p \
             JOIN multipart_uploads u ON u.upload_id = p.upload_id) \
         GROUP BY backend_name",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// Sets `bytes_used` without the guard.
pub(crate) fn set_bytes_used(db: &Db<'_>, backend: &str, value: i64) -> Result<()> {
    db.execute(
        "set backend bytes used",
        "UPDATE backend_quotas SET bytes_used = ?2, updated_at = ?3 WHERE backend_name = ?1",
        params![backend, value, Timestamp::now().as_micros()],
    )?;
    Ok(())
}

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn backend_capacities(&self, names: &[String]) -> Result<Vec<BackendCapacity>> {
        validate::backend_names(names)?;
        let list = json_list(names);
        self.conns
            .read("read backend capacity", move |db| {
                // One query: the quota rows plus each backend's parts of open uploads (reported).
                db.query_vec(
                    "read backend capacity",
                    "SELECT q.backend_name, q.bytes_limit, q.bytes_used, q.orphan_bytes, \
                            coalesce((SELECT sum(p.size_bytes) FROM multipart_uploads u \
                                      JOIN multipart_parts p ON p.upload_id = u.upload_id \
                                      WHERE u.backend_name = q.backend_name), 0) \
                     FROM backend_quotas q \
                     WHERE q.backend_name IN (SELECT value FROM json_each(?1))",
                    params![list],
                    |r| {
                        Ok(BackendCapacity {
                            backend_name: r.get(0)?,
                            bytes_limit: r.get(1)?,
                            bytes_used: r.get(2)?,
                            orphan_bytes: r.get(3)?,
                            inflight_bytes: r.get(4)?,
                        })
                    },
                )
            })
            .await
    }

    async fn get_quota_stats(&self) -> Result<BTreeMap<String, QuotaStat>> {
        let rows = self
            .conns
            .read("get quota stats", |db| {
                db.query_vec(
                    "get quota stats",
                    "SELECT backend_name, bytes_used, bytes_limit, orphan_bytes, updated_at \
                     FROM backend_quotas ORDER BY backend_name",
                    [],
                    |r| {
                        Ok(QuotaStat {
                            backend_name: r.get(0)?,
                            bytes_used: r.get(1)?,
                            bytes_limit: r.get(2)?,
                            orphan_bytes: r.get(3)?,
                            updated_at: Timestamp::from_micros(
                                r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                            ),
                        })
                    },
                )
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|s| (s.backend_name.clone(), s))
            .collect())
    }
}
