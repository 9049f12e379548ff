//! `backend_quotas` and `backend_quota_stripes`: the guarded counters and the admission reads.
//!
//! A charge goes to one stripe row of its backend, guarded by that stripe's grant, so
//! concurrent writers to one backend hold different rows until they commit. When the stripe's
//! grant cannot take the charge, the charging transaction locks the quota row and then every
//! stripe (in stripe order), folds the stripes' used bytes into the quota row, checks the exact
//! remainder (`bytes_limit − bytes_used − orphan_bytes`), charges the quota row and spreads what
//! is left over the stripes as new grants. Migration 0006 states the invariant that keeps
//! `Σ used + orphan ≤ limit` at every commit; 0008 extends it to unlimited backends with
//! `i64::MAX` as their bound, so no counter or sum can overflow. Debits, orphan bytes and
//! limits stay on the quota row; an orphan increment that would break the invariant takes the
//! unused grants back, and one that would take the total past `i64::MAX` is refused
//! (`InvalidInput`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use s3o_core::engine::QuotaStore;
use s3o_core::tx::QuotaTx;
use s3o_core::{BackendCapacity, QuotaStat, Result, StoreError, validate};

use crate::PgStore;
use crate::conn::ts;
use crate::error::RowExt;
use crate::tx::PgTx;

/// Stripe rows per backend (migration 0006 creates them for existing backends,
/// `sync_quota_limits` for new ones).
pub(crate) const QUOTA_STRIPES: i16 = 16;

/// The next stripe a charge tries: round robin, so concurrent chargers land on different rows.
fn next_stripe() -> i16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    (NEXT.fetch_add(1, Ordering::Relaxed) % QUOTA_STRIPES as usize) as i16
}

/// A backend's total used bytes: the quota row's plus its stripes', for a query over
/// `backend_quotas q`.
const TOTAL_USED: &str = "(q.bytes_used + COALESCE((SELECT SUM(s.bytes_used) \
     FROM backend_quota_stripes s WHERE s.backend_name = q.backend_name), 0))::bigint";

/// The latest change to a backend's counters, its stripes' included.
const LAST_UPDATED: &str = "GREATEST(q.updated_at, (SELECT MAX(s.updated_at) \
     FROM backend_quota_stripes s WHERE s.backend_name = q.backend_name))";

/// Folds the stripes of the backends named in `$1` into their quota rows: each stripe's used
/// bytes move to `backend_quotas.bytes_used`, and used and granted bytes go to zero. Locks the
/// stripes in (backend, stripe) order; callers hold the quota rows' locks already (taken
/// first, so foldings never deadlock with each other).
pub(crate) const FOLD_STRIPES: &str = "WITH old AS MATERIALIZED ( \
       SELECT backend_name, stripe, bytes_used FROM backend_quota_stripes \
       WHERE backend_name = ANY($1) ORDER BY backend_name COLLATE \"C\", stripe FOR UPDATE), \
     zeroed AS (UPDATE backend_quota_stripes s SET bytes_used = 0, bytes_granted = 0 \
       FROM old WHERE s.backend_name = old.backend_name AND s.stripe = old.stripe), \
     moved AS (SELECT backend_name, SUM(bytes_used)::bigint AS n FROM old GROUP BY backend_name) \
     UPDATE backend_quotas q SET bytes_used = q.bytes_used + moved.n, updated_at = NOW() \
     FROM moved WHERE q.backend_name = moved.backend_name AND moved.n <> 0";

