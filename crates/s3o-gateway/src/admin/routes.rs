//! The route table of the admin API and its handlers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use s3o_store::{BreakerState, BucketSettings, BucketSpec};
use s3s::{Body, S3Request};
use serde_json::{Value, json};

use super::session::{Caller, Peer};
use super::{Admin, ApiError, decode, unix_secs};
use crate::workers::{PassResult, Worker};

/// One route: method, path pattern (`{name}` is one segment), what it does.
pub(crate) struct Route {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) op: Op,
    pub(crate) summary: &'static str,
    /// The JSON body's fields (`name: type`, `?` = optional), for the OpenAPI description.
    pub(crate) body: &'static [(&'static str, &'static str)],
    /// Query parameters (`name: type`, `?` = optional).
    pub(crate) query: &'static [(&'static str, &'static str)],
    /// The success status.
    pub(crate) ok: u16,
}

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Status,
    Backends,
    DrainBackend,
    RemoveBackend,
    BackendCopies,
    Buckets,
    CreateBucket,
    GetBucket,
    UpdateBucket,
    DeleteBucket,
    Objects,
    GetObject,
    DownloadObject,
    UploadObject,
    DeletePrefix,
    CleanupQueue,
    DeleteObject,
    Locations,
    Workers,
    RunWorker,
    Cleanup,
    Dlq,
    RequeueDlq,
    WriteOffDlq,
    Encryption,
    Rotate,
    EncryptExisting,
    DecryptExisting,
    Jobs,
    GetJob,
    CancelJob,
    OpenApi,
    Login,
    Session,
    Logout,
}

macro_rules! route {
    ($m:literal $p:literal $op:ident $ok:literal $s:literal $(, body: $b:expr)? $(, query: $q:expr)?) => {
        Route { method: $m, path: $p, op: Op::$op, summary: $s, ok: $ok,
                body: { let _b: &[(&str, &str)] = &[]; $(let _b = $b;)? _b },
                query: { let _q: &[(&str, &str)] = &[]; $(let _q = $q;)? _q } }
    };
}

