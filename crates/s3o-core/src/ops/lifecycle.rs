//! Lifecycle expiration in one transaction per key, decided under the key lock (DESIGN
//! decision 25 for the version rules).
//!
//! The lifecycle worker chooses candidates from reads that may be stale by the time it acts;
//! these operations re-decide under the key lock, so a write, a tag change or a delete racing
//! the worker always wins:
//!
//! - [`expire_current_version`] (`Expiration` by days or date): the current version goes
//!   exactly as an S3 DELETE without a version id would remove it (unversioned: every copy's
//!   bytes queued; enabled: a delete marker over it; suspended: a `null` marker replacing the
//!   `null` version), but only while the key still holds the version chosen and that version
//!   still carries every tag of the rule.
//! - [`expire_noncurrent_versions`] (`NoncurrentVersionExpiration`,
//!   `ExpiredObjectDeleteMarker`): noncurrent versions due by [`due_versions`] are deleted for
//!   good through the version-delete path (bytes queued and debited in the same transaction),
//!   and a delete marker left as the key's only version is removed.
//!
//! **When a version became noncurrent** is not stored: it is when its successor (the next
//! newer version or delete marker of the key) was written, the successor's `created_at`.
//! That is how S3 counts `NoncurrentDays` too, and it needs no new column.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::versions::{DeleteIn, KeyState, Tally, new_version_id};
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{DeletedCopy, Timestamp};
use crate::validate;
use crate::versioning::{CURRENT_SEQ, DeleteOutcome};

/// One version of a key as a lifecycle decision sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionAge {
    /// Order within the key ([`CURRENT_SEQ`] for the current version).
    pub seq: i64,
    /// When the version (or marker) was written.
    pub created_at: Timestamp,
    /// A delete marker.
    pub delete_marker: bool,
}

/// What a rule's noncurrent actions ask of one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoncurrentExpiry {
    /// Noncurrent versions noncurrent for longer than this are deleted (`NoncurrentDays`);
    /// `None`: none by age.
    pub noncurrent_for: Option<Duration>,
    /// The newest this many noncurrent versions are kept whatever their age
    /// (`NewerNoncurrentVersions`).
    pub keep_newer: u32,
    /// A delete marker that is the key's only remaining version is removed
    /// (`ExpiredObjectDeleteMarker`).
    pub expired_marker: bool,
}

impl NoncurrentExpiry {
    /// Whether the rule does anything to noncurrent versions or markers.
    pub fn is_active(&self) -> bool {
        self.noncurrent_for.is_some() || self.expired_marker
    }
}

/// The `seq`s of the versions of one key that `rule` removes at `now`, oldest first, at most
/// `limit`. `versions` is every version of the key newest first (the current one, if any,
/// first). The newest version (the current one, or the marker hiding the key) is never
/// noncurrent; version `i` became noncurrent when version `i - 1` was written; the
/// `keep_newer` newest noncurrent versions (markers count, as in S3's version list) stay.
/// The lone-marker cleanup applies only when every other removal fits in `limit`, so a
/// marker never goes while versions it hides remain.
pub fn due_versions(
    versions: &[VersionAge],
    rule: &NoncurrentExpiry,
    now: Timestamp,
    limit: usize,
) -> Vec<i64> {
    let mut due: Vec<i64> = Vec::new();
    if let Some(age) = rule.noncurrent_for {
        let cutoff = now.minus(age);
        for (rank, pair) in versions.windows(2).enumerate() {
            let (successor, v) = (pair[0], pair[1]);
            if rank >= rule.keep_newer as usize && successor.created_at < cutoff {
                due.push(v.seq);
            }
        }
    }
    due.reverse();
    if due.len() >= limit {
        due.truncate(limit);
        return due;
    }
    let remaining: Vec<&VersionAge> = versions.iter().filter(|v| !due.contains(&v.seq)).collect();
    if rule.expired_marker
        && let [only] = remaining.as_slice()
        && only.delete_marker
        && only.seq != CURRENT_SEQ
    {
        due.push(only.seq);
    }
    due
}

struct ExpireCurrent<'a> {
    instance: &'a str,
    bucket: &'a str,
    key: &'a str,
    storage_key: &'a str,
    tags: &'a BTreeMap<String, String>,
    new_id: String,
}

