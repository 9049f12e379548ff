//! `object_locations`: the statements behind the object primitives of the transaction
//! adapter, the object role's single-statement read, and the row mapping shared by every
//! file that returns [`ObjectLocation`]s.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Row, named_params, params};
use s3o_core::engine::ObjectLedger;
use s3o_core::{
    ExistingCopy, KeyedExistingCopy, ObjectAttributes, ObjectLocation, Result, StoreError,
    StoredForm, Timestamp, user_metadata_from_json, validate,
};

use crate::SqliteStore;
use crate::quota::backend_exists;
use crate::stmt::Db;

/// Every column of a copy, in the order [`location_from_row`] reads them.
pub(crate) const LOCATION_COLUMNS: &str = "object_key, backend_name, size_bytes, created_at, \
     encrypted, encryption_key, key_id, plaintext_size, content_hash, managed, last_scrubbed_at, \
     storage_key, etag, content_type, user_metadata, attributes, tags";

/// [`LOCATION_COLUMNS`] qualified with the alias `o`, for joins and correlated subqueries.
pub(crate) const LOCATION_COLUMNS_O: &str = "o.object_key, o.backend_name, o.size_bytes, \
     o.created_at, o.encrypted, o.encryption_key, o.key_id, o.plaintext_size, o.content_hash, \
     o.managed, o.last_scrubbed_at, o.storage_key, o.etag, o.content_type, o.user_metadata, \
     o.attributes, o.tags";

/// Maps a row selected with [`LOCATION_COLUMNS`]; `NULL` optional columns read as empty.
pub(crate) fn location_from_row(row: &Row<'_>) -> rusqlite::Result<ObjectLocation> {
    Ok(ObjectLocation {
        object_key: row.get(0)?,
        backend_name: row.get(1)?,
        size_bytes: row.get(2)?,
        created_at: Timestamp::from_micros(row.get(3)?),
        form: form_from_row(row, [4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16])?,
        last_scrubbed_at: row.get::<_, Option<i64>>(10)?.map(Timestamp::from_micros),
    })
}

/// Reads a stored form from the columns at `idx`: encrypted, encryption_key, key_id,
/// plaintext_size, content_hash, managed, storage_key, etag, content_type, user_metadata,
/// attributes, tags. `NULL` reads as the empty value; undecodable JSON is a conversion error.
pub(crate) fn form_from_row(row: &Row<'_>, idx: [usize; 12]) -> rusqlite::Result<StoredForm> {
    let text = |i: usize| -> rusqlite::Result<String> {
        Ok(row.get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    let metadata = row.get::<_, Option<String>>(idx[9])?;
    let user_metadata = user_metadata_from_json(metadata.as_deref()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx[9], rusqlite::types::Type::Text, e.into())
    })?;
    let attributes = row.get::<_, Option<String>>(idx[10])?;
    let attributes = ObjectAttributes::from_json(attributes.as_deref()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx[10], rusqlite::types::Type::Text, e.into())
    })?;
    let tags = row.get::<_, Option<String>>(idx[11])?;
    let tags = user_metadata_from_json(tags.as_deref()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx[11], rusqlite::types::Type::Text, e.into())
    })?;
    Ok(StoredForm {
        encrypted: row.get(idx[0])?,
        encryption_key: row.get::<_, Option<Vec<u8>>>(idx[1])?.unwrap_or_default(),
        key_id: text(idx[2])?,
        plaintext_size: row.get::<_, Option<i64>>(idx[3])?.unwrap_or(0),
        content_hash: text(idx[4])?,
        managed: row.get(idx[5])?,
        storage_key: text(idx[6])?,
        etag: text(idx[7])?,
        content_type: text(idx[8])?,
        user_metadata,
        attributes,
        tags,
    })
}

/// Empty text is stored as `NULL`.
pub(crate) fn null_if_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The stored-form columns as they are written: encryption columns only when encrypted,
/// empty values as `NULL`.
pub(crate) struct FormColumns<'a> {
    pub(crate) encrypted: bool,
    pub(crate) encryption_key: Option<&'a [u8]>,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) plaintext_size: Option<i64>,
    pub(crate) content_hash: Option<&'a str>,
    pub(crate) managed: bool,
    pub(crate) storage_key: Option<&'a str>,
    pub(crate) etag: Option<&'a str>,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) user_metadata: Option<String>,
    pub(crate) attributes: Option<String>,
    pub(crate) tags: Option<String>,
}

impl<'a> FormColumns<'a> {
    pub(crate) fn of(f: &'a StoredForm) -> Self {
        let enc = f.encrypted;
        FormColumns {
            encrypted: enc,
            encryption_key: (enc && !f.encryption_key.is_empty())
                .then_some(f.encryption_key.as_slice()),
            key_id: if enc { null_if_empty(&f.key_id) } else { None },
            plaintext_size: (enc && f.plaintext_size != 0).then_some(f.plaintext_size),
            content_hash: null_if_empty(&f.content_hash),
            managed: f.managed,
            storage_key: null_if_empty(&f.storage_key),
            etag: null_if_empty(&f.etag),
            content_type: null_if_empty(&f.content_type),
            user_metadata: f.user_metadata_json(),
            attributes: f.attributes.to_json(),
            tags: f.tags_json(),
        }
    }
}