/// Every route of the admin API: dispatch and the OpenAPI description read this table.
pub(crate) const ROUTES: &[Route] = &[
    route!("GET" "/admin/api/status" Status 200 "Version, uptime, instance id, ledger and breaker state"),
    route!("GET" "/admin/api/backends" Backends 200 "Every backend: limit, used, orphan, in-flight, free, copies, usage this month, configured, reachable"),
    route!("POST" "/admin/api/backends/{name}/drain" DrainBackend 202 "Start draining a backend (moves every copy elsewhere); answers a job to poll"),
    route!("POST" "/admin/api/backends/{name}/remove" RemoveBackend 200
        "Remove a backend from the ledger in two steps: without `token`, describes the removal and returns a token that expires; with it, removes",
        body: &[("token", "string?"), ("ttl_secs", "integer?"), ("force", "boolean?")]),
    route!("GET" "/admin/api/backends/{name}/copies" BackendCopies 200
        "Every copy the ledger records on a backend, in key order, streamed as NDJSON (application/x-ndjson); the last line is {\"done\": true, \"count\": N}, or {\"error\": …} when the ledger failed mid-way; `after` resumes after a key",
        query: &[("after", "string?")]),
    route!("GET" "/admin/api/buckets" Buckets 200 "Every bucket with its settings"),
    route!("POST" "/admin/api/buckets" CreateBucket 201 "Create a bucket",
        body: &[("name", "string"), ("replication_factor", "integer?"), ("max_bytes", "integer?"), ("max_objects", "integer?")]),
    route!("GET" "/admin/api/buckets/{bucket}" GetBucket 200 "One bucket's settings"),
    route!("PUT" "/admin/api/buckets/{bucket}" UpdateBucket 200 "Change a bucket's settings (fields left out keep their value)",
        body: &[("replication_factor", "integer?"), ("max_bytes", "integer?"), ("max_objects", "integer?")]),
    route!("DELETE" "/admin/api/buckets/{bucket}" DeleteBucket 200 "Delete an empty bucket"),
    route!("GET" "/admin/api/buckets/{bucket}/objects" Objects 200
        "One page of a bucket's objects and folders (common prefixes of `delimiter`); pass `next_continuation_token` back as `continuation_token` for the next page",
        query: &[("prefix", "string?"), ("delimiter", "string?"), ("continuation_token", "string?"), ("max_keys", "integer?")]),
    route!("GET" "/admin/api/buckets/{bucket}/object" GetObject 200
        "One object: size, ETag, type, last modified, and every copy (backend, path, size, encryption, last scrubbed)",
        query: &[("key", "string")]),
    route!("GET" "/admin/api/buckets/{bucket}/object/content" DownloadObject 200
        "The object's bytes, read by the S3 GET handler (Content-Disposition: attachment)",
        query: &[("key", "string")]),
    route!("PUT" "/admin/api/buckets/{bucket}/object/content" UploadObject 200
        "Upload the request body as the object through the S3 PUT handler (same admission, quotas, encryption, versioning); needs Content-Length, at most [console] max_upload_bytes (413 EntityTooLarge beyond); Content-Type becomes the object's type",
        query: &[("key", "string")]),
    route!("DELETE" "/admin/api/buckets/{bucket}/object" DeleteObject 200
        "Delete an object through the S3 DELETE handler (404 when the key holds nothing)",
        query: &[("key", "string")]),
    route!("POST" "/admin/api/buckets/{bucket}/delete-prefix" DeletePrefix 200
        "Delete every current object under `prefix` through the S3 DELETE handler (versioned buckets get delete markers) in two steps: without `token`, counts objects and bytes and returns a token that expires (200); with it, starts a job (202; progress: deleted, failed, bytes)",
        body: &[("prefix", "string"), ("token", "string?"), ("ttl_secs", "integer?")]),
    route!("GET" "/admin/api/locations" Locations 200 "Every copy of an object: backend, path, size, ETag, checksum, encryption",
        query: &[("bucket", "string"), ("key", "string")]),
    route!("GET" "/admin/api/workers" Workers 200 "Each worker's last pass in this process: time, outcome, items"),
    route!("POST" "/admin/api/workers/{name}/run" RunWorker 202 "Run one pass of a worker now (`all` runs every worker in order); answers a job to poll"),
    route!("GET" "/admin/api/cleanup" Cleanup 200 "Cleanup queue by state, DLQ depth, queued and dead bytes per backend"),
    route!("GET" "/admin/api/cleanup/queue" CleanupQueue 200
        "Every cleanup queue row (of `backend`, or all) in id order, streamed as NDJSON (application/x-ndjson): id, backend, keys, reason, size, attempts, claim; the last line is {\"done\": true, \"count\": N}, or {\"error\": …, \"after\": id} when the ledger failed mid-way; `after` resumes after a row id",
        query: &[("backend", "string?"), ("after", "integer?")]),
    route!("GET" "/admin/api/dlq" Dlq 200 "Dead-letter rows, newest first",
        query: &[("backend", "string?"), ("limit", "integer?")]),
    route!("POST" "/admin/api/dlq/requeue" RequeueDlq 200 "Move dead-letter rows back into the cleanup queue: those of `ids`, of one backend, or all",
        body: &[("backend", "string?"), ("ids", "integer[]?")]),
    route!("POST" "/admin/api/dlq/write-off" WriteOffDlq 200
        "Write off dead-letter rows (their bytes stay on the backend, unaccounted) in two steps: without `token`, describes and returns a token; with it, writes off",
        body: &[("ids", "integer[]"), ("token", "string?"), ("ttl_secs", "integer?")]),
    route!("GET" "/admin/api/encryption" Encryption 200
        "Encryption at rest: configured or not, the current key id, previous key ids, which buckets encrypt, and the running encryption job"),
    route!("POST" "/admin/api/encryption/rotate" Rotate 202
        "Re-wrap every data key under the current master key (metadata only) as a job; progress: examined, rewrapped, current, raced, failed",
        body: &[("batch", "integer?"), ("pause_ms", "integer?")]),
    route!("POST" "/admin/api/encryption/encrypt-existing" EncryptExisting 202
        "Seal every plaintext object of the buckets that encrypt, as a job; progress: examined, converted, skipped, raced, failed",
        body: &[("batch", "integer?"), ("pause_ms", "integer?")]),
    route!("POST" "/admin/api/encryption/decrypt-existing" DecryptExisting 202
        "Open every encrypted object of the buckets that do not encrypt, in two steps: without `token`, describes and returns a token (200); with it, starts the job (202)",
        body: &[("batch", "integer?"), ("pause_ms", "integer?"), ("token", "string?"), ("ttl_secs", "integer?")]),
    route!("GET" "/admin/api/jobs" Jobs 200 "Jobs of this process, newest first"),
    route!("GET" "/admin/api/jobs/{id}" GetJob 200 "One job: state, progress, result"),
    route!("DELETE" "/admin/api/jobs/{id}" CancelJob 200 "Cancel a running job (resumable: start it again to finish)"),
    route!("GET" "/admin/api/openapi.json" OpenApi 200 "This API's OpenAPI 3 description"),
    route!("POST" "/admin/api/session" Login 200
        "Sign in to a console session (no other authentication): an admin key's access key and secret; answers the CSRF token and sets the HttpOnly session cookie (403 on a wrong secret or a non-admin key, 429 after too many failures)",
        body: &[("access_key", "string"), ("secret_key", "string")]),
    route!("GET" "/admin/api/session" Session 200 "Who is calling: the access key, `sigv4` or `session`, and a session's CSRF token and expiry"),
    route!("DELETE" "/admin/api/session" Logout 200 "Sign out of the console session (clears the cookie; the session id is revoked in this process)"),
];

