//! Versioning operations (DESIGN decision 25), written once against [`TxAdapter`].
//!
//! `object_locations` holds the current version of a key and keeps every contract of the
//! original design; `object_versions` holds the noncurrent versions (their bytes still
//! charged to `bytes_used`) and delete markers. Two rules hold after every transaction, for
//! every key:
//! - the current version (if any) is newer than every row of `object_versions`;
//! - a key without current copies but with versions has a delete marker as its newest row
//!   (a deletion that would expose a noncurrent data version promotes it instead).
//!
//! Bytes leave the ledger only when a version is deleted by id (or, in a suspended bucket,
//! when the `null` version is replaced): they are queued for cleanup and moved from
//! `bytes_used` to `orphan_bytes` in the same transaction, exactly as an unversioned overwrite.

use async_trait::async_trait;

use super::cleanup::enqueue_orphans;
use super::objects::orphan_entry;
use super::quota::{QuotaDeltas, apply_ledger_deltas};
use crate::engine::VersionStore;
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{
    CleanupEntry, DeletedCopy, ExistingCopy, MoveOutcome, ObjectLocation, StoredForm, Timestamp,
};
use crate::validate;
use crate::versioning::{
    CURRENT_SEQ, DeleteOutcome, NULL_VERSION_ID, VersionCopy, VersionListing, Versioning,
};

/// A new version id: 16 hex digits of the time in microseconds, then 16 random characters, so
/// ids are unique without a round trip and roughly ordered by age.
pub fn new_version_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = format!("{:016x}", Timestamp::now().as_micros());
    let mut rng = fastrand::Rng::new();
    for _ in 0..16 {
        id.push(ALPHABET[rng.usize(..ALPHABET.len())] as char);
    }
    id
}

/// Checks a version id given by a client before any SQL.
pub(crate) fn check_version_id(v: &str) -> Result<()> {
    validate::text("version id", v)?;
    if v.is_empty() || v.len() > 1024 {
        return Err(StoreError::invalid("version id", "must be 1 to 1024 bytes"));
    }
    Ok(())
}

/// The bytes and quota moves of one transaction, applied once at its end (quota rows in the
/// global order).
#[derive(Default)]
pub(super) struct Tally {
    used: QuotaDeltas,
    orphans: Vec<CleanupEntry>,
}

impl Tally {
    /// Bytes of a copy leaving the ledger: debited from `bytes_used`, queued for cleanup.
    fn drop_copy(&mut self, key: &str, backend: &str, storage_key: &str, size: i64, why: &str) {
        *self.used.entry(backend.to_owned()).or_default() -= size;
        self.orphans
            .push(orphan_entry(key, backend, storage_key, size, why));
    }

    pub(super) async fn apply(
        self,
        tx: &mut dyn TxAdapter,
        instance: &str,
    ) -> Result<Vec<DeletedCopy>> {
        let mut orphan = QuotaDeltas::new();
        let out = enqueue_orphans(tx, instance, self.orphans, &mut orphan).await?;
        apply_ledger_deltas(tx, &self.used, &orphan).await?;
        Ok(out)
    }
}

/// A key's state under its lock: the current copies with their version id, and the
/// noncurrent rows, newest first.
pub(super) struct KeyState {
    pub(super) current: Vec<ExistingCopy>,
    current_id: Option<String>,
    pub(super) versions: Vec<VersionCopy>,
}

impl KeyState {
    pub(super) async fn load(
        tx: &mut dyn TxAdapter,
        key: &str,
        current: Vec<ExistingCopy>,
    ) -> Result<Self> {
        let current_id = if current.is_empty() {
            None
        } else {
            tx.current_version_id(key).await?
        };
        let versions = tx.key_versions_for_update(key).await?;
        Ok(KeyState {
            current,
            current_id,
            versions,
        })
    }

    fn next_seq(&self) -> i64 {
        self.versions.first().map_or(1, |v| v.seq + 1)
    }

