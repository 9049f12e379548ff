//! The workers with versions (DESIGN decision 25): a drain and the rebalancer move every
//! version's copy, the noncurrent ones and the current one alike (a drained backend ends
//! empty), while every version still reads by id with its bytes and the quotas stay exact.

use s3o_gateway::Worker;

use crate::raw::{Reply, xml_nested};
use crate::rig::{BUCKET, Ledger, Options, Rig, Spec, s3};

async fn put(rig: &Rig, key: &str, body: &'static str) -> String {
    let r = rig
        .raw
        .send("PUT", &format!("/{BUCKET}/{key}"), &[], body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    version_of(&r)
}

fn version_of(r: &Reply) -> String {
    r.header("x-amz-version-id")
        .unwrap_or_else(|| panic!("no x-amz-version-id: {:?}", r.headers))
}

/// `(key, version id)` of every version and `(key, version id)` of every delete marker, as
/// ListObjectVersions reports them.
async fn listing(rig: &Rig) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let r = rig
        .raw
        .send("GET", &format!("/{BUCKET}?versions"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = r.text();
    let zip = |outer: &str| {
        xml_nested(&xml, outer, "Key")
            .into_iter()
            .zip(xml_nested(&xml, outer, "VersionId"))
            .collect::<Vec<_>>()
    };
    (zip("Version"), zip("DeleteMarker"))
}

async fn get_version(rig: &Rig, key: &str, version: &str) -> (u16, String) {
    let r = rig
        .raw
        .send(
            "GET",
            &format!("/{BUCKET}/{key}?versionId={version}"),
            &[],
            "",
        )
        .await;
    (r.status, r.text())
}

/// A versioned bucket with several versions and a delete marker on `fs-a` (routing `pack`):
/// `s3o drain fs-a` moves the noncurrent copies too, so `fs-a` ends holding nothing, in the
/// ledger and physically; every version reads by id with its bytes, the listing is unchanged,
/// `bytes_used` of every backend equals Σ of every version's copies, and the ledger verifies.
pub(crate) async fn drain_moves_every_version(ledger: Ledger) {
    let Some(rig) = Rig::new(ledger).await else {
        return;
    };
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}?versioning"),
            &[],
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bodies: [(&str, &'static str); 6] = [
        ("doc", "first"),
        ("doc", "second version"),
        ("doc", "third and longest version"),
        ("other", "old other"),
        ("other", "new other"),
        ("plain", "only one"),
    ];
    let mut written = Vec::new();
    for (key, body) in bodies {
        written.push((key, body, put(&rig, key, body).await));
    }
    let r = rig
        .raw
        .send("DELETE", &format!("/{BUCKET}/doc"), &[], "")
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-amz-delete-marker").as_deref(), Some("true"));
    let marker = version_of(&r);
    let store = rig.store();
    let noncurrent = store
        .list_noncurrent_copies_by_backend("fs-a", "", "", 100)
        .await
        .expect("list noncurrent");
    assert_eq!(noncurrent.len(), 4, "doc ×3 and other ×1 are noncurrent");
    let total: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(
        store.backend_object_stats("fs-a").await.expect("stats"),
        (6, total as i64)
    );
    let before = listing(&rig).await;
    assert_eq!(before.1, [("doc".to_owned(), marker.clone())]);
    let used_before: i64 = store
        .get_quota_stats()
        .await
        .expect("quota")
        .values()
        .map(|q| q.bytes_used)
        .sum();
    rig.assert_clean().await;

    let report = s3o_gateway::drain(&rig.config, "fs-a", &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("drain failed: {e}"));
    assert_eq!(
        (
            report.progress.moved,
            report.progress.moved_bytes,
            report.progress.failed,
            report.progress.dropped
        ),
        (6, total as u64, 0, 0),
        "{report:?}"
    );
    assert_eq!(
        (report.progress.remaining, report.progress.remaining_bytes),
        (0, 0)
    );
    assert_eq!(
        store.backend_object_stats("fs-a").await.expect("stats"),
        (0, 0)
    );
    assert!(
        store
            .list_noncurrent_copies_by_backend("fs-a", "", "", 100)
            .await
            .expect("list noncurrent")
            .is_empty()
    );
    let physical = rig.physical().await;
    assert!(
        physical["fs-a"].is_empty(),
        "fs-a holds {:?}",
        physical["fs-a"]
    );
    let quotas = store.get_quota_stats().await.expect("quota");
    assert_eq!(
        (quotas["fs-a"].bytes_used, quotas["fs-a"].orphan_bytes),
        (0, 0)
    );
    assert_eq!(
        quotas.values().map(|q| q.bytes_used).sum::<i64>(),
        used_before,
        "the bytes moved, none appeared or vanished"
    );

    // Every version reads by id with its bytes; the current ones read plainly; the marker
    // still hides doc; the listing is the same.
    for (key, body, version) in &written {
        assert_eq!(
            get_version(&rig, key, version).await,
            (200, (*body).to_owned()),
            "{key} {version}"
        );
    }
    let r = rig
        .raw
        .send("GET", &format!("/{BUCKET}/doc"), &[], "")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(rig.get("other").await.as_ref(), b"new other");
    assert_eq!(rig.get("plain").await.as_ref(), b"only one");
    assert_eq!(listing(&rig).await, before);
    rig.assert_clean().await;

    // Undeleting after the drain brings back the newest version from its new backend.
    let r = rig
        .raw
        .send(
            "DELETE",
            &format!("/{BUCKET}/doc?versionId={marker}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(rig.get("doc").await.as_ref(), b"third and longest version");
    rig.assert_clean().await;
    rig.finish().await;
}

/// The rebalancer moves noncurrent versions' copies once a backend has no current copy left
/// to move: four 100-byte versions of a deleted key fill `fs-a` to 40 % of its quota while
/// `fs-b` is empty; two moves even them out exactly, every version still reads by id, and the
/// ledger stays clean.
pub(crate) async fn rebalance_moves_noncurrent_versions(ledger: Ledger) {
    const TWO: [Spec; 2] = [s3("fs-a", 1000), s3("fs-b", 1000)];
    let Some(rig) = Rig::start_with(
        ledger,
        Options {
            backends: &TWO,
            routing: "pack",
            store_url: None,
        },
        "[workers.rebalance]\nenabled = true\nthreshold_percent = 5\nbatch_size = 10\n",
    )
    .await
    else {
        return;
    };
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("/{BUCKET}?versioning"),
            &[],
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bodies: [&'static str; 4] = [
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222",
        "3333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333",
    ];
    let mut written = Vec::new();
    for body in bodies {
        written.push((body, put(&rig, "cold", body).await));
    }
    let r = rig
        .raw
        .send("DELETE", &format!("/{BUCKET}/cold"), &[], "")
        .await;
    assert_eq!(r.status, 204);
    let store = rig.store();
    assert_eq!(
        store.backend_object_stats("fs-a").await.expect("stats"),
        (4, 400)
    );
    let before = listing(&rig).await;

    let r = rig.gateway().run_worker_once(Worker::Rebalance).await;
    assert_eq!(r.count("moved"), 2, "{r:?}");
    assert_eq!(
        store.backend_object_stats("fs-a").await.expect("stats"),
        (2, 200)
    );
    assert_eq!(
        store.backend_object_stats("fs-b").await.expect("stats"),
        (2, 200)
    );
    assert_eq!(
        store
            .list_noncurrent_copies_by_backend("fs-b", "", "", 100)
            .await
            .expect("list noncurrent")
            .len(),
        2
    );
    let r = rig.gateway().run_worker_once(Worker::Rebalance).await;
    assert_eq!(r.count("moved"), 0, "balanced: {r:?}");
    for (body, version) in &written {
        assert_eq!(
            get_version(&rig, "cold", version).await,
            (200, (*body).to_owned())
        );
    }
    assert_eq!(listing(&rig).await, before);
    rig.assert_clean().await;
    rig.finish().await;
}

/// Backends holding each copy of version `version` of `key` in bucket `bucket`, sorted.
async fn holders(rig: &Rig, bucket: &str, key: &str, version: &str) -> Vec<String> {
    let v = rig
        .store()
        .get_object_version(&format!("{bucket}/{key}"), version)
        .await
        .expect("version");
    let mut out: Vec<String> = v.copies.into_iter().map(|c| c.backend_name).collect();
    out.sort();
    out
}

/// The replicator brings noncurrent versions to their bucket's factor (each copy streamed
/// from a live one, recorded only while it is still that version), and once the factor is
/// lowered the over-replication cleaner takes them back down without ever dropping the last
/// copy; every version reads by id with its bytes and the ledger stays clean.
pub(crate) async fn replicator_keeps_noncurrent_versions_at_factor(ledger: Ledger) {
    const TWICE: &str = "twice";
    let Some(rig) = Rig::start_with(
        ledger,
        Options {
            backends: &crate::rig::THREE,
            routing: "pack",
            store_url: None,
        },
        &format!("[[buckets]]\nname = {TWICE:?}\nreplication_factor = 2\n"),
    )
    .await
    else {
        return;
    };
    let r = rig
        .raw
        .send(
            "PUT",
            &format!("/{TWICE}?versioning"),
            &[],
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bodies: [&'static str; 3] = ["one", "version two", "the third version"];
    let mut written = Vec::new();
    for body in bodies {
        let r = rig.raw.send("PUT", &format!("/{TWICE}/k"), &[], body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        written.push((body, version_of(&r)));
    }
    let r = rig
        .raw
        .send("DELETE", &format!("/{TWICE}/k"), &[], "")
        .await;
    assert_eq!(r.status, 204);
    for (_, v) in &written {
        assert_eq!(holders(&rig, TWICE, "k", v).await.len(), 1);
    }
    let store = rig.store();
    assert_eq!(
        store
            .list_noncurrent_replication(&format!("{TWICE}/"), "", "", 2, 100)
            .await
            .expect("scan")
            .len(),
        3
    );

    let r = rig.gateway().run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("version_replicated"), 3, "{r:?}");
    for (_, v) in &written {
        assert_eq!(holders(&rig, TWICE, "k", v).await, ["fs-a", "fs-b"], "{v}");
    }
    assert!(
        store
            .list_noncurrent_replication(&format!("{TWICE}/"), "", "", 2, 100)
            .await
            .expect("scan")
            .is_empty()
    );
    let r = rig.gateway().run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("version_replicated"), 0, "{r:?}");
    rig.assert_clean().await;

    // Factor 1: the cleaner drops one copy of each version, the one least worth keeping.
    let mut b = store.get_bucket(TWICE).await.expect("bucket");
    b.settings.replication_factor = 1;
    store
        .update_bucket_settings(TWICE, &b.settings)
        .await
        .expect("update settings");
    let r = rig.gateway().run_worker_once(Worker::OverReplication).await;
    assert_eq!(r.count("version_trimmed"), 3, "{r:?}");
    for (body, v) in &written {
        assert_eq!(holders(&rig, TWICE, "k", v).await, ["fs-a"], "{v}");
        let r = rig
            .raw
            .send("GET", &format!("/{TWICE}/k?versionId={v}"), &[], "")
            .await;
        assert_eq!((r.status, r.text()), (200, (*body).to_owned()));
    }
    let r = rig.gateway().run_worker_once(Worker::OverReplication).await;
    assert_eq!(r.count("version_trimmed"), 0, "{r:?}");
    rig.assert_clean().await;
    rig.finish().await;
}
