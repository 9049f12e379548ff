//! Console sessions: sign in once with an admin key's access key and secret, then call the
//! admin API with an HMAC-signed cookie and a CSRF token instead of signing every request.
//!
//! - **The cookie** (`s3o_session`, `HttpOnly; SameSite=Strict; Path=/admin/`, `Secure` over
//!   HTTPS, `Max-Age` = the session's lifetime) holds the access key, the expiry, a random
//!   session id and an HMAC-SHA256 over them *and over a fingerprint of the key's current
//!   secret*: nothing is stored server-side, any process with the same `[console]
//!   session_key` accepts it, and changing the key's secret (or taking its `admin` flag away,
//!   checked on every call) ends its sessions. Without `session_key` the HMAC key is random
//!   per process, so a restart signs everyone out.
//! - **CSRF**: every call other than GET/HEAD must carry `X-CSRF-Token`, an HMAC of the
//!   session id the sign-in answer (and `GET /admin/api/session`) hands to the page; a
//!   forged cross-site request carries the cookie at most (SameSite=Strict already keeps it
//!   home), never the token: 403.
//! - **Throttling**: failed sign-ins are counted per client address and per access key in a
//!   sliding window; past `login_max_failures` the sign-in answers 429 (even with the right
//!   secret) until the window has room again.
//! - **Sign-out** clears the cookie and remembers the session id as revoked in this process
//!   until it would have expired, so a copy of the cookie dies with it.
//!
//! The secret is typed once into the sign-in form and sent once (use HTTPS beyond localhost);
//! the page keeps only the CSRF token in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use hyper::{HeaderMap, StatusCode};
use s3s::auth::S3Auth as _;
use s3s::{Body, S3Request, S3Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{Admin, ApiError, json_response, unix_secs};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The sign-in, session and sign-out route.
pub(crate) const PATH: &str = "/admin/api/session";
/// The cookie's name.
pub(crate) const COOKIE: &str = "s3o_session";
/// The header carrying the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// `[console]`: the web console's sessions and uploads. Every setting has a default.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// The key session cookies are signed with (at least 32 characters). Unset: a random key
    /// per process (a restart signs everyone out, and several gateways behind one address
    /// do not accept each other's cookies). Set it, the same on every instance, to share
    /// sessions.
    pub session_key: Option<String>,
    /// Seconds a session lasts after sign-in (default 28800, eight hours).
    pub session_ttl_secs: u64,
    /// Failed sign-ins a client address, or an access key, may make within
    /// `login_window_secs` before sign-in answers 429 (default 5).
    pub login_max_failures: u32,
    /// The window failed sign-ins are counted over, in seconds (default 300).
    pub login_window_secs: u64,
    /// The largest file the console uploads, in bytes (default 1 GiB, at most 5 GiB, S3's
    /// single-PUT limit); larger files are refused with 413 and need an S3 client.
    pub max_upload_bytes: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_key: None,
            session_ttl_secs: 8 * 3600,
            login_max_failures: 5,
            login_window_secs: 300,
            max_upload_bytes: 1 << 30,
        }
    }
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("session_key", &self.session_key.as_ref().map(|_| "***"))
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_window_secs", &self.login_window_secs)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .finish()
    }
}

impl ConsoleConfig {
    /// The rules a parsed file cannot express.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.session_key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err("[console] session_key must be at least 32 characters".into());
        }
        if self.session_ttl_secs == 0 || self.session_ttl_secs > 30 * 24 * 3600 {
            return Err("[console] session_ttl_secs must be from 1 to 2592000 (30 days)".into());
        }
        if self.login_max_failures == 0 || self.login_window_secs == 0 {
            return Err(
                "[console] login_max_failures and login_window_secs must be at least 1".into(),
            );
        }
        if self.max_upload_bytes == 0 || self.max_upload_bytes > 5 << 30 {
            return Err("[console] max_upload_bytes must be from 1 to 5368709120 (5 GiB)".into());
        }
        Ok(())
    }
}

/// Where a request came from: set by the server on every request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    /// The client's address (the throttle's key; behind a proxy, the proxy's).
    pub(crate) ip: IpAddr,
    /// The request came over TLS (the cookie gets `Secure`).
    pub(crate) tls: bool,
}

/// Who is calling the admin API.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// A SigV4-signed request (CLI, curl).
    SigV4 { access_key: String },
    /// A console session.
    Session(Session),
}

/// A verified session cookie.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) access_key: String,
    pub(crate) expires: u64,
    pub(crate) id: String,
}

/// The process's session state.
pub(crate) struct Sessions {
    key: Vec<u8>,
    ttl: Duration,
    max_failures: usize,
    window: Duration,
    /// `[console] max_upload_bytes`.
    pub(crate) max_upload_bytes: u64,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Signed-out session ids, with the expiry after which their cookie is dead anyway.
    revoked: Mutex<BTreeMap<String, u64>>,
}

