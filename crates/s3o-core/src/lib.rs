#![doc = include_str!("../README.md")]

pub mod breaker;
pub mod error;
pub mod locks;
pub mod ops;
pub mod roles;
pub mod tx;
pub mod types;
pub mod validate;

pub use error::{
    Access, BoxError, DbErrorKind, MIGRATE_HINT, Result, S3Error, StoreError, s3_error_for,
};
pub use locks::LockId;
pub use roles::*;
pub use tx::{BoxFuture, RetryBudget, Runner, Transaction, TxAdapter, TxBody, tx_fn, with_tx_val};
pub use types::*;

// The union must stay dyn-compatible: consumers hold `Arc<dyn MetadataStore>`.
const _: Option<&dyn MetadataStore> = None;
