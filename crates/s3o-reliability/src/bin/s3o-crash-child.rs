//! The child process of the crash drills (`tests/crash.rs`): runs PUT and DELETE workflows
//! against one store until it is killed, announcing each step on stdout.
//!
//! `s3o-crash-child URL INSTANCE_ID SEED`. Prints `ready`, then per workflow `begin KEY` before
//! its first write and `ack put KEY BACKEND SIZE` / `ack del KEY` once its ledger write has
//! committed (the acknowledgement a client would get). The PUT path: intent → (upload) →
//! record-and-clear → immediate delete of each displaced copy → complete its cleanup row.
//! Any error ends the process with exit code 3 (the parent decides whether that was expected).

use std::io::Write;

use s3o_core::{MetadataStore, PendingObject, StoreError, StoredForm, Timestamp};

const BACKENDS: [&str; 2] = ["b0", "b1"];

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A write error means the parent is gone: nothing left to report to.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn open(url: &str, instance: &str) -> s3o_core::Result<MetadataStore> {
    if url.starts_with("sqlite") {
        let opts = s3o_sqlite::SqliteOptions {
            instance_id: Some(instance.to_owned()),
            ..Default::default()
        };
        s3o_sqlite::open_with(url, opts).await
    } else {
        let opts = s3o_pg::PgOptions {
            instance_id: Some(instance.to_owned()),
            max_size: 2,
            ..Default::default()
        };
        s3o_pg::open_with(url, opts).await
    }
}

async fn run(url: &str, instance: &str, seed: u64) -> s3o_core::Result<()> {
    let store = open(url, instance).await?;
    let mut rng = fastrand::Rng::with_seed(seed);
    say("ready");
    let mut i: u64 = 0;
    loop {
        i += 1;
        let key = format!("k{}", rng.u32(0..12));
        say(&format!("begin {key}"));
        if rng.u8(0..10) < 7 {
            let backend = BACKENDS[rng.usize(..BACKENDS.len())];
            let size = rng.i64(1..1000);
            // Each write lands at its own path, so an overwrite on the same backend displaces
            // the old bytes too.
            let form = StoredForm {
                storage_key: format!("{key}/{instance}/{i}"),
                ..StoredForm::default()
            };
            let intent = PendingObject {
                intent_id: format!("{instance}-{i}"),
                object_key: key.clone(),
                backend_name: backend.to_owned(),
                size_bytes: size,
                form: form.clone(),
                created_at: Timestamp::ZERO,
            };
            store.insert_pending(&intent).await?;
            // (The upload of the bytes to the backend happens here.)
            let displaced = store
                .record_object_and_clear_pending(&key, backend, size, &form, &intent.intent_id)
                .await?;
            say(&format!("ack put {key} {backend} {size}"));
            for d in displaced {
                // (The immediate delete of d.storage_key on d.backend_name happens here.)
                store.complete_cleanup_item(&d.cleanup).await?;
            }
        } else {
            match store.delete_object(&key).await {
                Ok(gone) => {
                    say(&format!("ack del {key}"));
                    for d in gone {
                        store.complete_cleanup_item(&d.cleanup).await?;
                    }
                }
                Err(StoreError::ObjectNotFound { .. }) => say(&format!("ack del {key}")),
                Err(e) => return Err(e),
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, instance, seed] = &args[..] else {
        eprintln!("usage: s3o-crash-child URL INSTANCE_ID SEED");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run(url, instance, seed)) {
        eprintln!("crash child {instance}: {e}");
        std::process::exit(3);
    }
}