/// Largest JSON body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Default and bounds of a confirmation token's lifetime.
const TOKEN_TTL: Duration = Duration::from_secs(120);
const TOKEN_TTL_MAX: Duration = Duration::from_secs(600);

/// A pending two-step action.
pub(crate) struct Confirmation {
    action: Action,
    expires: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Remove {
        backend: String,
        copies: i64,
        force: bool,
    },
    WriteOff {
        ids: Vec<i64>,
    },
    /// Deleting every current object under a prefix.
    DeletePrefix {
        bucket: String,
        prefix: String,
    },
    /// `decrypt-existing` with these pacing options.
    DecryptExisting {
        batch: i64,
        pause_ms: u64,
    },
}

/// A handler's JSON answer.
pub(super) type Answer = Result<(StatusCode, Value), ApiError>;

/// What [`dispatch`] answers: JSON, or a response of its own (an object's bytes).
pub(crate) enum Reply {
    Json(StatusCode, Value),
    Raw(s3s::S3Response<Body>),
}

/// Finds the route of `method path` and its `{…}` segments.
fn find(method: &str, path: &str) -> Result<(&'static Route, Vec<String>), ApiError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut path_known = false;
    for r in ROUTES {
        let pat: Vec<&str> = r.path.split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        let ok = pat.iter().zip(&segs).all(|(p, s)| {
            if p.starts_with('{') {
                params.push((*s).to_owned());
                !s.is_empty()
            } else {
                p == s
            }
        });
        if !ok {
            continue;
        }
        path_known = true;
        if r.method == method {
            let params = params
                .iter()
                .map(|p| decode(p, false))
                .collect::<Result<_, _>>()?;
            return Ok((r, params));
        }
    }
    Err(if path_known {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not allowed on {path}"),
        )
    } else {
        ApiError::not_found("NoSuchRoute", format!("no admin route {path}"))
    })
}

