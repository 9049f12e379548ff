//! A plain in-memory reference model of the ledger: what every operation must do, written
//! from the contracts in s3o-core's docs without looking at any engine. Time is a logical
//! clock that ticks once per write, which matches the engines as long as steps run one after
//! another (each later transaction sees a later wall-clock time).
//!
//! The model knows the outbox: every operation that takes a copy out of the ledger while its
//! bytes stay on a backend charges `orphan` and queues an [`Orphaned`] entry in
//! [`Model::outbox`]; the driver then pairs each entry with the engine's new queue row (whose
//! id only the engine knows) through [`Model::adopt`]. Rows born this way are claimed.

use std::collections::BTreeMap;

use s3o_core::{DeletedCopy, StoredForm};

/// Bytes the model expects the engine to have enqueued (born claimed) in the last step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Orphaned {
    /// Backend.
    pub backend: String,
    /// Key.
    pub key: String,
    /// Physical path (the key when the copy had no storage key).
    pub path: String,
    /// Bytes.
    pub size: i64,
}

/// Outcome classes compared between model and engine (error payloads may differ in wording).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success with a comparable value rendered as text.
    Ok(String),
    /// `ObjectNotFound`.
    NotFound,
    /// `NoSpaceAvailable`.
    NoSpace,
    /// `UnknownBackend`.
    UnknownBackend,
    /// `CopyHoldsOnlyDek`.
    OnlyDek,
    /// `InvalidInput`.
    Invalid,
}

impl Outcome {
    /// Classifies an engine result.
    pub fn of<T: std::fmt::Debug>(r: &s3o_core::Result<T>, render: impl Fn(&T) -> String) -> Self {
        use s3o_core::StoreError as E;
        match r {
            Ok(v) => Outcome::Ok(render(v)),
            Err(E::ObjectNotFound { .. }) => Outcome::NotFound,
            Err(E::NoSpaceAvailable) => Outcome::NoSpace,
            Err(E::UnknownBackend { .. }) => Outcome::UnknownBackend,
            Err(E::CopyHoldsOnlyDek { .. }) => Outcome::OnlyDek,
            Err(E::InvalidInput { .. }) => Outcome::Invalid,
            Err(e) => panic!("database failure during model run: {e:?}"),
        }
    }
}

/// One modelled copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// Bytes.
    pub size: i64,
    /// Stored form.
    pub form: StoredForm,
    /// Logical creation time.
    pub tick: u64,
}

/// One modelled backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backend {
    /// Σ sizes of its copies.
    pub used: i64,
    /// 0 = unlimited.
    pub limit: i64,
    /// Bytes awaiting physical deletion.
    pub orphan: i64,
}

/// One modelled cleanup-queue row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRow {
    /// Backend.
    pub backend: String,
    /// Key.
    pub key: String,
    /// Bytes.
    pub size: i64,
    /// Attempts.
    pub attempts: i32,
    /// Claimed by someone.
    pub claimed: bool,
    /// Logical enqueue time (ties after a requeue).
    pub tick: u64,
    /// Last error.
    pub last_error: String,
}

/// One modelled DLQ row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqRow {
    /// Backend.
    pub backend: String,
    /// Key.
    pub key: String,
    /// Bytes.
    pub size: i64,
    /// Last error.
    pub last_error: String,
}

/// One modelled intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// Key.
    pub key: String,
    /// Backend.
    pub backend: String,
    /// Bytes.
    pub size: i64,
    /// Form.
    pub form: StoredForm,
    /// Logical creation time.
    pub tick: u64,
}

/// The whole modelled ledger.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// (key, backend) → copy.
    pub copies: BTreeMap<(String, String), Copy>,
    /// Backend name → counters.
    pub backends: BTreeMap<String, Backend>,
    /// Engine id → queue row.
    pub queue: BTreeMap<i64, QueueRow>,
    /// Engine id → DLQ row.
    pub dlq: BTreeMap<i64, DlqRow>,
    /// Intent id → intent.
    pub pending: BTreeMap<String, Intent>,
    /// Upload id → (key, backend, part number → size).
    pub uploads: BTreeMap<String, (String, String, BTreeMap<i32, i64>)>,
    /// Logical clock.
    pub tick: u64,
    /// Outbox entries of the last step not yet paired with engine rows.
    pub outbox: Vec<Orphaned>,
}

