//! One streamed PUT to an S3 backend: a body of known length goes out as it arrives, in one
//! request. object_store's PUT needs the whole body in memory, so a long body used to go as a
//! multipart upload of 5 MiB parts, which the backend then assembles (one more read and write
//! of every byte there) and bills as 2 + n requests instead of 1. The request is signed here
//! (SigV4): chunk by chunk (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) when the backend signs
//! payloads, with `UNSIGNED-PAYLOAD` otherwise.
//!
//! Nothing is recorded for the crash case: S3 stores a PUT only once its whole body arrived,
//! and a partial body left by a killed gateway is at the write's own path, which its intent
//! names (the pending reaper deletes it).

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hmac::{KeyInit as _, Mac as _};
use object_store::path::Path;
use sha2::{Digest as _, Sha256};

use crate::body::UploadError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Bytes per signed chunk (what AWS SDKs use): the memory a signed PUT holds besides the
/// pieces queued, and the unit the backend verifies.
const SIGNED_CHUNK: usize = 64 * 1024;
/// Body pieces queued between the client's body and the backend connection.
const PIECES_QUEUED: usize = 4;
const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const UNSIGNED: &str = "UNSIGNED-PAYLOAD";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// `;chunk-signature=` plus a hex signature and the two CRLFs framing a chunk.
const CHUNK_FRAME: u64 = 17 + 64 + 2 + 2;

/// What a streamed PUT to one S3 backend takes: its HTTP client, where the bucket is, and
/// the credentials to sign with.
pub(crate) struct SinglePut {
    client: reqwest::Client,
    /// `scheme://host[:port]` of the endpoint.
    origin: String,
    /// The Host header the client sends (no port when it is the scheme's default).
    host: String,
    /// The encoded path of the bucket: the endpoint's own path, then the bucket.
    bucket_path: String,
    region: String,
    key_id: String,
    secret: String,
    /// Chunk-signed payloads, or `UNSIGNED-PAYLOAD`.
    signed: bool,
    /// Bodies up to this length go as one streamed PUT; longer ones as a multipart upload.
    pub(crate) max: u64,
}

/// The settings of [`SinglePut::new`].
pub(crate) struct SinglePutConfig<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) bucket: &'a str,
    pub(crate) region: &'a str,
    pub(crate) key_id: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) signed: bool,
    pub(crate) max: u64,
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) read_timeout: std::time::Duration,
}