/// Answers one authenticated admin request.
pub(crate) async fn dispatch(
    admin: &Admin,
    caller: &Caller,
    mut req: S3Request<Body>,
) -> Result<Reply, ApiError> {
    let path = req.uri.path().to_owned();
    let (route, params) = find(req.method.as_str(), &path)?;
    let query = parse_query(req.uri.query().unwrap_or(""))?;
    // An upload's body is the object's bytes, streamed on, not JSON.
    let body = if matches!(route.method, "POST" | "PUT") && route.op != Op::UploadObject {
        let bytes = req
            .input
            .store_all_limited(MAX_BODY)
            .await
            .map_err(|e| ApiError::bad(format!("request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
            if !v.is_object() {
                return Err(ApiError::bad("the body must be a JSON object"));
            }
            v
        }
    } else {
        Value::Null
    };
    let p = |i: usize| params.get(i).cloned().unwrap_or_default();
    // The two routes that run an S3 handler take the request itself.
    match route.op {
        Op::DownloadObject => {
            return super::objects::download(admin, &p(0), &query, req)
                .await
                .map(Reply::Raw);
        }
        Op::DeleteObject => {
            let (s, v) = super::objects::delete(admin, &p(0), &query, req).await?;
            return Ok(Reply::Json(s, v));
        }
        Op::UploadObject => {
            let (s, v) = super::objects::upload(admin, &p(0), &query, req).await?;
            return Ok(Reply::Json(s, v));
        }
        Op::DeletePrefix => {
            let (s, v) = super::objects::delete_prefix(admin, &p(0), &body, req).await?;
            return Ok(Reply::Json(s, v));
        }
        Op::BackendCopies => {
            return super::objects::stream_copies(admin, &p(0), &query)
                .await
                .map(Reply::Raw);
        }
        Op::CleanupQueue => {
            return super::objects::stream_queue(admin, &query)
                .await
                .map(Reply::Raw);
        }
        Op::Logout => {
            let tls = req.extensions.get::<Peer>().is_some_and(|p| p.tls);
            return super::session::logout(admin, caller, tls).map(Reply::Raw);
        }
        _ => {}
    }
    let (status, value) = match route.op {
        Op::Status => status(admin).await,
        Op::Backends => backends(admin).await,
        Op::DrainBackend => drain(admin, &p(0)),
        Op::RemoveBackend => remove_backend(admin, &p(0), &body).await,
        Op::Buckets => buckets(admin).await,
        Op::CreateBucket => create_bucket(admin, &body).await,
        Op::GetBucket => Ok((
            StatusCode::OK,
            bucket_view(&admin.ledger.bucket(&p(0)).await?),
        )),
        Op::UpdateBucket => update_bucket(admin, &p(0), &body).await,
        Op::DeleteBucket => {
            admin.ledger.delete_bucket(&p(0)).await?;
            Ok((StatusCode::OK, json!({"deleted": p(0)})))
        }
        Op::Objects => super::objects::list(admin, &p(0), &query).await,
        Op::GetObject => super::objects::object(admin, &p(0), &query).await,
        Op::DownloadObject
        | Op::UploadObject
        | Op::DeletePrefix
        | Op::CleanupQueue
        | Op::DeleteObject
        | Op::BackendCopies
        | Op::Logout => {
            unreachable!("answered above")
        }
        // `AdminRoute::call` answers every sign-in before dispatch.
        Op::Login => Err(ApiError::bad("sign in without other authentication")),
        Op::Session => Ok((StatusCode::OK, super::session::whoami(admin, caller))),
        Op::Locations => locations(admin, &query).await,
        Op::Workers => Ok((StatusCode::OK, workers(admin))),
        Op::RunWorker => run_worker(admin, &p(0)),
        Op::Cleanup => cleanup(admin).await,
        Op::Dlq => dlq(admin, &query).await,
        Op::RequeueDlq => requeue(admin, &body).await,
        Op::WriteOffDlq => write_off(admin, &body).await,
        Op::Encryption => super::encryption::status(admin).await,
        Op::Rotate => super::encryption::rotate(admin, &body),
        Op::EncryptExisting => super::encryption::encrypt_existing(admin, &body),
        Op::DecryptExisting => super::encryption::decrypt_existing(admin, &body).await,
        Op::Jobs => Ok((StatusCode::OK, json!({"jobs": admin.jobs.list()}))),
        Op::GetJob => admin
            .jobs
            .get(&p(0))
            .map(|j| (StatusCode::OK, j))
            .ok_or_else(|| ApiError::not_found("NoSuchJob", format!("no job {}", p(0)))),
        Op::CancelJob => match admin.jobs.cancel(&p(0)) {
            None => Err(ApiError::not_found("NoSuchJob", format!("no job {}", p(0)))),
            Some((false, _)) => Err(ApiError::conflict(
                "JobNotRunning",
                format!("job {} has ended already", p(0)),
            )),
            Some((true, j)) => Ok((StatusCode::OK, j)),
        },
        Op::OpenApi => Ok((StatusCode::OK, super::openapi::document())),
    }?;
    Ok(Reply::Json(status, value))
}

fn parse_query(q: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for kv in q.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        out.insert(decode(k, true)?, decode(v, true)?);
    }
    Ok(out)
}

fn breaker_name(s: BreakerState) -> &'static str {
    match s {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

async fn status(admin: &Admin) -> Answer {
    let depths = admin.ledger.cleanup_depths().await;
    let schema = admin.store.schema_version().await.ok();
    Ok((
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "instance_id": admin.store.instance_id(),
            "started_at": unix_secs(admin.started_at),
            "uptime_secs": admin.started.elapsed().as_secs(),
            "ledger": {
                "engine": admin.store.engine(),
                "reachable": depths.is_ok(),
                "breaker": breaker_name(admin.store.breaker_state()),
                "schema_version": schema.map(|v| v.current),
            },
            "cleanup_queue": depths.as_ref().ok().map(|d| d.0),
            "dlq": depths.as_ref().ok().map(|d| d.1),
            "workers_enabled": admin.workers.settings.enabled,
            "unconfigured_backends": admin.unconfigured,
        }),
    ))
}

