//! Mapping of driver and pool errors onto the engine-neutral [`StoreError`].
//!
//! SQLSTATEs become [`DbErrorKind`]s (40001 ⇒ serialization, 40P01 ⇒ deadlock, 23505/23503/
//! 23502/23514 ⇒ constraint kinds, connection classes ⇒ connection, undefined table/column/
//! schema ⇒ schema); the driver error is kept as the source so callers can walk the chain.
//! Values the server refuses (class 22 "data exception": numeric overflow, time out of
//! range, invalid text; 54000 "program limit exceeded": an index row too large) are
//! `InvalidInput`, never a database failure. A pool wait timeout is overload, not an outage.
//! Driver errors never contain the password.

use std::error::Error as StdError;

use deadpool_postgres::PoolError;
use s3o_core::{DbErrorKind, StoreError};
use tokio_postgres::error::SqlState;

/// Classifies a driver error.
pub(crate) fn kind_of(e: &tokio_postgres::Error) -> DbErrorKind {
    if let Some(code) = e.code() {
        return kind_of_state(code);
    }
    if e.is_closed() {
        return DbErrorKind::Connection;
    }
    // Errors without a SQLSTATE are client side: I/O, TLS, connect, timeout (connection
    // trouble) or encoding/decoding of values (our bug, "other").
    let mut src: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = src {
        if s.is::<std::io::Error>() {
            return DbErrorKind::Connection;
        }
        src = s.source();
    }
    let text = e.to_string();
    if text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.starts_with("error performing TLS")
        || text.starts_with("error communicating")
        || text.contains("connection closed")
    {
        DbErrorKind::Connection
    } else {
        DbErrorKind::Other
    }
}

/// Classifies a SQLSTATE.
pub(crate) fn kind_of_state(code: &SqlState) -> DbErrorKind {
    match code {
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE => DbErrorKind::Serialization,
        c if *c == SqlState::T_R_DEADLOCK_DETECTED => DbErrorKind::Deadlock,
        c if *c == SqlState::UNIQUE_VIOLATION => DbErrorKind::UniqueViolation,
        c if *c == SqlState::FOREIGN_KEY_VIOLATION => DbErrorKind::ForeignKeyViolation,
        c if *c == SqlState::NOT_NULL_VIOLATION => DbErrorKind::NotNullViolation,
        c if *c == SqlState::CHECK_VIOLATION => DbErrorKind::CheckViolation,
        c if *c == SqlState::UNDEFINED_TABLE
            || *c == SqlState::UNDEFINED_COLUMN
            || *c == SqlState::INVALID_SCHEMA_NAME
            || *c == SqlState::UNDEFINED_FUNCTION =>
        {
            DbErrorKind::Schema
        }
        // lock_timeout expired (55P03): the statement was refused before changing anything
        // and its transaction is aborted, so rerunning the whole transaction is safe; the
        // database answered, so the breaker does not count it.
        c if *c == SqlState::LOCK_NOT_AVAILABLE => DbErrorKind::Busy,
        c => {
            let s = c.code();
            // Class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown,
            // cannot connect now; 53300: too many connections.
            if s.starts_with("08") || matches!(s, "57P01" | "57P02" | "57P03" | "53300") {
                DbErrorKind::Connection
            } else {
                DbErrorKind::Other
            }
        }
    }
}

/// True for SQLSTATEs that say a value was refused: class 22 (data exception) and 54000
/// (program limit exceeded, e.g. an index row over the size limit).
pub(crate) fn is_bad_value(code: &SqlState) -> bool {
    code.code().starts_with("22") || *code == SqlState::PROGRAM_LIMIT_EXCEEDED
}

/// Wraps a driver error with what the store was doing: a refused value becomes
/// `InvalidInput`, a missing table or column a `Schema` error naming `s3o migrate`.
pub(crate) fn db_err(context: &str, e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if is_bad_value(db.code()) {
            return StoreError::rejected_value(context, db.message());
        }
        // A column's type changed under a prepared statement: schema drift.
        if *db.code() == SqlState::FEATURE_NOT_SUPPORTED
            && db
                .message()
                .starts_with("cached plan must not change result type")
        {
            return StoreError::schema(context, e);
        }
    }
    match kind_of(&e) {
        DbErrorKind::Schema => StoreError::schema(context, e),
        kind => StoreError::database(kind, context, e),
    }
}

/// A row whose column does not decode as this binary expects (a column of another type, a
/// missing column): schema drift, reported as `Schema` instead of a panic.
pub(crate) fn decode_err(context: &str, e: tokio_postgres::Error) -> StoreError {
    StoreError::schema(format!("{context}: decode row"), e)
}

