//! What the integrity scrubber changes: the version-checked removal of a copy found bad.

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{BadCopyRemoval, ExistingCopy, Timestamp};
use crate::validate;

struct RemoveBad<'a> {
    instance: &'a str,
    key: &'a str,
    backend: &'a str,
    storage_key: &'a str,
    created_at: Timestamp,
}

/// The physical path of a locked copy (empty `storage_key` = the object key).
fn path_of<'a>(key: &'a str, c: &'a ExistingCopy) -> &'a str {
    if c.storage_key.is_empty() {
        key
    } else {
        &c.storage_key
    }
}

#[async_trait]
impl TxBody for RemoveBad<'_> {
    type Output = BadCopyRemoval;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<BadCopyRemoval> {
        tx.acquire_key_lock(self.key).await?;
        let copies = tx.get_existing_copies_for_update(self.key).await?;
        let Some(target) = copies.iter().find(|c| {
            c.backend_name == self.backend
                && path_of(self.key, c) == self.storage_key
                && c.created_at == self.created_at
        }) else {
            return Ok(BadCopyRemoval::Changed);
        };
        // Only copies of the same version (same path) on other backends can stand in for it.
        let siblings: Vec<&ExistingCopy> = copies
            .iter()
            .filter(|c| c.backend_name != self.backend && path_of(self.key, c) == self.storage_key)
            .collect();
        if siblings.is_empty() {
            return Ok(BadCopyRemoval::LastCopy);
        }
        let holds_dek = |c: &ExistingCopy| c.encrypted && c.has_dek;
        if holds_dek(target)
            && !siblings.iter().any(|c| holds_dek(c))
            && siblings.iter().any(|c| c.encrypted)
        {
            return Ok(BadCopyRemoval::OnlyKeyHolder);
        }
        tx.delete_object_from_backend(self.key, self.backend)
            .await?;
        super::objects::remove_one_copy(tx, self.instance, self.key, target, "bad copy")
            .await
            .map(BadCopyRemoval::Removed)
    }
}

/// Removes the copy of `key` on `backend` that a check found bad (its bytes missing or not
/// matching), only while it is still the copy that was checked: at `storage_key` (its
/// physical path, [`crate::StoredForm::storage_path`]) and recorded at `created_at`, re-read
/// under the key lock, so an overwrite or a new copy recorded since the check is never
/// removed for what was found about older bytes. Never removes the last copy of that version
/// (another backend must hold a copy at the same path): `LastCopy`, nothing changed, for the
/// caller to report. Keeps the only copy holding the data-encryption key while an encrypted
/// sibling has none (`OnlyKeyHolder`). Otherwise the row goes, its size moves from
/// `bytes_used` to `orphan_bytes` and its bytes are queued for deletion in the same
/// transaction; the returned claim is born held by this store (delete, then complete it).
#[tracing::instrument(name = "remove_bad_copy", level = "debug", skip_all, fields(key = %key, backend = %backend))]
pub async fn remove_bad_copy<R: Runner + ?Sized>(
    runner: &R,
    key: &str,
    backend: &str,
    storage_key: &str,
    created_at: Timestamp,
) -> Result<BadCopyRemoval> {
    validate::key(key)?;
    validate::backend(backend)?;
    validate::storage_path(storage_key)?;
    with_tx_val(
        runner,
        &RemoveBad {
            instance: runner.instance_id(),
            key,
            backend,
            storage_key,
            created_at,
        },
    )
    .await
}
