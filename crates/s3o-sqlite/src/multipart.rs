//! `multipart_uploads` and `multipart_parts`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{named_params, params};
use s3o_core::engine::MultipartStore;
use s3o_core::{
    CreateMultipartUploadParams, MultipartPart, MultipartUpload, ObjectAttributes, PartBytes,
    Result, StoreError, StoredForm, Timestamp, user_metadata_from_json, user_metadata_to_json,
    validate,
};

use crate::SqliteStore;
use crate::error::decode_err;
use crate::objects::{FormColumns, null_if_empty};
use crate::reader::{KeyRange, page_limit};
use crate::stmt::Db;

/// Every column of an upload, in the order [`upload_from_row`] reads them.
const UPLOAD_COLUMNS: &str = "upload_id, object_key, backend_name, content_type, metadata, encryption_key, key_id, created_at, attributes, tags";

/// Raw upload row; its JSON columns are decoded after the statement (their errors are not
/// SQL's).
struct UploadRow {
    upload: MultipartUpload,
    metadata: Option<String>,
    attributes: Option<String>,
    tags: Option<String>,
}

fn upload_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    let encryption_key = r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default();
    Ok(UploadRow {
        upload: MultipartUpload {
            upload_id: r.get(0)?,
            object_key: r.get(1)?,
            backend_name: r.get(2)?,
            content_type: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            metadata: BTreeMap::new(),
            attributes: ObjectAttributes::default(),
            tags: BTreeMap::new(),
            encrypted: !encryption_key.is_empty(),
            encryption_key,
            key_id: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
            created_at: Timestamp::from_micros(r.get(7)?),
        },
        metadata: r.get(4)?,
        attributes: r.get(8)?,
        tags: r.get(9)?,
    })
}

fn decode(rows: Vec<UploadRow>) -> Result<Vec<MultipartUpload>> {
    rows.into_iter()
        .map(|row| {
            let mut u = row.upload;
            if let Some(json) = row.metadata {
                u.metadata = serde_json::from_str(&json)
                    .map_err(|e| decode_err("decode multipart metadata", e))?;
            }
            u.attributes = ObjectAttributes::from_json(row.attributes.as_deref())
                .map_err(|e| decode_err("decode multipart attributes", e))?;
            u.tags = user_metadata_from_json(row.tags.as_deref())
                .map_err(|e| decode_err("decode multipart tags", e))?;
            Ok(u)
        })
        .collect()
}

/// Full upload rows matching `filter` (a SQL predicate over positional `?1`).
async fn uploads_where(
    store: &SqliteStore,
    ctx: &'static str,
    filter: &'static str,
    arg: rusqlite::types::Value,
) -> Result<Vec<MultipartUpload>> {
    let rows = store
        .conns
        .read(ctx, move |db| {
            db.query_vec(
                ctx,
                &format!(
                    "SELECT {UPLOAD_COLUMNS} FROM multipart_uploads WHERE {filter} \
                     ORDER BY created_at, upload_id"
                ),
                params![arg],
                upload_from_row,
            )
        })
        .await?;
    decode(rows)
}

