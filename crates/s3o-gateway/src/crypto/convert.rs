//! `s3o-gateway encryption encrypt-existing | decrypt-existing`: rewrite stored objects
//! sealed or in plaintext, in place as far as clients can tell.
//!
//! `encrypt-existing` seals every plaintext object of a bucket that encrypts (by the
//! configuration); `decrypt-existing` opens every encrypted object of a bucket that does not.
//! For each key: every copy's bytes are read from its own backend, rewritten (sealed with one
//! fresh DEK, or decrypted with every chunk authenticated) to a new path on that backend under
//! a write intent, checked (size, and the plaintext MD5 against a single-PUT ETag), and then
//! swapped in one ledger transaction (`convert_version`) that applies only while the key's
//! version is still the one read: a concurrent overwrite or delete wins and the rewritten
//! bytes are dropped. ETag, metadata and Last-Modified stay. Pages of `batch` keys with a
//! pause between pages; objects already in the wanted form are skipped, so a run that
//! stopped is resumed by running it again.
//!
//! Noncurrent versions of versioned buckets are converted the same way after the current
//! ones, one version (every copy) at a time (`convert_noncurrent_version`): the swap applies
//! only while the version is still noncurrent at the path read, so a delete of that version
//! or its restoration as current wins. Delete markers hold no bytes. Open multipart uploads
//! are not converted: parts already written keep the form their upload was created with, and
//! Complete assembles them into an object of that form (a part's form is always its upload's;
//! a later run converts the completed object).

use std::sync::{Arc, Mutex};

use futures::TryStreamExt as _;
use object_store::ObjectStoreExt as _;
use s3o_store::{ConvertedCopy, Cursor, KeyHolder, PendingObject, StoredForm, WrappedKeyAt};

use super::gateway::{Crypto, ReadPlan, Sealed, form_columns};
use super::stream::{ByteStream, Encrypt, Tap};
use super::{Dek, PATH_MARK};
use crate::GatewayError;
use crate::backends::Backends;
use crate::config::Config;
use crate::crypto::rotate::{RotateOptions, RunError};
use crate::keys;
use crate::ledger::{Copy, Ledger};
use crate::workers::Ctx;

/// Which way a conversion goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Seal plaintext objects of buckets that encrypt.
    Encrypt,
    /// Open encrypted objects of buckets that do not.
    Decrypt,
}

/// What a conversion did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvertProgress {
    /// Keys examined.
    pub examined: u64,
    /// Keys rewritten.
    pub converted: u64,
    /// Keys left as they are (bucket setting, already converted, gone).
    pub skipped: u64,
    /// Keys overwritten or deleted while being converted (the client's write won).
    pub raced: u64,
    /// Keys that could not be converted (a backend down, bytes that do not check out).
    pub failed: u64,
    /// Of `converted`, noncurrent versions (each counted once, every copy rewritten).
    pub noncurrent: u64,
}

/// Converts the objects of the ledger of `config` (see the module docs); `progress` is called
/// after every page. Fails at the end when some key could not be converted (named in the log).
pub async fn convert(
    config: &Config,
    direction: Direction,
    opts: RotateOptions,
    progress: &mut (dyn FnMut(&ConvertProgress) + Send),
) -> Result<ConvertProgress, GatewayError> {
    config.validate()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fail = |why: String| GatewayError::Worker { why };
    let crypto = Crypto::from_config(config)
        .map_err(|why| GatewayError::Config(crate::ConfigError::Invalid(why)))?
        .ok_or_else(|| fail("conversion needs an [encryption] section".into()))?;
    let store_err = |source| GatewayError::Store {
        url: crate::redact::url(&config.store),
        source,
    };
    let store = s3o_store::open(&config.store).await.map_err(store_err)?;
    let ledger = Arc::new(Ledger::new(store.clone(), config.routing));
    let backends = match Backends::build(&config.backends) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let ctx = Ctx::new(store.clone(), ledger.clone(), backends, config);
    let r = convert_in(&ctx, &crypto, direction, opts, progress).await;
    store.close().await;
    r.map_err(|e| match e {
        RunError::Store(source) => store_err(source),
        RunError::Failed(why) => fail(why),
    })
}

