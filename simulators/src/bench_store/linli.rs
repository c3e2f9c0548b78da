//! The Linli side of the storage benchmark: a hook for the embedded store
//! (`gateway/src/store/`), which runs in this (child) process.
//!
//! Owns nothing yet: it returns an "unimplemented" error, never a made-up figure. Does not
//! own orchestration, disk or RSS accounting (the caller's, see below).

use std::path::Path;

use anyhow::{bail, Result};

use super::{QueryPlan, SideFigures};
use crate::corpus::{Corpus, Item};

/// Measures the Linli store on `items` (the whole corpus, materialized before this call
/// and outside every timer, in [`Corpus::for_each`] order). To implement:
///
/// 1. open a fresh store in `dir` (empty, exists);
/// 2. start the timer, write every point (`it.report.for_each_metric` per item, series
///    = `(it.device.id, metric)`, time = `it.time_ms`), flush to durable, stop the timer:
///    `ingest_points_per_s = points / seconds`; `points` = points written;
/// 3. compact as the store does at rest, so `dir` holds the settled store;
/// 4. run the raw query of `plan` (`plan.device`, `plan.metric`, `plan.start_ms..=end_ms`)
///    and the `plan.step_ms` averages `plan.repeats` times each; report the median
///    latencies, `raw_points_returned` and `buckets_returned`.
///
/// The caller then sets `bytes_on_disk` (du of `dir`), `bytes_per_point` and
/// `peak_rss_bytes` (this process's VmHWM minus its VmRSS at the call, i.e. with the
/// corpus already loaded): leave them 0.
pub fn linli_side(
    corpus: &Corpus,
    items: &[Item<'_>],
    dir: &Path,
    plan: &QueryPlan,
) -> Result<SideFigures> {
    let _ = (corpus, items, dir, plan);
    bail!("unimplemented yet: the Linli store side is not wired in (simulators/src/bench_store/linli.rs)")
}