    /// Moves the current copies to `object_versions` (their bytes stay charged).
    async fn archive_current(&mut self, tx: &mut dyn TxAdapter, key: &str) -> Result<()> {
        let Some(first) = self.current.first() else {
            return Ok(());
        };
        let archived = VersionCopy {
            version_id: self
                .current_id
                .take()
                .unwrap_or_else(|| NULL_VERSION_ID.to_owned()),
            seq: self.next_seq(),
            backend_name: Some(first.backend_name.clone()),
            size_bytes: first.size_bytes,
            storage_key: first.storage_key.clone(),
        };
        tx.archive_current_copies(key, &archived.version_id, archived.seq)
            .await?;
        tx.delete_object_copies(key).await?;
        self.versions.insert(0, archived);
        self.current.clear();
        Ok(())
    }

    /// Drops the current copies: their bytes leave the ledger.
    async fn drop_current(
        &mut self,
        tx: &mut dyn TxAdapter,
        key: &str,
        tally: &mut Tally,
        why: &str,
    ) -> Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        tx.delete_object_copies(key).await?;
        for c in self.current.drain(..) {
            tally.drop_copy(key, &c.backend_name, &c.storage_key, c.size_bytes, why);
        }
        self.current_id = None;
        Ok(())
    }

    /// Drops every noncurrent row of `version_id`: a data version's bytes leave the ledger.
    /// Returns whether any row was a delete marker, or `None` when there was no such row.
    pub(super) async fn drop_noncurrent(
        &mut self,
        tx: &mut dyn TxAdapter,
        key: &str,
        version_id: &str,
        tally: &mut Tally,
    ) -> Result<Option<bool>> {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.versions)
            .into_iter()
            .partition(|v| v.version_id == version_id);
        self.versions = keep;
        if gone.is_empty() {
            return Ok(None);
        }
        tx.delete_version_rows(key, version_id).await?;
        let mut marker = false;
        for v in &gone {
            match &v.backend_name {
                Some(b) => tally.drop_copy(key, b, &v.storage_key, v.size_bytes, "version deleted"),
                None => marker = true,
            }
        }
        Ok(Some(marker))
    }

    /// With no current copies, makes the newest noncurrent version current when it holds data
    /// (a delete marker stays where it is: it is what hides the key).
    pub(super) async fn promote_if_exposed(
        &mut self,
        tx: &mut dyn TxAdapter,
        key: &str,
    ) -> Result<()> {
        if !self.current.is_empty() {
            return Ok(());
        }
        let Some(newest) = self.versions.first() else {
            return Ok(());
        };
        if newest.is_delete_marker() {
            return Ok(());
        }
        let id = newest.version_id.clone();
        tx.restore_version(key, &id).await?;
        tx.delete_version_rows(key, &id).await?;
        self.versions.retain(|v| v.version_id != id);
        Ok(())
    }
}

/// The tail of a commit into a versioned bucket, after the key and bucket locks, the intent
/// check and the precondition (see [`super::objects::record_object_in_bucket`]): the current
/// version becomes noncurrent (Enabled) or, when it is the `null` version, is replaced
/// (Suspended, its bytes queued); a noncurrent `null` version is replaced too when suspended.
/// Returns the displaced copies and the new version's id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_versioned(
    tx: &mut dyn TxAdapter,
    instance: &str,
    state: Versioning,
    new_id: &str,
    key: &str,
    backend: &str,
    size: i64,
    form: &StoredForm,
    existing: Vec<ExistingCopy>,
    intent_id: Option<&str>,
) -> Result<(Vec<DeletedCopy>, String)> {
    let mut st = KeyState::load(tx, key, existing).await?;
    let mut tally = Tally::default();
    let version_id = match state {
        Versioning::Suspended => {
            if st.current_id.as_deref() == Some(NULL_VERSION_ID) {
                st.drop_current(tx, key, &mut tally, "overwritten").await?;
            } else {
                st.archive_current(tx, key).await?;
            }
            st.drop_noncurrent(tx, key, NULL_VERSION_ID, &mut tally)
                .await?;
            NULL_VERSION_ID.to_owned()
        }
        _ => {
            st.archive_current(tx, key).await?;
            new_id.to_owned()
        }
    };
    let row = ObjectLocation {
        last_scrubbed_at: None,
        object_key: key.to_owned(),
        backend_name: backend.to_owned(),
        size_bytes: size,
        created_at: Timestamp::ZERO,
        form: form.normalized(),
    };
    tx.insert_object_location(&row).await?;
    if version_id != NULL_VERSION_ID {
        tx.set_current_version_id(key, Some(&version_id)).await?;
    }
    *tally.used.entry(backend.to_owned()).or_default() += size;
    if let Some(id) = intent_id {
        tx.delete_pending(id)
            .await
            .map_err(|e| e.context("clear pending intent"))?;
    }
    let displaced = tally.apply(tx, instance).await?;
    Ok((displaced, version_id))
}

