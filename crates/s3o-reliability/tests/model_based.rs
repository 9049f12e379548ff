//! Model-based testing: random operation sequences run against each engine and against the
//! reference model in `s3o_reliability::model`; after every step every location row, quota
//! counter, queue and DLQ row, pending intent and multipart upload is compared, and so is the
//! answer (errors included, e.g. `NoSpaceAvailable` at the exact byte).
//!
//! Cases per engine: `S3O_MODEL_CASES` (default 24 in CI); `cargo xtask soak` runs thousands.
//! A failure prints the shrunk operation sequence; rerun it with the same
//! `S3O_MODEL_SEED` (printed at start) to reproduce.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use s3o_core::{
    CleanupClaim, CleanupEntry, DeletedCopy, ImportedObject, MetadataStore, MoveOutcome,
    PendingObject, StoredForm, Timestamp,
};
use s3o_reliability::model::{Intent, Model, Outcome, render_copies, render_move};
use s3o_reliability::{Engine, assert_ledger, fresh};

const KEYS: [&str; 5] = ["a", "a/b", "A", "b%_\\", "é/1"];
const BACKENDS: [&str; 3] = ["b0", "b1", "b2"];
const GHOST: &str = "ghost";
const INITIAL_LIMITS: [i64; 3] = [1000, 0, 600];

#[derive(Clone, Debug)]
enum Op {
    Record {
        key: usize,
        backend: usize,
        size: i64,
        form: u8,
    },
    Delete {
        key: usize,
    },
    Batch {
        keys: Vec<usize>,
    },
    DeleteLocation {
        key: usize,
        backend: usize,
    },
    /// `stale`: name an expected path the source copy does not have (a worker that read an
    /// older version).
    Replica {
        key: usize,
        target: usize,
        source: usize,
        stale: bool,
    },
    Move {
        key: usize,
        from: usize,
        to: usize,
        stale: bool,
    },
    RemoveExcess {
        key: usize,
        backend: usize,
        factor: i64,
    },
    Import {
        key: usize,
        backend: usize,
        size: i64,
    },
    SetLimit {
        backend: usize,
        limit: i64,
    },
    Enqueue {
        backend: usize,
        key: usize,
        size: i64,
    },
    EnqueueOrphaned {
        backend: usize,
        key: usize,
        size: i64,
    },
    Claim {
        limit: usize,
    },
    Retry {
        pick: usize,
    },
    Complete {
        pick: usize,
    },
    ToDlq {
        pick: usize,
        with_error: bool,
    },
    Requeue {
        backend: Option<usize>,
    },
    WriteOff {
        picks: Vec<usize>,
    },
    PendingInsert {
        key: usize,
        backend: usize,
        size: i64,
        form: u8,
    },
    Promote {
        pick: usize,
    },
    PendingDelete {
        pick: usize,
    },
    MpCreate {
        key: usize,
        backend: usize,
    },
    MpPart {
        pick: usize,
        part: i32,
        size: i64,
    },
    MpDelete {
        pick: usize,
    },
    Reconcile,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let backend = 0..BACKENDS.len();
    // Index BACKENDS.len() is the unknown backend.
    let any_backend = prop_oneof![9 => 0..BACKENDS.len(), 1 => Just(BACKENDS.len())];
    let size = 0i64..400;
    prop_oneof![
        6 => (key.clone(), any_backend.clone(), size.clone(), 0u8..4)
            .prop_map(|(key, backend, size, form)| Op::Record { key, backend, size, form }),
        2 => key.clone().prop_map(|key| Op::Delete { key }),
        1 => proptest::collection::vec(key.clone(), 0..4).prop_map(|keys| Op::Batch { keys }),
        1 => (key.clone(), backend.clone()).prop_map(|(key, backend)| Op::DeleteLocation { key, backend }),
        3 => (key.clone(), backend.clone(), backend.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(key, target, source, stale)| Op::Replica { key, target, source, stale }),
        2 => (key.clone(), backend.clone(), backend.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(key, from, to, stale)| Op::Move { key, from, to, stale }),
        1 => (key.clone(), backend.clone(), 1i64..3)
            .prop_map(|(key, backend, factor)| Op::RemoveExcess { key, backend, factor }),
        1 => (key.clone(), any_backend, size.clone())
            .prop_map(|(key, backend, size)| Op::Import { key, backend, size }),
        1 => (backend.clone(), prop_oneof![Just(0i64), 200i64..1500])
            .prop_map(|(backend, limit)| Op::SetLimit { backend, limit }),
        3 => (backend.clone(), key.clone(), size.clone())
            .prop_map(|(backend, key, size)| Op::Enqueue { backend, key, size }),
        2 => (backend.clone(), key.clone(), size.clone())
            .prop_map(|(backend, key, size)| Op::EnqueueOrphaned { backend, key, size }),
        2 => (1usize..4).prop_map(|limit| Op::Claim { limit }),
        2 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Complete { pick }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, with_error)| Op::ToDlq { pick, with_error }),
        1 => proptest::option::of(backend.clone()).prop_map(|backend| Op::Requeue { backend }),
        1 => proptest::collection::vec(any::<usize>(), 0..3).prop_map(|picks| Op::WriteOff { picks }),
        2 => (key.clone(), backend.clone(), size.clone(), 0u8..4)
            .prop_map(|(key, backend, size, form)| Op::PendingInsert { key, backend, size, form }),
        2 => any::<usize>().prop_map(|pick| Op::Promote { pick }),
        1 => any::<usize>().prop_map(|pick| Op::PendingDelete { pick }),
        1 => (key, backend).prop_map(|(key, backend)| Op::MpCreate { key, backend }),
        1 => (any::<usize>(), 1i32..4, size).prop_map(|(pick, part, size)| Op::MpPart { pick, part, size }),
        1 => any::<usize>().prop_map(|pick| Op::MpDelete { pick }),
        1 => Just(Op::Reconcile),
    ]
}

