//! Orchestration-order tests of s3o-core's operations against a hand-written recording
//! `TxAdapter`. No database: these pin which primitives each operation calls, in which
//! order, and what it does with their answers. Storage behaviour is tested on real engines
//! by the conformance suite.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use s3o_core::engine::{Runner, Transaction, TxAdapter, tx_fn, with_tx_val};
use s3o_core::tx::{BackendTable, BackendTx, CleanupTx, ObjectsTx, PendingTx, QuotaTx};
use s3o_core::*;

#[derive(Clone, Default)]
struct State {
    copies: BTreeMap<(String, String), ObjectLocation>,
    /// backend -> (used, limit, orphan)
    quotas: BTreeMap<String, (i64, i64, i64)>,
    pending: BTreeMap<String, PendingObject>,
    queue: BTreeMap<i64, CleanupQueueRow>,
    /// Queue row id -> (claimant, claim time).
    claims: BTreeMap<i64, (String, Timestamp)>,
    dlq: Vec<CleanupQueueRow>,
}

#[derive(Clone, Default)]
struct Fake {
    state: Arc<Mutex<State>>,
    log: Arc<Mutex<Vec<String>>>,
    begins: Arc<AtomicUsize>,
    /// Primitive name -> errors to return on its next calls (front first).
    failures: Arc<Mutex<BTreeMap<&'static str, Vec<StoreError>>>>,
    fail_begin: bool,
    fail_commit: bool,
}

struct FakeTx {
    fake: Fake,
    work: State,
}

impl Fake {
    fn with_backends(backends: &[(&str, i64)]) -> Self {
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
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
    fn fail_next(&self, primitive: &'static str, e: StoreError) {
        self.failures
            .lock()
            .unwrap()
            .entry(primitive)
            .or_default()
            .push(e);
    }
    fn used(&self, b: &str) -> i64 {
        self.state.lock().unwrap().quotas[b].0
    }
    fn orphan(&self, b: &str) -> i64 {
        self.state.lock().unwrap().quotas[b].2
    }
    fn put(&self, key: &str, backend: &str, size: i64, created: i64, form: StoredForm) {
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

fn deadlock() -> StoreError {
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
    async fn sum_object_sizes_by_backend(&mut self) -> Result<BTreeMap<String, i64>> {
        self.note("sum_object_sizes_by_backend()".into())?;
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
            BackendTable::MultipartUploads | BackendTable::BackendUsage => {}
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

fn plain() -> StoredForm {
    StoredForm::default()
}

fn quota_calls(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|c| c.contains("_backend_quota"))
        .cloned()
        .collect()
}

// ---------- with_tx_val ----------

#[tokio::test]
async fn with_tx_val_returns_value_on_success() {
    let f = Fake::default();
    let body = tx_fn(|_tx| Box::pin(async { Ok(42) }));
    assert_eq!(with_tx_val(&f, &body).await.unwrap(), 42);
    assert_eq!(f.log(), ["BEGIN", "COMMIT"]);
}

#[tokio::test]
async fn with_tx_val_drops_value_on_body_error_and_rolls_back() {
    let f = Fake::default();
    let body = tx_fn(|tx| {
        Box::pin(async move {
            tx.acquire_key_lock("k").await?;
            Err::<i32, _>(StoreError::NoSpaceAvailable)
        })
    });
    assert!(matches!(
        with_tx_val(&f, &body).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(f.log(), ["BEGIN", "acquire_key_lock(k)", "ROLLBACK"]);
}

#[tokio::test]
async fn with_tx_val_surfaces_runner_errors() {
    let f = Fake {
        fail_begin: true,
        ..Fake::default()
    };
    let body = tx_fn(|_tx| Box::pin(async { Ok(1) }));
    let err = with_tx_val(&f, &body).await.unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Connection));

    // A commit failure after a successful body drops the value too.
    let f = Fake {
        fail_commit: true,
        ..Fake::default()
    };
    assert!(with_tx_val(&f, &body).await.is_err());
    assert_eq!(f.log(), ["BEGIN", "COMMIT"]);
}

#[tokio::test]
async fn runner_retries_retryable_conflicts_a_bounded_number_of_times() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.fail_next("acquire_key_lock", deadlock());
    f.fail_next("acquire_key_lock", deadlock());
    let copies = ops::record_object(&f, "k", "a", 5, &plain(), None)
        .await
        .unwrap();
    assert!(copies.is_empty());
    assert_eq!(f.begins.load(Ordering::SeqCst), 3);
    assert_eq!(f.used("a"), 5);

    let f = Fake::with_backends(&[("a", 0)]);
    for _ in 0..10 {
        f.fail_next("acquire_key_lock", deadlock());
    }
    let err = ops::record_object(&f, "k", "a", 5, &plain(), None)
        .await
        .unwrap_err();
    assert_eq!(err.db_kind(), Some(DbErrorKind::Deadlock));
    assert_eq!(f.begins.load(Ordering::SeqCst), 5, "default max_attempts");
    assert_eq!(f.used("a"), 0);

    // Non-retryable errors are not retried.
    let f = Fake::with_backends(&[("a", 0)]);
    f.fail_next(
        "acquire_key_lock",
        StoreError::database(DbErrorKind::Other, "x", "y"),
    );
    assert!(
        ops::record_object(&f, "k", "a", 5, &plain(), None)
            .await
            .is_err()
    );
    assert_eq!(f.begins.load(Ordering::SeqCst), 1);
}

// ---------- quota deltas ----------

#[tokio::test]
async fn quota_deltas_apply_sorted_skip_zero_and_abort_on_first_error() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0), ("c", 0), ("d", 10)]);
    let mut deltas = ops::QuotaDeltas::new();
    deltas.insert("c".into(), 5);
    deltas.insert("a".into(), -3);
    deltas.insert("b".into(), 0);
    let body = tx_fn(move |tx| {
        let d = deltas.clone();
        Box::pin(async move { ops::apply_quota_deltas(tx, &d).await })
    });
    with_tx_val(&f, &body).await.unwrap();
    assert_eq!(
        quota_calls(&f.log()),
        [
            "decrement_backend_quota(a,3)",
            "increment_backend_quota(c,5)"
        ]
    );

    f.clear_log();
    let mut deltas = ops::QuotaDeltas::new();
    deltas.insert("d".into(), 11);
    deltas.insert("e".into(), -1);
    deltas.insert("c".into(), 1);
    let body = tx_fn(move |tx| {
        let d = deltas.clone();
        Box::pin(async move { ops::apply_quota_deltas(tx, &d).await })
    });
    assert!(matches!(
        with_tx_val(&f, &body).await,
        Err(StoreError::NoSpaceAvailable)
    ));
    assert_eq!(
        quota_calls(&f.log()),
        [
            "increment_backend_quota(c,1)",
            "increment_backend_quota(d,11)"
        ],
        "stops at the failing backend"
    );
    assert_eq!(f.used("c"), 5, "rolled back");
}

