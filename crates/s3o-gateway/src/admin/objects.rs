//! The object browser: a bucket's objects page by page (prefix, delimiter, continuation
//! token), one object with every copy the ledger holds, its bytes, and its deletion.
//!
//! Reads of the listing and of the copies go to the ledger. The download and the delete go
//! through the gateway's own S3 handlers ([`GatewayS3`] called as the [`S3`] trait), so they
//! keep every contract an S3 GET and DELETE keep (failover and decryption on reads; the
//! ledger transaction, then the bytes or a cleanup row, on deletes).

use std::collections::BTreeMap;

use base64::Engine as _;
use hyper::StatusCode;
use s3o_store::StoreError;
use s3s::dto::{DeleteObjectInput, GetObjectInput, PutObjectInput, StreamingBlob};
use s3s::{Body, S3, S3Error, S3Request, S3Response};
use serde_json::{Value, json};

use super::routes::Answer;
use super::{Admin, ApiError, unix_secs};
use crate::keys;

/// Page size when the caller names none, and the most one page holds.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;
/// S3's longest key, in bytes: longer keys, prefixes and tokens are refused up front.
const MAX_KEY: usize = 1024;

/// The continuation token of a listing: the last key of the page, base64url (opaque to
/// callers; decoding a foreign string is a typed refusal, not a wrong page).
fn token_of(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after.as_bytes())
}

fn after_of(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad("continuation_token is not one this API issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(bad());
    }
    Ok(key)
}

