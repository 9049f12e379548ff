//! Encryption administration (key rotation, encrypt/decrypt in place). Not on the request path.

use async_trait::async_trait;

use crate::error::Result;
use crate::ops;
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
    /// Marks a copy decrypted in place (see [`ops::mark_object_decrypted`]).
    async fn mark_object_decrypted(
        &self,
        key: &str,
        backend: &str,
        plaintext_size: i64,
    ) -> Result<bool> {
        ops::mark_object_decrypted(self, key, backend, plaintext_size).await
    }
}
