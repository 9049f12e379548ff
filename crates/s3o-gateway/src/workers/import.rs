//! Import (adoption): brings objects already on a backend under management, in place.
//!
//! `s3o-gateway import --config FILE --backend B --bucket X [--prefix P] [--dry-run]` lists
//! `X/` (or `X/P…`) on backend `B` as a stream (the backend's own pages: memory stays bounded
//! whatever the bucket's size) and records each object `X/<key>` as key `<key>` of bucket `X`
//! with [`MetadataStore::import_object`](s3o_store::MetadataStore::import_object): a plaintext
//! copy at its own path (the bytes do not move), its size charged to `B`'s quota by the
//! ledger's guarded charge, its ETag and last-modified time as the backend reports them (a
//! local directory's ETag is not an MD5, so there the file is read once and its MD5 recorded).
//!
//! **What is left alone.** The ledger decides under the key lock (see the store operation):
//! a key the ledger knows is never replaced or joined (`key exists`: the backend object is
//! reported, never adopted), a key with a write in flight is left for a later run, and so
//! are bytes the cleanup queue or its DLQ owns (an imported object deleted since is not
//! brought back while its delete is pending). Paths in s3o's own layout (`X/<encoded
//! key>/@<version>`) are never imported: they are versions clients were told failed, were
//! replaced or were deleted (DESIGN decision 21; the reconciler deletes the unreferenced
//! ones). An object that does not fit the backend's quota is refused (`no room`), the rest go
//! on. A re-run imports nothing twice (`already imported`).
//!
//! After each import the object is looked up on the backend once more: bytes deleted between
//! the listing and the commit (a cleanup finishing just then) would otherwise be recorded as
//! a copy that does not exist, so such a copy is taken back out at once.
//!
//! `--dry-run` writes nothing: it reads the ledger to say what a run would do now (the run
//! itself decides again, under the lock).

use std::sync::Arc;

use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt as _};
use s3o_store::{ImportOutcome, ImportedObject, MetadataStore, StoreError, Timestamp};

use super::reconcile::decode_object_path;
use crate::backends::{Backend, Backends, RawAccess};
use crate::keys;
use crate::ledger::Ledger;
use crate::{Config, GatewayError};

/// Objects between two progress reports.
const REPORT_EVERY: u64 = 100;

/// What to import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The backend holding the objects (a configured backend).
    pub backend: String,
    /// The bucket they become keys of (its objects are under `<bucket>/` on the backend).
    pub bucket: String,
    /// Only keys starting with this (bytes, case-sensitive); empty = every key.
    pub prefix: String,
    /// Report what would be imported; change nothing.
    pub dry_run: bool,
}

/// Counts of an import run; reported every 100 objects and at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Objects listed under the bucket (and prefix).
    pub listed: u64,
    /// Objects imported (with `--dry-run`: that would be imported).
    pub imported: u64,
    /// Bytes of those objects.
    pub imported_bytes: u64,
    /// Objects the ledger already has at this path (an earlier import).
    pub already_imported: u64,
    /// Paths in s3o's own layout (versions it wrote): never imported.
    pub s3o_versions: u64,
    /// Objects refused, each reported with its reason.
    pub refused: u64,
}

/// One refused object and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRefusal {
    /// The object's key in the bucket.
    pub key: String,
    /// Why: `key exists`, `in flight`, `queued for cleanup`, `no room`, `invalid key`,
    /// `gone` (deleted during the import) or a ledger/backend error.
    pub reason: String,
}

