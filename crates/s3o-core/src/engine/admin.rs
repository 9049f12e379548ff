//! Startup, shutdown and schema management.

use async_trait::async_trait;

use crate::error::{DbErrorKind, Result, StoreError};

/// Schema version state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Highest migration applied to the database (0 when none).
    pub current: i64,
    /// Highest migration this binary knows.
    pub expected: i64,
}

impl SchemaVersion {
    /// `Ok` when current equals expected; otherwise a `Database { kind: Schema }` error whose
    /// message names the fix: what `verify_schema_version` answers, on every engine.
    pub fn check(self) -> Result<SchemaVersion> {
        let why = if self.current < self.expected {
            format!(
                "database schema version {} is older than this binary's {} (missing or partially \
                 applied migrations): run migrations (`s3o migrate`)",
                self.current, self.expected
            )
        } else if self.current > self.expected {
            format!(
                "database schema version {} is newer than this binary's {}: upgrade the binary",
                self.current, self.expected
            )
        } else {
            return Ok(self);
        };
        // The fix goes in the context so that the error's Display names it.
        Err(StoreError::database(
            DbErrorKind::Schema,
            why,
            "schema version check failed",
        ))
    }
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
    /// Upserts `(backend, bytes_limit)` rows in one transaction: new backends start at zero
    /// used; existing rows keep used and orphan bytes. Negative limits ⇒ `InvalidInput`.
    async fn sync_quota_limits(&self, limits: &[(String, i64)]) -> Result<()>;
    /// Releases pooled connections. Later calls fail.
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_check_names_the_fix() {
        let ok = SchemaVersion {
            current: 2,
            expected: 2,
        };
        assert_eq!(ok.check().unwrap(), ok);
        let behind = SchemaVersion {
            current: 1,
            expected: 2,
        }
        .check()
        .unwrap_err();
        assert!(behind.to_string().contains("run migrations"), "{behind}");
        assert_eq!(behind.db_kind(), Some(DbErrorKind::Schema));
        let ahead = SchemaVersion {
            current: 3,
            expected: 2,
        }
        .check()
        .unwrap_err();
        assert!(ahead.to_string().contains("upgrade the binary"), "{ahead}");
    }
}