/// The `key` query parameter: required, 1 to 1024 bytes.
fn key_param(q: &BTreeMap<String, String>) -> Result<&str, ApiError> {
    let key = q
        .get("key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad("query parameter key is required"))?;
    if key.len() > MAX_KEY {
        return Err(ApiError::bad(format!("key is longer than {MAX_KEY} bytes")));
    }
    Ok(key)
}

/// `GET buckets/{bucket}/objects`: one page of objects and folders.
pub(super) async fn list(admin: &Admin, bucket: &str, q: &BTreeMap<String, String>) -> Answer {
    let prefix = q.get("prefix").map_or("", String::as_str);
    if prefix.len() > MAX_KEY {
        return Err(ApiError::bad(format!(
            "prefix is longer than {MAX_KEY} bytes"
        )));
    }
    let delimiter = q.get("delimiter").map_or("", String::as_str);
    if delimiter.chars().count() > 1 {
        return Err(ApiError::bad("delimiter must be one character (or absent)"));
    }
    let max_keys = match q.get("max_keys") {
        None => DEFAULT_PAGE,
        Some(m) => m
            .parse::<i64>()
            .ok()
            .filter(|m| (1..=MAX_PAGE).contains(m))
            .ok_or_else(|| {
                ApiError::bad(format!("max_keys must be an integer from 1 to {MAX_PAGE}"))
            })?,
    };
    let after = match q.get("continuation_token").filter(|t| !t.is_empty()) {
        None => String::new(),
        Some(t) => after_of(t)?,
    };
    admin.ledger.bucket(bucket).await?;
    let page = admin
        .ledger
        .list(
            &keys::bucket_prefix(bucket),
            prefix,
            delimiter,
            &after,
            max_keys,
        )
        .await?;
    let objects: Vec<Value> = page
        .objects
        .iter()
        .map(|(key, c)| {
            json!({
                "key": key,
                "size_bytes": c.size,
                "etag": c.meta.etag,
                "content_type": c.meta.content_type,
                "last_modified": unix_secs(c.last_modified.to_system_time()),
                "encrypted": c.meta.encryption.is_some(),
            })
        })
        .collect();
    let next =
        (page.is_truncated && !page.next_after.is_empty()).then(|| token_of(&page.next_after));
    Ok((
        StatusCode::OK,
        json!({
            "bucket": bucket,
            "prefix": prefix,
            "delimiter": delimiter,
            "max_keys": max_keys,
            "folders": page.common_prefixes,
            "objects": objects,
            "is_truncated": page.is_truncated,
            "next_continuation_token": next,
        }),
    ))
}

/// Every copy of `bucket/key` as the ledger holds it (404 `NoSuchKey` when there is none).
pub(super) async fn copies(admin: &Admin, bucket: &str, key: &str) -> Result<Vec<Value>, ApiError> {
    admin.ledger.bucket(bucket).await?;
    let found = match admin
        .store
        .get_all_object_locations(&keys::ledger_key(bucket, key))
        .await
    {
        Ok(c) if !c.is_empty() => c,
        Ok(_) | Err(StoreError::ObjectNotFound { .. }) => {
            return Err(ApiError::not_found(
                "NoSuchKey",
                format!("no object {key} in {bucket}"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(found
        .iter()
        .map(|c| {
            json!({
                "backend": c.backend_name,
                "path": c.form.storage_path(&c.object_key),
                "size_bytes": c.size_bytes,
                "plaintext_size": (c.form.encrypted).then_some(c.form.plaintext_size),
                "etag": c.form.etag,
                "content_hash": c.form.content_hash,
                "content_type": c.form.content_type,
                "encrypted": c.form.encrypted,
                "key_id": c.form.key_id,
                "created_at": unix_secs(c.created_at.to_system_time()),
                "last_scrubbed_at": c.last_scrubbed_at.map(|t| unix_secs(t.to_system_time())),
            })
        })
        .collect())
}

/// `GET buckets/{bucket}/object?key=`: the object as clients see it and every copy.
pub(super) async fn object(admin: &Admin, bucket: &str, q: &BTreeMap<String, String>) -> Answer {
    let key = key_param(q)?;
    let list = copies(admin, bucket, key).await?;
    let first = &list[0];
    let size = if first["encrypted"] == true {
        first["plaintext_size"].clone()
    } else {
        first["size_bytes"].clone()
    };
    Ok((
        StatusCode::OK,
        json!({
            "bucket": bucket,
            "key": key,
            "size_bytes": size,
            "etag": first["etag"],
            "content_type": first["content_type"],
            "last_modified": first["created_at"],
            "encrypted": first["encrypted"],
            "copies": list,
        }),
    ))
}

/// An S3 handler's refusal in the API's shape (same status and code).
fn s3_refusal(e: &S3Error) -> ApiError {
    let status = e.status_code().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match e.code().as_str() {
        "NoSuchKey" => "NoSuchKey",
        "NoSuchBucket" => "NoSuchBucket",
        "EntityTooLarge" => "EntityTooLarge",
        "QuotaExceeded" | "InsufficientStorage" => "InsufficientStorage",
        "AccessDenied" => "AccessDenied",
        "InvalidArgument" | "InvalidRequest" | "KeyTooLongError" => "InvalidArgument",
        _ if status == StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ if status.is_server_error() => "InternalError",
        _ => "InvalidRequest",
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "admin API: S3 handler failed");
    }
    ApiError::new(
        status,
        code,
        e.message().unwrap_or(e.code().as_str()).to_owned(),
    )
}

/// `GET buckets/{bucket}/object/content?key=`: the bytes, read by the S3 GET handler (a
/// download: `Content-Disposition: attachment`, so a browser never renders them).
pub(super) async fn download(
    admin: &Admin,
    bucket: &str,
    q: &BTreeMap<String, String>,
    req: S3Request<Body>,
) -> Result<S3Response<Body>, ApiError> {
    let key = key_param(q)?.to_owned();
    // The 404 of the API (the S3 handler would answer the same, in XML).
    copies(admin, bucket, &key).await?;
    let input = GetObjectInput::builder()
        .bucket(bucket.to_owned())
        .key(key.clone())
        .build()
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let out = admin
        .s3
        .get_object(req.map_input(|_| input))
        .await
        .map_err(|e| s3_refusal(&e))?
        .output;
    let mut r = S3Response::new(out.body.map_or_else(Body::empty, Body::from));
    r.status = Some(StatusCode::OK);
    let h = &mut r.headers;
    let ctype = out
        .content_type
        .as_deref()
        .and_then(|t| hyper::header::HeaderValue::from_str(t).ok())
        .unwrap_or_else(|| hyper::header::HeaderValue::from_static("application/octet-stream"));
    h.insert(hyper::header::CONTENT_TYPE, ctype);
    if let Some(n) = out.content_length {
        h.insert(hyper::header::CONTENT_LENGTH, n.into());
    }
    if let Some(etag) = out
        .e_tag
        .as_ref()
        .and_then(|e| hyper::header::HeaderValue::from_str(&format!("\"{}\"", e.value())).ok())
    {
        h.insert(hyper::header::ETAG, etag);
    }
    let name = key.rsplit('/').next().unwrap_or(&key);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) =
        hyper::header::HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\""))
    {
        h.insert(hyper::header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `PUT buckets/{bucket}/object/content?key=`: the request's body becomes the object,
/// written by the S3 PUT handler (the same admission, quotas, placement, encryption and
/// versioning as any PutObject). Needs `Content-Length`, at most `[console]
/// max_upload_bytes` (413 beyond: larger files go through an S3 client, with multipart).
pub(super) async fn upload(
    admin: &Admin,
    bucket: &str,
    q: &BTreeMap<String, String>,
    req: S3Request<Body>,
) -> Answer {
    let key = key_param(q)?.to_owned();
    let max = admin.sessions.max_upload_bytes;
    let len = req
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                "an upload needs a Content-Length header",
            )
        })?;
    if len > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "EntityTooLarge",
            format!(
                "the file is {len} bytes; the console uploads at most {max} bytes ([console] \
                 max_upload_bytes): use an S3 client for larger files"
            ),
        ));
    }
    admin.ledger.bucket(bucket).await?;
    let ctype = req
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.trim().is_empty())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let size = i64::try_from(len).map_err(|_| ApiError::bad("Content-Length is too large"))?;
    let (req, body) = {
        let mut req = req;
        let body = std::mem::take(&mut req.input);
        (req, body)
    };
    let input = PutObjectInput::builder()
        .bucket(bucket.to_owned())
        .key(key.clone())
        .content_length(Some(size))
        .content_type(Some(ctype.clone()))
        .body(Some(StreamingBlob::from(body)))
        .build()
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let out = admin
        .s3
        .put_object(req.map_input(|_| input))
        .await
        .map_err(|e| s3_refusal(&e))?
        .output;
    Ok((
        StatusCode::OK,
        json!({
            "bucket": bucket,
            "key": key,
            "size_bytes": size,
            "content_type": ctype,
            "etag": out.e_tag.map(|e| e.value().to_owned()),
            "version_id": out.version_id,
        }),
    ))
}

