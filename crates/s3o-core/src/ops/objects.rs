use std::collections::BTreeMap;

use async_trait::async_trait;

use super::quota::{QuotaDeltas, apply_quota_deltas};
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{DeletedCopy, ExistingCopy, ObjectLocation, StoredForm, Timestamp};
use crate::validate;

/// Replaces every copy in `existing` (already locked) by one copy on `backend`, clears the
/// intent if any, and charges quotas: the shared tail of record_object and promote_pending.
pub(crate) async fn write_over(
    tx: &mut dyn TxAdapter,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    existing: &[ExistingCopy],
    intent_id: Option<&str>,
) -> Result<Vec<DeletedCopy>> {
    let mut deltas = QuotaDeltas::new();
    let mut displaced = Vec::new();
    if !existing.is_empty() {
        tx.delete_object_copies(key).await?;
        for c in existing {
            *deltas.entry(c.backend_name.clone()).or_default() -= c.size_bytes;
            // A same-backend copy is overwritten in place at the same path: nothing to clean.
            if c.backend_name != backend {
                displaced.push(DeletedCopy {
                    backend_name: c.backend_name.clone(),
                    size_bytes: c.size_bytes,
                });
            }
        }
    }
    let row = ObjectLocation {
        last_scrubbed_at: None,
        object_key: key.to_owned(),
        backend_name: backend.to_owned(),
        size_bytes: size,
        created_at: Timestamp::ZERO,
        form: form.normalized(),
    };
    tx.insert_object_location(&row).await?;
    *deltas.entry(backend.to_owned()).or_default() += size;
    if let Some(id) = intent_id {
        tx.delete_pending(id)
            .await
            .map_err(|e| e.context("clear pending intent"))?;
    }
    apply_quota_deltas(tx, &deltas).await?;
    Ok(displaced)
}

struct Record<'a> {
    key: &'a str,
    backend: &'a str,
    size: i64,
    form: &'a StoredForm,
    intent_id: Option<&'a str>,
}

#[async_trait]
impl TxBody for Record<'_> {
    type Output = Vec<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        tx.acquire_key_lock(self.key).await?;
        let existing = tx.get_existing_copies_for_update(self.key).await?;
        write_over(
            tx,
            self.key,
            self.backend,
            self.size,
            self.form,
            &existing,
            self.intent_id,
        )
        .await
    }
}

/// Records `key` on `backend` with `size` bytes, replacing every existing copy.
///
/// Locks: the key, then its rows, then quota rows in backend order. Copies on other backends
/// are returned as displaced (the caller deletes their bytes); a copy on the same backend was
/// overwritten in place and is not. Quotas change by the net difference per backend, so an
/// equal-size overwrite issues no quota SQL. With `intent_id`, the write's pending intent is
/// deleted in the same transaction. `NoSpaceAvailable` when the backend's quota would be
/// exceeded; `UnknownBackend` when it has no quota row. Nothing changes on error.
#[tracing::instrument(name = "record_object", level = "debug", skip_all, fields(key = %key, backend = %backend, size))]
pub async fn record_object<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    intent_id: Option<&str>,
) -> Result<Vec<DeletedCopy>> {
    validate::key(key)?;
    validate::backend(backend)?;
    validate::size("object size", size)?;
    validate::stored_form(form)?;
    if let Some(id) = intent_id {
        validate::id("intent id", id)?;
    }
    with_tx_val(
        runner,
        &Record {
            key,
            backend,
            size,
            form,
            intent_id,
        },
    )
    .await
}

struct Delete<'a> {
    key: &'a str,
}

#[async_trait]
impl TxBody for Delete<'_> {
    type Output = Vec<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        tx.acquire_key_lock(self.key).await?;
        let existing = tx.get_existing_copies_for_update(self.key).await?;
        if existing.is_empty() {
            return Err(StoreError::ObjectNotFound {
                key: self.key.to_owned(),
            });
        }
        tx.delete_object_copies(self.key).await?;
        let mut deltas = QuotaDeltas::new();
        let mut copies = Vec::with_capacity(existing.len());
        for c in existing {
            *deltas.entry(c.backend_name.clone()).or_default() -= c.size_bytes;
            copies.push(DeletedCopy {
                backend_name: c.backend_name,
                size_bytes: c.size_bytes,
            });
        }
        apply_quota_deltas(tx, &deltas).await?;
        Ok(copies)
    }
}

/// Removes every copy of `key` and debits each backend by the locked sizes.
///
/// Locks the key first (same order as [`record_object`]). No copy ⇒ `ObjectNotFound` and
/// nothing changes. Returns the deleted copies for physical cleanup.
#[tracing::instrument(name = "delete_object", level = "debug", skip_all, fields(key = %key))]
pub async fn delete_object<R: Runner + ?Sized>(runner: &R, key: &str) -> Result<Vec<DeletedCopy>> {
    validate::key(key)?;
    with_tx_val(runner, &Delete { key }).await
}

struct DeleteBatch<'a> {
    keys: &'a [String],
}

#[async_trait]
impl TxBody for DeleteBatch<'_> {
    type Output = BTreeMap<String, Vec<DeletedCopy>>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        for k in self.keys {
            tx.acquire_key_lock(k).await?;
        }
        let rows = tx.get_copies_for_keys_for_update(self.keys).await?;
        let mut out: BTreeMap<String, Vec<DeletedCopy>> = BTreeMap::new();
        if rows.is_empty() {
            return Ok(out);
        }
        tx.delete_objects_by_keys(self.keys).await?;
        let mut deltas = QuotaDeltas::new();
        for r in rows {
            *deltas.entry(r.backend_name.clone()).or_default() -= r.size_bytes;
            out.entry(r.object_key).or_default().push(DeletedCopy {
                backend_name: r.backend_name,
                size_bytes: r.size_bytes,
            });
        }
        apply_quota_deltas(tx, &deltas).await?;
        Ok(out)
    }
}

