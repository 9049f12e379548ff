//! `s3o-gateway encryption rotate`: re-wrap every data key under the current master key.
//!
//! Metadata only: each DEK is unwrapped with the key it names (the current one or a
//! `previous_keys` entry) and wrapped again under the current key; the ciphertext on the
//! backends is untouched. Every ledger row that holds a wrapped DEK is visited, table by table
//! ([`KeyHolder`]): copies of current versions, copies of noncurrent versions, the
//! upload-level keys of open multipart uploads, their parts (each part holds the upload's DEK
//! with its own base nonce), and write intents (a dead writer's intent is promoted as
//! stored). Rows are read in primary-key order in pages of `batch`, with a pause between
//! pages; each re-wrap is a compare-and-set in the ledger under the lock the row's writers
//! take (it applies only while the row still holds the key that was read), so an overwrite,
//! a Complete or a re-uploaded part racing the rotation keeps its own key. Rows already under
//! the current key are skipped: a run that stopped is resumed by running it again.
//!
//! After a pass the run counts, per master key, the rows still wrapped under another key than
//! the current one. A write that raced the pass with the old key (a part sealed from an
//! upload key read before the upload was re-wrapped) leaves such rows, so the run makes
//! another pass while the last one changed something, at most [`MAX_PASSES`] in all. An old
//! master key can be removed from `previous_keys` once a run reports nothing remaining under
//! it.

use std::time::Duration;

use std::collections::BTreeMap;

use s3o_store::{KeyHolder, WrappedKeyAt};

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

/// Most passes over the ledger one run makes (see the module docs).
pub const MAX_PASSES: u32 = 3;

/// What a rotation did to the rows of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotateCounts {
    /// Rows examined (a row visited by two passes counts twice).
    pub examined: u64,
    /// Rows re-wrapped under the current key.
    pub rewrapped: u64,
    /// Rows already under the current key.
    pub current: u64,
    /// Rows that changed between the read and the re-wrap (an overwrite, delete, Complete,
    /// re-uploaded part or promoted intent won).
    pub raced: u64,
    /// Rows whose key could not be unwrapped (unknown key id, wrong key, malformed).
    pub failed: u64,
}

impl RotateCounts {
    fn add(&mut self, o: &RotateCounts) {
        self.examined += o.examined;
        self.rewrapped += o.rewrapped;
        self.current += o.current;
        self.raced += o.raced;
        self.failed += o.failed;
    }
}

/// What a rotation did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotateProgress {
    /// Rows holding a wrapped key examined, every table.
    pub examined: u64,
    /// Rows re-wrapped under the current key.
    pub rewrapped: u64,
    /// Rows already under the current key.
    pub current: u64,
    /// Rows that changed between the read and the re-wrap (the client's write won).
    pub raced: u64,
    /// Rows whose key could not be unwrapped (unknown key id, wrong key, malformed).
    pub failed: u64,
    /// The same counts per table, by [`holder_name`].
    pub holders: BTreeMap<&'static str, RotateCounts>,
    /// Passes made so far.
    pub passes: u32,
    /// After the run: rows still wrapped under each master key other than the current one
    /// (empty: every old key can be removed). Filled at the end of each pass.
    pub remaining: BTreeMap<String, u64>,
}

impl RotateProgress {
    fn count(&mut self, holder: KeyHolder, f: impl Fn(&mut RotateCounts)) {
        let mut one = RotateCounts::default();
        f(&mut one);
        self.examined += one.examined;
        self.rewrapped += one.rewrapped;
        self.current += one.current;
        self.raced += one.raced;
        self.failed += one.failed;
        self.holders
            .entry(holder_name(holder))
            .or_default()
            .add(&one);
    }
}

/// How the progress output names the rows of a table.
pub fn holder_name(h: KeyHolder) -> &'static str {
    match h {
        KeyHolder::Current => "current_copies",
        KeyHolder::Version => "noncurrent_copies",
        KeyHolder::Upload => "open_uploads",
        KeyHolder::Part => "upload_parts",
        KeyHolder::Pending => "write_intents",
    }
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
            "{} wrapped data keys could not be unwrapped (see the log); add their master \
             keys to previous_keys and run again",
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
    loop {
        p.passes += 1;
        let (changed, failed_before) = (p.rewrapped + p.raced, p.failed);
        for holder in KeyHolder::ALL {
            pass(store, keys, &current, holder, opts, &mut p, progress).await?;
        }
        p.remaining = remaining(store, &current).await?;
        progress(&p);
        // Stop when nothing is left, when the pass changed nothing (what remains cannot be
        // unwrapped, or is written under an old key faster than it is re-wrapped: the
        // remaining counts show it), or after the last pass.
        let progressed = p.rewrapped + p.raced > changed && p.failed == failed_before;
        if p.remaining.is_empty() || !progressed || p.passes >= MAX_PASSES {
            return Ok(p);
        }
    }
}

/// Rows wrapped under a master key other than `current`, per key id.
async fn remaining(
    store: &s3o_store::MetadataStore,
    current: &str,
) -> Result<BTreeMap<String, u64>, s3o_store::StoreError> {
    let mut out = BTreeMap::new();
    for c in store.wrapped_key_census().await? {
        if c.key_id != current {
            *out.entry(c.key_id).or_default() += u64::try_from(c.rows).unwrap_or(0);
        }
    }
    Ok(out)
}

/// One walk over the rows of `holder`'s table.
async fn pass(
    store: &s3o_store::MetadataStore,
    keys: &dyn super::KeyProvider,
    current: &str,
    holder: KeyHolder,
    opts: RotateOptions,
    p: &mut RotateProgress,
    progress: &mut (dyn FnMut(&RotateProgress) + Send),
) -> Result<(), s3o_store::StoreError> {
    let mut after: Option<WrappedKeyAt> = None;
    loop {
        let page = store
            .list_wrapped_keys(holder, opts.batch.max(1), after.as_ref())
            .await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.at.clone());
        for row in &page {
            if row.key_id == current {
                p.count(holder, |c| {
                    c.examined += 1;
                    c.current += 1;
                });
                continue;
            }
            let rewrapped = async {
                let env = Envelope::unpack(&row.encryption_key, &row.key_id)?;
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
                    tracing::error!(row = ?row.at, error = %e, "cannot re-wrap this data key");
                    p.count(holder, |c| {
                        c.examined += 1;
                        c.failed += 1;
                    });
                    continue;
                }
            };
            let done = store
                .rewrap_stored_key(&row.at, &row.encryption_key, &env.pack(), &env.key_id)
                .await?;
            p.count(holder, |c| {
                c.examined += 1;
                if done {
                    c.rewrapped += 1;
                } else {
                    c.raced += 1;
                }
            });
        }
        progress(p);
        if !opts.pause.is_zero() {
            tokio::time::sleep(opts.pause).await;
        }
    }
}
