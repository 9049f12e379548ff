//! Admission control: how many requests run at once (reads and writes counted apart), how
//! many body bytes in-flight writes may buffer together, and how long a request body may
//! stall. Everything past a limit is answered `503 SlowDown` with `Retry-After`, the answer
//! S3 clients already back off on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::ServerConfig;

/// Bytes a write is charged beyond its buffered chunks: hyper's frames and the hashers.
const FRAME_SLACK: u64 = 64 * 1024;

/// The process-wide limits every request passes through.
pub(crate) struct Admission {
    reads: Arc<Semaphore>,
    max_reads: usize,
    writes: Arc<Semaphore>,
    max_writes: usize,
    /// The body budget, in KiB (semaphore permits are counted in `u32` per acquisition).
    budget: Arc<Semaphore>,
    budget_kib: u64,
    budget_wait: Duration,
    /// The largest upload chunk of any backend: what one streamed write buffers per chunk.
    chunk: u64,
    retry_after: u64,
}

/// What an admitted request holds until its response body is dropped.
#[derive(Default)]
pub(crate) struct Ticket {
    _slot: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every read or write slot is taken.
    Busy,
    /// The body budget stayed exhausted for the whole wait.
    Memory,
}

impl Admission {
    /// Limits from `[server]`; `chunk` is the largest backend upload chunk.
    pub(crate) fn new(c: &ServerConfig, chunk: usize) -> Self {
        let budget_kib = c.body_buffer_bytes / 1024;
        Admission {
            reads: Arc::new(Semaphore::new(c.max_concurrent_reads)),
            max_reads: c.max_concurrent_reads,
            writes: Arc::new(Semaphore::new(c.max_concurrent_writes)),
            max_writes: c.max_concurrent_writes,
            budget: Arc::new(Semaphore::new(
                usize::try_from(budget_kib).unwrap_or(Semaphore::MAX_PERMITS),
            )),
            budget_kib,
            budget_wait: Duration::from_millis(c.body_buffer_wait_ms),
            chunk: chunk as u64,
            retry_after: c.retry_after_secs,
        }
    }

    /// Takes a read or write slot (never waits) and, for a write that buffers a body, its
    /// share of the body budget (waits up to `body_buffer_wait_ms`).
    pub(crate) async fn admit<B>(&self, req: &Request<B>) -> Result<Ticket, Refusal> {
        let is_read = matches!(*req.method(), Method::GET | Method::HEAD);
        let slots = if is_read { &self.reads } else { &self.writes };
        let slot = slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        let bytes = match self.reservation(req) {
            None => None,
            Some(bytes) => {
                let kib = bytes.div_ceil(1024).clamp(1, self.budget_kib);
                let kib = u32::try_from(kib).unwrap_or(u32::MAX);
                let wait = self.budget.clone().acquire_many_owned(kib);
                match tokio::time::timeout(self.budget_wait, wait).await {
                    Ok(Ok(p)) => Some(p),
                    _ => return Err(Refusal::Memory),
                }
            }
        };
        Ok(Ticket {
            _slot: Some(slot),
            _bytes: bytes,
        })
    }

    /// Bytes a request may buffer at once, `None` for requests that buffer no body. A
    /// streamed upload keeps at most about two chunks (the one filling and the one being
    /// sent), a short one its length twice (the buffer and its growth); CopyObject and
    /// CompleteMultipartUpload stream stored bytes through the same path.
    fn reservation<B>(&self, req: &Request<B>) -> Option<u64> {
        let two_chunks = 2 * self.chunk + FRAME_SLACK;
        let query = req.uri().query().unwrap_or("");
        let has_param = |name: &str| {
            query
                .split('&')
                .any(|kv| kv.split('=').next() == Some(name))
        };
        match *req.method() {
            Method::PUT if req.headers().contains_key("x-amz-copy-source") => Some(two_chunks),
            Method::PUT => {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                };
                // aws-chunked bodies announce their payload length apart from the framing.
                let len =
                    header("x-amz-decoded-content-length").or_else(|| header("content-length"));
                match len {
                    Some(0) => None,
                    Some(n) => Some((2 * n).min(2 * self.chunk) + FRAME_SLACK),
                    None => Some(two_chunks),
                }
            }
            Method::POST if has_param("uploadId") => Some(two_chunks),
            // A POST Object form: s3s holds its file part whole (bounded by
            // `s3::post::MAX_FILE_BYTES`) while the write streams it on.
            Method::POST if crate::s3::post::is_form_upload(req) => {
                let len = req
                    .headers()
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(crate::s3::post::MAX_FILE_BYTES);
                Some(len.min(crate::s3::post::MAX_FILE_BYTES) + two_chunks)
            }
            _ => None,
        }
    }

    /// Renders the admission gauges: requests in flight by kind, body bytes reserved.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let reads = self.max_reads - self.reads.available_permits();
        let writes = self.max_writes - self.writes.available_permits();
        let reserved_kib = self
            .budget_kib
            .saturating_sub(self.budget.available_permits() as u64);
        out.push_str("# HELP s3o_gateway_requests_in_flight S3 requests admitted and not finished, by kind.\n");
        out.push_str("# TYPE s3o_gateway_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "s3o_gateway_requests_in_flight{{kind=\"read\"}} {reads}"
        );
        let _ = writeln!(
            out,
            "s3o_gateway_requests_in_flight{{kind=\"write\"}} {writes}"
        );
        out.push_str("# HELP s3o_gateway_body_buffer_reserved_bytes Body buffer bytes reserved by in-flight writes (of body_buffer_bytes).\n");
        out.push_str("# TYPE s3o_gateway_body_buffer_reserved_bytes gauge\n");
        let _ = writeln!(
            out,
            "s3o_gateway_body_buffer_reserved_bytes {}",
            reserved_kib * 1024
        );
    }

    /// The `503 SlowDown` answer, in S3's XML error shape.
    pub(crate) fn slow_down(&self, request_id: &str, why: Refusal) -> Response<s3s::Body> {
        let message = match why {
            Refusal::Busy => "Please reduce your request rate.",
            Refusal::Memory => {
                "Please reduce your request rate: the gateway's upload buffers are full."
            }
        };
        let mut r = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            message,
            request_id,
        );
        r.headers_mut()
            .insert(hyper::header::RETRY_AFTER, self.retry_after.into());
        r
    }
}

