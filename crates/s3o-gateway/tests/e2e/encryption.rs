//! Encryption at rest through the gateway: the backends hold ciphertext only, clients see the
//! plaintext's size, ETag and bytes (whole, ranged, multipart), tampered backend bytes are an
//! error and never wrong bytes, replicas and drained copies are the same ciphertext and stay
//! readable, and a ledger outage answers 503 for encrypted objects while plaintext ones are
//! still broadcast.

use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tempfile::TempDir;

use crate::proxy::{Proxy, host_port, via};
use crate::raw::encode_key;
use crate::rig::{self, BUCKET, Ledger, Options, Rig, md5_hex, path, with_param};
use crate::writes::unquote;

/// Chunk size of these cases: small, so a few KiB already span several chunks.
const CHUNK: usize = 4096;
/// A string that must never appear on a backend.
const MARKER: &[u8] = b"PLAINTEXT-MARKER-5f3a";

/// A 32-byte master key file readable by its owner only.
pub(crate) fn key_file(dir: &FsPath, name: &str, byte: u8) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, [byte; 32]).expect("key file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

/// `[encryption]` with key `k1` (from `dir`), 4 KiB chunks, every bucket encrypted, plus
/// `more` (extra buckets).
fn encryption_toml(dir: &FsPath, more: &str) -> String {
    let k = key_file(dir, "k1.key", 0x11);
    format!(
        "[encryption]\nencrypt = true\nkey_id = \"k1\"\nmaster_key_file = {:?}\n\
         chunk_size = {CHUNK}\n\n{more}",
        k.display().to_string()
    )
}

async fn start(ledger: Ledger, more: &str) -> Option<(Rig, TempDir)> {
    let keys = tempfile::tempdir().expect("tempdir");
    let rig = Rig::start_with(
        ledger,
        Options {
            backends: &rig::THREE,
            routing: "pack",
            store_url: None,
        },
        &encryption_toml(keys.path(), more),
    )
    .await?;
    Some((rig, keys))
}

/// `n` bytes with the marker repeated through them.
fn marked(n: usize, seed: u8) -> Bytes {
    let mut v = rig::body(n, seed).to_vec();
    let mut at = 0;
    while at + MARKER.len() <= n {
        v[at..at + MARKER.len()].copy_from_slice(MARKER);
        at += 1000;
    }
    v.into()
}

/// Every byte on every backend, read directly.
async fn backend_bytes(rig: &Rig) -> Vec<(String, String, Bytes)> {
    let mut out = Vec::new();
    for (name, objects) in rig.physical().await {
        let b = rig.backends.iter().find(|b| b.name == name).unwrap();
        for (p, _) in objects {
            let bytes = b
                .direct
                .get(&object_store::path::Path::parse(p.as_str()).unwrap())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            out.push((name.clone(), p, bytes));
        }
    }
    out
}

async fn assert_no_plaintext(rig: &Rig) {
    let all = backend_bytes(rig).await;
    assert!(!all.is_empty());
    for (b, p, bytes) in all {
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER),
            "{b}:{p} holds plaintext"
        );
    }
}

/// The stored size of `n` plaintext bytes in 4 KiB chunks.
fn stored(n: usize) -> i64 {
    (n + 16 * n.div_ceil(CHUNK)) as i64
}

