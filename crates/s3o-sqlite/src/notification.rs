//! `notification_outbox`: durable webhook events.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::engine::NotificationOutbox;
use s3o_core::{MAX_ATTEMPTS, NotificationRow, Result, Timestamp, validate};

use crate::SqliteStore;
use crate::reader::page_limit;

/// Due notifications, oldest first (`?1` now, `?2` limit): walks
/// `idx_notification_outbox_pending (created_at, id) WHERE attempts < 10` in order and stops
/// after the batch. [`MAX_ATTEMPTS`] is formatted in as a literal so the partial index applies.
static DUE_NOTIFICATIONS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT id, event_type, payload, endpoint_url, attempts FROM notification_outbox \
         WHERE next_retry <= ?1 AND attempts < {MAX_ATTEMPTS} ORDER BY created_at, id LIMIT ?2"
    )
});

/// The due-notifications statement, for tests that EXPLAIN it.
#[doc(hidden)]
pub fn due_notifications_statement() -> &'static str {
    &DUE_NOTIFICATIONS
}

#[async_trait]
impl NotificationOutbox for SqliteStore {
    async fn insert_notification(
        &self,
        event_type: &str,
        payload: &str,
        endpoint_url: &str,
    ) -> Result<i64> {
        validate::notification(event_type, payload, endpoint_url)?;
        let (event_type, payload, endpoint) = (
            event_type.to_owned(),
            payload.to_owned(),
            endpoint_url.to_owned(),
        );
        self.conns
            .write("insert notification", move |db| {
                let now = Timestamp::now().as_micros();
                // Stored verbatim as TEXT (PostgreSQL normalises through JSONB).
                db.query_one(
                    "insert notification",
                    "INSERT INTO notification_outbox (event_type, payload, endpoint_url, \
                                                      created_at, next_retry, attempts) \
                     VALUES (?1, ?2, ?3, ?4, ?4, 0) RETURNING id",
                    params![event_type, payload, endpoint, now],
                    |r| r.get(0),
                )
            })
            .await
    }

    async fn get_due_notifications(&self, limit: i64) -> Result<Vec<NotificationRow>> {
        let limit = page_limit(limit);
        self.conns
            .read("get pending notifications", move |db| {
                // Served by idx_notification_outbox_pending.
                db.query_vec(
                    "get pending notifications",
                    &DUE_NOTIFICATIONS,
                    params![Timestamp::now().as_micros(), limit],
                    |r| {
                        Ok(NotificationRow {
                            id: r.get(0)?,
                            event_type: r.get(1)?,
                            payload: r.get(2)?,
                            endpoint_url: r.get(3)?,
                            attempts: r.get(4)?,
                        })
                    },
                )
            })
            .await
    }

    async fn complete_notification(&self, id: i64) -> Result<()> {
        self.conns
            .write("complete notification", move |db| {
                db.execute(
                    "complete notification",
                    "DELETE FROM notification_outbox WHERE id = ?1",
                    params![id],
                )?;
                Ok(())
            })
            .await
    }

    async fn retry_notification(&self, id: i64, backoff: Duration, last_error: &str) -> Result<()> {
        validate::text("last error", last_error)?;
        let last_error = last_error.to_owned();
        self.conns
            .write("retry notification", move |db| {
                db.execute(
                    "retry notification",
                    "UPDATE notification_outbox SET attempts = attempts + 1, next_retry = ?2, \
                            last_error = ?3 \
                     WHERE id = ?1",
                    params![id, Timestamp::now().plus(backoff).as_micros(), last_error],
                )?;
                Ok(())
            })
            .await
    }
}
