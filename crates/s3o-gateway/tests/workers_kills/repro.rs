//! Exact reproductions of what the kill drills found, one step at a time.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload as _, ObjectStoreExt as _, PutPayload};
use s3o_gateway::{Config, Gateway, Worker};

use super::{CHUNK, Engine, check_workers, content, ledger_url, serve};
use crate::support::*;

/// A queued delete names a backend and a path; every copy of a version has the same path on
/// each backend. A copy trimmed from b whose delete failed stays queued; the replicator then
/// records a new copy of the same version on b, at that path; the queued delete runs and
/// removes the new copy's bytes. The ledger records a copy on b that is gone, and the key
/// cannot be read once a is down. (In the drain kill drill the queued path is a drained
/// source and the later copy the replicator's.)
pub(crate) async fn queued_delete_spares_a_later_copy(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "queued delete") else {
        return;
    };
    let fs = vec![
        Fs::start("a", &dir.path().join("a")).await,
        Fs::start("b", &dir.path().join("b")).await,
    ];
    let data = content(7, 300);
    // Factor 2: the object on a (pack), its replica on b.
    let gw = Gateway::start(config(&url, &fs, 2)).await.unwrap();
    let store = gw.store().clone();
    put(&gw_client(&gw.endpoint()), "k", &data).await.unwrap();
    let r = gw.run_worker_once(Worker::Replicator).await;
    assert_eq!(r.count("replicated"), 1, "{r:?}");
    gw.shutdown().await;
    // Factor 1 while b refuses deletes: the trimmed copy's delete stays queued.
    fs[1].reject_deletes.store(true, Ordering::SeqCst);
    let gw = Gateway::start(config(&url, &fs, 1)).await.unwrap();
    let r = gw.run_worker_once(Worker::OverReplication).await;
    assert_eq!(r.count("trimmed"), 1, "{r:?}");
    assert_eq!(gw.store().cleanup_queue_depth().await.unwrap(), 1);
    gw.shutdown().await;
    // Factor 2 again: today a new replica on b, at the queued path.
    let gw = Gateway::start(config(&url, &fs, 2)).await.unwrap();
    let store2 = gw.store().clone();
    let r = gw.run_worker_once(Worker::Replicator).await;
    eprintln!("replicator while the delete is queued: {r:?}");
    // b accepts deletes again; the cleanup worker runs the queued row; the replicator
    // restores the factor if it has to.
    fs[1].reject_deletes.store(false, Ordering::SeqCst);
    gw.run_worker_once(Worker::Cleanup).await;
    assert_eq!(store2.cleanup_queue_depth().await.unwrap(), 0);
    gw.run_worker_once(Worker::Replicator).await;
    let h = holders(&store2, &["k".to_owned()]).await;
    assert_eq!(h["k"], ["a", "b"], "k has its two copies");
    let recorded = ledger_paths(&store2, "b").await;
    assert_eq!(
        fs[1].paths().await,
        recorded,
        "b: the replica the ledger records was deleted by the older queued delete of its path"
    );
    fs[0].stop();
    let c = gw_client(&gw.endpoint());
    assert_eq!(
        get(&c, "k").await.unwrap(),
        data,
        "k read from b with a down"
    );
    verify(&store2).await;
    gw.shutdown().await;
    drop(store);
    if let Some(schema) = schema {
        drop_schema(&schema).await;
    }
}

