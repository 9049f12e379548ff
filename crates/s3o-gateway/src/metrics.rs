//! Request counters and latency histograms, rendered in the Prometheus text format by hand
//! (a few maps behind a mutex; no metrics crate needed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram with cumulative buckets (upper bounds [`BUCKETS`], in seconds).
#[derive(Default)]
pub(crate) struct LatencyHistogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl LatencyHistogram {
    /// Adds one observation, in seconds.
    pub(crate) fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name`; `bucket_labels(le)` and
    /// `labels` are the rendered label sets (with and without `le`).
    pub(crate) fn render(
        &self,
        out: &mut String,
        name: &str,
        bucket_labels: &dyn Fn(&str) -> String,
        labels: &str,
    ) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                bucket_labels(&b.to_string()),
                self.counts[i]
            );
        }
        let _ = writeln!(out, "{name}_bucket{} {}", bucket_labels("+Inf"), self.count);
        let _ = writeln!(out, "{name}_sum{labels} {}", self.sum);
        let _ = writeln!(out, "{name}_count{labels} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    /// (operation, status) → requests.
    requests: BTreeMap<(&'static str, u16), u64>,
    /// operation → latency.
    latency: BTreeMap<&'static str, LatencyHistogram>,
    /// Named event counters (broadcast reads, cleanup enqueues, ...).
    events: BTreeMap<&'static str, u64>,
}

/// The gateway's own metrics.
#[derive(Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Counts one finished request of `op` with HTTP `status` that took `elapsed`.
    pub(crate) fn record(&self, op: &'static str, status: u16, elapsed: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((op, status)).or_default() += 1;
        m.latency
            .entry(op)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one occurrence of a named event.
    pub(crate) fn event(&self, name: &'static str) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.events.entry(name).or_default() += 1;
    }

    /// Requests counted for `(op, status)` (tests).
    #[cfg(test)]
    pub(crate) fn count(&self, op: &'static str, status: u16) -> u64 {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.requests.get(&(op, status)).copied().unwrap_or(0)
    }

    /// Renders the gateway's series in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(
            "# HELP s3o_gateway_requests_total S3 requests by operation and HTTP status.\n",
        );
        out.push_str("# TYPE s3o_gateway_requests_total counter\n");
        for ((op, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "s3o_gateway_requests_total{{operation=\"{op}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP s3o_gateway_request_duration_seconds S3 request latency by operation.\n",
        );
        out.push_str("# TYPE s3o_gateway_request_duration_seconds histogram\n");
        for (op, h) in &m.latency {
            h.render(
                out,
                "s3o_gateway_request_duration_seconds",
                &|le| format!("{{operation=\"{op}\",le=\"{le}\"}}"),
                &format!("{{operation=\"{op}\"}}"),
            );
        }
        out.push_str("# HELP s3o_gateway_events_total Notable gateway events (broadcast reads, failovers, cleanup enqueues).\n");
        out.push_str("# TYPE s3o_gateway_events_total counter\n");
        for (name, n) in &m.events {
            let _ = writeln!(out, "s3o_gateway_events_total{{event=\"{name}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record("PutObject", 200, Duration::from_millis(3));
        m.record("PutObject", 200, Duration::from_millis(300));
        m.record("GetObject", 404, Duration::from_millis(1));
        m.event("broadcast_read");
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.contains("s3o_gateway_requests_total{operation=\"PutObject\",status=\"200\"} 2"));
        assert!(s.contains("s3o_gateway_requests_total{operation=\"GetObject\",status=\"404\"} 1"));
        assert!(s.contains(
            "s3o_gateway_request_duration_seconds_bucket{operation=\"PutObject\",le=\"0.005\"} 1"
        ));
        assert!(s.contains(
            "s3o_gateway_request_duration_seconds_bucket{operation=\"PutObject\",le=\"0.5\"} 2"
        ));
        assert!(s.contains("s3o_gateway_events_total{event=\"broadcast_read\"} 1"));
        assert_eq!(m.count("PutObject", 200), 2);
    }
}