/// Renders a move's outcome as the model does: `Moved(bytes, [source copy])` (the source as
/// [`render_copies`] shows it), or the refusal's debug text.
pub fn render_move(o: &s3o_core::MoveOutcome) -> String {
    match o {
        s3o_core::MoveOutcome::Moved { bytes, source } => {
            format!(
                "Moved({bytes}, {})",
                render_copies(std::slice::from_ref(source))
            )
        }
        other => format!("{other:?}"),
    }
}

/// Renders removed copies without their cleanup claims (ids and claim times are the engine's):
/// sorted `(backend, size, path)`.
pub fn render_copies(v: &[DeletedCopy]) -> String {
    let mut v: Vec<(&str, i64, &str)> = v
        .iter()
        .map(|d| {
            (
                d.backend_name.as_str(),
                d.size_bytes,
                d.storage_key.as_str(),
            )
        })
        .collect();
    v.sort();
    format!("{v:?}")
}

fn render_orphans(v: &[Orphaned]) -> String {
    let mut v: Vec<(&str, i64, &str)> = v
        .iter()
        .map(|o| (o.backend.as_str(), o.size, o.path.as_str()))
        .collect();
    v.sort();
    format!("{v:?}")
}

fn path_of(key: &str, form: &StoredForm) -> String {
    form.storage_path(key).to_owned()
}

impl Model {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Would `delta` more bytes fit on `backend`?
    fn admits(&self, backend: &str, delta: i64) -> bool {
        let b = &self.backends[backend];
        delta <= 0 || s3o_core::quota_admits(b.limit, b.used, b.orphan, delta)
    }

    /// The outbox: bytes of `key` at `path` on `backend` leave the ledger but stay on the
    /// backend. Returns the entry as the engine's `DeletedCopy` renders it.
    fn orphan(&mut self, backend: &str, key: &str, path: &str, size: i64) -> Orphaned {
        self.backends.get_mut(backend).expect("backend").orphan += size;
        let o = Orphaned {
            backend: backend.to_owned(),
            key: key.to_owned(),
            path: path.to_owned(),
            size,
        };
        self.outbox.push(o.clone());
        o
    }

    /// Takes the outbox entries of the last step, to pair with the engine's new rows.
    pub fn take_outbox(&mut self) -> Vec<Orphaned> {
        std::mem::take(&mut self.outbox)
    }

    /// Records the engine row `id` for an outbox entry: born claimed, due, no attempts.
    pub fn adopt(&mut self, id: i64, o: Orphaned) {
        let tick = self.next_tick();
        self.queue.insert(
            id,
            QueueRow {
                backend: o.backend,
                key: o.key,
                size: o.size,
                attempts: 0,
                claimed: true,
                tick,
                last_error: String::new(),
            },
        );
    }

    fn copies_of(&self, key: &str) -> Vec<(String, Copy)> {
        self.copies
            .iter()
            .filter(|((k, _), _)| k == key)
            .map(|((_, b), c)| (b.clone(), c.clone()))
            .collect()
    }

    /// `sync_quota_limits([(backend, limit)])`.
    pub fn set_limit(&mut self, backend: &str, limit: i64) -> Outcome {
        self.backends.entry(backend.to_owned()).or_default().limit = limit;
        Outcome::Ok("()".into())
    }

