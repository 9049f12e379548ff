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
//! A pass handles at most `batch_size` objects and uploads in all. Stopping between two items
//! leaves nothing half done: a crash after the ledger step leaves claimed cleanup rows that the
//! cleanup worker takes over after its claim grace; a crash before it leaves the object, which
//! the next pass expires.

use std::time::Duration;

use s3o_store::{LifecycleRule, Timestamp};

use super::{Ctx, Health, Tally, settle};
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let settings = &ctx.settings.lifecycle;
    let mut left = i64::from(settings.batch_size);
    let mut health = Health::default();
    for bucket in ctx.ledger.buckets().await? {
        for rule in bucket.settings.lifecycle.iter().filter(|r| r.enabled) {
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
            if let Some(age) =
                expiry_age(rule, settings.day.0, Timestamp::now()).filter(|_| !versioned)
            {
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
