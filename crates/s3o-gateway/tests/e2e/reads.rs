//! Reads: GET, HEAD and Range after a PUT and after an overwrite, with the gateway's own
//! ETag, Content-Type, user metadata and Last-Modified.

use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions,
};

use crate::raw::encode_key;
use crate::rig::{BUCKET, Ledger, Rig, body, md5_hex, path};
use crate::writes::unquote;

/// GET returns the bytes, HEAD the size, ETag (MD5), Content-Type and metadata; ranges
/// (bounded, open-ended, suffix) answer 206 with the right slice and Content-Range; after an
/// overwrite every read serves the new version.
pub(crate) async fn get_head_range_after_put_and_overwrite(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let key = "albums/été 2026/img+1.png";
    let target = format!("/{BUCKET}/{}", encode_key(key));
    let v1 = body(70_000, 1);
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, "image/png".into());
    attributes.insert(Attribute::Metadata("camera".into()), "pinhole".into());
    rig.client
        .put_opts(
            &path(key),
            v1.clone().into(),
            PutOptions {
                attributes,
                ..PutOptions::default()
            },
        )
        .await
        .expect("PUT v1");

    assert_eq!(rig.get(key).await, v1);
    let head1 = rig.client.head(&path(key)).await.expect("HEAD v1");
    assert_eq!(head1.size, 70_000);
    assert_eq!(unquote(head1.e_tag.as_deref()), md5_hex(&v1));
    let reply = rig.raw.send("HEAD", &target, &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(
        reply.header("x-amz-meta-camera").as_deref(),
        Some("pinhole")
    );
    assert_eq!(reply.header("content-length").as_deref(), Some("70000"));
    assert!(
        reply.header("last-modified").is_some(),
        "Last-Modified is set"
    );

    let got = rig
        .client
        .get_range(&path(key), 1_000..1_100)
        .await
        .expect("bounded range");
    assert_eq!(got, v1.slice(1_000..1_100));
    for (range, expect) in [
        (GetRange::Offset(69_990), v1.slice(69_990..)),
        (GetRange::Suffix(25), v1.slice(70_000 - 25..)),
    ] {
        let got = rig
            .client
            .get_opts(
                &path(key),
                GetOptions {
                    range: Some(range.clone()),
                    ..GetOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{range:?}: {e}"))
            .bytes()
            .await
            .expect("range body");
        assert_eq!(got, expect, "{range:?}");
    }
    let reply = rig
        .raw
        .send("GET", &target, &[("range", "bytes=5-9")], "")
        .await;
    assert_eq!(reply.status, 206);
    assert_eq!(reply.body, v1.slice(5..10));
    assert_eq!(
        reply.header("content-range").as_deref(),
        Some("bytes 5-9/70000")
    );
    let reply = rig
        .raw
        .send("GET", &target, &[("range", "bytes=80000-80010")], "")
        .await;
    assert_eq!(reply.status, 416, "range past the end: {}", reply.text());

    // Overwrite with a shorter body and no Content-Type: reads follow the new version.
    let v2 = body(2_000, 2);
    rig.put(key, v2.clone()).await;
    assert_eq!(rig.get(key).await, v2);
    let head2 = rig.client.head(&path(key)).await.expect("HEAD v2");
    assert_eq!(head2.size, 2_000);
    assert_eq!(unquote(head2.e_tag.as_deref()), md5_hex(&v2));
    assert!(head2.last_modified >= head1.last_modified);
    let reply = rig.raw.send("HEAD", &target, &[], "").await;
    assert_eq!(
        reply.header("x-amz-meta-camera"),
        None,
        "metadata belongs to the replaced version"
    );
    let got = rig
        .client
        .get_range(&path(key), 1_990..2_000)
        .await
        .expect("range v2");
    assert_eq!(got, v2.slice(1_990..2_000));
    let reply = rig
        .raw
        .send("GET", &target, &[("range", "bytes=1000-1999")], "")
        .await;
    assert_eq!(reply.status, 206);
    assert_eq!(reply.body, v2.slice(1_000..2_000));
    let reply = rig
        .raw
        .send("GET", &target, &[("range", "bytes=5000-5001")], "")
        .await;
    assert_eq!(reply.status, 416, "v1's length no longer applies");

    let missing = format!("/{BUCKET}/{}", encode_key("no such key"));
    let reply = rig.raw.send("GET", &missing, &[], "").await;
    assert_eq!((reply.status, reply.code().as_str()), (404, "NoSuchKey"));
    let reply = rig.raw.send("HEAD", &missing, &[], "").await;
    assert_eq!(reply.status, 404);
    rig.assert_clean().await;
    rig.finish().await;
}

/// GETs of a small object after the first are answered from the read cache: the backend sees
/// one GET, ranges are cut from the cached body, an overwrite is read anew and a delete is a
/// 404 (the ledger is asked first every time). A copy whose bytes do not match the ledger's
/// ETag is never cached.
pub(crate) async fn small_reads_come_from_the_cache(ledger: Ledger) {
    use crate::faulty::Op;
    use crate::raw::Auth;
    let backends = [crate::rig::faulty("fs-a", 1 << 30)];
    let Some(rig) = Rig::start(
        ledger,
        crate::rig::Options {
            backends: &backends,
            routing: "pack",
            store_url: None,
        },
    )
    .await
    else {
        return;
    };
    let faults = rig.backends[0].faults();
    let target = format!("/{BUCKET}/small");
    let first = body(4_096, 1);
    rig.put("small", first.clone()).await;
    for _ in 0..3 {
        assert_eq!(rig.get("small").await, first);
    }
    assert_eq!(faults.calls(Op::Get), 1, "one backend GET for three reads");
    let r = rig
        .raw
        .send("GET", &target, &[("range", "bytes=100-199")], "")
        .await;
    assert_eq!((r.status, &r.body[..]), (206, &first[100..200]));
    assert_eq!(
        faults.calls(Op::Get),
        1,
        "the range is cut from the cached body"
    );

    // An overwrite has a new storage path: read from the backend, then cached.
    let second = body(4_000, 2);
    rig.put("small", second.clone()).await;
    assert_eq!(rig.get("small").await, second);
    assert_eq!(rig.get("small").await, second);
    assert_eq!(faults.calls(Op::Get), 2);
    // A delete is answered by the ledger: never brought back from memory.
    assert_eq!(rig.raw.send("DELETE", &target, &[], "").await.status, 204);
    assert_eq!(rig.raw.send("GET", &target, &[], "").await.status, 404);

    // A copy corrupted on its backend (same length, other bytes) is served as it is, as
    // without the cache, but never kept: each read goes to the backend again.
    rig.put("bad", body(2_048, 3)).await;
    let stored = rig.physical().await["fs-a"]
        .iter()
        .find(|(p, _)| p.contains("bad"))
        .map(|(p, _)| p.clone())
        .expect("the bad copy's path");
    rig.backends[0]
        .direct
        .put(
            &object_store::path::Path::from(stored),
            body(2_048, 4).into(),
        )
        .await
        .expect("corrupt the copy");
    let before = faults.calls(Op::Get);
    let _ = rig
        .raw
        .send("GET", &format!("/{BUCKET}/bad"), &[], "")
        .await;
    let _ = rig
        .raw
        .send("GET", &format!("/{BUCKET}/bad"), &[], "")
        .await;
    assert_eq!(
        faults.calls(Op::Get),
        before + 2,
        "a wrong copy is not cached"
    );

    let m = rig
        .raw
        .send_auth(Auth::Anonymous, "GET", "/metrics", &[], "")
        .await
        .text();
    assert!(
        m.contains("s3o_gateway_read_cache_hits_total 4\n"),
        "three GETs and a range of the first version, one of the second: {m}"
    );
    rig.finish().await;
}
