//! Buckets: the ledger's `buckets` table.

use async_trait::async_trait;

use crate::cors::CorsConfig;
use crate::error::Result;
use crate::types::{Bucket, BucketSettings, BucketSpec, LifecycleRule};

/// Bucket rows: single statements. Deletion, the configuration sync and the bucket-checked
/// commit are multi-statement operations in [`crate::engine::EngineOps`].
#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Creates the bucket (`created_at = now`) in one statement (`INSERT … ON CONFLICT DO
    /// NOTHING`): `true` when created, `false` when the name already exists (nothing changes,
    /// its settings included). The name and settings are checked first
    /// ([`crate::validate::bucket_spec`]): `InvalidInput` naming the rule.
    async fn create_bucket(&self, spec: &BucketSpec) -> Result<bool>;
    /// The bucket; unknown ⇒ `BucketNotFound`.
    async fn get_bucket(&self, name: &str) -> Result<Bucket>;
    /// Every bucket, by name in byte order.
    async fn list_buckets(&self) -> Result<Vec<Bucket>>;
    /// Replaces every setting of the bucket (`extra` included), keeping its `created_at`.
    /// Settings checked first ([`crate::validate::bucket_settings`]); unknown ⇒ `BucketNotFound`.
    async fn update_bucket_settings(&self, name: &str, settings: &BucketSettings) -> Result<()>;
    /// Replaces the bucket's lifecycle rules (empty = none) in one statement, leaving every
    /// other setting alone. Rules checked first ([`crate::validate::lifecycle_rules`]); unknown
    /// bucket ⇒ `BucketNotFound`.
    async fn set_bucket_lifecycle(&self, name: &str, rules: &[LifecycleRule]) -> Result<()>;
    /// Sets (`Some`, checked first with [`crate::cors::check`]) or removes (`None`) the
    /// bucket's CORS configuration in one statement; unknown ⇒ `BucketNotFound`. Removing
    /// when there is none succeeds.
    async fn set_bucket_cors(&self, name: &str, cors: Option<&CorsConfig>) -> Result<()>;
    /// The bucket's CORS configuration, `None` when unset; unknown ⇒ `BucketNotFound`.
    async fn get_bucket_cors(&self, name: &str) -> Result<Option<CorsConfig>>;
    /// Sets (`Some`) or removes (`None`) one field of the bucket's `extra` settings in one
    /// statement, leaving its other fields and every other setting alone, so writers of
    /// different fields (ACL, tags, versioning) never lose each other's change. Checked first
    /// ([`crate::validate::bucket_extra_field`]); unknown bucket ⇒ `BucketNotFound`. Removing
    /// a field that is not there succeeds.
    async fn set_bucket_extra(
        &self,
        name: &str,
        field: &str,
        value: Option<&serde_json::Value>,
    ) -> Result<()>;
}
