//! Bucket deletion and the configuration sync.
//!
//! **The delete-versus-write rule.** A bucket's deletion and every commit into it meet on the
//! bucket's row. [`delete_bucket`] locks the row for deletion ([`BucketLock::Delete`], `FOR
//! UPDATE` on PostgreSQL), then checks in the same transaction that no key under `<name>/`
//! has a copy, an open multipart upload or a pending write intent, then deletes the row. A
//! commit into a bucket ([`super::record_object_in_bucket`], the form the gateway's PUT,
//! copy and CompleteMultipartUpload commits use) locks the same row for writing
//! ([`BucketLock::Write`], `FOR KEY SHARE`) right after its key lock, and refuses with
//! `BucketNotFound` when the row is gone. So either the commit comes first (the deletion
//! waits for it, then sees its copy and answers `BucketNotEmpty`), or the deletion comes first
//! (the commit waits for it, then finds no bucket, changes nothing and leaves its intent for
//! the caller to abandon). On SQLite the single writer serialises the two transactions whole,
//! with the same outcomes.
//!
//! Intents and multipart uploads are created without the bucket lock: one created while a
//! deletion runs may outlive the bucket, but it can never commit into it (its commit checks the
//! bucket), and the reapers end it as usual. A bucket re-created under the same name is a new
//! bucket to such a late commit. Commits that do not name their bucket
//! ([`super::record_object_if`] and the other object operations) do not see buckets at all.

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{BucketLock, BucketSpec, bucket_key_prefix};
use crate::validate;

struct DeleteBucket<'a> {
    name: &'a str,
}

#[async_trait]
impl TxBody for DeleteBucket<'_> {
    type Output = ();
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<()> {
        if !tx.lock_bucket(self.name, BucketLock::Delete).await? {
            return Err(StoreError::BucketNotFound {
                bucket: self.name.to_owned(),
            });
        }
        // Read after the row lock: every commit into the bucket that got the row first has
        // committed by now and is seen here (a fresh snapshot per statement).
        if let Some(reason) = tx.bucket_busy(&bucket_key_prefix(self.name)).await? {
            return Err(StoreError::BucketNotEmpty {
                bucket: self.name.to_owned(),
                reason,
            });
        }
        tx.delete_bucket_row(self.name).await?;
        Ok(())
    }
}

/// Deletes the bucket `name` if it holds nothing: no copy, multipart upload or pending intent
/// of any key under `<name>/` (see the module docs for the rule against concurrent writes).
///
/// Unknown ⇒ `BucketNotFound`; otherwise `BucketNotEmpty` naming the first of objects,
/// multipart uploads, pending writes found. On either, nothing changes.
#[tracing::instrument(name = "delete_bucket", level = "debug", skip_all, fields(bucket = %name))]
pub async fn delete_bucket<R: Runner + ?Sized>(runner: &R, name: &str) -> Result<()> {
    validate::bucket_lookup(name)?;
    with_tx_val(runner, &DeleteBucket { name }).await
}

struct SyncBuckets<'a> {
    specs: &'a [&'a BucketSpec],
}

#[async_trait]
impl TxBody for SyncBuckets<'_> {
    type Output = Vec<String>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Vec<String>> {
        let mut created = Vec::new();
        for spec in self.specs {
            if tx.insert_bucket_if_absent(spec).await? {
                created.push(spec.name.clone());
            } else if !tx.update_bucket_config(spec).await? {
                // Deleted between the two statements (PostgreSQL): let the runner retry.
                return Err(StoreError::database(
                    crate::error::DbErrorKind::Serialization,
                    "sync buckets",
                    format!("bucket {:?} vanished during the sync", spec.name),
                ));
            }
        }
        Ok(created)
    }
}

/// Seeds and refreshes buckets from configuration, in one transaction: creates the missing
/// ones with their settings, and sets the configuration-owned settings (replication factor,
/// quotas, routing) of the existing ones, keeping their `created_at` and the settings managed
/// over the S3 API (`extra`, `lifecycle`). Never deletes a bucket. Rows are written in name
/// order, so concurrent syncs cannot deadlock.
///
/// Every spec is checked first ([`validate::bucket_spec`]); a bad one, or a name listed twice,
/// ⇒ `InvalidInput` and nothing changes. Returns the names created, in byte order.
#[tracing::instrument(name = "sync_buckets", level = "debug", skip_all, fields(buckets = specs.len()))]
pub async fn sync_buckets<R: Runner + ?Sized>(
    runner: &R,
    specs: &[BucketSpec],
) -> Result<Vec<String>> {
    specs.iter().try_for_each(validate::bucket_spec)?;
    let mut sorted: Vec<&BucketSpec> = specs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = sorted.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(StoreError::invalid(
            "bucket list",
            format!("bucket {:?} is listed twice", w[0].name),
        ));
    }
    if sorted.is_empty() {
        return Ok(Vec::new());
    }
    with_tx_val(runner, &SyncBuckets { specs: &sorted }).await
}
