use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};

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

struct Reconcile;

#[async_trait]
impl TxBody for Reconcile {
    type Output = BTreeMap<String, i64>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        let current = tx.all_backend_bytes_used().await?;
        let truth = tx.sum_object_sizes_by_backend().await?;
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

/// Sets every backend's `bytes_used` to the Σ `size_bytes` of its copies where the two differ,
/// in one transaction (quota rows locked first, in backend order). Returns `truth − stored`
/// for each drifted backend; an empty map means the ledger was consistent.
#[tracing::instrument(name = "reconcile_usage", level = "debug", skip_all)]
pub async fn reconcile_usage<R: Runner + ?Sized>(runner: &R) -> Result<BTreeMap<String, i64>> {
    with_tx_val(runner, &Reconcile).await
}