/// [`convert`] with an open ledger, backends and keys (the admin API's job runs this with
/// the gateway's own).
pub(crate) async fn convert_in(
    ctx: &Ctx,
    crypto: &Crypto,
    direction: Direction,
    opts: RotateOptions,
    progress: &mut (dyn FnMut(&ConvertProgress) + Send),
) -> Result<ConvertProgress, RunError> {
    let done = run(ctx, crypto, direction, opts, progress)
        .await
        .map_err(RunError::Store)?;
    if done.failed > 0 {
        return Err(RunError::Failed(format!(
            "{} objects could not be converted (see the log); run again to retry them",
            done.failed
        )));
    }
    Ok(done)
}

async fn run(
    ctx: &Ctx,
    crypto: &Crypto,
    direction: Direction,
    opts: RotateOptions,
    progress: &mut (dyn FnMut(&ConvertProgress) + Send),
) -> Result<ConvertProgress, s3o_store::StoreError> {
    let mut p = ConvertProgress::default();
    let mut after: Option<Cursor> = None;
    loop {
        let page: Vec<(String, String)> = match direction {
            Direction::Encrypt => ctx
                .store
                .list_unencrypted_locations(opts.batch.max(1), after.as_ref())
                .await?
                .into_iter()
                .map(|l| (l.object_key, l.backend_name))
                .collect(),
            Direction::Decrypt => ctx
                .store
                .list_all_encrypted_locations(opts.batch.max(1), after.as_ref())
                .await?
                .into_iter()
                .map(|l| (l.object_key, l.backend_name))
                .collect(),
        };
        let Some((k, b)) = page.last().cloned() else {
            break;
        };
        after = Some(Cursor {
            object_key: k,
            backend_name: b,
        });
        let mut keys: Vec<String> = page.into_iter().map(|(k, _)| k).collect();
        keys.dedup();
        for key in keys {
            p.examined += 1;
            match convert_key(ctx, crypto, direction, &key, None).await {
                Ok(Outcome::Converted) => p.converted += 1,
                Ok(Outcome::Skipped) => p.skipped += 1,
                Ok(Outcome::Raced) => p.raced += 1,
                Err(why) => {
                    tracing::error!(key = %key, error = %why, "could not convert this object");
                    p.failed += 1;
                }
            }
        }
        progress(&p);
        if !opts.pause.is_zero() {
            tokio::time::sleep(opts.pause).await;
        }
    }
    // Then the noncurrent versions, one version (every copy) at a time.
    let mut after: Option<WrappedKeyAt> = None;
    loop {
        let page: Vec<WrappedKeyAt> = match direction {
            Direction::Encrypt => {
                ctx.store
                    .list_plaintext_version_copies(opts.batch.max(1), after.as_ref())
                    .await?
            }
            Direction::Decrypt => ctx
                .store
                .list_wrapped_keys(KeyHolder::Version, opts.batch.max(1), after.as_ref())
                .await?
                .into_iter()
                .map(|w| w.at)
                .collect(),
        };
        let Some(last) = page.last().cloned() else {
            return Ok(p);
        };
        after = Some(last);
        let mut versions: Vec<(String, String)> = page
            .into_iter()
            .filter_map(|at| match at {
                WrappedKeyAt::Version {
                    object_key,
                    version_id,
                    ..
                } => Some((object_key, version_id)),
                _ => None,
            })
            .collect();
        versions.dedup();
        for (key, vid) in versions {
            p.examined += 1;
            match convert_key(ctx, crypto, direction, &key, Some(&vid)).await {
                Ok(Outcome::Converted) => {
                    p.converted += 1;
                    p.noncurrent += 1;
                }
                Ok(Outcome::Skipped) => p.skipped += 1,
                Ok(Outcome::Raced) => p.raced += 1,
                Err(why) => {
                    tracing::error!(key = %key, version = %vid, error = %why, "could not convert this version");
                    p.failed += 1;
                }
            }
        }
        progress(&p);
        if !opts.pause.is_zero() {
            tokio::time::sleep(opts.pause).await;
        }
    }
}

