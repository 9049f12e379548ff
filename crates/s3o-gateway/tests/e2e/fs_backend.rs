//! An s3s-fs file system served over HTTP on a loopback port: a real S3 server in-process,
//! used as a gateway backend by the end-to-end tests and as the direct baseline by the
//! gateway benchmark (which includes this file by path).

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use object_store::RetryConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Region every server and client signs for.
pub(crate) const REGION: &str = "us-east-1";
/// Credentials and bucket of every s3s-fs server (what the gateway signs with).
pub(crate) const BACKEND_AK: &str = "e2e-backend";
/// Secret key of every s3s-fs server.
pub(crate) const BACKEND_SK: &str = "e2e-backend-secret-0123456789";
/// The bucket directory each server's root holds.
pub(crate) const BACKEND_BUCKET: &str = "pool";

/// A loopback HTTP server run as a task; aborted on drop.
pub(crate) struct Server {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs the ring provider rustls needs (the workspace builds rustls without a default).
pub(crate) fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves an s3s-fs file system rooted at `root` (which holds the bucket directory) on a
/// free loopback port.
pub(crate) async fn fs_server(root: &std::path::Path) -> Server {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
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
            // Without it a small response waits on delayed ACKs (~40 ms per GET).
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Server { addr, task }
}

/// An object_store S3 client builder for `bucket` at `endpoint`, no retries (a 5xx must
/// reach the test as it was answered).
pub(crate) fn s3_builder(endpoint: &str, bucket: &str, ak: &str, sk: &str) -> AmazonS3Builder {
    crypto();
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region(REGION)
        .with_access_key_id(ak)
        .with_secret_access_key(sk)
        .with_retry(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        })
}

/// The client [`s3_builder`] describes.
pub(crate) fn s3_client(endpoint: &str, bucket: &str, ak: &str, sk: &str) -> AmazonS3 {
    s3_builder(endpoint, bucket, ak, sk)
        .build()
        .expect("S3 client")
}
