//! Mapping of rusqlite, r2d2 and task errors onto the engine-neutral [`StoreError`].

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

/// Wraps a rusqlite error with the operation that failed.
pub(crate) fn db_err(context: &str, e: rusqlite::Error) -> StoreError {
    StoreError::database(kind_of(&e), context, e)
}

/// A reader-pool checkout failure (timeout or failed connect): the database is unreachable.
pub(crate) fn pool_err(context: &str, e: r2d2::Error) -> StoreError {
    StoreError::database(
        DbErrorKind::Connection,
        format!("{context}: reader pool"),
        e,
    )
}

/// The store was closed with `LifecycleAdmin::close`.
pub(crate) fn closed_err(context: &str) -> StoreError {
    StoreError::database(DbErrorKind::Connection, context, "the store is closed")
}

/// A row that cannot be decoded (e.g. multipart metadata that is not a JSON object).
pub(crate) fn decode_err(context: &str, e: impl Into<s3o_core::BoxError>) -> StoreError {
    StoreError::database(DbErrorKind::Other, context, e)
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
}
