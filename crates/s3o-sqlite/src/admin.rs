//! Schema migrations, version checks, quota-limit sync and shutdown.
//!
//! Migrations are the numbered files of `migrations/sqlite`, embedded at compile time. Each is
//! applied in its own `BEGIN IMMEDIATE` transaction together with its `schema_version` row,
//! after re-reading the current version under that write lock, so several processes
//! migrating one file at once all succeed and each file is applied exactly once. Migrations
//! bypass the circuit breaker.

use async_trait::async_trait;
use rusqlite::{Connection, params};
use s3o_core::engine::LifecycleAdmin;
use s3o_core::{DbErrorKind, Result, SchemaVersion, Timestamp, validate};

use crate::error::db_err;
use crate::{EXPECTED_SCHEMA_VERSION, SqliteStore};

/// One embedded migration file.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order; the last version is [`EXPECTED_SCHEMA_VERSION`].
const MIGRATIONS: [Migration; 16] = [
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_indexes",
        sql: include_str!("../migrations/0002_indexes.sql"),
    },
    Migration {
        version: 3,
        name: "0003_stored_form_and_outbox",
        sql: include_str!("../migrations/0003_stored_form_and_outbox.sql"),
    },
    Migration {
        version: 4,
        name: "0004_notification_payload_text",
        sql: include_str!("../migrations/0004_notification_payload_text.sql"),
    },
    Migration {
        version: 5,
        name: "0005_claim_index",
        sql: include_str!("../migrations/0005_claim_index.sql"),
    },
    Migration {
        version: 6,
        name: "0006_quota_stripes",
        sql: include_str!("../migrations/0006_quota_stripes.sql"),
    },
    Migration {
        version: 7,
        name: "0007_part_storage_key",
        sql: include_str!("../migrations/0007_part_storage_key.sql"),
    },
    Migration {
        version: 8,
        name: "0008_unlimited_stripe_grants",
        sql: include_str!("../migrations/0008_unlimited_stripe_grants.sql"),
    },
    Migration {
        version: 9,
        name: "0009_pending_backend_upload",
        sql: include_str!("../migrations/0009_pending_backend_upload.sql"),
    },
    Migration {
        version: 10,
        name: "0010_buckets",
        sql: include_str!("../migrations/0010_buckets.sql"),
    },
    Migration {
        version: 11,
        name: "0011_object_metadata",
        sql: include_str!("../migrations/0011_object_metadata.sql"),
    },
    Migration {
        version: 12,
        name: "0012_bucket_cors",
        sql: include_str!("../migrations/0012_bucket_cors.sql"),
    },
    Migration {
        version: 13,
        name: "0013_bucket_lifecycle",
        sql: include_str!("../migrations/0013_bucket_lifecycle.sql"),
    },
    Migration {
        version: 14,
        name: "0014_versioning",
        sql: include_str!("../migrations/0014_versioning.sql"),
    },
    Migration {
        version: 15,
        name: "0015_charge_parts",
        sql: include_str!("../migrations/0015_charge_parts.sql"),
    },
    Migration {
        version: 16,
        name: "0016_backend_draining",
        sql: include_str!("../migrations/0016_backend_draining.sql"),
    },
];

const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].version == EXPECTED_SCHEMA_VERSION);

/// The ledger of applied migrations; `max(version)` is the current version.
const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (\
     version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT";

fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master \
                        WHERE type = 'table' AND name = 'schema_version')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
}

/// Applies `m` unless the database already has it; `true` when applied here.
fn apply(conn: &Connection, m: &Migration) -> rusqlite::Result<bool> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let body = || -> rusqlite::Result<bool> {
        conn.execute_batch(CREATE_VERSION_TABLE)?;
        // Re-read under the write lock: another process may have applied it meanwhile.
        if current_version(conn)? >= m.version {
            return Ok(false);
        }
        conn.execute_batch(m.sql)?;
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, Timestamp::now().as_micros()],
        )?;
        Ok(true)
    };
    match body() {
        Ok(applied) => {
            if let Err(e) = conn.execute_batch("COMMIT") {
                crate::conn::rollback_quietly(conn);
                return Err(e);
            }
            Ok(applied)
        }
        Err(e) => {
            crate::conn::rollback_quietly(conn);
            Err(e)
        }
    }
}

/// Applies every pending migration, retrying a migration whose write lock stayed busy past
/// the busy timeout (another process migrating a large database).
fn migrate(conn: &Connection) -> Result<i64> {
    for m in &MIGRATIONS {
        let mut attempt = 0;
        loop {
            match apply(conn, m) {
                Ok(true) => {
                    tracing::info!(engine = "sqlite", migration = m.name, "applied migration");
                    break;
                }
                Ok(false) => break,
                Err(e) if crate::error::kind_of(&e) == DbErrorKind::Busy && attempt < 5 => {
                    attempt += 1;
                }
                Err(e) => return Err(db_err(&format!("apply migration {}", m.name), e)),
            }
        }
    }
    current_version(conn).map_err(|e| db_err("read schema version", e))
}

#[async_trait]
impl LifecycleAdmin for SqliteStore {
    async fn run_migrations(&self) -> Result<SchemaVersion> {
        let current = self
            .conns
            .admin("run migrations", |db| migrate(db.raw()))
            .await?;
        let v = SchemaVersion {
            current,
            expected: EXPECTED_SCHEMA_VERSION,
        };
        if current > EXPECTED_SCHEMA_VERSION {
            // The same answer as verify_schema_version: "upgrade the binary".
            return v.check();
        }
        Ok(v)
    }

    async fn schema_version(&self) -> Result<SchemaVersion> {
        let current = self
            .conns
            .admin("read schema version", |db| {
                current_version(db.raw()).map_err(|e| db_err("read schema version", e))
            })
            .await?;
        Ok(SchemaVersion {
            current,
            expected: EXPECTED_SCHEMA_VERSION,
        })
    }

    async fn sync_quota_limits(&self, limits: &[(String, i64)]) -> Result<()> {
        // Validated, sorted by name (the quota-row order), a repeated name keeping its last
        // limit; applied in that order.
        let limits = validate::quota_limits(limits)?;
        if limits.is_empty() {
            return Ok(());
        }
        self.conns
            .write_tx("sync quota limits", move |db| {
                let now = Timestamp::now().as_micros();
                for (backend, limit) in &limits {
                    // New rows start at zero used; existing rows keep used and orphan bytes.
                    db.execute(
                        "sync quota limit",
                        "INSERT INTO backend_quotas (backend_name, bytes_used, bytes_limit, \
                                                     orphan_bytes, updated_at) \
                         VALUES (?1, 0, ?2, 0, ?3) \
                         ON CONFLICT (backend_name) DO UPDATE SET \
                             bytes_limit = excluded.bytes_limit, updated_at = excluded.updated_at",
                        params![backend, limit, now],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn close(&self) {
        self.conns.close().await;
        tracing::info!(engine = "sqlite", "closed metadata store");
    }
}