fn form(kind: u8, size: i64) -> StoredForm {
    match kind {
        1 => StoredForm {
            encrypted: true,
            encryption_key: vec![7, kind, (size % 251) as u8],
            key_id: "kv1".into(),
            plaintext_size: size / 2,
            content_hash: format!("{size:064x}"),
            managed: true,
            storage_key: format!("blob/{size}"),
            etag: format!("\"{size:x}\""),
            content_type: "text/plain".into(),
            user_metadata: [("k".to_owned(), size.to_string())].into_iter().collect(),
            tags: [("t".to_owned(), size.to_string())].into_iter().collect(),
            ..StoredForm::default()
        },
        2 => StoredForm {
            encrypted: true,
            key_id: "kv1".into(),
            ..StoredForm::default()
        },
        3 => StoredForm {
            content_hash: "ab".repeat(32),
            managed: false,
            ..StoredForm::default()
        },
        _ => StoredForm::default(),
    }
}

fn backend_name(i: usize) -> &'static str {
    BACKENDS.get(i).copied().unwrap_or(GHOST)
}

fn pick<T: Clone>(items: &[T], i: usize) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[i % items.len()].clone())
    }
}

struct Run {
    store: MetadataStore,
    model: Model,
    /// Engine snapshot and model intent of every intent ever inserted (promote may name a
    /// resolved one).
    intents: BTreeMap<String, (PendingObject, Intent)>,
    uploads_ever: Vec<String>,
    seq: u64,
    /// The current claim of every claimed queue row, as the engine handed it out (born claimed
    /// rows from removals, rows from claims).
    claims: BTreeMap<i64, CleanupClaim>,
}

