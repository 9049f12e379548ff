use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::BackendCapacity;

/// Net byte change per backend. A `BTreeMap` iterates in byte order of the names, which is
/// the global quota-row lock order.
pub type QuotaDeltas = BTreeMap<String, i64>;

/// Applies per-backend deltas in sorted backend order: positive ⇒ guarded increment (may fail
/// with `NoSpaceAvailable`, rolling the whole transaction back), negative ⇒ clamped decrement,
/// zero ⇒ no SQL. The stable order is what keeps two transactions over the same backends
/// (opposite moves, overlapping batch deletes) from deadlocking on quota rows.
pub async fn apply_quota_deltas(tx: &mut dyn TxAdapter, deltas: &QuotaDeltas) -> Result<()> {
    for (backend, &d) in deltas {
        if d > 0 {
            tx.increment_backend_quota(backend, d).await?;
        } else if d < 0 {
            tx.decrement_backend_quota(backend, d.saturating_neg())
                .await?;
        }
    }
    Ok(())
}

/// Applies committed-byte deltas (`used`, as [`apply_quota_deltas`]) and orphan-byte
/// increments (`orphan`: bytes taken out of `used` that stay on the backend until cleanup) in
/// one pass over
/// the union of backends in sorted order, so every quota row is locked once, in the global
/// order, whatever mix of the two a transaction carries.
pub async fn apply_ledger_deltas(
    tx: &mut dyn TxAdapter,
    used: &QuotaDeltas,
    orphan: &QuotaDeltas,
) -> Result<()> {
    let backends: std::collections::BTreeSet<&String> = used.keys().chain(orphan.keys()).collect();
    for backend in backends {
        let d = used.get(backend).copied().unwrap_or(0);
        let o = orphan.get(backend).copied().unwrap_or(0);
        // The backend's physical growth: the used delta plus the bytes that stay behind as
        // orphans. An overwrite at a new path by a smaller object has d < 0 but grows the
        // backend by the new object's size (the old bytes remain until cleanup): that growth
        // must pass the guard like any other. So when d < 0 and the growth is positive, the
        // displaced bytes leave `used` first (debit o), move to orphans, and the growth is
        // charged guarded; the net change of `used` is still d.
        let growth = d.saturating_add(o);
        let (debit, charge) = if d < 0 && growth > 0 && o > 0 {
            (o, growth)
        } else {
            (d.min(0).saturating_neg(), d.max(0))
        };
        // Debits first, then orphans, then the guarded charge: the guard sees every byte that
        // stays on the backend.
        if debit > 0 {
            tx.decrement_backend_quota(backend, debit).await?;
        }
        if o > 0 {
            tx.increment_orphan_bytes(backend, o).await?;
        }
        if charge > 0 {
            tx.increment_backend_quota(backend, charge).await?;
        }
    }
    Ok(())
}

struct Reconcile;

#[async_trait]
impl TxBody for Reconcile {
    type Output = BTreeMap<String, i64>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        let current = tx.all_backend_bytes_used().await?;
        let truth = tx.sum_charged_bytes_by_backend().await?;
        let mut drift = BTreeMap::new();
        for (backend, stored) in current {
            let actual = truth.get(&backend).copied().unwrap_or(0);
            if actual != stored {
                tx.set_backend_bytes_used(&backend, actual).await?;
                drift.insert(backend, actual - stored);
            }
        }
        if !drift.is_empty() {
            tracing::warn!(?drift, "reconciled backend bytes_used drift");
        }
        Ok(drift)
    }
}

/// Sets every backend's `bytes_used` to the Σ `size_bytes` of its copies plus the Σ
/// `size_bytes` of its open uploads' parts (what it is charged for) where the two differ,
/// in one transaction (quota rows locked first, in backend order). Returns `truth − stored`
/// for each drifted backend; an empty map means the ledger was consistent.
#[tracing::instrument(name = "reconcile_usage", level = "debug", skip_all)]
pub async fn reconcile_usage<R: Runner + ?Sized>(runner: &R) -> Result<BTreeMap<String, i64>> {
    with_tx_val(runner, &Reconcile).await
}

/// Refuses a routing list naming a backend that has no quota row: a typo in configuration is
/// `UnknownBackend` (naming the first such name in list order), never `NoSpaceAvailable`.
pub fn require_known(caps: &[BackendCapacity], names: &[String]) -> Result<()> {
    match names
        .iter()
        .find(|n| !caps.iter().any(|c| &c.backend_name == *n))
    {
        Some(missing) => Err(StoreError::UnknownBackend {
            backend: missing.clone(),
        }),
        None => Ok(()),
    }
}

