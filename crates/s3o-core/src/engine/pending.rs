//! In-flight PUT intents.

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;
use crate::types::PendingObject;

/// Intent tracking for the write path and the pending reaper.
#[async_trait]
pub trait PendingStore: Runner {
    /// Records an intent before the backend PUT. Unknown backend ⇒ `UnknownBackend`;
    /// duplicate intent id ⇒ `Database { kind: UniqueViolation }`.
    async fn insert_pending(&self, p: &PendingObject) -> Result<()>;
    /// Deletes an intent; missing ⇒ no-op.
    async fn delete_pending(&self, intent_id: &str) -> Result<()>;
    /// Deletes every intent of a backend; returns how many.
    async fn delete_pending_by_backend(&self, backend: &str) -> Result<i64>;
    /// Heartbeat of writes still running: sets the `created_at` of each listed intent to the
    /// database's now, so the reaper (which ends intents older than its `min_age`) leaves them
    /// alone. Missing ids are skipped; returns how many intents were touched. At most
    /// [`crate::validate::MAX_BATCH_KEYS`] ids.
    async fn touch_pending(&self, intent_ids: &[String]) -> Result<i64>;
    /// Records the id of the multipart upload a write opened on its backend with the write's
    /// intent (replacing any earlier one), so whoever ends the intent can abort the upload.
    /// `false` when the intent is gone.
    async fn set_pending_backend_upload(&self, intent_id: &str, upload_id: &str) -> Result<bool>;
    /// The backend multipart upload recorded with an intent; `None` when none was recorded or
    /// the intent is gone.
    async fn get_pending_backend_upload(&self, intent_id: &str) -> Result<Option<String>>;
}
