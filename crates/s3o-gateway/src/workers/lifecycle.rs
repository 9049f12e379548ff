//! The lifecycle worker: applies each bucket's lifecycle rules (stored with the bucket in the
//! ledger, seeded from the configuration, managed over S3).
//!
//! **Expiration** lists the keys of the rule's prefix whose oldest copy is older than the
//! rule's days (or every key once its date has passed), oldest first in key order, and deletes
//! each through the normal delete path: one ledger transaction removes every copy and queues
//! its bytes (claimed by this instance), then the bytes are deleted and the rows completed.
//! The delete is checked against the version listed ([`s3o_store::MetadataStore::delete_object_version`]),
//! so a key overwritten after the listing keeps its new version. **AbortIncompleteMultipartUpload**
//! aborts the rule's uploads open longer than its days, as the stale multipart sweeper does.
//!
//! A rule with **tags** expires only keys whose copies carry every tag of the rule: its prefix
//! is walked in key order, `batch_size` keys examined per rule and pass, resumed where the last
//! pass stopped.
//!
//! A pass handles at most `batch_size` objects and uploads in all. Stopping between two items
//! leaves nothing half done: a crash after the ledger step leaves claimed cleanup rows that the
//! cleanup worker takes over after its claim grace; a crash before it leaves the object, which
//! the next pass expires.

use std::time::Duration;

use s3o_store::{KeyBound, LifecycleRule, Timestamp};

use super::{Ctx, Health, Tally, Worker, settle};
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let settings = &ctx.settings.lifecycle;
    let mut left = i64::from(settings.batch_size);
    let mut health = Health::default();
    for bucket in ctx.ledger.buckets().await? {
        let rules = bucket.settings.lifecycle.iter().enumerate();
        for (n, rule) in rules.filter(|(_, r)| r.enabled) {
            if left <= 0 || ctx.stopping() {
                return Ok(());
            }
            let prefix = format!("{}{}", bucket.key_prefix(), rule.prefix);
            // Expiration in a versioned bucket writes delete markers and expires noncurrent
            // versions in S3; until that is built, versioned buckets expire nothing (deleting
            // the current version here would bypass its versions, DESIGN decision 25).
            let versioned = ctx.ledger.versioning(&bucket.name).await?.is_versioned();
            if versioned
                && rule
                    .expiration_days
                    .or(rule.expiration_date.map(|_| 0))
                    .is_some()
            {
                t.add("versioned_skipped");
            }
            let age = expiry_age(rule, settings.day.0, Timestamp::now()).filter(|_| !versioned);
            if let Some(age) = age.filter(|_| !rule.tags.is_empty()) {
                let scan = format!("{}\u{0}{n}", bucket.name);
                let page = settings.batch_size as usize;
                expire_tagged(ctx, t, rule, &prefix, &scan, age, page, &mut left).await?;
            } else if let Some(age) = age {
                let due = ctx.store.list_expired_objects(&prefix, age, left).await?;
                for row in due {
                    if ctx.stopping() {
                        return Ok(());
                    }
                    left -= 1;
                    match ctx
                        .store
                        .delete_object_version(&row.object_key, &row.form.storage_key)
                        .await?
                    {
                        Some(deleted) => {
                            tracing::info!(key = %row.object_key, rule = %rule.id, "object expired");
                            settle(ctx, deleted).await?;
                            t.add("expired");
                        }
                        // Overwritten or deleted since the listing: the newer write stays.
                        None => t.add("changed"),
                    }
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

/// Expiration by a rule with tags: the rule's prefix is walked in key order from where the
/// last pass stopped (the scan `scan`'s cursor), `page` keys examined per pass (so every rule
/// moves on each pass, however many untagged keys its prefix holds); a key whose oldest copy is
/// older than `age` and carries every tag of the rule is re-read and expired through the
/// version-checked delete, each expiration counting against the pass's batch (`left`). Tags
/// are read from the copy right before its delete: a tag removed after that read is not seen
/// (S3's lifecycle is no more exact than that).
#[allow(clippy::too_many_arguments)]
async fn expire_tagged(
    ctx: &Ctx,
    t: &mut Tally,
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
        let version = &row.form.storage_key;
        let still = ctx
            .ledger
            .copies_or_empty(&row.object_key)
            .await?
            .iter()
            .any(|c| &c.meta.storage_key == version && rule.tags_match(&c.meta.tags));
        if !still {
            t.add("changed");
            continue;
        }
        match ctx
            .store
            .delete_object_version(&row.object_key, version)
            .await?
        {
            Some(deleted) => {
                tracing::info!(key = %row.object_key, rule = %rule.id, "object expired (tags matched)");
                settle(ctx, deleted).await?;
                t.add("expired");
            }
            None => t.add("changed"),
        }
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