impl SinglePut {
    /// The streamed PUT of one backend; an endpoint that is not an `http(s)://` URL is an
    /// error. No network call is made.
    pub(crate) fn new(c: &SinglePutConfig<'_>) -> Result<SinglePut, String> {
        let url = reqwest::Url::parse(c.endpoint).map_err(|e| format!("endpoint: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("endpoint must be an http:// or https:// URL".into());
        }
        let host_name = url.host_str().ok_or("endpoint has no host")?;
        let host = match url.port() {
            Some(p) => format!("{host_name}:{p}"),
            None => host_name.to_owned(),
        };
        // reqwest is built without a default TLS provider: the process's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(c.connect_timeout)
            .read_timeout(c.read_timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(SinglePut {
            client,
            origin: format!("{}://{host}", url.scheme()),
            host,
            bucket_path: format!("{}/{}", url.path().trim_end_matches('/'), encode(c.bucket)),
            region: c.region.to_owned(),
            key_id: c.key_id.to_owned(),
            secret: c.secret.to_owned(),
            signed: c.signed,
            max: c.max,
        })
    }

    /// Sends `body`, which must be exactly `len` bytes, to `path` in one PUT. A body that
    /// fails, or is shorter or longer than `len`, ends the request before the backend has a
    /// whole body (a longer one may have reached it: the caller's intent covers the path
    /// either way). `meter` counts the request.
    pub(crate) async fn put<S>(
        &self,
        meter: &crate::usage::Meter,
        path: &Path,
        len: u64,
        body: S,
    ) -> Result<(), UploadError>
    where
        S: Stream<Item = Result<Bytes, s3s::StdError>> + Send,
    {
        let uri_path = format!("{}/{}", self.bucket_path, encode(path.as_ref()));
        let (stamp, scope, key) = self.scope();
        let mut headers: Vec<(&str, String)> = vec![
            ("host", self.host.clone()),
            (
                "x-amz-content-sha256",
                if self.signed { STREAMING } else { UNSIGNED }.to_owned(),
            ),
            ("x-amz-date", stamp.clone()),
        ];
        let wire_len = if self.signed {
            headers.push(("content-encoding", "aws-chunked".to_owned()));
            headers.push(("x-amz-decoded-content-length", len.to_string()));
            signed_length(len)
        } else {
            len
        };
        headers.sort();
        let signed_headers = headers
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(";");
        let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let payload = headers
            .iter()
            .find(|(n, _)| *n == "x-amz-content-sha256")
            .map(|(_, v)| v.as_str())
            .unwrap_or(UNSIGNED);
        let canonical =
            format!("PUT\n{uri_path}\n\n{canonical_headers}\n{signed_headers}\n{payload}");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let seed = hex::encode(hmac(&key, to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={seed}",
            self.key_id
        );

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PIECES_QUEUED);
        let outgoing = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut request = self
            .client
            .put(format!("{}{uri_path}", self.origin))
            .header(reqwest::header::CONTENT_LENGTH, wire_len)
            .header(reqwest::header::AUTHORIZATION, authorization);
        for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
            request = request.header(*name, value);
        }
        let request = request.body(reqwest::Body::wrap_stream(outgoing));
        meter.count(1, 0, i64::try_from(len).unwrap_or(i64::MAX));

        let chunker = self.signed.then(|| Chunker {
            key,
            stamp,
            scope,
            previous: seed,
            pieces: Vec::new(),
            held: 0,
        });
        let mut send = std::pin::pin!(send(request));
        let mut feed = std::pin::pin!(feed(body, len, tx, chunker));
        let fed = tokio::select! {
            sent = &mut send => {
                // An unsigned body can be whole at the backend before the client's body has
                // ended: the write still needs that end, at the announced length.
                sent?;
                return match feed.await {
                    Ok(()) => Ok(()),
                    Err(Fed::Body(e)) => Err(UploadError::Body(e)),
                    Err(Fed::Closed) => Err(backend_error("the backend answered before the whole body was sent")),
                    Err(Fed::Stalled) => Err(stalled()),
                };
            }
            fed = &mut feed => fed,
        };
        match fed {
            Ok(()) => send.await,
            // Dropping the request (and its connection) mid-body leaves the backend a short
            // body, which it does not store.
            Err(Fed::Body(e)) => Err(UploadError::Body(e)),
            // The request ended early: its answer says why.
            Err(Fed::Closed) => send
                .await
                .and(Err(backend_error("the backend closed the request"))),
            // Dropping the request closes its connection: nothing waits on the backend.
            Err(Fed::Stalled) => Err(stalled()),
        }
    }

    /// The request's timestamp, credential scope and signing key.
    fn scope(&self) -> (String, String, [u8; 32]) {
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let stamp = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let mut key = hmac(format!("AWS4{}", self.secret).as_bytes(), date.as_bytes());
        for part in [self.region.as_bytes(), b"s3", b"aws4_request"] {
            key = hmac(&key, part);
        }
        (stamp, scope, key)
    }
}

/// How much of an error answer's body is read into its message.
const ERROR_BODY_MAX: usize = 1024;

/// Sends the request and reads its answer: success, or the backend's error. A failed request
/// keeps reqwest's error (and its cause) as the source, without the URL (it names the key).
async fn send(request: reqwest::RequestBuilder) -> Result<(), UploadError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| backend_error(e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // At most ERROR_BODY_MAX bytes of it: an error answer is not trusted to be short.
    let mut text = Vec::new();
    while text.len() < ERROR_BODY_MAX {
        match response.chunk().await {
            Ok(Some(b)) => text.extend_from_slice(&b[..b.len().min(ERROR_BODY_MAX - text.len())]),
            _ => break,
        }
    }
    Err(backend_error(format!(
        "PUT answered {status}: {}",
        String::from_utf8_lossy(&text)
    )))
}

fn backend_error(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> UploadError {
    UploadError::Backend(object_store::Error::Generic {
        store: "S3",
        source: source.into(),
    })
}

fn stalled() -> UploadError {
    backend_error(format!(
        "the backend took no body bytes for {} s",
        crate::backends::BACKEND_READ_TIMEOUT.as_secs()
    ))
}

/// Why feeding the body stopped.
enum Fed {
    /// The client's body failed or had the wrong length.
    Body(s3s::StdError),
    /// The request ended (its answer tells why).
    Closed,
    /// The backend took no bytes for [`crate::backends::BACKEND_READ_TIMEOUT`].
    Stalled,
}

/// Feeds the body to the request, framed and signed when `chunker` is set, until the client's
/// body ends at `len` bytes.
async fn feed<S>(
    body: S,
    len: u64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    mut chunker: Option<Chunker>,
) -> Result<(), Fed>
where
    S: Stream<Item = Result<Bytes, s3s::StdError>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut size: u64 = 0;
    // A backend that stops reading the body must not hold the write (and its intent's
    // heartbeat) for ever: the same bound as a backend that stops answering.
    let queue = |b: Bytes| {
        let tx = tx.clone();
        async move {
            match tokio::time::timeout(crate::backends::BACKEND_READ_TIMEOUT, tx.send(Ok(b))).await
            {
                Ok(sent) => sent.map_err(|_| Fed::Closed),
                Err(_) => Err(Fed::Stalled),
            }
        }
    };
    while let Some(item) = body.next().await {
        let b = item.map_err(Fed::Body)?;
        size += b.len() as u64;
        if size > len {
            return Err(Fed::Body(length_error()));
        }
        match chunker.as_mut() {
            None => queue(b).await?,
            Some(c) => {
                c.push(b);
                while c.held >= SIGNED_CHUNK {
                    for piece in c.frame(SIGNED_CHUNK) {
                        queue(piece).await?;
                    }
                }
            }
        }
    }
    if size != len {
        return Err(Fed::Body(length_error()));
    }
    if let Some(mut c) = chunker {
        if c.held > 0 {
            let rest = c.held;
            for piece in c.frame(rest) {
                queue(piece).await?;
            }
        }
        for piece in c.frame(0) {
            queue(piece).await?;
        }
    }
    Ok(())
}

fn length_error() -> s3s::StdError {
    Box::new(s3s::s3_error!(
        IncompleteBody,
        "body length differs from Content-Length"
    ))
}

/// Cuts the body into signed `aws-chunked` chunks, each signature chained to the one before.
struct Chunker {
    key: [u8; 32],
    stamp: String,
    scope: String,
    previous: String,
    pieces: Vec<Bytes>,
    held: usize,
}

impl Chunker {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.held += b.len();
            self.pieces.push(b);
        }
    }

    /// The next chunk of `n` held bytes (0: the final, empty chunk) as the pieces to send:
    /// its header, its data as received (no copy), its closing CRLF.
    fn frame(&mut self, n: usize) -> Vec<Bytes> {
        let mut data = Vec::new();
        let mut want = n.min(self.held);
        self.held -= want;
        let mut rest = std::mem::take(&mut self.pieces).into_iter();
        while want > 0 {
            let Some(mut piece) = rest.next() else { break };
            if piece.len() > want {
                let tail = piece.split_off(want);
                self.pieces.push(tail);
            }
            want -= piece.len();
            data.push(piece);
        }
        self.pieces.extend(rest);
        let mut hash = Sha256::new();
        for d in &data {
            hash.update(d);
        }
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.stamp,
            self.scope,
            self.previous,
            hex::encode(hash.finalize())
        );
        self.previous = hex::encode(hmac(&self.key, to_sign.as_bytes()));
        let mut out = Vec::with_capacity(data.len() + 2);
        out.push(Bytes::from(format!(
            "{n:x};chunk-signature={}\r\n",
            self.previous
        )));
        out.extend(data);
        out.push(Bytes::from_static(b"\r\n"));
        out
    }
}

