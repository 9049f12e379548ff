//! Backend removal.

use async_trait::async_trait;

use crate::error::Result;
use crate::ops;
use crate::tx::Runner;

/// Backend lifecycle.
#[async_trait]
pub trait BackendLifecycleStore: Runner {
    /// `(copies, Σ size_bytes)` on `backend`.
    async fn backend_object_stats(&self, backend: &str) -> Result<(i64, i64)>;
    /// Removes everything that references `backend` — cleanup queue and DLQ rows, pending
    /// intents, multipart uploads (parts cascade), copies, usage rows — and then its quota
    /// row, in one transaction (see [`ops::delete_backend_data`]). Unknown backend ⇒
    /// `UnknownBackend`.
    async fn delete_backend_data(&self, backend: &str) -> Result<()> {
        ops::delete_backend_data(self, backend).await
    }
}
