//! The alarm benchmark's printed report: a line per run as it ends, then medians, what
//! was raised, and whether the targets were met.
//!
//! Owns formatting only; measuring is `eval`'s and `latency`'s.

use super::eval::EvalRun;
use super::fleet::Fleet;
use super::latency::{LatencyConfig, LatencyRun, LATENCY_TARGET_P99_S};

/// Part 1's target: readings evaluated per second on one core.
pub const EVAL_TARGET_PER_S: f64 = 1_000_000.0;

/// The median (the mean of the middle two for an even count); `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// What part 1 is about to do.
pub fn print_eval_header(fleet: &Fleet, hours: f64, rules: usize) {
    let kinds: Vec<String> = fleet
        .per_kind()
        .iter()
        .map(|(k, n)| format!("{} {}", n, k.as_str()))
        .collect();
    println!(
        "part 1: evaluation throughput, one thread: {} residents + {} assets = {} devices ({}), {hours} simulated hours, {rules} rules",
        fleet.homes.len(),
        fleet.assets.len(),
        fleet.profiles.len(),
        kinds.join(", ")
    );
}

/// One run's line.
pub fn print_eval_run(run: usize, r: &EvalRun) {
    println!(
        "run {run}  {:>11} readings in {:>7.3} s = {:>10.0} readings/s   (draining {:>4.1} %; generating, untimed, {:.2} s)   raised {}   transitions {}   notes {}   dirty records {}",
        r.readings,
        r.seconds,
        r.rate(),
        100.0 * r.drain_seconds / r.seconds.max(1e-9),
        r.generate_seconds,
        r.raised(),
        r.transitions(),
        r.notes,
        r.dirty_records
    );
}

/// Medians, alarms by kind, what was injected, and the verdict on the target.
pub fn print_eval_summary(runs: &[EvalRun]) {
    let Some(first) = runs.first() else {
        return;
    };
    let rate = median(runs.iter().map(EvalRun::rate).collect()).unwrap_or(0.0);
    let secs = median(runs.iter().map(|r| r.seconds).collect()).unwrap_or(0.0);
    println!(
        "\npart 1, median of {} run(s): {:.0} readings/s ({} readings in {secs:.3} s, {:.0} ns/reading)",
        runs.len(),
        rate,
        first.readings,
        1e9 / rate.max(1e-9)
    );
    let by_kind: Vec<String> = first
        .raised_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "  alarms raised: {} ({})",
        first.raised(),
        by_kind.join(", ")
    );
    let by_action: Vec<String> = first
        .transitions_by_action
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "  transitions: {} ({})",
        first.transitions(),
        by_action.join(", ")
    );
    let i = &first.injected;
    println!(
        "  injected: {} SOS, {} falls, {} stumbles, {} heart-rate episodes (+{} short spikes), {} SpO2 dips, {} night exits not back, {} quiet mornings, {} dead pendants, {} hub outages, {} low batteries, {} dead lamps, {} tilted + {} open manholes, {} floods, {} bin fires",
        i.sos,
        i.falls,
        i.stumbles,
        i.heart_rate,
        i.heart_spikes,
        i.spo2_dips,
        i.not_back,
        i.no_morning,
        i.dead_pendants,
        i.hub_outages,
        i.low_batteries,
        i.lamps_dead,
        i.manholes_tilted,
        i.manholes_open,
        i.floods,
        i.bin_fires
    );
    if runs
        .iter()
        .any(|r| r.raised_by_kind != first.raised_by_kind || r.readings != first.readings)
    {
        println!("  WARNING: runs disagree on readings or alarms raised (the replay should be deterministic)");
    }
    if !first.per_report.is_empty() {
        println!("  breakdown (timing every apply; adds ~40 ns each):");
        let mut rows: Vec<_> = first.per_report.iter().collect();
        rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        let total: f64 = rows.iter().map(|(_, (_, ns))| ns).sum();
        for (name, (n, ns)) in rows {
            println!(
                "    {name:<14} {n:>11} readings  {:>7.0} ns each  {:>5.1} % of apply time",
                ns / (*n).max(1) as f64,
                100.0 * ns / total.max(1e-9)
            );
        }
    }
    let met = rate >= EVAL_TARGET_PER_S;
    println!(
        "  target ≥ {:.0} readings/s on one core: {}",
        EVAL_TARGET_PER_S,
        if met { "MET" } else { "NOT MET" }
    );
}

/// Part 2's figures and the verdict on its target.
pub fn print_latency(cfg: &LatencyConfig, r: &LatencyRun) {
    println!(
        "\npart 2: reading-to-alarm latency under load: {} connections offering {:.0} readings/s for {} s after a {} s warm-up ({} SOS from {} residents in the measured part; fsync {})",
        cfg.connections, cfg.rate, cfg.seconds, cfg.warmup, r.alarm_readings, r.residents, cfg.fsync
    );
    println!(
        "  ingest: {} of {} readings journaled in {:.2} s = {:.0} readings/s   gateway CPU {:.2} s, peak RSS {:.1} MiB   generator CPU {:.2} s",
        r.accepted,
        r.offered,
        r.ingest_seconds,
        r.ingest_rate(),
        r.gateway_cpu_s,
        r.gateway_peak_rss_mib,
        r.generator_cpu_s
    );
    println!(
        "  alarms: {} raised, {} transitions; latency (reading received → alarm record committed) p50 {:.2} ms, p99 {:.2} ms over {} samples",
        r.raised,
        r.transitions,
        r.p50_s * 1e3,
        r.p99_s * 1e3,
        r.samples
    );
    let mut lag = r.journal_lag_s.clone();
    lag.sort_by(|a, b| a.total_cmp(b));
    if let (Some(p50), Some(max)) = (median(lag.clone()), lag.last()) {
        let p99 = lag[((lag.len() - 1) as f64 * 0.99).round() as usize];
        println!(
            "  of which ingest (linli_journal_lag_seconds: receive → journaled, oldest of a group commit, {} samples 0.1 s apart): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lag.len(),
            p50 * 1e3,
            p99 * 1e3,
            max * 1e3
        );
    }
    println!(
        "  warm-up: largest linli_journal_lag_seconds {:.2} ms (not in the figures above)",
        r.warmup_journal_lag_max_s * 1e3
    );
    println!("  (the gateway stamps receive times in whole ms: quantiles move in 1 ms steps)");
    for w in &r.warnings {
        println!("  note: {w}");
    }
    println!(
        "  target p99 ≤ {:.0} ms: {}",
        LATENCY_TARGET_P99_S * 1e3,
        if r.p99_s <= LATENCY_TARGET_P99_S {
            "MET"
        } else {
            "NOT MET"
        }
    );
}