pub(super) struct DeleteIn<'a> {
    pub(super) instance: &'a str,
    pub(super) bucket: &'a str,
    pub(super) key: &'a str,
    pub(super) version_id: Option<&'a str>,
    pub(super) new_id: String,
}

#[async_trait]
impl TxBody for DeleteIn<'_> {
    type Output = DeleteOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<DeleteOutcome> {
        let key = self.key;
        tx.acquire_key_lock(key).await?;
        let Some(state) = tx.lock_bucket_versioning(self.bucket).await? else {
            return Err(StoreError::BucketNotFound {
                bucket: self.bucket.to_owned(),
            });
        };
        let existing = tx.get_existing_copies_for_update(key).await?;
        let mut tally = Tally::default();
        let mut out = DeleteOutcome::default();
        match (self.version_id, state) {
            (None, Versioning::Unversioned) => {
                // The original contract: every copy's bytes are queued.
                for c in &existing {
                    tally.drop_copy(
                        key,
                        &c.backend_name,
                        &c.storage_key,
                        c.size_bytes,
                        "deleted",
                    );
                }
                if !existing.is_empty() {
                    tx.delete_object_copies(key).await?;
                }
            }
            (None, _) => {
                let mut st = KeyState::load(tx, key, existing).await?;
                let marker_id = if state == Versioning::Suspended {
                    if st.current_id.as_deref() == Some(NULL_VERSION_ID) {
                        st.drop_current(tx, key, &mut tally, "deleted").await?;
                    } else {
                        st.archive_current(tx, key).await?;
                    }
                    st.drop_noncurrent(tx, key, NULL_VERSION_ID, &mut tally)
                        .await?;
                    NULL_VERSION_ID.to_owned()
                } else {
                    st.archive_current(tx, key).await?;
                    self.new_id.clone()
                };
                tx.insert_delete_marker(key, &marker_id, st.next_seq())
                    .await?;
                out.version_id = Some(marker_id);
                out.delete_marker = true;
            }
            (Some(v), _) => {
                let mut st = KeyState::load(tx, key, existing).await?;
                if st.current_id.as_deref() == Some(v) {
                    st.drop_current(tx, key, &mut tally, "version deleted")
                        .await?;
                } else if let Some(marker) = st.drop_noncurrent(tx, key, v, &mut tally).await? {
                    out.delete_marker = marker;
                }
                st.promote_if_exposed(tx, key).await?;
                out.version_id = Some(v.to_owned());
            }
        }
        out.removed = tally.apply(tx, self.instance).await?;
        Ok(out)
    }
}

/// Deletes `key` of `bucket` as S3's DeleteObject does (DESIGN decision 25), in one
/// transaction under the key lock and the bucket's row lock:
///
/// - no `version_id`, unversioned bucket: every copy is removed and its bytes queued (the
///   original contract); an absent key is not an error (nothing changes);
/// - no `version_id`, versioning enabled: the current version becomes noncurrent (its bytes
///   stay charged) and a new delete marker becomes the newest version, even when the key was
///   already deleted;
/// - no `version_id`, suspended: as enabled, but the marker is the `null` version, replacing
///   any `null` version (whose bytes are queued);
/// - `version_id`: that version alone is removed (its bytes queued and debited); when it was
///   current, or a delete marker hiding the key, the newest remaining data version becomes
///   current (deleting the marker undeletes). An unknown version id changes nothing.
///
/// `BucketNotFound` when the bucket is gone; the key must be a key of the bucket.
#[tracing::instrument(name = "delete_object_in_bucket", level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
pub async fn delete_object_in_bucket<R: Runner + ?Sized>(
    runner: &R,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<DeleteOutcome> {
    super::objects::check_bucket_key(bucket, key)?;
    if let Some(v) = version_id {
        check_version_id(v)?;
    }
    with_tx_val(
        runner,
        &DeleteIn {
            instance: runner.instance_id(),
            bucket,
            key,
            version_id,
            new_id: new_version_id(),
        },
    )
    .await
}

struct MoveVersion<'a> {
    instance: &'a str,
    key: &'a str,
    version_id: &'a str,
    from: &'a str,
    to: &'a str,
    expected: &'a str,
}

