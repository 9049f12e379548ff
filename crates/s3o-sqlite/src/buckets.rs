//! `buckets`.

use async_trait::async_trait;
use rusqlite::{named_params, params};
use s3o_core::engine::BucketStore;
use s3o_core::{
    Bucket, BucketBusy, BucketSettings, BucketSpec, CorsConfig, LifecycleRule, Result, StoreError,
    Timestamp, validate,
};

use crate::SqliteStore;
use crate::error::decode_err;
use crate::reader::KeyRange;
use crate::stmt::Db;

/// Every column of a bucket, in the order [`bucket_from_row`] reads them.
const BUCKET_COLUMNS: &str =
    "name, created_at, replication_factor, max_bytes, max_objects, routing, extra, lifecycle";

/// A bucket row before its JSON columns are decoded (their errors are not SQL's).
struct BucketRow {
    name: String,
    created_at: i64,
    replication_factor: i64,
    max_bytes: i64,
    max_objects: i64,
    routing: String,
    extra: String,
    lifecycle: String,
}

fn bucket_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BucketRow> {
    Ok(BucketRow {
        name: r.get(0)?,
        created_at: r.get(1)?,
        replication_factor: r.get(2)?,
        max_bytes: r.get(3)?,
        max_objects: r.get(4)?,
        routing: r.get(5)?,
        extra: r.get(6)?,
        lifecycle: r.get(7)?,
    })
}

fn decode(row: BucketRow) -> Result<Bucket> {
    let ctx = "decode bucket row";
    Ok(Bucket {
        created_at: Timestamp::from_micros(row.created_at),
        settings: BucketSettings {
            replication_factor: u32::try_from(row.replication_factor)
                .map_err(|e| decode_err(ctx, e))?,
            max_bytes: row.max_bytes,
            max_objects: row.max_objects,
            routing: serde_json::from_str(&row.routing).map_err(|e| decode_err(ctx, e))?,
            extra: serde_json::from_str(&row.extra).map_err(|e| decode_err(ctx, e))?,
            lifecycle: LifecycleRule::rules_from_json(&row.lifecycle)
                .map_err(|e| decode_err(ctx, e))?,
        },
        name: row.name,
    })
}

/// The JSON texts of `routing`, `extra` and `lifecycle`.
fn json_columns(s: &BucketSettings) -> Result<(String, String, String)> {
    let enc = |e: serde_json::Error| StoreError::invalid("bucket settings", e.to_string());
    Ok((
        serde_json::to_string(&s.routing).map_err(enc)?,
        serde_json::to_string(&s.extra).map_err(enc)?,
        LifecycleRule::rules_to_json(&s.lifecycle),
    ))
}

/// `INSERT … ON CONFLICT DO NOTHING`; `true` when inserted.
pub(crate) fn insert_if_absent(db: &Db<'_>, spec: &BucketSpec) -> Result<bool> {
    let (routing, extra, lifecycle) = json_columns(&spec.settings)?;
    let n = db.execute(
        "create bucket",
        "INSERT INTO buckets (name, created_at, replication_factor, max_bytes, max_objects, \
             routing, extra, lifecycle) \
         VALUES (:name, :now, :rf, :max_bytes, :max_objects, :routing, :extra, :lifecycle) \
         ON CONFLICT (name) DO NOTHING",
        named_params! {
            ":name": spec.name,
            ":now": Timestamp::now().as_micros(),
            ":rf": i64::from(spec.settings.replication_factor),
            ":max_bytes": spec.settings.max_bytes,
            ":max_objects": spec.settings.max_objects,
            ":routing": routing,
            ":extra": extra,
            ":lifecycle": lifecycle,
        },
    )?;
    Ok(n > 0)
}

/// Sets the configuration-owned columns; `false` when the bucket has no row.
pub(crate) fn update_config(db: &Db<'_>, spec: &BucketSpec) -> Result<bool> {
    let (routing, _, _) = json_columns(&spec.settings)?;
    let n = db.execute(
        "update bucket config",
        "UPDATE buckets SET replication_factor = :rf, max_bytes = :max_bytes, \
             max_objects = :max_objects, routing = :routing \
         WHERE name = :name",
        named_params! {
            ":name": spec.name,
            ":rf": i64::from(spec.settings.replication_factor),
            ":max_bytes": spec.settings.max_bytes,
            ":max_objects": spec.settings.max_objects,
            ":routing": routing,
        },
    )?;
    Ok(n > 0)
}

/// Whether the bucket row exists.
pub(crate) fn exists(db: &Db<'_>, name: &str) -> Result<bool> {
    Ok(db
        .query_opt(
            "lock bucket",
            "SELECT 1 FROM buckets WHERE name = ?1",
            params![name],
            |_| Ok(()),
        )?
        .is_some())
}

