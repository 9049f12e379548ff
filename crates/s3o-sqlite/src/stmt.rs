//! [`Db`], the statement chokepoint: every statement passes the breaker and emits its trace
//! event; parameter values stay out of logs unless the process opts in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, Params, Row};
use s3o_core::Result;
use s3o_core::breaker::CircuitBreaker;

use crate::error::db_err;

/// A connection as a statement executor: every statement passes the breaker (when one is
/// attached) and every error is mapped with the statement's context.
pub(crate) struct Db<'c> {
    conn: &'c Connection,
    breaker: Option<&'c CircuitBreaker>,
}

impl<'c> Db<'c> {
    pub(crate) fn new(conn: &'c Connection, breaker: Option<&'c CircuitBreaker>) -> Self {
        Db { conn, breaker }
    }

    /// The breaker chokepoint: pre-check, run, report.
    fn guarded<T>(
        &self,
        ctx: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        match self.breaker {
            Some(b) => {
                let permit = b.pre_check()?;
                permit.finish(f(self.conn).map_err(|e| db_err(ctx, e)))
            }
            None => f(self.conn).map_err(|e| db_err(ctx, e)),
        }
    }

    /// Runs one statement; returns the number of rows changed.
    pub(crate) fn execute<P: Params>(&self, ctx: &str, sql: &str, params: P) -> Result<usize> {
        self.guarded(ctx, |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let n = stmt.execute(params)?;
            trace_sql(sql, &stmt);
            Ok(n)
        })
    }

    /// The first row mapped by `f`, `None` when there is none.
    pub(crate) fn query_opt<T, P: Params>(
        &self,
        ctx: &str,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.guarded(ctx, |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let mut rows = stmt.query(params)?;
            let out = match rows.next()? {
                Some(row) => f(row).map(Some),
                None => Ok(None),
            };
            drop(rows);
            trace_sql(sql, &stmt);
            out
        })
    }

    /// The single row of a statement that always returns one (aggregates, `EXISTS`).
    pub(crate) fn query_one<T, P: Params>(
        &self,
        ctx: &str,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.guarded(ctx, |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let out = stmt.query_row(params, f)?;
            trace_sql(sql, &stmt);
            Ok(out)
        })
    }

    /// Every row mapped by `f`.
    pub(crate) fn query_vec<T, P: Params>(
        &self,
        ctx: &str,
        sql: &str,
        params: P,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.guarded(ctx, |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let out = stmt.query_map(params, f)?.collect();
            trace_sql(sql, &stmt);
            out
        })
    }

    /// Runs a parameterless batch (transaction control, schema).
    pub(crate) fn batch(&self, ctx: &str, sql: &str) -> Result<()> {
        self.guarded(ctx, |c| {
            tracing::trace!(target: "s3o::sql", sql, expanded = sql);
            c.execute_batch(sql)
        })
    }

    /// The underlying connection, for breaker-free work (rollback, migrations).
    pub(crate) fn raw(&self) -> &Connection {
        self.conn
    }
}

/// The target of the per-statement trace event: every statement run through the breaker
/// chokepoint emits one `TRACE` event with the exact `sql` text and `expanded`. Parameter
/// values are user data, so by default `expanded` is a fixed redaction marker; only after
/// [`log_sql_parameter_values`]`(true)` is it the statement with its bound parameters inlined
/// as SQL literals (`sqlite3_expanded_sql`). Off unless a subscriber enables this target; the
/// benchmark opts in and captures it to build same-SQL baselines.
pub const SQL_TRACE_TARGET: &str = "s3o::sql";

/// `now - age` in microseconds: the cutoff of an "older than" query, on this host's clock —
/// the database's clock for SQLite, since every process sharing the file runs on this host —
/// with the age capped at [`s3o_core::validate::MAX_AGE`] as on PostgreSQL.
pub(crate) fn now_minus(age: Duration) -> i64 {
    s3o_core::Timestamp::now()
        .minus(s3o_core::validate::age(age))
        .as_micros()
}

static LOG_VALUES: AtomicBool = AtomicBool::new(false);

/// Opts this process in (or back out) to logging SQL parameter values in
/// [`SQL_TRACE_TARGET`] events (the `expanded` field). Off by default, because the values are
/// user data (object keys, webhook URLs) and wrapped encryption keys. Meant for benchmarks and
/// debugging sessions, not production.
pub fn log_sql_parameter_values(on: bool) {
    LOG_VALUES.store(on, Ordering::Relaxed);
}

/// What `expanded` holds when values are not logged.
const REDACTED: &str = "<redacted: see log_sql_parameter_values>";

/// Emits the [`SQL_TRACE_TARGET`] event for a statement that has just run (its parameters are
/// still bound: `sqlite3_reset` keeps bindings).
fn trace_sql(sql: &str, stmt: &rusqlite::Statement<'_>) {
    if tracing::enabled!(target: "s3o::sql", tracing::Level::TRACE) {
        let expanded = expanded_for_trace(stmt, LOG_VALUES.load(Ordering::Relaxed));
        tracing::trace!(target: "s3o::sql", sql, expanded = expanded.as_str());
    }
}

/// The `expanded` field: the statement with its values only when `values` (the opt-in).
fn expanded_for_trace(stmt: &rusqlite::Statement<'_>, values: bool) -> String {
    if values {
        stmt.expanded_sql().unwrap_or_default()
    } else {
        REDACTED.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_values_are_redacted_unless_opted_in() {
        let c = Connection::open_in_memory().unwrap();
        let mut stmt = c.prepare("SELECT ?1").unwrap();
        stmt.raw_bind_parameter(1, "secret/object-key").unwrap();
        let hidden = expanded_for_trace(&stmt, false);
        assert!(!hidden.contains("secret"), "{hidden}");
        assert_eq!(hidden, REDACTED);
        assert!(expanded_for_trace(&stmt, true).contains("secret/object-key"));
    }
}