#[async_trait]
impl TxBody for MoveVersion<'_> {
    type Output = MoveOutcome;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<MoveOutcome> {
        tx.acquire_key_lock(self.key).await?;
        let rows = tx.key_versions_for_update(self.key).await?;
        let mine = |b: &str| {
            rows.iter()
                .find(|v| v.version_id == self.version_id && v.backend_name.as_deref() == Some(b))
        };
        // Gone from object_versions: the version was deleted, moved already, or became current
        // again (a deletion of the current version promoted it); either way not ours to move.
        let Some(src) = mine(self.from) else {
            return Ok(MoveOutcome::SourceGone);
        };
        let current = if src.storage_key.is_empty() {
            self.key
        } else {
            src.storage_key.as_str()
        };
        if current != self.expected {
            return Ok(MoveOutcome::VersionChanged {
                current_storage_key: current.to_owned(),
            });
        }
        if mine(self.to).is_some() {
            return Ok(MoveOutcome::TargetHasCopy);
        }
        let (size, storage_key) = (src.size_bytes, src.storage_key.clone());
        // The row travels whole (stored form, created_at, seq): a move is not a new version.
        if tx
            .move_version_copy(self.key, self.version_id, self.from, self.to)
            .await?
            == 0
        {
            return Err(StoreError::UnknownBackend {
                backend: self.to.to_owned(),
            });
        }
        let mut deltas = QuotaDeltas::new();
        deltas.insert(self.from.to_owned(), -size);
        deltas.insert(self.to.to_owned(), size);
        // The source's bytes stay on the source backend until deleted: outbox.
        let entry = orphan_entry(self.key, self.from, &storage_key, size, "moved");
        let mut orphan = QuotaDeltas::new();
        let mut source = enqueue_orphans(tx, self.instance, vec![entry], &mut orphan).await?;
        apply_ledger_deltas(tx, &deltas, &orphan).await?;
        Ok(MoveOutcome::Moved {
            bytes: size,
            source: source.remove(0),
        })
    }
}

/// Moves the copy of noncurrent version `version_id` of `key` from one backend to another,
/// as [`super::move_object_location`] moves a current copy: only while that copy is still a
/// noncurrent copy of the version on `from` at `expected_storage_key` (the path the caller
/// read before copying the bytes to the same path on `to`), every column carried over. The
/// quota moves exactly in the same transaction (the target's charge guarded: `NoSpaceAvailable`
/// rolls back), and the source's bytes are enqueued for cleanup with a claim held by this store
/// (charged to the source's `orphan_bytes`), returned in [`MoveOutcome::Moved`]. Otherwise,
/// with nothing changed: `SourceGone` (the version was deleted, became current again, or has
/// no copy on `from`), `VersionChanged` (another path), `TargetHasCopy` (the version already
/// has a copy on `to`), checked in that order under the key lock. `from == to` ⇒
/// `InvalidInput`; `to` without a quota row ⇒ `UnknownBackend`.
#[tracing::instrument(name = "move_version_location", level = "debug", skip_all, fields(key = %key, version = %version_id, from = %from, to = %to))]
pub async fn move_version_location<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    version_id: &str,
    from: &str,
    to: &str,
    expected_storage_key: &str,
) -> Result<MoveOutcome> {
    validate::key(key)?;
    check_version_id(version_id)?;
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
        &MoveVersion {
            instance: runner.instance_id(),
            key,
            version_id,
            from,
            to,
            expected: expected_storage_key,
        },
    )
    .await
}

