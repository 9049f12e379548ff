//! The multi-statement operations, provided once for every engine.
//!
//! [`EngineOps`] is implemented for every [`Engine`] by a blanket impl, so an engine cannot
//! override a business rule: each method runs the one implementation in [`crate::ops`] over the
//! engine's single-statement primitives.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{Engine, SchemaVersion};
use crate::error::{Result, StoreError};
use crate::ops;
use crate::types::*;
use crate::validate;

/// Every multi-statement operation, written once in [`crate::ops`] and provided to every
/// engine. Engine crates and their tests call these on a concrete engine; consumers call the
/// same operations on [`crate::MetadataStore`].
#[async_trait]
pub trait EngineOps: Engine {
    /// Errors with `Database { kind: Schema }` naming the fix when the database is behind
    /// ("run migrations") or ahead ("upgrade the binary") (see [`SchemaVersion::check`]).
    async fn verify_schema_version(&self) -> Result<SchemaVersion> {
        self.schema_version().await?.check()
    }
    /// Records `key` on `backend` (see [`ops::record_object`]). Returns copies displaced from
    /// other backends, for cleanup.
    async fn record_object(
        &self,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<Vec<DeletedCopy>> {
        ops::record_object(self, key, backend, size, form, None).await
    }
    /// [`EngineOps::record_object`] that also deletes the write's pending intent in the same
    /// transaction. The intent must be this write's own (same key and backend): another one is
    /// refused with `InvalidInput` and nothing changes; a missing intent is fine.
    async fn record_object_and_clear_pending(
        &self,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: &str,
    ) -> Result<Vec<DeletedCopy>> {
        ops::record_object(self, key, backend, size, form, Some(intent_id)).await
    }
    /// [`EngineOps::record_object_and_clear_pending`] under a precondition decided in the
    /// commit transaction (see [`ops::record_object_if`]); `intent_id` optional.
    async fn record_object_if(
        &self,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: Option<&str>,
        cond: &WritePrecondition,
    ) -> Result<Vec<DeletedCopy>> {
        ops::record_object_if(self, key, backend, size, form, intent_id, Some(cond)).await
    }
    /// [`EngineOps::record_object_if`] into `bucket`, refused with `BucketNotFound` when the
    /// bucket is gone (see [`ops::record_object_in_bucket`]).
    #[allow(clippy::too_many_arguments)]
    async fn record_object_in_bucket(
        &self,
        bucket: &str,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: Option<&str>,
        cond: &WritePrecondition,
    ) -> Result<Vec<DeletedCopy>> {
        ops::record_object_in_bucket(
            self,
            bucket,
            key,
            backend,
            size,
            form,
            intent_id,
            Some(cond),
        )
        .await
    }
    /// Deletes an empty bucket (see [`ops::delete_bucket`]): `BucketNotFound`,
    /// `BucketNotEmpty`.
    async fn delete_bucket(&self, name: &str) -> Result<()> {
        ops::delete_bucket(self, name).await
    }
    /// Seeds and refreshes buckets from configuration, never deleting (see
    /// [`ops::sync_buckets`]). Returns the names created.
    async fn sync_buckets(&self, specs: &[BucketSpec]) -> Result<Vec<String>> {
        ops::sync_buckets(self, specs).await
    }
    /// Removes every copy of `key` (see [`ops::delete_object`]). No copy ⇒ `ObjectNotFound`.
    async fn delete_object(&self, key: &str) -> Result<Vec<DeletedCopy>> {
        ops::delete_object(self, key).await
    }
    /// Removes every copy of `key` while they are the version at `storage_key` (see
    /// [`ops::delete_object_version`]); `None` when the key holds another version or nothing.
    async fn delete_object_version(
        &self,
        key: &str,
        storage_key: &str,
    ) -> Result<Option<Vec<DeletedCopy>>> {
        ops::delete_object_version(self, key, storage_key).await
    }
    /// Replaces the tags of every copy of `key` (see [`ops::set_object_tags`]). No copy ⇒
    /// `ObjectNotFound`.
    async fn set_object_tags(&self, key: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        ops::set_object_tags(self, key, tags).await
    }
    /// Removes every copy of each key in one transaction (see [`ops::delete_objects_batch`]).
    async fn delete_objects_batch(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<DeletedCopy>>> {
        ops::delete_objects_batch(self, keys).await
    }
    /// Removes one copy, debits its locked size and enqueues its bytes for cleanup (see
    /// [`ops::delete_object_location`]). Returns the removed copy with its cleanup claim held
    /// by this store; `None` when the copy was already gone.
    async fn delete_object_location(
        &self,
        key: &str,
        backend: &str,
    ) -> Result<Option<DeletedCopy>> {
        ops::delete_object_location(self, key, backend).await
    }
    /// Records a pre-existing object without overwriting (see [`ops::import_object`]).
    async fn import_object(&self, key: &str, backend: &str, size: i64) -> Result<bool> {
        ops::import_object(self, key, backend, size).await
    }
    /// Moves a copy between backends if the source copy is still at `expected_storage_key`,
    /// enqueueing the source's bytes for cleanup with a claim held by this store (see
    /// [`ops::move_object_location`]).
    async fn move_object_location(
        &self,
        key: &str,
        from: &str,
        to: &str,
        expected_storage_key: &str,
    ) -> Result<MoveOutcome> {
        ops::move_object_location(self, key, from, to, expected_storage_key).await
    }
    /// Flat listing page (see [`ops::list_objects`]).
    async fn list_objects(
        &self,
        prefix: &str,
        start_after: &str,
        max_keys: i64,
    ) -> Result<ListObjectsResult> {
        ops::list_objects(self, prefix, start_after, max_keys).await
    }
    /// Delimited listing page (see [`ops::list_objects_delimited`]).
    async fn list_objects_delimited(
        &self,
        prefix: &str,
        delimiter: &str,
        start_after: &str,
        max_keys: i64,
    ) -> Result<ListDelimitedResult> {
        ops::list_objects_delimited(self, prefix, delimiter, start_after, max_keys).await
    }
    /// The first backend of `order` that admits `size` more committed bytes by
    /// [`quota_admits`](crate::quota_admits), the rule the commit guard applies: `used +
    /// orphan + size <= limit`, or, unlimited, `<= i64::MAX`. Recorded multipart parts count
    /// (they are charged to `used`); pending write intents do not (they are charged at their
    /// commit, whose guard decides then). Invalid names ⇒ `InvalidInput`; any name without
    /// a quota row ⇒ `UnknownBackend` naming the first such name in list order, before space
    /// is considered (a configuration typo is never "no space"). An empty list, or no backend
    /// with room ⇒ `NoSpaceAvailable`. A read, not a reservation.
    async fn get_backend_with_space(&self, size: i64, order: &[String]) -> Result<String> {
        validate::size("object size", size)?;
        validate::backend_names(order)?;
        if order.is_empty() {
            return Err(StoreError::NoSpaceAvailable);
        }
        let caps = self.backend_capacities(order).await?;
        ops::require_known(&caps, order)?;
        ops::pick_backend_with_space(&caps, size, order)
    }
    /// Among `eligible` backends that admit `size` (the rule and the exclusions of
    /// [`EngineOps::get_backend_with_space`]: recorded parts count, pending intents do not), the least utilised: `(used + orphan) / limit` compared exactly,
    /// unlimited = 0, ties by name in byte order. Invalid names ⇒ `InvalidInput`; any name
    /// without a quota row ⇒ `UnknownBackend` (the first in list order); an empty list or no
    /// backend with room ⇒ `NoSpaceAvailable`.
    async fn get_least_utilized_backend(&self, size: i64, eligible: &[String]) -> Result<String> {
        validate::size("object size", size)?;
        validate::backend_names(eligible)?;
        if eligible.is_empty() {
            return Err(StoreError::NoSpaceAvailable);
        }
        let caps = self.backend_capacities(eligible).await?;
        ops::require_known(&caps, eligible)?;
        ops::pick_least_utilized(&caps, size)
    }
    /// Records (or replaces) a multipart part and charges its bytes to the upload's backend
    /// (see [`ops::record_part`]). Returns the replaced part's bytes, queued for cleanup.
    async fn record_part(
        &self,
        upload_id: &str,
        part_number: i32,
        etag: &str,
        size: i64,
        form: &StoredForm,
    ) -> Result<Vec<DeletedCopy>> {
        ops::record_part(self, upload_id, part_number, etag, size, form).await
    }
    /// Ends an upload: its row and parts deleted, their bytes moved from `bytes_used` to the
    /// cleanup queue (see [`ops::release_multipart_upload`]). Returns the queued parts.
    async fn release_multipart_upload(
        &self,
        upload_id: &str,
        reason: &str,
    ) -> Result<Vec<DeletedCopy>> {
        ops::release_multipart_upload(self, upload_id, reason).await
    }
    /// Sets `bytes_used` to Σ copy sizes plus Σ part sizes of open uploads where they differ
    /// (see [`ops::reconcile_usage`]).
    /// Returns `truth − stored` per drifted backend; empty when consistent.
    async fn reconcile_usage(&self) -> Result<BTreeMap<String, i64>> {
        ops::reconcile_usage(self).await
    }
    /// Adds a replica on `target` copied from `source` if the source copy is still at
    /// `expected_storage_key` (see [`ops::record_replica`]).
    async fn record_replica(
        &self,
        key: &str,
        target: &str,
        source: &str,
        expected_storage_key: &str,
    ) -> Result<ReplicaOutcome> {
        ops::record_replica(self, key, target, source, expected_storage_key).await
    }
    /// Removes the copy on `backend` if the key still has more than `factor` copies (see
    /// [`ops::remove_excess_copy`]). Returns the removed copy with its cleanup claim held by
    /// this store; `None` when nothing was removed.
    async fn remove_excess_copy(
        &self,
        key: &str,
        backend: &str,
        factor: i64,
    ) -> Result<Option<DeletedCopy>> {
        ops::remove_excess_copy(self, key, backend, factor).await
    }
    /// Removes the copy on `backend` found bad, only while it is the one checked (see
    /// [`ops::remove_bad_copy`]); never the last copy of its version.
    async fn remove_bad_copy(
        &self,
        key: &str,
        backend: &str,
        storage_key: &str,
        created_at: Timestamp,
    ) -> Result<BadCopyRemoval> {
        ops::remove_bad_copy(self, key, backend, storage_key, created_at).await
    }
    /// Deletes the claimed row and releases its bytes, only while it still carries `claim`
    /// (see [`ops::complete_cleanup_item`]): `Completed` or `StaleClaim`.
    async fn complete_cleanup_item(&self, claim: &CleanupClaim) -> Result<CleanupOutcome> {
        ops::complete_cleanup_item(self, claim).await
    }
    /// One more attempt for the claimed row, or the dead-letter table when that reaches
    /// [`crate::MAX_ATTEMPTS`] (see [`ops::retry_cleanup_item`]): `Retried`, `DeadLettered` or
    /// `StaleClaim`.
    async fn retry_cleanup_item(
        &self,
        claim: &CleanupClaim,
        backoff: Duration,
        last_error: &str,
    ) -> Result<CleanupOutcome> {
        ops::retry_cleanup_item(self, claim, backoff, last_error).await
    }
    /// Queues the deletion of bytes the ledger never recorded and charges them to
    /// `orphan_bytes` in one transaction (see [`ops::enqueue_orphaned_bytes`]). Returns the
    /// row's claim, held by this store.
    async fn enqueue_orphaned_bytes(&self, entry: &CleanupEntry) -> Result<DeletedCopy> {
        ops::enqueue_orphaned_bytes(self, entry).await
    }
    /// Removes queue rows of `(key, backend)` and their orphan bytes (see
    /// [`ops::sweep_stale_cleanup_queue_rows`]).
    async fn sweep_stale_cleanup_queue_rows(&self, key: &str, backend: &str) -> Result<i64> {
        ops::sweep_stale_cleanup_queue_rows(self, key, backend).await
    }
    /// Graduates an exhausted queue row to the DLQ (see [`ops::move_cleanup_to_dlq`]).
    async fn move_cleanup_to_dlq(&self, id: i64, last_error: &str) -> Result<bool> {
        ops::move_cleanup_to_dlq(self, id, last_error).await
    }
    /// Operator write-off of DLQ rows (see [`ops::write_off_cleanup_dlq`]).
    async fn write_off_cleanup_dlq(&self, ids: &[i64]) -> Result<i64> {
        ops::write_off_cleanup_dlq(self, ids).await
    }
    /// Resolves an intent whose bytes are on the backend (see [`ops::promote_pending`]).
    async fn promote_pending(
        &self,
        p: &PendingObject,
    ) -> Result<(PendingPromoteResult, Vec<DeletedCopy>)> {
        ops::promote_pending(self, p).await
    }
    /// Abandons a write intent: drops it and enqueues its bytes in one transaction (see
    /// [`ops::abandon_pending`]).
    async fn abandon_pending(
        &self,
        p: &PendingObject,
    ) -> Result<(PendingPromoteResult, Vec<DeletedCopy>)> {
        ops::abandon_pending(self, p).await
    }
    /// Removes everything that references `backend` — cleanup queue and DLQ rows, pending
    /// intents, multipart uploads (parts cascade), copies, usage rows — and then its quota
    /// row, in one transaction (see [`ops::delete_backend_data`]). Unknown backend ⇒
    /// `UnknownBackend`.
    async fn delete_backend_data(&self, backend: &str) -> Result<()> {
        ops::delete_backend_data(self, backend).await
    }
    /// Marks a copy encrypted in place (see [`ops::mark_object_encrypted`]).
    async fn mark_object_encrypted(
        &self,
        key: &str,
        backend: &str,
        encryption_key: &[u8],
        key_id: &str,
        plaintext_size: i64,
        ciphertext_size: i64,
    ) -> Result<bool> {
        ops::mark_object_encrypted(
            self,
            key,
            backend,
            encryption_key,
            key_id,
            plaintext_size,
            ciphertext_size,
        )
        .await
    }
    /// Re-wraps a copy's data key while it still holds `expected_key` (see
    /// [`ops::rewrap_encryption_key`]).
    async fn rewrap_encryption_key(
        &self,
        key: &str,
        backend: &str,
        expected_key: &[u8],
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool> {
        ops::rewrap_encryption_key(self, key, backend, expected_key, new_key, new_key_id).await
    }
    /// Re-wraps the data key held by any row while it still holds `expected_key` (see
    /// [`ops::rewrap_stored_key`]).
    async fn rewrap_stored_key(
        &self,
        at: &WrappedKeyAt,
        expected_key: &[u8],
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool> {
        ops::rewrap_stored_key(self, at, expected_key, new_key, new_key_id).await
    }
    /// Swaps every copy of a version for rewritten bytes while it is still current (see
    /// [`ops::convert_version`]).
    async fn convert_version(
        &self,
        key: &str,
        expected_storage_key: &str,
        envelope: &StoredForm,
        copies: &[ConvertedCopy],
    ) -> Result<Option<Vec<DeletedCopy>>> {
        ops::convert_version(self, key, expected_storage_key, envelope, copies).await
    }
    /// Swaps every copy of a noncurrent version for rewritten bytes while it is unchanged
    /// (see [`ops::convert_noncurrent_version`]).
    async fn convert_noncurrent_version(
        &self,
        key: &str,
        version_id: &str,
        expected_storage_key: &str,
        envelope: &StoredForm,
        copies: &[ConvertedCopy],
    ) -> Result<Option<Vec<DeletedCopy>>> {
        ops::convert_noncurrent_version(
            self,
            key,
            version_id,
            expected_storage_key,
            envelope,
            copies,
        )
        .await
    }
    /// Marks a copy decrypted in place (see [`ops::mark_object_decrypted`]).
    async fn mark_object_decrypted(
        &self,
        key: &str,
        backend: &str,
        plaintext_size: i64,
    ) -> Result<bool> {
        ops::mark_object_decrypted(self, key, backend, plaintext_size).await
    }
    /// A commit into `bucket` that follows its versioning state (see
    /// [`ops::commit_object_in_bucket`]): the displaced copies and the new version's id.
    #[allow(clippy::too_many_arguments)]
    async fn commit_object_in_bucket(
        &self,
        bucket: &str,
        key: &str,
        backend: &str,
        size: i64,
        form: &StoredForm,
        intent_id: Option<&str>,
        cond: &WritePrecondition,
    ) -> Result<crate::versioning::Committed> {
        ops::commit_object_in_bucket(
            self,
            bucket,
            key,
            backend,
            size,
            form,
            intent_id,
            Some(cond),
        )
        .await
    }
    /// S3 DeleteObject in `bucket`, with or without a version id (see
    /// [`ops::delete_object_in_bucket`]).
    async fn delete_object_in_bucket(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<crate::versioning::DeleteOutcome> {
        ops::delete_object_in_bucket(self, bucket, key, version_id).await
    }
    /// One page of ListObjectVersions (see [`ops::list_object_versions`]).
    async fn list_object_versions(
        &self,
        prefix: &str,
        delimiter: &str,
        key_marker: &str,
        version_id_marker: &str,
        max_keys: i64,
    ) -> Result<crate::versioning::VersionListing> {
        ops::list_object_versions(
            self,
            prefix,
            delimiter,
            key_marker,
            version_id_marker,
            max_keys,
        )
        .await
    }
}

impl<T: Engine + ?Sized> EngineOps for T {}
