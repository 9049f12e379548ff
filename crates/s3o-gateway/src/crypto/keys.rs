//! Master keys: the [`KeyProvider`] seam (a KMS can implement it later) and the local keyring
//! loaded from files or environment variables.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::{CryptoError, WRAPPED_LEN, random};
use crate::crypto::config::{EncryptionConfig, KeySource};

/// Wraps and unwraps data keys. Implementations never log or return key material in errors.
#[async_trait]
pub(crate) trait KeyProvider: Send + Sync {
    /// Id of the master key new DEKs are wrapped with.
    fn current_key_id(&self) -> &str;
    /// Wraps `dek` under the current master key; returns its id and the wrapped bytes.
    async fn wrap(&self, dek: &[u8; 32]) -> Result<(String, Vec<u8>), CryptoError>;
    /// Unwraps a DEK wrapped under master key `key_id` (current or previous).
    async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError>;
}

/// Master keys held in memory: the current one and the previous ones (unwrap only).
pub(crate) struct Keyring {
    current: String,
    keys: BTreeMap<String, LessSafeKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn aad(key_id: &str) -> Vec<u8> {
    let mut a = b"s3o-dek-v1:".to_vec();
    a.extend_from_slice(key_id.as_bytes());
    a
}

impl Keyring {
    /// A keyring from raw 32-byte keys: `current` first, then the previous ones.
    pub(crate) fn from_raw(
        current: (&str, &[u8; 32]),
        previous: &[(&str, &[u8; 32])],
    ) -> Result<Keyring, CryptoError> {
        let mut keys = BTreeMap::new();
        for (id, raw) in std::iter::once(&current).chain(previous) {
            if id.is_empty() || id.len() > 255 {
                return Err(CryptoError::Key(
                    "a master key id must be 1-255 bytes".into(),
                ));
            }
            let k = UnboundKey::new(&AES_256_GCM, raw.as_slice())
                .map_err(|_| CryptoError::Key("bad master key".into()))?;
            if keys.insert(id.to_string(), LessSafeKey::new(k)).is_some() {
                return Err(CryptoError::Key(format!(
                    "master key id {id:?} is listed twice"
                )));
            }
        }
        Ok(Keyring {
            current: current.0.to_owned(),
            keys,
        })
    }

    /// Loads the keys `config` names (files checked for permissions, env vars base64).
    pub(crate) fn load(config: &EncryptionConfig) -> Result<Keyring, CryptoError> {
        let current = read_key(&config.key)?;
        let mut previous = Vec::new();
        for p in &config.previous_keys {
            previous.push((p.key_id.as_str(), read_key(&p.source)?));
        }
        let prev: Vec<(&str, &[u8; 32])> = previous.iter().map(|(i, k)| (*i, &**k)).collect();
        Keyring::from_raw((&config.key_id, &current), &prev)
    }
}

#[async_trait]
impl KeyProvider for Keyring {
    fn current_key_id(&self) -> &str {
        &self.current
    }

    async fn wrap(&self, dek: &[u8; 32]) -> Result<(String, Vec<u8>), CryptoError> {
        let key = &self.keys[&self.current];
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut buf = dek.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&self.current)),
                &mut buf,
            )
            .map_err(|_| CryptoError::Key("wrap failed".into()))?;
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(tag.as_ref());
        Ok((self.current.clone(), out))
    }

    async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if wrapped.len() != WRAPPED_LEN {
            return Err(CryptoError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = Zeroizing::new(wrapped[NONCE_LEN..].to_vec());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(key_id)),
                buf.as_mut_slice(),
            )
            .map_err(|_| CryptoError::Unwrap(key_id.to_owned()))?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(plain);
        Ok(out)
    }
}

/// Reads one master key: a file of exactly 32 raw bytes that only its owner may read, or an
/// environment variable holding the 32 bytes in base64.
pub(crate) fn read_key(source: &KeySource) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let bytes: Zeroizing<Vec<u8>> = match source {
        KeySource::File(path) => Zeroizing::new(read_key_file(path)?),
        KeySource::Env(var) => {
            use base64::Engine as _;
            let v =
                Zeroizing::new(std::env::var(var).map_err(|_| {
                    CryptoError::Key(format!("master key variable {var} is not set"))
                })?);
            Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .map_err(|_| {
                        CryptoError::Key(format!("master key variable {var} is not base64"))
                    })?,
            )
        }
    };
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(CryptoError::Key(format!(
            "a master key must be exactly 32 bytes, {} has {}",
            source.describe(),
            bytes.len()
        )));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, CryptoError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CryptoError::Key(format!(
            "cannot read master key file {}: {e}",
            path.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(CryptoError::Key(format!(
                "master key file {} is accessible to group or others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    std::fs::read(path).map_err(|e| {
        CryptoError::Key(format!(
            "cannot read master key file {}: {e}",
            path.display()
        ))
    })
}
