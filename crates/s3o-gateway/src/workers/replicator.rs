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
//! once when the backend answers, else by the cleanup worker. Noncurrent versions (DESIGN
//! decision 25) follow each bucket's keys the same way, from their own paged scan
//! (`list_noncurrent_replication`), through `record_version_replica` and
//! `remove_excess_version_copy`.

use s3o_store::{KeyBound, NoncurrentReplicas, ReplicaOutcome, StoreError};

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
        for v in version_page(ctx, Worker::Replicator, bucket, *factor).await? {
            if ctx.stopping() {
                return Ok(());
            }
            if v.copies > 0 && v.copies < *factor {
                replicate_version(ctx, &v, *factor, &mut health, t).await?;
            }
        }
    }
    Ok(())
}

/// The cursor slot of `bucket`'s noncurrent versions (no bucket name holds a NUL).
fn version_slot(bucket: &str) -> String {
    format!("\0versions/{bucket}")
}

/// The next page of `bucket`'s noncurrent versions whose copies number other than `factor`
/// (DESIGN decision 25), resuming where the previous pass of `w` stopped and wrapping at the
/// end, as [`scan_page`] does for current keys.
async fn version_page(
    ctx: &Ctx,
    w: Worker,
    bucket: &str,
    factor: i64,
) -> LResult<Vec<NoncurrentReplicas>> {
    let batch = match w {
        Worker::OverReplication => ctx.settings.over_replication.batch_size,
        _ => ctx.settings.replicator.batch_size,
    };
    let slot = version_slot(bucket);
    let cursor = ctx.cursor(w, &slot);
    let (after_key, after_vid) = cursor.split_once('\0').unwrap_or(("", ""));
    let page = ctx
        .store
        .list_noncurrent_replication(
            &keys::bucket_prefix(bucket),
            after_key,
            after_vid,
            factor,
            i64::from(batch),
        )
        .await?;
    let next = match page.last() {
        Some(v) if page.len() >= batch as usize => format!("{}\0{}", v.object_key, v.version_id),
        _ => String::new(),
    };
    ctx.set_cursor(w, &slot, next);
    Ok(page)
}

