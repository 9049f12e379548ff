//! Answers S3 gives before an operation runs, which s3s gives differently or not at all: an
//! empty `Content-MD5`, a path S3 cannot parse, SigV4 signed with `Date` instead of
//! `X-Amz-Date`, and the `RequestId` element of error bodies.

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::admission::error_response;

/// Checks run on every S3 request before s3s sees it; `Some` is the refusal to send. May add
/// `x-amz-date` (see [`date_only_sigv4`]).
pub(crate) fn checks<B>(req: &mut Request<B>, id: &str) -> Option<Response<s3s::Body>> {
    let md5 = req.headers().get("content-md5");
    if md5.is_some_and(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace)) {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
            id,
        ));
    }
    if !parsable_path(req.uri().path()) {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "Couldn't parse the specified URI.",
            id,
        ));
    }
    date_only_sigv4(req);
    None
}

/// S3 refuses a path that is not UTF-8 once percent-decoded, or that holds a C1 control
/// character (U+0080..=U+009F): "Couldn't parse the specified URI". Such a key is refused by
/// every operation alike, so none is ever stored.
fn parsable_path(path: &str) -> bool {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => !s.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)),
        Err(_) => false,
    }
}

/// SigV4 lets a client date its request with the `Date` header instead of `X-Amz-Date`
/// (botocore does when a `Date` header is present); s3s reads only `X-Amz-Date`. When a
/// header-signed SigV4 request has no `X-Amz-Date`, the same instant is copied from `Date` in
/// SigV4's format. Nothing is weakened: the string to sign still carries that instant, `Date`
/// stays among the signed headers, and s3s still checks the clock skew.
fn date_only_sigv4<B>(req: &mut Request<B>) {
    let h = req.headers();
    let sigv4 = h
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-HMAC-SHA256 "));
    if !sigv4 || h.contains_key("x-amz-date") {
        return;
    }
    let Some(date) = h.get(hyper::header::DATE).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(stamp) = sigv4_stamp(date) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&stamp) {
        req.headers_mut()
            .insert(HeaderName::from_static("x-amz-date"), v);
    }
}

/// An HTTP date (RFC 1123 / RFC 2822) as SigV4's `YYYYMMDD'T'HHMMSS'Z'`, in UTC.
fn sigv4_stamp(http_date: &str) -> Option<String> {
    use time::format_description::well_known::Rfc2822;
    let t = time::OffsetDateTime::parse(http_date.trim(), &Rfc2822).ok()?;
    let t = t.to_offset(time::UtcOffset::UTC);
    Some(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Puts `<RequestId>` (the `x-amz-request-id` of the answer) into an s3s error body that has
/// none, as S3's error documents carry it.
pub(crate) fn with_request_id(mut r: Response<s3s::Body>, id: &str) -> Response<s3s::Body> {
    if r.status().as_u16() < 400 {
        return r;
    }
    let Some(bytes) = r.body().bytes() else {
        return r;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return r;
    };
    if text.contains("<RequestId>") {
        return r;
    }
    let Some(at) = text.rfind("</Error>") else {
        return r;
    };
    let body = format!("{}<RequestId>{id}</RequestId>{}", &text[..at], &text[at..]);
    if let Ok(len) = HeaderValue::from_str(&body.len().to_string()) {
        r.headers_mut().insert(hyper::header::CONTENT_LENGTH, len);
    }
    *r.body_mut() = s3s::Body::from(body);
    r
}

/// Whether `req` is GetObjectAttributes (`GET ...?attributes`).
pub(crate) fn is_get_object_attributes<B>(req: &hyper::Request<B>) -> bool {
    req.method() == hyper::Method::GET
        && req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|p| p == "attributes" || p.starts_with("attributes="))
        })
}

