//! Multipart completions in this process: one assembly per upload however often the client
//! retries, and the result of a finished one for a retry that comes after it.
//!
//! A Complete runs in its own task (a client that hangs up does not cancel it); its request,
//! and every retry of the same upload id meanwhile, waits on the same shared result. A finished
//! success is kept for [`KEEP_FOR`] (at most [`MAX_ENTRIES`] uploads), so a retried Complete
//! whose first answer was lost gets the same ETag instead of `NoSuchUpload`. A failure is
//! forgotten at once: the upload is intact, and the retry assembles again.
//!
//! Each completion carries the `x-amz-version-id` its answer announced: the headers go out
//! before the assembly ends, so the version id is chosen first and every retry of the same
//! completion answers the same one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use s3s::{S3Error, S3ErrorCode};

/// How long a finished completion answers retries.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(3600);
/// Completions remembered at most (the oldest finished ones go first).
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// What a successful Complete answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Done {
    /// Ledger key of the object (an upload id only completes its own key).
    pub(crate) ledger_key: String,
    /// The object's ETag.
    pub(crate) etag: String,
    /// The object's stored checksum, answered with the ETag; `None` when it has none (or
    /// the answer is rebuilt from the ledger after a restart).
    pub(crate) checksum: Option<s3o_store::ObjectChecksum>,
    /// The version the Complete created in a versioned bucket (`None` when unversioned or
    /// rebuilt from the ledger).
    pub(crate) version_id: Option<String>,
}

/// A failed Complete, cloneable for every waiter.
#[derive(Clone, Debug)]
pub(crate) struct Failed {
    code: S3ErrorCode,
    message: Option<String>,
    status: Option<hyper::StatusCode>,
}

impl From<&S3Error> for Failed {
    fn from(e: &S3Error) -> Self {
        Failed {
            code: e.code().clone(),
            message: e.message().map(str::to_owned),
            status: e.status_code(),
        }
    }
}

impl From<Failed> for S3Error {
    fn from(f: Failed) -> Self {
        let mut e = match f.message {
            Some(m) => S3Error::with_message(f.code, m),
            None => S3Error::new(f.code),
        };
        if let Some(s) = f.status {
            e.set_status_code(s);
        }
        e
    }
}

/// The shared outcome of one assembly.
pub(crate) type Outcome = Shared<BoxFuture<'static, Result<Done, Failed>>>;

struct Entry {
    outcome: Outcome,
    /// The `x-amz-version-id` the completion announced (`None`: none).
    version_id: Option<String>,
    started: Instant,
}

/// A completion as a request answers it: the shared outcome and the announced version id.
pub(crate) type Running = (Outcome, Option<String>);

/// Completions running or recently finished, by upload id.
#[derive(Clone, Default)]
pub(crate) struct Completions {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Completions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running or finished completion of `upload_id`, if this process has one.
    pub(crate) fn get(&self, upload_id: &str) -> Option<Running> {
        let mut map = self.map();
        let expired = map
            .get(upload_id)
            .is_some_and(|e| e.started.elapsed() > KEEP_FOR && e.outcome.peek().is_some());
        if expired {
            map.remove(upload_id);
            return None;
        }
        map.get(upload_id)
            .map(|e| (e.outcome.clone(), e.version_id.clone()))
    }

