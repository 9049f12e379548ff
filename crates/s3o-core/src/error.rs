//! Errors: the store's typed error, its engine-neutral database kinds, and the S3 answers a
//! server gives for them.

use std::error::Error as StdError;
use std::fmt;

/// Result alias used throughout s3o.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Boxed source error, kept so callers can walk the chain to the driver error.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Engine-neutral classification of a database failure. Callers branch on meaning, never on
/// SQLSTATE or SQLite result-code text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// A unique or primary-key constraint was violated.
    UniqueViolation,
    /// A foreign-key constraint was violated.
    ForeignKeyViolation,
    /// A NOT NULL constraint was violated.
    NotNullViolation,
    /// A CHECK constraint was violated.
    CheckViolation,
    /// Serialization failure (PostgreSQL 40001). Retrying the transaction may succeed.
    Serialization,
    /// Deadlock detected (PostgreSQL 40P01). Retrying the transaction may succeed.
    Deadlock,
    /// The database was busy or locked (SQLite `BUSY`/`LOCKED`, PostgreSQL lock timeout
    /// 55P03). Retrying may succeed; the breaker does not count it.
    Busy,
    /// The connection could not be made or was lost: the database cannot answer. Counted by
    /// the breaker; S3: reads fall back to broadcasting, writes answer 503.
    Connection,
    /// No pooled connection came free within the pool's wait timeout: the database answers,
    /// this process just has more callers than connections. Not counted by the breaker (a
    /// burst must not become an outage) and not retried by the transaction runner (the
    /// caller already waited); S3: 503 `SlowDown`, which clients retry with backoff.
    Overload,
    /// The schema is missing, too old or too new for this binary, or a row does not decode
    /// (a column of another type than this binary expects). The error names the fix
    /// (`s3o migrate`).
    Schema,
    /// Anything else.
    Other,
}

impl DbErrorKind {
    /// True for failures where rerunning the whole transaction is safe and may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            DbErrorKind::Serialization | DbErrorKind::Deadlock | DbErrorKind::Busy
        )
    }
}

impl fmt::Display for DbErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DbErrorKind::UniqueViolation => "unique violation",
            DbErrorKind::ForeignKeyViolation => "foreign key violation",
            DbErrorKind::NotNullViolation => "not-null violation",
            DbErrorKind::CheckViolation => "check violation",
            DbErrorKind::Serialization => "serialization failure",
            DbErrorKind::Deadlock => "deadlock",
            DbErrorKind::Busy => "database busy",
            DbErrorKind::Connection => "connection failure",
            DbErrorKind::Overload => "overloaded: no pooled connection came free in time",
            DbErrorKind::Schema => "schema mismatch",
            DbErrorKind::Other => "database error",
        };
        f.write_str(s)
    }
}

