//! POST Object (browser form uploads).
//!
//! s3s parses the `multipart/form-data` body, checks the form's signature (SigV4
//! `x-amz-signature`/`x-amz-credential`/`x-amz-date`/`x-amz-algorithm`, or SigV2
//! `AWSAccessKeyId`/`signature`), the policy's expiration and its conditions (`eq`,
//! `starts-with`, `content-length-range`; every form field must be named by one), then calls
//! `post_object`, whose default turns the form into a PutObject: the object goes through
//! [`GatewayS3::write_object`] like any PUT (route by quota, intent, stream, verify, commit).
//! `success_action_status` (200, 201 with its XML, 204 otherwise) and
//! `success_action_redirect` (303 to the URL with bucket, key and ETag) are s3s's.
//!
//! What this module adds:
//! - **A memory bound.** s3s 0.14.1 holds the form's file part in memory before the policy's
//!   `content-length-range` is checked (it needs the size first), up to its
//!   `post_object_max_file_size`, 5 GiB by default. The gateway lowers that to
//!   [`MAX_FILE_BYTES`], and admission charges a form upload its length (at most that) against
//!   the body budget like any buffered write. Larger browser uploads answer `EntityTooLarge`;
//!   multipart uploads are the way for those.
//! - **S3's status for a failed policy condition**: 403 AccessDenied, where s3s answers 400
//!   InvalidPolicyDocument ([`policy_answer`]). A policy that does not parse, and a form with
//!   a policy but no signature, stay 400; the first [`HEAD_BYTES`] of a form are kept as they
//!   stream by to tell which ([`record_head`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::{Method, Request, Response, StatusCode};

/// The largest file part a POST Object form may carry (see the module docs).
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// s3s's configuration with the POST Object bound.
pub(crate) fn s3s_config() -> s3s::config::S3Config {
    let mut c = s3s::config::S3Config::default();
    c.post_object_max_file_size = MAX_FILE_BYTES;
    c
}

/// Whether `req` is a POST Object form upload (a POST whose body is a form; every other
/// POST of S3 — multipart create/complete, DeleteObjects, … — carries XML or nothing).
pub(crate) fn is_form_upload<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST
        && req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            })
}

/// How much of a form's beginning is kept to tell whether it was signed: its fields come
/// before the file, and field values are short.
const HEAD_BYTES: usize = 64 * 1024;

/// The first bytes of a form upload's body, as it streams by.
#[derive(Clone, Default)]
pub(crate) struct FormHead(Arc<Mutex<Vec<u8>>>);

impl FormHead {
    /// Whether the form's fields (before its file part) include a signature: S3 answers an
    /// unsigned form's failed conditions 400, a signed one's 403.
    fn signed(&self) -> bool {
        let head = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let fields = text.split("name=\"file\"").next().unwrap_or_default();
        fields.contains("name=\"signature\"") || fields.contains("name=\"x-amz-signature\"")
    }
}

impl FormHead {
    /// The text of form field `name` among the recorded fields, if there.
    fn field(&self, name: &str) -> Option<String> {
        let head = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&head);
        let marker = format!("name=\"{name}\"");
        let lower = text.to_ascii_lowercase();
        let at = lower.find(&marker.to_ascii_lowercase())?;
        let rest = &text[at..];
        let (_, value) = rest.split_once("\r\n\r\n")?;
        let (value, _) = value.split_once("\r\n--")?;
        Some(value.to_owned())
    }

    /// S3 takes a policy's expiration only as ISO 8601 in UTC (`2026-12-07T12:00:00Z`, or
    /// with fractional seconds); s3s parses more forms, so the form's own text is checked.
    pub(crate) fn check_expiration(&self) -> s3s::S3Result<()> {
        use base64::Engine as _;
        let Some(policy) = self.field("policy") else {
            return Ok(());
        };
        let expiration = base64::engine::general_purpose::STANDARD
            .decode(policy.trim())
            .ok()
            .and_then(|j| serde_json::from_slice::<serde_json::Value>(&j).ok())
            .and_then(|v| {
                v.get("expiration")
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
            });
        match expiration {
            Some(e) if !iso8601_utc(&e) => Err(s3s::s3_error!(
                InvalidPolicyDocument,
                "Invalid Policy: Invalid 'expiration' value: '{e}'"
            )),
            _ => Ok(()),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
fn iso8601_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let base = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19);
    let tail = &s.get(19..).unwrap_or_default();
    let tail_ok = match tail.strip_prefix('.') {
        Some(frac) => frac
            .strip_suffix('Z')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())),
        None => *tail == "Z",
    };
    base && tail_ok
}

/// A request body that copies its first [`HEAD_BYTES`] into a [`FormHead`].
struct Recorded {
    inner: s3s::Body,
    head: FormHead,
}

