//! The lifecycle worker: applies each bucket's lifecycle rules (stored with the bucket in the
//! ledger, seeded from the configuration, managed over S3).
//!
//! **Expiration** lists the keys of the rule's prefix whose current version is older than the
//! rule's days (or every key once its date has passed), oldest first in key order, and
//! expires each through [`s3o_store::MetadataStore::expire_current_version`]: one ledger
//! transaction under the key lock re-checks that the key still holds the version listed and,
//! for a rule with tags, that it still carries every tag (a write or a tag change racing the
//! worker wins), then deletes it as an S3 DELETE without a version id would: unversioned, every
//! copy goes and its bytes are queued (claimed by this instance), then deleted and the rows
//! completed; versioning enabled, a delete marker is written over it (its bytes stay, now
//! noncurrent); suspended, a `null` marker replaces the `null` version.
//!
//! **NoncurrentVersionExpiration** and **ExpiredObjectDeleteMarker** (versioned buckets) walk
//! the rule's prefix in ListObjectVersions order from where the last pass stopped; a key with
//! a version due (by [`s3o_store::due_versions`] on the listing) is handed to
//! [`s3o_store::MetadataStore::expire_noncurrent_versions`], which decides again under the key
//! lock and deletes the due versions for good (bytes queued in the same transaction), and a
//! delete marker left as the key's only version. A version is noncurrent from the moment its
//! successor was written, as in S3.
//!
//! **AbortIncompleteMultipartUpload** aborts the rule's uploads open longer than its days, as
//! the stale multipart sweeper does.
//!
//! A rule with **tags** expires only keys whose current version carries every tag of the
//! rule: its prefix is walked in key order, `batch_size` keys examined per rule and pass,
//! resumed where the last pass stopped.
//!
//! A pass handles at most `batch_size` objects, versions and uploads in all. Stopping between
//! two items leaves nothing half done: a crash after the ledger step leaves claimed cleanup
//! rows that the cleanup worker takes over after its claim grace; a crash before it leaves the
//! object, which the next pass expires.

use std::time::Duration;

use s3o_store::{
    Bucket, DeleteOutcome, KeyBound, LifecycleRule, NoncurrentExpiry, ObjectVersion, StoreError,
    Timestamp, VersionAge, due_versions,
};

use super::{Ctx, Health, Tally, Worker, settle};
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let settings = &ctx.settings.lifecycle;
    let mut left = i64::from(settings.batch_size);
    let mut health = Health::default();
    for bucket in ctx.ledger.buckets().await? {
        let rules = bucket.settings.lifecycle.iter().enumerate();
        let mut versioned = None;
        for (n, rule) in rules.filter(|(_, r)| r.enabled) {
            if left <= 0 || ctx.stopping() {
                return Ok(());
            }
            let prefix = format!("{}{}", bucket.key_prefix(), rule.prefix);
            let age = expiry_age(rule, settings.day.0, Timestamp::now());
            if let Some(age) = age.filter(|_| !rule.tags.is_empty()) {
                let scan = format!("{}\u{0}{n}", bucket.name);
                let page = settings.batch_size as usize;
                expire_tagged(ctx, t, &bucket, rule, &prefix, &scan, age, page, &mut left).await?;
            } else if let Some(age) = age {
                let due = ctx.store.list_expired_objects(&prefix, age, left).await?;
                for row in due {
                    if ctx.stopping() {
                        return Ok(());
                    }
                    left -= 1;
                    let r =
                        expire_current(ctx, &bucket, rule, &row.object_key, &row.form.storage_key)
                            .await?;
                    count_expiry(ctx, t, rule, &row.object_key, r).await?;
                }
            }
            let noncurrent = noncurrent_expiry(rule, settings.day.0);
            if noncurrent.is_active() {
                // Only a bucket that was ever versioned has versions to expire.
                let v = match versioned {
                    Some(v) => v,
                    None => {
                        *versioned.insert(ctx.ledger.versioning(&bucket.name).await?.is_versioned())
                    }
                };
                if v {
                    let scan = format!("{}\u{0}{n}\u{0}versions", bucket.name);
                    let page = settings.batch_size as usize;
                    expire_versions(
                        ctx,
                        t,
                        &bucket,
                        &noncurrent,
                        &prefix,
                        &scan,
                        page,
                        &mut left,
                    )
                    .await?;
                }
            }
            if let Some(days) = rule.abort_incomplete_upload_days {
                let age = day_span(days, settings.day.0);
                let stale = ctx.store.get_stale_multipart_uploads(age).await?;
                for up in stale.iter().filter(|u| u.object_key.starts_with(&prefix)) {
                    if left <= 0 || ctx.stopping() {
                        return Ok(());
                    }
                    left -= 1;
                    let r = super::multipart::abort(ctx, up, &mut health).await?;
                    t.add(if r == "aborted" { "upload_aborted" } else { r });
                }
            }
        }
    }
    Ok(())
}

