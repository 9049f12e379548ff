//! Model-based cases: seeded random operation sequences run against the store and against a
//! plain in-memory model of the ledger; after every step the answers, the placements, the
//! counters and the ledger invariant agree.

use std::collections::BTreeMap;

use s3o_store::*;

use crate::support::*;

/// The in-memory reference: copies per key, counters per backend.
#[derive(Debug, Default)]
struct Model {
    copies: BTreeMap<String, BTreeMap<String, i64>>,
    limit: BTreeMap<String, i64>,
    orphan: BTreeMap<String, i64>,
    /// `(key, backend)` pairs with a cleanup-queue row (nothing here completes one).
    queued: std::collections::BTreeSet<(String, String)>,
}

impl Model {
    fn used(&self, backend: &str) -> i64 {
        self.copies.values().filter_map(|c| c.get(backend)).sum()
    }

    /// The one quota rule: `limit = 0` or `used + orphan + delta <= limit`.
    fn admits(&self, backend: &str, delta: i64) -> bool {
        let limit = self.limit[backend];
        delta <= 0 || limit == 0 || self.used(backend) + self.orphan[backend] + delta <= limit
    }

    /// The outbox: removed bytes stay on the backend, charged as orphans.
    fn orphaned(&mut self, key: &str, backend: &str, size: i64) {
        *self.orphan.get_mut(backend).expect("backend") += size;
        self.queued.insert((key.to_owned(), backend.to_owned()));
    }

    fn has(&self, key: &str, backend: &str) -> Option<i64> {
        self.copies.get(key).and_then(|c| c.get(backend)).copied()
    }
}

const KEYS: [&str; 6] = ["a", "a/b", "B", "é/1", "k%", "k_"];
const BACKENDS: [&str; 3] = [A, B, C];

fn deleted(m: &BTreeMap<String, i64>, except: Option<&str>) -> Vec<(String, i64)> {
    m.iter()
        .filter(|(b, _)| Some(b.as_str()) != except)
        .map(|(b, s)| (b.clone(), *s))
        .collect()
}

fn sorted(v: Vec<DeletedCopy>) -> Vec<(String, i64)> {
    bs(&v)
}

async fn check(store: &Db, model: &Model, step: usize, op: &str) {
    for k in KEYS {
        let expected: Vec<(String, i64)> = model
            .copies
            .get(k)
            .map(|c| c.iter().map(|(b, s)| (b.clone(), *s)).collect())
            .unwrap_or_default();
        assert_eq!(
            placement(store, k).await,
            expected,
            "step {step} ({op}): placement of {k}"
        );
    }
    for b in BACKENDS {
        let (used, _, orphan) = quota(store, b).await;
        assert_eq!(used, model.used(b), "step {step} ({op}): bytes_used of {b}");
        assert_eq!(orphan, model.orphan[b], "step {step} ({op}): orphan of {b}");
    }
    assert_ledger(store).await;
}