impl hyper::body::Body for Recorded {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &r
            && let Some(data) = frame.data_ref()
        {
            let mut head = self.head.0.lock().unwrap_or_else(|e| e.into_inner());
            let room = HEAD_BYTES.saturating_sub(head.len()).min(data.len());
            head.extend_from_slice(&data[..room]);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `req` with its body's beginning recorded into the returned [`FormHead`].
pub(crate) fn record_head(req: Request<s3s::Body>) -> (Request<s3s::Body>, FormHead) {
    let head = FormHead::default();
    let h = head.clone();
    let mut req = req.map(|inner| s3s::Body::http_body(Recorded { inner, head: h }));
    // s3s hands the request's extensions to the operation: PutObject finds the form there.
    req.extensions_mut().insert(head.clone());
    (req, head)
}

/// The answer to a signed POST Object whose form failed a policy condition: S3's 403
/// AccessDenied instead of s3s's 400 InvalidPolicyDocument (same message). Other answers, and
/// those to unsigned forms, pass unchanged.
pub(crate) fn policy_answer(
    resp: Response<s3s::Body>,
    head: &FormHead,
    request_id: &str,
) -> Response<s3s::Body> {
    let resp = quote_redirect_etag(resp);
    if resp.status() != StatusCode::BAD_REQUEST || !head.signed() {
        return resp;
    }
    let Some(bytes) = resp.body().bytes() else {
        return resp;
    };
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("<Code>InvalidPolicyDocument</Code>") {
        return resp;
    }
    let message = text
        .split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map(|(m, _)| m)
        .unwrap_or_default();
    // s3s's condition failures; a policy that does not parse is a 400 at S3 too.
    let condition_failed =
        message.starts_with("Policy condition") || message.starts_with("Bucket in form field");
    if !condition_failed {
        return resp;
    }
    // The message is already XML-escaped text.
    crate::admission::error_response(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        &format!("Invalid according to Policy: {message}"),
        request_id,
    )
}

/// S3 puts the ETag into a `success_action_redirect` URL quoted, as its `ETag` header is
/// (`…&etag=%22<md5>%22`); s3s 0.14 appends it bare (`etag=<md5>`, last in the query).
fn quote_redirect_etag(mut resp: Response<s3s::Body>) -> Response<s3s::Body> {
    if resp.status() != StatusCode::SEE_OTHER {
        return resp;
    }
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok());
    let Some((url, etag)) = location.and_then(|l| l.rsplit_once("etag=")) else {
        return resp;
    };
    let after_separator = url.ends_with('&') || url.ends_with('?');
    if !after_separator || etag.is_empty() || etag.starts_with("%22") || etag.contains('&') {
        return resp;
    }
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("{url}etag=%22{etag}%22")) {
        resp.headers_mut().insert(hyper::header::LOCATION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_etag_is_quoted_once() {
        let redirect = |loc: &str| {
            let mut r = Response::new(s3s::Body::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            r.headers_mut()
                .insert(hyper::header::LOCATION, loc.parse().unwrap());
            quote_redirect_etag(r).headers()[hyper::header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let quoted = "http://h/p?bucket=b&key=k&etag=%22abc%22";
        assert_eq!(redirect("http://h/p?bucket=b&key=k&etag=abc"), quoted);
        assert_eq!(redirect(quoted), quoted);
        assert_eq!(redirect("http://h/p?x=1"), "http://h/p?x=1");
        assert_eq!(
            redirect("http://h/p?etag=abc&x=1"),
            "http://h/p?etag=abc&x=1"
        );
    }

    fn answer(status: StatusCode, xml: &str) -> Response<s3s::Body> {
        let mut r = Response::new(s3s::Body::from(xml.to_owned()));
        *r.status_mut() = status;
        r
    }

    #[test]
    fn failed_conditions_become_access_denied_and_bad_policies_stay_400() {
        let failed = answer(
            StatusCode::BAD_REQUEST,
            "<Error><Code>InvalidPolicyDocument</Code><Message>Policy condition 'eq' for field \
             'x-amz-meta-foo' failed: expected '', got 'bar&amp;'</Message></Error>",
        );
        let signed = FormHead::default();
        signed
            .0
            .lock()
            .unwrap()
            .extend_from_slice(b"Content-Disposition: form-data; name=\"Signature\"\r\n\r\nabc");
        let unsigned = FormHead::default();
        let again = answer(
            StatusCode::BAD_REQUEST,
            "<Error><Code>InvalidPolicyDocument</Code><Message>Policy condition x</Message></Error>",
        );
        assert_eq!(
            policy_answer(again, &unsigned, "id0").status(),
            StatusCode::BAD_REQUEST
        );
        let r = policy_answer(failed, &signed, "id1");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body = String::from_utf8(r.body().bytes().unwrap().to_vec()).unwrap();
        assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
        assert!(body.contains("got 'bar&amp;'"), "{body}");

        let unparsable = answer(
            StatusCode::BAD_REQUEST,
            "<Error><Code>InvalidPolicyDocument</Code><Message>failed to parse POST policy\
             </Message></Error>",
        );
        assert_eq!(
            policy_answer(unparsable, &signed, "id2").status(),
            StatusCode::BAD_REQUEST
        );
        let other = answer(
            StatusCode::BAD_REQUEST,
            "<Error><Code>InvalidArgument</Code><Message>Policy condition</Message></Error>",
        );
        assert_eq!(
            policy_answer(other, &signed, "id3").status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn expirations_must_be_iso8601_utc() {
        for ok in ["2026-12-07T12:00:00Z", "2026-12-07T12:00:00.123Z"] {
            assert!(iso8601_utc(ok), "{ok}");
        }
        for bad in [
            "2026-12-07 12:00:00.123456+00:00",
            "2026-12-07T12:00:00",
            "2026-12-07T12:00:00.Z",
            "2026-12-07T12:00:00+01:00",
            "",
        ] {
            assert!(!iso8601_utc(bad), "{bad}");
        }
    }

    #[test]
    fn only_form_posts_are_form_uploads() {
        let form = Request::post("/b")
            .header("content-type", "multipart/form-data; boundary=x")
            .body(())
            .unwrap();
        assert!(is_form_upload(&form));
        let complete = Request::post("/b/k?uploadId=1")
            .header("content-type", "application/xml")
            .body(())
            .unwrap();
        assert!(!is_form_upload(&complete));
        let put = Request::put("/b/k")
            .header("content-type", "multipart/form-data; boundary=x")
            .body(())
            .unwrap();
        assert!(!is_form_upload(&put));
    }
}