/// What keys under `prefix` still hold: copies, then uploads, then intents.
pub(crate) fn busy(db: &Db<'_>, prefix: &str) -> Result<Option<BucketBusy>> {
    let range = KeyRange::prefix(prefix);
    let pred = range.predicate("object_key");
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM object_locations WHERE {pred}) \
                OR EXISTS (SELECT 1 FROM object_versions WHERE {pred}), \
                EXISTS (SELECT 1 FROM multipart_uploads WHERE {pred}), \
                EXISTS (SELECT 1 FROM pending_objects WHERE {pred})"
    );
    let (objects, uploads, intents): (bool, bool, bool) = db.query_one(
        "check bucket contents",
        &sql,
        range.params().as_slice(),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
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

/// Deletes the bucket row; `false` when there was none.
pub(crate) fn delete_row(db: &Db<'_>, name: &str) -> Result<bool> {
    let n = db.execute(
        "delete bucket",
        "DELETE FROM buckets WHERE name = ?1",
        params![name],
    )?;
    Ok(n > 0)
}

#[async_trait]
impl BucketStore for SqliteStore {
    async fn create_bucket(&self, spec: &BucketSpec) -> Result<bool> {
        validate::bucket_spec(spec)?;
        let spec = spec.clone();
        self.conns
            .write("create bucket", move |db| insert_if_absent(db, &spec))
            .await
    }

    async fn get_bucket(&self, name: &str) -> Result<Bucket> {
        validate::bucket_lookup(name)?;
        let n = name.to_owned();
        let row = self
            .conns
            .read("get bucket", move |db| {
                db.query_opt(
                    "get bucket",
                    &format!("SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = ?1"),
                    params![n],
                    bucket_from_row,
                )
            })
            .await?;
        match row {
            Some(row) => decode(row),
            None => Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            }),
        }
    }

    async fn list_buckets(&self) -> Result<Vec<Bucket>> {
        let rows = self
            .conns
            .read("list buckets", move |db| {
                db.query_vec(
                    "list buckets",
                    &format!("SELECT {BUCKET_COLUMNS} FROM buckets ORDER BY name"),
                    [],
                    bucket_from_row,
                )
            })
            .await?;
        rows.into_iter().map(decode).collect()
    }

    async fn update_bucket_settings(&self, name: &str, settings: &BucketSettings) -> Result<()> {
        validate::bucket_lookup(name)?;
        validate::bucket_settings(settings)?;
        let (routing, extra, lifecycle) = json_columns(settings)?;
        let (n, s) = (name.to_owned(), settings.clone());
        let updated = self
            .conns
            .write("update bucket settings", move |db| {
                db.execute(
                    "update bucket settings",
                    "UPDATE buckets SET replication_factor = :rf, max_bytes = :max_bytes, \
                         max_objects = :max_objects, routing = :routing, extra = :extra, \
                         lifecycle = :lifecycle \
                     WHERE name = :name",
                    named_params! {
                        ":name": n,
                        ":rf": i64::from(s.replication_factor),
                        ":max_bytes": s.max_bytes,
                        ":max_objects": s.max_objects,
                        ":routing": routing,
                        ":extra": extra,
                        ":lifecycle": lifecycle,
                    },
                )
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn set_bucket_lifecycle(&self, name: &str, rules: &[LifecycleRule]) -> Result<()> {
        validate::bucket_lookup(name)?;
        validate::lifecycle_rules(rules)?;
        let (n, text) = (name.to_owned(), LifecycleRule::rules_to_json(rules));
        let updated = self
            .conns
            .write("set bucket lifecycle", move |db| {
                db.execute(
                    "set bucket lifecycle",
                    "UPDATE buckets SET lifecycle = ?2 WHERE name = ?1",
                    params![n, text],
                )
            })
            .await?;
        if updated == 0 {
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
        let (n, text) = (name.to_owned(), cors.map(CorsConfig::to_json));
        let updated = self
            .conns
            .write("set bucket cors", move |db| {
                db.execute(
                    "set bucket cors",
                    "UPDATE buckets SET cors = ?2 WHERE name = ?1",
                    params![n, text],
                )
            })
            .await?;
        if updated == 0 {
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
        // The field name is a-z, 0-9 and _ only (checked above), so the JSON path is literal.
        let path = format!("$.{field}");
        let (n, text) = (name.to_owned(), value.map(|v| v.to_string()));
        let updated = self
            .conns
            .write("set bucket extra", move |db| match text {
                Some(t) => db.execute(
                    "set bucket extra",
                    "UPDATE buckets SET extra = json_set(extra, ?2, json(?3)) WHERE name = ?1",
                    params![n, path, t],
                ),
                None => db.execute(
                    "set bucket extra",
                    "UPDATE buckets SET extra = json_remove(extra, ?2) WHERE name = ?1",
                    params![n, path],
                ),
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn get_bucket_cors(&self, name: &str) -> Result<Option<CorsConfig>> {
        validate::bucket_lookup(name)?;
        let n = name.to_owned();
        let row: Option<Option<String>> = self
            .conns
            .read("get bucket cors", move |db| {
                db.query_opt(
                    "get bucket cors",
                    "SELECT cors FROM buckets WHERE name = ?1",
                    params![n],
                    |r| r.get(0),
                )
            })
            .await?;
        match row {
            None => Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            }),
            Some(None) => Ok(None),
            Some(Some(text)) => CorsConfig::from_json(&text)
                .map(Some)
                .map_err(|e| decode_err("decode bucket cors", e)),
        }
    }
}