async fn run(store: Db, seed: u64, steps: usize, limits: [i64; 3]) {
    let mut rng = fastrand::Rng::with_seed(seed);
    backends(&store, &[(A, limits[0]), (B, limits[1]), (C, limits[2])]).await;
    let mut model = Model::default();
    for (b, l) in BACKENDS.iter().zip(limits) {
        model.limit.insert((*b).to_owned(), l);
        model.orphan.insert((*b).to_owned(), 0);
    }
    let plain = StoredForm::default();
    for step in 0..steps {
        let key = KEYS[rng.usize(..KEYS.len())];
        let b1 = BACKENDS[rng.usize(..3)];
        let b2 = BACKENDS[rng.usize(..3)];
        let size = rng.i64(0..200);
        let op = rng.u8(..10);
        let label;
        match op {
            0 | 1 => {
                label = format!("record {key} on {b1} ({size})");
                let existing = model.copies.get(key).cloned().unwrap_or_default();
                let delta = size - existing.get(b1).copied().unwrap_or(0);
                let got = store.record_object(key, b1, size, &plain).await;
                if model.admits(b1, delta) {
                    let got = got.unwrap_or_else(|e| panic!("step {step} {label}: {e:?}"));
                    assert_eq!(sorted(got), deleted(&existing, Some(b1)), "{label}");
                    for (b, s) in deleted(&existing, Some(b1)) {
                        model.orphaned(key, &b, s);
                    }
                    model
                        .copies
                        .insert(key.to_owned(), BTreeMap::from([(b1.to_owned(), size)]));
                } else {
                    assert_no_space(got);
                }
            }
            2 => {
                label = format!("delete {key}");
                let got = store.delete_object(key).await;
                match model.copies.remove(key) {
                    Some(existing) => {
                        assert_eq!(sorted(got.unwrap()), deleted(&existing, None), "{label}");
                        for (b, s) in deleted(&existing, None) {
                            model.orphaned(key, &b, s);
                        }
                    }
                    None => assert!(
                        matches!(got, Err(StoreError::ObjectNotFound { .. })),
                        "{label}: {got:?}"
                    ),
                }
            }
            3 => {
                label = format!("delete location {key} on {b1}");
                let got = store.delete_object_location(key, b1).await.unwrap();
                let had = model.has(key, b1).is_some();
                assert_eq!(
                    got.map(|d| (d.backend_name, d.size_bytes)),
                    model.has(key, b1).map(|s| (b1.to_owned(), s)),
                    "{label}"
                );
                if had {
                    let c = model.copies.get_mut(key).unwrap();
                    let s = c.remove(b1).unwrap();
                    model.orphaned(key, b1, s);
                    let c = model.copies.get_mut(key).unwrap();
                    if c.is_empty() {
                        model.copies.remove(key);
                    }
                }
            }
            4 => {
                label = format!("import {key} on {b1} ({size})");
                let got = store
                    .import_object(&ImportedObject::new(key, b1, size))
                    .await;
                // The ledger wins: a known key is never joined or replaced.
                let known = model.copies.get(key).is_some_and(|c| !c.is_empty());
                if model.has(key, b1).is_some() {
                    assert_eq!(got.unwrap(), ImportOutcome::AlreadyImported, "{label}");
                } else if known {
                    assert_eq!(got.unwrap(), ImportOutcome::KeyExists, "{label}");
                } else if model.queued.contains(&(key.to_owned(), b1.to_owned())) {
                    assert_eq!(got.unwrap(), ImportOutcome::QueuedForCleanup, "{label}");
                } else if model.admits(b1, size) {
                    assert_eq!(got.unwrap(), ImportOutcome::Imported, "{label}");
                    model
                        .copies
                        .entry(key.to_owned())
                        .or_default()
                        .insert(b1.to_owned(), size);
                } else {
                    assert_no_space(got);
                }
            }
            5 => {
                label = format!("move {key} {b1} -> {b2}");
                let got = move_copy(&store, key, b1, b2).await;
                match model.has(key, b1) {
                    _ if b1 == b2 => assert_invalid(got, &label),
                    None => assert_eq!(got.unwrap(), MoveOutcome::SourceGone, "{label}"),
                    Some(_) if model.has(key, b2).is_some() => {
                        assert_eq!(got.unwrap(), MoveOutcome::TargetHasCopy, "{label}");
                    }
                    Some(s) => {
                        if model.admits(b2, s) {
                            match got.unwrap() {
                                MoveOutcome::Moved { bytes, source } => {
                                    assert_eq!(bytes, s, "{label}");
                                    assert_eq!(
                                        (source.backend_name.as_str(), source.size_bytes),
                                        (b1, s),
                                        "{label}"
                                    );
                                }
                                other => panic!("{label}: {other:?}"),
                            }
                            let c = model.copies.get_mut(key).unwrap();
                            c.remove(b1);
                            c.insert(b2.to_owned(), s);
                            model.orphaned(key, b1, s);
                        } else {
                            assert_no_space(got);
                        }
                    }
                }
            }
            6 => {
                label = format!("replicate {key} {b2} -> {b1}");
                let got = replicate(&store, key, b1, b2).await;
                match model.has(key, b2) {
                    _ if b1 == b2 => assert_invalid(got, &label),
                    None => assert_eq!(got.unwrap(), ReplicaOutcome::SourceGone, "{label}"),
                    Some(_) if model.has(key, b1).is_some() => {
                        assert_eq!(got.unwrap(), ReplicaOutcome::TargetHasCopy, "{label}");
                    }
                    Some(s) => {
                        if model.admits(b1, s) {
                            assert_eq!(
                                got.unwrap(),
                                ReplicaOutcome::Recorded { bytes: s },
                                "{label}"
                            );
                            model.copies.get_mut(key).unwrap().insert(b1.to_owned(), s);
                        } else {
                            assert_no_space(got);
                        }
                    }
                }
            }
            7 => {
                let factor = rng.i64(1..3);
                label = format!("remove excess {key} on {b1} (factor {factor})");
                let got = store.remove_excess_copy(key, b1, factor).await.unwrap();
                let n = model.copies.get(key).map_or(0, BTreeMap::len) as i64;
                let expect = n > factor && model.has(key, b1).is_some();
                assert_eq!(got.is_some(), expect, "{label}");
                if let Some(d) = &got {
                    assert_eq!(Some(d.size_bytes), model.has(key, b1), "{label}");
                    assert_eq!(d.backend_name, b1, "{label}");
                }
                if expect {
                    let s = model.copies.get_mut(key).unwrap().remove(b1).unwrap();
                    model.orphaned(key, b1, s);
                }
            }
            8 => {
                let keys: Vec<String> = (0..rng.usize(0..4))
                    .map(|_| KEYS[rng.usize(..KEYS.len())].to_owned())
                    .collect();
                label = format!("batch delete {keys:?}");
                let got = store.delete_objects_batch(&keys).await.unwrap();
                let mut expected = BTreeMap::new();
                for k in &keys {
                    if let Some(c) = model.copies.remove(k) {
                        for (b, s) in deleted(&c, None) {
                            model.orphaned(k, &b, s);
                        }
                        expected.insert(k.clone(), deleted(&c, None));
                    }
                }
                let got: BTreeMap<String, Vec<(String, i64)>> =
                    got.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                assert_eq!(got, expected, "{label}");
            }
            _ => {
                let n = rng.i64(0..100);
                if rng.bool() {
                    label = format!("orphan +{n} on {b1}");
                    store.increment_orphan_bytes(b1, n).await.unwrap();
                    *model.orphan.get_mut(b1).unwrap() += n;
                } else {
                    label = format!("orphan -{n} on {b1}");
                    store.decrement_orphan_bytes(b1, n).await.unwrap();
                    let o = model.orphan.get_mut(b1).unwrap();
                    *o = (*o - n).max(0);
                }
            }
        }
        check(&store, &model, step, &label).await;
    }
    assert!(
        store.reconcile_usage().await.unwrap().is_empty(),
        "reconcile found drift after the run"
    );
}

