use std::collections::BTreeMap;

use async_trait::async_trait;

use super::cleanup::enqueue_orphans;
use super::quota::{QuotaDeltas, apply_ledger_deltas};
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{
    CleanupEntry, DeletedCopy, ExistingCopy, ImportOutcome, ImportedObject, MoveOutcome,
    ObjectLocation, StoredForm, Timestamp, WritePrecondition,
};
use crate::validate;
use crate::versioning::{Committed, NULL_VERSION_ID, Versioning};

/// The outbox entry for bytes of `key` at `storage_key` on `backend` leaving the ledger.
pub(crate) fn orphan_entry(
    key: &str,
    backend: &str,
    storage_key: &str,
    size: i64,
    reason: &str,
) -> CleanupEntry {
    CleanupEntry {
        backend_name: backend.to_owned(),
        object_key: key.to_owned(),
        storage_key: storage_key.to_owned(),
        reason: reason.to_owned(),
        size_bytes: size,
    }
}

/// Physical path of a copy: its storage key, or the object key when it has none.
fn path_of<'a>(key: &'a str, storage_key: &'a str) -> &'a str {
    if storage_key.is_empty() {
        key
    } else {
        storage_key
    }
}

/// Replaces every copy in `existing` (already locked) by one copy on `backend`, clears the
/// intent if any, enqueues the displaced bytes (outbox) and charges quotas: the shared tail of
/// record_object and promote_pending. A copy on the same backend at the same physical path was
/// overwritten in place and is not displaced; any other copy is.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_over(
    tx: &mut dyn TxAdapter,
    instance: &str,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    existing: &[ExistingCopy],
    intent_id: Option<&str>,
) -> Result<Vec<DeletedCopy>> {
    let mut deltas = QuotaDeltas::new();
    let mut orphans = Vec::new();
    let new_path = form.storage_path(key);
    if !existing.is_empty() {
        tx.delete_object_copies(key).await?;
        for c in existing {
            *deltas.entry(c.backend_name.clone()).or_default() -= c.size_bytes;
            if c.backend_name != backend || path_of(key, &c.storage_key) != new_path {
                orphans.push(orphan_entry(
                    key,
                    &c.backend_name,
                    &c.storage_key,
                    c.size_bytes,
                    "overwritten",
                ));
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
    let mut orphan = QuotaDeltas::new();
    let displaced = enqueue_orphans(tx, instance, orphans, &mut orphan).await?;
    apply_ledger_deltas(tx, &deltas, &orphan).await?;
    Ok(displaced)
}

struct Record<'a> {
    instance: &'a str,
    key: &'a str,
    backend: &'a str,
    size: i64,
    form: &'a StoredForm,
    intent_id: Option<&'a str>,
    cond: Option<&'a WritePrecondition>,
    /// A missing intent refuses the commit (its bytes were abandoned meanwhile).
    require_intent: bool,
    /// The bucket the key belongs to: its row is locked for writing after the key lock, and a
    /// missing bucket refuses the commit (see [`crate::ops::delete_bucket`]). Its versioning
    /// state, read with the lock, decides whether the previous version is kept.
    bucket: Option<&'a str>,
    /// The id a versioned commit gives the new version (chosen before the transaction, so a
    /// retried body writes the same id).
    new_version_id: String,
    /// The version id the caller already announced to its client (`Some(None)`: none, the
    /// bucket was unversioned); the commit is refused unless the bucket's state still gives
    /// exactly that id. `None`: nothing announced, any state goes.
    announced: Option<Option<&'a str>>,
}

#[async_trait]
impl TxBody for Record<'_> {
    type Output = Committed;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        tx.acquire_key_lock(self.key).await?;
        let mut versioning = Versioning::Unversioned;
        if let Some(bucket) = self.bucket {
            match tx.lock_bucket_versioning(bucket).await? {
                Some(v) => versioning = v,
                None => {
                    return Err(StoreError::BucketNotFound {
                        bucket: bucket.to_owned(),
                    });
                }
            }
            if let Some(announced) = self.announced {
                // Decided under the bucket's row lock, which PutBucketVersioning takes too.
                let gives = match versioning {
                    Versioning::Unversioned => None,
                    Versioning::Suspended => Some(NULL_VERSION_ID),
                    // An enabled bucket never writes the `null` version.
                    Versioning::Enabled => {
                        Some(self.new_version_id.as_str()).filter(|v| *v != NULL_VERSION_ID)
                    }
                };
                if gives != announced {
                    return Err(StoreError::VersioningChanged {
                        bucket: bucket.to_owned(),
                    });
                }
            }
        }
        if let Some(id) = self.intent_id {
            // The intent row is locked after the key (as promotion does) and must be this
            // write's own: clearing another key's or backend's intent would lose its bytes.
            match tx.claim_pending(id).await? {
                Some(p) if p.object_key != self.key || p.backend_name != self.backend => {
                    return Err(StoreError::invalid(
                        "pending intent",
                        format!(
                            "intent {id} belongs to key {:?} on backend {:?}, not to this write",
                            p.object_key, p.backend_name
                        ),
                    ));
                }
                None if self.require_intent => {
                    return Err(StoreError::PendingIntentGone {
                        intent_id: id.to_owned(),
                    });
                }
                _ => {}
            }
        }
        let existing = tx.get_existing_copies_for_update(self.key).await?;
        if let Some(cond) = self.cond {
            // Decided under the key lock: concurrent conditional writers serialize here and
            // the first committer wins. Copies of one key are one version, so any holds the
            // ETag.
            cond.check(self.key, existing.first().map(|c| c.etag.as_str()))?;
        }
        if versioning.is_versioned() {
            let (displaced, id) = super::versions::write_versioned(
                tx,
                self.instance,
                versioning,
                &self.new_version_id,
                self.key,
                self.backend,
                self.size,
                self.form,
                existing,
                self.intent_id,
            )
            .await?;
            return Ok(Committed {
                displaced,
                version_id: Some(id),
            });
        }
        let displaced = write_over(
            tx,
            self.instance,
            self.key,
            self.backend,
            self.size,
            self.form,
            &existing,
            self.intent_id,
        )
        .await?;
        Ok(Committed {
            displaced,
            version_id: None,
        })
    }
}

