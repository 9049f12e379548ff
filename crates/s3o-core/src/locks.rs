//! Leader-lock ids held by background services. The numbers are part of the wire contract
//! between instances sharing one database and never change.

use std::fmt;

/// A leader lock: at most one instance (and, on SQLite, one task) holds each id at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i64)]
pub enum LockId {
    /// The periodic rebalancer.
    Rebalancer = 1001,
    /// The background replicator.
    Replicator = 1002,
    /// The cleanup-queue retry worker.
    CleanupQueue = 1003,
    /// The stale-multipart sweeper.
    MultipartCleanup = 1004,
    /// The lifecycle expiration worker.
    Lifecycle = 1005,
    /// An in-progress backend drain.
    Drain = 1006,
    /// The usage-counter flush worker.
    UsageFlush = 1007,
    /// The excess-replica cleaner.
    OverReplication = 1008,
    /// The reconciler.
    Reconcile = 1009,
    /// The integrity scrubber.
    Scrubber = 1010,
    /// The pending-intent reaper.
    PendingReaper = 1011,
}

impl LockId {
    /// Every lock id, in numeric order.
    pub const ALL: [LockId; 11] = [
        LockId::Rebalancer,
        LockId::Replicator,
        LockId::CleanupQueue,
        LockId::MultipartCleanup,
        LockId::Lifecycle,
        LockId::Drain,
        LockId::UsageFlush,
        LockId::OverReplication,
        LockId::Reconcile,
        LockId::Scrubber,
        LockId::PendingReaper,
    ];

    /// The stable numeric id.
    pub const fn id(self) -> i64 {
        self as i64
    }

    /// The lock for a numeric id, if it is one of ours.
    pub fn from_id(id: i64) -> Option<LockId> {
        LockId::ALL.into_iter().find(|l| l.id() == id)
    }

    /// Short name of the holder, for logs.
    pub const fn holder(self) -> &'static str {
        match self {
            LockId::Rebalancer => "rebalancer",
            LockId::Replicator => "replicator",
            LockId::CleanupQueue => "cleanup-queue",
            LockId::MultipartCleanup => "multipart-cleanup",
            LockId::Lifecycle => "lifecycle",
            LockId::Drain => "drain",
            LockId::UsageFlush => "usage-flush",
            LockId::OverReplication => "over-replication",
            LockId::Reconcile => "reconcile",
            LockId::Scrubber => "scrubber",
            LockId::PendingReaper => "pending-reaper",
        }
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.holder(), self.id())
    }
}

/// Advisory-lock id under which PostgreSQL migrations run. Outside 1001..=1011 on purpose.
pub const MIGRATION_LOCK_ID: i64 = 0x7333_6f00_0000_0001;

/// Class id of the two-int advisory-lock form used for per-key transaction locks on
/// PostgreSQL (`pg_advisory_xact_lock(KEY_LOCK_CLASS, hashtext(key))`), so key locks can never
/// collide with the single-bigint leader locks.
pub const KEY_LOCK_CLASS: i32 = 0x7333_6f4b; // "s3oK"

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_seed_numbers() {
        let ids: Vec<i64> = LockId::ALL.iter().map(|l| l.id()).collect();
        assert_eq!(ids, (1001..=1011).collect::<Vec<_>>());
        assert_eq!(LockId::Rebalancer.id(), 1001);
        assert_eq!(LockId::PendingReaper.id(), 1011);
        assert_eq!(LockId::from_id(1007), Some(LockId::UsageFlush));
        assert_eq!(LockId::from_id(1012), None);
        assert!(!(1001..=1012).contains(&MIGRATION_LOCK_ID));
    }
}