    fn write_over(
        &mut self,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent: Option<&str>,
    ) -> Result<Vec<Orphaned>, Outcome> {
        if !self.backends.contains_key(backend) {
            return Err(Outcome::UnknownBackend);
        }
        let existing = self.copies_of(key);
        let new_path = path_of(key, form);
        let old_here: i64 = existing
            .iter()
            .filter(|(b, _)| b == backend)
            .map(|(_, c)| c.size)
            .sum();
        // An old copy here at another path stays on the backend as orphaned bytes, charged
        // before the guarded increment.
        let displaced_here: i64 = existing
            .iter()
            .filter(|(b, c)| b == backend && path_of(key, &c.form) != new_path)
            .map(|(_, c)| c.size)
            .sum();
        // What the backend physically grows by: the new size, less an old copy overwritten in
        // place (a displaced one stays, as orphaned bytes, until cleanup).
        let growth = size - old_here + displaced_here;
        if growth > 0 {
            let b = &self.backends[backend];
            if !s3o_core::quota_admits(b.limit, b.used, b.orphan, growth) {
                return Err(Outcome::NoSpace);
            }
        }
        let mut displaced = Vec::new();
        for (b, c) in existing {
            self.copies.remove(&(key.to_owned(), b.clone()));
            let q = self.backends.get_mut(&b).expect("backend");
            q.used = (q.used - c.size).max(0);
            let path = path_of(key, &c.form);
            if b != backend || path != new_path {
                displaced.push(self.orphan(&b, key, &path, c.size));
            }
        }
        let tick = self.next_tick();
        self.copies.insert(
            (key.to_owned(), backend.to_owned()),
            Copy {
                size,
                form: form.normalized(),
                tick,
            },
        );
        self.backends.get_mut(backend).expect("backend").used += size;
        if let Some(id) = intent {
            self.pending.remove(id);
        }
        Ok(displaced)
    }

    /// `record_object`.
    pub fn record(&mut self, key: &str, backend: &str, size: i64, form: &StoredForm) -> Outcome {
        match self.write_over(key, backend, size, form, None) {
            Ok(d) => Outcome::Ok(render_orphans(&d)),
            Err(o) => o,
        }
    }

    /// `delete_object`.
    pub fn delete(&mut self, key: &str) -> Outcome {
        let existing = self.copies_of(key);
        if existing.is_empty() {
            return Outcome::NotFound;
        }
        let mut out = Vec::new();
        for (b, c) in existing {
            self.copies.remove(&(key.to_owned(), b.clone()));
            let q = self.backends.get_mut(&b).expect("backend");
            q.used = (q.used - c.size).max(0);
            out.push(self.orphan(&b, key, &path_of(key, &c.form), c.size));
        }
        Outcome::Ok(render_orphans(&out))
    }

    /// `delete_objects_batch`, rendered as key → sorted copies.
    pub fn delete_batch(&mut self, keys: &[String]) -> Outcome {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        let mut uniq = keys.to_vec();
        uniq.sort();
        uniq.dedup();
        for k in uniq {
            if let Outcome::Ok(s) = self.delete(&k) {
                out.insert(k, s);
            }
        }
        Outcome::Ok(format!("{out:?}"))
    }

    /// The path of `key`'s copy on `backend` (the key when there is none): what a worker
    /// reads before copying bytes, and names as the expected version of a replica or move.
    pub fn path_on(&self, key: &str, backend: &str) -> String {
        self.copies
            .get(&(key.to_owned(), backend.to_owned()))
            .map_or_else(|| key.to_owned(), |c| path_of(key, &c.form))
    }

    /// `delete_object_location`: the removed copy as [`render_copies`] shows it (`[]` when
    /// there was none).
    pub fn delete_location(&mut self, key: &str, backend: &str) -> Outcome {
        match self.copies.remove(&(key.to_owned(), backend.to_owned())) {
            Some(c) => {
                let q = self.backends.get_mut(backend).expect("backend");
                q.used = (q.used - c.size).max(0);
                let path = path_of(key, &c.form);
                self.orphan(backend, key, &path, c.size);
                Outcome::Ok(format!("{:?}", [(backend, c.size, path.as_str())]))
            }
            None => Outcome::Ok("[]".into()),
        }
    }

