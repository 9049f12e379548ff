//! Shared fixtures: real database files in unique temp directories.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use s3o_core::engine::LifecycleAdmin;
use s3o_sqlite::{SqliteOptions, SqliteStore, rusqlite};

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "s3o-sqlite-{tag}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn db_path(&self) -> PathBuf {
        self.0.join("s3o.db")
    }

    pub fn url(&self) -> String {
        url_of(&self.db_path())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Opens and migrates the store at `url`, then configures `backends` as `(name, limit)`.
pub async fn store_at(url: &str, backends: &[(&str, i64)]) -> SqliteStore {
    store_with(url, SqliteOptions::default(), backends).await
}

pub async fn store_with(url: &str, opts: SqliteOptions, backends: &[(&str, i64)]) -> SqliteStore {
    let store = SqliteStore::open_with(url, opts).await.expect("open store");
    store.run_migrations().await.expect("migrate");
    let limits: Vec<(String, i64)> = backends.iter().map(|(b, l)| (b.to_string(), *l)).collect();
    store.sync_quota_limits(&limits).await.expect("sync quotas");
    store
}

/// A raw connection to the file, for inspecting or holding locks from "another process".
pub fn raw(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("raw connection");
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

/// `(bytes_used, Σ size_bytes)` per backend, read directly from the file.
pub fn ledger(path: &Path) -> Vec<(String, i64, i64)> {
    let c = raw(path);
    let mut st = c
        .prepare(
            "SELECT q.backend_name, q.bytes_used, \
                    coalesce((SELECT sum(size_bytes) FROM object_locations o \
                              WHERE o.backend_name = q.backend_name), 0) \
             FROM backend_quotas q ORDER BY q.backend_name",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
