//! Integrity scrubbing: hashes and the deterministic scrub queue.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::ObjectLocation;

/// Integrity scrubber queries.
#[async_trait]
pub trait IntegrityStore: Send + Sync {
    /// Managed copies with no content hash, oldest first; `limit` per [`crate::validate::page`],
    /// negative `offset` treated as 0.
    async fn get_objects_without_hash(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ObjectLocation>>;
    /// Sets the content hash of one copy and stamps it verified now. `false` when gone.
    async fn update_content_hash(&self, key: &str, backend: &str, hash: &str) -> Result<bool>;
    /// Hashed, managed copies on `backends`, least recently verified first (never-verified by
    /// age), ties by key. Deterministic, unlike sampling. Empty `backends` ⇒ empty result.
    async fn get_least_recently_scrubbed_objects(
        &self,
        limit: i64,
        backends: &[String],
    ) -> Result<Vec<ObjectLocation>>;
    /// Stamps one copy verified now. `false` when gone.
    async fn mark_object_scrubbed(&self, key: &str, backend: &str) -> Result<bool>;
}
