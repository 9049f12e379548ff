//! s3o-gateway: one S3 endpoint in front of several S3-compatible backends (and local
//! directories), with the s3o ledger recording where every object lives and how many bytes
//! each backend holds against its quota.
//!
//! ```text
//! S3 client ──SigV4──▶ s3s (auth, parsing) ──▶ GatewayS3 ──▶ ledger (s3o store handle)
//!                                                   └──────▶ backends (object_store)
//! ```
//!
//! Writes follow the store's workflow: route by quota → intent → stream the body to its own
//! backend path → commit (record-and-clear) only after the body was verified to its end →
//! delete the displaced bytes. Reads and listings are answered from the ledger; when the
//! ledger is unavailable, reads are broadcast to every backend and writes answer 503.

pub mod config;

mod admin;
mod admission;
mod auth;
mod backends;
mod body;
mod completions;
mod crypto;
mod demo;
mod keys;
mod ledger;
mod metrics;
mod read_cache;
mod redact;
mod s3;
mod server;
mod single_put;
#[cfg(test)]
mod smoke_tests;
mod store_metrics;
mod tls;
mod usage;
pub mod workers;

use std::net::SocketAddr;

pub use admin::client::{USAGE as ADMIN_USAGE, run as admin_cli};
pub use admin::session::ConsoleConfig;
pub use config::{
    BackendConfig, BackendKind, BucketConfig, Config, ConfigError, Credential, LifecycleRuleConfig,
    LogConfig, LogFormat, RoutingPolicy, ServerConfig, TlsConfig,
};
pub use crypto::config::{EncryptionConfig, KeySource, PreviousKey};
pub use crypto::convert::{
    ConvertProgress, Direction as ConvertDirection, convert as convert_objects,
};
pub use crypto::rotate::{
    MAX_PASSES as ROTATE_MAX_PASSES, RotateCounts, RotateOptions, RotateProgress,
    holder_name as key_holder_name, rotate as rotate_encryption_keys,
};
pub use demo::{
    DEMO_ACCESS_KEY, DEMO_BUCKET, DEMO_QUOTA_BYTES, DEMO_SECRET_KEY, DemoSetup, demo_config,
};
pub use server::{Gateway, ReloadReport, RunningGateway};
pub use usage::{BackendMonthUsage, MonthUsage, month_usage};
pub use workers::{
    DrainProgress, DrainReport, ImportEvent, ImportOptions, ImportProgress, ImportRefusal,
    PassResult, Worker, WorkersConfig, WorkersReport, drain, import,
};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The ledger could not be opened, migrated or synced.
    #[error("ledger {url}: {source}")]
    Store {
        /// The store URL, its password (if any) replaced by `***`.
        url: String,
        /// The store's error.
        #[source]
        source: s3o_store::StoreError,
    },
    /// A backend could not be set up.
    #[error("backend {name}: {why}")]
    Backend {
        /// The backend's name.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// A background worker or the drain command could not do its job.
    #[error("{why}")]
    Worker {
        /// What went wrong.
        why: String,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("tls: {why}")]
    Tls {
        /// What went wrong (file names, never their contents).
        why: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The ledger handle type the gateway holds.
pub type LedgerHandle = s3o_store::MetadataStore;
