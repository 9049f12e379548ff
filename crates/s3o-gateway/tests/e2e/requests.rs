//! The request family: UploadPartCopy, GetObject/HeadObject with `partNumber`, the
//! validators of a 304, POST Object (browser form uploads), a chunked PUT without a length,
//! overlapping uploads of one part, and ListMultipartUploads' `upload-id-marker`. Every case
//! ends with the ledger and the backends in agreement ([`Rig::assert_clean`]).

use bytes::Bytes;

use crate::raw::{Auth, encode_key, encode_query, xml_values};
use crate::rig::{AK, BUCKET, Ledger, REGION, Rig, SK, body, md5_hex};

const MIB: usize = 1 << 20;

/// Starts a multipart upload of `key`; returns its id (query-encoded).
async fn create(rig: &Rig, key: &str) -> String {
    let reply = rig
        .raw
        .send(
            "POST",
            &format!("/{BUCKET}/{}?uploads", encode_key(key)),
            &[],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = xml_values(&reply.text(), "UploadId")
        .into_iter()
        .next()
        .expect("UploadId");
    encode_query(&id)
}

/// Completes `key`'s upload `id` with `parts` (number, ETag); returns the answer.
async fn complete(rig: &Rig, key: &str, id: &str, parts: &[(i32, String)]) -> crate::raw::Reply {
    let list: String = parts
        .iter()
        .map(|(n, e)| format!("<Part><PartNumber>{n}</PartNumber><ETag>\"{e}\"</ETag></Part>"))
        .collect();
    rig.raw
        .send(
            "POST",
            &format!("/{BUCKET}/{}?uploadId={id}", encode_key(key)),
            &[],
            format!("<CompleteMultipartUpload>{list}</CompleteMultipartUpload>"),
        )
        .await
}

/// UploadPartCopy of `src` into part `n` of `key`'s upload `id`, with `headers` added.
async fn part_copy(
    rig: &Rig,
    key: &str,
    id: &str,
    n: i32,
    src: &str,
    headers: &[(&str, &str)],
) -> crate::raw::Reply {
    let source = format!("/{BUCKET}/{}", encode_key(src));
    let mut all = vec![("x-amz-copy-source", source.as_str())];
    all.extend_from_slice(headers);
    rig.raw
        .send(
            "PUT",
            &format!("/{BUCKET}/{}?partNumber={n}&uploadId={id}", encode_key(key)),
            &all,
            "",
        )
        .await
}

/// The ETag of an UploadPartCopy answer (`<CopyPartResult><ETag>`), unquoted.
fn copy_etag(reply: &crate::raw::Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.text());
    xml_values(&reply.text(), "ETag")
        .into_iter()
        .next()
        .expect("ETag")
        .replace("&quot;", "")
        .trim_matches('"')
        .to_owned()
}

