//! Envelope encryption at rest.
//!
//! Every encrypted object has its own random 256-bit data key (DEK). The plaintext is cut into
//! fixed-size chunks (a power of two between 4 KiB and 1 MiB, 64 KiB by default) and each
//! chunk is sealed with AES-256-GCM (ring's AEAD, already in the dependency tree):
//!
//! ```text
//! backend bytes = chunk₀ ‖ chunk₁ ‖ … ‖ chunkₙ₋₁        chunkᵢ = AES-GCM(plainᵢ) ‖ tag (16 B)
//! nonceᵢ        = base nonce XOR (index as 64-bit big-endian, in the nonce's last 8 bytes)
//! AADᵢ          = index (u64 BE) ‖ final flag (1 byte: 1 on the last chunk only)
//! ```
//!
//! The index lives in both the nonce and the AAD, so a chunk moved to another position fails
//! its tag; the final flag makes a cut at a chunk boundary fail too (the new last chunk was
//! sealed as "not final"), on top of the plaintext size the ledger records. An empty plaintext
//! is stored as zero bytes (there is nothing to hide or to authenticate; its size comes from
//! the ledger). No header is stored on the backend: everything a reader needs is in the ledger
//! row's `encryption_key` ([`Envelope`]), `key_id` and `plaintext_size`, which is also why an
//! encrypted object cannot be served while the ledger is down.
//!
//! The DEK is wrapped by a master key ([`keys::KeyProvider`]): AES-256-GCM under the master
//! key with its own random nonce and the key id as AAD. Rotation re-wraps DEKs (metadata only).
//!
//! Multipart parts share the upload's DEK; each part is sealed with chunk indices starting at
//! `part_number << 21` (2²¹ chunks of at least 4 KiB cover S3's 5 GiB part limit), and each
//! part *attempt* gets a fresh random base nonce recorded with the part, so a re-uploaded part
//! never reuses a (key, nonce) pair. Complete decrypts the parts and seals the assembled object
//! under a fresh DEK as one chunk sequence (assembly re-streams the bytes anyway), so an object
//! needs no part table to serve a range.

pub(crate) mod config;
pub(crate) mod convert;
pub(crate) mod gateway;
pub(crate) mod keys;
pub(crate) mod rotate;
pub(crate) mod stream;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

pub(crate) use keys::KeyProvider;

/// Bytes of the GCM tag appended to every chunk.
pub(crate) const TAG_LEN: u64 = 16;
/// Smallest chunk size (bytes).
pub(crate) const MIN_CHUNK_SIZE: u64 = 4 * 1024;
/// Largest chunk size (bytes).
pub(crate) const MAX_CHUNK_SIZE: u64 = 1024 * 1024;
/// Default chunk size (bytes).
pub(crate) const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024;
/// Chunk-index base of a multipart part: `part_number << PART_INDEX_SHIFT`.
pub(crate) const PART_INDEX_SHIFT: u32 = 21;
/// Suffix of the backend path of an encrypted version, so a broadcast read (ledger down) can
/// tell it apart without reading it.
pub(crate) const PATH_MARK: &str = ".enc";

/// Packed-key format version.
const FORMAT_V1: u8 = 1;
/// Length of a wrapped DEK: wrap nonce ‖ AES-GCM(DEK) ‖ tag.
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + 32 + 16;
/// Length of a packed key: version, log2(chunk), base nonce, wrapped DEK.
const PACKED_LEN: usize = 2 + NONCE_LEN + WRAPPED_LEN;

/// Why encryption or decryption failed. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CryptoError {
    /// A chunk failed authentication: tampered, reordered, truncated, or another key.
    #[error("encrypted chunk {index} failed authentication (tampered, reordered or truncated)")]
    Auth {
        /// Index of the chunk.
        index: u64,
    },
    /// The backend bytes do not have the length the ledger describes.
    #[error("encrypted object is {0}")]
    Length(&'static str),
    /// The stored key record cannot be parsed.
    #[error("malformed encryption key record")]
    Malformed,
    /// No master key with this id is configured.
    #[error("master key {0:?} is not configured (add it to previous_keys)")]
    UnknownKey(String),
    /// The wrapped DEK does not open under the master key of its id.
    #[error("data key does not unwrap under master key {0:?} (wrong key for this id?)")]
    Unwrap(String),
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
    /// A key could not be loaded.
    #[error("{0}")]
    Key(String),
}

/// Fills `buf` from the system's CSPRNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// How a plaintext maps onto chunks of `chunk` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Plaintext bytes per chunk.
    pub(crate) chunk: u64,
}

/// The chunks of a plaintext range and the backend bytes holding them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkRange {
    /// First chunk (relative to the object).
    pub(crate) first: u64,
    /// Backend bytes `[start, end)` holding chunks `first..` through the range's last chunk.
    pub(crate) stored: (u64, u64),
    /// Plaintext bytes to drop from the first chunk.
    pub(crate) skip: u64,
    /// Plaintext bytes to return.
    pub(crate) take: u64,
}

impl Layout {
    /// Chunks of a `plain`-byte plaintext.
    pub(crate) fn chunks(self, plain: u64) -> u64 {
        plain.div_ceil(self.chunk)
    }

    /// Backend bytes of a `plain`-byte plaintext.
    pub(crate) fn stored_size(self, plain: u64) -> u64 {
        plain + TAG_LEN * self.chunks(plain)
    }

    /// Plaintext bytes of chunk `i` of a `plain`-byte plaintext.
    pub(crate) fn plain_len(self, plain: u64, i: u64) -> u64 {
        plain.saturating_sub(i * self.chunk).min(self.chunk)
    }