/// Every error the store returns.
///
/// Absence is an answer, not a failure: methods document which variant (or `None`/`false`)
/// they return when a row is missing. Only [`StoreError::Database`] and
/// [`StoreError::DbUnavailable`] mean the database itself misbehaved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object has no copy in the ledger. S3: 404 `NoSuchKey`.
    #[error("object not found: {key}")]
    ObjectNotFound {
        /// The key that was looked up.
        key: String,
    },
    /// The key has no version with this id. S3: 404 `NoSuchVersion`.
    #[error("version {version_id} of {key} not found")]
    VersionNotFound {
        /// The key that was looked up.
        key: String,
        /// The version id asked for.
        version_id: String,
    },
    /// The multipart upload id is unknown. S3: 404 `NoSuchUpload`.
    #[error("multipart upload not found: {upload_id}")]
    MultipartUploadNotFound {
        /// The upload id that was looked up.
        upload_id: String,
    },
    /// The bucket is not in the ledger. S3: 404 `NoSuchBucket`.
    #[error("bucket not found: {bucket}")]
    BucketNotFound {
        /// The bucket name that was looked up.
        bucket: String,
    },
    /// The bucket still holds objects, multipart uploads or writes in flight and may not be
    /// deleted; nothing was changed. S3: 409 `BucketNotEmpty`.
    #[error("bucket {bucket} is not empty: {reason}")]
    BucketNotEmpty {
        /// The bucket name.
        bucket: String,
        /// What it still holds (the first found of objects, uploads, intents).
        reason: crate::types::BucketBusy,
    },
    /// No backend (or not the chosen one) has room for the bytes under its quota.
    /// S3: 507 `InsufficientStorage` on writes.
    #[error("no backend has sufficient quota")]
    NoSpaceAvailable,
    /// The database circuit breaker is open: the call was not attempted.
    /// Reads fall back to broadcasting; writes answer 503.
    #[error("database unavailable")]
    DbUnavailable,
    /// The cleanup-queue row is gone (another worker completed or moved it). Benign.
    #[error("cleanup queue row not found: {id}")]
    CleanupItemNotFound {
        /// The row id.
        id: i64,
    },
    /// A leader lock was lost while its critical section ran (its database session ended):
    /// another instance may already hold it. The critical section was cancelled; whatever it
    /// did before is committed or rolled back statement by statement as usual, but the
    /// caller must not act as leader on its result.
    #[error("leader lock {lock} lost while held: {why}")]
    LeadershipLost {
        /// The lock that was lost.
        lock: crate::locks::LockId,
        /// How the loss was detected.
        why: String,
    },
    /// A write's precondition (`If-Match` / `If-None-Match`) did not hold when it committed;
    /// nothing was changed. S3: 412 `PreconditionFailed`.
    #[error("precondition failed for {key}")]
    PreconditionFailed {
        /// The object key.
        key: String,
    },
    /// A commit named a write intent that is gone: the write outlived the reaper's `min_age`
    /// without a heartbeat and was abandoned (its bytes queued for deletion). Nothing was
    /// changed; the client retries the write. S3: 500 `InternalError`.
    #[error("write intent {intent_id} was abandoned before its commit")]
    PendingIntentGone {
        /// The intent id.
        intent_id: String,
    },
    /// A commit named the version id its caller had already announced, and the bucket's
    /// versioning state (changed meanwhile) would give the new version another one; nothing
    /// was changed. S3: 409 `OperationAborted` (the client retries).
    #[error("the versioning state of bucket {bucket} changed before the commit")]
    VersioningChanged {
        /// The bucket.
        bucket: String,
    },
    /// A backend name with no `backend_quotas` row.
    #[error("unknown backend: {backend}")]
    UnknownBackend {
        /// The backend name given.
        backend: String,
    },
    /// The only copy that holds the data-encryption key may not be removed while a sibling
    /// copy is encrypted without one.
    #[error("copy of {key} on {backend} is the only one holding its encryption key")]
    CopyHoldsOnlyDek {
        /// Object key.
        key: String,
        /// Backend of the refused copy.
        backend: String,
    },
    /// Input rejected before any SQL ran; nothing was changed.
    #[error("invalid {what}: {why}")]
    InvalidInput {
        /// What was invalid (e.g. "object key", "part number").
        what: &'static str,
        /// Why, in words that name the rule.
        why: String,
    },
    /// The database failed. `context` names the operation; `source` is the driver error.
    #[error("{context}: {kind}")]
    Database {
        /// Engine-neutral classification.
        kind: DbErrorKind,
        /// What the store was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Builds an [`StoreError::InvalidInput`].
    pub fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            what,
            why: why.into(),
        }
    }

    /// Builds a [`StoreError::Database`] from a driver error.
    pub fn database(
        kind: DbErrorKind,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError::Database {
            kind,
            context: context.into(),
            source: source.into(),
        }
    }

    /// A value the database itself refused (numeric overflow, a time out of its range, a row
    /// too large for an index, text it cannot store): an input error that slipped past
    /// validation, classified as [`StoreError::InvalidInput`] so it never counts against the
    /// breaker. `detail` is the driver's message.
    pub fn rejected_value(context: &str, detail: impl fmt::Display) -> Self {
        StoreError::InvalidInput {
            what: "value",
            why: format!("{context}: the database refused it: {detail}"),
        }
    }

    /// A [`DbErrorKind::Schema`] failure whose context names the fix.
    pub fn schema(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Database {
            kind: DbErrorKind::Schema,
            context: format!("{} ({MIGRATE_HINT})", context.into()),
            source: source.into(),
        }
    }

    /// The database kind, for [`StoreError::Database`] only.
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            StoreError::Database { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// True when rerunning the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        self.db_kind().is_some_and(DbErrorKind::is_retryable)
    }

    /// True when this error is an answer about data (absence, quota, bad input) rather than a
    /// failure of the database. The circuit breaker does not count these.
    pub fn is_answer(&self) -> bool {
        !matches!(
            self,
            StoreError::Database { .. } | StoreError::DbUnavailable
        )
    }

    /// Prefixes the context of a [`StoreError::Database`]; other variants pass unchanged.
    pub fn context(self, outer: &str) -> Self {
        match self {
            StoreError::Database {
                kind,
                context,
                source,
            } => StoreError::Database {
                kind,
                context: format!("{outer}: {context}"),
                source,
            },
            other => other,
        }
    }
}

