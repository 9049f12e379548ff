//! The last pass of each worker, for the admin API: when it ended, how, and what it did.
//! Kept by name so a worker added to [`super::Worker`] is reported without changes here.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::{PassResult, Worker};

/// One worker's last pass as the admin API reports it.
#[derive(Clone, Debug)]
pub(crate) struct LastPass {
    /// When the pass ended.
    pub(crate) ended_at: SystemTime,
    /// How long it took.
    pub(crate) took: Duration,
    /// `empty`, `done`, `not_leader`, `skipped_ledger_unavailable`, `leadership_lost`, `failed`.
    pub(crate) outcome: &'static str,
    /// Item results by label (empty unless the pass ran).
    pub(crate) items: BTreeMap<&'static str, u64>,
    /// Why a failed pass failed.
    pub(crate) error: Option<String>,
    /// Passes since start.
    pub(crate) passes: u64,
}

/// Worker name → its last pass (this process's passes only).
#[derive(Default)]
pub(crate) struct Registry(Mutex<BTreeMap<&'static str, LastPass>>);

impl Registry {
    pub(crate) fn record(&self, w: Worker, r: &PassResult, took: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let passes = map.get(w.name()).map_or(0, |p| p.passes) + 1;
        map.insert(
            w.name(),
            LastPass {
                ended_at: SystemTime::now(),
                took,
                outcome: r.outcome_label(),
                items: match r {
                    PassResult::Ran(m) => m.clone(),
                    _ => BTreeMap::new(),
                },
                error: match r {
                    PassResult::Failed(e) => Some(e.clone()),
                    _ => None,
                },
                passes,
            },
        );
    }

    /// The last pass of the worker named `name`, if it ran since start.
    pub(crate) fn get(&self, name: &str) -> Option<LastPass> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}
