//! Replication queries: keys with too few or too many managed copies.

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::{ObjectLocation, ReplicationStore, Result, validate};

use crate::SqliteStore;
use crate::objects::{LOCATION_COLUMNS, json_list, location_from_row};

/// Every row of the keys chosen by `keys_sql` (a query over `?1` factor, `?2` limit, `?3`
/// excluded backends as JSON), ordered by key then age.
async fn rows_of_keys(
    store: &SqliteStore,
    ctx: &'static str,
    keys_sql: &'static str,
    factor: i64,
    limit: i64,
    excluded: String,
) -> Result<Vec<ObjectLocation>> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let limit = limit.min(i64::from(i32::MAX));
    store
        .conns
        .read(ctx, move |db| {
            db.query_vec(
                ctx,
                &format!(
                    "WITH chosen AS ({keys_sql}) \
                     SELECT {LOCATION_COLUMNS} FROM object_locations \
                     WHERE object_key IN (SELECT object_key FROM chosen) \
                     ORDER BY object_key, created_at, backend_name"
                ),
                params![factor, limit, excluded],
                location_from_row,
            )
        })
        .await
}

/// Keys with fewer than `?1` managed copies outside the `?3` backends, first `?2` in key order.
const UNDER_REPLICATED: &str = "SELECT object_key FROM object_locations \
     WHERE managed = 1 AND backend_name NOT IN (SELECT value FROM json_each(?3)) \
     GROUP BY object_key HAVING count(*) < ?1 ORDER BY object_key LIMIT ?2";

/// Keys with more than `?1` managed copies outside the `?3` backends, first `?2` in key order.
const OVER_REPLICATED: &str = "SELECT object_key FROM object_locations \
     WHERE managed = 1 AND backend_name NOT IN (SELECT value FROM json_each(?3)) \
     GROUP BY object_key HAVING count(*) > ?1 ORDER BY object_key LIMIT ?2";

#[async_trait]
impl ReplicationStore for SqliteStore {
    async fn get_under_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        rows_of_keys(
            self,
            "get under-replicated objects",
            UNDER_REPLICATED,
            factor,
            limit,
            "[]".into(),
        )
        .await
    }

    async fn get_under_replicated_objects_excluding(
        &self,
        factor: i64,
        limit: i64,
        excluded: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        excluded.iter().try_for_each(|b| validate::backend(b))?;
        rows_of_keys(
            self,
            "get under-replicated objects excluding",
            UNDER_REPLICATED,
            factor,
            limit,
            json_list(excluded),
        )
        .await
    }

    async fn get_over_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        rows_of_keys(
            self,
            "get over-replicated objects",
            OVER_REPLICATED,
            factor,
            limit,
            "[]".into(),
        )
        .await
    }

    async fn count_over_replicated_objects(&self, factor: i64) -> Result<i64> {
        self.conns
            .read("count over-replicated objects", move |db| {
                db.query_one(
                    "count over-replicated objects",
                    "SELECT count(*) FROM (SELECT object_key FROM object_locations \
                                           WHERE managed = 1 GROUP BY object_key \
                                           HAVING count(*) > ?1)",
                    params![factor],
                    |r| r.get(0),
                )
            })
            .await
    }
}
