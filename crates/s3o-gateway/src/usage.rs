//! Monthly usage budgets of the backends: every backend call counted in memory, flushed
//! additively to the ledger (`backend_usage`, per calendar month in UTC, `YYYY-MM`), and
//! compared with each backend's `api_request_limit`, `egress_byte_limit` and
//! `ingress_byte_limit` (0 = unlimited).
//!
//! Counting happens in one place: every backend client is wrapped in [`Metered`] when the
//! backends are built, so each request the gateway or a worker makes (GET, PUT, part, list,
//! delete, copy) is counted once, whatever code path issued it. Egress is the byte length of
//! each GET's answer (its range), counted when the answer starts; ingress is the payload of
//! each PUT and part.
//!
//! Effective usage = the ledger's totals when last read (every gateway's flushed counts) +
//! this process's counts flushed since that read + its unflushed counts. A backend whose
//! effective usage has reached a limit is over budget: writes skip it (all over ⇒ 507), reads
//! try another copy (every copy over ⇒ 429 SlowDown), workers defer work that would spend it;
//! deletes and aborts always run (they are counted all the same).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};
use s3o_store::{UsageLimits, UsageStat};

use crate::LedgerHandle;
use crate::config::BackendConfig;

/// The calendar month (UTC) of now, as the ledger keys usage: `YYYY-MM`.
pub(crate) fn current_period() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

fn add(a: &mut UsageStat, b: &UsageStat) {
    a.api_requests = a.api_requests.saturating_add(b.api_requests);
    a.egress_bytes = a.egress_bytes.saturating_add(b.egress_bytes);
    a.ingress_bytes = a.ingress_bytes.saturating_add(b.ingress_bytes);
}

fn is_zero(s: &UsageStat) -> bool {
    s.api_requests == 0 && s.egress_bytes == 0 && s.ingress_bytes == 0
}

#[derive(Default)]
struct MeterState {
    /// The ledger's totals for `baseline.0` when last read.
    baseline: (String, UsageStat),
    /// Counts flushed to the ledger since `baseline` was read (for its period).
    flushed_since: UsageStat,
    /// Counts not flushed yet, by period.
    unflushed: BTreeMap<String, UsageStat>,
}

/// One backend's counters and limits.
pub(crate) struct Meter {
    backend: String,
    limits: UsageLimits,
    state: Mutex<MeterState>,
    /// Requests turned away from this backend because it was over budget.
    rejections: std::sync::atomic::AtomicU64,
}