/// `DELETE buckets/{bucket}/object?key=`: deletes through the S3 DELETE handler; 404 when
/// the key holds nothing (S3 itself answers 204 then; an operator wants to know).
pub(super) async fn delete(
    admin: &Admin,
    bucket: &str,
    q: &BTreeMap<String, String>,
    req: S3Request<Body>,
) -> Answer {
    let key = key_param(q)?.to_owned();
    let before = copies(admin, bucket, &key).await?;
    let input = DeleteObjectInput::builder()
        .bucket(bucket.to_owned())
        .key(key.clone())
        .build()
        .map_err(|e| ApiError::bad(e.to_string()))?;
    admin
        .s3
        .delete_object(req.map_input(|_| input))
        .await
        .map_err(|e| s3_refusal(&e))?;
    let backends: Vec<&Value> = before.iter().map(|c| &c["backend"]).collect();
    Ok((
        StatusCode::OK,
        json!({"bucket": bucket, "key": key, "deleted": true, "copies_removed": before.len(), "backends": backends}),
    ))
}

/// Objects deleted per listing page of a prefix deletion.
const DELETE_PAGE: i64 = 500;
/// Objects the plan of a prefix deletion counts at most (beyond it says "at least").
const PLAN_COUNT_MAX: u64 = 100_000;

