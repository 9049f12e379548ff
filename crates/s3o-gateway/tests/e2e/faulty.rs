//! A fault-injecting S3 backend: s3s-fs's `FileSystem` behind a wrapper that implements s3s's
//! `S3` trait by delegating to it, served over HTTP on a loopback port like the plain
//! backends. Rules set (and changed) by the test at run time fail, delay or hold calls per
//! operation, per key substring and per call count; every call is counted; multipart uploads
//! the backend has open are tracked from their create/complete/abort.
//!
//! ```ignore
//! let f = rig.backends[0].faults();
//! let id = f.add(Rule::on(&[Op::Delete]).path("victim").times(3).fail(500));
//! let hold = f.add(Rule::on(&[Op::Put]).path("slow").hang());
//! f.wait_held(hold, 1).await;   // a PUT reached the gate
//! f.release(hold);              // lets it through and drops the rule
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::fs_backend::{BACKEND_AK, BACKEND_SK};

/// The S3 operations a rule can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    /// PutObject.
    Put,
    /// GetObject.
    Get,
    /// HeadObject.
    Head,
    /// DeleteObject and DeleteObjects (object_store deletes in bulk).
    Delete,
    /// ListObjects (v1 and v2).
    List,
    /// CopyObject.
    Copy,
    /// CreateMultipartUpload.
    CreateMpu,
    /// UploadPart.
    UploadPart,
    /// CompleteMultipartUpload.
    CompleteMpu,
    /// AbortMultipartUpload.
    AbortMpu,
    /// Anything else (bucket calls, ListParts).
    Other,
}

/// What a matching call suffers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Action {
    /// Answered with this HTTP status (500, 503, …) without touching the store.
    Fail(u16),
    /// Served after this delay.
    Delay(Duration),
    /// Waits until the rule is released, then served.
    Hang,
    /// Served at once, but the answer waits until the rule is released: the bytes are
    /// stored while the caller still waits (a slow network on the way back).
    HoldAfter,
}

/// One fault rule, built with [`Rule::on`] and the chained setters.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    ops: Vec<Op>,
    path: Option<String>,
    skip: u64,
    limit: Option<u64>,
    action: Action,
}

impl Rule {
    /// A rule for calls of `ops` (every op when empty); passes calls through until an action
    /// is set.
    pub(crate) fn on(ops: &[Op]) -> Rule {
        Rule {
            ops: ops.to_vec(),
            path: None,
            skip: 0,
            limit: None,
            action: Action::Delay(Duration::ZERO),
        }
    }

    /// Only calls whose object key (any key, for DeleteObjects) contains `pattern`.
    pub(crate) fn path(mut self, pattern: &str) -> Rule {
        self.path = Some(pattern.to_owned());
        self
    }

    /// Lets the first `n` matching calls through untouched.
    pub(crate) fn after(mut self, n: u64) -> Rule {
        self.skip = n;
        self
    }

    /// Applies to at most `n` matching calls (after the skipped ones), then passes them.
    pub(crate) fn times(mut self, n: u64) -> Rule {
        self.limit = Some(n);
        self
    }

    /// Answers `status`.
    pub(crate) fn fail(mut self, status: u16) -> Rule {
        self.action = Action::Fail(status);
        self
    }

    /// Serves after `ms` milliseconds.
    pub(crate) fn delay_ms(mut self, ms: u64) -> Rule {
        self.action = Action::Delay(Duration::from_millis(ms));
        self
    }

    /// Holds the call until released.
    pub(crate) fn hang(mut self) -> Rule {
        self.action = Action::Hang;
        self
    }

    /// Serves the call, then holds the answer until released.
    pub(crate) fn hold_after(mut self) -> Rule {
        self.action = Action::HoldAfter;
        self
    }

    fn matches(&self, op: Op, keys: &[&str]) -> bool {
        (self.ops.is_empty() || self.ops.contains(&op))
            && self
                .path
                .as_deref()
                .is_none_or(|p| keys.iter().any(|k| k.contains(p)))
    }
}

/// Names a rule added with [`Faults::add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RuleId(u64);

struct Active {
    id: RuleId,
    rule: Rule,
    /// Matching calls seen so far.
    seen: u64,
    /// Calls the action was applied to.
    hits: Arc<AtomicU64>,
    /// Calls waiting at the gate now.
    held: Arc<AtomicU64>,
    /// Closed on release: every waiter goes on.
    gate: Arc<Semaphore>,
}

/// The rules and counters of one faulty backend; shared by the server and the test.
#[derive(Default)]
pub(crate) struct Faults {
    next: AtomicU64,
    rules: Mutex<Vec<Active>>,
    /// Counters of rules already removed, so `hits` keeps answering.
    gone: Mutex<BTreeMap<RuleId, u64>>,
    calls: Mutex<BTreeMap<Op, u64>>,
    /// Open multipart uploads on this backend: upload id → (key, when created).
    uploads: Mutex<BTreeMap<String, (String, std::time::SystemTime)>>,
    /// PUT and UploadPart bodies received with their SHA-256 signed, and `UNSIGNED-PAYLOAD`.
    payloads: [AtomicU64; 2],
}

