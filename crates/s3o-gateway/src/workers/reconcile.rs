//! The reconciler: compares each backend with the ledger and removes what a crash or a lost
//! delete left behind, a bounded page at a time.
//!
//! Per backend that answers, each pass:
//! 1. **Open writes.** Lists the backend's open multipart uploads (S3 ListMultipartUploads;
//!    a local directory's staging files) and aborts those older than `grace`, under s3o's
//!    layout, that no write intent on the backend names (a streamed write opens its upload
//!    after its intent and completes it before the intent goes) and that are not parts of an
//!    upload the ledger knows. This closes the gap of a gateway killed between the backend's
//!    CreateMultipartUpload and recording the upload id with its intent: the reaper abandons
//!    the intent without an id to abort, and the upload would stay open (and billed) forever.
//! 2. **Stray bytes.** Lists the next `batch_size` objects (resuming where the last pass
//!    stopped, wrapping at the end) and deletes those older than `grace`, under s3o's layout,
//!    that no intent, ledger copy or known multipart upload references. The listing comes
//!    first and every reference is read after it, so a write in flight is always seen: its
//!    intent exists from before its first byte until the commit that records its copy; each
//!    copy is re-read from the ledger right before the delete.
//!
//! **Policy** (what counts as s3o's). s3o writes only `<bucket>/<encoded key>/@<version>`
//! (version `<16 hex>-<32 hex>`) for ledger buckets and `.mpu/<upload id>/...` for parts.
//! Unreferenced bytes there are s3o's own leftovers (a write never acknowledged, a version
//! replaced or deleted whose delete was lost) and are deleted, never imported: adopting them
//! would bring back what clients were told failed or was deleted (DESIGN decision 21).
//! Everything else on a backend is foreign and is never deleted or aborted; it is counted
//! (`foreign`). Foreign objects are adopted only on request, by `s3o-gateway import`
//! (`workers/import.rs`), which records them at their own path. Bytes queued for deletion may be
//! deleted here first: the cleanup worker then finds them gone (404 counts as deleted) and
//! completes their row.
//!
//! **No queue sweep.** The store's `sweep_stale_cleanup_queue_rows` (the original design's
//! step after dropping a location whose bytes are gone) has no caller here, on purpose:
//! - queue rows whose bytes are gone are completed by the cleanup worker, whose delete counts
//!   404 as done and releases `orphan_bytes` in the transaction that checks its claim; a sweep
//!   beside it would delete rows other instances hold claims on (rows are born claimed by the
//!   writer about to delete their bytes, DESIGN decision 16), and matching by key it would
//!   also drop rows of the key's other paths whose bytes still exist, leaving them on the
//!   backend with nothing to delete them;
//! - ledger copies whose bytes are gone are the scrubber's (`missing_copy_dropped`, rebuilt by
//!   the replicator; `missing_last_copy` reported), through `remove_bad_copy`;
//! - dead-lettered rows are the operator's (`s3o dlq requeue` completes a row whose bytes are
//!   gone at once, on the 404).
//!
//! Any step stopped midway is redone by a later pass; a pass whose view of the intents is
//! incomplete (more than one page of them) deletes and aborts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use object_store::path::Path;
use s3o_store::StoreError;

use super::open_uploads::{self, OpenUpload};
use super::{Ctx, Health, Tally, Worker, delete_path};
use crate::backends::Backend;
use crate::keys;
use crate::ledger::LResult;

/// Intents read in one call; a ledger with more in flight gets no destructive step this pass.
const INTENT_PAGE: i64 = 10_000;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let s = &ctx.settings.reconcile;
    let mut health = Health::default();
    for b in ctx.backends.all() {
        if ctx.stopping() {
            break;
        }
        if !health.up(b).await {
            t.add("skipped_backend_down");
            continue;
        }
        let open = match open_uploads::list(b).await {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(backend = %b.name, error = %e, "could not list open uploads");
                t.add("uploads_not_listed");
                None
            }
        };
        let page = match list_page(ctx, b, s.batch_size as usize).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(backend = %b.name, error = %e, "could not list the backend");
                t.add("objects_not_listed");
                None
            }
        };
        // Read after both listings: see the module documentation.
        let Some(refs) = References::load(ctx, b).await? else {
            t.add("skipped_intents_incomplete");
            continue;
        };
        let fence = SystemTime::now().checked_sub(s.grace.0);
        if let Some(open) = open {
            abort_strays(ctx, b, open, &refs, fence, t).await;
        }
        if let Some(page) = page {
            sweep_page(ctx, b, page, &refs, fence, t).await?;
        }
    }
    Ok(())
}