/// The current version of `key` (stored at `storage_key`) expired by `rule` under the key
/// lock; `None` when the key changed since it was listed (or its bucket went).
async fn expire_current(
    ctx: &Ctx,
    bucket: &Bucket,
    rule: &LifecycleRule,
    key: &str,
    storage_key: &str,
) -> LResult<Option<DeleteOutcome>> {
    match ctx
        .store
        .expire_current_version(&bucket.name, key, storage_key, &rule.tags)
        .await
    {
        Err(StoreError::BucketNotFound { .. }) => Ok(None),
        r => r,
    }
}

/// Counts (and settles the bytes of) one current-version expiration.
async fn count_expiry(
    ctx: &Ctx,
    t: &mut Tally,
    rule: &LifecycleRule,
    key: &str,
    r: Option<DeleteOutcome>,
) -> LResult<()> {
    match r {
        Some(out) => {
            tracing::info!(key = %key, rule = %rule.id, marker = out.delete_marker, "object expired");
            if out.delete_marker {
                t.add("marker_written");
            }
            settle(ctx, out.removed).await?;
            t.add("expired");
        }
        // Overwritten, deleted or retagged since the listing: the newer state stays.
        None => t.add("changed"),
    }
    Ok(())
}

/// Expiration by a rule with tags: the rule's prefix is walked in key order from where the
/// last pass stopped (the scan `scan`'s cursor), `page` keys examined per pass (so every rule
/// moves on each pass, however many untagged keys its prefix holds); a key whose current
/// version is older than `age` and carries every tag of the rule is expired, each expiration
/// counting against the pass's batch (`left`). The store re-checks the tags under the key
/// lock in the expiring transaction: a tag removed after the listing spares the object.
#[allow(clippy::too_many_arguments)]
async fn expire_tagged(
    ctx: &Ctx,
    t: &mut Tally,
    bucket: &Bucket,
    rule: &LifecycleRule,
    prefix: &str,
    scan: &str,
    age: Duration,
    page: usize,
    left: &mut i64,
) -> LResult<()> {
    let after = ctx.cursor(Worker::Lifecycle, scan);
    let bound = if after.is_empty() {
        KeyBound::Start
    } else {
        KeyBound::After(&after)
    };
    let rows = ctx
        .store
        .list_objects_by_prefix(prefix, bound, page)
        .await?;
    let cutoff = Timestamp::now().minus(age);
    let mut done = None;
    for row in &rows {
        if *left <= 0 || ctx.stopping() {
            break;
        }
        done = Some(row.object_key.clone());
        if row.created_at >= cutoff || !rule.tags_match(&row.form.tags) {
            continue;
        }
        *left -= 1;
        let r = expire_current(ctx, bucket, rule, &row.object_key, &row.form.storage_key).await?;
        count_expiry(ctx, t, rule, &row.object_key, r).await?;
    }
    // The whole of a short page examined ends the walk: the next pass starts over.
    let next = match done {
        _ if rows.is_empty() => String::new(),
        Some(last) if rows.len() < page && rows.last().map(|r| &r.object_key) == Some(&last) => {
            String::new()
        }
        Some(last) => last,
        None => after,
    };
    ctx.set_cursor(Worker::Lifecycle, scan, next);
    Ok(())
}

/// What `rule` asks of noncurrent versions and markers, in `day`-long days.
fn noncurrent_expiry(rule: &LifecycleRule, day: Duration) -> NoncurrentExpiry {
    NoncurrentExpiry {
        noncurrent_for: rule.noncurrent_days.map(|d| day_span(d, day)),
        keep_newer: rule.newer_noncurrent_versions.unwrap_or(0),
        expired_marker: rule.expired_object_delete_marker,
    }
}

