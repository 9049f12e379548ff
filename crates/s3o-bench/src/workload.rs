//! The measured operations, their key spaces and the s3o call each one makes.
//!
//! Keys are decimal numbers so that pgbench, whose `\set` variables are integers, can compute
//! the very same keys: client `c` (0-based) at iteration `i` (1-based) of a run whose key block
//! starts at `base` uses `base + c × STRIDE + i`. Every run gets its own block, and the rows a
//! consuming operation needs (copies to delete, intents to promote, ...) are seeded for exactly
//! that block before the run.

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::time::Instant;

use s3o_core::{MetadataStore, MoveOutcome, PendingObject, ReplicaOutcome, StoredForm, Timestamp};

use crate::harness::{self, OpFn, OpFuture, Plan};

/// Keys per client inside a block.
pub(crate) const STRIDE: u64 = 10_000_000;
/// Size of one key block (room for 100 clients).
pub(crate) const BLOCK: u64 = 1_000_000_000;
/// Stored size of seeded copies and intents.
pub(crate) const SEED_SIZE: i64 = 1000;
/// Copies and intents are seeded on this backend; replicas and moves go to [`TARGET`].
pub(crate) const SOURCE: &str = "b1";
/// The second backend.
pub(crate) const TARGET: &str = "b2";
/// Every backend of the bench schemas (the four-backend workload spreads clients over them).
pub(crate) const BACKENDS: [&str; 4] = ["b1", "b2", "b3", "b4"];
/// Every backend's quota limit: finite, so the guard is evaluated on every charge (as with a
/// real quota), and far above anything a run can write.
pub(crate) const QUOTA_LIMIT: i64 = 1 << 60;

/// Migrates a new store and gives every backend of [`BACKENDS`] its quota row at
/// [`QUOTA_LIMIT`]: the state every bench database starts from.
pub(crate) async fn init_store(store: &MetadataStore) -> Result<(), String> {
    store.run_migrations().await.map_err(|e| e.to_string())?;
    let limits: Vec<(String, i64)> = BACKENDS
        .iter()
        .map(|b| ((*b).to_owned(), QUOTA_LIMIT))
        .collect();
    store
        .sync_quota_limits(&limits)
        .await
        .map_err(|e| e.to_string())
}

/// The backend of client `client` in the four-backend workload.
pub(crate) fn backend_of(client: usize) -> &'static str {
    BACKENDS[client % BACKENDS.len()]
}
/// Cleanup rows claimed per claim.
pub(crate) const CLAIM_BATCH: i64 = 100;
/// Keys in a listing page.
pub(crate) const PAGE: i64 = 1000;

/// The key of client `client` at iteration `iter` in the block starting at `base`.
pub(crate) fn key(base: u64, client: usize, iter: u64) -> String {
    (base + client as u64 * STRIDE + iter).to_string()
}

/// The pgbench lines computing the same key into `:key` (a per-client counter `:i`, started
/// at 0 with `-D i=0`).
pub(crate) fn key_prelude(base: u64) -> Vec<String> {
    vec![
        "\\set i :i + 1".to_owned(),
        format!("\\set key {base} + :client_id * {STRIDE} + :i"),
    ]
}

/// What a run needs in the database beforehand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seed {
    /// Nothing (new keys).
    None,
    /// One copy per key on [`SOURCE`].
    Objects,
    /// One pending intent per key (intent id = key) on [`SOURCE`], no copy.
    Pending,
    /// Due, unclaimed cleanup-queue rows.
    Queue,
}

/// A measured write operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `record_object` of a new key.
    RecordNew,
    /// `record_object` of a new key, client `c` writing to backend [`backend_of`]`(c)`.
    RecordNew4,
    /// `record_object` over an existing copy on the same backend, with a new size.
    RecordOverwrite,
    /// `delete_object` of a key with one copy.
    Delete,
    /// `record_replica` from [`SOURCE`] to [`TARGET`].
    Replica,
    /// `move_object_location` from [`SOURCE`] to [`TARGET`].
    Move,
    /// `claim_pending_cleanups` of [`CLAIM_BATCH`] rows, then `complete_cleanup_item` of each.
    ClaimComplete,
    /// `promote_pending` of an intent whose key has no copy.
    Promote,
}