/// JSON array of keys, expanded in SQL with `json_each` (SQLite has no array parameters).
pub(crate) fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

/// Every copy of `key`, oldest first. No row locks are needed: the caller's transaction holds
/// the file's write lock (`BEGIN IMMEDIATE`).
pub(crate) fn existing_copies(db: &Db<'_>, key: &str) -> Result<Vec<ExistingCopy>> {
    // Served by the primary key (object_key, backend_name).
    db.query_vec(
        "get existing copies",
        "SELECT backend_name, size_bytes, created_at, encrypted, \
                coalesce(length(encryption_key), 0) > 0, coalesce(storage_key, ''), \
                coalesce(etag, '') \
         FROM object_locations WHERE object_key = ?1 \
         ORDER BY created_at, backend_name",
        params![key],
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

const INSERT_LOCATION: &str = "INSERT INTO object_locations \
     (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, \
      plaintext_size, content_hash, managed, storage_key, etag, content_type, user_metadata, \
      attributes, tags) \
     SELECT :key, :backend, :size, :created_at, :encrypted, :encryption_key, :key_id, \
            :plaintext_size, :content_hash, :managed, :storage_key, :etag, :content_type, \
            :user_metadata, :attributes, :tags \
     WHERE EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :backend)";

fn insert_location_sql(db: &Db<'_>, ctx: &str, sql: &str, loc: &ObjectLocation) -> Result<usize> {
    let created_at = if loc.created_at.is_zero() {
        Timestamp::now()
    } else {
        loc.created_at
    };
    let f = FormColumns::of(&loc.form);
    db.execute(
        ctx,
        sql,
        named_params! {
            ":key": loc.object_key,
            ":backend": loc.backend_name,
            ":size": loc.size_bytes,
            ":created_at": created_at.as_micros(),
            ":encrypted": f.encrypted,
            ":encryption_key": f.encryption_key,
            ":key_id": f.key_id,
            ":plaintext_size": f.plaintext_size,
            ":content_hash": f.content_hash,
            ":managed": f.managed,
            ":storage_key": f.storage_key,
            ":etag": f.etag,
            ":content_type": f.content_type,
            ":user_metadata": f.user_metadata,
            ":attributes": f.attributes,
            ":tags": f.tags,
        },
    )
}

/// Inserts a copy; the backend's existence is checked in the same statement.
pub(crate) fn insert_location(db: &Db<'_>, loc: &ObjectLocation) -> Result<()> {
    if insert_location_sql(db, "insert object location", INSERT_LOCATION, loc)? == 0 {
        return Err(StoreError::UnknownBackend {
            backend: loc.backend_name.clone(),
        });
    }
    Ok(())
}

/// Inserts a copy unless `(key, backend)` has one, with the same column mapping as
/// [`insert_location`]. `true` when inserted.
pub(crate) fn insert_location_if_absent(db: &Db<'_>, loc: &ObjectLocation) -> Result<bool> {
    let sql = format!("{INSERT_LOCATION} ON CONFLICT (object_key, backend_name) DO NOTHING");
    if insert_location_sql(db, "insert object location if absent", &sql, loc)? == 1 {
        return Ok(true);
    }
    if !backend_exists(db, &loc.backend_name)? {
        return Err(StoreError::UnknownBackend {
            backend: loc.backend_name.clone(),
        });
    }
    Ok(false)
}

/// Deletes every copy of `key`.
pub(crate) fn delete_copies(db: &Db<'_>, key: &str) -> Result<()> {
    db.execute(
        "delete object copies",
        "DELETE FROM object_locations WHERE object_key = ?1",
        params![key],
    )?;
    Ok(())
}

/// Every copy of any of `keys`, ordered by key then age.
pub(crate) fn copies_for_keys(db: &Db<'_>, keys: &[String]) -> Result<Vec<KeyedExistingCopy>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    db.query_vec(
        "get copies for keys",
        "SELECT object_key, backend_name, size_bytes, coalesce(storage_key, '') \
         FROM object_locations \
         WHERE object_key IN (SELECT value FROM json_each(?1)) \
         ORDER BY object_key, created_at, backend_name",
        params![json_list(keys)],
        |r| {
            Ok(KeyedExistingCopy {
                object_key: r.get(0)?,
                backend_name: r.get(1)?,
                size_bytes: r.get(2)?,
                storage_key: r.get(3)?,
            })
        },
    )
}

/// Deletes every copy of any of `keys`.
pub(crate) fn delete_keys(db: &Db<'_>, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    db.execute(
        "delete objects by keys",
        "DELETE FROM object_locations WHERE object_key IN (SELECT value FROM json_each(?1))",
        params![json_list(keys)],
    )?;
    Ok(())
}