/// The checks every record of a copy makes before any SQL (the key is checked by the caller,
/// with any bucket rule of its own).
fn validate_record(
    backend: &str,
    size: i64,
    form: &StoredForm,
    intent_id: Option<&str>,
    cond: Option<&WritePrecondition>,
) -> Result<()> {
    validate::backend(backend)?;
    validate::size("object size", size)?;
    validate::stored_form(form)?;
    if let Some(id) = intent_id {
        validate::id("intent id", id)?;
    }
    for etag in cond
        .iter()
        .flat_map(|c| c.if_match.iter().chain(c.if_none_match.iter()))
    {
        validate::text("precondition ETag", etag)?;
    }
    Ok(())
}

/// Records `key` on `backend` with `size` bytes, replacing every existing copy.
///
/// Locks: the key, then the intent row, then the key's copies, then quota rows in backend
/// order. Copies on other backends, or on the same backend at another physical path, are
/// displaced: each gets a cleanup row born claimed by this store's instance and its bytes are
/// charged to `orphan_bytes`, in this transaction (the outbox); they are returned with their
/// claims so the caller can delete the bytes at once and complete the rows. A copy on the same
/// backend at the same path was overwritten in place and is not displaced. `bytes_used`
/// changes by the net difference per backend, so an equal-size in-place overwrite issues no
/// quota SQL. With `intent_id`, the write's pending intent is deleted in the same transaction;
/// an intent of another key or backend is refused (`InvalidInput`), a missing one is fine.
/// `NoSpaceAvailable` when the backend's quota would be exceeded; `UnknownBackend` when it has
/// no quota row. Nothing changes on error.
pub async fn record_object<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    intent_id: Option<&str>,
) -> Result<Vec<DeletedCopy>> {
    validate::key(key)?;
    validate_record(backend, size, form, intent_id, None)?;
    with_tx_val(
        runner,
        &Record {
            instance: runner.instance_id(),
            key,
            backend,
            size,
            form,
            intent_id,
            cond: None,
            require_intent: false,
            bucket: None,
            new_version_id: String::new(),
            announced: None,
        },
    )
    .await
    .map(|c| c.displaced)
}

