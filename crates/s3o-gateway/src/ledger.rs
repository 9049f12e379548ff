//! Every call the gateway makes to the s3o store lives in this module, so the rest of the
//! crate speaks in gateway terms (versions, displaced bytes, listings) and a port to another
//! handle type touches one file.

use std::collections::BTreeMap;

use s3o_store::{
    Bucket, BucketSpec, CreateMultipartUploadParams, DeletedCopy, ObjectAttributes, ObjectChecksum,
    ObjectLocation, PendingObject, StoreError, StoredForm, Timestamp, Versioning,
    WritePrecondition,
};

use crate::LedgerHandle;
use crate::config::RoutingPolicy;

/// Result of a ledger call.
pub(crate) type LResult<T> = Result<T, StoreError>;

/// What the gateway keeps about one version of an object besides where it lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ObjectMeta {
    /// Backend path of the bytes.
    pub(crate) storage_key: String,
    /// Client-visible ETag, without quotes.
    pub(crate) etag: String,
    /// Content-Type; empty when none.
    pub(crate) content_type: String,
    /// `x-amz-meta-*` values by lower-case name (without the prefix).
    pub(crate) user_metadata: BTreeMap<String, String>,
    /// The encryption columns when the bytes are sealed (see [`crate::crypto`]).
    pub(crate) encryption: Option<crate::crypto::gateway::Sealed>,
    /// Stored headers, checksum and part layout (see [`s3o_store::ObjectAttributes`]).
    pub(crate) attributes: ObjectAttributes,
    /// Object tags.
    pub(crate) tags: BTreeMap<String, String>,
    /// The version's id in a versioned bucket (`"null"` for the null version); `None` when
    /// unknown or unversioned. Not stored in the form: the ledger keeps it beside the copies.
    pub(crate) version_id: Option<String>,
}

/// One copy of an object as the gateway reads it.
#[derive(Clone, Debug)]
pub(crate) struct Copy {
    /// Backend holding the copy.
    pub(crate) backend: String,
    /// Object size in bytes.
    pub(crate) size: i64,
    /// When the version was written (Last-Modified).
    pub(crate) last_modified: Timestamp,
    /// Path, ETag, type and user metadata.
    pub(crate) meta: ObjectMeta,
}

/// Bytes taken out of the ledger that must now be deleted from their backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Displaced {
    /// Backend holding the bytes.
    pub(crate) backend: String,
    /// Their path.
    pub(crate) storage_key: String,
    /// Their size.
    pub(crate) size: i64,
    /// The claim on the cleanup row the ledger queued for them in the same transaction (the
    /// store's outbox); `None` for bytes the ledger never recorded.
    pub(crate) claim: Option<s3o_store::CleanupClaim>,
}

/// One listing page, keys relative to the bucket.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Objects (key without the bucket prefix).
    pub(crate) objects: Vec<(String, Copy)>,
    /// Common prefixes (without the bucket prefix).
    pub(crate) common_prefixes: Vec<String>,
    /// More entries follow.
    pub(crate) is_truncated: bool,
    /// Key (without the bucket prefix) to continue after; empty when not truncated.
    pub(crate) next_after: String,
}

fn form_of(meta: &ObjectMeta) -> StoredForm {
    StoredForm {
        storage_key: meta.storage_key.clone(),
        etag: meta.etag.clone(),
        content_type: meta.content_type.clone(),
        user_metadata: meta.user_metadata.clone(),
        attributes: meta.attributes.clone(),
        tags: meta.tags.clone(),
        ..crate::crypto::gateway::form_columns(meta.encryption.as_ref())
    }
}

fn meta_of(form: &StoredForm) -> ObjectMeta {
    ObjectMeta {
        storage_key: form.storage_key.clone(),
        etag: form.etag.clone(),
        content_type: form.content_type.clone(),
        user_metadata: form.user_metadata.clone(),
        encryption: crate::crypto::gateway::sealed_of(form),
        attributes: form.attributes.clone(),
        tags: form.tags.clone(),
        version_id: None,
    }
}

fn copy_of(loc: &ObjectLocation) -> Copy {
    Copy {
        backend: loc.backend_name.clone(),
        size: loc.size_bytes,
        last_modified: loc.created_at,
        meta: meta_of(&loc.form),
    }
}

/// The gateway's view of the store.
pub(crate) struct Ledger {
    store: LedgerHandle,
    routing: RoutingPolicy,
}

