use async_trait::async_trait;

use crate::error::Result;
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{ConvertedCopy, StoredForm, WrappedKeyAt};
use crate::validate;

struct Rewrite<'a> {
    key: &'a str,
    backend: &'a str,
    size: i64,
    form: Option<&'a StoredForm>,
}

#[async_trait]
impl TxBody for Rewrite<'_> {
    type Output = bool;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<bool> {
        tx.acquire_key_lock(self.key).await?;
        let Some(current) = tx.lock_object_on_backend(self.key, self.backend).await? else {
            return Ok(false);
        };
        let form = match self.form {
            // Only the envelope changes: path, hash, S3 attributes and managed flag stay.
            Some(f) => StoredForm {
                encrypted: f.encrypted,
                encryption_key: f.encryption_key.clone(),
                key_id: f.key_id.clone(),
                plaintext_size: f.plaintext_size,
                ..current.form
            },
            // Decrypt: drop every encryption column, keep the rest.
            None => StoredForm {
                encrypted: false,
                encryption_key: Vec::new(),
                key_id: String::new(),
                plaintext_size: 0,
                ..current.form
            },
        };
        tx.update_object_form(self.key, self.backend, self.size, &form)
            .await?;
        let delta = self.size - current.size_bytes;
        if delta != 0 {
            tx.adjust_backend_quota_unguarded(self.backend, delta)
                .await?;
        }
        Ok(true)
    }
}

/// Marks the copy of `key` on `backend` as encrypted in place with `ciphertext_size` bytes.
/// `bytes_used` moves by `ciphertext_size −` the locked current size, without the limit guard
/// (the bytes are already on the backend), and no quota SQL runs when that is zero. `false`
/// when the copy is gone.
#[tracing::instrument(name = "mark_object_encrypted", level = "debug", skip_all, fields(key = %key, backend = %backend))]
pub async fn mark_object_encrypted<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    encryption_key: &[u8],
    key_id: &str,
    plaintext_size: i64,
    ciphertext_size: i64,
) -> Result<bool> {
    validate::key(key)?;
    validate::backend(backend)?;
    validate::size("ciphertext size", ciphertext_size)?;
    let form = StoredForm {
        encrypted: true,
        encryption_key: encryption_key.to_vec(),
        key_id: key_id.to_owned(),
        plaintext_size,
        ..StoredForm::default()
    };
    validate::stored_form(&form)?;
    with_tx_val(
        runner,
        &Rewrite {
            key,
            backend,
            size: ciphertext_size,
            form: Some(&form),
        },
    )
    .await
}

/// Marks the copy of `key` on `backend` as plaintext of `plaintext_size` bytes, clearing every
/// encryption column; `bytes_used` moves by the difference to the locked current size. `false`
/// when the copy is gone.
#[tracing::instrument(name = "mark_object_decrypted", level = "debug", skip_all, fields(key = %key, backend = %backend))]
pub async fn mark_object_decrypted<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    plaintext_size: i64,
) -> Result<bool> {
    validate::key(key)?;
    validate::backend(backend)?;
    validate::size("plaintext size", plaintext_size)?;
    with_tx_val(
        runner,
        &Rewrite {
            key,
            backend,
            size: plaintext_size,
            form: None,
        },
    )
    .await
}

struct Rewrap<'a> {
    key: &'a str,
    backend: &'a str,
    expected: &'a [u8],
    new_key: &'a [u8],
    new_key_id: &'a str,
}

#[async_trait]
impl TxBody for Rewrap<'_> {
    type Output = bool;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<bool> {
        tx.acquire_key_lock(self.key).await?;
        let Some(current) = tx.lock_object_on_backend(self.key, self.backend).await? else {
            return Ok(false);
        };
        // Another version (an overwrite since the caller read the key) keeps its own key.
        if !current.form.encrypted || current.form.encryption_key != self.expected {
            return Ok(false);
        }
        let form = StoredForm {
            encryption_key: self.new_key.to_vec(),
            key_id: self.new_key_id.to_owned(),
            ..current.form
        };
        tx.update_object_form(self.key, self.backend, current.size_bytes, &form)
            .await?;
        Ok(true)
    }
}

