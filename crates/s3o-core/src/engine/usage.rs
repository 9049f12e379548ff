//! Monthly usage counters.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::types::UsageStat;

/// Usage counter flushes and reads.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds the deltas to `(backend, period)` (created at zero if absent). Concurrent flushers
    /// converge without loss. `period` is `YYYY-MM`. Unknown backend ⇒ `UnknownBackend`.
    async fn flush_usage_deltas(
        &self,
        backend: &str,
        period: &str,
        api_requests: i64,
        egress_bytes: i64,
        ingress_bytes: i64,
    ) -> Result<()>;
    /// Counters of every backend for `period`.
    async fn get_usage_for_period(&self, period: &str) -> Result<BTreeMap<String, UsageStat>>;
}