/// What the ledger references on one backend, read after the backend was listed.
struct References {
    /// Ledger buckets (`<bucket>/` is s3o's layout).
    buckets: Vec<String>,
    /// Paths of write intents on the backend.
    intents: BTreeSet<String>,
    /// `.mpu/<id>/` of every multipart upload the ledger has on the backend.
    upload_dirs: Vec<String>,
}

impl References {
    /// `None` when the intents do not fit in one read.
    async fn load(ctx: &Ctx, b: &Backend) -> LResult<Option<References>> {
        let pending = ctx
            .store
            .get_stale_pending(Duration::ZERO, INTENT_PAGE)
            .await?;
        if pending.len() as i64 >= INTENT_PAGE {
            return Ok(None);
        }
        let intents = pending
            .iter()
            .filter(|p| p.backend_name == b.name)
            .map(|p| p.form.storage_path(&p.object_key).to_owned())
            .collect();
        let upload_dirs = ctx
            .store
            .get_multipart_uploads_by_backend(&b.name)
            .await?
            .into_iter()
            .map(|u| format!("{}/", keys::upload_dir(&u.upload_id)))
            .collect();
        let buckets = ctx
            .current_factors()
            .await?
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        Ok(Some(References {
            buckets,
            intents,
            upload_dirs,
        }))
    }

    /// True for a path s3o writes: a version of a ledger bucket's key, or a part.
    fn in_layout(&self, path: &str) -> bool {
        path.starts_with(".mpu/")
            || decode_object_path(path).is_some_and(|(bucket, _)| self.buckets.contains(&bucket))
    }

    /// True when an intent or a known upload names `path` (ledger copies are read apart).
    fn pending(&self, path: &str) -> bool {
        self.intents.contains(path) || self.upload_dirs.iter().any(|d| path.starts_with(d))
    }
}

/// Aborts the open writes of `b` that nothing references (see the module documentation).
async fn abort_strays(
    ctx: &Ctx,
    b: &Backend,
    open: Vec<OpenUpload>,
    refs: &References,
    fence: Option<SystemTime>,
    t: &mut Tally,
) {
    if open.is_empty() {
        return;
    }
    // Open writes are named by their target (a file for a local directory): map the paths.
    let target = |p: &str| open_uploads::target(b, p);
    let layout: Vec<String> = refs
        .buckets
        .iter()
        .map(String::as_str)
        .chain([".mpu"])
        .filter_map(|d| target(d).map(|t| format!("{t}/")))
        .collect();
    let intents: BTreeSet<String> = refs.intents.iter().filter_map(|p| target(p)).collect();
    let upload_dirs: Vec<String> = refs
        .upload_dirs
        .iter()
        .filter_map(|d| target(d.trim_end_matches('/')).map(|t| format!("{t}/")))
        .collect();
    for u in open {
        if ctx.stopping() {
            return;
        }
        if fence.is_none_or(|f| u.started >= f) {
            t.add("upload_young");
            continue;
        }
        if !layout.iter().any(|d| u.target.starts_with(d.as_str())) {
            t.add("upload_foreign");
            continue;
        }
        if intents.contains(&u.target) || upload_dirs.iter().any(|d| u.target.starts_with(d)) {
            t.add("upload_in_flight");
            continue;
        }
        match open_uploads::abort(b, &u).await {
            Ok(()) => {
                tracing::info!(backend = %b.name, target = %u.target, "aborted an open upload nothing references");
                t.add("upload_aborted");
            }
            Err(e) => {
                tracing::warn!(backend = %b.name, target = %u.target, error = %e, "could not abort an open upload");
                t.add("upload_abort_failed");
            }
        }
    }
}

/// The next `n` objects of `b` after the pass's cursor; an end of listing resets the cursor.
async fn list_page(
    ctx: &Ctx,
    b: &Backend,
    n: usize,
) -> Result<Vec<object_store::ObjectMeta>, String> {
    let cursor = ctx.cursor(Worker::Reconcile, &b.name);
    let listing = if cursor.is_empty() {
        b.store.list(None)
    } else {
        b.store.list_with_offset(None, &Path::from(cursor.as_str()))
    };
    let mut page = Vec::with_capacity(n.min(1000));
    let mut listing = listing.take(n);
    while let Some(o) = listing.next().await {
        page.push(o.map_err(|e| e.to_string())?);
    }
    let next = if page.len() < n {
        String::new()
    } else {
        page.last()
            .map(|o| o.location.to_string())
            .unwrap_or_default()
    };
    ctx.set_cursor(Worker::Reconcile, &b.name, next);
    Ok(page)
}

