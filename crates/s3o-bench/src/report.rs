//! The results table: printed, and written as Markdown and CSV.

use std::fmt::Write as _;

use crate::stats::Measured;

/// One row of the results table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// Operation name.
    pub(crate) op: String,
    /// `postgres` or `sqlite`.
    pub(crate) engine: &'static str,
    /// Concurrency label (`1`, `8`, `1w`, `1w+2r`, ...).
    pub(crate) conc: String,
    /// s3o throughput.
    pub(crate) ops: f64,
    /// Median latency (ms).
    pub(crate) p50: f64,
    /// 99th-percentile latency (ms).
    pub(crate) p99: f64,
    /// Baseline throughput (same SQL, pgbench or bare rusqlite); NaN when none.
    pub(crate) base: f64,
    /// Errors during the s3o run (should be 0).
    pub(crate) errors: u64,
}

impl Row {
    /// A row from a measured s3o run and an optional baseline throughput.
    pub(crate) fn new(op: &str, engine: &'static str, conc: &str, m: &Measured, base: f64) -> Row {
        Row {
            op: op.to_owned(),
            engine,
            conc: conc.to_owned(),
            ops: m.ops_per_sec(),
            p50: m.p50_ms(),
            p99: m.p99_ms(),
            base,
            errors: m.errors,
        }
    }

    /// s3o ÷ baseline (NaN without a baseline).
    pub(crate) fn ratio(&self) -> f64 {
        if self.base.is_finite() && self.base > 0.0 {
            self.ops / self.base
        } else {
            f64::NAN
        }
    }
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".to_owned()
    }
}

/// The Markdown table.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| operation | engine | concurrency | ops/s | p50 ms | p99 ms | baseline ops/s | ratio |\n\
         |---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.op,
            r.engine,
            r.conc,
            num(r.ops, 1),
            num(r.p50, 3),
            num(r.p99, 3),
            num(r.base, 1),
            num(r.ratio(), 2)
        );
    }
    s
}

/// The CSV file (header plus one line per row).
pub(crate) fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "operation,engine,concurrency,ops_per_sec,p50_ms,p99_ms,baseline_ops_per_sec,ratio,errors\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "\"{}\",{},\"{}\",{},{},{},{},{},{}",
            r.op.replace('"', "\"\""),
            r.engine,
            r.conc,
            cell(r.ops, 2),
            cell(r.p50, 4),
            cell(r.p99, 4),
            cell(r.base, 2),
            cell(r.ratio(), 4),
            r.errors
        );
    }
    s
}

/// A CSV number: empty when not finite.
fn cell(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_ratios_and_gaps() {
        let rows = vec![
            Row {
                op: "record_object".into(),
                engine: "postgres",
                conc: "8".into(),
                ops: 900.0,
                p50: 1.5,
                p99: 9.25,
                base: 1000.0,
                errors: 0,
            },
            Row {
                op: "list".into(),
                engine: "sqlite",
                conc: "1".into(),
                ops: 10.0,
                p50: 1.0,
                p99: 2.0,
                base: f64::NAN,
                errors: 2,
            },
        ];
        let md = markdown(&rows);
        assert!(
            md.contains("| record_object | postgres | 8 | 900.0 | 1.500 | 9.250 | 1000.0 | 0.90 |")
        );
        assert!(md.contains("| list | sqlite | 1 | 10.0 | 1.000 | 2.000 | - | - |"));
        let c = csv(&rows);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(
            lines[1],
            "\"record_object\",postgres,\"8\",900.00,1.5000,9.2500,1000.00,0.9000,0"
        );
        assert_eq!(lines[2], "\"list\",sqlite,\"1\",10.00,1.0000,2.0000,,,2");
    }
}
