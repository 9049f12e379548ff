//! The recording fake engine: a `Runner` whose transactions keep an in-memory copy of the
//! state, log every primitive call and can be told to fail the next call of a primitive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use s3o_core::engine::{Runner, Transaction, TxAdapter};
use s3o_core::tx::{
    BackendTable, BackendTx, BucketTx, CleanupTx, EncryptionTx, MultipartTx, ObjectsTx, PendingTx,
    QuotaTx, VersionsTx,
};
use s3o_core::*;

#[derive(Clone, Default)]
pub(crate) struct State {
    pub(crate) copies: BTreeMap<(String, String), ObjectLocation>,
    /// backend -> (used, limit, orphan)
    pub(crate) quotas: BTreeMap<String, (i64, i64, i64)>,
    pub(crate) pending: BTreeMap<String, PendingObject>,
    pub(crate) queue: BTreeMap<i64, CleanupQueueRow>,
    /// Queue row id -> (claimant, claim time).
    pub(crate) claims: BTreeMap<i64, (String, Timestamp)>,
    pub(crate) dlq: Vec<CleanupQueueRow>,
    /// Bucket names.
    pub(crate) buckets: std::collections::BTreeSet<String>,
}

#[derive(Clone, Default)]
pub(crate) struct Fake {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    pub(crate) begins: Arc<AtomicUsize>,
    /// Primitive name -> errors to return on its next calls (front first).
    pub(crate) failures: Arc<Mutex<BTreeMap<&'static str, Vec<StoreError>>>>,
    pub(crate) fail_begin: bool,
    pub(crate) fail_commit: bool,
}

pub(crate) struct FakeTx {
    pub(crate) fake: Fake,
    pub(crate) work: State,
}

impl Fake {
    pub(crate) fn with_backends(backends: &[(&str, i64)]) -> Self {
        let f = Fake::default();
        for (b, limit) in backends {
            f.state
                .lock()
                .unwrap()
                .quotas
                .insert((*b).to_owned(), (0, *limit, 0));
        }
        f
    }
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    pub(crate) fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
    pub(crate) fn fail_next(&self, primitive: &'static str, e: StoreError) {
        self.failures
            .lock()
            .unwrap()
            .entry(primitive)
            .or_default()
            .push(e);
    }
    pub(crate) fn used(&self, b: &str) -> i64 {
        self.state.lock().unwrap().quotas[b].0
    }
    pub(crate) fn orphan(&self, b: &str) -> i64 {
        self.state.lock().unwrap().quotas[b].2
    }
    pub(crate) fn put(&self, key: &str, backend: &str, size: i64, created: i64, form: StoredForm) {
        let mut s = self.state.lock().unwrap();
        s.copies.insert(
            (key.into(), backend.into()),
            ObjectLocation {
                last_scrubbed_at: None,
                object_key: key.into(),
                backend_name: backend.into(),
                size_bytes: size,
                created_at: Timestamp::from_micros(created),
                form,
            },
        );
        s.quotas.get_mut(backend).unwrap().0 += size;
    }
}

impl FakeTx {
    fn note(&self, call: String) -> Result<()> {
        let name = call.split('(').next().unwrap_or_default().to_owned();
        self.fake.log.lock().unwrap().push(call);
        let mut f = self.fake.failures.lock().unwrap();
        if let Some(list) = f.get_mut(name.as_str())
            && !list.is_empty()
        {
            return Err(list.remove(0));
        }
        Ok(())
    }
}

pub(crate) fn deadlock() -> StoreError {
    StoreError::database(DbErrorKind::Deadlock, "fake", "40P01")
}

