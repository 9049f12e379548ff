//! Encryption administration (key rotation, encrypt/decrypt in place). Not on the request path.

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;
use crate::types::{Cursor, EncryptedLocation, UnencryptedLocation};

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
}