/// [`record_object`] under a precondition decided in the same transaction, after the key lock
/// and the locked read of the current copies: `If-Match` on an absent key ⇒ `ObjectNotFound`,
/// an unmet condition ⇒ `PreconditionFailed` (see [`WritePrecondition::check`]). On either,
/// nothing changes: the intent, if any, stays for the caller to abandon. Unlike
/// `record_object`, a given intent must still exist: one that is gone (the reaper abandoned it
/// and queued its bytes for deletion) refuses the commit with `PendingIntentGone`, so bytes
/// queued for deletion never become a live copy.
#[tracing::instrument(name = "record_object", level = "debug", skip_all, fields(key = %key, backend = %backend, size))]
pub async fn record_object_if<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    intent_id: Option<&str>,
    cond: Option<&WritePrecondition>,
) -> Result<Vec<DeletedCopy>> {
    validate::key(key)?;
    validate_record(backend, size, form, intent_id, cond)?;
    with_tx_val(
        runner,
        &Record {
            instance: runner.instance_id(),
            key,
            backend,
            size,
            form,
            intent_id,
            cond: cond.filter(|c| !c.is_empty()),
            require_intent: true,
            bucket: None,
            new_version_id: String::new(),
            announced: None,
        },
    )
    .await
    .map(|c| c.displaced)
}

/// [`record_object_if`] into a bucket: `key` must be a key of `bucket` (start with
/// `"<bucket>/"`, else `InvalidInput`), and the bucket's row is locked for writing right after
/// the key lock (lock order: key, bucket row, intent, copies, quota rows). A bucket that is
/// gone ⇒ `BucketNotFound` and nothing changes (the intent, if any, stays for the caller to
/// abandon). This is the commit a deletion of the bucket cannot race: see
/// [`crate::ops::delete_bucket`].
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "record_object", level = "debug", skip_all, fields(bucket = %bucket, key = %key, backend = %backend, size))]
pub async fn record_object_in_bucket<R: Runner + ?Sized>(
    runner: &R,
    bucket: &str,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    intent_id: Option<&str>,
    cond: Option<&WritePrecondition>,
) -> Result<Vec<DeletedCopy>> {
    commit_object_in_bucket(runner, bucket, key, backend, size, form, intent_id, cond)
        .await
        .map(|c| c.displaced)
}

/// Checks that `key` is a key of `bucket` (starts with `"<bucket>/"`), else `InvalidInput`.
pub(crate) fn check_bucket_key(bucket: &str, key: &str) -> Result<()> {
    validate::bucket_lookup(bucket)?;
    validate::key(key)?;
    if !key
        .strip_prefix(bucket)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Err(StoreError::invalid(
            "object key",
            format!("{key:?} is not a key of bucket {bucket:?} (it must start with \"{bucket}/\")"),
        ));
    }
    Ok(())
}

/// [`record_object_in_bucket`] that also follows the bucket's versioning state (DESIGN
/// decision 25), read with the bucket's row lock: unversioned, the original contract (every
/// previous copy displaced, `version_id: None`); enabled, the previous current version
/// becomes noncurrent with its bytes still charged and the new version gets a fresh id;
/// suspended, the new version is the `null` version and any previous `null` version (current
/// or not) is displaced, its bytes queued in the same transaction.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "commit_object_in_bucket", level = "debug", skip_all, fields(bucket = %bucket, key = %key, backend = %backend, size))]
pub async fn commit_object_in_bucket<R: Runner + ?Sized>(
    runner: &R,
    bucket: &str,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    intent_id: Option<&str>,
    cond: Option<&WritePrecondition>,
) -> Result<Committed> {
    check_bucket_key(bucket, key)?;
    validate_record(backend, size, form, intent_id, cond)?;
    with_tx_val(
        runner,
        &Record {
            instance: runner.instance_id(),
            key,
            backend,
            size,
            form,
            intent_id,
            cond: cond.filter(|c| !c.is_empty()),
            require_intent: true,
            bucket: Some(bucket),
            new_version_id: super::versions::new_version_id(),
            announced: None,
        },
    )
    .await
}