/// Complete commits the object, releases the upload in the ledger (its parts' bytes queued for
/// cleanup in the same transaction) and then deletes the part bytes. A gateway killed in
/// between (held there: the backend refuses the deletes and its listing hangs) leaves the
/// parts under `.mpu/<upload id>/` with no upload row: each must have its cleanup row then,
/// and be gone once the workers ran (the multipart sweeper starts from upload rows and would
/// never find them).
pub(crate) async fn complete_killed_after_release_leaks_no_parts(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "killed complete") else {
        return;
    };
    let fs = vec![Fs::start("a", &dir.path().join("a")).await];
    let cfg_path = dir.path().join("gateway.toml");
    std::fs::write(&cfg_path, config_toml(&url, &fs, "enabled = false\n")).unwrap();
    let (mut child, endpoint) = serve(&cfg_path, &dir.path().join("serve.log")).await;
    let data = Bytes::from(content(9, CHUNK + 1000));
    let mut up = gw_client(&endpoint)
        .put_multipart(&Path::from("k"))
        .await
        .unwrap();
    for part in [data.slice(..CHUNK), data.slice(CHUNK..)] {
        up.put_part(PutPayload::from(part)).await.unwrap();
    }
    fs[0].hang_lists.store(true, Ordering::SeqCst);
    // The release's own deletes of the recorded parts fail too: the kill finds them queued.
    fs[0].reject_deletes.store(true, Ordering::SeqCst);
    let complete = tokio::spawn(async move { up.complete().await });
    // Committed, then the upload released in the ledger while the gateway's deletes of the
    // parts are refused and its listing hangs: killed there. Complete cannot get past that
    // point, so a release that never comes is a failure, not a reason to kill earlier.
    let store = s3o_store::open(&url).await.unwrap();
    let ledger_key = format!("{BUCKET}/k");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let released = store
            .get_stale_multipart_uploads(Duration::ZERO)
            .await
            .unwrap()
            .is_empty();
        let committed = store
            .get_object_backends_for_keys(std::slice::from_ref(&ledger_key))
            .await
            .unwrap()
            .contains_key(&ledger_key);
        if committed && released {
            break;
        }
        assert!(
            Instant::now() < until,
            "the Complete did not commit and release the upload (committed: {committed})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    fs[0].hang_lists.store(false, Ordering::SeqCst);
    fs[0].reject_deletes.store(false, Ordering::SeqCst);
    assert!(
        complete.await.unwrap().is_err(),
        "the Complete died with its gateway"
    );
    let parts = fs[0].part_paths().await;
    // The release queued every part's bytes for cleanup in its transaction: before any
    // worker runs, each part left on the backend has its queue row.
    let owed = super::owed_paths(&store, &fs[0].name).await;
    assert!(!parts.is_empty(), "the parts were deleted before the kill");
    let unowed: Vec<_> = parts.iter().filter(|p| !owed.contains(*p)).collect();
    assert!(
        unowed.is_empty(),
        "part bytes of the released upload with no cleanup row: {unowed:?} (queued {owed:?})"
    );
    // A gateway restarted on the ledger, every worker once, every upload stale.
    let mut cfg = Config::load(&cfg_path).unwrap();
    cfg.workers = check_workers();
    let gw = Gateway::start(cfg).await.unwrap();
    gw.run_workers_once().await;
    let c = gw_client(&gw.endpoint());
    assert_eq!(get(&c, "k").await.unwrap(), data);
    assert_eq!(
        fs[0].part_paths().await,
        Default::default(),
        "part bytes of a released upload are left for good (were {parts:?})"
    );
    verify(gw.store()).await;
    gw.shutdown().await;
    store.close().await;
    if let Some(schema) = schema {
        drop_schema(&schema).await;
    }
}

/// A drain copies a key off backend b to t; before it records the move, a client overwrites
/// the key and the new version lands on t (writes are not fenced off a drain's target, and
/// b is full). The drain's move is refused; it takes the new copy on t for an in-place
/// overwrite of its source, fails to copy that version from b (it never was there) and moves
/// the ledger row back to b. The ledger now names b for bytes that are on t, and the move
/// queued t's bytes for deletion: the acknowledged overwrite is unreadable at once and gone
/// after the next cleanup pass.
pub(crate) async fn drain_racing_a_put_to_its_target_keeps_it(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, schema)) = ledger_url(engine, dir.path(), "drain racing a put") else {
        return;
    };
    let fs = vec![
        Fs::start("b", &dir.path().join("b")).await,
        Fs::start("t", &dir.path().join("t")).await,
    ];
    // Pack routing; b holds the first version and has no room for a second.
    let mut cfg = config(&url, &fs, 1);
    cfg.backends[0].quota_bytes = 400;
    let gw = Gateway::start(cfg.clone()).await.unwrap();
    let store = gw.store().clone();
    let c = gw_client(&gw.endpoint());
    put(&c, "k", &content(1, 300)).await.unwrap();
    let first = ledger_paths(&store, "b").await;
    assert_eq!(first.len(), 1, "setup: the first version is on b");
    // The drain's copy to t waits, after the drain chose t and read the source (matched on
    // the version id: the request path escapes the `@`).
    let version = first
        .first()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    *fs[1].hold_puts.lock().unwrap() = Some(version);
    let drain = tokio::spawn({
        let cfg = cfg.clone();
        async move { s3o_gateway::drain(&cfg, "b", &mut |_| {}).await }
    });
    let until = Instant::now() + Duration::from_secs(30);
    while fs[1].held.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < until, "the drain never copied to t");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = content(2, 300);
    put(&c, "k", &second).await.unwrap();
    assert_eq!(
        holders(&store, &["k".to_owned()]).await["k"],
        ["t"],
        "setup: the overwrite is on t"
    );
    *fs[1].hold_puts.lock().unwrap() = None;
    let drained = drain.await.unwrap();
    eprintln!("drain: {drained:?}");
    for when in ["after the drain", "after the cleanup worker"] {
        let got = get(&c, "k").await;
        assert!(
            matches!(&got, Ok(b) if b[..] == second[..]),
            "the acknowledged overwrite is not readable {when}: {:?} (holders {:?})",
            got.map(|b| b.len()),
            holders(&store, &["k".to_owned()]).await
        );
        gw.run_worker_once(Worker::Cleanup).await;
    }
    nothing_forgotten(&store, &fs).await;
    verify(&store).await;
    gw.shutdown().await;
    if let Some(schema) = schema {
        drop_schema(&schema).await;
    }
}
