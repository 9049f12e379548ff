//! Latency statistics: percentiles from sorted samples.

use std::time::Duration;

/// The nearest-rank percentile `p` (0 < p ≤ 100) of `sorted` (ascending): the smallest sample
/// such that at least `p` percent of the samples are less than or equal to it. `None` when
/// there are no samples.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(f64::MIN_POSITIVE, 100.0);
    // Nearest rank: ceil(p/100 × n), 1-based. The product is computed in integer
    // hundredths-of-a-percent so 99 % of 100 samples is exactly rank 99.
    let n = sorted.len() as u64;
    let hundredths = (p * 100.0).round() as u64;
    let rank = (hundredths * n).div_ceil(10_000).max(1);
    let idx = usize::try_from(rank - 1).unwrap_or(usize::MAX);
    sorted.get(idx.min(sorted.len() - 1)).copied()
}

/// A measured run: completed operations, wall time and per-operation latencies.
#[derive(Clone, Debug, Default)]
pub(crate) struct Measured {
    /// Operations completed inside the measured window.
    pub(crate) ops: u64,
    /// Length of the measured window.
    pub(crate) elapsed: Duration,
    /// Latency of every measured operation, ascending.
    pub(crate) sorted: Vec<Duration>,
    /// Operations that returned an error (not counted in `ops`).
    pub(crate) errors: u64,
    /// The first error seen, for the log.
    pub(crate) first_error: Option<String>,
}

impl Measured {
    /// Builds a result from unsorted latencies.
    pub(crate) fn new(mut lat: Vec<Duration>, elapsed: Duration, errors: u64) -> Self {
        lat.sort_unstable();
        Measured {
            ops: lat.len() as u64,
            elapsed,
            sorted: lat,
            errors,
            first_error: None,
        }
    }

    /// Operations per second over the window.
    pub(crate) fn ops_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ops as f64 / s } else { 0.0 }
    }

    /// Median latency in milliseconds (NaN when empty).
    pub(crate) fn p50_ms(&self) -> f64 {
        percentile(&self.sorted, 50.0).map_or(f64::NAN, ms)
    }

    /// 99th-percentile latency in milliseconds (NaN when empty).
    pub(crate) fn p99_ms(&self) -> f64 {
        percentile(&self.sorted, 99.0).map_or(f64::NAN, ms)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_micros(x)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = us(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&s, 1.0), Some(Duration::from_micros(1)));
        let s = us(&[10, 20, 30, 40, 50]);
        // ceil(0.5 × 5) = 3rd sample; ceil(0.99 × 5) = 5th.
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_micros(30)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&s, 20.0), Some(Duration::from_micros(10)));
        assert_eq!(percentile(&s, 21.0), Some(Duration::from_micros(20)));
        assert_eq!(percentile(&us(&[7]), 99.0), Some(Duration::from_micros(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn measured_sorts_and_rates() {
        let m = Measured::new(us(&[300, 100, 200, 400]), Duration::from_secs(2), 1);
        assert_eq!(m.ops, 4);
        assert_eq!(m.sorted, us(&[100, 200, 300, 400]));
        assert!((m.ops_per_sec() - 2.0).abs() < 1e-9);
        assert!((m.p50_ms() - 0.2).abs() < 1e-9);
        assert!((m.p99_ms() - 0.4).abs() < 1e-9);
        assert_eq!(m.errors, 1);
    }
}