/// Deletes the listed objects of `b` that nothing references (see the module documentation).
async fn sweep_page(
    ctx: &Ctx,
    b: &Backend,
    page: Vec<object_store::ObjectMeta>,
    refs: &References,
    fence: Option<SystemTime>,
    t: &mut Tally,
) -> LResult<()> {
    // Copies per ledger key, read once per page.
    let mut copies: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for o in page {
        if ctx.stopping() {
            break;
        }
        t.add("listed");
        let path = o.location.to_string();
        if fence.is_none_or(|f| SystemTime::from(o.last_modified) >= f) {
            t.add("young");
            continue;
        }
        if !refs.in_layout(&path) {
            t.add("foreign");
            continue;
        }
        if refs.pending(&path) {
            t.add("in_flight");
            continue;
        }
        // The copy that would own these bytes: the version's key, or (an imported object,
        // recorded at its own name) the path itself read as a ledger key.
        let mut owners = vec![path.clone()];
        if let Some((bucket, key)) = decode_object_path(&path) {
            owners.push(keys::ledger_key(&bucket, &key));
        }
        let mut owned = false;
        for k in &owners {
            if !copies.contains_key(k) {
                let at = locations(ctx, k).await?;
                copies.insert(k.clone(), at);
            }
            owned |= copies[k].contains(&(b.name.clone(), path.clone()));
        }
        if owned {
            t.add("referenced");
            continue;
        }
        // Re-read right before the delete: a copy recorded since the page's first read (a
        // replica landing at this very path) keeps its bytes.
        let mut owned_now = false;
        for k in &owners {
            owned_now |= locations(ctx, k)
                .await?
                .contains(&(b.name.clone(), path.clone()));
        }
        if owned_now {
            t.add("referenced");
            continue;
        }
        match delete_path(b, &o.location).await {
            Ok(()) => {
                tracing::info!(backend = %b.name, path = %path, size = o.size, "deleted bytes nothing references");
                t.add("stray_deleted");
            }
            Err(e) => {
                tracing::warn!(backend = %b.name, path = %path, error = %e, "could not delete stray bytes");
                t.add("stray_delete_failed");
            }
        }
    }
    Ok(())
}

/// `(backend, storage path)` of every copy of `key`, of its current version and of every
/// noncurrent version (DESIGN decision 25: a noncurrent version's bytes are referenced);
/// none ⇒ empty.
async fn locations(ctx: &Ctx, key: &str) -> LResult<BTreeSet<(String, String)>> {
    if s3o_store::limits::key(key).is_err() {
        return Ok(BTreeSet::new());
    }
    let mut locs = match ctx.store.get_all_object_locations(key).await {
        Ok(locs) => locs,
        Err(StoreError::ObjectNotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    locs.extend(ctx.store.get_noncurrent_copies(key).await?);
    Ok(locs
        .iter()
        .map(|l| {
            (
                l.backend_name.clone(),
                l.form.storage_path(&l.object_key).to_owned(),
            )
        })
        .collect())
}

/// The bucket and key of a path [`keys::object_path`] made, or `None` for any other path:
/// `<bucket>/<segments>/@<16 hex>-<32 hex>`, segments joined and percent-decoded to UTF-8.
pub(super) fn decode_object_path(path: &str) -> Option<(String, String)> {
    let (dir, version) = path.rsplit_once("/@")?;
    let (time, random) = version.split_once('-')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
    if !hex(time, 16) || !hex(random, 32) {
        return None;
    }
    let (bucket, rest) = dir.split_once('/')?;
    let joined: String = rest.split('/').collect();
    let raw = joined.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let h = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.') => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    let key = String::from_utf8(out).ok()?;
    // Only what the encoder writes: the round trip must give the same path back.
    (keys::object_path(bucket, &key, version) == path).then(|| (bucket.to_owned(), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_decode_to_their_key() {
        let keys = [
            "a",
            "a/b c",
            "é/%2F/..",
            ".",
            "..",
            "x@y/@z",
            &"é".repeat(300),
        ];
        for k in keys {
            let v = keys::new_version();
            let p = keys::object_path("bkt", k, &v);
            assert_eq!(
                decode_object_path(&p),
                Some(("bkt".to_owned(), k.to_owned())),
                "{p}"
            );
        }
        for foreign in [
            "bkt/cat.jpg",
            "bkt/a/@v1",
            "bkt/a/@0123456789abcdef-xyz",
            "bkt/a%2/@0000000000000001-0123456789abcdef0123456789abcdef",
            "bkt/a b/@0000000000000001-0123456789abcdef0123456789abcdef",
            "@0000000000000001-0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(decode_object_path(foreign), None, "{foreign}");
        }
    }
}