// ---------- record_object ----------

#[tokio::test]
async fn record_object_statement_order_and_net_charge() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 100, 10, plain());
    f.put("k", "b", 100, 11, plain());
    let displaced = ops::record_object(&f, "k", "a", 130, &plain(), Some("i1"))
        .await
        .unwrap();
    assert_eq!(
        displaced,
        [DeletedCopy {
            backend_name: "b".into(),
            size_bytes: 100,
            storage_key: "k".into(),
            cleanup: CleanupClaim {
                id: 1,
                claimed_by: "fake-instance".into(),
                claimed_at: Timestamp::from_micros(5_001),
            },
        }]
    );
    assert_eq!(
        f.log(),
        [
            "BEGIN",
            "acquire_key_lock(k)",
            "claim_pending(i1)",
            "get_existing_copies_for_update(k)",
            "delete_object_copies(k)",
            "insert_object_location(k,a)",
            "delete_pending(i1)",
            // The outbox row before any quota row; quota rows last, in backend order.
            "enqueue_cleanup_claimed(k,b,100)",
            "increment_backend_quota(a,30)",
            "decrement_backend_quota(b,100)",
            "increment_orphan_bytes(b,100)",
            "COMMIT"
        ]
    );
    assert_eq!((f.used("a"), f.used("b")), (130, 0));
    assert_eq!(
        f.orphan("b"),
        100,
        "displaced bytes charged in the same transaction"
    );
}

