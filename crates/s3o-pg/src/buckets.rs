//! `buckets`.

use async_trait::async_trait;
use s3o_core::engine::BucketStore;
use s3o_core::ops::prefix_successor;
use s3o_core::tx::BucketTx;
use s3o_core::{
    Bucket, BucketBusy, BucketLock, BucketSettings, BucketSpec, CorsConfig, DbErrorKind,
    LifecycleRule, Result, StoreError, validate,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::ts;
use crate::error::RowExt;
use crate::tx::PgTx;

/// Every column of a bucket, in the order [`bucket_from_row`] reads them.
const BUCKET_COLS: &str = "name, created_at, replication_factor, max_bytes, max_objects, routing, extra::text, \
     lifecycle::text";

const INSERT_BUCKET: &str = "INSERT INTO buckets (name, created_at, replication_factor, \
     max_bytes, max_objects, routing, extra, lifecycle) \
     VALUES ($1, NOW(), $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb) \
     ON CONFLICT (name) DO NOTHING";

const UPDATE_CONFIG: &str = "UPDATE buckets SET replication_factor = $2, max_bytes = $3, \
     max_objects = $4, routing = $5 WHERE name = $1";

const UPDATE_SETTINGS: &str = "UPDATE buckets SET replication_factor = $2, max_bytes = $3, \
     max_objects = $4, routing = $5, extra = $6::text::jsonb, lifecycle = $7::text::jsonb \
     WHERE name = $1";

const SET_LIFECYCLE: &str = "UPDATE buckets SET lifecycle = $2::text::jsonb WHERE name = $1";

fn bucket_from_row(r: &Row) -> Result<Bucket> {
    let name: String = r.col(0)?;
    let rf: i32 = r.col(2)?;
    let extra: String = r.col(6)?;
    let lifecycle: String = r.col(7)?;
    let bad =
        |e: String| StoreError::database(DbErrorKind::Schema, format!("decode bucket {name:?}"), e);
    Ok(Bucket {
        created_at: ts(r.col(1)?),
        settings: BucketSettings {
            replication_factor: u32::try_from(rf).map_err(|e| bad(e.to_string()))?,
            max_bytes: r.col(3)?,
            max_objects: r.col(4)?,
            routing: r.col(5)?,
            extra: serde_json::from_str(&extra).map_err(|e| bad(e.to_string()))?,
            lifecycle: LifecycleRule::rules_from_json(&lifecycle).map_err(bad)?,
        },
        name,
    })
}

/// `extra` as JSON text.
fn extra_json(s: &BucketSettings) -> Result<String> {
    serde_json::to_string(&s.extra)
        .map_err(|e| StoreError::invalid("bucket settings", e.to_string()))
}

/// The SQL of the one-statement contents check, and the prefix's upper bound if any.
fn busy_statement(prefix: &str) -> (String, Option<String>) {
    let upper = prefix_successor(prefix);
    let pred = if upper.is_some() {
        "object_key COLLATE \"C\" >= $1 AND object_key COLLATE \"C\" < $2"
    } else {
        "object_key COLLATE \"C\" >= $1"
    };
    (
        format!(
            "SELECT EXISTS (SELECT 1 FROM object_locations WHERE {pred}) \
                    OR EXISTS (SELECT 1 FROM object_versions WHERE {pred}), \
                    EXISTS (SELECT 1 FROM multipart_uploads WHERE {pred}), \
                    EXISTS (SELECT 1 FROM pending_objects WHERE {pred})"
        ),
        upper,
    )
}

#[async_trait]
impl BucketStore for PgStore {
    async fn create_bucket(&self, spec: &BucketSpec) -> Result<bool> {
        validate::bucket_spec(spec)?;
        let s = &spec.settings;
        let rf = i32::try_from(s.replication_factor)
            .map_err(|e| StoreError::invalid("replication factor", e.to_string()))?;
        let extra = extra_json(s)?;
        let lifecycle = LifecycleRule::rules_to_json(&s.lifecycle);
        let n = self
            .db
            .execute(
                "create bucket",
                INSERT_BUCKET,
                &[
                    &spec.name,
                    &rf,
                    &s.max_bytes,
                    &s.max_objects,
                    &s.routing,
                    &extra,
                    &lifecycle,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn get_bucket(&self, name: &str) -> Result<Bucket> {
        validate::bucket_lookup(name)?;
        let row = self
            .db
            .query_opt(
                "get bucket",
                &format!("SELECT {BUCKET_COLS} FROM buckets WHERE name = $1"),
                &[&name],
            )
            .await?
            .ok_or_else(|| StoreError::BucketNotFound {
                bucket: name.to_owned(),
            })?;
        bucket_from_row(&row)
    }

    async fn list_buckets(&self) -> Result<Vec<Bucket>> {
        let rows = self
            .db
            .query(
                "list buckets",
                &format!("SELECT {BUCKET_COLS} FROM buckets ORDER BY name COLLATE \"C\""),
                &[],
            )
            .await?;
        rows.iter().map(bucket_from_row).collect()
    }

    async fn update_bucket_settings(&self, name: &str, settings: &BucketSettings) -> Result<()> {
        validate::bucket_lookup(name)?;
        validate::bucket_settings(settings)?;
        let rf = i32::try_from(settings.replication_factor)
            .map_err(|e| StoreError::invalid("replication factor", e.to_string()))?;
        let extra = extra_json(settings)?;
        let lifecycle = LifecycleRule::rules_to_json(&settings.lifecycle);
        let n = self
            .db
            .execute(
                "update bucket settings",
                UPDATE_SETTINGS,
                &[
                    &name,
                    &rf,
                    &settings.max_bytes,
                    &settings.max_objects,
                    &settings.routing,
                    &extra,
                    &lifecycle,
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn set_bucket_lifecycle(&self, name: &str, rules: &[LifecycleRule]) -> Result<()> {
        validate::bucket_lookup(name)?;
        validate::lifecycle_rules(rules)?;
        let text = LifecycleRule::rules_to_json(rules);
        let n = self
            .db
            .execute("set bucket lifecycle", SET_LIFECYCLE, &[&name, &text])
            .await?;
        if n == 0 {
            return Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn set_bucket_cors(&self, name: &str, cors: Option<&CorsConfig>) -> Result<()> {
        validate::bucket_lookup(name)?;
        if let Some(c) = cors {
            validate::cors(c)?;
        }
        let text = cors.map(CorsConfig::to_json);
        let n = self
            .db
            .execute(
                "set bucket cors",
                "UPDATE buckets SET cors = $2 WHERE name = $1",
                &[&name, &text],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn set_bucket_extra(
        &self,
        name: &str,
        field: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<()> {
        validate::bucket_lookup(name)?;
        validate::bucket_extra_field(field, value)?;
        let n = match value.map(|v| v.to_string()) {
            Some(t) => {
                self.db
                    .execute(
                        "set bucket extra",
                        "UPDATE buckets SET extra = extra || jsonb_build_object($2::text, \
                         $3::text::jsonb) WHERE name = $1",
                        &[&name, &field, &t],
                    )
                    .await?
            }
            None => {
                self.db
                    .execute(
                        "set bucket extra",
                        "UPDATE buckets SET extra = extra - $2::text WHERE name = $1",
                        &[&name, &field],
                    )
                    .await?
            }
        };
        if n == 0 {
            return Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn get_bucket_cors(&self, name: &str) -> Result<Option<CorsConfig>> {
        validate::bucket_lookup(name)?;
        let row = self
            .db
            .query_opt(
                "get bucket cors",
                "SELECT cors FROM buckets WHERE name = $1",
                &[&name],
            )
            .await?
            .ok_or_else(|| StoreError::BucketNotFound {
                bucket: name.to_owned(),
            })?;
        let text: Option<String> = row.col(0)?;
        text.map(|t| {
            CorsConfig::from_json(&t).map_err(|e| {
                StoreError::database(DbErrorKind::Schema, format!("decode cors of {name:?}"), e)
            })
        })
        .transpose()
    }
}

#[async_trait]
impl BucketTx for PgTx {
    async fn lock_bucket(&mut self, name: &str, mode: BucketLock) -> Result<bool> {
        validate::bucket_lookup(name)?;
        // KEY SHARE for commits: they never block one another nor a settings update (which
        // takes NO KEY UPDATE); FOR UPDATE for the deletion, which waits for every commit
        // holding KEY SHARE and makes later ones wait and then find no row.
        let sql = match mode {
            BucketLock::Write => "SELECT 1 FROM buckets WHERE name = $1 FOR KEY SHARE",
            BucketLock::Delete => "SELECT 1 FROM buckets WHERE name = $1 FOR UPDATE",
        };
        Ok(self
            .query_opt("lock bucket", sql, &[&name])
            .await?
            .is_some())
    }

    async fn bucket_busy(&mut self, prefix: &str) -> Result<Option<BucketBusy>> {
        validate::prefix("bucket prefix", prefix)?;
        let (sql, upper) = busy_statement(prefix);
        let row = match &upper {
            Some(u) => {
                self.query_one("check bucket contents", &sql, &[&prefix, u])
                    .await?
            }
            None => {
                self.query_one("check bucket contents", &sql, &[&prefix])
                    .await?
            }
        };
        let (objects, uploads, intents): (bool, bool, bool) =
            (row.col(0)?, row.col(1)?, row.col(2)?);
        Ok(if objects {
            Some(BucketBusy::Objects)
        } else if uploads {
            Some(BucketBusy::MultipartUploads)
        } else if intents {
            Some(BucketBusy::PendingWrites)
        } else {
            None
        })
    }

    async fn delete_bucket_row(&mut self, name: &str) -> Result<bool> {
        validate::bucket_lookup(name)?;
        let n = self
            .execute(
                "delete bucket",
                "DELETE FROM buckets WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(n > 0)
    }

    async fn insert_bucket_if_absent(&mut self, spec: &BucketSpec) -> Result<bool> {
        validate::bucket_spec(spec)?;
        let s = &spec.settings;
        let rf = i32::try_from(s.replication_factor)
            .map_err(|e| StoreError::invalid("replication factor", e.to_string()))?;
        let extra = extra_json(s)?;
        let lifecycle = LifecycleRule::rules_to_json(&s.lifecycle);
        let n = self
            .execute(
                "create bucket",
                INSERT_BUCKET,
                &[
                    &spec.name,
                    &rf,
                    &s.max_bytes,
                    &s.max_objects,
                    &s.routing,
                    &extra,
                    &lifecycle,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn update_bucket_config(&mut self, spec: &BucketSpec) -> Result<bool> {
        validate::bucket_spec(spec)?;
        let s = &spec.settings;
        let rf = i32::try_from(s.replication_factor)
            .map_err(|e| StoreError::invalid("replication factor", e.to_string()))?;
        let n = self
            .execute(
                "update bucket config",
                UPDATE_CONFIG,
                &[&spec.name, &rf, &s.max_bytes, &s.max_objects, &s.routing],
            )
            .await?;
        Ok(n > 0)
    }
}