/// Failure counters kept at most (beyond it the oldest are dropped: a flood of addresses
/// costs bounded memory).
const MAX_COUNTERS: usize = 10_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    pub(crate) fn new(c: &ConsoleConfig) -> Self {
        let key = match &c.session_key {
            Some(k) => sha2::Sha256::digest(k.as_bytes()).to_vec(),
            // Two v4 UUIDs: 244 bits from the operating system's generator.
            None => [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
                .iter()
                .flat_map(|u| *u.as_bytes())
                .collect(),
        };
        Sessions {
            key,
            ttl: Duration::from_secs(c.session_ttl_secs),
            max_failures: c.login_max_failures as usize,
            window: Duration::from_secs(c.login_window_secs),
            max_upload_bytes: c.max_upload_bytes,
            failures: Mutex::default(),
            revoked: Mutex::default(),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for p in parts {
            // Length-prefixed, so no two different part lists sign the same bytes.
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m
    }

    /// A fingerprint of a secret: sessions are bound to the secret they signed in with.
    fn fingerprint(&self, secret: &str) -> Vec<u8> {
        self.mac(&[b"secret", secret.as_bytes()])
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// The CSRF token of a session id.
    pub(crate) fn csrf(&self, id: &str) -> String {
        b64(&self.mac(&[b"csrf", id.as_bytes()]).finalize().into_bytes())
    }

    fn cookie_mac(&self, ak: &str, expires: u64, id: &str, fp: &[u8]) -> HmacSha256 {
        self.mac(&[
            b"session-v1",
            ak.as_bytes(),
            expires.to_string().as_bytes(),
            id.as_bytes(),
            fp,
        ])
    }

    /// Seconds until `key`'s oldest counted failure leaves the window, when `key` is over.
    fn throttled(&self, map: &mut HashMap<String, VecDeque<Instant>>, key: &str) -> Option<u64> {
        let now = Instant::now();
        let q = map.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() < self.max_failures {
            return None;
        }
        let oldest = *q.front()?;
        Some((self.window - now.duration_since(oldest)).as_secs().max(1))
    }

    fn record_failure(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_COUNTERS {
            let now = Instant::now();
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
            if map.len() >= MAX_COUNTERS {
                map.clear();
            }
        }
        for k in keys {
            let q = map.entry(k.clone()).or_default();
            q.push_back(Instant::now());
            while q.len() > self.max_failures {
                q.pop_front();
            }
        }
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

/// True when the request carries a session cookie at all.
pub(crate) fn has_cookie(headers: &HeaderMap) -> bool {
    cookie_value(headers).is_some()
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Verifies the session cookie of an unsigned request, and its CSRF token when the method
/// changes state.
pub(crate) async fn verify(admin: &Admin, req: &S3Request<Body>) -> Result<Session, ApiError> {
    let s = &admin.sessions;
    let invalid = || {
        unauthorized(
            "InvalidSession",
            "the session cookie is not valid (forged, signed out, or signed by another process): sign in again",
        )
    };
    let raw = cookie_value(&req.headers).ok_or_else(invalid)?;
    let parts: Vec<&str> = raw.split('.').collect();
    let [version, ak, expires, id, mac] = parts[..] else {
        return Err(invalid());
    };
    if version != "v1" {
        return Err(invalid());
    }
    let dec = |v: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v)
            .ok()
    };
    let ak = dec(ak)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let expires: u64 = expires.parse().map_err(|_| invalid())?;
    let mac = dec(mac).ok_or_else(invalid)?;
    let keys = admin.keys.as_ref().ok_or_else(invalid)?;
    let secret = keys.get_secret_key(&ak).await.map_err(|_| invalid())?;
    let fp = s.fingerprint(secret.expose());
    s.cookie_mac(&ak, expires, id, &fp)
        .verify_slice(&mac)
        .map_err(|_| invalid())?;
    let now = unix_secs(SystemTime::now());
    if expires <= now {
        return Err(unauthorized(
            "SessionExpired",
            "the console session expired: sign in again",
        ));
    }
    {
        let mut revoked = s.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, exp| *exp > now);
        if revoked.contains_key(id) {
            return Err(invalid());
        }
    }
    if !keys.is_admin(&ak) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "this access key is no longer an admin",
        ));
    }
    if !matches!(req.method, hyper::Method::GET | hyper::Method::HEAD) {
        let Some(token) = req.headers.get(CSRF_HEADER) else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "CsrfTokenMissing",
                "a console session's POST, PUT and DELETE need the X-CSRF-Token header",
            ));
        };
        let want = s.mac(&[b"csrf", id.as_bytes()]);
        let got = dec(token.to_str().unwrap_or("")).unwrap_or_default();
        if want.verify_slice(&got).is_err() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "CsrfTokenMismatch",
                "the X-CSRF-Token header does not belong to this session",
            ));
        }
    }
    Ok(Session {
        access_key: ak,
        expires,
        id: id.to_owned(),
    })
}

fn cookie_header(value: &str, max_age: u64, tls: bool) -> hyper::header::HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    hyper::header::HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/admin/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// `POST /admin/api/session` `{access_key, secret_key}`: signs in (no other authentication).
pub(crate) async fn login(admin: &Admin, mut req: S3Request<Body>) -> S3Response<Body> {
    match try_login(admin, &mut req).await {
        Ok(r) => r,
        Err((e, retry)) => {
            let mut r = e.into_response();
            if let Some(secs) = retry {
                r.headers.insert(hyper::header::RETRY_AFTER, secs.into());
            }
            r
        }
    }
}

