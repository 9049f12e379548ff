//! `s3o-gateway encryption rotate`: re-wrap every data key under the current master key.
//!
//! Metadata only: each copy's DEK is unwrapped with the key it names (the current one or a
//! `previous_keys` entry) and wrapped again under the current key; the ciphertext on the
//! backends is untouched. Copies are visited in `(key, backend)` order in pages of `batch`,
//! with a pause between pages; each re-wrap is a compare-and-set in the ledger (it applies only
//! while the copy still holds the key that was read), so an overwrite racing the rotation keeps
//! its own key. Copies already under the current key are skipped: a run that stopped is
//! resumed by running it again.

use std::time::Duration;

use s3o_store::Cursor;

use super::Envelope;
use crate::GatewayError;
use crate::config::Config;

/// How a rotation paces itself.
#[derive(Clone, Copy, Debug)]
pub struct RotateOptions {
    /// Copies read per ledger page (default 100).
    pub batch: i64,
    /// Pause between pages (default 0).
    pub pause: Duration,
}

impl Default for RotateOptions {
    fn default() -> Self {
        RotateOptions {
            batch: 100,
            pause: Duration::ZERO,
        }
    }
}

/// What a rotation did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotateProgress {
    /// Encrypted copies examined.
    pub examined: u64,
    /// Copies re-wrapped under the current key.
    pub rewrapped: u64,
    /// Copies already under the current key.
    pub current: u64,
    /// Copies that changed between the read and the re-wrap (an overwrite or delete won).
    pub raced: u64,
    /// Copies whose key could not be unwrapped (unknown key id, wrong key, malformed).
    pub failed: u64,
}

/// Re-wraps every DEK of the ledger of `config` under its current master key; `progress`
/// is called after every page. Fails at the end when some copy could not be unwrapped (its
/// key id is named in the log); run it again after adding the missing `previous_keys`.
pub async fn rotate(
    config: &Config,
    opts: RotateOptions,
    progress: &mut (dyn FnMut(&RotateProgress) + Send),
) -> Result<RotateProgress, GatewayError> {
    config.validate()?;
    let fail = |why: String| GatewayError::Worker { why };
    let crypto = super::gateway::Crypto::from_config(config)
        .map_err(|why| GatewayError::Config(crate::ConfigError::Invalid(why)))?
        .ok_or_else(|| fail("rotation needs an [encryption] section".into()))?;
    let store_err = |source| GatewayError::Store {
        url: crate::redact::url(&config.store),
        source,
    };
    let store = s3o_store::open(&config.store).await.map_err(store_err)?;
    let r = rotate_in(&store, crypto.keys(), opts, progress).await;
    store.close().await;
    r.map_err(|e| match e {
        RunError::Store(source) => store_err(source),
        RunError::Failed(why) => fail(why),
    })
}

/// Why a rotation or conversion run ended in error.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The ledger refused a call.
    Store(s3o_store::StoreError),
    /// The run ended, but some items failed (named in the log).
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Store(e) => write!(f, "ledger: {e}"),
            RunError::Failed(why) => f.write_str(why),
        }
    }
}

/// [`rotate`] on an open ledger with the given keys (the admin API's job runs this with the
/// gateway's own store and keys).
pub(crate) async fn rotate_in(
    store: &s3o_store::MetadataStore,
    keys: &dyn super::KeyProvider,
    opts: RotateOptions,
    progress: &mut (dyn FnMut(&RotateProgress) + Send),
) -> Result<RotateProgress, RunError> {
    let done = run(store, keys, opts, progress)
        .await
        .map_err(RunError::Store)?;
    if done.failed > 0 {
        return Err(RunError::Failed(format!(
            "{} encrypted copies could not be unwrapped (see the log); add their keys to \
             previous_keys and run again",
            done.failed
        )));
    }
    Ok(done)
}

async fn run(
    store: &s3o_store::MetadataStore,
    keys: &dyn super::KeyProvider,
    opts: RotateOptions,
    progress: &mut (dyn FnMut(&RotateProgress) + Send),
) -> Result<RotateProgress, s3o_store::StoreError> {
    let current = keys.current_key_id().to_owned();
    let mut p = RotateProgress::default();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store
            .list_all_encrypted_locations(opts.batch.max(1), after.as_ref())
            .await?;
        let Some(last) = page.last() else {
            return Ok(p);
        };
        after = Some(Cursor {
            object_key: last.object_key.clone(),
            backend_name: last.backend_name.clone(),
        });
        for loc in &page {
            p.examined += 1;
            if loc.key_id == current {
                p.current += 1;
                continue;
            }
            let rewrapped = async {
                let env = Envelope::unpack(&loc.encryption_key, &loc.key_id)?;
                let raw = keys.unwrap(&env.key_id, &env.wrapped).await?;
                let (key_id, wrapped) = keys.wrap(&raw).await?;
                Ok::<_, super::CryptoError>(Envelope {
                    wrapped,
                    key_id,
                    ..env
                })
            }
            .await;
            let env = match rewrapped {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(key = %loc.object_key, backend = %loc.backend_name, error = %e, "cannot re-wrap this copy's key");
                    p.failed += 1;
                    continue;
                }
            };
            let done = store
                .rewrap_encryption_key(
                    &loc.object_key,
                    &loc.backend_name,
                    &loc.encryption_key,
                    &env.pack(),
                    &env.key_id,
                )
                .await?;
            if done {
                p.rewrapped += 1;
            } else {
                p.raced += 1;
            }
        }
        progress(&p);
        if !opts.pause.is_zero() {
            tokio::time::sleep(opts.pause).await;
        }
    }
}