/// `POST buckets/{bucket}/delete-prefix`: every current object under `prefix`, deleted
/// through the S3 DELETE handler (versioned buckets get delete markers, exactly as S3
/// clients would), in two steps: without `token` it counts the objects and bytes and returns
/// a token that expires; with it, it starts a job (progress: deleted, failed, bytes).
pub(super) async fn delete_prefix(
    admin: &Admin,
    bucket: &str,
    body: &Value,
    req: S3Request<Body>,
) -> Answer {
    let prefix = super::routes::str_field(body, "prefix")?
        .unwrap_or("")
        .to_owned();
    if prefix.len() > MAX_KEY {
        return Err(ApiError::bad(format!(
            "prefix is longer than {MAX_KEY} bytes"
        )));
    }
    admin.ledger.bucket(bucket).await?;
    let action = super::routes::Action::DeletePrefix {
        bucket: bucket.to_owned(),
        prefix: prefix.clone(),
    };
    let bucket_prefix = keys::bucket_prefix(bucket);
    let Some(token) = super::routes::str_field(body, "token")? else {
        let (mut objects, mut bytes, mut after) = (0u64, 0i64, String::new());
        let more = loop {
            let page = admin
                .ledger
                .list(&bucket_prefix, &prefix, "", &after, DELETE_PAGE)
                .await?;
            objects += page.objects.len() as u64;
            bytes += page.objects.iter().map(|(_, c)| c.size).sum::<i64>();
            match page.objects.last() {
                Some((k, _)) if page.is_truncated => after.clone_from(k),
                _ => break false,
            }
            if objects >= PLAN_COUNT_MAX {
                break true;
            }
        };
        let (token, ttl) = super::routes::issue(admin, body, action)?;
        return Ok((
            StatusCode::OK,
            json!({
                "bucket": bucket,
                "prefix": prefix,
                "confirm": true,
                "token": token,
                "expires_in_secs": ttl,
                "objects": objects,
                "bytes": bytes,
                "at_least": more,
                "effect": "deletes every current object under the prefix through the S3 DELETE handler (a versioned bucket keeps the versions behind delete markers)",
            }),
        ));
    };
    super::routes::redeem(admin, token, &action)?;
    let target = format!("{bucket}/{prefix}");
    if let Some(id) = admin.jobs.running("delete-prefix", &target) {
        return Err(ApiError::conflict(
            "JobInProgress",
            format!("{target} is being deleted by job {id}"),
        ));
    }
    // Each delete is a fresh S3 request shaped like the caller's (identity kept), no headers.
    let mut template = req.map_input(|_| ());
    template.headers.clear();
    template.method = hyper::Method::DELETE;
    let s3 = admin.s3.clone();
    let ledger = admin.ledger.clone();
    let bucket = bucket.to_owned();
    let job = admin
        .jobs
        .start("delete-prefix", &target, move |h| async move {
            let (mut deleted, mut failed, mut bytes) = (0u64, 0u64, 0i64);
            let mut first_error: Option<String> = None;
            let mut after = String::new();
            let view = |d: u64, f: u64, b: i64| {
                json!({"bucket": bucket, "prefix": prefix, "deleted": d, "failed": f, "bytes": b})
            };
            loop {
                let page = match ledger
                    .list(&bucket_prefix, &prefix, "", &after, DELETE_PAGE)
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        h.finish(Err(format!("listing {bucket}/{prefix}: {e}")));
                        return;
                    }
                };
                for (key, c) in &page.objects {
                    let input = DeleteObjectInput::builder()
                        .bucket(bucket.clone())
                        .key(key.clone())
                        .build();
                    let r = match input {
                        Ok(input) => s3
                            .delete_object(template.clone().map_input(|()| input))
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match r {
                        Ok(()) => {
                            deleted += 1;
                            bytes += c.size;
                        }
                        Err(e) => {
                            failed += 1;
                            first_error.get_or_insert_with(|| format!("{key}: {e}"));
                        }
                    }
                    after.clone_from(key);
                }
                h.progress(view(deleted, failed, bytes));
                if !page.is_truncated || page.objects.is_empty() {
                    break;
                }
            }
            h.finish(match first_error {
                None => Ok(view(deleted, failed, bytes)),
                Some(e) => Err(format!(
                    "{failed} objects could not be deleted (first: {e}); start again to retry"
                )),
            });
        });
    Ok((StatusCode::ACCEPTED, job))
}

/// Copies read from the ledger per page of a streamed listing.
const STREAM_PAGE: i64 = 500;

