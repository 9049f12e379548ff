//! Leader locks ([`AdvisoryLocker`]): one OS file lock per lock id, next to the database.
//!
//! `<database>.leader-<id>.lock` is opened and locked with `File::try_lock` (an exclusive,
//! non-blocking `flock` on Unix). The lock belongs to the open file, so it excludes other
//! processes and other stores of this process alike, ids never contend with each other, and
//! the OS drops it when the holder's process dies. The files are left in place (an empty
//! file is harmless, and deleting one would race with a newcomer locking it). An in-memory
//! database is private to its store, so its locks are a per-store set of held ids.
//!
//! **Fencing.** A `flock` cannot be lost while its file stays open, but it can stop excluding
//! anyone: if the lock file is deleted or replaced while held, a newcomer creates a new file at
//! the path and locks that. So on Unix the holder checks, right after locking and again when
//! the critical section ends, that the path still names the file it locked (same device and
//! inode). Replaced before the section ⇒ not taken; replaced during it ⇒ the call returns
//! `LeadershipLost`, never `Ok`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use s3o_core::engine::{AdvisoryLocker, BoxFuture};
use s3o_core::{DbErrorKind, LockId, Result, StoreError};

use crate::SqliteStore;
use crate::conn::Target;

/// Where a store's leader locks live.
#[derive(Debug)]
pub(crate) struct LeaderLocks {
    /// The database file's path; lock files are named after it. `None` for in-memory stores.
    base: Option<PathBuf>,
    /// Ids held by this store (in-memory stores only).
    local: Mutex<HashSet<LockId>>,
}

/// A held leader lock; dropping it releases the lock.
enum Held {
    /// The locked file and the path it was opened at.
    File(File, PathBuf),
    Local(Arc<LeaderLocks>, LockId),
}

/// `Err(why)` unless `path` still names the file `f` (Unix: same device and inode), i.e. a
/// newcomer locking the path would contend with this lock.
fn still_the_lock_file(f: &File, path: &Path) -> std::result::Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let held = f
            .metadata()
            .map_err(|e| format!("reading the held lock file: {e}"))?;
        let now = std::fs::metadata(path)
            .map_err(|e| format!("lock file {} is gone: {e}", path.display()))?;
        if (held.dev(), held.ino()) != (now.dev(), now.ino()) {
            return Err(format!(
                "lock file {} was replaced while held",
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (f, path);
    Ok(())
}

impl Held {
    /// Releases the lock; `Err(why)` when it cannot be confirmed that the lock still excluded
    /// other holders up to now.
    fn release(self) -> std::result::Result<(), String> {
        let confirmed = match &self {
            Held::File(f, path) => still_the_lock_file(f, path),
            Held::Local(..) => Ok(()),
        };
        drop(self);
        confirmed
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        match self {
            Held::File(f, _) => {
                if let Err(e) = f.unlock() {
                    // Closing the file (right after this) releases the lock anyway.
                    tracing::debug!(engine = "sqlite", error = %e, "unlocking a leader lock file");
                }
            }
            Held::Local(locks, id) => {
                locks.local_set().remove(id);
            }
        }
    }
}

impl LeaderLocks {
    pub(crate) fn new(target: &Target) -> Self {
        LeaderLocks {
            base: match target {
                Target::File(p) => Some(p.clone()),
                Target::Memory => None,
            },
            local: Mutex::new(HashSet::new()),
        }
    }

    fn local_set(&self) -> std::sync::MutexGuard<'_, HashSet<LockId>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock file of `lock`, for a file database.
    pub(crate) fn path_of(&self, lock: LockId) -> Option<PathBuf> {
        self.base.as_ref().map(|p| {
            let mut s = p.clone().into_os_string();
            s.push(format!(".leader-{}.lock", lock.id()));
            PathBuf::from(s)
        })
    }

    async fn try_acquire(self: &Arc<Self>, lock: LockId) -> Result<Option<Held>> {
        let Some(path) = self.path_of(lock) else {
            let fresh = self.local_set().insert(lock);
            return Ok(fresh.then(|| Held::Local(self.clone(), lock)));
        };
        let ctx = "acquire leader lock";
        let io = move |e: std::io::Error| {
            StoreError::database(DbErrorKind::Connection, format!("{ctx} {lock}"), e)
        };
        tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                // A lock on a file already unlinked from the path excludes nobody.
                Ok(()) => Ok(still_the_lock_file(&file, &path)
                    .is_ok()
                    .then_some(Held::File(file, path))),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(e)) => Err(io(e)),
            }
        })
        .await
        .map_err(|e| crate::error::join_err(ctx, e))?
    }
}

/// Polls a future, turning a panic inside it into a value so the lock can be released first.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[async_trait]
impl AdvisoryLocker for SqliteStore {
    /// Not gated by the circuit breaker. A panic in `critical` releases the lock and then
    /// resumes unwinding on the caller's task.
    async fn with_advisory_lock(
        &self,
        lock: LockId,
        critical: BoxFuture<'_, Result<()>>,
    ) -> Result<Option<Result<()>>> {
        let Some(held) = self.locks.try_acquire(lock).await? else {
            tracing::debug!(engine = "sqlite", %lock, "leader lock held elsewhere");
            return Ok(None);
        };
        tracing::debug!(engine = "sqlite", %lock, "leader lock acquired");
        let outcome = CatchUnwind(critical).await;
        let released = held.release();
        match (outcome, released) {
            (Err(panic), _) => std::panic::resume_unwind(panic),
            (Ok(result), Ok(())) => Ok(Some(result)),
            (Ok(result), Err(why)) => {
                let why = match result {
                    Ok(()) => format!("release not confirmed: {why}"),
                    Err(e) => format!("release not confirmed: {why}; the section failed: {e}"),
                };
                tracing::warn!(engine = "sqlite", %lock, why, "leader lock lost while its critical section ran");
                Err(StoreError::LeadershipLost { lock, why })
            }
        }
    }
}
