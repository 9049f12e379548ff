//! CORS: Put/Get/DeleteBucketCors (the rules live with the bucket row in the ledger), the
//! preflight `OPTIONS` answered from them, and the `Access-Control-*` headers of actual
//! requests whose `Origin` a rule allows.
//!
//! s3s does not route `OPTIONS`, and browsers send preflights unsigned: the server calls
//! [`preflight`] before authentication, and [`decorate`] on the answer of every request that
//! carries an `Origin` header. Matching follows S3: the first rule whose origin pattern (at most
//! one `*`), method and every requested header match answers; nothing matching is 403.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use s3o_store::{CorsConfig, CorsRule};

use super::*;
use crate::admission::error_response;

/// `CORSRule` as the ledger keeps it.
fn rule_from_dto(r: CORSRule) -> CorsRule {
    CorsRule {
        id: r.id,
        allowed_methods: r.allowed_methods,
        allowed_origins: r.allowed_origins,
        allowed_headers: r.allowed_headers.unwrap_or_default(),
        expose_headers: r.expose_headers.unwrap_or_default(),
        max_age_seconds: r.max_age_seconds,
    }
}

fn rule_to_dto(r: CorsRule) -> CORSRule {
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    CORSRule {
        id: r.id,
        allowed_methods: r.allowed_methods,
        allowed_origins: r.allowed_origins,
        allowed_headers: some(r.allowed_headers),
        expose_headers: some(r.expose_headers),
        max_age_seconds: r.max_age_seconds,
    }
}

impl GatewayS3 {
    pub(super) async fn do_put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let i = req.input;
        let cfg = CorsConfig {
            rules: i
                .cors_configuration
                .cors_rules
                .into_iter()
                .map(rule_from_dto)
                .collect(),
        };
        match self.ledger.set_bucket_cors(&i.bucket, Some(&cfg)).await {
            Ok(()) => Ok(S3Response::new(PutBucketCorsOutput::default())),
            Err(e) => Err(cors_err(&i.bucket, e)),
        }
    }

    pub(super) async fn do_get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let b = &req.input.bucket;
        match self.ledger.bucket_cors(b).await {
            Ok(Some(cfg)) => Ok(S3Response::new(GetBucketCorsOutput {
                cors_rules: Some(cfg.rules.into_iter().map(rule_to_dto).collect()),
            })),
            Ok(None) => Err(s3_error!(
                NoSuchCORSConfiguration,
                "the CORS configuration of bucket {b} does not exist"
            )),
            Err(e) => Err(cors_err(b, e)),
        }
    }

    pub(super) async fn do_delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let b = &req.input.bucket;
        match self.ledger.set_bucket_cors(b, None).await {
            Ok(()) => Ok(S3Response::new(DeleteBucketCorsOutput::default())),
            Err(e) => Err(cors_err(b, e)),
        }
    }
}

/// The S3 answer for a ledger error of a CORS call: an unknown bucket is `NoSuchBucket`, a
/// configuration breaking S3's rules `InvalidRequest` naming the rule.
fn cors_err(bucket: &str, e: StoreError) -> S3Error {
    match e {
        StoreError::BucketNotFound { .. } => {
            s3_error!(NoSuchBucket, "bucket {bucket} does not exist")
        }
        StoreError::InvalidInput {
            what: "bucket name",
            ..
        } => s3_error!(NoSuchBucket, "bucket {bucket} does not exist"),
        StoreError::InvalidInput { why, .. } => s3_error!(InvalidRequest, "{why}"),
        e => write_err(e),
    }
}

/// Whether `value` matches `pattern`, which holds at most one `*` standing for any run of
/// characters (possibly empty).
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (p, v) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    match p.split_once('*') {
        None => p == v,
        Some((pre, suf)) => {
            v.len() >= pre.len() + suf.len() && v.starts_with(pre) && v.ends_with(suf)
        }
    }
}

/// The first rule allowing `origin` to use `method` with every header of `headers`, and the
/// `Access-Control-Allow-Origin` it answers (`*` for a rule allowing any origin).
fn find_rule<'a>(
    cfg: &'a CorsConfig,
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<(&'a CorsRule, String)> {
    cfg.rules.iter().find_map(|r| {
        let pattern = r
            .allowed_origins
            .iter()
            .find(|o| wildcard_match(o, origin, false))?;
        if !r.allowed_methods.iter().any(|m| m == method) {
            return None;
        }
        let all_allowed = headers
            .iter()
            .all(|h| r.allowed_headers.iter().any(|p| wildcard_match(p, h, true)));
        if !all_allowed {
            return None;
        }
        let allow = if pattern == "*" { "*" } else { origin };
        Some((r, allow.to_owned()))
    })
}

