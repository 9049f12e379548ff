//! Domain types shared by every engine.
//!
//! Empty strings, empty byte vectors and zero sizes in the optional stored-form fields mean
//! "absent": engines store them as SQL `NULL` and read `NULL` back as the empty value, so a
//! round trip through either engine returns exactly what was written.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, as whole microseconds since the Unix epoch (UTC).
///
/// Microseconds are the precision PostgreSQL's `timestamptz` keeps; SQLite stores the same
/// integer, so ordering by time is exact and identical on both engines. `Timestamp::ZERO`
/// stands for "no time" where the reference used Go's zero `time.Time`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The zero timestamp: "unknown / not set". Never produced by a database read of a real row.
    pub const ZERO: Timestamp = Timestamp(0);

    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Builds a timestamp from microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// True for [`Timestamp::ZERO`].
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Converts from `SystemTime`, truncating to microseconds (saturating far outside ±292k years).
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }

    /// Converts to `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(self.0.unsigned_abs())
        }
    }

    /// This timestamp moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// This timestamp moved back by `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.0.div_euclid(1_000_000),
            self.0.rem_euclid(1_000_000)
        )
    }
}

/// A default instance id for a store: `hostname-pid-random`, unique per process start, so two
/// processes (or two restarts of one) never share cleanup claims.
pub fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    // RandomState is seeded randomly per process: enough entropy to tell restarts apart.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{host}-{}-{:08x}", std::process::id(), h.finish() as u32)
}

/// How the bytes of one copy are stored on its backend: where they live (storage key),
/// encryption envelope, plaintext size, content hash, the client-visible S3 attributes (ETag,
/// content type, user metadata) and whether the copy is managed.
///
/// The zero value (`StoredForm::default()`) is a plaintext, managed copy at the object key's
/// own path with no known hash, ETag, content type or metadata. When `encrypted` is false the
/// encryption fields are ignored and stored as `NULL`. Limits are checked by
/// [`crate::validate::stored_form`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredForm {
    /// The bytes on the backend are an encryption envelope.
    pub encrypted: bool,
    /// Packed `base_nonce ‖ wrapped_dek`; empty when the copy holds no data-encryption key.
    pub encryption_key: Vec<u8>,
    /// Master-key version that wrapped the DEK; empty when absent.
    pub key_id: String,
    /// Size before encryption; 0 when absent.
    pub plaintext_size: i64,
    /// SHA-256 hex of the plaintext; empty when unknown.
    pub content_hash: String,
    /// False for copies outside every virtual-bucket prefix: counted for quota, ignored by
    /// replication, rebalancing, integrity and drains.
    pub managed: bool,
    /// Path of the bytes on the backend; empty means "the object key itself" (rows written
    /// before this column existed, and callers that store each object at its own key).
    pub storage_key: String,
    /// Client-visible ETag; empty when unknown.
    pub etag: String,
    /// `Content-Type` the client sent; empty when none.
    pub content_type: String,
    /// User metadata (`x-amz-meta-*`), stored as one JSON object text; empty map = `NULL`.
    pub user_metadata: BTreeMap<String, String>,
    /// Stored headers, checksum and part layout of the version, stored as one JSON object
    /// text; empty = `NULL`.
    pub attributes: ObjectAttributes,
    /// Object tags (S3 tagging), stored as one JSON object text; empty map = `NULL`. Unlike
    /// the other fields, changed in place by [`crate::ops::set_object_tags`].
    pub tags: BTreeMap<String, String>,
}

impl Default for StoredForm {
    fn default() -> Self {
        StoredForm {
            encrypted: false,
            encryption_key: Vec::new(),
            key_id: String::new(),
            plaintext_size: 0,
            content_hash: String::new(),
            managed: true,
            storage_key: String::new(),
            etag: String::new(),
            content_type: String::new(),
            user_metadata: BTreeMap::new(),
            attributes: ObjectAttributes::default(),
            tags: BTreeMap::new(),
        }
    }
}

impl StoredForm {
    /// The form as it is written: encryption fields cleared unless `encrypted`.
    pub fn normalized(&self) -> StoredForm {
        let mut f = self.clone();
        if !f.encrypted {
            f.encryption_key.clear();
            f.key_id.clear();
            f.plaintext_size = 0;
        }
        f
    }

    /// True when this copy carries a data-encryption key (non-empty packed key).
    pub fn has_dek(&self) -> bool {
        !self.encryption_key.is_empty()
    }

    /// The path the bytes have on the backend: [`StoredForm::storage_key`], or `object_key`
    /// when that is empty.
    pub fn storage_path<'a>(&'a self, object_key: &'a str) -> &'a str {
        if self.storage_key.is_empty() {
            object_key
        } else {
            &self.storage_key
        }
    }

    /// The user metadata as the JSON object text the engines store; `None` for an empty map.
    pub fn user_metadata_json(&self) -> Option<String> {
        user_metadata_to_json(&self.user_metadata)
    }

    /// The tags as the JSON object text the engines store (the user-metadata encoding);
    /// `None` for none.
    pub fn tags_json(&self) -> Option<String> {
        user_metadata_to_json(&self.tags)
    }
}

/// S3 attributes of one object version besides its ETag, content type and user metadata,
/// fixed when the version is written: the headers a GET/HEAD answers with, the checksum
/// verified on upload and, for a multipart object, its part layout. Engines store it as one
/// JSON object text ([`ObjectAttributes::to_json`]); the default (nothing) is `NULL`.
///
/// The same type describes a multipart upload before Complete: headers, and the checksum
/// algorithm and type asked for at creation (with an empty value).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectAttributes {
    /// Stored response headers by lower-case name (`cache-control`, `content-disposition`,
    /// `content-encoding`, `content-language`, `expires`), values verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The checksum verified on upload; `None` when the client sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
    /// The parts of a multipart object, in part-number order (1, 2, ...); empty for an object
    /// written in one piece.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartLayout>,
}

