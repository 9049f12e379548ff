//! The `[workers]` section of the configuration: one sub-table per worker, every key optional
//! (sane defaults), unknown keys refused by name like the rest of the file.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written as a number and a unit: `250ms`, `30s`, `5m`, `2h`, `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl Interval {
    /// `secs` seconds.
    pub const fn secs(secs: u64) -> Interval {
        Interval(Duration::from_secs(secs))
    }

    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> Interval {
        Interval(Duration::from_millis(ms))
    }

    /// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
    pub fn parse(s: &str) -> Result<Interval, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("duration {s:?} must be <number><ms|s|m|h|d>, e.g. \"5m\""))?;
        let ms_per = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("duration {s:?}: unit must be ms, s, m, h or d")),
        };
        n.checked_mul(ms_per)
            .map(Interval::millis)
            .ok_or_else(|| format!("duration {s:?} is too large"))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        let s = String::deserialize(d)?;
        Interval::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Settings of every background worker (`[workers]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Start the workers with the gateway (default true). Off, they still run on demand
    /// ([`crate::RunningGateway::run_workers_once`]).
    pub enabled: bool,
    /// The cleanup worker (`[workers.cleanup]`).
    pub cleanup: CleanupSettings,
    /// The pending-intent reaper (`[workers.reaper]`).
    pub reaper: ReaperSettings,
    /// The replicator (`[workers.replicator]`).
    pub replicator: ScanSettings,
    /// The over-replication cleaner (`[workers.over_replication]`).
    pub over_replication: ScanSettings,
    /// The stale multipart sweeper (`[workers.multipart]`).
    pub multipart: MultipartSettings,
    /// The drain command (`[workers.drain]`).
    pub drain: DrainSettings,
    /// The reconciler (`[workers.reconcile]`).
    pub reconcile: ReconcileSettings,
    /// The integrity scrubber (`[workers.scrub]`).
    pub scrub: ScrubSettings,
    /// The rebalancer (`[workers.rebalance]`, off by default).
    pub rebalance: RebalanceSettings,
    /// The notifier (`[workers.notify]`).
    pub notify: NotifySettings,
    /// The lifecycle worker (`[workers.lifecycle]`).
    pub lifecycle: LifecycleSettings,
    /// The usage-counter flush (`[workers.usage_flush]`).
    pub usage_flush: UsageFlushSettings,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            enabled: true,
            cleanup: CleanupSettings::default(),
            reaper: ReaperSettings::default(),
            replicator: ScanSettings::default(),
            over_replication: ScanSettings::default(),
            multipart: MultipartSettings::default(),
            drain: DrainSettings::default(),
            reconcile: ReconcileSettings::default(),
            scrub: ScrubSettings::default(),
            rebalance: RebalanceSettings::default(),
            notify: NotifySettings::default(),
            lifecycle: LifecycleSettings::default(),
            usage_flush: UsageFlushSettings::default(),
        }
    }
}

impl WorkersConfig {
    /// Every worker ticking every `interval`, with every age and backoff at zero: what the
    /// tests and a one-shot repair want (never for serving: in-flight writes look abandoned).
    pub fn immediate(interval: Interval) -> WorkersConfig {
        let zero = Interval::millis(0);
        WorkersConfig {
            enabled: true,
            cleanup: CleanupSettings {
                interval,
                claim_grace: zero,
                backoff_base: zero,
                backoff_max: zero,
                ..CleanupSettings::default()
            },
            reaper: ReaperSettings {
                interval,
                min_age: zero,
                ..ReaperSettings::default()
            },
            replicator: ScanSettings {
                interval,
                ..ScanSettings::default()
            },
            over_replication: ScanSettings {
                interval,
                ..ScanSettings::default()
            },
            multipart: MultipartSettings {
                interval,
                stale_after: Interval::secs(86_400),
            },
            drain: DrainSettings::default(),
            reconcile: ReconcileSettings {
                interval,
                grace: zero,
                ..ReconcileSettings::default()
            },
            scrub: ScrubSettings {
                interval,
                ..ScrubSettings::default()
            },
            rebalance: RebalanceSettings {
                interval,
                ..RebalanceSettings::default()
            },
            notify: NotifySettings {
                interval,
                backoff_base: zero,
                backoff_max: zero,
                ..NotifySettings::default()
            },
            lifecycle: LifecycleSettings {
                interval,
                ..LifecycleSettings::default()
            },
            usage_flush: UsageFlushSettings { interval },
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, n: u32| {
            if n == 0 {
                Err(format!("[workers.{name}] batch_size must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("cleanup", self.cleanup.batch_size)?;
        positive("reaper", self.reaper.batch_size)?;
        positive("replicator", self.replicator.batch_size)?;
        positive("over_replication", self.over_replication.batch_size)?;
        positive("drain", self.drain.batch_size)?;
        positive("reconcile", self.reconcile.batch_size)?;
        positive("scrub", self.scrub.batch_size)?;
        positive("rebalance", self.rebalance.batch_size)?;
        positive("notify", self.notify.batch_size)?;
        positive("lifecycle", self.lifecycle.batch_size)?;
        if self.lifecycle.day.0.is_zero() {
            return Err("[workers.lifecycle] day must be above zero".into());
        }
        if self.notify.backoff_max < self.notify.backoff_base {
            return Err("[workers.notify] backoff_max must be at least backoff_base".into());
        }
        if self.notify.timeout.0.is_zero() {
            return Err("[workers.notify] timeout must be above zero".into());
        }
        if self.rebalance.threshold_percent > 100 {
            return Err("[workers.rebalance] threshold_percent must be 0..=100".into());
        }
        if self.drain.concurrency == 0 {
            return Err("[workers.drain] concurrency must be at least 1".into());
        }
        for (name, i) in [
            ("cleanup", self.cleanup.interval),
            ("reaper", self.reaper.interval),
            ("replicator", self.replicator.interval),
            ("over_replication", self.over_replication.interval),
            ("multipart", self.multipart.interval),
            ("reconcile", self.reconcile.interval),
            ("scrub", self.scrub.interval),
            ("rebalance", self.rebalance.interval),
            ("notify", self.notify.interval),
            ("lifecycle", self.lifecycle.interval),
            ("usage_flush", self.usage_flush.interval),
        ] {
            if i.0.is_zero() {
                return Err(format!("[workers.{name}] interval must be above zero"));
            }
        }
        if self.cleanup.backoff_max < self.cleanup.backoff_base {
            return Err("[workers.cleanup] backoff_max must be at least backoff_base".into());
        }
        Ok(())
    }
}

/// The cleanup worker's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupSettings {
    /// Time between passes (default `1m`).
    pub interval: Interval,
    /// Rows claimed per pass (default 100).
    pub batch_size: u32,
    /// A claim older than this is taken over (its claimant died), default `5m`.
    pub claim_grace: Interval,
    /// Backoff after the first failed delete (default `1m`); doubles per attempt.
    pub backoff_base: Interval,
    /// Longest backoff (default `24h`).
    pub backoff_max: Interval,
}

impl Default for CleanupSettings {
    fn default() -> Self {
        CleanupSettings {
            interval: Interval::secs(60),
            batch_size: 100,
            claim_grace: Interval::secs(300),
            backoff_base: Interval::secs(60),
            backoff_max: Interval::secs(86_400),
        }
    }
}

/// The pending reaper's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReaperSettings {
    /// Time between passes (default `1m`).
    pub interval: Interval,
    /// Intents resolved per pass (default 50).
    pub batch_size: u32,
    /// Intents younger than this belong to writes still in flight (default `5m`).
    pub min_age: Interval,
}

impl Default for ReaperSettings {
    fn default() -> Self {
        ReaperSettings {
            interval: Interval::secs(60),
            batch_size: 50,
            min_age: Interval::secs(300),
        }
    }
}

/// Settings of the workers that scan the ledger key by key (replicator, over-replication).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSettings {
    /// Time between passes (default `5m`).
    pub interval: Interval,
    /// Keys examined per bucket per pass (default 50).
    pub batch_size: u32,
}

impl Default for ScanSettings {
    fn default() -> Self {
        ScanSettings {
            interval: Interval::secs(300),
            batch_size: 50,
        }
    }
}

/// The stale multipart sweeper's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MultipartSettings {
    /// Time between passes (default `1h`).
    pub interval: Interval,
    /// Uploads older than this are aborted (default `24h`).
    pub stale_after: Interval,
}

impl Default for MultipartSettings {
    fn default() -> Self {
        MultipartSettings {
            interval: Interval::secs(3_600),
            stale_after: Interval::secs(86_400),
        }
    }
}

/// The lifecycle worker's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleSettings {
    /// Time between passes (default `1h`).
    pub interval: Interval,
    /// Objects expired plus uploads aborted per pass, across every bucket (default 1000).
    pub batch_size: u32,
    /// The length of one lifecycle day (default `1d`): rules count their `Days` in it. Only
    /// drills and tests shorten it.
    pub day: Interval,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            interval: Interval::secs(3_600),
            batch_size: 1000,
            day: Interval::secs(86_400),
        }
    }
}

/// The usage-counter flush's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UsageFlushSettings {
    /// Time between flushes of the backend usage counters to the ledger (default `30s`).
    pub interval: Interval,
}

impl Default for UsageFlushSettings {
    fn default() -> Self {
        UsageFlushSettings {
            interval: Interval::secs(30),
        }
    }
}

/// The reconciler's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileSettings {
    /// Time between passes (default `1h`).
    pub interval: Interval,
    /// Objects listed per backend per pass, resuming where the last pass stopped (default
    /// 1000).
    pub batch_size: u32,
    /// Bytes and open uploads younger than this (by the backend's clock) are never touched,
    /// whatever the ledger says (default `1h`).
    pub grace: Interval,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            interval: Interval::secs(3_600),
            batch_size: 1000,
            grace: Interval::secs(3_600),
        }
    }
}

/// The integrity scrubber's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubSettings {
    /// Time between passes (default `6h`).
    pub interval: Interval,
    /// Copies read per pass, twice: unhashed ones, then the least recently verified
    /// (default 100).
    pub batch_size: u32,
}

impl Default for ScrubSettings {
    fn default() -> Self {
        ScrubSettings {
            interval: Interval::secs(6 * 3_600),
            batch_size: 100,
        }
    }
}

/// The rebalancer's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RebalanceSettings {
    /// Run it at all (default false: moving bytes costs egress and requests).
    pub enabled: bool,
    /// Time between passes (default `6h`).
    pub interval: Interval,
    /// Copies moved per pass at most (default 100).
    pub batch_size: u32,
    /// Moves start when the most and least utilised backends (with a quota) differ by more
    /// than this many percentage points (default 10).
    pub threshold_percent: u32,
}

impl Default for RebalanceSettings {
    fn default() -> Self {
        RebalanceSettings {
            enabled: false,
            interval: Interval::secs(6 * 3_600),
            batch_size: 100,
            threshold_percent: 10,
        }
    }
}

/// The notifier's settings. Each outbox row names its own endpoint URL.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Time between passes (default `5s`).
    pub interval: Interval,
    /// Rows delivered per pass at most (default 100).
    pub batch_size: u32,
    /// How long one delivery may take (default `10s`).
    pub timeout: Interval,
    /// Backoff after the first failed delivery (default `1s`); doubles per attempt.
    pub backoff_base: Interval,
    /// Longest backoff (default `1h`).
    pub backoff_max: Interval,
    /// HMAC-SHA256 key: each delivery carries `X-Signature-256: sha256=<hex>` of its body.
    pub secret: Option<String>,
}

impl std::fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifySettings")
            .field("interval", &self.interval)
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            interval: Interval::secs(5),
            batch_size: 100,
            timeout: Interval::secs(10),
            backoff_base: Interval::secs(1),
            backoff_max: Interval::secs(3_600),
            secret: None,
        }
    }
}

/// The drain command's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DrainSettings {
    /// Objects read from the ledger per step (default 100).
    pub batch_size: u32,
    /// Objects copied at once (default 4).
    pub concurrency: u32,
}

impl Default for DrainSettings {
    fn default() -> Self {
        DrainSettings {
            batch_size: 100,
            concurrency: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units() {
        assert_eq!(Interval::parse("250ms").unwrap(), Interval::millis(250));
        assert_eq!(Interval::parse("5m").unwrap(), Interval::secs(300));
        assert_eq!(Interval::parse("1d").unwrap(), Interval::secs(86_400));
        assert!(Interval::parse("5").unwrap_err().contains("unit"));
        assert!(Interval::parse("m").is_err());
        assert!(Interval::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn section_defaults_and_unknown_keys() {
        let w: WorkersConfig = toml::from_str("").unwrap();
        assert_eq!(w, WorkersConfig::default());
        let w: WorkersConfig =
            toml::from_str("[cleanup]\ninterval = \"10s\"\nbatch_size = 7\n").unwrap();
        assert_eq!(w.cleanup.interval, Interval::secs(10));
        assert_eq!(w.cleanup.batch_size, 7);
        assert_eq!(w.cleanup.claim_grace, Interval::secs(300));
        let e = toml::from_str::<WorkersConfig>("[reaper]\nmin_agee = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_agee"), "{e}");
        let bad = WorkersConfig {
            drain: DrainSettings {
                batch_size: 0,
                concurrency: 1,
            },
            ..WorkersConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("drain"));
    }
}