/// An S3-shaped XML error answer for refusals made before s3s sees the request.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    );
    let mut r = Response::new(s3s::Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    r
}

/// A request body that fails once it has delivered nothing for `idle`: a client that stops
/// sending mid-upload releases its slot, its buffers and its connection.
pub(crate) struct IdleTimeoutBody {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl IdleTimeoutBody {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Incoming, idle: Duration) -> Self {
        IdleTimeoutBody {
            inner,
            idle,
            // One timer per body, re-armed rather than reallocated on every wait.
            timer: Box::pin(tokio::time::sleep(idle)),
            armed: false,
        }
    }
}

impl Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.armed {
                    this.timer.as_mut().reset(Instant::now() + this.idle);
                    this.armed = true;
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::info!(
                            idle_secs = this.idle.as_secs(),
                            "request body stalled; failing the request"
                        );
                        Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "request body stalled",
                        )))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding its request's [`Ticket`] until it is sent or dropped, so a
/// streaming GET counts against the read cap for as long as it streams.
pub(crate) struct TicketBody {
    inner: s3s::Body,
    _ticket: Ticket,
}

impl TicketBody {
    /// Wraps `inner`.
    pub(crate) fn new(inner: s3s::Body, ticket: Ticket) -> Self {
        TicketBody {
            inner,
            _ticket: ticket,
        }
    }
}

impl Body for TicketBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(reads: usize, writes: usize, budget: u64) -> Admission {
        let c = ServerConfig {
            max_concurrent_reads: reads,
            max_concurrent_writes: writes,
            body_buffer_bytes: budget,
            body_buffer_wait_ms: 50,
            ..ServerConfig::default()
        };
        Admission::new(&c, 1024 * 1024)
    }

    fn req(method: Method, uri: &str, len: Option<u64>) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(n) = len {
            b = b.header("content-length", n);
        }
        b.body(()).unwrap()
    }

    #[tokio::test]
    async fn reads_and_writes_have_their_own_caps() {
        let a = admission(1, 1, 64 << 20);
        let r1 = a.admit(&req(Method::GET, "/b/k", None)).await.unwrap();
        assert_eq!(
            a.admit(&req(Method::HEAD, "/b/k", None)).await.err(),
            Some(Refusal::Busy)
        );
        // A write still gets in while every read slot is taken.
        let w1 = a.admit(&req(Method::DELETE, "/b/k", None)).await.unwrap();
        assert_eq!(
            a.admit(&req(Method::PUT, "/b/k", Some(1))).await.err(),
            Some(Refusal::Busy)
        );
        drop((r1, w1));
        assert!(a.admit(&req(Method::GET, "/b/k", None)).await.is_ok());
    }

    #[tokio::test]
    async fn the_body_budget_refuses_past_its_bytes_and_frees_on_drop() {
        // 3 MiB budget, 1 MiB chunks: a long upload reserves 2 MiB + slack.
        let a = admission(10, 10, 3 << 20);
        let big = a
            .admit(&req(Method::PUT, "/b/k", Some(1 << 30)))
            .await
            .unwrap();
        assert_eq!(
            a.admit(&req(Method::PUT, "/b/k2", Some(1 << 30)))
                .await
                .err(),
            Some(Refusal::Memory)
        );
        // Small bodies still fit beside it, and bodiless writes never wait.
        let small = a
            .admit(&req(Method::PUT, "/b/s", Some(1000)))
            .await
            .unwrap();
        let del = a.admit(&req(Method::DELETE, "/b/s", None)).await.unwrap();
        let mut m = String::new();
        a.render(&mut m);
        assert!(
            m.contains("s3o_gateway_requests_in_flight{kind=\"write\"} 3"),
            "{m}"
        );
        let reserved = (2 * (1 << 20) + FRAME_SLACK) + 2000 + FRAME_SLACK;
        assert!(
            m.contains(&format!(
                "s3o_gateway_body_buffer_reserved_bytes {}",
                reserved.div_ceil(1024) * 1024
            )),
            "{m}"
        );
        drop((big, small, del));
        assert!(
            a.admit(&req(Method::PUT, "/b/k2", Some(1 << 30)))
                .await
                .is_ok()
        );
    }

    #[test]
    fn reservations_follow_the_request_shape() {
        let a = admission(1, 1, 64 << 20);
        let two = 2 * (1 << 20) + FRAME_SLACK;
        assert_eq!(a.reservation(&req(Method::PUT, "/b/k", None)), Some(two));
        assert_eq!(a.reservation(&req(Method::PUT, "/b/k", Some(0))), None);
        assert_eq!(
            a.reservation(&req(Method::PUT, "/b/k", Some(10))),
            Some(20 + FRAME_SLACK)
        );
        assert_eq!(
            a.reservation(&req(Method::POST, "/b/k?uploadId=x", None)),
            Some(two)
        );
        assert_eq!(a.reservation(&req(Method::POST, "/b?delete", None)), None);
        assert_eq!(a.reservation(&req(Method::GET, "/b/k", None)), None);
    }
}
