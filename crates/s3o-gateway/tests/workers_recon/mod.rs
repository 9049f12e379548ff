//! Drills of the reconciler, the scrubber, the rebalancer and the notifier: real s3s-fs
//! backends over HTTP and local directories, on each ledger engine.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use object_store::multipart::MultipartStore as _;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use s3o_gateway::workers::Interval;
use s3o_gateway::{BackendConfig, Config, Gateway, Worker};
use s3o_store::{MetadataStore, ObjectLocation, PendingObject, StoredForm, Timestamp};

use crate::kills::{Engine, ledger_url};
use crate::support::*;

/// A fresh version id in the gateway's format (`<16 hex µs>-<32 hex>`).
fn version() -> String {
    let micros = Timestamp::now().as_micros().max(0);
    format!("{micros:016x}-{}", uuid::Uuid::new_v4().simple())
}

/// The backend path of a version of a plain key (letters and digits need no escaping).
fn version_path(key: &str) -> String {
    format!("{BUCKET}/{key}/@{}", version())
}

/// Records a write intent for `path` on `backend`, as a PUT does before its first byte.
async fn intent(store: &MetadataStore, key: &str, backend: &str, path: &str) -> PendingObject {
    let p = PendingObject {
        intent_id: uuid::Uuid::new_v4().to_string(),
        object_key: format!("{BUCKET}/{key}"),
        backend_name: backend.to_owned(),
        size_bytes: 3,
        form: StoredForm {
            storage_key: path.to_owned(),
            ..StoredForm::default()
        },
        created_at: Timestamp::ZERO,
    };
    store.insert_pending(&p).await.unwrap();
    p
}

fn config_on(url: &str, fs: &[Fs], local: &std::path::Path, grace: Interval) -> Config {
    let mut cfg = config(url, fs, 1);
    cfg.backends.push(BackendConfig::local("l", local, 0));
    cfg.workers.reconcile.grace = grace;
    cfg
}

