//! Connections and the breaker chokepoint.
//!
//! One writer connection, guarded by an async gate held for a whole write (a single statement
//! or a `BEGIN IMMEDIATE` transaction), and a pool of `query_only` reader connections that run
//! in parallel with it (WAL lets readers see the last committed state while a write
//! transaction is open). Every blocking call — opening, `Pool::get`, every statement — runs on
//! tokio's blocking pool via `spawn_blocking`, except the inline path (on by default,
//! [`crate::SqliteOptions::inline_point_statements`]): a `BEGIN IMMEDIATE` that need not wait,
//! the point statements of an open transaction and, with `Synchronous::Normal`, its `COMMIT`
//! run on the caller's thread (the writer's WAL checkpoints then run on the blocking pool).
//! Every statement passes the store's
//! [`CircuitBreaker`] through [`Db`], inside transactions too. Rollbacks and migrations bypass
//! the breaker: undoing work and repairing the schema must always be attempted.
//!
//! An in-memory database (`sqlite::memory:`) has no reader pool: every call goes through the
//! writer connection, so there is exactly one database per store and reads wait for an open
//! write transaction.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use s3o_core::Result;
use s3o_core::breaker::CircuitBreaker;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::error::{closed_err, db_err, join_err, pool_err};
use crate::setup::{build_reader_pool, open_writer};
use crate::stmt::Db;
use crate::{SqliteOptions, Synchronous};

/// The reader pool type.
pub(crate) type ReaderPool = r2d2::Pool<SqliteConnectionManager>;

/// Held for as long as one caller owns the writer connection.
pub(crate) type WriterGuard = OwnedMutexGuard<()>;

/// The writer connection and the generation of the [`Conns::begin_tx`] transaction open on
/// it, both behind one mutex so that a statement checks "is my transaction still the open
/// one?" and runs under the same lock.
struct WriterSlot {
    conn: Option<Connection>,
    /// Generation of the `begin_tx` transaction currently open, `None` when none is.
    open_tx: Option<u64>,
    /// Last generation handed out; every `begin_tx` takes the next one.
    last_generation: u64,
}

impl WriterSlot {
    fn new(conn: Connection) -> Self {
        WriterSlot {
            conn: Some(conn),
            open_tx: None,
            last_generation: 0,
        }
    }

    /// The connection for a caller that holds the gate: any transaction a previous owner left
    /// open is rolled back and its generation retired, so its stale statements are refused.
    fn take_over(&mut self, ctx: &str) -> Result<&Connection> {
        self.open_tx = None;
        let conn = self.conn.as_ref().ok_or_else(|| closed_err(ctx))?;
        reset_open_transaction(conn);
        Ok(conn)
    }
}

/// Ownership of one open [`Conns::begin_tx`] transaction: the writer gate plus the
/// transaction's generation. Dropping it without [`Conns::end_tx`] rolls the transaction back
/// (on the blocking pool when a runtime is present, inline otherwise) and only then releases
/// the writer. That covers a cancelled owner and also a `begin_tx` whose caller went away
/// after `BEGIN IMMEDIATE` ran: the guard is then dropped with the unread task output.
pub(crate) struct TxGuard {
    gate: Option<WriterGuard>,
    generation: u64,
    writer: Arc<StdMutex<WriterSlot>>,
}

