//! Backend removal.

use async_trait::async_trait;

use crate::error::Result;

/// Backend lifecycle.
#[async_trait]
pub trait BackendLifecycleStore: Send + Sync {
    /// `(copies, Σ size_bytes)` on `backend`.
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)>;
    /// Removes everything that references `backend` — cleanup queue and DLQ rows, pending
    /// intents, multipart uploads (parts cascade), copies, usage rows — and then its quota
    /// row, in one transaction. Unknown backend ⇒ `UnknownBackend`.
    async fn delete_backend_data(&self, backend: &str) -> Result<()>;
}
