//! `linli-sim bench delivery`: how long an SOS takes from the pendant's publish to the
//! page's receipt at a webhook (an SMS provider), while normal telemetry flows into the
//! same gateway.
//!
//! Each run starts the real `linli` process on free loopback ports with a fresh data
//! directory, the benchmark's rules and a routing file that pages one caregiver through
//! a webhook served by this process ([`receiver`]). Background connections publish
//! sealed QoS1 telemetry at a steady rate ([`crate::load`]); after a warm-up a courier
//! connection ([`courier`]) relays one SOS from each of many distinct pendants (each
//! its own resident, so each raises a new alarm and a new page) at a steady rate. The
//! latency of an alarm is the receiver's instant of its page minus the courier's
//! instant just before the SOS was written, on the same monotonic clock.
//!
//! Owns the benchmark's parameters, orchestration across runs and its results; one run
//! is [`run`]'s, printing [`report`]'s.

pub mod courier;
pub mod receiver;
pub mod report;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// The targets, seconds.
pub const TARGET_P50_S: f64 = 0.002;
/// p99 target, seconds.
pub const TARGET_P99_S: f64 = 0.010;

/// Benchmark parameters.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The `linli` binary.
    pub gateway_bin: PathBuf,
    /// SOS alarms per run, each from a distinct pendant.
    pub alarms: usize,
    /// SOS published per second (one courier connection).
    pub alarm_rate: f64,
    /// Background telemetry connections (the first devices of the alarm benchmark's
    /// fleet).
    pub connections: usize,
    /// Background readings per second offered, all connections together.
    pub rate: f64,
    /// Seconds of background load before the first SOS.
    pub warmup: f64,
    /// Seconds of background load after the last SOS (so the last pages also travel
    /// under load).
    pub tail: f64,
    /// QoS1 messages awaiting PUBACK per background connection (and the broker's
    /// `max_inflight`).
    pub window: usize,
    /// Journal fsync policy (`batch`, `interval`, `never`).
    pub fsync: String,
    /// `[delivery] mqtt`: publish alarm state and events on the gateway's broker too
    /// (the product default is off).
    pub mqtt_events: bool,
    /// Runs, each on a fresh gateway; medians are reported.
    pub runs: usize,
    /// After the last SOS, wait this long for missing pages.
    pub drain_timeout: Duration,
    /// Print a progress line this often (None = never).
    pub progress: Option<Duration>,
    /// Scratch directory (default: a new one under $TMPDIR); removed unless `keep`.
    pub work_dir: Option<PathBuf>,
    /// Keep the scratch directory (gateway data, configs).
    pub keep: bool,
}

impl DeliveryConfig {
    /// The figures: 10 000 alarms at 200/s under 50 000 readings/s from 500
    /// connections, 3 runs.
    pub fn new(gateway_bin: PathBuf) -> DeliveryConfig {
        DeliveryConfig {
            gateway_bin,
            alarms: 10_000,
            alarm_rate: 200.0,
            connections: 500,
            rate: 50_000.0,
            warmup: 5.0,
            tail: 3.0,
            window: 100,
            fsync: "batch".into(),
            mqtt_events: false,
            runs: 3,
            drain_timeout: Duration::from_secs(30),
            progress: Some(Duration::from_secs(5)),
            work_dir: None,
            keep: false,
        }
    }

    fn check(&self) -> Result<()> {
        if self.alarms == 0 || self.alarm_rate.is_nan() || self.alarm_rate <= 0.0 {
            bail!("--alarms and --alarm-rate must be positive");
        }
        if self.connections < 2 || self.rate.is_nan() || self.rate <= 0.0 {
            bail!("the background needs at least 2 connections and a positive rate");
        }
        let seconds = |s: f64| (0.0..1e6).contains(&s);
        if !(seconds(self.warmup) && seconds(self.tail)) {
            bail!("--warmup and --tail must be 0 s or more (and under 10^6 s)");
        }
        if !seconds(self.alarm_seconds()) || !seconds(self.rate) {
            bail!("--alarms / --alarm-rate must take under 10^6 s, and --rate be under 10^6/s");
        }
        if self.alarms > 99_999 {
            bail!("at most 99 999 alarms (one pendant each)");
        }
        if !matches!(self.fsync.as_str(), "batch" | "interval" | "never") {
            bail!("--fsync must be batch, interval or never");
        }
        Ok(())
    }