/// An object assembled from copied ranges of two sources, one whole-source copy among them:
/// the bytes are the ranges', each part's ETag is its bytes' MD5, `partNumber` reads each part
/// back (with `x-amz-mp-parts-count`), bad ranges and failed copy-source conditions store
/// nothing, and no part or copy is left behind.
pub(crate) async fn upload_part_copy_and_part_reads(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let big = body(5 * MIB + 300, 3);
    let small = body(700, 9);
    rig.put("src/big ü.bin", big.clone()).await;
    rig.put("src/small", small.clone()).await;
    let key = "dst/assembled";
    let id = create(&rig, key).await;

    // Bad ranges and conditions are refused before a byte moves.
    for bad in [
        "0-2",
        "bytes=0",
        "bytes=a-b",
        "bytes=5-2",
        "bytes=0-2,3-5",
        "bytes=-3",
    ] {
        let r = part_copy(
            &rig,
            key,
            &id,
            1,
            "src/small",
            &[("x-amz-copy-source-range", bad)],
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "InvalidArgument".into()),
            "{bad}"
        );
    }
    let r = part_copy(
        &rig,
        key,
        &id,
        1,
        "src/small",
        &[("x-amz-copy-source-range", "bytes=0-700")],
    )
    .await;
    assert_eq!((r.status, r.code()), (416, "InvalidRange".into()));
    let r = part_copy(
        &rig,
        key,
        &id,
        1,
        "src/small",
        &[("x-amz-copy-source-if-match", "\"0000\"")],
    )
    .await;
    assert_eq!((r.status, r.code()), (412, "PreconditionFailed".into()));
    let r = part_copy(&rig, key, &id, 1, "src/missing", &[]).await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".into()));

    // Part 1: the whole big source; part 2: 5 MiB of it from offset 100; part 3: a range of
    // the small one, under a copy-source condition that holds.
    let range2 = format!("bytes=100-{}", 100 + 5 * MIB - 1);
    let small_md5 = md5_hex(&small);
    let e1 = copy_etag(&part_copy(&rig, key, &id, 1, "src/big ü.bin", &[]).await);
    let e2 = copy_etag(
        &part_copy(
            &rig,
            key,
            &id,
            2,
            "src/big ü.bin",
            &[("x-amz-copy-source-range", &range2)],
        )
        .await,
    );
    let e3 = copy_etag(
        &part_copy(
            &rig,
            key,
            &id,
            3,
            "src/small",
            &[
                ("x-amz-copy-source-range", "bytes=10-699"),
                ("x-amz-copy-source-if-match", &format!("\"{small_md5}\"")),
            ],
        )
        .await,
    );
    assert_eq!(
        e1,
        md5_hex(&big),
        "a whole-source copy is the source's bytes"
    );
    assert_eq!(e2, md5_hex(&big[100..100 + 5 * MIB]));
    assert_eq!(e3, md5_hex(&small[10..]));
    let reply = complete(&rig, key, &id, &[(1, e1), (2, e2), (3, e3)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("-3"), "{}", reply.text());

    let mut expected = big.to_vec();
    expected.extend_from_slice(&big[100..100 + 5 * MIB]);
    expected.extend_from_slice(&small[10..]);
    assert!(
        rig.get(key).await == expected,
        "assembled bytes are the copied ranges"
    );

    let target = format!("/{BUCKET}/{}", encode_key(key));
    let sizes = [5 * MIB + 300, 5 * MIB, 690];
    let mut offset = 0;
    for (n, size) in sizes.iter().enumerate() {
        let n = n + 1;
        let got = rig
            .raw
            .send("GET", &format!("{target}?partNumber={n}"), &[], "")
            .await;
        assert_eq!(got.status, 206, "part {n}: {}", got.text());
        assert_eq!(got.header("x-amz-mp-parts-count").as_deref(), Some("3"));
        assert!(
            got.body == expected[offset..offset + size],
            "part {n} bytes"
        );
        assert_eq!(
            got.header("content-range"),
            Some(format!(
                "bytes {offset}-{}/{}",
                offset + size - 1,
                expected.len()
            ))
        );
        let head = rig
            .raw
            .send("HEAD", &format!("{target}?partNumber={n}"), &[], "")
            .await;
        assert_eq!(head.header("content-length"), Some(size.to_string()));
        assert_eq!(head.header("x-amz-mp-parts-count").as_deref(), Some("3"));
        offset += size;
    }
    let past = rig
        .raw
        .send("GET", &format!("{target}?partNumber=4"), &[], "")
        .await;
    assert_eq!((past.status, past.code()), (400, "InvalidPart".into()));
    let both = rig
        .raw
        .send(
            "GET",
            &format!("{target}?partNumber=1"),
            &[("range", "bytes=0-1")],
            "",
        )
        .await;
    assert_eq!(both.status, 400, "Range and partNumber together");
    // The reserved part-size record is never shown as user metadata.
    let head = rig.raw.send("HEAD", &target, &[], "").await;
    assert!(
        !head
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-meta-")),
        "{:?}",
        head.headers
    );

    // A simple object is its own part 1.
    let simple = format!("/{BUCKET}/{}", encode_key("src/small"));
    let one = rig
        .raw
        .send("GET", &format!("{simple}?partNumber=1"), &[], "")
        .await;
    assert!(one.status == 200 || one.status == 206, "{}", one.status);
    assert!(one.body == small);
    assert_eq!(one.header("x-amz-mp-parts-count"), None);
    let two = rig
        .raw
        .send("GET", &format!("{simple}?partNumber=2"), &[], "")
        .await;
    assert_eq!((two.status, two.code()), (400, "InvalidPart".into()));
    rig.assert_clean().await;
    rig.finish().await;
}

/// A 304 carries the ETag and Last-Modified a 200 would have.
pub(crate) async fn not_modified_carries_validators(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("v/obj", body(10, 1)).await;
    let target = format!("/{BUCKET}/v/obj");
    let etag = format!("\"{}\"", md5_hex(&body(10, 1)));
    let r = rig
        .raw
        .send("GET", &target, &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag.clone()));
    assert!(
        r.header("last-modified")
            .is_some_and(|v| v.ends_with("GMT"))
    );
    let r = rig
        .raw
        .send(
            "HEAD",
            &target,
            &[("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")],
            "",
        )
        .await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag));
    rig.assert_clean().await;
    rig.finish().await;
}

