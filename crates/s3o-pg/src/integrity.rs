//! Integrity scrubbing: hashes and the deterministic least-recently-scrubbed queue.

use async_trait::async_trait;
use s3o_core::engine::IntegrityStore;
use s3o_core::{ObjectLocation, Result, validate};

use crate::PgStore;
use crate::conn::limit_param;
use crate::objects::location_from_row;

#[async_trait]
impl IntegrityStore for PgStore {
    async fn get_objects_without_hash(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ObjectLocation>> {
        let (limit, offset) = (limit_param(validate::page(limit)), offset.max(0));
        let rows = self
            .db
            .query(
                "list objects without hash",
                concat!(
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE content_hash IS NULL AND managed ",
                    "ORDER BY created_at, object_key COLLATE \"C\", backend_name COLLATE \"C\" ",
                    "LIMIT $1 OFFSET $2"
                ),
                &[&limit, &offset],
            )
            .await?;
        rows.iter().map(location_from_row).collect()
    }

    async fn update_content_hash(&self, key: &str, backend: &str, hash: &str) -> Result<bool> {
        validate::key(key)?;
        validate::backend(backend)?;
        validate::text("content hash", hash)?;
        let hash = (!hash.is_empty()).then_some(hash);
        let n = self
            .db
            .execute(
                "update content hash",
                "UPDATE object_locations SET content_hash = $3, last_scrubbed_at = NOW() \
                 WHERE object_key = $1 AND backend_name = $2",
                &[&key, &backend, &hash],
            )
            .await?;
        Ok(n > 0)
    }

    async fn get_least_recently_scrubbed_objects(
        &self,
        limit: i64,
        backends: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        if backends.is_empty() {
            return Ok(Vec::new());
        }
        validate::backend_names(backends)?;
        let limit = limit_param(validate::page(limit));
        let rows = self
            .db
            .query(
                "list least recently scrubbed objects",
                concat!(
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE content_hash IS NOT NULL AND managed ",
                    "AND backend_name = ANY($2) ",
                    "ORDER BY COALESCE(last_scrubbed_at, created_at), object_key COLLATE \"C\", ",
                    "backend_name COLLATE \"C\" LIMIT $1"
                ),
                &[&limit, &backends],
            )
            .await?;
        rows.iter().map(location_from_row).collect()
    }

    async fn mark_object_scrubbed(&self, key: &str, backend: &str) -> Result<bool> {
        validate::key(key)?;
        validate::backend(backend)?;
        let n = self
            .db
            .execute(
                "mark object scrubbed",
                "UPDATE object_locations SET last_scrubbed_at = NOW() \
                 WHERE object_key = $1 AND backend_name = $2",
                &[&key, &backend],
            )
            .await?;
        Ok(n > 0)
    }
}