/// A checksum of an object or of a multipart upload (S3 flexible checksums).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectChecksum {
    /// S3 algorithm name: `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// `FULL_OBJECT` (a checksum of every byte) or `COMPOSITE` (a checksum of the parts'
    /// checksums, value suffixed `-<parts>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Base64 value as S3 answers it; empty for an upload not completed yet.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// One part of a multipart object.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartLayout {
    /// Bytes of the part.
    pub size: i64,
    /// The part's checksum (base64, in the object's algorithm); empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
}

impl ObjectAttributes {
    /// True when there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.checksum.is_none() && self.parts.is_empty()
    }

    /// The JSON object text the engines store; `None` (stored as `NULL`) when empty.
    pub fn to_json(&self) -> Option<String> {
        // Plain strings and integers always serialise; the fallback is unreachable.
        (!self.is_empty()).then(|| serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned()))
    }

    /// Decodes stored attributes; `None` (SQL `NULL`) is the empty value. An error means the
    /// column holds something no writer of this crate produced.
    pub fn from_json(json: Option<&str>) -> std::result::Result<Self, serde_json::Error> {
        match json {
            None => Ok(ObjectAttributes::default()),
            Some(j) => serde_json::from_str(j),
        }
    }
}

/// Encodes user metadata as a JSON object text; `None` (stored as `NULL`) for an empty map.
pub fn user_metadata_to_json(m: &BTreeMap<String, String>) -> Option<String> {
    // A map of strings always serialises; the fallback is unreachable but never panics.
    (!m.is_empty()).then(|| serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned()))
}

/// Decodes stored user metadata; `None` (SQL `NULL`) is the empty map. An error means the
/// column holds something no writer of this crate produced.
pub fn user_metadata_from_json(
    json: Option<&str>,
) -> std::result::Result<BTreeMap<String, String>, serde_json::Error> {
    match json {
        None => Ok(BTreeMap::new()),
        Some(j) => serde_json::from_str(j),
    }
}

/// One copy of an object on one backend: a row of `object_locations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectLocation {
    /// The object's key.
    pub object_key: String,
    /// The backend holding this copy.
    pub backend_name: String,
    /// Bytes occupied on the backend (ciphertext size when encrypted).
    pub size_bytes: i64,
    /// When the copy was recorded; also the object's Last-Modified.
    pub created_at: Timestamp,
    /// How the bytes are stored. Rows from "slim" listing queries carry the default form.
    pub form: StoredForm,
    /// When an integrity scrub last verified this copy; `None` if never. Ignored on insert: a
    /// new copy (moved, replicated or written) starts unverified.
    pub last_scrubbed_at: Option<Timestamp>,
}

/// Projection of a row-locked read of one copy, used inside transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingCopy {
    /// Backend holding the copy.
    pub backend_name: String,
    /// Size read from the locked row.
    pub size_bytes: i64,
    /// When the copy was recorded.
    pub created_at: Timestamp,
    /// The copy is encrypted.
    pub encrypted: bool,
    /// The copy's encryption key column is non-NULL and non-empty.
    pub has_dek: bool,
    /// Path of the bytes on the backend; empty means the object key.
    pub storage_key: String,
    /// The version's client-visible ETag; empty when none was recorded. Read under the lock so
    /// write preconditions are decided in the commit.
    pub etag: String,
}

/// Preconditions a write must meet when it commits (S3's conditional writes), checked by the
/// store under the key lock in the commit transaction, so concurrent writers of one key
/// cannot both pass: the first committer wins. ETags are compared without quotes; `"*"`
/// matches any version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WritePrecondition {
    /// `If-Match`: a current version must exist and (unless `"*"`) carry this ETag. No version
    /// ⇒ `ObjectNotFound`; another ETag ⇒ `PreconditionFailed`.
    pub if_match: Option<String>,
    /// `If-None-Match`: `"*"` ⇒ no version may exist; an ETag ⇒ the current version must not
    /// carry it. Otherwise `PreconditionFailed`.
    pub if_none_match: Option<String>,
}

impl WritePrecondition {
    /// True when no condition is set.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Decides the precondition against the current version's ETag (`None`: no version).
    /// `key` names the object in the error.
    pub fn check(&self, key: &str, current: Option<&str>) -> crate::error::Result<()> {
        use crate::error::StoreError;
        let hit = |want: &str, etag: &str| want == "*" || (!etag.is_empty() && want == etag);
        if let Some(want) = &self.if_match {
            match current {
                None => {
                    return Err(StoreError::ObjectNotFound {
                        key: key.to_owned(),
                    });
                }
                Some(etag) if !hit(want, etag) => {
                    return Err(StoreError::PreconditionFailed {
                        key: key.to_owned(),
                    });
                }
                Some(_) => {}
            }
        }
        if let Some(want) = &self.if_none_match
            && let Some(etag) = current
            && hit(want, etag)
        {
            return Err(StoreError::PreconditionFailed {
                key: key.to_owned(),
            });
        }
        Ok(())
    }
}

/// A copy found by a multi-key locked read (batch delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedExistingCopy {
    /// The object's key.
    pub object_key: String,
    /// Backend holding the copy.
    pub backend_name: String,
    /// Size read from the locked row.
    pub size_bytes: i64,
    /// Path of the bytes on the backend; empty means the object key.
    pub storage_key: String,
}

/// Proof of a claim on one cleanup-queue row: the row id plus the claimant and claim time the
/// row carried when it was claimed (or born claimed). Completion and retry succeed only while
/// the row still carries exactly this claim; a claimant whose claim went stale and was taken
/// over gets [`CleanupOutcome::StaleClaim`] and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CleanupClaim {
    /// Queue row id.
    pub id: i64,
    /// Instance id of the claimant.
    pub claimed_by: String,
    /// When the claim was stamped (the engine's clock).
    pub claimed_at: Timestamp,
}

