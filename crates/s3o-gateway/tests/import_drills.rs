//! The import drill: objects planted on an S3 backend (s3s-fs over loopback) and on a local
//! directory are brought under management by `s3o-gateway import`, on each ledger engine.

#[path = "workers_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use md5::{Digest as _, Md5};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use s3o_gateway::workers::Interval;
use s3o_gateway::{BackendConfig, Config, Gateway, ImportOptions, ImportProgress, Worker};
use s3o_store::{MetadataStore, PendingObject, StoredForm, Timestamp};
use support::*;

#[derive(Clone, Copy, Debug)]
enum Engine {
    Sqlite,
    Postgres,
}

/// Every key the ledger holds with its copies `(backend, size)`, and every backend's counters:
/// what a dry run must leave exactly as it was.
async fn ledger_state(store: &MetadataStore) -> (BTreeMap<String, Vec<(String, i64)>>, String) {
    let mut keys = BTreeMap::new();
    for b in ["a", "l"] {
        let mut after = String::new();
        loop {
            let page = store
                .list_objects_by_backend_key_asc(b, &after, 1000)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.object_key.clone();
            for l in page {
                keys.entry(l.object_key)
                    .or_insert_with(Vec::new)
                    .push((l.backend_name, l.size_bytes));
            }
        }
    }
    let quotas = store
        .get_quota_stats()
        .await
        .unwrap()
        .values()
        .map(|q| {
            format!(
                "{}:{}/{}/{}",
                q.backend_name, q.bytes_used, q.orphan_bytes, q.bytes_limit
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    (keys, quotas)
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

/// Runs the import and returns its counts, with the refusals as `key: reason`.
async fn import(
    cfg: &Config,
    backend: &str,
    prefix: &str,
    dry_run: bool,
) -> (ImportProgress, Vec<String>) {
    let opts = ImportOptions {
        backend: backend.into(),
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        dry_run,
    };
    let mut refused = Vec::new();
    let p = s3o_gateway::import(cfg, &opts, &mut |e| {
        if let s3o_gateway::ImportEvent::Refused(r) = e {
            refused.push(format!("{}: {}", r.key, r.reason));
        }
    })
    .await
    .unwrap();
    refused.sort();
    (p, refused)
}

/// Planted: on the S3 backend three objects to adopt, one whose key has a write in flight, an unreferenced s3o
/// version and an object of another bucket; in the local directory (quota 1000 bytes) two
/// objects that fit, one that does not and one at a name the S3 backend's import took first
/// (the ledger's key wins). A dry run changes nothing; the import adopts
/// exactly the five, charges exactly their bytes, reads back byte for byte with their MD5 as
/// ETag, and the ledger verifies; a second run (through the CLI) imports nothing; an imported
/// object deleted through the gateway whose bytes wait in the cleanup queue is not brought
/// back; the reconciler keeps the imported bytes.
async fn drill(engine: Engine) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (url, schema) = match engine {
        Engine::Sqlite => (
            format!("sqlite://{}", dir.path().join("ledger.db").display()),
            None,
        ),
        Engine::Postgres => match pg_url() {
            Some((u, s)) => (u, Some(s)),
            None => {
                eprintln!("import drill [postgres]: skipped, S3O_PG_URL is not set");
                return;
            }
        },
    };
    let fs = vec![Fs::start("a", &dir.path().join("a")).await];
    let local = dir.path().join("l");
    let mut cfg = config(&url, &fs, 1);
    cfg.backends.push(BackendConfig::local("l", &local, 1000));
    cfg.workers.reconcile.grace = Interval::millis(1);
    let gw = Gateway::start(cfg.clone()).await.unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    put(&c, "known", b"written through the gateway")
        .await
        .unwrap();

    let raw = client(&fs[0].endpoint(), "pool", BACKEND_AK, BACKEND_SK);
    let plant = |path: &str, bytes: Vec<u8>| {
        let raw = raw.clone();
        let path = path.to_owned();
        async move {
            raw.put(
                &Path::from(path.as_str()),
                PutPayload::from(Bytes::from(bytes)),
            )
            .await
            .unwrap();
        }
    };
    let cat = body(1, 100);
    let dog = body(2, 200);
    plant(&format!("{BUCKET}/cat.jpg"), cat.clone()).await;
    plant(&format!("{BUCKET}/dir/dog.png"), dog.clone()).await;
    let shared = body(3, 50);
    plant(&format!("{BUCKET}/shared.txt"), shared.clone()).await;
    plant(&format!("{BUCKET}/inflight"), body(4, 60)).await;
    let ghost = format!(
        "{BUCKET}/ghost/@{:016x}-{}",
        Timestamp::now().as_micros(),
        uuid::Uuid::new_v4().simple()
    );
    plant(&ghost, body(5, 70)).await;
    plant("elsewhere/thing.txt", body(6, 80)).await;
    // A write of `inflight` is under way (its intent is recorded, its bytes elsewhere).
    store
        .insert_pending(&PendingObject {
            intent_id: "flying".into(),
            object_key: format!("{BUCKET}/inflight"),
            backend_name: "a".into(),
            size_bytes: 3,
            form: StoredForm {
                storage_key: format!("{BUCKET}/inflight/@0"),
                ..StoredForm::default()
            },
            created_at: Timestamp::ZERO,
        })
        .await
        .unwrap();
    let small = body(7, 300);
    let medium = body(8, 400);
    std::fs::create_dir_all(local.join(BUCKET).join("sub")).unwrap();
    std::fs::write(local.join(BUCKET).join("a.txt"), &small).unwrap();
    std::fs::write(local.join(BUCKET).join("sub").join("b.bin"), &medium).unwrap();
    std::fs::write(local.join(BUCKET).join("big.bin"), body(9, 2000)).unwrap();
    // The same name on both: whichever is imported first owns the key.
    std::fs::write(local.join(BUCKET).join("shared.txt"), body(10, 50)).unwrap();

    // Dry runs: what would happen, nothing changed.
    let before = ledger_state(&store).await;
    let (p, refused) = import(&cfg, "a", "", true).await;
    assert_eq!(
        (
            p.listed,
            p.imported,
            p.imported_bytes,
            p.s3o_versions,
            p.refused
        ),
        (6, 4, 410, 2, 0),
        "{p:?}"
    );
    assert!(refused.is_empty(), "{refused:?}");
    let (p, _) = import(&cfg, "a", "dir/", true).await;
    assert_eq!((p.listed, p.imported), (1, 1), "{p:?}");
    let (p, refused) = import(&cfg, "l", "", true).await;
    assert_eq!(
        (p.listed, p.imported, p.imported_bytes),
        (4, 3, 750),
        "{p:?}"
    );
    assert_eq!(refused, ["big.bin: no room"]);
    assert_eq!(
        ledger_state(&store).await,
        before,
        "a dry run changes nothing"
    );

    // The imports.
    let used = |q: &BTreeMap<String, s3o_store::QuotaStat>, b: &str| q[b].bytes_used;
    let q0 = store.get_quota_stats().await.unwrap();
    let (p, refused) = import(&cfg, "a", "", false).await;
    assert_eq!(
        (
            p.listed,
            p.imported,
            p.imported_bytes,
            p.already_imported,
            p.s3o_versions,
            p.refused
        ),
        (6, 3, 350, 0, 2, 1),
        "{p:?}"
    );
    assert_eq!(refused, ["inflight: in flight"]);
    let (p, refused) = import(&cfg, "l", "", false).await;
    assert_eq!(
        (p.imported, p.imported_bytes, p.refused),
        (2, 700, 2),
        "{p:?}"
    );
    assert_eq!(refused, ["big.bin: no room", "shared.txt: key exists"]);
    let q1 = store.get_quota_stats().await.unwrap();
    assert_eq!(used(&q1, "a"), used(&q0, "a") + 350, "exact charge on a");
    assert_eq!(used(&q1, "l"), 700, "exact charge on l");
    verify(&store).await;

    // Readable through the gateway, byte for byte, the MD5 as ETag.
    for (key, bytes) in [
        ("cat.jpg", &cat),
        ("dir/dog.png", &dog),
        ("a.txt", &small),
        ("sub/b.bin", &medium),
        ("shared.txt", &shared),
    ] {
        assert_eq!(
            get(&c, key).await.unwrap().as_ref(),
            bytes.as_slice(),
            "{key}"
        );
        let head = c.head(&Path::from(key)).await.unwrap();
        assert_eq!(head.size, bytes.len() as u64, "{key}");
        assert_eq!(
            head.e_tag.as_deref().map(|e| e.trim_matches('"')),
            Some(md5_hex(bytes).as_str()),
            "{key}"
        );
    }
    assert_eq!(
        get(&c, "known").await.unwrap().as_ref(),
        b"written through the gateway"
    );
    assert!(
        get(&c, "inflight").await.is_err(),
        "not adopted while in flight"
    );
    assert!(get(&c, "big.bin").await.is_err(), "refused for room");

    // A second run, through the command line: nothing new.
    let toml = format!(
        "{}\n[[backends]]\nname = \"l\"\nkind = \"local\"\npath = \"{}\"\nquota_bytes = 1000\n",
        config_toml(&url, &fs, "enabled = false\n").replace("[workers]\nenabled = false\n", ""),
        local.display()
    ) + "\n[workers]\nenabled = false\n";
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, toml).unwrap();
    for b in ["a", "l"] {
        let out = Command::new(env!("CARGO_BIN_EXE_s3o-gateway"))
            .args(["import", "--config"])
            .arg(&file)
            .args(["--backend", b, "--bucket", BUCKET])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{b}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("imported 0 objects (0 bytes)"),
            "{b}: {stdout}"
        );
        let known = if b == "a" { 3 } else { 2 };
        assert!(
            stdout.contains(&format!("skipped {known} already imported")),
            "{b}: {stdout}"
        );
    }
    let q2 = store.get_quota_stats().await.unwrap();
    for b in ["a", "l"] {
        assert_eq!(
            (q2[b].bytes_used, q2[b].orphan_bytes),
            (q1[b].bytes_used, q1[b].orphan_bytes),
            "a re-run charges nothing on {b}"
        );
    }

    // Deleted through the gateway while the backend refuses deletes: the bytes stay, owned by
    // the cleanup queue, and are not brought back.
    fs[0].reject_deletes.store(true, Ordering::SeqCst);
    c.delete(&Path::from("cat.jpg")).await.unwrap();
    let (p, refused) = import(&cfg, "a", "cat", false).await;
    assert_eq!((p.listed, p.imported), (1, 0), "{p:?}");
    assert_eq!(refused, ["cat.jpg: queued for cleanup"]);
    assert!(get(&c, "cat.jpg").await.is_err());
    fs[0].reject_deletes.store(false, Ordering::SeqCst);

    // The reconciler leaves imported bytes alone (and removes the unreferenced version).
    let r = gw.run_worker_once(Worker::Reconcile).await;
    assert_eq!(r.count("stray_deleted"), 1, "{r:?}");
    assert!(!fs[0].paths().await.contains(&ghost));
    assert_eq!(
        get(&c, "dir/dog.png").await.unwrap().as_ref(),
        dog.as_slice()
    );
    assert_eq!(
        get(&c, "sub/b.bin").await.unwrap().as_ref(),
        medium.as_slice()
    );
    verify(&store).await;

    gw.shutdown().await;
    if let Some(s) = schema {
        drop_schema(&s).await;
    }
    eprintln!("import drill [{engine:?}]: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adopts_planted_objects_sqlite() {
    drill(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adopts_planted_objects_postgres() {
    drill(Engine::Postgres).await;
}