#[tokio::test]
async fn record_object_equal_size_overwrite_issues_no_quota_sql() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.put("k", "a", 100, 10, plain());
    let displaced = ops::record_object(&f, "k", "a", 100, &plain(), None)
        .await
        .unwrap();
    assert!(
        displaced.is_empty(),
        "same-backend copy is overwritten in place"
    );
    assert!(quota_calls(&f.log()).is_empty());
    // Shrinking overwrite decrements.
    ops::record_object(&f, "k", "a", 40, &plain(), None)
        .await
        .unwrap();
    assert_eq!(f.used("a"), 40);
}

#[tokio::test]
async fn record_object_normalises_form_and_rolls_back_on_no_space() {
    let f = Fake::with_backends(&[("a", 50)]);
    let form = StoredForm {
        key_id: "stale".into(),
        encryption_key: vec![1],
        ..plain()
    };
    ops::record_object(&f, "k", "a", 10, &form, None)
        .await
        .unwrap();
    let stored = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert!(stored.form.key_id.is_empty() && stored.form.encryption_key.is_empty());

    let before = f.state.lock().unwrap().copies.len();
    let err = ops::record_object(&f, "k2", "a", 41, &plain(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSpaceAvailable));
    assert_eq!(f.state.lock().unwrap().copies.len(), before);
}

#[tokio::test]
async fn invalid_input_opens_no_transaction() {
    let f = Fake::with_backends(&[("a", 0)]);
    let long = "x".repeat(1025);
    let bad: Vec<Result<Vec<DeletedCopy>>> = vec![
        ops::record_object(&f, "", "a", 1, &plain(), None).await,
        ops::record_object(&f, &long, "a", 1, &plain(), None).await,
        ops::record_object(&f, "a\0b", "a", 1, &plain(), None).await,
        ops::record_object(&f, "k", "a", -1, &plain(), None).await,
        ops::record_object(&f, "k", "", 1, &plain(), None).await,
    ];
    for r in bad {
        assert!(matches!(r, Err(StoreError::InvalidInput { .. })), "{r:?}");
    }
    assert!(matches!(
        ops::remove_excess_copy(&f, "k", "a", 0).await,
        Err(StoreError::InvalidInput { .. })
    ));
    let too_many = vec!["k".to_string(); 1001];
    assert!(matches!(
        ops::delete_objects_batch(&f, &too_many).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(f.begins.load(Ordering::SeqCst), 0);
}

// ---------- delete paths ----------

#[tokio::test]
async fn delete_object_locks_key_first_and_reports_not_found() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    assert!(matches!(
        ops::delete_object(&f, "nope").await,
        Err(StoreError::ObjectNotFound { .. })
    ));
    f.put("k", "b", 7, 1, plain());
    f.put("k", "a", 7, 2, plain());
    f.clear_log();
    let copies = ops::delete_object(&f, "k").await.unwrap();
    assert_eq!(copies.len(), 2);
    let log = f.log();
    assert_eq!(log[1], "acquire_key_lock(k)");
    assert_eq!(
        quota_calls(&log),
        [
            "decrement_backend_quota(a,7)",
            "decrement_backend_quota(b,7)"
        ]
    );
}

#[tokio::test]
async fn delete_objects_batch_empty_input_opens_no_transaction() {
    let f = Fake::default();
    assert!(ops::delete_objects_batch(&f, &[]).await.unwrap().is_empty());
    assert_eq!(f.begins.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn delete_objects_batch_locks_sorted_unique_keys_and_debits_once_per_backend() {
    let f = Fake::with_backends(&[("backend-a", 0), ("backend-b", 0)]);
    f.put("x", "backend-a", 100, 1, plain());
    f.put("y", "backend-a", 50, 1, plain());
    f.put("y", "backend-b", 100, 2, plain());
    let keys: Vec<String> = ["y", "x", "y", "missing"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = ops::delete_objects_batch(&f, &keys).await.unwrap();
    assert_eq!(out.keys().cloned().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(out["y"].len(), 2);
    let log = f.log();
    let locks: Vec<&String> = log
        .iter()
        .filter(|c| c.starts_with("acquire_key_lock"))
        .collect();
    assert_eq!(
        locks,
        [
            "acquire_key_lock(missing)",
            "acquire_key_lock(x)",
            "acquire_key_lock(y)"
        ]
    );
    assert_eq!(
        quota_calls(&log),
        [
            "decrement_backend_quota(backend-a,150)",
            "decrement_backend_quota(backend-b,100)"
        ]
    );
}

#[tokio::test]
async fn delete_object_location_debits_locked_size_or_does_nothing() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.put("k", "a", 64, 1, plain());
    assert!(ops::delete_object_location(&f, "k", "a").await.unwrap());
    assert_eq!(quota_calls(&f.log()), ["decrement_backend_quota(a,64)"]);
    assert_eq!(f.used("a"), 0);
    f.clear_log();
    assert!(!ops::delete_object_location(&f, "k", "a").await.unwrap());
    assert!(quota_calls(&f.log()).is_empty());
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("delete_object_from_backend"))
    );

    // A read error surfaces and mutates nothing.
    f.put("k", "a", 64, 1, plain());
    f.fail_next(
        "get_existing_copies_for_update",
        StoreError::database(DbErrorKind::Other, "read", "boom"),
    );
    assert!(ops::delete_object_location(&f, "k", "a").await.is_err());
    assert_eq!(f.used("a"), 64);
    // A quota error surfaces and rolls back the delete.
    f.fail_next(
        "decrement_backend_quota",
        StoreError::database(DbErrorKind::Other, "q", "x"),
    );
    assert!(ops::delete_object_location(&f, "k", "a").await.is_err());
    assert!(
        f.state
            .lock()
            .unwrap()
            .copies
            .contains_key(&("k".into(), "a".into()))
    );
}

// ---------- move, replica, excess ----------

#[tokio::test]
async fn move_carries_every_stored_form_column_and_orders_quota_rows() {
    let f = Fake::with_backends(&[("a", 0), ("z", 0)]);
    let form = StoredForm {
        encrypted: true,
        encryption_key: vec![9, 9],
        key_id: "kv1".into(),
        plaintext_size: 90,
        content_hash: "abc".into(),
        managed: false,
        storage_key: "blob/k".into(),
        etag: "\"e\"".into(),
        content_type: "text/plain".into(),
        user_metadata: [("a".to_owned(), "b".to_owned())].into_iter().collect(),
    };
    f.put("k", "z", 100, 77, form.clone());
    assert_eq!(
        ops::move_object_location(&f, "k", "z", "a").await.unwrap(),
        100
    );
    let moved = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert_eq!(moved.form, form);
    assert_eq!(moved.created_at, Timestamp::from_micros(77));
    assert_eq!(
        quota_calls(&f.log()),
        [
            "increment_backend_quota(a,100)",
            "decrement_backend_quota(z,100)"
        ]
    );
    // Target already holds a copy: no-op.
    f.clear_log();
    f.put("k", "z", 100, 78, plain());
    assert_eq!(
        ops::move_object_location(&f, "k", "z", "a").await.unwrap(),
        0
    );
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("delete_object_from_backend"))
    );
}