/// Objects of 0 B, 1 B, chunk − 1, chunk, chunk + 1 and 3 MiB: bytes, size, ETag and listing
/// are the plaintext's, the ledger charges the ciphertext, every Range shape matches the
/// plaintext, and no backend byte run equals the plaintext marker.
pub(crate) async fn sealed_objects_round_trip(ledger: Ledger) {
    let Some((rig, _keys)) = start(ledger, "").await else {
        return;
    };
    let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * 1024 * 1024 + 7];
    for (i, n) in sizes.iter().enumerate() {
        let key = format!("sealed/obj-{n}");
        let data = marked(*n, i as u8);
        rig.put(&key, data.clone()).await;
        assert!(rig.get(&key).await == data, "{key} reads back");
        let head = rig.client.head(&path(&key)).await.expect("HEAD");
        assert_eq!(head.size, *n as u64, "{key}: HEAD size is the plaintext's");
        assert_eq!(
            unquote(head.e_tag.as_deref()),
            md5_hex(&data),
            "{key}: ETag"
        );
        let rows = rig
            .store()
            .get_all_object_locations(&format!("{BUCKET}/{key}"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].form.encrypted && rows[0].form.has_dek(), "{key}");
        assert_eq!(rows[0].form.key_id, "k1");
        assert_eq!(rows[0].form.plaintext_size, *n as i64);
        assert_eq!(
            rows[0].size_bytes,
            stored(*n),
            "{key}: quota charges ciphertext"
        );
    }
    let listed = rig
        .client
        .list_with_delimiter(Some(&path("sealed")))
        .await
        .expect("list");
    let mut sizes_listed: Vec<u64> = listed.objects.iter().map(|o| o.size).collect();
    sizes_listed.sort_unstable();
    assert_eq!(
        sizes_listed,
        sizes.iter().map(|n| *n as u64).collect::<Vec<_>>(),
        "listings show plaintext sizes"
    );

    // Ranges of the 3 MiB object against the plaintext.
    let n = sizes[5];
    let key = format!("sealed/obj-{n}");
    let data = marked(n, 5);
    let c = CHUNK as u64;
    let n64 = n as u64;
    for r in [
        0..1,
        c - 1..c + 1,
        c..2 * c,
        5 * c + 3..5 * c + 4,
        1000..2_000_000,
        n64 - 1..n64,
        0..n64,
    ] {
        let got = rig
            .client
            .get_range(&path(&key), r.clone())
            .await
            .unwrap_or_else(|e| panic!("range {r:?}: {e}"));
        assert!(
            got == data.slice(r.start as usize..r.end as usize),
            "range {r:?}"
        );
    }
    let target = format!("/{BUCKET}/{}", encode_key(&key));
    for (header, want) in [
        ("bytes=-10", data.slice(n - 10..)),
        ("bytes=3000000-", data.slice(3_000_000..)),
        ("bytes=4095-4096", data.slice(4095..4097)),
    ] {
        let reply = rig.raw.send("GET", &target, &[("range", header)], "").await;
        assert_eq!(reply.status, 206, "{header}: {}", reply.text());
        assert!(reply.body == want, "{header}");
    }
    let reply = rig
        .raw
        .send("GET", &target, &[("range", "bytes=99999999-")], "")
        .await;
    assert_eq!(reply.status, 416, "unsatisfiable range");

    assert_no_plaintext(&rig).await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// A multipart upload into an encrypted bucket: three parts sealed with the upload's key,
