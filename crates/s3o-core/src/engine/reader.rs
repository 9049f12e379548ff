//! Read-only queries that need no transaction or row lock.

use async_trait::async_trait;

use crate::error::Result;
use std::time::Duration;

use crate::types::{CleanupItem, KeyBound, ObjectLocation, PendingObject};

/// The engine's read-only operations. On SQLite they run on the reader pool, in parallel with
/// an open write transaction.
#[async_trait]
pub trait Reader: Send + Sync {
    /// Intents created at least `older_than` ago by the database's clock (`created_at <= now -
    /// older_than`, so [`Duration::ZERO`] selects every intent), oldest first, at most `limit`
    /// (see [`crate::validate::page`]). Ages are capped at [`crate::validate::MAX_AGE`].
    async fn get_stale_pending(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<PendingObject>>;
    /// Number of pending intents.
    async fn count_pending(&self) -> Result<i64>;
    /// Every copy of `key`, full columns, oldest first, ties by backend name. Replicas and
    /// moved copies keep the `created_at` of the version they copy (a replica is the same
    /// version of the object), so "oldest" is the version's time, not the copy's.
    /// No copy ⇒ `ObjectNotFound`, never an empty vector.
    async fn get_all_object_locations(&self, key: &str) -> Result<Vec<ObjectLocation>>;
    /// Copies on `backend`, smallest first, at most `limit` (≤ 0 ⇒ 1000).
    async fn list_objects_by_backend(
        &self,
        backend: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>>;
    /// Copies on `backend` with key strictly after `after_key` in byte order, ascending;
    /// `""` starts at the first key. At most `limit` (≤ 0 ⇒ 1000).
    async fn list_objects_by_backend_key_asc(
        &self,
        backend: &str,
        after_key: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>>;
    /// One row per key (its oldest copy, ties broken by backend name) whose key starts with
    /// `prefix` (byte-wise, case-sensitive, `%`/`_`/`\` ordinary) and satisfies `bound`, in
    /// byte order, at most `limit` rows. The raw material of every listing.
    async fn list_objects_by_prefix(
        &self,
        prefix: &str,
        bound: KeyBound<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectLocation>>;
    /// One row per key (its oldest copy) matching `prefix` whose oldest copy was created more
    /// than `older_than` ago by the database's clock (`created_at < now - older_than`), in
    /// byte order, at most `limit` (≤ 0 ⇒ 1000).
    async fn list_expired_objects(
        &self,
        prefix: &str,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>>;
    /// Read-only snapshot of due rows (`next_retry <= now AND attempts < MAX_ATTEMPTS`), oldest
    /// first, with their claim columns; never stamps a claim. At most `limit` (see
    /// [`crate::validate::page`]).
    async fn get_due_cleanups(&self, limit: i64) -> Result<Vec<CleanupItem>>;
    /// Queue rows with `attempts < 10` (regardless of `next_retry`).
    async fn cleanup_queue_depth(&self) -> Result<i64>;
    /// Rows in the dead-letter table.
    async fn cleanup_dlq_depth(&self) -> Result<i64>;
    /// Every queue row counted in exactly one state: claimed, due or waiting (see
    /// [`crate::CleanupQueueStates`]).
    async fn cleanup_queue_states(&self) -> Result<crate::CleanupQueueStates>;
}
