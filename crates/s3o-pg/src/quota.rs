//! `backend_quotas`: the guarded counters and the admission reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::tx::QuotaTx;
use s3o_core::{QuotaStat, QuotaStore, Result, StoreError, validate};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::ts;
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
        let (known, charged): (bool, bool) = (row.get(0), row.get(1));
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
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
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
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
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

/// One candidate backend's admission numbers.
struct Capacity {
    name: String,
    limit: i64,
    used: i64,
    orphan: i64,
    inflight: i64,
}

impl Capacity {
    fn from_row(r: &Row) -> Self {
        Capacity {
            name: r.get(0),
            limit: r.get(1),
            used: r.get(2),
            orphan: r.get(3),
            inflight: r.get(4),
        }
    }

    /// Bytes still admissible; `None` = unlimited. Exact (i128), never overflowing.
    fn available(&self) -> Option<i128> {
        (self.limit != 0).then(|| {
            i128::from(self.limit)
                - i128::from(self.used)
                - i128::from(self.orphan)
                - i128::from(self.inflight)
        })
    }

    /// Whether `size` more bytes fit.
    fn admits(&self, size: i64) -> bool {
        self.available().is_none_or(|a| a >= i128::from(size))
    }

    /// Utilisation `(used + orphan) / limit` as an exact fraction `(numerator, denominator)`;
    /// unlimited ⇒ `0 / 1`.
    fn utilisation(&self) -> (i128, i128) {
        if self.limit == 0 {
            (0, 1)
        } else {
            (
                i128::from(self.used) + i128::from(self.orphan),
                i128::from(self.limit),
            )
        }
    }
}

/// The least utilised of `caps` admitting `size`, utilisations compared exactly by
/// cross-multiplication (no floating point), ties broken by name in byte order: the same
/// choice the SQLite engine makes.
fn least_utilised(caps: &[Capacity], size: i64) -> Option<&Capacity> {
    caps.iter().filter(|c| c.admits(size)).min_by(|a, b| {
        let (an, ad) = a.utilisation();
        let (bn, bd) = b.utilisation();
        // |n| < 2^64 and 0 < d < 2^63: the products fit in an i128.
        (an * bd)
            .cmp(&(bn * ad))
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    })
}

impl PgStore {
    /// Admission numbers of the named backends (unknown names are simply absent), with the
    /// in-flight multipart bytes of each: one query.
    async fn capacities(&self, names: &[String]) -> Result<Vec<Capacity>> {
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
        Ok(rows.iter().map(Capacity::from_row).collect())
    }
}

#[async_trait]
impl QuotaStore for PgStore {
    async fn get_backend_with_space(&self, size: i64, order: &[String]) -> Result<String> {
        validate::size("object size", size)?;
        validate::backend_names(order)?;
        if order.is_empty() {
            return Err(StoreError::NoSpaceAvailable);
        }
        let caps = self.capacities(order).await?;
        order
            .iter()
            .find(|name| caps.iter().any(|c| &c.name == *name && c.admits(size)))
            .cloned()
            .ok_or(StoreError::NoSpaceAvailable)
    }

    async fn get_least_utilized_backend(&self, size: i64, eligible: &[String]) -> Result<String> {
        validate::size("object size", size)?;
        validate::backend_names(eligible)?;
        if eligible.is_empty() {
            return Err(StoreError::NoSpaceAvailable);
        }
        let caps = self.capacities(eligible).await?;
        least_utilised(&caps, size)
            .map(|c| c.name.clone())
            .ok_or(StoreError::NoSpaceAvailable)
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
                let stat = QuotaStat {
                    backend_name: r.get(0),
                    bytes_used: r.get(1),
                    bytes_limit: r.get(2),
                    orphan_bytes: r.get(3),
                    updated_at: ts(r.get(4)),
                };
                (stat.backend_name.clone(), stat)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(name: &str, limit: i64, used: i64, orphan: i64) -> Capacity {
        Capacity {
            name: name.into(),
            limit,
            used,
            orphan,
            inflight: 0,
        }
    }

    #[test]
    fn least_utilised_is_exact_and_ties_by_name() {
        let pick = |caps: &[Capacity], size| least_utilised(caps, size).map(|c| c.name.clone());
        // 2^53 + 1 and 2^53 are the same f64: a floating-point ratio ties them and the name
        // picks "a"; exactly, "b" is less utilised.
        let big = 1i64 << 62;
        let caps = [cap("a", big, (1 << 53) + 1, 0), cap("b", big, 1 << 53, 0)];
        assert_eq!(pick(&caps, 0).as_deref(), Some("b"));
        // Equal fractions with different limits tie; the name in byte order decides.
        let caps = [cap("z", 10, 5, 0), cap("B", 4, 1, 1), cap("a", 100, 50, 0)];
        assert_eq!(pick(&caps, 0).as_deref(), Some("B"));
        // Unlimited counts as 0; orphans count as used; a backend without room is skipped.
        let caps = [cap("a", 10, 0, 0), cap("b", 0, 1 << 40, 0)];
        assert_eq!(pick(&caps, 0).as_deref(), Some("a"));
        let caps = [cap("a", 10, 0, 9), cap("b", 10, 5, 0)];
        assert_eq!(pick(&caps, 1).as_deref(), Some("b"));
        assert_eq!(pick(&caps, 6), None);
        // Extreme counters neither overflow nor panic.
        let caps = [
            cap("a", i64::MAX, i64::MAX, i64::MAX),
            cap("b", 1, i64::MAX, i64::MAX),
        ];
        assert_eq!(pick(&caps, 0), None);
        let caps = [
            cap("a", i64::MAX, i64::MAX - 1, 0),
            cap("b", i64::MAX, 0, 0),
        ];
        assert_eq!(pick(&caps, 1).as_deref(), Some("b"));
    }
}