/// GetObjectAttributes names the ETag without the quotes every other answer carries (S3's
/// documented shape, which SDKs compare as is); s3s writes it quoted like the rest.
pub(crate) fn unquoted_attributes_etag(mut r: Response<s3s::Body>) -> Response<s3s::Body> {
    if !r.status().is_success() {
        return r;
    }
    let Some(bytes) = r.body().bytes() else {
        return r;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return r;
    };
    let body = unquote_etag_element(text);
    if body == text {
        return r;
    }
    if let Ok(len) = HeaderValue::from_str(&body.len().to_string()) {
        r.headers_mut().insert(hyper::header::CONTENT_LENGTH, len);
    }
    *r.body_mut() = s3s::Body::from(body);
    r
}

/// `<ETag>"x"</ETag>` (quotes raw or as `&quot;`) becomes `<ETag>x</ETag>`.
fn unquote_etag_element(text: &str) -> String {
    let (open, close) = ("<ETag>", "</ETag>");
    let (Some(a), Some(b)) = (text.find(open), text.find(close)) else {
        return text.to_owned();
    };
    let inner = &text[a + open.len()..b];
    let bare = ["&quot;", "\""]
        .iter()
        .find_map(|q| inner.strip_prefix(q).and_then(|i| i.strip_suffix(q)))
        .unwrap_or(inner);
    format!("{}{bare}{}", &text[..a + open.len()], &text[b..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_etag_loses_its_quotes_only() {
        let q = "<A><ETag>&quot;abc&quot;</ETag><ObjectSize>3</ObjectSize></A>";
        assert_eq!(
            unquote_etag_element(q),
            "<A><ETag>abc</ETag><ObjectSize>3</ObjectSize></A>"
        );
        let raw = "<A><ETag>\"abc-2\"</ETag></A>";
        assert_eq!(unquote_etag_element(raw), "<A><ETag>abc-2</ETag></A>");
        let bare = "<A><ETag>abc</ETag></A>";
        assert_eq!(unquote_etag_element(bare), bare);
        assert_eq!(unquote_etag_element("<A/>"), "<A/>");
    }

    #[test]
    fn paths_s3_cannot_parse() {
        assert!(parsable_path("/b/plain/key%20with%20space"));
        assert!(parsable_path("/b/%C3%A9t%C3%A9"));
        assert!(!parsable_path("/b/%C2%AE%C2%8A-"));
        assert!(!parsable_path("/b/%FF"));
    }

    #[test]
    fn http_dates_become_sigv4_stamps() {
        assert_eq!(
            sigv4_stamp("Mon, 07 Dec 2026 11:02:03 GMT").as_deref(),
            Some("20261207T110203Z")
        );
        assert_eq!(
            sigv4_stamp("Mon, 07 Dec 2026 12:02:03 +0100").as_deref(),
            Some("20261207T110203Z")
        );
        assert_eq!(sigv4_stamp("yesterday"), None);
    }

    #[test]
    fn date_is_copied_only_for_header_signed_sigv4_without_amz_date() {
        let mut req = Request::builder()
            .header("authorization", "AWS4-HMAC-SHA256 Credential=x")
            .header("date", "Mon, 07 Dec 2026 11:02:03 GMT")
            .body(())
            .unwrap();
        date_only_sigv4(&mut req);
        assert_eq!(req.headers()["x-amz-date"], "20261207T110203Z");
        let mut v2 = Request::builder()
            .header("authorization", "AWS a:b")
            .header("date", "Mon, 07 Dec 2026 11:02:03 GMT")
            .body(())
            .unwrap();
        date_only_sigv4(&mut v2);
        assert!(!v2.headers().contains_key("x-amz-date"));
    }

    #[test]
    fn error_bodies_get_the_request_id() {
        let mut r = Response::new(s3s::Body::from(
            "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>".to_owned(),
        ));
        *r.status_mut() = StatusCode::NOT_FOUND;
        let r = with_request_id(r, "ABC");
        let b = r.body().bytes().unwrap();
        assert!(
            std::str::from_utf8(&b)
                .unwrap()
                .ends_with("<RequestId>ABC</RequestId></Error>")
        );
    }
}