/// Spreads each named backend's exact remainder over its stripes as grants; an unlimited
/// backend's stripes share half of the headroom below `i64::MAX` (`(i64::MAX − used − orphan)
/// / (2 × stripes)` each, still about 2^58 on an empty backend). So for every backend `used +
/// orphan + Σ grants` stays within its limit, or `i64::MAX`: no sum a reader or a fold computes
/// can overflow, and the other half absorbs orphan growth without taking the grants back (see
/// [`PgTx::settle_unguarded_growth`]). "Unlimited" thus lives on the stripe row itself and a
/// charge never reads the limit, which a concurrent limit change could make stale (see
/// [`CHARGE_STRIPE`]). Run right after [`FOLD_STRIPES`] in the same transaction, holding the
/// quota rows' locks (so `used` is the backend's whole total, never negative).
pub(crate) const GRANT_STRIPES: &str = "UPDATE backend_quota_stripes s SET bytes_granted = CASE WHEN q.bytes_limit = 0 \
     THEN GREATEST(0, 9223372036854775807 - GREATEST(0, q.bytes_used) - q.orphan_bytes) / (2 * $2::bigint) \
     ELSE GREATEST(0, q.bytes_limit - q.bytes_used - q.orphan_bytes) / $2::bigint END \
     FROM backend_quotas q \
     WHERE s.backend_name = q.backend_name AND q.backend_name = ANY($1)";

/// The fast path of a charge: the first stripe of the backend, starting at `$3` and going
/// round, that is not locked by another transaction and whose grant takes the charge. It
/// never waits for a stripe (`SKIP LOCKED`), so a transaction only ever holds a stripe it
/// charged; one that finds none goes to [`PgTx::charge_folding`] holding no stripe of the
/// backend. (An `UPDATE` that waited on a busy stripe and then failed its re-check would keep
/// that stripe locked while it waits for the quota row, whose holder may be waiting for the
/// stripe: a deadlock.) The guard reads only the stripe row, whose latest version the lock
/// re-checks, so a concurrent limit change cannot leave it stale.
const CHARGE_STRIPE: &str = "UPDATE backend_quota_stripes s \
     SET bytes_used = s.bytes_used + $2, updated_at = NOW() \
     FROM (SELECT stripe FROM backend_quota_stripes \
       WHERE backend_name = $1 AND bytes_used + $2 <= bytes_granted \
       ORDER BY (stripe + 16 - $3::smallint) % 16 LIMIT 1 FOR UPDATE SKIP LOCKED) pick \
     WHERE s.backend_name = $1 AND s.stripe = pick.stripe RETURNING 1";

impl PgTx {
    /// The charge when the stripe's grant cannot take it: lock the quota row, fold every
    /// stripe, check the exact remainder, charge the quota row, re-grant what is left.
    /// The row lock is `FOR NO KEY UPDATE`, what an `UPDATE` of the row takes: it does not
    /// conflict with the `KEY SHARE` locks that writers' inserts take through foreign keys.
    async fn charge_folding(&mut self, backend: &str, delta: i64) -> Result<()> {
        let locked = self
            .query_opt(
                "lock backend quota",
                "SELECT 1 FROM backend_quotas WHERE backend_name = $1 FOR NO KEY UPDATE",
                &[&backend],
            )
            .await?;
        if locked.is_none() {
            return Err(StoreError::UnknownBackend {
                backend: backend.to_owned(),
            });
        }
        let names = [backend];
        self.execute("fold quota stripes", FOLD_STRIPES, &[&names.as_slice()])
            .await?;
        // Read after the fold, which moved the stripes' bytes into the row this transaction
        // holds: the exact totals.
        let row = self
            .query_one(
                "read folded backend quota",
                "SELECT bytes_limit, bytes_used, orphan_bytes FROM backend_quotas \
                 WHERE backend_name = $1",
                &[&backend],
            )
            .await?;
        let (limit, used, orphan): (i64, i64, i64) = (row.col(0)?, row.col(1)?, row.col(2)?);
        if validate::quota_overflows(used, orphan, delta) {
            return Err(validate::quota_overflow(
                backend,
                i128::from(used) + i128::from(orphan),
                delta,
            ));
        }
        if limit > 0 && used.saturating_add(orphan).saturating_add(delta) > limit {
            return Err(StoreError::NoSpaceAvailable);
        }
        self.execute(
            "charge backend quota row",
            "UPDATE backend_quotas SET bytes_used = bytes_used + $2, updated_at = NOW() \
             WHERE backend_name = $1",
            &[&backend, &delta],
        )
        .await?;
        let stripes = i64::from(QUOTA_STRIPES);
        self.execute(
            "grant quota stripes",
            GRANT_STRIPES,
            &[&names.as_slice(), &stripes],
        )
        .await?;
        Ok(())
    }

