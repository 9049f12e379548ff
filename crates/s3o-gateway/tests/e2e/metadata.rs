//! Object metadata kept in the ledger: tags (Put/Get/DeleteObjectTagging, `x-amz-tagging` on
//! PUT, CopyObject and multipart), stored headers (Cache-Control, Content-Disposition,
//! Content-Encoding, Content-Language, Expires) and checksums (returned with
//! `x-amz-checksum-mode: ENABLED`, multipart composites, GetObjectAttributes).

use bytes::Bytes;

use crate::raw::{Raw, encode_query, xml_nested, xml_values};
use crate::rig::{BUCKET, Ledger, Rig, body};

const MIB: usize = 1 << 20;

/// Base64 SHA-256 of `data`, as `x-amz-checksum-sha256` carries it.
fn sha256_b64(data: &[u8]) -> String {
    let mut h = s3s::checksum::ChecksumHasher {
        sha256: Some(Default::default()),
        ..Default::default()
    };
    h.update(data);
    h.finalize().checksum_sha256.expect("sha256 computed")
}

async fn tag_keys(raw: &Raw, key: &str) -> (u16, Vec<(String, String)>) {
    let r = raw
        .send("GET", &format!("/{BUCKET}/{key}?tagging"), &[], "")
        .await;
    let keys = xml_nested(&r.text(), "Tag", "Key");
    let values = xml_nested(&r.text(), "Tag", "Value");
    (r.status, keys.into_iter().zip(values).collect())
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn tagging_xml(tags: &[(&str, &str)]) -> String {
    let mut x = String::from("<Tagging><TagSet>");
    for (k, v) in tags {
        x.push_str(&format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"));
    }
    x.push_str("</TagSet></Tagging>");
    x
}

/// Tags ride with the version: set by the PUT header, replaced and removed in place, counted
/// on GET/HEAD, refused as a whole past S3's limits, kept or replaced by CopyObject, replaced
/// by an overwrite and gone with the object.
pub(crate) async fn tagging_round_trip(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/t1"),
            &[("x-amz-tagging", "foo=bar&bar&sp%20ace=a+b")],
            "data",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let want = pairs(&[("bar", ""), ("foo", "bar"), ("sp ace", "a b")]);
    assert_eq!(tag_keys(raw, "t1").await, (200, want.clone()));
    let r = raw.send("HEAD", &format!("/{BUCKET}/t1"), &[], "").await;
    assert_eq!(r.header("x-amz-tagging-count").as_deref(), Some("3"));
    let r = raw.send("GET", &format!("/{BUCKET}/t1"), &[], "").await;
    assert_eq!(r.header("x-amz-tagging-count").as_deref(), Some("3"));
    assert_eq!(r.body, Bytes::from_static(b"data"));

    // PutObjectTagging replaces the set.
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/t1?tagging"),
            &[],
            tagging_xml(&[("k", "v")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tag_keys(raw, "t1").await.1, pairs(&[("k", "v")]));

    // Refused sets change nothing: 11 tags, a repeated key, a key of 129 characters.
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let long = "k".repeat(129);
    for bad in [
        tagging_xml(&eleven),
        tagging_xml(&[("a", "1"), ("a", "2")]),
        tagging_xml(&[(long.as_str(), "v")]),
    ] {
        let r = raw
            .send("PUT", &format!("/{BUCKET}/t1?tagging"), &[], bad)
            .await;
        assert_eq!((r.status, r.code()), (400, "InvalidTag".to_owned()));
    }
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/t-bad"),
            &[("x-amz-tagging", "a=1&a=2")],
            "x",
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidTag".to_owned()));
    assert_eq!(tag_keys(raw, "t1").await.1, pairs(&[("k", "v")]));
    assert_eq!(
        raw.send("HEAD", &format!("/{BUCKET}/t-bad"), &[], "")
            .await
            .status,
        404,
        "a refused PUT stores nothing"
    );

    // CopyObject keeps the source's tags by default and takes the header's on REPLACE.
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/t-copy"),
            &[("x-amz-copy-source", &format!("/{BUCKET}/t1"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tag_keys(raw, "t-copy").await.1, pairs(&[("k", "v")]));
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/t-copy"),
            &[
                ("x-amz-copy-source", &format!("/{BUCKET}/t1")),
                ("x-amz-tagging-directive", "REPLACE"),
                ("x-amz-tagging", "new=1"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tag_keys(raw, "t-copy").await.1, pairs(&[("new", "1")]));

    // DeleteObjectTagging: 204, then an empty set and no count.
    let r = raw
        .send("DELETE", &format!("/{BUCKET}/t1?tagging"), &[], "")
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(tag_keys(raw, "t1").await, (200, Vec::new()));
    let r = raw.send("HEAD", &format!("/{BUCKET}/t1"), &[], "").await;
    assert_eq!(r.header("x-amz-tagging-count"), None);

    // An overwrite carries its own tags (none); a missing key has none to set or read.
    raw.send("PUT", &format!("/{BUCKET}/t-copy"), &[], "v2")
        .await;
    assert_eq!(tag_keys(raw, "t-copy").await, (200, Vec::new()));
    raw.send("DELETE", &format!("/{BUCKET}/t-copy"), &[], "")
        .await;
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/t-copy?tagging"),
            &[],
            tagging_xml(&[("k", "v")]),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".to_owned()));
    assert_eq!(tag_keys(raw, "t-copy").await.0, 404);

    // A multipart upload's tags reach the completed object.
    let r = raw
        .send(
            "POST",
            &format!("/{BUCKET}/t-mp?uploads"),
            &[("x-amz-tagging", "Hello=World&foo=bar")],
            "",
        )
        .await;
    let id = xml_values(&r.text(), "UploadId").pop().expect("upload id");
    let part = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/t-mp?partNumber=1&uploadId={}", encode_query(&id)),
            &[],
            "one part",
        )
        .await;
    let etag = part.header("etag").expect("part etag");
    let done = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let r = raw
        .send(
            "POST",
            &format!("/{BUCKET}/t-mp?uploadId={}", encode_query(&id)),
            &[],
            done,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        tag_keys(raw, "t-mp").await.1,
        pairs(&[("Hello", "World"), ("foo", "bar")])
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// Cache-Control, Content-Disposition, Content-Encoding (without `aws-chunked`),
/// Content-Language and Expires are stored and answered on GET/HEAD; `response-*` overrides
/// win; CopyObject keeps them (COPY) or takes the request's (REPLACE); a multipart upload's
/// reach the completed object.
pub(crate) async fn stored_headers_round_trip(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let expires = "Thu, 01 Dec 2044 16:00:00 GMT";
    let sent = [
        ("cache-control", "public, max-age=14400"),
        ("content-disposition", "attachment; filename=\"a.txt\""),
        ("content-encoding", "deflate, gzip"),
        ("content-language", "fr-CA"),
        ("expires", expires),
    ];
    let r = raw
        .send("PUT", &format!("/{BUCKET}/h1"), &sent, "headers")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for method in ["GET", "HEAD"] {
        let r = raw.send(method, &format!("/{BUCKET}/h1"), &[], "").await;
        assert_eq!(r.status, 200);
        for (name, value) in sent {
            assert_eq!(r.header(name).as_deref(), Some(value), "{method} {name}");
        }
    }
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}/h1?response-cache-control=no-cache&response-content-language=de"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(r.header("content-language").as_deref(), Some("de"));
    assert_eq!(
        r.header("content-disposition").as_deref(),
        Some(sent[1].1),
        "what is not overridden is the stored value"
    );

    // COPY keeps every stored header; REPLACE takes only the request's.
    let src = format!("/{BUCKET}/h1");
    raw.send(
        "PUT",
        &format!("/{BUCKET}/h2"),
        &[("x-amz-copy-source", &src)],
        "",
    )
    .await;
    let r = raw.send("HEAD", &format!("/{BUCKET}/h2"), &[], "").await;
    for (name, value) in sent {
        assert_eq!(r.header(name).as_deref(), Some(value), "copied {name}");
    }
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/h2"),
            &[
                ("x-amz-copy-source", &src),
                ("x-amz-metadata-directive", "REPLACE"),
                ("cache-control", "no-store"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw.send("HEAD", &format!("/{BUCKET}/h2"), &[], "").await;
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("content-language"), None);
    assert_eq!(r.header("expires"), None);

    // An overwrite without them drops them.
    raw.send("PUT", &format!("/{BUCKET}/h1"), &[], "plain")
        .await;
    let r = raw.send("HEAD", &format!("/{BUCKET}/h1"), &[], "").await;
    assert_eq!(r.header("cache-control"), None);
    assert_eq!(r.header("content-encoding"), None);

    // Multipart: the upload's headers reach the object.
    let r = raw
        .send(
            "POST",
            &format!("/{BUCKET}/h-mp?uploads"),
            &[("cache-control", "max-age=1"), ("content-language", "en")],
            "",
        )
        .await;
    let id = xml_values(&r.text(), "UploadId").pop().expect("upload id");
    let part = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/h-mp?partNumber=1&uploadId={}", encode_query(&id)),
            &[],
            "p",
        )
        .await;
    let etag = part.header("etag").expect("part etag");
    let r = raw
        .send(
            "POST",
            &format!("/{BUCKET}/h-mp?uploadId={}", encode_query(&id)),
            &[],
            format!(
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw.send("HEAD", &format!("/{BUCKET}/h-mp"), &[], "").await;
    assert_eq!(r.header("cache-control").as_deref(), Some("max-age=1"));
    assert_eq!(r.header("content-language").as_deref(), Some("en"));
    rig.assert_clean().await;
    rig.finish().await;
}

/// A verified checksum is kept with the version and answered only with
/// `x-amz-checksum-mode: ENABLED`; a wrong one is BadDigest and changes nothing; a multipart
/// upload with an algorithm answers the composite `<base64>-<n>`, refuses a Complete naming
/// another value, and GetObjectAttributes lists size, ETag, checksum and parts.
pub(crate) async fn checksums_kept_and_returned(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let data = body(1024, 3);
    let sum = sha256_b64(&data);
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/c1"),
            &[("x-amz-checksum-sha256", sum.as_str())],
            data.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-amz-checksum-sha256").as_deref(),
        Some(sum.as_str())
    );
    let r = raw.send("HEAD", &format!("/{BUCKET}/c1"), &[], "").await;
    assert_eq!(r.header("x-amz-checksum-sha256"), None, "only when asked");
    let enabled = [("x-amz-checksum-mode", "ENABLED")];
    for method in ["HEAD", "GET"] {
        let r = raw
            .send(method, &format!("/{BUCKET}/c1"), &enabled, "")
            .await;
        assert_eq!(
            r.header("x-amz-checksum-sha256").as_deref(),
            Some(sum.as_str())
        );
        assert_eq!(
            r.header("x-amz-checksum-type").as_deref(),
            Some("FULL_OBJECT")
        );
    }
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}/c1"),
            &[("x-amz-checksum-mode", "ENABLED"), ("range", "bytes=0-9")],
            "",
        )
        .await;
    assert_eq!(r.header("x-amz-checksum-sha256"), None, "not for a range");
    // A wrong value: BadDigest, and the stored version is untouched.
    let wrong = sha256_b64(b"something else");
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/c1"),
            &[("x-amz-checksum-sha256", wrong.as_str())],
            body(10, 4),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "BadDigest".to_owned()));
    assert_eq!(rig.get("c1").await, data);
    let attrs = [(
        "x-amz-object-attributes",
        "ETag,Checksum,ObjectParts,StorageClass,ObjectSize",
    )];
    let r = raw
        .send("GET", &format!("/{BUCKET}/c1?attributes"), &attrs, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let x = r.text();
    assert_eq!(xml_values(&x, "ObjectSize"), ["1024"]);
    assert_eq!(xml_values(&x, "ChecksumSHA256"), [sum.as_str()]);
    assert_eq!(xml_values(&x, "StorageClass"), ["STANDARD"]);
    assert!(xml_values(&x, "ObjectParts").is_empty(), "{x}");
    let r = raw
        .send("GET", &format!("/{BUCKET}/nope?attributes"), &attrs, "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".to_owned()));

    // Multipart with SHA256: per-part checksums, composite on Complete.
    let r = raw
        .send(
            "POST",
            &format!("/{BUCKET}/c-mp?uploads"),
            &[("x-amz-checksum-algorithm", "SHA256")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-amz-checksum-algorithm").as_deref(),
        Some("SHA256")
    );
    assert_eq!(
        r.header("x-amz-checksum-type").as_deref(),
        Some("COMPOSITE")
    );
    let id = xml_values(&r.text(), "UploadId").pop().expect("upload id");
    let parts = [body(5 * MIB, 5), body(10, 6)];
    let mut listed = String::new();
    let mut raw_sums = Vec::new();
    for (n, p) in parts.iter().enumerate() {
        let s = sha256_b64(p);
        let r = raw
            .send(
                "PUT",
                &format!(
                    "/{BUCKET}/c-mp?partNumber={}&uploadId={}",
                    n + 1,
                    encode_query(&id)
                ),
                &[("x-amz-checksum-sha256", s.as_str())],
                p.clone(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        listed.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag><ChecksumSHA256>{s}</ChecksumSHA256></Part>",
            n + 1,
            r.header("etag").expect("etag")
        ));
        raw_sums.push(s);
    }
    let complete = format!("<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>");
    let target = format!("/{BUCKET}/c-mp?uploadId={}", encode_query(&id));
    // A Complete naming another checksum is refused, and the upload stays.
    let r = raw
        .send(
            "POST",
            &target,
            &[("x-amz-checksum-sha256", wrong.as_str())],
            complete.clone(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "BadDigest".to_owned()),
        "{}",
        r.text()
    );
    let r = raw.send("POST", &target, &[], complete).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let composite = xml_values(&r.text(), "ChecksumSHA256")
        .pop()
        .expect("Complete answers the checksum");
    assert!(composite.ends_with("-2"), "{composite}");
    let mut digests = Vec::new();
    for s in &raw_sums {
        use base64::Engine as _;
        digests.extend(base64::engine::general_purpose::STANDARD.decode(s).unwrap());
    }
    assert_eq!(composite, format!("{}-2", sha256_b64(&digests)));
    let r = raw
        .send("HEAD", &format!("/{BUCKET}/c-mp"), &enabled, "")
        .await;
    assert_eq!(
        r.header("x-amz-checksum-sha256").as_deref(),
        Some(composite.as_str())
    );
    assert_eq!(
        r.header("x-amz-checksum-type").as_deref(),
        Some("COMPOSITE")
    );
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}/c-mp?attributes"),
            &[attrs[0], ("x-amz-max-parts", "1")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let x = r.text();
    assert_eq!(xml_values(&x, "PartsCount"), ["2"], "{x}");
    assert_eq!(xml_nested(&x, "Part", "Size"), [(5 * MIB).to_string()]);
    assert_eq!(
        xml_nested(&x, "Part", "ChecksumSHA256"),
        [raw_sums[0].clone()]
    );
    assert_eq!(xml_values(&x, "IsTruncated"), ["true"]);
    assert_eq!(xml_values(&x, "NextPartNumberMarker"), ["1"]);
    rig.assert_clean().await;
    rig.finish().await;
}
