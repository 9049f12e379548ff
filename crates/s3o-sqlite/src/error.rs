//! Mapping of rusqlite, r2d2 and task errors onto the engine-neutral [`StoreError`].
//!
//! Values SQLite refuses (`SQLITE_TOOBIG`, a datatype mismatch, integer overflow of a
//! counter) are `InvalidInput`, never a database failure; a missing table or column is
//! `Schema` naming `s3o migrate`, as is a column that does not decode as this binary
//! expects; a reader-pool wait timeout is overload.

use rusqlite::ErrorCode;
use rusqlite::ffi;
use s3o_core::{DbErrorKind, StoreError};

/// The engine-neutral kind of a rusqlite error.
pub(crate) fn kind_of(e: &rusqlite::Error) -> DbErrorKind {
    let Some(code) = e.sqlite_error() else {
        return DbErrorKind::Other;
    };
    match code.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DbErrorKind::Busy,
        ErrorCode::ConstraintViolation => match code.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                DbErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => DbErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => DbErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => DbErrorKind::CheckViolation,
            _ => DbErrorKind::Other,
        },
        ErrorCode::CannotOpen
        | ErrorCode::SystemIoFailure
        | ErrorCode::NotADatabase
        | ErrorCode::DatabaseCorrupt
        | ErrorCode::DiskFull
        | ErrorCode::ReadOnly
        | ErrorCode::PermissionDenied
        | ErrorCode::FileLockingProtocolFailed => DbErrorKind::Connection,
        _ => DbErrorKind::Other,
    }
}

/// What an error that is not a plain failure means: a refused value or schema drift.
enum Meaning {
    BadValue,
    Schema,
    Failure,
}

fn meaning(e: &rusqlite::Error) -> Meaning {
    use rusqlite::Error as E;
    match e {
        // A column that is missing or holds another type than the row mapping expects.
        E::InvalidColumnType(..)
        | E::InvalidColumnIndex(_)
        | E::InvalidColumnName(_)
        | E::FromSqlConversionFailure(..) => Meaning::Schema,
        E::IntegralValueOutOfRange(..) | E::ToSqlConversionFailure(_) => Meaning::BadValue,
        E::SqliteFailure(code, msg) => {
            let msg = msg.as_deref().unwrap_or_default();
            match code.code {
                ErrorCode::TooBig | ErrorCode::TypeMismatch => Meaning::BadValue,
                ErrorCode::ConstraintViolation
                    if code.extended_code == ffi::SQLITE_CONSTRAINT_DATATYPE =>
                {
                    Meaning::BadValue
                }
                ErrorCode::Unknown if msg.contains("integer overflow") => Meaning::BadValue,
                ErrorCode::Unknown
                    if msg.starts_with("no such table") || msg.starts_with("no such column") =>
                {
                    Meaning::Schema
                }
                _ => Meaning::Failure,
            }
        }
        _ => Meaning::Failure,
    }
}

/// Wraps a rusqlite error with the operation that failed: a refused value becomes
/// `InvalidInput`, schema drift a `Schema` error naming `s3o migrate`.
pub(crate) fn db_err(context: &str, e: rusqlite::Error) -> StoreError {
    match meaning(&e) {
        Meaning::BadValue => StoreError::rejected_value(context, &e),
        Meaning::Schema => StoreError::schema(context, e),
        Meaning::Failure => StoreError::database(kind_of(&e), context, e),
    }
}

/// A reader-pool checkout failure. r2d2 retries failed connects until its timeout and then
/// reports the last connect error: with one, the database is unreachable (connection);
/// without one, every reader was busy for the whole wait (overload, not an outage).
pub(crate) fn pool_err(context: &str, e: r2d2::Error) -> StoreError {
    let busy = e.to_string() == "timed out waiting for connection";
    StoreError::database(
        if busy {
            DbErrorKind::Overload
        } else {
            DbErrorKind::Connection
        },
        format!("{context}: reader pool"),
        e,
    )
}

/// The store was closed with `LifecycleAdmin::close`.
pub(crate) fn closed_err(context: &str) -> StoreError {
    StoreError::database(DbErrorKind::Connection, context, "the store is closed")
}

/// A row that cannot be decoded (e.g. multipart metadata that is not a JSON object): `Schema`,
/// like every other undecodable column, so stored data the code cannot read never counts
/// against the breaker as an outage would.
pub(crate) fn decode_err(context: &str, e: impl Into<s3o_core::BoxError>) -> StoreError {
    StoreError::database(DbErrorKind::Schema, context, e)
}

/// A blocking task that did not complete: a panic is re-raised on the caller's task (it is a
/// bug, not a database failure); a cancelled task means the runtime is shutting down.
pub(crate) fn join_err(context: &str, e: tokio::task::JoinError) -> StoreError {
    match e.try_into_panic() {
        Ok(payload) => std::panic::resume_unwind(payload),
        Err(e) => StoreError::database(DbErrorKind::Connection, context, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn codes_map_to_neutral_kinds() {
        let table = [
            (ffi::SQLITE_BUSY, DbErrorKind::Busy),
            (ffi::SQLITE_LOCKED, DbErrorKind::Busy),
            (ffi::SQLITE_CONSTRAINT_UNIQUE, DbErrorKind::UniqueViolation),
            (
                ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
                DbErrorKind::UniqueViolation,
            ),
            (
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
                DbErrorKind::ForeignKeyViolation,
            ),
            (
                ffi::SQLITE_CONSTRAINT_NOTNULL,
                DbErrorKind::NotNullViolation,
            ),
            (ffi::SQLITE_CONSTRAINT_CHECK, DbErrorKind::CheckViolation),
            (ffi::SQLITE_CANTOPEN, DbErrorKind::Connection),
            (ffi::SQLITE_IOERR, DbErrorKind::Connection),
            (ffi::SQLITE_ERROR, DbErrorKind::Other),
        ];
        for (code, kind) in table {
            assert_eq!(kind_of(&failure(code)), kind, "code {code}");
        }
        assert_eq!(
            kind_of(&rusqlite::Error::QueryReturnedNoRows),
            DbErrorKind::Other
        );
    }

    #[test]
    fn refused_values_are_input_errors_and_drift_is_schema() {
        let too_big = failure(ffi::SQLITE_TOOBIG);
        assert!(matches!(
            db_err("x", too_big),
            StoreError::InvalidInput { .. }
        ));
        let overflow = rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some("integer overflow".into()),
        );
        assert!(matches!(
            db_err("x", overflow),
            StoreError::InvalidInput { .. }
        ));
        let missing = rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some("no such table: object_locations".into()),
        );
        let e = db_err("get copies", missing);
        assert_eq!(e.db_kind(), Some(DbErrorKind::Schema));
        assert!(e.to_string().contains("s3o migrate"), "{e}");
        let wrong =
            rusqlite::Error::InvalidColumnType(0, "size_bytes".into(), rusqlite::types::Type::Text);
        assert_eq!(db_err("x", wrong).db_kind(), Some(DbErrorKind::Schema));
    }
}