    /// Adds `delta` to the quota row's bytes_used, flooring the backend's total (row plus
    /// stripes) at zero as the single row used to be floored. The row may go below zero on its
    /// own (the stripes hold part of the total); only then is the floor checked, in a second
    /// statement whose snapshot, taken with the row locked, sees every committed stripe
    /// charge — a stale stripe sum could otherwise floor a legitimate debit.
    async fn add_to_row(&mut self, backend: &str, delta: i64) -> Result<()> {
        let row = self
            .query_opt(
                "debit backend quota",
                "UPDATE backend_quotas SET bytes_used = bytes_used + $2, updated_at = NOW() \
                 WHERE backend_name = $1 RETURNING bytes_used",
                &[&backend, &delta],
            )
            .await?;
        let Some(row) = row else { return Ok(()) };
        if row.col::<i64>(0)? >= 0 {
            return Ok(());
        }
        self.execute(
            "floor backend quota",
            "UPDATE backend_quotas q SET bytes_used = -s.total \
             FROM (SELECT COALESCE(SUM(bytes_used), 0)::bigint AS total \
                   FROM backend_quota_stripes WHERE backend_name = $1) s \
             WHERE q.backend_name = $1 AND q.bytes_used < -s.total",
            &[&backend],
        )
        .await?;
        Ok(())
    }

    /// After the quota row grew without the guard (orphan bytes, an unguarded charge): if the
    /// row plus the stripes' grants now exceed the limit (`i64::MAX` when unlimited), takes
    /// back every unused grant (each stripe keeps exactly what it charged); and if the
    /// backend's total (`used + orphan`, stripes included) is past `i64::MAX`, refuses with
    /// `InvalidInput` (the caller's transaction rolls back). Sums are taken as `numeric`, so the
    /// check itself cannot overflow. The caller holds the quota row's lock, so the grants
    /// cannot change meanwhile.
    async fn settle_unguarded_growth(&mut self, backend: &str, delta: i64) -> Result<()> {
        let row = self
            .query_opt(
                "revoke quota stripe grants",
                "WITH t AS ( \
                   SELECT q.bytes_limit AS lim, q.bytes_used::numeric + q.orphan_bytes AS base, \
                     (SELECT COALESCE(SUM(g.bytes_granted), 0) FROM backend_quota_stripes g \
                      WHERE g.backend_name = $1) AS granted, \
                     (SELECT COALESCE(SUM(g.bytes_used), 0) FROM backend_quota_stripes g \
                      WHERE g.backend_name = $1) AS striped \
                   FROM backend_quotas q WHERE q.backend_name = $1), \
                 revoked AS (UPDATE backend_quota_stripes s SET bytes_granted = s.bytes_used \
                   FROM t WHERE s.backend_name = $1 AND s.bytes_granted > s.bytes_used \
                   AND t.base + t.granted > \
                     CASE WHEN t.lim = 0 THEN 9223372036854775807 ELSE t.lim END) \
                 SELECT (t.base + t.striped)::text FROM t",
                &[&backend],
            )
            .await?;
        let Some(row) = row else { return Ok(()) };
        let total: String = row.col(0)?;
        // numeric text of an integer sum: digits with an optional sign.
        let total: i128 = total.parse().unwrap_or(i128::MAX);
        if total > i128::from(i64::MAX) {
            return Err(validate::quota_overflow(
                backend,
                total - i128::from(delta),
                delta,
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl QuotaTx for PgTx {
    async fn increment_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("quota delta", delta)?;
        // One stripe row, locked until commit; the others stay free for concurrent writers.
        let stripe = next_stripe();
        let charged = self
            .query_opt(
                "charge quota stripe",
                CHARGE_STRIPE,
                &[&backend, &delta, &stripe],
            )
            .await?;
        if charged.is_some() {
            return Ok(());
        }
        self.charge_folding(backend, delta).await
    }

    async fn decrement_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        validate::size("quota delta", delta)?;
        // On the quota row; the freed bytes return to the stripes at the next fold.
        self.add_to_row(backend, -delta).await
    }

    async fn adjust_backend_quota_unguarded(&mut self, backend: &str, delta: i64) -> Result<()> {
        validate::backend(backend)?;
        self.add_to_row(backend, delta).await?;
        if delta > 0 {
            // Like orphan bytes, an unguarded charge must not leave grants above the limit.
            self.settle_unguarded_growth(backend, delta).await?;
        }
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
        self.settle_unguarded_growth(backend, delta).await
    }

    async fn all_backend_bytes_used(&mut self) -> Result<BTreeMap<String, i64>> {
        // Per backend in name order (the global lock order): its quota row, then its stripes,
        // folded into the row. A writer holding one of this backend's stripes never waits for
        // a later backend's row that this transaction already holds. Folding zeroes every
        // grant, so until commit any charge of a folded backend needs its row: no charge can
        // land, and each row's bytes_used is its backend's total.
        let names: Vec<String> = self
            .query(
                "list quota rows",
                "SELECT backend_name FROM backend_quotas ORDER BY backend_name COLLATE \"C\"",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.col(0))
            .collect::<Result<_>>()?;
        for name in &names {
            self.execute(
                "lock quota row",
                "SELECT 1 FROM backend_quotas WHERE backend_name = $1 FOR UPDATE",
                &[name],
            )
            .await?;
            let one = [name.as_str()];
            self.execute("fold quota stripes", FOLD_STRIPES, &[&one.as_slice()])
                .await?;
        }
        let rows = self
            .query(
                "read bytes used",
                "SELECT backend_name, bytes_used FROM backend_quotas",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.col(0)?, r.col(1)?)))
            .collect::<Result<_>>()?)
    }