/// [`commit_object_in_bucket`] of a version whose id the caller chose and announced before the
/// commit (a CompleteMultipartUpload answers its headers before it assembles): `version_id`
/// is `None` for an unversioned bucket, `"null"` for a suspended one, else a fresh id (see
/// [`super::versions::new_version_id`]) the new version takes in an enabled one. When the
/// bucket's state, read under its row lock, would give another id (it changed since the
/// caller looked), the commit is refused with `VersioningChanged` and nothing changes (the
/// intent, if any, stays for the caller to abandon).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "commit_announced_version", level = "debug", skip_all, fields(bucket = %bucket, key = %key, backend = %backend, size))]
pub async fn commit_announced_version<R: Runner + ?Sized>(
    runner: &R,
    bucket: &str,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    intent_id: Option<&str>,
    cond: Option<&WritePrecondition>,
    version_id: Option<&str>,
) -> Result<Committed> {
    check_bucket_key(bucket, key)?;
    validate_record(backend, size, form, intent_id, cond)?;
    if let Some(v) = version_id {
        super::versions::check_version_id(v)?;
    }
    with_tx_val(
        runner,
        &Record {
            instance: runner.instance_id(),
            key,
            backend,
            size,
            form,
            intent_id,
            cond: cond.filter(|c| !c.is_empty()),
            require_intent: true,
            bucket: Some(bucket),
            new_version_id: version_id.unwrap_or_default().to_owned(),
            announced: Some(version_id),
        },
    )
    .await
}

struct Delete<'a> {
    instance: &'a str,
    key: &'a str,
    /// Delete only while the key's copies are this version (their `storage_key`).
    version: Option<&'a str>,
}

#[async_trait]
impl TxBody for Delete<'_> {
    type Output = Vec<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        tx.acquire_key_lock(self.key).await?;
        let existing = tx.get_existing_copies_for_update(self.key).await?;
        // Every copy of one version shares its storage key (replicas and moves keep it), so
        // another key there means the version was replaced after the caller looked.
        let other_version = self
            .version
            .is_some_and(|v| existing.iter().any(|c| c.storage_key != v));
        if existing.is_empty() || other_version {
            return Err(StoreError::ObjectNotFound {
                key: self.key.to_owned(),
            });
        }
        tx.delete_object_copies(self.key).await?;
        let mut deltas = QuotaDeltas::new();
        let mut orphans = Vec::with_capacity(existing.len());
        for c in existing {
            *deltas.entry(c.backend_name.clone()).or_default() -= c.size_bytes;
            orphans.push(orphan_entry(
                self.key,
                &c.backend_name,
                &c.storage_key,
                c.size_bytes,
                "deleted",
            ));
        }
        let mut orphan = QuotaDeltas::new();
        let copies = enqueue_orphans(tx, self.instance, orphans, &mut orphan).await?;
        apply_ledger_deltas(tx, &deltas, &orphan).await?;
        Ok(copies)
    }
}

/// Removes every copy of `key`: debits each backend by the locked sizes and, in the same
/// transaction, enqueues each copy's bytes for cleanup (born claimed by this store's instance)
/// and charges them to `orphan_bytes`.
///
/// Locks the key first (same order as [`record_object`]). No copy ⇒ `ObjectNotFound` and
/// nothing changes. Returns the deleted copies with their cleanup claims.
#[tracing::instrument(name = "delete_object", level = "debug", skip_all, fields(key = %key))]
pub async fn delete_object<R: Runner + ?Sized>(runner: &R, key: &str) -> Result<Vec<DeletedCopy>> {
    validate::key(key)?;
    with_tx_val(
        runner,
        &Delete {
            instance: runner.instance_id(),
            key,
            version: None,
        },
    )
    .await
}

