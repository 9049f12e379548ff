//! What the worker drills share: in-process s3s-fs backends on loopback that can reject
//! deletes, hang or stop; a gateway configuration written both in code and as the TOML a
//! child `s3o-gateway` reads; the ledger checks (`s3o verify`'s arithmetic and "nothing the
//! ledger forgot remains on a backend").

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig};
use s3o_gateway::{BackendConfig, BucketConfig, Config, Credential, WorkersConfig};
use s3o_store::MetadataStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub(crate) const AK: &str = "drill-client";
pub(crate) const SK: &str = "drill-client-secret-0123456789";
pub(crate) const BUCKET: &str = "photos";
pub(crate) const BACKEND_AK: &str = "drill-backend";
pub(crate) const BACKEND_SK: &str = "drill-backend-secret-0123456789";
const POOL: &str = "pool";

pub(crate) fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An s3s-fs server on a fixed loopback address, with switches.
pub(crate) struct Fs {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) root: PathBuf,
    /// DELETE answers 403 AccessDenied.
    pub(crate) reject_deletes: Arc<AtomicBool>,
    /// Every request hangs (a backend that accepts and never answers).
    pub(crate) hang: Arc<AtomicBool>,
    /// Listings (ListObjectsV2) hang.
    pub(crate) hang_lists: Arc<AtomicBool>,
    /// PUTs whose path contains this string wait until it is cleared.
    pub(crate) hold_puts: Arc<Mutex<Option<String>>>,
    /// PUTs held by `hold_puts` so far.
    pub(crate) held: Arc<AtomicU64>,
    /// Requests served (every HTTP request that reached the server).
    pub(crate) requests: Arc<AtomicU64>,
    /// ListMultipartUploads requests served.
    pub(crate) upload_listings: Arc<AtomicU64>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Fs {
    pub(crate) async fn start(name: &str, root: &FsPath) -> Fs {
        std::fs::create_dir_all(root.join(POOL)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fs = Fs {
            name: name.to_owned(),
            addr: listener.local_addr().unwrap(),
            root: root.to_owned(),
            reject_deletes: Arc::default(),
            hang: Arc::default(),
            hang_lists: Arc::default(),
            hold_puts: Arc::default(),
            held: Arc::default(),
            requests: Arc::default(),
            upload_listings: Arc::default(),
            tasks: Arc::default(),
        };
        fs.serve(listener);
        fs
    }

    fn serve(&self, listener: TcpListener) {
        let fs = WithUploadListing {
            inner: Arc::new(s3s_fs::FileSystem::new(&self.root).unwrap()),
            root: self.root.clone(),
        };
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(BACKEND_AK, BACKEND_SK));
        let service = b.build();
        let counters = (self.requests.clone(), self.upload_listings.clone());
        let (reject, hang, tasks) = (
            self.reject_deletes.clone(),
            (
                self.hang.clone(),
                self.hang_lists.clone(),
                self.hold_puts.clone(),
                self.held.clone(),
            ),
            self.tasks.clone(),
        );
        let accept = tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let (service, reject, hang) = (service.clone(), reject.clone(), hang.clone());
                let counters = counters.clone();
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (service, reject, hang) =
                            (service.clone(), reject.clone(), hang.clone());
                        counters.0.fetch_add(1, Ordering::SeqCst);
                        if req.method() == hyper::Method::GET
                            && req.uri().query().is_some_and(|q| {
                                q.split('&').any(|p| p == "uploads" || p == "uploads=")
                            })
                        {
                            counters.1.fetch_add(1, Ordering::SeqCst);
                        }
                        async move {
                            let listing = req.method() == hyper::Method::GET
                                && req.uri().query().is_some_and(|q| q.contains("list-type"));
                            if hang.0.load(Ordering::SeqCst)
                                || (listing && hang.1.load(Ordering::SeqCst))
                            {
                                std::future::pending::<()>().await;
                            }
                            let held = |h: &Mutex<Option<String>>| {
                                h.lock()
                                    .unwrap()
                                    .as_deref()
                                    .is_some_and(|p| req.uri().path().contains(p))
                            };
                            if req.method() == hyper::Method::PUT && held(&hang.2) {
                                hang.3.fetch_add(1, Ordering::SeqCst);
                                while held(&hang.2) {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                            }
                            let bulk_delete = req.method() == hyper::Method::POST
                                && req.uri().query().is_some_and(|q| {
                                    q.split('&').any(|p| p == "delete" || p == "delete=")
                                });
                            if reject.load(Ordering::SeqCst)
                                && (req.method() == hyper::Method::DELETE || bulk_delete)
                            {
                                let mut r = hyper::Response::new(s3s::Body::from(
                                "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>deletes rejected</Message></Error>".to_owned(),
                            ));
                                *r.status_mut() = hyper::StatusCode::FORBIDDEN;
                                return Ok::<_, s3s::HttpError>(r);
                            }
                            service.call(req.map(s3s::Body::from)).await
                        }
                    },
                );
                let conn = http.serve_connection(TokioIo::new(sock), svc).into_owned();
                let t = tokio::spawn(async move {
                    let _ = conn.await;
                });
                tasks.lock().unwrap().push(t);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stops the server: connections refused, open ones cut.
    pub(crate) fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Serves again on the same address.
    pub(crate) async fn restart(&self) {
        for _ in 0..100 {
            if let Ok(l) = TcpListener::bind(self.addr).await {
                self.serve(l);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("could not rebind {}", self.addr);
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn config(&self, quota: u64) -> BackendConfig {
        BackendConfig::s3(
            &self.name,
            self.endpoint(),
            POOL,
            BACKEND_AK,
            BACKEND_SK,
            quota,
        )
    }

    /// Every object path the backend holds, multipart parts aside.
    pub(crate) async fn paths(&self) -> BTreeSet<String> {
        let c = client(&self.endpoint(), POOL, BACKEND_AK, BACKEND_SK);
        let all: Vec<_> = c.list(None).try_collect().await.unwrap();
        all.into_iter()
            .map(|o| o.location.to_string())
            .filter(|p| !p.starts_with(".mpu/"))
            .collect()
    }

    /// Every multipart part path the backend holds (`.mpu/<upload id>/...`).
    pub(crate) async fn part_paths(&self) -> BTreeSet<String> {
        let c = client(&self.endpoint(), POOL, BACKEND_AK, BACKEND_SK);
        let dir = Path::from(".mpu");
        let all: Vec<_> = c.list(Some(&dir)).try_collect().await.unwrap();
        all.into_iter().map(|o| o.location.to_string()).collect()
    }

    /// Backend multipart uploads created and neither completed nor aborted: s3s-fs keeps one
    /// `.upload-<id>.json` in its root per open upload.
    pub(crate) fn open_uploads(&self) -> usize {
        std::fs::read_dir(&self.root)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with(".upload-") && n.ends_with(".json")
            })
            .count()
    }
}

/// Open multipart uploads of `bucket` in s3s-fs's root: `(key, upload id, initiated)`, in
/// (key, id) order. s3s-fs keeps `.upload-<id>.json` per open upload and the upload's
/// attributes in `.bucket-<b64 bucket>.object-<b64 key>.upload-<id>.metadata.json`.
pub(crate) fn open_uploads_in(
    root: &FsPath,
    bucket: &str,
) -> Vec<(String, String, std::time::SystemTime)> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let names: Vec<(String, std::time::SystemTime)> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let t = e.metadata().ok()?.modified().ok()?;
                    Some((e.file_name().to_str()?.to_owned(), t))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (n, initiated) in &names {
        let Some(id) = n
            .strip_prefix(".upload-")
            .and_then(|r| r.strip_suffix(".json"))
        else {
            continue;
        };
        let suffix = format!(".upload-{id}.metadata.json");
        let key = names.iter().find_map(|(m, _)| {
            let rest = m.strip_prefix(".bucket-")?.strip_suffix(&suffix)?;
            let (b, k) = rest.split_once(".object-")?;
            let b = String::from_utf8(b64.decode(b).ok()?).ok()?;
            (b == bucket).then(|| String::from_utf8(b64.decode(k).ok()?).ok())?
        });
        if let Some(key) = key {
            out.push((key, id.to_owned(), *initiated));
        }
    }
    out.sort();
    out
}

