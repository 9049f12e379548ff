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
//!
//! **Fencing.** While the critical section runs, the lock's connection is watched: every
//! [`LOCK_WATCH_INTERVAL`] it must answer `SELECT 1` within [`LOCK_WATCH_TIMEOUT`]. When it does not
//! (the session ended, so the server released the lock and another instance may hold it),
//! the critical section is dropped — cancelled at its next `.await` — and the call returns
//! `Err(StoreError::LeadershipLost)`, never `Ok`. A section that finishes between two probes
//! is not trusted either: the call answers `Ok` only when `pg_advisory_unlock` on the same
//! connection returned `true` (the session still held the lock to the end); a dead
//! connection, an error, a timeout or `false` make it `LeadershipLost` too (the section's own
//! error, if any, is named in `why`). A killed session is noticed at the next
//! probe, so the holder learns of the loss within `LOCK_WATCH_INTERVAL` (1 s) plus a round trip;
//! a silent network partition within `LOCK_WATCH_INTERVAL + LOCK_WATCH_TIMEOUT` (3 s). Work the
//! section already committed stays committed: fencing stops the holder from acting further,
//! and every operation it runs is safe against a concurrent second leader anyway.
//!
//! **Scope.** Lock keys are scoped to the store's schema, so stores on two schemas of one
//! database are independent: on a schema other than `public` the key is `(h << 32) | id`
//! with `h` the FNV-1a hash of the schema name; without a schema, or on `public`, it is
//! the bare id (1001..=1011), the number instances of other implementations sharing that
//! database use.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Object;
use s3o_core::engine::{AdvisoryLocker, BoxFuture};
use s3o_core::{LockId, Result, StoreError};

use crate::PgStore;
use crate::error::{RowExt, db_err};

/// How long the unlock may take before the connection is closed instead.
const UNLOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a held lock's connection is probed.
pub const LOCK_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How long one probe of a held lock's connection may take before the lock counts as lost.
pub const LOCK_WATCH_TIMEOUT: Duration = Duration::from_secs(2);

/// FNV-1a, 32 bits: a hash that never changes between builds, as lock keys must not.
const fn fnv1a32(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

/// The advisory-lock key (`pg_try_advisory_lock(bigint)`) under which a store on `schema`
/// holds `lock`: the bare id without a schema or on `public`, else `(h << 32) | id` with `h`
/// the FNV-1a hash of the schema name. In `pg_locks` the high half is `classid`, the id
/// `objid`; use it to find a holder.
pub fn leader_lock_key(schema: Option<&str>, lock: LockId) -> i64 {
    match schema {
        None | Some("public") => lock.id(),
        Some(s) => (i64::from(fnv1a32(s.as_bytes())) << 32) | lock.id(),
    }
}

/// Resolves when the lock's connection stops answering; returns how that showed.
async fn watch(client: &Object) -> String {
    loop {
        tokio::time::sleep(LOCK_WATCH_INTERVAL).await;
        if client.is_closed() {
            return "its connection is closed".to_owned();
        }
        match tokio::time::timeout(LOCK_WATCH_TIMEOUT, client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("its connection failed: {}", crate::error::Chain(&e)),
            Err(_) => {
                return format!("its connection did not answer within {LOCK_WATCH_TIMEOUT:?}");
            }
        }
    }
}

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

/// Unlocks on the lock's own connection. `Ok(())` only when the server confirmed that this
/// session held the lock and released it; otherwise says why, after closing the session
/// (that releases whatever it still holds) instead of pooling it.
async fn unlock(client: Object, id: i64) -> std::result::Result<(), String> {
    let r = tokio::time::timeout(
        UNLOCK_TIMEOUT,
        client.query_one("SELECT pg_advisory_unlock($1)", &[&id]),
    )
    .await;
    let why = match r {
        Ok(Ok(row)) => match row.col::<bool>(0) {
            Ok(true) => return Ok(()),
            // `false`: the session no longer held the lock, so someone else may.
            Ok(false) => "the lock was not held by its session any more".to_owned(),
            Err(e) => e.to_string(),
        },
        Ok(Err(e)) => format!("the unlock failed: {}", crate::error::Chain(&e)),
        Err(_) => format!("the unlock did not answer within {UNLOCK_TIMEOUT:?}"),
    };
    tracing::warn!(
        lock_id = id,
        why,
        "leader-lock unlock not confirmed; closing its connection"
    );
    drop(Object::take(client));
    Err(why)
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

    /// Unlocks; `Err(why)` when the release was not confirmed (see [`unlock`]).
    async fn release(mut self) -> std::result::Result<(), String> {
        match self.client.take() {
            Some(client) => unlock(client, self.id).await,
            None => Ok(()),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let id = self.id;
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    // The caller is gone: nobody is left to tell of an unconfirmed release.
                    h.spawn(async move {
                        let _ = unlock(client, id).await;
                    });
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
        let id = leader_lock_key(self.schema.as_deref(), lock);
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
            Ok(row) => match row.col(0) {
                Ok(v) => v,
                Err(e) => {
                    drop(held);
                    return Err(e);
                }
            },
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
        let outcome = {
            let section = CatchUnwind { inner: critical };
            let Some(conn) = held.client.as_ref() else {
                unreachable!("armed above")
            };
            tokio::select! {
                biased;
                why = watch(conn) => Err(why),
                outcome = section => Ok(outcome),
            }
        };
        let released = held.release().await;
        match (outcome, released) {
            (Ok(Err(panic)), _) => {
                tracing::error!(%lock, "critical section panicked; leader lock released");
                std::panic::resume_unwind(panic)
            }
            (Ok(Ok(r)), Ok(())) => Ok(Some(r)),
            // The section finished, but the lock may have been lost meanwhile (its session
            // died between probes and another store took it): without a confirmed release
            // the section may have run beside another holder, so it is never reported `Ok`.
            (Ok(Ok(r)), Err(why)) => {
                let why = match r {
                    Ok(()) => format!("release not confirmed: {why}"),
                    Err(e) => format!("release not confirmed: {why}; the section failed: {e}"),
                };
                tracing::warn!(%lock, why, "leader lock lost while its critical section ran");
                Err(StoreError::LeadershipLost { lock, why })
            }
            (Err(why), _) => {
                tracing::warn!(%lock, why, "leader lock lost; critical section cancelled");
                Err(StoreError::LeadershipLost { lock, why })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_to_the_schema_and_stable() {
        for lock in LockId::ALL {
            assert_eq!(leader_lock_key(None, lock), lock.id());
            assert_eq!(leader_lock_key(Some("public"), lock), lock.id());
            let a = leader_lock_key(Some("tenant_a"), lock);
            let b = leader_lock_key(Some("tenant_b"), lock);
            assert_ne!(a, b);
            assert_ne!(a, lock.id());
            assert_eq!(
                a & 0xffff_ffff,
                lock.id(),
                "the id stays readable in pg_locks.objid"
            );
        }
        // FNV-1a test vectors: the hash must never change between builds.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    }
}
