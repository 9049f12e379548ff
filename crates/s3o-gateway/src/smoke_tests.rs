//! In-crate smoke tests: the gateway over HTTP with SigV4 (object_store's S3 client), on a
//! SQLite ledger, two local-directory backends and one in-process s3s-fs backend. The full
//! end-to-end suite lives in `tests/`.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload, WriteMultipart};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use crate::{BackendConfig, BucketConfig, Config, Credential, Gateway, RunningGateway};

const AK: &str = "smoke-ak";
const SK: &str = "smoke-sk";

/// Serves an s3s-fs backend on a loopback port; returns its endpoint.
async fn s3s_fs_backend(root: &std::path::Path, bucket: &str) -> String {
    std::fs::create_dir_all(root.join(bucket)).unwrap();
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut b = S3ServiceBuilder::new(fs);
    b.set_auth(SimpleAuth::from_single("fs-ak", "fs-sk"));
    let svc = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let http =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc.clone())
                .into_owned();
            tokio::spawn(conn);
        }
    });
    format!("http://{addr}")
}

struct Env {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    gw: RunningGateway,
}

async fn start(quota_a: u64, quota_b: u64, quota_c: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let fs_endpoint = s3s_fs_backend(&root.join("fs"), "pool").await;
    let config = Config {
        store: format!("sqlite://{}", root.join("ledger.db").display()),
        credentials: vec![Credential {
            access_key: AK.into(),
            secret_key: SK.into(),
            admin: false,
        }],
        buckets: vec![BucketConfig::new("photos")],
        backends: vec![
            BackendConfig::local("a", root.join("a"), quota_a),
            BackendConfig::local("b", root.join("b"), quota_b),
            BackendConfig::s3("c", fs_endpoint, "pool", "fs-ak", "fs-sk", quota_c),
        ],
        ..Config::default()
    };
    let gw = Gateway::start(config).await.unwrap();
    Env {
        _dir: dir,
        root,
        gw,
    }
}

fn client(gw: &RunningGateway, secret: &str) -> Arc<AmazonS3> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(gw.endpoint())
            .with_allow_http(true)
            .with_bucket_name("photos")
            .with_region("us-east-1")
            .with_access_key_id(AK)
            .with_secret_access_key(secret)
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap(),
    )
}

/// Files under a backend directory (the bytes actually stored).
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(crate::body::md5_of(b))
}