impl Op {
    /// Every write operation, in run order (`RecordNew` first: its throughput sizes the
    /// seeding of the others).
    pub(crate) const ALL: [Op; 8] = [
        Op::RecordNew,
        Op::RecordNew4,
        Op::RecordOverwrite,
        Op::Delete,
        Op::Replica,
        Op::Move,
        Op::ClaimComplete,
        Op::Promote,
    ];

    /// Name in the results table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::RecordNew => "record_object (new key)",
            Op::RecordNew4 => "record_object (new key, 4 backends)",
            Op::RecordOverwrite => "record_object (overwrite)",
            Op::Delete => "delete_object",
            Op::Replica => "record_replica",
            Op::Move => "move_object_location",
            Op::ClaimComplete => "claim_pending_cleanups + 100 × complete_cleanup_item",
            Op::Promote => "promote_pending",
        }
    }

    /// File-name slug.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            Op::RecordNew => "record_new",
            Op::RecordNew4 => "record_new_4b",
            Op::RecordOverwrite => "record_overwrite",
            Op::Delete => "delete",
            Op::Replica => "replica",
            Op::Move => "move",
            Op::ClaimComplete => "claim_complete",
            Op::Promote => "promote",
        }
    }

    /// A new-key write, whose baselines include the reference's own statements.
    pub(crate) fn is_record_new(self) -> bool {
        matches!(self, Op::RecordNew | Op::RecordNew4)
    }

    /// The run plan of `clients` clients with `st`'s windows; each client stops after its
    /// `per_client` seeded rows, except the claim, which shares one queue.
    pub(crate) fn plan(self, clients: usize, st: &crate::Settings, per_client: u64) -> Plan {
        Plan {
            clients,
            warmup: st.warmup,
            duration: st.duration,
            max_iters: if self == Op::ClaimComplete {
                u64::MAX
            } else {
                per_client
            },
        }
    }

    /// What must be seeded per key before a run.
    pub(crate) fn seed(self) -> Seed {
        match self {
            Op::RecordNew | Op::RecordNew4 => Seed::None,
            Op::RecordOverwrite | Op::Delete | Op::Replica | Op::Move => Seed::Objects,
            Op::ClaimComplete => Seed::Queue,
            Op::Promote => Seed::Pending,
        }
    }

    /// The s3o call for client `client`, iteration `iter`, in the block at `base`.
    pub(crate) fn call(self, store: MetadataStore, base: u64) -> OpFn {
        Arc::new(move |client, iter| -> OpFuture {
            let store = store.clone();
            let k = key(base, client, iter);
            Box::pin(async move { self.run_once(&store, &k, client).await })
        })
    }

    /// One operation on `k` (ignored by `ClaimComplete`).
    pub(crate) async fn run_once(
        self,
        store: &MetadataStore,
        k: &str,
        client: usize,
    ) -> Result<(), String> {
        let form = StoredForm::default();
        let e = |e: s3o_core::StoreError| e.to_string();
        match self {
            Op::RecordNew => store
                .record_object(k, SOURCE, SEED_SIZE, &form)
                .await
                .map(drop)
                .map_err(e),
            Op::RecordNew4 => store
                .record_object(k, backend_of(client), SEED_SIZE, &form)
                .await
                .map(drop)
                .map_err(e),
            Op::RecordOverwrite => store
                .record_object(k, SOURCE, 2 * SEED_SIZE, &form)
                .await
                .map(drop)
                .map_err(e),
            Op::Delete => store.delete_object(k).await.map(drop).map_err(e),
            // Seeded copies have the default form: their path is the key.
            Op::Replica => match store
                .record_replica(k, TARGET, SOURCE, k)
                .await
                .map_err(e)?
            {
                ReplicaOutcome::Recorded { .. } => Ok(()),
                other => Err(format!("replica of {k} not recorded: {other:?}")),
            },
            Op::Move => match store.move_object_location(k, SOURCE, TARGET, k).await {
                Ok(MoveOutcome::Moved { .. }) => Ok(()),
                Ok(other) => Err(format!("move of {k} moved nothing: {other:?}")),
                Err(x) => Err(e(x)),
            },
            Op::ClaimComplete => {
                let cutoff = Duration::from_secs(300);
                let items = store
                    .claim_pending_cleanups(CLAIM_BATCH, &format!("bench-{client}"), cutoff)
                    .await
                    .map_err(e)?;
                if items.is_empty() {
                    return Err("cleanup queue ran dry".into());
                }
                for it in &items {
                    let claim = it.claim().ok_or("claimed row without a claim")?;
                    store.complete_cleanup_item(&claim).await.map_err(e)?;
                }
                Ok(())
            }
            Op::Promote => {
                let p = PendingObject {
                    intent_id: k.to_owned(),
                    object_key: k.to_owned(),
                    backend_name: SOURCE.to_owned(),
                    size_bytes: SEED_SIZE,
                    form,
                    created_at: Timestamp::from_micros(1),
                };
                let (r, _) = store.promote_pending(&p).await.map_err(e)?;
                if r == s3o_core::PendingPromoteResult::Committed {
                    Ok(())
                } else {
                    Err(format!("promotion of {k}: {r:?}"))
                }
            }
        }
    }
}

