//! Lifecycle administration: migrations, schema version, quota-limit sync, close.
//!
//! Migrations are the numbered SQL files of `migrations/postgres/`, embedded at compile time.
//! `run_migrations` takes the session advisory lock [`MIGRATION_LOCK_ID`] on one connection,
//! creates the configured schema if missing, then applies each pending file in its own
//! transaction together with its row in `s3o_schema_version`. Concurrent migrators (several
//! instances starting at once) queue on the lock; the later ones find nothing to do.
//! None of this passes the circuit breaker: it runs before the breaker matters.

use async_trait::async_trait;
use deadpool_postgres::Object;
use s3o_core::engine::LifecycleAdmin;
use s3o_core::locks::MIGRATION_LOCK_ID;
use s3o_core::{Result, SchemaVersion, validate};

use crate::PgStore;
use crate::error::RowExt;
use crate::error::db_err;

/// One embedded migration.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. The SQLite engine uses the same numbering.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "indexes",
        sql: include_str!("../migrations/0002_indexes.sql"),
    },
    Migration {
        version: 3,
        name: "stored_form_and_outbox",
        sql: include_str!("../migrations/0003_stored_form_and_outbox.sql"),
    },
    Migration {
        version: 4,
        name: "notification_payload_text",
        sql: include_str!("../migrations/0004_notification_payload_text.sql"),
    },
    Migration {
        version: 5,
        name: "claim_index",
        sql: include_str!("../migrations/0005_claim_index.sql"),
    },
    Migration {
        version: 6,
        name: "quota_stripes",
        sql: include_str!("../migrations/0006_quota_stripes.sql"),
    },
    Migration {
        version: 7,
        name: "part_storage_key",
        sql: include_str!("../migrations/0007_part_storage_key.sql"),
    },
    Migration {
        version: 8,
        name: "unlimited_stripe_grants",
        sql: include_str!("../migrations/0008_unlimited_stripe_grants.sql"),
    },
    Migration {
        version: 9,
        name: "pending_backend_upload",
        sql: include_str!("../migrations/0009_pending_backend_upload.sql"),
    },
    Migration {
        version: 10,
        name: "buckets",
        sql: include_str!("../migrations/0010_buckets.sql"),
    },
    Migration {
        version: 11,
        name: "object_metadata",
        sql: include_str!("../migrations/0011_object_metadata.sql"),
    },
    Migration {
        version: 12,
        name: "bucket_cors",
        sql: include_str!("../migrations/0012_bucket_cors.sql"),
    },
    Migration {
        version: 13,
        name: "bucket_lifecycle",
        sql: include_str!("../migrations/0013_bucket_lifecycle.sql"),
    },
    Migration {
        version: 14,
        name: "versioning",
        sql: include_str!("../migrations/0014_versioning.sql"),
    },
    Migration {
        version: 15,
        name: "charge_parts",
        sql: include_str!("../migrations/0015_charge_parts.sql"),
    },
    Migration {
        version: 16,
        name: "backend_draining",
        sql: include_str!("../migrations/0016_backend_draining.sql"),
    },
];

/// The schema version this binary expects: the highest embedded migration.
pub const EXPECTED_SCHEMA_VERSION: i64 = 16;

const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].version == EXPECTED_SCHEMA_VERSION);

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS s3o_schema_version ( \
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
     applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())";

/// The highest applied version, 0 when the version table does not exist.
async fn current_version(client: &Object) -> Result<i64> {
    let row = client
        .query_one(
            "SELECT CASE WHEN to_regclass('s3o_schema_version') IS NULL THEN NULL::bigint \
             ELSE -1 END",
            &[],
        )
        .await
        .map_err(|e| db_err("read schema version", e))?;
    if row.col::<Option<i64>>(0)?.is_none() {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM s3o_schema_version",
            &[],
        )
        .await
        .map_err(|e| db_err("read schema version", e))?;
    row.col(0)
}

async fn migrate_locked(client: &Object, schema: Option<&str>) -> Result<i64> {
    if let Some(s) = schema {
        // The name was validated as [a-z_][a-z0-9_]*, so quoting is plain.
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
            .await
            .map_err(|e| db_err("create schema", e))?;
    }
    client
        .batch_execute(VERSION_TABLE)
        .await
        .map_err(|e| db_err("create schema version table", e))?;
    let start = current_version(client).await?;
    let mut current = start;
    if start > EXPECTED_SCHEMA_VERSION {
        // The same answer as verify_schema_version: "upgrade the binary".
        SchemaVersion {
            current: start,
            expected: EXPECTED_SCHEMA_VERSION,
        }
        .check()?;
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > start) {
        let ctx = format!("apply migration {:04}_{}", m.version, m.name);
        let body = format!(
            "BEGIN;\n{}\n;INSERT INTO s3o_schema_version (version, name) VALUES ({}, '{}');\nCOMMIT;",
            m.sql, m.version, m.name
        );
        if let Err(e) = client.batch_execute(&body).await {
            // A failed statement leaves the transaction aborted; end it before unlocking.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(db_err(&ctx, e));
        }
        tracing::info!(version = m.version, name = m.name, "applied migration");
        current = m.version;
    }
    Ok(current)
}

