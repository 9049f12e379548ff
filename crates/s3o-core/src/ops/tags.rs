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

struct SetVersionTags<'a> {
    key: &'a str,
    version_id: Option<&'a str>,
    tags: &'a BTreeMap<String, String>,
}

#[async_trait]
impl TxBody for SetVersionTags<'_> {
    type Output = String;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<String> {
        tx.acquire_key_lock(self.key).await?;
        let current = tx.current_version_id(self.key).await?;
        match self.version_id {
            None => {
                let Some(id) = current else {
                    return Err(StoreError::ObjectNotFound {
                        key: self.key.to_owned(),
                    });
                };
                tx.set_object_tags(self.key, self.tags).await?;
                Ok(id)
            }
            Some(v) if current.as_deref() == Some(v) => {
                tx.set_object_tags(self.key, self.tags).await?;
                Ok(v.to_owned())
            }
            Some(v) => {
                // A noncurrent version keeps its own tags; a delete marker has none to set.
                if tx.set_noncurrent_tags(self.key, v, self.tags).await? == 0 {
                    return Err(StoreError::VersionNotFound {
                        key: self.key.to_owned(),
                        version_id: v.to_owned(),
                    });
                }
                Ok(v.to_owned())
            }
        }
    }
}

/// Replaces the tags of one version of `key` on every copy of it (an empty map removes
/// them), under the key lock, and returns that version's id (`"null"` for the null version):
/// the current version when `version_id` is `None` (no current copy ⇒ `ObjectNotFound`), else
/// the version named, current or noncurrent (none, or a delete marker ⇒ `VersionNotFound`).
/// Every other version keeps its own tags. Tags outside S3's limits ⇒ `InvalidInput`; on any
/// error nothing changes. Quotas are untouched.
#[tracing::instrument(name = "set_version_tags", level = "debug", skip_all, fields(key = %key))]
pub async fn set_version_tags<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    version_id: Option<&str>,
    tags: &BTreeMap<String, String>,
) -> Result<String> {
    validate::key(key)?;
    validate::tags(tags)?;
    if let Some(v) = version_id {
        super::versions::check_version_id(v)?;
    }
    with_tx_val(
        runner,
        &SetVersionTags {
            key,
            version_id,
            tags,
        },
    )
    .await
}