#[tokio::test]
async fn record_replica_charges_the_size_read_from_the_source_row() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 321, 1, plain());
    assert_eq!(
        ops::record_replica(&f, "k", "b", "a").await.unwrap(),
        (321, true)
    );
    assert_eq!(f.used("b"), 321);
    assert_eq!(
        ops::record_replica(&f, "gone", "b", "a").await.unwrap(),
        (0, false)
    );
}

#[tokio::test]
async fn remove_excess_copy_rechecks_count_and_guards_the_only_dek() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0), ("c", 0)]);
    let with_dek = StoredForm {
        encrypted: true,
        encryption_key: vec![1],
        ..plain()
    };
    let keyless = StoredForm {
        encrypted: true,
        ..plain()
    };
    f.put("k", "a", 10, 1, with_dek);
    f.put("k", "b", 10, 2, keyless);
    assert!(
        !ops::remove_excess_copy(&f, "k", "a", 2).await.unwrap(),
        "at factor"
    );
    assert!(matches!(
        ops::remove_excess_copy(&f, "k", "a", 1).await,
        Err(StoreError::CopyHoldsOnlyDek { .. })
    ));
    assert!(ops::remove_excess_copy(&f, "k", "b", 1).await.unwrap());
    assert_eq!(f.used("b"), 0);
    // Above the factor but no copy on the named backend: nothing to remove.
    f.put("k", "b", 10, 3, plain());
    assert!(!ops::remove_excess_copy(&f, "k", "c", 1).await.unwrap());
    assert_eq!(f.state.lock().unwrap().copies.len(), 2);
}