/// Every file under a local backend's directory, relative, `/`-separated.
fn local_files(root: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.insert(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    out
}

/// Planted on an S3 backend and a local directory: unreferenced versions and parts (deleted),
/// backend multipart uploads and staging files a killed write left (aborted), and beside
/// them what must stay: committed copies, bytes and uploads of writes in flight (an intent
/// names them), parts of a live client upload, foreign objects and uploads, and everything
/// younger than the grace. After the intents are abandoned, their uploads go too; the
/// ledger verifies and the live key reads back at every step.
pub(crate) async fn reconcile_removes_strays_and_keeps_the_rest(engine: Engine) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "reconcile drill") else {
        return;
    };
    let fs = vec![Fs::start("a", &dir.path().join("a")).await];
    let local = dir.path().join("l");
    let raw = client(&fs[0].endpoint(), "pool", BACKEND_AK, BACKEND_SK);
    let put_raw = |p: String| {
        let raw = raw.clone();
        async move {
            raw.put(
                &Path::from(p.as_str()),
                PutPayload::from(Bytes::from_static(b"abc")),
            )
            .await
            .unwrap();
            p
        }
    };

    // A gateway with a one-hour grace first: everything planted is young and stays.
    let gw = Gateway::start(config_on(&url, &fs, &local, Interval::secs(3600)))
        .await
        .unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    put(&c, "live", b"live bytes").await.unwrap();
    // A live client multipart upload with one part (its parts sit under .mpu/<id>/).
    let mut mpu = c.put_multipart(&Path::from("big")).await.unwrap();
    mpu.put_part(PutPayload::from(vec![7u8; 5 << 20]))
        .await
        .unwrap();

    let stray_version = put_raw(version_path("ghost")).await;
    let stray_old_live = put_raw(version_path("live")).await;
    let stray_part = put_raw(".mpu/no-such-upload/00001-0123".to_owned()).await;
    let flying = put_raw(version_path("flying")).await;
    let flying_intent = intent(&store, "flying", "a", &flying).await;
    let foreign = [
        put_raw("elsewhere/thing.txt".to_owned()).await,
        put_raw(format!("{BUCKET}/cat.jpg")).await,
        put_raw(format!("{BUCKET}/x/@v1")).await,
    ];
    // Backend multipart uploads: one a write killed before recording it left, one of a
    // write in flight (its intent names the path), one foreign.
    let mp = raw.clone();
    let orphan_upload = version_path("killed");
    mp.create_multipart(&Path::from(orphan_upload.as_str()))
        .await
        .unwrap();
    let streaming = version_path("streaming");
    let streaming_intent = intent(&store, "streaming", "a", &streaming).await;
    mp.create_multipart(&Path::from(streaming.as_str()))
        .await
        .unwrap();
    mp.create_multipart(&Path::from("elsewhere/big.bin"))
        .await
        .unwrap();

    // The local directory: a stray version, a staging file left by a killed write, a staging
    // file of a write in flight, a foreign file.
    let l_live = gw_local_put(&store, &c, &local).await;
    std::fs::create_dir_all(local.join(BUCKET).join("lghost")).unwrap();
    let l_stray = format!("{BUCKET}/lghost/@{}", version());
    std::fs::write(local.join(&l_stray), b"abc").unwrap();
    let l_staging = format!("{BUCKET}/lghost/@{}#1", version());
    std::fs::write(local.join(&l_staging), b"partial").unwrap();
    let l_flying = format!("{BUCKET}/lghost/@{}", version());
    let l_flying_intent = intent(&store, "lghost", "l", &l_flying).await;
    let l_flying_staging = format!("{l_flying}#1");
    std::fs::write(local.join(&l_flying_staging), b"partial").unwrap();
    std::fs::create_dir_all(local.join("elsewhere")).unwrap();
    std::fs::write(local.join("elsewhere/notes.txt"), b"mine").unwrap();

    let before_s3 = fs[0].paths().await;
    let before_parts = fs[0].part_paths().await;
    let before_local = local_files(&local);
    let r = gw.run_worker_once(Worker::Reconcile).await;
    assert_eq!(r.count("stray_deleted"), 0, "{r:?}");
    assert_eq!(r.count("upload_aborted"), 0, "{r:?}");
    assert!(
        r.count("young") >= 8 && r.count("upload_young") >= 5,
        "{r:?}"
    );
    assert_eq!(fs[0].paths().await, before_s3);
    assert_eq!(fs[0].part_paths().await, before_parts);
    assert_eq!(local_files(&local), before_local);
    assert_eq!(open_uploads_in(&fs[0].root, "pool").len(), 3);
    gw.shutdown().await;

    // No grace: exactly the unreferenced versions, parts, uploads and staging files go.
    let gw = Gateway::start(config_on(&url, &fs, &local, Interval::millis(0)))
        .await
        .unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    let r = gw.run_worker_once(Worker::Reconcile).await;
    assert_eq!(r.count("stray_deleted"), 4, "{r:?}");
    assert_eq!(r.count("upload_aborted"), 2, "{r:?}");
    assert_eq!(r.count("upload_in_flight"), 2, "{r:?}");
    assert_eq!(r.count("upload_foreign"), 1, "{r:?}");
    assert!(r.count("foreign") >= 4, "{r:?}");
    let mut expect_s3 = before_s3.clone();
    for p in [&stray_version, &stray_old_live] {
        assert!(expect_s3.remove(p.as_str()), "{p} was planted");
    }
    assert_eq!(fs[0].paths().await, expect_s3);
    let mut expect_parts = before_parts.clone();
    assert!(expect_parts.remove(stray_part.as_str()));
    assert_eq!(fs[0].part_paths().await, expect_parts);
    for f in &foreign {
        assert!(expect_s3.contains(f.as_str()), "{f} kept");
    }
    assert!(expect_s3.contains(flying.as_str()));
    let open: Vec<String> = open_uploads_in(&fs[0].root, "pool")
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(open, ["elsewhere/big.bin".to_owned(), streaming.clone()]);
    let mut expect_local = before_local.clone();
    for p in [&l_stray, &l_staging] {
        assert!(expect_local.remove(p.as_str()), "{p} was planted");
    }
    assert_eq!(local_files(&local), expect_local);
    assert!(expect_local.contains(&l_live) && expect_local.contains(&l_flying_staging));
    assert_eq!(get(&c, "live").await.unwrap().as_ref(), b"live bytes");
    verify(&store).await;

    // The writes in flight end (abandoned, as the reaper does): their bytes are queued and
    // deleted, and the reconciler then aborts their uploads and staging files.
    for p in [&flying_intent, &streaming_intent, &l_flying_intent] {
        let (_, queued) = store.abandon_pending(p).await.unwrap();
        assert_eq!(queued.len(), 1);
    }
    let r = gw.run_worker_once(Worker::Cleanup).await;
    assert_eq!(r.count("deleted"), 3, "{r:?}");
    let r = gw.run_worker_once(Worker::Reconcile).await;
    assert_eq!(r.count("upload_aborted"), 2, "{r:?}");
    assert_eq!(r.count("stray_deleted"), 0, "{r:?}");
    let open: Vec<String> = open_uploads_in(&fs[0].root, "pool")
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(open, ["elsewhere/big.bin".to_owned()]);
    assert!(!local_files(&local).contains(&l_flying_staging));
    // The client upload's part is still recorded and on the backend.
    drop(mpu);
    let ups = store.list_multipart_uploads("", 10).await.unwrap();
    assert_eq!(ups.len(), 1);
    let parts = store.get_parts(&ups[0].upload_id).await.unwrap();
    assert_eq!(parts.len(), 1);
    let part_dir = format!(".mpu/{}/", ups[0].upload_id);
    let on_backend = fs[0].part_paths().await;
    assert_eq!(on_backend.len(), 1);
    assert!(
        on_backend.iter().all(|p| p.starts_with(&part_dir)),
        "{on_backend:?}"
    );
    assert_eq!(get(&c, "live").await.unwrap().as_ref(), b"live bytes");
    verify(&store).await;
    // Nothing of s3o's is left that the ledger does not record.
    let recorded = ledger_paths(&store, "a").await;
    let s3o_paths: BTreeSet<String> = fs[0]
        .paths()
        .await
        .into_iter()
        .filter(|p| {
            p.starts_with(&format!("{BUCKET}/"))
                && p.contains("/@")
                && *p != format!("{BUCKET}/x/@v1")
        })
        .collect();
    assert_eq!(s3o_paths, recorded);
    gw.shutdown().await;
    if let Some(s) = schema {
        drop_schema(&s).await;
    }
    eprintln!("drill reconcile [{engine:?}]: {:?}", started.elapsed());
}

