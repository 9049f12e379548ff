//! Versioning over S3 (DESIGN decision 25): Put/GetBucketVersioning, version ids on PUT, GET,
//! HEAD and DELETE, delete markers and undelete, version-addressed reads, deletes and copies,
//! ListObjectVersions pages, suspend and resume. Every case ends with the ledger agreeing with
//! the backends byte for byte (noncurrent versions included).

use crate::raw::{Reply, encode_query, xml_nested, xml_values};
use crate::rig::{BUCKET, Ledger, Rig};

fn versioning_xml(status: &str) -> String {
    format!("<VersioningConfiguration><Status>{status}</Status></VersioningConfiguration>")
}

async fn set_versioning(rig: &Rig, status: &str) {
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}?versioning"),
            &[],
            versioning_xml(status),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn put(rig: &Rig, key: &str, body: &'static str) -> Reply {
    let r = rig
        .raw
        .send("PUT", &format!("/{BUCKET}/{key}"), &[], body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

fn version_of(r: &Reply) -> String {
    r.header("x-amz-version-id")
        .unwrap_or_else(|| panic!("no x-amz-version-id: {:?}", r.headers))
}

/// Overwrite keeps the old version; DELETE writes a marker (404 after, old versions still
/// readable by id); deleting the marker undeletes; deleting a version by id removes its bytes.
pub(crate) async fn overwrite_delete_undelete(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let r = raw
        .send("GET", &format!("/{BUCKET}?versioning"), &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert!(xml_values(&r.text(), "Status").is_empty(), "{}", r.text());
    set_versioning(&rig, "Enabled").await;
    let r = raw
        .send("GET", &format!("/{BUCKET}?versioning"), &[], "")
        .await;
    assert_eq!(xml_values(&r.text(), "Status"), ["Enabled"]);

    let v1 = version_of(&put(&rig, "doc", "first").await);
    let v2 = version_of(&put(&rig, "doc", "second version").await);
    assert_ne!(v1, v2);
    let r = raw.send("GET", &format!("/{BUCKET}/doc"), &[], "").await;
    assert_eq!((r.status, r.text()), (200, "second version".to_owned()));
    assert_eq!(version_of(&r), v2);
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?versionId={v1}"), &[], "")
        .await;
    assert_eq!((r.status, r.text()), (200, "first".to_owned()));
    assert_eq!(version_of(&r), v1);
    let r = raw
        .send("HEAD", &format!("/{BUCKET}/doc?versionId={v1}"), &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").as_deref(), Some("5"));
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?versionId=nope"), &[], "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchVersion".to_owned()));
    rig.assert_clean().await;

    // Delete: a marker.
    let r = raw.send("DELETE", &format!("/{BUCKET}/doc"), &[], "").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-amz-delete-marker").as_deref(), Some("true"));
    let marker = version_of(&r);
    let r = raw.send("GET", &format!("/{BUCKET}/doc"), &[], "").await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".to_owned()));
    assert_eq!(r.header("x-amz-delete-marker").as_deref(), Some("true"));
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?versionId={v2}"), &[], "")
        .await;
    assert_eq!((r.status, r.text()), (200, "second version".to_owned()));
    let r = raw
        .send("GET", &format!("/{BUCKET}?list-type=2"), &[], "")
        .await;
    assert!(xml_values(&r.text(), "Key").is_empty(), "{}", r.text());
    rig.assert_clean().await;

    // Undelete.
    let r = raw
        .send(
            "DELETE",
            &format!("/{BUCKET}/doc?versionId={marker}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-amz-delete-marker").as_deref(), Some("true"));
    let r = raw.send("GET", &format!("/{BUCKET}/doc"), &[], "").await;
    assert_eq!((r.status, r.text()), (200, "second version".to_owned()));

    // Delete v1 for good: its bytes leave the backend at once.
    let before = rig.physical_bytes().await;
    let r = raw
        .send("DELETE", &format!("/{BUCKET}/doc?versionId={v1}"), &[], "")
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(version_of(&r), v1);
    assert_eq!(rig.physical_bytes().await, before - 5);
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?versionId={v1}"), &[], "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchVersion".to_owned()));
    // Deleting the current version by id promotes nothing (none left): the key is gone.
    raw.send("DELETE", &format!("/{BUCKET}/doc?versionId={v2}"), &[], "")
        .await;
    let r = raw.send("GET", &format!("/{BUCKET}/doc"), &[], "").await;
    assert_eq!(r.status, 404);
    assert_eq!(rig.physical_bytes().await, 0);
    rig.assert_clean().await;
    rig.finish().await;
}

/// ListObjectVersions pages with key and version-id markers: every version once, in S3
/// order (key ascending, newest first), markers beside them, `IsLatest` on the newest.
pub(crate) async fn list_versions_in_pages(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    set_versioning(&rig, "Enabled").await;
    let mut expected = Vec::new();
    for key in ["a", "b", "c"] {
        let mut ids = Vec::new();
        for body in ["1", "22", "333"] {
            ids.push(version_of(&put(&rig, key, body).await));
        }
        ids.reverse();
        expected.extend(ids.into_iter().map(|id| (key.to_owned(), id)));
    }
    let r = rig
        .raw
        .send("DELETE", &format!("/{BUCKET}/b"), &[], "")
        .await;
    let marker = version_of(&r);
    let mut seen = Vec::new();
    let mut markers = Vec::new();
    let mut latest = Vec::new();
    let (mut km, mut vm) = (String::new(), String::new());
    let mut pages = 0;
    loop {
        let mut target = format!("/{BUCKET}?versions&max-keys=2");
        if !km.is_empty() {
            target.push_str(&format!("&key-marker={km}&version-id-marker={vm}"));
        }
        let r = rig.raw.send("GET", &target, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let xml = r.text();
        pages += 1;
        let keys = xml_nested(&xml, "Version", "Key");
        let ids = xml_nested(&xml, "Version", "VersionId");
        seen.extend(keys.into_iter().zip(ids));
        latest.extend(xml_nested(&xml, "Version", "IsLatest"));
        markers.extend(
            xml_nested(&xml, "DeleteMarker", "Key")
                .into_iter()
                .zip(xml_nested(&xml, "DeleteMarker", "VersionId")),
        );
        if xml_values(&xml, "IsTruncated") != ["true"] {
            break;
        }
        km = xml_values(&xml, "NextKeyMarker").remove(0);
        vm = xml_values(&xml, "NextVersionIdMarker").remove(0);
    }
    assert_eq!(pages, 5, "10 entries, 2 a page");
    assert_eq!(seen, expected);
    assert_eq!(markers, [("b".to_owned(), marker)]);
    // The newest of a and c is latest; b's newest data version is not (its marker is).
    let latest_count = latest.iter().filter(|l| *l == "true").count();
    assert_eq!(latest_count, 2);
    rig.assert_clean().await;
    rig.finish().await;
}

/// CopyObject reads a given source version; a suspended bucket writes the `null` version
/// (replacing it on the next write, its bytes deleted) and keeps versions with ids; resuming
/// versions again.
pub(crate) async fn copy_version_and_suspend(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    set_versioning(&rig, "Enabled").await;
    let v1 = version_of(&put(&rig, "src", "old bytes").await);
    put(&rig, "src", "new").await;
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/dst"),
            &[(
                "x-amz-copy-source",
                &format!("/{BUCKET}/src?versionId={v1}"),
            )],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-amz-copy-source-version-id").as_deref(),
        Some(v1.as_str())
    );
    assert_eq!(rig.get("dst").await.as_ref(), b"old bytes");

    set_versioning(&rig, "Suspended").await;
    let r = raw
        .send("GET", &format!("/{BUCKET}?versioning"), &[], "")
        .await;
    assert_eq!(xml_values(&r.text(), "Status"), ["Suspended"]);
    // A write into a suspended bucket answers no version id (it is the null version).
    let r = put(&rig, "src", "null one").await;
    assert_eq!(r.header("x-amz-version-id"), None);
    let before = rig.physical_bytes().await;
    put(&rig, "src", "null two").await;
    assert_eq!(
        rig.physical_bytes().await,
        before,
        "the null version was replaced"
    );
    let r = raw
        .send("GET", &format!("/{BUCKET}?versions&prefix=src"), &[], "")
        .await;
    let ids = xml_nested(&r.text(), "Version", "VersionId");
    assert_eq!(ids.len(), 3, "{}", r.text());
    assert_eq!(ids[0], "null");
    assert!(ids.contains(&v1));
    rig.assert_clean().await;

    // Re-enabled: the next write gets an id and the null version stays.
    set_versioning(&rig, "Enabled").await;
    let v4 = version_of(&put(&rig, "src", "four").await);
    assert_ne!(v4, "null");
    let r = raw
        .send("GET", &format!("/{BUCKET}/src?versionId=null"), &[], "")
        .await;
    assert_eq!((r.status, r.text()), (200, "null two".to_owned()));
    // A bucket never returns to unversioned.
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}?versioning"),
            &[],
            versioning_xml("Disabled"),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    rig.assert_clean().await;
    rig.finish().await;
}

/// One multipart upload of `key` with a single part `data`, completed; returns the Complete's
/// reply and the request that completes it (target and body), for a retry.
async fn multipart(rig: &Rig, key: &str, data: &'static str) -> (Reply, String, String) {
    let raw = &rig.raw;
    let r = raw
        .send("POST", &format!("/{BUCKET}/{key}?uploads"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = xml_values(&r.text(), "UploadId").remove(0);
    let id = encode_query(&id);
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/{key}?partNumber=1&uploadId={id}"),
            &[],
            data,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let etag = r.header("etag").expect("part ETag");
    let target = format!("/{BUCKET}/{key}?uploadId={id}");
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>\
         </CompleteMultipartUpload>"
    );
    let r = raw.send("POST", &target, &[], xml.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(xml_values(&r.text(), "Error").is_empty(), "{}", r.text());
    (r, target, xml)
}

/// CompleteMultipartUpload answers the version it creates in `x-amz-version-id` (the headers
/// go out before the assembly ends, so the id is chosen first and the commit takes it): the
/// id ListObjectVersions and a version-addressed GET then show; a retried Complete answers
/// the same id and ETag; an unversioned or suspended bucket answers no version id (the
/// suspended one's upload is the `null` version).
pub(crate) async fn multipart_complete_answers_its_version(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let (r, _, _) = multipart(&rig, "plain", "unversioned").await;
    assert_eq!(r.header("x-amz-version-id"), None, "{:?}", r.headers);

    set_versioning(&rig, "Enabled").await;
    let v1 = version_of(&put(&rig, "mp", "before").await);
    let (r, target, xml) = multipart(&rig, "mp", "assembled").await;
    let v2 = version_of(&r);
    assert_ne!(v2, v1);
    assert_ne!(v2, "null");
    let etag = xml_values(&r.text(), "ETag").remove(0);
    let r = raw
        .send("GET", &format!("/{BUCKET}?versions&prefix=mp"), &[], "")
        .await;
    assert_eq!(
        xml_nested(&r.text(), "Version", "VersionId"),
        [v2.clone(), v1.clone()],
        "{}",
        r.text()
    );
    let r = raw
        .send("GET", &format!("/{BUCKET}/mp?versionId={v2}"), &[], "")
        .await;
    assert_eq!((r.status, r.text()), (200, "assembled".to_owned()));
    let r = raw.send("GET", &format!("/{BUCKET}/mp"), &[], "").await;
    assert_eq!(version_of(&r), v2);
    // The client lost the answer and retries: the same version, not another.
    let r = raw.send("POST", &target, &[], xml).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(version_of(&r), v2);
    assert_eq!(xml_values(&r.text(), "ETag"), [etag]);
    let r = raw
        .send("GET", &format!("/{BUCKET}?versions&prefix=mp"), &[], "")
        .await;
    assert_eq!(xml_nested(&r.text(), "Version", "VersionId").len(), 2);

    set_versioning(&rig, "Suspended").await;
    let (r, _, _) = multipart(&rig, "mp", "null one").await;
    assert_eq!(r.header("x-amz-version-id"), None, "{:?}", r.headers);
    let r = raw
        .send("GET", &format!("/{BUCKET}?versions&prefix=mp"), &[], "")
        .await;
    assert_eq!(
        xml_nested(&r.text(), "Version", "VersionId"),
        ["null".to_owned(), v2, v1]
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// A GET of `?tagging` (with `query` appended): status, version id answered and tags.
async fn tags_of(rig: &Rig, key: &str, query: &str) -> (u16, Option<String>, Vec<String>) {
    let r = rig
        .raw
        .send("GET", &format!("/{BUCKET}/{key}?tagging{query}"), &[], "")
        .await;
    let t = r.text();
    let pairs = xml_nested(&t, "Tag", "Key")
        .into_iter()
        .zip(xml_nested(&t, "Tag", "Value"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (r.status, r.header("x-amz-version-id"), pairs)
}

fn tagging_xml(key: &str, value: &str) -> String {
    format!("<Tagging><TagSet><Tag><Key>{key}</Key><Value>{value}</Value></Tag></TagSet></Tagging>")
}

/// Tagging, ACLs and GetObjectAttributes address a version with `versionId`: every version
/// keeps its own tags (setting or removing a noncurrent version's leaves the current one's
/// alone), each answers the version's id, an unknown id is NoSuchVersion and a delete marker
/// answers as on GET (404 as the latest, 405 when addressed).
pub(crate) async fn version_tags_acls_and_attributes(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    set_versioning(&rig, "Enabled").await;
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc"),
            &[("x-amz-tagging", "a=1")],
            "one",
        )
        .await;
    let v1 = version_of(&r);
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc"),
            &[("x-amz-tagging", "b=2")],
            "four",
        )
        .await;
    let v2 = version_of(&r);
    let q1 = format!("&versionId={v1}");
    assert_eq!(
        tags_of(&rig, "doc", "").await,
        (200, Some(v2.clone()), vec!["b=2".to_owned()])
    );
    assert_eq!(
        tags_of(&rig, "doc", &q1).await,
        (200, Some(v1.clone()), vec!["a=1".to_owned()])
    );

    // A noncurrent version's tags change alone.
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc?tagging{q1}"),
            &[],
            tagging_xml("c", "3"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(version_of(&r), v1);
    assert_eq!(tags_of(&rig, "doc", &q1).await.2, ["c=3"]);
    assert_eq!(tags_of(&rig, "doc", "").await.2, ["b=2"]);
    let r = raw
        .send("DELETE", &format!("/{BUCKET}/doc?tagging{q1}"), &[], "")
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(version_of(&r), v1);
    assert_eq!(tags_of(&rig, "doc", &q1).await.2, Vec::<String>::new());
    assert_eq!(tags_of(&rig, "doc", "").await.2, ["b=2"]);
    // The current version addressed by its id, and without one.
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc?tagging&versionId={v2}"),
            &[],
            tagging_xml("d", "4"),
        )
        .await;
    assert_eq!((r.status, version_of(&r)), (200, v2.clone()));
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc?tagging"),
            &[],
            tagging_xml("e", "5"),
        )
        .await;
    assert_eq!((r.status, version_of(&r)), (200, v2.clone()));
    assert_eq!(tags_of(&rig, "doc", "").await.2, ["e=5"]);
    assert_eq!(tags_of(&rig, "doc", &q1).await.2, Vec::<String>::new());
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc?tagging&versionId=nope"),
            &[],
            tagging_xml("x", "y"),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchVersion".to_owned()));
    assert_eq!(tags_of(&rig, "doc", "&versionId=nope").await.0, 404);

    // GetObjectAttributes: the version's id and its own size.
    let attrs = [("x-amz-object-attributes", "ETag,ObjectSize")];
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?attributes"), &attrs, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(version_of(&r), v2);
    assert_eq!(xml_values(&r.text(), "ObjectSize"), ["4"]);
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?attributes{q1}"), &attrs, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(version_of(&r), v1);
    assert_eq!(xml_values(&r.text(), "ObjectSize"), ["3"]);
    let r = raw
        .send(
            "GET",
            &format!("/{BUCKET}/doc?attributes&versionId=nope"),
            &attrs,
            "",
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchVersion".to_owned()));

    // ACLs: every version is the owner's; the version must exist.
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?acl{q1}"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(xml_values(&r.text(), "Permission"), ["FULL_CONTROL"]);
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc?acl{q1}"),
            &[("x-amz-acl", "private")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?acl&versionId=nope"), &[], "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchVersion".to_owned()));

    // Behind a delete marker: the latest is gone, the versions keep their tags.
    let marker = version_of(&raw.send("DELETE", &format!("/{BUCKET}/doc"), &[], "").await);
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?tagging"), &[], "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".to_owned()));
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc?tagging"),
            &[],
            tagging_xml("x", "y"),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".to_owned()));
    let r = raw
        .send(
            "PUT",
            &format!("/{BUCKET}/doc?tagging&versionId={marker}"),
            &[],
            tagging_xml("x", "y"),
        )
        .await;
    assert_eq!((r.status, r.code()), (405, "MethodNotAllowed".to_owned()));
    assert_eq!(r.header("x-amz-delete-marker").as_deref(), Some("true"));
    let r = raw
        .send("GET", &format!("/{BUCKET}/doc?attributes"), &attrs, "")
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchKey".to_owned()));
    assert_eq!(
        tags_of(&rig, "doc", &format!("&versionId={v2}")).await,
        (200, Some(v2.clone()), vec!["e=5".to_owned()])
    );
    rig.assert_clean().await;
    rig.finish().await;
}
