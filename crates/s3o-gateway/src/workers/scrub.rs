//! The scrubber: re-reads stored copies and checks their bytes, a bounded batch per pass.
//!
//! Each pass takes `batch_size` copies that have no content hash yet (oldest first), then
//! `batch_size` hashed copies least recently verified (on the backends that answer and are
//! within their monthly usage budget: an over-budget backend's copies wait for the next
//! month, `skipped_over_budget`). Each
//! copy's bytes are streamed from its backend and hashed (SHA-256, and MD5 for a single-PUT
//! ETag). A copy is **good** when its size matches the ledger, its SHA-256 matches the stored
//! hash, and (without a stored hash) its MD5 matches a single-PUT ETag; a good copy without a
//! hash gets one (`update_content_hash`), a hashed one is stamped verified
//! (`mark_object_scrubbed`). A copy whose bytes are missing or differ is **bad**: it is
//! dropped with `remove_bad_copy`, which re-checks under the key lock that the row is still
//! the one read (same path, same `created_at`: an overwrite since the read is never dropped
//! for older bytes) and that another backend holds the same version, and its bytes are queued
//! and deleted; the replicator then rebuilds the copy from a good one. A bad copy that is the
//! only one is kept and reported (`corrupt_last_copy`, or `missing_last_copy` when its bytes
//! are gone: an error in the log either way), and stamped so the queue moves on. An encrypted copy is opened with its own data key and every chunk
//! authenticated as it streams: its hash and ETag are its plaintext's, and bytes that do not
//! authenticate (a flipped byte, a cut, chunks reordered) make it bad. Encrypted copies are
//! skipped only by a gateway without the `[encryption]` keys.
//! Multipart copies without a stored hash cannot be checked against their ETag: their first
//! hash is taken as read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use object_store::ObjectStoreExt as _;
use s3o_store::{BadCopyRemoval, ObjectLocation, StoreError};

use super::{Ctx, Health, Tally, settle, within_budget};
use crate::crypto::CryptoError;
use crate::crypto::stream::{ByteStream, Decrypt, Plan};
use crate::keys;
use crate::ledger::LResult;

/// How long reading one copy may take.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let batch = i64::from(ctx.settings.scrub.batch_size);
    let mut health = Health::default();
    let (mut up, mut over) = (Vec::new(), Vec::new());
    for b in ctx.backends.all() {
        if !within_budget(ctx, b, t) {
            over.push(b.name.clone());
        } else if health.up(b).await {
            up.push(b.name.clone());
        }
    }
    let unhashed = ctx.store.get_objects_without_hash(batch, 0).await?;
    let hashed = ctx
        .store
        .get_least_recently_scrubbed_objects(batch, &up)
        .await?;
    for loc in unhashed.into_iter().chain(hashed) {
        if ctx.stopping() {
            break;
        }
        if over.contains(&loc.backend_name) {
            t.add("skipped_over_budget");
            continue;
        }
        if !up.contains(&loc.backend_name) {
            t.add("skipped_backend_down");
            continue;
        }
        // Without the keys (or a row without its own DEK) there is no plaintext to hash.
        if loc.form.encrypted && (ctx.crypto.is_none() || !loc.form.has_dek()) {
            t.add("skipped_encrypted");
            continue;
        }
        scrub_one(ctx, &loc, t).await?;
    }
    Ok(())
}

/// What reading a copy found.
enum Read {
    /// Size of the stored bytes, hex SHA-256 and MD5 of the content (of the plaintext, for an
    /// encrypted copy: every chunk authenticated on the way).
    Bytes(u64, String, [u8; 16]),
    /// The backend says the object does not exist.
    Missing,
    /// An encrypted copy whose bytes do not authenticate under its own key: tampered,
    /// truncated, reordered, or not this version's bytes.
    Unauthentic(String),
    /// The read failed otherwise (the copy is not judged).
    Failed(String),
}

async fn read(ctx: &Ctx, loc: &ObjectLocation) -> Read {
    let Some(b) = ctx.backends.get(&loc.backend_name) else {
        return Read::Failed("backend not configured".into());
    };
    let path = keys::path(loc.form.storage_path(&loc.object_key));
    let work = async {
        // An encrypted copy is opened with its own DEK (a key that does not unwrap is this
        // gateway's configuration, not the copy's fault: not judged).
        let open = match crate::crypto::gateway::sealed_of(&loc.form) {
            None => None,
            Some(sealed) => {
                let Some(c) = &ctx.crypto else {
                    return Read::Failed("encrypted, and no [encryption] keys".into());
                };
                match c.dek(&sealed).await {
                    Ok((dek, _)) => Some((dek, sealed.plaintext_size)),
                    Err(e) => return Read::Failed(e.to_string()),
                }
            }
        };
        let got = match b.store.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Read::Missing,
            Err(e) => return Read::Failed(e.to_string()),
        };
        let stored = Arc::new(AtomicU64::new(0));
        let counted = stored.clone();
        let raw: ByteStream = Box::pin(got.into_stream().map(move |r| {
            if let Ok(c) = &r {
                counted.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
            r.map_err(|e| Box::new(e) as s3s::StdError)
        }));
        let mut stream = match open {
            None => raw,
            Some((dek, plain)) => {
                let plain = u64::try_from(plain).unwrap_or(0);
                let plan = Plan {
                    plain,
                    base_index: 0,
                    first: 0,
                    skip: 0,
                    take: plain,
                };
                Box::pin(Decrypt::new(raw, dek, plan))
            }
        };
        let mut sha = s3s::checksum::ChecksumHasher {
            sha256: Some(Default::default()),
            ..Default::default()
        };
        let mut md5 = Md5::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    sha.update(&c);
                    md5.update(&c);
                }
                Err(e) if e.downcast_ref::<CryptoError>().is_some() => {
                    return Read::Unauthentic(e.to_string());
                }
                Err(e) => return Read::Failed(e.to_string()),
            }
        }
        let sha = sha.finalize().checksum_sha256.unwrap_or_default();
        let sha = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(sha)
                .map(hex::encode)
                .unwrap_or_default()
        };
        let mut m = [0u8; 16];
        m.copy_from_slice(&md5.finalize());
        Read::Bytes(stored.load(Ordering::Relaxed), sha, m)
    };
    tokio::time::timeout(READ_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Read::Failed(format!("no answer within {READ_TIMEOUT:?}")))
}

