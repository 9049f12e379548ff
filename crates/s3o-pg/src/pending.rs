//! `pending_objects`: in-flight PUT intents.

use async_trait::async_trait;
use s3o_core::engine::PendingStore;
use s3o_core::tx::PendingTx;
use s3o_core::{PendingObject, Result, validate};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::{null_if_empty, null_if_empty_bytes, null_if_zero, opt_ts, ts};
use crate::error::RowExt;
use crate::error::unknown_backend;
use crate::objects::form_from_row;
use crate::tx::PgTx;

/// Every intent column, in the order [`pending_from_row`] reads them.
macro_rules! pending_cols {
    () => {
        "intent_id, object_key, backend_name, size_bytes, encrypted, encryption_key, key_id, \
         plaintext_size, content_hash, created_at, managed, storage_key, etag, content_type, \
         user_metadata, attributes, tags"
    };
}
pub(crate) use pending_cols;

/// Maps a row selected with `pending_cols!()`; every stored-form field is persisted.
pub(crate) fn pending_from_row(r: &Row) -> Result<PendingObject> {
    Ok(PendingObject {
        intent_id: r.col(0)?,
        object_key: r.col(1)?,
        backend_name: r.col(2)?,
        size_bytes: r.col(3)?,
        form: form_from_row(r, [4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16])?,
        created_at: ts(r.col(9)?),
    })
}

/// Inserts an intent (`created_at` zero ⇒ now); encryption columns only when encrypted,
/// empty values as NULL. Unknown backend ⇒ `UnknownBackend` (foreign key); a duplicate
/// intent id ⇒ `Database { kind: UniqueViolation }`.
const INSERT_PENDING: &str = "INSERT INTO pending_objects (intent_id, object_key, backend_name, \
     size_bytes, encrypted, encryption_key, key_id, plaintext_size, content_hash, created_at, \
     managed, storage_key, etag, content_type, user_metadata, attributes, tags) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10, NOW()), $11, $12, $13, $14, $15, \
     $16, $17)";

macro_rules! pending_params {
    ($p:expr, $f:expr, $created:expr, $metadata:expr) => {
        [
            &$p.intent_id as &(dyn tokio_postgres::types::ToSql + Sync),
            &$p.object_key,
            &$p.backend_name,
            &$p.size_bytes,
            &$f.encrypted,
            &null_if_empty_bytes(&$f.encryption_key),
            &null_if_empty(&$f.key_id),
            &null_if_zero($f.plaintext_size),
            &null_if_empty(&$f.content_hash),
            &$created,
            &$f.managed,
            &null_if_empty(&$f.storage_key),
            &null_if_empty(&$f.etag),
            &null_if_empty(&$f.content_type),
            &$metadata,
            &$f.attributes.to_json(),
            &$f.tags_json(),
        ]
    };
}

#[async_trait]
impl PendingTx for PgTx {
    async fn claim_pending(&mut self, intent_id: &str) -> Result<Option<PendingObject>> {
        validate::id("intent id", intent_id)?;
        // Row-locks the intent until commit; gone ⇒ another reaper resolved it.
        let row = self
            .query_opt(
                "claim pending intent",
                concat!(
                    "SELECT ",
                    pending_cols!(),
                    " FROM pending_objects WHERE intent_id = $1 FOR UPDATE"
                ),
                &[&intent_id],
            )
            .await?;
        row.as_ref().map(pending_from_row).transpose()
    }

    async fn insert_pending(&mut self, p: &PendingObject) -> Result<()> {
        validate::pending(p)?;
        let f = p.form.normalized();
        let created = opt_ts(p.created_at);
        let metadata = f.user_metadata_json();
        self.execute(
            "insert pending intent",
            INSERT_PENDING,
            &pending_params!(p, f, created, metadata),
        )
        .await
        .map_err(unknown_backend(&p.backend_name))?;
        Ok(())
    }

    async fn delete_pending(&mut self, intent_id: &str) -> Result<()> {
        validate::id("intent id", intent_id)?;
        self.execute(
            "delete pending intent",
            "DELETE FROM pending_objects WHERE intent_id = $1",
            &[&intent_id],
        )
        .await?;
        Ok(())
    }

    async fn delete_pending_by_backend(&mut self, backend: &str) -> Result<()> {
        validate::backend(backend)?;
        self.execute(
            "delete pending intents of backend",
            "DELETE FROM pending_objects WHERE backend_name = $1",
            &[&backend],
        )
        .await?;
        Ok(())
    }

    async fn count_pending_for_key(&mut self, key: &str) -> Result<i64> {
        validate::key(key)?;
        // No index on the key: the table holds writes in flight only.
        let row = self
            .query_one(
                "count pending for key",
                "SELECT COUNT(*) FROM pending_objects WHERE object_key = $1",
                &[&key],
            )
            .await?;
        row.col(0)
    }
}

#[async_trait]
impl PendingStore for PgStore {
    async fn insert_pending(&self, p: &PendingObject) -> Result<()> {
        validate::pending(p)?;
        let f = p.form.normalized();
        let created = opt_ts(p.created_at);
        let metadata = f.user_metadata_json();
        self.db
            .execute(
                "insert pending intent",
                INSERT_PENDING,
                &pending_params!(p, f, created, metadata),
            )
            .await
            .map_err(unknown_backend(&p.backend_name))?;
        Ok(())
    }

    async fn delete_pending(&self, intent_id: &str) -> Result<()> {
        validate::id("intent id", intent_id)?;
        self.db
            .execute(
                "delete pending intent",
                "DELETE FROM pending_objects WHERE intent_id = $1",
                &[&intent_id],
            )
            .await?;
        Ok(())
    }

    async fn touch_pending(&self, intent_ids: &[String]) -> Result<i64> {
        validate::intent_ids(intent_ids)?;
        if intent_ids.is_empty() {
            return Ok(0);
        }
        let n = self
            .db
            .execute(
                "touch pending intents",
                "UPDATE pending_objects SET created_at = NOW() WHERE intent_id = ANY($1)",
                &[&intent_ids],
            )
            .await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    async fn set_pending_backend_upload(&self, intent_id: &str, upload_id: &str) -> Result<bool> {
        validate::id("intent id", intent_id)?;
        validate::backend_upload_id(upload_id)?;
        let n = self
            .db
            .execute(
                "set pending backend upload",
                "UPDATE pending_objects SET backend_upload_id = $2 WHERE intent_id = $1",
                &[&intent_id, &upload_id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn get_pending_backend_upload(&self, intent_id: &str) -> Result<Option<String>> {
        validate::id("intent id", intent_id)?;
        let rows = self
            .db
            .query(
                "get pending backend upload",
                "SELECT backend_upload_id FROM pending_objects WHERE intent_id = $1",
                &[&intent_id],
            )
            .await?;
        match rows.first() {
            Some(r) => r.col::<Option<String>>(0),
            None => Ok(None),
        }
    }

    async fn delete_pending_by_backend(&self, backend: &str) -> Result<i64> {
        validate::backend(backend)?;
        let n = self
            .db
            .execute(
                "delete pending intents of backend",
                "DELETE FROM pending_objects WHERE backend_name = $1",
                &[&backend],
            )
            .await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