/// [`delete_object`] of one version: removes every copy of `key` only while each of them is
/// the version stored at `storage_key` (decided under the key lock), so a worker that chose an
/// object by its age never deletes a newer write of the same key. `None` when the key holds
/// another version or nothing (and nothing changes); otherwise the deleted copies with their
/// cleanup claims, exactly as [`delete_object`].
#[tracing::instrument(name = "delete_object_version", level = "debug", skip_all, fields(key = %key))]
pub async fn delete_object_version<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    storage_key: &str,
) -> Result<Option<Vec<DeletedCopy>>> {
    validate::key(key)?;
    validate::prefix("storage key", storage_key)?;
    let r = with_tx_val(
        runner,
        &Delete {
            instance: runner.instance_id(),
            key,
            version: Some(storage_key),
        },
    )
    .await;
    match r {
        Ok(copies) => Ok(Some(copies)),
        Err(StoreError::ObjectNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

struct DeleteBatch<'a> {
    instance: &'a str,
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
        let mut orphans = Vec::with_capacity(rows.len());
        for r in &rows {
            *deltas.entry(r.backend_name.clone()).or_default() -= r.size_bytes;
            orphans.push(orphan_entry(
                &r.object_key,
                &r.backend_name,
                &r.storage_key,
                r.size_bytes,
                "deleted",
            ));
        }
        let mut orphan = QuotaDeltas::new();
        let copies = enqueue_orphans(tx, self.instance, orphans, &mut orphan).await?;
        for (r, c) in rows.into_iter().zip(copies) {
            out.entry(r.object_key).or_default().push(c);
        }
        apply_ledger_deltas(tx, &deltas, &orphan).await?;
        Ok(out)
    }
}

/// Removes every copy of each key in one transaction, debiting each backend once.
///
/// Empty input ⇒ empty map without opening a transaction. Keys are locked sorted and
/// de-duplicated, so two batches over overlapping keys in any order cannot deadlock. Keys
/// without copies are absent from the result. At most 1000 keys. Every removed copy's bytes
/// are enqueued for cleanup in the same transaction, as [`delete_object`] does.
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
    with_tx_val(
        runner,
        &DeleteBatch {
            instance: runner.instance_id(),
            keys: &sorted,
        },
    )
    .await
}

struct DeleteLocation<'a> {
    instance: &'a str,
    key: &'a str,
    backend: &'a str,
}

#[async_trait]
impl TxBody for DeleteLocation<'_> {
    type Output = Option<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Option<DeletedCopy>> {
        tx.acquire_key_lock(self.key).await?;
        let existing = tx.get_existing_copies_for_update(self.key).await?;
        let Some(copy) = existing.iter().find(|c| c.backend_name == self.backend) else {
            return Ok(None);
        };
        tx.delete_object_from_backend(self.key, self.backend)
            .await?;
        remove_one_copy(tx, self.instance, self.key, copy, "location deleted")
            .await
            .map(Some)
    }
}

/// The tail of every single-copy removal (location delete, excess copy): the copy's bytes go
/// to the outbox (born claimed by `instance`, returned so the caller can delete them at once)
/// and its size moves from `bytes_used` to `orphan_bytes`.
pub(crate) async fn remove_one_copy(
    tx: &mut dyn TxAdapter,
    instance: &str,
    key: &str,
    copy: &ExistingCopy,
    reason: &str,
) -> Result<DeletedCopy> {
    let entry = orphan_entry(
        key,
        &copy.backend_name,
        &copy.storage_key,
        copy.size_bytes,
        reason,
    );
    let mut orphan = QuotaDeltas::new();
    let mut out = enqueue_orphans(tx, instance, vec![entry], &mut orphan).await?;
    let used = QuotaDeltas::from([(copy.backend_name.clone(), -copy.size_bytes)]);
    apply_ledger_deltas(tx, &used, &orphan).await?;
    Ok(out.remove(0))
}