impl Run {
    fn keep_claims<'a>(&mut self, copies: impl IntoIterator<Item = &'a DeletedCopy>) {
        for c in copies {
            self.claims.insert(c.cleanup.id, c.cleanup.clone());
        }
    }

    /// Pairs the model's outbox entries of the last step with the engine's new queue rows:
    /// same backend, key, path and size, born claimed by the store's instance.
    async fn adopt_outbox(&mut self) -> Result<(), String> {
        let want = self.model.take_outbox();
        let listed = self
            .store
            .get_due_cleanups(10_000)
            .await
            .map_err(|e| e.to_string())?;
        let mut fresh: Vec<_> = listed
            .into_iter()
            .filter(|r| !self.model.queue.contains_key(&r.id))
            .collect();
        fresh.sort_by_key(|r| r.id);
        if fresh.len() != want.len() {
            return Err(format!(
                "outbox: engine enqueued {fresh:?}, model expects {want:?}"
            ));
        }
        for o in want {
            let Some(pos) = fresh.iter().position(|r| {
                r.backend_name == o.backend
                    && r.object_key == o.key
                    && r.storage_key == o.path
                    && r.size_bytes == o.size
            }) else {
                return Err(format!("outbox row {o:?} not in the queue: {fresh:?}"));
            };
            let r = fresh.remove(pos);
            if r.claimed_by.as_deref() != Some(self.store.instance_id()) {
                return Err(format!("outbox row not born claimed by this store: {r:?}"));
            }
            self.model.adopt(r.id, o);
        }
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), String> {
        let s = self.store.clone();
        let m = &mut self.model;
        let (got, want): (Outcome, Outcome) = match op {
            Op::Record {
                key,
                backend,
                size,
                form: f,
            } => {
                let fm = form(*f, *size);
                let r = s
                    .record_object(KEYS[*key], backend_name(*backend), *size, &fm)
                    .await;
                if let Ok(d) = &r {
                    self.keep_claims(d);
                }
                let m = &mut self.model;
                (
                    Outcome::of(&r, |v| render_copies(v)),
                    m.record(KEYS[*key], backend_name(*backend), *size, &fm),
                )
            }
            Op::Delete { key } => {
                let r = s.delete_object(KEYS[*key]).await;
                if let Ok(d) = &r {
                    self.keep_claims(d);
                }
                let m = &mut self.model;
                (Outcome::of(&r, |v| render_copies(v)), m.delete(KEYS[*key]))
            }
            Op::Batch { keys } => {
                let ks: Vec<String> = keys.iter().map(|k| KEYS[*k].to_string()).collect();
                let r = s.delete_objects_batch(&ks).await;
                if let Ok(d) = &r {
                    self.keep_claims(d.values().flatten());
                }
                let m = &mut self.model;
                let render = |v: &BTreeMap<String, Vec<DeletedCopy>>| {
                    let m: BTreeMap<String, String> = v
                        .iter()
                        .map(|(k, c)| (k.clone(), render_copies(c)))
                        .collect();
                    format!("{m:?}")
                };
                (Outcome::of(&r, render), m.delete_batch(&ks))
            }
            Op::DeleteLocation { key, backend } => {
                let r = s
                    .delete_object_location(KEYS[*key], BACKENDS[*backend])
                    .await;
                if let Ok(Some(d)) = &r {
                    self.keep_claims([d]);
                }
                let m = &mut self.model;
                (
                    Outcome::of(&r, |v| render_copies(v.as_slice())),
                    m.delete_location(KEYS[*key], BACKENDS[*backend]),
                )
            }
            Op::Replica {
                key,
                target,
                source,
                stale,
            } => {
                let (k, t, src) = (KEYS[*key], BACKENDS[*target], BACKENDS[*source]);
                let mut expected = m.path_on(k, src);
                if *stale {
                    expected.push_str(".older");
                }
                let r = s.record_replica(k, t, src, &expected).await;
                (
                    Outcome::of(&r, |v| format!("{v:?}")),
                    m.replica(k, t, src, &expected),
                )
            }
            Op::Move {
                key,
                from,
                to,
                stale,
            } => {
                let (k, f, t) = (KEYS[*key], BACKENDS[*from], BACKENDS[*to]);
                let mut expected = m.path_on(k, f);
                if *stale {
                    expected.push_str(".older");
                }
                let r = s.move_object_location(k, f, t, &expected).await;
                if let Ok(MoveOutcome::Moved { source, .. }) = &r {
                    self.keep_claims([source]);
                }
                let m = &mut self.model;
                (
                    Outcome::of(&r, render_move),
                    m.move_copy(k, f, t, &expected),
                )
            }
            Op::RemoveExcess {
                key,
                backend,
                factor,
            } => {
                let r = s
                    .remove_excess_copy(KEYS[*key], BACKENDS[*backend], *factor)
                    .await;
                if let Ok(Some(d)) = &r {
                    self.keep_claims([d]);
                }
                let m = &mut self.model;
                (
                    Outcome::of(&r, |v| render_copies(v.as_slice())),
                    m.remove_excess(KEYS[*key], BACKENDS[*backend], *factor),
                )
            }
            Op::Import { key, backend, size } => {
                let b = backend_name(*backend);
                let r = s
                    .import_object(&ImportedObject::new(KEYS[*key], b, *size))
                    .await;
                let want = m.import(KEYS[*key], b, *size);
                (Outcome::of(&r, |v| format!("{v:?}")), want)
            }
            Op::SetLimit { backend, limit } => {
                let r = s
                    .sync_quota_limits(&[(BACKENDS[*backend].to_string(), *limit)])
                    .await;
                (
                    Outcome::of(&r, |_| "()".into()),
                    m.set_limit(BACKENDS[*backend], *limit),
                )
            }
            Op::Enqueue { backend, key, size } => {
                let before: BTreeSet<i64> = m.queue.keys().copied().collect();
                s.enqueue_cleanup(BACKENDS[*backend], KEYS[*key], "overwrite", *size)
                    .await
                    .map_err(|e| format!("enqueue: {e}"))?;
                s.increment_orphan_bytes(BACKENDS[*backend], *size)
                    .await
                    .map_err(|e| format!("orphan: {e}"))?;
                let listed = s
                    .get_due_cleanups(10_000)
                    .await
                    .map_err(|e| format!("{e}"))?;
                let new: Vec<i64> = listed
                    .iter()
                    .map(|r| r.id)
                    .filter(|id| !before.contains(id))
                    .collect();
                let [id] = new[..] else {
                    return Err(format!("enqueue added rows {new:?}"));
                };
                m.enqueue(id, BACKENDS[*backend], KEYS[*key], *size);
                return Ok(());
            }
            Op::EnqueueOrphaned { backend, key, size } => {
                let entry = CleanupEntry {
                    backend_name: BACKENDS[*backend].to_owned(),
                    object_key: KEYS[*key].to_owned(),
                    storage_key: format!("orphans/{}", KEYS[*key]),
                    reason: "upload not committed".to_owned(),
                    size_bytes: *size,
                };
                let r = s.enqueue_orphaned_bytes(&entry).await;
                if let Ok(d) = &r {
                    self.keep_claims(std::iter::once(d));
                }
                let m = &mut self.model;
                (
                    Outcome::of(&r, |d| render_copies(std::slice::from_ref(d))),
                    m.enqueue_orphaned(BACKENDS[*backend], KEYS[*key], &entry.storage_key, *size),
                )
            }
            Op::Claim { limit } => {
                // Claims older than this are stale: rows born claimed by this store (just now)
                // are never reclaimed here.
                let cutoff = Duration::from_secs(300);
                let rows = s
                    .claim_pending_cleanups(*limit as i64, "worker-1", cutoff)
                    .await
                    .map_err(|e| format!("claim: {e}"))?;
                if rows
                    .iter()
                    .any(|r| r.reclaimed || r.claimed_by.as_deref() != Some("worker-1"))
                {
                    return Err(format!("claim returned wrong claim fields: {rows:?}"));
                }
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                for r in &rows {
                    let claim = r.claim().ok_or("claimed row without a claim")?;
                    self.claims.insert(r.id, claim);
                }
                return self.model.claim(*limit, &ids);
            }
            Op::Retry { pick: p } => {
                let ids: Vec<i64> = m.queue.keys().copied().collect();
                let Some(id) = pick(&ids, *p) else {
                    return Ok(());
                };
                // Unclaimed rows are retried with a made-up claim: a stale claimant.
                let known = self.claims.remove(&id);
                let claim = known.clone().unwrap_or(CleanupClaim {
                    id,
                    claimed_by: "worker-1".into(),
                    claimed_at: Timestamp::ZERO,
                });
                let before: BTreeSet<i64> = m.dlq.keys().copied().collect();
                let r = s
                    .retry_cleanup_item(&claim, Duration::ZERO, "503 from backend")
                    .await;
                let dlq = s
                    .list_cleanup_dlq(None, 10_000)
                    .await
                    .map_err(|e| format!("dlq: {e}"))?;
                let new = dlq.iter().map(|d| d.id).find(|id| !before.contains(id));
                (
                    Outcome::of(&r, |v| format!("{v:?}")),
                    m.retry(id, known.is_some(), "503 from backend", new),
                )
            }
            Op::Complete { pick: p } => {
                let ids: Vec<i64> = m.queue.keys().copied().collect();
                let Some(id) = pick(&ids, *p) else {
                    return Ok(());
                };
                let known = self.claims.remove(&id);
                let claim = known.clone().unwrap_or(CleanupClaim {
                    id,
                    claimed_by: "worker-1".into(),
                    claimed_at: Timestamp::ZERO,
                });
                let r = s.complete_cleanup_item(&claim).await;
                let want = m.complete(id, known.is_some());
                let got = Outcome::of(&r, |v| format!("{v:?}"));
                if got != want {
                    return Err(format!("complete: engine {got:?}, model {want:?}"));
                }
                // A second completion with the same claim is stale and changes nothing.
                let again = s.complete_cleanup_item(&claim).await;
                (
                    Outcome::of(&again, |v| format!("{v:?}")),
                    Outcome::Ok("StaleClaim".into()),
                )
            }
            Op::ToDlq {
                pick: p,
                with_error,
            } => {
                let ids: Vec<i64> = m.queue.keys().copied().collect();
                let Some(id) = pick(&ids, *p) else {
                    return Ok(());
                };
                let err = if *with_error { "gave up" } else { "" };
                let before: BTreeSet<i64> = m.dlq.keys().copied().collect();
                let r = s.move_cleanup_to_dlq(id, err).await;
                let dlq = s
                    .list_cleanup_dlq(None, 10_000)
                    .await
                    .map_err(|e| format!("dlq: {e}"))?;
                let new = dlq.iter().map(|d| d.id).find(|id| !before.contains(id));
                (Outcome::of(&r, |v| v.to_string()), m.to_dlq(id, new, err))
            }
            Op::Requeue { backend } => {
                let b = backend.map(|i| BACKENDS[i]);
                let before: BTreeSet<i64> = m.queue.keys().copied().collect();
                let n = s
                    .requeue_cleanup_dlq(b)
                    .await
                    .map_err(|e| format!("requeue: {e}"))?;
                let rows = m.requeue(b);
                if n != rows.len() as i64 {
                    return Err(format!("requeue moved {n}, model expects {}", rows.len()));
                }
                let listed = s
                    .get_due_cleanups(10_000)
                    .await
                    .map_err(|e| format!("{e}"))?;
                let mut fresh: Vec<_> = listed
                    .into_iter()
                    .filter(|r| !before.contains(&r.id))
                    .collect();
                let tick = m.tick_once();
                for row in rows {
                    let Some(pos) = fresh.iter().position(|r| {
                        r.backend_name == row.backend
                            && r.object_key == row.key
                            && r.size_bytes == row.size
                    }) else {
                        return Err(format!("requeued row {row:?} not found in the queue"));
                    };
                    let r = fresh.remove(pos);
                    m.requeued(r.id, row, tick);
                }
                return Ok(());
            }
            Op::WriteOff { picks } => {
                let ids: Vec<i64> = m.dlq.keys().copied().collect();
                let chosen: Vec<i64> = picks.iter().filter_map(|p| pick(&ids, *p)).collect();
                let r = s.write_off_cleanup_dlq(&chosen).await;
                (Outcome::of(&r, |v| v.to_string()), m.write_off(&chosen))
            }
            Op::PendingInsert {
                key,
                backend,
                size,
                form: f,
            } => {
                self.seq += 1;
                let id = format!("intent-{}", self.seq);
                let fm = form(*f, *size);
                let p = PendingObject {
                    intent_id: id.clone(),
                    object_key: KEYS[*key].into(),
                    backend_name: BACKENDS[*backend].into(),
                    size_bytes: *size,
                    form: fm.clone(),
                    created_at: Timestamp::ZERO,
                };
                s.insert_pending(&p)
                    .await
                    .map_err(|e| format!("insert pending: {e}"))?;
                m.insert_pending(&id, KEYS[*key], BACKENDS[*backend], *size, &fm);
                let stored = s
                    .get_stale_pending(Duration::ZERO, 10_000)
                    .await
                    .map_err(|e| format!("stale pending: {e}"))?
                    .into_iter()
                    .find(|q| q.intent_id == id)
                    .ok_or("inserted intent not listed")?;
                self.intents
                    .insert(id.clone(), (stored, m.pending[&id].clone()));
                return Ok(());
            }
            Op::Promote { pick: p } => {
                let ids: Vec<String> = self.intents.keys().cloned().collect();
                let Some(id) = pick(&ids, *p) else {
                    return Ok(());
                };
                let (snapshot, intent) = self.intents[&id].clone();
                let r = s.promote_pending(&snapshot).await;
                if let Ok((_, d)) = &r {
                    self.keep_claims(d);
                }
                let m = &mut self.model;
                (
                    Outcome::of(&r, |(res, d)| format!("({res:?}, {})", render_copies(d))),
                    m.promote(&id, Some(intent)),
                )
            }
            Op::PendingDelete { pick: p } => {
                let ids: Vec<String> = m.pending.keys().cloned().collect();
                let Some(id) = pick(&ids, *p) else {
                    return Ok(());
                };
                s.delete_pending(&id)
                    .await
                    .map_err(|e| format!("delete pending: {e}"))?;
                m.pending.remove(&id);
                return Ok(());
            }
            Op::MpCreate { key, backend } => {
                self.seq += 1;
                let id = format!("upload-{}", self.seq);
                let params = s3o_core::CreateMultipartUploadParams {
                    upload_id: id.clone(),
                    object_key: KEYS[*key].into(),
                    backend_name: BACKENDS[*backend].into(),
                    ..Default::default()
                };
                s.create_multipart_upload(&params)
                    .await
                    .map_err(|e| format!("mp create: {e}"))?;
                m.uploads.insert(
                    id.clone(),
                    (
                        KEYS[*key].into(),
                        BACKENDS[*backend].into(),
                        BTreeMap::new(),
                    ),
                );
                self.uploads_ever.push(id);
                return Ok(());
            }
            Op::MpPart {
                pick: p,
                part,
                size,
            } => {
                let Some(id) = pick(&self.uploads_ever, *p) else {
                    return Ok(());
                };
                let form = StoredForm {
                    storage_key: Model::part_path(&id, *part, *size),
                    ..StoredForm::default()
                };
                let r = s.record_part(&id, *part, "etag", *size, &form).await;
                let got = match &r {
                    Err(s3o_core::StoreError::MultipartUploadNotFound { .. }) => {
                        Outcome::Ok("missing".into())
                    }
                    other => Outcome::of(other, |v| render_copies(v)),
                };
                (got, m.record_part(&id, *part, *size))
            }
            Op::MpDelete { pick: p } => {
                let Some(id) = pick(&self.uploads_ever, *p) else {
                    return Ok(());
                };
                let r = s.release_multipart_upload(&id, "aborted upload").await;
                (Outcome::of(&r, |v| render_copies(v)), m.release_upload(&id))
            }
            Op::Reconcile => {
                let r = s.reconcile_usage().await;
                (
                    Outcome::of(&r, |v| format!("{v:?}")),
                    Outcome::Ok("{}".into()),
                )
            }
        };
        if got != want {
            return Err(format!("answer differs: engine {got:?}, model {want:?}"));
        }
        Ok(())
    }

    async fn compare(&self) -> Result<(), String> {
        let s = &self.store;
        let m = &self.model;
        for key in KEYS {
            let mut want: Vec<(String, i64, StoredForm)> = m
                .copies
                .iter()
                .filter(|((k, _), _)| k == key)
                .map(|((_, b), c)| (b.clone(), c.size, c.form.clone()))
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            let got = match s.get_all_object_locations(key).await {
                Ok(v) => {
                    let mut g: Vec<(String, i64, StoredForm)> = v
                        .into_iter()
                        .map(|l| (l.backend_name, l.size_bytes, l.form))
                        .collect();
                    g.sort_by(|a, b| a.0.cmp(&b.0));
                    g
                }
                Err(s3o_core::StoreError::ObjectNotFound { .. }) => Vec::new(),
                Err(e) => return Err(format!("get_all_object_locations({key}): {e}")),
            };
            if got != want {
                return Err(format!("copies of {key:?}: engine {got:?}, model {want:?}"));
            }
        }
        let stats = s.get_quota_stats().await.map_err(|e| e.to_string())?;
        // The outbox invariant, after every step: orphan_bytes == Σ queue + DLQ bytes.
        let owed = s
            .cleanup_bytes_by_backend()
            .await
            .map_err(|e| e.to_string())?;
        for (b, st) in &stats {
            let (q, d) = owed.get(b).copied().unwrap_or((0, 0));
            if st.orphan_bytes != q + d {
                return Err(format!(
                    "orphan_bytes of {b} is {}, queue {q} + DLQ {d}",
                    st.orphan_bytes
                ));
            }
        }
        for (b, q) in &m.backends {
            let st = stats.get(b).ok_or_else(|| format!("backend {b} missing"))?;
            if (st.bytes_used, st.bytes_limit, st.orphan_bytes) != (q.used, q.limit, q.orphan) {
                return Err(format!(
                    "quota of {b}: engine (used {}, limit {}, orphan {}), model {q:?}",
                    st.bytes_used, st.bytes_limit, st.orphan_bytes
                ));
            }
        }
        let mut queue: Vec<(i64, String, String, i64, i32, bool)> = s
            .get_due_cleanups(10_000)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    r.backend_name,
                    r.object_key,
                    r.size_bytes,
                    r.attempts,
                    r.claimed_by.is_some(),
                )
            })
            .collect();
        queue.sort();
        let want_queue: Vec<(i64, String, String, i64, i32, bool)> = m
            .queue
            .iter()
            .filter(|(_, r)| r.attempts < 10)
            .map(|(id, r)| {
                (
                    *id,
                    r.backend.clone(),
                    r.key.clone(),
                    r.size,
                    r.attempts,
                    r.claimed,
                )
            })
            .collect();
        if queue != want_queue {
            return Err(format!(
                "cleanup queue: engine {queue:?}, model {want_queue:?}"
            ));
        }
        let depth = s.cleanup_queue_depth().await.map_err(|e| e.to_string())?;
        if depth != want_queue.len() as i64 {
            return Err(format!("queue depth {depth}, model {}", want_queue.len()));
        }
        let mut dlq: Vec<(i64, String, String, i64, String)> = s
            .list_cleanup_dlq(None, 10_000)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|d| {
                (
                    d.id,
                    d.backend_name,
                    d.object_key,
                    d.size_bytes,
                    d.last_error,
                )
            })
            .collect();
        dlq.sort();
        let want_dlq: Vec<(i64, String, String, i64, String)> = m
            .dlq
            .iter()
            .map(|(id, r)| {
                (
                    *id,
                    r.backend.clone(),
                    r.key.clone(),
                    r.size,
                    r.last_error.clone(),
                )
            })
            .collect();
        if dlq != want_dlq {
            return Err(format!("DLQ: engine {dlq:?}, model {want_dlq:?}"));
        }
        let mut pending: Vec<(String, String, String, i64)> = s
            .get_stale_pending(Duration::ZERO, 10_000)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|p| (p.intent_id, p.object_key, p.backend_name, p.size_bytes))
            .collect();
        pending.sort();
        let want_pending: Vec<(String, String, String, i64)> = m
            .pending
            .iter()
            .map(|(id, p)| (id.clone(), p.key.clone(), p.backend.clone(), p.size))
            .collect();
        if pending != want_pending {
            return Err(format!(
                "pending: engine {pending:?}, model {want_pending:?}"
            ));
        }
        for id in &self.uploads_ever {
            let parts: BTreeMap<i32, i64> = s
                .get_parts(id)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|p| (p.part_number, p.size_bytes))
                .collect();
            let exists = s.get_multipart_upload(id).await.is_ok();
            let want = m.uploads.get(id);
            if exists != want.is_some() || want.is_some_and(|u| u.2 != parts) {
                return Err(format!(
                    "upload {id}: engine exists={exists} parts={parts:?}, model {want:?}"
                ));
            }
        }
        let listing = s
            .list_objects("", "", 1000)
            .await
            .map_err(|e| e.to_string())?;
        let keys: Vec<String> = listing.objects.into_iter().map(|o| o.object_key).collect();
        let mut want_keys: Vec<String> = m.copies.keys().map(|(k, _)| k.clone()).collect();
        want_keys.dedup();
        if keys != want_keys {
            return Err(format!("listing: engine {keys:?}, model {want_keys:?}"));
        }
        assert_ledger(s).await;
        Ok(())
    }
}

