//! Issue 20's drills: one per finding 1–10 of the write path under faults, each on a rig with
//! fault-injecting backends ([`crate::faulty`]), asserting the behaviour the issue asks for
//! (status codes, bytes per backend, ledger rows) and the ledger/backend invariants after the
//! workers settled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use s3o_store::{PendingObject, StoredForm, Timestamp};

use crate::faulty::{Op, Rule};
use crate::raw::{Raw, Reply, encode_key, xml_values};
use crate::rig::{BUCKET, Ledger, Options, Rig, Spec, body, faulty, md5_hex, s3};
use crate::writes::unquote;

const MIB: usize = 1 << 20;

/// Workers fast enough for a drill: the reaper treats an intent as abandoned after 2 s
/// (writes of these drills take well under that), cleanup retries within a second.
const QUICK_WORKERS: &str = "[workers.reaper]\ninterval = \"100ms\"\nmin_age = \"2s\"\n\
    [workers.cleanup]\ninterval = \"100ms\"\nclaim_grace = \"1s\"\n\
    backoff_base = \"100ms\"\nbackoff_max = \"1s\"\n";

/// No background worker: a drill that must not see them interfere (they still run on demand).
const NO_WORKERS: &str = "[workers]\nenabled = false\n";

async fn rig(ledger: Ledger, backends: &[Spec], extra: &str) -> Option<Rig> {
    Rig::start_with(
        ledger,
        Options {
            backends,
            routing: "pack",
            store_url: None,
        },
        extra,
    )
    .await
}

fn target(key: &str) -> String {
    format!("/{BUCKET}/{}", encode_key(key))
}

fn content_md5(data: &[u8]) -> String {
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// Waits (bounded) until the workers resolved every intent and emptied the cleanup queue.
async fn settle(rig: &Rig) {
    let store = rig.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = store.count_pending().await.expect("count_pending");
        let queued = store.cleanup_queue_depth().await.expect("queue depth");
        if pending == 0 && queued == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "workers did not settle within 20 s: {pending} intents, {queued} cleanup rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The invariants every drill ends on:
/// - `bytes_used == Σ size_bytes` of the backend's copies + Σ of its open uploads' parts;
/// - `orphan_bytes == Σ` its cleanup queue and DLQ bytes;
/// - no multipart upload left open on a fault-injecting backend;
/// - every object on every backend is a ledger copy, an intent's path, a queued or
///   dead-lettered cleanup, or a part of an open upload.
async fn invariants(rig: &Rig) {
    let store = rig.store();
    let stats = store.get_quota_stats().await.expect("get_quota_stats");
    let cleanup = store
        .cleanup_bytes_by_backend()
        .await
        .expect("cleanup_bytes_by_backend");
    let mut known: BTreeSet<(String, String)> = BTreeSet::new();
    let mut part_dirs: BTreeSet<(String, String)> = BTreeSet::new();
    for b in &rig.backends {
        let stat = &stats[&b.name];
        let (_, bytes) = store
            .backend_object_stats(&b.name)
            .await
            .expect("backend_object_stats");
        // Recorded parts of open uploads are charged to their backend too.
        let parts: i64 = store
            .backend_capacities(std::slice::from_ref(&b.name))
            .await
            .expect("backend_capacities")
            .iter()
            .map(|c| c.inflight_bytes)
            .sum();
        assert_eq!(
            stat.bytes_used,
            bytes + parts,
            "{}: bytes_used must equal the sum of its copies and open uploads' parts",
            b.name
        );
        let (queued, dead) = cleanup.get(&b.name).copied().unwrap_or((0, 0));
        assert_eq!(
            stat.orphan_bytes,
            queued + dead,
            "{}: orphan_bytes must equal queue + DLQ bytes",
            b.name
        );
        let mut after = String::new();
        loop {
            let page = store
                .list_objects_by_backend_key_asc(&b.name, &after, 1000)
                .await
                .expect("list_objects_by_backend_key_asc");
            let Some(last) = page.last() else { break };
            after = last.object_key.clone();
            for c in &page {
                known.insert((
                    b.name.clone(),
                    c.form.storage_path(&c.object_key).to_owned(),
                ));
            }
        }
    }
    for p in store
        .get_stale_pending(Duration::ZERO, 1000)
        .await
        .expect("get_stale_pending")
    {
        known.insert((
            p.backend_name.clone(),
            p.form.storage_path(&p.object_key).to_owned(),
        ));
    }
    for c in store
        .get_due_cleanups(1000)
        .await
        .expect("get_due_cleanups")
    {
        known.insert((c.backend_name, c.storage_key));
    }
    for d in store
        .list_cleanup_dlq(None, 1000)
        .await
        .expect("list_cleanup_dlq")
    {
        known.insert((d.backend_name, d.storage_key));
    }
    // Full upload rows (the listing's slim rows carry no backend).
    for u in store
        .get_stale_multipart_uploads(Duration::ZERO)
        .await
        .expect("get_stale_multipart_uploads")
    {
        part_dirs.insert((u.backend_name, format!(".mpu/{}/", u.upload_id)));
    }
    let physical = rig.physical().await;
    for (backend, objects) in &physical {
        for (p, size) in objects {
            let referenced = known.contains(&(backend.clone(), p.clone()))
                || part_dirs
                    .iter()
                    .any(|(b, dir)| b == backend && p.starts_with(dir.as_str()));
            assert!(
                referenced,
                "{backend} holds {p} ({size} bytes) that no copy, intent, cleanup row or \
                 upload references"
            );
        }
    }
    for b in &rig.backends {
        if let Some(open) = b.faults_if_any().map(|f| f.open_uploads()) {
            assert!(
                open.is_empty(),
                "{}: backend multipart uploads left open: {open:?}",
                b.name
            );
        }
    }
}

/// CreateMultipartUpload through the gateway; the upload id.
async fn create_upload(raw: &Raw, key: &str) -> String {
    let r = raw
        .send(
            "POST",
            &format!("{}?uploads", target(key)),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200, "CreateMultipartUpload {key}: {}", r.text());
    xml_values(&r.text(), "UploadId")
        .into_iter()
        .next()
        .expect("UploadId")
}

async fn upload_part(
    raw: &Raw,
    key: &str,
    id: &str,
    n: i32,
    data: Bytes,
    headers: &[(&str, &str)],
) -> Reply {
    raw.send(
        "PUT",
        &format!("{}?partNumber={n}&uploadId={id}", target(key)),
        headers,
        data,
    )
    .await
}

fn complete_xml(parts: &[(i32, String)]) -> String {
    let mut x = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        x.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>\"{etag}\"</ETag></Part>"
        ));
    }
    x.push_str("</CompleteMultipartUpload>");
    x
}

