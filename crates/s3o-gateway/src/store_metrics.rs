//! The store's own series (`s3o_operation_duration_seconds`, breaker state, queue depths, …),
//! which s3o-store records through the `metrics` facade, collected by a small process-wide
//! recorder and rendered on the gateway's `/metrics` page in the Prometheus text format.
//!
//! The recorder is installed once per process when the first gateway starts. An application
//! that embeds the gateway and installed its own recorder first keeps it: the store's series
//! then go there, and this page shows only the gateway's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

use crate::metrics::LatencyHistogram;

/// A series: metric name and its labels in key order.
type Series = (String, Vec<(String, String)>);

struct CounterCell(AtomicU64);

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        // Counters never go down, even if two absolute values race.
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

/// An `f64` kept as its bits, updated with compare-and-swap.
struct GaugeCell(AtomicU64);

impl GaugeCell {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

struct HistogramCell(Mutex<LatencyHistogram>);

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(value);
    }
}

#[derive(Default)]
struct Registry {
    counters: Mutex<BTreeMap<Series, Arc<CounterCell>>>,
    gauges: Mutex<BTreeMap<Series, Arc<GaugeCell>>>,
    histograms: Mutex<BTreeMap<Series, Arc<HistogramCell>>>,
}

fn series(key: &Key) -> Series {
    let mut labels: Vec<(String, String)> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

fn cell<T>(map: &Mutex<BTreeMap<Series, Arc<T>>>, key: &Key, new: impl FnOnce() -> T) -> Arc<T> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(series(key))
        .or_insert_with(|| Arc::new(new()))
        .clone()
}

struct StoreRecorder(Arc<Registry>);

impl Recorder for StoreRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(cell(&self.0.counters, key, || {
            CounterCell(AtomicU64::new(0))
        }))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(cell(&self.0.gauges, key, || {
            GaugeCell(AtomicU64::new(0f64.to_bits()))
        }))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(cell(&self.0.histograms, key, || {
            HistogramCell(Mutex::new(LatencyHistogram::default()))
        }))
    }
}

static REGISTRY: OnceLock<Option<Arc<Registry>>> = OnceLock::new();

/// Installs the recorder unless the process already has one. True when the store's series are
/// collected here.
pub(crate) fn install() -> bool {
    REGISTRY
        .get_or_init(|| {
            let registry = Arc::new(Registry::default());
            metrics::set_global_recorder(StoreRecorder(registry.clone()))
                .ok()
                .map(|()| registry)
        })
        .is_some()
}

/// True when [`install`] put this recorder in place.
pub(crate) fn installed() -> bool {
    matches!(REGISTRY.get(), Some(Some(_)))
}

fn help(name: &str) -> &'static str {
    match name {
        s3o_store::metrics::OPERATION_DURATION => "Ledger call latency by operation and engine.",
        s3o_store::metrics::OPERATION_ERRORS => {
            "Failed ledger calls by operation, engine and kind."
        }
        s3o_store::metrics::BREAKER_STATE => {
            "Ledger circuit breaker (0 closed, 1 half-open, 2 open)."
        }
        s3o_store::metrics::BREAKER_TRANSITIONS => "Ledger circuit breaker transitions.",
        s3o_store::metrics::CLEANUP_QUEUE_DEPTH => "Live cleanup-queue rows.",
        s3o_store::metrics::CLEANUP_DLQ_DEPTH => "Cleanup dead-letter rows.",
        s3o_store::metrics::STALE_CLAIMS_RECOVERED => {
            "Cleanup rows claimed again after their claim went stale."
        }
        _ => "Recorded by the s3o store.",
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &[(String, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Renders every collected series; nothing when the recorder is not installed.
pub(crate) fn render(out: &mut String) {
    let Some(Some(reg)) = REGISTRY.get() else {
        return;
    };
    let header = |out: &mut String, last: &mut String, name: &str, kind: &str| {
        if last != name {
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", help(name));
            *last = name.to_owned();
        }
    };
    let mut last = String::new();
    for ((name, l), c) in reg
        .counters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        header(out, &mut last, name, "counter");
        let _ = writeln!(
            out,
            "{name}{} {}",
            labels(l, None),
            c.0.load(Ordering::Relaxed)
        );
    }
    for ((name, l), g) in reg.gauges.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        header(out, &mut last, name, "gauge");
        let v = f64::from_bits(g.0.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}{} {v}", labels(l, None));
    }
    for ((name, l), h) in reg
        .histograms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        header(out, &mut last, name, "histogram");
        let h = h.0.lock().unwrap_or_else(|e| e.into_inner());
        h.render(
            out,
            name,
            &|le| labels(l, Some(("le", le))),
            &labels(l, None),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_and_renders_the_store_series() {
        assert!(install(), "the first recorder of this test binary");
        assert!(install(), "installing twice is harmless");
        metrics::counter!("s3o_test_total", "engine" => "sqlite", "kind" => "a\"b").increment(2);
        metrics::counter!("s3o_test_total", "engine" => "sqlite", "kind" => "a\"b").absolute(1);
        metrics::gauge!("s3o_test_depth", "engine" => "sqlite").set(7.0);
        metrics::gauge!("s3o_test_depth", "engine" => "sqlite").decrement(2.0);
        metrics::histogram!("s3o_test_seconds", "operation" => "x").record(0.003);
        metrics::histogram!("s3o_test_seconds", "operation" => "x").record(0.3);
        let mut s = String::new();
        render(&mut s);
        assert!(
            s.contains("s3o_test_total{engine=\"sqlite\",kind=\"a\\\"b\"} 2"),
            "{s}"
        );
        assert!(s.contains("# TYPE s3o_test_depth gauge\n"), "{s}");
        assert!(s.contains("s3o_test_depth{engine=\"sqlite\"} 5"), "{s}");
        assert!(
            s.contains("s3o_test_seconds_bucket{operation=\"x\",le=\"0.005\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("s3o_test_seconds_count{operation=\"x\"} 2"),
            "{s}"
        );
        assert_eq!(s.matches("# TYPE s3o_test_total").count(), 1);
    }
}
