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
//!   InvalidPolicyDocument ([`policy_answer`]). A policy that does not parse stays 400.

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

/// The answer to a POST Object whose form failed a policy condition: S3's 403 AccessDenied
/// instead of s3s's 400 InvalidPolicyDocument (same message). Other answers pass unchanged.
pub(crate) fn policy_answer(resp: Response<s3s::Body>, request_id: &str) -> Response<s3s::Body> {
    if resp.status() != StatusCode::BAD_REQUEST {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = policy_answer(failed, "id1");
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
            policy_answer(unparsable, "id2").status(),
            StatusCode::BAD_REQUEST
        );
        let other = answer(
            StatusCode::BAD_REQUEST,
            "<Error><Code>InvalidArgument</Code><Message>Policy condition</Message></Error>",
        );
        assert_eq!(policy_answer(other, "id3").status(), StatusCode::BAD_REQUEST);
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
