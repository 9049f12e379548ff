//! The results: rows (one per cell and baseline), derived figures, targets; rendered as
//! Markdown and CSV, and as the README's generated block.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stats::{Measured, Spread, ratios};
use crate::workload::CLAIM_BATCH;

/// Read cells: (read index, size index, clients) → the s3o runs and the baseline ops/s of
/// the same trials.
pub(crate) type Cells = BTreeMap<(usize, usize, usize), (Vec<Measured>, Vec<f64>)>;

/// One row of the results table: a cell (operation × engine × concurrency) measured over
/// several interleaved trials, against one baseline.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// Operation name.
    pub(crate) op: String,
    /// `postgres` or `sqlite`.
    pub(crate) engine: &'static str,
    /// Concurrency label (`1`, `8`, `1w`, `1w+2r`, ...).
    pub(crate) conc: String,
    /// What the baseline is (`same SQL`, `reference SQL`, `bare loop`, `1 reader`).
    pub(crate) vs: String,
    /// Trials behind the figures.
    pub(crate) trials: usize,
    /// s3o throughput, median over trials.
    pub(crate) ops: f64,
    /// Median latency (ms), median over trials.
    pub(crate) p50: f64,
    /// 99th-percentile latency (ms), median over trials.
    pub(crate) p99: f64,
    /// Baseline throughput, median over trials; NaN when none.
    pub(crate) base: f64,
    /// Per-trial s3o ÷ baseline: median and range.
    pub(crate) ratio: Spread,
    /// Errors during the s3o runs (should be 0).
    pub(crate) errors: u64,
}

impl Row {
    /// A row from the s3o trials and the baseline throughput of the same trials (paired by
    /// index: trial `i` of s3o ran next to trial `i` of the baseline).
    pub(crate) fn new(
        op: &str,
        engine: &'static str,
        conc: &str,
        vs: &str,
        s3o: &[Measured],
        base: &[f64],
    ) -> Row {
        let ops: Vec<f64> = s3o.iter().map(Measured::ops_per_sec).collect();
        let p50: Vec<f64> = s3o.iter().map(Measured::p50_ms).collect();
        let p99: Vec<f64> = s3o.iter().map(Measured::p99_ms).collect();
        Row {
            op: op.to_owned(),
            engine,
            conc: conc.to_owned(),
            vs: vs.to_owned(),
            trials: s3o.len(),
            ops: Spread::of(&ops).median,
            p50: Spread::of(&p50).median,
            p99: Spread::of(&p99).median,
            base: Spread::of(base).median,
            ratio: Spread::of(&ratios(&ops, base)),
            errors: s3o.iter().map(|m| m.errors).sum(),
        }
    }
}

/// A figure derived from several cells (a scaling ratio), with its per-trial spread.
#[derive(Clone, Debug)]
pub(crate) struct Figure {
    /// `postgres` or `sqlite`.
    pub(crate) engine: &'static str,
    /// What it measures.
    pub(crate) what: String,
    /// Per-trial values.
    pub(crate) spread: Spread,
}

/// A target of the performance issue and how the run did against it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// What is compared.
    pub(crate) what: String,
    /// The measured figure (median and range over trials).
    pub(crate) got: Spread,
    /// The bar.
    pub(crate) bar: f64,
    /// `true`: the figure must be ≥ the bar; `false`: ≤.
    pub(crate) at_least: bool,
}

impl Target {
    /// `MET`, `MISSED` or `n/a` (not measured), judged on the median.
    pub(crate) fn status(&self) -> &'static str {
        if self.got.n == 0 {
            "n/a"
        } else if (self.at_least && self.got.median >= self.bar)
            || (!self.at_least && self.got.median <= self.bar)
        {
            "MET"
        } else {
            "MISSED"
        }
    }

    /// `≥ 1.5` or `≤ 1.3`.
    pub(crate) fn bar_text(&self) -> String {
        format!("{} {}", if self.at_least { "≥" } else { "≤" }, self.bar)
    }
}

/// The claim-cost figure (p50 at the large depth ÷ at the small one, per trial) and a note
/// per depth, from the p50 latencies of each depth's trials.
pub(crate) fn claim_scaling(
    engine: &'static str,
    depths: [u64; 2],
    p50: &[Vec<f64>; 2],
) -> (Figure, Vec<String>) {
    let fig = Figure {
        engine,
        what: format!(
            "claim {CLAIM_BATCH} latency (p50) at {} queued ÷ at {}",
            crate::size_label(depths[1]),
            crate::size_label(depths[0])
        ),
        spread: Spread::of(&ratios(&p50[1], &p50[0])),
    };
    let notes = depths
        .iter()
        .zip(p50)
        .map(|(d, v)| {
            format!(
                "{engine} claim {CLAIM_BATCH} at {} queued: p50 {} ms",
                crate::size_label(*d),
                Spread::of(v).text()
            )
        })
        .collect();
    (fig, notes)
}

/// Scaling of a 1000-key page: per trial, 1-client page throughput at the smallest size ÷ at
/// the largest (= latency at the largest ÷ at the smallest). Read index 0 is the page.
pub(crate) fn page_scaling(engine: &'static str, cells: &Cells, sizes: &[u64]) -> Option<Figure> {
    let last = sizes.len().checked_sub(1).filter(|&l| l > 0)?;
    let ops = |si: usize| -> Option<Vec<f64>> {
        cells
            .get(&(0, si, 1))
            .map(|c| c.0.iter().map(Measured::ops_per_sec).collect())
    };
    Some(Figure {
        engine,
        what: format!(
            "list page of 1000: latency at {} ÷ at {}",
            crate::size_label(sizes[last]),
            crate::size_label(sizes[0])
        ),
        spread: Spread::of(&ratios(&ops(0)?, &ops(last)?)),
    })
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".to_owned()
    }
}

