//! Plain HTTP requests to the gateway, SigV4-signed with object_store's own signer
//! ([`AwsAuthorizer`]), for answers the object_store client does not surface: exact status
//! codes, error codes, v1 listings, multipart listings and deliberately bad signatures.

use bytes::Bytes;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;

use crate::rig::{AK, REGION, SK};

/// One answer of the gateway.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub(crate) status: u16,
    /// Response headers.
    pub(crate) headers: reqwest::header::HeaderMap,
    /// Response body.
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as text (XML answers).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Header `name` as text, if present.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The S3 error code of an error answer (`<Code>…</Code>`).
    pub(crate) fn code(&self) -> String {
        xml_values(&self.text(), "Code")
            .into_iter()
            .next()
            .unwrap_or_default()
    }
}

/// How a request is authenticated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Auth<'a> {
    /// Signed with the rig's client credentials.
    Client,
    /// Signed with these credentials.
    As(&'a str, &'a str),
    /// Not signed at all.
    Anonymous,
}

/// A signed-request client for one gateway endpoint.
pub(crate) struct Raw {
    http: reqwest::Client,
    endpoint: String,
}

impl Raw {
    /// A client for `endpoint` (`http://127.0.0.1:PORT`).
    pub(crate) fn new(endpoint: &str) -> Raw {
        Raw {
            http: reqwest::Client::builder().build().expect("reqwest client"),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends `method` to `target` (an already-encoded path and query, e.g.
    /// `/photos/a%20b?uploads`), signed with the client credentials.
    pub(crate) async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.send_auth(Auth::Client, method, target, headers, body)
            .await
    }

    /// As [`Raw::send`], authenticated as `auth` says.
    pub(crate) async fn send_auth(
        &self,
        auth: Auth<'_>,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let body: Bytes = body.into();
        self.exchange(auth, method, target, headers, body.clone(), body)
            .await
    }

    /// A PUT signed for `signed` (its SHA-256 in `x-amz-content-sha256`) that sends `sent`:
    /// what a body corrupted in flight looks like to the gateway.
    pub(crate) async fn send_tampered(&self, target: &str, signed: Bytes, sent: Bytes) -> Reply {
        self.exchange(Auth::Client, "PUT", target, &[], signed, sent)
            .await
    }

    /// The headers of `method` `target` (with `headers`) signed with the client credentials
    /// and `UNSIGNED-PAYLOAD`, for a request the test writes on a socket itself (a body cut
    /// short). The Host header to send is the endpoint's `host:port`.
    pub(crate) fn unsigned_headers(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let url = format!("{}{target}", self.endpoint);
        let mut builder = hyper::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut request = builder.body(HttpRequestBody::empty()).expect("request");
        let credential = AwsCredential {
            key_id: AK.to_owned(),
            secret_key: SK.to_owned(),
            token: None,
        };
        AwsAuthorizer::new(&credential, "s3", REGION)
            .with_sign_payload(false)
            .try_authorize(&mut request, None)
            .expect("sign");
        request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    }

    async fn exchange(
        &self,
        auth: Auth<'_>,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        signed: Bytes,
        body: Bytes,
    ) -> Reply {
        let url = format!("{}{target}", self.endpoint);
        let mut builder = hyper::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut request = builder
            .body(HttpRequestBody::from(signed))
            .expect("request");
        let (ak, sk) = match auth {
            Auth::Client => (AK, SK),
            Auth::As(ak, sk) => (ak, sk),
            Auth::Anonymous => ("", ""),
        };
        if !ak.is_empty() {
            let credential = AwsCredential {
                key_id: ak.to_owned(),
                secret_key: sk.to_owned(),
                token: None,
            };
            AwsAuthorizer::new(&credential, "s3", REGION)
                .try_authorize(&mut request, None)
                .expect("sign");
        }
        let mut out = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                &url,
            )
            .body(body);
        for (k, v) in request.headers() {
            out = out.header(k.as_str(), v.as_bytes());
        }
        let resp = out
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("response body"),
        }
    }
}

/// Percent-encodes an S3 key for a request path: every byte but the unreserved ones and `/`.
pub(crate) fn encode_key(key: &str) -> String {
    encode(key, true)
}

/// Percent-encodes a query value: every byte but the unreserved ones.
pub(crate) fn encode_query(value: &str) -> String {
    encode(value, false)
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every `<tag>value</tag>` of `xml`, in document order, with XML entities decoded.
pub(crate) fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    xml_values_raw(xml, tag)
        .iter()
        .map(|v| unescape(v))
        .collect()
}

/// Values of `tag` inside each `<outer>` block, in document order.
pub(crate) fn xml_nested(xml: &str, outer: &str, tag: &str) -> Vec<String> {
    xml_values_raw(xml, outer)
        .iter()
        .flat_map(|block| xml_values(block, tag))
        .collect()
}

fn xml_values_raw(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
