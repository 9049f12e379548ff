//! The replicator and the over-replication cleaner.
//!
//! Both scan each virtual bucket's keys in byte order, `batch_size` keys per bucket per pass,
//! resuming where the previous pass stopped and wrapping at the end, so every key is examined
//! in turn whatever each bucket's factor (the store's under/over-replication queries take one
//! factor for the whole ledger). A key below its bucket's factor gets copies on backends
//! chosen by the routing policy among those that answer and hold no copy, streamed from a
//! copy that answers and recorded with `record_replica`; a key above it loses the copies least
//! worth keeping (backends that are down or no longer configured first, then the last in
//! routing order) through `remove_excess_copy`, which queues their bytes; they are deleted at
//! once when the backend answers, else by the cleanup worker.

use s3o_store::{KeyBound, ReplicaOutcome, StoreError};

use super::{Ctx, Health, Tally, Worker, copy_under_intent, end_copy, settle};
use crate::keys;
use crate::ledger::LResult;

/// The next page of `bucket`'s keys for `w`, with the backends holding each.
async fn scan_page(ctx: &Ctx, w: Worker, bucket: &str) -> LResult<Vec<(String, usize)>> {
    let batch = match w {
        Worker::OverReplication => ctx.settings.over_replication.batch_size,
        _ => ctx.settings.replicator.batch_size,
    } as usize;
    let prefix = keys::bucket_prefix(bucket);
    let cursor = ctx.cursor(w, bucket);
    let bound = if cursor.is_empty() {
        KeyBound::Start
    } else {
        KeyBound::After(&cursor)
    };
    let rows = ctx
        .store
        .list_objects_by_prefix(&prefix, bound, batch)
        .await?;
    let next = if rows.len() < batch {
        String::new()
    } else {
        rows.last()
            .map(|r| r.object_key.clone())
            .unwrap_or_default()
    };
    let keys: Vec<String> = rows.into_iter().map(|r| r.object_key).collect();
    let holders = ctx.store.get_object_backends_for_keys(&keys).await?;
    ctx.set_cursor(w, bucket, next);
    Ok(keys
        .into_iter()
        .map(|k| {
            let n = holders.get(&k).map_or(0, Vec::len);
            (k, n)
        })
        .collect())
}

/// The replicator's pass.
pub(super) async fn replicate(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let mut health = Health::default();
    for (bucket, factor) in &ctx.current_factors().await? {
        if *factor <= 1 {
            continue;
        }
        for (key, n) in scan_page(ctx, Worker::Replicator, bucket).await? {
            if ctx.stopping() {
                return Ok(());
            }
            if n > 0 && (n as i64) < *factor {
                replicate_key(ctx, &key, *factor, &mut health, t).await?;
            }
        }
    }
    Ok(())
}

async fn replicate_key(
    ctx: &Ctx,
    key: &str,
    factor: i64,
    health: &mut Health,
    t: &mut Tally,
) -> LResult<()> {
    let copies = ctx.ledger.copies_or_empty(key).await?;
    let mut holders: Vec<String> = copies.iter().map(|c| c.backend.clone()).collect();
    while (holders.len() as i64) < factor {
        let mut sources = Vec::new();
        let mut over_budget = false;
        for c in &copies {
            // Reading from a backend over its monthly budget would spend it: deferred.
            if ctx.backends.over_budget(&c.backend) {
                over_budget = true;
                continue;
            }
            if let Some(b) = ctx.backends.get(&c.backend)
                && health.up(b).await
            {
                sources.push((c, b.clone()));
            }
        }
        let Some((first, _)) = sources.first() else {
            t.add(if over_budget {
                "deferred_over_budget"
            } else {
                "no_readable_copy"
            });
            return Ok(());
        };
        let size = first.size;
        let mut candidates = Vec::new();
        for name in ctx.backends.order() {
            if holders.contains(name) || ctx.backends.over_budget(name) {
                continue;
            }
            if let Some(b) = ctx.backends.get(name)
                && health.up(b).await
            {
                candidates.push(name.clone());
            }
        }
        if candidates.is_empty() {
            t.add("no_target");
            return Ok(());
        }
        let target = match ctx.ledger.pick_backend(size, &candidates).await {
            Ok(t) => t,
            Err(StoreError::NoSpaceAvailable) => {
                t.add("no_room");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(dst) = ctx.backends.get(&target).cloned() else {
            return Ok(());
        };
        let mut copied = None;
        let mut copy = None;
        for (c, src) in &sources {
            let path = if c.meta.storage_key.is_empty() {
                key
            } else {
                c.meta.storage_key.as_str()
            };
            match copy_under_intent(ctx, src, &dst, key, path, c.size, &c.meta.etag).await? {
                Ok(intent) => {
                    copied = Some(*c);
                    copy = Some(intent);
                    break;
                }
                Err(e) => tracing::warn!(key = %key, error = %e, "replica copy failed"),
            }
        }
        let (Some(src), Some(copy)) = (copied, copy) else {
            t.add("copy_failed");
            return Ok(());
        };
        // The version we copied: the store refuses the replica if the key changed since.
        let expected = if src.meta.storage_key.is_empty() {
            key
        } else {
            src.meta.storage_key.as_str()
        };
        let recorded = ctx
            .store
            .record_replica(key, &target, &src.backend, expected)
            .await;
        // Recorded or not, the copy's intent ends here: it just goes when the replica is the
        // live copy at that path, else its bytes are queued and deleted.
        end_copy(ctx, copy).await?;
        match recorded {
            Ok(ReplicaOutcome::Recorded { .. }) => {
                tracing::info!(key = %key, from = %src.backend, to = %target, "replica recorded");
                t.add("replicated");
                holders.push(target);
            }
            Ok(_) => {
                t.add("source_changed");
                return Ok(());
            }
            Err(StoreError::NoSpaceAvailable) => {
                t.add("no_room");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The over-replication cleaner's pass.
pub(super) async fn trim(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let mut health = Health::default();
    for (bucket, factor) in &ctx.current_factors().await? {
        for (key, n) in scan_page(ctx, Worker::OverReplication, bucket).await? {
            if ctx.stopping() {
                return Ok(());
            }
            if (n as i64) > *factor {
                trim_key(ctx, &key, *factor, &mut health, t).await?;
            }
        }
    }
    Ok(())
}

async fn trim_key(
    ctx: &Ctx,
    key: &str,
    factor: i64,
    health: &mut Health,
    t: &mut Tally,
) -> LResult<()> {
    let copies = ctx.ledger.copies_or_empty(key).await?;
    // Worth keeping: answering backends, in routing order; then the rest.
    let mut ranked = Vec::with_capacity(copies.len());
    for c in copies {
        let rank = match ctx.backends.get(&c.backend) {
            Some(b) if health.up(b).await => ctx
                .backends
                .order()
                .iter()
                .position(|n| *n == c.backend)
                .unwrap_or(usize::MAX),
            Some(_) => usize::MAX - 1,
            None => usize::MAX,
        };
        ranked.push((rank, c));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    let keep = usize::try_from(factor).unwrap_or(usize::MAX);
    for (_, c) in ranked.into_iter().skip(keep).rev() {
        match ctx.store.remove_excess_copy(key, &c.backend, factor).await {
            Ok(Some(removed)) => {
                // Its cleanup row is ours: delete the bytes now and complete it.
                settle(ctx, vec![removed]).await?;
                tracing::info!(key = %key, backend = %c.backend, "excess copy removed");
                t.add("trimmed");
            }
            Ok(None) => t.add("already_trimmed"),
            Err(StoreError::CopyHoldsOnlyDek { .. }) => t.add("kept_only_key_holder"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
