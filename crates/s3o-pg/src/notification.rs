//! `notification_outbox`: durable webhook events.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use s3o_core::engine::NotificationOutbox;
use s3o_core::{MAX_ATTEMPTS, NotificationRow, Result, validate};

use crate::PgStore;
use crate::conn::{interval_micros, limit_param};
use crate::error::RowExt;

/// Due rows, oldest first. [`MAX_ATTEMPTS`] is written into the text rather than bound so
/// the planner can prove the partial index's `attempts < 10` predicate in a generic plan too.
static DUE_NOTIFICATIONS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, event_type, payload::text, endpoint_url, attempts \
         FROM notification_outbox WHERE next_retry <= NOW() AND attempts < {MAX_ATTEMPTS} \
         ORDER BY created_at, id LIMIT $1"
    )
});

/// The due-notifications statement (`$1` limit), for tests that EXPLAIN it.
#[doc(hidden)]
pub fn due_notifications_statement() -> &'static str {
    &DUE_NOTIFICATIONS
}

#[async_trait]
impl NotificationOutbox for PgStore {
    async fn insert_notification(
        &self,
        event_type: &str,
        payload: &str,
        endpoint_url: &str,
    ) -> Result<i64> {
        validate::notification(event_type, payload, endpoint_url)?;
        let row = self
            .db
            .query_one(
                "insert notification",
                "INSERT INTO notification_outbox (event_type, payload, endpoint_url) \
                 VALUES ($1, $2::text::json, $3) RETURNING id",
                &[&event_type, &payload, &endpoint_url],
            )
            .await?;
        Ok(row.col(0)?)
    }

    async fn get_due_notifications(&self, limit: i64) -> Result<Vec<NotificationRow>> {
        let limit = limit_param(validate::page(limit));
        // Uses idx_notification_outbox_pending (whose predicate is `attempts < MAX_ATTEMPTS`).
        let rows = self
            .db
            .query("list pending notifications", &DUE_NOTIFICATIONS, &[&limit])
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(NotificationRow {
                    id: r.col(0)?,
                    event_type: r.col(1)?,
                    payload: r.col(2)?,
                    endpoint_url: r.col(3)?,
                    attempts: r.col(4)?,
                })
            })
            .collect::<Result<_>>()?)
    }

    async fn complete_notification(&self, id: i64) -> Result<()> {
        self.db
            .execute(
                "complete notification",
                "DELETE FROM notification_outbox WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(())
    }

    async fn retry_notification(&self, id: i64, backoff: Duration, last_error: &str) -> Result<()> {
        validate::text("last error", last_error)?;
        self.db
            .execute(
                "retry notification",
                "UPDATE notification_outbox SET attempts = attempts + 1, \
                 next_retry = NOW() + $2::bigint * INTERVAL '1 microsecond', last_error = $3 \
                 WHERE id = $1",
                &[&id, &interval_micros(backoff), &last_error],
            )
            .await?;
        Ok(())
    }
}
