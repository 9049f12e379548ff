//! `pending_objects`: intents recorded before a backend PUT.

use async_trait::async_trait;
use rusqlite::{named_params, params};
use s3o_core::engine::PendingStore;
use s3o_core::{PendingObject, Result, StoreError, Timestamp, validate};

use crate::SqliteStore;
use crate::objects::{FormColumns, form_from_row};
use crate::stmt::Db;

/// Columns of a [`PendingObject`], in the order [`pending_from_row`] reads them.
pub(crate) const PENDING_COLUMNS: &str = "intent_id, object_key, backend_name, size_bytes, \
     encrypted, encryption_key, key_id, plaintext_size, content_hash, created_at, managed, \
     storage_key, etag, content_type, user_metadata, attributes, tags";

/// Maps a row selected with [`PENDING_COLUMNS`]; every stored-form field is persisted.
pub(crate) fn pending_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingObject> {
    Ok(PendingObject {
        intent_id: r.get(0)?,
        object_key: r.get(1)?,
        backend_name: r.get(2)?,
        size_bytes: r.get(3)?,
        form: form_from_row(r, [4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16])?,
        created_at: Timestamp::from_micros(r.get(9)?),
    })
}

/// Whether the intent still exists (the transaction's write lock keeps it so until commit).
pub(crate) fn claim(db: &Db<'_>, intent_id: &str) -> Result<Option<PendingObject>> {
    // No row lock needed: the transaction holds the file's write lock (BEGIN IMMEDIATE).
    db.query_opt(
        "claim pending",
        &format!("SELECT {PENDING_COLUMNS} FROM pending_objects WHERE intent_id = ?1"),
        params![intent_id],
        pending_from_row,
    )
}

/// Inserts an intent (`created_at` zero ⇒ now); the backend is checked in the same statement.
pub(crate) fn insert(db: &Db<'_>, p: &PendingObject) -> Result<()> {
    let created_at = if p.created_at.is_zero() {
        Timestamp::now()
    } else {
        p.created_at
    };
    let f = FormColumns::of(&p.form);
    let n = db.execute(
        "insert pending",
        "INSERT INTO pending_objects (intent_id, object_key, backend_name, size_bytes, \
                                      encrypted, encryption_key, key_id, plaintext_size, \
                                      content_hash, created_at, managed, storage_key, etag, \
                                      content_type, user_metadata, attributes, tags) \
         SELECT :intent, :key, :backend, :size, :encrypted, :encryption_key, :key_id, \
                :plaintext_size, :content_hash, :created_at, :managed, :storage_key, :etag, \
                :content_type, :user_metadata, :attributes, :tags \
         WHERE EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = :backend)",
        named_params! {
            ":intent": p.intent_id,
            ":key": p.object_key,
            ":backend": p.backend_name,
            ":size": p.size_bytes,
            ":encrypted": f.encrypted,
            ":encryption_key": f.encryption_key,
            ":key_id": f.key_id,
            ":plaintext_size": f.plaintext_size,
            ":content_hash": f.content_hash,
            ":created_at": created_at.as_micros(),
            ":managed": f.managed,
            ":storage_key": f.storage_key,
            ":etag": f.etag,
            ":content_type": f.content_type,
            ":user_metadata": f.user_metadata,
            ":attributes": f.attributes,
            ":tags": f.tags,
        },
    )?;
    if n == 0 {
        return Err(StoreError::UnknownBackend {
            backend: p.backend_name.clone(),
        });
    }
    Ok(())
}

/// Deletes an intent; missing is a no-op.
pub(crate) fn delete(db: &Db<'_>, intent_id: &str) -> Result<()> {
    db.execute(
        "delete pending",
        "DELETE FROM pending_objects WHERE intent_id = ?1",
        params![intent_id],
    )?;
    Ok(())
}

/// Deletes every intent of a backend; returns how many.
pub(crate) fn delete_by_backend(db: &Db<'_>, backend: &str) -> Result<i64> {
    let n = db.execute(
        "delete pending by backend",
        "DELETE FROM pending_objects WHERE backend_name = ?1",
        params![backend],
    )?;
    Ok(n as i64)
}

/// How many intents name `key` (no index on the key: the table holds writes in flight only).
pub(crate) fn count_for_key(db: &Db<'_>, key: &str) -> Result<i64> {
    db.query_one(
        "count pending for key",
        "SELECT COUNT(*) FROM pending_objects WHERE object_key = ?1",
        params![key],
        |r| r.get::<_, i64>(0),
    )
}

#[async_trait]
impl PendingStore for SqliteStore {
    async fn insert_pending(&self, p: &PendingObject) -> Result<()> {
        validate::pending(p)?;
        let p = p.clone();
        self.conns
            .write("insert pending", move |db| insert(db, &p))
            .await
    }

    async fn delete_pending(&self, intent_id: &str) -> Result<()> {
        validate::id("intent id", intent_id)?;
        let id = intent_id.to_owned();
        self.conns
            .write("delete pending", move |db| delete(db, &id))
            .await
    }

    async fn touch_pending(&self, intent_ids: &[String]) -> Result<i64> {
        validate::intent_ids(intent_ids)?;
        if intent_ids.is_empty() {
            return Ok(0);
        }
        let list = crate::objects::json_list(intent_ids);
        self.conns
            .write("touch pending", move |db| {
                let n = db.execute(
                    "touch pending",
                    "UPDATE pending_objects SET created_at = ?2 \
                     WHERE intent_id IN (SELECT value FROM json_each(?1))",
                    params![list, Timestamp::now().as_micros()],
                )?;
                Ok(n as i64)
            })
            .await
    }

    async fn set_pending_backend_upload(&self, intent_id: &str, upload_id: &str) -> Result<bool> {
        validate::id("intent id", intent_id)?;
        validate::backend_upload_id(upload_id)?;
        let (id, up) = (intent_id.to_owned(), upload_id.to_owned());
        self.conns
            .write("set pending backend upload", move |db| {
                let n = db.execute(
                    "set pending backend upload",
                    "UPDATE pending_objects SET backend_upload_id = ?2 WHERE intent_id = ?1",
                    params![id, up],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn get_pending_backend_upload(&self, intent_id: &str) -> Result<Option<String>> {
        validate::id("intent id", intent_id)?;
        let id = intent_id.to_owned();
        self.conns
            .read("get pending backend upload", move |db| {
                let rows = db.query_vec(
                    "get pending backend upload",
                    "SELECT backend_upload_id FROM pending_objects WHERE intent_id = ?1",
                    params![id],
                    |r| r.get::<_, Option<String>>(0),
                )?;
                Ok(rows.into_iter().next().flatten())
            })
            .await
    }

    async fn delete_pending_by_backend(&self, backend: &str) -> Result<i64> {
        validate::backend(backend)?;
        let backend = backend.to_owned();
        self.conns
            .write("delete pending by backend", move |db| {
                delete_by_backend(db, &backend)
            })
            .await
    }
}
