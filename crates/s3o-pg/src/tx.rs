//! The transaction adapter: an owned pooled connection inside `BEGIN … COMMIT`.
//!
//! `BEGIN` is not sent on its own: it travels pipelined with the transaction's first
//! statement (tokio-postgres sends requests issued concurrently on one client back to back),
//! saving a round trip per operation (DESIGN §2.14). Every statement, `COMMIT` and `ROLLBACK`
//! pass the store's circuit breaker.
//!
//! A [`PgTx`] dropped without `commit`/`rollback` (a cancelled caller) never returns its
//! connection to the pool mid-transaction: a `ROLLBACK` is spawned on it first, or, with no
//! runtime to spawn on, the connection is detached from the pool and closed.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Object;
use s3o_core::breaker::CircuitBreaker;
use s3o_core::locks::KEY_LOCK_CLASS;
use s3o_core::{DbErrorKind, Result, Runner, StoreError, Transaction, TxAdapter, validate};
use tokio_postgres::Row;
use tracing::Instrument;

use crate::PgStore;
use crate::conn::{Params, no_row, statement_span, trace_sql};
use crate::error::db_err;

/// One open transaction on one pooled connection.
pub(crate) struct PgTx {
    client: Option<Object>,
    breaker: Arc<CircuitBreaker>,
    /// `BEGIN` has been sent (with the first statement).
    begun: bool,
    /// A statement failed on the server: the transaction is aborted and may not commit.
    failed: bool,
}

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
        // transaction may be open (a ROLLBACK outside one is harmless).
        self.begun = true;
        let r = self
            .breaker
            .call(async move {
                let stmt = client
                    .prepare_cached(sql)
                    .await
                    .map_err(|e| db_err(ctx, e))?;
                if begin {
                    trace_sql("BEGIN", &[]);
                }
                trace_sql(sql, params);
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
        if let Err(StoreError::Database { .. }) = &r {
            self.failed = true;
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
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        if !self.begun {
            // Nothing was sent: the connection goes straight back to the pool.
            return Ok(());
        }
        trace_sql(sql, &[]);
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
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
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
    async fn commit(self: Box<Self>) -> Result<()> {
        if self.failed {
            let r = self.finish("ROLLBACK", "rollback transaction").await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "rollback of an aborted transaction failed");
            }
            return Err(StoreError::database(
                DbErrorKind::Other,
                "commit transaction",
                "a statement of this transaction failed; it was rolled back",
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
        Ok(PgTx {
            client: Some(client),
            breaker: Arc::clone(&self.db.breaker),
            begun: false,
            failed: false,
        })
    }
}

#[async_trait]
impl Runner for PgStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Ok(Box::new(self.begin_pg().await?))
    }
}