#[async_trait]
impl PendingTx for FakeTx {
    async fn claim_pending(&mut self, intent_id: &str) -> Result<Option<PendingObject>> {
        self.note(format!("claim_pending({intent_id})"))?;
        Ok(self.work.pending.get(intent_id).cloned())
    }
    async fn insert_pending(&mut self, p: &PendingObject) -> Result<()> {
        self.note(format!("insert_pending({})", p.intent_id))?;
        self.work.pending.insert(p.intent_id.clone(), p.clone());
        Ok(())
    }
    async fn delete_pending(&mut self, intent_id: &str) -> Result<()> {
        self.note(format!("delete_pending({intent_id})"))?;
        self.work.pending.remove(intent_id);
        Ok(())
    }
    async fn delete_pending_by_backend(&mut self, backend: &str) -> Result<()> {
        self.note(format!("delete_pending_by_backend({backend})"))?;
        self.work.pending.retain(|_, p| p.backend_name != backend);
        Ok(())
    }
}

#[async_trait]
impl ObjectsTx for FakeTx {
    async fn get_existing_copies_for_update(&mut self, key: &str) -> Result<Vec<ExistingCopy>> {
        self.note(format!("get_existing_copies_for_update({key})"))?;
        Ok(self
            .work
            .copies
            .values()
            .filter(|c| c.object_key == key)
            .map(|c| ExistingCopy {
                backend_name: c.backend_name.clone(),
                size_bytes: c.size_bytes,
                created_at: c.created_at,
                encrypted: c.form.encrypted,
                has_dek: c.form.has_dek(),
                storage_key: c.form.storage_key.clone(),
                etag: c.form.etag.clone(),
            })
            .collect())
    }
    async fn insert_object_location(&mut self, loc: &ObjectLocation) -> Result<()> {
        self.note(format!(
            "insert_object_location({},{})",
            loc.object_key, loc.backend_name
        ))?;
        if !self.work.quotas.contains_key(&loc.backend_name) {
            return Err(StoreError::UnknownBackend {
                backend: loc.backend_name.clone(),
            });
        }
        let mut row = loc.clone();
        if row.created_at.is_zero() {
            row.created_at = Timestamp::from_micros(1_000);
        }
        self.work
            .copies
            .insert((loc.object_key.clone(), loc.backend_name.clone()), row);
        Ok(())
    }
    async fn delete_object_copies(&mut self, key: &str) -> Result<()> {
        self.note(format!("delete_object_copies({key})"))?;
        self.work.copies.retain(|(k, _), _| k != key);
        Ok(())
    }
    async fn get_copies_for_keys_for_update(
        &mut self,
        keys: &[String],
    ) -> Result<Vec<KeyedExistingCopy>> {
        self.note(format!(
            "get_copies_for_keys_for_update({})",
            keys.join(",")
        ))?;
        Ok(self
            .work
            .copies
            .values()
            .filter(|c| keys.contains(&c.object_key))
            .map(|c| KeyedExistingCopy {
                object_key: c.object_key.clone(),
                backend_name: c.backend_name.clone(),
                size_bytes: c.size_bytes,
                storage_key: c.form.storage_key.clone(),
            })
            .collect())
    }
    async fn delete_objects_by_keys(&mut self, keys: &[String]) -> Result<()> {
        self.note(format!("delete_objects_by_keys({})", keys.join(",")))?;
        self.work.copies.retain(|(k, _), _| !keys.contains(k));
        Ok(())
    }
    async fn check_object_exists_on_backend(&mut self, key: &str, backend: &str) -> Result<bool> {
        self.note(format!("check_object_exists_on_backend({key},{backend})"))?;
        Ok(self
            .work
            .copies
            .contains_key(&(key.to_owned(), backend.to_owned())))
    }
    async fn lock_object_on_backend(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<Option<ObjectLocation>> {
        self.note(format!("lock_object_on_backend({key},{backend})"))?;
        Ok(self
            .work
            .copies
            .get(&(key.to_owned(), backend.to_owned()))
            .cloned())
    }
    async fn delete_object_from_backend(&mut self, key: &str, backend: &str) -> Result<()> {
        self.note(format!("delete_object_from_backend({key},{backend})"))?;
        self.work
            .copies
            .remove(&(key.to_owned(), backend.to_owned()));
        Ok(())
    }
    async fn insert_object_location_if_not_exists(&mut self, loc: &ObjectLocation) -> Result<bool> {
        self.note(format!(
            "insert_object_location_if_not_exists({},{})",
            loc.object_key, loc.backend_name
        ))?;
        let k = (loc.object_key.clone(), loc.backend_name.clone());
        if self.work.copies.contains_key(&k) {
            return Ok(false);
        }
        self.work.copies.insert(k, loc.clone());
        Ok(true)
    }
    async fn insert_replica_conditional(
        &mut self,
        key: &str,
        target: &str,
        source: &str,
    ) -> Result<Option<i64>> {
        self.note(format!(
            "insert_replica_conditional({key},{target},{source})"
        ))?;
        let Some(src) = self
            .work
            .copies
            .get(&(key.to_owned(), source.to_owned()))
            .cloned()
        else {
            return Ok(None);
        };
        let t = (key.to_owned(), target.to_owned());
        if self.work.copies.contains_key(&t) {
            return Ok(None);
        }
        let size = src.size_bytes;
        self.work.copies.insert(
            t,
            ObjectLocation {
                last_scrubbed_at: None,
                backend_name: target.into(),
                ..src
            },
        );
        Ok(Some(size))
    }
    async fn update_object_form(
        &mut self,
        key: &str,
        backend: &str,
        size_bytes: i64,
        form: &StoredForm,
    ) -> Result<bool> {
        self.note(format!("update_object_form({key},{backend},{size_bytes})"))?;
        match self
            .work
            .copies
            .get_mut(&(key.to_owned(), backend.to_owned()))
        {
            Some(c) => {
                c.size_bytes = size_bytes;
                c.form = form.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn set_object_tags(
        &mut self,
        key: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<u64> {
        self.note(format!("set_object_tags({key})"))?;
        let mut n = 0;
        for ((k, _), c) in self.work.copies.iter_mut() {
            if k == key {
                c.form.tags = tags.clone();
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait]
impl CleanupTx for FakeTx {
    async fn sum_and_delete_cleanup_queue_rows(
        &mut self,
        key: &str,
        backend: &str,
    ) -> Result<(i64, i64)> {
        self.note(format!(
            "sum_and_delete_cleanup_queue_rows({key},{backend})"
        ))?;
        let ids: Vec<i64> = self
            .work
            .queue
            .values()
            .filter(|r| r.object_key == key && r.backend_name == backend)
            .map(|r| r.id)
            .collect();
        let mut bytes = 0;
        for id in &ids {
            bytes += self.work.queue.remove(id).unwrap().size_bytes;
        }
        Ok((ids.len() as i64, bytes))
    }
    async fn get_cleanup_queue_row(&mut self, id: i64) -> Result<CleanupQueueRow> {
        self.note(format!("get_cleanup_queue_row({id})"))?;
        self.work
            .queue
            .get(&id)
            .cloned()
            .ok_or(StoreError::CleanupItemNotFound { id })
    }
    async fn insert_cleanup_dlq(&mut self, row: &CleanupQueueRow) -> Result<()> {
        self.note(format!("insert_cleanup_dlq({})", row.id))?;
        self.work.dlq.push(row.clone());
        Ok(())
    }
    async fn delete_cleanup_item(&mut self, id: i64) -> Result<()> {
        self.note(format!("delete_cleanup_item({id})"))?;
        self.work.queue.remove(&id);
        Ok(())
    }
    async fn delete_cleanup_dlq_row(&mut self, id: i64) -> Result<Option<(String, i64)>> {
        self.note(format!("delete_cleanup_dlq_row({id})"))?;
        let pos = self.work.dlq.iter().position(|r| r.id == id);
        Ok(pos.map(|p| {
            let r = self.work.dlq.remove(p);
            (r.backend_name, r.size_bytes)
        }))
    }
    async fn enqueue_cleanup_claimed(
        &mut self,
        entry: &CleanupEntry,
        claimed_by: &str,
    ) -> Result<CleanupClaim> {
        self.note(format!(
            "enqueue_cleanup_claimed({},{},{})",
            entry.object_key, entry.backend_name, entry.size_bytes
        ))?;
        if !self.work.quotas.contains_key(&entry.backend_name) {
            return Err(StoreError::UnknownBackend {
                backend: entry.backend_name.clone(),
            });
        }
        let id = self.work.queue.keys().next_back().copied().unwrap_or(0) + 1;
        let at = Timestamp::from_micros(5_000 + id);
        self.work.queue.insert(
            id,
            CleanupQueueRow {
                id,
                backend_name: entry.backend_name.clone(),
                object_key: entry.object_key.clone(),
                reason: entry.reason.clone(),
                size_bytes: entry.size_bytes,
                attempts: 0,
                created_at: at,
                last_error: String::new(),
                storage_key: entry.storage_key.clone(),
            },
        );
        self.work.claims.insert(id, (claimed_by.to_owned(), at));
        Ok(CleanupClaim {
            id,
            claimed_by: claimed_by.to_owned(),
            claimed_at: at,
        })
    }
    async fn lock_claimed_cleanup_row(
        &mut self,
        claim: &CleanupClaim,
    ) -> Result<Option<CleanupQueueRow>> {
        self.note(format!("lock_claimed_cleanup_row({})", claim.id))?;
        let current =
            self.work.claims.get(&claim.id) == Some(&(claim.claimed_by.clone(), claim.claimed_at));
        Ok(current
            .then(|| self.work.queue.get(&claim.id).cloned())
            .flatten())
    }
    async fn reschedule_cleanup_row(
        &mut self,
        id: i64,
        _backoff: std::time::Duration,
        last_error: &str,
    ) -> Result<()> {
        self.note(format!("reschedule_cleanup_row({id})"))?;
        if let Some(r) = self.work.queue.get_mut(&id) {
            r.attempts += 1;
            last_error.clone_into(&mut r.last_error);
        }
        self.work.claims.remove(&id);
        Ok(())
    }
}

#[async_trait]
impl QuotaTx for FakeTx {
    async fn increment_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        self.note(format!("increment_backend_quota({backend},{delta})"))?;
        let Some(q) = self.work.quotas.get_mut(backend) else {
            return Err(StoreError::UnknownBackend {
                backend: backend.into(),
            });
        };
        if q.1 != 0 && q.0 + q.2 + delta > q.1 {
            return Err(StoreError::NoSpaceAvailable);
        }
        q.0 += delta;
        Ok(())
    }
    async fn decrement_backend_quota(&mut self, backend: &str, delta: i64) -> Result<()> {
        self.note(format!("decrement_backend_quota({backend},{delta})"))?;
        if let Some(q) = self.work.quotas.get_mut(backend) {
            q.0 = (q.0 - delta).max(0);
        }
        Ok(())
    }
    async fn adjust_backend_quota_unguarded(&mut self, backend: &str, delta: i64) -> Result<()> {
        self.note(format!("adjust_backend_quota_unguarded({backend},{delta})"))?;
        if let Some(q) = self.work.quotas.get_mut(backend) {
            q.0 = (q.0 + delta).max(0);
        }
        Ok(())
    }
    async fn decrement_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()> {
        self.note(format!("decrement_orphan_bytes({backend},{delta})"))?;
        if let Some(q) = self.work.quotas.get_mut(backend) {
            q.2 = (q.2 - delta).max(0);
        }
        Ok(())
    }
    async fn increment_orphan_bytes(&mut self, backend: &str, delta: i64) -> Result<()> {
        self.note(format!("increment_orphan_bytes({backend},{delta})"))?;
        if let Some(q) = self.work.quotas.get_mut(backend) {
            q.2 += delta;
        }
        Ok(())
    }
    async fn all_backend_bytes_used(&mut self) -> Result<BTreeMap<String, i64>> {
        self.note("all_backend_bytes_used()".into())?;
        Ok(self
            .work
            .quotas
            .iter()
            .map(|(b, q)| (b.clone(), q.0))
            .collect())
    }
    async fn sum_charged_bytes_by_backend(&mut self) -> Result<BTreeMap<String, i64>> {
        // The fake holds no multipart uploads: the charge is the copies'.
        self.note("sum_charged_bytes_by_backend()".into())?;
        let mut m = BTreeMap::new();
        for c in self.work.copies.values() {
            *m.entry(c.backend_name.clone()).or_default() += c.size_bytes;
        }
        Ok(m)
    }
    async fn set_backend_bytes_used(&mut self, backend: &str, value: i64) -> Result<()> {
        self.note(format!("set_backend_bytes_used({backend},{value})"))?;
        if let Some(q) = self.work.quotas.get_mut(backend) {
            q.0 = value;
        }
        Ok(())
    }
}

/// The fake holds no multipart uploads: every upload is unknown (the multipart operations
/// are covered by the conformance suite on both engines).
#[async_trait]
impl MultipartTx for FakeTx {
    async fn lock_multipart_upload(&mut self, upload_id: &str) -> Result<Option<(String, String)>> {
        self.note(format!("lock_multipart_upload({upload_id})"))?;
        Ok(None)
    }
    async fn get_part_bytes(&mut self, upload_id: &str) -> Result<Vec<PartBytes>> {
        self.note(format!("get_part_bytes({upload_id})"))?;
        Ok(Vec::new())
    }
    async fn upsert_part(
        &mut self,
        upload_id: &str,
        part_number: i32,
        _etag: &str,
        _size: i64,
        _form: &StoredForm,
    ) -> Result<()> {
        self.note(format!("upsert_part({upload_id},{part_number})"))?;
        Err(StoreError::MultipartUploadNotFound {
            upload_id: upload_id.to_owned(),
        })
    }
    async fn delete_multipart_upload_row(&mut self, upload_id: &str) -> Result<bool> {
        self.note(format!("delete_multipart_upload_row({upload_id})"))?;
        Ok(false)
    }
}

#[async_trait]
impl BackendTx for FakeTx {
    async fn delete_backend_rows(&mut self, table: BackendTable, backend: &str) -> Result<u64> {
        self.note(format!(
            "delete_backend_rows({},{backend})",
            table.table_name()
        ))?;
        let w = &mut self.work;
        let before = w.copies.len() + w.pending.len() + w.queue.len() + w.dlq.len();
        match table {
            BackendTable::CleanupQueue => w.queue.retain(|_, r| r.backend_name != backend),
            BackendTable::CleanupDlq => w.dlq.retain(|r| r.backend_name != backend),
            BackendTable::PendingObjects => w.pending.retain(|_, p| p.backend_name != backend),
            BackendTable::ObjectLocations => w.copies.retain(|(_, b), _| b != backend),
            BackendTable::MultipartUploads
            | BackendTable::BackendUsage
            | BackendTable::ObjectVersions => {}
        }
        let after = w.copies.len() + w.pending.len() + w.queue.len() + w.dlq.len();
        Ok((before - after) as u64)
    }
    async fn delete_backend_quota_row(&mut self, backend: &str) -> Result<bool> {
        self.note(format!("delete_backend_quota_row({backend})"))?;
        Ok(self.work.quotas.remove(backend).is_some())
    }
    async fn lock_backend_quota_row(&mut self, backend: &str) -> Result<bool> {
        self.note(format!("lock_backend_quota_row({backend})"))?;
        Ok(self.work.quotas.contains_key(backend))
    }
}

#[async_trait]
impl BucketTx for FakeTx {
    async fn lock_bucket(&mut self, name: &str, mode: BucketLock) -> Result<bool> {
        self.note(format!("lock_bucket({name},{mode:?})"))?;
        Ok(self.work.buckets.contains(name))
    }
    async fn bucket_busy(&mut self, prefix: &str) -> Result<Option<BucketBusy>> {
        self.note(format!("bucket_busy({prefix})"))?;
        if self.work.copies.keys().any(|(k, _)| k.starts_with(prefix)) {
            return Ok(Some(BucketBusy::Objects));
        }
        if self
            .work
            .pending
            .values()
            .any(|p| p.object_key.starts_with(prefix))
        {
            return Ok(Some(BucketBusy::PendingWrites));
        }
        Ok(None)
    }
    async fn delete_bucket_row(&mut self, name: &str) -> Result<bool> {
        self.note(format!("delete_bucket_row({name})"))?;
        Ok(self.work.buckets.remove(name))
    }
    async fn insert_bucket_if_absent(&mut self, spec: &BucketSpec) -> Result<bool> {
        self.note(format!("insert_bucket_if_absent({})", spec.name))?;
        Ok(self.work.buckets.insert(spec.name.clone()))
    }
    async fn update_bucket_config(&mut self, spec: &BucketSpec) -> Result<bool> {
        self.note(format!("update_bucket_config({})", spec.name))?;
        Ok(self.work.buckets.contains(&spec.name))
    }
}

/// The fake models unversioned buckets only: versioning is proven on the real engines (the
/// conformance suite); a versioned primitive reached here is a test bug.
fn unmodelled() -> StoreError {
    StoreError::invalid("fake engine", "versioning is not modelled")
}

/// Rotation and version conversion are proven on the real engines (the conformance suite).
#[async_trait]
impl EncryptionTx for FakeTx {
    async fn rewrap_key_row(
        &mut self,
        _: &WrappedKeyAt,
        _: &[u8],
        _: &[u8],
        _: &str,
    ) -> Result<bool> {
        Err(StoreError::invalid(
            "fake engine",
            "rotation is not modelled",
        ))
    }
    async fn update_version_copy_form(
        &mut self,
        _: &str,
        _: &str,
        _: &str,
        _: i64,
        _: &StoredForm,
    ) -> Result<bool> {
        Err(unmodelled())
    }
}

#[async_trait]
impl VersionsTx for FakeTx {
    async fn lock_bucket_versioning(&mut self, name: &str) -> Result<Option<Versioning>> {
        self.note(format!("lock_bucket_versioning({name})"))?;
        Ok(self
            .work
            .buckets
            .contains(name)
            .then_some(Versioning::Unversioned))
    }
    async fn current_version_id(&mut self, _key: &str) -> Result<Option<String>> {
        Err(unmodelled())
    }
    async fn key_versions_for_update(&mut self, _key: &str) -> Result<Vec<VersionCopy>> {
        Err(unmodelled())
    }
    async fn archive_current_copies(&mut self, _: &str, _: &str, _: i64) -> Result<u64> {
        Err(unmodelled())
    }
    async fn insert_delete_marker(&mut self, _: &str, _: &str, _: i64) -> Result<()> {
        Err(unmodelled())
    }
    async fn restore_version(&mut self, _: &str, _: &str) -> Result<u64> {
        Err(unmodelled())
    }
    async fn delete_version_rows(&mut self, _: &str, _: &str) -> Result<u64> {
        Err(unmodelled())
    }
    async fn set_current_version_id(&mut self, _: &str, _: Option<&str>) -> Result<()> {
        Err(unmodelled())
    }
}

#[async_trait]
impl TxAdapter for FakeTx {
    async fn acquire_key_lock(&mut self, key: &str) -> Result<()> {
        self.note(format!("acquire_key_lock({key})"))
    }
}

#[async_trait]
impl Transaction for FakeTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        self.fake.log.lock().unwrap().push("COMMIT".into());
        if self.fake.fail_commit {
            return Err(StoreError::database(
                DbErrorKind::Connection,
                "commit",
                "reset",
            ));
        }
        *self.fake.state.lock().unwrap() = self.work;
        Ok(())
    }
    async fn rollback(self: Box<Self>) -> Result<()> {
        self.fake.log.lock().unwrap().push("ROLLBACK".into());
        Ok(())
    }
}

#[async_trait]
impl Runner for Fake {
    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        self.begins.fetch_add(1, Ordering::SeqCst);
        if self.fail_begin {
            return Err(StoreError::database(
                DbErrorKind::Connection,
                "begin",
                "refused",
            ));
        }
        self.log.lock().unwrap().push("BEGIN".into());
        let work = self.state.lock().unwrap().clone();
        Ok(Box::new(FakeTx {
            fake: self.clone(),
            work,
        }))
    }
    fn instance_id(&self) -> &str {
        "fake-instance"
    }
}

pub(crate) fn plain() -> StoredForm {
    StoredForm::default()
}

pub(crate) fn quota_calls(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|c| c.contains("_backend_quota"))
        .cloned()
        .collect()
}