/// Replaces the wrapped data key of the copy of `key` on `backend` (rotation: metadata only),
/// only while that copy still holds `expected_key`, checked under the key lock: a version
/// written since the caller read the key keeps its own. Size, path, hash and every other
/// column stay. `false` (nothing changed) when the copy is gone, plaintext, or holds another
/// key. `new_key` must be non-empty.
#[tracing::instrument(name = "rewrap_encryption_key", level = "debug", skip_all, fields(key = %key, backend = %backend))]
pub async fn rewrap_encryption_key<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    expected_key: &[u8],
    new_key: &[u8],
    new_key_id: &str,
) -> Result<bool> {
    validate::key(key)?;
    validate::backend(backend)?;
    if new_key.is_empty() || expected_key.is_empty() {
        return Err(crate::error::StoreError::invalid(
            "encryption key",
            "a rewrapped key and the key it replaces must be non-empty",
        ));
    }
    let form = StoredForm {
        encrypted: true,
        encryption_key: new_key.to_vec(),
        key_id: new_key_id.to_owned(),
        ..StoredForm::default()
    };
    validate::stored_form(&form)?;
    with_tx_val(
        runner,
        &Rewrap {
            key,
            backend,
            expected: expected_key,
            new_key,
            new_key_id,
        },
    )
    .await
}

struct RewrapRow<'a> {
    at: &'a WrappedKeyAt,
    expected: &'a [u8],
    new_key: &'a [u8],
    new_key_id: &'a str,
}

#[async_trait]
impl TxBody for RewrapRow<'_> {
    type Output = bool;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<bool> {
        // Take the lock every writer of the row takes, so the compare-and-set never lands
        // between the statements of an operation that copies the row elsewhere (archiving a
        // current version, restoring a noncurrent one, completing an upload): the row is
        // either still where it was, and re-wrapped, or gone, and left to the next run.
        match self.at {
            WrappedKeyAt::Current { object_key, .. } | WrappedKeyAt::Version { object_key, .. } => {
                tx.acquire_key_lock(object_key).await?;
            }
            WrappedKeyAt::Upload { upload_id } | WrappedKeyAt::Part { upload_id, .. } => {
                if tx.lock_multipart_upload(upload_id).await?.is_none() {
                    return Ok(false);
                }
            }
            // An intent is one row: its promotion and abandonment lock that row, which the
            // single-statement compare-and-set waits for.
            WrappedKeyAt::Pending { .. } => {}
        }
        tx.rewrap_key_row(self.at, self.expected, self.new_key, self.new_key_id)
            .await
    }
}

/// Replaces the wrapped data key held by the row `at` (a current or noncurrent copy, an open
/// upload's upload-level key, one of its parts, a write intent) with `new_key` under master
/// key `new_key_id` — rotation, metadata only — only while the row still holds
/// `expected_key`, checked under the lock the row's writers take (the key lock for copies,
/// the upload's row lock for uploads and parts). A row overwritten, completed, aborted,
/// promoted or re-wrapped since the caller read it keeps what it holds: `false`, nothing
/// changed. Sizes, paths and every other column stay, so no quota moves. Both keys must be
/// non-empty.
#[tracing::instrument(name = "rewrap_stored_key", level = "debug", skip_all, fields(holder = ?at.holder()))]
pub async fn rewrap_stored_key<R: Runner + ?Sized>(
    runner: &R,
    at: &WrappedKeyAt,
    expected_key: &[u8],
    new_key: &[u8],
    new_key_id: &str,
) -> Result<bool> {
    validate::wrapped_key_at(at)?;
    if new_key.is_empty() || expected_key.is_empty() || new_key_id.is_empty() {
        return Err(crate::error::StoreError::invalid(
            "encryption key",
            "a rewrapped key, its key id and the key it replaces must be non-empty",
        ));
    }
    validate::id("key id", new_key_id)?;
    with_tx_val(
        runner,
        &RewrapRow {
            at,
            expected: expected_key,
            new_key,
            new_key_id,
        },
    )
    .await
}

struct Convert<'a> {
    instance: &'a str,
    key: &'a str,
    expected: &'a str,
    envelope: &'a StoredForm,
    copies: &'a [ConvertedCopy],
}