/// What [`Faults::pick`] decided for one call.
struct Applied {
    action: Action,
    held: Arc<AtomicU64>,
    gate: Arc<Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    /// Adds `rule` (checked after the rules added before it).
    pub(crate) fn add(&self, rule: Rule) -> RuleId {
        let id = RuleId(self.next.fetch_add(1, Ordering::SeqCst));
        lock(&self.rules).push(Active {
            id,
            rule,
            seen: 0,
            hits: Arc::default(),
            held: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        });
        id
    }

    /// Removes rule `id` and lets every call it holds go on.
    pub(crate) fn release(&self, id: RuleId) {
        let mut rules = lock(&self.rules);
        if let Some(i) = rules.iter().position(|a| a.id == id) {
            let a = rules.remove(i);
            a.gate.close();
            lock(&self.gone).insert(id, a.hits.load(Ordering::SeqCst));
        }
    }

    /// Removes every rule, releasing what they hold.
    pub(crate) fn clear(&self) {
        let ids: Vec<RuleId> = lock(&self.rules).iter().map(|a| a.id).collect();
        for id in ids {
            self.release(id);
        }
    }

    /// Calls rule `id` was applied to.
    pub(crate) fn hits(&self, id: RuleId) -> u64 {
        if let Some(a) = lock(&self.rules).iter().find(|a| a.id == id) {
            return a.hits.load(Ordering::SeqCst);
        }
        lock(&self.gone).get(&id).copied().unwrap_or(0)
    }

    /// Calls waiting at rule `id`'s gate now.
    pub(crate) fn held(&self, id: RuleId) -> u64 {
        lock(&self.rules)
            .iter()
            .find(|a| a.id == id)
            .map_or(0, |a| a.held.load(Ordering::SeqCst))
    }

