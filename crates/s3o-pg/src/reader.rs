//! Read-only queries outside transactions: listings, lookups and queue snapshots.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use s3o_core::engine::Reader;
use s3o_core::ops::prefix_successor;
use s3o_core::{
    CleanupItem, KeyBound, MAX_ATTEMPTS, ObjectLocation, PendingObject, Result, StoreError,
    validate,
};

use crate::PgStore;
use crate::cleanup::item_from_row;
use crate::conn::{interval_micros, limit_param};
use crate::error::RowExt;
use crate::objects::location_from_row;
use crate::pending::{pending_cols, pending_from_row};

/// The byte-order key range of a listing: `key {>|>=} lower [AND key < upper]`.
struct KeyRange {
    lower: String,
    inclusive: bool,
    upper: Option<String>,
}

impl KeyRange {
    /// Keys starting with `prefix` (wildcard-free, case-sensitive: a range, not `LIKE`) and
    /// satisfying `bound`: the tighter of the two lower bounds, and the prefix's successor as
    /// the exclusive upper bound (none for the empty prefix).
    fn new(prefix: &str, bound: KeyBound<'_>) -> Self {
        let (mut lower, mut inclusive) = (prefix.to_owned(), true);
        match bound {
            KeyBound::Start => {}
            KeyBound::After(a) if a.as_bytes() >= prefix.as_bytes() => {
                (lower, inclusive) = (a.to_owned(), false);
            }
            KeyBound::From(f) if f.as_bytes() > prefix.as_bytes() => {
                (lower, inclusive) = (f.to_owned(), true);
            }
            KeyBound::After(_) | KeyBound::From(_) => {}
        }
        KeyRange {
            lower,
            inclusive,
            upper: prefix_successor(prefix),
        }
    }

    /// The predicate on `object_key`, with the lower bound as `$lo` and the upper as `$lo+1`.
    fn predicate(&self, lo: usize) -> String {
        let op = if self.inclusive { ">=" } else { ">" };
        match self.upper {
            Some(_) => format!(
                "object_key COLLATE \"C\" {op} ${lo} AND object_key COLLATE \"C\" < ${}",
                lo + 1
            ),
            None => format!("object_key COLLATE \"C\" {op} ${lo}"),
        }
    }
}

/// The exact statement [`Reader::list_objects_by_prefix`] runs for `range` (exposed for the
/// index-usage test): one row per key, the oldest copy (ties by backend), in byte order,
/// served by `idx_object_locations_key_collate_c` without a sort.
fn list_by_prefix_sql(range: &KeyRange) -> String {
    let limit = if range.upper.is_some() { 3 } else { 2 };
    format!(
        "SELECT DISTINCT ON (object_key COLLATE \"C\") {} FROM object_locations WHERE {} \
         ORDER BY object_key COLLATE \"C\", created_at, backend_name COLLATE \"C\" LIMIT ${limit}",
        loc_cols!(),
        range.predicate(1)
    )
}

/// The listing statement and its parameters for a prefix and bound, for tests that EXPLAIN
/// it: `(sql, [lower, upper?])`. The limit is the last parameter and not included.
#[doc(hidden)]
pub fn listing_statement(prefix: &str, bound: KeyBound<'_>) -> (String, Vec<String>) {
    let range = KeyRange::new(prefix, bound);
    let sql = list_by_prefix_sql(&range);
    let mut params = vec![range.lower.clone()];
    params.extend(range.upper.clone());
    (sql, params)
}

/// Due cleanup rows, oldest first. [`MAX_ATTEMPTS`] is written into the text rather than
/// bound so the planner can prove the partial index's `attempts < 10` predicate in a generic
/// plan too.
static DUE_CLEANUPS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, backend_name, object_key, reason, attempts, size_bytes, claimed_at, \
         claimed_by, COALESCE(storage_key, object_key) FROM cleanup_queue WHERE next_retry <= NOW() AND attempts < {MAX_ATTEMPTS} \
         ORDER BY created_at, id LIMIT $1"
    )
});

/// Queue rows still to be attempted.
static QUEUE_DEPTH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT COUNT(*) FROM cleanup_queue WHERE attempts < {MAX_ATTEMPTS}"));

