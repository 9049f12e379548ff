//! Answers SDKs and tools depend on: ListObjectsV2's continuation token over StartAfter,
//! suffix ranges of an empty object, ListObjects v1's unencoded Prefix, GetBucketVersioning
//! and ListObjectVersions of an unversioned bucket, and DeleteObjects' per-key errors.

use base64::Engine as _;
use md5::Digest as _;

use crate::raw::{encode_query, xml_nested, xml_values};
use crate::rig::{BUCKET, Ledger, Rig};

/// A token that sorts before StartAfter still wins: boto3's paginator resends StartAfter
/// with every page.
pub(crate) async fn continuation_token_wins_over_start_after(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    for k in ["a", "b", "c", "d"] {
        rig.put(k, &b"x"[..]).await;
    }
    let raw = &rig.raw;
    let r = raw
        .send("GET", &format!("/{BUCKET}?list-type=2&max-keys=1"), &[], "")
        .await;
    assert_eq!(xml_values(&r.text(), "Key"), ["a"]);
    let token = xml_values(&r.text(), "NextContinuationToken")
        .pop()
        .expect("a truncated page carries a token");
    let r = raw
        .send(
            "GET",
            &format!(
                "/{BUCKET}?list-type=2&max-keys=1&start-after=c&continuation-token={}",
                encode_query(&token)
            ),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        xml_values(&r.text(), "Key"),
        ["b"],
        "the page after the token, not after StartAfter"
    );
    rig.finish().await;
}

/// `bytes=-1` of a zero-byte object answers the (empty) object, not 503; a range starting
/// inside it answers 416.
pub(crate) async fn empty_object_ranges(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("empty", &b""[..]).await;
    let raw = &rig.raw;
    let target = format!("/{BUCKET}/empty");
    let r = raw.send("GET", &target, &[("range", "bytes=-1")], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-range"), None);
    let r = raw
        .send("GET", &target, &[("range", "bytes=0-0")], "")
        .await;
    assert_eq!((r.status, r.code()), (416, "InvalidRange".to_owned()));
    let r = raw.send("GET", &target, &[("range", "bytes=-0")], "").await;
    assert_eq!(r.status, 416, "{}", r.text());
    rig.finish().await;
}

/// v1's Prefix comes back as sent, with or without `encoding-type=url` (botocore decodes
/// every v1 field but Prefix); keys are encoded only when asked.
pub(crate) async fn list_v1_prefix_not_encoded(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("a b/c d", &b"x"[..]).await;
    let raw = &rig.raw;
    for (query, key) in [("&encoding-type=url", "a%20b/c%20d"), ("", "a b/c d")] {
        let r = raw
            .send(
                "GET",
                &format!("/{BUCKET}?prefix={}{query}", encode_query("a b/")),
                &[],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            xml_values(&r.text(), "Prefix"),
            ["a b/"],
            "{query}: {}",
            r.text()
        );
        assert_eq!(xml_nested(&r.text(), "Contents", "Key"), [key], "{query}");
    }
    rig.finish().await;
}

/// GetBucketVersioning of a bucket never versioned: 200 with no Status; 404 for no bucket.
pub(crate) async fn bucket_versioning_is_unset(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let r = rig
        .raw
        .send("GET", &format!("/{BUCKET}?versioning"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("VersioningConfiguration"), "{}", r.text());
    assert!(xml_values(&r.text(), "Status").is_empty(), "{}", r.text());
    let r = rig
        .raw
        .send("GET", "/no-such-bucket?versioning", &[], "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchBucket".to_owned()));
    rig.finish().await;
}

/// One key the ledger refuses (over 1024 bytes) is reported on its own; the other keys of
/// the batch are deleted.
pub(crate) async fn delete_objects_reports_per_key(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    rig.put("keep-going-1", &b"one"[..]).await;
    rig.put("keep-going-2", &b"two"[..]).await;
    let long = "k".repeat(1100);
    let body = format!(
        "<Delete><Object><Key>keep-going-1</Key></Object><Object><Key>{long}</Key></Object>\
         <Object><Key>keep-going-2</Key></Object></Delete>"
    );
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
    let r = rig
        .raw
        .send(
            "POST",
            &format!("/{BUCKET}?delete"),
            &[("content-md5", md5.as_str())],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(
        xml_nested(&text, "Deleted", "Key"),
        ["keep-going-1", "keep-going-2"],
        "{text}"
    );
    assert_eq!(xml_nested(&text, "Error", "Key"), [long], "{text}");
    assert!(rig.placement("keep-going-1").await.is_empty());
    assert!(rig.placement("keep-going-2").await.is_empty());
    rig.assert_clean().await;
    rig.finish().await;
}

/// ListObjectVersions of an unversioned bucket: each current object once, version id `null`,
/// latest; pages follow the key marker.
pub(crate) async fn object_versions_are_the_current_objects(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    for k in ["v/a", "v/b", "v/c"] {
        rig.put(k, &b"x"[..]).await;
    }
    rig.put("v/b", &b"yy"[..]).await;
    let raw = &rig.raw;
    let r = raw
        .send("GET", &format!("/{BUCKET}?versions&prefix=v/"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(
        xml_nested(&text, "Version", "Key"),
        ["v/a", "v/b", "v/c"],
        "{text}"
    );
    assert_eq!(xml_nested(&text, "Version", "VersionId"), ["null"; 3]);
    assert_eq!(xml_nested(&text, "Version", "IsLatest"), ["true"; 3]);
    assert_eq!(xml_nested(&text, "Version", "Size"), ["1", "2", "1"]);
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}?versions&prefix=v/&max-keys=2"),
            &[],
            "",
        )
        .await;
    assert_eq!(xml_values(&r.text(), "IsTruncated"), ["true"]);
    let next = xml_values(&r.text(), "NextKeyMarker");
    assert_eq!(next, ["v/b"], "{}", r.text());
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}?versions&prefix=v/&key-marker=v/b"),
            &[],
            "",
        )
        .await;
    assert_eq!(xml_nested(&r.text(), "Version", "Key"), ["v/c"]);
    let r = raw.send("GET", "/no-such-bucket?versions", &[], "").await;
    assert_eq!(r.status, 404);
    rig.finish().await;
}
