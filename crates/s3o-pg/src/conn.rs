//! The pool and the breaker chokepoint.
//!
//! Every statement the store runs — outside transactions through [`Db`], inside them through
//! [`crate::tx::PgTx`] — passes [`CircuitBreaker::pre_check`] and reports its outcome with
//! `finish`, so an open breaker fails every call fast with `DbUnavailable` and connection
//! errors (including pool timeouts) count as failures. Statements are prepared once per
//! connection (`prepare_cached`). Leader locks and lifecycle administration take connections
//! with [`Db::raw_client`], which bypasses the breaker.

use std::sync::Arc;
use std::time::SystemTime;

use crate::tls::Connector;
use deadpool_postgres::{Object, Pool};
use s3o_core::breaker::CircuitBreaker;
use s3o_core::{Result, StoreError, Timestamp};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use tracing::Instrument;

use crate::error::{db_err, pool_err};

/// Statement parameters.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The pool behind the breaker.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) pool: Pool,
    pub(crate) breaker: Arc<CircuitBreaker>,
    /// The pool's TLS connector (`None` for `sslmode=disable`), for cancel requests, which
    /// open their own connection with the session's TLS mode.
    pub(crate) cancel_tls: Option<Connector>,
}

impl Db {
    /// A pooled connection through the breaker (counts pool timeouts as failures).
    pub(crate) async fn client(&self, ctx: &str) -> Result<Object> {
        self.breaker
            .call(async { self.pool.get().await.map_err(|e| pool_err(ctx, e)) })
            .await
    }

    /// A pooled connection that bypasses the breaker: leader locks and schema administration.
    pub(crate) async fn raw_client(&self, ctx: &str) -> Result<Object> {
        self.pool.get().await.map_err(|e| pool_err(ctx, e))
    }

    /// Runs one statement returning rows, on a pooled connection, through the breaker.
    pub(crate) async fn query(&self, ctx: &str, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.breaker
            .call(async {
                let client = self.pool.get().await.map_err(|e| pool_err(ctx, e))?;
                let stmt = client
                    .prepare_cached(sql)
                    .await
                    .map_err(|e| db_err(ctx, e))?;
                trace_sql(sql, stmt.params(), params);
                client
                    .query(&stmt, params)
                    .await
                    .map_err(|e| db_err(ctx, e))
            })
            .instrument(statement_span(ctx))
            .await
    }

    /// Runs one statement returning at most one row.
    pub(crate) async fn query_opt(
        &self,
        ctx: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        Ok(self.query(ctx, sql, params).await?.into_iter().next())
    }

    /// Runs one statement returning exactly one row (aggregates, `RETURNING` of an insert).
    pub(crate) async fn query_one(&self, ctx: &str, sql: &str, params: Params<'_>) -> Result<Row> {
        self.query_opt(ctx, sql, params)
            .await?
            .ok_or_else(|| no_row(ctx))
    }

    /// Runs one statement; returns the number of rows it touched.
    pub(crate) async fn execute(&self, ctx: &str, sql: &str, params: Params<'_>) -> Result<u64> {
        self.breaker
            .call(async {
                let client = self.pool.get().await.map_err(|e| pool_err(ctx, e))?;
                let stmt = client
                    .prepare_cached(sql)
                    .await
                    .map_err(|e| db_err(ctx, e))?;
                trace_sql(sql, stmt.params(), params);
                client
                    .execute(&stmt, params)
                    .await
                    .map_err(|e| db_err(ctx, e))
            })
            .instrument(statement_span(ctx))
            .await
    }
}

/// The target of the per-statement trace event. Every statement a role method sends, and every
/// statement of a transaction (with its `BEGIN`, `COMMIT` and `ROLLBACK`,
/// including the `ROLLBACK` of a dropped transaction) emits one `TRACE` event with the exact
/// `sql` text, `param_count`, `param_types` (the prepared statement's parameter types) and
/// `params`. **Parameter values are user data** (object keys, webhook URLs, error texts), so
/// by default each is logged as `<redacted>` (`None` when NULL); only after
/// [`log_sql_parameter_values`]`(true)` does `params` hold each value's `Debug` form,
/// separated by U+001F — and even then **`bytea` values are never logged**: they hold wrapped
/// data-encryption keys, so each is replaced by as many zero bytes (`[0, 0, …]`). Lifecycle
/// administration (migrations) and leader-lock statements run on raw connections and are not
/// traced. Off unless a subscriber enables this target; the benchmark opts in to build
/// same-SQL baselines.
pub const SQL_TRACE_TARGET: &str = "s3o::sql";

/// Separator between parameters in the `params` field of a [`SQL_TRACE_TARGET`] event.
pub const SQL_TRACE_PARAM_SEP: char = '\u{1f}';

static LOG_VALUES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Opts this process in (or back out) to logging SQL parameter values in
/// [`SQL_TRACE_TARGET`] events. Off by default, because the values are user data; `bytea`
/// values stay redacted regardless. Meant for benchmarks and debugging sessions, not
/// production.
pub fn log_sql_parameter_values(on: bool) {
    LOG_VALUES.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The redacted form of one non-`bytea` value.
const REDACTED: &str = "<redacted>";

/// Lazily formats statement parameters for the trace event (only when it is enabled):
/// values redacted unless `values` (the opt-in), `bytea` values always.
pub(crate) struct TraceParams<'a> {
    types: &'a [Type],
    params: Params<'a>,
    values: bool,
}

