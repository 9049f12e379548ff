//! The [`Reader`]: read-only queries on the reader pool, in parallel with an open write
//! transaction. Also the byte-order key range every prefix filter uses.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::ToSql;
use rusqlite::params;
use s3o_core::engine::Reader;
use s3o_core::ops::prefix_successor;
use s3o_core::{
    CleanupItem, KeyBound, MAX_ATTEMPTS, ObjectLocation, PendingObject, Result, StoreError,
    Timestamp, validate,
};

use crate::SqliteStore;
use crate::cleanup::{ITEM_COLUMNS, item_from_row};
use crate::objects::{LOCATION_COLUMNS, LOCATION_COLUMNS_O, location_from_row};
use crate::pending::{PENDING_COLUMNS, pending_from_row};
use crate::stmt::now_minus;

/// A listing limit as bound in SQL: [`validate::page`] (≤ 0 ⇒ the default page, capped).
pub(crate) fn page_limit(n: i64) -> i64 {
    i64::try_from(validate::page(n)).unwrap_or(i64::MAX)
}

/// A range of keys in byte order (BINARY collation): everything starting with a prefix,
/// optionally after a bound. As `key >= lo AND key < hi` it is case-sensitive, treats `%`,
/// `_` and `\` as ordinary characters, and is an index range scan (no `LIKE`).
pub(crate) struct KeyRange {
    lower: String,
    strict: bool,
    upper: Option<String>,
}

impl KeyRange {
    /// Keys starting with `prefix` that satisfy `bound`.
    pub(crate) fn new(prefix: &str, bound: KeyBound<'_>) -> KeyRange {
        let (lower, strict) = match bound {
            KeyBound::After(k) if k >= prefix => (k.to_owned(), true),
            KeyBound::From(k) if k > prefix => (k.to_owned(), false),
            _ => (prefix.to_owned(), false),
        };
        KeyRange {
            lower,
            strict,
            upper: prefix_successor(prefix),
        }
    }

    /// Keys starting with `prefix`.
    pub(crate) fn prefix(prefix: &str) -> KeyRange {
        KeyRange::new(prefix, KeyBound::Start)
    }

    /// The predicate on `col`, with named parameters `:lo` and (when bounded) `:hi`.
    pub(crate) fn predicate(&self, col: &str) -> String {
        let op = if self.strict { ">" } else { ">=" };
        match self.upper {
            Some(_) => format!("{col} {op} :lo AND {col} < :hi"),
            None => format!("{col} {op} :lo"),
        }
    }