async fn complete(raw: &Raw, key: &str, id: &str, parts: &[(i32, String)]) -> Reply {
    raw.send(
        "POST",
        &format!("{}?uploadId={id}", target(key)),
        &[],
        complete_xml(parts),
    )
    .await
}

/// Uploads `parts` as an upload of `key`; `(upload id, [(part number, ETag)])`.
async fn staged_upload(raw: &Raw, key: &str, parts: &[Bytes]) -> (String, Vec<(i32, String)>) {
    let id = create_upload(raw, key).await;
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = upload_part(raw, key, &id, n, p.clone(), &[]).await;
        assert_eq!(r.status, 200, "UploadPart {n}: {}", r.text());
        assert_eq!(unquote(r.header("etag").as_deref()), md5_hex(p));
        etags.push((n, md5_hex(p)));
    }
    (id, etags)
}

/// A gateway process, killed when the drill ends however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A signed PUT of `data` to `url` whose transport error is returned, not a panic (the
/// gateway serving it is killed).
async fn try_put(url: &str, data: Bytes) -> Result<u16, reqwest::Error> {
    use object_store::aws::{AwsAuthorizer, AwsCredential};
    use object_store::client::HttpRequestBody;
    let mut request = hyper::Request::builder()
        .method("PUT")
        .uri(url)
        .body(HttpRequestBody::from(data.clone()))
        .expect("request");
    let credential = AwsCredential {
        key_id: crate::rig::AK.to_owned(),
        secret_key: crate::rig::SK.to_owned(),
        token: None,
    };
    AwsAuthorizer::new(&credential, "s3", crate::rig::REGION)
        .try_authorize(&mut request, None)
        .expect("sign");
    let mut out = reqwest::Client::new().put(url).body(data);
    for (k, v) in request.headers() {
        out = out.header(k.as_str(), v.as_bytes());
    }
    Ok(out.send().await?.status().as_u16())
}

fn multipart_etag(parts: &[Bytes]) -> String {
    use md5::Digest;
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&md5::Md5::digest(p));
    }
    format!("{}-{}", md5_hex(&all), parts.len())
}