impl Ledger {
    /// The store handle (the encryption module's own calls, in `crypto/`).
    pub(crate) fn store(&self) -> &LedgerHandle {
        &self.store
    }

    pub(crate) fn new(store: LedgerHandle, routing: RoutingPolicy) -> Self {
        Ledger { store, routing }
    }

    /// Applies migrations, then writes the configured quotas. Returns the backends the
    /// ledger knows that the configuration no longer lists (reported, never dropped).
    pub(crate) async fn prepare(&self, limits: &[(String, i64)]) -> LResult<Vec<String>> {
        self.store.run_migrations().await?;
        self.store.sync_quota_limits(limits).await?;
        let stats = self.store.get_quota_stats().await?;
        Ok(stats
            .into_keys()
            .filter(|n| !limits.iter().any(|(c, _)| c == n))
            .collect())
    }

    /// `candidates` without the backends being drained (the ledger's draining flags, set by a
    /// drain of any gateway process on this ledger for as long as it runs): the drain's write
    /// fence. None left ⇒ `NoSpaceAvailable`, as when nothing has room.
    async fn fenced(&self, candidates: &[String]) -> LResult<Vec<String>> {
        let draining = self.store.draining_backends().await?;
        let open: Vec<String> = candidates
            .iter()
            .filter(|c| !draining.contains(c))
            .cloned()
            .collect();
        if open.is_empty() {
            return Err(StoreError::NoSpaceAvailable);
        }
        Ok(open)
    }

    /// A backend with room for `size` bytes among `candidates` (routing order), per policy,
    /// never one being drained.
    pub(crate) async fn pick_backend(&self, size: i64, candidates: &[String]) -> LResult<String> {
        let candidates = self.fenced(candidates).await?;
        match self.routing {
            RoutingPolicy::Pack => self.store.get_backend_with_space(size, &candidates).await,
            RoutingPolicy::Spread => {
                self.store
                    .get_least_utilized_backend(size, &candidates)
                    .await
            }
        }
    }

    /// Where a new multipart upload's parts go. The final size is unknown, so the least
    /// utilised backend (the one most likely to hold the whole object) is chosen whatever the
    /// routing policy, never one being drained; each part is then admitted against it.
    pub(crate) async fn pick_backend_for_new_upload(
        &self,
        candidates: &[String],
    ) -> LResult<String> {
        let candidates = self.fenced(candidates).await?;
        self.store.get_least_utilized_backend(0, &candidates).await
    }

    /// Whether `backend` would admit a part of `size` bytes now: a read, not a reservation, so
    /// a part that cannot fit is refused before its body is streamed. The guard that counts is
    /// the charge [`Ledger::record_part`] takes in the ledger, exact across every gateway
    /// process on one ledger (parts are charged to `bytes_used` when recorded).
    pub(crate) async fn part_fits(&self, size: i64, backend: &str) -> LResult<()> {
        let caps = self.store.backend_capacities(&[backend.to_owned()]).await?;
        match caps.first() {
            Some(c) if c.admits(size) => Ok(()),
            Some(_) => Err(StoreError::NoSpaceAvailable),
            None => Err(StoreError::UnknownBackend {
                backend: backend.to_owned(),
            }),
        }
    }

    /// Where a completed multipart upload goes: its own backend when that admits the whole
    /// object and is not being drained, else the routing policy's choice among `candidates`
    /// (never a backend being drained: the parts are read from the drained backend and the
    /// object is written elsewhere). The assembled object is a new write beside the parts,
    /// which stay charged (and on the backend) until the upload is released after the commit,
    /// so the backend must admit all of it on top of them (subtracting the parts would pick a
    /// backend the commit guard then refuses).
    pub(crate) async fn pick_backend_for_upload(
        &self,
        size: i64,
        upload_backend: &str,
        candidates: &[String],
    ) -> LResult<String> {
        let open = self.fenced(candidates).await?;
        if open.iter().any(|c| c == upload_backend) {
            let caps = self
                .store
                .backend_capacities(&[upload_backend.to_owned()])
                .await?;
            if caps.iter().any(|c| c.admits(size)) {
                return Ok(upload_backend.to_owned());
            }
        }
        self.pick_backend(size, &open).await
    }