#[async_trait]
impl TxBody for ExpireCurrent<'_> {
    type Output = Option<DeleteOutcome>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        tx.acquire_key_lock(self.key).await?;
        let existing = tx.get_existing_copies_for_update(self.key).await?;
        // Every copy of one version shares its storage key: another one means the version
        // chosen was replaced after the worker looked.
        let Some(first) = existing.first() else {
            return Ok(None);
        };
        if existing.iter().any(|c| c.storage_key != self.storage_key) {
            return Ok(None);
        }
        if !self.tags.is_empty() {
            // Every copy carries the version's tags (they are set on all copies at once).
            let loc = tx
                .lock_object_on_backend(self.key, &first.backend_name)
                .await?;
            let still =
                loc.is_some_and(|l| self.tags.iter().all(|(k, v)| l.form.tags.get(k) == Some(v)));
            if !still {
                return Ok(None);
            }
        }
        DeleteIn {
            instance: self.instance,
            bucket: self.bucket,
            key: self.key,
            version_id: None,
            new_id: self.new_id.clone(),
        }
        .run(tx)
        .await
        .map(Some)
    }
}

/// `Expiration` of the current version of `key` in `bucket`, in one transaction under the key
/// lock: while every copy of `key` is still the version stored at `storage_key` and carries
/// every tag in `tags` (empty: no tag condition), it is deleted as
/// [`super::delete_object_in_bucket`] deletes without a version id: unversioned, every copy
/// removed and its bytes queued; versioning enabled, the version becomes noncurrent under a
/// new delete marker; suspended, a `null` marker replaces the `null` version (its bytes
/// queued). `None` when the key holds another version, none, or the tags no longer match:
/// nothing changed. `BucketNotFound` when the bucket is gone.
#[tracing::instrument(name = "expire_current_version", level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
pub async fn expire_current_version<R: Runner + ?Sized>(
    runner: &R,
    bucket: &str,
    key: &str,
    storage_key: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Option<DeleteOutcome>> {
    super::objects::check_bucket_key(bucket, key)?;
    validate::prefix("storage key", storage_key)?;
    with_tx_val(
        runner,
        &ExpireCurrent {
            instance: runner.instance_id(),
            bucket,
            key,
            storage_key,
            tags,
            new_id: new_version_id(),
        },
    )
    .await
}

/// What [`expire_noncurrent_versions`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionExpiry {
    /// Noncurrent data versions deleted (their ids, oldest first).
    pub versions: Vec<String>,
    /// Delete markers removed (noncurrent ones and a lone marker; their ids, oldest first).
    pub markers: Vec<String>,
    /// Bytes that left the ledger (queued for cleanup with this store's claim).
    pub removed: Vec<DeletedCopy>,
}

struct ExpireNoncurrent<'a> {
    instance: &'a str,
    bucket: &'a str,
    key: &'a str,
    rule: &'a NoncurrentExpiry,
    limit: usize,
}

#[async_trait]
impl TxBody for ExpireNoncurrent<'_> {
    type Output = VersionExpiry;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<VersionExpiry> {
        let key = self.key;
        tx.acquire_key_lock(key).await?;
        if tx.lock_bucket_versioning(self.bucket).await?.is_none() {
            return Err(StoreError::BucketNotFound {
                bucket: self.bucket.to_owned(),
            });
        }
        let existing = tx.get_existing_copies_for_update(key).await?;
        let mut st = KeyState::load(tx, key, existing).await?;
        if st.versions.is_empty() {
            return Ok(VersionExpiry::default());
        }
        let (now, times) = tx.version_times(key).await?;
        let at = |seq: i64| times.get(&seq).copied().unwrap_or(Timestamp::ZERO);
        let mut ages = Vec::with_capacity(st.versions.len() + 1);
        if !st.current.is_empty() {
            ages.push(VersionAge {
                seq: CURRENT_SEQ,
                created_at: at(CURRENT_SEQ),
                delete_marker: false,
            });
        }
        let mut ids = BTreeMap::new();
        for v in &st.versions {
            // One row per copy: a version appears once, at its first row (newest first).
            if ids.insert(v.seq, v.version_id.clone()).is_none() {
                ages.push(VersionAge {
                    seq: v.seq,
                    created_at: at(v.seq),
                    delete_marker: v.is_delete_marker(),
                });
            }
        }
        let mut out = VersionExpiry::default();
        let mut tally = Tally::default();
        for seq in due_versions(&ages, self.rule, now, self.limit) {
            let Some(id) = ids.get(&seq) else { continue };
            match st.drop_noncurrent(tx, key, id, &mut tally).await? {
                Some(true) => out.markers.push(id.clone()),
                Some(false) => out.versions.push(id.clone()),
                None => {}
            }
        }
        // Never needed by the rules above (the newest version stays unless it is a lone
        // marker), kept so no expiry can ever leave a data version hidden by nothing.
        st.promote_if_exposed(tx, key).await?;
        out.removed = tally.apply(tx, self.instance).await?;
        Ok(out)
    }
}

