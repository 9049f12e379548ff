//! A PUT sent with `Transfer-Encoding: chunked` and no length (no `Content-Length`, no
//! `x-amz-decoded-content-length`): s3s needs the length to verify a signed payload hash and
//! refuses the request with MissingContentLength. Such a body, when small, is read here
//! first (within what admission already charged a PUT of unknown length) and handed on with
//! its length; a larger one keeps the 411 (the length is what lets a write be admitted
//! against quotas before its bytes move).

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, Request, Response, StatusCode};

/// The most a chunked PUT without a length may carry.
pub(crate) const MAX_UNFRAMED_BYTES: usize = 1024 * 1024;

/// Whether `req` is a PUT whose body length nothing announces.
fn unframed_put<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    req.method() == Method::PUT
        && !h.contains_key(hyper::header::CONTENT_LENGTH)
        && !h.contains_key("x-amz-decoded-content-length")
        && h.get(hyper::header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// `req` with its length known when it is an unframed PUT of at most
/// [`MAX_UNFRAMED_BYTES`]; the answer to send instead when it is larger or its body fails.
pub(crate) async fn frame_chunked_put(
    req: Request<s3s::Body>,
    request_id: &str,
) -> Result<Request<s3s::Body>, Response<s3s::Body>> {
    if !unframed_put(&req) {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_UNFRAMED_BYTES);
    let bytes: Bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return Err(if too_large {
                crate::admission::error_response(
                    StatusCode::LENGTH_REQUIRED,
                    "MissingContentLength",
                    "You must provide the Content-Length HTTP header.",
                    request_id,
                )
            } else {
                crate::admission::error_response(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "the request body ended early",
                    request_id,
                )
            });
        }
    };
    parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(hyper::header::CONTENT_LENGTH, bytes.len().into());
    Ok(Request::from_parts(parts, s3s::Body::from(bytes)))
}

/// Whether `req` expects `100 Continue` but has an empty body. hyper (1.12, `proto/h1/conn.rs`)
/// skips the interim response then, as RFC 9110 allows, and answers at once; botocore
/// (1.43, the AWS CLI's `s3 sync`) reads that right but misparses the next response on the
/// same connection and waits for its read timeout. S3 itself always sends the `100`. hyper has
/// no way to send an interim response from a service, so such an answer closes its
/// connection instead ([`close_after`]): the client's next request opens a new one.
pub(crate) fn expects_continue_without_body<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    // No length and no chunking is an empty body too (RFC 9112 §6.3).
    let empty = match h.get(hyper::header::CONTENT_LENGTH) {
        Some(v) => v.as_bytes() == b"0",
        None => !h.contains_key(hyper::header::TRANSFER_ENCODING),
    };
    empty
        && h.get(hyper::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Marks `resp` as the last on its connection (see [`expects_continue_without_body`]).
pub(crate) fn close_after<B>(resp: &mut Response<B>) {
    resp.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked_put(body: Vec<u8>) -> Request<s3s::Body> {
        Request::put("/b/k")
            .header("transfer-encoding", "chunked")
            .body(s3s::Body::from(Bytes::from(body)))
            .unwrap()
    }

    #[test]
    fn only_empty_bodies_expecting_continue_close() {
        let req = |len: &str| {
            Request::put("/b/k")
                .header("expect", "100-Continue")
                .header("content-length", len)
                .body(())
                .unwrap()
        };
        assert!(expects_continue_without_body(&req("0")));
        assert!(!expects_continue_without_body(&req("3")));
        let plain = Request::put("/b/k")
            .header("content-length", "0")
            .body(())
            .unwrap();
        assert!(!expects_continue_without_body(&plain));
        let mut resp = Response::new(());
        close_after(&mut resp);
        assert_eq!(resp.headers()[hyper::header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn small_unframed_puts_get_their_length_and_large_ones_411() {
        let r = frame_chunked_put(chunked_put(b"bar".to_vec()), "id")
            .await
            .unwrap();
        assert_eq!(r.headers()[hyper::header::CONTENT_LENGTH], "3");
        assert!(!r.headers().contains_key(hyper::header::TRANSFER_ENCODING));
        assert_eq!(r.body().bytes().unwrap().as_ref(), b"bar");

        let big = frame_chunked_put(chunked_put(vec![7; MAX_UNFRAMED_BYTES + 1]), "id")
            .await
            .unwrap_err();
        assert_eq!(big.status(), StatusCode::LENGTH_REQUIRED);

        // A framed PUT passes untouched.
        let framed = Request::put("/b/k")
            .header("content-length", "3")
            .body(s3s::Body::from(Bytes::from_static(b"bar")))
            .unwrap();
        let r = frame_chunked_put(framed, "id").await.unwrap();
        assert_eq!(r.headers()[hyper::header::CONTENT_LENGTH], "3");
    }
}