    /// Records the intent of a write before its bytes go out; returns the intent id.
    pub(crate) async fn begin_write(
        &self,
        key: &str,
        backend: &str,
        size: i64,
        meta: &ObjectMeta,
    ) -> LResult<String> {
        let intent_id = uuid::Uuid::new_v4().to_string();
        self.store
            .insert_pending(&PendingObject {
                intent_id: intent_id.clone(),
                object_key: key.to_owned(),
                backend_name: backend.to_owned(),
                size_bytes: size,
                form: form_of(meta),
                created_at: Timestamp::ZERO,
            })
            .await?;
        Ok(intent_id)
    }

    /// Records the backend multipart upload a write opened with its intent (`false`: intent
    /// gone).
    pub(crate) async fn record_backend_upload(
        &self,
        intent_id: &str,
        upload_id: &str,
    ) -> LResult<bool> {
        self.store
            .set_pending_backend_upload(intent_id, upload_id)
            .await
    }

    /// Heartbeat of writes still streaming (see [`s3o_store::MetadataStore::touch_pending`]).
    pub(crate) async fn touch_intents(&self, intent_ids: &[String]) -> LResult<i64> {
        self.store.touch_pending(intent_ids).await
    }

    /// Abandons a write that will not be committed: drops its intent and queues its bytes
    /// (claimed by this instance) in one transaction. Returns those bytes for deletion; empty
    /// when the intent was already resolved.
    pub(crate) async fn abandon_write(
        &self,
        intent_id: &str,
        key: &str,
        backend: &str,
    ) -> LResult<Vec<Displaced>> {
        let p = PendingObject {
            intent_id: intent_id.to_owned(),
            object_key: key.to_owned(),
            backend_name: backend.to_owned(),
            size_bytes: 0,
            form: StoredForm::default(),
            created_at: Timestamp::ZERO,
        };
        let (_, queued) = self.store.abandon_pending(&p).await?;
        Ok(displaced(queued))
    }