/// The bound where a listing resumes after `key_marker` / `version_id_marker` (S3's rules: no
/// version marker ⇒ after every version of the key marker; an unknown one ⇒ likewise).
async fn resume_bound<R: VersionStore + ?Sized>(
    reader: &R,
    key_marker: &str,
    version_id_marker: &str,
) -> Result<(String, i64)> {
    if key_marker.is_empty() {
        return Ok((String::new(), CURRENT_SEQ));
    }
    if version_id_marker.is_empty() {
        return Ok((key_marker.to_owned(), i64::MIN));
    }
    match reader
        .get_object_version(key_marker, version_id_marker)
        .await
    {
        Ok(v) => Ok((key_marker.to_owned(), v.seq - 1)),
        Err(StoreError::VersionNotFound { .. }) => Ok((key_marker.to_owned(), i64::MIN)),
        Err(e) => Err(e),
    }
}

/// One page of ListObjectVersions over ledger keys starting with `prefix`, in S3 order (key
/// ascending, newest version first): versions and delete markers of each key, common prefixes
/// rolled up at `delimiter` (empty = none), resuming after `key_marker` / `version_id_marker`.
/// Versions and prefixes share `max_keys` (≤ 0 ⇒ 1000, capped at 1000). Markers and prefixes
/// are ledger keys (`<bucket>/…`).
pub async fn list_object_versions<R: VersionStore + ?Sized>(
    reader: &R,
    prefix: &str,
    delimiter: &str,
    key_marker: &str,
    version_id_marker: &str,
    max_keys: i64,
) -> Result<VersionListing> {
    validate::prefix("prefix", prefix)?;
    validate::prefix("delimiter", delimiter)?;
    validate::prefix("key marker", key_marker)?;
    validate::prefix("version-id marker", version_id_marker)?;
    let max = validate::limit(
        max_keys,
        super::listing::DEFAULT_MAX_KEYS,
        super::listing::MAX_MAX_KEYS,
    );
    let (mut after_key, mut max_seq) = resume_bound(reader, key_marker, version_id_marker).await?;
    // Resuming at a common prefix skips its whole group.
    let marker_is_prefix = !delimiter.is_empty()
        && after_key.starts_with(prefix)
        && after_key[prefix.len()..]
            .find(delimiter)
            .is_some_and(|p| prefix.len() + p + delimiter.len() == after_key.len());
    if marker_is_prefix {
        match super::listing::prefix_successor(&after_key) {
            Some(s) => {
                after_key = s;
                max_seq = CURRENT_SEQ;
            }
            None => return Ok(VersionListing::default()),
        }
    }
    let mut out = VersionListing::default();
    let mut entries = 0usize;
    loop {
        let rows = reader
            .list_version_entries(prefix, &after_key, max_seq, max + 1)
            .await?;
        let fetched = rows.len();
        let mut jumped = false;
        for v in rows {
            if entries == max {
                out.is_truncated = true;
                return Ok(out);
            }
            let rolled = if delimiter.is_empty() {
                None
            } else {
                v.object_key[prefix.len()..]
                    .find(delimiter)
                    .map(|p| v.object_key[..prefix.len() + p + delimiter.len()].to_owned())
            };
            if let Some(cp) = rolled {
                entries += 1;
                out.next_key_marker = cp.clone();
                out.next_version_id_marker.clear();
                out.common_prefixes.push(cp.clone());
                match super::listing::prefix_successor(&cp) {
                    Some(s) => {
                        after_key = s;
                        max_seq = CURRENT_SEQ;
                        jumped = true;
                        break;
                    }
                    None => return Ok(out),
                }
            }
            entries += 1;
            out.next_key_marker = v.object_key.clone();
            out.next_version_id_marker = v.version_id.clone();
            after_key = v.object_key.clone();
            max_seq = v.seq - 1;
            out.versions.push(v);
        }
        if !jumped && fetched <= max {
            // The scan is exhausted: nothing follows.
            out.next_key_marker.clear();
            out.next_version_id_marker.clear();
            return Ok(out);
        }
    }
}