/// HMAC-SHA256.
fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&k, data).as_ref().to_vec()
}

/// A SigV4-signed POST Object form for `key` carrying `file`, whose policy has `conditions`
/// (JSON array items, the signature fields' own conditions added); `extra` form fields go
/// before the file. Returns the content type and the body.
fn post_form(
    key: &str,
    conditions: &[String],
    extra: &[(&str, &str)],
    file: &[u8],
) -> (String, Vec<u8>) {
    use base64::Engine as _;
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let credential = format!("{AK}/{date}/{REGION}/s3/aws4_request");
    let expires = now + time::Duration::hours(1);
    let expiration = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        expires.year(),
        u8::from(expires.month()),
        expires.day(),
        expires.hour(),
        expires.minute(),
        expires.second()
    );
    let mut all = conditions.to_vec();
    all.push(r#"{"x-amz-algorithm":"AWS4-HMAC-SHA256"}"#.to_owned());
    all.push(format!(r#"{{"x-amz-credential":"{credential}"}}"#));
    all.push(format!(r#"{{"x-amz-date":"{amz_date}"}}"#));
    let policy = format!(
        r#"{{"expiration":"{expiration}","conditions":[{}]}}"#,
        all.join(",")
    );
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let mut k = hmac(format!("AWS4{SK}").as_bytes(), date.as_bytes());
    for part in [REGION, "s3", "aws4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    let signature = hex::encode(hmac(&k, policy.as_bytes()));
    let boundary = "s3o-form-boundary-7d1f";
    let mut fields: Vec<(&str, String)> = vec![
        ("key", key.to_owned()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential", credential),
        ("x-amz-date", amz_date),
        ("policy", policy),
        ("x-amz-signature", signature),
    ];
    fields.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

/// POST Object: a signed form within its policy stores the object through the write path
/// (201 with its XML, the type kept); a form failing a condition answers 403 and one over its
/// `content-length-range` 400, both storing nothing.
pub(crate) async fn post_object_form_uploads(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let conditions = vec![
        format!(r#"{{"bucket":"{BUCKET}"}}"#),
        r#"["starts-with","$key","forms/"]"#.to_owned(),
        r#"["starts-with","$Content-Type","text/"]"#.to_owned(),
        r#"{"success_action_status":"201"}"#.to_owned(),
        r#"["content-length-range",0,1024]"#.to_owned(),
    ];
    let extra = [
        ("Content-Type", "text/plain"),
        ("success_action_status", "201"),
    ];
    let send = |key: &str, file: &[u8]| {
        let (ct, form) = post_form(key, &conditions, &extra, file);
        let raw = &rig.raw;
        async move {
            raw.send_auth(
                Auth::Anonymous,
                "POST",
                &format!("/{BUCKET}"),
                &[("content-type", &ct)],
                Bytes::from(form),
            )
            .await
        }
    };
    let r = send("forms/a.txt", b"hello form").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(xml_values(&r.text(), "Key"), vec!["forms/a.txt".to_owned()]);
    assert_eq!(rig.get("forms/a.txt").await.as_ref(), b"hello form");
    let head = rig
        .raw
        .send("HEAD", &format!("/{BUCKET}/forms/a.txt"), &[], "")
        .await;
    assert_eq!(head.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(
        head.header("etag"),
        Some(format!("\"{}\"", md5_hex(b"hello form")))
    );

    let r = send("elsewhere/b.txt", b"x").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "AccessDenied".into()),
        "{}",
        r.text()
    );
    let r = send("forms/big.txt", &[7; 2048]).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "EntityTooLarge".into()),
        "{}",
        r.text()
    );
    let listed = rig
        .raw
        .send("GET", &format!("/{BUCKET}?list-type=2"), &[], "")
        .await;
    assert_eq!(
        xml_values(&listed.text(), "Key"),
        vec!["forms/a.txt".to_owned()]
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// A PUT with `Transfer-Encoding: chunked` and no length is stored (S3 clients send it); an
/// empty PUT expecting `100 Continue` is answered at once and closes its connection (hyper
/// sends no `100` for an empty body, and botocore then misreads the connection's next answer).
pub(crate) async fn chunked_put_without_length(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let empty = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}/empty"),
            &[("expect", "100-continue")],
            "",
        )
        .await;
    assert_eq!(empty.status, 200, "{}", empty.text());
    assert_eq!(empty.header("connection").as_deref(), Some("close"));
    let full = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}/full"),
            &[("expect", "100-continue")],
            "x",
        )
        .await;
    assert_eq!(full.status, 200);
    assert_eq!(
        full.header("connection"),
        None,
        "a body to send keeps the connection"
    );
    assert_eq!(rig.get("empty").await.len(), 0);
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let endpoint = rig.gateway().endpoint();
    let url = format!("{endpoint}/{BUCKET}/chunked");
    let mut req = hyper::Request::builder()
        .method("PUT")
        .uri(&url)
        .body(object_store::client::HttpRequestBody::from(
            Bytes::from_static(b"bar"),
        ))
        .expect("request");
    let credential = object_store::aws::AwsCredential {
        key_id: AK.to_owned(),
        secret_key: SK.to_owned(),
        token: None,
    };
    object_store::aws::AwsAuthorizer::new(&credential, "s3", REGION)
        .try_authorize(&mut req, None)
        .expect("sign");
    // Written by hand: the body goes chunked, with no Content-Length.
    let host = endpoint.trim_start_matches("http://").to_owned();
    let mut head = format!("PUT /{BUCKET}/chunked HTTP/1.1\r\nhost: {host}\r\n");
    for (k, v) in req.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().expect("header")));
    }
    head.push_str(
        "transfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nba\r\n1\r\nr\r\n0\r\n\r\n",
    );
    let mut sock = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    sock.write_all(head.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(rig.get("chunked").await.as_ref(), b"bar");
    rig.assert_clean().await;
    rig.finish().await;
}

/// Two uploads of part 1 overlap and the later-started one finishes first: Complete with the
/// part list a client builds (both entries, in finishing order) takes the one recorded last,
/// and the other attempt's bytes go with the upload.
pub(crate) async fn overlapping_part_uploads(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let key = "mp/overlap";
    let id = create(&rig, key).await;
    let target = format!("/{BUCKET}/{}?partNumber=1&uploadId={id}", encode_key(key));
    let (b, a) = (body(8, 2), body(8, 1));
    let rb = rig.raw.send("PUT", &target, &[], b.clone()).await;
    let ra = rig.raw.send("PUT", &target, &[], a.clone()).await;
    let (eb, ea) = (md5_hex(&b), md5_hex(&a));
    assert_eq!(rb.header("etag"), Some(format!("\"{eb}\"")));
    assert_eq!(ra.header("etag"), Some(format!("\"{ea}\"")));
    let reply = complete(&rig, key, &id, &[(1, eb), (1, ea)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(rig.get(key).await == a);
    // Descending numbers stay refused.
    let id2 = create(&rig, "mp/order").await;
    let t2 = format!("/{BUCKET}/mp/order?partNumber=2&uploadId={id2}");
    let e = md5_hex(&body(3, 3));
    rig.raw.send("PUT", &t2, &[], body(3, 3)).await;
    let r = complete(&rig, "mp/order", &id2, &[(2, e.clone()), (1, e)]).await;
    assert_eq!(r.code(), "InvalidPartOrder", "{}", r.text());
    let abort = rig
        .raw
        .send(
            "DELETE",
            &format!("/{BUCKET}/mp/order?uploadId={id2}"),
            &[],
            "",
        )
        .await;
    assert_eq!(abort.status, 204);
    rig.assert_clean().await;
    rig.finish().await;
}

/// ListMultipartUploads pages through several uploads of one key with `key-marker` and
/// `upload-id-marker`, each upload once.
pub(crate) async fn list_uploads_upload_id_marker(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let mut ids = Vec::new();
    for key in ["k/a", "k/a", "k/a", "k/b"] {
        ids.push((key, create(&rig, key).await));
    }
    let mut seen = Vec::new();
    let mut query = String::new();
    for _ in 0..10 {
        let r = rig
            .raw
            .send(
                "GET",
                &format!("/{BUCKET}?uploads&max-uploads=1{query}"),
                &[],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        seen.extend(xml_values(&text, "UploadId"));
        if xml_values(&text, "IsTruncated") != vec!["true".to_owned()] {
            break;
        }
        let km = xml_values(&text, "NextKeyMarker").remove(0);
        let um = xml_values(&text, "NextUploadIdMarker").remove(0);
        query = format!(
            "&key-marker={}&upload-id-marker={}",
            encode_query(&km),
            encode_query(&um)
        );
    }
    let mut want: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    want.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, want, "every upload exactly once: {seen:?}");
    for (key, id) in &ids {
        let r = rig
            .raw
            .send("DELETE", &format!("/{BUCKET}/{key}?uploadId={id}"), &[], "")
            .await;
        assert_eq!(r.status, 204);
    }
    rig.assert_clean().await;
    rig.finish().await;
}