/// What a claimed completion or retry of a cleanup row did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CleanupOutcome {
    /// The row was deleted and its bytes released from `orphan_bytes`.
    Completed,
    /// The row was rescheduled with one more attempt and its claim cleared.
    Retried,
    /// The retry reached [`MAX_ATTEMPTS`]: the row moved to the dead-letter table in the same
    /// transaction (its bytes stay counted in `orphan_bytes`).
    DeadLettered,
    /// The row is gone or carries another claim (this claimant's claim went stale and another
    /// worker took it over, or completed it): nothing changed.
    StaleClaim,
}

/// A copy taken out of the ledger while its bytes stay on a backend. The same transaction
/// enqueued a cleanup row for those bytes and charged them to the backend's `orphan_bytes`
/// (the outbox); the row was born claimed by the calling store's instance id, so the caller
/// may delete the bytes at once and then [`crate::MetadataStore::complete_cleanup_item`] with
/// [`DeletedCopy::cleanup`]. If the caller dies first, a cleanup worker picks the row up once
/// the claim is older than its grace cutoff.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeletedCopy {
    /// Backend that still holds the bytes.
    pub backend_name: String,
    /// Bytes the backend holds for it.
    pub size_bytes: i64,
    /// The physical path to delete on the backend (the object key when it had no storage key).
    pub storage_key: String,
    /// The claim on the cleanup row enqueued for these bytes.
    pub cleanup: CleanupClaim,
}

/// What a move of one copy between backends did (see
/// [`crate::MetadataStore::move_object_location`]). Every variant but [`MoveOutcome::Moved`]
/// means nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The copy now lives on the target backend, with every stored-form column and its
    /// `created_at`.
    Moved {
        /// The copy's size: the bytes moved (0 for an empty object).
        bytes: i64,
        /// The source's bytes, taken out of the ledger and enqueued for cleanup with a claim
        /// held by this store: delete them, then complete [`DeletedCopy::cleanup`].
        source: DeletedCopy,
    },
    /// The source backend holds no copy of the key (deleted, or moved already).
    SourceGone,
    /// The source copy is no longer at the expected path: the key was overwritten since the
    /// caller read it.
    VersionChanged {
        /// The path the source copy has now ([`StoredForm::storage_path`]).
        current_storage_key: String,
    },
    /// The target backend already holds a copy of the key.
    TargetHasCopy,
}

/// An object already on a backend, to be brought under management by
/// [`crate::MetadataStore::import_object`]. Its bytes stay where they are: the copy is recorded
/// at its own key (`storage_key` = the object key), plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedObject {
    /// The ledger key the object gets; also its path on the backend.
    pub key: String,
    /// The backend holding the bytes.
    pub backend: String,
    /// The bucket the key belongs to: when set, its row is locked as a write locks it (a
    /// bucket being deleted cannot gain a key) and a missing bucket is `BucketNotFound`.
    pub bucket: Option<String>,
    /// Bytes on the backend, charged to its quota.
    pub size: i64,
    /// Client-visible ETag (without quotes); empty when unknown.
    pub etag: String,
    /// When the backend says the object was last modified; zero means now.
    pub created_at: Timestamp,
}

impl ImportedObject {
    /// An import of `size` bytes at `key` on `backend`, with no bucket check, no ETag and the
    /// import time as its `created_at`.
    pub fn new(key: &str, backend: &str, size: i64) -> ImportedObject {
        ImportedObject {
            key: key.to_owned(),
            backend: backend.to_owned(),
            bucket: None,
            size,
            etag: String::new(),
            created_at: Timestamp::ZERO,
        }
    }
}

/// What importing one object did (see [`crate::MetadataStore::import_object`]). Every variant
/// but [`ImportOutcome::Imported`] means nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The copy is recorded and its size charged to the backend.
    Imported,
    /// The backend already holds the key's copy at its own key: imported before.
    AlreadyImported,
    /// The key has copies or versions the ledger knows (written through the gateway, or
    /// imported from another backend): the ledger wins; the backend object is left alone.
    KeyExists,
    /// A write of the key is in flight (a write intent names it); try again later.
    InFlight,
    /// Bytes of the key on this backend are queued for deletion (cleanup queue or DLQ): the
    /// object on the backend may be one the ledger has let go of; try again once it is cleaned.
    QueuedForCleanup,
}

/// What recording a replica did (see [`crate::MetadataStore::record_replica`]). Every variant
/// but [`ReplicaOutcome::Recorded`] means nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaOutcome {
    /// The target now holds a copy, charged to its quota.
    Recorded {
        /// The copy's size, read from the source row (0 for an empty object).
        bytes: i64,
    },
    /// The source backend holds no copy of the key.
    SourceGone,
    /// The source copy is no longer at the expected path: the key was overwritten since the
    /// caller read it (the bytes copied are of an older version).
    VersionChanged {
        /// The path the source copy has now ([`StoredForm::storage_path`]).
        current_storage_key: String,
    },
    /// The target backend already holds a copy of the key.
    TargetHasCopy,
}

/// What removing a copy found bad did (see [`crate::MetadataStore::remove_bad_copy`]). Every
/// variant but [`BadCopyRemoval::Removed`] means nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadCopyRemoval {
    /// The row is gone; its bytes are queued, the claim held by this store.
    Removed(DeletedCopy),
    /// No other backend holds a copy of that version: the row is kept (report it).
    LastCopy,
    /// The copy holds the only data-encryption key of the version while an encrypted sibling
    /// has none: kept, or the sibling could not be read.
    OnlyKeyHolder,
    /// The copy is gone, or is no longer the one checked (another path or `created_at`).
    Changed,
}

