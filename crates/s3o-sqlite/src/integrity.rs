//! Integrity scrubbing: content hashes and the least-recently-verified queue.

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::engine::IntegrityStore;
use s3o_core::{ObjectLocation, Result, Timestamp, validate};

use crate::SqliteStore;
use crate::objects::{LOCATION_COLUMNS, json_list, location_from_row};
use crate::reader::page_limit;

#[async_trait]
impl IntegrityStore for SqliteStore {
    async fn get_objects_without_hash(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ObjectLocation>> {
        let (limit, offset) = (page_limit(limit), offset.max(0));
        self.conns
            .read("get objects without hash", move |db| {
                db.query_vec(
                    "get objects without hash",
                    &format!(
                        "SELECT {LOCATION_COLUMNS} FROM object_locations \
                         WHERE content_hash IS NULL AND managed = 1 \
                         ORDER BY created_at, object_key, backend_name LIMIT ?1 OFFSET ?2"
                    ),
                    params![limit, offset],
                    location_from_row,
                )
            })
            .await
    }

    async fn update_content_hash(&self, key: &str, backend: &str, hash: &str) -> Result<bool> {
        validate::key(key)?;
        validate::backend(backend)?;
        validate::text("content hash", hash)?;
        let (key, backend, hash) = (key.to_owned(), backend.to_owned(), hash.to_owned());
        self.conns
            .write("update content hash", move |db| {
                let n = db.execute(
                    "update content hash",
                    "UPDATE object_locations SET content_hash = ?3, last_scrubbed_at = ?4 \
                     WHERE object_key = ?1 AND backend_name = ?2",
                    params![
                        key,
                        backend,
                        crate::objects::null_if_empty(&hash),
                        Timestamp::now().as_micros()
                    ],
                )?;
                Ok(n > 0)
            })
            .await
    }

    async fn get_least_recently_scrubbed_objects(
        &self,
        limit: i64,
        backends: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        validate::backend_names(backends)?;
        if backends.is_empty() {
            return Ok(Vec::new());
        }
        let limit = page_limit(limit);
        let list = json_list(backends);
        self.conns
            .read("get least recently scrubbed objects", move |db| {
                // Served by idx_object_locations_scrub (expression index on the verified time).
                db.query_vec(
                    "get least recently scrubbed objects",
                    &format!(
                        "SELECT {LOCATION_COLUMNS} FROM object_locations \
                         WHERE content_hash IS NOT NULL AND managed = 1 \
                           AND backend_name IN (SELECT value FROM json_each(?1)) \
                         ORDER BY coalesce(last_scrubbed_at, created_at), object_key, \
                                  backend_name \
                         LIMIT ?2"
                    ),
                    params![list, limit],
                    location_from_row,
                )
            })
            .await
    }

    async fn mark_object_scrubbed(&self, key: &str, backend: &str) -> Result<bool> {
        validate::key(key)?;
        validate::backend(backend)?;
        let (key, backend) = (key.to_owned(), backend.to_owned());
        self.conns
            .write("mark object scrubbed", move |db| {
                let n = db.execute(
                    "mark object scrubbed",
                    "UPDATE object_locations SET last_scrubbed_at = ?3 \
                     WHERE object_key = ?1 AND backend_name = ?2",
                    params![key, backend, Timestamp::now().as_micros()],
                )?;
                Ok(n > 0)
            })
            .await
    }
}