/// The length on the wire of a `len`-byte body sent as signed chunks of [`SIGNED_CHUNK`].
fn signed_length(len: u64) -> u64 {
    let frame = |n: u64| format!("{n:x}").len() as u64 + CHUNK_FRAME + n;
    let chunk = SIGNED_CHUNK as u64;
    let (full, rest) = (len / chunk, len % chunk);
    full * frame(chunk) + if rest > 0 { frame(rest) } else { 0 } + frame(0)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// A path or bucket as object_store writes it into its URLs (so both reach the same key) and
/// as SigV4 signs an S3 request's path (encoded once).
fn encode(s: &str) -> String {
    crate::keys::uri_encode(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_length_counts_every_frame() {
        // Frames built by the chunker must add up to the Content-Length announced.
        for len in [0_u64, 1, 65_535, 65_536, 65_537, 3 * 65_536, 1_000_000] {
            let mut c = Chunker {
                key: [7; 32],
                stamp: "20261208T000000Z".into(),
                scope: "20261208/us-east-1/s3/aws4_request".into(),
                previous: "seed".into(),
                pieces: Vec::new(),
                held: 0,
            };
            let mut wire = 0_u64;
            let mut left = len as usize;
            while left > 0 {
                let n = left.min(10_000);
                c.push(Bytes::from(vec![1_u8; n]));
                left -= n;
                while c.held >= SIGNED_CHUNK {
                    wire += c
                        .frame(SIGNED_CHUNK)
                        .iter()
                        .map(|b| b.len() as u64)
                        .sum::<u64>();
                }
            }
            if c.held > 0 {
                let rest = c.held;
                wire += c.frame(rest).iter().map(|b| b.len() as u64).sum::<u64>();
            }
            wire += c.frame(0).iter().map(|b| b.len() as u64).sum::<u64>();
            assert_eq!(wire, signed_length(len), "len {len}");
        }
    }

    #[test]
    fn chunk_signatures_chain() {
        // The same data framed twice from the same seed signs the same; the signature of a
        // chunk depends on the one before it.
        let mk = |seed: &str| Chunker {
            key: [1; 32],
            stamp: "20261208T000000Z".into(),
            scope: "20261208/us-east-1/s3/aws4_request".into(),
            previous: seed.into(),
            pieces: vec![Bytes::from_static(b"abc")],
            held: 3,
        };
        let (mut a, mut b, mut other) = (mk("s"), mk("s"), mk("t"));
        assert_eq!(a.frame(3)[0], b.frame(3)[0]);
        assert_ne!(mk("s").frame(3)[0], other.frame(3)[0]);
        assert_eq!(a.frame(0)[0], b.frame(0)[0]);
        assert!(a.frame(0)[0].starts_with(b"0;chunk-signature="));
    }

    #[test]
    fn paths_encode_as_object_store_does() {
        assert_eq!(encode("a/b c/%2E"), "a/b%20c/%252E");
        assert_eq!(encode("k~_-.z"), "k~_-.z");
    }
}
