//! Buckets as ledger state, over S3: CreateBucket/DeleteBucket cycles, S3's name rules,
//! ListBuckets' `CreationDate`, and a PUT racing the deletion of its bucket.

use crate::raw::xml_values;
use crate::rig::{BUCKET, Ledger, REGION, Rig};

fn location_body(region: &str) -> String {
    format!(
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
    )
}

/// mb → head → object in it → rb refused (BucketNotEmpty) → object deleted → rb → gone; a
/// second mb of an existing bucket answers 200 in us-east-1 and changes nothing; an open
/// multipart upload is aborted by rb.
pub(crate) async fn create_delete_cycle(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let r = raw.send("HEAD", "/fresh-bucket", &[], "").await;
    assert_eq!(r.status, 404, "a bucket never created is absent");
    let r = raw.send("PUT", "/fresh-bucket", &[], "").await;
    assert_eq!(r.status, 200, "CreateBucket: {}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/fresh-bucket"));
    assert_eq!(raw.send("HEAD", "/fresh-bucket", &[], "").await.status, 200);
    // The rig's region is us-east-1, where S3 answers a re-creation of one's own bucket 200
    // (elsewhere: 409 BucketAlreadyOwnedByYou); either way nothing changes.
    rig.put("keep-me", "kept").await;
    let r = raw.send("PUT", "/fresh-bucket", &[], "").await;
    assert_eq!(r.status, 200, "re-create in us-east-1: {}", r.text());
    let r = raw.send("PUT", &format!("/{BUCKET}"), &[], "").await;
    assert_eq!(
        r.status,
        200,
        "the configured bucket is in the ledger too: {}",
        r.text()
    );
    let r = raw
        .send("GET", &format!("/{BUCKET}/keep-me"), &[], "")
        .await;
    assert_eq!(
        (r.status, r.text()),
        (200, "kept".to_owned()),
        "a re-create keeps objects"
    );
    let r = raw
        .send("DELETE", &format!("/{BUCKET}/keep-me"), &[], "")
        .await;
    assert_eq!(r.status, 204);

    let r = raw.send("PUT", "/fresh-bucket/a/b.txt", &[], "hello").await;
    assert_eq!(r.status, 200, "PUT into the new bucket: {}", r.text());
    let r = raw.send("GET", "/fresh-bucket/a/b.txt", &[], "").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
    let r = raw.send("DELETE", "/fresh-bucket", &[], "").await;
    assert_eq!((r.status, r.code()), (409, "BucketNotEmpty".to_owned()));
    assert_eq!(raw.send("HEAD", "/fresh-bucket", &[], "").await.status, 200);

    assert_eq!(
        raw.send("DELETE", "/fresh-bucket/a/b.txt", &[], "")
            .await
            .status,
        204
    );
    let r = raw.send("DELETE", "/fresh-bucket", &[], "").await;
    assert_eq!(
        r.status,
        204,
        "DeleteBucket of an empty bucket: {}",
        r.text()
    );
    assert_eq!(raw.send("HEAD", "/fresh-bucket", &[], "").await.status, 404);
    let r = raw.send("PUT", "/fresh-bucket/k", &[], "x").await;
    assert_eq!((r.status, r.code()), (404, "NoSuchBucket".to_owned()));
    let r = raw.send("GET", "/fresh-bucket?list-type=2", &[], "").await;
    assert_eq!((r.status, r.code()), (404, "NoSuchBucket".to_owned()));
    let r = raw.send("DELETE", "/fresh-bucket", &[], "").await;
    assert_eq!((r.status, r.code()), (404, "NoSuchBucket".to_owned()));

    // An upload never completed does not keep a bucket alive (as on S3): it is aborted.
    assert_eq!(raw.send("PUT", "/with-upload", &[], "").await.status, 200);
    let r = raw.send("POST", "/with-upload/big?uploads", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let upload = xml_values(&r.text(), "UploadId").pop().expect("upload id");
    let r = raw
        .send(
            "PUT",
            &format!("/with-upload/big?partNumber=1&uploadId={upload}"),
            &[],
            "part",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw.send("DELETE", "/with-upload", &[], "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(raw.send("HEAD", "/with-upload", &[], "").await.status, 404);

    // Re-created under the same name, it is a new, empty bucket.
    assert_eq!(raw.send("PUT", "/fresh-bucket", &[], "").await.status, 200);
    let r = raw.send("GET", "/fresh-bucket?list-type=2", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(xml_values(&r.text(), "Key").is_empty(), "{}", r.text());
    rig.assert_clean().await;
    rig.finish().await;
}

/// S3's naming rules (from the store) and the location constraint of the configured region.
pub(crate) async fn bucket_name_rules(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    for bad in [
        "ab",
        "Upper-case",
        "under_score",
        "-leading-dash",
        "trailing-dash-",
        "double..dot",
        "192.168.5.4",
        "xn--reserved-prefix",
        "reserved-suffix-s3alias",
    ] {
        let r = raw.send("PUT", &format!("/{bad}"), &[], "").await;
        assert_eq!(
            (r.status, r.code()),
            (400, "InvalidBucketName".to_owned()),
            "{bad}: {}",
            r.text()
        );
    }
    let long = "a".repeat(64);
    let r = raw.send("PUT", &format!("/{long}"), &[], "").await;
    assert_eq!(r.status, 400, "64 characters: {}", r.text());
    let ok = "a".repeat(63);
    assert_eq!(
        raw.send("PUT", &format!("/{ok}"), &[], "").await.status,
        200
    );
    assert_eq!(
        raw.send("PUT", "/dots.and-dashes.9", &[], "").await.status,
        200
    );

    let r = raw
        .send("PUT", "/elsewhere", &[], location_body("eu-west-1"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "InvalidLocationConstraint".to_owned()),
        "{}",
        r.text()
    );
    assert_eq!(raw.send("HEAD", "/elsewhere", &[], "").await.status, 404);
    let r = raw.send("PUT", "/here", &[], location_body(REGION)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw.send("GET", "/here?location", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    rig.finish().await;
}

/// ListBuckets answers every bucket, the configured one included, with a `CreationDate`.
pub(crate) async fn list_buckets_has_creation_dates(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    for b in ["zeta-bucket", "alpha-bucket"] {
        assert_eq!(raw.send("PUT", &format!("/{b}"), &[], "").await.status, 200);
    }
    let r = raw.send("GET", "/", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(
        xml_values(&text, "Name"),
        ["alpha-bucket", BUCKET, "zeta-bucket"],
        "{text}"
    );
    let dates = xml_values(&text, "CreationDate");
    assert_eq!(dates.len(), 3, "one CreationDate per bucket: {text}");
    let year = chrono_free_year();
    for d in &dates {
        // ISO 8601 in UTC, as botocore parses it: 2026-12-07T09:41:41.000Z.
        assert!(
            d.len() >= 20 && d.ends_with('Z') && d.as_bytes()[10] == b'T',
            "{d}"
        );
        let y: i32 = d[..4].parse().expect("year");
        assert!((year - 1..=year + 1).contains(&y), "{d} is not about now");
    }
    rig.finish().await;
}

/// This year from the system clock, without a date library.
fn chrono_free_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    1970 + i32::try_from(secs / 31_556_952).expect("year")
}

/// PUTs racing DeleteBucket: whichever wins, no object is ever left in a deleted bucket. A
/// deletion that succeeds saw no PUT succeed before it, and every later PUT is refused with
/// NoSuchBucket, its intent abandoned and its bytes removed.
pub(crate) async fn put_racing_bucket_delete(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    let mut deleted_rounds = 0;
    for round in 0..12u64 {
        let b = format!("race-{round}");
        assert_eq!(raw.send("PUT", &format!("/{b}"), &[], "").await.status, 200);
        // Even rounds hold the PUTs back, odd rounds the deletion, by 0-2 ms: some rounds
        // delete first, some commit first, some interleave.
        let (put_delay, delete_delay) = if round % 2 == 0 {
            (round / 2 % 3, 0)
        } else {
            (0, round / 2 % 3)
        };
        let ms = |n: u64| tokio::time::sleep(std::time::Duration::from_millis(n));
        let puts = futures::future::join_all((0..6).map(|i| {
            let target = format!("/{b}/key-{i}");
            async move {
                ms(put_delay).await;
                raw.send("PUT", &target, &[], vec![7u8; 4096 + i]).await
            }
        }));
        let delete = async {
            ms(delete_delay).await;
            raw.send("DELETE", &format!("/{b}"), &[], "").await
        };
        let (puts, del) = tokio::join!(puts, delete);
        let stored: Vec<usize> = puts
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status == 200)
            .map(|(i, _)| i)
            .collect();
        for r in &puts {
            assert!(
                r.status == 200 || (r.status == 404 && r.code() == "NoSuchBucket"),
                "a PUT answers 200 or NoSuchBucket: {} {}",
                r.status,
                r.text()
            );
        }
        let in_ledger = rig
            .store()
            .list_objects(&format!("{b}/"), "", 100)
            .await
            .expect("list_objects")
            .objects;
        match del.status {
            204 => {
                deleted_rounds += 1;
                assert!(
                    stored.is_empty(),
                    "PUTs {stored:?} succeeded into a deleted bucket"
                );
                assert!(
                    in_ledger.is_empty(),
                    "objects left in deleted bucket {b}: {in_ledger:?}"
                );
                assert_eq!(
                    raw.send("HEAD", &format!("/{b}"), &[], "").await.status,
                    404
                );
            }
            409 => {
                assert_eq!(del.code(), "BucketNotEmpty");
                assert_eq!(
                    in_ledger.len(),
                    stored.len(),
                    "the ledger holds exactly the PUTs answered 200"
                );
            }
            s => panic!("DeleteBucket answered {s}: {}", del.text()),
        }
    }
    assert!(
        deleted_rounds > 0,
        "no round deleted its bucket: the race was not exercised"
    );
    rig.assert_clean().await;
    rig.finish().await;
}

/// A bucket created over S3 whose replication factor is raised in the ledger afterwards is
/// replicated by the running gateway's next pass: workers read the factors at every pass, not
/// once at start.
pub(crate) async fn workers_follow_bucket_settings_without_restart(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let raw = &rig.raw;
    assert_eq!(raw.send("PUT", "/late-bucket", &[], "").await.status, 200);
    let r = raw.send("PUT", "/late-bucket/k", &[], "payload").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let store = rig.store();
    let mut b = store.get_bucket("late-bucket").await.expect("bucket");
    b.settings.replication_factor = 2;
    store
        .update_bucket_settings("late-bucket", &b.settings)
        .await
        .expect("raise the factor");
    let report = rig
        .gateway()
        .run_worker_once(s3o_gateway::Worker::Replicator)
        .await;
    let copies = store
        .get_all_object_locations("late-bucket/k")
        .await
        .expect("copies");
    assert_eq!(copies.len(), 2, "replicated without a restart: {report:?}");
    let r = raw.send("GET", "/late-bucket/k", &[], "").await;
    assert_eq!((r.status, &r.body[..]), (200, &b"payload"[..]));
    rig.finish().await;
}
