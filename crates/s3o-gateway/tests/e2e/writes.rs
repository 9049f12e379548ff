//! Writes: routing by quota (pack spills, 507 when full; spread), overwrite, DELETE,
//! DeleteObjects and CopyObject, each checked against the backends and the ledger.

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::raw::encode_key;
use crate::rig::{self, BUCKET, Ledger, Options, Rig, body, local, md5_hex, path, s3};

/// `pack` fills backends in config order, spills to the next one when a write would not fit,
/// and answers 507 InsufficientStorage, storing nothing, when no backend has room.
pub(crate) async fn pack_spills_to_next_backend_then_507(ledger: Ledger) {
    let backends = [
        s3("fs-a", 10_000),
        s3("fs-b", 10_000),
        local("disk-c", 10_000),
    ];
    let Some(rig) = Rig::start(
        ledger,
        Options {
            backends: &backends,
            routing: "pack",
            store_url: None,
        },
    )
    .await
    else {
        return;
    };
    rig.put("k1", body(6_000, 1)).await;
    assert_eq!(rig.placement("k1").await, [("fs-a".into(), 6_000)]);
    rig.put("k2", body(6_000, 2)).await;
    assert_eq!(rig.placement("k2").await, [("fs-b".into(), 6_000)]);
    rig.put("k3", body(6_000, 3)).await;
    assert_eq!(rig.placement("k3").await, [("disk-c".into(), 6_000)]);
    // fs-a still has 4 000 bytes of room: pack goes back to the first backend that fits.
    rig.put("k4", body(4_000, 4)).await;
    assert_eq!(rig.placement("k4").await, [("fs-a".into(), 4_000)]);
    rig.assert_clean().await;
    let before = rig.physical().await;

    let reply = rig
        .raw
        .send("PUT", &format!("/{BUCKET}/k5"), &[], body(4_001, 5))
        .await;
    assert_eq!(reply.status, 507, "all backends full: {}", reply.text());
    assert_eq!(reply.code(), "InsufficientStorage");
    assert!(
        rig.client.put(&path("k5"), body(1, 5).into()).await.is_ok(),
        "fs-b still has 4 000 bytes: a 1-byte object fits"
    );
    assert_eq!(rig.placement("k5").await, [("fs-b".into(), 1)]);
    let reply = rig
        .raw
        .send("PUT", &format!("/{BUCKET}/k6"), &[], body(4_001, 6))
        .await;
    assert_eq!(
        reply.status, 507,
        "disk-c has 4 000 bytes of room, fs-b 3 999"
    );
    assert!(
        rig.placement("k6").await.is_empty(),
        "a refused PUT is not in the ledger"
    );
    let reply = rig.raw.send("GET", &format!("/{BUCKET}/k6"), &[], "").await;
    assert_eq!(reply.status, 404);
    let after = rig.physical().await;
    for (name, objects) in &after {
        let grew = objects.len() - before[name].len();
        assert_eq!(
            grew,
            usize::from(name == "fs-b"),
            "{name}: only k5 was added by the refused/accepted PUTs"
        );
    }
    for (key, seed, size) in [("k1", 1, 6_000), ("k2", 2, 6_000), ("k3", 3, 6_000)] {
        assert_eq!(rig.get(key).await, body(size, seed), "{key}");
    }
    rig.assert_clean().await;
    rig.finish().await;
}

/// A backend with `sign_payload = false` gets unsigned bodies (`UNSIGNED-PAYLOAD`; the default
/// over `https://`): a small PUT and a streamed one (backend multipart) store the same bytes.
pub(crate) async fn unsigned_backend_payloads_store_the_same_bytes(ledger: Ledger) {
    let backends = [rig::faulty("fs-a", 1 << 30)];
    // Appended right after the last `[[backends]]` table: it sets that backend's key.
    let Some(rig) = Rig::start_with(
        ledger,
        Options {
            backends: &backends,
            routing: "pack",
            store_url: None,
        },
        "sign_payload = false\n",
    )
    .await
    else {
        return;
    };
    assert_eq!(rig.config.backends[0].sign_payload, Some(false));
    assert!(!rig.config.backends[0].signs_payload());
    let big = body(12 << 20, 7);
    rig.put("small", body(4_096, 3)).await;
    rig.put("big", big.clone()).await;
    assert_eq!(rig.get("small").await, body(4_096, 3));
    assert_eq!(rig.get("big").await, big);
    let stored = rig.backends[0]
        .direct
        .list(None)
        .map_ok(|o| o.size)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(
        stored.iter().sum::<u64>(),
        4_096 + (12 << 20),
        "the backend holds both bodies, whole: {stored:?}"
    );
    // One PUT each (the long body streamed in one request), none signed.
    assert_eq!(rig.backends[0].faults().payloads(), (0, 2));
    rig.assert_clean().await;
    rig.finish().await;
}