/// s3s-fs with ListMultipartUploads (which it lacks), answered from its root in pages of two
/// so that clients' paging is exercised; every other call is s3s-fs's own.
struct WithUploadListing {
    inner: Arc<s3s_fs::FileSystem>,
    root: PathBuf,
}

#[async_trait::async_trait]
impl s3s::S3 for WithUploadListing {
    async fn list_multipart_uploads(
        &self,
        req: s3s::S3Request<s3s::dto::ListMultipartUploadsInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListMultipartUploadsOutput>> {
        const PAGE: usize = 2;
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = (
            i.key_marker.clone().unwrap_or_default(),
            i.upload_id_marker.clone().unwrap_or_default(),
        );
        let max = i
            .max_uploads
            .map_or(PAGE, |m| usize::try_from(m).unwrap_or(PAGE).min(PAGE));
        let all: Vec<_> = open_uploads_in(&self.root, &i.bucket)
            .into_iter()
            .filter(|(k, id, _)| {
                k.starts_with(&prefix) && (after.0.is_empty() || (k.clone(), id.clone()) > after)
            })
            .collect();
        let truncated = all.len() > max;
        let page: Vec<_> = all.into_iter().take(max).collect();
        let last = page.last().map(|(k, id, _)| (k.clone(), id.clone()));
        Ok(s3s::S3Response::new(s3s::dto::ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            is_truncated: Some(truncated),
            next_key_marker: last.clone().filter(|_| truncated).map(|l| l.0),
            next_upload_id_marker: last.filter(|_| truncated).map(|l| l.1),
            uploads: Some(
                page.into_iter()
                    .map(|(k, id, t)| s3s::dto::MultipartUpload {
                        key: Some(k),
                        upload_id: Some(id),
                        initiated: Some(t.into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: s3s::S3Request<s3s::dto::CreateBucketInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn copy_object(
        &self,
        req: s3s::S3Request<s3s::dto::CopyObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CopyObjectOutput>> {
        self.inner.copy_object(req).await
    }

    async fn delete_bucket(
        &self,
        req: s3s::S3Request<s3s::dto::DeleteBucketInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteBucketOutput>> {
        self.inner.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: s3s::S3Request<s3s::dto::DeleteObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: s3s::S3Request<s3s::dto::DeleteObjectsInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: s3s::S3Request<s3s::dto::GetBucketLocationInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: s3s::S3Request<s3s::dto::GetObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetObjectOutput>> {
        self.inner.get_object(req).await
    }

    async fn head_bucket(
        &self,
        req: s3s::S3Request<s3s::dto::HeadBucketInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: s3s::S3Request<s3s::dto::HeadObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: s3s::S3Request<s3s::dto::ListBucketsInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: s3s::S3Request<s3s::dto::ListObjectsInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: s3s::S3Request<s3s::dto::ListObjectsV2Input>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn put_object(
        &self,
        req: s3s::S3Request<s3s::dto::PutObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutObjectOutput>> {
        self.inner.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: s3s::S3Request<s3s::dto::CreateMultipartUploadInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CreateMultipartUploadOutput>> {
        // Runs to completion even when the client hangs up (a killed gateway), like a real
        // S3 server: s3s-fs writes the upload's id file and its key in two steps, and an
        // upload cut between them could be neither listed nor aborted.
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.create_multipart_upload(req).await })
            .await
            .unwrap_or_else(|e| Err(s3s::s3_error!(InternalError, "{e}")))
    }

    async fn upload_part(
        &self,
        req: s3s::S3Request<s3s::dto::UploadPartInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::UploadPartOutput>> {
        self.inner.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: s3s::S3Request<s3s::dto::UploadPartCopyInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::UploadPartCopyOutput>> {
        self.inner.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: s3s::S3Request<s3s::dto::ListPartsInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListPartsOutput>> {
        self.inner.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: s3s::S3Request<s3s::dto::CompleteMultipartUploadInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CompleteMultipartUploadOutput>> {
        self.inner.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: s3s::S3Request<s3s::dto::AbortMultipartUploadInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }
}

impl Drop for Fs {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn client(endpoint: &str, bucket: &str, ak: &str, sk: &str) -> AmazonS3 {
    crypto();
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(ak)
        .with_secret_access_key(sk)
        .with_retry(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        })
        .build()
        .unwrap()
}

/// The gateway client on the virtual bucket.
pub(crate) fn gw_client(endpoint: &str) -> AmazonS3 {
    client(endpoint, BUCKET, AK, SK)
}

/// A gateway config on `store` over `fs` (routing `pack`, unlimited quotas), with the
/// workers running only on demand and every age at zero.
pub(crate) fn config(store: &str, fs: &[Fs], factor: u32) -> Config {
    let mut workers = WorkersConfig::immediate(s3o_gateway::workers::Interval::millis(100));
    workers.enabled = false;
    Config {
        store: store.to_owned(),
        credentials: vec![Credential {
            access_key: AK.into(),
            secret_key: SK.into(),
            admin: false,
        }],
        buckets: vec![BucketConfig {
            replication_factor: factor,
            ..BucketConfig::new(BUCKET)
        }],
        backends: fs.iter().map(|f| f.config(0)).collect(),
        workers,
        ..Config::default()
    }
}

/// The same configuration as TOML, for a child process; `workers` is the `[workers]` body.
pub(crate) fn config_toml(store: &str, fs: &[Fs], workers: &str) -> String {
    config_toml_with(store, "pack", &[(BUCKET, 1)], fs, 0, workers)
}

/// A configuration as TOML: `buckets` as (name, replication factor), every backend with
/// `quota` bytes, `workers` the `[workers]` body.
pub(crate) fn config_toml_with(
    store: &str,
    routing: &str,
    buckets: &[(&str, u32)],
    fs: &[Fs],
    quota: u64,
    workers: &str,
) -> String {
    let mut s = format!(
        "listen = \"127.0.0.1:0\"\nstore = \"{store}\"\nrouting = \"{routing}\"\n\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n\n"
    );
    for (name, factor) in buckets {
        s.push_str(&format!(
            "[[buckets]]\nname = \"{name}\"\nreplication_factor = {factor}\n\n"
        ));
    }
    for f in fs {
        s.push_str(&format!(
            "[[backends]]\nname = \"{}\"\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{POOL}\"\naccess_key = \"{BACKEND_AK}\"\nsecret_key = \"{BACKEND_SK}\"\nquota_bytes = {quota}\n\n",
            f.name,
            f.endpoint()
        ));
    }
    s.push_str("[workers]\n");
    s.push_str(workers);
    s
}

pub(crate) async fn put(c: &AmazonS3, key: &str, body: &[u8]) -> object_store::Result<()> {
    c.put(
        &Path::from(key),
        PutPayload::from(Bytes::copy_from_slice(body)),
    )
    .await
    .map(|_| ())
}

pub(crate) async fn get(c: &AmazonS3, key: &str) -> object_store::Result<Bytes> {
    c.get(&Path::from(key)).await?.bytes().await
}

/// `s3o verify`'s arithmetic: per backend, `bytes_used == Σ size_bytes` of its copies `+ Σ`
/// of its open uploads' parts, and `orphan_bytes == Σ queue + DLQ bytes`. Panics naming the
/// drift.
pub(crate) async fn verify(store: &MetadataStore) {
    let quotas = store.get_quota_stats().await.unwrap();
    let cleanup = store.cleanup_bytes_by_backend().await.unwrap();
    for q in quotas.values() {
        let (_, copies) = store.backend_object_stats(&q.backend_name).await.unwrap();
        let parts: i64 = store
            .backend_capacities(std::slice::from_ref(&q.backend_name))
            .await
            .unwrap()
            .iter()
            .map(|c| c.inflight_bytes)
            .sum();
        let truth = copies + parts;
        let (queued, dead) = cleanup.get(&q.backend_name).copied().unwrap_or((0, 0));
        assert_eq!(q.bytes_used, truth, "{}: bytes_used drift", q.backend_name);
        assert_eq!(
            q.orphan_bytes,
            queued + dead,
            "{}: orphan_bytes drift",
            q.backend_name
        );
    }
}

/// Storage paths the ledger records on `backend`.
pub(crate) async fn ledger_paths(store: &MetadataStore, backend: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = store
            .list_objects_by_backend_key_asc(backend, &after, 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.object_key.clone();
        for l in &page {
            out.insert(l.form.storage_path(&l.object_key).to_owned());
        }
    }
    out
}

/// Backends holding each key.
pub(crate) async fn holders(
    store: &MetadataStore,
    keys: &[String],
) -> BTreeMap<String, Vec<String>> {
    let ledger: Vec<String> = keys.iter().map(|k| format!("{BUCKET}/{k}")).collect();
    store
        .get_object_backends_for_keys(&ledger)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches(&format!("{BUCKET}/")).to_owned(), v))
        .collect()
}

/// Every backend holds exactly the paths the ledger records on it.
pub(crate) async fn nothing_forgotten(store: &MetadataStore, fs: &[Fs]) {
    for f in fs {
        let physical = f.paths().await;
        let recorded = ledger_paths(store, &f.name).await;
        let forgotten: Vec<_> = physical.difference(&recorded).collect();
        let missing: Vec<_> = recorded.difference(&physical).collect();
        assert!(
            forgotten.is_empty() && missing.is_empty(),
            "{}: on the backend but not in the ledger: {forgotten:?}; in the ledger but not on the backend: {missing:?}",
            f.name
        );
    }
}

/// A `postgres://` URL on a fresh schema of `S3O_PG_URL`, or `None` when PostgreSQL is not
/// configured (and not required).
pub(crate) fn pg_url() -> Option<(String, String)> {
    let Ok(base) = std::env::var("S3O_PG_URL") else {
        assert!(
            std::env::var("S3O_REQUIRE_PG").is_err(),
            "S3O_REQUIRE_PG is set but S3O_PG_URL is not"
        );
        return None;
    };
    let schema = format!("gw_workers_{}", uuid::Uuid::new_v4().simple());
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{sep}schema={schema}"), schema))
}

/// Drops a schema made by [`pg_url`].
pub(crate) async fn drop_schema(schema: &str) {
    use s3o_store::pg::tokio_postgres;
    let base = std::env::var("S3O_PG_URL").unwrap();
    let plain = base.split('?').next().unwrap_or(&base).to_owned();
    if let Ok((client, conn)) = tokio_postgres::connect(&plain, tokio_postgres::NoTls).await {
        let task = tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
        drop(client);
        let _ = task.await;
    }
}

/// `n` bytes derived from `seed`.
pub(crate) fn body(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
