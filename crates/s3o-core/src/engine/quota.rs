//! Backend quotas: admission and counters.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;
use crate::types::{BackendCapacity, QuotaStat};

/// Quota reads and the drift repair.
#[async_trait]
pub trait QuotaStore: Runner {
    /// Admission numbers of the named backends, in one read and in no particular order:
    /// `bytes_limit`, `bytes_used` (committed copies and the recorded parts of open uploads;
    /// on PostgreSQL the quota row plus its stripes), `orphan_bytes` (bytes awaiting cleanup)
    /// and `inflight_bytes` (Σ part sizes of the backend's open multipart uploads, the part
    /// of `bytes_used` that is parts: reported, counted by admission through `bytes_used`). Pending write intents are counted nowhere. A name without a quota
    /// row is absent from the result (no error); an invalid name (empty, over-long, NUL) ⇒
    /// `InvalidInput`.
    async fn backend_capacities(&self, names: &[String]) -> Result<Vec<BackendCapacity>>;
    /// Every backend's counters.
    async fn get_quota_stats(&self) -> Result<BTreeMap<String, QuotaStat>>;
}
