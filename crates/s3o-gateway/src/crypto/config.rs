//! `[encryption]`: master keys, chunk size and which buckets are encrypted.

use std::path::PathBuf;

use serde::Deserialize;

/// `[encryption]`: envelope encryption at rest (see the README's "Encryption at rest").
///
/// ```toml
/// [encryption]
/// encrypt = true                      # every bucket, unless a [[buckets]] entry says otherwise
/// key_id = "2026-12"
/// master_key_file = "/etc/s3o/master.key"   # 32 raw bytes, mode 600; or master_key_env = "VAR"
/// chunk_size = 65536
///
/// [[encryption.previous_keys]]        # still unwrap DEKs wrapped by these
/// key_id = "2026-01"
/// master_key_file = "/etc/s3o/old.key"
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// Encrypt new objects of every bucket that does not set `encrypt` itself.
    pub encrypt: bool,
    /// Id recorded with every DEK wrapped by the current master key.
    pub key_id: String,
    /// Where the current master key comes from.
    pub key: KeySource,
    /// Plaintext bytes per chunk: a power of two between 4 KiB and 1 MiB (default 64 KiB).
    /// Each object records its own, so changing it affects new objects only.
    pub chunk_size: u64,
    /// Older master keys, accepted for unwrapping only.
    pub previous_keys: Vec<PreviousKey>,
}

/// A master key kept for unwrapping DEKs wrapped before a rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousKey {
    /// Its id.
    pub key_id: String,
    /// Where it comes from.
    pub source: KeySource,
}

/// Where a master key is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A file of exactly 32 raw bytes, readable by its owner only.
    File(PathBuf),
    /// An environment variable holding the 32 bytes in base64.
    Env(String),
}

impl KeySource {
    pub(crate) fn describe(&self) -> String {
        match self {
            KeySource::File(p) => format!("file {}", p.display()),
            KeySource::Env(v) => format!("variable {v}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key_id: String,
    #[serde(default)]
    master_key_file: Option<PathBuf>,
    #[serde(default)]
    master_key_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    encrypt: bool,
    key_id: String,
    #[serde(default)]
    master_key_file: Option<PathBuf>,
    #[serde(default)]
    master_key_env: Option<String>,
    #[serde(default)]
    chunk_size: Option<u64>,
    #[serde(default)]
    previous_keys: Vec<RawKey>,
}

fn source(id: &str, file: Option<PathBuf>, env: Option<String>) -> Result<KeySource, String> {
    match (file, env) {
        (Some(f), None) => Ok(KeySource::File(f)),
        (None, Some(v)) => Ok(KeySource::Env(v)),
        _ => Err(format!(
            "[encryption] key {id:?} needs exactly one of master_key_file and master_key_env"
        )),
    }
}

impl<'de> Deserialize<'de> for EncryptionConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(d)?;
        let key = source(&raw.key_id, raw.master_key_file, raw.master_key_env)
            .map_err(serde::de::Error::custom)?;
        let mut previous_keys = Vec::new();
        for p in raw.previous_keys {
            let s = source(&p.key_id, p.master_key_file, p.master_key_env)
                .map_err(serde::de::Error::custom)?;
            previous_keys.push(PreviousKey {
                key_id: p.key_id,
                source: s,
            });
        }
        Ok(EncryptionConfig {
            encrypt: raw.encrypt,
            key_id: raw.key_id,
            key,
            chunk_size: raw.chunk_size.unwrap_or(super::DEFAULT_CHUNK_SIZE),
            previous_keys,
        })
    }
}

impl EncryptionConfig {
    /// Checks the chunk size and key ids, and that every key loads (exists, 32 bytes,
    /// owner-only file). Never prints key material.
    pub fn validate(&self) -> Result<(), String> {
        let c = self.chunk_size;
        if !c.is_power_of_two() || !(super::MIN_CHUNK_SIZE..=super::MAX_CHUNK_SIZE).contains(&c) {
            return Err(format!(
                "[encryption] chunk_size must be a power of two between 4096 and 1048576, not {c}"
            ));
        }
        super::keys::Keyring::load(self)
            .map(|_| ())
            .map_err(|e| format!("[encryption] {e}"))
    }
}
