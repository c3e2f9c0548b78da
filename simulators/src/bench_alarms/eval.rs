//! Part 1, evaluation throughput: the replayed day through the gateway's pure
//! [`AlarmCore`] (rules, then the alarm lifecycle) on one thread, as fast as it goes.
//!
//! Owns the timed loop and what it counts. Only `apply`/`advance` and the follower's
//! periodic drain (`take_dirty` + `take_changes` every [`EvalConfig::drain_every`]
//! readings) are timed; generating each chunk of readings and tallying what was drained
//! are not. Does not own the readings (`day`) or the printing (`report`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use linli_gateway::alarms::core::AlarmCore;
use linli_gateway::alarms::lifecycle::Changes;
use linli_gateway::rules::RuleSet;

use super::day::{Injected, Reading, Replay};
use super::fleet::Fleet;

/// Part 1 parameters.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Residents and assets (half each).
    pub subjects: usize,
    /// Simulated hours.
    pub hours: f64,
    /// Seed of the replay.
    pub seed: u64,
    /// Readings between drains of dirty rule state and lifecycle changes.
    pub drain_every: usize,
    /// Simulated time per generated chunk, ms.
    pub chunk_ms: u64,
    /// Print progress to stderr every this much simulated time (None: quiet).
    pub progress_every_ms: Option<u64>,
    /// Also time every `apply` on its own, by report type (slower; a profile).
    pub breakdown: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            subjects: 10_000,
            hours: 24.0,
            seed: 1,
            drain_every: 500,
            chunk_ms: 60_000,
            progress_every_ms: Some(2 * 3600 * 1000),
            breakdown: false,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct EvalRun {
    /// Readings applied.
    pub readings: u64,
    /// Timed wall time (apply, advance, drains), s.
    pub seconds: f64,
    /// Of which draining (`take_dirty` + `take_changes`), s.
    pub drain_seconds: f64,
    /// Untimed time spent generating readings, s.
    pub generate_seconds: f64,
    /// New alarms (transitions `raised`), by alarm kind.
    pub raised_by_kind: BTreeMap<String, u64>,
    /// Transitions by action (`raised`, `repeat`, `cleared`, `escalated`, …).
    pub transitions_by_action: BTreeMap<String, u64>,
    /// Notes (suspected and dismissed falls).
    pub notes: u64,
    /// Dirty rule-state records drained (what the follower would write).
    pub dirty_records: u64,
    /// Readings by report type, and timed ns spent in `apply` for them (breakdown only).
    pub per_report: BTreeMap<&'static str, (u64, f64)>,
    /// What the replay injected.
    pub injected: Injected,
}

impl EvalRun {
    /// Readings evaluated per second of timed wall time.
    pub fn rate(&self) -> f64 {
        self.readings as f64 / self.seconds.max(1e-9)
    }

    /// New alarms raised.
    pub fn raised(&self) -> u64 {
        self.raised_by_kind.values().sum()
    }

    /// Every transition recorded.
    pub fn transitions(&self) -> u64 {
        self.transitions_by_action.values().sum()
    }

    fn tally(&mut self, c: Changes) {
        let kinds: BTreeMap<u64, &str> = c.alarms.iter().map(|a| (a.id, a.kind.as_str())).collect();
        for t in &c.transitions {
            *self
                .transitions_by_action
                .entry(t.action.clone())
                .or_default() += 1;
            if t.action == "raised" {
                let kind = kinds.get(&t.alarm).copied().unwrap_or("?");
                *self.raised_by_kind.entry(kind.to_owned()).or_default() += 1;
            }
        }
        self.notes += c.notes.len() as u64;
    }
}

/// The start of the replay: a Friday at local midnight.
pub const START_LOCAL: &str = "2026-11-27T00:00";

/// One run: a fresh core, the whole replay, timed.
pub fn run_once(
    cfg: &EvalConfig,
    fleet: &Fleet,
    rules: &Arc<RuleSet>,
    label: &str,
) -> Result<EvalRun> {
    let start = rules
        .local
        .parse_local(START_LOCAL)
        .map_err(anyhow::Error::msg)?;
    let span_ms = (cfg.hours * 3_600_000.0).round() as u64;
    let mut replay = Replay::new(fleet, start, span_ms, cfg.chunk_ms, cfg.seed);
    let mut core = AlarmCore::new(rules.clone(), Vec::new(), Default::default(), 1);
    // Setup, as the follower does on start: every device known (absence windows are
    // watched from now), its initial state drained.
    for p in &fleet.profiles {
        core.rules.register(p, start);
    }
    let mut run = EvalRun {
        dirty_records: core.rules.take_dirty().len() as u64,
        ..EvalRun::default()
    };
    run.tally(core.take_changes());

    let profiles = &fleet.profiles;
    let drain_every = cfg.drain_every.max(1) as u64;
    let mut chunk: Vec<Reading> = Vec::with_capacity(64 * 1024);
    let mut pending: Vec<Changes> = Vec::new();
    let (mut timed, mut drain, mut gen) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut n, mut since_drain) = (0u64, 0u64);
    let mut next_progress = cfg.progress_every_ms.map(|p| start + p);
    loop {
        let g0 = Instant::now();
        let Some((_, b)) = replay.next_chunk(&mut chunk) else {
            break;
        };
        gen += g0.elapsed();
        let t0 = Instant::now();
        for r in &chunk {
            let profile = &profiles[r.device as usize];
            if cfg.breakdown {
                let a0 = Instant::now();
                core.apply(profile, &r.report, r.t);
                let e = run.per_report.entry(r.report.name()).or_default();
                e.0 += 1;
                e.1 += a0.elapsed().as_nanos() as f64;
            } else {
                core.apply(profile, &r.report, r.t);
            }
            n += 1;
            since_drain += 1;
            if since_drain == drain_every {
                since_drain = 0;
                let d0 = Instant::now();
                run.dirty_records += core.rules.take_dirty().len() as u64;
                pending.push(core.take_changes());
                drain += d0.elapsed();
            }
        }
        // Time passes to the end of the chunk even when nobody reports.
        core.advance(b);
        timed += t0.elapsed();
        for c in pending.drain(..) {
            run.tally(c);
        }
        if let Some(p) = next_progress.filter(|p| b >= *p) {
            let h = (b - start) as f64 / 3_600_000.0;
            eprintln!(
                "  {label}: {h:>5.1} of {:.1} simulated hours, {:>6.2} M readings, {:>6.3} M/s so far",
                cfg.hours,
                n as f64 / 1e6,
                n as f64 / timed.as_secs_f64().max(1e-9) / 1e6
            );
            next_progress = cfg.progress_every_ms.map(|e| p + e);
        }
    }
    let t0 = Instant::now();
    run.dirty_records += core.rules.take_dirty().len() as u64;
    let last = core.take_changes();
    timed += t0.elapsed();
    run.tally(last);
    run.readings = n;
    run.seconds = timed.as_secs_f64();
    run.drain_seconds = drain.as_secs_f64();
    run.generate_seconds = gen.as_secs_f64();
    run.injected = replay.injected().clone();
    Ok(run)
}
