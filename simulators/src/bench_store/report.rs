//! The storage benchmark's printed report: one row per side and run, then medians over
//! runs with linli/VM ratios, next to the corpus stats.
//!
//! Owns formatting only; measuring is the sides'.

use super::{Side, SideFigures};
use crate::corpus::Stats;

/// One line per side and run, as soon as it is measured.
pub fn print_run(run: usize, side: Side, f: &SideFigures) {
    println!(
        "run {run}  {:<6} {:>10.0} points/s   {:>6.3} B/point ({} B)   raw 24 h {:>7.2} ms ({} pts)   1 m 24 h {:>7.2} ms ({} buckets)   peak RSS {:>7.1} MiB",
        side.as_str(),
        f.ingest_points_per_s,
        f.bytes_per_point,
        f.bytes_on_disk,
        f.query_raw_24h_ms,
        f.raw_points_returned,
        f.query_1m_24h_ms,
        f.buckets_returned,
        mib(f.peak_rss_bytes)
    );
    for n in &f.notes {
        println!("        note: {n}");
    }
}

/// A figure of a side, by name, with its decimal places.
type Row<'a> = (&'a str, &'a dyn Fn(&SideFigures) -> f64, usize);

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The closing table: medians over runs of each side, and linli / VM.
pub fn print_summary(stats: &Stats, results: &[(Side, Result<SideFigures, String>)], runs: usize) {
    let of = |side: Side, g: &dyn Fn(&SideFigures) -> f64| {
        median(
            results
                .iter()
                .filter(|(s, _)| *s == side)
                .filter_map(|(_, r)| r.as_ref().ok())
                .map(g)
                .collect(),
        )
    };
    let cell = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:>14.prec$}"),
        None => format!("{:>14}", "n/a"),
    };
    println!("\ncorpus: {stats}");
    println!("median of {runs} run(s):");
    println!(
        "  {:<26}{:>14}{:>14}{:>12}",
        "", "linli", "victoria-m.", "linli/VM"
    );
    let rows: [Row<'_>; 6] = [
        ("ingest points/s", &|f| f.ingest_points_per_s, 0),
        ("bytes on disk", &|f| f.bytes_on_disk as f64, 0),
        ("bytes/point", &|f| f.bytes_per_point, 3),
        ("raw 24 h query, ms", &|f| f.query_raw_24h_ms, 2),
        ("1-minute 24 h query, ms", &|f| f.query_1m_24h_ms, 2),
        ("peak RSS, MiB", &|f| mib(f.peak_rss_bytes), 1),
    ];
    for (name, g, prec) in rows {
        let (l, v) = (of(Side::Linli, g), of(Side::Vm, g));
        let ratio = match (l, v) {
            (Some(l), Some(v)) if v > 0.0 => format!("{:>11.2}x", l / v),
            _ => format!("{:>12}", "n/a"),
        };
        println!("  {name:<26}{}{}{ratio}", cell(l, prec), cell(v, prec));
    }
    for side in [Side::Linli, Side::Vm] {
        if let Some((_, Err(e))) = results.iter().find(|(s, r)| *s == side && r.is_err()) {
            println!("  {} not measured: {e}", side.as_str());
        }
    }
}
