//! The web console: three static files compiled into the binary, served at `/admin/`
//! (path-style requests only, without authentication: they hold no data). Everything the
//! page shows comes from the admin API.
//!
//! Threat model. The page signs in once (`POST /admin/api/session`, see [`super::session`]):
//! the secret is sent in that one request and dropped from the form; the session lives in an
//! HMAC-signed `HttpOnly; SameSite=Strict` cookie the script cannot read, and the page keeps
//! only the session's CSRF token in memory (nothing in `localStorage`).
//! - CSRF: the cookie is ambient, so every POST/PUT/DELETE must carry `X-CSRF-Token`, which
//!   only a page that could read a same-origin answer holds; the admin API never answers
//!   CORS, so no other origin can read it; SameSite=Strict keeps the cookie off cross-site
//!   requests in the first place; sign-in itself takes JSON only (no cross-site form).
//! - XSS: the page builds the DOM with `textContent` only, and its Content-Security-Policy
//!   allows scripts and styles from `'self'` only, no inline script, no framing. The origin is
//!   shared with S3 objects served path-style (`/bucket/key`): an HTML object opened in the
//!   console's own tab could script this origin and act within a live session (never read
//!   the cookie or the secret); downloads are served as attachments, and operators should not
//!   open untrusted objects from the gateway's origin while signed in.
//! - Network: over plain HTTP the sign-in carries the secret and the cookie can be observed;
//!   serve the gateway over HTTPS (`[server.tls]`, which also marks the cookie `Secure`)
//!   beyond localhost.
//! - Brute force: failed sign-ins are throttled per client address and per access key (429).

use hyper::{Response, StatusCode};

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// True for the paths the console answers (GET or HEAD).
pub(crate) fn is_console_path(path: &str) -> bool {
    matches!(
        path,
        "/admin"
            | "/admin/"
            | "/admin/index.html"
            | "/admin/app.js"
            | "/admin/app.css"
            | "/console"
    )
}

/// The answer for a console path.
pub(crate) fn serve(path: &str) -> Response<s3s::Body> {
    let (body, ctype) = match path {
        "/admin/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/admin/app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "/admin/" | "/admin/index.html" => (INDEX, "text/html; charset=utf-8"),
        _ => {
            let mut r = Response::new(s3s::Body::empty());
            *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
            r.headers_mut().insert(
                hyper::header::LOCATION,
                hyper::header::HeaderValue::from_static("/admin/"),
            );
            return r;
        }
    };
    let mut r = Response::new(s3s::Body::from(body.to_owned()));
    let h = r.headers_mut();
    let v = hyper::header::HeaderValue::from_static;
    h.insert(hyper::header::CONTENT_TYPE, v(ctype));
    h.insert(hyper::header::CONTENT_SECURITY_POLICY, v(CSP));
    h.insert(hyper::header::X_FRAME_OPTIONS, v("DENY"));
    h.insert(hyper::header::X_CONTENT_TYPE_OPTIONS, v("nosniff"));
    h.insert(hyper::header::REFERRER_POLICY, v("no-referrer"));
    h.insert(hyper::header::CACHE_CONTROL, v("no-store"));
    r
}
