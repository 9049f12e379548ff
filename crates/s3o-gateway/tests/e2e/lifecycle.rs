//! Put/Get/DeleteBucketLifecycleConfiguration over signed raw requests: rules stored in the
//! ledger and read back, what cannot be honoured refused with a typed error and nothing
//! stored, and the worker applying rules set over S3.

use base64::Engine as _;
use md5::Digest as _;

use crate::raw::xml_values;
use crate::rig::{BUCKET, Ledger, Rig};

async fn put_lifecycle(rig: &Rig, bucket: &str, body: &str) -> crate::raw::Reply {
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
    rig.raw
        .send(
            "PUT",
            &format!("/{bucket}?lifecycle"),
            &[("content-md5", md5.as_str())],
            body.to_owned(),
        )
        .await
}

fn config(rules: &str) -> String {
    format!("<LifecycleConfiguration>{rules}</LifecycleConfiguration>")
}

/// A round trip of rules; a tag filter on an abort of uploads, a duplicate filter tag, a size
/// filter, zero days and a missing action are refused and leave the stored rules as they were; DELETE removes them (GET then 404
/// NoSuchLifecycleConfiguration); an unknown bucket is 404 NoSuchBucket; and a rule set over S3
/// is what the lifecycle worker applies.
pub(crate) async fn lifecycle_configuration_round_trip(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let target = format!("/{BUCKET}?lifecycle");
    let r = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(
        (r.status, r.code()),
        (404, "NoSuchLifecycleConfiguration".into())
    );
    let good = config(
        "<Rule><ID>old</ID><Filter><Prefix>old/</Prefix></Filter><Status>Enabled</Status>\
         <Expiration><Date>2001-01-01T00:00:00Z</Date></Expiration></Rule>\
         <Rule><ID>uploads</ID><Filter><Prefix></Prefix></Filter><Status>Disabled</Status>\
         <AbortIncompleteMultipartUpload><DaysAfterInitiation>3</DaysAfterInitiation>\
         </AbortIncompleteMultipartUpload></Rule>",
    );
    let r = put_lifecycle(&rig, BUCKET, &good).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(xml_values(&text, "ID"), ["old", "uploads"]);
    assert_eq!(xml_values(&text, "Status"), ["Enabled", "Disabled"]);
    assert_eq!(xml_values(&text, "Prefix"), ["old/", ""]);
    assert_eq!(xml_values(&text, "DaysAfterInitiation"), ["3"]);
    assert_eq!(xml_values(&text, "Date").len(), 1, "{text}");
    for (bad, status, code) in [
        (
            "<Rule><ID>t</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>\
             <Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1\
             </DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>",
            400,
            "InvalidRequest",
        ),
        (
            "<Rule><ID>t</ID><Filter><And><Tag><Key>k</Key><Value>v</Value></Tag>\
             <Tag><Key>k</Key><Value>w</Value></Tag></And></Filter>\
             <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
            400,
            "InvalidRequest",
        ),
        (
            "<Rule><ID>s</ID><Filter><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></Filter>\
             <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
            501,
            "NotImplemented",
        ),
        (
            "<Rule><ID>z</ID><Filter><Prefix>a</Prefix></Filter><Status>Enabled</Status>\
             <Expiration><Days>0</Days></Expiration></Rule>",
            400,
            "InvalidArgument",
        ),
        (
            "<Rule><ID>n</ID><Filter><Prefix>a</Prefix></Filter><Status>Enabled</Status></Rule>",
            400,
            "MalformedXML",
        ),
    ] {
        let r = put_lifecycle(&rig, BUCKET, &config(bad)).await;
        assert_eq!((r.status, r.code()), (status, code.to_owned()), "{bad}");
    }
    let r = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(xml_values(&r.text(), "ID"), ["old", "uploads"], "unchanged");
    // The rule set over S3 is applied: old/ expires (its date has passed), the rest stays.
    rig.put("old/a", &b"aaa"[..]).await;
    rig.put("new/b", &b"bbb"[..]).await;
    let report = rig
        .gateway()
        .run_worker_once(s3o_gateway::Worker::Lifecycle)
        .await;
    assert_eq!(report.count("expired"), 1, "{report:?}");
    assert!(rig.placement("old/a").await.is_empty());
    assert_eq!(rig.get("new/b").await.as_ref(), b"bbb");
    let r = rig.raw.send("DELETE", &target, &[], "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(
        (r.status, r.code()),
        (404, "NoSuchLifecycleConfiguration".into())
    );
    let r = put_lifecycle(&rig, "no-such-bucket", &good).await;
    assert_eq!((r.status, r.code()), (404, "NoSuchBucket".into()));
    rig.finish().await;
}