    /// Checks shared by a replica and a move of the copy on `source` expected at `expected`:
    /// `Err(outcome)` when the engine changes nothing, else the source copy.
    fn version_checked(
        &self,
        key: &str,
        source: &str,
        target: &str,
        expected: &str,
    ) -> std::result::Result<Copy, Outcome> {
        if source == target || expected.is_empty() {
            return Err(Outcome::Invalid);
        }
        let Some(src) = self.copies.get(&(key.to_owned(), source.to_owned())) else {
            return Err(Outcome::Ok("SourceGone".into()));
        };
        let current = path_of(key, &src.form);
        if current != expected {
            return Err(Outcome::Ok(format!(
                "VersionChanged {{ current_storage_key: {current:?} }}"
            )));
        }
        if self
            .copies
            .contains_key(&(key.to_owned(), target.to_owned()))
        {
            return Err(Outcome::Ok("TargetHasCopy".into()));
        }
        Ok(src.clone())
    }

    /// `record_replica` with the expected path `expected`, rendered as the engine's
    /// `ReplicaOutcome` debug text.
    pub fn replica(&mut self, key: &str, target: &str, source: &str, expected: &str) -> Outcome {
        let src = match self.version_checked(key, source, target, expected) {
            Ok(src) => src,
            Err(o) => return o,
        };
        if !self.admits(target, src.size) {
            return Outcome::NoSpace;
        }
        let size = src.size;
        self.copies.insert((key.to_owned(), target.to_owned()), src);
        self.backends.get_mut(target).expect("backend").used += size;
        Outcome::Ok(format!("Recorded {{ bytes: {size} }}"))
    }

    /// `move_object_location` with the expected path `expected`; a move renders as
    /// `Moved(bytes, [source copy])` (see [`render_move`]).
    pub fn move_copy(&mut self, key: &str, from: &str, to: &str, expected: &str) -> Outcome {
        let src = match self.version_checked(key, from, to, expected) {
            Ok(src) => src,
            Err(o) => return o,
        };
        if !self.admits(to, src.size) {
            return Outcome::NoSpace;
        }
        let size = src.size;
        let path = path_of(key, &src.form);
        self.copies.remove(&(key.to_owned(), from.to_owned()));
        self.copies.insert((key.to_owned(), to.to_owned()), src);
        let f = self.backends.get_mut(from).expect("backend");
        f.used = (f.used - size).max(0);
        self.orphan(from, key, &path, size);
        self.backends.get_mut(to).expect("backend").used += size;
        Outcome::Ok(format!(
            "Moved({size}, {:?})",
            [(from, size, path.as_str())]
        ))
    }

    /// `remove_excess_copy`: the removed copy as [`render_copies`] shows it (`[]` when none).
    pub fn remove_excess(&mut self, key: &str, backend: &str, factor: i64) -> Outcome {
        let copies = self.copies_of(key);
        if copies.len() as i64 <= factor {
            return Outcome::Ok("[]".into());
        }
        let Some((_, target)) = copies.iter().find(|(b, _)| b == backend) else {
            return Outcome::Ok("[]".into());
        };
        let dek = |c: &Copy| c.form.encrypted && c.form.has_dek();
        let other_dek = copies.iter().any(|(b, c)| b != backend && dek(c));
        let keyless = copies
            .iter()
            .any(|(b, c)| b != backend && c.form.encrypted && !c.form.has_dek());
        if dek(target) && !other_dek && keyless {
            return Outcome::OnlyDek;
        }
        self.delete_location(key, backend)
    }