/// What a [`DbErrorKind::Schema`] error tells the operator to do.
pub const MIGRATE_HINT: &str =
    "the schema is missing or out of date for this binary: run `s3o migrate`";

/// An answer an S3 server gives: HTTP status, S3 error code and message.
///
/// Its `Display` is the message alone (the zero value displays as the empty string).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Error {
    /// HTTP status code.
    pub status: u16,
    /// S3 error code (e.g. `NoSuchKey`).
    pub code: &'static str,
    /// Human-readable message.
    pub message: &'static str,
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl StdError for S3Error {}

impl S3Error {
    /// 404 `NoSuchKey`: the object is not in the ledger.
    pub const NO_SUCH_KEY: S3Error = S3Error {
        status: 404,
        code: "NoSuchKey",
        message: "object not found",
    };
    /// 404 `NoSuchVersion`: the key has no version with the id asked for.
    pub const NO_SUCH_VERSION: S3Error = S3Error {
        status: 404,
        code: "NoSuchVersion",
        message: "version not found",
    };
    /// 404 `NoSuchUpload`: unknown multipart upload id.
    pub const NO_SUCH_UPLOAD: S3Error = S3Error {
        status: 404,
        code: "NoSuchUpload",
        message: "multipart upload not found",
    };
    /// 404 `NoSuchBucket`: the bucket is not in the ledger.
    pub const NO_SUCH_BUCKET: S3Error = S3Error {
        status: 404,
        code: "NoSuchBucket",
        message: "the specified bucket does not exist",
    };
    /// 409 `BucketNotEmpty`: a bucket holding objects, uploads or writes in flight.
    pub const BUCKET_NOT_EMPTY: S3Error = S3Error {
        status: 409,
        code: "BucketNotEmpty",
        message: "the bucket you tried to delete is not empty",
    };
    /// 503 `ServiceUnavailable`: writes rejected during a database outage.
    pub const SERVICE_UNAVAILABLE: S3Error = S3Error {
        status: 503,
        code: "ServiceUnavailable",
        message: "database unavailable, writes are temporarily rejected",
    };
    /// 507 `InsufficientStorage`: no backend has room.
    pub const INSUFFICIENT_STORAGE: S3Error = S3Error {
        status: 507,
        code: "InsufficientStorage",
        message: "no backend has sufficient quota",
    };
    /// 429 `SlowDown`: every backend holding the object is over its monthly usage limit.
    pub const USAGE_LIMIT_EXCEEDED: S3Error = S3Error {
        status: 429,
        code: "SlowDown",
        message: "monthly usage limit exceeded for all backends holding this object",
    };
    /// 503 `SlowDown`: the store is overloaded (no pooled connection came free in time);
    /// clients retry with backoff.
    pub const SLOW_DOWN: S3Error = S3Error {
        status: 503,
        code: "SlowDown",
        message: "please reduce your request rate",
    };
    /// 412 `PreconditionFailed`: a conditional write lost to the current version.
    pub const PRECONDITION_FAILED: S3Error = S3Error {
        status: 412,
        code: "PreconditionFailed",
        message: "at least one of the preconditions you specified did not hold",
    };
    /// 409 `OperationAborted`: a concurrent change of the bucket refused the request; retry.
    pub const OPERATION_ABORTED: S3Error = S3Error {
        status: 409,
        code: "OperationAborted",
        message: "a conflicting operation on the bucket ran meanwhile, please try again",
    };
    /// 400 `InvalidArgument`: the request's input was rejected.
    pub const INVALID_ARGUMENT: S3Error = S3Error {
        status: 400,
        code: "InvalidArgument",
        message: "invalid argument",
    };
    /// 500 `InternalError`: anything the client cannot act on.
    pub const INTERNAL_ERROR: S3Error = S3Error {
        status: 500,
        code: "InternalError",
        message: "we encountered an internal error, please try again",
    };
}