/// PUTs `lkey` (routed to `a`) and records a replica of it on the local backend `l`, its
/// bytes copied to the same path, as the replicator does; returns that path.
async fn gw_local_put(
    store: &MetadataStore,
    c: &object_store::aws::AmazonS3,
    local: &std::path::Path,
) -> String {
    put(c, "lkey", b"local bytes").await.unwrap();
    let loc = store
        .get_all_object_locations(&format!("{BUCKET}/lkey"))
        .await
        .unwrap();
    let src = &loc[0];
    let path = src.form.storage_path(&src.object_key).to_owned();
    let file = local.join(&path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"local bytes").unwrap();
    store
        .record_replica(&src.object_key, "l", &src.backend_name, &path)
        .await
        .unwrap();
    path
}

/// The file s3s-fs keeps an object of its bucket `pool` in.
fn backend_file(f: &Fs, path: &str) -> std::path::PathBuf {
    f.root.join("pool").join(path)
}

/// Flips one byte of a stored copy in place (same size: only a hash can tell).
fn flip_a_byte(f: &Fs, path: &str) {
    let file = backend_file(f, path);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
}

/// The scrubber over two backends with replication factor 2: a first pass hashes every copy
/// (checked against its single-PUT ETag) and catches a copy corrupted before it was ever
/// hashed; a later corruption is caught against the stored hash; each bad copy is dropped and
/// the replicator rebuilds it from the good one, so every key reads back intact. A key whose
/// only copy is corrupted is reported and kept, never dropped; a copy deleted behind the
/// ledger's back is dropped and rebuilt likewise. The ledger verifies after each step.
pub(crate) async fn scrubber_repairs_bad_copies_and_keeps_the_last(engine: Engine) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "scrub drill") else {
        return;
    };
    let fs = vec![
        Fs::start("a", &dir.path().join("a")).await,
        Fs::start("b", &dir.path().join("b")).await,
    ];
    let gw = Gateway::start(config(&url, &fs, 2)).await.unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    let keys = ["k0", "k1", "k2", "k3"];
    for (i, k) in keys.iter().enumerate() {
        put(&c, k, &body(i as u64, 1000 + i)).await.unwrap();
    }
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 4, "{r:?}");
    let path_on = |k: &str, backend: &str| {
        let store = store.clone();
        let (k, backend) = (format!("{BUCKET}/{k}"), backend.to_owned());
        async move {
            let locs = store.get_all_object_locations(&k).await.unwrap();
            let l = locs.iter().find(|l| l.backend_name == backend).unwrap();
            l.form.storage_path(&l.object_key).to_owned()
        }
    };
    // Corrupted before any hash: caught by the ETag.
    flip_a_byte(&fs[0], &path_on("k0", "a").await);
    let r = gw.run_worker_once(Worker::Scrub).await;
    assert_eq!(r.count("bad_copy_dropped"), 1, "{r:?}");
    assert_eq!(r.count("hashed"), 7, "{r:?}");
    verify(&store).await;
    assert_eq!(holders(&store, &["k0".to_owned()]).await["k0"], ["b"]);
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 1, "{r:?}");
    // Every copy hashed now (the rebuilt replica carries its source's hash) and verified
    // against it; then one on b is corrupted, one on a deleted behind the ledger's back.
    let r = gw.run_worker_once(Worker::Scrub).await;
    assert_eq!(r.count("verified"), 8, "{r:?}");
    flip_a_byte(&fs[1], &path_on("k1", "b").await);
    std::fs::remove_file(backend_file(&fs[0], &path_on("k2", "a").await)).unwrap();
    let (mut dropped, mut missing) = (0, 0);
    for _ in 0..3 {
        let r = gw.run_worker_once(Worker::Scrub).await;
        dropped += r.count("bad_copy_dropped");
        missing += r.count("missing_copy_dropped");
        assert_eq!(r.count("corrupt_last_copy"), 0, "{r:?}");
        assert_eq!(r.count("missing_last_copy"), 0, "{r:?}");
    }
    assert_eq!((dropped, missing), (1, 1));
    assert_eq!(holders(&store, &["k1".to_owned()]).await["k1"], ["a"]);
    assert_eq!(holders(&store, &["k2".to_owned()]).await["k2"], ["b"]);
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 2, "{r:?}");
    verify(&store).await;
    nothing_forgotten(&store, &fs).await;
    // Reads come back intact from either backend.
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            get(&c, k).await.unwrap().as_ref(),
            body(i as u64, 1000 + i),
            "{k}"
        );
    }
    fs[1].stop();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            get(&c, k).await.unwrap().as_ref(),
            body(i as u64, 1000 + i),
            "{k} from a"
        );
    }
    fs[1].restart().await;
    gw.shutdown().await;

    // Factor 1: a corrupted only copy is reported and kept.
    let gw = Gateway::start(config(&url, &fs, 1)).await.unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    put(&c, "only", b"the only copy").await.unwrap();
    let only = {
        let locs = store
            .get_all_object_locations(&format!("{BUCKET}/only"))
            .await
            .unwrap();
        assert_eq!(locs.len(), 1);
        (
            locs[0].backend_name.clone(),
            locs[0].form.storage_path(&locs[0].object_key).to_owned(),
        )
    };
    let f = fs.iter().find(|f| f.name == only.0).unwrap();
    flip_a_byte(f, &only.1);
    let mut reported = 0;
    for _ in 0..3 {
        let r = gw.run_worker_once(Worker::Scrub).await;
        reported += r.count("corrupt_last_copy");
        assert_eq!(r.count("bad_copy_dropped"), 0, "{r:?}");
    }
    assert!(reported >= 1);
    assert_eq!(
        holders(&store, &["only".to_owned()]).await["only"],
        std::slice::from_ref(&only.0)
    );
    verify(&store).await;
    // Factor 1: the only copy's file deleted behind the gateway's back. The row is kept (and
    // reported at each pass that reads it), never dropped; the ledger stays consistent.
    put(&c, "gone", b"soon missing").await.unwrap();
    let gone = store
        .get_all_object_locations(&format!("{BUCKET}/gone"))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    let f = fs.iter().find(|f| f.name == gone[0].backend_name).unwrap();
    std::fs::remove_file(backend_file(
        f,
        gone[0].form.storage_path(&gone[0].object_key),
    ))
    .unwrap();
    let mut missing_last = 0;
    for _ in 0..3 {
        let r = gw.run_worker_once(Worker::Scrub).await;
        missing_last += r.count("missing_last_copy");
        assert_eq!(r.count("missing_copy_dropped"), 0, "{r:?}");
        assert_eq!(r.count("bad_copy_dropped"), 0, "{r:?}");
    }
    assert!(missing_last >= 1);
    let kept = store
        .get_all_object_locations(&format!("{BUCKET}/gone"))
        .await
        .unwrap();
    assert_eq!(
        kept,
        gone.iter()
            .map(|l| ObjectLocation {
                last_scrubbed_at: kept[0].last_scrubbed_at,
                ..l.clone()
            })
            .collect::<Vec<_>>(),
        "the row of the missing last copy is kept as it was"
    );
    assert!(get(&c, "gone").await.is_err(), "no bytes to serve");
    verify(&store).await;
    gw.shutdown().await;
    if let Some(s) = schema {
        drop_schema(&s).await;
    }
    eprintln!(
        "drill scrub [{engine:?}]: {dropped} corrupt and {missing} missing copies dropped and rebuilt, {reported} corrupt and {missing_last} missing last-copy reports, {:?}",
        started.elapsed()
    );
}