    async fn sum_charged_bytes_by_backend(&mut self) -> Result<BTreeMap<String, i64>> {
        let rows = self
            .query(
                "sum charged bytes",
                // What `bytes_used` charges: current copies, noncurrent versions (DESIGN
                // decision 25) and the parts of open uploads (decision 27).
                "SELECT backend_name, SUM(size_bytes)::bigint FROM ( \
                 SELECT backend_name, size_bytes FROM object_locations \
                 UNION ALL \
                 SELECT backend_name, size_bytes FROM object_versions \
                 WHERE backend_name IS NOT NULL \
                 UNION ALL \
                 SELECT u.backend_name, p.size_bytes FROM multipart_parts p \
                 JOIN multipart_uploads u ON u.upload_id = p.upload_id) charged \
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
        // The stripes were folded (and stay locked) by `all_backend_bytes_used`; fold again in
        // case a caller did not start there, so the row alone carries the total.
        let names = [backend];
        self.execute("fold quota stripes", FOLD_STRIPES, &[&names.as_slice()])
            .await?;
        // The fold returned every grant: the next charge re-grants from the new total.
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
        // One query: the quota rows plus each backend's parts of open uploads (reported).
        let rows = self
            .db
            .query(
                "read backend capacity",
                &format!(
                    "SELECT q.backend_name, q.bytes_limit, {TOTAL_USED}, q.orphan_bytes, \
                 COALESCE((SELECT SUM(p.size_bytes) FROM multipart_uploads u \
                   JOIN multipart_parts p ON p.upload_id = u.upload_id \
                   WHERE u.backend_name = q.backend_name), 0)::bigint \
                 FROM backend_quotas q WHERE q.backend_name = ANY($1)"
                ),
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
                &format!(
                    "SELECT q.backend_name, {TOTAL_USED}, q.bytes_limit, q.orphan_bytes, \
                     {LAST_UPDATED} FROM backend_quotas q"
                ),
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