/// Whether the failing store call served a read or a write: the S3 answer differs for an
/// unavailable database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// GET / HEAD / LIST.
    Read,
    /// PUT / DELETE / multipart.
    Write,
}

/// What an S3 server answers for a store error.
///
/// `None` on a read when the database cannot answer ([`StoreError::DbUnavailable`], or a
/// [`DbErrorKind::Connection`] failure before the breaker has opened): the server should not
/// answer yet but fall back to broadcasting the read to every backend. Writes during an
/// outage answer 503 `ServiceUnavailable`. Overload ([`DbErrorKind::Overload`]) answers 503
/// `SlowDown` on reads and writes alike: broadcasting would add load, and clients retry it.
pub fn s3_error_for(err: &StoreError, access: Access) -> Option<S3Error> {
    let outage = matches!(
        err,
        StoreError::DbUnavailable
            | StoreError::Database {
                kind: DbErrorKind::Connection,
                ..
            }
    );
    if outage {
        return match access {
            Access::Read => None,
            Access::Write => Some(S3Error::SERVICE_UNAVAILABLE),
        };
    }
    Some(match err {
        StoreError::ObjectNotFound { .. } => S3Error::NO_SUCH_KEY,
        StoreError::VersionNotFound { .. } => S3Error::NO_SUCH_VERSION,
        StoreError::MultipartUploadNotFound { .. } => S3Error::NO_SUCH_UPLOAD,
        StoreError::BucketNotFound { .. } => S3Error::NO_SUCH_BUCKET,
        StoreError::BucketNotEmpty { .. } => S3Error::BUCKET_NOT_EMPTY,
        StoreError::NoSpaceAvailable => S3Error::INSUFFICIENT_STORAGE,
        StoreError::PreconditionFailed { .. } => S3Error::PRECONDITION_FAILED,
        StoreError::InvalidInput { .. } => S3Error::INVALID_ARGUMENT,
        StoreError::VersioningChanged { .. } => S3Error::OPERATION_ABORTED,
        StoreError::Database {
            kind: DbErrorKind::Overload,
            ..
        } => S3Error::SLOW_DOWN,
        _ => S3Error::INTERNAL_ERROR,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_displays_its_message_and_zero_value_is_empty() {
        assert_eq!(S3Error::NO_SUCH_KEY.to_string(), "object not found");
        assert_eq!(S3Error::default().to_string(), "");
        let as_dyn: &dyn StdError = &S3Error::NO_SUCH_UPLOAD;
        assert_eq!(as_dyn.to_string(), "multipart upload not found");
    }

    #[test]
    fn seed_constants_keep_their_status_and_code() {
        let table = [
            (S3Error::NO_SUCH_KEY, 404, "NoSuchKey"),
            (S3Error::NO_SUCH_UPLOAD, 404, "NoSuchUpload"),
            (S3Error::SERVICE_UNAVAILABLE, 503, "ServiceUnavailable"),
            (S3Error::INSUFFICIENT_STORAGE, 507, "InsufficientStorage"),
            (S3Error::USAGE_LIMIT_EXCEEDED, 429, "SlowDown"),
        ];
        for (e, status, code) in table {
            assert_eq!((e.status, e.code), (status, code));
        }
    }

    #[test]
    fn mapping_distinguishes_reads_from_writes_during_outage() {
        let e = StoreError::DbUnavailable;
        assert_eq!(s3_error_for(&e, Access::Read), None);
        assert_eq!(
            s3_error_for(&e, Access::Write),
            Some(S3Error::SERVICE_UNAVAILABLE)
        );
        let nf = StoreError::ObjectNotFound { key: "k".into() };
        assert_eq!(s3_error_for(&nf, Access::Read), Some(S3Error::NO_SUCH_KEY));
        assert_eq!(
            s3_error_for(&StoreError::NoSpaceAvailable, Access::Write),
            Some(S3Error::INSUFFICIENT_STORAGE)
        );
        let up = StoreError::MultipartUploadNotFound {
            upload_id: "u".into(),
        };
        assert_eq!(
            s3_error_for(&up, Access::Write),
            Some(S3Error::NO_SUCH_UPLOAD)
        );
        let db = StoreError::database(DbErrorKind::Other, "x", "boom");
        assert_eq!(
            s3_error_for(&db, Access::Read),
            Some(S3Error::INTERNAL_ERROR)
        );
    }

    #[test]
    fn outage_overload_and_bad_values_have_their_own_answers() {
        // The first connection errors of an outage take the same broadcast path as an open
        // breaker, before the breaker has opened.
        let conn = StoreError::database(DbErrorKind::Connection, "x", "reset");
        assert_eq!(s3_error_for(&conn, Access::Read), None);
        assert_eq!(
            s3_error_for(&conn, Access::Write),
            Some(S3Error::SERVICE_UNAVAILABLE)
        );
        let busy = StoreError::database(DbErrorKind::Overload, "x", "pool wait timeout");
        for access in [Access::Read, Access::Write] {
            let answer = s3_error_for(&busy, access).expect("overload answers");
            assert_eq!((answer.status, answer.code), (503, "SlowDown"));
        }
        assert!(!busy.is_retryable());
        let bad = StoreError::rejected_value("increment orphan bytes", "bigint out of range");
        assert!(bad.is_answer());
        assert_eq!(
            s3_error_for(&bad, Access::Write),
            Some(S3Error::INVALID_ARGUMENT)
        );
        let schema = StoreError::schema("get copies", "no such table: object_locations");
        assert_eq!(schema.db_kind(), Some(DbErrorKind::Schema));
        assert!(schema.to_string().contains("s3o migrate"), "{schema}");
    }

    #[test]
    fn bucket_errors_answer_no_such_bucket_and_bucket_not_empty() {
        use crate::types::BucketBusy;
        let nf = StoreError::BucketNotFound {
            bucket: "photos".into(),
        };
        for access in [Access::Read, Access::Write] {
            let a = s3_error_for(&nf, access).expect("an answer");
            assert_eq!((a.status, a.code), (404, "NoSuchBucket"));
        }
        assert!(nf.is_answer());
        for reason in [
            BucketBusy::Objects,
            BucketBusy::MultipartUploads,
            BucketBusy::PendingWrites,
        ] {
            let busy = StoreError::BucketNotEmpty {
                bucket: "photos".into(),
                reason,
            };
            assert_eq!(
                s3_error_for(&busy, Access::Write),
                Some(S3Error::BUCKET_NOT_EMPTY)
            );
            assert_eq!(S3Error::BUCKET_NOT_EMPTY.status, 409);
            assert_eq!(S3Error::BUCKET_NOT_EMPTY.code, "BucketNotEmpty");
            assert!(busy.is_answer());
            assert!(busy.to_string().contains("photos"), "{busy}");
        }
        // A bad bucket name is bad input, answered before any SQL.
        let bad = StoreError::invalid("bucket name", "must not contain \"..\"");
        assert_eq!(
            s3_error_for(&bad, Access::Write),
            Some(S3Error::INVALID_ARGUMENT)
        );
    }

    #[test]
    fn database_errors_keep_source_and_context() {
        let e =
            StoreError::database(DbErrorKind::Deadlock, "record object", "40P01").context("outer");
        assert_eq!(e.to_string(), "outer: record object: deadlock");
        assert!(e.is_retryable());
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("40P01"));
        assert!(!StoreError::NoSpaceAvailable.is_retryable());
        assert!(StoreError::NoSpaceAvailable.is_answer());
        assert!(!StoreError::DbUnavailable.is_answer());
    }
}