impl Meter {
    fn new(c: &BackendConfig) -> Meter {
        let lim = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Meter {
            backend: c.name.clone(),
            limits: UsageLimits {
                api_request_limit: lim(c.api_request_limit),
                egress_byte_limit: lim(c.egress_byte_limit),
                ingress_byte_limit: lim(c.ingress_byte_limit),
            },
            state: Mutex::default(),
            rejections: Default::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one call.
    pub(crate) fn count(&self, requests: i64, egress: i64, ingress: i64) {
        let period = current_period();
        let mut s = self.state();
        add(
            s.unflushed.entry(period).or_default(),
            &UsageStat {
                api_requests: requests,
                egress_bytes: egress,
                ingress_bytes: ingress,
            },
        );
    }

    /// This month's effective usage (see the module docs).
    pub(crate) fn effective(&self) -> UsageStat {
        let period = current_period();
        let s = self.state();
        let mut u = UsageStat::default();
        if s.baseline.0 == period {
            add(&mut u, &s.baseline.1);
            add(&mut u, &s.flushed_since);
        }
        if let Some(d) = s.unflushed.get(&period) {
            add(&mut u, d);
        }
        u
    }

    /// True when a limit is reached: the backend takes no more budget-spending work.
    pub(crate) fn over_budget(&self) -> bool {
        !self.limits.admits(&self.effective())
    }

    /// Flushes this backend's unflushed counts, period by period. On an error the counts not
    /// flushed are kept for the next flush (a flush is additive, so nothing is counted twice
    /// and nothing lost).
    async fn flush(&self, store: &LedgerHandle) -> s3o_store::Result<()> {
        let taken = std::mem::take(&mut self.state().unflushed);
        let mut left = taken.into_iter().filter(|(_, d)| !is_zero(d));
        while let Some((period, d)) = left.next() {
            let r = store
                .flush_usage_deltas(
                    &self.backend,
                    &period,
                    d.api_requests,
                    d.egress_bytes,
                    d.ingress_bytes,
                )
                .await;
            let mut s = self.state();
            match r {
                Ok(()) => {
                    if s.baseline.0 == period {
                        add(&mut s.flushed_since, &d);
                    }
                }
                Err(e) => {
                    for (p, d) in std::iter::once((period, d)).chain(left) {
                        add(s.unflushed.entry(p).or_default(), &d);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Every backend's meter.
pub(crate) struct Usage {
    meters: BTreeMap<String, Arc<Meter>>,
    /// One flush at a time (the worker's and the shutdown's).
    flushing: tokio::sync::Mutex<()>,
}

impl Usage {
    pub(crate) fn new(configs: &[BackendConfig]) -> Usage {
        Usage {
            meters: configs
                .iter()
                .map(|c| (c.name.clone(), Arc::new(Meter::new(c))))
                .collect(),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// The meter of `backend` (every configured backend has one).
    pub(crate) fn meter(&self, backend: &str) -> Option<&Arc<Meter>> {
        self.meters.get(backend)
    }

    /// True when `backend` has reached one of its monthly limits.
    pub(crate) fn over_budget(&self, backend: &str) -> bool {
        self.meters.get(backend).is_some_and(|m| m.over_budget())
    }

    /// Records that work was turned away from `backend` for its budget.
    pub(crate) fn rejected(&self, backend: &str) {
        if let Some(m) = self.meters.get(backend) {
            m.rejections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Flushes every backend's counts, then re-reads the month's totals (every gateway's).
    /// Returns the backends flushed with something to flush.
    pub(crate) async fn flush(&self, store: &LedgerHandle) -> s3o_store::Result<u64> {
        let _one = self.flushing.lock().await;
        let mut flushed = 0;
        for m in self.meters.values() {
            let had = m.state().unflushed.values().any(|d| !is_zero(d));
            m.flush(store).await?;
            flushed += u64::from(had);
        }
        self.refresh_locked(store).await?;
        Ok(flushed)
    }

    /// Reads the month's totals from the ledger (at start, so budgets hold across restarts).
    pub(crate) async fn refresh(&self, store: &LedgerHandle) -> s3o_store::Result<()> {
        let _one = self.flushing.lock().await;
        self.refresh_locked(store).await
    }

    async fn refresh_locked(&self, store: &LedgerHandle) -> s3o_store::Result<()> {
        let period = current_period();
        let totals = store.get_usage_for_period(&period).await?;
        for (name, m) in &self.meters {
            let mut s = m.state();
            // Every flush of this process happened before this read (one flush at a time),
            // so the totals include them.
            s.baseline = (
                period.clone(),
                totals.get(name).copied().unwrap_or_default(),
            );
            s.flushed_since = UsageStat::default();
        }
        Ok(())
    }

    /// Renders the per-backend usage series in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let series: [Series; 3] = [
            (
                "s3o_gateway_usage_api_requests",
                "API requests made to the backend this month",
                |u| u.api_requests,
                |l| l.api_request_limit,
            ),
            (
                "s3o_gateway_usage_egress_bytes",
                "Bytes read from the backend this month",
                |u| u.egress_bytes,
                |l| l.egress_byte_limit,
            ),
            (
                "s3o_gateway_usage_ingress_bytes",
                "Bytes written to the backend this month",
                |u| u.ingress_bytes,
                |l| l.ingress_byte_limit,
            ),
        ];
        let usage: Vec<(&String, UsageStat)> = self
            .meters
            .iter()
            .map(|(n, m)| (n, m.effective()))
            .collect();
        for (name, help, get, limit) in series {
            let _ = writeln!(out, "# HELP {name} {help} (flushed + unflushed).");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (b, u) in &usage {
                let _ = writeln!(out, "{name}{{backend=\"{b}\"}} {}", get(u));
            }
            let _ = writeln!(out, "# HELP {name}_limit The monthly limit; 0 = unlimited.");
            let _ = writeln!(out, "# TYPE {name}_limit gauge");
            for (b, m) in &self.meters {
                let _ = writeln!(out, "{name}_limit{{backend=\"{b}\"}} {}", limit(&m.limits));
            }
        }
        out.push_str("# HELP s3o_gateway_usage_over_budget 1 while the backend has reached a monthly limit.\n");
        out.push_str("# TYPE s3o_gateway_usage_over_budget gauge\n");
        for (b, m) in &self.meters {
            let _ = writeln!(
                out,
                "s3o_gateway_usage_over_budget{{backend=\"{b}\"}} {}",
                u8::from(m.over_budget())
            );
        }
        out.push_str("# HELP s3o_gateway_usage_limit_rejections_total Work turned away from a backend over its monthly budget.\n");
        out.push_str("# TYPE s3o_gateway_usage_limit_rejections_total counter\n");
        for (b, m) in &self.meters {
            let _ = writeln!(
                out,
                "s3o_gateway_usage_limit_rejections_total{{backend=\"{b}\"}} {}",
                m.rejections.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
}

/// A usage metric: name, help, its value in a [`UsageStat`], its limit in [`UsageLimits`].
type Series = (
    &'static str,
    &'static str,
    fn(&UsageStat) -> i64,
    fn(&UsageLimits) -> i64,
);

fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A backend client whose every call is counted on its [`Meter`].
#[derive(Debug)]
pub(crate) struct Metered<T: ?Sized> {
    meter: Arc<Meter>,
    inner: Arc<T>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("backend", &self.backend)
            .finish()
    }
}

impl<T: ?Sized> Metered<T> {
    pub(crate) fn new(meter: Arc<Meter>, inner: Arc<T>) -> Self {
        Metered { meter, inner }
    }
}

impl<T: ObjectStore + ?Sized> std::fmt::Display for Metered<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

#[async_trait::async_trait]
impl<T: ObjectStore + ?Sized> ObjectStore for Metered<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.meter
            .count(1, 0, len_i64(payload.content_length() as u64));
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.meter.count(1, 0, 0);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(MeteredUpload {
            meter: self.meter.clone(),
            inner,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let r = self.inner.get_opts(location, options).await;
        let egress = match &r {
            Ok(g) if !head => len_i64(g.range.end.saturating_sub(g.range.start)),
            _ => 0,
        };
        self.meter.count(1, egress, 0);
        r
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await;
        let egress = r
            .as_ref()
            .map_or(0, |v| v.iter().map(|b| b.len() as u64).sum());
        self.meter
            .count(len_i64(ranges.len() as u64), len_i64(egress), 0);
        r
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let meter = self.meter.clone();
        let counted = locations.inspect(move |_| meter.count(1, 0, 0)).boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.meter.count(1, 0, 0);
        let meter = self.meter.clone();
        // One request per page of (at most) 1000 entries.
        let mut seen = 0u64;
        self.inner
            .list(prefix)
            .inspect(move |_| {
                seen += 1;
                if seen.is_multiple_of(1000) {
                    meter.count(1, 0, 0);
                }
            })
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.meter.count(1, 0, 0);
        let meter = self.meter.clone();
        let mut seen = 0u64;
        self.inner
            .list_with_offset(prefix, offset)
            .inspect(move |_| {
                seen += 1;
                if seen.is_multiple_of(1000) {
                    meter.count(1, 0, 0);
                }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.meter.count(1, 0, 0);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.meter.count(1, 0, 0);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        // A copy and a delete on S3.
        self.meter.count(2, 0, 0);
        self.inner.rename_opts(from, to, options).await
    }
}

/// One backend's usage of a month beside its monthly budget (`s3o-gateway usage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendMonthUsage {
    /// The backend.
    pub backend: String,
    /// What every gateway flushed to the ledger for the month.
    pub used: UsageStat,
    /// Its configured limits (0 = unlimited; all 0 for a backend the configuration lacks).
    pub limits: UsageLimits,
    /// A limit is reached: for the current month, writes skip the backend and workers defer.
    pub over_budget: bool,
}

/// The usage of a month: every configured backend in routing order, then any other backend
/// the ledger counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthUsage {
    /// `YYYY-MM` (UTC).
    pub month: String,
    /// Per backend.
    pub backends: Vec<BackendMonthUsage>,
}

/// Reads the month's usage (default: the current one) from the ledger of `config` and sets
/// each backend's budget from the configuration beside it. Counts not flushed yet by running
/// gateways (at most one `usage_flush` interval) are not in the ledger.
pub async fn month_usage(
    config: &crate::Config,
    month: Option<&str>,
) -> Result<MonthUsage, crate::GatewayError> {
    let month = month.map_or_else(current_period, str::to_owned);
    s3o_store::limits::usage_period(&month)
        .map_err(|e| crate::GatewayError::Worker { why: e.to_string() })?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store_err = |source| crate::GatewayError::Store {
        url: config.store.clone(),
        source,
    };
    let store = s3o_store::open(&config.store).await.map_err(store_err)?;
    let totals = store.get_usage_for_period(&month).await;
    store.close().await;
    let mut totals = totals.map_err(store_err)?;
    let mut backends: Vec<BackendMonthUsage> = config
        .backends
        .iter()
        .map(|c| {
            let limits = Meter::new(c).limits;
            let used = totals.remove(&c.name).unwrap_or_default();
            BackendMonthUsage {
                backend: c.name.clone(),
                used,
                limits,
                over_budget: !limits.admits(&used),
            }
        })
        .collect();
    backends.extend(totals.into_iter().map(|(backend, used)| BackendMonthUsage {
        backend,
        used,
        limits: UsageLimits::default(),
        over_budget: false,
    }));
    Ok(MonthUsage { month, backends })
}

/// A streamed upload whose parts are counted.
#[derive(Debug)]
struct MeteredUpload {
    meter: Arc<Meter>,
    inner: Box<dyn MultipartUpload>,
}

#[async_trait::async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.meter
            .count(1, 0, len_i64(data.content_length() as u64));
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.meter.count(1, 0, 0);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.meter.count(1, 0, 0);
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl<T: MultipartStore + ?Sized> MultipartStore for Metered<T> {
    async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
        self.meter.count(1, 0, 0);
        self.inner.create_multipart(path).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        self.meter
            .count(1, 0, len_i64(data.content_length() as u64));
        self.inner.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        self.meter.count(1, 0, 0);
        self.inner.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
        self.meter.count(1, 0, 0);
        self.inner.abort_multipart(path, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(requests: u64) -> Meter {
        let mut c = BackendConfig::local("a", "/tmp/unused", 0);
        c.api_request_limit = requests;
        Meter::new(&c)
    }

    #[test]
    fn effective_usage_is_baseline_plus_local_counts() {
        let m = meter(10);
        m.state().baseline = (
            current_period(),
            UsageStat {
                api_requests: 7,
                ..UsageStat::default()
            },
        );
        m.count(2, 5, 6);
        assert_eq!(
            m.effective(),
            UsageStat {
                api_requests: 9,
                egress_bytes: 5,
                ingress_bytes: 6
            }
        );
        assert!(!m.over_budget());
        m.count(1, 0, 0);
        assert!(m.over_budget());
        // A baseline of another month does not count.
        m.state().baseline.0 = "1999-01".into();
        assert_eq!(m.effective().api_requests, 3);
        assert!(!meter(0).over_budget(), "0 = unlimited");
    }

    #[test]
    fn period_is_year_and_month() {
        let p = current_period();
        assert!(s3o_store::limits::usage_period(&p).is_ok(), "{p}");
    }
}
