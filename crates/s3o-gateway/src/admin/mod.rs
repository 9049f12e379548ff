//! The admin API (`/admin/api/…`, JSON) and the web console (`/admin/`).
//!
//! The API is an s3s custom route ([`S3Route`]): s3s verifies the request's SigV4 signature
//! (header or presigned, body hash included) with the same keys as S3 requests, and the route
//! then requires a key whose `[[credentials]]` entry says `admin = true`. Unsigned requests and
//! non-admin keys get 403; an anonymous gateway (no credentials) has no admin API at all.
//! Only path-style requests reach it (like `/health`): the server marks them with
//! [`AdminPath`] before s3s sees them, so `/admin/api/x` on a virtual-host bucket is a key.
//!
//! Every route is listed once in [`routes::ROUTES`]; dispatch and the OpenAPI description at
//! `/admin/api/openapi.json` both read that table. Long operations (a drain, a worker pass)
//! start a job and answer 202 with its id; `GET /admin/api/jobs/{id}` polls it and
//! `DELETE` cancels it. Destructive actions (backend removal, DLQ write-off) are two calls:
//! the first describes what would happen and returns a confirmation token that expires; the
//! second carries the token.
//!
//! The object browser's download and delete run the gateway's own S3 handlers ([`objects`]),
//! and the encryption jobs the code of the `encryption` subcommands ([`encryption`]); the
//! admin layer adds checks and views, never a second implementation of a ledger contract.
//! Long listings stream NDJSON (`backends/{name}/copies`).
//!
//! Besides SigV4, the API accepts a console session ([`session`]): `POST /admin/api/session`
//! with an admin key's access key and secret answers an HMAC-signed, HttpOnly cookie and a
//! CSRF token; unsigned calls carrying the cookie are served, state-changing ones only with
//! the token in `X-CSRF-Token`. The console is static HTML/JS/CSS compiled into the binary
//! ([`console`]; see it for the threat model).

pub(crate) mod client;
pub(crate) mod console;
mod encryption;
mod jobs;
mod objects;
mod openapi;
mod routes;
pub(crate) mod session;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};
use serde_json::{Value, json};

use crate::LedgerHandle;
use crate::auth::Keys;
use crate::ledger::Ledger;
use crate::workers::Ctx;

/// Marks a path-style request under `/admin/api/` (set by the server before s3s routes it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdminPath;

/// True when `path` belongs to the admin API.
pub(crate) fn is_api_path(path: &str) -> bool {
    path.starts_with("/admin/api/")
}

/// What the admin API reads and acts on.
pub(crate) struct Admin {
    pub(crate) keys: Option<Keys>,
    pub(crate) store: LedgerHandle,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) workers: Arc<Ctx>,
    /// The gateway's S3 handlers: the object browser's download and delete run through them.
    pub(crate) s3: crate::s3::GatewayS3,
    /// Encryption at rest, when configured: the rotation and conversion jobs use its keys.
    pub(crate) crypto: Option<Arc<crate::crypto::gateway::Crypto>>,
    pub(crate) unconfigured: Vec<String>,
    pub(crate) started: Instant,
    pub(crate) started_at: SystemTime,
    pub(crate) jobs: jobs::Jobs,
    /// Confirmation tokens of two-step actions, by token.
    pub(crate) confirmations: Mutex<BTreeMap<String, routes::Confirmation>>,
    /// Console sessions: the cookie's key, sign-in throttling, signed-out ids.
    pub(crate) sessions: session::Sessions,
}

/// The s3s route serving the admin API.
#[derive(Clone)]
pub(crate) struct AdminRoute(pub(crate) Arc<Admin>);

impl AdminRoute {
    pub(crate) fn new(
        keys: Option<Keys>,
        store: LedgerHandle,
        ledger: Arc<Ledger>,
        workers: Arc<Ctx>,
        s3: crate::s3::GatewayS3,
        crypto: Option<Arc<crate::crypto::gateway::Crypto>>,
        unconfigured: Vec<String>,
    ) -> Self {
        AdminRoute(Arc::new(Admin {
            keys,
            store,
            ledger,
            workers,
            s3,
            crypto,
            unconfigured,
            started: Instant::now(),
            started_at: SystemTime::now(),
            jobs: jobs::Jobs::default(),
            confirmations: Mutex::default(),
            sessions: session::Sessions::new(&session::ConsoleConfig::default()),
        }))
    }