/// Removes every copy of each key in one transaction, debiting each backend once.
///
/// Empty input ⇒ empty map without opening a transaction. Keys are locked sorted and
/// de-duplicated, so two batches over overlapping keys in any order cannot deadlock. Keys
/// without copies are absent from the result. At most 1000 keys.
#[tracing::instrument(name = "delete_objects_batch", level = "debug", skip_all, fields(keys = keys.len()))]
pub async fn delete_objects_batch<R: Runner + ?Sized>(
    runner: &R,
    keys: &[String],
) -> Result<BTreeMap<String, Vec<DeletedCopy>>> {
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    validate::keys(keys)?;
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    with_tx_val(runner, &DeleteBatch { keys: &sorted }).await
}

struct DeleteLocation<'a> {
    key: &'a str,
    backend: &'a str,
}

#[async_trait]
impl TxBody for DeleteLocation<'_> {
    type Output = bool;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<bool> {
        tx.acquire_key_lock(self.key).await?;
        let existing = tx.get_existing_copies_for_update(self.key).await?;
        let Some(copy) = existing.iter().find(|c| c.backend_name == self.backend) else {
            return Ok(false);
        };
        tx.delete_object_from_backend(self.key, self.backend)
            .await?;
        if copy.size_bytes > 0 {
            tx.decrement_backend_quota(self.backend, copy.size_bytes)
                .await?;
        }
        Ok(true)
    }
}

/// Removes the single copy of `key` on `backend` and debits the backend by the copy's locked
/// size. `false` (and no change) when that copy is already gone.
#[tracing::instrument(name = "delete_object_location", level = "debug", skip_all, fields(key = %key, backend = %backend))]
pub async fn delete_object_location<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
) -> Result<bool> {
    validate::key(key)?;
    validate::backend(backend)?;
    with_tx_val(runner, &DeleteLocation { key, backend }).await
}

struct Import<'a> {
    key: &'a str,
    backend: &'a str,
    size: i64,
}

#[async_trait]
impl TxBody for Import<'_> {
    type Output = bool;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<bool> {
        tx.acquire_key_lock(self.key).await?;
        let row = ObjectLocation {
            last_scrubbed_at: None,
            object_key: self.key.to_owned(),
            backend_name: self.backend.to_owned(),
            size_bytes: self.size,
            created_at: Timestamp::ZERO,
            form: StoredForm::default(),
        };
        if !tx.insert_object_location_if_not_exists(&row).await? {
            return Ok(false);
        }
        if self.size > 0 {
            tx.increment_backend_quota(self.backend, self.size).await?;
        }
        Ok(true)
    }
}

/// Records a pre-existing plaintext object without overwriting. `true` when newly imported,
/// `false` (no change) when `(key, backend)` already has a copy. The guarded quota charge may
/// fail with `NoSpaceAvailable`, rolling the import back.
#[tracing::instrument(name = "import_object", level = "debug", skip_all, fields(key = %key, backend = %backend, size))]
pub async fn import_object<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    size: i64,
) -> Result<bool> {
    validate::key(key)?;
    validate::backend(backend)?;
    validate::size("object size", size)?;
    with_tx_val(runner, &Import { key, backend, size }).await
}

struct Move<'a> {
    key: &'a str,
    from: &'a str,
    to: &'a str,
}

#[async_trait]
impl TxBody for Move<'_> {
    type Output = i64;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<i64> {
        tx.acquire_key_lock(self.key).await?;
        if tx.check_object_exists_on_backend(self.key, self.to).await? {
            return Ok(0);
        }
        let Some(src) = tx.lock_object_on_backend(self.key, self.from).await? else {
            return Ok(0);
        };
        tx.delete_object_from_backend(self.key, self.from).await?;
        // Every stored-form column travels, and so does created_at: a move is not a new
        // version of the object (Last-Modified and intent supersession stay correct).
        let moved = ObjectLocation {
            last_scrubbed_at: None,
            backend_name: self.to.to_owned(),
            ..src
        };
        tx.insert_object_location(&moved).await?;
        let mut deltas = QuotaDeltas::new();
        deltas.insert(self.from.to_owned(), -moved.size_bytes);
        deltas.insert(self.to.to_owned(), moved.size_bytes);
        apply_quota_deltas(tx, &deltas).await?;
        Ok(moved.size_bytes)
    }
}

/// Moves the copy of `key` from one backend to another, carrying every stored-form column.
///
/// Returns the bytes moved; 0 (no change) when the source copy is gone, the target already
/// has a copy, or `from == to`. The target's quota is guarded (`NoSpaceAvailable` rolls back);
/// quota rows are updated in backend order so opposite concurrent moves cannot deadlock.
#[tracing::instrument(name = "move_object_location", level = "debug", skip_all, fields(key = %key, from = %from, to = %to))]
pub async fn move_object_location<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    from: &str,
    to: &str,
) -> Result<i64> {
    validate::key(key)?;
    validate::backend(from)?;
    validate::backend(to)?;
    if from == to {
        return Ok(0);
    }
    with_tx_val(runner, &Move { key, from, to }).await
}
