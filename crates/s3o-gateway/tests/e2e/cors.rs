//! Bucket features and edge answers: CORS (Put/Get/DeleteBucketCors kept in the ledger, the
//! unsigned preflight, `Access-Control-*` on actual requests), the single owner's ACLs and
//! listings, and answers S3 gives before an operation (RequestId in error bodies, an empty
//! Content-MD5, an unparsable key, ListBuckets pages, torrents).

use base64::Engine as _;
use md5::Digest as _;

use crate::raw::{Auth, xml_nested, xml_values};
use crate::rig::{BUCKET, Ledger, Rig};

fn content_md5(body: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()))
}

fn cors_xml(rules: &str) -> String {
    format!("<CORSConfiguration>{rules}</CORSConfiguration>")
}

const RULES: &str = "<CORSRule><AllowedOrigin>https://*.example.com</AllowedOrigin>\
    <AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>\
    <AllowedHeader>x-amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>\
    <MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>\
    <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PUT</AllowedMethod></CORSRule>";

/// Set, read, use and delete a bucket's CORS rules; invalid rules change nothing; preflights
/// are answered unsigned from the rules (400 without Origin, 403 when nothing matches).
pub(crate) async fn cors_rules_answer_preflights(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("page.html", &b"<html/>"[..]).await;
    let raw = &rig.raw;
    let cors = format!("/{BUCKET}?cors");
    let obj = format!("/{BUCKET}/page.html");
    let r = raw.send("GET", &cors, &[], "").await;
    assert_eq!(
        (r.status, r.code()),
        (404, "NoSuchCORSConfiguration".into())
    );
    let pre =
        |origin: Option<&'static str>, method: Option<&'static str>, hdrs: Option<&'static str>| {
            let mut h = Vec::new();
            if let Some(o) = origin {
                h.push(("origin", o));
            }
            if let Some(m) = method {
                h.push(("access-control-request-method", m));
            }
            if let Some(x) = hdrs {
                h.push(("access-control-request-headers", x));
            }
            h
        };
    let r = raw
        .send_auth(Auth::Anonymous, "OPTIONS", &obj, &pre(None, None, None), "")
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = raw
        .send_auth(
            Auth::Anonymous,
            "OPTIONS",
            &obj,
            &pre(Some("https://a.example.com"), Some("GET"), None),
            "",
        )
        .await;
    assert_eq!(r.status, 403, "no rules yet: {}", r.text());

    let xml = cors_xml(RULES);
    let r = raw
        .send(
            "PUT",
            &cors,
            &[("content-md5", &content_md5(&xml))],
            xml.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw.send("GET", &cors, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        xml_values(&r.text(), "AllowedOrigin"),
        ["https://*.example.com", "*"]
    );
    assert_eq!(
        xml_values(&r.text(), "AllowedMethod"),
        ["GET", "HEAD", "PUT"]
    );
    assert_eq!(xml_values(&r.text(), "MaxAgeSeconds"), ["600"]);
    let stored = rig.store().get_bucket_cors(BUCKET).await.unwrap().unwrap();
    assert_eq!(stored.rules.len(), 2);

    // Origin without a request method: still 400, as S3 answers.
    let r = raw
        .send_auth(
            Auth::Anonymous,
            "OPTIONS",
            &obj,
            &pre(Some("https://a.example.com"), None, None),
            "",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = raw
        .send_auth(
            Auth::Anonymous,
            "OPTIONS",
            &obj,
            &pre(
                Some("https://app.example.com"),
                Some("GET"),
                Some("X-Amz-Date, x-amz-meta-a"),
            ),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        r.header("access-control-allow-headers").as_deref(),
        Some("x-amz-date, x-amz-meta-a")
    );
    for (origin, method, hdrs) in [
        ("http://evil.test", "GET", None),
        ("https://app.example.com", "DELETE", None),
        ("https://app.example.com", "GET", Some("authorization")),
        ("https://example.com", "GET", None),
    ] {
        let r = raw
            .send_auth(
                Auth::Anonymous,
                "OPTIONS",
                &obj,
                &pre(Some(origin), Some(method), hdrs),
                "",
            )
            .await;
        assert_eq!(r.status, 403, "{origin} {method}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    let r = raw
        .send_auth(
            Auth::Anonymous,
            "OPTIONS",
            &obj,
            &pre(Some("http://any.test"), Some("PUT"), None),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    // Actual requests: the matching rule's headers, errors included; none for other origins.
    let r = raw
        .send("GET", &obj, &[("origin", "https://app.example.com")], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-expose-headers").as_deref(),
        Some("ETag")
    );
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}/missing"),
            &[("origin", "https://app.example.com")],
            "",
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(r.header("access-control-allow-origin").is_some());
    let r = raw
        .send("GET", &obj, &[("origin", "http://evil.test")], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // Invalid configurations: refused, the stored rules unchanged.
    let many =
        "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>"
            .repeat(101);
    for bad in [
        cors_xml(
            "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule>",
        ),
        cors_xml(
            "<CORSRule><AllowedOrigin>*.*.test</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>",
        ),
        cors_xml(&many),
    ] {
        let r = raw
            .send(
                "PUT",
                &cors,
                &[("content-md5", &content_md5(&bad))],
                bad.clone(),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(
            rig.store().get_bucket_cors(BUCKET).await.unwrap(),
            Some(stored.clone())
        );
    }

    let r = raw.send("DELETE", &cors, &[], "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = raw.send("GET", &cors, &[], "").await;
    assert_eq!(r.status, 404);
    let r = raw
        .send_auth(
            Auth::Anonymous,
            "OPTIONS",
            &obj,
            &pre(Some("http://any.test"), Some("PUT"), None),
            "",
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = raw
        .send_auth(
            Auth::Anonymous,
            "OPTIONS",
            "/no-such-bucket/k",
            &pre(Some("http://a.test"), Some("GET"), None),
            "",
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    rig.finish().await;
}

/// Deleting a bucket removes its CORS rules: the same name re-created has none.
pub(crate) async fn cors_gone_with_its_bucket(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    assert_eq!(raw.send("PUT", "/site", &[], "").await.status, 200);
    let xml = cors_xml(RULES);
    let r = raw
        .send(
            "PUT",
            "/site?cors",
            &[("content-md5", &content_md5(&xml))],
            xml.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(raw.send("DELETE", "/site", &[], "").await.status, 204);
    let r = raw.send("GET", "/site?cors", &[], "").await;
    assert_eq!((r.status, r.code()), (404, "NoSuchBucket".into()));
    assert_eq!(raw.send("PUT", "/site", &[], "").await.status, 200);
    let r = raw.send("GET", "/site?cors", &[], "").await;
    assert_eq!(
        (r.status, r.code()),
        (404, "NoSuchCORSConfiguration".into())
    );
    assert_eq!(rig.store().get_bucket_cors("site").await.unwrap(), None);
    assert_eq!(raw.send("DELETE", "/site", &[], "").await.status, 204);
    rig.finish().await;
}

/// One owner: ACLs answer its FULL_CONTROL, `private` (or a policy granting only it) is
/// accepted, any other grant refused; listings name it.
pub(crate) async fn single_owner_acls_and_listings(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("k", &b"v"[..]).await;
    let raw = &rig.raw;
    for target in [format!("/{BUCKET}?acl"), format!("/{BUCKET}/k?acl")] {
        let r = raw.send("GET", &target, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(xml_nested(&r.text(), "Owner", "ID"), ["s3o"]);
        assert_eq!(xml_values(&r.text(), "Permission"), ["FULL_CONTROL"]);
        let r = raw
            .send("PUT", &target, &[("x-amz-acl", "private")], "")
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        // Objects keep no ACL of their own (bucket ACLs: see the acl cases).
        let refused: &[&str] = if target.ends_with("k?acl") {
            &["public-read", "authenticated-read"]
        } else {
            &["bucket-owner-full-control"]
        };
        for acl in refused {
            let r = raw.send("PUT", &target, &[("x-amz-acl", acl)], "").await;
            assert_eq!(
                (r.status, r.code()),
                (400, "AccessControlListNotSupported".into()),
                "{acl}"
            );
        }
        let r = raw
            .send(
                "PUT",
                &target,
                &[(
                    "x-amz-grant-read",
                    "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
                )],
                "",
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        let policy = |id: &str| {
            format!(
                "<AccessControlPolicy><Owner><ID>s3o</ID></Owner><AccessControlList><Grant>\
                 <Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
                 xsi:type=\"CanonicalUser\"><ID>{id}</ID></Grantee>\
                 <Permission>FULL_CONTROL</Permission></Grant></AccessControlList>\
                 </AccessControlPolicy>"
            )
        };
        let r = raw.send("PUT", &target, &[], policy("s3o")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = raw.send("PUT", &target, &[], policy("someone-else")).await;
        assert_eq!(r.status, 400, "{}", r.text());
    }
    let r = raw
        .send("GET", &format!("/{BUCKET}/missing?acl"), &[], "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".into()));
    let r = raw.send("GET", "/", &[], "").await;
    assert_eq!(xml_nested(&r.text(), "Owner", "ID"), ["s3o"]);
    let r = raw.send("GET", &format!("/{BUCKET}"), &[], "").await;
    assert_eq!(xml_nested(&r.text(), "Owner", "DisplayName"), ["s3o"]);
    let r = raw
        .send("GET", &format!("/{BUCKET}?list-type=2"), &[], "")
        .await;
    assert!(xml_values(&r.text(), "Owner").is_empty(), "{}", r.text());
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}?list-type=2&fetch-owner=true"),
            &[],
            "",
        )
        .await;
    assert_eq!(xml_nested(&r.text(), "Owner", "ID"), ["s3o"]);
    rig.finish().await;
}

/// Error bodies carry the request id of their header; an empty Content-MD5 and a key with a
/// C1 control character are refused 400 and store nothing; ListBuckets pages; no torrents.
pub(crate) async fn edge_answers(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let r = raw
        .send("GET", &format!("/{BUCKET}/missing"), &[], "")
        .await;
    assert_eq!(r.status, 404);
    let id = r.header("x-amz-request-id").expect("a request id header");
    assert_eq!(xml_values(&r.text(), "RequestId"), [id]);
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/md5"),
            &[("content-md5", "")],
            "bar",
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidDigest".into()));
    let r = raw
        .send("PUT", &format!("/{BUCKET}/%C2%AE%C2%8A-"), &[], "x")
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidURI".into()));
    let r = raw
        .send("GET", &format!("/{BUCKET}/%C2%AE%C2%8A-"), &[], "")
        .await;
    assert_eq!(r.status, 400);
    let r = raw.send("GET", &format!("/{BUCKET}"), &[], "").await;
    assert!(xml_values(&r.text(), "Key").is_empty(), "{}", r.text());

    for b in ["b-one", "b-two"] {
        assert_eq!(raw.send("PUT", &format!("/{b}"), &[], "").await.status, 200);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let q = match &token {
            None => "/?max-buckets=2".to_owned(),
            Some(t) => format!(
                "/?max-buckets=2&continuation-token={}",
                crate::raw::encode_query(t)
            ),
        };
        let r = raw.send("GET", &q, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let names = xml_nested(&r.text(), "Bucket", "Name");
        assert!(names.len() <= 2);
        seen.extend(names);
        token = xml_values(&r.text(), "ContinuationToken").pop();
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["b-one", "b-two", BUCKET]);
    let r = raw.send("GET", "/?max-buckets=0", &[], "").await;
    assert_eq!(r.status, 400);

    rig.put("t", &b"x"[..]).await;
    let r = raw
        .send("GET", &format!("/{BUCKET}/t?torrent"), &[], "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".into()));
    for b in ["b-one", "b-two"] {
        assert_eq!(
            raw.send("DELETE", &format!("/{b}"), &[], "").await.status,
            204
        );
    }
    rig.finish().await;
}
