//! Object tags: the one part of a version's stored form that changes in place.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::validate;

struct SetTags<'a> {
    key: &'a str,
    tags: &'a BTreeMap<String, String>,
}

#[async_trait]
impl TxBody for SetTags<'_> {
    type Output = ();
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<()> {
        // The key lock orders this against a write, delete or replica of the same key, so
        // every copy of the version ends with the same tags.
        tx.acquire_key_lock(self.key).await?;
        if tx.set_object_tags(self.key, self.tags).await? == 0 {
            return Err(StoreError::ObjectNotFound {
                key: self.key.to_owned(),
            });
        }
        Ok(())
    }
}

/// Replaces the tags of the current version of `key` on every copy (an empty map removes
/// them), under the key lock.
///
/// Tags outside S3's limits ([`validate::tags`]) ⇒ `InvalidInput`; no copy ⇒
/// `ObjectNotFound`; either way nothing changes. Quotas are untouched: tags are not bytes on a
/// backend. A later overwrite replaces them with the new version's own.
#[tracing::instrument(name = "set_object_tags", level = "debug", skip_all, fields(key = %key))]
pub async fn set_object_tags<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    validate::key(key)?;
    validate::tags(tags)?;
    with_tx_val(runner, &SetTags { key, tags }).await
}