    /// `import_object`: the ledger wins (a known key is never joined or replaced), a key in
    /// flight or with bytes queued for cleanup on the backend is left alone.
    pub fn import(&mut self, key: &str, backend: &str, size: i64) -> Outcome {
        let mut known = self.copies.iter().filter(|((k, _), _)| k == key).peekable();
        if known.peek().is_some() {
            let own = known.any(|((_, b), c)| {
                b == backend && (c.form.storage_key.is_empty() || c.form.storage_key == key)
            });
            return Outcome::Ok(if own { "AlreadyImported" } else { "KeyExists" }.into());
        }
        if self.pending.values().any(|p| p.key == key) {
            return Outcome::Ok("InFlight".into());
        }
        let queued = self
            .queue
            .values()
            .any(|r| r.key == key && r.backend == backend)
            || self
                .dlq
                .values()
                .any(|r| r.key == key && r.backend == backend);
        if queued {
            return Outcome::Ok("QueuedForCleanup".into());
        }
        // The backend is checked by the insert, after the refusals above.
        if !self.backends.contains_key(backend) {
            return Outcome::UnknownBackend;
        }
        if !self.admits(backend, size) {
            return Outcome::NoSpace;
        }
        let tick = self.next_tick();
        self.copies.insert(
            (key.to_owned(), backend.to_owned()),
            Copy {
                size,
                form: StoredForm {
                    storage_key: key.to_owned(),
                    ..StoredForm::default()
                },
                tick,
            },
        );
        self.backends.get_mut(backend).expect("backend").used += size;
        Outcome::Ok("Imported".into())
    }

    /// The storage key the model-based test records part `part` of `upload` with: a re-upload
    /// of another size lands at another path (its predecessor is queued), one of the same
    /// size at the same path (replaced in place).
    pub fn part_path(upload: &str, part: i32, size: i64) -> String {
        format!(".mpu/{upload}/{part:05}-{size}")
    }

    /// `record_part` with the storage key [`Model::part_path`]: the part is charged to its
    /// upload's backend (the guard admits the backend's growth: the new part, less the old
    /// one when replaced in place); a part replaced at another path goes to the outbox. Unknown
    /// upload ⇒ `Ok("missing")`.
    pub fn record_part(&mut self, upload: &str, part: i32, size: i64) -> Outcome {
        let Some((key, backend, parts)) = self.uploads.get(upload).cloned() else {
            return Outcome::Ok("missing".into());
        };
        let path = Self::part_path(upload, part, size);
        let old = parts
            .get(&part)
            .map(|&s| (s, Self::part_path(upload, part, s)));
        let growth = match &old {
            Some((s, p)) if *p == path => size - s,
            _ => size,
        };
        if !self.admits(&backend, growth) {
            return Outcome::NoSpace;
        }
        let mut queued = Vec::new();
        if let Some((s, p)) = old {
            let q = self.backends.get_mut(&backend).expect("backend");
            q.used = (q.used - s).max(0);
            if p != path {
                queued.push(self.orphan(&backend, &key, &p, s));
            }
        }
        self.backends.get_mut(&backend).expect("backend").used += size;
        if let Some(u) = self.uploads.get_mut(upload) {
            u.2.insert(part, size);
        }
        Outcome::Ok(render_orphans(&queued))
    }

    /// `release_multipart_upload`: the upload goes, each part's bytes leave `used` for the
    /// outbox. Unknown upload ⇒ nothing.
    pub fn release_upload(&mut self, upload: &str) -> Outcome {
        let Some((key, backend, parts)) = self.uploads.remove(upload) else {
            return Outcome::Ok("[]".into());
        };
        let mut queued = Vec::new();
        for (n, size) in parts {
            let q = self.backends.get_mut(&backend).expect("backend");
            q.used = (q.used - size).max(0);
            let path = Self::part_path(upload, n, size);
            queued.push(self.orphan(&backend, &key, &path, size));
        }
        Outcome::Ok(render_orphans(&queued))
    }

    /// `enqueue_orphaned_bytes`: the outbox, for bytes no copy held (unknown backend ⇒
    /// `UnknownBackend`, nothing changes).
    pub fn enqueue_orphaned(&mut self, backend: &str, key: &str, path: &str, size: i64) -> Outcome {
        if !self.backends.contains_key(backend) {
            return Outcome::UnknownBackend;
        }
        let o = self.orphan(backend, key, path, size);
        Outcome::Ok(render_orphans(std::slice::from_ref(&o)))
    }

