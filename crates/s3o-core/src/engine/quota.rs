//! Backend quotas: admission and counters.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;
use crate::types::{BackendCapacity, QuotaStat};

/// Quota reads and the drift repair.
#[async_trait]
pub trait QuotaStore: Runner {
    /// Admission numbers of the named backends, with their in-flight multipart bytes, in one
    /// read; names without a quota row are absent.
    async fn backend_capacities(&self, names: &[String]) -> Result<Vec<BackendCapacity>>;
    /// Every backend's counters.
    async fn get_quota_stats(&self) -> Result<BTreeMap<String, QuotaStat>>;
}