/// Finding 1: a PUT refused with 400 BadDigest whose backend delete failed never becomes
/// visible, even after the reaper ran: the previous version stays readable, and a key deleted
/// in between stays deleted.
pub(crate) async fn bad_digest_put_never_goes_live(ledger: Ledger) {
    let backends = [faulty("fs-a", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let faults = rig.backends[0].faults();
    let good = body(3000, 1);
    let bad = body(3000, 2);
    for key in ["digest/kept", "digest/deleted"] {
        rig.put(key, good.clone()).await;
        // The refused PUT's delete fails: one attempt and the gateway client's two retries.
        let rule = faults.add(Rule::on(&[Op::Delete]).path("digest").times(3).fail(500));
        let r = rig
            .raw
            .send(
                "PUT",
                &target(key),
                &[("content-md5", &content_md5(&good))],
                bad.clone(),
            )
            .await;
        assert_eq!((r.status, r.code().as_str()), (400, "BadDigest"), "{key}");
        assert!(faults.hits(rule) > 0, "the refused bytes' delete failed");
        faults.release(rule);
    }
    let r = rig
        .raw
        .send("DELETE", &target("digest/deleted"), &[], Bytes::new())
        .await;
    assert_eq!(r.status, 204);
    settle(&rig).await;
    let head = rig
        .raw
        .send("HEAD", &target("digest/kept"), &[], Bytes::new())
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(
        unquote(head.header("etag").as_deref()),
        md5_hex(&good),
        "the good version's ETag"
    );
    assert!(
        rig.get("digest/kept").await == good,
        "the good version's bytes"
    );
    let gone = rig
        .raw
        .send("GET", &target("digest/deleted"), &[], Bytes::new())
        .await;
    assert_eq!(gone.status, 404, "the deleted key stays deleted");
    assert_eq!(
        rig.placement("digest/kept").await,
        vec![("fs-a".into(), 3000)]
    );
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 2: a PUT that was never committed (its client hung up once the bytes were on the
/// backend, so the intent outlives the request), then an acknowledged DELETE: after the
/// reaper ran the key is still deleted.
pub(crate) async fn delete_after_uncommitted_put_stays_deleted(ledger: Ledger) {
    let backends = [faulty("fs-a", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let faults = rig.backends[0].faults();
    let key = "undo/me";
    // The second version's bytes are stored, but the backend's answer is held: the client
    // gives up meanwhile, which cancels the request before its commit.
    let hold = faults.add(Rule::on(&[Op::Put]).path("undo").after(1).hold_after());
    rig.put(key, body(2000, 1)).await;
    let endpoint = rig.gateway().endpoint();
    let t = target(key);
    let client = tokio::spawn(async move {
        Raw::new(&endpoint)
            .send("PUT", &t, &[], body(2000, 2))
            .await
    });
    faults.wait_held(hold, 1).await;
    client.abort();
    let deadline = Instant::now() + Duration::from_secs(2);
    while faults.held(hold) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The held call dropped: the gateway cancelled the request and its intent outlives it.
    let cancelled = faults.held(hold) == 0;
    faults.release(hold);
    if !cancelled {
        // A gateway that finishes writes on its own: let it, so the DELETE comes after.
        let deadline = Instant::now() + Duration::from_secs(10);
        while rig.store().count_pending().await.expect("count_pending") > 0 {
            assert!(Instant::now() < deadline, "the detached PUT never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let pending = rig.store().count_pending().await.expect("count_pending");
    eprintln!("PUT cancelled by the hang-up: {cancelled}; intents left: {pending}");
    let r = rig
        .raw
        .send("DELETE", &target(key), &[], Bytes::new())
        .await;
    assert_eq!(r.status, 204);
    let r = rig.raw.send("HEAD", &target(key), &[], Bytes::new()).await;
    assert_eq!(r.status, 404);
    settle(&rig).await;
    let r = rig.raw.send("HEAD", &target(key), &[], Bytes::new()).await;
    assert_eq!(
        r.status, 404,
        "an acknowledged DELETE is not undone by the reaper"
    );
    assert_eq!(rig.placement(key).await, vec![]);
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 3: 8 concurrent conditional PUTs of one key, 5 rounds each for `If-None-Match: *`
/// and `If-Match: <current ETag>`: exactly one 200, the others 412, and the key holds the
/// winner's bytes.
pub(crate) async fn conditional_puts_have_one_winner(ledger: Ledger) {
    let backends = [faulty("fs-a", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    // A slower backend PUT widens the window between the check and the commit.
    rig.backends[0]
        .faults()
        .add(Rule::on(&[Op::Put]).path("cond").delay_ms(100));
    let endpoint = rig.gateway().endpoint();
    for round in 0..5u8 {
        for if_match in [false, true] {
            let key = format!("cond/{}-{round}", if if_match { "match" } else { "none" });
            let cond = if if_match {
                let base = body(500, 200 + round);
                rig.put(&key, base.clone()).await;
                ("if-match", format!("\"{}\"", md5_hex(&base)))
            } else {
                ("if-none-match", "*".to_owned())
            };
            let writers: Vec<_> = (0..8u8)
                .map(|w| {
                    let endpoint = endpoint.clone();
                    let t = target(&key);
                    let cond = cond.clone();
                    tokio::spawn(async move {
                        let data = body(700, w + 10 * round);
                        let r = Raw::new(&endpoint)
                            .send("PUT", &t, &[(cond.0, &cond.1)], data.clone())
                            .await;
                        (r.status, data)
                    })
                })
                .collect();
            let mut statuses = BTreeMap::new();
            let mut winners = Vec::new();
            for w in writers {
                let (status, data) = w.await.expect("writer");
                *statuses.entry(status).or_insert(0) += 1;
                if status == 200 {
                    winners.push(data);
                }
            }
            assert_eq!(
                statuses,
                BTreeMap::from([(200, 1), (412, 7)]),
                "{key}: one writer wins, the others get 412"
            );
            assert!(
                rig.get(&key).await == winners[0],
                "{key} holds the winner's bytes"
            );
        }
    }
    rig.backends[0].faults().clear();
    settle(&rig).await;
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 4: a drain whose final sweep runs while more than 1000 intents are queued (left
/// by a backend that is down) and a PUT to the drained backend is in flight: the PUT, once
/// acknowledged, stays readable.
pub(crate) async fn drain_spares_put_in_flight(ledger: Ledger) {
    let backends = [faulty("fs-a", 1 << 30), s3("fs-b", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, NO_WORKERS).await else {
        return;
    };
    let store = rig.store().clone();
    let old = Timestamp::from_micros(Timestamp::now().as_micros() - 3_600_000_000);
    let ghosts: Vec<PendingObject> = (0..1001)
        .map(|i| PendingObject {
            intent_id: uuid::Uuid::new_v4().simple().to_string(),
            object_key: format!("{BUCKET}/ghost/{i:04}"),
            backend_name: "fs-b".into(),
            size_bytes: 10,
            form: StoredForm {
                storage_key: format!("{BUCKET}/ghost/{i:04}/@0"),
                ..StoredForm::default()
            },
            created_at: old,
        })
        .collect();
    use futures::StreamExt as _;
    futures::stream::iter(ghosts)
        .for_each_concurrent(8, |p| {
            let store = store.clone();
            async move { store.insert_pending(&p).await.expect("insert_pending") }
        })
        .await;
    let faults = rig.backends[0].faults();
    // The PUT's bytes land on fs-a but its answer waits: the drain runs in that window.
    let hold = faults.add(Rule::on(&[Op::Put]).path("inflight").hold_after());
    let data = body(4000, 9);
    let endpoint = rig.gateway().endpoint();
    let (t, d) = (target("inflight"), data.clone());
    let put = tokio::spawn(async move { Raw::new(&endpoint).send("PUT", &t, &[], d).await });
    faults.wait_held(hold, 1).await;
    let config = rig.config.clone();
    let drain = tokio::spawn(async move { s3o_gateway::drain(&config, "fs-a", &mut |_| {}).await });
    // A drain that waits for the writes in flight on its backend gets them after 3 s.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !drain.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    faults.release(hold);
    let report = drain.await.expect("drain task").expect("drain");
    let put = put.await.expect("PUT task");
    eprintln!("drain {report:?}; PUT answered {}", put.status);
    if put.status == 200 {
        let r = rig
            .raw
            .send("GET", &target("inflight"), &[], Bytes::new())
            .await;
        assert_eq!(
            r.status,
            200,
            "an acknowledged PUT stays readable: {}",
            r.text()
        );
        assert!(r.body == data, "the acknowledged bytes");
    } else {
        let r = rig
            .raw
            .send("HEAD", &target("inflight"), &[], Bytes::new())
            .await;
        assert_eq!(
            r.status, 404,
            "a refused PUT is not visible (PUT: {})",
            put.status
        );
    }
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 5: Complete of an upload whose backend can no longer hold the object (its quota
/// was lowered) while another backend can: 200, the object on the other backend, readable.
pub(crate) async fn complete_goes_where_it_fits(ledger: Ledger) {
    let backends = [s3("fs-a", 8 * MIB as u64), s3("fs-b", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let key = "mpu/fits-elsewhere";
    let parts = [body(5 * MIB, 1), body(MIB, 2)];
    let (id, etags) = staged_upload(&rig.raw, key, &parts).await;
    // The operator lowers fs-a's quota below the upload's size (as a config reload would).
    rig.store()
        .sync_quota_limits(&[
            ("fs-a".to_owned(), 4 * MIB as i64),
            ("fs-b".to_owned(), 1 << 30),
        ])
        .await
        .expect("sync_quota_limits");
    let r = complete(&rig.raw, key, &id, &etags).await;
    assert_eq!(r.status, 200, "Complete: {}", r.text());
    assert_eq!(
        xml_values(&r.text(), "ETag")
            .first()
            .map(|e| e.trim_matches('"').to_owned()),
        Some(multipart_etag(&parts))
    );
    let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    assert!(rig.get(key).await == all, "the object reads back");
    assert_eq!(
        rig.placement(key).await,
        vec![("fs-b".into(), 6 * MIB as i64)]
    );
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 6: UploadParts beyond the backend's quota are refused with 507, sequential and
/// concurrent; what the backend holds never exceeds its quota.
pub(crate) async fn parts_respect_the_quota(ledger: Ledger) {
    const QUOTA: u64 = 1 << 20;
    const PART: usize = 300 * 1024;
    let backends = [s3("fs-a", QUOTA)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let key = "mpu/quota";
    let id = create_upload(&rig.raw, key).await;
    let mut accepted = 0;
    for n in 1..=10 {
        let r = upload_part(&rig.raw, key, &id, n, body(PART, n as u8), &[]).await;
        match r.status {
            200 => accepted += 1,
            507 => {}
            s => panic!("part {n}: unexpected {s}: {}", r.text()),
        }
    }
    assert_eq!(
        accepted, 3,
        "three 300 KiB parts fit in 1 MiB, the rest answer 507"
    );
    let held: u64 = rig.physical().await["fs-a"].iter().map(|(_, s)| *s).sum();
    assert!(
        held <= QUOTA,
        "fs-a holds {held} bytes, over its {QUOTA} quota"
    );
    let r = rig
        .raw
        .send(
            "DELETE",
            &format!("{}?uploadId={id}", target(key)),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 204, "abort: {}", r.text());
    // Concurrent parts of a fresh upload: admission must count the ones in flight.
    let id = create_upload(&rig.raw, key).await;
    let endpoint = rig.gateway().endpoint();
    let tasks: Vec<_> = (1..=8)
        .map(|n| {
            let endpoint = endpoint.clone();
            let id = id.clone();
            tokio::spawn(async move {
                upload_part(&Raw::new(&endpoint), key, &id, n, body(PART, n as u8), &[])
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.expect("part task")).or_insert(0) += 1;
    }
    assert!(
        statuses.get(&200).copied().unwrap_or(0) <= 3
            && statuses.keys().all(|s| *s == 200 || *s == 507),
        "concurrent parts over the quota: {statuses:?}"
    );
    let held: u64 = rig.physical().await["fs-a"].iter().map(|(_, s)| *s).sum();
    assert!(
        held <= QUOTA,
        "fs-a holds {held} bytes, over its {QUOTA} quota"
    );
    let used = rig.store().get_quota_stats().await.expect("quota")["fs-a"].bytes_used;
    assert!(used <= QUOTA as i64);
    let r = rig
        .raw
        .send(
            "DELETE",
            &format!("{}?uploadId={id}", target(key)),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 204, "abort: {}", r.text());
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 6 across processes: two gateways on one ledger take parts of one upload to one
/// backend at the same instant. Every part's PUT to the backend is held until eight are in
/// flight (four through each gateway), so no part is recorded before all of them were
/// admitted: an admission count kept inside each process let three through each (six parts
/// of 300 KiB on a 1 MiB backend); the charge in the ledger, taken when a part is recorded,
/// admits exactly three in all and refuses the rest with 507 (their bytes deleted). Then the
/// quota rows follow the upload: a part re-uploaded through the other gateway swaps the
/// charge, and Abort releases it.
pub(crate) async fn parts_quota_holds_across_gateways(ledger: Ledger) {
    const QUOTA: u64 = 1 << 20;
    const PART: usize = 300 * 1024;
    let backends = [faulty("fs-a", QUOTA)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let second = s3o_gateway::Gateway::start(rig.config.clone())
        .await
        .expect("second gateway on the same ledger");
    let endpoints = [rig.gateway().endpoint(), second.endpoint()];
    assert_ne!(endpoints[0], endpoints[1]);
    let faults = rig.backends[0].faults();
    let key = "mpu/two-gateways";
    let id = create_upload(&rig.raw, key).await;
    let quota = |store: &s3o_store::MetadataStore| {
        let store = store.clone();
        async move {
            let s = store.get_quota_stats().await.expect("quota")["fs-a"].clone();
            (s.bytes_used, s.orphan_bytes)
        }
    };
    assert_eq!(quota(rig.store()).await, (0, 0));
    let hold = faults.add(Rule::on(&[Op::Put]).path(".mpu/").hold_after());
    let tasks: Vec<_> = (1..=8)
        .map(|n: i32| {
            let endpoint = endpoints[(n % 2) as usize].clone();
            let id = id.clone();
            tokio::spawn(async move {
                upload_part(&Raw::new(&endpoint), key, &id, n, body(PART, n as u8), &[])
                    .await
                    .status
            })
        })
        .collect();
    // Six at least (what per-process counts admit); then give the last two time to arrive.
    faults.wait_held(hold, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_flight = faults.held(hold);
    faults.release(hold);
    let mut statuses = BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.expect("part task")).or_insert(0) += 1;
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 3), (507, 5)]),
        "three 300 KiB parts fit in 1 MiB whatever gateway takes them ({in_flight} were \
         in flight at once)"
    );
    assert_eq!(
        in_flight, 8,
        "every part was admitted to stream (none recorded yet)"
    );
    let parts = rig.store().get_parts(&id).await.expect("parts");
    assert_eq!(parts.len(), 3);
    assert_eq!(quota(rig.store()).await, (3 * PART as i64, 0));
    let held: u64 = rig.physical().await["fs-a"].iter().map(|(_, s)| *s).sum();
    assert_eq!(held, 3 * PART as u64, "refused parts' bytes were deleted");
    invariants(&rig).await;
    // A recorded part sent again through the other gateway, smaller (its new bytes must fit
    // beside the old ones, which stay until deleted): the charge swaps, the old attempt's
    // bytes are queued and deleted at once.
    let n = parts[0].part_number;
    let other = &endpoints[((n + 1) % 2) as usize];
    let r = upload_part(&Raw::new(other), key, &id, n, body(PART / 3, 9), &[]).await;
    assert_eq!(r.status, 200, "re-upload: {}", r.text());
    settle(&rig).await;
    let used = 2 * PART as i64 + PART as i64 / 3;
    assert_eq!(quota(rig.store()).await, (used, 0));
    // 324 KiB of room left: 400 KiB through either gateway is refused.
    for e in &endpoints {
        let r = upload_part(&Raw::new(e), key, &id, 9, body(400 * 1024, 9), &[]).await;
        assert_eq!(r.status, 507, "over the quota: {}", r.text());
    }
    assert_eq!(quota(rig.store()).await, (used, 0));
    invariants(&rig).await;
    // Abort through the second gateway releases the charge (and the bytes).
    let r = Raw::new(&endpoints[1])
        .send(
            "DELETE",
            &format!("{}?uploadId={id}", target(key)),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 204, "abort: {}", r.text());
    settle(&rig).await;
    assert_eq!(quota(rig.store()).await, (0, 0));
    assert_eq!(rig.physical_bytes().await, 0);
    invariants(&rig).await;
    second.shutdown().await;
    rig.finish().await;
}

/// A drain leaves open uploads and their charged parts alone: the copies move off the drained
/// backend, the upload's parts stay there (the leftover sweep never lists `.mpu/`), still
/// charged exactly; the upload completes afterwards and its release moves the parts' charge to
/// the cleanup queue.
pub(crate) async fn drain_keeps_open_upload_parts(ledger: Ledger) {
    let backends = [s3("fs-a", 1 << 30), s3("fs-b", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let key = "mpu/through-drain";
    let parts = [body(5 * MIB, 3), body(MIB, 4)];
    let (id, etags) = staged_upload(&rig.raw, key, &parts).await;
    let up = rig.store().get_multipart_upload(&id).await.expect("upload");
    assert_eq!(
        up.backend_name, "fs-a",
        "the least utilised backend, by name"
    );
    rig.put("plain", body(1000, 5)).await;
    assert_eq!(rig.placement("plain").await, vec![("fs-a".into(), 1000)]);
    let used = |rig: &Rig, b: &'static str| {
        let store = rig.store().clone();
        async move { store.get_quota_stats().await.expect("quota")[b].bytes_used }
    };
    assert_eq!(used(&rig, "fs-a").await, 6 * MIB as i64 + 1000);
    let report = s3o_gateway::drain(&rig.config, "fs-a", &mut |_| {})
        .await
        .expect("drain");
    assert_eq!(report.progress.moved, 1);
    assert_eq!(rig.placement("plain").await, vec![("fs-b".into(), 1000)]);
    // The parts stayed, charged, readable.
    assert_eq!(used(&rig, "fs-a").await, 6 * MIB as i64);
    let on_a: u64 = rig.physical().await["fs-a"]
        .iter()
        .filter(|(p, _)| p.starts_with(&format!(".mpu/{id}/")))
        .map(|(_, s)| *s)
        .sum();
    assert_eq!(on_a, 6 * MIB as u64);
    invariants(&rig).await;
    let r = complete(&rig.raw, key, &id, &etags).await;
    assert_eq!(r.status, 200, "Complete after the drain: {}", r.text());
    let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    assert!(rig.get(key).await == all, "the object reads back");
    settle(&rig).await;
    // Every part's charge left with the upload; the object is charged where it landed.
    let placed = rig.placement(key).await;
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].1, 6 * MIB as i64);
    let a = if placed[0].0 == "fs-a" {
        6 * MIB as i64
    } else {
        0
    };
    assert_eq!(used(&rig, "fs-a").await, a);
    assert!(rig.store().get_multipart_upload(&id).await.is_err());
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 7: a gateway process killed (SIGKILL) while it streams a PUT to an S3 backend as
/// a backend multipart upload: once the reaper of the surviving gateway ran, no backend
/// multipart upload is left open and nothing unreferenced is left on the backend.
pub(crate) async fn killed_mid_stream_leaves_no_backend_upload(ledger: Ledger) {
    let backends = [faulty("fs-a", 1 << 30).multipart_only()];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let faults = rig.backends[0].faults();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("gateway.toml");
    // The child's intents are refreshed as often as the rig's reaper (min_age 2 s) requires:
    // with the default min_age its heartbeat would be 30 s, and the rig's reaper would abandon
    // the live upload whenever the setup takes over 2 s (a loaded machine).
    std::fs::write(
        &cfg,
        format!(
            "{}\n{NO_WORKERS}[workers.reaper]\nmin_age = \"2s\"\n",
            rig.toml
        ),
    )
    .expect("write config");
    let mut child = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_s3o-gateway"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the gateway"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let endpoint = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the endpoint");
        line.trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned()
    })
    .await
    .expect("endpoint");
    assert!(endpoint.starts_with("http://"), "{endpoint}");
    // The first streamed part hangs: the backend upload is open when the process dies.
    let hang = faults.add(Rule::on(&[Op::UploadPart]).path("streamed").hang());
    let url = format!("{endpoint}{}", target("streamed/big"));
    let put = tokio::spawn(async move { try_put(&url, body(12 * MIB, 3)).await });
    faults.wait_held(hang, 1).await;
    assert_eq!(
        faults.open_uploads().len(),
        1,
        "setup: a backend upload is open"
    );
    child.0.kill().expect("SIGKILL");
    let _ = child.0.wait();
    faults.release(hang);
    assert!(
        put.await.expect("PUT task").is_err(),
        "the PUT died with its gateway"
    );
    settle(&rig).await;
    assert_eq!(
        faults.open_uploads(),
        vec![],
        "the dead gateway's backend multipart upload was aborted"
    );
    let r = rig
        .raw
        .send("HEAD", &target("streamed/big"), &[], Bytes::new())
        .await;
    assert_eq!(r.status, 404, "the unacknowledged PUT is not visible");
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 8: GETs racing overwrites and deletes of their key answer the old or the new
/// object, or 404; never 503.
pub(crate) async fn reads_racing_overwrites_never_503(ledger: Ledger) {
    const LEN: usize = 4096;
    let backends = [faulty("fs-a", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let key = "race/hot";
    rig.put(key, body(LEN, 0)).await;
    // Backend reads start 10 ms late, so a GET's ledger lookup and its backend read are far
    // apart; writes come every 25 ms or more, so a read that re-reads the ledger after
    // losing a race wins its second try.
    rig.backends[0]
        .faults()
        .add(Rule::on(&[Op::Get]).path("race").delay_ms(10));
    let endpoint = rig.gateway().endpoint();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let endpoint = endpoint.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let raw = Raw::new(&endpoint);
                let mut seen: BTreeMap<u16, u32> = BTreeMap::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let r = raw.send("GET", &target(key), &[], Bytes::new()).await;
                    if r.status == 200 {
                        assert!(
                            r.body.len() == LEN && r.body == body(LEN, r.body[0]),
                            "a GET answered bytes of no version"
                        );
                    }
                    *seen.entry(r.status).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    for i in 1..=120u8 {
        if i % 4 == 0 {
            let r = rig
                .raw
                .send("DELETE", &target(key), &[], Bytes::new())
                .await;
            assert_eq!(r.status, 204);
        } else {
            rig.put(key, body(LEN, i)).await;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut seen: BTreeMap<u16, u32> = BTreeMap::new();
    for r in readers {
        for (s, n) in r.await.expect("reader") {
            *seen.entry(s).or_default() += n;
        }
    }
    eprintln!("race GETs by status: {seen:?}");
    assert!(
        seen.keys().all(|s| *s == 200 || *s == 404),
        "GETs racing overwrites answered {seen:?}"
    );
    rig.backends[0].faults().clear();
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 9: a Complete whose client hung up while the object was assembled still
/// completes (and its retry answers 200), and a retried Complete of a finished upload answers
/// 200 with the same ETag.
pub(crate) async fn complete_survives_hangup_and_retry(ledger: Ledger) {
    let backends = [faulty("fs-a", 1 << 30).multipart_only()];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let faults = rig.backends[0].faults();
    let parts = [body(5 * MIB, 4), body(1024, 5)];
    let expect = multipart_etag(&parts);
    let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    // The client hangs up while the assembled object's backend Complete is held.
    let (id, etags) = staged_upload(&rig.raw, "mpu/hungup", &parts).await;
    let hang = faults.add(Rule::on(&[Op::CompleteMpu]).path("hungup").hang());
    let endpoint = rig.gateway().endpoint();
    let (id2, etags2) = (id.clone(), etags.clone());
    let client =
        tokio::spawn(
            async move { complete(&Raw::new(&endpoint), "mpu/hungup", &id2, &etags2).await },
        );
    faults.wait_held(hang, 1).await;
    client.abort();
    // Give the gateway time to notice the hang-up before the backend answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    faults.release(hang);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = rig
            .raw
            .send("HEAD", &target("mpu/hungup"), &[], Bytes::new())
            .await;
        if r.status == 200 {
            assert_eq!(unquote(r.header("etag").as_deref()), expect);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Complete whose client hung up never completed (HEAD {})",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rig.get("mpu/hungup").await == all, "assembled bytes");
    let r = complete(&rig.raw, "mpu/hungup", &id, &etags).await;
    assert_eq!(
        r.status,
        200,
        "Complete retried after the hang-up: {}",
        r.text()
    );
    // Retry after success.
    let (id, etags) = staged_upload(&rig.raw, "mpu/retried", &parts).await;
    let r = complete(&rig.raw, "mpu/retried", &id, &etags).await;
    assert_eq!(r.status, 200, "Complete: {}", r.text());
    let r = complete(&rig.raw, "mpu/retried", &id, &etags).await;
    assert_eq!(r.status, 200, "retried Complete: {}", r.text());
    assert_eq!(
        xml_values(&r.text(), "ETag")
            .first()
            .map(|e| e.trim_matches('"').to_owned()),
        Some(expect.clone()),
        "the retried Complete answers the upload's result"
    );
    // A retry this process no longer remembers (as after a restart: an upload id it never
    // completed) is answered from the ledger when the listed parts make the current object,
    // and refused when they do not.
    let forgotten = "0".repeat(32);
    let r = complete(&rig.raw, "mpu/retried", &forgotten, &etags).await;
    assert_eq!(r.status, 200, "retry after a restart: {}", r.text());
    assert_eq!(
        xml_values(&r.text(), "ETag")
            .first()
            .map(|e| e.trim_matches('"').to_owned()),
        Some(expect)
    );
    let mut other = etags.clone();
    other[0].1 = "0123456789abcdef0123456789abcdef".into();
    let r = complete(&rig.raw, "mpu/retried", &forgotten, &other).await;
    assert_eq!(r.status, 404, "other parts: {}", r.text());
    settle(&rig).await;
    invariants(&rig).await;
    rig.finish().await;
}

/// Finding 10: an UploadPart retry refused for its Content-MD5 leaves the part accepted
/// earlier under that number intact: Complete with its ETag succeeds with its bytes.
pub(crate) async fn failed_part_retry_keeps_accepted_part(ledger: Ledger) {
    let backends = [s3("fs-a", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, QUICK_WORKERS).await else {
        return;
    };
    let key = "mpu/retry-part";
    let parts = [body(5 * MIB, 6), body(2048, 7)];
    let (id, etags) = staged_upload(&rig.raw, key, &parts).await;
    let other = body(5 * MIB, 8);
    let r = upload_part(
        &rig.raw,
        key,
        &id,
        1,
        other,
        &[("content-md5", &content_md5(&parts[0]))],
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (400, "BadDigest"));
    let r = complete(&rig.raw, key, &id, &etags).await;
    assert_eq!(
        r.status,
        200,
        "Complete with the accepted part: {}",
        r.text()
    );
    let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    assert!(rig.get(key).await == all, "the accepted part's bytes");
    invariants(&rig).await;
    rig.finish().await;
}

/// The fault backend itself: failures per call count, a hung call released, open backend
/// uploads tracked, and [`invariants`] catching an object nothing references.
pub(crate) async fn fault_backend_self_test(ledger: Ledger) {
    use futures::FutureExt as _;
    use object_store::ObjectStoreExt as _;
    use object_store::multipart::MultipartStore as _;
    let backends = [faulty("fs-a", 1 << 30)];
    let Some(rig) = rig(ledger, &backends, "").await else {
        return;
    };
    let faults = rig.backends[0].faults();
    // A direct client without retries: each call meets the rules once.
    let store = crate::rig::s3_client(
        &format!("http://{}", rig.backends[0].addr()),
        crate::fs_backend::BACKEND_BUCKET,
        crate::fs_backend::BACKEND_AK,
        crate::fs_backend::BACKEND_SK,
    );
    let stray = crate::rig::path("photos/stray");
    // The second and third PUTs fail with 503, the others pass.
    let fail = faults.add(
        Rule::on(&[Op::Put])
            .path("stray")
            .after(1)
            .times(2)
            .fail(503),
    );
    let puts = faults.calls(Op::Put);
    let mut ok = Vec::new();
    for i in 0..4u8 {
        ok.push(store.put(&stray, body(10, i).into()).await.is_ok());
    }
    assert_eq!(ok, [true, false, false, true]);
    assert_eq!((faults.hits(fail), faults.calls(Op::Put) - puts), (2, 4));
    faults.release(fail);
    store.delete(&stray).await.expect("stray delete");
    rig.put("self/a", body(100, 1)).await;
    // A hung GET answers once released.
    let hang = faults.add(Rule::on(&[Op::Get]).path("self").hang());
    let endpoint = rig.gateway().endpoint();
    let get = tokio::spawn(async move {
        Raw::new(&endpoint)
            .send("GET", &target("self/a"), &[], Bytes::new())
            .await
    });
    faults.wait_held(hang, 1).await;
    assert!(!get.is_finished(), "the GET waits at the gate");
    faults.release(hang);
    let r = get.await.expect("GET task");
    assert_eq!((r.status, r.body.clone()), (200, body(100, 1)));
    // Backend uploads opened and aborted directly.
    let id = store.create_multipart(&stray).await.expect("create");
    assert_eq!(
        faults.open_uploads(),
        vec![("photos/stray".into(), id.clone())]
    );
    store.abort_multipart(&stray, &id).await.expect("abort");
    assert_eq!(faults.open_uploads(), vec![]);
    // An object no ledger row references fails the invariants; removed, they hold.
    store
        .put(&stray, body(10, 1).into())
        .await
        .expect("stray put");
    let caught = std::panic::AssertUnwindSafe(invariants(&rig))
        .catch_unwind()
        .await;
    assert!(caught.is_err(), "invariants must flag the stray object");
    store.delete(&stray).await.expect("stray delete");
    invariants(&rig).await;
    rig.finish().await;
}