    /// `enqueue_cleanup` + `increment_orphan_bytes`; the engine assigns `id`.
    pub fn enqueue(&mut self, id: i64, backend: &str, key: &str, size: i64) {
        let tick = self.next_tick();
        self.queue.insert(
            id,
            QueueRow {
                backend: backend.to_owned(),
                key: key.to_owned(),
                size,
                attempts: 0,
                claimed: false,
                tick,
                last_error: String::new(),
            },
        );
        self.backends.get_mut(backend).expect("backend").orphan += size;
    }

    /// Rows a claim may return, oldest first.
    pub fn claimable(&self) -> Vec<(i64, u64)> {
        let mut v: Vec<(i64, u64)> = self
            .queue
            .iter()
            .filter(|(_, r)| !r.claimed && r.attempts < 10)
            .map(|(id, r)| (*id, r.tick))
            .collect();
        v.sort_by_key(|&(id, t)| (t, id));
        v
    }

    /// Checks an engine claim of `limit` rows against the model and applies it. Returns a
    /// description of the mismatch, if any.
    pub fn claim(&mut self, limit: usize, got: &[i64]) -> Result<(), String> {
        let eligible = self.claimable();
        let want = limit.min(eligible.len());
        if got.len() != want {
            return Err(format!(
                "claimed {} rows, model expects {want} of {eligible:?}",
                got.len()
            ));
        }
        let ticks: BTreeMap<i64, u64> = eligible.iter().copied().collect();
        let mut max_taken = 0;
        for id in got {
            let Some(t) = ticks.get(id) else {
                return Err(format!("claimed ineligible row {id}"));
            };
            max_taken = max_taken.max(*t);
        }
        // Oldest first: nothing left unclaimed may be strictly older than what was taken.
        if let Some((id, t)) = eligible
            .iter()
            .find(|(id, t)| !got.contains(id) && *t < max_taken)
        {
            return Err(format!("row {id} (tick {t}) skipped for a newer one"));
        }
        for id in got {
            self.queue.get_mut(id).expect("row").claimed = true;
        }
        Ok(())
    }

    /// `retry_cleanup_item` with zero backoff by a claimant whose claim is current when
    /// `claim_current`. The retry reaching the attempt limit moves the row to the DLQ under
    /// `dlq_id` (assigned by the engine).
    pub fn retry(
        &mut self,
        id: i64,
        claim_current: bool,
        err: &str,
        dlq_id: Option<i64>,
    ) -> Outcome {
        let Some(r) = self
            .queue
            .get_mut(&id)
            .filter(|r| r.claimed && claim_current)
        else {
            return Outcome::Ok("StaleClaim".into());
        };
        r.attempts += 1;
        r.claimed = false;
        err.clone_into(&mut r.last_error);
        if r.attempts < s3o_core::MAX_ATTEMPTS {
            return Outcome::Ok("Retried".into());
        }
        let r = self.queue.remove(&id).expect("row");
        self.dlq.insert(
            dlq_id.expect("engine reported a DLQ row"),
            DlqRow {
                backend: r.backend,
                key: r.key,
                size: r.size,
                last_error: r.last_error,
            },
        );
        Outcome::Ok("DeadLettered".into())
    }

    /// `complete_cleanup_item` by a claimant whose claim is current when `claim_current`.
    pub fn complete(&mut self, id: i64, claim_current: bool) -> Outcome {
        if !self
            .queue
            .get(&id)
            .is_some_and(|r| r.claimed && claim_current)
        {
            return Outcome::Ok("StaleClaim".into());
        }
        let r = self.queue.remove(&id).expect("row");
        let b = self.backends.get_mut(&r.backend).expect("backend");
        b.orphan = (b.orphan - r.size).max(0);
        Outcome::Ok("Completed".into())
    }

