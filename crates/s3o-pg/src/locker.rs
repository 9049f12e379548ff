//! Leader locks: session advisory locks held on one dedicated pooled connection.
//!
//! `with_advisory_lock` takes a connection from the pool (bypassing the breaker: a leader
//! must be able to step down while the breaker is open), runs `pg_try_advisory_lock(id)` on
//! it, runs the critical section while holding that connection, and unlocks on the same
//! connection — also when the section errors or panics (the panic is caught, the lock
//! released, then the panic resumed) and when the caller drops the future (the unlock is
//! spawned). If the unlock cannot be confirmed within 5 s the connection is detached from
//! the pool and closed, which releases every session lock it held. A holder whose
//! connection dies (`pg_terminate_backend`, network loss) loses the lock with it.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Object;
use s3o_core::{AdvisoryLocker, BoxFuture, LockId, Result};

use crate::PgStore;
use crate::error::db_err;

/// How long the unlock may take before the connection is closed instead.
const UNLOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls a future, turning a panic into `Err(payload)`.
struct CatchUnwind<'a, T> {
    inner: BoxFuture<'a, T>,
}

impl<T> Future for CatchUnwind<'_, T> {
    type Output = std::result::Result<T, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

async fn unlock(client: Object, id: i64) {
    let r = tokio::time::timeout(
        UNLOCK_TIMEOUT,
        client.query_one("SELECT pg_advisory_unlock($1)", &[&id]),
    )
    .await;
    match r {
        Ok(Ok(row)) if row.get::<_, bool>(0) => {}
        other => {
            // Lost connection, timeout, or the lock was not ours any more: close the session
            // (that releases whatever it still holds) instead of pooling it.
            let why = match other {
                Ok(Ok(_)) => "lock was not held".to_owned(),
                Ok(Err(e)) => crate::error::Chain(&e).to_string(),
                Err(_) => "timed out".to_owned(),
            };
            tracing::warn!(
                lock_id = id,
                why,
                "leader-lock unlock failed; closing its connection"
            );
            drop(Object::take(client));
        }
    }
}

/// Holds the lock's connection; on drop without [`Held::release`] (caller cancelled), the
/// unlock is spawned, or the connection closed when no runtime is left.
struct Held {
    client: Option<Object>,
    id: i64,
}

impl Held {
    /// Returns the connection to the pool without unlocking (the lock was never taken).
    fn disarm(mut self) {
        self.client.take();
    }

    async fn release(mut self) {
        if let Some(client) = self.client.take() {
            unlock(client, self.id).await;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let id = self.id;
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(unlock(client, id));
                }
                Err(_) => drop(Object::take(client)),
            }
        }
    }
}

#[async_trait]
impl AdvisoryLocker for PgStore {
    async fn with_advisory_lock(
        &self,
        lock: LockId,
        critical: BoxFuture<'_, Result<()>>,
    ) -> Result<Option<Result<()>>> {
        let id = lock.id();
        let client = self.db.raw_client("get leader-lock connection").await?;
        // Armed before asking: a caller cancelled while the try-lock is in flight must not
        // leave a granted lock on a pooled connection.
        let held = Held {
            client: Some(client),
            id,
        };
        let got = match held.client.as_ref() {
            Some(c) => c.query_one("SELECT pg_try_advisory_lock($1)", &[&id]).await,
            None => unreachable!("armed above"),
        };
        let got: bool = match got {
            Ok(row) => row.get(0),
            Err(e) => {
                drop(held);
                return Err(db_err("try leader lock", e));
            }
        };
        if !got {
            held.disarm();
            tracing::debug!(%lock, "leader lock held elsewhere");
            return Ok(None);
        }
        tracing::debug!(%lock, "leader lock acquired");
        let outcome = CatchUnwind { inner: critical }.await;
        held.release().await;
        match outcome {
            Ok(r) => Ok(Some(r)),
            Err(panic) => {
                tracing::error!(%lock, "critical section panicked; leader lock released");
                std::panic::resume_unwind(panic)
            }
        }
    }
}