/// 250 random ledger operations under tight limits (refusals are frequent).
pub async fn random_ops_tight_limits(store: Db) {
    run(store, 0x5330_0001, 250, [300, 500, 0]).await;
}

/// 250 random ledger operations under roomy limits (mostly admitted).
pub async fn random_ops_roomy_limits(store: Db) {
    run(store, 0x5330_0002, 250, [GIB, 0, 2000]).await;
}

/// A second seed under tight limits.
pub async fn random_ops_tight_limits_seed_3(store: Db) {
    run(store, 0x5330_0003, 250, [400, 250, 600]).await;
}

/// Random keys over an adversarial alphabet: flat and delimited listings, every prefix,
/// random page sizes, all agree with the byte-sorted model.
pub async fn random_keys_listing_matches_model(store: Db) {
    three_backends(&store).await;
    let alphabet = [
        "a", "A", "b", "/", "%", "_", "\\", "-", ".", "é", "😀", "z", "0",
    ];
    let mut rng = fastrand::Rng::with_seed(0x5330_1157);
    let mut keys: Vec<String> = (0..80)
        .map(|_| {
            (0..rng.usize(1..6))
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        })
        .collect();
    keys = byte_sorted(&keys);
    put_many(&store, &keys, A, 1).await;
    let mut prefixes: Vec<String> = vec![String::new()];
    for a in alphabet {
        prefixes.push(a.to_owned());
        for b in ["a", "/", "%", "é"] {
            prefixes.push(format!("{a}{b}"));
        }
    }
    for p in &prefixes {
        let page = rng.i64(1..6);
        // Flat.
        let expected: Vec<&String> = keys.iter().filter(|k| k.starts_with(p.as_str())).collect();
        let mut got = Vec::new();
        let mut token = String::new();
        for round in 0.. {
            assert!(round < 10_000, "flat listing of {p:?} never ended");
            let r = store.list_objects(p, &token, page).await.unwrap();
            got.extend(r.objects.into_iter().map(|o| o.object_key));
            if !r.is_truncated {
                break;
            }
            token = r.next_continuation_token;
        }
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            expected,
            "flat {p:?} page {page}"
        );
        // Delimited, with a delimiter drawn from the alphabet.
        let delim = ["/", "%", "é", "a"][rng.usize(..4)];
        let mut expected_entries: Vec<String> = Vec::new();
        for k in &expected {
            let rest = &k[p.len()..];
            let entry = match rest.find(delim) {
                Some(i) => k[..p.len() + i + delim.len()].to_owned(),
                None => (*k).clone(),
            };
            if !expected_entries.contains(&entry) {
                expected_entries.push(entry);
            }
        }
        let mut got_entries: Vec<String> = Vec::new();
        let mut token = String::new();
        for round in 0.. {
            assert!(round < 10_000, "delimited listing of {p:?} never ended");
            let r = store
                .list_objects_delimited(p, delim, &token, page)
                .await
                .unwrap();
            let mut page_entries: Vec<String> = r
                .common_prefixes
                .into_iter()
                .chain(r.objects.into_iter().map(|o| o.object_key))
                .collect();
            assert!(page_entries.len() as i64 <= page);
            page_entries.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
            got_entries.extend(page_entries);
            if !r.is_truncated {
                break;
            }
            token = r.next_continuation_token;
        }
        assert_eq!(
            got_entries, expected_entries,
            "delimited {p:?} by {delim:?} page {page}"
        );
    }
    assert_ledger(&store).await;
}