/// An in-flight PUT intent, recorded before the backend upload so a failed metadata commit
/// can be resolved later by the pending reaper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingObject {
    /// Unique id minted by the write coordinator (a UUID in practice).
    pub intent_id: String,
    /// Key being written.
    pub object_key: String,
    /// Backend receiving the bytes.
    pub backend_name: String,
    /// Bytes being written.
    pub size_bytes: i64,
    /// Stored form the copy will have once committed; every field is persisted, `managed`
    /// included.
    pub form: StoredForm,
    /// When the intent was recorded. `Timestamp::ZERO` on insert means "now".
    pub created_at: Timestamp,
}

/// How [`crate::ops::promote_pending`] resolved an intent. The integer values are stable
/// (they label metrics) and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PendingPromoteResult {
    /// The intent was promoted into `object_locations` and removed in the same transaction.
    Committed = 0,
    /// Reserved: never produced by the current resolver; returned alongside errors only in the
    /// reference. Kept so the value stays stable.
    Ambiguous = 1,
    /// The intent was already gone: another reaper resolved it. Benign.
    AlreadyResolved = 2,
    /// A write of the same key committed after this intent; the intent was dropped (and its
    /// bytes enqueued for cleanup unless a live copy sits at the same path).
    Superseded = 3,
    /// Terminal: the intent can no longer be admitted (its backend has no room for it under the
    /// admission rule). The intent was deleted and its uploaded bytes enqueued for cleanup in
    /// the same transaction, so no reaper retries it forever.
    Abandoned = 4,
}

impl PendingPromoteResult {
    /// The stable integer value (metric label).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Attempts after which a cleanup-queue or outbox row is no longer due: the retry that reaches
/// it moves the cleanup row to the dead-letter table in the same transaction; the
/// notification outbox counts such a row as dropped.
pub const MAX_ATTEMPTS: i32 = 10;

/// A row of the cleanup queue as the worker and the admin display see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupItem {
    /// Queue row id.
    pub id: i64,
    /// Backend holding the orphaned bytes.
    pub backend_name: String,
    /// Key of the orphaned bytes.
    pub object_key: String,
    /// The physical path to delete (the object key when the row has no storage key).
    pub storage_key: String,
    /// Why the cleanup was enqueued.
    pub reason: String,
    /// Failed attempts so far.
    pub attempts: i32,
    /// Bytes to reclaim; counted in the backend's `orphan_bytes`.
    pub size_bytes: i64,
    /// When a worker last claimed the row; `None` if never (or the claim was cleared by retry).
    pub claimed_at: Option<Timestamp>,
    /// Instance id of the worker holding the claim.
    pub claimed_by: Option<String>,
    /// Set only by `claim_pending_cleanups`: this claim recovered a row whose previous claim
    /// aged past the grace cutoff.
    pub reclaimed: bool,
}

impl CleanupItem {
    /// The claim this row carries, to pass to completion or retry; `None` when unclaimed.
    pub fn claim(&self) -> Option<CleanupClaim> {
        Some(CleanupClaim {
            id: self.id,
            claimed_by: self.claimed_by.clone()?,
            claimed_at: self.claimed_at?,
        })
    }
}

/// Queue rows by state, as `s3o status` shows them: every row is in exactly one state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupQueueStates {
    /// Unclaimed rows whose `next_retry` has passed: the next claim takes them.
    pub due: i64,
    /// Rows carrying a claim (a worker or the writing instance is deleting their bytes).
    pub claimed: i64,
    /// Unclaimed rows backing off until `next_retry`.
    pub waiting: i64,
}

/// The full payload of one cleanup-queue row, read inside the move-to-DLQ transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupQueueRow {
    /// Queue row id (becomes the DLQ row's `original_id`).
    pub id: i64,
    /// Backend holding the orphaned bytes.
    pub backend_name: String,
    /// Key of the orphaned bytes.
    pub object_key: String,
    /// Why the cleanup was enqueued.
    pub reason: String,
    /// Bytes to reclaim.
    pub size_bytes: i64,
    /// Failed attempts so far.
    pub attempts: i32,
    /// When the row was first enqueued (becomes `first_enqueued_at`).
    pub created_at: Timestamp,
    /// Last error recorded; empty when none.
    pub last_error: String,
    /// Path of the bytes on the backend as stored; empty means the object key.
    pub storage_key: String,
}

/// A physical delete to enqueue in the outbox, inside the transaction that takes the copy out
/// of the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupEntry {
    /// Backend holding the bytes.
    pub backend_name: String,
    /// The object key the bytes belonged to.
    pub object_key: String,
    /// Path of the bytes on the backend; empty means the object key.
    pub storage_key: String,
    /// Why the bytes became orphaned.
    pub reason: String,
    /// Bytes to reclaim.
    pub size_bytes: i64,
}

/// A row of the cleanup dead-letter table: an orphan the worker gave up on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupDlqItem {
    /// DLQ row id.
    pub id: i64,
    /// The queue row id it came from.
    pub original_id: i64,
    /// Backend holding the orphaned bytes.
    pub backend_name: String,
    /// Key of the orphaned bytes.
    pub object_key: String,
    /// The physical path to delete (the object key when the row has no storage key).
    pub storage_key: String,
    /// Why the cleanup was enqueued originally.
    pub reason: String,
    /// Bytes still occupying the backend (still counted in `orphan_bytes`).
    pub size_bytes: i64,
    /// Attempts made before giving up.
    pub attempts: i32,
    /// When the cleanup was first enqueued.
    pub first_enqueued_at: Timestamp,
    /// When it was moved to the DLQ.
    pub moved_at: Timestamp,
    /// Last error; empty when none.
    pub last_error: String,
}

/// One backend's quota counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaStat {
    /// Backend name.
    pub backend_name: String,
    /// Committed bytes: Σ `size_bytes` of the backend's copies.
    pub bytes_used: i64,
    /// Ceiling; 0 means unlimited.
    pub bytes_limit: i64,
    /// Bytes logically freed but not yet physically deleted.
    pub orphan_bytes: i64,
    /// Last counter update.
    pub updated_at: Timestamp,
}