    /// The console's settings (`[console]`): the session key, lifetimes, throttle, uploads.
    pub(crate) fn with_console(mut self, console: &session::ConsoleConfig) -> Self {
        if let Some(admin) = Arc::get_mut(&mut self.0) {
            admin.sessions = session::Sessions::new(console);
        }
        self
    }
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(&self, _: &Method, _: &Uri, _: &HeaderMap, extensions: &mut Extensions) -> bool {
        extensions.get::<AdminPath>().is_some()
    }

    /// Access is decided in [`S3Route::call`], so refusals are JSON like every other answer.
    async fn check_access(&self, _req: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let admin = &self.0;
        // Signing in is the one call that needs no authentication.
        if req.method == Method::POST && req.uri.path().trim_end_matches('/') == session::PATH {
            return Ok(session::login(admin, req).await);
        }
        let caller = match &req.credentials {
            Some(cred) => {
                if !admin
                    .keys
                    .as_ref()
                    .is_some_and(|k| k.is_admin(&cred.access_key))
                {
                    return Ok(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "this access key is not an admin (set admin = true in its [[credentials]] entry)",
                    )
                    .into_response());
                }
                session::Caller::SigV4 {
                    access_key: cred.access_key.clone(),
                }
            }
            None if session::has_cookie(&req.headers) => match session::verify(admin, &req).await {
                Ok(s) => session::Caller::Session(s),
                Err(e) => return Ok(e.into_response()),
            },
            None => {
                return Ok(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "the admin API requires a SigV4-signed request or a console session",
                )
                .into_response());
            }
        };
        Ok(match routes::dispatch(admin, &caller, req).await {
            Ok(routes::Reply::Json(status, body)) => json_response(status, &body),
            Ok(routes::Reply::Raw(r)) => r,
            Err(e) => e.into_response(),
        })
    }
}

/// A refused admin call: HTTP status, a stable code, a message for humans.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub(crate) fn into_response(self) -> S3Response<Body> {
        json_response(
            self.status,
            &json!({"error": {"code": self.code, "message": self.message}}),
        )
    }
}

/// A ledger error as the API reports it: the same code and status as the S3 answer.
impl From<s3o_store::StoreError> for ApiError {
    fn from(e: s3o_store::StoreError) -> Self {
        match s3o_store::s3_error_for(&e, s3o_store::Access::Write) {
            Some(err) => {
                let status =
                    StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let code = match err.code {
                    "InvalidArgument" | "InvalidRequest" | "InvalidBucketName" => "InvalidArgument",
                    "SlowDown" => "ServiceUnavailable",
                    c => c,
                };
                if status.is_server_error() {
                    tracing::warn!(error = %e, "admin API: ledger call failed");
                    ApiError::new(status, code, err.message)
                } else {
                    // The store's own words name the rule or the missing thing (never a secret).
                    ApiError::new(status, code, e.to_string())
                }
            }
            None => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the ledger is unavailable",
            ),
        }
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> S3Response<Body> {
    let mut r = S3Response::new(Body::from(body.to_string()));
    r.status = Some(status);
    r.headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r.headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Percent-decodes a path segment or query value (`+` is a space in a query).
pub(crate) fn decode(s: &str, plus_is_space: bool) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad("bad percent-encoding"))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad("not UTF-8 after percent-decoding"))
}

/// An S3 XML error answer (a refused signature, a malformed request s3s refused before the
/// route ran) turned into the API's JSON shape, same status; other answers pass unchanged.
pub(crate) async fn json_refusal(resp: hyper::Response<Body>) -> hyper::Response<Body> {
    use http_body_util::BodyExt as _;
    let xml = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("xml"));
    if resp.status().is_success() || !xml {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = match body.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        text.split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(v, _)| v.to_owned())
    };
    let body = json!({"error": {
        "code": tag("Code").unwrap_or_else(|| "InvalidRequest".to_owned()),
        "message": tag("Message").unwrap_or_default(),
    }})
    .to_string();
    parts.headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    hyper::Response::from_parts(parts, Body::from(body))
}
