//! The transaction adapter: an owned pooled connection inside `BEGIN … COMMIT`.
//!
//! `BEGIN` is not sent on its own: it travels pipelined with the transaction's first
//! statement (tokio-postgres sends requests issued concurrently on one client back to back),
//! saving a round trip per operation (DESIGN §2.14). Every statement, `COMMIT` and `ROLLBACK`
//! pass the store's circuit breaker.
//!
//! A [`PgTx`] dropped without `commit`/`rollback` (a cancelled caller) never returns its
//! connection to the pool mid-transaction. Idle in the transaction, a `ROLLBACK` is spawned on
//! it first. With a statement still running (typically a caller that timed out while waiting
//! on a hot key's lock), a cancel request is sent for that statement and the connection is
//! detached from the pool and closed once the statement has answered: a `ROLLBACK` queued
//! behind it would leave the connection parked on the lock, and callers timing out one after
//! another would drain the pool; and a late-arriving cancel must never hit another caller's
//! statement on a reused connection. With no runtime to spawn on, the connection is detached
//! and closed. Lock waits are bounded anyway by `lock_timeout` ([`crate::PgOptions`]).

use std::sync::Arc;

use crate::tls::Connector;
use async_trait::async_trait;
use deadpool_postgres::Object;
use s3o_core::breaker::CircuitBreaker;
use s3o_core::engine::{Runner, Transaction, TxAdapter};
use s3o_core::locks::KEY_LOCK_CLASS;
use s3o_core::{DbErrorKind, Result, StoreError, validate};
use tokio_postgres::Row;
use tracing::Instrument;

use crate::PgStore;
use crate::conn::{Params, no_row, statement_span, trace_sql};
use crate::error::{Chain, db_err};

/// One open transaction on one pooled connection.
pub(crate) struct PgTx {
    client: Option<Object>,
    breaker: Arc<CircuitBreaker>,
    /// The pool's TLS connector, for a cancel request on drop.
    cancel_tls: Option<Connector>,
    /// `BEGIN` has been sent (with the first statement).
    begun: bool,
    /// A statement has been sent and has not answered yet (set before sending, cleared when
    /// the answer arrives): if the transaction is dropped while this holds, the caller was
    /// cancelled mid-statement.
    in_flight: bool,
    /// The first statement that failed on the server: the transaction is aborted and may not
    /// commit; `commit` reports it.
    failed: Option<FailedStatement>,
}

/// What made a transaction abort, kept for the error `commit` returns (the original error
/// went to the caller of the failing statement).
#[derive(Debug)]
struct FailedStatement {
    kind: DbErrorKind,
    /// The failed statement's error with its whole source chain.
    error: String,
}

impl std::fmt::Display for FailedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "earlier statement failed: {}", self.error)
    }
}

impl std::error::Error for FailedStatement {}

enum Out {
    Rows(Vec<Row>),
    Count(u64),
}

impl PgTx {
    async fn run(&mut self, ctx: &str, sql: &str, params: Params<'_>, rows: bool) -> Result<Out> {
        let Some(client) = self.client.as_ref() else {
            return Err(StoreError::database(
                DbErrorKind::Other,
                ctx,
                "transaction already finished",
            ));
        };
        let begin = !self.begun;
        // Marked before sending: if this future is dropped mid-flight, Drop must assume a
        // transaction may be open (a ROLLBACK outside one is harmless) and a statement running.
        self.begun = true;
        self.in_flight = true;
        let r = self
            .breaker
            .call(async move {
                let stmt = client
                    .prepare_cached(sql)
                    .await
                    .map_err(|e| db_err(ctx, e))?;
                if begin {
                    trace_sql("BEGIN", &[], &[]);
                }
                trace_sql(sql, stmt.params(), params);
                if begin {
                    // Pipelined: BEGIN and the statement leave in one write, in this order.
                    let (b, r) = if rows {
                        let (b, r) = tokio::join!(
                            client.batch_execute("BEGIN"),
                            client.query(&stmt, params)
                        );
                        (b, r.map(Out::Rows))
                    } else {
                        let (b, r) = tokio::join!(
                            client.batch_execute("BEGIN"),
                            client.execute(&stmt, params)
                        );
                        (b, r.map(Out::Count))
                    };
                    b.map_err(|e| db_err("begin transaction", e))?;
                    r.map_err(|e| db_err(ctx, e))
                } else if rows {
                    client
                        .query(&stmt, params)
                        .await
                        .map(Out::Rows)
                        .map_err(|e| db_err(ctx, e))
                } else {
                    client
                        .execute(&stmt, params)
                        .await
                        .map(Out::Count)
                        .map_err(|e| db_err(ctx, e))
                }
            })
            .instrument(statement_span(ctx))
            .await;
        self.in_flight = false;
        if let Err(e @ StoreError::Database { kind, .. }) = &r
            && self.failed.is_none()
        {
            self.failed = Some(FailedStatement {
                kind: *kind,
                error: Chain(e).to_string(),
            });
        }
        r
    }

