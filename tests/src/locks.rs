//! Leader locks: exclusive per id, independent across ids, released on every exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use s3o_store::*;
use tokio::sync::oneshot;

use crate::support::*;

/// Holds `lock` in a background task until the returned sender fires (or is dropped).
async fn hold(
    store: &Db,
    lock: LockId,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<Option<Result<()>>>>,
) {
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let s = store.clone();
    let task = tokio::spawn(async move {
        s.with_advisory_lock(
            lock,
            Box::pin(async move {
                let _ = entered_tx.send(());
                let _ = release_rx.await;
                Ok(())
            }),
        )
        .await
    });
    entered_rx
        .await
        .expect("holder never entered its critical section");
    (release_tx, task)
}

async fn try_lock(store: &Db, lock: LockId) -> (Option<Result<()>>, bool) {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let r = store
        .with_advisory_lock(
            lock,
            Box::pin(async move {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            }),
        )
        .await
        .expect("acquiring a leader lock errored");
    (r, ran.load(Ordering::SeqCst))
}

/// Taken ⇒ the critical section runs and its result comes back; released afterwards.
pub async fn lock_runs_critical_section(store: Db) {
    for _ in 0..2 {
        let (r, ran) = try_lock(&store, LockId::Rebalancer).await;
        assert!(matches!(r, Some(Ok(()))), "{r:?}");
        assert!(ran);
    }
}

/// While held, the same id is refused without waiting and its section never runs.
pub async fn lock_exclusive_per_id(store: Db) {
    let (release, holder) = hold(&store, LockId::CleanupQueue).await;
    for _ in 0..3 {
        let (r, ran) = try_lock(&store, LockId::CleanupQueue).await;
        assert!(r.is_none(), "second holder admitted: {r:?}");
        assert!(!ran, "critical section ran without the lock");
    }
    release.send(()).unwrap();
    let held = holder.await.unwrap().unwrap();
    assert!(matches!(held, Some(Ok(()))), "{held:?}");
    let (r, ran) = try_lock(&store, LockId::CleanupQueue).await;
    assert!(matches!(r, Some(Ok(()))) && ran, "not released: {r:?}");
}

/// Every id can be held at once: locks with different ids are independent.
pub async fn locks_independent_across_ids(store: Db) {
    let mut held = Vec::new();
    for lock in LockId::ALL {
        held.push(hold(&store, lock).await);
    }
    for lock in LockId::ALL {
        let (r, ran) = try_lock(&store, lock).await;
        assert!(r.is_none() && !ran, "{lock} admitted twice");
    }
    for (release, task) in held {
        release.send(()).unwrap();
        assert!(matches!(task.await.unwrap().unwrap(), Some(Ok(()))));
    }
    for lock in LockId::ALL {
        let (r, _) = try_lock(&store, lock).await;
        assert!(matches!(r, Some(Ok(()))), "{lock} not released");
    }
}

/// A failing critical section returns its error inside `Some` and releases the lock.
pub async fn lock_released_after_error(store: Db) {
    let r = store
        .with_advisory_lock(
            LockId::Scrubber,
            Box::pin(async { Err(StoreError::invalid("test", "critical section failed")) }),
        )
        .await
        .unwrap();
    match r {
        Some(Err(StoreError::InvalidInput { why, .. })) => {
            assert_eq!(why, "critical section failed");
        }
        other => panic!("expected Some(Err(InvalidInput)), got {other:?}"),
    }
    let (r, ran) = try_lock(&store, LockId::Scrubber).await;
    assert!(
        matches!(r, Some(Ok(()))) && ran,
        "lock leaked after an error: {r:?}"
    );
}

/// A panicking critical section releases the lock too.
pub async fn lock_released_after_panic(store: Db) {
    let s = store.clone();
    let task = tokio::spawn(async move {
        s.with_advisory_lock(
            LockId::PendingReaper,
            Box::pin(async {
                if LockId::PendingReaper.id() == 1011 {
                    panic!("critical section panicked on purpose (expected panic)");
                }
                Ok(())
            }),
        )
        .await
    });
    assert!(task.await.unwrap_err().is_panic());
    let mut last = None;
    // The release may travel through a connection recycle; give it a few tries.
    for _ in 0..50 {
        let (r, ran) = try_lock(&store, LockId::PendingReaper).await;
        if matches!(r, Some(Ok(()))) && ran {
            return;
        }
        last = Some(r);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("lock leaked after a panic: {last:?}");
}
