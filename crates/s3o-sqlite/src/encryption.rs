//! Encryption administration: listings for rotation and encrypt/decrypt-in-place passes.

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::engine::EncryptionAdmin;
use s3o_core::{
    Cursor, EncryptedLocation, KeyCensus, KeyHolder, Result, StoreError, UnencryptedLocation,
    WrappedKey, WrappedKeyAt, validate,
};

use crate::SqliteStore;
use crate::reader::page_limit;
use crate::stmt::Db;

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

/// The packed key and key id of a listed row, read from columns `n` and `n + 1`.
fn wrapped(r: &rusqlite::Row<'_>, n: usize, at: WrappedKeyAt) -> rusqlite::Result<WrappedKey> {
    Ok(WrappedKey {
        at,
        encryption_key: r.get::<_, Option<Vec<u8>>>(n)?.unwrap_or_default(),
        key_id: r.get::<_, Option<String>>(n + 1)?.unwrap_or_default(),
    })
}

fn wrong_cursor(holder: KeyHolder) -> StoreError {
    StoreError::invalid(
        "cursor",
        format!(
            "must name a row of {} like the page it continues",
            holder.table()
        ),
    )
}

/// One page of [`EncryptionAdmin::list_wrapped_keys`]: keyset paging in byte order (SQLite's
/// BINARY collation) on each table's primary key; `has` is false on the first page.
fn wrapped_page(
    db: &Db<'_>,
    holder: KeyHolder,
    limit: i64,
    after: Option<&WrappedKeyAt>,
) -> Result<Vec<WrappedKey>> {
    const CTX: &str = "list wrapped keys";
    let has = after.is_some();
    match (holder, after) {
        (KeyHolder::Current, None | Some(WrappedKeyAt::Current { .. })) => {
            let (k, b) = match after {
                Some(WrappedKeyAt::Current {
                    object_key,
                    backend_name,
                }) => (object_key.as_str(), backend_name.as_str()),
                _ => ("", ""),
            };
            db.query_vec(
                CTX,
                "SELECT object_key, backend_name, encryption_key, key_id FROM object_locations \
                 WHERE encrypted = 1 AND encryption_key IS NOT NULL \
                   AND (NOT ?3 OR (object_key, backend_name) > (?1, ?2)) \
                 ORDER BY object_key, backend_name LIMIT ?4",
                params![k, b, has, limit],
                |r| {
                    let at = WrappedKeyAt::Current {
                        object_key: r.get(0)?,
                        backend_name: r.get(1)?,
                    };
                    wrapped(r, 2, at)
                },
            )
        }
        (KeyHolder::Version, None | Some(WrappedKeyAt::Version { .. })) => {
            let (k, v, b) = match after {
                Some(WrappedKeyAt::Version {
                    object_key,
                    version_id,
                    backend_name,
                }) => (
                    object_key.as_str(),
                    version_id.as_str(),
                    backend_name.as_str(),
                ),
                _ => ("", "", ""),
            };
            // Delete markers (no backend) hold no key.
            db.query_vec(
                CTX,
                "SELECT object_key, version_id, backend_name, encryption_key, key_id \
                 FROM object_versions \
                 WHERE encrypted = 1 AND encryption_key IS NOT NULL AND backend_name IS NOT NULL \
                   AND (NOT ?4 OR (object_key, version_id, backend_name) > (?1, ?2, ?3)) \
                 ORDER BY object_key, version_id, backend_name LIMIT ?5",
                params![k, v, b, has, limit],
                |r| {
                    let at = WrappedKeyAt::Version {
                        object_key: r.get(0)?,
                        version_id: r.get(1)?,
                        backend_name: r.get(2)?,
                    };
                    wrapped(r, 3, at)
                },
            )
        }
        (KeyHolder::Upload, None | Some(WrappedKeyAt::Upload { .. })) => {
            let u = match after {
                Some(WrappedKeyAt::Upload { upload_id }) => upload_id.as_str(),
                _ => "",
            };
            db.query_vec(
                CTX,
                "SELECT upload_id, encryption_key, key_id FROM multipart_uploads \
                 WHERE encryption_key IS NOT NULL AND (NOT ?2 OR upload_id > ?1) \
                 ORDER BY upload_id LIMIT ?3",
                params![u, has, limit],
                |r| {
                    let at = WrappedKeyAt::Upload {
                        upload_id: r.get(0)?,
                    };
                    wrapped(r, 1, at)
                },
            )
        }
        (KeyHolder::Part, None | Some(WrappedKeyAt::Part { .. })) => {
            let (u, n) = match after {
                Some(WrappedKeyAt::Part {
                    upload_id,
                    part_number,
                }) => (upload_id.as_str(), *part_number),
                _ => ("", 0),
            };
            db.query_vec(
                CTX,
                "SELECT upload_id, part_number, encryption_key, key_id FROM multipart_parts \
                 WHERE encrypted = 1 AND encryption_key IS NOT NULL \
                   AND (NOT ?3 OR (upload_id, part_number) > (?1, ?2)) \
                 ORDER BY upload_id, part_number LIMIT ?4",
                params![u, n, has, limit],
                |r| {
                    let at = WrappedKeyAt::Part {
                        upload_id: r.get(0)?,
                        part_number: r.get(1)?,
                    };
                    wrapped(r, 2, at)
                },
            )
        }
        (KeyHolder::Pending, None | Some(WrappedKeyAt::Pending { .. })) => {
            let i = match after {
                Some(WrappedKeyAt::Pending { intent_id }) => intent_id.as_str(),
                _ => "",
            };
            db.query_vec(
                CTX,
                "SELECT intent_id, encryption_key, key_id FROM pending_objects \
                 WHERE encrypted = 1 AND encryption_key IS NOT NULL \
                   AND (NOT ?2 OR intent_id > ?1) \
                 ORDER BY intent_id LIMIT ?3",
                params![i, has, limit],
                |r| {
                    let at = WrappedKeyAt::Pending {
                        intent_id: r.get(0)?,
                    };
                    wrapped(r, 1, at)
                },
            )
        }
        (h, Some(_)) => Err(wrong_cursor(h)),
    }
}

