//! The store's counters and gauges, rendered as Prometheus text beside the gateway's.
//!
//! Owns the numbers only; the store updates them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Store counters.
#[derive(Debug, Default)]
pub struct Stats {
    points: AtomicU64,
    non_finite: AtomicU64,
    out_of_range: AtomicU64,
    series: AtomicU64,
    head_points: AtomicU64,
    seals: AtomicU64,
    sealed_points: AtomicU64,
    merges: AtomicU64,
    compacted: AtomicU64,
    expired: AtomicU64,
    errors: AtomicU64,
    last_maintenance_ms: AtomicU64,
    last_collect_ms: AtomicU64,
}

/// True (and resets `last`) when `every` ms have passed since `last`, or it never ran.
fn due(last: &AtomicU64, now_ms: u64, every: u64) -> bool {
    let then = last.load(Relaxed);
    if then == 0 || now_ms.saturating_sub(then) >= every {
        last.store(now_ms.max(1), Relaxed);
        true
    } else {
        false
    }
}

impl Stats {
    pub(super) fn count_point(&self) {
        self.points.fetch_add(1, Relaxed);
    }
    pub(super) fn count_non_finite(&self) {
        self.non_finite.fetch_add(1, Relaxed);
    }
    pub(super) fn count_out_of_range(&self) {
        self.out_of_range.fetch_add(1, Relaxed);
    }
    pub(super) fn set_series(&self, n: usize) {
        self.series.store(n as u64, Relaxed);
    }
    pub(super) fn series(&self) -> usize {
        self.series.load(Relaxed) as usize
    }
    pub(super) fn set_head_points(&self, n: usize) {
        self.head_points.store(n as u64, Relaxed);
    }
    pub(super) fn count_sealed(&self, chunks: usize, points: usize) {
        self.seals.fetch_add(chunks as u64, Relaxed);
        self.sealed_points.fetch_add(points as u64, Relaxed);
    }
    pub(super) fn count_merge(&self) {
        self.merges.fetch_add(1, Relaxed);
    }
    pub(super) fn count_compacted(&self, n: usize) {
        self.compacted.fetch_add(n as u64, Relaxed);
    }
    pub(super) fn count_expired(&self, n: usize) {
        self.expired.fetch_add(n as u64, Relaxed);
    }
    pub(super) fn count_error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// True (and resets the timer) when `every` ms have passed since the last
    /// maintenance pass, or none ran yet.
    pub(super) fn maintenance_due(&self, now_ms: u64, every: u64) -> bool {
        due(&self.last_maintenance_ms, now_ms, every)
    }

    /// The same, for block collection.
    pub(super) fn collect_due(&self, now_ms: u64, every: u64) -> bool {
        due(&self.last_collect_ms, now_ms, every)
    }

    /// Points appended to the store so far.
    pub fn points(&self) -> u64 {
        self.points.load(Relaxed)
    }

    /// Appends Prometheus text to `s`.
    pub fn render(&self, s: &mut String) {
        let rows: [(&str, &str, &str, &AtomicU64); 11] = [
            (
                "linli_store_points_total",
                "counter",
                "Points appended to the embedded store.",
                &self.points,
            ),
            (
                "linli_store_non_finite_total",
                "counter",
                "NaN or infinite values skipped.",
                &self.non_finite,
            ),
            (
                "linli_store_out_of_range_total",
                "counter",
                "Points not stored: device time before the raw retention or over a day ahead.",
                &self.out_of_range,
            ),
            (
                "linli_store_series",
                "gauge",
                "Series in the store.",
                &self.series,
            ),
            (
                "linli_store_head_points",
                "gauge",
                "Points in memory not yet sealed into chunks.",
                &self.head_points,
            ),
            (
                "linli_store_chunks_sealed_total",
                "counter",
                "Chunks sealed from heads.",
                &self.seals,
            ),
            (
                "linli_store_sealed_points_total",
                "counter",
                "Points sealed into chunks.",
                &self.sealed_points,
            ),
            (
                "linli_store_overlap_merges_total",
                "counter",
                "Seals that merged late points into a stored chunk.",
                &self.merges,
            ),
            (
                "linli_store_chunks_compacted_total",
                "counter",
                "Small chunks merged away by compaction.",
                &self.compacted,
            ),
            (
                "linli_store_chunks_expired_total",
                "counter",
                "Chunks deleted by retention.",
                &self.expired,
            ),
            (
                "linli_store_errors_total",
                "counter",
                "Store operations that failed (see the log).",
                &self.errors,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}
