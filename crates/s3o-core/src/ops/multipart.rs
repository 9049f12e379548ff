//! Multipart parts are charged to their upload's backend while the upload is open.
//!
//! A part's bytes sit on the upload's backend from the moment it is recorded until the upload
//! ends, so they count in its `bytes_used` exactly like a copy's: on every backend, after
//! every transaction, `bytes_used == Σ copy sizes + Σ part sizes of open uploads`. Recording a part
//! admits its bytes under the one quota rule (decision 5) in the transaction that records it;
//! a part recorded again under the same number swaps the charge, the replaced attempt's bytes
//! going to the cleanup queue (`orphan_bytes`) in that transaction; the end of an upload
//! (Complete, Abort, expiry) moves every part's bytes to the queue the same way. Lock order:
//! the upload row, then the quota row (no key lock is taken: an upload's transactions never
//! touch a copy).

use async_trait::async_trait;

use super::cleanup::enqueue_orphans;
use super::objects::orphan_entry;
use super::quota::{QuotaDeltas, apply_ledger_deltas};
use crate::error::{Result, StoreError};
use crate::tx::{Runner, TxAdapter, TxBody, with_tx_val};
use crate::types::{DeletedCopy, PartBytes, StoredForm};
use crate::validate;

struct RecordPart<'a> {
    instance: &'a str,
    upload_id: &'a str,
    part_number: i32,
    etag: &'a str,
    size: i64,
    form: &'a StoredForm,
}

#[async_trait]
impl TxBody for RecordPart<'_> {
    type Output = Vec<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        let Some((key, backend)) = tx.lock_multipart_upload(self.upload_id).await? else {
            return Err(StoreError::MultipartUploadNotFound {
                upload_id: self.upload_id.to_owned(),
            });
        };
        let old = tx
            .get_part_bytes(self.upload_id)
            .await?
            .into_iter()
            .find(|p| p.part_number == self.part_number);
        tx.upsert_part(
            self.upload_id,
            self.part_number,
            self.etag,
            self.size,
            self.form,
        )
        .await?;
        let new = PartBytes {
            part_number: self.part_number,
            size_bytes: self.size,
            storage_key: self.form.storage_key.clone(),
        };
        let mut used = QuotaDeltas::from([(backend.clone(), self.size)]);
        let mut orphan = QuotaDeltas::new();
        let mut queued = Vec::new();
        if let Some(old) = old {
            // The replaced part leaves the charge; unless the new one was written over it in
            // place, its bytes stay on the backend until cleanup: they become orphans, and the
            // guard admits the new part on top of them.
            *used.entry(backend.clone()).or_default() -= old.size_bytes;
            let path = old.path(self.upload_id);
            if path != new.path(self.upload_id) {
                let entry = orphan_entry(&key, &backend, &path, old.size_bytes, "replaced part");
                queued = enqueue_orphans(tx, self.instance, vec![entry], &mut orphan).await?;
            }
        }
        apply_ledger_deltas(tx, &used, &orphan).await?;
        Ok(queued)
    }
}

/// Records (or replaces) part `part_number` of `upload_id` and charges its bytes to the
/// upload's backend, in one transaction: the upload row is locked (gone ⇒
/// `MultipartUploadNotFound`), the part upserted, and the backend's quota charged under the one
/// rule (`bytes_used + orphan_bytes + delta <= bytes_limit`, or unlimited) with `size` bytes;
/// when it does not fit ⇒ `NoSpaceAvailable` and nothing changes. A part already recorded
/// under the number is replaced: its bytes leave `bytes_used` and, unless `form.storage_key`
/// names the same path, are enqueued for cleanup and charged to `orphan_bytes` (returned,
/// their rows born claimed by this store, so the caller may delete them at once and complete
/// the rows). Bad input (part number outside 1..=10000, negative size, invalid etag or form) ⇒
/// `InvalidInput` before any SQL.
#[tracing::instrument(name = "record_part", level = "debug", skip_all, fields(upload = %upload_id, part = part_number))]
pub async fn record_part<R: Runner + ?Sized>(
    runner: &R,
    upload_id: &str,
    part_number: i32,
    etag: &str,
    size: i64,
    form: &StoredForm,
) -> Result<Vec<DeletedCopy>> {
    validate::part(upload_id, part_number, etag, size, form)?;
    let body = RecordPart {
        instance: runner.instance_id(),
        upload_id,
        part_number,
        etag,
        size,
        form,
    };
    with_tx_val(runner, &body)
        .await
        .map_err(|e| e.context("record part"))
}

struct Release<'a> {
    instance: &'a str,
    upload_id: &'a str,
    reason: &'a str,
}

#[async_trait]
impl TxBody for Release<'_> {
    type Output = Vec<DeletedCopy>;
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<Self::Output> {
        let Some((key, backend)) = tx.lock_multipart_upload(self.upload_id).await? else {
            return Ok(Vec::new());
        };
        let parts = tx.get_part_bytes(self.upload_id).await?;
        tx.delete_multipart_upload_row(self.upload_id).await?;
        let total: i64 = parts.iter().map(|p| p.size_bytes).sum();
        let entries = parts
            .iter()
            .map(|p| {
                orphan_entry(
                    &key,
                    &backend,
                    &p.path(self.upload_id),
                    p.size_bytes,
                    self.reason,
                )
            })
            .collect();
        let mut orphan = QuotaDeltas::new();
        let queued = enqueue_orphans(tx, self.instance, entries, &mut orphan).await?;
        let used = QuotaDeltas::from([(backend, -total)]);
        apply_ledger_deltas(tx, &used, &orphan).await?;
        Ok(queued)
    }
}

/// Ends an upload in the ledger: locks its row, deletes it with its parts, and moves every
/// part's bytes from the backend's `bytes_used` to the cleanup queue (`orphan_bytes`), in one
/// transaction. What Complete (after its object committed), Abort and the expiry of an upload
/// do; `reason` is recorded with the queue rows. Returns the queued parts (rows born claimed by
/// this store: the caller deletes the bytes and completes the rows, or leaves them to the
/// cleanup worker). Unknown upload ⇒ empty, nothing changes.
#[tracing::instrument(name = "release_multipart_upload", level = "debug", skip_all, fields(upload = %upload_id))]
pub async fn release_multipart_upload<R: Runner + ?Sized>(
    runner: &R,
    upload_id: &str,
    reason: &str,
) -> Result<Vec<DeletedCopy>> {
    validate::id("upload id", upload_id)?;
    validate::text("cleanup reason", reason)?;
    let body = Release {
        instance: runner.instance_id(),
        upload_id,
        reason,
    };
    with_tx_val(runner, &body)
        .await
        .map_err(|e| e.context("release multipart upload"))
}