    /// Commits a write whose bytes are on `backend` into `bucket`: checks `cond` under the key
    /// lock, checks the bucket still exists under its row lock (a deletion cannot race it),
    /// records the copy and clears the intent in one transaction. Returns the bytes the new
    /// version displaced and, in a versioned bucket, the new version's id. An unmet condition (`PreconditionFailed`/`ObjectNotFound`) or a
    /// deleted bucket (`BucketNotFound`) changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_write(
        &self,
        bucket: &str,
        key: &str,
        backend: &str,
        size: i64,
        meta: &ObjectMeta,
        intent_id: &str,
        cond: &WritePrecondition,
    ) -> LResult<(Vec<Displaced>, Option<String>)> {
        // Follows the bucket's versioning state, read under its row lock (DESIGN decision 25).
        let committed = self
            .store
            .commit_object_in_bucket(
                bucket,
                key,
                backend,
                size,
                &form_of(meta),
                Some(intent_id),
                cond,
            )
            .await?;
        Ok((displaced(committed.displaced), committed.version_id))
    }

    /// Seeds and refreshes the configuration's buckets (never deletes one); returns the names
    /// created.
    pub(crate) async fn sync_buckets(&self, specs: &[BucketSpec]) -> LResult<Vec<String>> {
        self.store.sync_buckets(specs).await
    }

    /// The bucket `name`; unknown ⇒ `BucketNotFound`.
    pub(crate) async fn bucket(&self, name: &str) -> LResult<Bucket> {
        self.store.get_bucket(name).await
    }

    /// Every bucket, by name in byte order.
    pub(crate) async fn buckets(&self) -> LResult<Vec<Bucket>> {
        self.store.list_buckets().await
    }

    /// Creates a bucket: `false` when the name already exists (nothing changes).
    pub(crate) async fn create_bucket(&self, spec: &BucketSpec) -> LResult<bool> {
        self.store.create_bucket(spec).await
    }

    /// Replaces the bucket's lifecycle rules (empty = none); unknown ⇒ `BucketNotFound`.
    pub(crate) async fn set_lifecycle(
        &self,
        name: &str,
        rules: &[s3o_store::LifecycleRule],
    ) -> LResult<()> {
        self.store.set_bucket_lifecycle(name, rules).await
    }

    /// Deletes a bucket that holds nothing (`BucketNotEmpty` otherwise).
    pub(crate) async fn delete_bucket(&self, name: &str) -> LResult<()> {
        self.store.delete_bucket(name).await
    }

    /// Sets (`Some`) or removes (`None`) one field of the bucket's `extra` settings (ACL,
    /// tags), leaving the others alone; unknown ⇒ `BucketNotFound`.
    pub(crate) async fn set_bucket_extra(
        &self,
        name: &str,
        field: &str,
        value: Option<&serde_json::Value>,
    ) -> LResult<()> {
        self.store.set_bucket_extra(name, field, value).await
    }

    /// The bucket's CORS configuration (`None` when unset); unknown ⇒ `BucketNotFound`.
    pub(crate) async fn bucket_cors(&self, name: &str) -> LResult<Option<s3o_store::CorsConfig>> {
        self.store.get_bucket_cors(name).await
    }

    /// Sets (`Some`) or removes (`None`) the bucket's CORS configuration.
    pub(crate) async fn set_bucket_cors(
        &self,
        name: &str,
        cors: Option<&s3o_store::CorsConfig>,
    ) -> LResult<()> {
        match cors {
            Some(c) => self.store.put_bucket_cors(name, c).await,
            None => self.store.delete_bucket_cors(name).await,
        }
    }

    /// Every copy of `key`, oldest first; none ⇒ empty.
    pub(crate) async fn copies_or_empty(&self, key: &str) -> LResult<Vec<Copy>> {
        match self.copies(key).await {
            Err(StoreError::ObjectNotFound { .. }) => Ok(Vec::new()),
            r => r,
        }
    }

    /// Every copy of `key`, oldest first. None ⇒ `ObjectNotFound`.
    pub(crate) async fn copies(&self, key: &str) -> LResult<Vec<Copy>> {
        let locs = self.store.get_all_object_locations(key).await?;
        Ok(locs.iter().map(copy_of).collect())
    }

    /// Removes `key` from the ledger; returns its bytes for deletion. Absent ⇒ empty.
    pub(crate) async fn delete(&self, key: &str) -> LResult<Vec<Displaced>> {
        match self.store.delete_object(key).await {
            Ok(deleted) => Ok(displaced(deleted)),
            Err(StoreError::ObjectNotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Removes many keys in one transaction; returns the bytes to delete per key that existed
    /// (absent keys are simply not in the map).
    pub(crate) async fn delete_many(
        &self,
        keys: &[String],
    ) -> LResult<BTreeMap<String, Vec<Displaced>>> {
        let deleted = self.store.delete_objects_batch(keys).await?;
        Ok(deleted
            .into_iter()
            .map(|(k, d)| (k, displaced(d)))
            .collect())
    }

    /// Completes the cleanup row of bytes that were just deleted.
    pub(crate) async fn complete_cleanup(&self, claim: &s3o_store::CleanupClaim) -> LResult<()> {
        self.store.complete_cleanup_item(claim).await.map(|_| ())
    }

    /// Charges bytes the ledger never recorded to their backend's orphan bytes and queues
    /// their deletion, in one transaction. The row is born claimed by this instance (its delete
    /// was just tried and failed), so the cleanup worker retries it after its grace period.
    pub(crate) async fn orphan(&self, d: &Displaced, reason: &str) -> LResult<()> {
        let entry = s3o_store::CleanupEntry {
            backend_name: d.backend.clone(),
            object_key: d.storage_key.clone(),
            storage_key: d.storage_key.clone(),
            reason: reason.to_owned(),
            size_bytes: d.size,
        };
        self.store.enqueue_orphaned_bytes(&entry).await.map(|_| ())
    }

    /// One listing page of `bucket_prefix` + `prefix`, after `start_after` (bucket-relative).
    pub(crate) async fn list(
        &self,
        bucket_prefix: &str,
        prefix: &str,
        delimiter: &str,
        start_after: &str,
        max_keys: i64,
    ) -> LResult<Listing> {
        let full_prefix = format!("{bucket_prefix}{prefix}");
        let after = if start_after.is_empty() {
            // Everything of the bucket sorts after the bare prefix.
            String::new()
        } else {
            format!("{bucket_prefix}{start_after}")
        };
        let strip = |k: &str| k.strip_prefix(bucket_prefix).unwrap_or(k).to_owned();
        if delimiter.is_empty() {
            let page = self
                .store
                .list_objects(&full_prefix, &after, max_keys)
                .await?;
            Ok(Listing {
                objects: page
                    .objects
                    .iter()
                    .map(|l| (strip(&l.object_key), copy_of(l)))
                    .collect(),
                common_prefixes: Vec::new(),
                is_truncated: page.is_truncated,
                next_after: strip(&page.next_continuation_token),
            })
        } else {
            let page = self
                .store
                .list_objects_delimited(&full_prefix, delimiter, &after, max_keys)
                .await?;
            Ok(Listing {
                objects: page
                    .objects
                    .iter()
                    .map(|l| (strip(&l.object_key), copy_of(l)))
                    .collect(),
                common_prefixes: page.common_prefixes.iter().map(|p| strip(p)).collect(),
                is_truncated: page.is_truncated,
                next_after: if page.is_truncated {
                    strip(&page.next_continuation_token)
                } else {
                    String::new()
                },
            })
        }
    }

    /// Registers a multipart upload on `backend`; `meta` holds what the completed object gets
    /// (type, user metadata, stored headers, checksum algorithm and type, tags).
    pub(crate) async fn create_upload(
        &self,
        upload_id: &str,
        key: &str,
        backend: &str,
        meta: &ObjectMeta,
    ) -> LResult<()> {
        self.store
            .create_multipart_upload(&CreateMultipartUploadParams {
                upload_id: upload_id.to_owned(),
                object_key: key.to_owned(),
                backend_name: backend.to_owned(),
                content_type: meta.content_type.clone(),
                metadata: meta.user_metadata.clone(),
                attributes: meta.attributes.clone(),
                tags: meta.tags.clone(),
                ..CreateMultipartUploadParams::default()
            })
            .await
    }

    /// The upload's key, backend, type and metadata. Unknown ⇒ `MultipartUploadNotFound`.
    pub(crate) async fn upload(&self, upload_id: &str) -> LResult<s3o_store::MultipartUpload> {
        self.store.get_multipart_upload(upload_id).await
    }

    /// Records (or replaces) a part whose bytes are at `storage_key`, with its verified
    /// checksum (`None`: none), and charges it to the upload's backend in the same ledger
    /// transaction (no room ⇒ `NoSpaceAvailable`, nothing recorded). Returns the bytes of the
    /// part it replaced, queued for cleanup.
    pub(crate) async fn record_part(
        &self,
        upload_id: &str,
        part_number: i32,
        etag: &str,
        size: i64,
        storage_key: &str,
        checksum: Option<ObjectChecksum>,
    ) -> LResult<Vec<Displaced>> {
        let form = StoredForm {
            storage_key: storage_key.to_owned(),
            attributes: ObjectAttributes {
                checksum,
                ..ObjectAttributes::default()
            },
            ..StoredForm::default()
        };
        self.store
            .record_part(upload_id, part_number, etag, size, &form)
            .await
            .map(displaced)
    }

    /// The upload's parts by number.
    pub(crate) async fn parts(&self, upload_id: &str) -> LResult<Vec<s3o_store::MultipartPart>> {
        self.store.get_parts(upload_id).await
    }

    /// Ends an upload: its row and parts go, and their bytes leave the backend's charge for
    /// the cleanup queue, in one ledger transaction. Returns those bytes (claimed by this
    /// process: delete them now). Missing ⇒ nothing.
    pub(crate) async fn release_upload(
        &self,
        upload_id: &str,
        reason: &str,
    ) -> LResult<Vec<Displaced>> {
        self.store
            .release_multipart_upload(upload_id, reason)
            .await
            .map(displaced)
    }

    /// Uploads whose ledger key starts with `prefix`, at most `max`.
    pub(crate) async fn uploads(
        &self,
        prefix: &str,
        max: i64,
    ) -> LResult<Vec<s3o_store::MultipartUpload>> {
        self.store.list_multipart_uploads(prefix, max).await
    }

    /// Every backend's counters, for `/metrics`.
    pub(crate) async fn quota_stats(&self) -> LResult<BTreeMap<String, s3o_store::QuotaStat>> {
        self.store.get_quota_stats().await
    }

    /// Cleanup queue and DLQ depths, for `/metrics`.
    pub(crate) async fn cleanup_depths(&self) -> LResult<(i64, i64)> {
        Ok((
            self.store.cleanup_queue_depth().await?,
            self.store.cleanup_dlq_depth().await?,
        ))
    }
}

/// The bytes a ledger call took out, each with the claim on the cleanup row the same
/// transaction queued for it.
pub(crate) fn displaced(deleted: Vec<DeletedCopy>) -> Vec<Displaced> {
    deleted
        .into_iter()
        .map(|d| Displaced {
            backend: d.backend_name,
            storage_key: d.storage_key,
            size: d.size_bytes,
            claim: Some(d.cleanup),
        })
        .collect()
}

/// The version of a key a read found (DESIGN decision 25).
#[derive(Debug)]
pub(crate) enum Version {
    /// A delete marker: the key reads as absent (S3 `x-amz-delete-marker: true`).
    Marker {
        /// The marker's version id.
        version_id: String,
    },
    /// An object version with its copies (oldest first) and its id (`"null"` for the null
    /// version).
    Object {
        /// The version's id.
        version_id: String,
        /// Its copies.
        copies: Vec<Copy>,
    },
}

impl Version {
    fn of(v: s3o_store::ObjectVersion) -> Version {
        if v.delete_marker {
            Version::Marker {
                version_id: v.version_id,
            }
        } else {
            Version::Object {
                copies: v.copies.iter().map(copy_of).collect(),
                version_id: v.version_id,
            }
        }
    }
}

/// What a DeleteObject did (DESIGN decision 25).
#[derive(Debug, Default)]
pub(crate) struct Deleted {
    /// Bytes that left the ledger, to delete now.
    pub(crate) displaced: Vec<Displaced>,
    /// The version deleted or the marker written; `None` in an unversioned bucket.
    pub(crate) version_id: Option<String>,
    /// A marker was written, or the version deleted was one.
    pub(crate) delete_marker: bool,
}

/// # Versions
impl Ledger {
    /// The bucket's versioning state; unknown ⇒ `BucketNotFound`.
    pub(crate) async fn versioning(&self, bucket: &str) -> LResult<Versioning> {
        self.store.get_bucket_versioning(bucket).await
    }

    /// Sets the bucket's versioning state (`Unversioned` ⇒ `InvalidInput`).
    pub(crate) async fn set_versioning(&self, bucket: &str, state: Versioning) -> LResult<()> {
        self.store.set_bucket_versioning(bucket, state).await
    }

    /// The newest version of `key`: its current version, or the marker hiding it. Absent ⇒
    /// `ObjectNotFound`.
    pub(crate) async fn latest(&self, key: &str) -> LResult<Version> {
        match self.store.get_latest_version(key).await? {
            Some(v) => Ok(Version::of(v)),
            None => Err(StoreError::ObjectNotFound {
                key: key.to_owned(),
            }),
        }
    }

    /// Version `version_id` of `key`; none ⇒ `VersionNotFound`.
    pub(crate) async fn version(&self, key: &str, version_id: &str) -> LResult<Version> {
        self.store
            .get_object_version(key, version_id)
            .await
            .map(Version::of)
    }

    /// [`Self::commit_write`] of a version whose id was announced to the client before the
    /// commit (`None`: no version, the bucket was unversioned); a bucket whose versioning
    /// state changed meanwhile refuses it with `VersioningChanged` and nothing changes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_announced(
        &self,
        bucket: &str,
        key: &str,
        backend: &str,
        size: i64,
        meta: &ObjectMeta,
        intent_id: &str,
        cond: &WritePrecondition,
        version_id: Option<&str>,
    ) -> LResult<(Vec<Displaced>, Option<String>)> {
        let committed = self
            .store
            .commit_announced_version(
                bucket,
                key,
                backend,
                size,
                &form_of(meta),
                Some(intent_id),
                cond,
                version_id,
            )
            .await?;
        Ok((displaced(committed.displaced), committed.version_id))
    }

    /// Replaces the tags of one version of `key` (the current one when `version_id` is
    /// `None`; empty: removes them) and returns its id. No object ⇒ `ObjectNotFound`; no such
    /// data version ⇒ `VersionNotFound`.
    pub(crate) async fn set_version_tags(
        &self,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> LResult<String> {
        self.store.set_version_tags(key, version_id, tags).await
    }

    /// S3 DeleteObject in `bucket` (see [`s3o_store::MetadataStore::delete_object_in_bucket`]).
    pub(crate) async fn delete_in_bucket(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> LResult<Deleted> {
        let out = self
            .store
            .delete_object_in_bucket(bucket, key, version_id)
            .await?;
        Ok(Deleted {
            displaced: displaced(out.removed),
            version_id: out.version_id,
            delete_marker: out.delete_marker,
        })
    }

    /// One page of ListObjectVersions over ledger keys (see
    /// [`s3o_store::MetadataStore::list_object_versions`]).
    pub(crate) async fn list_versions(
        &self,
        prefix: &str,
        delimiter: &str,
        key_marker: &str,
        version_id_marker: &str,
        max_keys: i64,
    ) -> LResult<s3o_store::VersionListing> {
        self.store
            .list_object_versions(prefix, delimiter, key_marker, version_id_marker, max_keys)
            .await
    }
}