/// `cfg` with every bucket encrypted under a master key written to `dir` (4 KiB chunks).
fn encrypted(mut cfg: Config, dir: &std::path::Path) -> Config {
    use std::os::unix::fs::PermissionsExt as _;
    let file = dir.join("master.key");
    std::fs::write(&file, [7u8; 32]).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    cfg.encryption = Some(s3o_gateway::EncryptionConfig {
        encrypt: true,
        key_id: "k1".into(),
        key: s3o_gateway::KeySource::File(file),
        chunk_size: 4096,
        previous_keys: Vec::new(),
    });
    cfg
}

/// Hex SHA-256 of `b`.
fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// The scrubber on encrypted copies (factor 2, 4 KiB chunks): a first pass hashes every copy
/// by decrypting it (the stored hash is the plaintext's SHA-256, the same on both copies); a
/// byte flipped in a later chunk of one copy, and two chunks of another swapped, fail
/// authentication: both copies are dropped and rebuilt by the replicator from the good ones,
/// and every key reads back intact from either backend. A tampered only copy is reported and
/// kept. The ledger verifies and nothing is forgotten on a backend.
pub(crate) async fn scrubber_checks_encrypted_copies(engine: Engine) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "scrub encrypted drill") else {
        return;
    };
    let fs = vec![
        Fs::start("a", &dir.path().join("a")).await,
        Fs::start("b", &dir.path().join("b")).await,
    ];
    let gw = Gateway::start(encrypted(config(&url, &fs, 2), dir.path()))
        .await
        .unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("e0", body(10, 10_000)),
        ("e1", body(11, 9_000)),
        ("e2", body(12, 1)),
        ("e3", Vec::new()),
    ];
    for (k, d) in &objects {
        put(&c, k, d).await.unwrap();
    }
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 4, "{r:?}");
    let r = gw.run_worker_once(Worker::Scrub).await;
    assert_eq!(r.count("hashed"), 8, "{r:?}");
    assert_eq!(r.count("skipped_encrypted"), 0, "{r:?}");
    for (k, d) in &objects {
        let locs = store
            .get_all_object_locations(&format!("{BUCKET}/{k}"))
            .await
            .unwrap();
        assert_eq!(locs.len(), 2, "{k}");
        for l in &locs {
            assert!(l.form.encrypted, "{k}");
            assert_eq!(
                l.form.content_hash,
                sha256_hex(d),
                "{k} on {}",
                l.backend_name
            );
        }
    }
    let r = gw.run_worker_once(Worker::Scrub).await;
    assert_eq!(r.count("verified"), 8, "{r:?}");
    let path_on = |k: &str, backend: &str| {
        let store = store.clone();
        let (k, backend) = (format!("{BUCKET}/{k}"), backend.to_owned());
        async move {
            let locs = store.get_all_object_locations(&k).await.unwrap();
            let l = locs.iter().find(|l| l.backend_name == backend).unwrap();
            l.form.storage_path(&l.object_key).to_owned()
        }
    };
    // A byte of e0's third chunk on b flipped; e1's first two chunks on a swapped (same size,
    // each chunk intact: only the index bound into each chunk tells).
    let f = backend_file(&fs[1], &path_on("e0", "b").await);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[2 * (4096 + 16) + 5] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();
    let f = backend_file(&fs[0], &path_on("e1", "a").await);
    let bytes = std::fs::read(&f).unwrap();
    let sealed = 4096 + 16;
    let mut swapped = bytes[sealed..2 * sealed].to_vec();
    swapped.extend_from_slice(&bytes[..sealed]);
    swapped.extend_from_slice(&bytes[2 * sealed..]);
    assert_eq!(swapped.len(), bytes.len());
    std::fs::write(&f, swapped).unwrap();
    let mut dropped = 0;
    for _ in 0..3 {
        let r = gw.run_worker_once(Worker::Scrub).await;
        dropped += r.count("bad_copy_dropped");
        assert_eq!(r.count("corrupt_last_copy"), 0, "{r:?}");
        assert_eq!(r.count("read_failed"), 0, "{r:?}");
    }
    assert_eq!(dropped, 2);
    assert_eq!(holders(&store, &["e0".to_owned()]).await["e0"], ["a"]);
    assert_eq!(holders(&store, &["e1".to_owned()]).await["e1"], ["b"]);
    verify(&store).await;
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 2, "{r:?}");
    verify(&store).await;
    nothing_forgotten(&store, &fs).await;
    let r = gw.run_worker_once(Worker::Scrub).await;
    assert_eq!(r.count("bad_copy_dropped"), 0, "{r:?}");
    for (k, d) in &objects {
        assert_eq!(get(&c, k).await.unwrap().as_ref(), d.as_slice(), "{k}");
    }
    for stopped in [1, 0] {
        fs[stopped].stop();
        for (k, d) in &objects {
            assert_eq!(
                get(&c, k).await.unwrap().as_ref(),
                d.as_slice(),
                "{k} with {} stopped",
                fs[stopped].name
            );
        }
        fs[stopped].restart().await;
    }
    gw.shutdown().await;

    // Factor 1: a tampered only copy is reported and kept.
    let gw = Gateway::start(encrypted(config(&url, &fs, 1), dir.path()))
        .await
        .unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    put(&c, "only", &body(13, 5000)).await.unwrap();
    let locs = store
        .get_all_object_locations(&format!("{BUCKET}/only"))
        .await
        .unwrap();
    assert_eq!(locs.len(), 1);
    let only = locs[0].backend_name.clone();
    let f = fs.iter().find(|f| f.name == only).unwrap();
    flip_a_byte(f, locs[0].form.storage_path(&locs[0].object_key));
    let mut reported = 0;
    for _ in 0..3 {
        let r = gw.run_worker_once(Worker::Scrub).await;
        reported += r.count("corrupt_last_copy");
        assert_eq!(r.count("bad_copy_dropped"), 0, "{r:?}");
    }
    assert!(reported >= 1);
    assert_eq!(
        holders(&store, &["only".to_owned()]).await["only"],
        std::slice::from_ref(&only)
    );
    verify(&store).await;
    gw.shutdown().await;
    if let Some(s) = schema {
        drop_schema(&s).await;
    }
    eprintln!(
        "drill scrub encrypted [{engine:?}]: {dropped} tampered copies dropped and rebuilt, {reported} last-copy reports, {:?}",
        started.elapsed()
    );
}

