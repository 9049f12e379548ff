//! Replication queries: keys with too few or too many managed copies.

use async_trait::async_trait;
use s3o_core::engine::ReplicationStore;
use s3o_core::{ObjectLocation, Result, validate};

use crate::PgStore;
use crate::conn::limit_param;
use crate::error::RowExt;
use crate::objects::location_from_row;

/// A replication factor as a bounded `bigint` parameter.
fn clamp(n: i64) -> i64 {
    n.clamp(0, i64::from(i32::MAX))
}

impl PgStore {
    /// Every row of up to `limit` keys (in byte order) having at least one managed copy and
    /// fewer than `factor` managed copies outside `excluded`; limit ≤ 0 ⇒ nothing.
    async fn under_replicated(
        &self,
        factor: i64,
        limit: i64,
        excluded: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        validate::backend_names(excluded)?;
        let Some(limit) = validate::batch_limit(limit) else {
            return Ok(Vec::new());
        };
        let limit = limit_param(limit);
        let rows = self
            .db
            .query(
                "list under-replicated objects",
                concat!(
                    "WITH keys AS (SELECT object_key FROM object_locations WHERE managed ",
                    "GROUP BY object_key ",
                    "HAVING COUNT(*) FILTER (WHERE backend_name <> ALL($3)) < $1 ",
                    "ORDER BY object_key COLLATE \"C\" LIMIT $2) ",
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE object_key IN (SELECT object_key FROM keys) ",
                    "ORDER BY object_key COLLATE \"C\", created_at, backend_name COLLATE \"C\""
                ),
                &[&clamp(factor), &limit, &excluded],
            )
            .await?;
        rows.iter().map(location_from_row).collect()
    }
}

#[async_trait]
impl ReplicationStore for PgStore {
    async fn get_under_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        self.under_replicated(factor, limit, &[]).await
    }

    async fn get_under_replicated_objects_excluding(
        &self,
        factor: i64,
        limit: i64,
        excluded: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        self.under_replicated(factor, limit, excluded).await
    }

    async fn get_over_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        let Some(limit) = validate::batch_limit(limit) else {
            return Ok(Vec::new());
        };
        let limit = limit_param(limit);
        let rows = self
            .db
            .query(
                "list over-replicated objects",
                concat!(
                    "WITH keys AS (SELECT object_key FROM object_locations WHERE managed ",
                    "GROUP BY object_key HAVING COUNT(*) > $1 ",
                    "ORDER BY object_key COLLATE \"C\" LIMIT $2) ",
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE object_key IN (SELECT object_key FROM keys) ",
                    "ORDER BY object_key COLLATE \"C\", created_at, backend_name COLLATE \"C\""
                ),
                &[&clamp(factor), &limit],
            )
            .await?;
        rows.iter().map(location_from_row).collect()
    }

    async fn count_over_replicated_objects(&self, factor: i64) -> Result<i64> {
        let row = self
            .db
            .query_one(
                "count over-replicated objects",
                "SELECT COUNT(*) FROM (SELECT 1 FROM object_locations WHERE managed \
                 GROUP BY object_key HAVING COUNT(*) > $1) over_replicated",
                &[&clamp(factor)],
            )
            .await?;
        Ok(row.col(0)?)
    }
}
