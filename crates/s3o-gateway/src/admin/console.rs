//! The web console: three static files compiled into the binary, served at `/admin/`
//! (path-style requests only, without authentication: they hold no data). Everything the
//! page shows comes from the admin API.
//!
//! Threat model. The console signs each API call in the browser with SigV4 (WebCrypto): the
//! secret is typed into the page, imported as a non-extractable HMAC key and the string
//! dropped; nothing is stored (no cookie, no `localStorage`), so a reload signs out.
//! - CSRF: there is no ambient credential (no cookie, no HTTP auth) a forged cross-site
//!   request could carry; every call needs a fresh signature only this page can compute.
//! - XSS: the page builds the DOM with `textContent` only, and its Content-Security-Policy
//!   allows scripts and styles from `'self'` only, no inline script, no framing. The origin is
//!   shared with S3 objects served path-style (`/bucket/key`): an HTML object opened in the
//!   console's own tab could script this origin, but finds no secret to steal (it is not
//!   stored), only a key usable while the console page itself is open; operators should not
//!   open untrusted objects from the gateway's origin while signed in.
//! - Network: over plain HTTP the signed requests can be observed and replayed within SigV4's
//!   15-minute window (not the secret); serve the gateway over HTTPS (`[server.tls]`) beyond
//!   localhost. Browsers only allow WebCrypto on HTTPS or localhost.
//! - Brute force: a wrong secret is a signature mismatch, refused like any S3 request.

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