#[async_trait]
impl Reader for PgStore {
    async fn get_stale_pending(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<PendingObject>> {
        let limit = limit_param(validate::page(limit));
        let age = interval_micros(older_than);
        let rows = self
            .db
            .query(
                "list stale pending intents",
                concat!(
                    "SELECT ",
                    pending_cols!(),
                    " FROM pending_objects ",
                    "WHERE created_at <= NOW() - $1::bigint * INTERVAL '1 microsecond' ",
                    "ORDER BY created_at, intent_id LIMIT $2"
                ),
                &[&age, &limit],
            )
            .await?;
        rows.iter().map(pending_from_row).collect()
    }

    async fn count_pending(&self) -> Result<i64> {
        let row = self
            .db
            .query_one(
                "count pending intents",
                "SELECT COUNT(*) FROM pending_objects",
                &[],
            )
            .await?;
        Ok(row.col(0)?)
    }

    async fn get_all_object_locations(&self, key: &str) -> Result<Vec<ObjectLocation>> {
        validate::key(key)?;
        let rows = self
            .db
            .query(
                "read object locations",
                concat!(
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE object_key = $1 ",
                    "ORDER BY created_at, backend_name COLLATE \"C\""
                ),
                &[&key],
            )
            .await?;
        if rows.is_empty() {
            return Err(StoreError::ObjectNotFound {
                key: key.to_owned(),
            });
        }
        rows.iter().map(location_from_row).collect()
    }

    async fn list_objects_by_backend(
        &self,
        backend: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        validate::backend(backend)?;
        let limit = limit_param(validate::page(limit));
        let rows = self
            .db
            .query(
                "list objects by backend",
                concat!(
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE backend_name = $1 ",
                    "ORDER BY size_bytes, object_key COLLATE \"C\" LIMIT $2"
                ),
                &[&backend, &limit],
            )
            .await?;
        rows.iter().map(location_from_row).collect()
    }

    async fn list_objects_by_backend_key_asc(
        &self,
        backend: &str,
        after_key: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        validate::backend(backend)?;
        validate::prefix("after key", after_key)?;
        let limit = limit_param(validate::page(limit));
        // Byte-order cursor; uses idx_object_locations_backend_key_collate_c.
        let rows = self
            .db
            .query(
                "list objects by backend in key order",
                concat!(
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE backend_name = $1 ",
                    "AND object_key COLLATE \"C\" > $2 ORDER BY object_key COLLATE \"C\" LIMIT $3"
                ),
                &[&backend, &after_key, &limit],
            )
            .await?;
        rows.iter().map(location_from_row).collect()
    }

    async fn list_objects_by_prefix(
        &self,
        prefix: &str,
        bound: KeyBound<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectLocation>> {
        validate::prefix("prefix", prefix)?;
        match bound {
            KeyBound::Start => {}
            KeyBound::After(k) | KeyBound::From(k) => validate::prefix("start key", k)?,
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let range = KeyRange::new(prefix, bound);
        let sql = list_by_prefix_sql(&range);
        let limit = limit_param(limit);
        let rows = match &range.upper {
            Some(upper) => {
                self.db
                    .query("list objects", &sql, &[&range.lower, upper, &limit])
                    .await?
            }
            None => {
                self.db
                    .query("list objects", &sql, &[&range.lower, &limit])
                    .await?
            }
        };
        rows.iter().map(location_from_row).collect()
    }

    async fn list_expired_objects(
        &self,
        prefix: &str,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        validate::prefix("prefix", prefix)?;
        let limit = limit_param(validate::page(limit));
        let cutoff = interval_micros(older_than);
        let range = KeyRange::new(prefix, KeyBound::Start);
        // One row per key whose oldest copy is older than the cutoff (if any copy is, the
        // oldest is), in byte order.
        let sql = format!(
            "SELECT DISTINCT ON (object_key COLLATE \"C\") {} FROM object_locations \
             WHERE {} AND created_at < NOW() - ${}::bigint * INTERVAL '1 microsecond' \
             ORDER BY object_key COLLATE \"C\", created_at, backend_name COLLATE \"C\" LIMIT ${}",
            loc_cols!(),
            range.predicate(1),
            if range.upper.is_some() { 3 } else { 2 },
            if range.upper.is_some() { 4 } else { 3 },
        );
        let rows = match &range.upper {
            Some(upper) => {
                self.db
                    .query(
                        "list expired objects",
                        &sql,
                        &[&range.lower, upper, &cutoff, &limit],
                    )
                    .await?
            }
            None => {
                self.db
                    .query(
                        "list expired objects",
                        &sql,
                        &[&range.lower, &cutoff, &limit],
                    )
                    .await?
            }
        };
        rows.iter().map(location_from_row).collect()
    }

    async fn get_due_cleanups(&self, limit: i64) -> Result<Vec<CleanupItem>> {
        let limit = limit_param(validate::page(limit));
        let rows = self
            .db
            .query("list due cleanups", &DUE_CLEANUPS, &[&limit])
            .await?;
        rows.iter().map(|r| item_from_row(r, false)).collect()
    }

    async fn cleanup_queue_depth(&self) -> Result<i64> {
        let row = self
            .db
            .query_one("count cleanup queue", &QUEUE_DEPTH, &[])
            .await?;
        Ok(row.col(0)?)
    }

    async fn cleanup_dlq_depth(&self) -> Result<i64> {
        let row = self
            .db
            .query_one(
                "count dead letters",
                "SELECT COUNT(*) FROM cleanup_dlq",
                &[],
            )
            .await?;
        Ok(row.col(0)?)
    }

    async fn cleanup_queue_states(&self) -> Result<s3o_core::CleanupQueueStates> {
        let row = self
            .db
            .query_one(
                "cleanup queue states",
                "SELECT COUNT(*) FILTER (WHERE claimed_at IS NULL AND next_retry <= NOW()), \
                 COUNT(*) FILTER (WHERE claimed_at IS NOT NULL), \
                 COUNT(*) FILTER (WHERE claimed_at IS NULL AND next_retry > NOW()) \
                 FROM cleanup_queue",
                &[],
            )
            .await?;
        Ok(s3o_core::CleanupQueueStates {
            due: row.col(0)?,
            claimed: row.col(1)?,
            waiting: row.col(2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_take_the_tighter_lower_bound() {
        let r = KeyRange::new("photos/", KeyBound::Start);
        assert_eq!((r.lower.as_str(), r.inclusive), ("photos/", true));
        assert_eq!(r.upper.as_deref(), Some("photos0"));
        let r = KeyRange::new("photos/", KeyBound::After("photos/b"));
        assert_eq!((r.lower.as_str(), r.inclusive), ("photos/b", false));
        let r = KeyRange::new("photos/", KeyBound::After("a"));
        assert_eq!((r.lower.as_str(), r.inclusive), ("photos/", true));
        let r = KeyRange::new("photos/", KeyBound::From("photos/c"));
        assert_eq!((r.lower.as_str(), r.inclusive), ("photos/c", true));
        let r = KeyRange::new("", KeyBound::After("k"));
        assert_eq!((r.lower.as_str(), r.inclusive, r.upper), ("k", false, None));
        // The prefix itself is a key of the listing: After(prefix) excludes only it.
        let r = KeyRange::new("a", KeyBound::After("a"));
        assert_eq!((r.lower.as_str(), r.inclusive), ("a", false));
    }

    #[test]
    fn listing_sql_orders_and_bounds_in_byte_order() {
        let (sql, params) = listing_statement("a%_", KeyBound::After("a%_x"));
        assert!(
            sql.contains("DISTINCT ON (object_key COLLATE \"C\")"),
            "{sql}"
        );
        assert!(sql.contains("object_key COLLATE \"C\" > $1"), "{sql}");
        assert!(sql.contains("object_key COLLATE \"C\" < $2"), "{sql}");
        assert!(sql.ends_with("LIMIT $3"), "{sql}");
        assert!(!sql.contains("LIKE"), "{sql}");
        assert_eq!(params, vec!["a%_x".to_owned(), "a%`".to_owned()]);
        let (sql, params) = listing_statement("", KeyBound::Start);
        assert!(sql.ends_with("LIMIT $2"), "{sql}");
        assert_eq!(params, vec![String::new()]);
    }
}
