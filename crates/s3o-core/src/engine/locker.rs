//! Leader election for background services.

use async_trait::async_trait;

use crate::error::Result;
use crate::locks::LockId;
use crate::tx::BoxFuture;

/// Leader locks: at most one holder per [`LockId`] across every process sharing the database.
#[async_trait]
pub trait AdvisoryLocker: Send + Sync {
    /// Tries to take `lock` without waiting. Not taken ⇒ `Ok(None)` and `critical` never runs.
    /// Taken ⇒ runs `critical`, releases the lock (also when `critical` errors or panics, and
    /// when the holder's connection or process dies) and returns `Ok(Some(its result))`.
    /// An error acquiring ⇒ `Err`. Locks with different ids are independent.
    ///
    /// Fenced: if the lock is lost while `critical` runs (PostgreSQL: the lock's session
    /// ended, noticed within the engine's documented bound), `critical` is dropped at its
    /// next `.await` and the call returns `Err(StoreError::LeadershipLost)`, never `Ok`.
    /// `Ok(Some(_))` also requires a confirmed release: when the engine cannot confirm that
    /// the lock was still held when `critical` finished (PostgreSQL: the unlock on the lock's
    /// own connection failed, timed out or answered `false`; SQLite: the lock file was
    /// replaced while held), the call returns `LeadershipLost` instead, whatever `critical`
    /// returned. (SQLite's lock is a file lock held by the process: it cannot be lost while
    /// the process lives and its lock file stays in place.) Locks are scoped to the store's
    /// database and, on PostgreSQL, schema.
    async fn with_advisory_lock(
        &self,
        lock: LockId,
        critical: BoxFuture<'_, Result<()>>,
    ) -> Result<Option<Result<()>>>;
}