enum Outcome {
    Converted,
    Skipped,
    Raced,
}

/// One copy rewritten under its intent.
struct Rewritten {
    intent: PendingObject,
    size: i64,
}

/// Converts the current version of `key`, or its noncurrent version `version` when given.
async fn convert_key(
    ctx: &Ctx,
    crypto: &Crypto,
    direction: Direction,
    key: &str,
    version: Option<&str>,
) -> Result<Outcome, String> {
    let Some((bucket, object)) = key.split_once('/') else {
        return Ok(Outcome::Skipped);
    };
    let wanted = crypto.encrypts(bucket);
    if wanted != (direction == Direction::Encrypt) {
        return Ok(Outcome::Skipped);
    }
    let copies = match version {
        None => ctx
            .ledger
            .copies_or_empty(key)
            .await
            .map_err(|e| e.to_string())?,
        Some(vid) => match ctx.ledger.version(key, vid).await {
            Ok(crate::ledger::Version::Object { copies, .. }) => copies,
            // Deleted since it was listed, or a marker: nothing to convert.
            Ok(crate::ledger::Version::Marker { .. })
            | Err(s3o_store::StoreError::VersionNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.to_string()),
        },
    };
    let Some(first) = copies.first() else {
        return Ok(Outcome::Skipped);
    };
    if first.meta.encryption.is_some() == wanted {
        return Ok(Outcome::Skipped);
    }
    let old_path = first.meta.storage_key.clone();
    if old_path.is_empty() || copies.iter().any(|c| c.meta.storage_key != old_path) {
        return Err("its copies are not one version at one path".into());
    }
    let mut new_path = keys::object_path(bucket, object, &keys::new_version());
    // The new form: sealed with one fresh DEK for every copy, or plaintext.
    let (dek, sealed) = if wanted {
        let (dek, env) = Dek::generate(crypto.keys(), crypto.chunk())
            .await
            .map_err(|e| e.to_string())?;
        new_path.push_str(PATH_MARK);
        let plain = first.size;
        let sealed = Sealed {
            key: env.pack(),
            key_id: env.key_id.clone(),
            plaintext_size: plain,
        };
        (Some(Arc::new(dek)), Some(sealed))
    } else {
        (None, None)
    };
    let envelope = StoredForm {
        storage_key: new_path.clone(),
        ..form_columns(sealed.as_ref())
    };
    let mut done: Vec<Rewritten> = Vec::new();
    let mut failure = None;
    for c in &copies {
        match rewrite_copy(ctx, crypto, key, c, &new_path, dek.as_ref(), &envelope).await {
            Ok(r) => done.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(e) = failure {
        end_intents(ctx, &done).await;
        return Err(e);
    }
    let converted: Vec<ConvertedCopy> = done
        .iter()
        .map(|r| ConvertedCopy {
            backend: r.intent.backend_name.clone(),
            size_bytes: r.size,
            intent_id: r.intent.intent_id.clone(),
        })
        .collect();
    let swapped = match version {
        None => {
            ctx.store
                .convert_version(key, &old_path, &envelope, &converted)
                .await
        }
        Some(vid) => {
            ctx.store
                .convert_noncurrent_version(key, vid, &old_path, &envelope, &converted)
                .await
        }
    };
    match swapped {
        Ok(Some(old)) => {
            crate::workers::settle(ctx, old)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Outcome::Converted)
        }
        Ok(None) => {
            end_intents(ctx, &done).await;
            Ok(Outcome::Raced)
        }
        Err(e) => {
            end_intents(ctx, &done).await;
            Err(e.to_string())
        }
    }
}

/// Rewrites the bytes of copy `c` to `new_path` on its own backend under a write intent.
async fn rewrite_copy(
    ctx: &Ctx,
    crypto: &Crypto,
    key: &str,
    c: &Copy,
    new_path: &str,
    dek: Option<&Arc<Dek>>,
    envelope: &StoredForm,
) -> Result<Rewritten, String> {
    let backend = ctx
        .backends
        .get(&c.backend)
        .ok_or_else(|| format!("backend {} is not configured", c.backend))?
        .clone();
    let plain = c
        .meta
        .encryption
        .as_ref()
        .map_or(c.size, |s| s.plaintext_size);
    let new_size = match dek {
        Some(d) => i64::try_from(d.layout().stored_size(u64::try_from(plain).unwrap_or(0)))
            .unwrap_or(i64::MAX),
        None => plain,
    };
    let intent = PendingObject {
        intent_id: uuid::Uuid::new_v4().to_string(),
        object_key: key.to_owned(),
        backend_name: c.backend.clone(),
        size_bytes: new_size,
        form: envelope.clone(),
        created_at: s3o_store::Timestamp::ZERO,
    };
    ctx.store
        .insert_pending(&intent)
        .await
        .map_err(|e| e.to_string())?;
    let written = async {
        let got = backend
            .store
            .get(&keys::path(&c.meta.storage_key))
            .await
            .map_err(|e| format!("read from {}: {e}", c.backend))?;
        let stored: ByteStream =
            Box::pin(got.into_stream().map_err(|e| Box::new(e) as s3s::StdError));
        let tap = Arc::new(Mutex::new(Tap {
            size: 0,
            md5: md5::Md5::default(),
            checksums: s3s::checksum::ChecksumHasher::default(),
        }));
        let body: ByteStream = match (&c.meta.encryption, dek) {
            (None, Some(d)) => Box::pin(Encrypt::new(
                stored,
                d.clone(),
                0,
                u64::MAX,
                Some(tap.clone()),
            )),
            (Some(s), None) => {
                let plan = ReadPlan::new(Some(crypto), s, 0, None)
                    .await
                    .map_err(|e| e.to_string())?;
                plan.stream(stored)
            }
            _ => return Err("nothing to convert".to_owned()),
        };
        let mut ignored = s3s::checksum::ChecksumHasher::default();
        let up = crate::body::upload(
            &backend,
            &keys::path(new_path),
            body,
            u64::try_from(new_size).ok(),
            &mut ignored,
            None,
        )
        .await
        .map_err(|e| format!("rewrite on {}: {e:?}", c.backend))?;
        // The plaintext that went in (sealing) or came out (opening) must be the version's.
        let md5 = if dek.is_some() {
            let mut t = tap.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = [0u8; 16];
            out.copy_from_slice(&md5::Digest::finalize(std::mem::take(&mut t.md5)));
            out
        } else {
            up.md5
        };
        if i64::try_from(up.size).ok() != Some(new_size)
            || crate::body::etag_md5(&c.meta.etag).is_some_and(|m| m != md5)
        {
            return Err(format!(
                "the bytes on {} do not match the ledger's record",
                c.backend
            ));
        }
        Ok(())
    }
    .await;
    let r = Rewritten {
        intent,
        size: new_size,
    };
    match written {
        Ok(()) => Ok(r),
        Err(e) => {
            end_intents(ctx, std::slice::from_ref(&r)).await;
            Err(e)
        }
    }
}

/// Drops the intents of rewritten bytes that will not be used and deletes those bytes.
async fn end_intents(ctx: &Ctx, done: &[Rewritten]) {
    for r in done {
        match ctx.store.abandon_pending(&r.intent).await {
            Ok((_, queued)) => {
                if let Err(e) = crate::workers::settle(ctx, queued).await {
                    tracing::warn!(error = %e, "could not delete rewritten bytes; the cleanup worker will");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not end a conversion intent; the pending reaper will");
            }
        }
    }
}
