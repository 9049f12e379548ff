//! Replication queries: keys with too few or too many managed copies.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};
use s3o_core::engine::ReplicationStore;
use s3o_core::{ObjectLocation, Result, validate};

use crate::SqliteStore;
use crate::objects::{LOCATION_COLUMNS, json_list, location_from_row};

/// Every row of the keys chosen by `keys_sql` (a query over `?1` factor, `?2` limit and, when
/// given, `?3` excluded backends as JSON), ordered by key then age. `limit` follows
/// [`validate::batch_limit`]: ≤ 0 selects nothing.
async fn rows_of_keys(
    store: &SqliteStore,
    ctx: &'static str,
    keys_sql: &'static str,
    factor: i64,
    limit: i64,
    excluded: Option<String>,
) -> Result<Vec<ObjectLocation>> {
    let Some(limit) = validate::batch_limit(limit) else {
        return Ok(Vec::new());
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
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
                params_from_iter(
                    [Value::from(factor), Value::from(limit)]
                        .into_iter()
                        .chain(excluded.map(Value::from)),
                ),
                location_from_row,
            )
        })
        .await
}

/// Keys having at least one managed copy and fewer than `?1` managed copies outside the `?3`
/// backends, first `?2` in key order. The exclusion only discounts copies: a key whose
/// managed copies all sit on excluded (e.g. draining) backends counts 0 and qualifies.
const UNDER_REPLICATED: &str = "SELECT object_key FROM object_locations WHERE managed = 1 \
     GROUP BY object_key \
     HAVING count(*) FILTER (WHERE backend_name NOT IN (SELECT value FROM json_each(?3))) < ?1 \
     ORDER BY object_key LIMIT ?2";

/// Keys with more than `?1` managed copies, first `?2` in key order.
const OVER_REPLICATED: &str = "SELECT object_key FROM object_locations WHERE managed = 1 \
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
            Some("[]".into()),
        )
        .await
    }

    async fn get_under_replicated_objects_excluding(
        &self,
        factor: i64,
        limit: i64,
        excluded: &[String],
    ) -> Result<Vec<ObjectLocation>> {
        validate::backend_names(excluded)?;
        rows_of_keys(
            self,
            "get under-replicated objects excluding",
            UNDER_REPLICATED,
            factor,
            limit,
            Some(json_list(excluded)),
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
            None,
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