/// A `bytea` parameter as zero bytes of its length: the length is visible, the key is not.
fn redacted_bytes(debug: &str) -> String {
    if debug == "None" {
        return debug.to_owned();
    }
    // `[1, 2, 3]`, `Some([1, 2, 3])`, `[]`: one comma fewer than bytes, unless empty.
    let n = if debug.contains("[]") {
        0
    } else {
        debug.matches(',').count() + 1
    };
    format!("{:?}", vec![0u8; n])
}

impl std::fmt::Display for TraceParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                write!(f, "{SQL_TRACE_PARAM_SEP}")?;
            }
            match self.types.get(i) {
                Some(t) if *t == Type::BYTEA => f.write_str(&redacted_bytes(&format!("{p:?}")))?,
                Some(t) if *t == Type::BYTEA_ARRAY => f.write_str("<redacted bytea[]>")?,
                Some(_) if self.values => write!(f, "{p:?}")?,
                Some(_) => {
                    // NULL carries no user data and tells a reader which branch ran.
                    let shown = format!("{p:?}");
                    f.write_str(if shown == "None" { "None" } else { REDACTED })?
                }
                // Types unknown (never the case for a prepared statement): log nothing.
                None => f.write_str("<unknown type>")?,
            }
        }
        Ok(())
    }
}

/// The parameter types of a trace event, comma-separated.
struct TraceTypes<'a>(&'a [Type]);

impl std::fmt::Display for TraceTypes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(t.name())?;
        }
        Ok(())
    }
}

/// Emits the [`SQL_TRACE_TARGET`] event for one statement; `types` are the prepared
/// statement's parameter types (empty for `BEGIN`/`COMMIT`/`ROLLBACK`).
pub(crate) fn trace_sql(sql: &str, types: &[Type], params: Params<'_>) {
    tracing::trace!(
        target: "s3o::sql",
        sql,
        param_count = params.len(),
        param_types = %TraceTypes(types),
        params = %TraceParams {
            types,
            params,
            values: LOG_VALUES.load(std::sync::atomic::Ordering::Relaxed),
        },
    );
}

/// The span every statement runs in: engine and operation, at debug level.
pub(crate) fn statement_span(op: &str) -> tracing::Span {
    tracing::debug_span!("s3o_statement", engine = "postgres", op)
}

/// A statement that always returns a row returned none: a bug, not an answer.
pub(crate) fn no_row(ctx: &str) -> StoreError {
    StoreError::database(
        s3o_core::DbErrorKind::Other,
        ctx,
        "statement returned no row",
    )
}

/// A nullable `timestamptz` as a [`Timestamp`] (`NULL` ⇒ zero).
pub(crate) fn ts(t: Option<SystemTime>) -> Timestamp {
    t.map(Timestamp::from_system_time)
        .unwrap_or(Timestamp::ZERO)
}

/// A [`Timestamp`] as a nullable `timestamptz` parameter (zero ⇒ `NULL`, i.e. "now" where the
/// statement says `COALESCE($n, NOW())`).
pub(crate) fn opt_ts(t: Timestamp) -> Option<SystemTime> {
    (!t.is_zero()).then(|| t.to_system_time())
}

/// Empty text as SQL `NULL`.
pub(crate) fn null_if_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Empty bytes as SQL `NULL`.
pub(crate) fn null_if_empty_bytes(b: &[u8]) -> Option<&[u8]> {
    (!b.is_empty()).then_some(b)
}

/// Zero as SQL `NULL`.
pub(crate) fn null_if_zero(n: i64) -> Option<i64> {
    (n != 0).then_some(n)
}

/// A row limit for `LIMIT $n`.
pub(crate) fn limit_param(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A duration as whole microseconds for `$n::bigint * INTERVAL '1 microsecond'`, capped at
/// [`s3o_core::validate::MAX_AGE`] (as on SQLite) so `NOW() ± it` stays in range.
pub(crate) fn interval_micros(d: std::time::Duration) -> i64 {
    i64::try_from(s3o_core::validate::age(d).as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_params_never_show_bytea_values() {
        let dek: Vec<u8> = vec![0xde, 0xad, 0xbe, 0xef];
        let some_dek: Option<&[u8]> = Some(&dek);
        let none: Option<&[u8]> = None;
        let empty: Vec<u8> = Vec::new();
        let key = "k";
        let size = 7i64;
        let params: Params<'_> = &[&key, &dek, &some_dek, &none, &empty, &size];
        let types = [
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
            Type::BYTEA,
            Type::BYTEA,
            Type::INT8,
        ];
        let shown = TraceParams {
            types: &types,
            params,
            values: true,
        }
        .to_string();
        let fields: Vec<&str> = shown.split(SQL_TRACE_PARAM_SEP).collect();
        assert_eq!(
            fields,
            ["\"k\"", "[0, 0, 0, 0]", "[0, 0, 0, 0]", "None", "[]", "7"]
        );
        for b in &dek {
            assert!(!shown.contains(&b.to_string()), "{shown}");
        }
        assert_eq!(
            TraceTypes(&types).to_string(),
            "text,bytea,bytea,bytea,bytea,int8"
        );
    }

    #[test]
    fn trace_params_are_redacted_unless_opted_in() {
        let key = "secret/object-key";
        let url: Option<&str> = Some("https://hook.example/token");
        let none: Option<&str> = None;
        let size = 7i64;
        let params: Params<'_> = &[&key, &url, &none, &size];
        let types = [Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8];
        let shown = TraceParams {
            types: &types,
            params,
            values: false,
        }
        .to_string();
        let fields: Vec<&str> = shown.split(SQL_TRACE_PARAM_SEP).collect();
        assert_eq!(fields, [REDACTED, REDACTED, "None", REDACTED]);
        assert!(
            !shown.contains("secret") && !shown.contains("token"),
            "{shown}"
        );
    }
}