// ---------- pending ----------

fn intent(id: &str, key: &str, backend: &str, size: i64, created: i64) -> PendingObject {
    PendingObject {
        intent_id: id.into(),
        object_key: key.into(),
        backend_name: backend.into(),
        size_bytes: size,
        form: StoredForm {
            content_hash: "h".into(),
            ..plain()
        },
        created_at: Timestamp::from_micros(created),
    }
}

fn copy_at(micros: i64) -> ExistingCopy {
    ExistingCopy {
        backend_name: "a".into(),
        size_bytes: 1,
        created_at: Timestamp::from_micros(micros),
        encrypted: false,
        has_dek: false,
        storage_key: String::new(),
    }
}

#[test]
fn intent_superseded_rules() {
    let t = Timestamp::from_micros(100);
    assert!(!ops::intent_superseded(t, &[]));
    assert!(!ops::intent_superseded(t, &[copy_at(50), copy_at(99)]));
    assert!(ops::intent_superseded(t, &[copy_at(50), copy_at(101)]));
    assert!(
        !ops::intent_superseded(t, &[copy_at(100)]),
        "equal timestamps promote"
    );
    assert!(
        !ops::intent_superseded(t, &[copy_at(0)]),
        "zero timestamps are ignored"
    );
}

#[tokio::test]
async fn promote_pending_locks_key_before_claiming_and_commits() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "b", 5, 10, plain());
    let p = intent("i1", "k", "a", 8, 20);
    f.state
        .lock()
        .unwrap()
        .pending
        .insert("i1".into(), p.clone());
    f.clear_log();
    let (res, displaced) = ops::promote_pending(&f, &p).await.unwrap();
    assert_eq!(res, PendingPromoteResult::Committed);
    assert_eq!(
        displaced,
        [DeletedCopy {
            backend_name: "b".into(),
            size_bytes: 5,
            storage_key: "k".into(),
            cleanup: CleanupClaim {
                id: 1,
                claimed_by: "fake-instance".into(),
                claimed_at: Timestamp::from_micros(5_001),
            },
        }]
    );
    let log = f.log();
    assert_eq!(&log[1..3], ["acquire_key_lock(k)", "claim_pending(i1)"]);
    assert!(log.contains(&"delete_pending(i1)".to_string()));
    let s = f.state.lock().unwrap();
    assert!(s.pending.is_empty());
    assert_eq!(
        s.copies[&("k".to_string(), "a".to_string())]
            .form
            .content_hash,
        "h"
    );
}

#[tokio::test]
async fn promote_pending_already_resolved_and_superseded() {
    let f = Fake::with_backends(&[("a", 0)]);
    let p = intent("gone", "k", "a", 8, 20);
    let (res, d) = ops::promote_pending(&f, &p).await.unwrap();
    assert_eq!((res, d.len()), (PendingPromoteResult::AlreadyResolved, 0));
    assert_eq!(PendingPromoteResult::AlreadyResolved.as_u8(), 2);

    f.put("k", "a", 3, 30, plain());
    f.state
        .lock()
        .unwrap()
        .pending
        .insert("old".into(), intent("old", "k", "a", 8, 20));
    let (res, _) = ops::promote_pending(&f, &intent("old", "k", "a", 8, 20))
        .await
        .unwrap();
    assert_eq!(res, PendingPromoteResult::Superseded);
    assert!(f.state.lock().unwrap().pending.is_empty());
    assert_eq!(f.used("a"), 3, "superseded intent writes no metadata");
    assert_eq!(
        [
            PendingPromoteResult::Committed.as_u8(),
            PendingPromoteResult::Ambiguous.as_u8(),
            PendingPromoteResult::Superseded.as_u8()
        ],
        [0, 1, 3]
    );
}

// ---------- cleanup ----------

fn queue_row(id: i64, backend: &str, size: i64, last_error: &str) -> CleanupQueueRow {
    CleanupQueueRow {
        id,
        backend_name: backend.into(),
        object_key: format!("key-{id}"),
        reason: "overwrite".into(),
        size_bytes: size,
        attempts: 10,
        created_at: Timestamp::from_micros(5),
        last_error: last_error.into(),
        storage_key: String::new(),
    }
}