    /// Seconds over which the SOS are spread.
    pub fn alarm_seconds(&self) -> f64 {
        self.alarms as f64 / self.alarm_rate
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRun {
    /// SOS published.
    pub alarms_sent: u64,
    /// Distinct alarms whose page arrived.
    pub pages_received: u64,
    /// Every request the receiver got.
    pub requests: u64,
    /// Second pages for an alarm already paged.
    pub duplicates: u64,
    /// Requests that were not a page of the benchmark's pendants.
    pub unmatched: u64,
    /// Requests with a missing or wrong signature.
    pub bad_signatures: u64,
    /// Publish-to-receipt latency of every alarm paged, seconds, ascending.
    pub latencies_s: Vec<f64>,
    /// Per alarm paged, ms on the wall clock (gateway timestamps have ms resolution),
    /// ascending: publish → the gateway's `alarm.raised_ms` (the SOS reading's arrival
    /// at ingest).
    pub to_raised_ms: Vec<f64>,
    /// `alarm.raised_ms` → the page's `X-Linli-Timestamp` (the channel worker sends
    /// it): journal, alarm stage and commit, routing round and delivery commit, the
    /// channel's queue.
    pub to_sent_ms: Vec<f64>,
    /// `X-Linli-Timestamp` → receipt: the HTTP request.
    pub to_receipt_ms: Vec<f64>,
    /// Seconds from the first SOS to the last.
    pub alarm_window_s: f64,
    /// Background readings the generator wrote per second during that window.
    pub background_offered_rate: f64,
    /// Background readings the gateway journaled per second during that window (its
    /// accepted readings less the SOS).
    pub background_rate: f64,
    /// Seconds CPU measurements cover: the first SOS to the last page (or give-up).
    pub measured_s: f64,
    /// Gateway CPU seconds over `measured_s`.
    pub gateway_cpu_s: f64,
    /// This process's CPU seconds over `measured_s` (publishers, receiver, courier).
    pub generator_cpu_s: f64,
    /// The receiver thread's CPU seconds.
    pub receiver_cpu_s: f64,
    /// The courier thread's CPU seconds.
    pub courier_cpu_s: f64,
    /// CPU seconds the machine was busy with anything but the gateway and this process
    /// over `measured_s` (other processes, kernel work charged to neither): the
    /// interference of a shared machine. Approximate, never below 0.
    pub other_cpu_s: f64,
    /// Interrupt and softirq CPU seconds over `measured_s` (on loopback mostly this
    /// benchmark's own TCP traffic; Linux charges part of it to the processes too).
    pub irq_cpu_s: f64,
    /// Idle CPU seconds of the machine over `measured_s`.
    pub idle_cpu_s: f64,
    /// Most deliveries waiting for a receipt (`linli_deliveries_pending`, sampled every
    /// second), and when, seconds after the first SOS.
    pub pending_peak: (f64, f64),
    /// Gateway peak RSS, MiB.
    pub gateway_peak_rss_mib: f64,
    /// `linli_alarms_raised_total` during the run.
    pub raised: u64,
    /// `linli_deliveries_delivered_total`.
    pub delivered: u64,
    /// `linli_delivery_retries_total`.
    pub retries: u64,
    /// `linli_alarm_latency_seconds` p50 and p99 (reading → alarm commit), if present.
    pub alarm_commit_s: Option<(f64, f64)>,
    /// Missing pages, lost or refused readings, short background, bad signatures.
    pub warnings: Vec<String>,
}

/// The `q` quantile of ascending `v` (nearest rank); 0 when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

impl DeliveryRun {
    /// p50 latency, s.
    pub fn p50_s(&self) -> f64 {
        quantile(&self.latencies_s, 0.5)
    }
    /// p99 latency, s.
    pub fn p99_s(&self) -> f64 {
        quantile(&self.latencies_s, 0.99)
    }
    /// Largest latency, s.
    pub fn max_s(&self) -> f64 {
        self.latencies_s.last().copied().unwrap_or(0.0)
    }
    /// Alarms without a page.
    pub fn missing(&self) -> u64 {
        self.alarms_sent.saturating_sub(self.pages_received)
    }
}

/// Every run, each printed as it ends, then the medians. Devices are provisioned once
/// into a seed registry that each run's gateway starts from.
pub async fn run_bench(cfg: &DeliveryConfig) -> Result<Vec<DeliveryRun>> {
    cfg.check()?;
    let work = crate::gateway::scratch_dir(cfg.work_dir.as_deref(), "linli-bench-delivery")?;
    let r = run_in(cfg, &work).await;
    crate::gateway::leave_scratch(&work, cfg.keep);
    r
}

async fn run_in(cfg: &DeliveryConfig, work: &Path) -> Result<Vec<DeliveryRun>> {
    report::print_header(cfg);
    let t = Instant::now();
    let seed = tokio::task::block_in_place(|| run::Seed::provision(cfg, &work.join("seed")))?;
    eprintln!(
        "provisioned {} background devices, {} pendants and the courier in {:.1} s",
        seed.background.len(),
        seed.pendants.len(),
        t.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    for k in 1..=cfg.runs.max(1) {
        let dir = work.join(format!("run-{k}"));
        eprintln!(
            "run {k}/{}: starting the gateway in {} ...",
            cfg.runs.max(1),
            dir.display()
        );
        let r = run::run_once(cfg, &seed, &dir, k).await;
        if !cfg.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let r = r?;
        report::print_run(k, cfg, &r);
        out.push(r);
    }
    report::print_summary(cfg, &out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_routing_pages_the_caregiver_through_the_webhook() {
        let text = "data_dir = \"/nonexistent\"\n[[delivery.webhook]]\nname = \"sms\"\n\
                    url = \"http://127.0.0.1:1/sms\"\nreceives = \"pages\"\n";
        let path = std::path::Path::new("bench.toml");
        let config = linli_gateway::config::Config::parse(text, path).unwrap();
        let dir = std::env::temp_dir().join(format!("linli-routing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("routing.toml");
        std::fs::write(&file, run::ROUTING).unwrap();
        let r = linli_gateway::notify::stage::load_routing(&config, Some(&file));
        let _ = std::fs::remove_dir_all(&dir);
        let r = r.unwrap();
        assert_eq!(r.people.len(), 1);
        assert!(r.policy(1, "sos").is_some_and(|p| !p.steps.is_empty()));
    }
}