    /// Starts `work` as the completion of `upload_id` announcing `version_id` in its own
    /// task, unless one is already there (then that one is returned, with the version id it
    /// announced, and `work` is dropped unstarted). A failure removes the entry when it
    /// resolves, so a retry runs again.
    pub(crate) fn start(
        &self,
        upload_id: &str,
        version_id: Option<String>,
        work: BoxFuture<'static, Result<Done, Failed>>,
    ) -> Running {
        let mut map = self.map();
        if let Some(e) = map.get(upload_id) {
            let finished_long_ago = e.started.elapsed() > KEEP_FOR && e.outcome.peek().is_some();
            if !finished_long_ago {
                return (e.outcome.clone(), e.version_id.clone());
            }
        }
        prune(&mut map);
        let task = tokio::spawn(work);
        let me = self.clone();
        let id = upload_id.to_owned();
        let outcome = async move {
            let r = match task.await {
                Ok(r) => r,
                Err(e) => Err(Failed::from(&S3Error::with_message(
                    S3ErrorCode::InternalError,
                    format!("the completion task failed: {e}"),
                ))),
            };
            if r.is_err() {
                me.map().remove(&id);
            }
            r
        }
        .boxed()
        .shared();
        map.insert(
            upload_id.to_owned(),
            Entry {
                outcome: outcome.clone(),
                version_id: version_id.clone(),
                started: Instant::now(),
            },
        );
        // Drive it even if every waiter goes away: the client may hang up mid-assembly.
        tokio::spawn(outcome.clone().map(|_| ()));
        (outcome, version_id)
    }
}

/// Drops expired finished entries, then the oldest finished ones past [`MAX_ENTRIES`]; a
/// running completion is never dropped.
fn prune(map: &mut HashMap<String, Entry>) {
    map.retain(|_, e| !(e.outcome.peek().is_some() && e.started.elapsed() > KEEP_FOR));
    if map.len() < MAX_ENTRIES {
        return;
    }
    let mut finished: Vec<(Instant, String)> = map
        .iter()
        .filter(|(_, e)| e.outcome.peek().is_some())
        .map(|(k, e)| (e.started, k.clone()))
        .collect();
    finished.sort();
    let excess = map.len() + 1 - MAX_ENTRIES;
    for (_, k) in finished.into_iter().take(excess) {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(etag: &str) -> Done {
        Done {
            ledger_key: "b/k".into(),
            etag: etag.into(),
            checksum: None,
            version_id: None,
        }
    }

    #[tokio::test]
    async fn one_assembly_per_upload_and_the_result_answers_retries() {
        let c = Completions::default();
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let work = |etag: &'static str| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(done(etag))
            }
            .boxed()
        };
        let (a, va) = c.start("u", Some("v1".into()), work("first"));
        let (b, vb) = c.start("u", Some("v2".into()), work("second"));
        assert_eq!(a.await.unwrap().etag, "first");
        assert_eq!(
            b.await.unwrap().etag,
            "first",
            "the second start joins the first"
        );
        assert_eq!(
            (va.as_deref(), vb.as_deref()),
            (Some("v1"), Some("v1")),
            "a joined start answers the version id the first announced"
        );
        let (again, v) = c.get("u").unwrap();
        assert_eq!(again.await.unwrap().etag, "first");
        assert_eq!(v.as_deref(), Some("v1"));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failure_is_forgotten_so_a_retry_runs_again() {
        let c = Completions::default();
        let (failed, _) = c.start(
            "u",
            Some("v1".into()),
            async { Err(Failed::from(&S3Error::new(S3ErrorCode::InvalidPart))) }.boxed(),
        );
        let e: S3Error = failed.await.unwrap_err().into();
        assert_eq!(*e.code(), S3ErrorCode::InvalidPart);
        // The entry is removed when the failure resolves.
        for _ in 0..100 {
            if c.get("u").is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(c.get("u").is_none());
        let (ok, v) = c.start("u", Some("v2".into()), async { Ok(done("again")) }.boxed());
        assert_eq!(ok.await.unwrap().etag, "again");
        assert_eq!(v.as_deref(), Some("v2"), "the retry announces its own id");
    }

    #[tokio::test]
    async fn the_work_finishes_when_every_waiter_hangs_up() {
        let c = Completions::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (outcome, _) = c.start(
            "u",
            None,
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(());
                Ok(done("e"))
            }
            .boxed(),
        );
        drop(outcome);
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the assembly ran to its end")
            .unwrap();
    }
}