#[tokio::test]
async fn move_cleanup_to_dlq_happy_path_reads_inserts_deletes_and_keeps_orphans() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state.lock().unwrap().quotas.get_mut("a").unwrap().2 = 500;
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(7, queue_row(7, "a", 500, "old error"));
    assert!(
        ops::move_cleanup_to_dlq(&f, 7, "final error")
            .await
            .unwrap()
    );
    assert_eq!(
        f.log(),
        [
            "BEGIN",
            "get_cleanup_queue_row(7)",
            "insert_cleanup_dlq(7)",
            "delete_cleanup_item(7)",
            "COMMIT"
        ]
    );
    let s = f.state.lock().unwrap();
    assert_eq!(s.dlq[0].last_error, "final error");
    assert!(s.queue.is_empty());
    drop(s);
    assert_eq!(f.orphan("a"), 500, "orphan bytes untouched");
}

#[tokio::test]
async fn move_cleanup_to_dlq_preserves_last_error_and_handles_absence() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(1, queue_row(1, "a", 5, "kept"));
    assert!(ops::move_cleanup_to_dlq(&f, 1, "").await.unwrap());
    assert_eq!(f.state.lock().unwrap().dlq[0].last_error, "kept");
    f.clear_log();
    assert!(!ops::move_cleanup_to_dlq(&f, 99, "x").await.unwrap());
    assert!(!f.log().iter().any(|c| c.starts_with("insert_cleanup_dlq")));
}

#[tokio::test]
async fn move_cleanup_to_dlq_insert_failure_keeps_the_queue_row() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(3, queue_row(3, "a", 5, ""));
    f.fail_next(
        "insert_cleanup_dlq",
        StoreError::database(DbErrorKind::Other, "dlq", "x"),
    );
    assert!(ops::move_cleanup_to_dlq(&f, 3, "e").await.is_err());
    assert!(!f.log().iter().any(|c| c.starts_with("delete_cleanup_item")));
    assert!(f.state.lock().unwrap().queue.contains_key(&3));
}

#[tokio::test]
async fn sweep_decrements_orphans_once_and_only_when_needed() {
    let f = Fake::with_backends(&[("a", 0)]);
    f.state.lock().unwrap().quotas.get_mut("a").unwrap().2 = 100;
    assert_eq!(
        ops::sweep_stale_cleanup_queue_rows(&f, "key-1", "a")
            .await
            .unwrap(),
        0
    );
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("decrement_orphan_bytes"))
    );
    {
        let mut s = f.state.lock().unwrap();
        s.queue.insert(1, queue_row(1, "a", 30, ""));
        let mut second = queue_row(2, "a", 40, "");
        second.object_key = "key-1".into();
        s.queue.insert(2, second);
        let mut zero = queue_row(3, "a", 0, "");
        zero.object_key = "key-3".into();
        s.queue.insert(3, zero);
    }
    f.clear_log();
    assert_eq!(
        ops::sweep_stale_cleanup_queue_rows(&f, "key-1", "a")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        f.log()
            .iter()
            .filter(|c| c.starts_with("decrement_orphan_bytes"))
            .collect::<Vec<_>>(),
        ["decrement_orphan_bytes(a,70)"]
    );
    f.clear_log();
    assert_eq!(
        ops::sweep_stale_cleanup_queue_rows(&f, "key-3", "a")
            .await
            .unwrap(),
        1
    );
    assert!(
        !f.log()
            .iter()
            .any(|c| c.starts_with("decrement_orphan_bytes")),
        "zero bytes"
    );
}

#[tokio::test]
async fn write_off_releases_orphans_per_backend_in_order() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    {
        let mut s = f.state.lock().unwrap();
        s.quotas.get_mut("a").unwrap().2 = 100;
        s.quotas.get_mut("b").unwrap().2 = 100;
        s.dlq = vec![
            queue_row(1, "b", 10, ""),
            queue_row(2, "a", 20, ""),
            queue_row(3, "b", 5, ""),
        ];
    }
    assert_eq!(
        ops::write_off_cleanup_dlq(&f, &[3, 1, 2, 2, 42])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        f.log()
            .iter()
            .filter(|c| c.starts_with("decrement_orphan_bytes"))
            .collect::<Vec<_>>(),
        [
            "decrement_orphan_bytes(a,20)",
            "decrement_orphan_bytes(b,15)"
        ]
    );
    assert_eq!((f.orphan("a"), f.orphan("b")), (80, 85));
}