    /// The named parameters [`KeyRange::predicate`] uses.
    pub(crate) fn params(&self) -> Vec<(&'static str, &dyn ToSql)> {
        let mut p: Vec<(&'static str, &dyn ToSql)> = vec![(":lo", &self.lower)];
        if let Some(hi) = &self.upper {
            p.push((":hi", hi));
        }
        p
    }
}

/// One row per key in `range` — the key's oldest copy, ties broken by backend name — in byte
/// order, optionally only keys whose oldest copy is older than `older_than`.
async fn oldest_copy_per_key(
    store: &SqliteStore,
    ctx: &'static str,
    range: KeyRange,
    older_than: Option<Duration>,
    limit: i64,
) -> Result<Vec<ObjectLocation>> {
    store
        .conns
        .read(ctx, move |db| {
            let age = if older_than.is_some() {
                "AND o.created_at < :cutoff"
            } else {
                ""
            };
            // Outer scan walks the primary key (object_key, backend_name) in key order; the
            // correlated pick uses idx_object_locations_key_created.
            let sql = format!(
                "SELECT {LOCATION_COLUMNS_O} FROM object_locations o \
                 WHERE {range} \
                   AND o.backend_name = (SELECT o2.backend_name FROM object_locations o2 \
                                         WHERE o2.object_key = o.object_key \
                                         ORDER BY o2.created_at, o2.backend_name LIMIT 1) \
                   {age} \
                 ORDER BY o.object_key LIMIT :limit",
                range = range.predicate("o.object_key"),
            );
            let cutoff_micros = older_than.map(now_minus);
            let mut p = range.params();
            p.push((":limit", &limit));
            if let Some(c) = &cutoff_micros {
                p.push((":cutoff", c));
            }
            db.query_vec(ctx, &sql, p.as_slice(), location_from_row)
        })
        .await
}

#[async_trait]
impl Reader for SqliteStore {
    async fn get_stale_pending(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<PendingObject>> {
        let limit = page_limit(limit);
        self.conns
            .read("get stale pending", move |db| {
                // Served by idx_pending_objects_created.
                db.query_vec(
                    "get stale pending",
                    &format!(
                        "SELECT {PENDING_COLUMNS} FROM pending_objects WHERE created_at <= ?1 \
                         ORDER BY created_at, intent_id LIMIT ?2"
                    ),
                    // The database's clock is this host's: every process sharing the file
                    // runs here.
                    params![now_minus(older_than), limit],
                    pending_from_row,
                )
            })
            .await
    }

    async fn count_pending(&self) -> Result<i64> {
        self.conns
            .read("count pending", |db| {
                db.query_one(
                    "count pending",
                    "SELECT count(*) FROM pending_objects",
                    [],
                    |r| r.get(0),
                )
            })
            .await
    }

    async fn get_all_object_locations(&self, key: &str) -> Result<Vec<ObjectLocation>> {
        validate::key(key)?;
        let k = key.to_owned();
        let rows = self
            .conns
            .read("get all object locations", move |db| {
                db.query_vec(
                    "get all object locations",
                    &format!(
                        "SELECT {LOCATION_COLUMNS} FROM object_locations WHERE object_key = ?1 \
                         ORDER BY created_at, backend_name"
                    ),
                    params![k],
                    location_from_row,
                )
            })
            .await?;
        if rows.is_empty() {
            return Err(StoreError::ObjectNotFound {
                key: key.to_owned(),
            });
        }
        Ok(rows)
    }

    async fn list_objects_by_backend(
        &self,
        backend: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        validate::backend(backend)?;
        let limit = page_limit(limit);
        let backend = backend.to_owned();
        self.conns
            .read("list objects by backend", move |db| {
                // Served by idx_object_locations_backend_size.
                db.query_vec(
                    "list objects by backend",
                    &format!(
                        "SELECT {LOCATION_COLUMNS} FROM object_locations WHERE backend_name = ?1 \
                         ORDER BY size_bytes, object_key LIMIT ?2"
                    ),
                    params![backend, limit],
                    location_from_row,
                )
            })
            .await
    }

    async fn list_objects_by_backend_key_asc(
        &self,
        backend: &str,
        after_key: &str,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        validate::backend(backend)?;
        validate::prefix("after key", after_key)?;
        let limit = page_limit(limit);
        let (backend, after) = (backend.to_owned(), after_key.to_owned());
        self.conns
            .read("list objects by backend key asc", move |db| {
                // Byte order (BINARY); served by idx_object_locations_backend_key.
                db.query_vec(
                    "list objects by backend key asc",
                    &format!(
                        "SELECT {LOCATION_COLUMNS} FROM object_locations \
                         WHERE backend_name = ?1 AND object_key > ?2 \
                         ORDER BY object_key LIMIT ?3"
                    ),
                    params![backend, after, limit],
                    location_from_row,
                )
            })
            .await
    }

    async fn list_objects_by_prefix(
        &self,
        prefix: &str,
        bound: KeyBound<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectLocation>> {
        validate::prefix("prefix", prefix)?;
        match bound {
            KeyBound::After(k) | KeyBound::From(k) => validate::prefix("start key", k)?,
            KeyBound::Start => {}
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        oldest_copy_per_key(
            self,
            "list objects by prefix",
            KeyRange::new(prefix, bound),
            None,
            limit,
        )
        .await
    }

    async fn list_expired_objects(
        &self,
        prefix: &str,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>> {
        validate::prefix("prefix", prefix)?;
        let limit = page_limit(limit);
        oldest_copy_per_key(
            self,
            "list expired objects",
            KeyRange::prefix(prefix),
            Some(older_than),
            limit,
        )
        .await
    }

    async fn get_due_cleanups(&self, limit: i64) -> Result<Vec<CleanupItem>> {
        let limit = page_limit(limit);
        self.conns
            .read("get pending cleanups", move |db| {
                // Served by idx_cleanup_queue_claim.
                db.query_vec(
                    "get pending cleanups",
                    &format!(
                        "SELECT {ITEM_COLUMNS} FROM cleanup_queue \
                         WHERE next_retry <= ?1 AND attempts < {MAX_ATTEMPTS} \
                         ORDER BY created_at, id LIMIT ?2"
                    ),
                    params![Timestamp::now().as_micros(), limit],
                    item_from_row,
                )
            })
            .await
    }

    async fn cleanup_queue_depth(&self) -> Result<i64> {
        self.conns
            .read("cleanup queue depth", |db| {
                db.query_one(
                    "cleanup queue depth",
                    &format!("SELECT count(*) FROM cleanup_queue WHERE attempts < {MAX_ATTEMPTS}"),
                    [],
                    |r| r.get(0),
                )
            })
            .await
    }

    async fn cleanup_dlq_depth(&self) -> Result<i64> {
        self.conns
            .read("cleanup dlq depth", |db| {
                db.query_one(
                    "cleanup dlq depth",
                    "SELECT count(*) FROM cleanup_dlq",
                    [],
                    |r| r.get(0),
                )
            })
            .await
    }

    async fn cleanup_queue_states(&self) -> Result<s3o_core::CleanupQueueStates> {
        self.conns
            .read("cleanup queue states", |db| {
                let now = Timestamp::now().as_micros();
                db.query_one(
                    "cleanup queue states",
                    "SELECT coalesce(sum(claimed_at IS NULL AND next_retry <= ?1), 0), \
                            coalesce(sum(claimed_at IS NOT NULL), 0), \
                            coalesce(sum(claimed_at IS NULL AND next_retry > ?1), 0) \
                     FROM cleanup_queue",
                    params![now],
                    |r| {
                        Ok(s3o_core::CleanupQueueStates {
                            due: r.get(0)?,
                            claimed: r.get(1)?,
                            waiting: r.get(2)?,
                        })
                    },
                )
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_combines_prefix_and_bound() {
        let r = KeyRange::new("a/", KeyBound::After("a/x"));
        assert_eq!(r.predicate("k"), "k > :lo AND k < :hi");
        assert_eq!(r.lower, "a/x");
        // A bound before the prefix does not widen the range.
        let r = KeyRange::new("b/", KeyBound::After("a"));
        assert_eq!((r.lower.as_str(), r.strict), ("b/", false));
        let r = KeyRange::new("", KeyBound::From("m"));
        assert_eq!(r.predicate("k"), "k >= :lo");
        assert_eq!(r.lower, "m");
        assert_eq!(KeyRange::prefix("a/").upper.as_deref(), Some("a0"));
    }
}
