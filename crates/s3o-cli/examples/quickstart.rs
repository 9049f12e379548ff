//! A guided tour of the s3o ledger on an embedded SQLite database in a temp directory.
//!
//! Run with `cargo run --example quickstart`. Each step does one thing an S3 orchestrator does
//! and prints the ledger (where every copy lives) and the quota table afterwards.

use std::time::Duration;

use s3o_store::{MetadataStore, MoveOutcome, PendingObject, StoredForm, Timestamp};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("s3o-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("ledger.db").display());

    // 1. Open and migrate. Any engine URL works here: postgres://… opens PostgreSQL.
    let store = s3o_store::open_and_migrate(&url).await?;
    println!("opened {url} (engine: {})", store.engine());

    // 2. Two backends: a 10 MiB free tier and an unlimited home MinIO (limit 0).
    store
        .sync_quota_limits(&[("free-tier".into(), 10 << 20), ("home-minio".into(), 0)])
        .await?;
    show(&store, "registered two backends").await?;

    // 3. Record two objects, as a PUT does after the bytes landed on a backend.
    let plain = StoredForm::default();
    store
        .record_object("photos/cat.jpg", "free-tier", 3 << 20, &plain)
        .await?;
    store
        .record_object("docs/report.pdf", "home-minio", 250_000, &plain)
        .await?;
    show(&store, "recorded photos/cat.jpg and docs/report.pdf").await?;

    // 4. Overwrite the cat on the other backend: the old copy is displaced and owed a delete.
    let displaced = store
        .record_object("photos/cat.jpg", "home-minio", 4 << 20, &plain)
        .await?;
    show(&store, "overwrote photos/cat.jpg on home-minio").await?;
    println!("   displaced copies to delete physically: {displaced:?}");

    // 5. Replicate the report to the free tier; the size comes from the source row. The last
    //    argument is the path of the version the bytes were copied from (here the key: a
    //    plain form has no storage key); had the key been overwritten, nothing would change.
    let replica = store
        .record_replica(
            "docs/report.pdf",
            "free-tier",
            "home-minio",
            "docs/report.pdf",
        )
        .await?;
    show(&store, &format!("replicated docs/report.pdf: {replica:?}")).await?;

    // 6. Move the cat's only copy to the free tier (the quota guard admits it). The source's
    //    bytes come back with a cleanup claim: delete them, then complete the claim.
    let moved = store
        .move_object_location(
            "photos/cat.jpg",
            "home-minio",
            "free-tier",
            "photos/cat.jpg",
        )
        .await?;
    if let MoveOutcome::Moved { bytes, source } = &moved {
        show(
            &store,
            &format!("moved photos/cat.jpg to free-tier ({bytes} bytes)"),
        )
        .await?;
        // (A real caller deletes source.storage_key on source.backend_name first.)
        store.complete_cleanup_item(&source.cleanup).await?;
    } else {
        println!("\n== the move changed nothing: {moved:?}");
    }

    // 7. A quota the free tier cannot hold is refused, and nothing changes.
    let refused = store
        .record_object("video/big.mp4", "free-tier", 20 << 20, &plain)
        .await;
    println!("\n== a 20 MiB PUT to the 10 MiB free tier: {refused:?}");

    // 8. Delete the report: both copies come back for physical deletion.
    let deleted = store.delete_object("docs/report.pdf").await?;
    show(&store, "deleted docs/report.pdf").await?;
    println!("   copies to delete physically: {deleted:?}");

    // 9. The physical delete on home-minio failed: queue it and count its orphan bytes.
    let orphan = &deleted[0];
    store
        .enqueue_cleanup(
            &orphan.backend_name,
            "docs/report.pdf",
            "delete",
            orphan.size_bytes,
        )
        .await?;
    store
        .increment_orphan_bytes(&orphan.backend_name, orphan.size_bytes)
        .await?;
    let claimed = store
        .claim_pending_cleanups(10, "quickstart-worker", Duration::from_secs(300))
        .await?;
    println!(
        "\n== a cleanup worker claimed {} row(s): {:?}",
        claimed.len(),
        claimed.iter().map(|c| c.id).collect::<Vec<_>>()
    );

    // 10. The retry budget is spent: the row graduates to the dead-letter table. The bytes are
    // still on the backend, so orphan_bytes stays until an operator decides.
    for item in &claimed {
        store
            .move_cleanup_to_dlq(item.id, "403 Forbidden from backend")
            .await?;
    }
    let dlq = store.list_cleanup_dlq(None, 10).await?;
    println!(
        "   dead letters: {:?}",
        dlq.iter()
            .map(|d| (&d.object_key, &d.backend_name, d.size_bytes))
            .collect::<Vec<_>>()
    );
    show(&store, "moved the exhausted cleanup to the DLQ").await?;

    // 11. A PUT whose metadata commit failed left an intent; the reaper finds the bytes on the
    // backend and promotes it.
    store
        .insert_pending(&PendingObject {
            intent_id: "0d6c1f0e-intent".into(),
            object_key: "notes/todo.txt".into(),
            backend_name: "home-minio".into(),
            size_bytes: 1200,
            form: plain.clone(),
            created_at: Timestamp::ZERO,
        })
        .await?;
    let stale = store.get_stale_pending(Duration::ZERO, 10).await?;
    for intent in &stale {
        let (result, displaced) = store.promote_pending(intent).await?;
        println!(
            "\n== promoted intent {}: {result:?}, displaced {displaced:?}",
            intent.intent_id
        );
    }
    show(&store, "after the pending reaper").await?;

    store.close().await;
    std::fs::remove_dir_all(&dir)?;
    println!("\ndone; the ledger above is what `s3o status` and `s3o verify` read.");
    Ok(())
}

async fn show(store: &MetadataStore, step: &str) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== {step}");
    let page = store.list_objects("", "", 1000).await?;
    println!("   {:<20} {:<12} {:>10}", "KEY", "BACKEND", "BYTES");
    for obj in &page.objects {
        for copy in store.get_all_object_locations(&obj.object_key).await? {
            println!(
                "   {:<20} {:<12} {:>10}",
                copy.object_key, copy.backend_name, copy.size_bytes
            );
        }
    }
    println!(
        "   {:<12} {:>10} {:>10} {:>10}",
        "BACKEND", "LIMIT", "USED", "ORPHAN"
    );
    for q in store.get_quota_stats().await?.values() {
        let limit = if q.bytes_limit == 0 {
            "unlimited".to_string()
        } else {
            q.bytes_limit.to_string()
        };
        println!(
            "   {:<12} {:>10} {:>10} {:>10}",
            q.backend_name, limit, q.bytes_used, q.orphan_bytes
        );
    }
    Ok(())
}
