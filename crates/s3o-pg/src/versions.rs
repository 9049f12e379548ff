//! `object_versions` and `buckets.versioning` (DESIGN decision 25): the versioning primitives
//! of the transaction adapter and the [`VersionStore`] reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::engine::VersionStore;
use s3o_core::ops::prefix_successor;
use s3o_core::tx::VersionsTx;
use s3o_core::{
    CURRENT_SEQ, DbErrorKind, ExistingCopy, NoncurrentCopy, NoncurrentReplicas, ObjectLocation,
    ObjectVersion, Result, StoreError, Timestamp, VersionCopy, Versioning, validate,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::{limit_param, ts};
use crate::error::RowExt;
use crate::objects::location_from_row;
use crate::tx::PgTx;

/// A version row as [`location_from_row`] reads it (a marker's backend reads as empty), then
/// `version_id`, `seq`, `marker`, `latest` at 17..=20.
fn version_columns(alias: &str) -> String {
    let a = |c: &str| format!("{alias}.{c}");
    let rest = [
        "size_bytes",
        "created_at",
        "encrypted",
        "encryption_key",
        "key_id",
        "plaintext_size",
        "content_hash",
        "managed",
        "last_scrubbed_at",
        "storage_key",
        "etag",
        "content_type",
        "user_metadata",
        "attributes",
        "tags",
    ]
    .iter()
    .map(|c| a(c))
    .collect::<Vec<_>>()
    .join(", ");
    format!(
        "{}, coalesce({}, ''), {rest}",
        a("object_key"),
        a("backend_name")
    )
}

/// One row of a version read: the copy (empty backend for a marker) and its version columns.
struct VersionRow {
    loc: ObjectLocation,
    version_id: String,
    seq: i64,
    marker: bool,
    latest: bool,
}

fn version_row(r: &Row) -> Result<VersionRow> {
    Ok(VersionRow {
        loc: location_from_row(r)?,
        version_id: r.col(17)?,
        seq: r.col(18)?,
        marker: r.col(19)?,
        latest: r.col(20)?,
    })
}

/// The size a client sees: the plaintext size of an encrypted copy.
fn client_size(loc: &ObjectLocation) -> i64 {
    if loc.form.encrypted && loc.form.plaintext_size > 0 {
        loc.form.plaintext_size
    } else {
        loc.size_bytes
    }
}

/// Groups consecutive rows of one version into [`ObjectVersion`]s (`keep_copies`: every
/// copy, else none).
fn group(rows: Vec<VersionRow>, keep_copies: bool) -> Vec<ObjectVersion> {
    let mut out: Vec<ObjectVersion> = Vec::new();
    for r in rows {
        if let Some(last) = out.last_mut()
            && last.object_key == r.loc.object_key
            && last.version_id == r.version_id
        {
            if keep_copies && !r.marker {
                last.copies.push(r.loc);
            }
            continue;
        }
        let mut v = ObjectVersion {
            object_key: r.loc.object_key.clone(),
            version_id: r.version_id,
            seq: r.seq,
            is_latest: r.latest,
            delete_marker: r.marker,
            created_at: r.loc.created_at,
            size_bytes: if r.marker { 0 } else { client_size(&r.loc) },
            etag: if r.marker {
                String::new()
            } else {
                r.loc.form.etag.clone()
            },
            copies: Vec::new(),
        };
        if keep_copies && !r.marker {
            v.copies.push(r.loc);
        }
        out.push(v);
    }
    out
}

/// Whether noncurrent row `v` is the newest of its key with no current copy.
const LATEST_NONCURRENT: &str = "(NOT EXISTS (SELECT 1 FROM object_locations l \
     WHERE l.object_key = v.object_key) \
     AND v.seq = (SELECT max(m.seq) FROM object_versions m WHERE m.object_key = v.object_key))";

/// The columns both tables share, in `object_locations`' order (`INSERT … SELECT` between them).
const SHARED_COLUMNS: &str = loc_cols!();

fn decode_state(s: Option<&str>) -> Result<Versioning> {
    Versioning::from_status(s).ok_or_else(|| {
        StoreError::database(
            DbErrorKind::Other,
            "decode bucket versioning",
            format!("unknown versioning state {s:?}"),
        )
    })
}

/// The current copies of `key` as version rows (only version `version_id` when given).
fn current_rows_sql(filtered: bool) -> String {
    let filter = if filtered {
        "AND coalesce(version_id, 'null') = $2"
    } else {
        ""
    };
    format!(
        "SELECT {}, coalesce(version_id, 'null'), {CURRENT_SEQ}::bigint, false, true \
         FROM object_locations WHERE object_key = $1 {filter} \
         ORDER BY created_at, backend_name COLLATE \"C\"",
        loc_cols!()
    )
}

#[async_trait]
impl VersionsTx for PgTx {
    async fn lock_bucket_versioning(&mut self, name: &str) -> Result<Option<Versioning>> {
        validate::bucket_lookup(name)?;
        // KEY SHARE, as lock_bucket takes for commits, reading the state in the same statement.
        let row = self
            .query_opt(
                "lock bucket",
                "SELECT versioning FROM buckets WHERE name = $1 FOR KEY SHARE",
                &[&name],
            )
            .await?;
        row.map(|r| decode_state(r.col::<Option<&str>>(0)?))
            .transpose()
    }

    async fn current_version_id(&mut self, key: &str) -> Result<Option<String>> {
        let row = self
            .query_opt(
                "read current version id",
                "SELECT coalesce(version_id, 'null') FROM object_locations \
                 WHERE object_key = $1 LIMIT 1",
                &[&key],
            )
            .await?;
        row.map(|r| r.col(0)).transpose()
    }

    async fn key_versions_for_update(&mut self, key: &str) -> Result<Vec<VersionCopy>> {
        // The key lock serialises every writer of the key: no row lock is needed.
        let rows = self
            .query(
                "read key versions",
                "SELECT version_id, seq, backend_name, size_bytes, coalesce(storage_key, '') \
                 FROM object_versions WHERE object_key = $1 \
                 ORDER BY seq DESC, backend_name COLLATE \"C\"",
                &[&key],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(VersionCopy {
                    version_id: r.col(0)?,
                    seq: r.col(1)?,
                    backend_name: r.col(2)?,
                    size_bytes: r.col(3)?,
                    storage_key: r.col(4)?,
                })
            })
            .collect()
    }

    async fn archive_current_copies(
        &mut self,
        key: &str,
        version_id: &str,
        seq: i64,
    ) -> Result<u64> {
        self.execute(
            "archive current version",
            &format!(
                "INSERT INTO object_versions (version_id, seq, {SHARED_COLUMNS}) \
                 SELECT $2, $3, {SHARED_COLUMNS} FROM object_locations WHERE object_key = $1"
            ),
            &[&key, &version_id, &seq],
        )
        .await
    }

    async fn insert_delete_marker(&mut self, key: &str, version_id: &str, seq: i64) -> Result<()> {
        self.execute(
            "insert delete marker",
            "INSERT INTO object_versions (object_key, version_id, seq, backend_name, size_bytes, \
             created_at) VALUES ($1, $2, $3, NULL, 0, clock_timestamp())",
            &[&key, &version_id, &seq],
        )
        .await?;
        Ok(())
    }

    async fn restore_version(&mut self, key: &str, version_id: &str) -> Result<u64> {
        self.execute(
            "restore version",
            &format!(
                "INSERT INTO object_locations (version_id, {SHARED_COLUMNS}) \
                 SELECT nullif(version_id, 'null'), {SHARED_COLUMNS} FROM object_versions \
                 WHERE object_key = $1 AND version_id = $2 AND backend_name IS NOT NULL"
            ),
            &[&key, &version_id],
        )
        .await
    }

    async fn delete_version_rows(&mut self, key: &str, version_id: &str) -> Result<u64> {
        self.execute(
            "delete version rows",
            "DELETE FROM object_versions WHERE object_key = $1 AND version_id = $2",
            &[&key, &version_id],
        )
        .await
    }

    async fn set_current_version_id(&mut self, key: &str, version_id: Option<&str>) -> Result<()> {
        self.execute(
            "set current version id",
            "UPDATE object_locations SET version_id = $2 WHERE object_key = $1",
            &[&key, &version_id],
        )
        .await?;
        Ok(())
    }

    async fn set_noncurrent_tags(
        &mut self,
        key: &str,
        version_id: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<u64> {
        validate::key(key)?;
        validate::tags(tags)?;
        let json = s3o_core::user_metadata_to_json(tags);
        // Served by idx_object_versions_copy (object_key, version_id, …); markers are left
        // alone.
        self.execute(
            "set noncurrent tags",
            "UPDATE object_versions SET tags = $3 \
             WHERE object_key = $1 AND version_id = $2 AND backend_name IS NOT NULL",
            &[&key, &version_id, &json],
        )
        .await
    }
    async fn move_version_copy(
        &mut self,
        key: &str,
        version_id: &str,
        from: &str,
        to: &str,
    ) -> Result<u64> {
        self.execute(
            "move version copy",
            // The EXISTS keeps an unknown target from reaching the foreign key.
            "UPDATE object_versions SET backend_name = $4, last_scrubbed_at = NULL \
             WHERE object_key = $1 AND version_id = $2 AND backend_name = $3 \
               AND EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = $4)",
            &[&key, &version_id, &from, &to],
        )
        .await
    }
    async fn version_copies_for_update(
        &mut self,
        key: &str,
        version_id: &str,
    ) -> Result<Vec<ExistingCopy>> {
        // The key lock serialises every writer of the key: no row lock is needed.
        let rows = self
            .query(
                "read version copies",
                "SELECT backend_name, size_bytes, created_at, encrypted, \
                 (encryption_key IS NOT NULL AND length(encryption_key) > 0), \
                 COALESCE(storage_key, ''), COALESCE(etag, '') \
                 FROM object_versions \
                 WHERE object_key = $1 AND version_id = $2 AND backend_name IS NOT NULL \
                 ORDER BY created_at, backend_name COLLATE \"C\"",
                &[&key, &version_id],
            )
            .await?;
        rows.iter()
            .map(|r| -> Result<ExistingCopy> {
                Ok(ExistingCopy {
                    backend_name: r.col(0)?,
                    size_bytes: r.col(1)?,
                    created_at: ts(r.col(2)?),
                    encrypted: r.col(3)?,
                    has_dek: r.col(4)?,
                    storage_key: r.col(5)?,
                    etag: r.col(6)?,
                })
            })
            .collect()
    }

    async fn insert_version_replica(
        &mut self,
        key: &str,
        version_id: &str,
        target: &str,
        source: &str,
    ) -> Result<Option<i64>> {
        // The EXISTS keeps an unknown target from reaching the foreign key (which would abort
        // the transaction); the NOT EXISTS from the unique index.
        let row = self
            .query_opt(
                "insert version replica",
                "INSERT INTO object_versions (object_key, version_id, seq, backend_name, \
                   size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, \
                   content_hash, managed, storage_key, etag, content_type, user_metadata, \
                   attributes, tags) \
                 SELECT object_key, version_id, seq, $3, size_bytes, created_at, encrypted, \
                   encryption_key, key_id, plaintext_size, content_hash, managed, storage_key, \
                   etag, content_type, user_metadata, attributes, tags \
                 FROM object_versions \
                 WHERE object_key = $1 AND version_id = $2 AND backend_name = $4 \
                   AND EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = $3) \
                   AND NOT EXISTS (SELECT 1 FROM object_versions t WHERE t.object_key = $1 \
                                   AND t.version_id = $2 AND t.backend_name = $3) \
                 RETURNING size_bytes",
                &[&key, &version_id, &target, &source],
            )
            .await?;
        row.map(|r| r.col(0)).transpose()
    }

    async fn delete_version_copy(
        &mut self,
        key: &str,
        version_id: &str,
        backend: &str,
    ) -> Result<u64> {
        self.execute(
            "delete version copy",
            "DELETE FROM object_versions \
             WHERE object_key = $1 AND version_id = $2 AND backend_name = $3",
            &[&key, &version_id, &backend],
        )
        .await
    }
    async fn version_times(&mut self, key: &str) -> Result<(Timestamp, BTreeMap<i64, Timestamp>)> {
        // The database clock that stamps the rows, in the same statement; the outer join
        // yields it even for a key without versions.
        let rows = self
            .query(
                "read version times",
                &format!(
                    "SELECT clock_timestamp(), t.seq, t.at FROM (SELECT 1) one LEFT JOIN ( \
                       SELECT seq, min(created_at) AS at FROM object_versions \
                       WHERE object_key = $1 GROUP BY seq \
                       UNION ALL \
                       SELECT {CURRENT_SEQ}::bigint, min(created_at) FROM object_locations \
                       WHERE object_key = $1 HAVING count(*) > 0 \
                     ) t ON true"
                ),
                &[&key],
            )
            .await?;
        let mut now = Timestamp::ZERO;
        let mut times = BTreeMap::new();
        for r in &rows {
            now = ts(r.col(0)?);
            if let Some(seq) = r.col::<Option<i64>>(1)? {
                times.insert(seq, ts(r.col(2)?));
            }
        }
        Ok((now, times))
    }
}

#[async_trait]
impl VersionStore for PgStore {
    async fn set_bucket_versioning(&self, name: &str, state: Versioning) -> Result<()> {
        validate::bucket_lookup(name)?;
        let Some(status) = state.as_status() else {
            return Err(StoreError::invalid(
                "versioning state",
                "a bucket cannot return to unversioned (suspend it instead)",
            ));
        };
        let n = self
            .db
            .execute(
                "set bucket versioning",
                "UPDATE buckets SET versioning = $2 WHERE name = $1",
                &[&name, &status],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn get_bucket_versioning(&self, name: &str) -> Result<Versioning> {
        validate::bucket_lookup(name)?;
        let row = self
            .db
            .query_opt(
                "get bucket versioning",
                "SELECT versioning FROM buckets WHERE name = $1",
                &[&name],
            )
            .await?;
        match row {
            None => Err(StoreError::BucketNotFound {
                bucket: name.to_owned(),
            }),
            Some(r) => decode_state(r.col::<Option<&str>>(0)?),
        }
    }

    async fn get_object_version(&self, key: &str, version_id: &str) -> Result<ObjectVersion> {
        validate::key(key)?;
        validate::text("version id", version_id)?;
        let mut rows = self
            .db
            .query(
                "get object version",
                &current_rows_sql(true),
                &[&key, &version_id],
            )
            .await?;
        if rows.is_empty() {
            rows = self
                .db
                .query(
                    "get object version",
                    &format!(
                        "SELECT {}, v.version_id, v.seq, v.backend_name IS NULL, \
                         {LATEST_NONCURRENT} FROM object_versions v \
                         WHERE v.object_key = $1 AND v.version_id = $2 \
                         ORDER BY v.created_at, v.backend_name COLLATE \"C\"",
                        version_columns("v")
                    ),
                    &[&key, &version_id],
                )
                .await?;
        }
        let rows = rows.iter().map(version_row).collect::<Result<Vec<_>>>()?;
        group(rows, true)
            .pop()
            .ok_or_else(|| StoreError::VersionNotFound {
                key: key.to_owned(),
                version_id: version_id.to_owned(),
            })
    }

    async fn get_latest_version(&self, key: &str) -> Result<Option<ObjectVersion>> {
        validate::key(key)?;
        let mut rows = self
            .db
            .query("get latest version", &current_rows_sql(false), &[&key])
            .await?;
        if rows.is_empty() {
            rows = self
                .db
                .query(
                    "get latest version",
                    &format!(
                        "SELECT {}, v.version_id, v.seq, v.backend_name IS NULL, true \
                         FROM object_versions v WHERE v.object_key = $1 \
                         AND v.seq = (SELECT max(seq) FROM object_versions WHERE object_key = $1) \
                         ORDER BY v.created_at, v.backend_name COLLATE \"C\"",
                        version_columns("v")
                    ),
                    &[&key],
                )
                .await?;
        }
        let rows = rows.iter().map(version_row).collect::<Result<Vec<_>>>()?;
        Ok(group(rows, true).pop())
    }

    async fn get_noncurrent_copies(&self, key: &str) -> Result<Vec<ObjectLocation>> {
        validate::key(key)?;
        let rows = self
            .db
            .query(
                "get noncurrent copies",
                &format!(
                    "SELECT {} FROM object_versions v \
                     WHERE v.object_key = $1 AND v.backend_name IS NOT NULL \
                     ORDER BY v.seq DESC, v.backend_name COLLATE \"C\"",
                    version_columns("v")
                ),
                &[&key],
            )
            .await?;
        rows.iter().map(location_from_row).collect()
    }

    async fn list_version_entries(
        &self,
        prefix: &str,
        after_key: &str,
        max_seq: i64,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>> {
        validate::prefix("prefix", prefix)?;
        validate::prefix("start key", after_key)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lower = if after_key.as_bytes() > prefix.as_bytes() {
            after_key
        } else {
            prefix
        };
        let upper = prefix_successor(prefix);
        let limit = limit_param(limit);
        // One row per version: the current version's oldest copy, a noncurrent version's
        // first copy by backend, every marker. $1 lower bound, $2 upper bound (NULL = none).
        let range = |alias: &str| {
            format!(
                "{alias}.object_key COLLATE \"C\" >= $1 \
                 AND ($2::text IS NULL OR {alias}.object_key COLLATE \"C\" < $2)"
            )
        };
        let sql = format!(
            "SELECT * FROM ( \
               SELECT DISTINCT ON (o.object_key COLLATE \"C\") {o}, \
                      coalesce(o.version_id, 'null') AS vid, {CURRENT_SEQ}::bigint AS seq, \
                      false AS marker, true AS latest \
               FROM object_locations o WHERE {ro} \
               ORDER BY o.object_key COLLATE \"C\", o.created_at, o.backend_name COLLATE \"C\" \
             ) cur \
             UNION ALL \
             SELECT * FROM ( \
               SELECT DISTINCT ON (v.object_key COLLATE \"C\", v.version_id) {v}, \
                      v.version_id, v.seq, v.backend_name IS NULL, {LATEST_NONCURRENT} \
               FROM object_versions v WHERE {rv} \
               ORDER BY v.object_key COLLATE \"C\", v.version_id, v.backend_name COLLATE \"C\" \
             ) old",
            o = version_columns("o"),
            v = version_columns("v"),
            ro = range("o"),
            rv = range("v"),
        );
        // Filtered and ordered outside: PostgreSQL names the union's columns after the first
        // branch (object_key, …, vid, seq).
        let sql = format!(
            "SELECT * FROM ({sql}) u \
             WHERE u.object_key COLLATE \"C\" > $3 \
                OR (u.object_key = $3 AND u.seq <= $4) \
             ORDER BY u.object_key COLLATE \"C\", u.seq DESC LIMIT $5"
        );
        let rows = self
            .db
            .query(
                "list object versions",
                &sql,
                &[&lower, &upper, &after_key, &max_seq, &limit],
            )
            .await?;
        let rows = rows.iter().map(version_row).collect::<Result<Vec<_>>>()?;
        Ok(group(rows, false))
    }

    async fn list_noncurrent_copies_by_backend(
        &self,
        backend: &str,
        after_key: &str,
        after_version_id: &str,
        limit: i64,
    ) -> Result<Vec<NoncurrentCopy>> {
        validate::backend(backend)?;
        validate::prefix("after key", after_key)?;
        validate::prefix("after version id", after_version_id)?;
        let Some(limit) = validate::batch_limit(limit) else {
            return Ok(Vec::new());
        };
        let limit = limit_param(limit);
        // Served by idx_object_versions_backend; (key, version id) in byte order.
        let rows = self
            .db
            .query(
                "list noncurrent copies by backend",
                &format!(
                    "SELECT {}, v.version_id FROM object_versions v \
                     WHERE v.backend_name = $1 \
                       AND (v.object_key COLLATE \"C\" > $2 \
                            OR (v.object_key = $2 AND v.version_id COLLATE \"C\" > $3)) \
                     ORDER BY v.object_key COLLATE \"C\", v.version_id COLLATE \"C\" LIMIT $4",
                    version_columns("v")
                ),
                &[&backend, &after_key, &after_version_id, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NoncurrentCopy {
                    location: location_from_row(r)?,
                    version_id: r.col(17)?,
                })
            })
            .collect()
    }

    async fn list_noncurrent_replication(
        &self,
        prefix: &str,
        after_key: &str,
        after_version_id: &str,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<NoncurrentReplicas>> {
        validate::prefix("prefix", prefix)?;
        validate::prefix("after key", after_key)?;
        validate::prefix("after version id", after_version_id)?;
        let Some(limit) = validate::batch_limit(limit) else {
            return Ok(Vec::new());
        };
        let limit = limit_param(limit);
        let lower = if after_key.as_bytes() > prefix.as_bytes() {
            after_key
        } else {
            prefix
        };
        let upper = prefix_successor(prefix);
        // Key range in byte order ($1 lower bound, $2 upper bound, NULL = none); markers have
        // no backend.
        let rows = self
            .db
            .query(
                "list noncurrent replication",
                "SELECT object_key, version_id, count(*) FROM object_versions \
                 WHERE object_key COLLATE \"C\" >= $1 \
                   AND ($2::text IS NULL OR object_key COLLATE \"C\" < $2) \
                   AND backend_name IS NOT NULL AND managed \
                   AND (object_key COLLATE \"C\" > $3 \
                        OR (object_key = $3 AND version_id COLLATE \"C\" > $4)) \
                 GROUP BY object_key, version_id HAVING count(*) <> $5 \
                 ORDER BY object_key COLLATE \"C\", version_id COLLATE \"C\" LIMIT $6",
                &[
                    &lower,
                    &upper,
                    &after_key,
                    &after_version_id,
                    &factor,
                    &limit,
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NoncurrentReplicas {
                    object_key: r.col(0)?,
                    version_id: r.col(1)?,
                    copies: r.col(2)?,
                })
            })
            .collect()
    }
}
