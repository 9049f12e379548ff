//! `multipart_uploads` and `multipart_parts`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use s3o_core::engine::MultipartStore;
use s3o_core::ops::prefix_successor;
use s3o_core::tx::MultipartTx;
use s3o_core::{
    CreateMultipartUploadParams, MultipartPart, MultipartUpload, ObjectAttributes, PartBytes,
    Result, StoreError, StoredForm, user_metadata_from_json, user_metadata_to_json, validate,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::{
    interval_micros, limit_param, null_if_empty, null_if_empty_bytes, null_if_zero, ts,
};
use crate::error::RowExt;
use crate::error::{on_fk, unknown_backend};
use crate::tx::PgTx;

/// Every upload column, in the order [`upload_from_row`] reads them.
const UPLOAD_COLS: &str = "upload_id, object_key, backend_name, content_type, metadata::text, \
     encryption_key, key_id, created_at, attributes, tags";

fn upload_from_row(r: &Row) -> Result<MultipartUpload> {
    let upload_id: String = r.col(0)?;
    let metadata = match r.col::<Option<String>>(4)? {
        Some(json) => serde_json::from_str::<BTreeMap<String, String>>(&json).map_err(|e| {
            StoreError::database(
                s3o_core::DbErrorKind::Schema,
                format!("decode metadata of upload {upload_id}"),
                e,
            )
        })?,
        None => BTreeMap::new(),
    };
    let encryption_key: Vec<u8> = r.col::<Option<Vec<u8>>>(5)?.unwrap_or_default();
    let decode_err = |what: &str, e: serde_json::Error| {
        StoreError::database(
            s3o_core::DbErrorKind::Schema,
            format!("decode {what} of upload {upload_id}"),
            e,
        )
    };
    let attributes = ObjectAttributes::from_json(r.col::<Option<&str>>(8)?)
        .map_err(|e| decode_err("attributes", e))?;
    let tags =
        user_metadata_from_json(r.col::<Option<&str>>(9)?).map_err(|e| decode_err("tags", e))?;
    Ok(MultipartUpload {
        upload_id,
        object_key: r.col(1)?,
        backend_name: r.col(2)?,
        content_type: r.col::<Option<String>>(3)?.unwrap_or_default(),
        metadata,
        attributes,
        tags,
        encrypted: !encryption_key.is_empty(),
        encryption_key,
        key_id: r.col::<Option<String>>(6)?.unwrap_or_default(),
        created_at: ts(r.col(7)?),
    })
}

/// Slim listing row: `upload_id, object_key, content_type, created_at`.
fn slim_upload_from_row(r: &Row) -> Result<MultipartUpload> {
    Ok(MultipartUpload {
        upload_id: r.col(0)?,
        object_key: r.col(1)?,
        backend_name: String::new(),
        content_type: r.col::<Option<String>>(2)?.unwrap_or_default(),
        metadata: BTreeMap::new(),
        attributes: ObjectAttributes::default(),
        tags: BTreeMap::new(),
        encrypted: false,
        encryption_key: Vec::new(),
        key_id: String::new(),
        created_at: ts(r.col(3)?),
    })
}

/// `object_key COLLATE "C" >= $1 [AND object_key COLLATE "C" < $2]` for a prefix.
fn prefix_predicate(prefix: &str) -> (String, Option<String>) {
    match prefix_successor(prefix) {
        Some(upper) => (
            "object_key COLLATE \"C\" >= $1 AND object_key COLLATE \"C\" < $2".to_owned(),
            Some(upper),
        ),
        None => ("object_key COLLATE \"C\" >= $1".to_owned(), None),
    }
}

#[async_trait]
impl MultipartStore for PgStore {
    async fn create_multipart_upload(&self, params: &CreateMultipartUploadParams) -> Result<()> {
        validate::id("upload id", &params.upload_id)?;
        if params.upload_id.is_empty() {
            return Err(StoreError::invalid("upload id", "must not be empty"));
        }
        validate::key(&params.object_key)?;
        validate::backend(&params.backend_name)?;
        validate::text("content type", &params.content_type)?;
        validate::id("key id", &params.key_id)?;
        for (k, v) in &params.metadata {
            validate::text("metadata", k)?;
            validate::text("metadata", v)?;
        }
        let metadata = if params.metadata.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&params.metadata).map_err(|e| {
                StoreError::invalid("metadata", format!("cannot encode as JSON: {e}"))
            })?)
        };
        validate::attributes(&params.attributes)?;
        validate::tags(&params.tags)?;
        let attributes = params.attributes.to_json();
        let tags = user_metadata_to_json(&params.tags);
        self.db
            .execute(
                "create multipart upload",
                "INSERT INTO multipart_uploads (upload_id, object_key, backend_name, \
                 content_type, metadata, encryption_key, key_id, created_at, attributes, tags) \
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, NOW(), $8, $9)",
                &[
                    &params.upload_id,
                    &params.object_key,
                    &params.backend_name,
                    &null_if_empty(&params.content_type),
                    &metadata,
                    &null_if_empty_bytes(&params.encryption_key),
                    &null_if_empty(&params.key_id),
                    &attributes,
                    &tags,
                ],
            )
            .await
            .map_err(unknown_backend(&params.backend_name))?;
        Ok(())
    }

    async fn get_multipart_upload(&self, upload_id: &str) -> Result<MultipartUpload> {
        validate::id("upload id", upload_id)?;
        let row = self
            .db
            .query_opt(
                "read multipart upload",
                &format!("SELECT {UPLOAD_COLS} FROM multipart_uploads WHERE upload_id = $1"),
                &[&upload_id],
            )
            .await?
            .ok_or_else(|| StoreError::MultipartUploadNotFound {
                upload_id: upload_id.to_owned(),
            })?;
        upload_from_row(&row)
    }

    async fn get_parts(&self, upload_id: &str) -> Result<Vec<MultipartPart>> {
        validate::id("upload id", upload_id)?;
        let rows = self
            .db
            .query(
                "read parts",
                "SELECT part_number, etag, size_bytes, created_at, encrypted, encryption_key, \
                 key_id, plaintext_size, storage_key, checksum FROM multipart_parts \
                 WHERE upload_id = $1 \
                 ORDER BY part_number",
                &[&upload_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(MultipartPart {
                    part_number: r.col(0)?,
                    etag: r.col(1)?,
                    size_bytes: r.col(2)?,
                    created_at: ts(r.col(3)?),
                    encrypted: r.col(4)?,
                    encryption_key: r.col::<Option<Vec<u8>>>(5)?.unwrap_or_default(),
                    key_id: r.col::<Option<String>>(6)?.unwrap_or_default(),
                    plaintext_size: r.col::<Option<i64>>(7)?.unwrap_or_default(),
                    storage_key: r.col::<Option<String>>(8)?.unwrap_or_default(),
                    checksum: r.col::<Option<String>>(9)?.unwrap_or_default(),
                })
            })
            .collect::<Result<_>>()?)
    }

    async fn list_multipart_uploads(&self, prefix: &str, max: i64) -> Result<Vec<MultipartUpload>> {
        validate::prefix("prefix", prefix)?;
        let limit = limit_param(validate::page(max));
        let (pred, upper) = prefix_predicate(prefix);
        let sql = format!(
            "SELECT upload_id, object_key, content_type, created_at FROM multipart_uploads \
             WHERE {pred} ORDER BY object_key COLLATE \"C\", created_at, upload_id LIMIT ${}",
            if upper.is_some() { 3 } else { 2 }
        );
        let rows = match &upper {
            Some(u) => {
                self.db
                    .query("list multipart uploads", &sql, &[&prefix, u, &limit])
                    .await?
            }
            None => {
                self.db
                    .query("list multipart uploads", &sql, &[&prefix, &limit])
                    .await?
            }
        };
        rows.iter().map(slim_upload_from_row).collect()
    }

    async fn count_active_multipart_uploads(&self, prefix: &str) -> Result<i64> {
        validate::prefix("prefix", prefix)?;
        let (pred, upper) = prefix_predicate(prefix);
        let sql = format!("SELECT COUNT(*) FROM multipart_uploads WHERE {pred}");
        let row = match &upper {
            Some(u) => {
                self.db
                    .query_one("count multipart uploads", &sql, &[&prefix, u])
                    .await?
            }
            None => {
                self.db
                    .query_one("count multipart uploads", &sql, &[&prefix])
                    .await?
            }
        };
        Ok(row.col(0)?)
    }

    async fn get_stale_multipart_uploads(
        &self,
        older_than: Duration,
    ) -> Result<Vec<MultipartUpload>> {
        let micros = interval_micros(older_than);
        let rows = self
            .db
            .query(
                "list stale multipart uploads",
                &format!(
                    "SELECT {UPLOAD_COLS} FROM multipart_uploads \
                     WHERE created_at <= NOW() - $1::bigint * INTERVAL '1 microsecond' \
                     ORDER BY created_at, upload_id"
                ),
                &[&micros],
            )
            .await?;
        rows.iter().map(upload_from_row).collect()
    }

    async fn get_multipart_uploads_by_backend(
        &self,
        backend: &str,
    ) -> Result<Vec<MultipartUpload>> {
        validate::backend(backend)?;
        let rows = self
            .db
            .query(
                "list multipart uploads of backend",
                &format!(
                    "SELECT {UPLOAD_COLS} FROM multipart_uploads WHERE backend_name = $1 \
                     ORDER BY created_at, upload_id"
                ),
                &[&backend],
            )
            .await?;
        rows.iter().map(upload_from_row).collect()
    }
}

