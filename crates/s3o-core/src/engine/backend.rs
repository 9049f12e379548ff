//! Backend removal.

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;

/// Backend lifecycle.
#[async_trait]
pub trait BackendLifecycleStore: Runner {
    /// `(copies, Σ size_bytes)` on `backend`.
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)>;
}