#[tokio::test]
async fn put_get_range_overwrite_delete_round_trip() {
    let env = start(0, 0, 0).await;
    let s3 = client(&env.gw, SK);
    let key = Path::from_iter(["dir", "a b+c%é.txt"]);
    s3.put(&key, PutPayload::from_static(b"hello world"))
        .await
        .unwrap();
    let got = s3.get(&key).await.unwrap();
    assert_eq!(got.meta.size, 11);
    assert_eq!(
        got.meta.e_tag.as_deref().map(|e| e.trim_matches('"')),
        Some(md5_hex(b"hello world").as_str())
    );
    assert_eq!(
        got.bytes().await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    let part = s3.get_range(&key, 2..7).await.unwrap();
    assert_eq!(part, Bytes::from_static(b"llo w"));
    let head = s3.head(&key).await.unwrap();
    assert_eq!(head.size, 11);

    // Overwrite: new bytes served, the old version's file is gone from the backend.
    assert_eq!(files(&env.root.join("a")).len(), 1);
    s3.put(&key, PutPayload::from_static(b"second version"))
        .await
        .unwrap();
    assert_eq!(
        s3.get(&key).await.unwrap().bytes().await.unwrap(),
        Bytes::from_static(b"second version")
    );
    let on_a = files(&env.root.join("a"));
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert_eq!(std::fs::read(&on_a[0]).unwrap(), b"second version");
    let stats = env.gw.store().get_quota_stats().await.unwrap();
    assert_eq!(stats["a"].bytes_used, 14);
    assert_eq!(stats["a"].orphan_bytes, 0);

    // Listing comes from the ledger, keys intact.
    let listed: Vec<_> = s3
        .list(Some(&Path::from("dir")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, key);

    s3.delete(&key).await.unwrap();
    assert!(matches!(
        s3.get(&key).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert!(files(&env.root.join("a")).is_empty());
    assert_eq!(
        env.gw.store().get_quota_stats().await.unwrap()["a"].bytes_used,
        0
    );
    // Deleting an absent key succeeds, as on S3.
    s3.delete(&key).await.unwrap();

    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/health", env.gw.endpoint()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["unconfigured_backends"], serde_json::json!([]));
    let metrics = http
        .get(format!("{}/metrics", env.gw.endpoint()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("s3o_gateway_requests_total{operation=\"PutObject\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3o_quota_bytes_used{backend=\"a\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("s3o_ledger_up 1"), "{metrics}");
    // The store's own series, recorded through the metrics facade, on the same page.
    assert!(
        metrics.contains("s3o_operation_duration_seconds_count{engine=\"sqlite\",operation=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3o_breaker_state{engine=\"sqlite\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("s3o_cleanup_queue_depth{engine=\"sqlite\"} "),
        "{metrics}"
    );
    // One TYPE line per family: a page Prometheus can parse.
    let mut families: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .collect();
    let n = families.len();
    families.sort_unstable();
    families.dedup();
    assert_eq!(
        families.len(),
        n,
        "a metric family declared twice:\n{metrics}"
    );
    env.gw.shutdown().await;
}

#[tokio::test]
async fn writes_spill_to_the_next_backend_then_answer_507() {
    let env = start(100, 100, 100).await;
    let s3 = client(&env.gw, SK);
    let body = PutPayload::from(vec![7u8; 80]);
    for k in ["k1", "k2", "k3"] {
        s3.put(&Path::from(k), body.clone()).await.unwrap();
    }
    let store = env.gw.store();
    let where_ = |k: &'static str| async move {
        store
            .get_all_object_locations(&format!("photos/{k}"))
            .await
            .unwrap()[0]
            .backend_name
            .clone()
    };
    assert_eq!(where_("k1").await, "a");
    assert_eq!(where_("k2").await, "b");
    assert_eq!(where_("k3").await, "c");
    let err = s3.put(&Path::from("k4"), body.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains("507") || err.to_string().contains("InsufficientStorage"),
        "{err}"
    );
    assert!(matches!(
        s3.head(&Path::from("k4")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    // The s3s-fs copy reads back through the gateway.
    assert_eq!(
        s3.get(&Path::from("k3"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len(),
        80
    );
    assert_eq!(store.count_pending().await.unwrap(), 0);
    env.gw.shutdown().await;
}

#[tokio::test]
async fn multipart_copy_and_bad_signature() {
    let env = start(0, 0, 0).await;
    let s3 = client(&env.gw, SK);
    let big = Path::from("big.bin");
    let data: Vec<u8> = (0..(11 * 1024 * 1024)).map(|i| (i % 251) as u8).collect();
    let upload = s3.put_multipart(&big).await.unwrap();
    let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    w.write(&data);
    w.finish().await.unwrap();
    let got = s3.get(&big).await.unwrap();
    let etag = got.meta.e_tag.clone().unwrap();
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    assert_eq!(got.bytes().await.unwrap().as_ref(), data.as_slice());
    // No part objects remain.
    assert!(
        files(&env.root.join("a"))
            .iter()
            .all(|p| !p.to_string_lossy().contains(".mpu"))
    );

    s3.copy(&big, &Path::from("copy.bin")).await.unwrap();
    assert_eq!(
        s3.get(&Path::from("copy.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        data.as_slice()
    );

    let bad = client(&env.gw, "wrong-secret");
    assert!(
        bad.put(&Path::from("evil"), PutPayload::from_static(b"x"))
            .await
            .is_err()
    );
    assert!(matches!(
        s3.head(&Path::from("evil")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    env.gw.shutdown().await;
}

#[tokio::test]
async fn ledger_outage_turns_writes_into_503_and_reads_into_a_broadcast() {
    let env = start(0, 0, 0).await;
    let s3 = client(&env.gw, SK);
    let key = Path::from("kept.txt");
    s3.put(&key, PutPayload::from_static(b"old")).await.unwrap();
    s3.put(&key, PutPayload::from_static(b"still here"))
        .await
        .unwrap();
    // The ledger goes away under the running gateway.
    env.gw.store().close().await;
    let err = s3
        .put(&Path::from("new.txt"), PutPayload::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert!(
        files(&env.root.join("a"))
            .iter()
            .all(|p| !p.to_string_lossy().contains("new.txt"))
    );
    // The newest version is found on the backend without the ledger.
    let got = s3.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, Bytes::from_static(b"still here"));
    assert!(matches!(
        s3.get(&Path::from("never.txt")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    env.gw.shutdown().await;
}

/// The parts stay on (and charged to) the upload's backend until the object commits, so a
/// Complete lands there only when it holds the object beside them: a 10 MB upload on a 16 MiB
/// backend spills to the next one, and the parts' charge is released either way.
#[tokio::test]
async fn a_completed_upload_spills_to_the_next_backend() {
    let env = start(16 << 20, 64 << 20, 0).await;
    let s3 = client(&env.gw, SK);
    let data = vec![3u8; 10_000_000];
    for k in ["one.bin", "two.bin"] {
        let upload = s3.put_multipart(&Path::from(k)).await.unwrap();
        let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
        w.write(&data);
        w.finish().await.unwrap();
    }
    let store = env.gw.store();
    let one = store
        .get_all_object_locations("photos/one.bin")
        .await
        .unwrap();
    let two = store
        .get_all_object_locations("photos/two.bin")
        .await
        .unwrap();
    // Each upload was created on the least utilised backend ("a", empty) and spilled.
    assert_eq!(one[0].backend_name, "b");
    assert_eq!(two[0].backend_name, "b");
    let stats = store.get_quota_stats().await.unwrap();
    assert_eq!(stats["a"].bytes_used, 0, "the parts' charge was released");
    assert_eq!(stats["b"].bytes_used, 20_000_000);
    env.gw.shutdown().await;
}
