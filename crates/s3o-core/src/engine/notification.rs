//! The durable notification outbox.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::types::NotificationRow;

/// Webhook outbox. One drainer at a time, under a leader lock.
#[async_trait]
pub trait NotificationOutbox: Send + Sync {
    /// Enqueues an event; `payload` must be valid JSON (`InvalidInput` otherwise). Returns the
    /// row id.
    async fn insert_notification(
        &self,
        event_type: &str,
        payload: &str,
        endpoint_url: &str,
    ) -> Result<i64>;
    /// Due rows (`next_retry <= now AND attempts < 10`), oldest first, at most `limit`.
    async fn get_due_notifications(&self, limit: i64) -> Result<Vec<NotificationRow>>;
    /// Deletes a delivered row; missing ⇒ no-op.
    async fn complete_notification(&self, id: i64) -> Result<()>;
    /// `attempts += 1`, `next_retry = now + backoff`, records the error.
    async fn retry_notification(&self, id: i64, backoff: Duration, last_error: &str) -> Result<()>;
}
