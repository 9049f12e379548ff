//! Jobs: long admin operations run as tasks of this process, polled by id. Held in memory
//! (a restart forgets them; every job kind is resumable by starting it again), the newest
//! [`KEEP`] only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::task::AbortHandle;

/// Finished jobs kept for polling.
const KEEP: usize = 100;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }
}

struct Job {
    seq: u64,
    kind: &'static str,
    target: String,
    state: State,
    started_at: SystemTime,
    ended_at: Option<SystemTime>,
    progress: Value,
    result: Value,
    error: Option<String>,
    abort: Option<AbortHandle>,
}

impl Job {
    fn view(&self, id: &str) -> Value {
        json!({
            "id": id,
            "kind": self.kind,
            "target": self.target,
            "state": self.state.name(),
            "started_at": super::unix_secs(self.started_at),
            "ended_at": self.ended_at.map(super::unix_secs),
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
        })
    }
}

/// Every job of this process, by id.
#[derive(Clone, Default)]
pub(crate) struct Jobs(Arc<Mutex<(u64, BTreeMap<String, Job>)>>);

/// A running job's handle for its task: progress and the end.
#[derive(Clone)]
pub(crate) struct Handle {
    jobs: Jobs,
    pub(crate) id: String,
}

impl Handle {
    pub(crate) fn progress(&self, v: Value) {
        if let Some(j) = self.jobs.lock().1.get_mut(&self.id) {
            j.progress = v;
        }
    }

    pub(crate) fn finish(&self, outcome: Result<Value, String>) {
        if let Some(j) = self.jobs.lock().1.get_mut(&self.id)
            && j.state == State::Running
        {
            j.ended_at = Some(SystemTime::now());
            j.abort = None;
            match outcome {
                Ok(v) => {
                    j.state = State::Done;
                    j.result = v;
                }
                Err(e) => {
                    j.state = State::Failed;
                    j.error = Some(e);
                }
            }
        }
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<String, Job>)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a job and spawns `work(handle)`; returns the job's view.
    pub(crate) fn start<F, Fut>(&self, kind: &'static str, target: &str, work: F) -> Value
    where
        F: FnOnce(Handle) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let handle = Handle {
            jobs: self.clone(),
            id: id.clone(),
        };
        {
            let mut g = self.lock();
            g.0 += 1;
            let seq = g.0;
            g.1.insert(
                id.clone(),
                Job {
                    seq,
                    kind,
                    target: target.to_owned(),
                    state: State::Running,
                    started_at: SystemTime::now(),
                    ended_at: None,
                    progress: Value::Null,
                    result: Value::Null,
                    error: None,
                    abort: None,
                },
            );
            // Forget the oldest finished jobs past the cap.
            let mut done: Vec<(u64, String)> =
                g.1.iter()
                    .filter(|(_, j)| j.state != State::Running)
                    .map(|(k, j)| (j.seq, k.clone()))
                    .collect();
            done.sort();
            let excess = g.1.len().saturating_sub(KEEP);
            for (_, k) in done.into_iter().take(excess) {
                g.1.remove(&k);
            }
        }
        let task = tokio::spawn(work(handle));
        let mut g = self.lock();
        if let Some(j) = g.1.get_mut(&id)
            && j.state == State::Running
        {
            j.abort = Some(task.abort_handle());
        }
        g.1.get(&id).map(|j| j.view(&id)).unwrap_or(Value::Null)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Value> {
        self.lock().1.get(id).map(|j| j.view(id))
    }

    /// Every job, newest first.
    pub(crate) fn list(&self) -> Vec<Value> {
        let g = self.lock();
        let mut v: Vec<(u64, Value)> = g.1.iter().map(|(k, j)| (j.seq, j.view(k))).collect();
        v.sort_by_key(|j| std::cmp::Reverse(j.0));
        v.into_iter().map(|(_, j)| j).collect()
    }

    /// Cancels a running job (its task is dropped at its next await: every job kind
    /// survives that like a crash and resumes when started again). `None`: unknown id;
    /// `Some(false)`: it had ended already.
    pub(crate) fn cancel(&self, id: &str) -> Option<(bool, Value)> {
        let mut g = self.lock();
        let j = g.1.get_mut(id)?;
        if j.state != State::Running {
            return Some((false, j.view(id)));
        }
        if let Some(a) = j.abort.take() {
            a.abort();
        }
        j.state = State::Cancelled;
        j.ended_at = Some(SystemTime::now());
        Some((true, j.view(id)))
    }

    /// True when a job of `kind` on `target` is running.
    pub(crate) fn running(&self, kind: &str, target: &str) -> Option<String> {
        self.lock()
            .1
            .iter()
            .find(|(_, j)| j.kind == kind && j.target == target && j.state == State::Running)
            .map(|(k, _)| k.clone())
    }
}
