//! Multipart upload metadata.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{CreateMultipartUploadParams, MultipartPart, MultipartUpload};

/// Multipart upload bookkeeping: single statements. Recording a part and ending an upload
/// change quota counters, so they are operations ([`crate::ops::record_part`],
/// [`crate::ops::release_multipart_upload`]) over [`crate::tx::MultipartTx`].
#[async_trait]
pub trait MultipartStore: Send + Sync {
    /// Creates the upload row (`created_at = now`). Unknown backend ⇒ `UnknownBackend`.
    async fn create_multipart_upload(&self, params: &CreateMultipartUploadParams) -> Result<()>;
    /// The upload; unknown id ⇒ `MultipartUploadNotFound`.
    async fn get_multipart_upload(&self, upload_id: &str) -> Result<MultipartUpload>;
    /// Parts ordered by number; unknown upload ⇒ empty.
    async fn get_parts(&self, upload_id: &str) -> Result<Vec<MultipartPart>>;
    /// Uploads whose key starts with `prefix`, ordered by `(key, created_at)`, slim (no
    /// backend or encryption fields), at most `max` (≤ 0 ⇒ 1000).
    async fn list_multipart_uploads(&self, prefix: &str, max: i64) -> Result<Vec<MultipartUpload>>;
    /// Uploads whose key starts with `prefix`.
    async fn count_active_multipart_uploads(&self, prefix: &str) -> Result<i64>;
    /// Uploads created more than `older_than` ago (zero ⇒ every upload).
    async fn get_stale_multipart_uploads(
        &self,
        older_than: Duration,
    ) -> Result<Vec<MultipartUpload>>;
    /// Uploads on `backend`.
    async fn get_multipart_uploads_by_backend(&self, backend: &str)
    -> Result<Vec<MultipartUpload>>;
}