impl TxGuard {
    /// The generation every statement of this transaction must match.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for TxGuard {
    fn drop(&mut self) {
        let Some(gate) = self.gate.take() else {
            return;
        };
        let (writer, generation) = (self.writer.clone(), self.generation);
        let work = move || {
            let _gate = gate;
            let mut slot = lock(&writer);
            if slot.open_tx == Some(generation) {
                slot.open_tx = None;
                if let Some(conn) = slot.conn.as_ref() {
                    rollback_quietly(conn);
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }
}

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A database file.
    File(PathBuf),
    /// A private in-memory database, one per store.
    Memory,
}

/// Runs `f` inside `BEGIN IMMEDIATE … COMMIT` on `db`; rolls back on any error.
pub(crate) fn run_in_tx<T>(
    db: &Db<'_>,
    ctx: &str,
    f: impl FnOnce(&Db<'_>) -> Result<T>,
) -> Result<T> {
    db.batch(ctx, "BEGIN IMMEDIATE")?;
    match f(db) {
        Ok(v) => match db.batch(ctx, "COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                rollback_quietly(db.raw());
                Err(e)
            }
        },
        Err(e) => {
            rollback_quietly(db.raw());
            Err(e)
        }
    }
}

/// Writes between two background checkpoints when inline commits turned the writer's
/// automatic checkpoints off: about SQLite's default of 1000 WAL pages for small
/// transactions.
const CHECKPOINT_EVERY: u64 = 200;

/// Ends the `begin_tx` transaction of `generation` on the writer: `COMMIT` through the
/// breaker (rolled back if it fails) or `ROLLBACK` (always attempted). A transaction that is
/// no longer the open one cannot commit.
fn finish_tx(
    slot: &mut WriterSlot,
    generation: u64,
    commit: bool,
    ctx: &str,
    breaker: &CircuitBreaker,
) -> Result<()> {
    let current = slot.open_tx == Some(generation);
    if current {
        slot.open_tx = None;
    }
    let conn = slot.conn.as_ref().ok_or_else(|| closed_err(ctx))?;
    if !current {
        if commit {
            return Err(s3o_core::StoreError::database(
                s3o_core::DbErrorKind::Other,
                ctx,
                "the transaction is no longer open",
            ));
        }
        return Ok(());
    }
    if !commit {
        // SQLite may already have rolled back on its own (e.g. after SQLITE_FULL).
        if conn.is_autocommit() {
            return Ok(());
        }
        return conn.execute_batch("ROLLBACK").map_err(|e| db_err(ctx, e));
    }
    let r = Db::new(conn, Some(breaker)).batch(ctx, "COMMIT");
    if r.is_err() {
        rollback_quietly(conn);
    }
    r
}

/// Rolls back an open transaction, if any, logging (not returning) a failure.
pub(crate) fn rollback_quietly(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(engine = "sqlite", error = %e, "rollback failed");
    }
}

/// A writer taken over from a caller that went away mid-transaction is rolled back before
/// anyone else uses it.
fn reset_open_transaction(conn: &Connection) {
    if !conn.is_autocommit() {
        tracing::warn!(
            engine = "sqlite",
            "writer connection was left inside a transaction; rolling it back"
        );
        rollback_quietly(conn);
    }
}

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a statement cannot leave the connection slot itself inconsistent; the
    // open-transaction check above repairs the connection state.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer, the readers and the breaker of one store.
pub(crate) struct Conns {
    pub(crate) breaker: Arc<CircuitBreaker>,
    writer: Arc<StdMutex<WriterSlot>>,
    gate: Arc<AsyncMutex<()>>,
    readers: StdMutex<Option<ReaderPool>>,
    closed: AtomicBool,
    /// The writer's configured `busy_timeout`, restored after a non-waiting `BEGIN`.
    busy_timeout: Duration,
    /// [`crate::SqliteOptions::inline_point_statements`].
    inline: bool,
    /// `COMMIT`/`ROLLBACK` of `begin_tx` transactions run inline too: `inline` with
    /// [`Synchronous::Normal`], where a commit does not sync.
    inline_commit: bool,
    /// The writer's automatic checkpoints are off; [`Conns::note_commit`] schedules them.
    background_checkpoints: bool,
    /// Writes counted by [`Conns::note_commit`].
    commits: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Conns {
    /// Opens the writer and builds the reader pool. Blocking: call from `spawn_blocking`.
    pub(crate) fn open(
        target: &Target,
        opts: &SqliteOptions,
        breaker: Arc<CircuitBreaker>,
    ) -> Result<Conns> {
        let writer = open_writer(target, opts)?;
        let inline_commit = opts.inline_point_statements && opts.synchronous == Synchronous::Normal;
        // A commit on an async worker must not run a checkpoint (it syncs the files): with
        // inline commits the writer's automatic checkpoints are replaced by background ones.
        // Other processes on the file keep their own automatic checkpoints.
        let background_checkpoints = inline_commit && *target != Target::Memory;
        if background_checkpoints {
            writer
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(|e| db_err("configure writer connection", e))?;
        }
        let readers = match target {
            Target::Memory => None,
            Target::File(path) => Some(build_reader_pool(path, opts)?),
        };
        Ok(Conns {
            breaker,
            writer: Arc::new(StdMutex::new(WriterSlot::new(writer))),
            gate: Arc::new(AsyncMutex::new(())),
            readers: StdMutex::new(readers),
            closed: AtomicBool::new(false),
            busy_timeout: opts.busy_timeout,
            inline: opts.inline_point_statements,
            inline_commit,
            background_checkpoints,
            commits: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn check_open(&self, ctx: &str) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_err(ctx));
        }
        Ok(())
    }

    /// Runs read-only statements on a pooled reader (the writer for in-memory databases).
    pub(crate) async fn read<T, F>(&self, ctx: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        self.check_open(ctx)?;
        let pool = lock(&self.readers).clone();
        let Some(pool) = pool else {
            return self.on_writer(ctx, false, true, f).await;
        };
        let breaker = self.breaker.clone();
        let span = tracing::debug_span!("sqlite", op = ctx, engine = "sqlite");
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let permit = breaker.pre_check()?;
            let conn = permit.finish(pool.get().map_err(|e| pool_err(ctx, e)))?;
            f(&Db::new(&conn, Some(&breaker)))
        })
        .await
        .map_err(|e| join_err(ctx, e))?
    }

