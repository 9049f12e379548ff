//! The rebalancer (off by default): evens out the utilisation of backends with a quota.
//!
//! Utilisation is `(bytes_used + orphan_bytes) / bytes_limit`; backends without a quota have
//! none and are left out (they would draw every byte). While the most and the least utilised
//! of the answering backends differ by more than `threshold_percent` points, copies on the most utilised one
//! are moved, smallest first, to the least utilised backend that admits them and holds no
//! copy of the key (`get_least_utilized_backend`), at most `batch_size` per pass, with the
//! drain's safe move: bytes copied under a write intent on the target, the ledger row moved
//! only while it still names the version copied, the quota charged under the commit's guard
//! (a target without room refuses, nothing changes), the source's bytes deleted after the read
//! grace. A move that would leave the target more utilised than the source is not made.
//! Backends over a monthly usage budget take no part (`backend_over_budget`). Once a
//! backend's current copies are all tried, its noncurrent versions' copies move the same way
//! (`move_version_location`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use s3o_store::{BackendCapacity, NoncurrentCopy, ObjectLocation, StoreError};

use super::drain::{Moved, READ_GRACE, move_copy, move_version_copy, release_source};
use super::{Ctx, Health, Tally, within_budget};
use crate::ledger::{Displaced, LResult};

/// Utilisation of a backend with a quota, not counting the orphan bytes of sources this
/// pass moved away (`releasing`): they go at the end of the pass, and counting them would
/// make the source look as full as before and send copies back.
fn utilisation(c: &BackendCapacity, releasing: &BTreeMap<String, i64>) -> f64 {
    let gone = releasing.get(&c.backend_name).copied().unwrap_or(0);
    (c.bytes_used + c.orphan_bytes - gone).max(0) as f64 / c.bytes_limit as f64
}

/// The copy a rebalance step moves: a current copy, or a noncurrent version's.
enum Pick {
    Current(ObjectLocation),
    Noncurrent(NoncurrentCopy),
}

