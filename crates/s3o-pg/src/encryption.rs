//! Encryption administration: listing copies for rotation and encrypt-in-place.

use async_trait::async_trait;
use s3o_core::engine::EncryptionAdmin;
use s3o_core::tx::EncryptionTx;
use s3o_core::{
    Cursor, EncryptedLocation, KeyCensus, KeyHolder, Result, StoreError, UnencryptedLocation,
    WrappedKey, WrappedKeyAt, validate,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::conn::{limit_param, null_if_empty, null_if_empty_bytes, null_if_zero};
use crate::error::RowExt;
use crate::tx::PgTx;

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

/// The packed key and key id of a listed row, read from columns `n` and `n + 1`.
fn wrapped(r: &Row, n: usize, at: WrappedKeyAt) -> Result<WrappedKey> {
    Ok(WrappedKey {
        at,
        encryption_key: r.col::<Option<Vec<u8>>>(n)?.unwrap_or_default(),
        key_id: r.col::<Option<String>>(n + 1)?.unwrap_or_default(),
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

impl PgStore {
    /// One page of [`EncryptionAdmin::list_wrapped_keys`]: keyset paging in byte order
    /// (`COLLATE "C"`) on each table's primary key; `has` is false on the first page.
    async fn wrapped_page(
        &self,
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
                let rows = self
                    .db
                    .query(
                        CTX,
                        "SELECT object_key, backend_name, encryption_key, key_id \
                         FROM object_locations \
                         WHERE encrypted AND encryption_key IS NOT NULL AND (NOT $3 OR \
                           (object_key COLLATE \"C\", backend_name COLLATE \"C\") > ($1, $2)) \
                         ORDER BY object_key COLLATE \"C\", backend_name COLLATE \"C\" LIMIT $4",
                        &[&k, &b, &has, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let at = WrappedKeyAt::Current {
                            object_key: r.col(0)?,
                            backend_name: r.col(1)?,
                        };
                        wrapped(r, 2, at)
                    })
                    .collect()
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
                let rows = self
                    .db
                    .query(
                        CTX,
                        "SELECT object_key, version_id, backend_name, encryption_key, key_id \
                         FROM object_versions \
                         WHERE encrypted AND encryption_key IS NOT NULL \
                           AND backend_name IS NOT NULL AND (NOT $4 OR \
                           (object_key COLLATE \"C\", version_id COLLATE \"C\", \
                            backend_name COLLATE \"C\") > ($1, $2, $3)) \
                         ORDER BY object_key COLLATE \"C\", version_id COLLATE \"C\", \
                           backend_name COLLATE \"C\" LIMIT $5",
                        &[&k, &v, &b, &has, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let at = WrappedKeyAt::Version {
                            object_key: r.col(0)?,
                            version_id: r.col(1)?,
                            backend_name: r.col(2)?,
                        };
                        wrapped(r, 3, at)
                    })
                    .collect()
            }
            (KeyHolder::Upload, None | Some(WrappedKeyAt::Upload { .. })) => {
                let u = match after {
                    Some(WrappedKeyAt::Upload { upload_id }) => upload_id.as_str(),
                    _ => "",
                };
                let rows = self
                    .db
                    .query(
                        CTX,
                        "SELECT upload_id, encryption_key, key_id FROM multipart_uploads \
                         WHERE encryption_key IS NOT NULL \
                           AND (NOT $2 OR upload_id COLLATE \"C\" > $1) \
                         ORDER BY upload_id COLLATE \"C\" LIMIT $3",
                        &[&u, &has, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let at = WrappedKeyAt::Upload {
                            upload_id: r.col(0)?,
                        };
                        wrapped(r, 1, at)
                    })
                    .collect()
            }
            (KeyHolder::Part, None | Some(WrappedKeyAt::Part { .. })) => {
                let (u, n) = match after {
                    Some(WrappedKeyAt::Part {
                        upload_id,
                        part_number,
                    }) => (upload_id.as_str(), *part_number),
                    _ => ("", 0),
                };
                let rows = self
                    .db
                    .query(
                        CTX,
                        "SELECT upload_id, part_number, encryption_key, key_id \
                         FROM multipart_parts \
                         WHERE encrypted AND encryption_key IS NOT NULL AND (NOT $3 OR \
                           (upload_id COLLATE \"C\", part_number) > ($1, $2)) \
                         ORDER BY upload_id COLLATE \"C\", part_number LIMIT $4",
                        &[&u, &n, &has, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let at = WrappedKeyAt::Part {
                            upload_id: r.col(0)?,
                            part_number: r.col(1)?,
                        };
                        wrapped(r, 2, at)
                    })
                    .collect()
            }
            (KeyHolder::Pending, None | Some(WrappedKeyAt::Pending { .. })) => {
                let i = match after {
                    Some(WrappedKeyAt::Pending { intent_id }) => intent_id.as_str(),
                    _ => "",
                };
                let rows = self
                    .db
                    .query(
                        CTX,
                        "SELECT intent_id, encryption_key, key_id FROM pending_objects \
                         WHERE encrypted AND encryption_key IS NOT NULL \
                           AND (NOT $2 OR intent_id COLLATE \"C\" > $1) \
                         ORDER BY intent_id COLLATE \"C\" LIMIT $3",
                        &[&i, &has, &limit],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        let at = WrappedKeyAt::Pending {
                            intent_id: r.col(0)?,
                        };
                        wrapped(r, 1, at)
                    })
                    .collect()
            }
            (h, Some(_)) => Err(wrong_cursor(h)),
        }
    }
}

#[async_trait]
impl EncryptionTx for PgTx {
    /// One `UPDATE` whose `WHERE` names the row and the key the caller read; under READ
    /// COMMITTED a row changed by a concurrent transaction is re-checked against it after
    /// that transaction ends, so the compare-and-set never overwrites a newer key.
    async fn rewrap_key_row(
        &mut self,
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
            } => {
                self.execute(
                    CTX,
                    "UPDATE object_locations SET encryption_key = $1, key_id = $2 \
                     WHERE object_key = $3 AND backend_name = $4 AND encrypted \
                       AND encryption_key = $5",
                    &[&new_key, &new_key_id, object_key, backend_name, &expected],
                )
                .await?
            }
            WrappedKeyAt::Version {
                object_key,
                version_id,
                backend_name,
            } => {
                self.execute(
                    CTX,
                    "UPDATE object_versions SET encryption_key = $1, key_id = $2 \
                     WHERE object_key = $3 AND version_id = $4 AND backend_name = $5 \
                       AND encrypted AND encryption_key = $6",
                    &[
                        &new_key,
                        &new_key_id,
                        object_key,
                        version_id,
                        backend_name,
                        &expected,
                    ],
                )
                .await?
            }
            WrappedKeyAt::Upload { upload_id } => {
                self.execute(
                    CTX,
                    "UPDATE multipart_uploads SET encryption_key = $1, key_id = $2 \
                     WHERE upload_id = $3 AND encryption_key = $4",
                    &[&new_key, &new_key_id, upload_id, &expected],
                )
                .await?
            }
            WrappedKeyAt::Part {
                upload_id,
                part_number,
            } => {
                self.execute(
                    CTX,
                    "UPDATE multipart_parts SET encryption_key = $1, key_id = $2 \
                     WHERE upload_id = $3 AND part_number = $4 AND encrypted \
                       AND encryption_key = $5",
                    &[&new_key, &new_key_id, upload_id, part_number, &expected],
                )
                .await?
            }
            WrappedKeyAt::Pending { intent_id } => {
                self.execute(
                    CTX,
                    "UPDATE pending_objects SET encryption_key = $1, key_id = $2 \
                     WHERE intent_id = $3 AND encrypted AND encryption_key = $4",
                    &[&new_key, &new_key_id, intent_id, &expected],
                )
                .await?
            }
        };
        Ok(n > 0)
    }

    async fn update_version_copy_form(
        &mut self,
        key: &str,
        version_id: &str,
        backend: &str,
        size: i64,
        form: &s3o_core::StoredForm,
    ) -> Result<bool> {
        validate::copy(key, backend, size, form)?;
        // Mapped as every other write maps a stored form (plaintext: no encryption columns).
        let f = form.normalized();
        let n = self
            .execute(
                "update version copy form",
                "UPDATE object_versions SET size_bytes = $1, encrypted = $2, \
                 encryption_key = $3, key_id = $4, plaintext_size = $5, storage_key = $6 \
                 WHERE object_key = $7 AND version_id = $8 AND backend_name = $9",
                &[
                    &size,
                    &f.encrypted,
                    &null_if_empty_bytes(&f.encryption_key),
                    &null_if_empty(&f.key_id),
                    &null_if_zero(f.plaintext_size),
                    &null_if_empty(&f.storage_key),
                    &key,
                    &version_id,
                    &backend,
                ],
            )
            .await?;
        Ok(n > 0)
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

    async fn list_wrapped_keys(
        &self,
        holder: KeyHolder,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKey>> {
        if let Some(a) = after {
            validate::wrapped_key_at(a)?;
        }
        let limit = limit_param(validate::page(limit));
        self.wrapped_page(holder, limit, after).await
    }

    async fn wrapped_key_census(&self) -> Result<Vec<KeyCensus>> {
        // The tags are indexes into KeyHolder::ALL.
        let rows = self
            .db
            .query(
                "census of wrapped keys",
                "SELECT 0::int8, coalesce(key_id, ''), count(*) FROM object_locations \
                   WHERE encrypted AND encryption_key IS NOT NULL GROUP BY 2 \
                 UNION ALL SELECT 1, coalesce(key_id, ''), count(*) FROM object_versions \
                   WHERE encrypted AND encryption_key IS NOT NULL \
                     AND backend_name IS NOT NULL GROUP BY 2 \
                 UNION ALL SELECT 2, coalesce(key_id, ''), count(*) FROM multipart_uploads \
                   WHERE encryption_key IS NOT NULL GROUP BY 2 \
                 UNION ALL SELECT 3, coalesce(key_id, ''), count(*) FROM multipart_parts \
                   WHERE encrypted AND encryption_key IS NOT NULL GROUP BY 2 \
                 UNION ALL SELECT 4, coalesce(key_id, ''), count(*) FROM pending_objects \
                   WHERE encrypted AND encryption_key IS NOT NULL GROUP BY 2",
                &[],
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let tag: i64 = r.col(0)?;
                let holder = usize::try_from(tag)
                    .ok()
                    .and_then(|i| KeyHolder::ALL.get(i).copied())
                    .ok_or_else(|| StoreError::invalid("census", "unknown table tag"))?;
                Ok(KeyCensus {
                    holder,
                    key_id: r.col(1)?,
                    rows: r.col(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Table order, then key ids in byte order (a UNION cannot order by a collation).
        out.sort_by(|a, b| (a.holder, a.key_id.as_bytes()).cmp(&(b.holder, b.key_id.as_bytes())));
        Ok(out)
    }

    async fn list_plaintext_version_copies(
        &self,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKeyAt>> {
        let (k, v, b) = match after {
            None => ("", "", ""),
            Some(
                a @ WrappedKeyAt::Version {
                    object_key,
                    version_id,
                    backend_name,
                },
            ) => {
                validate::wrapped_key_at(a)?;
                (
                    object_key.as_str(),
                    version_id.as_str(),
                    backend_name.as_str(),
                )
            }
            Some(_) => return Err(wrong_cursor(KeyHolder::Version)),
        };
        let has = after.is_some();
        let limit = limit_param(validate::page(limit));
        // Delete markers (no backend) hold no bytes.
        let rows = self
            .db
            .query(
                "list plaintext version copies",
                "SELECT object_key, version_id, backend_name FROM object_versions \
                 WHERE NOT encrypted AND backend_name IS NOT NULL AND (NOT $4 OR \
                   (object_key COLLATE \"C\", version_id COLLATE \"C\", \
                    backend_name COLLATE \"C\") > ($1, $2, $3)) \
                 ORDER BY object_key COLLATE \"C\", version_id COLLATE \"C\", \
                   backend_name COLLATE \"C\" LIMIT $5",
                &[&k, &v, &b, &has, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(WrappedKeyAt::Version {
                    object_key: r.col(0)?,
                    version_id: r.col(1)?,
                    backend_name: r.col(2)?,
                })
            })
            .collect()
    }
}