/// The compare-and-set of [`s3o_core::tx::EncryptionTx::rewrap_key_row`]: one `UPDATE` whose
/// `WHERE` names the row and the key the caller read.
pub(crate) fn rewrap_row(
    db: &Db<'_>,
    at: &WrappedKeyAt,
    expected: &[u8],
    new_key: &[u8],
    new_key_id: &str,
) -> Result<bool> {
    const CTX: &str = "rewrap data key";
    let n = match at {
        WrappedKeyAt::Current {
            object_key,
            backend_name,
        } => db.execute(
            CTX,
            "UPDATE object_locations SET encryption_key = ?1, key_id = ?2 \
             WHERE object_key = ?3 AND backend_name = ?4 AND encrypted = 1 \
               AND encryption_key = ?5",
            params![new_key, new_key_id, object_key, backend_name, expected],
        )?,
        WrappedKeyAt::Version {
            object_key,
            version_id,
            backend_name,
        } => db.execute(
            CTX,
            "UPDATE object_versions SET encryption_key = ?1, key_id = ?2 \
             WHERE object_key = ?3 AND version_id = ?4 AND backend_name = ?5 \
               AND encrypted = 1 AND encryption_key = ?6",
            params![
                new_key,
                new_key_id,
                object_key,
                version_id,
                backend_name,
                expected
            ],
        )?,
        WrappedKeyAt::Upload { upload_id } => db.execute(
            CTX,
            "UPDATE multipart_uploads SET encryption_key = ?1, key_id = ?2 \
             WHERE upload_id = ?3 AND encryption_key = ?4",
            params![new_key, new_key_id, upload_id, expected],
        )?,
        WrappedKeyAt::Part {
            upload_id,
            part_number,
        } => db.execute(
            CTX,
            "UPDATE multipart_parts SET encryption_key = ?1, key_id = ?2 \
             WHERE upload_id = ?3 AND part_number = ?4 AND encrypted = 1 \
               AND encryption_key = ?5",
            params![new_key, new_key_id, upload_id, part_number, expected],
        )?,
        WrappedKeyAt::Pending { intent_id } => db.execute(
            CTX,
            "UPDATE pending_objects SET encryption_key = ?1, key_id = ?2 \
             WHERE intent_id = ?3 AND encrypted = 1 AND encryption_key = ?4",
            params![new_key, new_key_id, intent_id, expected],
        )?,
    };
    Ok(n > 0)
}