/// The admission numbers of one backend, as the routing queries read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendCapacity {
    /// Backend name.
    pub backend_name: String,
    /// Ceiling; 0 means unlimited.
    pub bytes_limit: i64,
    /// Committed bytes.
    pub bytes_used: i64,
    /// Bytes awaiting physical deletion.
    pub orphan_bytes: i64,
    /// Σ `size_bytes` of the parts of the backend's open multipart uploads: the share of
    /// `bytes_used` that is parts (charged when recorded, released when the upload ends).
    /// Shown to operators; admission counts it through `bytes_used`.
    pub inflight_bytes: i64,
}

/// The one admission rule, shared by routing and the commit guard: a backend admits `delta`
/// more committed bytes when it is unlimited (`limit = 0`) or when
/// `used + orphan + delta <= limit` (exact, i128).
///
/// Recorded multipart parts count through `used`: each is charged when recorded, by this same
/// rule (the commit guard: SQLite's guarded `UPDATE` of the quota row; PostgreSQL's stripe
/// charge, which falls back to an exact check of this formula under the quota row's lock
/// whenever the stripe's grant cannot take the charge). `inflight_bytes` is already inside
/// `used`: a rule that added it again would refuse backends the guard admits.
///
/// An unlimited backend (`limit == 0`) admits up to `i64::MAX` in all: a charge past it would
/// overflow a counter, and the engines refuse it with `InvalidInput`
/// ([`crate::validate::quota_overflow`]), so routing never picks a backend for it either.
pub fn quota_admits(limit: i64, used: i64, orphan: i64, delta: i64) -> bool {
    let bound = if limit == 0 { i64::MAX } else { limit };
    i128::from(used) + i128::from(orphan) + i128::from(delta) <= i128::from(bound)
}

impl BackendCapacity {
    /// Bytes still admissible under [`quota_admits`] (`limit − used − orphan`); `None` when
    /// unlimited. Exact (i128): never overflows, whatever the counters hold.
    pub fn available(&self) -> Option<i128> {
        (self.bytes_limit != 0).then(|| {
            i128::from(self.bytes_limit)
                - i128::from(self.bytes_used)
                - i128::from(self.orphan_bytes)
        })
    }

    /// Whether `size` more bytes fit, by [`quota_admits`].
    pub fn admits(&self, size: i64) -> bool {
        quota_admits(self.bytes_limit, self.bytes_used, self.orphan_bytes, size)
    }

    /// Utilisation `(used + orphan) / limit` as an exact fraction; unlimited ⇒ `0 / 1`.
    pub fn utilisation(&self) -> (i128, i128) {
        if self.bytes_limit == 0 {
            (0, 1)
        } else {
            (
                i128::from(self.bytes_used) + i128::from(self.orphan_bytes),
                i128::from(self.bytes_limit),
            )
        }
    }
}

/// Monthly usage counters of one backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageStat {
    /// API requests.
    pub api_requests: i64,
    /// Bytes served out of the backend.
    pub egress_bytes: i64,
    /// Bytes written into the backend.
    pub ingress_bytes: i64,
}

/// Monthly usage limits of one backend; 0 means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageLimits {
    /// API request limit.
    pub api_request_limit: i64,
    /// Egress byte limit.
    pub egress_byte_limit: i64,
    /// Ingress byte limit.
    pub ingress_byte_limit: i64,
}

impl UsageLimits {
    /// True when `usage` is within every non-zero limit.
    pub fn admits(&self, usage: &UsageStat) -> bool {
        let within = |limit: i64, used: i64| limit == 0 || used < limit;
        within(self.api_request_limit, usage.api_requests)
            && within(self.egress_byte_limit, usage.egress_bytes)
            && within(self.ingress_byte_limit, usage.ingress_bytes)
    }
}

/// Metadata of an active multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartUpload {
    /// Upload id.
    pub upload_id: String,
    /// Key being assembled.
    pub object_key: String,
    /// Backend receiving the parts (empty in slim listings).
    pub backend_name: String,
    /// Content type; empty when absent.
    pub content_type: String,
    /// User metadata (`x-amz-meta-*`); empty when none.
    pub metadata: BTreeMap<String, String>,
    /// Stored headers and the checksum algorithm/type asked for; the completed object gets
    /// them.
    pub attributes: ObjectAttributes,
    /// Tags the completed object gets; empty when none.
    pub tags: BTreeMap<String, String>,
    /// True when `encryption_key` is non-empty.
    pub encrypted: bool,
    /// Upload-level packed DEK shared by every part; empty for plaintext uploads.
    pub encryption_key: Vec<u8>,
    /// Master-key version; empty when absent.
    pub key_id: String,
    /// When the upload was created.
    pub created_at: Timestamp,
}

/// One uploaded part of an active multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartPart {
    /// Part number, 1..=10000.
    pub part_number: i32,
    /// ETag the backend returned.
    pub etag: String,
    /// Bytes stored for the part.
    pub size_bytes: i64,
    /// When the part was (last) recorded.
    pub created_at: Timestamp,
    /// The part is encrypted.
    pub encrypted: bool,
    /// Packed key; empty unless encrypted.
    pub encryption_key: Vec<u8>,
    /// Master-key version; empty unless encrypted.
    pub key_id: String,
    /// Size before encryption; 0 unless encrypted.
    pub plaintext_size: i64,
    /// Backend path of the part's bytes (the `storage_key` of the form it was recorded with);
    /// empty when none was given.
    pub storage_key: String,
    /// The part's verified checksum (base64; the value of the recorded form's
    /// `attributes.checksum`); empty when none.
    pub checksum: String,
}

/// What a recorded part holds on its upload's backend: the bytes charged to that backend's
/// quota while the upload is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartBytes {
    /// Part number, 1..=10000.
    pub part_number: i32,
    /// Bytes stored for the part (charged to the upload's backend).
    pub size_bytes: i64,
    /// Backend path of its bytes; empty for parts recorded without one (see
    /// [`PartBytes::path`]).
    pub storage_key: String,
}