/// `bytes_used + orphan_bytes` over `bytes_limit` of `backend`.
async fn utilisation(store: &MetadataStore, backend: &str) -> f64 {
    let q = &store.get_quota_stats().await.unwrap()[backend];
    (q.bytes_used + q.orphan_bytes) as f64 / q.bytes_limit as f64
}

/// Two backends with 100 kB quotas, every object packed on the first (62 %): the rebalancer
/// (enabled) moves copies, smallest first, until the two differ by at most its threshold,
/// while a client keeps writing; every key reads back, quotas stay exact, nothing is left
/// on a backend that the ledger does not record. Disabled (the default), it moves nothing.
pub(crate) async fn rebalancer_evens_out_two_backends(engine: Engine) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "rebalance drill") else {
        return;
    };
    let fs = vec![
        Fs::start("a", &dir.path().join("a")).await,
        Fs::start("b", &dir.path().join("b")).await,
    ];
    let quota = 100_000u64;
    let with_quota = |enabled: bool| {
        let mut cfg = config(&url, &fs, 1);
        for b in &mut cfg.backends {
            b.quota_bytes = quota;
        }
        cfg.workers.rebalance.enabled = enabled;
        cfg.workers.rebalance.threshold_percent = 10;
        cfg
    };
    let gw = Gateway::start(with_quota(false)).await.unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    let sizes: Vec<usize> = (0..20).map(|i| 1000 + 300 * i).collect();
    for (i, n) in sizes.iter().enumerate() {
        put(&c, &format!("k{i}"), &body(i as u64, *n))
            .await
            .unwrap();
    }
    let total: usize = sizes.iter().sum();
    assert_eq!(
        store.get_quota_stats().await.unwrap()["a"].bytes_used,
        total as i64
    );
    let r = gw.run_worker_once(Worker::Rebalance).await;
    assert_eq!(r.count("moved"), 0, "{r:?}");
    gw.shutdown().await;

    let gw = Gateway::start(with_quota(true)).await.unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    // A client writes other keys while the rebalancer runs.
    let writer = {
        let c = gw_client(&gw.endpoint());
        tokio::spawn(async move {
            for i in 0..10u64 {
                put(&c, &format!("w{i}"), &body(100 + i, 500))
                    .await
                    .unwrap();
            }
        })
    };
    let mut moved = 0;
    for _ in 0..5 {
        let r = gw.run_worker_once(Worker::Rebalance).await;
        moved += r.count("moved");
        if r.count("balanced") > 0 {
            break;
        }
    }
    writer.await.unwrap();
    // The writes may have tipped the balance again: one more pass settles it.
    let r = gw.run_worker_once(Worker::Rebalance).await;
    moved += r.count("moved");
    assert!(moved >= 5, "moved {moved}");
    let (ua, ub) = (
        utilisation(&store, "a").await,
        utilisation(&store, "b").await,
    );
    assert!((ua - ub).abs() <= 0.10 + 1e-9, "a {ua:.3}, b {ub:.3}");
    gw.run_worker_once(Worker::Cleanup).await;
    verify(&store).await;
    nothing_forgotten(&store, &fs).await;
    for (i, n) in sizes.iter().enumerate() {
        assert_eq!(
            get(&c, &format!("k{i}")).await.unwrap().as_ref(),
            body(i as u64, *n)
        );
        let h = holders(&store, &[format!("k{i}")]).await;
        assert_eq!(h[&format!("k{i}")].len(), 1, "k{i} has one copy");
    }
    for i in 0..10u64 {
        assert_eq!(
            get(&c, &format!("w{i}")).await.unwrap().as_ref(),
            body(100 + i, 500)
        );
    }
    let q = store.get_quota_stats().await.unwrap();
    assert!(
        q.values()
            .all(|q| q.bytes_used + q.orphan_bytes <= q.bytes_limit),
        "{q:?}"
    );
    gw.shutdown().await;
    if let Some(s) = schema {
        drop_schema(&s).await;
    }
    eprintln!(
        "drill rebalance [{engine:?}]: moved {moved}, {:?}",
        started.elapsed()
    );
}

