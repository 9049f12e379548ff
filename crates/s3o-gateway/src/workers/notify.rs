//! The notifier: delivers the notification outbox to its webhooks, at least once.
//!
//! Each pass takes up to `batch_size` due rows, oldest first, and POSTs each row's JSON payload
//! to the row's endpoint URL with `Content-Type: application/json`, `X-S3O-Event-Id` (the row
//! id: a receiver drops repeats by it), `X-S3O-Event-Type`, and, with a `secret`,
//! `X-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. A 2xx answer deletes the row; any
//! other answer, a timeout or a refused connection reschedules it after `backoff_base ·
//! 2^attempts` (capped at `backoff_max`, jittered); the store stops returning a row after its
//! 10th attempt (counted `dropped`). A failing endpoint delays only its own rows.
//!
//! Unlocked, as the original design has it: every gateway drains the outbox. Two gateways may
//! deliver a row twice (both read it before either deleted it), which at-least-once delivery
//! allows and the event id lets a receiver absorb.

use hmac::{KeyInit as _, Mac as _};

use super::cleanup::backoff;
use super::{Ctx, Tally};
use crate::ledger::LResult;

/// Attempts after which the store stops returning a row.
const MAX_ATTEMPTS: i32 = 10;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let s = &ctx.settings.notify;
    let rows = ctx
        .store
        .get_due_notifications(i64::from(s.batch_size))
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let client = match reqwest::Client::builder().timeout(s.timeout.0).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "notifier: cannot build an HTTP client");
            return Ok(());
        }
    };
    for row in rows {
        if ctx.stopping() {
            break;
        }
        let mut req = client
            .post(&row.endpoint_url)
            .header("content-type", "application/json")
            .header("x-s3o-event-id", row.id.to_string())
            .header("x-s3o-event-type", &row.event_type);
        if let Some(secret) = &s.secret {
            req = req.header("x-signature-256", signature(secret, row.payload.as_bytes()));
        }
        let sent = req.body(row.payload.clone()).send().await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("answered {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => {
                ctx.store.complete_notification(row.id).await?;
                t.add("delivered");
            }
            Some(why) => {
                let wait = backoff(s.backoff_base.0, s.backoff_max.0, row.attempts);
                ctx.store.retry_notification(row.id, wait, &why).await?;
                if row.attempts + 1 >= MAX_ATTEMPTS {
                    tracing::error!(id = row.id, endpoint = %crate::redact::url(&row.endpoint_url), error = %why, "notification dropped after its last attempt");
                    t.add("dropped");
                } else {
                    tracing::warn!(id = row.id, endpoint = %crate::redact::url(&row.endpoint_url), error = %why, "notification delivery failed; retried later");
                    t.add("retried");
                }
            }
        }
    }
    Ok(())
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
