//! The Linli side of the storage benchmark: the embedded store (`linli_gateway::store`)
//! in this (child) process, fed the corpus reports directly (no MQTT, no journal: the
//! ingest bench measures those), sealed, settled and queried.
//!
//! Owns the feeding and timing. Does not own orchestration, disk or RSS accounting (the
//! caller's).

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use linli_gateway::config::{RetentionConfig, StoreConfig};
use linli_gateway::store::rollup::Agg;
use linli_gateway::store::Store;

use super::{QueryPlan, SideFigures};
use crate::corpus::{Corpus, Item};

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Measures the Linli store on `items` (the whole corpus, in [`Corpus::for_each`] order):
/// timed append + seal to durable, then settle (compaction; timed separately), then the
/// plan's raw and 1-minute queries, medians of `plan.repeats`.
pub fn linli_side(
    corpus: &Corpus,
    items: &[Item<'_>],
    dir: &Path,
    plan: &QueryPlan,
) -> Result<SideFigures> {
    let profiles = super::profiles(corpus);
    // The corpus lies in the past (default end 2026-06-01): keep it all, as the
    // VictoriaMetrics side does with -retentionPeriod=100y.
    let cfg = StoreConfig {
        retention: RetentionConfig {
            care_days: 36_500,
            facility_days: 36_500,
            rollup_1m_days: 36_500,
            rollup_1h_days: 36_500,
        },
        ..StoreConfig::default()
    };
    let store = Store::open(dir, cfg, wall_ms).context("opening the store")?;
    let start = Instant::now();
    let mut last_tick = Instant::now();
    for (n, batch) in items.chunks(4096).enumerate() {
        let base = (n * 4096) as u64;
        store.append(batch.iter().enumerate().map(|(i, it)| {
            (
                &profiles[it.device.index],
                base + i as u64,
                &it.report,
                it.time_ms,
            )
        }));
        // The follower thread ticks every second; seal full heads as it would.
        if last_tick.elapsed().as_millis() >= 1000 {
            store.tick(wall_ms(), false);
            last_tick = Instant::now();
        }
    }
    store.seal_all();
    let ingest_s = start.elapsed().as_secs_f64();
    let points = store.stats.points();
    let settle = Instant::now();
    store.settle().context("settling the store")?;
    let settle_s = settle.elapsed().as_secs_f64();
    let [(raw_points, raw_bytes), (roll_points, roll_bytes)] = store.footprint()?;
    ensure!(
        raw_points == points,
        "stored {raw_points} of {points} points"
    );

    let (mut raw_ms, mut agg_ms) = (Vec::new(), Vec::new());
    let (mut raw_n, mut buckets_n) = (0, 0);
    for _ in 0..plan.repeats.max(1) {
        let t = Instant::now();
        let raw = store.raw(&plan.device, plan.metric, plan.start_ms, plan.end_ms + 1)?;
        raw_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        raw_n = raw.len() as u64;
        let t = Instant::now();
        let b = store.buckets(
            &plan.device,
            plan.metric,
            (plan.start_ms, plan.end_ms + 1),
            plan.step_ms,
            Agg::Mean,
        )?;
        agg_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        buckets_n = b.len() as u64;
    }
    Ok(SideFigures {
        points,
        ingest_points_per_s: points as f64 / ingest_s,
        query_raw_24h_ms: median(raw_ms),
        query_1m_24h_ms: median(agg_ms),
        raw_points_returned: raw_n,
        buckets_returned: buckets_n,
        notes: vec![
            "ingest = append + seal into pco chunks in SQLite (synchronous=FULL), in-process; the journal in front of it is measured by `bench ingest`".into(),
            format!("settle (compaction to rest) took {settle_s:.1} s, not in the ingest time"),
            format!(
                "raw chunks {:.3} B/point ({raw_bytes} B), 1-min + 1-h roll-ups {roll_bytes} B ({roll_points} buckets); on-disk figure includes both and SQLite overhead",
                raw_bytes as f64 / points.max(1) as f64
            ),
            "queries are in-process calls (no HTTP), VictoriaMetrics' go over HTTP".into(),
        ],
        ..SideFigures::default()
    })
}