/// NoncurrentVersionExpiration / ExpiredObjectDeleteMarker over `prefix`: one page of
/// ListObjectVersions (`page` entries) from the scan's cursor per pass; each key with a
/// version due by the listing is expired under its key lock (the store decides again, at the
/// database's clock), its removals counting against the batch (`left`). The cursor always
/// rests on a key boundary, so a key's versions are judged together; a key with more versions
/// than a page is handed to the store whole.
#[allow(clippy::too_many_arguments)]
async fn expire_versions(
    ctx: &Ctx,
    t: &mut Tally,
    bucket: &Bucket,
    rule: &NoncurrentExpiry,
    prefix: &str,
    scan: &str,
    page: usize,
    left: &mut i64,
) -> LResult<()> {
    let after = ctx.cursor(Worker::Lifecycle, scan);
    let max = i64::try_from(page).unwrap_or(i64::MAX);
    let listing = ctx
        .store
        .list_object_versions(prefix, "", &after, "", max)
        .await?;
    let mut groups: Vec<(String, Vec<ObjectVersion>)> = Vec::new();
    for v in listing.versions {
        match groups.last_mut() {
            Some((k, vs)) if *k == v.object_key => vs.push(v),
            _ => groups.push((v.object_key.clone(), vec![v])),
        }
    }
    // A truncated page may end inside a key: leave that key to the next pass unless it is
    // the page's only key, which the store then judges whole.
    let whole = listing.is_truncated && groups.len() == 1;
    if listing.is_truncated && groups.len() > 1 {
        groups.pop();
    }
    let now = Timestamp::now();
    let mut last_done: Option<String> = None;
    for (key, versions) in groups {
        if *left <= 0 || ctx.stopping() {
            ctx.set_cursor(Worker::Lifecycle, scan, last_done.unwrap_or(after));
            return Ok(());
        }
        let ages: Vec<VersionAge> = versions
            .iter()
            .map(|v| VersionAge {
                seq: v.seq,
                created_at: v.created_at,
                delete_marker: v.delete_marker,
            })
            .collect();
        let limit = usize::try_from(*left).unwrap_or(0);
        if whole || !due_versions(&ages, rule, now, limit).is_empty() {
            let r = match ctx
                .store
                .expire_noncurrent_versions(&bucket.name, &key, rule, limit)
                .await
            {
                Err(StoreError::BucketNotFound { .. }) => return Ok(()),
                r => r?,
            };
            let n = r.versions.len() + r.markers.len();
            if n == 0 && !whole {
                t.add("changed");
            }
            for id in &r.versions {
                tracing::info!(key = %key, version = %id, "noncurrent version expired");
                t.add("noncurrent_expired");
            }
            for id in &r.markers {
                tracing::info!(key = %key, version = %id, "delete marker expired");
                t.add("marker_removed");
            }
            *left -= i64::try_from(n).unwrap_or(i64::MAX).max(1);
            settle(ctx, r.removed).await?;
            if n >= limit {
                // The batch ended inside this key: the next pass comes back to it.
                ctx.set_cursor(Worker::Lifecycle, scan, last_done.unwrap_or(after));
                return Ok(());
            }
        }
        last_done = Some(key);
    }
    // The end of the prefix starts the walk over on the next pass.
    let next = if listing.is_truncated {
        last_done.unwrap_or(after)
    } else {
        String::new()
    };
    ctx.set_cursor(Worker::Lifecycle, scan, next);
    Ok(())
}

/// `days` lifecycle days, capped at the oldest age the ledger accepts.
fn day_span(days: u32, day: Duration) -> Duration {
    day.checked_mul(days)
        .unwrap_or(s3o_store::limits::MAX_AGE)
        .min(s3o_store::limits::MAX_AGE)
}

/// How old an object must be for `rule` to expire it now; `None` when the rule expires nothing
/// (no expiration, or a date still ahead).
fn expiry_age(rule: &LifecycleRule, day: Duration, now: Timestamp) -> Option<Duration> {
    match (rule.expiration_days, rule.expiration_date) {
        (Some(days), _) => Some(day_span(days, day)),
        (None, Some(at)) if at <= now => Some(Duration::ZERO),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_ages() {
        let day = Duration::from_secs(86_400);
        let now = Timestamp::from_micros(2_000_000_000_000_000);
        let r = |days, date| LifecycleRule {
            expiration_days: days,
            expiration_date: date,
            ..LifecycleRule::default()
        };
        assert_eq!(expiry_age(&r(Some(2), None), day, now), Some(day * 2));
        assert_eq!(
            expiry_age(&r(None, Some(now.minus(day))), day, now),
            Some(Duration::ZERO)
        );
        assert_eq!(expiry_age(&r(None, Some(now.plus(day))), day, now), None);
        assert_eq!(expiry_age(&r(None, None), day, now), None);
        assert_eq!(
            expiry_age(&r(Some(u32::MAX), None), day, now),
            Some(s3o_store::limits::MAX_AGE)
        );
    }
}