/// What a webhook receiver got: (event id, signature header, body, answered status).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, u16)>>>;

/// A webhook receiver on loopback that answers `500` to its first `fail_first` requests and
/// `200` after; returns its URL and what it received.
async fn receiver(fail_first: usize) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Received = Received::default();
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let (id, sig) = (header("x-s3o-event-id"), header("x-signature-256"));
                        let body = http_body_util::BodyExt::collect(req.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        let mut seen = seen.lock().unwrap();
                        let status = if seen.len() < fail_first { 500 } else { 200 };
                        seen.push((id, sig, String::from_utf8_lossy(&body).into_owned(), status));
                        let mut r = hyper::Response::new(http_body_util::Full::new(Bytes::new()));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                .await;
            });
        }
    });
    (url, got)
}

/// The notifier delivers every outbox row to its webhook, signed: a receiver that fails its
/// first request gets that row again on the next pass (at least once, by event id), an
/// endpoint that refuses connections has its row retried while the others are delivered, and
/// the outbox ends empty once every endpoint answers.
pub(crate) async fn notifier_delivers_and_retries(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "notifier drill") else {
        return;
    };
    let fs = vec![Fs::start("a", &dir.path().join("a")).await];
    let (hook, got) = receiver(1).await;
    // A port nothing listens on: bound, then closed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let mut cfg = config(&url, &fs, 1);
    cfg.workers.notify.secret = Some("webhook-secret".into());
    let gw = Gateway::start(cfg).await.unwrap();
    let store = gw.store().clone();
    let mut ids = Vec::new();
    for i in 0..3 {
        let payload =
            format!("{{\"Records\":[{{\"eventName\":\"ObjectCreated:Put\",\"n\":{i}}}]}}");
        ids.push(
            store
                .insert_notification("s3:ObjectCreated:Put", &payload, &hook)
                .await
                .unwrap(),
        );
    }
    let dead_id = store
        .insert_notification("s3:ObjectRemoved:Delete", "{\"n\":9}", &dead)
        .await
        .unwrap();
    let r = gw.run_worker_once(Worker::Notify).await;
    assert_eq!((r.count("delivered"), r.count("retried")), (2, 2), "{r:?}");
    let r = gw.run_worker_once(Worker::Notify).await;
    assert_eq!((r.count("delivered"), r.count("retried")), (1, 1), "{r:?}");
    let due = store.get_due_notifications(100).await.unwrap();
    assert_eq!(due.iter().map(|n| n.id).collect::<Vec<_>>(), [dead_id]);
    assert_eq!(due[0].attempts, 2);
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "{got:?}");
    // The first request failed; its row came again and every row was accepted once.
    assert_eq!(got[0].3, 500);
    let accepted: BTreeSet<String> = got
        .iter()
        .filter(|g| g.3 == 200)
        .map(|g| g.0.clone())
        .collect();
    assert_eq!(accepted, ids.iter().map(|i| i.to_string()).collect());
    assert_eq!(got.iter().filter(|g| g.3 == 200).count(), 3);
    assert_eq!(got[0].0, got[3].0, "the failed row is the one retried");
    for (_, sig, body, _) in &got {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"webhook-secret").unwrap();
        mac.update(body.as_bytes());
        assert_eq!(
            *sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert!(body.contains("ObjectCreated:Put"), "{body}");
    }
    gw.shutdown().await;
    if let Some(s) = schema {
        drop_schema(&s).await;
    }
}