/// The envelope swap of [`s3o_core::tx::EncryptionTx::update_version_copy_form`]: size,
/// encryption columns and path, mapped as every other write maps them.
pub(crate) fn update_version_copy(
    db: &Db<'_>,
    key: &str,
    version_id: &str,
    backend: &str,
    size: i64,
    form: &s3o_core::StoredForm,
) -> Result<bool> {
    let f = crate::objects::FormColumns::of(form);
    let n = db.execute(
        "update version copy form",
        "UPDATE object_versions SET size_bytes = ?1, encrypted = ?2, encryption_key = ?3, \
                key_id = ?4, plaintext_size = ?5, storage_key = ?6 \
         WHERE object_key = ?7 AND version_id = ?8 AND backend_name = ?9",
        params![
            size,
            f.encrypted,
            f.encryption_key,
            f.key_id,
            f.plaintext_size,
            f.storage_key,
            key,
            version_id,
            backend
        ],
    )?;
    Ok(n > 0)
}

fn holder_of(tag: i64) -> rusqlite::Result<KeyHolder> {
    usize::try_from(tag)
        .ok()
        .and_then(|i| KeyHolder::ALL.get(i).copied())
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(0, tag))
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

    async fn list_wrapped_keys(
        &self,
        holder: KeyHolder,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKey>> {
        if let Some(a) = after {
            validate::wrapped_key_at(a)?;
        }
        let limit = page_limit(limit);
        let after = after.cloned();
        self.conns
            .read("list wrapped keys", move |db| {
                wrapped_page(db, holder, limit, after.as_ref())
            })
            .await
    }

    async fn wrapped_key_census(&self) -> Result<Vec<KeyCensus>> {
        // The tags are indexes into KeyHolder::ALL.
        self.conns
            .read("census of wrapped keys", move |db| {
                db.query_vec(
                    "census of wrapped keys",
                    "SELECT 0, coalesce(key_id, ''), count(*) FROM object_locations \
                       WHERE encrypted = 1 AND encryption_key IS NOT NULL GROUP BY 2 \
                     UNION ALL SELECT 1, coalesce(key_id, ''), count(*) FROM object_versions \
                       WHERE encrypted = 1 AND encryption_key IS NOT NULL \
                         AND backend_name IS NOT NULL GROUP BY 2 \
                     UNION ALL SELECT 2, coalesce(key_id, ''), count(*) FROM multipart_uploads \
                       WHERE encryption_key IS NOT NULL GROUP BY 2 \
                     UNION ALL SELECT 3, coalesce(key_id, ''), count(*) FROM multipart_parts \
                       WHERE encrypted = 1 AND encryption_key IS NOT NULL GROUP BY 2 \
                     UNION ALL SELECT 4, coalesce(key_id, ''), count(*) FROM pending_objects \
                       WHERE encrypted = 1 AND encryption_key IS NOT NULL GROUP BY 2 \
                     ORDER BY 1, 2",
                    [],
                    |r| {
                        Ok(KeyCensus {
                            holder: holder_of(r.get(0)?)?,
                            key_id: r.get(1)?,
                            rows: r.get(2)?,
                        })
                    },
                )
            })
            .await
    }

    async fn list_plaintext_version_copies(
        &self,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKeyAt>> {
        let (k, v, b) = match after {
            None => (String::new(), String::new(), String::new()),
            Some(
                a @ WrappedKeyAt::Version {
                    object_key,
                    version_id,
                    backend_name,
                },
            ) => {
                validate::wrapped_key_at(a)?;
                (object_key.clone(), version_id.clone(), backend_name.clone())
            }
            Some(_) => return Err(wrong_cursor(KeyHolder::Version)),
        };
        let has = after.is_some();
        let limit = page_limit(limit);
        self.conns
            .read("list plaintext version copies", move |db| {
                // Delete markers (no backend) hold no bytes.
                db.query_vec(
                    "list plaintext version copies",
                    "SELECT object_key, version_id, backend_name FROM object_versions \
                     WHERE encrypted = 0 AND backend_name IS NOT NULL \
                       AND (NOT ?4 OR (object_key, version_id, backend_name) > (?1, ?2, ?3)) \
                     ORDER BY object_key, version_id, backend_name LIMIT ?5",
                    params![k, v, b, has, limit],
                    |r| {
                        Ok(WrappedKeyAt::Version {
                            object_key: r.get(0)?,
                            version_id: r.get(1)?,
                            backend_name: r.get(2)?,
                        })
                    },
                )
            })
            .await
    }
}
