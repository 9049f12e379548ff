//! Backend quotas: admission and counters.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::ops;
use crate::tx::Runner;
use crate::types::QuotaStat;

/// Quota reads and the drift repair.
#[async_trait]
pub trait QuotaStore: Runner {
    /// The first backend of `order` whose available bytes (unlimited, or `limit − used −
    /// orphan − in-flight multipart bytes`) are at least `size`. Unknown names are skipped.
    /// None ⇒ `NoSpaceAvailable`.
    async fn get_backend_with_space(&self, size: i64, order: &[String]) -> Result<String>;
    /// Among `eligible` backends with room for `size`, the least utilised (`(used + orphan) /
    /// limit`, unlimited = 0), ties by name. None ⇒ `NoSpaceAvailable`.
    async fn get_least_utilized_backend(&self, size: i64, eligible: &[String]) -> Result<String>;
    /// Every backend's counters.
    async fn get_quota_stats(&self) -> Result<BTreeMap<String, QuotaStat>>;
    /// Sets `bytes_used` to Σ `size_bytes` where they differ (see [`ops::reconcile_usage`]).
    /// Returns `truth − stored` per drifted backend; empty when consistent.
    async fn reconcile_usage(&self) -> Result<BTreeMap<String, i64>> {
        ops::reconcile_usage(self).await
    }
}