/// A body over 5 MiB and within `single_put_max_bytes` reaches an S3 backend as one streamed
/// PUT, chunk-signed over `http://`, not as a multipart upload the backend must assemble; a
/// longer one still goes as 5 MiB parts. A backend that refuses the streamed PUT, or a client
/// body shorter than announced, leaves nothing visible, stored or owed.
pub(crate) async fn long_bodies_go_as_one_streamed_put(ledger: Ledger) {
    use crate::faulty::{Op, Rule};
    let backends = [rig::faulty("fs-a", 1 << 30)];
    let Some(rig) = Rig::start_with(
        ledger,
        Options {
            backends: &backends,
            routing: "pack",
            store_url: None,
        },
        "single_put_max_bytes = 20971520\n",
    )
    .await
    else {
        return;
    };
    assert_eq!(rig.config.backends[0].single_put_max(), 20 << 20);
    let faults = rig.backends[0].faults();
    let calls = || {
        (
            faults.calls(Op::Put),
            faults.calls(Op::CreateMpu),
            faults.calls(Op::UploadPart),
        )
    };
    // An odd length: the last signed chunk is short.
    let odd = body((12 << 20) + 12_345, 9);
    rig.put("one", odd.clone()).await;
    assert_eq!(calls(), (1, 0, 0), "one PUT, no multipart upload");
    assert_eq!(faults.payloads(), (1, 0), "its body chunk-signed");
    assert_eq!(rig.get("one").await, odd);
    // Past the bound: parts, as before.
    let long = body(21 << 20, 4);
    rig.put("long", long.clone()).await;
    assert_eq!(calls(), (1, 1, 5), "21 MiB in five parts");
    assert_eq!(rig.get("long").await, long);
    let physical: u64 = rig.physical().await["fs-a"].iter().map(|(_, n)| n).sum();
    assert_eq!(physical, odd.len() as u64 + long.len() as u64);
    // Refused by the backend: a 500, nothing stored or visible.
    faults.add(Rule::on(&[Op::Put]).path("refused").fail(500));
    let target = format!("/{BUCKET}/refused");
    let r = rig.raw.send("PUT", &target, &[], body(8 << 20, 1)).await;
    assert_eq!(r.status, 500, "a refused streamed PUT fails the write");
    assert_eq!(rig.raw.send("HEAD", &target, &[], "").await.status, 404);
    // A client body that ends before its Content-Length: the gateway never gets it whole,
    // so neither does the backend.
    short_put(&rig, "short", 8 << 20, 6 << 20).await;
    assert_eq!(
        rig.raw
            .send("HEAD", &format!("/{BUCKET}/short"), &[], "")
            .await
            .status,
        404
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// Sends a PUT of `key` announcing `announced` bytes, sends `sent` of them, then half-closes
/// and drops the connection.
async fn short_put(rig: &Rig, key: &str, announced: usize, sent: usize) {
    use tokio::io::AsyncWriteExt as _;
    let addr = rig
        .gateway()
        .endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let length = announced.to_string();
    let target = format!("/{BUCKET}/{key}");
    let mut head = format!("PUT {target} HTTP/1.1\r\nhost: {addr}\r\n");
    for (k, v) in rig
        .raw
        .unsigned_headers("PUT", &target, &[("content-length", &length)])
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body(sent, 2)).await.expect("body");
    conn.shutdown().await.expect("half-close");
    // The gateway answers (or just closes) once it sees the body end early.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut rest),
    )
    .await;
}

/// `spread` sends each write to the least utilised backend: three equal writes on three
/// empty backends with equal quotas land on three different backends.
pub(crate) async fn spread_uses_least_utilised(ledger: Ledger) {
    let Some(rig) = Rig::start(
        ledger,
        Options {
            backends: &rig::THREE,
            routing: "spread",
            store_url: None,
        },
    )
    .await
    else {
        return;
    };
    let mut used = Vec::new();
    for (i, key) in ["s1", "s2", "s3"].into_iter().enumerate() {
        rig.put(key, body(50_000, i as u8)).await;
        let placement = rig.placement(key).await;
        assert_eq!(placement.len(), 1, "{key}: one copy");
        used.push(placement[0].0.clone());
    }
    used.sort();
    assert_eq!(used, ["disk-c", "fs-a", "fs-b"], "one write per backend");
    rig.assert_clean().await;
    rig.finish().await;
}

/// An overwrite serves the new bytes at once, and the replaced version's bytes leave the
/// backend: nothing is left behind and the ledger counts only the new version.
pub(crate) async fn overwrite_leaves_only_the_new_bytes(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let v1 = body(100_000, 1);
    let v2 = body(30_000, 2);
    rig.put("photo 1.jpg", v1.clone()).await;
    assert_eq!(rig.physical_bytes().await, 100_000);
    rig.put("photo 1.jpg", v2.clone()).await;
    assert_eq!(rig.get("photo 1.jpg").await, v2);
    let meta = rig.client.head(&path("photo 1.jpg")).await.expect("HEAD");
    assert_eq!(meta.size, 30_000);
    assert_eq!(unquote(meta.e_tag.as_deref()), md5_hex(&v2));
    let placement = rig.placement("photo 1.jpg").await;
    assert_eq!(
        placement.len(),
        1,
        "one copy after overwrite: {placement:?}"
    );
    assert_eq!(placement[0].1, 30_000);
    assert_eq!(
        rig.physical_bytes().await,
        30_000,
        "the replaced version's bytes are gone from every backend"
    );
    // Many overwrites in a row leave one version too.
    for seed in 3..8 {
        rig.put("photo 1.jpg", body(1_000 * usize::from(seed), seed))
            .await;
    }
    assert_eq!(rig.get("photo 1.jpg").await, body(7_000, 7));
    assert_eq!(rig.physical_bytes().await, 7_000);
    rig.assert_clean().await;
    rig.finish().await;
}

