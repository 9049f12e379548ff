//! Backend quotas: admission and counters.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::ops;
use crate::tx::Runner;
use crate::types::{BackendCapacity, QuotaStat};
use crate::validate;

/// Quota reads and the drift repair.
#[async_trait]
pub trait QuotaStore: Runner {
    /// Admission numbers of the named backends, with their in-flight multipart bytes, in one
    /// read; names without a quota row are absent.
    async fn backend_capacities(&self, names: &[String]) -> Result<Vec<BackendCapacity>>;
    /// The first backend of `order` whose available bytes (unlimited, or `limit − used −
    /// orphan − in-flight multipart bytes`) are at least `size`. Invalid names ⇒
    /// `InvalidInput`; unknown names are skipped. None ⇒ `NoSpaceAvailable`.
    async fn get_backend_with_space(&self, size: i64, order: &[String]) -> Result<String> {
        validate::size("object size", size)?;
        validate::backend_names(order)?;
        if order.is_empty() {
            return Err(StoreError::NoSpaceAvailable);
        }
        let caps = self.backend_capacities(order).await?;
        ops::pick_backend_with_space(&caps, size, order)
    }
    /// Among `eligible` backends with room for `size`, the least utilised (`(used + orphan) /
    /// limit` compared exactly, unlimited = 0), ties by name. None ⇒ `NoSpaceAvailable`.
    async fn get_least_utilized_backend(&self, size: i64, eligible: &[String]) -> Result<String> {
        validate::size("object size", size)?;
        validate::backend_names(eligible)?;
        if eligible.is_empty() {
            return Err(StoreError::NoSpaceAvailable);
        }
        let caps = self.backend_capacities(eligible).await?;
        ops::pick_least_utilized(&caps, size)
    }
    /// Every backend's counters.
    async fn get_quota_stats(&self) -> Result<BTreeMap<String, QuotaStat>>;
    /// Sets `bytes_used` to Σ `size_bytes` where they differ (see [`ops::reconcile_usage`]).
    /// Returns `truth − stored` per drifted backend; empty when consistent.
    async fn reconcile_usage(&self) -> Result<BTreeMap<String, i64>> {
        ops::reconcile_usage(self).await
    }
}