/// A measured read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// `list_objects("", start_after = random key, 1000)`.
    ListPage,
    /// `get_all_object_locations(random key)`.
    GetAll,
}

impl Read {
    /// Name in the results table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Read::ListPage => "list_objects (page of 1000)",
            Read::GetAll => "get_all_object_locations",
        }
    }

    /// File-name slug.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            Read::ListPage => "list_page",
            Read::GetAll => "get_all",
        }
    }

    /// One read of key / start point `k`.
    pub(crate) async fn run_once(self, store: &MetadataStore, k: &str) -> Result<(), String> {
        match self {
            Read::ListPage => {
                let page = store
                    .list_objects("", k, PAGE)
                    .await
                    .map_err(|e| e.to_string())?;
                if page.objects.is_empty() {
                    return Err(format!("empty page after {k}"));
                }
                Ok(())
            }
            Read::GetAll => store
                .get_all_object_locations(k)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    /// The s3o call on a random seeded key (see [`read_key`]) among `n` seeded keys.
    pub(crate) fn call(self, store: MetadataStore, n: u64) -> OpFn {
        Arc::new(move |_, _| -> OpFuture {
            let store = store.clone();
            let k = read_key(self, n);
            Box::pin(async move { self.run_once(&store, &k).await })
        })
    }

    /// The upper end of the random offset: pages start early enough to be full.
    pub(crate) fn span(self, n: u64) -> u64 {
        match self {
            Read::ListPage => n.saturating_sub(PAGE as u64 + 1).max(1),
            Read::GetAll => n.max(1),
        }
    }

    /// The pgbench lines computing the same random key into `:key`.
    pub(crate) fn prelude(self, n: u64) -> Vec<String> {
        vec![format!(
            "\\set key {READ_BASE} + random(1, {})",
            self.span(n)
        )]
    }
}

/// Seeded read keys are `READ_BASE + 1 ..= READ_BASE + n`: all the same length, so byte order
/// is numeric order and a page after a random key is a full page.
pub(crate) const READ_BASE: u64 = 1_000_000_000;

/// A random seeded key for `read` among `n` seeded keys.
pub(crate) fn read_key(read: Read, n: u64) -> String {
    (READ_BASE + fastrand::u64(1..=read.span(n))).to_string()
}

/// The cost of claiming [`CLAIM_BATCH`] rows from a queue `depth` deep, trial `trial`
/// (0-based): the p50 latency of the claims that ended in the window. Each timed claim is
/// followed by an untimed `release` of the ids it claimed, so the queue keeps its depth.
pub(crate) async fn claim_cost<R, RF>(
    store: &MetadataStore,
    depth: u64,
    trial: usize,
    warmup: Duration,
    duration: Duration,
    release: R,
) -> Result<f64, String>
where
    R: Fn(Vec<i64>) -> RF,
    RF: Future<Output = Result<(), String>>,
{
    let release = &release;
    let m = harness::run_timed(warmup, duration, move || async move {
        let cutoff = Duration::from_secs(300);
        let t0 = Instant::now();
        let items = store
            .claim_pending_cleanups(CLAIM_BATCH, "bench", cutoff)
            .await
            .map_err(|e| e.to_string())?;
        let took = t0.elapsed();
        if items.len() != CLAIM_BATCH as usize {
            return Err(format!("claimed {} rows", items.len()));
        }
        release(items.iter().map(|i| i.id).collect()).await?;
        Ok(took)
    })
    .await;
    if let Some(e) = &m.first_error {
        return Err(format!("claim at {depth} queued: {e}"));
    }
    println!(
        "  trial {} claim {CLAIM_BATCH} at {} queued: p50 {:.3} ms",
        trial + 1,
        crate::size_label(depth),
        m.p50_ms()
    );
    Ok(m.p50_ms())
}