#[async_trait]
impl TxBody for Convert<'_> {
    type Output = Option<Vec<crate::types::DeletedCopy>>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        tx.acquire_key_lock(self.key).await?;
        let current = tx.get_existing_copies_for_update(self.key).await?;
        // The version read is still the current one, with exactly the copies rewritten: else
        // an overwrite, delete or replica won and nothing changes.
        let same = current.len() == self.copies.len()
            && current.iter().all(|c| {
                let path = if c.storage_key.is_empty() {
                    self.key
                } else {
                    c.storage_key.as_str()
                };
                path == self.expected && self.copies.iter().any(|n| n.backend == c.backend_name)
            });
        if !same {
            return Ok(None);
        }
        let mut used = super::quota::QuotaDeltas::new();
        let mut orphan = super::quota::QuotaDeltas::new();
        let mut entries = Vec::with_capacity(current.len());
        for c in &current {
            let Some(n) = self.copies.iter().find(|n| n.backend == c.backend_name) else {
                return Ok(None);
            };
            let Some(loc) = tx.lock_object_on_backend(self.key, &c.backend_name).await? else {
                return Ok(None);
            };
            // Only the envelope and the path change: ETag, type, metadata, hash, managed
            // flag and creation time stay the version's.
            let form = StoredForm {
                encrypted: self.envelope.encrypted,
                encryption_key: self.envelope.encryption_key.clone(),
                key_id: self.envelope.key_id.clone(),
                plaintext_size: self.envelope.plaintext_size,
                storage_key: self.envelope.storage_key.clone(),
                ..loc.form
            };
            tx.update_object_form(self.key, &c.backend_name, n.size_bytes, &form)
                .await?;
            *used.entry(c.backend_name.clone()).or_default() += n.size_bytes - c.size_bytes;
            entries.push(super::objects::orphan_entry(
                self.key,
                &c.backend_name,
                self.expected,
                c.size_bytes,
                "converted",
            ));
            tx.delete_pending(&n.intent_id).await?;
        }
        let out = super::cleanup::enqueue_orphans(tx, self.instance, entries, &mut orphan).await?;
        super::quota::apply_ledger_deltas(tx, &used, &orphan).await?;
        Ok(Some(out))
    }
}

/// Swaps the bytes of every copy of `key` for rewritten ones (encrypted or decrypted) in one
/// transaction, only while the key's current version is still the one at
/// `expected_storage_key` with exactly the copies in `copies`, checked under the key lock: a
/// concurrent overwrite, delete or new replica wins and nothing changes (`None`). Each copy
/// takes `envelope`'s encryption columns and path and its new size; everything else of the
/// version stays. The old bytes are enqueued for cleanup (born claimed by this store, charged
/// to `orphan_bytes`) and the copies' write intents deleted in the same transaction; the size
/// difference is charged through the quota guard. Returns the old bytes with their claims.
#[tracing::instrument(name = "convert_version", level = "debug", skip_all, fields(key = %key))]
pub async fn convert_version<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    expected_storage_key: &str,
    envelope: &StoredForm,
    copies: &[ConvertedCopy],
) -> Result<Option<Vec<crate::types::DeletedCopy>>> {
    validate::key(key)?;
    validate::storage_path(expected_storage_key)?;
    validate::stored_form(envelope)?;
    validate::storage_path(&envelope.storage_key)?;
    if envelope.storage_key == expected_storage_key || copies.is_empty() {
        return Err(crate::error::StoreError::invalid(
            "conversion",
            "the rewritten bytes need their own path and at least one copy",
        ));
    }
    for c in copies {
        validate::backend(&c.backend)?;
        validate::size("converted size", c.size_bytes)?;
    }
    with_tx_val(
        runner,
        &Convert {
            instance: runner.instance_id(),
            key,
            expected: expected_storage_key,
            envelope,
            copies,
        },
    )
    .await
}

struct ConvertNoncurrent<'a> {
    instance: &'a str,
    key: &'a str,
    version_id: &'a str,
    expected: &'a str,
    envelope: &'a StoredForm,
    copies: &'a [ConvertedCopy],
}

