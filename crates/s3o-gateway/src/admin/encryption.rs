//! Encryption administration as jobs: `rotate`, `encrypt-existing` and `decrypt-existing`
//! run the same code as the `s3o-gateway encryption …` subcommands
//! ([`crate::crypto::rotate::rotate_in`], [`crate::crypto::convert::convert_in`]), with this
//! gateway's ledger, backends and keys; their counters are the job's progress. One
//! encryption job runs at a time. `decrypt-existing` leaves objects readable by whoever
//! reads the backends, so it takes a confirmation token first, like the other destructive
//! actions.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::routes::{Action, Answer, int_field, issue, redeem, str_field};
use super::{Admin, ApiError};
use crate::crypto::convert::{ConvertProgress, Direction};
use crate::crypto::gateway::Crypto;
use crate::crypto::rotate::{RotateOptions, RotateProgress};

/// The job kinds, one target (`encryption`): at most one runs.
const KINDS: [&str; 3] = ["rotate", "encrypt-existing", "decrypt-existing"];
const TARGET: &str = "encryption";
/// Most keys or copies per ledger page, and the longest pause between pages.
const MAX_BATCH: i64 = 10_000;
const MAX_PAUSE_MS: u64 = 60_000;

/// The pacing fields of a body (`batch` 1–10000, default 100; `pause_ms` 0–60000, default 0).
fn pacing(body: &Value) -> Result<RotateOptions, ApiError> {
    let mut opts = RotateOptions::default();
    if let Some(b) = int_field(body, "batch")? {
        if !(1..=MAX_BATCH).contains(&b) {
            return Err(ApiError::bad(format!(
                "batch must be from 1 to {MAX_BATCH}"
            )));
        }
        opts.batch = b;
    }
    if let Some(ms) = int_field(body, "pause_ms")? {
        let ms = u64::try_from(ms)
            .ok()
            .filter(|ms| *ms <= MAX_PAUSE_MS)
            .ok_or_else(|| ApiError::bad(format!("pause_ms must be from 0 to {MAX_PAUSE_MS}")))?;
        opts.pause = Duration::from_millis(ms);
    }
    Ok(opts)
}

/// The gateway's keys, or 409 when it has no `[encryption]` section.
fn crypto(admin: &Admin) -> Result<Arc<Crypto>, ApiError> {
    admin.crypto.clone().ok_or_else(|| {
        ApiError::conflict(
            "EncryptionNotConfigured",
            "this gateway has no [encryption] section: configure a master key and restart",
        )
    })
}

/// 409 when an encryption job runs already.
fn none_running(admin: &Admin) -> Result<(), ApiError> {
    for kind in KINDS {
        if let Some(id) = admin.jobs.running(kind, TARGET) {
            return Err(ApiError::conflict(
                "JobInProgress",
                format!("encryption job {id} ({kind}) is running: wait for it or cancel it"),
            ));
        }
    }
    Ok(())
}

fn rotate_view(p: &RotateProgress) -> Value {
    // Per table: current and noncurrent copies, open uploads, their parts, write intents.
    let holders: serde_json::Map<String, Value> = p
        .holders
        .iter()
        .map(|(name, c)| {
            (
                (*name).to_owned(),
                json!({
                    "examined": c.examined,
                    "rewrapped": c.rewrapped,
                    "current": c.current,
                    "raced": c.raced,
                    "failed": c.failed,
                }),
            )
        })
        .collect();
    json!({
        "examined": p.examined,
        "rewrapped": p.rewrapped,
        "current": p.current,
        "raced": p.raced,
        "failed": p.failed,
        "holders": holders,
        "passes": p.passes,
        "remaining": p.remaining,
    })
}

fn convert_view(p: &ConvertProgress) -> Value {
    json!({
        "examined": p.examined,
        "converted": p.converted,
        "skipped": p.skipped,
        "raced": p.raced,
        "failed": p.failed,
        "noncurrent": p.noncurrent,
    })
}

