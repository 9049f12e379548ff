#![doc = include_str!("../README.md")]

pub use deadpool_postgres;
pub use tokio_postgres;

/// Every column describing one copy, in the order [`objects::location_from_row`] reads them.
macro_rules! loc_cols {
    () => {
        "object_key, backend_name, size_bytes, created_at, encrypted, encryption_key, key_id, \
         plaintext_size, content_hash, managed, last_scrubbed_at, storage_key, etag, \
         content_type, user_metadata, attributes, tags"
    };
}

mod admin;
mod backend;
mod buckets;
mod cleanup;
mod conn;
mod dashboard;
mod encryption;
mod error;
mod integrity;
mod locker;
mod multipart;
mod notification;
mod objects;
mod pending;
mod quota;
mod reader;
mod replication;
mod tls;
mod tx;
mod usage;
mod versions;

use std::fmt;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, Runtime};
use s3o_core::breaker::CircuitBreaker;
use s3o_core::engine::Engine;
use s3o_core::{MetadataStore, Result};

pub use admin::EXPECTED_SCHEMA_VERSION;
#[doc(hidden)]
pub use cleanup::claim_statement;
pub use conn::{SQL_TRACE_PARAM_SEP, SQL_TRACE_TARGET, log_sql_parameter_values};
pub use locker::{LOCK_WATCH_INTERVAL, LOCK_WATCH_TIMEOUT, leader_lock_key};
#[doc(hidden)]
pub use notification::due_notifications_statement;
#[doc(hidden)]
pub use reader::listing_statement;
pub use tls::SslMode;

use crate::conn::Db;

mod options;
mod url;

pub use options::{PgOptions, Recycling};
use url::{Target, describe, parse_url, url_err};

/// The PostgreSQL metadata store. Cheap to share behind an `Arc`; every method is `Send`.
pub struct PgStore {
    db: Db,
    target: Target,
    schema: Option<String>,
    instance_id: Arc<str>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.db.pool.status();
        f.debug_struct("PgStore")
            .field("target", &self.target.to_string())
            .field("pool_size", &status.size)
            .field("pool_max_size", &status.max_size)
            .field("breaker", &self.db.breaker.state())
            .finish()
    }
}

/// Connects with default [`PgOptions`] (overridden by URL parameters) and returns the consumer
/// handle. Does **not** migrate (see [`MetadataStore::run_migrations`]). A malformed URL ⇒
/// `InvalidInput` naming the accepted form; an unreachable server or bad credentials ⇒
/// `Database { kind: Connection }` naming host and database.
pub async fn open(url: &str) -> Result<MetadataStore> {
    open_with(url, PgOptions::default()).await
}

/// [`open`] starting from `opts`; URL parameters override them.
pub async fn open_with(url: &str, opts: PgOptions) -> Result<MetadataStore> {
    PgStore::connect_with(url, opts)
        .await
        .map(MetadataStore::from_engine)
}

/// Wraps a pool the application already built (its own TLS, credentials rotation, hooks) and
/// returns the consumer handle after one ping. Does **not** migrate.
///
/// The pool's connections are used as they are: the store cannot set startup options on them,
/// so a schema other than the server's `search_path` must already be in their configuration
/// (e.g. `options=-c search_path=NAME` in the `tokio_postgres::Config`); `opts.schema` then only
/// names it, for leader-lock keys and logs. Likewise `opts.lock_timeout` is not applied (set
/// `-c lock_timeout=…` there too), and the pool settings of `opts` (`max_size`, timeouts,
/// recycling) are the pool's own. Queries cancelled after a timeout are cancelled without TLS.
/// Breaker and instance id come from `opts`.
pub async fn open_with_pool(pool: Pool, opts: PgOptions) -> Result<MetadataStore> {
    PgStore::from_pool(pool, opts)
        .await
        .map(MetadataStore::from_engine)
}

impl PgStore {
    /// The engine behind [`open_with_pool`].
    pub async fn from_pool(pool: Pool, opts: PgOptions) -> Result<PgStore> {
        if let Some(id) = &opts.instance_id {
            s3o_core::validate::text("instance id", id)?;
        }
        let store = PgStore {
            db: Db {
                pool,
                breaker: Arc::new(CircuitBreaker::new("postgres", opts.breaker)),
                cancel_tls: None,
            },
            target: Target {
                hosts: "(application pool)".to_owned(),
                dbname: String::new(),
                user: String::new(),
                ssl: SslMode::Disable,
                schema: opts.schema.clone(),
            },
            schema: opts.schema,
            instance_id: opts
                .instance_id
                .unwrap_or_else(s3o_core::default_instance_id)
                .into(),
        };
        drop(
            store
                .db
                .raw_client("connect through the application's pool")
                .await?,
        );
        Ok(store)
    }

    /// Connects with default [`PgOptions`] (overridden by URL parameters) and checks that a
    /// connection can be made. Does **not** migrate: call
    /// [`MetadataStore::run_migrations`](s3o_core::MetadataStore::run_migrations).
    ///
    /// A malformed URL ⇒ `InvalidInput` naming the accepted form; an unreachable server or
    /// bad credentials ⇒ `Database { kind: Connection }` naming host and database.
    pub async fn connect(url: &str) -> Result<PgStore> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// [`PgStore::connect`] starting from `opts`; URL parameters override them.
    pub async fn connect_with(url: &str, opts: PgOptions) -> Result<PgStore> {
        let parsed = parse_url(url, opts)?;
        let opts = parsed.options;
        let target = describe(&parsed.config, parsed.ssl, opts.schema.clone());
        let manager_config = ManagerConfig {
            recycling_method: opts.recycling.method(),
        };
        let cancel_tls = tls::connector(parsed.ssl, parsed.root_cert.as_deref())?;
        // Without the `tls` feature the connector is the driver's `Copy` `NoTls`.
        #[cfg_attr(not(feature = "tls"), allow(clippy::clone_on_copy))]
        let manager = match cancel_tls.clone() {
            Some(tls) => Manager::from_config(parsed.config, tls, manager_config),
            None => Manager::from_config(parsed.config, tokio_postgres::NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(opts.max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.wait_timeout))
            .create_timeout(Some(opts.create_timeout))
            .recycle_timeout(Some(opts.recycle_timeout))
            .build()
            .map_err(|e| url_err(format!("cannot build the pool: {e}")))?;
        let store = PgStore {
            db: Db {
                pool,
                breaker: Arc::new(CircuitBreaker::new("postgres", opts.breaker)),
                cancel_tls,
            },
            target,
            schema: opts.schema,
            instance_id: opts
                .instance_id
                .unwrap_or_else(s3o_core::default_instance_id)
                .into(),
        };
        // Ping: fail at startup, not on the first request.
        let ctx = format!(
            "connect to {} (check host, port, database, credentials and sslmode)",
            store.target
        );
        drop(store.db.raw_client(&ctx).await?);
        tracing::info!(target_db = %store.target, max_size = opts.max_size, "postgres store connected");
        Ok(store)
    }

    /// The store's circuit breaker (state, stats, manual recovery).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.db.breaker
    }
}

impl Engine for PgStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn breaker(&self) -> &CircuitBreaker {
        PgStore::breaker(self)
    }
}