/// The first backend of `order` that admits `size` bytes (see [`BackendCapacity::admits`]);
/// names without a capacity row (unknown backends) are skipped. None ⇒ `NoSpaceAvailable`.
pub fn pick_backend_with_space(
    caps: &[BackendCapacity],
    size: i64,
    order: &[String],
) -> Result<String> {
    order
        .iter()
        .find(|name| {
            caps.iter()
                .any(|c| &c.backend_name == *name && c.admits(size))
        })
        .cloned()
        .ok_or(StoreError::NoSpaceAvailable)
}

/// Among `caps` admitting `size`, the least utilised: fractions compared exactly by
/// cross-multiplication (no floating point), ties broken by name in byte order. None ⇒
/// `NoSpaceAvailable`.
pub fn pick_least_utilized(caps: &[BackendCapacity], size: i64) -> Result<String> {
    caps.iter()
        .filter(|c| c.admits(size))
        .min_by(|a, b| {
            let (an, ad) = a.utilisation();
            let (bn, bd) = b.utilisation();
            // |n| < 2^64 and 0 < d < 2^63: the products fit in an i128.
            (an * bd)
                .cmp(&(bn * ad))
                .then_with(|| a.backend_name.as_bytes().cmp(b.backend_name.as_bytes()))
        })
        .map(|c| c.backend_name.clone())
        .ok_or(StoreError::NoSpaceAvailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(name: &str, limit: i64, used: i64, orphan: i64, inflight: i64) -> BackendCapacity {
        BackendCapacity {
            backend_name: name.into(),
            bytes_limit: limit,
            bytes_used: used,
            orphan_bytes: orphan,
            inflight_bytes: inflight,
        }
    }

    #[test]
    fn least_utilised_is_exact_and_ties_by_name() {
        let pick = |caps: &[BackendCapacity], size| pick_least_utilized(caps, size).ok();
        // 2^53 + 1 and 2^53 are the same f64; exactly, "b" is less utilised.
        let big = 1i64 << 62;
        let caps = [
            cap("a", big, (1 << 53) + 1, 0, 0),
            cap("b", big, 1 << 53, 0, 0),
        ];
        assert_eq!(pick(&caps, 0).as_deref(), Some("b"));
        // Equal fractions tie; the name in byte order decides ("B" < "a" < "z").
        let caps = [
            cap("z", 10, 5, 0, 0),
            cap("B", 4, 1, 1, 0),
            cap("a", 100, 50, 0, 0),
        ];
        assert_eq!(pick(&caps, 0).as_deref(), Some("B"));
        // Unlimited counts as 0; orphans count as used; no room ⇒ skipped.
        let caps = [cap("a", 10, 0, 0, 0), cap("b", 0, 1 << 40, 0, 0)];
        assert_eq!(pick(&caps, 0).as_deref(), Some("a"));
        let caps = [cap("a", 10, 0, 9, 0), cap("b", 10, 5, 0, 0)];
        assert_eq!(pick(&caps, 1).as_deref(), Some("b"));
        assert_eq!(pick(&caps, 6), None);
        let extreme = [
            cap("a", i64::MAX, i64::MAX, i64::MAX, i64::MAX),
            cap("b", 1, i64::MAX, 0, 0),
        ];
        assert_eq!(pick(&extreme, 0), None);
    }

    #[test]
    fn backend_with_space_follows_order_and_ignores_inflight_bytes() {
        // The parts of open uploads (40 on "a") are inside `used` already: routing must not
        // count them twice, and must agree with the guard (one rule, `quota_admits`).
        let caps = [
            cap("a", 100, 50, 0, 40),
            cap("b", 100, 0, 0, 0),
            cap("c", 0, 1 << 50, 0, 0),
        ];
        let order = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pick_backend_with_space(&caps, 50, &order(&["a", "b"])).unwrap(),
            "a"
        );
        assert_eq!(
            pick_backend_with_space(&caps, 51, &order(&["a", "b"])).unwrap(),
            "b"
        );
        for size in [0, 1, 49, 50, 51, 100] {
            assert_eq!(
                caps[0].admits(size),
                crate::types::quota_admits(100, 50, 0, size),
                "routing and guard disagree at {size}"
            );
        }
        assert_eq!(
            pick_backend_with_space(&caps, 11, &order(&["ghost", "c"])).unwrap(),
            "c"
        );
        assert!(matches!(
            pick_backend_with_space(&caps, 101, &order(&["a", "b"])),
            Err(StoreError::NoSpaceAvailable)
        ));
        assert!(pick_backend_with_space(&caps, 0, &[]).is_err());
    }
}