#[async_trait]
impl TxBody for ConvertNoncurrent<'_> {
    type Output = Option<Vec<crate::types::DeletedCopy>>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        tx.acquire_key_lock(self.key).await?;
        let rows: Vec<_> = tx
            .key_versions_for_update(self.key)
            .await?
            .into_iter()
            .filter(|r| r.version_id == self.version_id)
            .collect();
        // The version is still noncurrent, at the path read, with exactly the copies
        // rewritten: else it was deleted, restored as current, or a copy came or went, and
        // nothing changes.
        let same = rows.len() == self.copies.len()
            && rows.iter().all(|r| {
                let path = if r.storage_key.is_empty() {
                    self.key
                } else {
                    r.storage_key.as_str()
                };
                path == self.expected
                    && r.backend_name
                        .as_deref()
                        .is_some_and(|b| self.copies.iter().any(|n| n.backend == b))
            });
        if !same {
            return Ok(None);
        }
        let mut used = super::quota::QuotaDeltas::new();
        let mut orphan = super::quota::QuotaDeltas::new();
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            let backend = r.backend_name.as_deref().unwrap_or_default();
            let Some(n) = self.copies.iter().find(|n| n.backend == backend) else {
                return Ok(None);
            };
            // Under the key lock the row read above is still there: a miss is a broken
            // engine, and the error rolls the whole swap back.
            if !tx
                .update_version_copy_form(
                    self.key,
                    self.version_id,
                    backend,
                    n.size_bytes,
                    self.envelope,
                )
                .await?
            {
                return Err(crate::error::StoreError::database(
                    crate::error::DbErrorKind::Other,
                    "convert noncurrent version",
                    "a version copy locked by the key lock vanished",
                ));
            }
            // Noncurrent copies stay charged to bytes_used: the charge follows the new size.
            *used.entry(backend.to_owned()).or_default() += n.size_bytes - r.size_bytes;
            entries.push(super::objects::orphan_entry(
                self.key,
                backend,
                self.expected,
                r.size_bytes,
                "converted",
            ));
            tx.delete_pending(&n.intent_id).await?;
        }
        let out = super::cleanup::enqueue_orphans(tx, self.instance, entries, &mut orphan).await?;
        super::quota::apply_ledger_deltas(tx, &used, &orphan).await?;
        Ok(Some(out))
    }
}

/// [`convert_version`] for noncurrent version `version_id` of `key` (DESIGN decision 25):
/// swaps the bytes of every copy of that version for rewritten ones (encrypted or
/// decrypted) in one transaction, only while it is still a noncurrent version stored at
/// `expected_storage_key` with exactly the copies in `copies`, checked under the key lock: a
/// concurrent delete of the version, its restoration as current, or a copy added or removed
/// wins and nothing changes (`None`). Each copy takes `envelope`'s encryption columns and
/// path and its new size; ETag, metadata, creation time, `seq` and every other column stay.
/// The old bytes are enqueued for cleanup (born claimed by this store, charged to
/// `orphan_bytes`) and the copies' write intents deleted in the same transaction; the size
/// difference is charged to `bytes_used` (noncurrent copies are charged like current ones).
#[tracing::instrument(name = "convert_noncurrent_version", level = "debug", skip_all, fields(key = %key))]
pub async fn convert_noncurrent_version<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    version_id: &str,
    expected_storage_key: &str,
    envelope: &StoredForm,
    copies: &[ConvertedCopy],
) -> Result<Option<Vec<crate::types::DeletedCopy>>> {
    validate::key(key)?;
    validate::id("version id", version_id)?;
    validate::storage_path(expected_storage_key)?;
    validate::stored_form(envelope)?;
    validate::storage_path(&envelope.storage_key)?;
    if envelope.storage_key == expected_storage_key || copies.is_empty() {
        return Err(crate::error::StoreError::invalid(
            "conversion",
            "the rewritten bytes need their own path and at least one copy",
        ));
    }
    for c in copies {
        validate::backend(&c.backend)?;
        validate::size("converted size", c.size_bytes)?;
    }
    with_tx_val(
        runner,
        &ConvertNoncurrent {
            instance: runner.instance_id(),
            key,
            version_id,
            expected: expected_storage_key,
            envelope,
            copies,
        },
    )
    .await
}
