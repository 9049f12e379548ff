//! The engine seam: what an engine crate (s3o-sqlite, s3o-pg) implements. **Not for
//! consumers**, who hold [`crate::MetadataStore`].
//!
//! An engine implements the role traits below (single statements and reads) and
//! [`crate::tx::Runner`] (transactions over [`crate::tx::TxAdapter`]), then [`Engine`], their
//! union. Every multi-statement operation is provided once by [`EngineOps`], implemented for
//! every engine by a blanket impl, so no engine can change a business rule. The role names are
//! the seed's; on the handle they survive as the grouping of its methods.

mod admin;
mod backend;
mod buckets;
mod cleanup;
mod dashboard;
mod encryption;
mod integrity;
mod locker;
mod multipart;
mod notification;
mod objects;
mod pending;
mod provided;
mod quota;
mod reader;
mod replication;
mod usage;
mod versions;

pub use crate::tx::{
    BoxFuture, EncryptionTx, RetryBudget, Runner, Transaction, TxAdapter, TxBody, VersionsTx,
    tx_fn, with_tx_val,
};
pub use admin::{LifecycleAdmin, SchemaVersion};
pub use backend::BackendLifecycleStore;
pub use buckets::BucketStore;
pub use cleanup::CleanupStore;
pub use dashboard::DashboardStore;
pub use encryption::EncryptionAdmin;
pub use integrity::IntegrityStore;
pub use locker::AdvisoryLocker;
pub use multipart::MultipartStore;
pub use notification::NotificationOutbox;
pub use objects::ObjectLedger;
pub use pending::PendingStore;
pub use provided::EngineOps;
pub use quota::QuotaStore;
pub use reader::Reader;
pub use replication::ReplicationStore;
pub use usage::UsageStore;
pub use versions::VersionStore;

/// Every role of an engine: what [`crate::MetadataStore::from_engine`] takes. Dyn-compatible,
/// with `Send` futures.
pub trait Engine:
    ObjectLedger
    + QuotaStore
    + MultipartStore
    + BucketStore
    + ReplicationStore
    + CleanupStore
    + PendingStore
    + IntegrityStore
    + UsageStore
    + NotificationOutbox
    + DashboardStore
    + BackendLifecycleStore
    + EncryptionAdmin
    + LifecycleAdmin
    + AdvisoryLocker
    + VersionStore
    + Reader
    + 'static
{
    /// Engine name (`"postgres"` or `"sqlite"`), for logs, metric labels and test matrices.
    fn engine(&self) -> &'static str;
    /// The circuit breaker every statement of this engine passes.
    fn breaker(&self) -> &crate::breaker::CircuitBreaker;
}
