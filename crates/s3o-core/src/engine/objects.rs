//! Object ledger: where every copy lives.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::engine::Reader;
use crate::error::Result;
use crate::tx::Runner;

/// The object ledger's single-statement reads (the seed's `ObjectStore` role; renamed so it
/// never clashes with `object_store::ObjectStore`). Its multi-statement operations are in
/// [`crate::engine::EngineOps`].
#[async_trait]
pub trait ObjectLedger: Reader + Runner {
    /// Backends holding each key, for many keys in one query. Empty input ⇒ empty map without
    /// a query; keys without copies are absent.
    async fn get_object_backends_for_keys(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>>;
}