/// What the progress callback is told.
#[derive(Debug)]
pub enum ImportEvent<'a> {
    /// Counts so far (every 100 objects).
    Progress(&'a ImportProgress),
    /// An object that was not imported, as it happens.
    Refused(&'a ImportRefusal),
}

/// Imports `opts.bucket`'s objects on `opts.backend` (see the module documentation). Opens
/// (and migrates) the ledger of `config` and writes its quotas like [`crate::Gateway::start`];
/// the bucket must be in the ledger already. Returns the final counts; refusals do not fail the run
/// (they are reported through `events`), a listing or ledger failure does.
pub async fn import(
    config: &Config,
    opts: &ImportOptions,
    events: &mut (dyn FnMut(ImportEvent<'_>) + Send),
) -> Result<ImportProgress, GatewayError> {
    config.validate()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fail = |why: String| GatewayError::Worker { why };
    let store_err = |source| GatewayError::Store {
        url: config.store.clone(),
        source,
    };
    let backends = Arc::new(Backends::build(&config.backends)?);
    let Some(b) = backends.get(&opts.backend).cloned() else {
        return Err(fail(format!(
            "backend {:?} is not in the configuration",
            opts.backend
        )));
    };
    let store = s3o_store::open(&config.store).await.map_err(store_err)?;
    let out = async {
        let limits: Vec<(String, i64)> = config
            .backends
            .iter()
            .map(|b| (b.name.clone(), i64::try_from(b.quota_bytes).unwrap_or(i64::MAX)))
            .collect();
        Ledger::new(store.clone(), config.routing)
            .prepare(&limits)
            .await
            .map_err(store_err)?;
        match store.get_bucket(&opts.bucket).await {
            Ok(_) => {}
            Err(StoreError::BucketNotFound { .. }) => {
                return Err(fail(format!(
                    "bucket {:?} is not in the ledger: start the gateway once (the configuration's buckets) or create it over S3",
                    opts.bucket
                )));
            }
            Err(e) => return Err(store_err(e)),
        }
        let mut run = Run {
            store: &store,
            b: &b,
            opts,
            counts: ImportProgress::default(),
            room: None,
        };
        if opts.dry_run {
            run.room = Some(room(&store, &b.name).await.map_err(store_err)?);
        }
        run.all(events).await?;
        Ok(run.counts)
    }
    .await;
    // Count this command's backend calls against the month's budget, as a gateway does.
    if let Err(e) = backends.usage().flush(&store).await {
        tracing::warn!(error = %e, "could not flush the import's backend usage");
    }
    store.close().await;
    out
}

/// Room left on `backend` (`None`: unlimited), for a dry run's quota verdicts.
async fn room(store: &MetadataStore, backend: &str) -> s3o_store::Result<Option<i64>> {
    let stats = store.get_quota_stats().await?;
    Ok(stats
        .get(backend)
        .and_then(|q| (q.bytes_limit > 0).then(|| q.bytes_limit - q.bytes_used - q.orphan_bytes)))
}

struct Run<'a> {
    store: &'a MetadataStore,
    b: &'a Backend,
    opts: &'a ImportOptions,
    counts: ImportProgress,
    /// Dry run: room left on the backend, spent by each object that would be imported.
    room: Option<Option<i64>>,
}

impl Run<'_> {
    async fn all(
        &mut self,
        events: &mut (dyn FnMut(ImportEvent<'_>) + Send),
    ) -> Result<(), GatewayError> {
        let bucket_dir = keys::bucket_prefix(&self.opts.bucket);
        let wanted = format!("{bucket_dir}{}", self.opts.prefix);
        // object_store lists whole path segments: list the prefix's directory and filter.
        let dir = match wanted.rfind('/') {
            Some(i) => &wanted[..i],
            None => wanted.as_str(),
        };
        let mut listing = self.b.store.list(Some(&Path::from(dir)));
        while let Some(o) = listing.next().await {
            let o = o.map_err(|e| GatewayError::Worker {
                why: format!("listing {} on {}: {e}", dir, self.b.name),
            })?;
            let path = o.location.to_string();
            if !path.starts_with(&wanted) {
                continue;
            }
            self.counts.listed += 1;
            if let Some(refusal) = self.one(&o, &path).await? {
                self.counts.refused += 1;
                tracing::info!(backend = %self.b.name, key = %refusal.key, reason = %refusal.reason, "not imported");
                events(ImportEvent::Refused(&refusal));
            }
            if self.counts.listed.is_multiple_of(REPORT_EVERY) {
                events(ImportEvent::Progress(&self.counts));
            }
        }
        events(ImportEvent::Progress(&self.counts));
        Ok(())
    }

    /// Imports one listed object; `Some` when it is refused.
    async fn one(
        &mut self,
        o: &ObjectMeta,
        path: &str,
    ) -> Result<Option<ImportRefusal>, GatewayError> {
        let key = path[keys::bucket_prefix(&self.opts.bucket).len()..].to_owned();
        let refuse = |reason: &str| {
            Ok(Some(ImportRefusal {
                key: key.clone(),
                reason: reason.to_owned(),
            }))
        };
        if decode_object_path(path).is_some() {
            self.counts.s3o_versions += 1;
            return Ok(None);
        }
        // The copy lives at its own key: the ledger key is the path itself.
        let ledger_key = keys::ledger_key(&self.opts.bucket, &key);
        debug_assert_eq!(ledger_key, path);
        if s3o_store::limits::key(&ledger_key).is_err() {
            return refuse("invalid key");
        }
        let size = o.size as i64;
        if let Some(room) = self.room {
            return Ok(self
                .preview(&ledger_key, size, room)
                .await?
                .map(|reason| ImportRefusal {
                    key: key.clone(),
                    reason: reason.to_owned(),
                }));
        }
        let etag = match etag_of(self.b, o).await {
            Ok(e) => e,
            Err(e) => return refuse(&format!("backend: {e}")),
        };
        let found = ImportedObject {
            key: ledger_key.clone(),
            backend: self.b.name.clone(),
            bucket: Some(self.opts.bucket.clone()),
            size,
            etag,
            created_at: Timestamp::from_system_time(o.last_modified.into()),
        };
        match self.store.import_object(&found).await {
            Ok(ImportOutcome::Imported) => {}
            Ok(ImportOutcome::AlreadyImported) => {
                self.counts.already_imported += 1;
                return Ok(None);
            }
            Ok(ImportOutcome::KeyExists) => return refuse("key exists"),
            Ok(ImportOutcome::InFlight) => return refuse("in flight"),
            Ok(ImportOutcome::QueuedForCleanup) => return refuse("queued for cleanup"),
            Err(StoreError::NoSpaceAvailable) => return refuse("no room"),
            Err(e) => return Err(self.store_err(e)),
        }
        // Read after the commit: bytes deleted since the listing are not a copy.
        match self.b.store.head(&o.location).await {
            Err(object_store::Error::NotFound { .. }) => {
                self.store
                    .delete_object_location(&ledger_key, &self.b.name)
                    .await
                    .map_err(|e| self.store_err(e))?;
                return refuse("gone");
            }
            Ok(m) if m.size != o.size => {
                tracing::warn!(backend = %self.b.name, key = %key, listed = o.size, now = m.size, "object changed during its import; the scrubber will check it");
            }
            _ => {}
        }
        self.counts.imported += 1;
        self.counts.imported_bytes += o.size;
        Ok(None)
    }

    /// A dry run's verdict from the ledger as it is now; `None` = would be imported.
    async fn preview(
        &mut self,
        key: &str,
        size: i64,
        room: Option<i64>,
    ) -> Result<Option<&'static str>, GatewayError> {
        let copies = match self.store.get_all_object_locations(key).await {
            Ok(c) => c,
            Err(StoreError::ObjectNotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.store_err(e)),
        };
        if copies
            .iter()
            .any(|c| c.backend_name == self.b.name && c.form.storage_path(key) == key)
        {
            self.counts.already_imported += 1;
            return Ok(None);
        }
        if !copies.is_empty() {
            return Ok(Some("key exists"));
        }
        if let Some(left) = room {
            if size > left {
                return Ok(Some("no room"));
            }
            self.room = Some(Some(left - size));
        }
        self.counts.imported += 1;
        self.counts.imported_bytes += size as u64;
        Ok(None)
    }

    fn store_err(&self, e: StoreError) -> GatewayError {
        GatewayError::Worker {
            why: format!("ledger: {e}"),
        }
    }
}

/// The object's S3 ETag (without quotes): the listing's (or a HEAD's) for an S3 backend; for a local
/// directory, whose listing gives no MD5, the MD5 of the file read once.
async fn etag_of(b: &Backend, o: &ObjectMeta) -> Result<String, String> {
    if !matches!(b.raw, RawAccess::Local { .. }) {
        // Some S3 servers leave the ETag out of listings: ask for the object's own.
        let etag = match &o.e_tag {
            Some(e) => Some(e.clone()),
            None => {
                b.store
                    .head(&o.location)
                    .await
                    .map_err(|e| e.to_string())?
                    .e_tag
            }
        };
        return Ok(etag.unwrap_or_default().trim_matches('"').to_owned());
    }
    let got = b.store.get(&o.location).await.map_err(|e| e.to_string())?;
    let mut stream = got.into_stream();
    let mut md5 = Md5::new();
    while let Some(chunk) = stream.next().await {
        md5.update(chunk.map_err(|e| e.to_string())?);
    }
    Ok(hex::encode(md5.finalize()))
}
