//! Versions: single-statement reads of `object_versions` and the bucket's versioning state
//! (DESIGN decision 25). The multi-statement operations are in [`crate::ops`].

use async_trait::async_trait;

use crate::error::Result;
use crate::versioning::{NoncurrentCopy, NoncurrentReplicas, ObjectVersion, Versioning};

/// The versioning reads and the bucket setting an engine implements.
#[async_trait]
pub trait VersionStore: Send + Sync {
    /// Sets the bucket's versioning state in one statement. [`Versioning::Unversioned`] ⇒
    /// `InvalidInput` (S3 never returns a bucket to unversioned); unknown ⇒ `BucketNotFound`.
    async fn set_bucket_versioning(&self, name: &str, state: Versioning) -> Result<()>;
    /// The bucket's versioning state; unknown ⇒ `BucketNotFound`.
    async fn get_bucket_versioning(&self, name: &str) -> Result<Versioning>;
    /// Version `version_id` of `key` with every copy (full columns, oldest first), from the
    /// current copies or from `object_versions`; a delete marker has none. No such version ⇒
    /// `VersionNotFound`.
    async fn get_object_version(&self, key: &str, version_id: &str) -> Result<ObjectVersion>;
    /// The newest version of `key`: its current version (with every copy), or the delete marker
    /// hiding it; `None` when the key has neither.
    async fn get_latest_version(&self, key: &str) -> Result<Option<ObjectVersion>>;
    /// Every copy of every noncurrent version of `key` (full columns; delete markers have none),
    /// newest version first. Workers that decide whether bytes on a backend are referenced
    /// read these beside the current copies: a noncurrent version's bytes are never stray.
    async fn get_noncurrent_copies(&self, key: &str) -> Result<Vec<crate::types::ObjectLocation>>;
    /// The raw material of ListObjectVersions: one entry per version and delete marker (its
    /// first copy only, client-visible size) of keys starting with `prefix` (byte-wise), in S3
    /// order (key ascending, newest first), starting at entries with `key > after_key`, or
    /// `key = after_key AND seq <= max_seq`. At most `limit` entries.
    async fn list_version_entries(
        &self,
        prefix: &str,
        after_key: &str,
        max_seq: i64,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>>;
    /// One page of the noncurrent copies on `backend` (delete markers have none), in
    /// `(object_key, version_id)` order (byte-wise), starting after `(after_key,
    /// after_version_id)` (both empty = from the start). At most `limit` (≤ 0 ⇒ nothing). What
    /// a drain or a rebalance moves once the backend's current copies are done.
    async fn list_noncurrent_copies_by_backend(
        &self,
        backend: &str,
        after_key: &str,
        after_version_id: &str,
        limit: i64,
    ) -> Result<Vec<NoncurrentCopy>>;
    /// One page of the noncurrent versions of keys starting with `prefix` (byte-wise) whose
    /// managed copies number other than `factor` (under- and over-replicated alike), in
    /// `(object_key, version_id)` order, after `(after_key, after_version_id)` (both empty =
    /// from the start). At most `limit` (≤ 0 ⇒ nothing). Delete markers have no copies and
    /// are never listed.
    async fn list_noncurrent_replication(
        &self,
        prefix: &str,
        after_key: &str,
        after_version_id: &str,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<NoncurrentReplicas>>;
}
