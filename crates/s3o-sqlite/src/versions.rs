//! `object_versions` and `buckets.versioning` (DESIGN decision 25): the statements behind the
//! versioning primitives of the transaction adapter and the [`VersionStore`] reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Row, named_params, params};
use s3o_core::engine::VersionStore;
use s3o_core::{
    CURRENT_SEQ, ExistingCopy, KeyBound, NoncurrentCopy, NoncurrentReplicas, ObjectLocation,
    ObjectVersion, Result, StoreError, Timestamp, VersionCopy, Versioning, validate,
};

use crate::SqliteStore;
use crate::objects::{LOCATION_COLUMNS, location_from_row};
use crate::reader::KeyRange;
use crate::stmt::Db;

/// The columns both tables share, in `object_locations`' order (`INSERT … SELECT` between them).
const SHARED_COLUMNS: &str = "object_key, backend_name, size_bytes, created_at, encrypted, \
     encryption_key, key_id, plaintext_size, content_hash, managed, last_scrubbed_at, \
     storage_key, etag, content_type, user_metadata, attributes, tags";

/// A version row as [`location_from_row`] reads it (a marker's backend reads as empty), then
/// `version_id`, `seq`, `marker`, `latest` at 17..=20.
fn version_columns(alias: &str) -> String {
    let a = |c: &str| format!("{alias}.{c}");
    format!(
        "{}, coalesce({}, ''), {}",
        a("object_key"),
        a("backend_name"),
        [
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
        .join(", ")
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

fn version_row(r: &Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok(VersionRow {
        loc: location_from_row(r)?,
        version_id: r.get(17)?,
        seq: r.get(18)?,
        marker: r.get(19)?,
        latest: r.get(20)?,
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

/// The bucket's versioning state; `None` when it has no row.
pub(crate) fn bucket_versioning(db: &Db<'_>, name: &str) -> Result<Option<Versioning>> {
    let row: Option<Option<String>> = db.query_opt(
        "read bucket versioning",
        "SELECT versioning FROM buckets WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )?;
    row.map(|s| decode_state(s.as_deref())).transpose()
}

fn decode_state(s: Option<&str>) -> Result<Versioning> {
    Versioning::from_status(s).ok_or_else(|| {
        StoreError::database(
            s3o_core::DbErrorKind::Other,
            "decode bucket versioning",
            format!("unknown versioning state {s:?}"),
        )
    })
}

/// The version id of `key`'s current copies.
pub(crate) fn current_version_id(db: &Db<'_>, key: &str) -> Result<Option<String>> {
    db.query_opt(
        "read current version id",
        "SELECT coalesce(version_id, 'null') FROM object_locations WHERE object_key = ?1 LIMIT 1",
        params![key],
        |r| r.get(0),
    )
}

/// Every `object_versions` row of `key`, newest first.
pub(crate) fn key_versions(db: &Db<'_>, key: &str) -> Result<Vec<VersionCopy>> {
    db.query_vec(
        "read key versions",
        "SELECT version_id, seq, backend_name, size_bytes, coalesce(storage_key, '') \
         FROM object_versions WHERE object_key = ?1 ORDER BY seq DESC, backend_name",
        params![key],
        |r| {
            Ok(VersionCopy {
                version_id: r.get(0)?,
                seq: r.get(1)?,
                backend_name: r.get(2)?,
                size_bytes: r.get(3)?,
                storage_key: r.get(4)?,
            })
        },
    )
}

/// Copies the current copies of `key` into `object_versions`.
pub(crate) fn archive_current(db: &Db<'_>, key: &str, version_id: &str, seq: i64) -> Result<u64> {
    let n = db.execute(
        "archive current version",
        &format!(
            "INSERT INTO object_versions (version_id, seq, {SHARED_COLUMNS}) \
             SELECT :vid, :seq, {SHARED_COLUMNS} FROM object_locations WHERE object_key = :key"
        ),
        named_params! {":vid": version_id, ":seq": seq, ":key": key},
    )?;
    Ok(n as u64)
}

/// Writes a delete marker.
pub(crate) fn insert_marker(db: &Db<'_>, key: &str, version_id: &str, seq: i64) -> Result<()> {
    db.execute(
        "insert delete marker",
        "INSERT INTO object_versions (object_key, version_id, seq, backend_name, size_bytes, \
         created_at) VALUES (?1, ?2, ?3, NULL, 0, ?4)",
        params![key, version_id, seq, s3o_core::Timestamp::now().as_micros()],
    )?;
    Ok(())
}

/// Copies a noncurrent version's copies back into `object_locations`.
pub(crate) fn restore(db: &Db<'_>, key: &str, version_id: &str) -> Result<u64> {
    let n = db.execute(
        "restore version",
        &format!(
            "INSERT INTO object_locations (version_id, {SHARED_COLUMNS}) \
             SELECT nullif(version_id, 'null'), {SHARED_COLUMNS} FROM object_versions \
             WHERE object_key = :key AND version_id = :vid AND backend_name IS NOT NULL"
        ),
        named_params! {":vid": version_id, ":key": key},
    )?;
    Ok(n as u64)
}

/// Deletes every row of one version.
pub(crate) fn delete_rows(db: &Db<'_>, key: &str, version_id: &str) -> Result<u64> {
    let n = db.execute(
        "delete version rows",
        "DELETE FROM object_versions WHERE object_key = ?1 AND version_id = ?2",
        params![key, version_id],
    )?;
    Ok(n as u64)
}

/// Replaces the tags of every copy of one noncurrent data version (markers are left alone).
pub(crate) fn set_noncurrent_tags(
    db: &Db<'_>,
    key: &str,
    version_id: &str,
    tags: Option<&str>,
) -> Result<u64> {
    // Served by idx_object_versions_copy (object_key, version_id, …).
    let n = db.execute(
        "set noncurrent tags",
        "UPDATE object_versions SET tags = ?3 \
         WHERE object_key = ?1 AND version_id = ?2 AND backend_name IS NOT NULL",
        params![key, version_id, tags],
    )?;
    Ok(n as u64)
}

/// Sets the version id of the current copies.
pub(crate) fn set_current_id(db: &Db<'_>, key: &str, version_id: Option<&str>) -> Result<()> {
    db.execute(
        "set current version id",
        "UPDATE object_locations SET version_id = ?2 WHERE object_key = ?1",
        params![key, version_id],
    )?;
    Ok(())
}

/// Re-homes one noncurrent copy onto `to` when `to` has a quota row.
pub(crate) fn move_copy(
    db: &Db<'_>,
    key: &str,
    version_id: &str,
    from: &str,
    to: &str,
) -> Result<u64> {
    let n = db.execute(
        "move version copy",
        // The EXISTS keeps an unknown target from reaching the foreign key.
        "UPDATE object_versions SET backend_name = :to, last_scrubbed_at = NULL \
         WHERE object_key = :key AND version_id = :vid AND backend_name = :from \
           AND EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :to)",
        named_params! {":key": key, ":vid": version_id, ":from": from, ":to": to},
    )?;
    Ok(n as u64)
}

/// The copies of one noncurrent version, as `existing_copies` reads current ones.
pub(crate) fn version_copies(
    db: &Db<'_>,
    key: &str,
    version_id: &str,
) -> Result<Vec<ExistingCopy>> {
    db.query_vec(
        "read version copies",
        // Served by idx_object_versions_copy.
        "SELECT backend_name, size_bytes, created_at, encrypted, \
                coalesce(length(encryption_key), 0) > 0, coalesce(storage_key, ''), \
                coalesce(etag, '') \
         FROM object_versions \
         WHERE object_key = ?1 AND version_id = ?2 AND backend_name IS NOT NULL \
         ORDER BY created_at, backend_name",
        params![key, version_id],
        |r| {
            Ok(ExistingCopy {
                backend_name: r.get(0)?,
                size_bytes: r.get(1)?,
                created_at: Timestamp::from_micros(r.get(2)?),
                encrypted: r.get(3)?,
                has_dek: r.get(4)?,
                storage_key: r.get(5)?,
                etag: r.get(6)?,
            })
        },
    )
}

/// Copies one noncurrent copy's row to `target`; the size written, `None` when nothing was.
pub(crate) fn insert_version_replica(
    db: &Db<'_>,
    key: &str,
    version_id: &str,
    target: &str,
    source: &str,
) -> Result<Option<i64>> {
    db.query_opt(
        "insert version replica",
        "INSERT INTO object_versions (object_key, version_id, seq, backend_name, size_bytes, \
           created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, \
           storage_key, etag, content_type, user_metadata, attributes, tags) \
         SELECT object_key, version_id, seq, :target, size_bytes, created_at, encrypted, \
           encryption_key, key_id, plaintext_size, content_hash, managed, storage_key, etag, \
           content_type, user_metadata, attributes, tags \
         FROM object_versions \
         WHERE object_key = :key AND version_id = :vid AND backend_name = :source \
           AND EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :target) \
           AND NOT EXISTS (SELECT 1 FROM object_versions t WHERE t.object_key = :key \
                           AND t.version_id = :vid AND t.backend_name = :target) \
         RETURNING size_bytes",
        named_params! {":key": key, ":vid": version_id, ":target": target, ":source": source},
        |r| r.get(0),
    )
}

/// Deletes one noncurrent copy.
pub(crate) fn delete_version_copy(
    db: &Db<'_>,
    key: &str,
    version_id: &str,
    backend: &str,
) -> Result<u64> {
    let n = db.execute(
        "delete version copy",
        "DELETE FROM object_versions WHERE object_key = ?1 AND version_id = ?2 AND backend_name = ?3",
        params![key, version_id, backend],
    )?;
    Ok(n as u64)
}
/// When each version of `key` was written (oldest copy), by `seq` (the current copies under
/// `CURRENT_SEQ`), and now by the clock that stamps SQLite rows (this process's).
pub(crate) fn version_times(
    db: &Db<'_>,
    key: &str,
) -> Result<(s3o_core::Timestamp, BTreeMap<i64, s3o_core::Timestamp>)> {
    let rows: Vec<(i64, i64)> = db.query_vec(
        "read version times",
        &format!(
            "SELECT seq, min(created_at) FROM object_versions WHERE object_key = ?1 GROUP BY seq \
             UNION ALL \
             SELECT {CURRENT_SEQ}, min(created_at) FROM object_locations WHERE object_key = ?1 \
             HAVING count(*) > 0"
        ),
        params![key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let times = rows
        .into_iter()
        .map(|(seq, at)| (seq, s3o_core::Timestamp::from_micros(at)))
        .collect();
    Ok((s3o_core::Timestamp::now(), times))
}

/// The current copies of `key` as version rows (only version `version_id` when given).
fn current_rows(db: &Db<'_>, key: &str, version_id: Option<&str>) -> Result<Vec<VersionRow>> {
    let sql = |filter: &str| {
        format!(
            "SELECT {LOCATION_COLUMNS}, coalesce(version_id, 'null'), {CURRENT_SEQ}, 0, 1 \
             FROM object_locations WHERE object_key = :key {filter} \
             ORDER BY created_at, backend_name"
        )
    };
    match version_id {
        Some(v) => db.query_vec(
            "read current version",
            &sql("AND coalesce(version_id, 'null') = :vid"),
            named_params! {":key": key, ":vid": v},
            version_row,
        ),
        None => db.query_vec(
            "read current version",
            &sql(""),
            named_params! {":key": key},
            version_row,
        ),
    }
}

#[async_trait]
impl VersionStore for SqliteStore {
    async fn set_bucket_versioning(&self, name: &str, state: Versioning) -> Result<()> {
        validate::bucket_lookup(name)?;
        let Some(status) = state.as_status() else {
            return Err(StoreError::invalid(
                "versioning state",
                "a bucket cannot return to unversioned (suspend it instead)",
            ));
        };
        let n = name.to_owned();
        let updated = self
            .conns
            .write("set bucket versioning", move |db| {
                db.execute(
                    "set bucket versioning",
                    "UPDATE buckets SET versioning = ?2 WHERE name = ?1",
                    params![n, status],
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

    async fn get_bucket_versioning(&self, name: &str) -> Result<Versioning> {
        validate::bucket_lookup(name)?;
        let n = name.to_owned();
        self.conns
            .read("get bucket versioning", move |db| bucket_versioning(db, &n))
            .await?
            .ok_or_else(|| StoreError::BucketNotFound {
                bucket: name.to_owned(),
            })
    }

    async fn get_object_version(&self, key: &str, version_id: &str) -> Result<ObjectVersion> {
        validate::key(key)?;
        validate::text("version id", version_id)?;
        let (k, vid) = (key.to_owned(), version_id.to_owned());
        let found = self
            .conns
            .read("get object version", move |db| {
                let cur = current_rows(db, &k, Some(&vid))?;
                if !cur.is_empty() {
                    return Ok(cur);
                }
                db.query_vec(
                    "get object version",
                    &format!(
                        "SELECT {}, v.version_id, v.seq, v.backend_name IS NULL, \
                         {LATEST_NONCURRENT} FROM object_versions v \
                         WHERE v.object_key = :key AND v.version_id = :vid \
                         ORDER BY v.created_at, v.backend_name",
                        version_columns("v")
                    ),
                    named_params! {":key": k, ":vid": vid},
                    version_row,
                )
            })
            .await?;
        group(found, true)
            .pop()
            .ok_or_else(|| StoreError::VersionNotFound {
                key: key.to_owned(),
                version_id: version_id.to_owned(),
            })
    }

    async fn get_latest_version(&self, key: &str) -> Result<Option<ObjectVersion>> {
        validate::key(key)?;
        let k = key.to_owned();
        let found = self
            .conns
            .read("get latest version", move |db| {
                let cur = current_rows(db, &k, None)?;
                if !cur.is_empty() {
                    return Ok(cur);
                }
                db.query_vec(
                    "get latest version",
                    &format!(
                        "SELECT {}, v.version_id, v.seq, v.backend_name IS NULL, 1 \
                         FROM object_versions v WHERE v.object_key = :key \
                         AND v.seq = (SELECT max(seq) FROM object_versions WHERE object_key = :key) \
                         ORDER BY v.created_at, v.backend_name",
                        version_columns("v")
                    ),
                    named_params! {":key": k},
                    version_row,
                )
            })
            .await?;
        Ok(group(found, true).pop())
    }

    async fn get_noncurrent_copies(&self, key: &str) -> Result<Vec<ObjectLocation>> {
        validate::key(key)?;
        let k = key.to_owned();
        self.conns
            .read("get noncurrent copies", move |db| {
                db.query_vec(
                    "get noncurrent copies",
                    &format!(
                        "SELECT {}, v.version_id, v.seq, 0, 0 FROM object_versions v \
                         WHERE v.object_key = ?1 AND v.backend_name IS NOT NULL \
                         ORDER BY v.seq DESC, v.backend_name",
                        version_columns("v")
                    ),
                    params![k],
                    location_from_row,
                )
            })
            .await
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (prefix, after_key) = (prefix.to_owned(), after_key.to_owned());
        let rows = self
            .conns
            .read("list object versions", move |db| {
                let bound = if after_key.is_empty() {
                    KeyBound::Start
                } else {
                    KeyBound::From(&after_key)
                };
                let range = KeyRange::new(&prefix, bound);
                // One row per version: the current version's oldest copy, a noncurrent
                // version's first copy by backend, every marker.
                let sql = format!(
                    "SELECT * FROM ( \
                       SELECT {o}, coalesce(o.version_id, 'null') AS vid, {CURRENT_SEQ} AS seq, \
                              0 AS marker, 1 AS latest \
                       FROM object_locations o WHERE {ro} \
                         AND o.backend_name = (SELECT o2.backend_name FROM object_locations o2 \
                                               WHERE o2.object_key = o.object_key \
                                               ORDER BY o2.created_at, o2.backend_name LIMIT 1) \
                       UNION ALL \
                       SELECT {v}, v.version_id, v.seq, v.backend_name IS NULL, {LATEST_NONCURRENT} \
                       FROM object_versions v WHERE {rv} \
                         AND (v.backend_name IS NULL OR v.backend_name = \
                              (SELECT min(w.backend_name) FROM object_versions w \
                               WHERE w.object_key = v.object_key AND w.version_id = v.version_id)) \
                     ) WHERE object_key > :after OR (object_key = :after AND seq <= :max_seq) \
                     ORDER BY object_key, seq DESC LIMIT :limit",
                    o = version_columns("o"),
                    v = version_columns("v"),
                    ro = range.predicate("o.object_key"),
                    rv = range.predicate("v.object_key"),
                );
                let mut p = range.params();
                p.push((":after", &after_key));
                p.push((":max_seq", &max_seq));
                p.push((":limit", &limit));
                db.query_vec("list object versions", &sql, p.as_slice(), version_row)
            })
            .await?;
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (b, k, v) = (
            backend.to_owned(),
            after_key.to_owned(),
            after_version_id.to_owned(),
        );
        self.conns
            .read("list noncurrent copies by backend", move |db| {
                // Served by idx_object_versions_backend; (key, version id) in byte order.
                db.query_vec(
                    "list noncurrent copies by backend",
                    &format!(
                        "SELECT {}, v.version_id FROM object_versions v \
                         WHERE v.backend_name = :b \
                           AND (v.object_key > :k OR (v.object_key = :k AND v.version_id > :v)) \
                         ORDER BY v.object_key, v.version_id LIMIT :limit",
                        version_columns("v")
                    ),
                    named_params! {":b": b, ":k": k, ":v": v, ":limit": limit},
                    |r| {
                        Ok(NoncurrentCopy {
                            location: location_from_row(r)?,
                            version_id: r.get(17)?,
                        })
                    },
                )
            })
            .await
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (prefix, k, v) = (
            prefix.to_owned(),
            after_key.to_owned(),
            after_version_id.to_owned(),
        );
        self.conns
            .read("list noncurrent replication", move |db| {
                let bound = if k.is_empty() {
                    KeyBound::Start
                } else {
                    KeyBound::From(&k)
                };
                let range = KeyRange::new(&prefix, bound);
                // Served by idx_object_versions_seq (key order); markers have no backend.
                let sql = format!(
                    "SELECT object_key, version_id, count(*) FROM object_versions \
                     WHERE {} AND backend_name IS NOT NULL AND managed = 1 \
                       AND (object_key > :k OR (object_key = :k AND version_id > :v)) \
                     GROUP BY object_key, version_id HAVING count(*) <> :factor \
                     ORDER BY object_key, version_id LIMIT :limit",
                    range.predicate("object_key")
                );
                let mut p = range.params();
                p.push((":k", &k));
                p.push((":v", &v));
                p.push((":factor", &factor));
                p.push((":limit", &limit));
                db.query_vec("list noncurrent replication", &sql, p.as_slice(), |r| {
                    Ok(NoncurrentReplicas {
                        object_key: r.get(0)?,
                        version_id: r.get(1)?,
                        copies: r.get(2)?,
                    })
                })
            })
            .await
    }
}
