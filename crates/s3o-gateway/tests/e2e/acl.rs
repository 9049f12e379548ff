//! Canned bucket ACLs and unsigned requests: what `public-read` and `public-read-write` open
//! to anonymous callers (and nothing more: objects stay private), ACLs refused and changing
//! nothing, bucket tagging. Real HTTP, signed and unsigned.

use crate::raw::{Auth, Raw, Reply, xml_nested, xml_values};
use crate::rig::{BUCKET, Ledger, Rig};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

async fn anon(raw: &Raw, method: &str, target: &str, body: &str) -> Reply {
    raw.send_auth(Auth::Anonymous, method, target, &[], body.to_owned())
        .await
}

#[track_caller]
fn assert_code(r: &Reply, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.code()),
        (status, code.to_owned()),
        "{}",
        r.text()
    );
}

/// What the bucket row says its ACL is (`None`: private, nothing stored).
async fn stored_acl(rig: &Rig, bucket: &str) -> Option<serde_json::Value> {
    rig.store()
        .get_bucket(bucket)
        .await
        .unwrap()
        .settings
        .extra
        .get("acl")
        .cloned()
}

/// Unsigned requests are refused until a bucket's canned ACL grants everyone; `public-read`
/// opens listing (and the 404 of a missing key), never a private object; `public-read-write`
/// also opens PUT and DELETE of objects; back to `private` closes it all again.
pub(crate) async fn public_bucket_acls_open_only_what_they_grant(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("k", &b"secret"[..]).await;
    let raw = &rig.raw;
    let b = format!("/{BUCKET}");
    let k = format!("/{BUCKET}/k");
    // Private (the default): every unsigned request is refused, a missing bucket is 404.
    for (m, t) in [
        ("GET", b.clone()),
        ("GET", format!("{b}?list-type=2")),
        ("HEAD", b.clone()),
        ("GET", k.clone()),
        ("GET", format!("{b}/missing")),
        ("PUT", format!("{b}/new")),
        ("DELETE", k.clone()),
    ] {
        let r = anon(raw, m, &t, "").await;
        assert_eq!(r.status, 403, "{m} {t}: {}", r.text());
    }
    assert_code(
        &anon(raw, "GET", "/no-such-bucket/k", "").await,
        404,
        "NoSuchBucket",
    );
    assert_eq!(stored_acl(&rig, BUCKET).await, None);

    // public-read: listed unsigned, the object stays private, writes stay refused.
    let r = raw
        .send(
            "PUT",
            &format!("{b}?acl"),
            &[("x-amz-acl", "public-read")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stored_acl(&rig, BUCKET).await, Some("public-read".into()));
    let acl = raw.send("GET", &format!("{b}?acl"), &[], "").await.text();
    assert_eq!(xml_values(&acl, "Permission"), ["READ", "FULL_CONTROL"]);
    assert_eq!(xml_values(&acl, "URI"), [ALL_USERS]);
    assert_eq!(xml_nested(&acl, "Owner", "ID"), ["s3o"]);
    let r = anon(raw, "GET", &b, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(xml_values(&r.text(), "Key"), ["k"]);
    let r = anon(raw, "GET", &format!("{b}?list-type=2"), "").await;
    assert_eq!(xml_values(&r.text(), "Key"), ["k"]);
    assert_eq!(anon(raw, "HEAD", &b, "").await.status, 200);
    assert_code(&anon(raw, "GET", &k, "").await, 403, "AccessDenied");
    assert_eq!(anon(raw, "HEAD", &k, "").await.status, 403);
    assert_code(
        &anon(raw, "GET", &format!("{b}/missing"), "").await,
        404,
        "NoSuchKey",
    );
    assert_code(
        &anon(raw, "PUT", &format!("{b}/new"), "x").await,
        403,
        "AccessDenied",
    );
    assert_code(&anon(raw, "DELETE", &k, "").await, 403, "AccessDenied");
    for t in [
        format!("{b}?acl"),
        format!("{k}?acl"),
        format!("{b}?tagging"),
    ] {
        assert_code(&anon(raw, "GET", &t, "").await, 403, "AccessDenied");
    }
    let r = anon(raw, "PUT", &format!("{b}?acl"), "").await;
    assert_code(&r, 403, "AccessDenied");
    assert_eq!(&rig.get("k").await[..], b"secret");
    assert_eq!(stored_acl(&rig, BUCKET).await, Some("public-read".into()));

    // public-read-write, given at creation: unsigned PUT and DELETE of objects.
    let r = raw
        .send("PUT", "/open", &[("x-amz-acl", "public-read-write")], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let acl = raw.send("GET", "/open?acl", &[], "").await.text();
    assert_eq!(
        xml_values(&acl, "Permission"),
        ["READ", "WRITE", "FULL_CONTROL"]
    );
    let r = anon(raw, "PUT", "/open/anon", "from nobody").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw.send("GET", "/open/anon", &[], "").await;
    assert_eq!((r.status, r.text()), (200, "from nobody".to_owned()));
    // Written by anyone, still readable only by the owner.
    assert_code(
        &anon(raw, "GET", "/open/anon", "").await,
        403,
        "AccessDenied",
    );
    assert_eq!(anon(raw, "DELETE", "/open/anon", "").await.status, 204);
    assert_code(
        &raw.send("GET", "/open/anon", &[], "").await,
        404,
        "NoSuchKey",
    );
    // Bucket-level calls other than listing stay the owner's.
    assert_code(&anon(raw, "DELETE", "/open", "").await, 403, "AccessDenied");
    assert_code(
        &anon(raw, "PUT", "/open?tagging", "").await,
        403,
        "AccessDenied",
    );
    assert_eq!(raw.send("DELETE", "/open", &[], "").await.status, 204);
    assert_code(
        &anon(raw, "PUT", "/open/again", "x").await,
        404,
        "NoSuchBucket",
    );

    // Back to private: closed again, nothing stored.
    let r = raw
        .send("PUT", &format!("{b}?acl"), &[("x-amz-acl", "private")], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stored_acl(&rig, BUCKET).await, None);
    assert_code(&anon(raw, "GET", &b, "").await, 403, "AccessDenied");
    assert_code(
        &anon(raw, "GET", &format!("{b}/missing"), "").await,
        403,
        "AccessDenied",
    );
    rig.finish().await;
}

/// A policy listing exactly a canned ACL's grants sets it; grants this gateway cannot keep
/// (another user, an unknown canned ACL, a grant header) are refused and change nothing.
pub(crate) async fn acl_refusals_change_nothing(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let b = format!("/{BUCKET}?acl");
    let grant = |ty: &str, who: &str, perm: &str| {
        format!(
            "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xsi:type=\"{ty}\">{who}</Grantee><Permission>{perm}</Permission></Grant>"
        )
    };
    let policy = |grants: &[String]| {
        format!(
            "<AccessControlPolicy><Owner><ID>s3o</ID></Owner><AccessControlList>{}\
             </AccessControlList></AccessControlPolicy>",
            grants.concat()
        )
    };
    let owner = grant("CanonicalUser", "<ID>s3o</ID>", "FULL_CONTROL");
    let all_read = grant("Group", &format!("<URI>{ALL_USERS}</URI>"), "READ");
    let r = raw
        .send("PUT", &b, &[], policy(&[all_read.clone(), owner.clone()]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stored_acl(&rig, BUCKET).await, Some("public-read".into()));
    let before = rig.store().get_bucket(BUCKET).await.unwrap();
    let refused = [
        // The group's READ without the owner's FULL_CONTROL.
        ("", policy(std::slice::from_ref(&all_read))),
        // Another user.
        (
            "",
            policy(&[
                owner.clone(),
                grant("CanonicalUser", "<ID>bob</ID>", "READ"),
            ]),
        ),
        // A group grant no canned ACL makes.
        (
            "",
            policy(&[
                owner,
                grant("Group", &format!("<URI>{ALL_USERS}</URI>"), "WRITE_ACP"),
            ]),
        ),
        ("bucket-owner-full-control", String::new()),
        ("aws-exec-read", String::new()),
        ("nonsense", String::new()),
    ];
    for (canned, body) in refused {
        let headers: Vec<(&str, &str)> = if canned.is_empty() {
            vec![]
        } else {
            vec![("x-amz-acl", canned)]
        };
        let r = raw.send("PUT", &b, &headers, body.clone()).await;
        assert_code(&r, 400, "AccessControlListNotSupported");
    }
    let r = raw
        .send(
            "PUT",
            &b,
            &[("x-amz-grant-read", &format!("uri=\"{ALL_USERS}\""))],
            "",
        )
        .await;
    assert_code(&r, 400, "AccessControlListNotSupported");
    assert_eq!(rig.store().get_bucket(BUCKET).await.unwrap(), before);
    // An object keeps only the owner's FULL_CONTROL.
    rig.put("k", &b"v"[..]).await;
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/k?acl"),
            &[("x-amz-acl", "public-read")],
            "",
        )
        .await;
    assert_code(&r, 400, "AccessControlListNotSupported");
    // CreateBucket with an ACL it cannot keep creates nothing.
    let r = raw
        .send("PUT", "/refused", &[("x-amz-acl", "aws-exec-read")], "")
        .await;
    assert_code(&r, 400, "AccessControlListNotSupported");
    assert!(rig.store().get_bucket("refused").await.is_err());
    rig.finish().await;
}

/// Put/Get/DeleteBucketTagging round trip in the bucket row; S3's limits refuse and change
/// nothing; the tags go with the bucket.
pub(crate) async fn bucket_tagging_round_trip(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let t = format!("/{BUCKET}?tagging");
    let tagging = |pairs: &[(&str, &str)]| {
        let tags: String = pairs
            .iter()
            .map(|(k, v)| format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"))
            .collect();
        format!("<Tagging><TagSet>{tags}</TagSet></Tagging>")
    };
    assert_code(&raw.send("GET", &t, &[], "").await, 404, "NoSuchTagSet");
    let r = raw
        .send("PUT", &t, &[], tagging(&[("team", "ünï"), ("env", "")]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw.send("GET", &t, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(xml_values(&r.text(), "Key"), ["env", "team"]);
    assert_eq!(xml_values(&r.text(), "Value"), ["", "ünï"]);
    let stored = rig.store().get_bucket(BUCKET).await.unwrap();
    assert_eq!(
        stored.settings.extra.get("tags"),
        Some(&serde_json::json!({"env": "", "team": "ünï"}))
    );
    let fifty_one: Vec<(String, String)> =
        (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let pairs: Vec<(&str, &str)> = fifty_one
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for bad in [
        tagging(&pairs),
        tagging(&[("a", "1"), ("a", "2")]),
        tagging(&[("", "x")]),
    ] {
        let r = raw.send("PUT", &t, &[], bad).await;
        assert_code(&r, 400, "InvalidTag");
    }
    assert_eq!(rig.store().get_bucket(BUCKET).await.unwrap(), stored);
    let r = raw.send("PUT", &t, &[], tagging(&pairs[..50])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(raw.send("DELETE", &t, &[], "").await.status, 204);
    assert_eq!(raw.send("DELETE", &t, &[], "").await.status, 204);
    assert_code(&raw.send("GET", &t, &[], "").await, 404, "NoSuchTagSet");
    assert!(
        rig.store()
            .get_bucket(BUCKET)
            .await
            .unwrap()
            .settings
            .extra
            .get("tags")
            .is_none()
    );
    assert_code(
        &raw.send("GET", "/no-such-bucket?tagging", &[], "").await,
        404,
        "NoSuchBucket",
    );
    rig.finish().await;
}