/// `NoncurrentVersionExpiration` and `ExpiredObjectDeleteMarker` of one key of `bucket`, in
/// one transaction under the key lock and the bucket's row lock: the versions
/// [`due_versions`] names at the database's clock (at most `limit`, oldest first) are deleted
/// for good, each as a delete by version id (bytes queued and debited in the same
/// transaction; a marker just goes). The current version and the marker hiding a key with
/// older versions are never touched. Nothing due ⇒ an empty [`VersionExpiry`];
/// `BucketNotFound` when the bucket is gone.
#[tracing::instrument(name = "expire_noncurrent_versions", level = "debug", skip_all, fields(bucket = %bucket, key = %key))]
pub async fn expire_noncurrent_versions<R: Runner + ?Sized>(
    runner: &R,
    bucket: &str,
    key: &str,
    rule: &NoncurrentExpiry,
    limit: usize,
) -> Result<VersionExpiry> {
    super::objects::check_bucket_key(bucket, key)?;
    if limit == 0 || !rule.is_active() {
        return Ok(VersionExpiry::default());
    }
    with_tx_val(
        runner,
        &ExpireNoncurrent {
            instance: runner.instance_id(),
            bucket,
            key,
            rule,
            limit,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn v(seq: i64, day: u64, marker: bool) -> VersionAge {
        VersionAge {
            seq,
            created_at: Timestamp::from_micros(0).plus(DAY * u32::try_from(day).unwrap()),
            delete_marker: marker,
        }
    }

    fn rule(days: Option<u32>, keep: u32, marker: bool) -> NoncurrentExpiry {
        NoncurrentExpiry {
            noncurrent_for: days.map(|d| DAY * d),
            keep_newer: keep,
            expired_marker: marker,
        }
    }

    #[test]
    fn noncurrent_days_count_from_the_successor() {
        // current written day 10; v3 day 8 (noncurrent since 10), v2 day 5 (since 8), v1 day 1
        // (since 5). At day 12 with 3 days: v2 and v1 are due, oldest first.
        let key = [
            v(CURRENT_SEQ, 10, false),
            v(3, 8, false),
            v(2, 5, false),
            v(1, 1, false),
        ];
        let now = Timestamp::from_micros(0).plus(DAY * 12);
        assert_eq!(
            due_versions(&key, &rule(Some(3), 0, false), now, 10),
            [1, 2]
        );
        // Keeping the newest two noncurrent versions spares v3 and v2.
        assert_eq!(due_versions(&key, &rule(Some(3), 2, false), now, 10), [1]);
        assert_eq!(due_versions(&key, &rule(Some(3), 0, false), now, 1), [1]);
        assert!(due_versions(&key, &rule(None, 0, true), now, 10).is_empty());
    }

    #[test]
    fn a_lone_marker_goes_only_when_nothing_else_stays() {
        let now = Timestamp::from_micros(0).plus(DAY * 100);
        let lone = [v(5, 3, true)];
        assert_eq!(due_versions(&lone, &rule(None, 0, true), now, 10), [5]);
        assert!(due_versions(&lone, &rule(None, 0, false), now, 10).is_empty());
        // A marker hiding an old version: the version goes, then the marker with it.
        let hiding = [v(5, 3, true), v(4, 1, false)];
        assert_eq!(
            due_versions(&hiding, &rule(Some(1), 0, true), now, 10),
            [4, 5]
        );
        // ...but not when the limit stops before the version.
        assert_eq!(due_versions(&hiding, &rule(Some(1), 0, true), now, 1), [4]);
        assert!(due_versions(&hiding, &rule(None, 0, true), now, 10).is_empty());
        // A current version is never removed.
        let current = [v(CURRENT_SEQ, 1, false)];
        assert!(due_versions(&current, &rule(Some(1), 0, true), now, 10).is_empty());
    }
}
