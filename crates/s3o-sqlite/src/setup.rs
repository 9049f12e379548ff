//! Opening connections: the pragmas every connection gets, the writer (WAL, `synchronous`)
//! and the read-only reader pool.

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use s3o_core::Result;

use crate::conn::{ReaderPool, Target};
use crate::error::{db_err, pool_err};
use crate::{SqliteOptions, Synchronous};

/// Settings every connection gets.
pub(crate) fn base_pragmas(conn: &Connection, opts: &SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(opts.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Reader settings: read-only by construction.
pub(crate) fn configure_reader(conn: &Connection, opts: &SqliteOptions) -> rusqlite::Result<()> {
    base_pragmas(conn, opts)?;
    conn.pragma_update(None, "query_only", true)
}

/// Writer settings: WAL (files only) and the chosen `synchronous` level.
pub(crate) fn configure_writer(
    conn: &Connection,
    opts: &SqliteOptions,
    memory: bool,
) -> Result<()> {
    let ctx = "configure writer connection";
    base_pragmas(conn, opts).map_err(|e| db_err(ctx, e))?;
    if !memory {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| db_err("enable WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(s3o_core::StoreError::database(
                s3o_core::DbErrorKind::Connection,
                "enable WAL",
                format!("journal_mode is {mode}, WAL could not be enabled"),
            ));
        }
    }
    let sync = match opts.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(|e| db_err(ctx, e))
}

pub(crate) fn file_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Opens the writer, retrying a little while another process holds the file's write lock
/// during its first WAL switch.
pub(crate) fn open_writer(target: &Target, opts: &SqliteOptions) -> Result<Connection> {
    let mut attempt = 0;
    loop {
        let conn = match target {
            Target::File(path) => Connection::open_with_flags(path, file_flags()),
            Target::Memory => Connection::open_in_memory(),
        }
        .map_err(|e| db_err("open database", e))?;
        match configure_writer(&conn, opts, *target == Target::Memory) {
            Err(e) if e.is_retryable() && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * attempt));
            }
            other => return other.map(|()| conn),
        }
    }
}

pub(crate) fn build_reader_pool(path: &Path, opts: &SqliteOptions) -> Result<ReaderPool> {
    let init_opts = opts.clone();
    let manager = SqliteConnectionManager::file(path)
        .with_flags(file_flags())
        .with_init(move |c| configure_reader(c, &init_opts));
    r2d2::Pool::builder()
        .max_size(opts.readers.max(1))
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(opts.reader_wait_timeout.max(Duration::from_millis(1)))
        .build(manager)
        .map_err(|e| pool_err("open reader pool", e))
}