/// Tag filters over S3: `Filter/Tag` and `Filter/And` (prefix and two tags) read back as
/// stored; the worker expires exactly the keys of the prefix that carry every tag of the rule
/// (tags given with the PUT's `x-amz-tagging` or set later with PutObjectTagging), and keeps
/// keys with a tag missing, a tag of another value, outside the prefix, or whose matching tags
/// were removed before the pass.
pub(crate) async fn lifecycle_tag_filters_expire_tagged_keys(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let rules = config(
        "<Rule><ID>and</ID><Filter><And><Prefix>tmp/</Prefix>\
         <Tag><Key>class</Key><Value>scratch</Value></Tag>\
         <Tag><Key>team</Key><Value>a</Value></Tag></And></Filter><Status>Enabled</Status>\
         <Expiration><Date>2001-01-01T00:00:00Z</Date></Expiration></Rule>\
         <Rule><ID>tag</ID><Filter><Tag><Key>expire</Key><Value>yes</Value></Tag></Filter>\
         <Status>Enabled</Status><Expiration><Date>2001-01-01T00:00:00Z</Date></Expiration>\
         </Rule>",
    );
    let r = put_lifecycle(&rig, BUCKET, &rules).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = rig
        .raw
        .send("GET", &format!("/{BUCKET}?lifecycle"), &[], "")
        .await;
    let text = r.text();
    assert_eq!(xml_values(&text, "ID"), ["and", "tag"]);
    assert_eq!(
        xml_values(&text, "Key"),
        ["class", "team", "expire"],
        "{text}"
    );
    assert_eq!(
        xml_values(&text, "Value"),
        ["scratch", "a", "yes"],
        "{text}"
    );
    assert_eq!(xml_values(&text, "Prefix"), ["tmp/"], "{text}");
    let cases = [
        ("tmp/both", "class=scratch&team=a", true),
        ("tmp/more", "class=scratch&team=a&x=1", true),
        ("tmp/one", "class=scratch", false),
        ("tmp/other", "class=scratch&team=b", false),
        ("tmp/none", "", false),
        ("tmp/untagged-later", "class=scratch&team=a", false),
        ("elsewhere/both", "class=scratch&team=a", false),
        ("any/yes", "expire=yes", true),
        ("any/no", "expire=no", false),
    ];
    for (key, tagging, _) in cases {
        let headers: Vec<(&str, &str)> = if tagging.is_empty() {
            Vec::new()
        } else {
            vec![("x-amz-tagging", tagging)]
        };
        let r = rig
            .raw
            .send("PUT", &format!("/{BUCKET}/{key}"), &headers, key.to_owned())
            .await;
        assert_eq!(r.status, 200, "{key}: {}", r.text());
    }
    // Tags set after the PUT count; tags removed before the pass protect the key.
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}/tmp/none?tagging"),
            &[],
            "<Tagging><TagSet><Tag><Key>other</Key><Value>1</Value></Tag></TagSet></Tagging>"
                .to_owned(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = rig
        .raw
        .send(
            "DELETE",
            &format!("/{BUCKET}/tmp/untagged-later?tagging"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let mut expired = 0;
    for _ in 0..3 {
        let report = rig
            .gateway()
            .run_worker_once(s3o_gateway::Worker::Lifecycle)
            .await;
        assert_eq!(report.count("changed"), 0, "{report:?}");
        expired += report.count("expired");
    }
    assert_eq!(expired, 3);
    for (key, _, gone) in cases {
        assert_eq!(rig.placement(key).await.is_empty(), gone, "{key}");
        if !gone {
            assert_eq!(rig.get(key).await.as_ref(), key.as_bytes(), "{key}");
        }
    }
    rig.finish().await;
}

/// The version actions over S3's XML: `NoncurrentVersionExpiration` (`NoncurrentDays`,
/// `NewerNoncurrentVersions`) and `Expiration/ExpiredObjectDeleteMarker` (with an empty
/// `Filter`, as s3-tests sends it) are stored and read back; `ExpiredObjectDeleteMarker` with
/// `Days`, `NewerNoncurrentVersions` out of 1..=100 and a tag filter on noncurrent versions
/// are refused and change nothing.
pub(crate) async fn lifecycle_version_actions_round_trip(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let target = format!("/{BUCKET}?lifecycle");
    let good = config(
        "<Rule><ID>nc</ID><Filter><Prefix>past/</Prefix></Filter><Status>Enabled</Status>\
         <NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>\
         <NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>\
         <Rule><ID>dm</ID><Filter></Filter><Status>Enabled</Status>\
         <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>",
    );
    let r = put_lifecycle(&rig, BUCKET, &good).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(xml_values(&text, "ID"), ["nc", "dm"]);
    assert_eq!(xml_values(&text, "NoncurrentDays"), ["2"], "{text}");
    assert_eq!(
        xml_values(&text, "NewerNoncurrentVersions"),
        ["3"],
        "{text}"
    );
    assert_eq!(
        xml_values(&text, "ExpiredObjectDeleteMarker"),
        ["true"],
        "{text}"
    );
    assert!(xml_values(&text, "Days").is_empty(), "{text}");
    for (bad, status, code) in [
        (
            "<Rule><ID>x</ID><Filter><Prefix>a</Prefix></Filter><Status>Enabled</Status>\
             <Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>\
             </Expiration></Rule>",
            400,
            "MalformedXML",
        ),
        (
            "<Rule><ID>x</ID><Filter><Prefix>a</Prefix></Filter><Status>Enabled</Status>\
             <NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>\
             <NewerNoncurrentVersions>101</NewerNoncurrentVersions>\
             </NoncurrentVersionExpiration></Rule>",
            400,
            "InvalidArgument",
        ),
        (
            "<Rule><ID>x</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>\
             <Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>1\
             </NoncurrentDays></NoncurrentVersionExpiration></Rule>",
            501,
            "NotImplemented",
        ),
    ] {
        let r = put_lifecycle(&rig, BUCKET, &config(bad)).await;
        assert_eq!((r.status, r.code()), (status, code.to_owned()), "{bad}");
    }
    let r = rig.raw.send("GET", &target, &[], "").await;
    assert_eq!(xml_values(&r.text(), "ID"), ["nc", "dm"], "unchanged");
}