    /// Runs one statement returning rows.
    pub(crate) async fn query(
        &mut self,
        ctx: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>> {
        match self.run(ctx, sql, params, true).await? {
            Out::Rows(r) => Ok(r),
            Out::Count(_) => Ok(Vec::new()),
        }
    }

    /// Runs one statement returning at most one row.
    pub(crate) async fn query_opt(
        &mut self,
        ctx: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        Ok(self.query(ctx, sql, params).await?.into_iter().next())
    }

    /// Runs one statement returning exactly one row.
    pub(crate) async fn query_one(
        &mut self,
        ctx: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Row> {
        self.query_opt(ctx, sql, params)
            .await?
            .ok_or_else(|| no_row(ctx))
    }

    /// Runs one statement; returns the number of rows it touched.
    pub(crate) async fn execute(
        &mut self,
        ctx: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64> {
        match self.run(ctx, sql, params, false).await? {
            Out::Count(n) => Ok(n),
            Out::Rows(r) => Ok(r.len() as u64),
        }
    }

    async fn finish(mut self: Box<Self>, sql: &'static str, ctx: &str) -> Result<()> {
        if self.in_flight && self.client.is_some() {
            // A statement future was dropped mid-flight and the body went on: Drop cancels the
            // statement and closes the connection, which rolls the transaction back.
            drop(self);
            return if sql == "COMMIT" {
                Err(StoreError::database(
                    DbErrorKind::Other,
                    ctx,
                    "a statement of this transaction was abandoned before it answered; the \
                     transaction was cancelled and rolled back",
                ))
            } else {
                Ok(())
            };
        }
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        if !self.begun {
            // Nothing was sent: the connection goes straight back to the pool.
            return Ok(());
        }
        trace_sql(sql, &[], &[]);
        let r = self
            .breaker
            .call(async { client.batch_execute(sql).await.map_err(|e| db_err(ctx, e)) })
            .await;
        if r.is_err() {
            // Unknown state: never hand this connection to another caller.
            drop(Object::take(client));
        }
        r
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !self.begun {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // Closing the session ends the transaction on the server.
            drop(Object::take(client));
            return;
        };
        if self.in_flight {
            // The statement may be waiting on a lock for a long time: cancel it, and close the
            // connection (after the statement answers) instead of pooling it, since a cancel
            // request races with whatever the connection runs next.
            let token = client.cancel_token();
            let detached = Object::take(client);
            let tls = self.cancel_tls.take();
            handle.spawn(async move {
                let sent = match tls {
                    Some(tls) => token.cancel_query(tls).await,
                    None => token.cancel_query(tokio_postgres::NoTls).await,
                };
                if let Err(e) = sent {
                    tracing::debug!(
                        error = %Chain(&e),
                        "cancel request for a dropped transaction's statement failed"
                    );
                }
                drop(detached);
            });
            return;
        }
        handle.spawn(async move {
            trace_sql("ROLLBACK", &[], &[]);
            if let Err(e) = client.batch_execute("ROLLBACK").await {
                tracing::debug!(
                    error = %Chain(&e),
                    "rollback of a dropped transaction failed; closing its connection"
                );
                drop(Object::take(client));
            }
        });
    }
}

#[async_trait]
impl TxAdapter for PgTx {
    async fn acquire_key_lock(&mut self, key: &str) -> Result<()> {
        validate::key(key)?;
        // Transaction-scoped advisory lock in the two-int namespace (class, hashtext(key)):
        // never collides with the single-bigint leader locks. Released at COMMIT/ROLLBACK.
        self.execute(
            "acquire key lock",
            "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))",
            &[&KEY_LOCK_CLASS, &key],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Transaction for PgTx {
    async fn commit(mut self: Box<Self>) -> Result<()> {
        if let Some(failed) = self.failed.take() {
            let r = self.finish("ROLLBACK", "rollback transaction").await;
            if let Err(e) = r {
                tracing::warn!(error = %Chain(&e), "rollback of an aborted transaction failed");
            }
            // The original failure's kind (a deadlock stays retryable, a constraint violation
            // stays an answer the breaker ignores) and its text as the source.
            return Err(StoreError::database(
                failed.kind,
                "commit transaction: a statement of this transaction failed; it was rolled back",
                failed,
            ));
        }
        self.finish("COMMIT", "commit transaction").await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.finish("ROLLBACK", "rollback transaction").await
    }
}

impl PgStore {
    /// Opens a transaction (lazily: `BEGIN` leaves with its first statement).
    pub(crate) async fn begin_pg(&self) -> Result<PgTx> {
        let client = self.db.client("begin transaction").await?;
        // Without the `tls` feature the connector is the driver's `Copy` `NoTls`.
        #[cfg_attr(not(feature = "tls"), allow(clippy::clone_on_copy))]
        Ok(PgTx {
            client: Some(client),
            breaker: Arc::clone(&self.db.breaker),
            cancel_tls: self.db.cancel_tls.clone(),
            begun: false,
            in_flight: false,
            failed: None,
        })
    }
}

#[async_trait]
impl Runner for PgStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Ok(Box::new(self.begin_pg().await?))
    }

    fn instance_id(&self) -> &str {
        &self.instance_id
    }
}