/// The `(object_key, backend_name)` of an upload; `None` when there is none.
pub(crate) fn upload_home(db: &Db<'_>, upload_id: &str) -> Result<Option<(String, String)>> {
    db.query_opt(
        "lock multipart upload",
        "SELECT object_key, backend_name FROM multipart_uploads WHERE upload_id = ?1",
        params![upload_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Size and path of every part of an upload, by number.
pub(crate) fn part_bytes(db: &Db<'_>, upload_id: &str) -> Result<Vec<PartBytes>> {
    db.query_vec(
        "read part bytes",
        "SELECT part_number, size_bytes, storage_key FROM multipart_parts \
         WHERE upload_id = ?1 ORDER BY part_number",
        params![upload_id],
        |r| {
            Ok(PartBytes {
                part_number: r.get(0)?,
                size_bytes: r.get(1)?,
                storage_key: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        },
    )
}

/// Inserts the part or replaces every column of the one under its number; the caller holds the
/// upload (an unknown upload ⇒ `MultipartUploadNotFound`, checked in the same statement).
pub(crate) fn upsert_part(
    db: &Db<'_>,
    upload_id: &str,
    part_number: i32,
    etag: &str,
    size: i64,
    form: &StoredForm,
) -> Result<()> {
    let f = FormColumns::of(form);
    // Upsert on the primary key (upload_id, part_number).
    let n = db.execute(
        "record part",
        "INSERT INTO multipart_parts (upload_id, part_number, etag, size_bytes, \
             encrypted, encryption_key, key_id, plaintext_size, created_at, \
             storage_key, checksum) \
         SELECT :id, :n, :etag, :size, :encrypted, :encryption_key, :key_id, \
                :plaintext_size, :now, :storage_key, :checksum \
         WHERE EXISTS (SELECT 1 FROM multipart_uploads WHERE upload_id = :id) \
         ON CONFLICT (upload_id, part_number) DO UPDATE SET \
             etag = excluded.etag, size_bytes = excluded.size_bytes, \
             encrypted = excluded.encrypted, encryption_key = excluded.encryption_key, \
             key_id = excluded.key_id, plaintext_size = excluded.plaintext_size, \
             created_at = excluded.created_at, storage_key = excluded.storage_key, \
             checksum = excluded.checksum",
        named_params! {
            ":id": upload_id,
            ":n": part_number,
            ":etag": etag,
            ":size": size,
            ":encrypted": f.encrypted,
            ":encryption_key": f.encryption_key,
            ":key_id": f.key_id,
            ":plaintext_size": f.plaintext_size,
            ":now": Timestamp::now().as_micros(),
            ":storage_key": f.storage_key,
            ":checksum": form.attributes.checksum.as_ref()
                .and_then(|c| null_if_empty(&c.value)),
        },
    )?;
    if n == 0 {
        return Err(StoreError::MultipartUploadNotFound {
            upload_id: upload_id.to_owned(),
        });
    }
    Ok(())
}

/// Deletes an upload row; its parts go with it (ON DELETE CASCADE, `foreign_keys=ON` on every
/// connection). `false` when it had none.
pub(crate) fn delete_upload(db: &Db<'_>, upload_id: &str) -> Result<bool> {
    let n = db.execute(
        "delete multipart upload",
        "DELETE FROM multipart_uploads WHERE upload_id = ?1",
        params![upload_id],
    )?;
    Ok(n > 0)
}

#[async_trait]
impl MultipartStore for SqliteStore {
    async fn create_multipart_upload(&self, p: &CreateMultipartUploadParams) -> Result<()> {
        if p.upload_id.is_empty() {
            return Err(StoreError::invalid("upload id", "must not be empty"));
        }
        validate::id("upload id", &p.upload_id)?;
        validate::key(&p.object_key)?;
        validate::backend(&p.backend_name)?;
        validate::text("content type", &p.content_type)?;
        validate::id("key id", &p.key_id)?;
        for (k, v) in &p.metadata {
            validate::text("metadata key", k)?;
            validate::text("metadata value", v)?;
        }
        validate::attributes(&p.attributes)?;
        validate::tags(&p.tags)?;
        let attributes = p.attributes.to_json();
        let tags = user_metadata_to_json(&p.tags);
        let metadata = (!p.metadata.is_empty())
            .then(|| serde_json::to_string(&p.metadata))
            .transpose()
            .map_err(|e| StoreError::invalid("metadata", e.to_string()))?;
        let p = p.clone();
        self.conns
            .write("create multipart upload", move |db| {
                let n = db.execute(
                    "create multipart upload",
                    "INSERT INTO multipart_uploads (upload_id, object_key, backend_name, \
                         content_type, metadata, encryption_key, key_id, created_at, \
                         attributes, tags) \
                     SELECT :id, :key, :backend, :content_type, :metadata, :encryption_key, \
                            :key_id, :now, :attributes, :tags \
                     WHERE EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :backend)",
                    named_params! {
                        ":id": p.upload_id,
                        ":key": p.object_key,
                        ":backend": p.backend_name,
                        ":content_type": null_if_empty(&p.content_type),
                        ":metadata": metadata,
                        ":encryption_key": (!p.encryption_key.is_empty()).then_some(&p.encryption_key),
                        ":key_id": null_if_empty(&p.key_id),
                        ":now": Timestamp::now().as_micros(),
                        ":attributes": attributes,
                        ":tags": tags,
                    },
                )?;
                if n == 0 {
                    return Err(StoreError::UnknownBackend {
                        backend: p.backend_name,
                    });
                }
                Ok(())
            })
            .await
    }

    async fn get_multipart_upload(&self, upload_id: &str) -> Result<MultipartUpload> {
        validate::id("upload id", upload_id)?;
        let id = upload_id.to_owned();
        let row = self
            .conns
            .read("get multipart upload", move |db| {
                db.query_opt(
                    "get multipart upload",
                    &format!("SELECT {UPLOAD_COLUMNS} FROM multipart_uploads WHERE upload_id = ?1"),
                    params![id],
                    upload_from_row,
                )
            })
            .await?;
        match row {
            Some(row) => Ok(decode(vec![row])?.remove(0)),
            None => Err(StoreError::MultipartUploadNotFound {
                upload_id: upload_id.to_owned(),
            }),
        }
    }

    async fn get_parts(&self, upload_id: &str) -> Result<Vec<MultipartPart>> {
        validate::id("upload id", upload_id)?;
        let id = upload_id.to_owned();
        self.conns
            .read("get parts", move |db| {
                db.query_vec(
                    "get parts",
                    "SELECT part_number, etag, size_bytes, created_at, encrypted, \
                            encryption_key, key_id, plaintext_size, storage_key, checksum \
                     FROM multipart_parts WHERE upload_id = ?1 ORDER BY part_number",
                    params![id],
                    |r| {
                        Ok(MultipartPart {
                            part_number: r.get(0)?,
                            etag: r.get(1)?,
                            size_bytes: r.get(2)?,
                            created_at: Timestamp::from_micros(r.get(3)?),
                            encrypted: r.get(4)?,
                            encryption_key: r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default(),
                            key_id: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                            plaintext_size: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
                            storage_key: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                            checksum: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                        })
                    },
                )
            })
            .await
    }

    async fn list_multipart_uploads(&self, prefix: &str, max: i64) -> Result<Vec<MultipartUpload>> {
        validate::prefix("prefix", prefix)?;
        let limit = page_limit(max);
        let range = KeyRange::prefix(prefix);
        self.conns
            .read("list multipart uploads", move |db| {
                // Byte-order range on idx_multipart_uploads_key_created; slim rows.
                let sql = format!(
                    "SELECT upload_id, object_key, content_type, created_at \
                     FROM multipart_uploads WHERE {} \
                     ORDER BY object_key, created_at, upload_id LIMIT :limit",
                    range.predicate("object_key")
                );
                let mut p = range.params();
                p.push((":limit", &limit));
                db.query_vec("list multipart uploads", &sql, p.as_slice(), |r| {
                    Ok(MultipartUpload {
                        upload_id: r.get(0)?,
                        object_key: r.get(1)?,
                        backend_name: String::new(),
                        content_type: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        metadata: BTreeMap::new(),
                        attributes: ObjectAttributes::default(),
                        tags: BTreeMap::new(),
                        encrypted: false,
                        encryption_key: Vec::new(),
                        key_id: String::new(),
                        created_at: Timestamp::from_micros(r.get(3)?),
                    })
                })
            })
            .await
    }

    async fn count_active_multipart_uploads(&self, prefix: &str) -> Result<i64> {
        validate::prefix("prefix", prefix)?;
        let range = KeyRange::prefix(prefix);
        self.conns
            .read("count active multipart uploads", move |db| {
                let sql = format!(
                    "SELECT count(*) FROM multipart_uploads WHERE {}",
                    range.predicate("object_key")
                );
                db.query_one(
                    "count active multipart uploads",
                    &sql,
                    range.params().as_slice(),
                    |r| r.get(0),
                )
            })
            .await
    }

    async fn get_stale_multipart_uploads(
        &self,
        older_than: Duration,
    ) -> Result<Vec<MultipartUpload>> {
        let cutoff = Timestamp::now().minus(older_than).as_micros();
        uploads_where(
            self,
            "get stale multipart uploads",
            "created_at <= ?1",
            cutoff.into(),
        )
        .await
    }

    async fn get_multipart_uploads_by_backend(
        &self,
        backend: &str,
    ) -> Result<Vec<MultipartUpload>> {
        validate::backend(backend)?;
        uploads_where(
            self,
            "get multipart uploads by backend",
            "backend_name = ?1",
            backend.to_owned().into(),
        )
        .await
    }
}