    /// Waits (10 s at most) until `n` calls wait at rule `id`'s gate.
    pub(crate) async fn wait_held(&self, id: RuleId, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.held(id) < n {
            assert!(
                Instant::now() < deadline,
                "no {n} calls reached the gate of rule {id:?} within 10 s (held {})",
                self.held(id)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Calls of `op` received so far, faulted or not.
    /// PUT and UploadPart bodies received so far: (signed, `UNSIGNED-PAYLOAD`).
    pub(crate) fn payloads(&self) -> (u64, u64) {
        (
            self.payloads[0].load(Ordering::SeqCst),
            self.payloads[1].load(Ordering::SeqCst),
        )
    }

    fn saw_payload(&self, headers: &hyper::HeaderMap) {
        let unsigned = headers
            .get("x-amz-content-sha256")
            .is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD");
        self.payloads[usize::from(unsigned)].fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn calls(&self, op: Op) -> u64 {
        lock(&self.calls).get(&op).copied().unwrap_or(0)
    }

    /// Multipart uploads created on this backend and neither completed nor aborted:
    /// `[(key, upload id)]`.
    pub(crate) fn open_uploads(&self) -> Vec<(String, String)> {
        lock(&self.uploads)
            .iter()
            .map(|(id, (key, _))| (key.clone(), id.clone()))
            .collect()
    }

    fn pick(&self, op: Op, keys: &[&str]) -> Option<Applied> {
        *lock(&self.calls).entry(op).or_default() += 1;
        let mut rules = lock(&self.rules);
        for a in rules.iter_mut() {
            if !a.rule.matches(op, keys) {
                continue;
            }
            a.seen += 1;
            let in_window =
                a.seen > a.rule.skip && a.rule.limit.is_none_or(|l| a.seen <= a.rule.skip + l);
            if in_window {
                a.hits.fetch_add(1, Ordering::SeqCst);
                return Some(Applied {
                    action: a.rule.action,
                    held: a.held.clone(),
                    gate: a.gate.clone(),
                });
            }
        }
        None
    }
}

/// Counts a waiter at a gate for as long as it waits (also when its call is dropped).
struct Waiting(Arc<AtomicU64>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn wait_gate(a: &Applied) {
    a.held.fetch_add(1, Ordering::SeqCst);
    let _w = Waiting(a.held.clone());
    // Closed on release: acquire fails and the call goes on.
    let _ = a.gate.acquire().await;
}

fn injected(status: u16) -> S3Error {
    let code = match status {
        503 => S3ErrorCode::ServiceUnavailable,
        _ => S3ErrorCode::InternalError,
    };
    let mut e = S3Error::with_message(code, format!("injected fault ({status})"));
    e.set_status_code(hyper::StatusCode::from_u16(status).expect("status"));
    e
}

/// s3s-fs with faults.
struct Faulty {
    inner: s3s_fs::FileSystem,
    faults: Arc<Faults>,
}

impl Faulty {
    async fn run<T>(
        &self,
        op: Op,
        keys: &[&str],
        call: impl Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let Some(a) = self.faults.pick(op, keys) else {
            return call.await;
        };
        match a.action {
            Action::Fail(status) => Err(injected(status)),
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                call.await
            }
            Action::Hang => {
                wait_gate(&a).await;
                call.await
            }
            Action::HoldAfter => {
                let r = call.await;
                wait_gate(&a).await;
                r
            }
        }
    }
}

#[async_trait::async_trait]
impl S3 for Faulty {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let key = req.input.key.clone();
        self.faults.saw_payload(&req.headers);
        self.run(Op::Put, &[&key], self.inner.put_object(req)).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let key = req.input.key.clone();
        self.run(Op::Get, &[&key], self.inner.get_object(req)).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let key = req.input.key.clone();
        self.run(Op::Head, &[&key], self.inner.head_object(req))
            .await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let key = req.input.key.clone();
        self.run(Op::Delete, &[&key], self.inner.delete_object(req))
            .await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let keys: Vec<String> = req
            .input
            .delete
            .objects
            .iter()
            .map(|o| o.key.clone())
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.run(Op::Delete, &refs, self.inner.delete_objects(req))
            .await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let key = req.input.key.clone();
        self.run(Op::Copy, &[&key], self.inner.copy_object(req))
            .await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let prefix = req.input.prefix.clone().unwrap_or_default();
        self.run(Op::List, &[&prefix], self.inner.list_objects(req))
            .await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let prefix = req.input.prefix.clone().unwrap_or_default();
        self.run(Op::List, &[&prefix], self.inner.list_objects_v2(req))
            .await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let key = req.input.key.clone();
        let r = self
            .run(
                Op::CreateMpu,
                &[&key],
                self.inner.create_multipart_upload(req),
            )
            .await;
        if let Ok(resp) = &r
            && let Some(id) = &resp.output.upload_id
        {
            lock(&self.faults.uploads).insert(id.clone(), (key, std::time::SystemTime::now()));
        }
        r
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let key = req.input.key.clone();
        self.faults.saw_payload(&req.headers);
        self.run(Op::UploadPart, &[&key], self.inner.upload_part(req))
            .await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let key = req.input.key.clone();
        let id = req.input.upload_id.clone();
        let r = self
            .run(
                Op::CompleteMpu,
                &[&key],
                self.inner.complete_multipart_upload(req),
            )
            .await;
        if r.is_ok() {
            lock(&self.faults.uploads).remove(&id);
        }
        r
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let key = req.input.key.clone();
        let id = req.input.upload_id.clone();
        let r = self
            .run(
                Op::AbortMpu,
                &[&key],
                self.inner.abort_multipart_upload(req),
            )
            .await;
        if r.is_ok() {
            lock(&self.faults.uploads).remove(&id);
        }
        r
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        // s3s-fs has no such call: answered (in one page) from the uploads tracked here.
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let mut open: Vec<(String, String, std::time::SystemTime)> = lock(&self.faults.uploads)
            .iter()
            .filter(|(_, (k, _))| k.starts_with(&prefix))
            .map(|(id, (k, t))| (k.clone(), id.clone(), *t))
            .collect();
        open.sort();
        let out = ListMultipartUploadsOutput {
            bucket: Some(req.input.bucket.clone()),
            is_truncated: Some(false),
            uploads: Some(
                open.into_iter()
                    .map(|(k, id, t)| MultipartUpload {
                        key: Some(k),
                        upload_id: Some(id),
                        initiated: Some(t.into()),
                        ..MultipartUpload::default()
                    })
                    .collect(),
            ),
            ..ListMultipartUploadsOutput::default()
        };
        self.run(
            Op::Other,
            &[&prefix],
            async move { Ok(S3Response::new(out)) },
        )
        .await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let key = req.input.key.clone();
        self.run(Op::Other, &[&key], self.inner.list_parts(req))
            .await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.run(Op::Other, &[], self.inner.head_bucket(req)).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.run(Op::Other, &[], self.inner.list_buckets(req)).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.run(Op::Other, &[], self.inner.get_bucket_location(req))
            .await
    }
}

/// A faulty backend served on a loopback port; the accept loop is aborted on drop.
pub(crate) struct FaultyServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves s3s-fs rooted at `root` (which holds the bucket directory) with `faults`.
pub(crate) async fn faulty_server(root: &std::path::Path, faults: Arc<Faults>) -> FaultyServer {
    let inner = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = s3s::service::S3ServiceBuilder::new(Faulty { inner, faults });
    builder.set_auth(s3s::auth::SimpleAuth::from_single(BACKEND_AK, BACKEND_SK));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    FaultyServer { addr, task }
}