/// Steps executed per engine (shrinking included), for the report.
static STEPS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn steps(engine: Engine) -> &'static AtomicU64 {
    &STEPS[usize::from(engine == Engine::Postgres)]
}

async fn run_sequence(engine: Engine, ops: &[Op]) -> Result<(), TestCaseError> {
    let Some(db) = fresh(engine).await else {
        return Ok(());
    };
    let limits: Vec<(String, i64)> = BACKENDS
        .iter()
        .zip(INITIAL_LIMITS)
        .map(|(b, l)| (b.to_string(), l))
        .collect();
    db.store.sync_quota_limits(&limits).await.expect("limits");
    let mut model = Model::default();
    for (b, l) in BACKENDS.iter().zip(INITIAL_LIMITS) {
        model.set_limit(b, l);
    }
    let mut run = Run {
        store: db.store.clone(),
        model,
        intents: BTreeMap::new(),
        uploads_ever: Vec::new(),
        seq: 0,
        claims: BTreeMap::new(),
    };
    let mut outcome = Ok(());
    for (i, op) in ops.iter().enumerate() {
        steps(engine).fetch_add(1, Ordering::Relaxed);
        let r = match run.step(op).await {
            Ok(()) => match run.adopt_outbox().await {
                Ok(()) => run.compare().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            outcome = Err(TestCaseError::fail(format!(
                "{} step {i} {op:?}: {e}",
                engine.name()
            )));
            break;
        }
    }
    db.cleanup().await;
    outcome
}

fn cases() -> u32 {
    std::env::var("S3O_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn seed() -> [u8; 32] {
    let n: u64 = std::env::var("S3O_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "model-based run: S3O_MODEL_SEED={n} S3O_MODEL_CASES={}",
        cases()
    );
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s
}

fn check(engine: Engine) {
    let Some(rt) = s3o_reliability::runtime_for(engine) else {
        return;
    };
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed()));
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        rt.block_on(run_sequence(engine, &ops))
    });
    let stats = format!("{engine:?}: {} sequences", cases());
    if let Err(e) = result {
        panic!("{stats}: {e}");
    }
    eprintln!(
        "{stats} ({} operations) agreed with the model",
        steps(engine).load(Ordering::Relaxed)
    );
}

#[test]
fn sqlite_agrees_with_the_model() {
    check(Engine::Sqlite);
}

#[test]
fn postgres_agrees_with_the_model() {
    check(Engine::Postgres);
}