async fn scrub_one(ctx: &Ctx, loc: &ObjectLocation, t: &mut Tally) -> LResult<()> {
    let key = &loc.object_key;
    let backend = &loc.backend_name;
    let (why, missing) = match read(ctx, loc).await {
        Read::Failed(e) => {
            tracing::warn!(key = %key, backend = %backend, error = %e, "scrub read failed");
            t.add("read_failed");
            return Ok(());
        }
        Read::Missing => ("bytes missing".to_owned(), true),
        Read::Unauthentic(e) => (format!("bytes do not authenticate ({e})"), false),
        Read::Bytes(size, sha, md5) => {
            let size_ok = i64::try_from(size).ok() == Some(loc.size_bytes);
            let hash = &loc.form.content_hash;
            let hash_ok = hash.is_empty() || hash.eq_ignore_ascii_case(&sha);
            let etag_ok =
                !hash.is_empty() || crate::body::etag_md5(&loc.form.etag).is_none_or(|e| e == md5);
            if size_ok && hash_ok && etag_ok {
                if !still_the_same(ctx, loc).await? {
                    t.add("changed");
                } else if hash.is_empty() {
                    ctx.store.update_content_hash(key, backend, &sha).await?;
                    t.add("hashed");
                } else {
                    ctx.store.mark_object_scrubbed(key, backend).await?;
                    t.add("verified");
                }
                return Ok(());
            }
            let why = format!(
                "bytes differ (size {size} vs {}, hash ok: {hash_ok}, etag ok: {etag_ok})",
                loc.size_bytes
            );
            (why, false)
        }
    };
    // Removed only while the row is still the one read (same path, same created_at, checked
    // under the key lock), and never the last copy of its version.
    let path = loc.form.storage_path(key);
    match ctx
        .store
        .remove_bad_copy(key, backend, path, loc.created_at)
        .await?
    {
        BadCopyRemoval::Removed(removed) => {
            tracing::warn!(key = %key, backend = %backend, why = %why, "bad copy dropped; the replicator rebuilds it from a good one");
            t.add(if missing {
                "missing_copy_dropped"
            } else {
                "bad_copy_dropped"
            });
            settle(ctx, vec![removed]).await?;
        }
        // Overwritten or moved since it was read: the next pass checks the new copy.
        BadCopyRemoval::Changed => t.add("changed"),
        BadCopyRemoval::LastCopy if missing => {
            // The row stays (it is all that is left to say the object existed); an operator
            // restores the bytes or deletes the object.
            tracing::error!(key = %key, backend = %backend, path = %path, "the only copy of this object is missing from its backend; row kept for the operator");
            t.add("missing_last_copy");
            ctx.store.mark_object_scrubbed(key, backend).await?;
        }
        BadCopyRemoval::LastCopy => {
            tracing::error!(key = %key, backend = %backend, why = %why, "the only copy of this object is bad; kept for the operator");
            t.add("corrupt_last_copy");
            ctx.store.mark_object_scrubbed(key, backend).await?;
        }
        BadCopyRemoval::OnlyKeyHolder => {
            tracing::error!(key = %key, backend = %backend, why = %why, "bad copy holds the only key; kept for the operator");
            t.add("corrupt_only_key_holder");
            ctx.store.mark_object_scrubbed(key, backend).await?;
        }
    }
    Ok(())
}

/// True while the ledger's copy of the key on the backend is still the one that was read
/// (same path), so a verdict about those bytes applies to it.
async fn still_the_same(ctx: &Ctx, loc: &ObjectLocation) -> LResult<bool> {
    let want = loc.form.storage_path(&loc.object_key);
    match ctx.store.get_all_object_locations(&loc.object_key).await {
        Ok(now) => Ok(now.iter().any(|l| {
            l.backend_name == loc.backend_name && l.form.storage_path(&l.object_key) == want
        })),
        Err(StoreError::ObjectNotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