impl PartBytes {
    /// The backend path of the part's bytes: its storage key, or for a part recorded without
    /// one, the fixed path parts had before each attempt got its own
    /// ([`default_part_path`]).
    pub fn path(&self, upload_id: &str) -> String {
        if self.storage_key.is_empty() {
            default_part_path(upload_id, self.part_number)
        } else {
            self.storage_key.clone()
        }
    }
}

/// The backend path of part `part_number` of `upload_id` when it was recorded without a
/// storage key: `.mpu/<upload id>/<part number, 5 digits>`, the gateway's layout before every
/// attempt got its own path (migration 0007). Never the object key: a part's bytes are not
/// the object's.
pub fn default_part_path(upload_id: &str, part_number: i32) -> String {
    format!(".mpu/{upload_id}/{part_number:05}")
}

/// Everything a new multipart upload row needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateMultipartUploadParams {
    /// Upload id.
    pub upload_id: String,
    /// Key being assembled.
    pub object_key: String,
    /// Backend receiving the parts.
    pub backend_name: String,
    /// Content type; empty stores NULL.
    pub content_type: String,
    /// User metadata; empty stores NULL.
    pub metadata: BTreeMap<String, String>,
    /// Stored headers and checksum algorithm/type; empty stores NULL.
    pub attributes: ObjectAttributes,
    /// Tags for the completed object; empty stores NULL.
    pub tags: BTreeMap<String, String>,
    /// Upload-level packed DEK; empty for unencrypted uploads.
    pub encryption_key: Vec<u8>,
    /// Master-key version; empty for unencrypted uploads.
    pub key_id: String,
}

/// A row of the notification outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationRow {
    /// Row id.
    pub id: i64,
    /// Event type (e.g. `s3:ObjectCreated:Put`).
    pub event_type: String,
    /// The JSON envelope. PostgreSQL normalises whitespace (JSONB); SQLite returns it verbatim.
    pub payload: String,
    /// Webhook endpoint.
    pub endpoint_url: String,
    /// Delivery attempts so far.
    pub attempts: i32,
}

/// A copy that holds an encryption key, as the rotation admin lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedLocation {
    /// Key.
    pub object_key: String,
    /// Backend.
    pub backend_name: String,
    /// Packed key.
    pub encryption_key: Vec<u8>,
    /// Master-key version.
    pub key_id: String,
}

/// The ledger tables whose rows can hold a wrapped data key: every one of them must be
/// re-wrapped before the master key that wrapped it can be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyHolder {
    /// A copy of a current version (`object_locations`).
    Current,
    /// A copy of a noncurrent version (`object_versions`).
    Version,
    /// The upload-level key of an open multipart upload (`multipart_uploads`).
    Upload,
    /// A part of an open multipart upload (`multipart_parts`): the upload's DEK with the part
    /// attempt's own base nonce.
    Part,
    /// A write intent (`pending_objects`), promoted as stored when its writer dies.
    Pending,
}

impl KeyHolder {
    /// Every holder, in the order a rotation visits them.
    pub const ALL: [KeyHolder; 5] = [
        KeyHolder::Current,
        KeyHolder::Version,
        KeyHolder::Upload,
        KeyHolder::Part,
        KeyHolder::Pending,
    ];

    /// The table holding the rows (identical on both engines).
    pub fn table(self) -> &'static str {
        match self {
            KeyHolder::Current => "object_locations",
            KeyHolder::Version => "object_versions",
            KeyHolder::Upload => "multipart_uploads",
            KeyHolder::Part => "multipart_parts",
            KeyHolder::Pending => "pending_objects",
        }
    }
}

/// One row holding a wrapped data key, named by its table's primary key. It is also the
/// keyset cursor of [`crate::engine::EncryptionAdmin::list_wrapped_keys`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WrappedKeyAt {
    /// A copy of the current version of `object_key` on `backend_name`.
    Current {
        /// Key.
        object_key: String,
        /// Backend.
        backend_name: String,
    },
    /// The copy of noncurrent version `version_id` of `object_key` on `backend_name`.
    Version {
        /// Key.
        object_key: String,
        /// Version id.
        version_id: String,
        /// Backend.
        backend_name: String,
    },
    /// An open multipart upload's upload-level key.
    Upload {
        /// Upload id.
        upload_id: String,
    },
    /// A part of an open multipart upload.
    Part {
        /// Upload id.
        upload_id: String,
        /// Part number.
        part_number: i32,
    },
    /// A write intent.
    Pending {
        /// Intent id.
        intent_id: String,
    },
}

impl WrappedKeyAt {
    /// The table of the row.
    pub fn holder(&self) -> KeyHolder {
        match self {
            WrappedKeyAt::Current { .. } => KeyHolder::Current,
            WrappedKeyAt::Version { .. } => KeyHolder::Version,
            WrappedKeyAt::Upload { .. } => KeyHolder::Upload,
            WrappedKeyAt::Part { .. } => KeyHolder::Part,
            WrappedKeyAt::Pending { .. } => KeyHolder::Pending,
        }
    }
}

/// A row holding a wrapped data key, as rotation lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// The row.
    pub at: WrappedKeyAt,
    /// Packed key (the engine-independent bytes the gateway wrote).
    pub encryption_key: Vec<u8>,
    /// Master-key id that wrapped it.
    pub key_id: String,
}

/// How many rows of one table hold a data key wrapped under one master key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyCensus {
    /// The table.
    pub holder: KeyHolder,
    /// Master-key id.
    pub key_id: String,
    /// Rows.
    pub rows: i64,
}

/// A plaintext copy, as the encrypt-in-place admin lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnencryptedLocation {
    /// Key.
    pub object_key: String,
    /// Backend.
    pub backend_name: String,
    /// Current size.
    pub size_bytes: i64,
}