impl Pick {
    fn location(&self) -> ObjectLocation {
        match self {
            Pick::Current(l) => l.clone(),
            Pick::Noncurrent(c) => c.location.clone(),
        }
    }
}

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let s = &ctx.settings.rebalance;
    if !s.enabled {
        return Ok(());
    }
    let mut health = Health::default();
    // A move reads its source and writes its target: a backend over its monthly budget is
    // neither.
    let mut up = Vec::new();
    for b in ctx.backends.all() {
        if within_budget(ctx, b, t) && health.up(b).await {
            up.push(b.name.clone());
        }
    }
    // A backend being drained is the drain's: the rebalancer neither moves copies onto it
    // (the write fence) nor off it (the drain is already doing so).
    let draining = ctx.store.draining_backends().await?;
    up.retain(|n| !draining.contains(n));
    let mut deferred: Vec<(Instant, String, Displaced)> = Vec::new();
    // Keys examined this pass (a key is moved at most once per pass), and noncurrent versions.
    let mut tried: BTreeSet<String> = BTreeSet::new();
    let mut tried_versions: BTreeSet<(String, String)> = BTreeSet::new();
    let mut releasing: BTreeMap<String, i64> = BTreeMap::new();
    let mut moves = 0u32;
    let mut attempts = 0u32;
    let threshold = f64::from(s.threshold_percent) / 100.0;
    while moves < s.batch_size && attempts < s.batch_size.saturating_mul(2) && !ctx.stopping() {
        attempts += 1;
        let mut caps: Vec<BackendCapacity> = ctx
            .store
            .backend_capacities(&up)
            .await?
            .into_iter()
            .filter(|c| c.bytes_limit > 0)
            .collect();
        if caps.len() < 2 {
            break;
        }
        let util = |c: &BackendCapacity| utilisation(c, &releasing);
        caps.sort_by(|a, b| util(b).total_cmp(&util(a)));
        let (most, least) = (&caps[0], &caps[caps.len() - 1]);
        if util(most) - util(least) <= threshold {
            t.add("balanced");
            break;
        }
        let Some(from) = ctx.backends.get(&most.backend_name).cloned() else {
            break;
        };
        let others: Vec<&BackendCapacity> = caps[1..].iter().collect();
        // The smallest copies first: many small moves overshoot least. Once no current copy
        // is left to try, noncurrent versions' copies (DESIGN decision 25), in key order.
        let page = ctx
            .store
            .list_objects_by_backend(&from.name, i64::try_from(tried.len()).unwrap_or(0) + 100)
            .await?;
        let pick = match page.into_iter().find(|l| !tried.contains(&l.object_key)) {
            Some(loc) => {
                tried.insert(loc.object_key.clone());
                Pick::Current(loc)
            }
            None => {
                let page = ctx
                    .store
                    .list_noncurrent_copies_by_backend(
                        &from.name,
                        "",
                        "",
                        i64::try_from(tried_versions.len()).unwrap_or(0) + 100,
                    )
                    .await?;
                let untried = page.into_iter().find(|c| {
                    !tried_versions.contains(&(c.location.object_key.clone(), c.version_id.clone()))
                });
                let Some(c) = untried else {
                    t.add("nothing_movable");
                    break;
                };
                tried_versions.insert((c.location.object_key.clone(), c.version_id.clone()));
                Pick::Noncurrent(c)
            }
        };
        let loc = pick.location();
        let holders: Vec<String> = match &pick {
            Pick::Current(loc) => ctx
                .ledger
                .copies_or_empty(&loc.object_key)
                .await?
                .into_iter()
                .map(|c| c.backend)
                .collect(),
            Pick::Noncurrent(c) => match ctx
                .store
                .get_object_version(&loc.object_key, &c.version_id)
                .await
            {
                Ok(v) => v.copies.into_iter().map(|l| l.backend_name).collect(),
                Err(StoreError::VersionNotFound { .. }) => continue,
                Err(e) => return Err(e),
            },
        };
        let free: Vec<&&BackendCapacity> = others
            .iter()
            .filter(|c| !holders.contains(&c.backend_name))
            .collect();
        if free.is_empty() {
            t.add("held_everywhere");
            continue;
        }
        // Only targets this move leaves no more utilised than the source.
        let after_source = util(most) - loc.size_bytes as f64 / most.bytes_limit as f64;
        let eligible: Vec<String> = free
            .iter()
            .filter(|c| {
                let after_target = util(c) + loc.size_bytes as f64 / c.bytes_limit as f64;
                // An exact tie is allowed: the epsilon absorbs float rounding (0.3 - 0.1 is
                // just below 0.1 + 0.1).
                after_target <= after_source + 1e-9
            })
            .map(|c| c.backend_name.clone())
            .collect();
        if eligible.is_empty() {
            t.add("would_overshoot");
            match pick {
                // The smallest movable copy overshoots: larger ones would too.
                Pick::Current(_) => break,
                // Noncurrent copies come in key order: a smaller one may follow.
                Pick::Noncurrent(_) => continue,
            }
        }
        let target = match ctx
            .store
            .get_least_utilized_backend(loc.size_bytes, &eligible)
            .await
        {
            Ok(n) => n,
            Err(StoreError::NoSpaceAvailable) => {
                t.add("no_room");
                break;
            }
            Err(e) => return Err(e),
        };
        let Some(to) = ctx.backends.get(&target).cloned() else {
            break;
        };
        let moved = match &pick {
            Pick::Current(loc) => move_copy(ctx, &from, &to, loc).await?,
            Pick::Noncurrent(c) => move_version_copy(ctx, &from, &to, c).await?,
        };
        match moved {
            Moved::Yes(bytes, source) => {
                tracing::info!(key = %loc.object_key, from = %from.name, to = %to.name, bytes, "rebalanced a copy");
                t.add("moved");
                moves += 1;
                *releasing.entry(from.name.clone()).or_default() += source.size;
                deferred.push((Instant::now() + READ_GRACE, loc.object_key.clone(), source));
            }
            Moved::NoRoom => t.add("no_room"),
            Moved::NotCopied => t.add("copy_failed"),
            Moved::Changed | Moved::StillOnSource => t.add("changed"),
        }
    }
    // The sources' bytes go once reads that looked them up just before the moves are done.
    if let Some((when, _, _)) = deferred.last() {
        tokio::time::sleep_until((*when).into()).await;
    }
    for (_, key, source) in deferred {
        release_source(ctx, &key, source).await?;
    }
    Ok(())
}