    /// The chunks covering plaintext `[start, end)` (`start < end ≤ plain`).
    pub(crate) fn range(self, plain: u64, start: u64, end: u64) -> ChunkRange {
        let first = start / self.chunk;
        let last = (end - 1) / self.chunk;
        let sealed = self.chunk + TAG_LEN;
        ChunkRange {
            first,
            stored: (
                first * sealed,
                ((last + 1) * sealed).min(self.stored_size(plain)),
            ),
            skip: start - first * self.chunk,
            take: end - start,
        }
    }
}

/// The parsed `encryption_key` column: chunk size, base nonce and the wrapped DEK.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// log2 of the chunk size.
    pub(crate) chunk_log2: u8,
    /// Base nonce of chunk 0.
    pub(crate) base_nonce: [u8; NONCE_LEN],
    /// The DEK wrapped by master key `key_id` ([`WRAPPED_LEN`] bytes).
    pub(crate) wrapped: Vec<u8>,
    /// Master-key id that wrapped the DEK.
    pub(crate) key_id: String,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("chunk", &(1u64 << self.chunk_log2))
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// The chunk layout.
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            chunk: 1u64 << self.chunk_log2,
        }
    }

    /// The packed form stored in the ledger: `1 ‖ log2(chunk) ‖ base nonce ‖ wrapped DEK`.
    pub(crate) fn pack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PACKED_LEN);
        out.push(FORMAT_V1);
        out.push(self.chunk_log2);
        out.extend_from_slice(&self.base_nonce);
        out.extend_from_slice(&self.wrapped);
        out
    }

    /// Parses a packed key (see [`Envelope::pack`]) recorded under `key_id`.
    pub(crate) fn unpack(packed: &[u8], key_id: &str) -> Result<Envelope, CryptoError> {
        if packed.len() != PACKED_LEN || packed[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed);
        }
        let chunk_log2 = packed[1];
        let chunk = 1u64.checked_shl(u32::from(chunk_log2)).unwrap_or(0);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk) {
            return Err(CryptoError::Malformed);
        }
        let mut base_nonce = [0u8; NONCE_LEN];
        base_nonce.copy_from_slice(&packed[2..2 + NONCE_LEN]);
        Ok(Envelope {
            chunk_log2,
            base_nonce,
            wrapped: packed[2 + NONCE_LEN..].to_vec(),
            key_id: key_id.to_owned(),
        })
    }

    /// The same DEK with a fresh random base nonce (one multipart part attempt).
    pub(crate) fn with_fresh_nonce(&self) -> Result<Envelope, CryptoError> {
        let mut e = self.clone();
        random(&mut e.base_nonce)?;
        Ok(e)
    }
}

/// An unwrapped DEK ready to seal and open chunks.
pub(crate) struct Dek {
    key: LessSafeKey,
    base_nonce: [u8; NONCE_LEN],
    layout: Layout,
}

impl Dek {
    /// A fresh random DEK with chunks of `chunk` bytes, wrapped by `keys`' current master key.
    pub(crate) async fn generate(
        keys: &dyn KeyProvider,
        chunk: u64,
    ) -> Result<(Dek, Envelope), CryptoError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        random(raw.as_mut())?;
        let mut base_nonce = [0u8; NONCE_LEN];
        random(&mut base_nonce)?;
        let (key_id, wrapped) = keys.wrap(&raw).await?;
        let chunk_log2 =
            u8::try_from(chunk.trailing_zeros()).map_err(|_| CryptoError::Malformed)?;
        let env = Envelope {
            chunk_log2,
            base_nonce,
            wrapped,
            key_id,
        };
        Ok((Dek::from_raw(&raw, &env)?, env))
    }

    /// Unwraps the DEK of `env` with `keys`.
    pub(crate) async fn open(keys: &dyn KeyProvider, env: &Envelope) -> Result<Dek, CryptoError> {
        let raw = keys.unwrap(&env.key_id, &env.wrapped).await?;
        Dek::from_raw(&raw, env)
    }

    fn from_raw(raw: &[u8; 32], env: &Envelope) -> Result<Dek, CryptoError> {
        let key = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| CryptoError::Malformed)?;
        Ok(Dek {
            key: LessSafeKey::new(key),
            base_nonce: env.base_nonce,
            layout: env.layout(),
        })
    }

    /// The chunk layout.
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    fn nonce(&self, index: u64) -> Nonce {
        let mut n = self.base_nonce;
        for (b, i) in n[NONCE_LEN - 8..].iter_mut().zip(index.to_be_bytes()) {
            *b ^= i;
        }
        Nonce::assume_unique_for_key(n)
    }

    fn aad(index: u64, last: bool) -> [u8; 9] {
        let mut a = [0u8; 9];
        a[..8].copy_from_slice(&index.to_be_bytes());
        a[8] = u8::from(last);
        a
    }

    /// Seals one chunk in place: `buf` holds the plaintext and gets the tag appended.
    pub(crate) fn seal(
        &self,
        index: u64,
        last: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                self.nonce(index),
                Aad::from(Self::aad(index, last)),
                buf.as_mut_slice(),
            )
            .map_err(|_| CryptoError::Auth { index })?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens one sealed chunk in place (`buf` = ciphertext ‖ tag); returns the plaintext length.
    pub(crate) fn open_chunk(
        &self,
        index: u64,
        last: bool,
        buf: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.key
            .open_in_place(self.nonce(index), Aad::from(Self::aad(index, last)), buf)
            .map(|p| p.len())
            .map_err(|_| CryptoError::Auth { index })
    }
}

#[cfg(test)]
mod tests;
