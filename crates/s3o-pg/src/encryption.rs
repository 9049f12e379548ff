//! Encryption administration: listing copies for rotation and encrypt-in-place.

use async_trait::async_trait;
use s3o_core::engine::EncryptionAdmin;
use s3o_core::{Cursor, EncryptedLocation, Result, UnencryptedLocation, validate};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::{limit_param, null_if_empty};
use crate::error::RowExt;

fn encrypted_from_row(r: &Row) -> Result<EncryptedLocation> {
    Ok(EncryptedLocation {
        object_key: r.col(0)?,
        backend_name: r.col(1)?,
        encryption_key: r.col::<Option<Vec<u8>>>(2)?.unwrap_or_default(),
        key_id: r.col::<Option<String>>(3)?.unwrap_or_default(),
    })
}

fn validate_cursor(after: Option<&Cursor>) -> Result<(String, String)> {
    match after {
        Some(c) => {
            validate::prefix("cursor key", &c.object_key)?;
            validate::text("cursor backend", &c.backend_name)?;
            Ok((c.object_key.clone(), c.backend_name.clone()))
        }
        None => Ok((String::new(), String::new())),
    }
}

#[async_trait]
impl EncryptionAdmin for PgStore {
    async fn list_encrypted_locations(
        &self,
        key_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<EncryptedLocation>> {
        validate::id("key id", key_id)?;
        let limit = limit_param(validate::page(limit));
        let rows = self
            .db
            .query(
                "list encrypted copies by key id",
                "SELECT object_key, backend_name, encryption_key, key_id FROM object_locations \
                 WHERE encrypted AND key_id = $1 \
                 ORDER BY object_key COLLATE \"C\", backend_name COLLATE \"C\" \
                 LIMIT $2 OFFSET $3",
                &[&key_id, &limit, &offset.max(0)],
            )
            .await?;
        rows.iter().map(encrypted_from_row).collect()
    }

    async fn list_all_encrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<EncryptedLocation>> {
        let (k, b) = validate_cursor(after)?;
        let limit = limit_param(validate::page(limit));
        // Keyset paging in byte order over (key, backend); ("", "") precedes every row.
        let rows = self
            .db
            .query(
                "list encrypted copies",
                "SELECT object_key, backend_name, encryption_key, key_id FROM object_locations \
                 WHERE encrypted AND (object_key COLLATE \"C\", backend_name COLLATE \"C\") > ($1, $2) \
                 ORDER BY object_key COLLATE \"C\", backend_name COLLATE \"C\" LIMIT $3",
                &[&k, &b, &limit],
            )
            .await?;
        rows.iter().map(encrypted_from_row).collect()
    }

    async fn list_unencrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<UnencryptedLocation>> {
        let (k, b) = validate_cursor(after)?;
        let limit = limit_param(validate::page(limit));
        let rows = self
            .db
            .query(
                "list plaintext copies",
                "SELECT object_key, backend_name, size_bytes FROM object_locations \
                 WHERE NOT encrypted AND (object_key COLLATE \"C\", backend_name COLLATE \"C\") > ($1, $2) \
                 ORDER BY object_key COLLATE \"C\", backend_name COLLATE \"C\" LIMIT $3",
                &[&k, &b, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(UnencryptedLocation {
                    object_key: r.col(0)?,
                    backend_name: r.col(1)?,
                    size_bytes: r.col(2)?,
                })
            })
            .collect::<Result<_>>()?)
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
        let new_key = (!new_key.is_empty()).then_some(new_key);
        // Only encrypted copies carry a key: rotating a plaintext copy changes nothing and
        // answers false (a DEK on a plaintext row would break the stored-form invariant).
        let n = self
            .db
            .execute(
                "rotate encryption key",
                "UPDATE object_locations SET encryption_key = $3, key_id = $4 \
                 WHERE object_key = $1 AND backend_name = $2 AND encrypted",
                &[&key, &backend, &new_key, &null_if_empty(new_key_id)],
            )
            .await?;
        Ok(n > 0)
    }
}