/// DELETE removes the object and its bytes; a DELETE of an absent key answers 204;
/// DeleteObjects removes a batch (absent keys included) and leaves the rest untouched.
pub(crate) async fn delete_and_delete_objects(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let keys = ["d 1", "d+2", "d%3", "dé4", "d/5", "d/6"];
    for (i, key) in keys.iter().enumerate() {
        rig.put(key, body(1_000 + i, i as u8)).await;
    }
    // Single DELETE (object_store sends DeleteObjects unless bulk delete is off).
    let single = rig::s3_builder(&rig.gateway().endpoint(), BUCKET, rig::AK, rig::SK)
        .with_disable_bulk_delete(true)
        .build()
        .expect("S3 client");
    single.delete(&path("d 1")).await.expect("DELETE");
    let reply = rig
        .raw
        .send("HEAD", &format!("/{BUCKET}/{}", encode_key("d 1")), &[], "")
        .await;
    assert_eq!(reply.status, 404, "deleted object is gone");
    assert!(rig.placement("d 1").await.is_empty());

    let reply = rig
        .raw
        .send(
            "DELETE",
            &format!("/{BUCKET}/{}", encode_key("never existed")),
            &[],
            "",
        )
        .await;
    assert_eq!(
        reply.status, 204,
        "DELETE of an absent key answers 204, as S3 does"
    );
    let reply = rig
        .raw
        .send(
            "DELETE",
            &format!("/{BUCKET}/{}", encode_key("d 1")),
            &[],
            "",
        )
        .await;
    assert_eq!(reply.status, 204, "a second DELETE answers 204 too");

    // DeleteObjects through object_store's bulk path, with one absent key in the batch.
    let batch: Vec<_> = ["d+2", "d%3", "dé4", "absent"]
        .iter()
        .map(|k| Ok(path(k)))
        .collect();
    let deleted: Vec<_> = rig
        .client
        .delete_stream(futures::stream::iter(batch).boxed())
        .try_collect()
        .await
        .expect("DeleteObjects");
    assert_eq!(
        deleted.len(),
        4,
        "every key of the batch is reported deleted"
    );
    let left: Vec<String> = rig
        .client
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    assert_eq!(left, ["d/5", "d/6"]);
    for key in ["d+2", "d%3", "dé4"] {
        assert!(rig.placement(key).await.is_empty(), "{key} left the ledger");
    }
    assert_eq!(rig.get("d/5").await, body(1_004, 4));
    assert_eq!(rig.physical_bytes().await, 1_004 + 1_005);
    rig.assert_clean().await;
    rig.finish().await;
}

/// CopyObject makes an independent object: same bytes and ETag, its own ledger row and
/// bytes, unaffected when the source is overwritten or deleted.
pub(crate) async fn copy_object(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let src = "src/ünï cöde+%.bin";
    let dst = "dst/copy of ünï+%.bin";
    let original = body(20_000, 9);
    rig.put(src, original.clone()).await;
    rig.client
        .copy(&path(src), &path(dst))
        .await
        .expect("CopyObject");
    assert_eq!(rig.get(dst).await, original);
    let meta = rig.client.head(&path(dst)).await.expect("HEAD copy");
    assert_eq!(meta.size, 20_000);
    assert_eq!(unquote(meta.e_tag.as_deref()), md5_hex(&original));
    assert_eq!(rig.placement(dst).await.len(), 1);
    assert_eq!(
        rig.physical_bytes().await,
        40_000,
        "the copy has its own bytes"
    );

    rig.put(src, body(500, 10)).await;
    assert_eq!(
        rig.get(dst).await,
        original,
        "overwriting the source leaves the copy"
    );
    rig.client.delete(&path(src)).await.expect("delete source");
    assert_eq!(
        rig.get(dst).await,
        original,
        "deleting the source leaves the copy"
    );

    // Copy onto an existing key replaces it like a PUT.
    rig.put("dst/other", body(3_000, 11)).await;
    rig.client
        .copy(&path(dst), &path("dst/other"))
        .await
        .expect("copy over");
    assert_eq!(rig.get("dst/other").await, original);
    assert_eq!(rig.physical_bytes().await, 40_000);

    let reply = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}/x"),
            &[("x-amz-copy-source", &format!("/{BUCKET}/no-such-key"))],
            "",
        )
        .await;
    assert_eq!(
        reply.status,
        404,
        "copy of an absent source: {}",
        reply.text()
    );
    assert!(rig.placement("x").await.is_empty());
    rig.assert_clean().await;
    rig.finish().await;
}

/// An ETag header value without its quotes.
pub(crate) fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}
