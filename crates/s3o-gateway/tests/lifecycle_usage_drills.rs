//! Drills of the lifecycle worker and the monthly usage budgets, end to end: the gateway over
//! in-process s3s-fs backends (real S3 over HTTP), driven by an S3 client, on a SQLite and a
//! PostgreSQL ledger, with gateway restarts in between.

#[path = "workers_support/mod.rs"]
mod support;

use std::time::Duration;

use object_store::ObjectStoreExt as _;
use object_store::multipart::MultipartStore as _;
use object_store::path::Path;
use s3o_gateway::{
    BucketConfig, Config, Gateway, LifecycleRuleConfig, PassResult, RunningGateway, Worker,
    workers::Interval,
};
use support::*;

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("ledger.db").display())
}

async fn backends(dir: &std::path::Path, names: &[&str]) -> Vec<Fs> {
    let mut out = Vec::new();
    for n in names {
        out.push(Fs::start(n, &dir.join(n)).await);
    }
    out
}

/// Keys of `BUCKET` the ledger holds, in byte order.
async fn ledger_keys(gw: &RunningGateway) -> Vec<String> {
    let prefix = format!("{BUCKET}/");
    let page = gw
        .store()
        .list_objects_by_prefix(&prefix, s3o_store::KeyBound::Start, 1000)
        .await
        .unwrap();
    let mut keys: Vec<String> = page
        .into_iter()
        .map(|l| l.object_key[prefix.len()..].to_owned())
        .collect();
    keys.dedup();
    keys
}

const DAY: Duration = Duration::from_secs(3);

fn lifecycle_config(url: &str, fs: &[Fs]) -> Config {
    let mut c = config(url, fs, 1);
    c.workers.lifecycle.batch_size = 3;
    c.workers.lifecycle.day = Interval(DAY);
    let rule = |id: &str, prefix: &str| LifecycleRuleConfig {
        id: id.into(),
        enabled: true,
        prefix: prefix.into(),
        expiration_days: None,
        expiration_date: None,
        abort_incomplete_upload_days: None,
        tags: Default::default(),
        noncurrent_days: None,
        newer_noncurrent_versions: None,
        expired_object_delete_marker: false,
    };
    c.buckets = vec![BucketConfig {
        lifecycle: vec![
            LifecycleRuleConfig {
                expiration_days: Some(1),
                abort_incomplete_upload_days: Some(1),
                ..rule("tmp", "tmp/")
            },
            LifecycleRuleConfig {
                expiration_date: Some("2001-01-01T00:00:00Z".into()),
                ..rule("dated", "dated/")
            },
            LifecycleRuleConfig {
                enabled: false,
                expiration_days: Some(1),
                ..rule("off", "keep/")
            },
        ],
        ..BucketConfig::new(BUCKET)
    }];
    c
}

