//! S3 versioning: the bucket state and what the ledger says about a key's versions
//! (DESIGN decision 25).
//!
//! `object_locations` keeps the current version of every key (its role and contracts are
//! unchanged); `object_versions` holds noncurrent versions (one row per copy, bytes still
//! charged to the backend) and delete markers. A key's versions are ordered by `seq`; the
//! current version is newer than every row of `object_versions`.

use std::fmt;

use crate::types::{ObjectLocation, Timestamp};

/// The version id S3 gives objects written while a bucket was unversioned or suspended.
pub const NULL_VERSION_ID: &str = "null";

/// The `seq` a current version (a row of `object_locations`) sorts with: newer than any
/// noncurrent version.
pub const CURRENT_SEQ: i64 = i64::MAX;

/// A bucket's versioning state (S3 `VersioningConfiguration/Status`). A bucket never goes
/// back to [`Versioning::Unversioned`] once versioning was enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Versioning {
    /// Never versioned: overwrites and deletes displace every copy (the original design).
    #[default]
    Unversioned,
    /// Every write makes a new version; deletes write delete markers.
    Enabled,
    /// Writes and deletes replace the `null` version; other versions are kept.
    Suspended,
}

impl Versioning {
    /// The stored (and S3) name: `None` for unversioned.
    pub fn as_status(self) -> Option<&'static str> {
        match self {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some("Enabled"),
            Versioning::Suspended => Some("Suspended"),
        }
    }

    /// Parses a stored (or S3) status; `None`/empty ⇒ unversioned, unknown text ⇒ `None`.
    pub fn from_status(s: Option<&str>) -> Option<Versioning> {
        match s {
            None | Some("") => Some(Versioning::Unversioned),
            Some("Enabled") => Some(Versioning::Enabled),
            Some("Suspended") => Some(Versioning::Suspended),
            Some(_) => None,
        }
    }

    /// Whether writes into the bucket keep previous versions (enabled or suspended).
    pub fn is_versioned(self) -> bool {
        self != Versioning::Unversioned
    }
}

impl fmt::Display for Versioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_status().unwrap_or("Unversioned"))
    }
}

/// One row of `object_versions` as a transaction sees it (locked with the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionCopy {
    /// The version's id (`"null"` for the null version).
    pub version_id: String,
    /// Order within the key: larger is newer.
    pub seq: i64,
    /// Backend holding this copy; `None` for a delete marker.
    pub backend_name: Option<String>,
    /// Bytes of this copy on its backend (0 for a marker).
    pub size_bytes: i64,
    /// Physical path of the copy (empty ⇒ the object key).
    pub storage_key: String,
}

impl VersionCopy {
    /// Whether the row is a delete marker.
    pub fn is_delete_marker(&self) -> bool {
        self.backend_name.is_none()
    }
}

/// One version of a key as reads and listings report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The ledger key (`<bucket>/<key>`).
    pub object_key: String,
    /// Version id (`"null"` for the null version).
    pub version_id: String,
    /// Order within the key ([`CURRENT_SEQ`] for the current version).
    pub seq: i64,
    /// The newest version of its key (the current one, or the delete marker hiding the key).
    pub is_latest: bool,
    /// A delete marker: no bytes, no copies.
    pub delete_marker: bool,
    /// When the version was written (S3 `LastModified`).
    pub created_at: Timestamp,
    /// Client-visible size (plaintext size of an encrypted version); 0 for a marker.
    pub size_bytes: i64,
    /// Client-visible ETag; empty for a marker.
    pub etag: String,
    /// Every copy of the version with its stored form, oldest first (empty for a marker, and
    /// in listings, where only the first copy is read).
    pub copies: Vec<ObjectLocation>,
}

/// One copy of a noncurrent version, as the workers that move and replicate noncurrent
/// versions read it ([`crate::engine::VersionStore::list_noncurrent_copies_by_backend`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoncurrentCopy {
    /// The version's id (`"null"` for the null version).
    pub version_id: String,
    /// The copy with every stored-form column (`object_key`, `backend_name`, size, path).
    pub location: ObjectLocation,
}

/// A noncurrent version whose managed copies number other than a replication factor
/// ([`crate::engine::VersionStore::list_noncurrent_replication`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoncurrentReplicas {
    /// The ledger key.
    pub object_key: String,
    /// The version's id.
    pub version_id: String,
    /// How many managed copies the version has.
    pub copies: i64,
}

/// What a commit into a bucket did ([`crate::ops::commit_object_in_bucket`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Bytes that left the ledger (queued for cleanup with this store's claim).
    pub displaced: Vec<crate::types::DeletedCopy>,
    /// The new version's id; `None` in an unversioned bucket.
    pub version_id: Option<String>,
}

/// What a delete in a bucket did ([`crate::ops::delete_object_in_bucket`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Bytes that left the ledger (queued for cleanup with this store's claim).
    pub removed: Vec<crate::types::DeletedCopy>,
    /// The version deleted or the marker written (S3 `x-amz-version-id`); `None` in an
    /// unversioned bucket.
    pub version_id: Option<String>,
    /// A delete marker was written, or the version deleted was one (S3
    /// `x-amz-delete-marker: true`).
    pub delete_marker: bool,
}

/// What versioning keeps in the ledger beyond current versions
/// ([`crate::MetadataStore::get_version_stats`]): for `/metrics` and `s3o status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionStats {
    /// Per backend: copies of noncurrent versions on it and their bytes (charged to its
    /// `bytes_used`). Backends holding none are absent.
    pub noncurrent: std::collections::BTreeMap<String, NoncurrentStat>,
    /// Delete markers in the ledger (a marker has no bytes and no backend).
    pub delete_markers: i64,
}

/// Noncurrent copies on one backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoncurrentStat {
    /// Copies of noncurrent versions.
    pub copies: i64,
    /// Their bytes (as stored: ciphertext size for encrypted copies).
    pub bytes: i64,
}

/// One page of ListObjectVersions ([`crate::ops::list_object_versions`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionListing {
    /// Versions and delete markers in S3 order: key ascending, newest first within a key.
    pub versions: Vec<ObjectVersion>,
    /// Common prefixes (with a delimiter), in byte order.
    pub common_prefixes: Vec<String>,
    /// More entries follow.
    pub is_truncated: bool,
    /// Pass as the key marker of the next page (when truncated).
    pub next_key_marker: String,
    /// Pass as the version-id marker of the next page (when truncated; empty after a common
    /// prefix).
    pub next_version_id_marker: String,
}