/// assembled and sealed again as one object; the ETag is the plaintext's `-3`, a range across
/// a part boundary matches, and no plaintext is left on any backend.
pub(crate) async fn sealed_multipart_round_trip(ledger: Ledger) {
    let Some((rig, _keys)) = start(ledger, "").await else {
        return;
    };
    const MIB: usize = 1 << 20;
    let key = "sealed/multi part";
    let data = marked(2 * 5 * MIB + 1_000, 9);
    let upload = rig
        .client
        .put_multipart(&path(key))
        .await
        .expect("CreateMultipartUpload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * MIB);
    writer.write(&data);
    writer.finish().await.expect("CompleteMultipartUpload");
    let parts: Vec<Bytes> = data.chunks(5 * MIB).map(Bytes::copy_from_slice).collect();
    let mut md5s = Vec::new();
    for p in &parts {
        md5s.extend_from_slice(&hex::decode(md5_hex(p)).unwrap());
    }
    let head = rig.client.head(&path(key)).await.expect("HEAD");
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(
        unquote(head.e_tag.as_deref()),
        format!("{}-3", md5_hex(&md5s))
    );
    assert!(rig.get(key).await == data, "multipart object reads back");
    let r = (5 * MIB as u64 - 10)..(5 * MIB as u64 + 10);
    let got = rig.client.get_range(&path(key), r.clone()).await.unwrap();
    assert!(got == data.slice(r.start as usize..r.end as usize));
    assert_eq!(rig.placement(key).await[0].1, stored(data.len()));
    assert_no_plaintext(&rig).await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// Tampered backend bytes: with a good replica the read fails over to it; with every copy
/// tampered the read is an error (a 5xx before any byte for a bad first chunk, a broken body
/// for a later one), never wrong bytes. The replica is the same ciphertext with the same key.
pub(crate) async fn tampered_copies_fail_and_replicas_serve(ledger: Ledger) {
    let more = "[[buckets]]\nname = \"twice\"\nreplication_factor = 2\n";
    let Some((rig, _keys)) = start(ledger, more).await else {
        return;
    };
    let client = rig::s3_client(&rig.gateway().endpoint(), "twice", rig::AK, rig::SK);
    let data = marked(3 * CHUNK + 100, 3);
    client
        .put(&path("doc"), PutPayload::from(data.clone()))
        .await
        .unwrap();
    let report = rig
        .gateway()
        .run_worker_once(s3o_gateway::Worker::Replicator)
        .await;
    let rows = rig
        .store()
        .get_all_object_locations("twice/doc")
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "replicated: {report:?}");
    assert_eq!(rows[0].form.encryption_key, rows[1].form.encryption_key);
    assert_eq!(rows[0].size_bytes, rows[1].size_bytes);
    let copies: Vec<_> = backend_bytes(&rig)
        .await
        .into_iter()
        .filter(|(_, p, _)| p.starts_with("twice/"))
        .collect();
    assert_eq!(copies.len(), 2);
    assert!(
        copies[0].2 == copies[1].2,
        "the replica is the same ciphertext"
    );
    assert_no_plaintext(&rig).await;

    let flip = |bytes: &Bytes, at: usize| {
        let mut v = bytes.to_vec();
        v[at] ^= 0x40;
        Bytes::from(v)
    };
    let rewrite = |name: &str, p: &str, b: Bytes| {
        let backend = rig.backends.iter().find(|x| x.name == name).unwrap();
        let store = backend.direct.clone();
        let p = object_store::path::Path::parse(p).unwrap();
        async move { store.put(&p, PutPayload::from(b)).await.unwrap() }
    };
    // One copy tampered: the other serves.
    let (b0, p0, bytes0) = &copies[0];
    rewrite(b0, p0, flip(bytes0, 10)).await;
    let got = client
        .get(&path("doc"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == data, "a tampered copy is skipped for the good one");

    // Both copies tampered in the first chunk: an error status, no body bytes.
    let (b1, p1, bytes1) = &copies[1];
    rewrite(b1, p1, flip(bytes1, 10)).await;
    let reply = rig.raw.send("GET", "/twice/doc", &[], "").await;
    assert!(reply.status >= 500, "status {}", reply.text());
    assert!(
        !reply
            .body
            .windows(16)
            .any(|w| data.windows(16).any(|d| d == w))
    );

    // Both copies tampered in a later chunk only: the body breaks before the bad chunk.
    let late = 2 * (CHUNK + 16) + 5;
    rewrite(b0, p0, flip(bytes0, late)).await;
    rewrite(b1, p1, flip(bytes1, late)).await;
    let r = client.get(&path("doc")).await;
    let whole = match r {
        Ok(r) => r.bytes().await,
        Err(e) => Err(e),
    };
    assert!(whole.is_err(), "a later bad chunk breaks the body");
    // Ranges that avoid the bad chunk still read.
    let ok = client.get_range(&path("doc"), 0..100).await.unwrap();
    assert!(ok == data.slice(0..100));
    assert!(
        client
            .get_range(&path("doc"), (2 * CHUNK as u64)..(2 * CHUNK as u64 + 1))
            .await
            .is_err(),
        "a range inside the bad chunk is an error"
    );

    // Put the good bytes back: everything agrees again.
    rewrite(b0, p0, bytes0.clone()).await;
    rewrite(b1, p1, bytes1.clone()).await;
    assert!(
        client
            .get(&path("doc"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            == data
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// Draining the backend that holds an encrypted object moves its ciphertext as is, with its
/// key, and the object still reads.
pub(crate) async fn drained_sealed_copy_reads(ledger: Ledger) {
    let Some((rig, _keys)) = start(ledger, "").await else {
        return;
    };
    let data = marked(5 * CHUNK + 1, 4);
    rig.put("move/me", data.clone()).await;
    let before = rig.placement("move/me").await;
    assert_eq!(before.len(), 1);
    let from = before[0].0.clone();
    let mut show = |_: &s3o_gateway::DrainProgress| {};
    let report = s3o_gateway::drain(&rig.config, &from, &mut show)
        .await
        .expect("drain");
    assert_eq!(report.progress.moved, 1, "{report:?}");
    let after = rig.placement("move/me").await;
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].0, from);
    assert_eq!(after[0].1, stored(data.len()));
    assert!(rig.get("move/me").await == data, "drained copy reads");
    assert_no_plaintext(&rig).await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// A PostgreSQL ledger behind a proxy the test cuts: an encrypted object answers 503 (its key
/// is in the ledger) while a plaintext object of an unencrypted bucket is still broadcast.
pub(crate) async fn ledger_outage_refuses_sealed_reads() {
    let Some(base) = rig::pg_url() else {
        return;
    };
    let keys = tempfile::tempdir().expect("tempdir");
    let proxy = Proxy::start(&host_port(&base)).await;
    let through = with_param(
        &via(&base, proxy.addr),
        "connect_timeout=2&pool_wait_timeout_ms=2000&pool_create_timeout_ms=2000",
    );
    let more = "[[buckets]]\nname = \"plain\"\nencrypt = false\n";
    let Some(rig) = Rig::start_with(
        Ledger::Postgres,
        Options {
            backends: &rig::THREE,
            routing: "pack",
            store_url: Some(through),
        },
        &encryption_toml(keys.path(), more),
    )
    .await
    else {
        return;
    };
    let plain = rig::s3_client(&rig.gateway().endpoint(), "plain", rig::AK, rig::SK);
    let secret = marked(20_000, 1);
    let open = marked(20_000, 2);
    rig.put("secret", secret.clone()).await;
    plain
        .put(&path("open"), PutPayload::from(open.clone()))
        .await
        .unwrap();
    let plain_rows = rig
        .store()
        .get_all_object_locations("plain/open")
        .await
        .unwrap();
    assert!(!plain_rows[0].form.encrypted);

    proxy.cut();
    let reply = rig
        .raw
        .send("GET", &format!("/{BUCKET}/secret"), &[], "")
        .await;
    assert_eq!(
        reply.status,
        503,
        "encrypted GET during the outage: {}",
        reply.text()
    );
    let reply = rig
        .raw
        .send("HEAD", &format!("/{BUCKET}/secret"), &[], "")
        .await;
    assert_eq!(reply.status, 503, "encrypted HEAD during the outage");
    let reply = rig.raw.send("GET", "/plain/open", &[], "").await;
    assert_eq!(
        reply.status,
        200,
        "plaintext GET broadcasts: {}",
        reply.text()
    );
    assert!(reply.body == open);

    proxy.restore().await;
    let mut back = false;
    for _ in 0..240 {
        let reply = rig
            .raw
            .send("GET", &format!("/{BUCKET}/secret"), &[], "")
            .await;
        if reply.status == 200 {
            assert!(reply.body == secret);
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(back, "encrypted reads work again once the ledger is back");
    rig.assert_clean().await;
    rig.finish().await;
    drop(proxy);
}

/// `[encryption]` of `config` with master key `current` (file in `dir`) and `previous`.
pub(crate) fn with_keys(
    config: &s3o_gateway::Config,
    dir: &FsPath,
    current: (&str, u8),
    previous: &[(&str, u8)],
) -> s3o_gateway::Config {
    let mut c = config.clone();
    let file = |id: &str, byte: u8| {
        s3o_gateway::KeySource::File(key_file(dir, &format!("{id}.key"), byte))
    };
    c.encryption = Some(s3o_gateway::EncryptionConfig {
        encrypt: true,
        key_id: current.0.to_owned(),
        key: file(current.0, current.1),
        chunk_size: CHUNK as u64,
        previous_keys: previous
            .iter()
            .map(|(id, byte)| s3o_gateway::PreviousKey {
                key_id: (*id).to_owned(),
                source: file(id, *byte),
            })
            .collect(),
    });
    c
}

/// Rotation re-wraps every DEK under the new master key (metadata only: the backend bytes do
/// not change); afterwards a gateway holding only the new key reads everything, one holding
/// only the old key reads nothing, and a second run finds nothing left to do.
pub(crate) async fn rotation_keeps_objects_readable(ledger: Ledger) {
    let Some((rig, keys)) = start(ledger, "").await else {
        return;
    };
    let objects: Vec<(String, Bytes)> = (0..5)
        .map(|i| (format!("rot/{i}"), marked(i * 3000 + 1, i as u8)))
        .collect();
    for (k, d) in &objects {
        rig.put(k, d.clone()).await;
    }
    let before = backend_bytes(&rig).await;
    let rotating = with_keys(&rig.config, keys.path(), ("k2", 0x22), &[("k1", 0x11)]);
    let mut pages = 0;
    let mut show = |_: &s3o_gateway::RotateProgress| pages += 1;
    let opts = s3o_gateway::RotateOptions {
        batch: 2,
        pause: Duration::from_millis(1),
    };
    let done = s3o_gateway::rotate_encryption_keys(&rotating, opts, &mut show)
        .await
        .expect("rotate");
    assert_eq!(
        (done.rewrapped, done.failed, done.raced),
        (5, 0, 0),
        "{done:?}"
    );
    assert_eq!(
        pages, 4,
        "progress after every page of 2, and at the end of the pass"
    );
    for (k, _) in &objects {
        let rows = rig
            .store()
            .get_all_object_locations(&format!("{BUCKET}/{k}"))
            .await
            .unwrap();
        assert_eq!(rows[0].form.key_id, "k2");
    }
    assert_eq!(
        backend_bytes(&rig).await,
        before,
        "rotation touches no backend byte"
    );
    let again = s3o_gateway::rotate_encryption_keys(&rotating, opts, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((again.rewrapped, again.current), (0, 5));

    // A gateway with only the new key reads every object; one with only the old key none.
    let only_new = with_keys(&rig.config, keys.path(), ("k2", 0x22), &[]);
    let gw = s3o_gateway::Gateway::start(only_new)
        .await
        .expect("new-key gateway");
    let client = rig::s3_client(&gw.endpoint(), BUCKET, rig::AK, rig::SK);
    for (k, d) in &objects {
        let got = client.get(&path(k)).await.unwrap().bytes().await.unwrap();
        assert!(got == *d, "{k} reads under the new key alone");
    }
    gw.shutdown().await;
    let only_old = with_keys(&rig.config, keys.path(), ("k1", 0x11), &[]);
    let gw = s3o_gateway::Gateway::start(only_old)
        .await
        .expect("old-key gateway");
    let raw = crate::raw::Raw::new(&gw.endpoint());
    let reply = raw.send("GET", &format!("/{BUCKET}/rot/1"), &[], "").await;
    assert_eq!(reply.status, 500, "no key for k2: {}", reply.text());
    assert!(reply.text().contains("k2"), "the error names the key id");
    gw.shutdown().await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// Objects written before encryption was turned on are sealed by `encrypt-existing` (every
/// copy, one transaction per key; ETag, size and Last-Modified kept), then opened again by
/// `decrypt-existing` once the bucket no longer encrypts; a key overwritten between the
/// conversions keeps the client's version; nothing is left behind.
pub(crate) async fn convert_existing_both_ways(ledger: Ledger) {
    let more = "[[buckets]]\nname = \"twice\"\nreplication_factor = 2\nencrypt = false\n";
    let Some((rig, keys)) = start(ledger, more).await else {
        return;
    };
    let client = rig::s3_client(&rig.gateway().endpoint(), "twice", rig::AK, rig::SK);
    let objects: Vec<(String, Bytes)> = (0..4)
        .map(|i| (format!("old/{i}"), marked(i * 5000 + 3, i as u8)))
        .collect();
    for (k, d) in &objects {
        client
            .put(&path(k), PutPayload::from(d.clone()))
            .await
            .unwrap();
    }
    rig.gateway()
        .run_worker_once(s3o_gateway::Worker::Replicator)
        .await;
    let before = rig
        .store()
        .get_all_object_locations("twice/old/1")
        .await
        .unwrap();
    assert_eq!(before.len(), 2);
    assert!(!before[0].form.encrypted);

    // Turn encryption on for the bucket, then convert.
    let mut on = rig.config.clone();
    on.buckets.iter_mut().for_each(|b| b.encrypt = Some(true));
    let k = key_file(keys.path(), "k1.key", 0x11);
    on.encryption.as_mut().unwrap().key = s3o_gateway::KeySource::File(k);
    let opts = s3o_gateway::RotateOptions {
        batch: 3,
        pause: Duration::ZERO,
    };
    let done = s3o_gateway::convert_objects(
        &on,
        s3o_gateway::ConvertDirection::Encrypt,
        opts,
        &mut |_| {},
    )
    .await
    .expect("encrypt-existing");
    assert_eq!((done.converted, done.failed), (4, 0), "{done:?}");
    let after = rig
        .store()
        .get_all_object_locations("twice/old/1")
        .await
        .unwrap();
    assert_eq!(after.len(), 2, "every copy converted");
    for (b, a) in before.iter().zip(&after) {
        assert!(a.form.encrypted && a.form.storage_key.ends_with(".enc"));
        assert_eq!((&a.form.etag, a.created_at), (&b.form.etag, b.created_at));
        assert_eq!(a.size_bytes, stored(5003));
    }
    assert_no_plaintext(&rig).await;
    for (k, d) in &objects {
        let got = client.get(&path(k)).await.unwrap().bytes().await.unwrap();
        assert!(got == *d, "{k} reads after encrypt-existing");
    }
    let again = s3o_gateway::convert_objects(
        &on,
        s3o_gateway::ConvertDirection::Encrypt,
        opts,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(again.converted, 0, "a second run has nothing to do");

    // A client overwrite: the conversion back leaves the new version alone (it is plaintext
    // in a bucket that does not encrypt) and opens the others.
    let fresh = Bytes::from_static(b"written by a client between the conversions");
    client
        .put(&path("old/2"), PutPayload::from(fresh.clone()))
        .await
        .unwrap();
    let done = s3o_gateway::convert_objects(
        &rig.config,
        s3o_gateway::ConvertDirection::Decrypt,
        opts,
        &mut |_| {},
    )
    .await
    .expect("decrypt-existing");
    assert_eq!((done.converted, done.failed), (3, 0), "{done:?}");
    for (k, d) in &objects {
        let rows = rig
            .store()
            .get_all_object_locations(&format!("twice/{k}"))
            .await
            .unwrap();
        assert!(
            rows.iter().all(|r| !r.form.encrypted),
            "{k} is plaintext again"
        );
        let want = if k == "old/2" { &fresh } else { d };
        let got = client.get(&path(k)).await.unwrap().bytes().await.unwrap();
        assert!(got == *want, "{k}");
    }
    rig.assert_clean().await;
    rig.finish().await;
}

/// Rotation covers every row holding a wrapped data key, not only current copies: a
/// versioned bucket with noncurrent versions (one under a delete marker) and an open
/// multipart upload with a part already written is rotated from `k1` to `k2`; the run reports
/// each table and nothing left under `k1`. A gateway holding only `k2` then finishes the
/// upload (a second part sealed with the upload's re-wrapped key, Complete opening the part
/// written before the rotation) and reads every version, whole and ranged, byte for byte.
pub(crate) async fn rotation_covers_versions_and_uploads(ledger: Ledger) {
    const MIB: usize = 1 << 20;
    let Some((rig, keys)) = start(ledger, "").await else {
        return;
    };
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}?versioning"),
            &[],
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let version_of = |r: &crate::raw::Reply| {
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("x-amz-version-id").expect("a version id")
    };
    // doc: three versions; gone: one version under a delete marker.
    let mut versions: Vec<(&str, String, Bytes)> = Vec::new();
    for (i, n) in [CHUNK + 1, 3 * CHUNK, 17].into_iter().enumerate() {
        let data = marked(n, 40 + i as u8);
        let r = rig
            .raw
            .send("PUT", &format!("/{BUCKET}/doc"), &[], data.clone())
            .await;
        versions.push(("doc", version_of(&r), data));
    }
    let gone = marked(2 * CHUNK + 5, 50);
    let r = rig
        .raw
        .send("PUT", &format!("/{BUCKET}/gone"), &[], gone.clone())
        .await;
    versions.push(("gone", version_of(&r), gone));
    let r = rig
        .raw
        .send("DELETE", &format!("/{BUCKET}/gone"), &[], "")
        .await;
    assert_eq!(r.status, 204);

    // An open upload with its first part written under k1.
    let target = format!("/{BUCKET}/big");
    let r = rig
        .raw
        .send("POST", &format!("{target}?uploads"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let upload_id = crate::raw::xml_values(&r.text(), "UploadId").remove(0);
    let id = crate::raw::encode_query(&upload_id);
    let p1 = marked(5 * MIB, 60);
    let p2 = marked(3 * CHUNK + 7, 61);
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("{target}?partNumber=1&uploadId={id}"),
            &[],
            p1.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "UploadPart 1: {}", r.text());
    let census = |rows: Vec<s3o_store::KeyCensus>| {
        rows.into_iter()
            .map(|c| (c.holder, c.key_id, c.rows))
            .collect::<Vec<_>>()
    };
    use s3o_store::KeyHolder as H;
    assert_eq!(
        census(rig.store().wrapped_key_census().await.unwrap()),
        vec![
            (H::Current, "k1".to_owned(), 1),
            (H::Version, "k1".to_owned(), 3),
            (H::Upload, "k1".to_owned(), 1),
            (H::Part, "k1".to_owned(), 1),
        ]
    );

    let before = backend_bytes(&rig).await;
    let rotating = with_keys(&rig.config, keys.path(), ("k2", 0x22), &[("k1", 0x11)]);
    let opts = s3o_gateway::RotateOptions {
        batch: 1,
        pause: Duration::ZERO,
    };
    let done = s3o_gateway::rotate_encryption_keys(&rotating, opts, &mut |_| {})
        .await
        .expect("rotate");
    let rewrapped = |name: &str| done.holders.get(name).map_or(0, |c| c.rewrapped);
    assert_eq!(
        (
            rewrapped("current_copies"),
            rewrapped("noncurrent_copies"),
            rewrapped("open_uploads"),
            rewrapped("upload_parts"),
        ),
        (1, 3, 1, 1),
        "{done:?}"
    );
    assert_eq!((done.rewrapped, done.raced, done.failed), (6, 0, 0));
    assert!(done.remaining.is_empty(), "nothing left under k1: {done:?}");
    assert_eq!(done.passes, 1);
    assert_eq!(
        census(rig.store().wrapped_key_census().await.unwrap()),
        vec![
            (H::Current, "k2".to_owned(), 1),
            (H::Version, "k2".to_owned(), 3),
            (H::Upload, "k2".to_owned(), 1),
            (H::Part, "k2".to_owned(), 1),
        ]
    );
    assert_eq!(
        backend_bytes(&rig).await,
        before,
        "rotation touches no backend byte"
    );

    // Only k2 from here on: finish the upload and read everything back.
    let only_new = with_keys(&rig.config, keys.path(), ("k2", 0x22), &[]);
    let gw = s3o_gateway::Gateway::start(only_new)
        .await
        .expect("new-key gateway");
    let raw = crate::raw::Raw::new(&gw.endpoint());
    let r = raw
        .send(
            "PUT",
            &format!("{target}?partNumber=2&uploadId={id}"),
            &[],
            p2.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "UploadPart 2 under k2 alone: {}", r.text());
    let xml = format!(
        "<CompleteMultipartUpload>\
         <Part><PartNumber>1</PartNumber><ETag>\"{}\"</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>\"{}\"</ETag></Part>\
         </CompleteMultipartUpload>",
        md5_hex(&p1),
        md5_hex(&p2)
    );
    let r = raw
        .send("POST", &format!("{target}?uploadId={id}"), &[], xml)
        .await;
    assert_eq!(r.status, 200, "Complete under k2 alone: {}", r.text());
    assert!(!r.text().contains("<Error>"), "{}", r.text());
    let mut big = p1.to_vec();
    big.extend_from_slice(&p2);
    let r = raw.send("GET", &target, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == big, "the completed upload reads back under k2");
    for (key, vid, data) in &versions {
        let r = raw
            .send("GET", &format!("/{BUCKET}/{key}?versionId={vid}"), &[], "")
            .await;
        assert_eq!(r.status, 200, "{key} {vid}: {}", r.text());
        assert!(r.body == *data, "{key} version {vid} reads back under k2");
        if data.len() > CHUNK {
            // Across the first chunk boundary (to the end of a one-byte second chunk).
            let (s, e) = (CHUNK - 3, (CHUNK + 5).min(data.len()));
            let r = raw
                .send(
                    "GET",
                    &format!("/{BUCKET}/{key}?versionId={vid}"),
                    &[("range", &format!("bytes={s}-{}", e - 1))],
                    "",
                )
                .await;
            assert_eq!(r.status, 206, "{}", r.text());
            assert!(r.body == data.slice(s..e), "{key} {vid}: ranged read");
        }
    }
    let r = raw.send("GET", &format!("/{BUCKET}/doc"), &[], "").await;
    assert!(r.status == 200 && r.body == versions[2].2, "current doc");
    gw.shutdown().await;
    assert_no_plaintext(&rig).await;
    rig.assert_clean().await;
    rig.finish().await;
}

/// `encrypt-existing` and `decrypt-existing` convert noncurrent versions too (one under a
/// delete marker included): every version reads back byte for byte by id, Last-Modified and
/// ETag stay, no backend holds the plaintext while the bucket encrypts, and the ledger agrees
/// with the backends after each run.
pub(crate) async fn convert_covers_noncurrent_versions(ledger: Ledger) {
    let more = "[[buckets]]\nname = \"hist\"\nencrypt = false\n";
    let Some((rig, keys)) = start(ledger, more).await else {
        return;
    };
    let r = rig
        .raw
        .send(
            "PUT",
            "/hist?versioning",
            &[],
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut versions: Vec<(&str, String, Bytes)> = Vec::new();
    for (key, n, seed) in [
        ("doc", 5000, 70u8),
        ("doc", 17, 71),
        ("doc", 9000, 72),
        ("gone", 4100, 73),
    ] {
        let data = marked(n, seed);
        let r = rig
            .raw
            .send("PUT", &format!("/hist/{key}"), &[], data.clone())
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        versions.push((key, r.header("x-amz-version-id").unwrap(), data));
    }
    let r = rig.raw.send("DELETE", "/hist/gone", &[], "").await;
    assert_eq!(r.status, 204);
    let heads = |raw: crate::raw::Raw| {
        let versions = versions.clone();
        async move {
            let mut out = Vec::new();
            for (key, vid, data) in &versions {
                let r = raw
                    .send("GET", &format!("/hist/{key}?versionId={vid}"), &[], "")
                    .await;
                assert_eq!(r.status, 200, "{key} {vid}: {}", r.text());
                assert!(r.body == *data, "{key} {vid} reads back");
                out.push((r.header("etag"), r.header("last-modified")));
            }
            out
        }
    };
    let before = heads(crate::raw::Raw::new(&rig.gateway().endpoint())).await;

    let mut on = rig.config.clone();
    on.buckets.iter_mut().for_each(|b| b.encrypt = Some(true));
    let k = key_file(keys.path(), "k1.key", 0x11);
    on.encryption.as_mut().unwrap().key = s3o_gateway::KeySource::File(k);
    let opts = s3o_gateway::RotateOptions {
        batch: 2,
        pause: Duration::ZERO,
    };
    let done = s3o_gateway::convert_objects(
        &on,
        s3o_gateway::ConvertDirection::Encrypt,
        opts,
        &mut |_| {},
    )
    .await
    .expect("encrypt-existing");
    assert_eq!(
        (done.converted, done.noncurrent, done.failed, done.raced),
        (4, 3, 0, 0),
        "{done:?}"
    );
    let census: Vec<_> = rig
        .store()
        .wrapped_key_census()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.holder, c.rows))
        .collect();
    assert_eq!(
        census,
        vec![
            (s3o_store::KeyHolder::Current, 1),
            (s3o_store::KeyHolder::Version, 3)
        ]
    );
    assert_no_plaintext(&rig).await;
    rig.assert_clean().await;
    let gw = s3o_gateway::Gateway::start(on.clone())
        .await
        .expect("encrypting gateway");
    assert_eq!(
        heads(crate::raw::Raw::new(&gw.endpoint())).await,
        before,
        "ETag and Last-Modified stay"
    );
    gw.shutdown().await;

    // And back: the bucket no longer encrypts.
    let mut off = on.clone();
    off.buckets.iter_mut().for_each(|b| b.encrypt = Some(false));
    let done = s3o_gateway::convert_objects(
        &off,
        s3o_gateway::ConvertDirection::Decrypt,
        opts,
        &mut |_| {},
    )
    .await
    .expect("decrypt-existing");
    assert_eq!(
        (done.converted, done.noncurrent, done.failed),
        (4, 3, 0),
        "{done:?}"
    );
    assert!(rig.store().wrapped_key_census().await.unwrap().is_empty());
    assert_eq!(
        heads(crate::raw::Raw::new(&rig.gateway().endpoint())).await,
        before
    );
    rig.assert_clean().await;
    rig.finish().await;
}