#[async_trait]
impl MultipartTx for PgTx {
    async fn lock_multipart_upload(&mut self, upload_id: &str) -> Result<Option<(String, String)>> {
        validate::id("upload id", upload_id)?;
        // Row-locks the upload until commit: its parts and its charge change under this lock.
        let row = self
            .query_opt(
                "lock multipart upload",
                "SELECT object_key, backend_name FROM multipart_uploads \
                 WHERE upload_id = $1 FOR UPDATE",
                &[&upload_id],
            )
            .await?;
        row.map(|r| Ok((r.col(0)?, r.col(1)?))).transpose()
    }

    async fn get_part_bytes(&mut self, upload_id: &str) -> Result<Vec<PartBytes>> {
        validate::id("upload id", upload_id)?;
        let rows = self
            .query(
                "read part bytes",
                "SELECT part_number, size_bytes, storage_key FROM multipart_parts \
                 WHERE upload_id = $1 ORDER BY part_number",
                &[&upload_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PartBytes {
                    part_number: r.col(0)?,
                    size_bytes: r.col(1)?,
                    storage_key: r.col::<Option<String>>(2)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn upsert_part(
        &mut self,
        upload_id: &str,
        part_number: i32,
        etag: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<()> {
        validate::part(upload_id, part_number, etag, size, form)?;
        let f = form.normalized();
        // Upsert: a re-uploaded part replaces every column. Unknown upload ⇒ foreign key.
        self.execute(
            "record part",
            "INSERT INTO multipart_parts (upload_id, part_number, etag, size_bytes, \
             encrypted, encryption_key, key_id, plaintext_size, created_at, storage_key, \
             checksum) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NOW(), $9, $10) \
             ON CONFLICT (upload_id, part_number) DO UPDATE SET etag = EXCLUDED.etag, \
             size_bytes = EXCLUDED.size_bytes, encrypted = EXCLUDED.encrypted, \
             encryption_key = EXCLUDED.encryption_key, key_id = EXCLUDED.key_id, \
             plaintext_size = EXCLUDED.plaintext_size, created_at = EXCLUDED.created_at, \
             storage_key = EXCLUDED.storage_key, checksum = EXCLUDED.checksum",
            &[
                &upload_id,
                &part_number,
                &etag,
                &size,
                &f.encrypted,
                &null_if_empty_bytes(&f.encryption_key),
                &null_if_empty(&f.key_id),
                &null_if_zero(f.plaintext_size),
                &null_if_empty(&f.storage_key),
                &f.attributes
                    .checksum
                    .as_ref()
                    .and_then(|c| null_if_empty(&c.value)),
            ],
        )
        .await
        .map_err(|e| {
            on_fk(e, || StoreError::MultipartUploadNotFound {
                upload_id: upload_id.to_owned(),
            })
        })?;
        Ok(())
    }

    async fn delete_multipart_upload_row(&mut self, upload_id: &str) -> Result<bool> {
        validate::id("upload id", upload_id)?;
        // Parts go with it (ON DELETE CASCADE).
        let n = self
            .execute(
                "delete multipart upload",
                "DELETE FROM multipart_uploads WHERE upload_id = $1",
                &[&upload_id],
            )
            .await?;
        Ok(n > 0)
    }
}