/// `YYYY-MM` of now, UTC (the usage counters' period).
fn this_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

async fn backends(admin: &Admin) -> Answer {
    let stats = admin.ledger.quota_stats().await?;
    let mut names: Vec<String> = admin.workers.backends.order().to_vec();
    for n in stats.keys() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let caps: BTreeMap<String, i64> = admin
        .store
        .backend_capacities(&names)
        .await?
        .into_iter()
        .map(|c| (c.backend_name, c.inflight_bytes))
        .collect();
    let counts = admin.store.get_object_counts().await?;
    let usage = admin.store.get_usage_for_period(&this_month()).await?;
    let probes = names.iter().map(|n| async move {
        match admin.workers.backends.get(n) {
            Some(b) => Some(crate::workers::backend_up(b).await),
            None => None,
        }
    });
    let reachable = futures::future::join_all(probes).await;
    let mut out = Vec::new();
    for (n, up) in names.iter().zip(reachable) {
        let st = stats.get(n);
        let limit = st.map_or(0, |s| s.bytes_limit);
        let used = st.map_or(0, |s| s.bytes_used);
        let orphan = st.map_or(0, |s| s.orphan_bytes);
        let u = usage.get(n);
        out.push(json!({
            "name": n,
            "configured": admin.workers.backends.get(n).is_some(),
            "in_ledger": st.is_some(),
            "reachable": up,
            "bytes_limit": limit,
            "bytes_used": used,
            "orphan_bytes": orphan,
            "inflight_bytes": caps.get(n).copied().unwrap_or(0),
            "free_bytes": if limit > 0 { Some((limit - used - orphan).max(0)) } else { None },
            "copies": counts.get(n).copied().unwrap_or(0),
            "usage_this_month": {
                "api_requests": u.map_or(0, |u| u.api_requests),
                "egress_bytes": u.map_or(0, |u| u.egress_bytes),
                "ingress_bytes": u.map_or(0, |u| u.ingress_bytes),
            },
        }));
    }
    Ok((StatusCode::OK, json!({ "backends": out })))
}

fn bucket_view(b: &s3o_store::Bucket) -> Value {
    json!({
        "name": b.name,
        "created_at": unix_secs(b.created_at.to_system_time()),
        "replication_factor": b.settings.replication_factor,
        "max_bytes": b.settings.max_bytes,
        "max_objects": b.settings.max_objects,
        "routing": b.settings.routing,
    })
}

async fn buckets(admin: &Admin) -> Answer {
    let all = admin.ledger.buckets().await?;
    Ok((
        StatusCode::OK,
        json!({"buckets": all.iter().map(bucket_view).collect::<Vec<_>>()}),
    ))
}

/// Reads an integer field; absent ⇒ `None`, wrong type ⇒ 400 naming the field.
pub(super) fn int_field(body: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("{name} must be an integer"))),
    }
}

pub(super) fn str_field<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("{name} must be a string"))),
    }
}

/// Applies the settings fields of `body` onto `s`.
fn apply_settings(body: &Value, s: &mut BucketSettings) -> Result<(), ApiError> {
    if let Some(f) = int_field(body, "replication_factor")? {
        s.replication_factor = u32::try_from(f)
            .ok()
            .filter(|f| *f >= 1)
            .ok_or_else(|| ApiError::bad("replication_factor must be at least 1"))?;
    }
    if let Some(v) = int_field(body, "max_bytes")? {
        s.max_bytes = v;
    }
    if let Some(v) = int_field(body, "max_objects")? {
        s.max_objects = v;
    }
    Ok(())
}

async fn create_bucket(admin: &Admin, body: &Value) -> Answer {
    let name = str_field(body, "name")?.ok_or_else(|| ApiError::bad("name is required"))?;
    let mut spec = BucketSpec::new(name);
    apply_settings(body, &mut spec.settings)?;
    if !admin.ledger.create_bucket(&spec).await? {
        return Err(ApiError::conflict(
            "BucketAlreadyOwnedByYou",
            format!("bucket {name} exists"),
        ));
    }
    let b = admin.ledger.bucket(name).await?;
    Ok((StatusCode::CREATED, bucket_view(&b)))
}

