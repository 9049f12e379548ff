#![doc = include_str!("../README.md")]

pub mod breaker;
pub mod cors;
pub mod engine;
pub mod error;
mod handle;
pub mod locks;
pub mod ops;
#[cfg(feature = "metrics")]
pub mod telemetry;
pub mod tx;
pub mod types;
pub mod validate;
pub mod versioning;

pub use breaker::{BreakerConfig, BreakerState, BreakerStats};
pub use cors::{CorsConfig, CorsRule};
pub use engine::SchemaVersion;
pub use error::{
    Access, BoxError, DbErrorKind, MIGRATE_HINT, Result, S3Error, StoreError, s3_error_for,
};
pub use handle::MetadataStore;
pub use locks::LockId;
pub use ops::{NoncurrentExpiry, VersionAge, VersionExpiry, due_versions};
pub use types::*;
pub use versioning::{
    CURRENT_SEQ, Committed, DeleteOutcome, NULL_VERSION_ID, NoncurrentCopy, NoncurrentReplicas,
    ObjectVersion, VersionCopy, VersionListing, Versioning,
};
pub use versioning::{NoncurrentStat, VersionStats};

// The seam must stay dyn-compatible: the handle holds `Arc<dyn Engine>`.
const _: Option<&dyn engine::Engine> = None;