// ---------- reconcile, encryption ----------

#[tokio::test]
async fn reconcile_usage_corrects_drift_only_where_it_exists() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 10, 1, plain());
    f.state.lock().unwrap().quotas.get_mut("a").unwrap().0 += 99_999;
    let drift = ops::reconcile_usage(&f).await.unwrap();
    assert_eq!(drift, BTreeMap::from([("a".to_string(), -99_999)]));
    assert_eq!(f.used("a"), 10);
    assert!(ops::reconcile_usage(&f).await.unwrap().is_empty());
}

#[tokio::test]
async fn mark_encrypted_and_decrypted_adjust_by_the_locked_size() {
    let f = Fake::with_backends(&[("a", 100)]);
    f.put(
        "k",
        "a",
        90,
        1,
        StoredForm {
            content_hash: "h".into(),
            ..plain()
        },
    );
    // Unguarded: the bytes are already on the backend, so exceeding the limit is allowed.
    assert!(
        ops::mark_object_encrypted(&f, "k", "a", &[1, 2], "kv", 90, 120)
            .await
            .unwrap()
    );
    assert_eq!(f.used("a"), 120);
    let row = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert!(row.form.encrypted && row.form.content_hash == "h" && row.form.plaintext_size == 90);
    assert!(ops::mark_object_decrypted(&f, "k", "a", 90).await.unwrap());
    assert_eq!(f.used("a"), 90);
    let row = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert!(!row.form.encrypted && row.form.encryption_key.is_empty());
    assert!(
        !ops::mark_object_decrypted(&f, "gone", "a", 1)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn delete_backend_data_clears_dependents_before_the_quota_row() {
    let f = Fake::with_backends(&[("a", 0), ("b", 0)]);
    f.put("k", "a", 5, 1, plain());
    f.put("k", "b", 5, 2, plain());
    f.state
        .lock()
        .unwrap()
        .queue
        .insert(1, queue_row(1, "a", 3, ""));
    ops::delete_backend_data(&f, "a").await.unwrap();
    let log = f.log();
    let steps: Vec<&String> = log
        .iter()
        .filter(|c| c.starts_with("delete_backend"))
        .collect();
    assert_eq!(
        steps,
        [
            "delete_backend_rows(cleanup_queue,a)",
            "delete_backend_rows(cleanup_dlq,a)",
            "delete_backend_rows(pending_objects,a)",
            "delete_backend_rows(multipart_uploads,a)",
            "delete_backend_rows(object_locations,a)",
            "delete_backend_rows(backend_usage,a)",
            "delete_backend_quota_row(a)",
        ]
    );
    {
        let s = f.state.lock().unwrap();
        assert!(!s.quotas.contains_key("a") && s.queue.is_empty() && s.copies.len() == 1);
    }
    assert!(matches!(
        ops::delete_backend_data(&f, "ghost").await,
        Err(StoreError::UnknownBackend { .. })
    ));
    assert!(
        f.state.lock().unwrap().quotas.contains_key("b"),
        "unknown backend changes nothing"
    );
}

#[tokio::test]
async fn promote_pending_commits_the_locked_row_not_the_callers_copy() {
    let f = Fake::with_backends(&[("a", 0)]);
    let stored = intent("i1", "k", "a", 8, 20);
    f.state.lock().unwrap().pending.insert("i1".into(), stored);
    let mut tampered = intent("i1", "k", "a", 999, 20);
    tampered.form.content_hash = "forged".into();
    let (res, _) = ops::promote_pending(&f, &tampered).await.unwrap();
    assert_eq!(res, PendingPromoteResult::Committed);
    assert_eq!(f.used("a"), 8, "charged the stored size");
    let copy = f.state.lock().unwrap().copies[&("k".to_string(), "a".to_string())].clone();
    assert_eq!((copy.size_bytes, copy.form.content_hash.as_str()), (8, "h"));

    f.state
        .lock()
        .unwrap()
        .pending
        .insert("i2".into(), intent("i2", "other", "a", 1, 30));
    let wrong_key = intent("i2", "k", "a", 1, 30);
    assert!(matches!(
        ops::promote_pending(&f, &wrong_key).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(f.state.lock().unwrap().pending.contains_key("i2"));
}