/// Lifecycle expires exactly the keys its rules match (by days, by a past date), never a key
/// of a disabled rule or one younger than its days, aborts the rule's old multipart upload,
/// paces itself by its batch size, and finishes after a gateway restart between passes; every
/// expired byte is deleted from its backend and the ledger's arithmetic holds throughout.
async fn lifecycle_drill(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fs = backends(dir.path(), &["a", "b"]).await;
    let gw = Gateway::start(lifecycle_config(url, &fs)).await.unwrap();
    let c = gw_client(&gw.endpoint());
    let mut keys = Vec::new();
    for i in 0..5u64 {
        keys.push(format!("tmp/{i}"));
    }
    keys.extend(["keep/0", "keep/1", "dated/0", "dated/1"].map(String::from));
    for (i, k) in keys.iter().enumerate() {
        put(&c, k, &body(i as u64, 100 + i)).await.unwrap();
    }
    // An upload left open under tmp/, with one part on its backend.
    let up_path = Path::from("tmp/upload");
    let up = c.create_multipart(&up_path).await.unwrap();
    c.put_part(&up_path, &up, 0, body(99, 1000).into())
        .await
        .unwrap();
    let parts: usize = {
        let mut n = 0;
        for f in &fs {
            n += f.part_paths().await.len();
        }
        n
    };
    assert_eq!(parts, 1, "the open upload's part is on a backend");
    tokio::time::sleep(DAY + Duration::from_millis(500)).await;
    // Pass 1: the batch of 3 ends the pass after three tmp/ keys.
    let r = gw.run_worker_once(Worker::Lifecycle).await;
    assert_eq!(r.count("expired"), 3, "{r:?}");
    verify(gw.store()).await;
    nothing_forgotten(gw.store(), &fs).await;
    // A restart between passes: the next gateway finishes the work.
    gw.shutdown().await;
    let gw = Gateway::start(lifecycle_config(url, &fs)).await.unwrap();
    let c = gw_client(&gw.endpoint());
    put(&c, "tmp/new", b"fresh").await.unwrap();
    let mut expired = 3;
    let mut aborted = 0;
    for _ in 0..5 {
        let r = gw.run_worker_once(Worker::Lifecycle).await;
        let PassResult::Ran(_) = &r else {
            panic!("lifecycle pass: {r:?}")
        };
        expired += r.count("expired");
        aborted += r.count("upload_aborted");
        assert_eq!(r.count("changed"), 0, "{r:?}");
        verify(gw.store()).await;
    }
    assert_eq!((expired, aborted), (7, 1));
    assert_eq!(
        ledger_keys(&gw).await,
        ["keep/0", "keep/1", "tmp/new"],
        "exactly the matching keys expired"
    );
    for k in ["tmp/0", "tmp/4", "dated/1"] {
        let e = get(&c, k).await.unwrap_err();
        assert!(
            matches!(e, object_store::Error::NotFound { .. }),
            "{k}: {e}"
        );
    }
    assert_eq!(get(&c, "keep/1").await.unwrap().as_ref(), body(6, 106));
    assert_eq!(get(&c, "tmp/new").await.unwrap().as_ref(), b"fresh");
    // The expired bytes and the aborted upload's part are gone from the backends.
    nothing_forgotten(gw.store(), &fs).await;
    for f in &fs {
        assert!(f.part_paths().await.is_empty(), "{}: parts left", f.name);
    }
    assert!(
        gw.store()
            .list_multipart_uploads(&format!("{BUCKET}/"), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(gw.store().cleanup_queue_depth().await.unwrap(), 0);
    verify(gw.store()).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_expires_matching_keys_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle_drill(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_expires_matching_keys_postgres() {
    let Some((url, schema)) = pg_url() else {
        eprintln!("skipped: S3O_PG_URL not set");
        return;
    };
    lifecycle_drill(&url).await;
    drop_schema(&schema).await;
}

/// PUTs `key` with `tags` (`x-amz-tagging`, as an S3 client sends them).
async fn put_tagged(c: &object_store::aws::AmazonS3, key: &str, tags: &[(&str, &str)]) {
    let mut set = object_store::TagSet::default();
    for (k, v) in tags {
        set.push(k, v);
    }
    let opts = object_store::PutOptions {
        tags: set,
        ..object_store::PutOptions::default()
    };
    object_store::ObjectStore::put_opts(c, &Path::from(key), key.as_bytes().to_vec().into(), opts)
        .await
        .unwrap();
}

/// A rule by prefix and two tags (by days) and a rule by one tag alone (by a past date), with a
/// batch of 4 keys examined per pass: over several passes and a gateway restart the worker
/// expires exactly the keys of the prefix carrying both tags and the keys carrying the other
/// tag, never one with a tag missing or of another value, outside the prefix, younger than the
/// rule's days, or untagged after its PUT; every expired byte leaves its backend.
async fn lifecycle_tags_drill(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fs = backends(dir.path(), &["a", "b"]).await;
    let cfg = || {
        let mut c = config(url, &fs, 1);
        c.workers.lifecycle.batch_size = 4;
        c.workers.lifecycle.day = Interval(DAY);
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        c.buckets = vec![BucketConfig {
            lifecycle: vec![
                LifecycleRuleConfig {
                    id: "scratch".into(),
                    enabled: true,
                    prefix: "scratch/".into(),
                    expiration_days: Some(1),
                    expiration_date: None,
                    abort_incomplete_upload_days: None,
                    tags: tags(&[("class", "scratch"), ("team", "a")]),
                    noncurrent_days: None,
                    newer_noncurrent_versions: None,
                    expired_object_delete_marker: false,
                },
                LifecycleRuleConfig {
                    id: "flagged".into(),
                    enabled: true,
                    prefix: String::new(),
                    expiration_days: None,
                    expiration_date: Some("2001-01-01T00:00:00Z".into()),
                    abort_incomplete_upload_days: None,
                    tags: tags(&[("expire", "yes")]),
                    noncurrent_days: None,
                    newer_noncurrent_versions: None,
                    expired_object_delete_marker: false,
                },
            ],
            ..BucketConfig::new(BUCKET)
        }];
        c
    };
    let gw = Gateway::start(cfg()).await.unwrap();
    let c = gw_client(&gw.endpoint());
    let both: &[(&str, &str)] = &[("class", "scratch"), ("team", "a")];
    let expiring = ["scratch/0", "scratch/3", "scratch/7", "x/flagged"];
    put_tagged(&c, "scratch/0", both).await;
    put_tagged(&c, "scratch/1", &[("class", "scratch")]).await;
    put_tagged(&c, "scratch/2", &[("class", "scratch"), ("team", "b")]).await;
    put_tagged(
        &c,
        "scratch/3",
        &[("class", "scratch"), ("team", "a"), ("z", "1")],
    )
    .await;
    put_tagged(&c, "scratch/4", &[]).await;
    put_tagged(&c, "scratch/5", both).await;
    put_tagged(&c, "scratch/6", &[("team", "a")]).await;
    put_tagged(&c, "scratch/7", both).await;
    put_tagged(&c, "other/0", both).await;
    put_tagged(&c, "x/flagged", &[("expire", "yes")]).await;
    put_tagged(&c, "x/kept", &[("expire", "no")]).await;
    // The tags arrived with the PUTs.
    let l = gw
        .store()
        .get_all_object_locations(&format!("{BUCKET}/scratch/0"))
        .await
        .unwrap();
    assert_eq!(l[0].form.tags.len(), 2, "{:?}", l[0].form.tags);
    // scratch/5 loses its tags before any pass.
    gw.store()
        .set_object_tags(&format!("{BUCKET}/scratch/5"), &Default::default())
        .await
        .unwrap();
    tokio::time::sleep(DAY + Duration::from_millis(500)).await;
    put_tagged(&c, "scratch/young", both).await;
    // Pass 1: four keys examined at most.
    let r = gw.run_worker_once(Worker::Lifecycle).await;
    assert!(r.count("expired") <= 4, "{r:?}");
    let mut expired = r.count("expired");
    verify(gw.store()).await;
    gw.shutdown().await;
    let gw = Gateway::start(cfg()).await.unwrap();
    let c = gw_client(&gw.endpoint());
    for _ in 0..8 {
        let r = gw.run_worker_once(Worker::Lifecycle).await;
        let PassResult::Ran(_) = &r else {
            panic!("lifecycle pass: {r:?}")
        };
        assert_eq!(r.count("changed"), 0, "{r:?}");
        expired += r.count("expired");
        verify(gw.store()).await;
    }
    assert_eq!(expired, expiring.len() as u64);
    let left = ledger_keys(&gw).await;
    assert_eq!(
        left,
        [
            "other/0",
            "scratch/1",
            "scratch/2",
            "scratch/4",
            "scratch/5",
            "scratch/6",
            "scratch/young",
            "x/kept"
        ],
        "exactly the tagged keys expired"
    );
    for k in expiring {
        let e = get(&c, k).await.unwrap_err();
        assert!(
            matches!(e, object_store::Error::NotFound { .. }),
            "{k}: {e}"
        );
    }
    for k in &left {
        assert_eq!(get(&c, k).await.unwrap().as_ref(), k.as_bytes(), "{k}");
    }
    nothing_forgotten(gw.store(), &fs).await;
    assert_eq!(gw.store().cleanup_queue_depth().await.unwrap(), 0);
    gw.shutdown().await;
    eprintln!(
        "drill lifecycle tags: {expired} expired, {} kept",
        left.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_tag_filters_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle_tags_drill(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_tag_filters_postgres() {
    let Some((url, schema)) = pg_url() else {
        eprintln!("skipped: S3O_PG_URL not set");
        return;
    };
    lifecycle_tags_drill(&url).await;
    drop_schema(&schema).await;
}

/// `(key within the bucket, size, delete marker, latest)` of every version the ledger holds
/// in `BUCKET`, in ListObjectVersions order.
async fn ledger_versions(gw: &RunningGateway) -> Vec<(String, i64, bool, bool)> {
    let prefix = format!("{BUCKET}/");
    let page = gw
        .store()
        .list_object_versions(&prefix, "", "", "", 1000)
        .await
        .unwrap();
    assert!(!page.is_truncated);
    page.versions
        .into_iter()
        .map(|v| {
            (
                v.object_key[prefix.len()..].to_owned(),
                v.size_bytes,
                v.delete_marker,
                v.is_latest,
            )
        })
        .collect()
}

/// Every backend holds exactly the bytes of every version the ledger records on it (current
/// and noncurrent copies): nothing expired left behind, nothing kept lost.
async fn every_version_accounted(gw: &RunningGateway, fs: &[Fs]) {
    let mut recorded: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = fs
        .iter()
        .map(|f| (f.name.clone(), Default::default()))
        .collect();
    let mut keys: Vec<String> = gw
        .store()
        .list_object_versions(&format!("{BUCKET}/"), "", "", "", 1000)
        .await
        .unwrap()
        .versions
        .into_iter()
        .map(|v| v.object_key)
        .collect();
    keys.dedup();
    for k in &keys {
        // A key hidden by a marker has no current copy (`ObjectNotFound`).
        let mut all = match gw.store().get_all_object_locations(k).await {
            Err(s3o_store::StoreError::ObjectNotFound { .. }) => Vec::new(),
            r => r.unwrap(),
        };
        all.extend(gw.store().get_noncurrent_copies(k).await.unwrap());
        for l in all {
            recorded
                .entry(l.backend_name.clone())
                .or_default()
                .insert(l.form.storage_path(&l.object_key).to_owned());
        }
    }
    for f in fs {
        assert_eq!(
            f.paths().await,
            recorded[&f.name],
            "{}: backend != ledger",
            f.name
        );
    }
}

/// Lifecycle in a versioned bucket, end to end over S3 with a restart between passes, batch of
/// 3: `NoncurrentVersionExpiration` deletes exactly the noncurrent versions noncurrent longer
/// than its days beyond the newest `NewerNoncurrentVersions` (their bytes leave the backends),
/// `ExpiredObjectDeleteMarker` removes delete markers left alone (and never one hiding a
/// version), and `Expiration` writes a delete marker over a current version (its bytes stay,
/// noncurrent). The ledger's arithmetic holds after every pass.
async fn lifecycle_versions_drill(url: &str) {
    // A longer day than the other drills: the keys written after the sleep must stay younger
    // than a day through the restart and every pass below, also on a loaded CI machine (with
    // 3 s they aged out there and expired too).
    const DAY: Duration = Duration::from_secs(12);
    let dir = tempfile::tempdir().unwrap();
    let fs = backends(dir.path(), &["a", "b"]).await;
    let cfg = || {
        let mut c = config(url, &fs, 1);
        c.workers.lifecycle.batch_size = 3;
        c.workers.lifecycle.day = Interval(DAY);
        let rule = |id: &str, prefix: &str| LifecycleRuleConfig {
            id: id.into(),
            enabled: true,
            prefix: prefix.into(),
            expiration_days: None,
            expiration_date: None,
            abort_incomplete_upload_days: None,
            tags: Default::default(),
            noncurrent_days: None,
            newer_noncurrent_versions: None,
            expired_object_delete_marker: false,
        };
        c.buckets = vec![BucketConfig {
            lifecycle: vec![
                LifecycleRuleConfig {
                    noncurrent_days: Some(1),
                    newer_noncurrent_versions: Some(1),
                    ..rule("noncurrent", "nc/")
                },
                LifecycleRuleConfig {
                    noncurrent_days: Some(1),
                    expired_object_delete_marker: true,
                    ..rule("markers", "dm/")
                },
                LifecycleRuleConfig {
                    expiration_days: Some(1),
                    ..rule("current", "cur/")
                },
            ],
            ..BucketConfig::new(BUCKET)
        }];
        c
    };
    let gw = Gateway::start(cfg()).await.unwrap();
    gw.store()
        .set_bucket_versioning(BUCKET, s3o_store::Versioning::Enabled)
        .await
        .unwrap();
    let c = gw_client(&gw.endpoint());
    let del = |k: &'static str| {
        let c = c.clone();
        async move { c.delete(&Path::from(k)).await.unwrap() }
    };
    for (i, n) in [11, 12, 13, 14].into_iter().enumerate() {
        put(&c, "nc/k", &body(i as u64, n)).await.unwrap();
    }
    put(&c, "nc/j", &body(5, 21)).await.unwrap();
    put(&c, "nc/j", &body(6, 22)).await.unwrap();
    put(&c, "dm/x", &body(7, 31)).await.unwrap();
    del("dm/x").await;
    del("dm/ghost").await;
    put(&c, "cur/a", &body(8, 41)).await.unwrap();
    tokio::time::sleep(DAY + Duration::from_millis(500)).await;
    // Younger than a day: spared by every rule.
    put(&c, "dm/y", &body(9, 51)).await.unwrap();
    del("dm/y").await;
    put(&c, "cur/young", &body(10, 42)).await.unwrap();
    put(&c, "nc/young", &body(11, 61)).await.unwrap();
    put(&c, "nc/young", &body(12, 62)).await.unwrap();
    let r = gw.run_worker_once(Worker::Lifecycle).await;
    let PassResult::Ran(_) = &r else {
        panic!("lifecycle pass: {r:?}")
    };
    let labels = [
        "noncurrent_expired",
        "marker_removed",
        "expired",
        "marker_written",
    ];
    let mut counts = labels.map(|l| r.count(l));
    assert!(counts[..3].iter().sum::<u64>() <= 3, "batch of 3: {r:?}");
    verify(gw.store()).await;
    gw.shutdown().await;
    let gw = Gateway::start(cfg()).await.unwrap();
    for _ in 0..12 {
        let r = gw.run_worker_once(Worker::Lifecycle).await;
        let PassResult::Ran(_) = &r else {
            panic!("lifecycle pass: {r:?}")
        };
        assert_eq!(r.count("changed"), 0, "{r:?}");
        for (n, l) in counts.iter_mut().zip(labels) {
            *n += r.count(l);
        }
        verify(gw.store()).await;
    }
    assert_eq!(counts, [3, 2, 1, 1], "{labels:?}");
    let v = |k: &str, size: i64, marker: bool, latest: bool| (k.to_owned(), size, marker, latest);
    assert_eq!(
        ledger_versions(&gw).await,
        [
            // Expired: a marker over the current version, which stays as noncurrent.
            v("cur/a", 0, true, true),
            v("cur/a", 41, false, false),
            v("cur/young", 42, false, true),
            // dm/x (its old version, then its lone marker) and dm/ghost are gone; a young
            // marker hiding a version stays.
            v("dm/y", 0, true, true),
            v("dm/y", 51, false, false),
            // The newest noncurrent version is kept; v1 and v2 are gone.
            v("nc/j", 22, false, true),
            v("nc/j", 21, false, false),
            v("nc/k", 14, false, true),
            v("nc/k", 13, false, false),
            v("nc/young", 62, false, true),
            v("nc/young", 61, false, false),
        ]
    );
    let c = gw_client(&gw.endpoint());
    assert!(matches!(
        get(&c, "cur/a").await.unwrap_err(),
        object_store::Error::NotFound { .. }
    ));
    assert_eq!(get(&c, "nc/k").await.unwrap().as_ref(), body(3, 14));
    // Every expired byte left its backend, every kept version's bytes are there.
    every_version_accounted(&gw, &fs).await;
    let used: i64 = gw
        .store()
        .get_quota_stats()
        .await
        .unwrap()
        .values()
        .map(|q| q.bytes_used)
        .sum();
    assert_eq!(used, 41 + 42 + 51 + 22 + 21 + 14 + 13 + 62 + 61);
    assert_eq!(gw.store().cleanup_queue_depth().await.unwrap(), 0);
    // /metrics counts what stayed: noncurrent copies and bytes per backend, the markers.
    let stats = gw.store().get_version_stats().await.unwrap();
    assert_eq!(stats.delete_markers, 2);
    let page = metrics_page(&gw.endpoint()).await;
    let mut bytes = 0;
    for f in &fs {
        let s = stats.noncurrent.get(&f.name).copied().unwrap_or_default();
        bytes += s.bytes;
        for (family, n) in [
            ("s3o_noncurrent_versions", s.copies),
            ("s3o_noncurrent_bytes", s.bytes),
        ] {
            let line = format!("{family}{{backend=\"{}\"}} {n}\n", f.name);
            assert!(page.contains(&line), "{line} in {page}");
        }
    }
    assert_eq!(bytes, 41 + 51 + 21 + 13 + 61, "noncurrent bytes");
    assert!(page.contains("s3o_delete_markers 2\n"), "{page}");
    verify(gw.store()).await;
    gw.shutdown().await;
}

/// The gateway's `/metrics` page.
async fn metrics_page(endpoint: &str) -> String {
    let stream = tokio::net::TcpStream::connect(endpoint.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_versions_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle_versions_drill(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_versions_postgres() {
    let Some((url, schema)) = pg_url() else {
        eprintln!("skipped: S3O_PG_URL not set");
        return;
    };
    lifecycle_versions_drill(&url).await;
    drop_schema(&schema).await;
}

const DUAL: &str = "dual";

fn usage_config(url: &str, fs: &[Fs], limits: &[(&str, u64)]) -> Config {
    let mut c = config(url, fs, 1);
    c.buckets.push(BucketConfig {
        replication_factor: 2,
        ..BucketConfig::new(DUAL)
    });
    for b in &mut c.backends {
        if let Some((_, l)) = limits.iter().find(|(n, _)| *n == b.name) {
            b.api_request_limit = *l;
        }
    }
    c
}

/// Workers spare a backend over its monthly budget: with `a` over its request limit (from the
/// flushed totals of an earlier gateway), a scrub pass reads only the copies on `b` (the
/// copies on `a` counted as skipped, the reason recorded once) and the rebalancer moves
/// nothing; `a`'s server sees no request from either pass. With the limit lifted, the next
/// scrub pass reads the copies on `a`.
async fn over_budget_drill(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fs = backends(dir.path(), &["a", "b"]).await;
    let cfg = |limit_a: u64| {
        let mut c = config(url, &fs, 2);
        c.backends = fs.iter().map(|f| f.config(100_000)).collect();
        c.backends[0].api_request_limit = limit_a;
        c.workers.rebalance.enabled = true;
        c
    };
    let gw = Gateway::start(cfg(0)).await.unwrap();
    let c = gw_client(&gw.endpoint());
    for i in 0..4u64 {
        put(&c, &format!("s/{i}"), &body(i, 2000)).await.unwrap();
    }
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 4, "{r:?}");
    gw.shutdown().await;
    let gw = Gateway::start(cfg(1)).await.unwrap();
    let served = || fs[0].requests.load(std::sync::atomic::Ordering::SeqCst);
    let before = served();
    let r = gw.run_worker_once(Worker::Scrub).await;
    assert_eq!(r.count("backend_over_budget"), 1, "{r:?}");
    assert_eq!(r.count("skipped_over_budget"), 4, "{r:?}");
    assert_eq!(r.count("hashed"), 4, "{r:?}");
    let r = gw.run_worker_once(Worker::Rebalance).await;
    assert_eq!(r.count("backend_over_budget"), 1, "{r:?}");
    assert_eq!(r.count("moved"), 0, "{r:?}");
    assert_eq!(
        served(),
        before,
        "no request reached the backend over its budget"
    );
    verify(gw.store()).await;
    gw.shutdown().await;
    let gw = Gateway::start(cfg(0)).await.unwrap();
    let r = gw.run_worker_once(Worker::Scrub).await;
    assert_eq!(r.count("backend_over_budget"), 0, "{r:?}");
    assert_eq!(r.count("hashed"), 4, "{r:?}");
    assert!(served() > before);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_spare_over_budget_backends_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    over_budget_drill(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_spare_over_budget_backends_postgres() {
    let Some((url, schema)) = pg_url() else {
        eprintln!("skipped: S3O_PG_URL not set");
        return;
    };
    over_budget_drill(&url).await;
    drop_schema(&schema).await;
}

/// Flushes the usage counts, then `backend`'s api_requests of the month in the ledger.
async fn flushed(gw: &RunningGateway, backend: &str) -> i64 {
    let r = gw.run_worker_once(Worker::UsageFlush).await;
    assert!(matches!(r, PassResult::Ran(_)), "{r:?}");
    month(gw)
        .await
        .get(backend)
        .copied()
        .unwrap_or_default()
        .api_requests
}

/// Every backend call a worker pass makes is counted against the budget exactly once: the
/// reconciler's signed ListMultipartUploads (made beside object_store) included. The requests
/// the s3s-fs backend served during a reconcile pass, then during one pass of every worker,
/// equal the api_requests the gateway flushed to the ledger for them.
async fn worker_calls_metered_drill(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fs = backends(dir.path(), &["a"]).await;
    let mut cfg = config(url, &fs, 1);
    cfg.workers.reconcile.grace = Interval(Duration::ZERO);
    let gw = Gateway::start(cfg).await.unwrap();
    let c = gw_client(&gw.endpoint());
    for i in 0..3u64 {
        put(&c, &format!("m/{i}"), &body(i, 300)).await.unwrap();
    }
    // An upload a crash left open on the backend (under s3o's layout, no intent names it).
    let backend = client(&fs[0].endpoint(), "pool", BACKEND_AK, BACKEND_SK);
    let stray = Path::from(format!(
        "{BUCKET}/m%2Fstray/@0000000000000001-{}",
        "0".repeat(32)
    ));
    backend.create_multipart(&stray).await.unwrap();
    let served = || fs[0].requests.load(std::sync::atomic::Ordering::SeqCst);
    let listings = || {
        fs[0]
            .upload_listings
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let (m0, r0, l0) = (flushed(&gw, "a").await, served(), listings());
    let r = gw.run_worker_once(Worker::Reconcile).await;
    assert!(matches!(r, PassResult::Ran(_)), "{r:?}");
    let (m1, r1, l1) = (flushed(&gw, "a").await, served(), listings());
    assert!(l1 > l0, "the reconciler listed the backend's uploads");
    assert!(r1 > r0);
    assert_eq!(m1 - m0, i64::try_from(r1 - r0).unwrap(), "reconcile pass");
    let all = gw.run_workers_once().await;
    assert!(
        all.passes
            .iter()
            .all(|(_, r)| matches!(r, PassResult::Ran(_))),
        "{all:?}"
    );
    let (m2, r2) = (flushed(&gw, "a").await, served());
    assert_eq!(
        m2 - m1,
        i64::try_from(r2 - r1).unwrap(),
        "a pass of every worker"
    );
    gw.shutdown().await;
    eprintln!(
        "drill worker calls metered: reconcile {} requests ({} upload listings), all workers {}",
        r1 - r0,
        l1 - l0,
        r2 - r1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_calls_are_metered_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    worker_calls_metered_drill(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_calls_are_metered_postgres() {
    let Some((url, schema)) = pg_url() else {
        eprintln!("skipped: S3O_PG_URL not set");
        return;
    };
    worker_calls_metered_drill(&url).await;
    drop_schema(&schema).await;
}

async fn month(gw: &RunningGateway) -> std::collections::BTreeMap<String, s3o_store::UsageStat> {
    let now = time::OffsetDateTime::now_utc();
    let period = format!("{:04}-{:02}", now.year(), u8::from(now.month()));
    gw.store().get_usage_for_period(&period).await.unwrap()
}

/// The budgets: every backend call is counted and flushed at shutdown; a restarted gateway
/// starts from the flushed totals, so a backend that reached its request limit is skipped for
/// writes at once; a read of an object whose only copy is there answers 429 SlowDown, one with
/// a second copy elsewhere is served from it; deletes still run; with every backend over, a
/// write answers 507. Two gateways' counts add up in the ledger.
async fn usage_drill(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let fs = backends(dir.path(), &["a", "b"]).await;
    // No limits yet: pack routing puts everything on a; the replicator copies dual/ to b.
    let gw = Gateway::start(usage_config(url, &fs, &[])).await.unwrap();
    let c = gw_client(&gw.endpoint());
    let dual = client(&gw.endpoint(), DUAL, AK, SK);
    put(&c, "solo", &body(1, 300)).await.unwrap();
    put(&dual, "twice", &body(2, 400)).await.unwrap();
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 1, "{r:?}");
    assert_eq!(holders(gw.store(), &["solo".into()]).await["solo"], ["a"]);
    // Nothing flushed yet: the counts are in memory.
    assert!(month(&gw).await.is_empty());
    gw.shutdown().await;
    let first = Gateway::start(usage_config(url, &fs, &[])).await.unwrap();
    let flushed = month(&first).await;
    first.shutdown().await;
    let a = flushed["a"];
    assert!(a.api_requests >= 3, "{flushed:?}");
    assert!(a.ingress_bytes >= 700, "{flushed:?}");
    assert!(
        a.egress_bytes >= 400,
        "the replica was read from a: {flushed:?}"
    );
    assert!(flushed["b"].ingress_bytes >= 400, "{flushed:?}");

    // a's request limit is what it has spent (and a little more for the start-up above):
    // a restarted gateway knows it is over from the flushed totals alone.
    let spent = month_of(url, &fs).await["a"].api_requests;
    let limit = u64::try_from(spent).unwrap();
    let gw = Gateway::start(usage_config(url, &fs, &[("a", limit)]))
        .await
        .unwrap();
    let c = gw_client(&gw.endpoint());
    let dual = client(&gw.endpoint(), DUAL, AK, SK);
    put(&c, "later", &body(3, 200)).await.unwrap();
    assert_eq!(
        holders(gw.store(), &["later".into()]).await["later"],
        ["b"],
        "the write skipped the backend over its budget"
    );
    let e = get(&c, "solo").await.unwrap_err().to_string();
    assert!(e.contains("429") || e.contains("SlowDown"), "{e}");
    assert_eq!(
        get(&dual, "twice").await.unwrap().as_ref(),
        body(2, 400),
        "the copy on b serves the read"
    );
    // Deletes spend no budget check: the bytes on a go.
    c.delete(&Path::from("solo")).await.unwrap();
    assert!(holders(gw.store(), &["solo".into()]).await.is_empty());
    nothing_forgotten(gw.store(), &fs).await;
    verify(gw.store()).await;
    gw.shutdown().await;

    // Every backend over its budget: 507.
    let now = month_of(url, &fs).await;
    let limits = [
        ("a", u64::try_from(now["a"].api_requests).unwrap()),
        ("b", u64::try_from(now["b"].api_requests).unwrap()),
    ];
    let gw = Gateway::start(usage_config(url, &fs, &limits))
        .await
        .unwrap();
    let c = gw_client(&gw.endpoint());
    let e = put(&c, "nowhere", b"x").await.unwrap_err().to_string();
    assert!(
        e.contains("507") || e.contains("InsufficientStorage"),
        "{e}"
    );
    assert!(holders(gw.store(), &["nowhere".into()]).await.is_empty());
    gw.shutdown().await;

    // The operator's month view: the ledger's counts beside the configured budgets.
    let flushed_now = month_of(url, &fs).await;
    let view = s3o_gateway::month_usage(&usage_config(url, &fs, &limits), None)
        .await
        .unwrap();
    let names: Vec<&str> = view.backends.iter().map(|b| b.backend.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    for (b, (_, limit)) in view.backends.iter().zip(limits) {
        assert_eq!(b.used, flushed_now[&b.backend], "{}", b.backend);
        assert_eq!(b.limits.api_request_limit, i64::try_from(limit).unwrap());
        assert!(b.over_budget, "{}", b.backend);
    }
    let past = s3o_gateway::month_usage(&usage_config(url, &fs, &limits), Some("2001-01"))
        .await
        .unwrap();
    assert!(
        past.backends
            .iter()
            .all(|b| b.used == Default::default() && !b.over_budget)
    );
    assert!(
        s3o_gateway::month_usage(&usage_config(url, &fs, &limits), Some("2001-13"))
            .await
            .is_err()
    );
    // The same through `s3o-gateway usage --config FILE --json`.
    let toml = config_toml_with(url, "pack", &[(BUCKET, 1), (DUAL, 2)], &fs, 0, "").replace(
        "name = \"a\"\n",
        &format!("name = \"a\"\napi_request_limit = {}\n", limits[0].1),
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3o-gateway"))
        .args(["usage", "--json", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v["backends"][0];
    assert_eq!(a["backend"], "a");
    assert_eq!(
        a["api_requests"].as_i64(),
        Some(flushed_now["a"].api_requests)
    );
    assert_eq!(a["over_budget"], true);
    assert_eq!(v["backends"][1]["api_request_limit"].as_i64(), Some(0));
    assert_eq!(v["backends"][1]["over_budget"], false);

    // Two gateways on one ledger: their counts add up. Each small PUT is one request of its
    // body's length to the backend it lands on.
    let base = month_of(url, &fs).await;
    let one = Gateway::start(usage_config(url, &fs, &[])).await.unwrap();
    let two = Gateway::start(usage_config(url, &fs, &[])).await.unwrap();
    let (c1, c2) = (gw_client(&one.endpoint()), gw_client(&two.endpoint()));
    for i in 0..3u64 {
        put(&c1, &format!("one/{i}"), &body(10 + i, 50))
            .await
            .unwrap();
    }
    for i in 0..2u64 {
        put(&c2, &format!("two/{i}"), &body(20 + i, 70))
            .await
            .unwrap();
    }
    // A flush by the worker, then the rest at shutdown.
    let r = one.run_worker_once(Worker::UsageFlush).await;
    assert_eq!(r.count("flushed"), 1, "{r:?}");
    one.shutdown().await;
    two.shutdown().await;
    let after = month_of(url, &fs).await;
    // Start-up of month_of's gateway itself makes no backend call.
    assert_eq!(
        after["a"].ingress_bytes - base["a"].ingress_bytes,
        3 * 50 + 2 * 70
    );
    assert_eq!(after["a"].api_requests - base["a"].api_requests, 5);
}

/// This month's flushed usage, read through a gateway started (and stopped) for the purpose.
async fn month_of(
    url: &str,
    fs: &[Fs],
) -> std::collections::BTreeMap<String, s3o_store::UsageStat> {
    let gw = Gateway::start(usage_config(url, fs, &[])).await.unwrap();
    let m = month(&gw).await;
    gw.shutdown().await;
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_budgets_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    usage_drill(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_budgets_postgres() {
    let Some((url, schema)) = pg_url() else {
        eprintln!("skipped: S3O_PG_URL not set");
        return;
    };
    usage_drill(&url).await;
    drop_schema(&schema).await;
}
