//! Multipart uploads: a round trip through object_store's multipart writer (ETag `-N`), on an
//! S3 backend and on a local directory; ListMultipartUploads, ListParts and Abort.

use bytes::Bytes;
use object_store::{ObjectStoreExt, WriteMultipart};

use crate::raw::{encode_key, encode_query, xml_nested, xml_values};
use crate::rig::{BUCKET, Ledger, Options, Rig, body, local, md5_hex, path};
use crate::writes::unquote;

const MIB: usize = 1 << 20;

/// Uploads `data` as parts of `part` bytes (the last one shorter) and returns the part bodies.
async fn upload(rig: &Rig, key: &str, data: &Bytes, part: usize) -> Vec<Bytes> {
    let upload = rig
        .client
        .put_multipart(&path(key))
        .await
        .expect("CreateMultipartUpload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
    writer.write(data);
    writer.finish().await.expect("CompleteMultipartUpload");
    data.chunks(part).map(Bytes::copy_from_slice).collect()
}

/// The S3 multipart ETag: MD5 of the parts' binary MD5s, then `-N`.
fn multipart_etag(parts: &[Bytes]) -> String {
    use md5::Digest;
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&md5::Md5::digest(p));
    }
    format!("{}-{}", md5_hex(&all), parts.len())
}

async fn round_trip(rig: &Rig) {
    let key = "videos/clip ünï+1.mp4";
    let data = body(2 * 5 * MIB + 1_000, 7);
    let parts = upload(rig, key, &data, 5 * MIB).await;
    assert_eq!(parts.len(), 3);
    let meta = rig.client.head(&path(key)).await.expect("HEAD");
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(unquote(meta.e_tag.as_deref()), multipart_etag(&parts));
    let got = rig.get(key).await;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "multipart object reads back byte for byte");
    let ranged = rig
        .client
        .get_range(&path(key), (5 * MIB as u64 - 10)..(5 * MIB as u64 + 10))
        .await
        .expect("range across a part boundary");
    assert_eq!(ranged, data.slice(5 * MIB - 10..5 * MIB + 10));
    let placement = rig.placement(key).await;
    assert_eq!(placement.len(), 1, "{placement:?}");
    assert_eq!(placement[0].1, data.len() as i64);
    assert_eq!(
        rig.physical_bytes().await,
        data.len() as u64,
        "no part left over on any backend"
    );

    // Overwriting a multipart object with a plain PUT frees all of its bytes.
    rig.put(key, body(10, 1)).await;
    assert_eq!(rig.physical_bytes().await, 10);
    rig.assert_clean().await;
}

/// Three parts through an S3 backend: ETag `md5-of-md5s-3`, bytes and ranges intact, no
/// part left behind.
pub(crate) async fn multipart_round_trip_etag_n(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    round_trip(&rig).await;
    rig.finish().await;
}

/// The same round trip when the only backend is a local directory (no backend multipart).
pub(crate) async fn multipart_on_local_directory(ledger: Ledger) {
    let Some(rig) = Rig::start(
        ledger,
        Options {
            backends: &[local("disk-only", 0)],
            routing: "pack",
            store_url: None,
        },
    )
    .await
    else {
        return;
    };
    round_trip(&rig).await;
    rig.finish().await;
}

/// An open upload shows in ListMultipartUploads and its parts in ListParts; Abort removes it,
/// its parts' bytes and its ledger record, and the key never appears.
pub(crate) async fn multipart_list_and_abort(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let key = "up loads/ünï+%.bin";
    let target = format!("/{BUCKET}/{}", encode_key(key));
    let reply = rig
        .raw
        .send("POST", &format!("{target}?uploads"), &[], "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let upload_id = xml_values(&reply.text(), "UploadId")
        .into_iter()
        .next()
        .expect("UploadId");
    let id = encode_query(&upload_id);
    let p1 = body(1_000, 1);
    let p2 = body(500, 2);
    for (n, part) in [(1, &p1), (2, &p2)] {
        let reply = rig
            .raw
            .send(
                "PUT",
                &format!("{target}?partNumber={n}&uploadId={id}"),
                &[],
                part.clone(),
            )
            .await;
        assert_eq!(reply.status, 200, "UploadPart {n}: {}", reply.text());
        assert_eq!(unquote(reply.header("etag").as_deref()), md5_hex(part));
    }

    let reply = rig
        .raw
        .send("GET", &format!("/{BUCKET}?uploads"), &[], "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        xml_nested(&reply.text(), "Upload", "UploadId"),
        std::slice::from_ref(&upload_id)
    );
    assert_eq!(xml_nested(&reply.text(), "Upload", "Key"), [key]);

    let reply = rig
        .raw
        .send("GET", &format!("{target}?uploadId={id}"), &[], "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let xml = reply.text();
    assert_eq!(xml_nested(&xml, "Part", "PartNumber"), ["1", "2"]);
    assert_eq!(xml_nested(&xml, "Part", "Size"), ["1000", "500"]);
    let etags: Vec<String> = xml_nested(&xml, "Part", "ETag")
        .iter()
        .map(|e| unquote(Some(e)))
        .collect();
    assert_eq!(etags, [md5_hex(&p1), md5_hex(&p2)]);

    let reply = rig
        .raw
        .send("DELETE", &format!("{target}?uploadId={id}"), &[], "")
        .await;
    assert_eq!(reply.status, 204, "Abort: {}", reply.text());
    let reply = rig
        .raw
        .send("GET", &format!("/{BUCKET}?uploads"), &[], "")
        .await;
    assert!(
        xml_nested(&reply.text(), "Upload", "UploadId").is_empty(),
        "aborted upload still listed: {}",
        reply.text()
    );
    let reply = rig
        .raw
        .send(
            "PUT",
            &format!("{target}?partNumber=3&uploadId={id}"),
            &[],
            body(10, 3),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (404, "NoSuchUpload"),
        "a part for an aborted upload"
    );
    let reply = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        rig.physical_bytes().await,
        0,
        "aborted parts' bytes are gone"
    );
    rig.assert_clean().await;
    rig.finish().await;
}