async fn update_bucket(admin: &Admin, name: &str, body: &Value) -> Answer {
    let b = admin.ledger.bucket(name).await?;
    let mut settings = b.settings.clone();
    apply_settings(body, &mut settings)?;
    admin.store.update_bucket_settings(name, &settings).await?;
    let b = admin.ledger.bucket(name).await?;
    Ok((StatusCode::OK, bucket_view(&b)))
}

async fn locations(admin: &Admin, q: &BTreeMap<String, String>) -> Answer {
    let bucket = q
        .get("bucket")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::bad("query parameter bucket is required"))?;
    let key = q
        .get("key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad("query parameter key is required"))?;
    let out = super::objects::copies(admin, bucket, key).await?;
    Ok((
        StatusCode::OK,
        json!({"bucket": bucket, "key": key, "copies": out}),
    ))
}

fn workers(admin: &Admin) -> Value {
    let list: Vec<Value> = Worker::ALL
        .iter()
        .map(|w| {
            let last = admin.workers.status.get(w.name());
            json!({
                "name": w.name(),
                "last_pass": last.map(|p| json!({
                    "ended_at": unix_secs(p.ended_at),
                    "took_ms": p.took.as_millis() as u64,
                    "outcome": p.outcome,
                    "items": p.items,
                    "error": p.error,
                    "passes": p.passes,
                })),
            })
        })
        .collect();
    json!({"enabled": admin.workers.settings.enabled, "workers": list})
}

fn pass_view(w: Worker, r: &PassResult) -> Value {
    let (outcome, items, error) = match r {
        PassResult::Ran(m) => (
            if m.values().all(|n| *n == 0) {
                "empty"
            } else {
                "done"
            },
            json!(m),
            None,
        ),
        PassResult::NotLeader => ("not_leader", json!({}), None),
        PassResult::SkippedLedgerUnavailable => ("skipped_ledger_unavailable", json!({}), None),
        PassResult::LeadershipLost => ("leadership_lost", json!({}), None),
        PassResult::Failed(e) => ("failed", json!({}), Some(e.clone())),
        #[allow(unreachable_patterns)]
        _ => ("unknown", json!({}), None),
    };
    json!({"worker": w.name(), "outcome": outcome, "items": items, "error": error})
}

fn run_worker(admin: &Admin, name: &str) -> Answer {
    let chosen: Vec<Worker> = if name == "all" {
        Worker::ALL.to_vec()
    } else {
        let w = Worker::ALL
            .iter()
            .copied()
            .find(|w| w.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Worker::ALL.iter().map(|w| w.name()).collect();
                ApiError::not_found(
                    "NoSuchWorker",
                    format!("no worker {name:?} (workers: {}, or all)", names.join(", ")),
                )
            })?;
        vec![w]
    };
    let ctx = admin.workers.clone();
    let job = admin.jobs.start("worker", name, move |h| async move {
        let mut passes = Vec::new();
        for w in chosen {
            let r = crate::workers::run_pass(&ctx, w).await;
            passes.push(pass_view(w, &r));
            h.progress(json!({"passes": passes}));
        }
        h.finish(Ok(json!({"passes": passes})));
    });
    Ok((StatusCode::ACCEPTED, job))
}

fn drain(admin: &Admin, name: &str) -> Answer {
    if admin.workers.backends.get(name).is_none() {
        return Err(ApiError::not_found(
            "NoSuchBackend",
            format!(
                "backend {name:?} is not in this gateway's configuration (a drain must read its bytes)"
            ),
        ));
    }
    if let Some(id) = admin.jobs.running("drain", name) {
        return Err(ApiError::conflict(
            "DrainInProgress",
            format!("backend {name} is being drained by job {id}"),
        ));
    }
    let ctx = admin.workers.clone();
    let backend = name.to_owned();
    let job = admin.jobs.start("drain", name, move |h| async move {
        let h2 = h.clone();
        let mut progress = move |p: &crate::DrainProgress| h2.progress(drain_view(p));
        let r = crate::workers::drain_in(&ctx, &backend, &mut progress).await;
        h.finish(r.map(|rep| {
            let mut v = drain_view(&rep.progress);
            v["leftovers_deleted"] = json!(rep.leftovers_deleted);
            v
        }));
    });
    Ok((StatusCode::ACCEPTED, job))
}

