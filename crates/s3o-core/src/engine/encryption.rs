//! Encryption administration (key rotation, encrypt/decrypt in place). Not on the request path.

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;
use crate::types::{
    Cursor, EncryptedLocation, KeyCensus, KeyHolder, UnencryptedLocation, WrappedKey, WrappedKeyAt,
};

/// Encryption admin operations.
#[async_trait]
pub trait EncryptionAdmin: Runner {
    /// Encrypted copies under master-key version `key_id`, ordered by `(key, backend)`.
    async fn list_encrypted_locations(
        &self,
        key_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<EncryptedLocation>>;
    /// Every encrypted copy after `after` (keyset), ordered by `(key, backend)`.
    async fn list_all_encrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<EncryptedLocation>>;
    /// Plaintext copies after `after` (keyset: offset paging skips rows while the set shrinks),
    /// ordered by `(key, backend)`.
    async fn list_unencrypted_locations(
        &self,
        limit: i64,
        after: Option<&Cursor>,
    ) -> Result<Vec<UnencryptedLocation>>;
    /// Replaces the wrapped key of one copy (rotation). `false` when the copy is gone.
    async fn update_encryption_key(
        &self,
        key: &str,
        backend: &str,
        new_key: &[u8],
        new_key_id: &str,
    ) -> Result<bool>;
    /// Rows of `holder`'s table holding a wrapped data key, after `after` (keyset; it must
    /// name a row of the same table, else `InvalidInput`), ordered by the table's primary key
    /// in byte order: `(key, backend)` for current copies, `(key, version id, backend)` for
    /// noncurrent ones, the upload id, `(upload id, part number)`, the intent id. Delete
    /// markers and plaintext rows hold none.
    async fn list_wrapped_keys(
        &self,
        holder: KeyHolder,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKey>>;
    /// How many rows of each table hold a data key wrapped under each master key, ordered by
    /// table ([`KeyHolder`] order) then key id. A master key absent here wraps nothing.
    async fn wrapped_key_census(&self) -> Result<Vec<KeyCensus>>;
    /// Copies of noncurrent versions stored in plaintext ([`WrappedKeyAt::Version`] rows; delete
    /// markers excluded) after `after` (keyset, a `Version` row), ordered by `(key, version
    /// id, backend)` in byte order: what `encrypt-existing` seals.
    async fn list_plaintext_version_copies(
        &self,
        limit: i64,
        after: Option<&WrappedKeyAt>,
    ) -> Result<Vec<WrappedKeyAt>>;
}
