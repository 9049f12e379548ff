//! Counts for the dashboard.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;

/// Per-backend counts.
#[async_trait]
pub trait DashboardStore: Send + Sync {
    /// Copies per backend.
    async fn get_object_counts(&self) -> Result<BTreeMap<String, i64>>;
    /// Copies without a content hash per backend.
    async fn get_unverified_object_counts(&self) -> Result<BTreeMap<String, i64>>;
    /// Active multipart uploads per backend.
    async fn get_active_multipart_counts(&self) -> Result<BTreeMap<String, i64>>;
    /// Noncurrent copies and bytes per backend and the number of delete markers, in one
    /// statement over `object_versions`.
    async fn get_version_stats(&self) -> Result<crate::versioning::VersionStats>;
}