/// The bucket a request addresses: the host's label in virtual-host style, else the first
/// path segment (bucket names need no decoding); `None` for the service root.
fn request_bucket<B>(req: &Request<B>) -> Option<String> {
    if !crate::server::is_path_style(req) {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok())?;
        return host.split_once('.').map(|(b, _)| b.to_owned());
    }
    let seg = req.uri().path().trim_start_matches('/').split('/').next()?;
    (!seg.is_empty()).then(|| seg.to_owned())
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Adds what a matching rule grants to an answer's headers.
fn grant(h: &mut HeaderMap, rule: &CorsRule, allow_origin: &str) {
    set(h, "access-control-allow-origin", allow_origin);
    set(
        h,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set(
            h,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set(h, "access-control-max-age", &age.to_string());
    }
    set(
        h,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

/// Answers a preflight (`OPTIONS` on a bucket or an object) from the bucket's rules; `None`
/// for requests that are not one (they go on to s3s). Unsigned, as browsers send it.
pub(crate) async fn preflight<B>(
    ledger: &Ledger,
    req: &Request<B>,
    id: &str,
) -> Option<Response<s3s::Body>> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let bucket = request_bucket(req)?;
    let h = req.headers();
    let (Some(origin), Some(method)) = (
        header_str(h, "origin"),
        header_str(h, "access-control-request-method"),
    ) else {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin and Access-Control-Request-Method request headers \
             are needed.",
            id,
        ));
    };
    let headers: Vec<String> = header_str(h, "access-control-request-headers")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let cfg = match ledger.bucket_cors(&bucket).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Some(error_response(
                StatusCode::FORBIDDEN,
                "AccessForbidden",
                "CORSResponse: CORS is not enabled for this bucket.",
                id,
            ));
        }
        Err(StoreError::BucketNotFound { .. } | StoreError::InvalidInput { .. }) => {
            return Some(error_response(
                StatusCode::NOT_FOUND,
                "NoSuchBucket",
                "The specified bucket does not exist",
                id,
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "CORS preflight: the ledger did not answer");
            return Some(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the ledger is unavailable; try again",
                id,
            ));
        }
    };
    let Some((rule, allow)) = find_rule(&cfg, origin, method, &headers) else {
        return Some(error_response(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed: no rule of the bucket allows this \
             origin, method and these headers.",
            id,
        ));
    };
    let mut r = Response::new(s3s::Body::empty());
    let hm = r.headers_mut();
    grant(hm, rule, &allow);
    if !headers.is_empty() {
        set(hm, "access-control-allow-headers", &headers.join(", "));
    }
    Some(r)
}

/// What [`decorate`] needs of a request, taken before s3s consumes it: `None` when the
/// request carries no `Origin` or addresses no bucket (nothing to add).
pub(crate) struct CorsAsk {
    bucket: String,
    origin: String,
    method: String,
}

/// The CORS question of an actual request, if it asks one.
pub(crate) fn ask<B>(req: &Request<B>) -> Option<CorsAsk> {
    let origin = header_str(req.headers(), "origin")?.to_owned();
    Some(CorsAsk {
        bucket: request_bucket(req)?,
        origin,
        method: req.method().as_str().to_owned(),
    })
}

/// Adds the `Access-Control-*` headers a bucket rule grants to the answer of an actual
/// request (errors included, as S3 does). A ledger that cannot answer adds nothing: the
/// browser then withholds the answer from the page, which is the safe side.
pub(crate) async fn decorate<B>(ledger: &Ledger, ask: &CorsAsk, resp: &mut Response<B>) {
    let Ok(Some(cfg)) = ledger.bucket_cors(&ask.bucket).await else {
        return;
    };
    if let Some((rule, allow)) = find_rule(&cfg, &ask.origin, &ask.method, &[]) {
        grant(resp.headers_mut(), rule, &allow);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_s3() {
        assert!(wildcard_match("*", "anything", false));
        assert!(wildcard_match("*suffix", "foo.suffix", false));
        assert!(!wildcard_match("*suffix", "foo.suffix.get", false));
        assert!(wildcard_match("start*end", "startend", false));
        assert!(wildcard_match("start*end", "start12end", false));
        assert!(!wildcard_match("start*end", "0start12end", false));
        assert!(!wildcard_match("start*end", "startenx", false));
        assert!(wildcard_match("prefix*", "prefix", false));
        assert!(!wildcard_match("prefix*", "bla.prefix", false));
        assert!(!wildcard_match("abab*ab", "abab", false));
        assert!(wildcard_match("X-Amz-*", "x-amz-date", true));
        assert!(!wildcard_match("Origin", "origin", false));
    }

    #[test]
    fn the_first_rule_allowing_everything_answers() {
        let cfg = CorsConfig {
            rules: vec![
                CorsRule {
                    allowed_methods: vec!["GET".into()],
                    allowed_origins: vec!["*".into()],
                    expose_headers: vec!["x-amz-meta-header1".into()],
                    ..CorsRule::default()
                },
                CorsRule {
                    allowed_methods: vec!["PUT".into()],
                    allowed_origins: vec!["*.put".into()],
                    allowed_headers: vec!["x-amz-*".into()],
                    ..CorsRule::default()
                },
            ],
        };
        let (r, allow) = find_rule(&cfg, "a.test", "GET", &[]).unwrap();
        assert_eq!(
            (allow.as_str(), r.allowed_methods[0].as_str()),
            ("*", "GET")
        );
        // A header no rule allows fails the whole request.
        assert!(find_rule(&cfg, "a.test", "GET", &["x-amz-meta-header2".into()]).is_none());
        let (_, allow) = find_rule(&cfg, "foo.put", "PUT", &["x-amz-date".into()]).unwrap();
        assert_eq!(allow, "foo.put");
        assert!(find_rule(&cfg, "foo.put", "DELETE", &[]).is_none());
    }

    #[test]
    fn the_bucket_comes_from_the_path_or_the_host() {
        let path = Request::builder()
            .uri("/my-bucket/some/key")
            .header("host", "127.0.0.1:9000")
            .body(())
            .unwrap();
        assert_eq!(request_bucket(&path).as_deref(), Some("my-bucket"));
        let vhost = Request::builder()
            .uri("/some/key")
            .header("host", "site.localhost:9000")
            .body(())
            .unwrap();
        assert_eq!(request_bucket(&vhost).as_deref(), Some("site"));
        let root = Request::builder()
            .uri("/")
            .header("host", "127.0.0.1:9000")
            .body(())
            .unwrap();
        assert_eq!(request_bucket(&root), None);
    }
}