type LoginError = (ApiError, Option<u64>);

async fn try_login(
    admin: &Admin,
    req: &mut S3Request<Body>,
) -> Result<S3Response<Body>, LoginError> {
    let s = &admin.sessions;
    let peer = req.extensions.get::<Peer>().copied();
    // A cross-site form cannot send JSON without a preflight nobody answers.
    let json_type = req
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return Err((
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "InvalidArgument",
                "sign in with a JSON body (Content-Type: application/json)",
            ),
            None,
        ));
    }
    let bytes = req
        .input
        .store_all_limited(8 * 1024)
        .await
        .map_err(|e| (ApiError::bad(format!("request body: {e}")), None))?;
    #[derive(Deserialize)]
    struct Form {
        access_key: String,
        secret_key: String,
    }
    let form: Form = serde_json::from_slice(&bytes).map_err(|_| {
        (
            ApiError::bad("the body must be {\"access_key\": …, \"secret_key\": …}"),
            None,
        )
    })?;
    let counters = [
        format!(
            "ip:{}",
            peer.map_or_else(|| "unknown".to_owned(), |p| p.ip.to_string())
        ),
        format!("key:{}", form.access_key),
    ];
    {
        let mut map = s.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(secs) = counters
            .iter()
            .filter_map(|k| s.throttled(&mut map, k))
            .max()
        {
            return Err((
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyAttempts",
                    format!("too many failed sign-ins: try again in {secs} s"),
                ),
                Some(secs),
            ));
        }
    }
    let keys = admin.keys.as_ref();
    let secret = match keys {
        Some(k) => k.get_secret_key(&form.access_key).await.ok(),
        None => None,
    };
    // Both sides fingerprinted: the comparison is constant-time and length-blind.
    let good = secret.as_ref().is_some_and(|secret| {
        s.mac(&[b"secret", secret.expose().as_bytes()])
            .verify_slice(&s.fingerprint(&form.secret_key))
            .is_ok()
    }) && keys.is_some_and(|k| k.is_admin(&form.access_key));
    let Some(secret) = secret.filter(|_| good) else {
        s.record_failure(&counters);
        tracing::info!(
            access_key = %form.access_key,
            peer = ?peer.map(|p| p.ip),
            "console sign-in refused"
        );
        return Err((
            ApiError::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "wrong access key or secret, or the key is not an admin",
            ),
            None,
        ));
    };
    // A success clears the key's count (the address's stays: it may be guessing others).
    s.failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&counters[1]);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let expires = unix_secs(SystemTime::now()) + s.ttl.as_secs();
    let fp = s.fingerprint(secret.expose());
    let mac = s
        .cookie_mac(&form.access_key, expires, &id, &fp)
        .finalize()
        .into_bytes();
    let value = format!(
        "v1.{}.{expires}.{id}.{}",
        b64(form.access_key.as_bytes()),
        b64(&mac)
    );
    let mut r = json_response(
        StatusCode::OK,
        &json!({
            "access_key": form.access_key,
            "auth": "session",
            "csrf_token": s.csrf(&id),
            "expires_at": expires,
            "max_upload_bytes": s.max_upload_bytes,
        }),
    );
    r.headers.insert(
        hyper::header::SET_COOKIE,
        cookie_header(&value, s.ttl.as_secs(), peer.is_some_and(|p| p.tls)),
    );
    tracing::info!(access_key = %form.access_key, "console sign-in");
    Ok(r)
}

/// `GET /admin/api/session`: who is calling, and the session's CSRF token (so a reloaded
/// page picks its session up again).
pub(crate) fn whoami(admin: &Admin, caller: &Caller) -> Value {
    match caller {
        Caller::SigV4 { access_key } => json!({"access_key": access_key, "auth": "sigv4"}),
        Caller::Session(s) => json!({
            "access_key": s.access_key,
            "auth": "session",
            "csrf_token": admin.sessions.csrf(&s.id),
            "expires_at": s.expires,
            "max_upload_bytes": admin.sessions.max_upload_bytes,
        }),
    }
}

/// `DELETE /admin/api/session`: signs out (the cookie cleared, its id revoked here).
pub(crate) fn logout(
    admin: &Admin,
    caller: &Caller,
    tls: bool,
) -> Result<S3Response<Body>, ApiError> {
    let Caller::Session(s) = caller else {
        return Err(ApiError::bad(
            "this request is signed with SigV4, not a console session: nothing to sign out",
        ));
    };
    admin
        .sessions
        .revoked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(s.id.clone(), s.expires);
    let mut r = json_response(
        StatusCode::OK,
        &json!({"signed_out": true, "access_key": s.access_key}),
    );
    r.headers
        .insert(hyper::header::SET_COOKIE, cookie_header("", 0, tls));
    Ok(r)
}
