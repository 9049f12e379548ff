//! `object_locations`: the transactional primitives on copies and the batch backend lookup.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::engine::ObjectLedger;
use s3o_core::tx::ObjectsTx;
use s3o_core::{
    DbErrorKind, ExistingCopy, KeyedExistingCopy, ObjectAttributes, ObjectLocation, Result,
    StoreError, StoredForm, Timestamp, user_metadata_from_json, validate,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::{null_if_empty, null_if_empty_bytes, null_if_zero, opt_ts, ts};
use crate::error::RowExt;
use crate::error::unknown_backend;
use crate::tx::PgTx;

/// Maps a row selected with `loc_cols!()` (every column describing one copy).
pub(crate) fn location_from_row(r: &Row) -> Result<ObjectLocation> {
    Ok(ObjectLocation {
        object_key: r.col(0)?,
        backend_name: r.col(1)?,
        size_bytes: r.col(2)?,
        created_at: ts(r.col(3)?),
        form: form_from_row(r, [4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16])?,
        last_scrubbed_at: r
            .col::<Option<std::time::SystemTime>>(10)?
            .map(Timestamp::from_system_time),
    })
}

/// Reads a stored form from the columns at `idx`: encrypted, encryption_key, key_id,
/// plaintext_size, content_hash, managed, storage_key, etag, content_type, user_metadata,
/// attributes, tags. `NULL` reads as the empty value; undecodable JSON is a database error.
pub(crate) fn form_from_row(r: &Row, idx: [usize; 12]) -> Result<StoredForm> {
    let text = |i: usize| -> Result<String> { Ok(r.col::<Option<String>>(i)?.unwrap_or_default()) };
    let user_metadata = user_metadata_from_json(r.col::<Option<&str>>(idx[9])?)
        .map_err(|e| StoreError::database(DbErrorKind::Schema, "decode user metadata", e))?;
    let attributes = ObjectAttributes::from_json(r.col::<Option<&str>>(idx[10])?)
        .map_err(|e| StoreError::database(DbErrorKind::Schema, "decode object attributes", e))?;
    let tags = user_metadata_from_json(r.col::<Option<&str>>(idx[11])?)
        .map_err(|e| StoreError::database(DbErrorKind::Schema, "decode object tags", e))?;
    Ok(StoredForm {
        encrypted: r.col(idx[0])?,
        encryption_key: r.col::<Option<Vec<u8>>>(idx[1])?.unwrap_or_default(),
        key_id: text(idx[2])?,
        plaintext_size: r.col::<Option<i64>>(idx[3])?.unwrap_or_default(),
        content_hash: text(idx[4])?,
        managed: r.col(idx[5])?,
        storage_key: text(idx[6])?,
        etag: text(idx[7])?,
        content_type: text(idx[8])?,
        user_metadata,
        attributes,
        tags,
    })
}

/// Inserts one copy; `ON CONFLICT` variants append to it. Encryption columns are written only
/// for encrypted copies (the normalised form); empty values are stored as NULL. A backend
/// without a quota row fails the foreign key, mapped to `UnknownBackend`.
const INSERT_LOCATION: &str = "INSERT INTO object_locations (object_key, backend_name, \
     size_bytes, created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, \
     managed, storage_key, etag, content_type, user_metadata, attributes, tags) \
     VALUES ($1, $2, $3, COALESCE($4, NOW()), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16)";

async fn insert_location(tx: &mut PgTx, loc: &ObjectLocation, if_absent: bool) -> Result<bool> {
    validate::location(loc)?;
    let f = loc.form.normalized();
    let created = opt_ts(loc.created_at);
    let metadata = f.user_metadata_json();
    let (attributes, tags) = (f.attributes.to_json(), f.tags_json());
    let if_absent_sql;
    let sql = if if_absent {
        if_absent_sql =
            format!("{INSERT_LOCATION} ON CONFLICT (object_key, backend_name) DO NOTHING");
        if_absent_sql.as_str()
    } else {
        INSERT_LOCATION
    };
    let n = tx
        .execute(
            "insert object location",
            sql,
            &[
                &loc.object_key,
                &loc.backend_name,
                &loc.size_bytes,
                &created,
                &f.encrypted,
                &null_if_empty_bytes(&f.encryption_key),
                &null_if_empty(&f.key_id),
                &null_if_zero(f.plaintext_size),
                &null_if_empty(&f.content_hash),
                &f.managed,
                &null_if_empty(&f.storage_key),
                &null_if_empty(&f.etag),
                &null_if_empty(&f.content_type),
                &metadata,
                &attributes,
                &tags,
            ],
        )
        .await
        .map_err(unknown_backend(&loc.backend_name))?;
    Ok(n == 1)
}

#[async_trait]
impl ObjectsTx for PgTx {
    async fn get_existing_copies_for_update(&mut self, key: &str) -> Result<Vec<ExistingCopy>> {
        validate::key(key)?;
        // Row-locks every copy of the key until commit.
        let rows = self
            .query(
                "lock copies of key",
                "SELECT backend_name, size_bytes, created_at, encrypted, \
                 (encryption_key IS NOT NULL AND length(encryption_key) > 0), \
                 COALESCE(storage_key, ''), COALESCE(etag, '') \
                 FROM object_locations WHERE object_key = $1 \
                 ORDER BY created_at, backend_name COLLATE \"C\" FOR UPDATE",
                &[&key],
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

    async fn insert_object_location(&mut self, loc: &ObjectLocation) -> Result<()> {
        insert_location(self, loc, false).await.map(|_| ())
    }

    async fn delete_object_copies(&mut self, key: &str) -> Result<()> {
        validate::key(key)?;
        self.execute(
            "delete copies of key",
            "DELETE FROM object_locations WHERE object_key = $1",
            &[&key],
        )
        .await?;
        Ok(())
    }

    async fn get_copies_for_keys_for_update(
        &mut self,
        keys: &[String],
    ) -> Result<Vec<KeyedExistingCopy>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        validate::keys(keys)?;
        // Row-locks every copy of every key until commit.
        let rows = self
            .query(
                "lock copies of keys",
                "SELECT object_key, backend_name, size_bytes, COALESCE(storage_key, '') \
                 FROM object_locations WHERE object_key = ANY($1) \
                 ORDER BY object_key COLLATE \"C\", created_at, backend_name COLLATE \"C\" \
                 FOR UPDATE",
                &[&keys],
            )
            .await?;
        rows.iter()
            .map(|r| -> Result<KeyedExistingCopy> {
                Ok(KeyedExistingCopy {
                    object_key: r.col(0)?,
                    backend_name: r.col(1)?,
                    size_bytes: r.col(2)?,
                    storage_key: r.col(3)?,
                })
            })
            .collect()
    }

    async fn delete_objects_by_keys(&mut self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        validate::keys(keys)?;
        self.execute(
            "delete copies of keys",
            "DELETE FROM object_locations WHERE object_key = ANY($1)",
            &[&keys],
        )
        .await?;
        Ok(())
    }

    async fn check_object_exists_on_backend(&mut self, key: &str, backend: &str) -> Result<bool> {
        validate::key(key)?;
        validate::backend(backend)?;
        let row = self
            .query_one(
                "check copy exists",
                "SELECT EXISTS (SELECT 1 FROM object_locations \
                 WHERE object_key = $1 AND backend_name = $2)",
                &[&key, &backend],
            )
            .await?;
        Ok(row.col(0)?)
    }

    async fn lock_object_on_backend(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<Option<ObjectLocation>> {
        validate::key(key)?;
        validate::backend(backend)?;
        // Row-locks the one copy until commit.
        let row = self
            .query_opt(
                "lock copy",
                concat!(
                    "SELECT ",
                    loc_cols!(),
                    " FROM object_locations WHERE object_key = $1 AND backend_name = $2 ",
                    "FOR UPDATE"
                ),
                &[&key, &backend],
            )
            .await?;
        row.as_ref().map(location_from_row).transpose()
    }

    async fn delete_object_from_backend(&mut self, key: &str, backend: &str) -> Result<()> {
        validate::key(key)?;
        validate::backend(backend)?;
        self.execute(
            "delete copy",
            "DELETE FROM object_locations WHERE object_key = $1 AND backend_name = $2",
            &[&key, &backend],
        )
        .await?;
        Ok(())
    }

    async fn insert_object_location_if_not_exists(&mut self, loc: &ObjectLocation) -> Result<bool> {
        insert_location(self, loc, true).await
    }

    async fn insert_replica_conditional(
        &mut self,
        key: &str,
        target: &str,
        source: &str,
    ) -> Result<Option<i64>> {
        validate::key(key)?;
        validate::backend(target)?;
        validate::backend(source)?;
        // One statement: copies every stored-form column, the version id and created_at from
        // the source row; nothing when the source is gone or the target already has a copy. It also says
        // whether the target exists, so an unknown target is `UnknownBackend` whether or not
        // the source is there (and never a foreign-key error that aborts the transaction).
        let row = self
            .query_one(
                "insert replica",
                "WITH known AS (SELECT EXISTS (SELECT 1 FROM backend_quotas \
                   WHERE backend_name = $2) AS known), \
                 ins AS (INSERT INTO object_locations (object_key, backend_name, size_bytes, \
                   created_at, encrypted, encryption_key, key_id, plaintext_size, content_hash, \
                   managed, storage_key, etag, content_type, user_metadata, attributes, tags, \
                   version_id) \
                   SELECT o.object_key, $2, o.size_bytes, o.created_at, o.encrypted, \
                   o.encryption_key, o.key_id, o.plaintext_size, o.content_hash, o.managed, \
                   o.storage_key, o.etag, o.content_type, o.user_metadata, o.attributes, o.tags, \
                   o.version_id \
                   FROM object_locations o, known \
                   WHERE known.known AND o.object_key = $1 AND o.backend_name = $3 \
                   ON CONFLICT (object_key, backend_name) DO NOTHING RETURNING size_bytes) \
                 SELECT (SELECT known FROM known), (SELECT size_bytes FROM ins)",
                &[&key, &target, &source],
            )
            .await
            .map_err(unknown_backend(target))?;
        if !row.col::<bool>(0)? {
            return Err(StoreError::UnknownBackend {
                backend: target.to_owned(),
            });
        }
        Ok(row.col(1)?)
    }

    async fn update_object_form(
        &mut self,
        key: &str,
        backend: &str,
        size_bytes: i64,
        form: &StoredForm,
    ) -> Result<bool> {
        validate::copy(key, backend, size_bytes, form)?;
        let f = form.normalized();
        let metadata = f.user_metadata_json();
        let (attributes, tags) = (f.attributes.to_json(), f.tags_json());
        let n = self
            .execute(
                "update stored form",
                "UPDATE object_locations SET size_bytes = $3, encrypted = $4, \
                 encryption_key = $5, key_id = $6, plaintext_size = $7, content_hash = $8, \
                 managed = $9, storage_key = $10, etag = $11, content_type = $12, \
                 user_metadata = $13, attributes = $14, tags = $15 \
                 WHERE object_key = $1 AND backend_name = $2",
                &[
                    &key,
                    &backend,
                    &size_bytes,
                    &f.encrypted,
                    &null_if_empty_bytes(&f.encryption_key),
                    &null_if_empty(&f.key_id),
                    &null_if_zero(f.plaintext_size),
                    &null_if_empty(&f.content_hash),
                    &f.managed,
                    &null_if_empty(&f.storage_key),
                    &null_if_empty(&f.etag),
                    &null_if_empty(&f.content_type),
                    &metadata,
                    &attributes,
                    &tags,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn set_object_tags(
        &mut self,
        key: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<u64> {
        validate::key(key)?;
        validate::tags(tags)?;
        let json = s3o_core::user_metadata_to_json(tags);
        // Every copy of the key; the caller holds the key lock.
        self.execute(
            "set object tags",
            "UPDATE object_locations SET tags = $2 WHERE object_key = $1",
            &[&key, &json],
        )
        .await
    }
}

#[async_trait]
impl ObjectLedger for PgStore {
    async fn get_object_backends_for_keys(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        validate::keys(keys)?;
        if keys.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = self
            .db
            .query(
                "backends for keys",
                "SELECT object_key, backend_name FROM object_locations \
                 WHERE object_key = ANY($1) \
                 ORDER BY object_key COLLATE \"C\", created_at, backend_name COLLATE \"C\"",
                &[&keys],
            )
            .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &rows {
            out.entry(r.col(0)?).or_default().push(r.col(1)?);
        }
        Ok(out)
    }
}