/// Whether `(key, backend)` has a copy.
pub(crate) fn exists_on_backend(db: &Db<'_>, key: &str, backend: &str) -> Result<bool> {
    db.query_one(
        "check object exists on backend",
        "SELECT EXISTS (SELECT 1 FROM object_locations \
                        WHERE object_key = ?1 AND backend_name = ?2)",
        params![key, backend],
        |r| r.get(0),
    )
}

/// The full row of `(key, backend)`, `None` when absent.
pub(crate) fn location_on_backend(
    db: &Db<'_>,
    key: &str,
    backend: &str,
) -> Result<Option<ObjectLocation>> {
    db.query_opt(
        "lock object on backend",
        &format!(
            "SELECT {LOCATION_COLUMNS} FROM object_locations \
             WHERE object_key = ?1 AND backend_name = ?2"
        ),
        params![key, backend],
        location_from_row,
    )
}

/// Deletes the single `(key, backend)` row.
pub(crate) fn delete_from_backend(db: &Db<'_>, key: &str, backend: &str) -> Result<()> {
    db.execute(
        "delete object from backend",
        "DELETE FROM object_locations WHERE object_key = ?1 AND backend_name = ?2",
        params![key, backend],
    )?;
    Ok(())
}

/// Copies the source row to `target` (every stored-form column, the version id and
/// `created_at`; the replica's bytes are not yet verified, so `last_scrubbed_at` starts
/// `NULL`) when the source exists and the target has no copy, in one statement. Returns the size written.
pub(crate) fn insert_replica(
    db: &Db<'_>,
    key: &str,
    target: &str,
    source: &str,
) -> Result<Option<i64>> {
    let size = db.query_opt(
        "insert replica",
        "INSERT INTO object_locations \
         (object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, \
          plaintext_size, content_hash, managed, storage_key, etag, content_type, \
          user_metadata, attributes, tags, version_id) \
         SELECT object_key, ?2, size_bytes, created_at, encrypted, encryption_key, key_id, \
                plaintext_size, content_hash, managed, storage_key, etag, content_type, \
                user_metadata, attributes, tags, version_id \
         FROM object_locations \
         WHERE object_key = ?1 AND backend_name = ?3 \
           AND EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = ?2) \
         ON CONFLICT (object_key, backend_name) DO NOTHING \
         RETURNING size_bytes",
        params![key, target, source],
        |r| r.get::<_, i64>(0),
    )?;
    if size.is_none() && !backend_exists(db, target)? {
        return Err(StoreError::UnknownBackend {
            backend: target.to_owned(),
        });
    }
    Ok(size)
}

/// Rewrites size and stored form of `(key, backend)`; `false` when the row is gone.
pub(crate) fn update_form(
    db: &Db<'_>,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
) -> Result<bool> {
    let f = FormColumns::of(form);
    let n = db.execute(
        "update object form",
        "UPDATE object_locations SET size_bytes = :size, encrypted = :encrypted, \
                encryption_key = :encryption_key, key_id = :key_id, \
                plaintext_size = :plaintext_size, content_hash = :content_hash, \
                managed = :managed, storage_key = :storage_key, etag = :etag, \
                content_type = :content_type, user_metadata = :user_metadata, \
                attributes = :attributes, tags = :tags \
         WHERE object_key = :key AND backend_name = :backend",
        named_params! {
            ":key": key,
            ":backend": backend,
            ":size": size,
            ":encrypted": f.encrypted,
            ":encryption_key": f.encryption_key,
            ":key_id": f.key_id,
            ":plaintext_size": f.plaintext_size,
            ":content_hash": f.content_hash,
            ":managed": f.managed,
            ":storage_key": f.storage_key,
            ":etag": f.etag,
            ":content_type": f.content_type,
            ":user_metadata": f.user_metadata,
            ":attributes": f.attributes,
            ":tags": f.tags,
        },
    )?;
    Ok(n > 0)
}

/// Replaces the tags of every copy of `key`; returns how many copies changed.
pub(crate) fn set_tags(db: &Db<'_>, key: &str, tags: Option<&str>) -> Result<u64> {
    // Served by the primary key (object_key, backend_name).
    let n = db.execute(
        "set object tags",
        "UPDATE object_locations SET tags = ?2 WHERE object_key = ?1",
        params![key, tags],
    )?;
    Ok(n as u64)
}

#[async_trait]
impl ObjectLedger for SqliteStore {
    async fn get_object_backends_for_keys(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        validate::keys(keys)?;
        if keys.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list = json_list(keys);
        let rows = self
            .conns
            .read("get object backends for keys", move |db| {
                db.query_vec(
                    "get object backends for keys",
                    "SELECT object_key, backend_name FROM object_locations \
                     WHERE object_key IN (SELECT value FROM json_each(?1)) \
                     ORDER BY object_key, created_at, backend_name",
                    params![list],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
            })
            .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, backend) in rows {
            out.entry(key).or_default().push(backend);
        }
        Ok(out)
    }
}
