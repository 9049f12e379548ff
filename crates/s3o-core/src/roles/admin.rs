//! Startup, shutdown and schema management.

use async_trait::async_trait;

use crate::error::Result;

/// Schema version state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Highest migration applied to the database (0 when none).
    pub current: i64,
    /// Highest migration this binary knows.
    pub expected: i64,
}

/// Lifecycle administration. Not gated by the circuit breaker: it runs before the breaker
/// matters, and `close` must always work.
#[async_trait]
pub trait LifecycleAdmin: Send + Sync {
    /// Applies every pending migration, in order. Safe to run concurrently from several
    /// processes; running it twice is a no-op. Returns the resulting version.
    async fn run_migrations(&self) -> Result<SchemaVersion>;
    /// The current and expected versions, without checking them.
    async fn schema_version(&self) -> Result<SchemaVersion>;
    /// Errors with `Database { kind: Schema }` naming the fix when the database is behind
    /// ("run migrations") or ahead ("upgrade the binary").
    async fn verify_schema_version(&self) -> Result<SchemaVersion>;
    /// Upserts `(backend, bytes_limit)` rows in one transaction: new backends start at zero
    /// used; existing rows keep used and orphan bytes. Negative limits ⇒ `InvalidInput`.
    async fn sync_quota_limits(&self, limits: &[(String, i64)]) -> Result<()>;
    /// Releases pooled connections. Later calls fail.
    async fn close(&self);
}