/// Removes the single copy of `key` on `backend`: debits the backend by the copy's locked
/// size and enqueues its bytes for cleanup (charged to `orphan_bytes`) in the same
/// transaction. Returns the removed copy with its cleanup claim, born claimed by this store
/// (as [`delete_object`] does): the caller may delete the bytes at once and complete the
/// claim; otherwise a cleanup worker takes the row over after its grace period. `None` (and no
/// change) when that copy is already gone.
#[tracing::instrument(name = "delete_object_location", level = "debug", skip_all, fields(key = %key, backend = %backend))]
pub async fn delete_object_location<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
) -> Result<Option<DeletedCopy>> {
    validate::key(key)?;
    validate::backend(backend)?;
    with_tx_val(
        runner,
        &DeleteLocation {
            instance: runner.instance_id(),
            key,
            backend,
        },
    )
    .await
}

struct Import<'a> {
    obj: &'a ImportedObject,
}

#[async_trait]
impl TxBody for Import<'_> {
    type Output = ImportOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<ImportOutcome> {
        let o = self.obj;
        tx.acquire_key_lock(&o.key).await?;
        if let Some(bucket) = &o.bucket
            && tx.lock_bucket_versioning(bucket).await?.is_none()
        {
            return Err(StoreError::BucketNotFound {
                bucket: bucket.clone(),
            });
        }
        // The ledger wins: a key it knows is never replaced or joined by bytes found on a
        // backend (they may be an old version, or someone else's object at the same name).
        let copies = tx.get_existing_copies_for_update(&o.key).await?;
        if !copies.is_empty() {
            let own = copies.iter().any(|c| {
                c.backend_name == o.backend && (c.storage_key.is_empty() || c.storage_key == o.key)
            });
            return Ok(if own {
                ImportOutcome::AlreadyImported
            } else {
                ImportOutcome::KeyExists
            });
        }
        if !tx.key_versions_for_update(&o.key).await?.is_empty() {
            return Ok(ImportOutcome::KeyExists);
        }
        if tx.count_pending_for_key(&o.key).await? > 0 {
            return Ok(ImportOutcome::InFlight);
        }
        if tx.count_cleanup_rows(&o.key, &o.backend).await? > 0 {
            return Ok(ImportOutcome::QueuedForCleanup);
        }
        let row = ObjectLocation {
            last_scrubbed_at: None,
            object_key: o.key.clone(),
            backend_name: o.backend.clone(),
            size_bytes: o.size,
            created_at: o.created_at,
            form: StoredForm {
                etag: o.etag.clone(),
                // Written out rather than left empty: readers take the path from the row.
                storage_key: o.key.clone(),
                ..StoredForm::default()
            },
        };
        tx.insert_object_location(&row).await?;
        if o.size > 0 {
            // Last statement: the guarded charge (NoSpaceAvailable rolls the import back).
            tx.increment_backend_quota(&o.backend, o.size).await?;
        }
        Ok(ImportOutcome::Imported)
    }
}

/// Records a pre-existing plaintext object at its own key (its path on the backend) and
/// charges its size to the backend, under the key lock (and the bucket's row, when named).
///
/// The rule for keys the ledger already has: **the ledger wins**. A key with any current copy
/// or any version is never joined or replaced: [`ImportOutcome::AlreadyImported`] when this
/// backend holds its copy at the key's own path (an earlier import: a re-run changes nothing),
/// [`ImportOutcome::KeyExists`] otherwise. A key with a write intent is
/// [`ImportOutcome::InFlight`], and one whose bytes on this backend sit in the cleanup queue or
/// DLQ is [`ImportOutcome::QueuedForCleanup`] (those bytes may be the very object found on the
/// backend, already let go by the ledger). The guarded quota charge fails with
/// `NoSpaceAvailable`, rolling the import back.
#[tracing::instrument(name = "import_object", level = "debug", skip_all, fields(key = %obj.key, backend = %obj.backend, size = obj.size))]
pub async fn import_object<R: Runner + ?Sized>(
    runner: &R,
    obj: &ImportedObject,
) -> Result<ImportOutcome> {
    validate::key(&obj.key)?;
    validate::backend(&obj.backend)?;
    validate::size("object size", obj.size)?;
    validate::text("etag", &obj.etag)?;
    if let Some(b) = &obj.bucket {
        validate::text("bucket", b)?;
    }
    with_tx_val(runner, &Import { obj }).await
}

