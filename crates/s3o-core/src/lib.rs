//! # s3o-core
//!
//! The engine-agnostic heart of the s3o metadata store: the ledger of where every object copy
//! lives, what each backend holds against its quota, which physical deletes are outstanding,
//! which uploads are in flight and which background service leads.
//!
//! ```text
//!   consumer ──► Arc<dyn MetadataStore>            (roles: objects, quota, cleanup, ...)
//!                    │ single-statement methods ──► engine SQL (s3o-pg / s3o-sqlite)
//!                    │ multi-statement methods  ──► ops::*  (written once, here)
//!                    │                                 │
//!                    ▼                                 ▼
//!                 Runner::begin ──► Transaction: TxAdapter primitives (one statement each)
//!                                   every statement passes the engine's CircuitBreaker
//! ```
//!
//! This crate holds no database driver. Engines implement [`tx::Runner`], [`tx::Transaction`]
//! and the single-statement role methods; the multi-statement operations in [`ops`] are
//! provided methods of the role traits, so both engines run the same business rules.

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