    /// `move_cleanup_to_dlq`; the engine assigns `dlq_id`.
    pub fn to_dlq(&mut self, id: i64, dlq_id: Option<i64>, err: &str) -> Outcome {
        match self.queue.remove(&id) {
            Some(r) => {
                let last_error = if err.is_empty() {
                    r.last_error
                } else {
                    err.to_owned()
                };
                let dlq_id = dlq_id.expect("engine reported a DLQ row");
                self.dlq.insert(
                    dlq_id,
                    DlqRow {
                        backend: r.backend,
                        key: r.key,
                        size: r.size,
                        last_error,
                    },
                );
                Outcome::Ok("true".into())
            }
            None => Outcome::Ok("false".into()),
        }
    }

    /// `requeue_cleanup_dlq`: returns the DLQ rows that go back (the engine assigns new ids).
    pub fn requeue(&mut self, backend: Option<&str>) -> Vec<DlqRow> {
        let ids: Vec<i64> = self
            .dlq
            .iter()
            .filter(|(_, r)| backend.is_none_or(|b| r.backend == b))
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .map(|id| self.dlq.remove(id).expect("row"))
            .collect()
    }

    /// Adds a requeued row under its new engine id (all requeued rows share one tick).
    pub fn requeued(&mut self, id: i64, row: DlqRow, tick: u64) {
        self.queue.insert(
            id,
            QueueRow {
                backend: row.backend,
                key: row.key,
                size: row.size,
                attempts: 0,
                claimed: false,
                tick,
                last_error: String::new(),
            },
        );
    }

    /// Ticks the clock once (for requeue).
    pub fn tick_once(&mut self) -> u64 {
        self.next_tick()
    }

    /// `write_off_cleanup_dlq`.
    pub fn write_off(&mut self, ids: &[i64]) -> Outcome {
        let mut uniq = ids.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        let mut n = 0;
        for id in uniq {
            if let Some(r) = self.dlq.remove(&id) {
                let b = self.backends.get_mut(&r.backend).expect("backend");
                b.orphan = (b.orphan - r.size).max(0);
                n += 1;
            }
        }
        Outcome::Ok(n.to_string())
    }

    /// `insert_pending`.
    pub fn insert_pending(
        &mut self,
        id: &str,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
    ) {
        let tick = self.next_tick();
        self.pending.insert(
            id.to_owned(),
            // Intents persist every field of the form, the managed flag included.
            Intent {
                key: key.to_owned(),
                backend: backend.to_owned(),
                size,
                form: form.clone(),
                tick,
            },
        );
    }

    /// `promote_pending` of an intent known by id with its recorded tick (`None` when it was
    /// already resolved).
    pub fn promote(&mut self, id: &str, known: Option<Intent>) -> Outcome {
        let Some(p) = known.filter(|_| self.pending.contains_key(id)) else {
            return Outcome::Ok("(AlreadyResolved, [])".into());
        };
        if self.copies_of(&p.key).iter().any(|(_, c)| c.tick > p.tick) {
            let d = self.drop_intent(id, &p);
            return Outcome::Ok(format!("(Superseded, {})", render_orphans(&d)));
        }
        match self.write_over(&p.key, &p.backend, p.size, &p.form, Some(id)) {
            Ok(d) => Outcome::Ok(format!("(Committed, {})", render_orphans(&d))),
            Err(Outcome::NoSpace) => {
                let d = self.drop_intent(id, &p);
                Outcome::Ok(format!("(Abandoned, {})", render_orphans(&d)))
            }
            Err(o) => o,
        }
    }

    /// Deletes an intent that will not be committed; its bytes are orphaned unless a live
    /// copy sits at the same path on the same backend.
    fn drop_intent(&mut self, id: &str, p: &Intent) -> Vec<Orphaned> {
        self.pending.remove(id);
        let path = path_of(&p.key, &p.form);
        let live = self
            .copies
            .get(&(p.key.clone(), p.backend.clone()))
            .is_some_and(|c| path_of(&p.key, &c.form) == path);
        if live {
            return Vec::new();
        }
        vec![self.orphan(&p.backend, &p.key, &path, p.size)]
    }
}
