//! The narrow role traits and their union, [`MetadataStore`].
//!
//! Consumers hold `Arc<dyn MetadataStore>`; every method returns a `Send` future. Roles that
//! include multi-statement operations (objects, quota, replication, cleanup, pending,
//! encryption) extend [`crate::tx::Runner`] and provide those operations from
//! [`crate::ops`], so an engine implements only single statements.

mod admin;
mod backend;
mod cleanup;
mod dashboard;
mod encryption;
mod integrity;
mod locker;
mod multipart;
mod notification;
mod objects;
mod pending;
mod quota;
mod reader;
mod replication;
mod usage;

pub use admin::{LifecycleAdmin, SchemaVersion};
pub use backend::BackendLifecycleStore;
pub use cleanup::CleanupStore;
pub use dashboard::DashboardStore;
pub use encryption::EncryptionAdmin;
pub use integrity::IntegrityStore;
pub use locker::AdvisoryLocker;
pub use multipart::MultipartStore;
pub use notification::NotificationOutbox;
pub use objects::ObjectStore;
pub use pending::PendingStore;
pub use quota::QuotaStore;
pub use reader::Reader;
pub use replication::ReplicationStore;
pub use usage::UsageStore;

/// Every role of the metadata store: the one dependency consumers declare.
pub trait MetadataStore:
    ObjectStore
    + QuotaStore
    + MultipartStore
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
    + Reader
    + 'static
{
    /// Engine name (`"postgres"` or `"sqlite"`), for logs and test matrices.
    fn engine(&self) -> &'static str;
}