/// `GET encryption`: what this gateway encrypts and with which key.
pub(super) async fn status(admin: &Admin) -> Answer {
    let running = KINDS.iter().find_map(|k| {
        admin
            .jobs
            .running(k, TARGET)
            .and_then(|id| admin.jobs.get(&id))
    });
    let Some(c) = &admin.crypto else {
        return Ok((StatusCode::OK, json!({"configured": false, "job": running})));
    };
    let buckets: Vec<Value> = admin
        .ledger
        .buckets()
        .await?
        .iter()
        .map(|b| json!({"name": b.name, "encrypts": c.encrypts(&b.name)}))
        .collect();
    Ok((
        StatusCode::OK,
        json!({
            "configured": true,
            "key_id": c.keys().current_key_id(),
            "chunk_size": c.chunk(),
            "buckets": buckets,
            "job": running,
        }),
    ))
}

/// `POST encryption/rotate`.
pub(super) fn rotate(admin: &Admin, body: &Value) -> Answer {
    let opts = pacing(body)?;
    let crypto = crypto(admin)?;
    none_running(admin)?;
    let store = admin.store.clone();
    let job = admin.jobs.start("rotate", TARGET, move |h| async move {
        let h2 = h.clone();
        let mut progress = move |p: &RotateProgress| h2.progress(rotate_view(p));
        let r = crate::crypto::rotate::rotate_in(&store, crypto.keys(), opts, &mut progress).await;
        h.finish(r.map(|p| rotate_view(&p)).map_err(|e| e.to_string()));
    });
    Ok((StatusCode::ACCEPTED, job))
}

fn start_conversion(
    admin: &Admin,
    direction: Direction,
    opts: RotateOptions,
    crypto: Arc<Crypto>,
) -> Value {
    let ctx = admin.workers.clone();
    let kind = match direction {
        Direction::Encrypt => "encrypt-existing",
        Direction::Decrypt => "decrypt-existing",
    };
    admin.jobs.start(kind, TARGET, move |h| async move {
        let h2 = h.clone();
        let mut progress = move |p: &ConvertProgress| h2.progress(convert_view(p));
        let r =
            crate::crypto::convert::convert_in(&ctx, &crypto, direction, opts, &mut progress).await;
        h.finish(r.map(|p| convert_view(&p)).map_err(|e| e.to_string()));
    })
}

/// `POST encryption/encrypt-existing`.
pub(super) fn encrypt_existing(admin: &Admin, body: &Value) -> Answer {
    let opts = pacing(body)?;
    let crypto = crypto(admin)?;
    none_running(admin)?;
    Ok((
        StatusCode::ACCEPTED,
        start_conversion(admin, Direction::Encrypt, opts, crypto),
    ))
}

/// `POST encryption/decrypt-existing`: a token first, then the job.
pub(super) async fn decrypt_existing(admin: &Admin, body: &Value) -> Answer {
    let opts = pacing(body)?;
    let crypto = crypto(admin)?;
    let action = Action::DecryptExisting {
        batch: opts.batch,
        pause_ms: u64::try_from(opts.pause.as_millis()).unwrap_or(u64::MAX),
    };
    match str_field(body, "token")? {
        None => {
            none_running(admin)?;
            let buckets: Vec<String> = admin
                .ledger
                .buckets()
                .await?
                .into_iter()
                .filter(|b| !crypto.encrypts(&b.name))
                .map(|b| b.name)
                .collect();
            let (token, ttl) = issue(admin, body, action)?;
            Ok((
                StatusCode::OK,
                json!({
                    "confirm": true,
                    "token": token,
                    "expires_in_secs": ttl,
                    "buckets": buckets,
                    "effect": "rewrites every encrypted object of these buckets (the ones that do not encrypt) as plaintext on its backends; whoever reads a backend then reads their contents",
                }),
            ))
        }
        Some(token) => {
            redeem(admin, token, &action)?;
            none_running(admin)?;
            Ok((
                StatusCode::ACCEPTED,
                start_conversion(admin, Direction::Decrypt, opts, crypto),
            ))
        }
    }
}
