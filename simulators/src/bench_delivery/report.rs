//! Printing the delivery benchmark: the parameters, each run's figures as it ends, and
//! the medians across runs against the targets.
//!
//! Owns the wording and layout only; the figures are [`super::DeliveryRun`]'s.

use super::{quantile, DeliveryConfig, DeliveryRun, TARGET_P50_S, TARGET_P99_S};

fn ms(s: f64) -> String {
    format!("{:.2} ms", s * 1e3)
}

/// What is about to run.
pub fn print_header(cfg: &DeliveryConfig) {
    println!(
        "bench delivery: SOS publish -> webhook page receipt, {} alarms at {:.0}/s ({:.1} s) from \
         distinct pendants over one courier connection, under {:.0} readings/s of background \
         telemetry from {} connections (warm-up {:.1} s); journal fsync {}, delivery MQTT events {}; \
         {} run(s) on fresh gateways",
        cfg.alarms,
        cfg.alarm_rate,
        cfg.alarm_seconds(),
        cfg.rate,
        cfg.connections,
        cfg.warmup,
        cfg.fsync,
        if cfg.mqtt_events { "on" } else { "off" },
        cfg.runs.max(1),
    );
    println!(
        "targets: p50 <= {}, p99 <= {} (loopback). The generator shares this machine's {} cores \
         with the gateway; its CPU is shown.",
        ms(TARGET_P50_S),
        ms(TARGET_P99_S),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

fn split(name: &str, v: &[f64]) -> String {
    format!(
        "{name} p50 {:.1} / p99 {:.1} / max {:.1}",
        quantile(v, 0.5),
        quantile(v, 0.99),
        v.last().copied().unwrap_or(0.0)
    )
}

/// One run's figures.
pub fn print_run(k: usize, cfg: &DeliveryConfig, r: &DeliveryRun) {
    println!(
        "run {k}: {} SOS -> {} pages   latency p50 {}   p99 {}   max {}",
        r.alarms_sent,
        r.pages_received,
        ms(r.p50_s()),
        ms(r.p99_s()),
        ms(r.max_s())
    );
    println!(
        "  background during the {:.1} s of SOS: {:.0} readings/s journaled (generator wrote {:.0}/s; target {:.0}/s)",
        r.alarm_window_s, r.background_rate, r.background_offered_rate, cfg.rate
    );
    println!(
        "  CPU over {:.1} s (first SOS to last page): gateway {:.1} s ({:.2} cores), generator {:.1} s ({:.2} cores; \
         receiver thread {:.2} s, courier thread {:.2} s); gateway peak RSS {:.0} MiB",
        r.measured_s,
        r.gateway_cpu_s,
        r.gateway_cpu_s / r.measured_s.max(1e-9),
        r.generator_cpu_s,
        r.generator_cpu_s / r.measured_s.max(1e-9),
        r.receiver_cpu_s,
        r.courier_cpu_s,
        r.gateway_peak_rss_mib
    );
    let cores = |s: f64| s / r.measured_s.max(1e-9);
    println!(
        "  rest of the machine: other processes and kernel work charged to neither {:.2} cores, idle {:.2} cores (softirq/irq in all {:.2} cores, mostly loopback TCP)",
        cores(r.other_cpu_s),
        cores(r.idle_cpu_s),
        cores(r.irq_cpu_s),
    );
    println!(
        "  deliveries pending (sampled every second) peaked at {:.0}, {:.0} s after the first SOS",
        r.pending_peak.0, r.pending_peak.1
    );
    let commit = r.alarm_commit_s.map_or("n/a".into(), |(p50, p99)| {
        format!("p50 {} / p99 {}", ms(p50), ms(p99))
    });
    println!(
        "  gateway: alarms raised {}, pages delivered {}, retries {}; reading -> alarm commit (its /metrics, last 10 000) {commit}",
        r.raised, r.delivered, r.retries
    );
    println!(
        "  where the time goes, ms on the wall clock (the gateway's stamps are whole ms, so +-1): {}; {}; {}",
        split("publish -> gateway receive (alarm.raised_ms)", &r.to_raised_ms),
        split("-> webhook POST sent (X-Linli-Timestamp)", &r.to_sent_ms),
        split("-> receipt", &r.to_receipt_ms)
    );
    for w in &r.warnings {
        println!("  WARNING: {w}");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians across runs, and the verdict against the targets.
pub fn print_summary(cfg: &DeliveryConfig, runs: &[DeliveryRun]) {
    let of = |f: &dyn Fn(&DeliveryRun) -> f64| median(runs.iter().map(f).collect());
    let (p50, p99, max) = (of(&|r| r.p50_s()), of(&|r| r.p99_s()), of(&|r| r.max_s()));
    let verdict = |v: f64, t: f64| if v <= t { "met" } else { "MISSED" };
    println!("\nmedian of {} run(s):", runs.len());
    println!(
        "  latency p50 {} (target {}: {})   p99 {} (target {}: {})   max {}",
        ms(p50),
        ms(TARGET_P50_S),
        verdict(p50, TARGET_P50_S),
        ms(p99),
        ms(TARGET_P99_S),
        verdict(p99, TARGET_P99_S),
        ms(max)
    );
    println!(
        "  background {:.0} readings/s journaled (target {:.0}/s)   gateway CPU {:.1} s   generator CPU {:.1} s   gateway peak RSS {:.0} MiB",
        of(&|r| r.background_rate),
        cfg.rate,
        of(&|r| r.gateway_cpu_s),
        of(&|r| r.generator_cpu_s),
        of(&|r| r.gateway_peak_rss_mib)
    );
    let sent: u64 = runs.iter().map(|r| r.alarms_sent).sum();
    let paged: u64 = runs.iter().map(|r| r.pages_received).sum();
    let warned = runs.iter().filter(|r| !r.warnings.is_empty()).count();
    println!(
        "  pages {paged} of {sent} SOS in all{}",
        if warned > 0 {
            format!("; {warned} run(s) with warnings (above)")
        } else {
            String::new()
        }
    );
}