/// The results table.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| operation | engine | concurrency | baseline | trials | ops/s | p50 ms | p99 ms | \
         baseline ops/s | ratio median (min–max) |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.op,
            r.engine,
            r.conc,
            r.vs,
            r.trials,
            num(r.ops, 1),
            num(r.p50, 3),
            num(r.p99, 3),
            num(r.base, 1),
            r.ratio.text()
        );
    }
    s
}

/// The derived figures.
pub(crate) fn figures_markdown(figs: &[Figure]) -> String {
    let mut s = String::from("| engine | figure | median (min–max) |\n|---|---|---:|\n");
    for f in figs {
        let _ = writeln!(s, "| {} | {} | {} |", f.engine, f.what, f.spread.text());
    }
    s
}

/// The targets table (also the README's generated block).
pub(crate) fn targets_markdown(targets: &[Target]) -> String {
    let mut s = String::from("| target | median (min–max) | bar | |\n|---|---:|---|---|\n");
    for t in targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.what,
            t.got.text(),
            t.bar_text(),
            t.status()
        );
    }
    s
}

/// The CSV file (header plus one line per row).
pub(crate) fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "operation,engine,concurrency,baseline,trials,ops_per_sec,p50_ms,p99_ms,\
         baseline_ops_per_sec,ratio_median,ratio_min,ratio_max,errors\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "\"{}\",{},\"{}\",\"{}\",{},{},{},{},{},{},{},{},{}",
            r.op.replace('"', "\"\""),
            r.engine,
            r.conc,
            r.vs,
            r.trials,
            cell(r.ops, 2),
            cell(r.p50, 4),
            cell(r.p99, 4),
            cell(r.base, 2),
            cell(r.ratio.median, 4),
            cell(r.ratio.min, 4),
            cell(r.ratio.max, 4),
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

/// Markers of the README block the harness rewrites.
pub(crate) const README_BEGIN: &str = "<!-- bench:begin (generated by cargo xtask bench) -->";
/// End marker.
pub(crate) const README_END: &str = "<!-- bench:end -->";

/// `readme` with the text between the markers replaced by `block`; `None` when the markers
/// are missing or out of order.
pub(crate) fn splice_readme(readme: &str, block: &str) -> Option<String> {
    let b = readme.find(README_BEGIN)? + README_BEGIN.len();
    let e = b + readme[b..].find(README_END)?;
    Some(format!("{}\n{}{}", &readme[..b], block, &readme[e..]))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn measured(ops: u64) -> Measured {
        let lat = vec![Duration::from_millis(1); usize::try_from(ops).unwrap()];
        Measured::new(lat, Duration::from_secs(1), 0)
    }

    #[test]
    fn rows_pair_trials_and_report_the_ratio_spread() {
        let s3o = [measured(90), measured(100), measured(120)];
        let r = Row::new(
            "record",
            "postgres",
            "8",
            "same SQL",
            &s3o,
            &[100.0, 100.0, 100.0],
        );
        assert_eq!(r.trials, 3);
        assert_eq!(r.ops, 100.0);
        assert_eq!(r.base, 100.0);
        assert_eq!((r.ratio.median, r.ratio.min, r.ratio.max), (1.0, 0.9, 1.2));
        let md = markdown(std::slice::from_ref(&r));
        assert!(
            md.contains(
                "| record | postgres | 8 | same SQL | 3 | 100.0 | 1.000 | 1.000 | 100.0 | \
                 1.00 (0.90–1.20) |"
            ),
            "{md}"
        );
        let c = csv(&[r]);
        assert_eq!(
            c.lines().nth(1),
            Some(
                "\"record\",postgres,\"8\",\"same SQL\",3,100.00,1.0000,1.0000,100.00,1.0000,\
                 0.9000,1.2000,0"
            )
        );
        let none = Row::new("list", "sqlite", "1", "", &s3o, &[]);
        assert!(markdown(&[none]).contains("| - |"));
    }

    #[test]
    fn targets_are_judged_on_the_median() {
        let t = |v: &[f64], bar, at_least| Target {
            what: "x".into(),
            got: Spread::of(v),
            bar,
            at_least,
        };
        assert_eq!(t(&[0.9, 1.6, 1.7], 1.5, true).status(), "MET");
        assert_eq!(t(&[1.4, 1.45, 2.0], 1.5, true).status(), "MISSED");
        assert_eq!(t(&[1.2, 1.4, 1.1], 1.3, false).status(), "MET");
        assert_eq!(t(&[], 1.3, false).status(), "n/a");
        assert!(
            targets_markdown(&[t(&[1.0], 1.5, true)])
                .contains("| x | 1.00 (1.00–1.00) | ≥ 1.5 | MISSED |")
        );
    }

    #[test]
    fn the_readme_block_is_replaced_between_markers() {
        let readme = format!("intro\n{README_BEGIN}\nold table\n{README_END}\nrest\n");
        let out = splice_readme(&readme, "new table\n").unwrap();
        assert_eq!(
            out,
            format!("intro\n{README_BEGIN}\nnew table\n{README_END}\nrest\n")
        );
        assert_eq!(splice_readme("no markers", "x"), None);
        assert_eq!(
            splice_readme(&format!("{README_END}{README_BEGIN}"), "x"),
            None
        );
    }
}