struct Move<'a> {
    instance: &'a str,
    key: &'a str,
    from: &'a str,
    to: &'a str,
    expected: &'a str,
}

#[async_trait]
impl TxBody for Move<'_> {
    type Output = MoveOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<MoveOutcome> {
        tx.acquire_key_lock(self.key).await?;
        let Some(src) = tx.lock_object_on_backend(self.key, self.from).await? else {
            return Ok(MoveOutcome::SourceGone);
        };
        let current = src.form.storage_path(self.key);
        if current != self.expected {
            return Ok(MoveOutcome::VersionChanged {
                current_storage_key: current.to_owned(),
            });
        }
        if tx.check_object_exists_on_backend(self.key, self.to).await? {
            return Ok(MoveOutcome::TargetHasCopy);
        }
        // The version id lives beside the stored form (DESIGN decision 25): a moved current
        // copy of a versioned key keeps it, or the version would read as `null` afterwards.
        let version_id = tx.current_version_id(self.key).await?;
        tx.delete_object_from_backend(self.key, self.from).await?;
        // Every stored-form column travels, and so does created_at: a move is not a new
        // version of the object (Last-Modified and intent supersession stay correct).
        let moved = ObjectLocation {
            last_scrubbed_at: None,
            backend_name: self.to.to_owned(),
            ..src
        };
        tx.insert_object_location(&moved).await?;
        if let Some(v) = version_id.filter(|v| v != crate::versioning::NULL_VERSION_ID) {
            tx.set_current_version_id(self.key, Some(&v)).await?;
        }
        let mut deltas = QuotaDeltas::new();
        deltas.insert(self.from.to_owned(), -moved.size_bytes);
        deltas.insert(self.to.to_owned(), moved.size_bytes);
        // The source's bytes stay on the source backend until deleted: outbox.
        let entry = orphan_entry(
            self.key,
            self.from,
            &moved.form.storage_key,
            moved.size_bytes,
            "moved",
        );
        let mut orphan = QuotaDeltas::new();
        let mut source = enqueue_orphans(tx, self.instance, vec![entry], &mut orphan).await?;
        apply_ledger_deltas(tx, &deltas, &orphan).await?;
        Ok(MoveOutcome::Moved {
            bytes: moved.size_bytes,
            source: source.remove(0),
        })
    }
}

/// Moves the copy of `key` from one backend to another, carrying every stored-form column,
/// only if the source copy is still the version the caller copied: its physical path
/// ([`StoredForm::storage_path`]) must equal `expected_storage_key`, the path the caller read
/// before copying the bytes. (Every write has its own path, so an overwrite since then shows
/// as another path; a copy written in place at the object key cannot be told apart.)
///
/// Returns [`MoveOutcome::Moved`] with the bytes moved and the source's bytes, enqueued for
/// cleanup in the same transaction with a claim held by this store (as [`delete_object`]
/// returns them) and charged to the source's `orphan_bytes`: the caller may delete them at
/// once and complete the claim; otherwise a cleanup worker takes the row over after its grace
/// period. Otherwise, with nothing changed, `SourceGone`, `VersionChanged` (with the source's
/// current path) or `TargetHasCopy`, checked in that order under the key lock. The target's
/// quota is guarded (`NoSpaceAvailable` rolls back); quota rows are updated in backend order so
/// opposite concurrent moves cannot deadlock. `from == to` ⇒ `InvalidInput`.
#[tracing::instrument(name = "move_object_location", level = "debug", skip_all, fields(key = %key, from = %from, to = %to))]
pub async fn move_object_location<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    from: &str,
    to: &str,
    expected_storage_key: &str,
) -> Result<MoveOutcome> {
    validate::key(key)?;
    validate::backend(from)?;
    validate::backend(to)?;
    validate::storage_path(expected_storage_key)?;
    if from == to {
        return Err(StoreError::invalid(
            "move target",
            format!("the source and the target are both {from:?}"),
        ));
    }
    with_tx_val(
        runner,
        &Move {
            instance: runner.instance_id(),
            key,
            from,
            to,
            expected: expected_storage_key,
        },
    )
    .await
}