fn drain_view(p: &crate::DrainProgress) -> Value {
    json!({
        "backend": p.backend,
        "moved": p.moved,
        "moved_bytes": p.moved_bytes,
        "dropped": p.dropped,
        "failed": p.failed,
        "remaining": p.remaining,
        "remaining_bytes": p.remaining_bytes,
    })
}

async fn cleanup(admin: &Admin) -> Answer {
    let states = admin.store.cleanup_queue_states().await?;
    let dlq = admin.store.cleanup_dlq_depth().await?;
    let bytes = admin.store.cleanup_bytes_by_backend().await?;
    let per: BTreeMap<String, Value> = bytes
        .into_iter()
        .map(|(b, (q, d))| (b, json!({"queued_bytes": q, "dlq_bytes": d})))
        .collect();
    Ok((
        StatusCode::OK,
        json!({
            "queue": {"due": states.due, "claimed": states.claimed, "waiting": states.waiting},
            "dlq": dlq,
            "by_backend": per,
        }),
    ))
}

fn known_backend(
    admin: &Admin,
    stats: &BTreeMap<String, s3o_store::QuotaStat>,
    name: &str,
) -> Result<(), ApiError> {
    if stats.contains_key(name) || admin.workers.backends.get(name).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "NoSuchBackend",
            format!("no backend {name:?} in the ledger"),
        ))
    }
}

async fn dlq(admin: &Admin, q: &BTreeMap<String, String>) -> Answer {
    let backend = q.get("backend").filter(|b| !b.is_empty());
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::bad("limit must be an integer from 1 to 1000"))?,
    };
    if let Some(b) = backend {
        known_backend(admin, &admin.ledger.quota_stats().await?, b)?;
    }
    let rows = admin
        .store
        .list_cleanup_dlq(backend.map(String::as_str), limit)
        .await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "backend": r.backend_name,
                "object_key": r.object_key,
                "storage_key": r.storage_key,
                "reason": r.reason,
                "size_bytes": r.size_bytes,
                "attempts": r.attempts,
                "first_enqueued_at": unix_secs(r.first_enqueued_at.to_system_time()),
                "moved_at": unix_secs(r.moved_at.to_system_time()),
                "last_error": r.last_error,
            })
        })
        .collect();
    Ok((StatusCode::OK, json!({"dlq": out})))
}

async fn requeue(admin: &Admin, body: &Value) -> Answer {
    let backend = str_field(body, "backend")?.filter(|b| !b.is_empty());
    if let Some(ids) = body.get("ids").filter(|v| !v.is_null()) {
        if backend.is_some() {
            return Err(ApiError::bad("give ids or backend, not both"));
        }
        let ids = id_list(ids)?;
        let n = admin.store.requeue_cleanup_dlq_ids(&ids).await?;
        return Ok((StatusCode::OK, json!({"requeued": n, "ids": ids})));
    }
    if let Some(b) = backend {
        known_backend(admin, &admin.ledger.quota_stats().await?, b)?;
    }
    let n = admin.store.requeue_cleanup_dlq(backend).await?;
    Ok((StatusCode::OK, json!({"requeued": n, "backend": backend})))
}

/// A non-empty JSON array of DLQ row ids, sorted, without duplicates.
fn id_list(v: &Value) -> Result<Vec<i64>, ApiError> {
    let mut ids: Vec<i64> = match v {
        Value::Array(a) if !a.is_empty() && a.len() <= 1000 => a
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| ApiError::bad("ids must be integers"))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::bad(
                "ids must be an array of 1 to 1000 DLQ row ids",
            ));
        }
    };
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Issues a token for `action`, valid `ttl_secs` (body field) or [`TOKEN_TTL`].
pub(super) fn issue(
    admin: &Admin,
    body: &Value,
    action: Action,
) -> Result<(String, u64), ApiError> {
    let ttl = match int_field(body, "ttl_secs")? {
        None => TOKEN_TTL,
        Some(s) => u64::try_from(s)
            .ok()
            .map(Duration::from_secs)
            .filter(|d| !d.is_zero() && *d <= TOKEN_TTL_MAX)
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "ttl_secs must be from 1 to {}",
                    TOKEN_TTL_MAX.as_secs()
                ))
            })?,
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut c = admin
        .confirmations
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    c.retain(|_, v| v.expires > now);
    c.insert(
        token.clone(),
        Confirmation {
            action,
            expires: now + ttl,
        },
    );
    Ok((token, ttl.as_secs()))
}

