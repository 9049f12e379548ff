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

/// The median of a set of trial figures with its range: how a cell is reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spread {
    /// Median (the mean of the two middle values for an even count); NaN when empty.
    pub(crate) median: f64,
    /// Smallest value.
    pub(crate) min: f64,
    /// Largest value.
    pub(crate) max: f64,
    /// How many finite values it summarises.
    pub(crate) n: usize,
}

impl Spread {
    /// The spread of the finite values in `v` (non-finite ones, e.g. a failed baseline, are
    /// left out).
    pub(crate) fn of(v: &[f64]) -> Spread {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n == 0 {
            return Spread {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                n,
            };
        }
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Spread {
            median,
            min: s[0],
            max: s[n - 1],
            n,
        }
    }

    /// `0.93 (0.88–1.02)`, or `-` when empty.
    pub(crate) fn text(&self) -> String {
        if self.n == 0 {
            "-".to_owned()
        } else {
            format!("{:.2} ({:.2}–{:.2})", self.median, self.min, self.max)
        }
    }
}

/// Per-trial ratios `a[i] / b[i]` (NaN where `b[i]` is not a positive number).
pub(crate) fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| if *y > 0.0 { x / y } else { f64::NAN })
        .collect()
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
    fn spreads_take_the_median_and_range_of_finite_values() {
        let s = Spread::of(&[1.2, 0.8, f64::NAN, 1.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (1.0, 0.8, 1.2, 3));
        let s = Spread::of(&[2.0, 1.0, 4.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(s.text(), "2.50 (1.00–4.00)");
        let e = Spread::of(&[f64::NAN]);
        assert_eq!(e.n, 0);
        assert!(e.median.is_nan());
        assert_eq!(e.text(), "-");
        let r = ratios(&[2.0, 3.0, 1.0], &[1.0, 0.0, 4.0]);
        assert_eq!(r[0], 2.0);
        assert!(r[1].is_nan());
        assert_eq!(r[2], 0.25);
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