/// Brings noncurrent version `v` up to `factor` copies, as [`replicate_key`] does for a
/// current version: bytes streamed from a copy that answers to the same path on a backend
/// chosen by the routing policy, under a write intent there, then `record_version_replica`
/// naming the version and the path copied.
async fn replicate_version(
    ctx: &Ctx,
    v: &NoncurrentReplicas,
    factor: i64,
    health: &mut Health,
    t: &mut Tally,
) -> LResult<()> {
    let key = v.object_key.as_str();
    let copies = match ctx.store.get_object_version(key, &v.version_id).await {
        Ok(found) if !found.is_latest && !found.delete_marker => found.copies,
        // Current again (the current pass's business) or gone: the store would refuse anyway.
        Ok(_) | Err(StoreError::VersionNotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut holders: Vec<String> = copies.iter().map(|c| c.backend_name.clone()).collect();
    while (holders.len() as i64) < factor {
        let mut sources = Vec::new();
        for c in &copies {
            if ctx.backends.over_budget(&c.backend_name) {
                continue;
            }
            if let Some(b) = ctx.backends.get(&c.backend_name)
                && health.up(b).await
            {
                sources.push((c, b.clone()));
            }
        }
        let Some((first, _)) = sources.first() else {
            t.add("version_no_readable_copy");
            return Ok(());
        };
        let size = first.size_bytes;
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
            t.add("version_no_target");
            return Ok(());
        }
        let target = match ctx.ledger.pick_backend(size, &candidates).await {
            Ok(t) => t,
            Err(StoreError::NoSpaceAvailable) => {
                t.add("version_no_room");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(dst) = ctx.backends.get(&target).cloned() else {
            return Ok(());
        };
        let mut copied = None;
        for (c, src) in &sources {
            let path = c.form.storage_path(key);
            match copy_under_intent(ctx, src, &dst, key, path, c.size_bytes, &c.form.etag).await? {
                Ok(intent) => {
                    copied = Some((*c, intent));
                    break;
                }
                Err(e) => {
                    tracing::warn!(key = %key, version = %v.version_id, error = %e, "version replica copy failed")
                }
            }
        }
        let Some((src, copy)) = copied else {
            t.add("version_copy_failed");
            return Ok(());
        };
        let recorded = ctx
            .store
            .record_version_replica(
                key,
                &v.version_id,
                &target,
                &src.backend_name,
                src.form.storage_path(key),
            )
            .await;
        // Recorded or not, the copy's intent ends here: it just goes when the replica's row
        // names that path, else its bytes are queued and deleted.
        end_copy(ctx, copy).await?;
        match recorded {
            Ok(ReplicaOutcome::Recorded { .. }) => {
                tracing::info!(key = %key, version = %v.version_id, from = %src.backend_name, to = %target, "version replica recorded");
                t.add("version_replicated");
                holders.push(target);
            }
            Ok(_) => {
                t.add("version_changed");
                return Ok(());
            }
            Err(StoreError::NoSpaceAvailable) => {
                t.add("version_no_room");
                return Ok(());
            }
            Err(e) => return Err(e),
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
        for v in version_page(ctx, Worker::OverReplication, bucket, *factor).await? {
            if ctx.stopping() {
                return Ok(());
            }
            if v.copies > *factor {
                trim_version(ctx, &v, *factor, &mut health, t).await?;
            }
        }
    }
    Ok(())
}

/// Takes noncurrent version `v` down to `factor` copies, as [`trim_key`] does for a current
/// version, through `remove_excess_version_copy` (which never drops the last copy).
async fn trim_version(
    ctx: &Ctx,
    v: &NoncurrentReplicas,
    factor: i64,
    health: &mut Health,
    t: &mut Tally,
) -> LResult<()> {
    let key = v.object_key.as_str();
    let copies = match ctx.store.get_object_version(key, &v.version_id).await {
        Ok(found) if !found.is_latest && !found.delete_marker => found.copies,
        Ok(_) | Err(StoreError::VersionNotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let ranked = rank(ctx, copies.into_iter().map(|c| c.backend_name), health).await;
    let keep = usize::try_from(factor).unwrap_or(usize::MAX);
    for backend in ranked.into_iter().skip(keep).rev() {
        match ctx
            .store
            .remove_excess_version_copy(key, &v.version_id, &backend, factor)
            .await
        {
            Ok(Some(removed)) => {
                settle(ctx, vec![removed]).await?;
                tracing::info!(key = %key, version = %v.version_id, backend = %backend, "excess version copy removed");
                t.add("version_trimmed");
            }
            Ok(None) => t.add("version_already_trimmed"),
            Err(StoreError::CopyHoldsOnlyDek { .. }) => t.add("version_kept_only_key_holder"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Backends holding copies, most worth keeping first: answering backends in routing order,
/// then those that do not answer, then those no longer configured.
async fn rank(
    ctx: &Ctx,
    backends: impl Iterator<Item = String>,
    health: &mut Health,
) -> Vec<String> {
    let mut ranked = Vec::new();
    for name in backends {
        let r = match ctx.backends.get(&name) {
            Some(b) if health.up(b).await => ctx
                .backends
                .order()
                .iter()
                .position(|n| *n == name)
                .unwrap_or(usize::MAX),
            Some(_) => usize::MAX - 1,
            None => usize::MAX,
        };
        ranked.push((r, name));
    }
    ranked.sort_by_key(|(r, _)| *r);
    ranked.into_iter().map(|(_, n)| n).collect()
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
    let ranked = rank(ctx, copies.into_iter().map(|c| c.backend), health).await;
    let keep = usize::try_from(factor).unwrap_or(usize::MAX);
    for backend in ranked.into_iter().skip(keep).rev() {
        match ctx.store.remove_excess_copy(key, &backend, factor).await {
            Ok(Some(removed)) => {
                // Its cleanup row is ours: delete the bytes now and complete it.
                settle(ctx, vec![removed]).await?;
                tracing::info!(key = %key, backend = %backend, "excess copy removed");
                t.add("trimmed");
            }
            Ok(None) => t.add("already_trimmed"),
            Err(StoreError::CopyHoldsOnlyDek { .. }) => t.add("kept_only_key_holder"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
