//! Object ledger: where every copy lives.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::ops;
use crate::roles::Reader;
use crate::tx::Runner;
use crate::types::{DeletedCopy, ListDelimitedResult, ListObjectsResult, StoredForm};

/// Object ledger operations. The multi-statement operations are provided here, written once
/// in [`crate::ops`]; engines implement only the single-statement reads.
#[async_trait]
pub trait ObjectStore: Reader + Runner {
    /// Backends holding each key, for many keys in one query. Empty input ⇒ empty map without
    /// a query; keys without copies are absent.
    async fn get_object_backends_for_keys(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>>;

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

    /// [`ObjectStore::record_object`] that also deletes the write's pending intent in the same
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

    /// Removes every copy of `key` (see [`ops::delete_object`]). No copy ⇒ `ObjectNotFound`.
    async fn delete_object(&self, key: &str) -> Result<Vec<DeletedCopy>> {
        ops::delete_object(self, key).await
    }

    /// Removes every copy of each key in one transaction (see [`ops::delete_objects_batch`]).
    async fn delete_objects_batch(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<DeletedCopy>>> {
        ops::delete_objects_batch(self, keys).await
    }

    /// Removes one copy, debits its locked size and enqueues its bytes for cleanup (see
    /// [`ops::delete_object_location`]). `false` when the copy was already gone.
    async fn delete_object_location(&self, key: &str, backend: &str) -> Result<bool> {
        ops::delete_object_location(self, key, backend).await
    }

    /// Records a pre-existing object without overwriting (see [`ops::import_object`]).
    async fn import_object(&self, key: &str, backend: &str, size: i64) -> Result<bool> {
        ops::import_object(self, key, backend, size).await
    }

    /// Moves a copy between backends, enqueueing the source's bytes for cleanup (see
    /// [`ops::move_object_location`]). Returns bytes moved, 0 when the source is gone or the
    /// target already has a copy.
    async fn move_object_location(&self, key: &str, from: &str, to: &str) -> Result<i64> {
        ops::move_object_location(self, key, from, to).await
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
}