/// Takes the token (single use): it must exist, be unexpired and confirm exactly `action`.
pub(super) fn redeem(admin: &Admin, token: &str, action: &Action) -> Result<(), ApiError> {
    let mut c = admin
        .confirmations
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Some(found) = c.remove(token) else {
        return Err(ApiError::bad(
            "unknown or already used confirmation token: ask for a new one",
        ));
    };
    if found.expires <= Instant::now() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "TokenExpired",
            "the confirmation token expired: ask for a new one",
        ));
    }
    if &found.action != action {
        return Err(ApiError::conflict(
            "TokenMismatch",
            "the confirmation token was issued for another action, or what it described changed: ask for a new one",
        ));
    }
    Ok(())
}

async fn remove_backend(admin: &Admin, name: &str, body: &Value) -> Answer {
    let stats = admin.ledger.quota_stats().await?;
    if !stats.contains_key(name) {
        return Err(ApiError::not_found(
            "NoSuchBackend",
            format!("no backend {name:?} in the ledger"),
        ));
    }
    if admin.workers.backends.get(name).is_some() {
        return Err(ApiError::conflict(
            "BackendInUse",
            format!(
                "backend {name} is in this gateway's configuration: drain it, take it out of \
                 the configuration, restart, then remove it"
            ),
        ));
    }
    let force = match body.get("force") {
        None | Some(Value::Null) => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ApiError::bad("force must be a boolean"))?,
    };
    let (copies, bytes) = admin.store.backend_object_stats(name).await?;
    let action = Action::Remove {
        backend: name.to_owned(),
        copies,
        force,
    };
    match str_field(body, "token")? {
        None => {
            if copies > 0 && !force {
                return Err(ApiError::conflict(
                    "BackendNotEmpty",
                    format!(
                        "the ledger still records {copies} copies ({bytes} bytes) on {name}; \
                         removing it forgets them (keys with no other copy are lost): pass \
                         force: true to accept that"
                    ),
                ));
            }
            let (token, ttl) = issue(admin, body, action)?;
            let (queued, dead) = admin
                .store
                .cleanup_bytes_by_backend()
                .await?
                .get(name)
                .copied()
                .unwrap_or((0, 0));
            Ok((
                StatusCode::OK,
                json!({
                    "backend": name,
                    "confirm": true,
                    "token": token,
                    "expires_in_secs": ttl,
                    "copies": copies,
                    "bytes": bytes,
                    "queued_bytes": queued,
                    "dlq_bytes": dead,
                    "effect": "deletes the backend's ledger rows: copies, cleanup queue and DLQ rows, intents, uploads, usage and its quota row",
                }),
            ))
        }
        Some(token) => {
            redeem(admin, token, &action)?;
            admin.store.remove_backend(name).await?;
            Ok((
                StatusCode::OK,
                json!({"backend": name, "removed": true, "removed_copies": copies, "removed_bytes": bytes}),
            ))
        }
    }
}

async fn write_off(admin: &Admin, body: &Value) -> Answer {
    let ids = id_list(body.get("ids").unwrap_or(&Value::Null))?;
    let action = Action::WriteOff { ids: ids.clone() };
    match str_field(body, "token")? {
        None => {
            let rows = admin.store.list_cleanup_dlq(None, 1000).await?;
            let found: Vec<&s3o_store::CleanupDlqItem> =
                rows.iter().filter(|r| ids.contains(&r.id)).collect();
            if found.len() != ids.len() {
                let missing: Vec<i64> = ids
                    .iter()
                    .copied()
                    .filter(|i| !found.iter().any(|r| r.id == *i))
                    .collect();
                return Err(ApiError::not_found(
                    "NoSuchDlqRow",
                    format!("no DLQ rows with ids {missing:?}"),
                ));
            }
            let bytes: i64 = found.iter().map(|r| r.size_bytes).sum();
            let (token, ttl) = issue(admin, body, action)?;
            Ok((
                StatusCode::OK,
                json!({
                    "confirm": true,
                    "token": token,
                    "expires_in_secs": ttl,
                    "rows": ids.len(),
                    "bytes": bytes,
                    "effect": "deletes the rows and releases their bytes from orphan_bytes; the bytes stay on the backends, unaccounted",
                }),
            ))
        }
        Some(token) => {
            redeem(admin, token, &action)?;
            let n = admin.store.write_off_cleanup_dlq(&ids).await?;
            Ok((StatusCode::OK, json!({"written_off": n})))
        }
    }
}
