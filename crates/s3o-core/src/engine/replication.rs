//! Replication: finding under- and over-replicated keys and adjusting copies.

use async_trait::async_trait;

use crate::error::Result;
use crate::tx::Runner;
use crate::types::ObjectLocation;

/// Replication queries and copy adjustments.
#[async_trait]
pub trait ReplicationStore: Runner {
    /// Every row of up to `limit` keys whose managed copies number fewer than `factor`,
    /// ordered by `(key, created_at)`. `limit` per [`crate::validate::batch_limit`]: ≤ 0 ⇒
    /// nothing.
    async fn get_under_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>>;
    /// As [`ReplicationStore::get_under_replicated_objects`], not counting copies on
    /// `excluded` backends: a key whose only managed copies sit on excluded (e.g. draining)
    /// backends is returned.
    async fn get_under_replicated_objects_excluding(
        &self,
        factor: i64,
        limit: i64,
        excluded: &[String],
    ) -> Result<Vec<ObjectLocation>>;
    /// Every row of up to `limit` keys with more than `factor` managed copies (limit ≤ 0 ⇒
    /// nothing).
    async fn get_over_replicated_objects(
        &self,
        factor: i64,
        limit: i64,
    ) -> Result<Vec<ObjectLocation>>;
    /// Number of keys with more than `factor` managed copies.
    async fn count_over_replicated_objects(&self, factor: i64) -> Result<i64>;
}
