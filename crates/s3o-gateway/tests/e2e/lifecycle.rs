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

/// A round trip of rules; tag filters (no object tags here), zero days and a missing action
/// are refused and leave the stored rules as they were; DELETE removes them (GET then 404
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