/// `GET backends/{name}/copies`: every copy the ledger records on a backend, in key order, as
/// NDJSON (one JSON object per line), read page by page while the client reads, so the
/// listing's length costs no memory. The last line is `{"done": true, "count": N}`; a ledger
/// error mid-way is an `{"error": …}` line instead, and `after` (the last key received)
/// resumes from there.
pub(super) async fn stream_copies(
    admin: &Admin,
    backend: &str,
    q: &BTreeMap<String, String>,
) -> Result<S3Response<Body>, ApiError> {
    let stats = admin.ledger.quota_stats().await?;
    if !stats.contains_key(backend) {
        return Err(ApiError::not_found(
            "NoSuchBackend",
            format!("no backend {backend:?} in the ledger"),
        ));
    }
    let mut after = q.get("after").cloned().unwrap_or_default();
    if after.len() > MAX_KEY + 64 {
        return Err(ApiError::bad("after is not a key"));
    }
    let store = admin.store.clone();
    let backend = backend.to_owned();
    // The reader is a task feeding a small channel: it waits while the client is slow and
    // ends when the client goes away (the send fails).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut count: u64 = 0;
        loop {
            let page = match store
                .list_objects_by_backend_key_asc(&backend, &after, STREAM_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    let line = json!({"error": {"code": "ServiceUnavailable", "message": e.to_string()}, "after": after});
                    let _ = tx.send(Ok(format!("{line}\n").into())).await;
                    return;
                }
            };
            let mut chunk = String::new();
            for c in &page {
                let line = json!({
                    "key": c.object_key,
                    "path": c.form.storage_path(&c.object_key),
                    "size_bytes": c.size_bytes,
                    "encrypted": c.form.encrypted,
                    "created_at": unix_secs(c.created_at.to_system_time()),
                    "last_scrubbed_at": c.last_scrubbed_at.map(|t| unix_secs(t.to_system_time())),
                });
                chunk.push_str(&line.to_string());
                chunk.push('\n');
            }
            count += page.len() as u64;
            let last = page.last().map(|c| c.object_key.clone());
            if !chunk.is_empty() && tx.send(Ok(chunk.into())).await.is_err() {
                return;
            }
            match last {
                Some(k) if page.len() as i64 == STREAM_PAGE => after = k,
                _ => {
                    let line = json!({"done": true, "count": count});
                    let _ = tx.send(Ok(format!("{line}\n").into())).await;
                    return;
                }
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = S3Response::new(Body::from(s3s::dto::StreamingBlob::wrap(stream)));
    r.status = Some(StatusCode::OK);
    r.headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    r.headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `GET cleanup/queue`: every row of the cleanup queue (of `backend`, or all) in id order, as
/// NDJSON read page by page from the ledger while the client reads (the store's id cursor,
/// exact while rows come and go). The last line is `{"done": true, "count": N}`, or an
/// `{"error": …, "after": id}` line when the ledger failed mid-way (`after` resumes).
pub(super) async fn stream_queue(
    admin: &Admin,
    q: &BTreeMap<String, String>,
) -> Result<S3Response<Body>, ApiError> {
    let backend = q.get("backend").filter(|b| !b.is_empty()).cloned();
    if let Some(b) = &backend {
        let stats = admin.ledger.quota_stats().await?;
        if !stats.contains_key(b) {
            return Err(ApiError::not_found(
                "NoSuchBackend",
                format!("no backend {b:?} in the ledger"),
            ));
        }
    }
    let mut after = match q.get("after").filter(|a| !a.is_empty()) {
        None => 0,
        Some(a) => a
            .parse::<i64>()
            .ok()
            .filter(|a| *a >= 0)
            .ok_or_else(|| ApiError::bad("after must be a queue row id"))?,
    };
    let store = admin.store.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut count: u64 = 0;
        loop {
            let page = match store
                .list_cleanup_queue(backend.as_deref(), after, STREAM_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    let line = json!({"error": {"code": "ServiceUnavailable", "message": e.to_string()}, "after": after});
                    let _ = tx.send(Ok(format!("{line}\n").into())).await;
                    return;
                }
            };
            let mut chunk = String::new();
            for r in &page {
                let line = json!({
                    "id": r.id,
                    "backend": r.backend_name,
                    "object_key": r.object_key,
                    "storage_key": r.storage_key,
                    "reason": r.reason,
                    "size_bytes": r.size_bytes,
                    "attempts": r.attempts,
                    "claimed_by": r.claimed_by,
                    "claimed_at": r.claimed_at.map(|t| unix_secs(t.to_system_time())),
                });
                chunk.push_str(&line.to_string());
                chunk.push('\n');
            }
            count += page.len() as u64;
            let last = page.last().map(|r| r.id);
            if !chunk.is_empty() && tx.send(Ok(chunk.into())).await.is_err() {
                return;
            }
            match last {
                Some(id) if page.len() as i64 == STREAM_PAGE => after = id,
                _ => {
                    let line = json!({"done": true, "count": count});
                    let _ = tx.send(Ok(format!("{line}\n").into())).await;
                    return;
                }
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = S3Response::new(Body::from(s3s::dto::StreamingBlob::wrap(stream)));
    r.status = Some(StatusCode::OK);
    r.headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    r.headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}