/// Owns a pooled connection that must never go back to the pool: on drop it is detached and
/// closed, which releases every session lock and setting it holds.
struct DetachOnDrop(Option<Object>);

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(Object::take(c));
        }
    }
}

impl PgStore {
    async fn admin_client(&self, ctx: &str) -> Result<Object> {
        self.db.raw_client(ctx).await
    }
}

#[async_trait]
impl LifecycleAdmin for PgStore {
    async fn run_migrations(&self) -> Result<SchemaVersion> {
        // Dropping `guard` (done, an error, or the caller cancelled) closes the connection
        // instead of pooling it: it may hold the session lock and has `lock_timeout = 0`.
        let guard = DetachOnDrop(Some(self.admin_client("run migrations").await?));
        let Some(client) = guard.0.as_ref() else {
            unreachable!("set above")
        };
        // Migrators wait for each other (and migrations for their table locks) without the
        // pool's lock_timeout. That setting stays on the session, so this connection is never
        // pooled again (see below): pooled connections carry no session state.
        client
            .batch_execute("SET lock_timeout = 0")
            .await
            .map_err(|e| db_err("run migrations", e))?;
        // Session lock on this connection, outside the leader-lock ids: one migrator at a time
        // per database; the others wait here and then find every migration applied.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_ID])
            .await
            .map_err(|e| db_err("take migration lock", e))?;
        let result = migrate_locked(client, self.schema.as_deref()).await;
        // Unlock explicitly so the next migrator goes on at once; closing the session (the
        // guard's drop, always: the session changed `lock_timeout`) releases it anyway.
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_ID])
            .await;
        drop(guard);
        let current = result?;
        Ok(SchemaVersion {
            current,
            expected: EXPECTED_SCHEMA_VERSION,
        })
    }

    async fn schema_version(&self) -> Result<SchemaVersion> {
        let client = self.admin_client("read schema version").await?;
        Ok(SchemaVersion {
            current: current_version(&client).await?,
            expected: EXPECTED_SCHEMA_VERSION,
        })
    }

    async fn sync_quota_limits(&self, limits: &[(String, i64)]) -> Result<()> {
        // Validated, sorted by name (so rows lock in backend order), last entry wins.
        let merged = validate::quota_limits(limits)?;
        if merged.is_empty() {
            return Ok(());
        }
        let (names, values): (Vec<String>, Vec<i64>) = merged.into_iter().unzip();
        // One transaction: new backends start at zero used with their stripes; existing rows
        // only get the new limit (used and orphan bytes are kept). Per backend in name order
        // (the global lock order): the upsert locks its quota row, then its stripes are
        // created, folded and re-granted from the new limit, so no grant made under the old
        // limit outlives it. Deadlock and serialization failures are retried a few times.
        let stripes = i64::from(crate::quota::QUOTA_STRIPES);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.admin_client("sync quota limits").await?;
            let r = async {
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| db_err("sync quota limits", e))?;
                for (name, limit) in names.iter().zip(&values) {
                    tx.execute(
                        "INSERT INTO backend_quotas (backend_name, bytes_limit, bytes_used, \
                         orphan_bytes, updated_at) VALUES ($1, $2, 0, 0, NOW()) \
                         ON CONFLICT (backend_name) DO UPDATE \
                         SET bytes_limit = EXCLUDED.bytes_limit, updated_at = NOW()",
                        &[name, limit],
                    )
                    .await
                    .map_err(|e| db_err("sync quota limits", e))?;
                    let one = [name.as_str()];
                    tx.execute(
                        "INSERT INTO backend_quota_stripes (backend_name, stripe) \
                         SELECT $1, g FROM generate_series(0, $2::bigint - 1) AS g \
                         ON CONFLICT DO NOTHING",
                        &[name, &stripes],
                    )
                    .await
                    .map_err(|e| db_err("create quota stripes", e))?;
                    tx.execute(crate::quota::FOLD_STRIPES, &[&one.as_slice()])
                        .await
                        .map_err(|e| db_err("fold quota stripes", e))?;
                    tx.execute(crate::quota::GRANT_STRIPES, &[&one.as_slice(), &stripes])
                        .await
                        .map_err(|e| db_err("grant quota stripes", e))?;
                }
                tx.commit()
                    .await
                    .map_err(|e| db_err("sync quota limits", e))
            }
            .await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // The transaction's end is unknown: never pool this connection.
                    drop(Object::take(client));
                    if !e.is_retryable() || attempt >= 5 {
                        return Err(e);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                }
            }
        }
    }

    async fn close(&self) {
        self.db.pool.close();
        tracing::info!(target_db = %self.target, "postgres store closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for m in MIGRATIONS {
            assert!(!m.sql.trim().is_empty());
        }
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(MIGRATIONS[0].version, 1);
        assert!(
            MIGRATIONS[0]
                .sql
                .contains("last_scrubbed_at TIMESTAMPTZ NULL")
        );
        assert!(MIGRATIONS[1].sql.contains("COLLATE \"C\""));
        // The partial indexes of the due-row queries match the statements' predicate.
        let due = format!("WHERE attempts < {};", s3o_core::MAX_ATTEMPTS);
        assert_eq!(MIGRATIONS[1].sql.matches(due.as_str()).count(), 2);
    }
}