/// Wraps a pool error, kept as the source: a wait timeout is overload (every connection is
/// busy, the database answers); a closed pool and create/recycle timeouts are connection
/// failures.
pub(crate) fn pool_err(context: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => db_err(context, e),
        e @ PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            StoreError::database(DbErrorKind::Overload, context, e)
        }
        e @ PoolError::NoRuntimeSpecified => StoreError::database(DbErrorKind::Other, context, e),
        other => StoreError::database(DbErrorKind::Connection, context, other),
    }
}

/// Reads columns without panicking: a column that is missing or of another type is a
/// `Schema` error (`Row::get` would panic).
pub(crate) trait RowExt {
    /// Column `idx` as `T`.
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, idx: usize) -> s3o_core::Result<T>;
}

impl RowExt for tokio_postgres::Row {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, idx: usize) -> s3o_core::Result<T> {
        self.try_get(idx).map_err(|e| decode_err("read column", e))
    }
}

/// Displays an error with its whole source chain (`outer: inner: driver`), for log fields:
/// `StoreError::Database`'s own `Display` names only the context and kind. A source whose
/// text its parent already ends with (tokio-postgres prints its cause itself) is not repeated.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut src = self.0.source();
        while let Some(s) = src {
            let part = s.to_string();
            if !text.ends_with(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            src = s.source();
        }
        f.write_str(&text)
    }
}

/// Replaces a foreign-key violation by the answer it means at this call site (an unknown
/// backend, an unknown upload); every other error passes unchanged.
pub(crate) fn on_fk(e: StoreError, answer: impl FnOnce() -> StoreError) -> StoreError {
    if e.db_kind() == Some(DbErrorKind::ForeignKeyViolation) {
        answer()
    } else {
        e
    }
}

/// [`on_fk`] for the common case: the only foreign key is the backend's.
pub(crate) fn unknown_backend(backend: &str) -> impl FnOnce(StoreError) -> StoreError + '_ {
    move |e| {
        on_fk(e, || StoreError::UnknownBackend {
            backend: backend.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_neutral_kinds() {
        let table = [
            ("40001", DbErrorKind::Serialization),
            ("40P01", DbErrorKind::Deadlock),
            ("23505", DbErrorKind::UniqueViolation),
            ("23503", DbErrorKind::ForeignKeyViolation),
            ("23502", DbErrorKind::NotNullViolation),
            ("23514", DbErrorKind::CheckViolation),
            ("08006", DbErrorKind::Connection),
            ("57P01", DbErrorKind::Connection),
            ("42601", DbErrorKind::Other),
            ("42P01", DbErrorKind::Schema),
            ("42703", DbErrorKind::Schema),
            ("3F000", DbErrorKind::Schema),
            ("55P03", DbErrorKind::Busy),
        ];
        for (code, kind) in table {
            assert_eq!(kind_of_state(&SqlState::from_code(code)), kind, "{code}");
        }
        assert!(kind_of_state(&SqlState::from_code("40001")).is_retryable());
        assert!(kind_of_state(&SqlState::from_code("40P01")).is_retryable());
        assert!(!kind_of_state(&SqlState::from_code("23505")).is_retryable());
        // A lock timeout is retried and never opens the breaker.
        let busy = StoreError::database(kind_of_state(&SqlState::from_code("55P03")), "x", "y");
        assert!(busy.is_retryable());
        assert!(!s3o_core::breaker::counts_as_failure(&busy));
    }

    #[test]
    fn bad_value_states_are_input_errors() {
        for code in ["22003", "22008", "22021", "22P05", "22001", "54000"] {
            assert!(is_bad_value(&SqlState::from_code(code)), "{code}");
        }
        for code in ["23505", "40001", "08006", "42P01", "XX000"] {
            assert!(!is_bad_value(&SqlState::from_code(code)), "{code}");
        }
    }

    #[test]
    fn pool_wait_timeouts_are_overload_and_others_connection_failures() {
        let e = pool_err(
            "get connection",
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait),
        );
        assert_eq!(e.db_kind(), Some(DbErrorKind::Overload));
        assert!(!s3o_core::breaker::counts_as_failure(&e));
        let e = pool_err(
            "get connection",
            PoolError::Timeout(deadpool_postgres::TimeoutType::Create),
        );
        assert_eq!(e.db_kind(), Some(DbErrorKind::Connection));
        let e = pool_err("get connection", PoolError::Closed);
        assert_eq!(e.db_kind(), Some(DbErrorKind::Connection));
        // The pool error is the source, not a string copy of it.
        let src = e.source().expect("source");
        assert!(src.is::<PoolError>(), "{src:?}");
        assert_eq!(
            Chain(&e).to_string(),
            format!("get connection: connection failure: {src}")
        );
    }
}