/// One copy's rewritten bytes in a [`crate::ops::convert_version`]: where they are and under which write
/// intent they were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertedCopy {
    /// Backend holding the copy (and its new bytes).
    pub backend: String,
    /// Size of the new bytes.
    pub size_bytes: i64,
    /// The intent the new bytes were written under; deleted in the same transaction.
    pub intent_id: String,
}

/// Keyset cursor over `(object_key, backend_name)` in byte order.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Key of the last row seen.
    pub object_key: String,
    /// Backend of the last row seen.
    pub backend_name: String,
}

/// Where a key scan starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyBound<'a> {
    /// From the first key.
    Start,
    /// Keys strictly greater than this one (byte order).
    After(&'a str),
    /// Keys greater than or equal to this one (byte order).
    From(&'a str),
}

/// One page of a flat listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListObjectsResult {
    /// One entry per key (its oldest copy), in byte order. Slim rows: default stored form except
    /// `plaintext_size`-based client size in `size_bytes`.
    pub objects: Vec<ObjectLocation>,
    /// More keys follow.
    pub is_truncated: bool,
    /// Pass as `start_after` to get the next page; empty when not truncated.
    pub next_continuation_token: String,
}

/// One page of a delimited listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListDelimitedResult {
    /// Leaves (keys without the delimiter past the prefix), in byte order.
    pub objects: Vec<ObjectLocation>,
    /// Common prefixes, each ending with the delimiter, in byte order, each emitted once
    /// across all pages.
    pub common_prefixes: Vec<String>,
    /// More entries follow.
    pub is_truncated: bool,
    /// Pass as `start_after` to get the next page; empty when not truncated.
    pub next_continuation_token: String,
}

/// Groups locations by key, preserving the order copies appear in.
pub fn group_by_key(locations: Vec<ObjectLocation>) -> BTreeMap<String, Vec<ObjectLocation>> {
    let mut out: BTreeMap<String, Vec<ObjectLocation>> = BTreeMap::new();
    for loc in locations {
        out.entry(loc.object_key.clone()).or_default().push(loc);
    }
    out
}

/// Caps a flat listing fetched with `max + 1` rows: truncated when more than `max` rows came
/// back, the token is the last kept key.
pub fn build_list_page(mut objects: Vec<ObjectLocation>, max: usize) -> ListObjectsResult {
    if objects.len() > max {
        objects.truncate(max);
        let token = objects
            .last()
            .map(|o| o.object_key.clone())
            .unwrap_or_default();
        ListObjectsResult {
            objects,
            is_truncated: true,
            next_continuation_token: token,
        }
    } else {
        ListObjectsResult {
            objects,
            is_truncated: false,
            next_continuation_token: String::new(),
        }
    }
}

/// A bucket's settings: everything about a bucket but its name and creation time.
///
/// The configuration owns `replication_factor`, the quotas and `routing`
/// ([`crate::MetadataStore::sync_buckets`] refreshes them); `extra` holds settings managed over
/// the S3 API (CORS, versioning, as they arrive) and `lifecycle` the bucket's lifecycle rules;
/// a sync touches neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSettings {
    /// Copies the replicator keeps of every object of the bucket: 1..=[`crate::validate::MAX_REPLICATION_FACTOR`].
    pub replication_factor: u32,
    /// Byte quota of the bucket; 0 = none. Stored, not yet enforced by the store.
    pub max_bytes: i64,
    /// Object-count quota of the bucket; 0 = none. Stored, not yet enforced by the store.
    pub max_objects: i64,
    /// Backends new objects of the bucket may be placed on, in preference order; empty = every
    /// backend. Names are not checked against registered backends (a backend may come later).
    pub routing: Vec<String>,
    /// Further settings as one JSON object (CORS, versioning later); empty = none.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Lifecycle rules (S3 `PutBucketLifecycleConfiguration`); empty = none. Seeded with the
    /// bucket, then managed over the S3 API: a configuration sync never touches them.
    pub lifecycle: Vec<LifecycleRule>,
}

/// One lifecycle rule of a bucket: which keys it applies to and what it does to them.
///
/// Stored as JSON in the bucket row ([`LifecycleRule::rules_to_json`]); checked by
/// [`crate::validate::lifecycle_rules`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleRule {
    /// The rule's id (S3 `ID`), unique within the bucket; may be empty.
    pub id: String,
    /// `Status = Enabled`; a disabled rule is kept but does nothing.
    pub enabled: bool,
    /// Object keys (within the bucket) the rule applies to start with this; empty = every key.
    pub prefix: String,
    /// Objects expire this many whole days after they were written.
    pub expiration_days: Option<u32>,
    /// Objects expire once this instant has passed, whatever their age.
    pub expiration_date: Option<Timestamp>,
    /// Multipart uploads still open this many days after they were started are aborted.
    pub abort_incomplete_upload_days: Option<u32>,
    /// Only objects carrying every one of these tags (same key, same value) expire; empty =
    /// no tag condition. S3 refuses a tag filter on an abort of uploads (they have no tags).
    pub tags: BTreeMap<String, String>,
    /// Noncurrent versions (delete markers included) are deleted for good this many whole days
    /// after they became noncurrent, i.e. after their successor was written (S3
    /// `NoncurrentVersionExpiration/NoncurrentDays`).
    pub noncurrent_days: Option<u32>,
    /// With [`LifecycleRule::noncurrent_days`]: the newest this many noncurrent versions of a
    /// key are kept whatever their age (S3 `NewerNoncurrentVersions`).
    pub newer_noncurrent_versions: Option<u32>,
    /// A delete marker that is the only remaining version of its key is removed (S3
    /// `Expiration/ExpiredObjectDeleteMarker`).
    pub expired_object_delete_marker: bool,
}

impl LifecycleRule {
    /// True when an object tagged `tags` meets the rule's tag condition (it carries every tag
    /// of the rule, with the same value).
    pub fn tags_match(&self, tags: &BTreeMap<String, String>) -> bool {
        self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }

    /// The rules as the JSON array the ledger stores.
    pub fn rules_to_json(rules: &[LifecycleRule]) -> String {
        let arr: Vec<serde_json::Value> = rules
            .iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                m.insert("id".into(), r.id.clone().into());
                m.insert("enabled".into(), r.enabled.into());
                m.insert("prefix".into(), r.prefix.clone().into());
                if let Some(d) = r.expiration_days {
                    m.insert("expiration_days".into(), d.into());
                }
                if let Some(t) = r.expiration_date {
                    m.insert("expiration_date_us".into(), t.as_micros().into());
                }
                if let Some(d) = r.abort_incomplete_upload_days {
                    m.insert("abort_incomplete_upload_days".into(), d.into());
                }
                if let Some(d) = r.noncurrent_days {
                    m.insert("noncurrent_days".into(), d.into());
                }
                if let Some(n) = r.newer_noncurrent_versions {
                    m.insert("newer_noncurrent_versions".into(), n.into());
                }
                if r.expired_object_delete_marker {
                    m.insert("expired_object_delete_marker".into(), true.into());
                }
                if !r.tags.is_empty() {
                    let tags = r
                        .tags
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                        .collect();
                    m.insert("tags".into(), serde_json::Value::Object(tags));
                }
                serde_json::Value::Object(m)
            })
            .collect();
        serde_json::Value::Array(arr).to_string()
    }

    /// Decodes [`LifecycleRule::rules_to_json`]'s text; the error names what is wrong.
    pub fn rules_from_json(text: &str) -> std::result::Result<Vec<LifecycleRule>, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let arr = v.as_array().ok_or("lifecycle: not a JSON array")?;
        let days = |m: &serde_json::Map<String, serde_json::Value>, f: &str| {
            m.get(f)
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| format!("lifecycle: {f} is not a day count"))
                })
                .transpose()
        };
        arr.iter()
            .map(|r| {
                let m = r.as_object().ok_or("lifecycle: a rule is not an object")?;
                let text = |f: &str| m.get(f).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                Ok(LifecycleRule {
                    id: text("id"),
                    enabled: m.get("enabled").and_then(|v| v.as_bool()).unwrap_or(false),
                    prefix: text("prefix"),
                    expiration_days: days(m, "expiration_days")?,
                    expiration_date: m
                        .get("expiration_date_us")
                        .map(|v| {
                            v.as_i64()
                                .map(Timestamp::from_micros)
                                .ok_or("lifecycle: expiration_date_us is not a number")
                        })
                        .transpose()?,
                    abort_incomplete_upload_days: days(m, "abort_incomplete_upload_days")?,
                    noncurrent_days: days(m, "noncurrent_days")?,
                    newer_noncurrent_versions: days(m, "newer_noncurrent_versions")?,
                    expired_object_delete_marker: m
                        .get("expired_object_delete_marker")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                    tags: match m.get("tags") {
                        None => BTreeMap::new(),
                        Some(t) => t
                            .as_object()
                            .ok_or("lifecycle: tags is not an object")?
                            .iter()
                            .map(|(k, v)| {
                                v.as_str()
                                    .map(|v| (k.clone(), v.to_owned()))
                                    .ok_or_else(|| format!("lifecycle: tag {k:?} is not text"))
                            })
                            .collect::<std::result::Result<_, String>>()?,
                    },
                })
            })
            .collect()
    }
}

impl Default for BucketSettings {
    /// One copy, no quotas, every backend, no further settings.
    fn default() -> Self {
        BucketSettings {
            replication_factor: 1,
            max_bytes: 0,
            max_objects: 0,
            routing: Vec::new(),
            extra: serde_json::Map::new(),
            lifecycle: Vec::new(),
        }
    }
}

/// A bucket to create or to seed from configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketSpec {
    /// The bucket's name, checked against S3's rules ([`crate::validate::bucket_name`]).
    pub name: String,
    /// Its settings.
    pub settings: BucketSettings,
}

impl BucketSpec {
    /// A bucket named `name` with default settings.
    pub fn new(name: impl Into<String>) -> Self {
        BucketSpec {
            name: name.into(),
            settings: BucketSettings::default(),
        }
    }
}

/// A bucket as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's name.
    pub name: String,
    /// When the bucket was created (the `CreationDate` of ListBuckets).
    pub created_at: Timestamp,
    /// Its settings.
    pub settings: BucketSettings,
}

impl Bucket {
    /// The ledger prefix of every key of the bucket: `"<name>/"`.
    pub fn key_prefix(&self) -> String {
        bucket_key_prefix(&self.name)
    }
}

/// The ledger prefix of every key of bucket `name`: `"<name>/"` (ledger keys are
/// `<bucket>/<object key>`).
pub fn bucket_key_prefix(name: &str) -> String {
    format!("{name}/")
}

/// Why a bucket cannot be deleted: what it still holds, checked in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BucketBusy {
    /// A key under `<name>/` has a copy in `object_locations`.
    Objects,
    /// A multipart upload of a key under `<name>/` is open.
    MultipartUploads,
    /// A pending write intent of a key under `<name>/` exists (a PUT in flight).
    PendingWrites,
}

impl fmt::Display for BucketBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BucketBusy::Objects => "it holds objects",
            BucketBusy::MultipartUploads => "it has multipart uploads in progress",
            BucketBusy::PendingWrites => "it has writes in flight",
        })
    }
}

/// How a transaction locks a bucket row ([`crate::tx::BucketTx::lock_bucket`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BucketLock {
    /// Held by every commit into the bucket (`FOR KEY SHARE` on PostgreSQL): many writers at
    /// once, excluded only by [`BucketLock::Delete`]; settings updates do not conflict with it.
    Write,
    /// Held by the bucket's deletion (`FOR UPDATE`): waits for every commit holding
    /// [`BucketLock::Write`] and makes later ones wait, then find the row gone.
    Delete,
}