    /// Runs statements on the writer in autocommit mode (each statement its own transaction).
    pub(crate) async fn write<T, F>(&self, ctx: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        self.on_writer(ctx, false, true, f).await
    }

    /// Runs statements on the writer inside one `BEGIN IMMEDIATE` transaction.
    pub(crate) async fn write_tx<T, F>(&self, ctx: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        self.on_writer(ctx, true, true, f).await
    }

    /// Runs `f` on the writer without the breaker (migrations, schema checks).
    pub(crate) async fn admin<T, F>(&self, ctx: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        self.on_writer(ctx, false, false, f).await
    }

    async fn on_writer<T, F>(&self, ctx: &'static str, tx: bool, guarded: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        self.check_open(ctx)?;
        let gate = self.gate.clone().lock_owned().await;
        let writer = self.writer.clone();
        let breaker = self.breaker.clone();
        let span = tracing::debug_span!("sqlite", op = ctx, engine = "sqlite");
        let r = tokio::task::spawn_blocking(move || {
            // The gate travels with the blocking work: even if the caller is cancelled, no one
            // else takes the writer until this statement (and its rollback) is done.
            let _gate = gate;
            let _entered = span.enter();
            let mut slot = lock(&writer);
            let conn = slot.take_over(ctx)?;
            let db = Db::new(conn, guarded.then_some(&*breaker));
            if tx { run_in_tx(&db, ctx, f) } else { f(&db) }
        })
        .await
        .map_err(|e| join_err(ctx, e))?;
        self.note_commit();
        r
    }

