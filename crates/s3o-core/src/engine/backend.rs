//! Backend removal.

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;

/// Backend lifecycle.
#[async_trait]
pub trait BackendLifecycleStore: Runner {
    /// `(copies, Σ size_bytes)` on `backend`.
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)>;
    /// Sets or clears `backend`'s draining flag (the write fence of a drain, read by every
    /// gateway on the ledger through [`BackendLifecycleStore::draining_backends`]); `false`
    /// when the backend has no quota row (nothing changes).
    async fn set_backend_draining(&self, backend: &str, draining: bool) -> Result<bool>;
    /// The backends whose draining flag is set, in name order.
    async fn draining_backends(&self) -> Result<Vec<String>>;
}
