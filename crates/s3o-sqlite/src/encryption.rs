//! Encryption administration: listings for rotation and encrypt/decrypt-in-place passes.

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::engine::EncryptionAdmin;
use s3o_core::{Cursor, EncryptedLocation, Result, UnencryptedLocation, validate};

use crate::SqliteStore;
use crate::reader::page_limit;

fn encrypted_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EncryptedLocation> {
    Ok(EncryptedLocation {
        object_key: r.get(0)?,
        backend_name: r.get(1)?,
        encryption_key: r.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default(),
        key_id: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
    })
}

/// The keyset cursor as `(key, backend)`, validated like the PostgreSQL engine's; `None`
/// starts before every row (`''` sorts first).
fn cursor_of(after: Option<&Cursor>) -> Result<(String, String, bool)> {
    match after {
        Some(c) => {
            validate::prefix("cursor key", &c.object_key)?;
            validate::text("cursor backend", &c.backend_name)?;
            Ok((c.object_key.clone(), c.backend_name.clone(), true))
        }
        None => Ok((String::new(), String::new(), false)),
    }
}

#[async_trait]
impl EncryptionAdmin for SqliteStore {
    async fn list_encrypted_locations(
        &self,
        key_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<EncryptedLocation>> {
        validate::id("key id", key_id)?;
        let limit = page_limit(limit);
        let (key_id, offset) = (key_id.to_owned(), offset.max(0));
        self.conns
            .read("list encrypted locations", move |db| {
                db.query_vec(
                    "list encrypted locations",
                    "SELECT object_key, backend_name, encryption_key, key_id \
                     FROM object_locations WHERE encrypted = 1 AND key_id = ?1 \
                     ORDER BY object_key, backend_name LIMIT ?2 OFFSET ?3",
                    params![key_id, limit, offset],
                    encrypted_from_row,
                )
            })
            .await
    }

    async fn list_all_encrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<EncryptedLocation>> {
        let limit = page_limit(limit);
        let (key, backend, has) = cursor_of(after)?;
        self.conns
            .read("list all encrypted locations", move |db| {
                // Keyset paging in byte order on the primary key (object_key, backend_name).
                db.query_vec(
                    "list all encrypted locations",
                    "SELECT object_key, backend_name, encryption_key, key_id \
                     FROM object_locations \
                     WHERE encrypted = 1 AND (NOT ?3 OR (object_key, backend_name) > (?1, ?2)) \
                     ORDER BY object_key, backend_name LIMIT ?4",
                    params![key, backend, has, limit],
                    encrypted_from_row,
                )
            })
            .await
    }

    async fn list_unencrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<UnencryptedLocation>> {
        let limit = page_limit(limit);
        let (key, backend, has) = cursor_of(after)?;
        self.conns
            .read("list unencrypted locations", move |db| {
                db.query_vec(
                    "list unencrypted locations",
                    "SELECT object_key, backend_name, size_bytes FROM object_locations \
                     WHERE encrypted = 0 AND (NOT ?3 OR (object_key, backend_name) > (?1, ?2)) \
                     ORDER BY object_key, backend_name LIMIT ?4",
                    params![key, backend, has, limit],
                    |r| {
                        Ok(UnencryptedLocation {
                            object_key: r.get(0)?,
                            backend_name: r.get(1)?,
                            size_bytes: r.get(2)?,
                        })
                    },
                )
            })
            .await
    }

    async fn update_encryption_key(
        &self,
        key: &str,
        backend: &str,
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool> {
        validate::key(key)?;
        validate::backend(backend)?;
        validate::id("key id", new_key_id)?;
        let (key, backend, new_key, new_key_id) = (
            key.to_owned(),
            backend.to_owned(),
            new_key.to_vec(),
            new_key_id.to_owned(),
        );
        self.conns
            .write("update encryption key", move |db| {
                let n = db.execute(
                    "update encryption key",
                    "UPDATE object_locations SET encryption_key = ?3, key_id = ?4 \
                     WHERE object_key = ?1 AND backend_name = ?2 AND encrypted = 1",
                    params![
                        key,
                        backend,
                        (!new_key.is_empty()).then_some(&new_key),
                        crate::objects::null_if_empty(&new_key_id)
                    ],
                )?;
                Ok(n > 0)
            })
            .await
    }
}