    /// Takes the writer and opens `BEGIN IMMEDIATE` on it under a new generation; the
    /// returned guard keeps every other writer out until it is handed to [`Conns::end_tx`] or
    /// dropped (which rolls back). If this future is dropped after `BEGIN IMMEDIATE` ran, the
    /// guard is dropped with the blocking task's unread output and rolls back just the same.
    pub(crate) async fn begin_tx(&self) -> Result<TxGuard> {
        let ctx = "begin transaction";
        self.check_open(ctx)?;
        let gate = self.gate.clone().lock_owned().await;
        // Fast path (default), without a trip to the blocking pool: with the gate held no one in this
        // process competes for the write lock, so `BEGIN IMMEDIATE` with a zero busy timeout
        // either takes it at once or reports BUSY (another process is writing). Only then is
        // the waiting `BEGIN` below (full busy timeout) run on the blocking pool.
        let gate = if self.inline {
            match self.try_begin_now(ctx, gate) {
                Ok(guard) => return Ok(guard),
                Err((gate, None)) => gate,
                Err((_, Some(e))) => return Err(e),
            }
        } else {
            gate
        };
        let writer = self.writer.clone();
        let breaker = self.breaker.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = lock(&writer);
            let conn = slot.take_over(ctx)?;
            Db::new(conn, Some(&breaker)).batch(ctx, "BEGIN IMMEDIATE")?;
            slot.last_generation += 1;
            let generation = slot.last_generation;
            slot.open_tx = Some(generation);
            drop(slot);
            Ok(TxGuard {
                gate: Some(gate),
                generation,
                writer,
            })
        })
        .await
        .map_err(|e| join_err(ctx, e))?
    }

    /// `BEGIN IMMEDIATE` on the calling thread without waiting for the write lock. `Err((gate,
    /// None))` when the lock is busy (the caller waits on the blocking pool instead),
    /// `Err((_, Some(e)))` on any other failure.
    fn try_begin_now(
        &self,
        ctx: &'static str,
        gate: WriterGuard,
    ) -> std::result::Result<TxGuard, (WriterGuard, Option<s3o_core::StoreError>)> {
        // Never block this (async) thread on the writer: a statement of a cancelled
        // transaction may still be running on the blocking pool; then take the slow path.
        let Some(mut slot) = self.try_lock_writer() else {
            return Err((gate, None));
        };
        let conn = match slot.take_over(ctx) {
            Ok(c) => c,
            Err(e) => return Err((gate, Some(e))),
        };
        if conn.busy_timeout(Duration::ZERO).is_err() {
            return Err((gate, None));
        }
        let r = Db::new(conn, Some(&self.breaker)).batch(ctx, "BEGIN IMMEDIATE");
        let restored = conn.busy_timeout(self.busy_timeout);
        match (r, restored) {
            (Ok(()), Ok(())) => {}
            (Ok(()), Err(e)) => {
                rollback_quietly(conn);
                return Err((gate, Some(db_err(ctx, e))));
            }
            (Err(e), _) if e.db_kind() == Some(s3o_core::DbErrorKind::Busy) => {
                return Err((gate, None));
            }
            (Err(e), _) => return Err((gate, Some(e))),
        }
        slot.last_generation += 1;
        let generation = slot.last_generation;
        slot.open_tx = Some(generation);
        drop(slot);
        Ok(TxGuard {
            gate: Some(gate),
            generation,
            writer: self.writer.clone(),
        })
    }

    /// The writer slot if no one holds it (a poisoned lock is recovered as in [`lock`]).
    fn try_lock_writer(&self) -> Option<MutexGuard<'_, WriterSlot>> {
        match self.writer.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Runs one short statement inside the open transaction of `generation` on the calling
    /// thread. For point statements (one key, one id, one quota row) of a transaction that
    /// already holds the write lock: they never wait for a lock and take microseconds, far
    /// less than a round trip through the blocking pool. Same checks as [`Conns::in_tx`].
    /// Gives `f` back (`Err(f)`) when inlining is off or the writer is busy (a
    /// cancelled transaction's statement still running on the blocking pool): the caller then
    /// uses `in_tx`, so this thread never blocks.
    pub(crate) fn try_in_tx_now<T, F>(
        &self,
        ctx: &'static str,
        generation: u64,
        f: F,
    ) -> std::result::Result<Result<T>, F>
    where
        F: FnOnce(&Db<'_>) -> Result<T>,
    {
        if !self.inline {
            return Err(f);
        }
        let Some(slot) = self.try_lock_writer() else {
            return Err(f);
        };
        let span = tracing::trace_span!("sqlite.tx", op = ctx, engine = "sqlite");
        let _entered = span.enter();
        let Some(conn) = slot.conn.as_ref() else {
            return Ok(Err(closed_err(ctx)));
        };
        if slot.open_tx != Some(generation) || conn.is_autocommit() {
            return Ok(Err(s3o_core::StoreError::database(
                s3o_core::DbErrorKind::Other,
                ctx,
                "the transaction is no longer open",
            )));
        }
        Ok(f(&Db::new(conn, Some(&self.breaker))))
    }

    /// Runs one statement inside the open transaction of `generation` (see
    /// [`TxGuard::generation`]). A statement whose transaction is no longer the open one — it
    /// was queued on the blocking pool when its owner was cancelled, and the writer has since
    /// been rolled back and perhaps begun for someone else — fails without running any SQL.
    pub(crate) async fn in_tx<T, F>(&self, ctx: &'static str, generation: u64, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        let breaker = self.breaker.clone();
        let span = tracing::trace_span!("sqlite.tx", op = ctx, engine = "sqlite");
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let slot = lock(&writer);
            let conn = slot.conn.as_ref().ok_or_else(|| closed_err(ctx))?;
            if slot.open_tx != Some(generation) || conn.is_autocommit() {
                return Err(s3o_core::StoreError::database(
                    s3o_core::DbErrorKind::Other,
                    ctx,
                    "the transaction is no longer open",
                ));
            }
            f(&Db::new(conn, Some(&breaker)))
        })
        .await
        .map_err(|e| join_err(ctx, e))?
    }

    /// Commits (through the breaker) or rolls back (always attempted) the open transaction,
    /// then releases the writer.
    pub(crate) async fn end_tx(&self, mut guard: TxGuard, commit: bool) -> Result<()> {
        let ctx = if commit { "commit" } else { "rollback" };
        let generation = guard.generation;
        // Inline (the default with `Synchronous::Normal`): a WAL commit then writes its frames
        // without syncing, and checkpoints (which do sync) run in the background instead of
        // inside the commit (see `note_commit`). Only when the writer is free at once.
        if self.inline_commit
            && let Some(mut slot) = self.try_lock_writer()
        {
            let gate = guard.gate.take();
            let r = finish_tx(&mut slot, generation, commit, ctx, &self.breaker);
            drop(slot);
            drop(gate);
            self.note_commit();
            return r;
        }
        // Disarmed: from here the blocking task below owns the gate and ends the transaction.
        let gate = guard.gate.take();
        let writer = self.writer.clone();
        let breaker = self.breaker.clone();
        let r = tokio::task::spawn_blocking(move || {
            let _gate = gate;
            let mut slot = lock(&writer);
            finish_tx(&mut slot, generation, commit, ctx, &breaker)
        })
        .await
        .map_err(|e| join_err(ctx, e))?;
        self.note_commit();
        r
    }

    /// Counts a write that may have grown the WAL. With automatic checkpoints off on the
    /// writer (inline commits), every [`CHECKPOINT_EVERY`]th one schedules a passive
    /// checkpoint on the blocking pool, under the writer gate like any write.
    fn note_commit(&self) {
        if !self.background_checkpoints {
            return;
        }
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(CHECKPOINT_EVERY) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (gate, writer) = (self.gate.clone(), self.writer.clone());
        handle.spawn(async move {
            let gate = gate.lock_owned().await;
            let _ = tokio::task::spawn_blocking(move || {
                let _gate = gate;
                let slot = lock(&writer);
                if let Some(conn) = slot.conn.as_ref().filter(|c| c.is_autocommit())
                    && let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
                {
                    tracing::debug!(engine = "sqlite", error = %e, "background checkpoint failed");
                }
            })
            .await;
        });
    }

    /// Closes every connection; later calls fail with a connection error.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let gate = self.gate.clone().lock_owned().await;
        let writer = self.writer.clone();
        let pool = lock(&self.readers).take();
        let done = tokio::task::spawn_blocking(move || {
            let _gate = gate;
            let taken = {
                let mut slot = lock(&writer);
                slot.open_tx = None;
                slot.conn.take()
            };
            if let Some(conn) = taken {
                rollback_quietly(&conn);
                let _ = conn.execute_batch("PRAGMA optimize");
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(engine = "sqlite", error = %e, "closing the writer failed");
                }
            }
            drop(pool);
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(engine = "sqlite", error = %e, "closing the store failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use s3o_core::breaker::BreakerConfig;

    /// A database file in a temp directory removed on drop.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn open_file(tag: &str) -> (Dir, Arc<Conns>) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "s3o-sqlite-conn-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let target = Target::File(dir.join("t.db"));
        let breaker = Arc::new(CircuitBreaker::new("sqlite", BreakerConfig::default()));
        let conns = tokio::task::spawn_blocking(move || {
            Conns::open(&target, &SqliteOptions::default(), breaker)
        })
        .await
        .unwrap()
        .unwrap();
        conns
            .write("create table", |db| {
                db.batch("create table", "CREATE TABLE t (v TEXT NOT NULL)")
            })
            .await
            .unwrap();
        (Dir(dir), Arc::new(conns))
    }

    async fn values(conns: &Conns) -> Vec<String> {
        conns
            .read("read values", |db| {
                db.query_vec("read values", "SELECT v FROM t ORDER BY v", [], |r| {
                    r.get(0)
                })
            })
            .await
            .unwrap()
    }

    async fn insert(conns: &Conns, generation: u64, v: &'static str) -> Result<usize> {
        conns
            .in_tx("insert value", generation, move |db| {
                db.execute("insert value", "INSERT INTO t (v) VALUES (?1)", [v])
            })
            .await
    }

    /// The race, made deterministic: transaction A's statement sat on the blocking pool while
    /// A's owner was cancelled; A was rolled back, the writer released, and B began. When A's
    /// statement finally reaches the connection, a transaction is open again — B's. It must be
    /// refused without running, so B's commit cannot carry it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_stale_statement_never_runs_inside_the_next_transaction() {
        let (_dir, conns) = open_file("stale").await;
        let a = conns.begin_tx().await.unwrap();
        let gen_a = a.generation();
        insert(&conns, gen_a, "a").await.unwrap();
        drop(a); // the owner went away: rollback, then the writer is free
        let b = conns.begin_tx().await.unwrap();
        assert_ne!(b.generation(), gen_a);
        let stale = insert(&conns, gen_a, "stale").await;
        assert!(stale.is_err(), "stale statement ran: {stale:?}");
        insert(&conns, b.generation(), "b").await.unwrap();
        conns.end_tx(b, true).await.unwrap();
        assert_eq!(values(&conns).await, ["b"]);
        // A statement of a committed transaction is refused too.
        let c = conns.begin_tx().await.unwrap();
        let gen_c = c.generation();
        conns.end_tx(c, true).await.unwrap();
        assert!(insert(&conns, gen_c, "late").await.is_err());
        assert_eq!(values(&conns).await, ["b"]);
    }

    /// `begin_tx` whose caller is gone by the time `BEGIN IMMEDIATE` runs: the transaction is
    /// rolled back on its own, so neither this process nor another waits on its write lock.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_begin_cancelled_after_begin_immediate_rolls_back() {
        let (dir, conns) = open_file("begin").await;
        // A long-running blocking section holds the connection while the caller gives up.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let writer = conns.writer.clone();
        let blocker = std::thread::spawn(move || {
            let _slot = lock(&writer);
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        locked_rx.recv().unwrap();
        let cancelled = tokio::time::timeout(Duration::from_millis(20), conns.begin_tx()).await;
        assert!(
            cancelled.is_err(),
            "begin_tx finished while the writer was held"
        );
        release_tx.send(()).unwrap();
        blocker.join().unwrap();
        // The gate passes from the orphaned BEGIN to its rollback without a gap: once it is
        // free, the rollback has run.
        let gate = conns.gate.clone().lock_owned().await;
        {
            let slot = lock(&conns.writer);
            assert_eq!(
                slot.last_generation, 1,
                "BEGIN IMMEDIATE ran for the gone caller"
            );
            assert_eq!(slot.open_tx, None);
            assert!(
                slot.conn.as_ref().unwrap().is_autocommit(),
                "the orphaned transaction is still open"
            );
        }
        drop(gate);
        // Another process takes the file's write lock without waiting for this one.
        let other = Connection::open(dir.0.join("t.db")).unwrap();
        other.busy_timeout(Duration::from_millis(500)).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ('other'); COMMIT")
            .unwrap();
        assert_eq!(values(&conns).await, ["other"]);
    }
}
