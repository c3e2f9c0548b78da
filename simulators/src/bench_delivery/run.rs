//! One run of the delivery benchmark: a fresh gateway from the seed registry, the
//! receiver, background telemetry, the courier's SOS, and the measurement (progress
//! lines while it runs).
//!
//! Owns the run's files (config, rules, routing), sealing, the monitor loop and turning
//! timestamps and `/metrics` into a [`DeliveryRun`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use linli_gateway::registry::{DeviceProfile, SubjectKind, Trust};
use linli_protocol::report::Pendant;
use linli_protocol::{DeviceKind, Report};
use tokio::task::JoinSet;

use super::courier::{Courier, Schedule, Stamps};
use super::receiver::{Receipts, Receiver};
use super::{quantile, DeliveryConfig, DeliveryRun};
use crate::bench::{
    connect_all, cpu_seconds, free_addr, peak_rss_mib, wait_port, MachineCpu, Server,
};
use crate::bench_alarms::fleet::{Fleet, HEARTBEAT_S};
use crate::bench_alarms::latency::{normal_report, provision_profiles, rejected, scrape};
use crate::bench_alarms::rules::{rules_text, TIMEZONE};
use crate::device::SimDevice;
use crate::load::{Counters, Pace};

/// The HMAC key of the benchmark's webhook.
const SECRET: &str = "linli-bench-delivery-secret";

/// The devices every run's gateway starts with, provisioned once.
#[derive(Debug)]
pub struct Seed {
    /// The registry (and nothing else) a run's data directory starts as a copy of.
    pub dir: PathBuf,
    /// The background fleet (its rules are the run's rules).
    pub fleet: Fleet,
    /// Background connections' devices.
    pub background: Vec<SimDevice>,
    /// One pendant per alarm, each its own resident.
    pub pendants: Vec<SimDevice>,
    /// The courier's login (a home hub).
    pub courier: SimDevice,
}

/// Pendant `i`: device `sos-pendant-NNNNN` of resident `SOS-NNNNN`, 20 to a wing.
fn pendant_profile(i: usize) -> DeviceProfile {
    DeviceProfile {
        id: format!("sos-pendant-{i:05}"),
        kind: DeviceKind::Pendant,
        site: format!("sos-home-{:03}", i / 200),
        zone: format!("sos-wing-{:04}", i / 20),
        subject: Some((SubjectKind::Resident, format!("SOS-{i:05}"))),
        heartbeat_s: Some(HEARTBEAT_S),
        trust: Trust::Sealed,
    }
}

impl Seed {
    /// Provisions the background devices, the pendants and the courier into `dir`.
    pub fn provision(cfg: &DeliveryConfig, dir: &Path) -> Result<Seed> {
        std::fs::create_dir_all(dir)?;
        let fleet = Fleet::new(cfg.connections);
        let mut profiles: Vec<DeviceProfile> = fleet.profiles[..cfg.connections].to_vec();
        profiles.extend((0..cfg.alarms).map(pendant_profile));
        profiles.push(DeviceProfile {
            id: "sos-courier".into(),
            kind: DeviceKind::HomeHub,
            site: "sos-home-000".into(),
            zone: "sos-wing-0000".into(),
            subject: None,
            heartbeat_s: Some(HEARTBEAT_S),
            trust: Trust::Sealed,
        });
        let mut devices = provision_profiles(dir, &profiles)?;
        let courier = devices.pop().context("no courier provisioned")?;
        let pendants = devices.split_off(cfg.connections);
        Ok(Seed {
            dir: dir.to_owned(),
            fleet,
            background: devices,
            pendants,
            courier,
        })
    }
}

/// One device's sealed packets, (topic, frame), in publishing order.
type Packets = Vec<(String, Vec<u8>)>;

/// Each background device's readings, enough for the whole run at its share of the rate.
fn background_packets(cfg: &DeliveryConfig, seed: &Seed) -> Vec<Packets> {
    let n = seed.background.len();
    let span = cfg.warmup + cfg.alarm_seconds() + cfg.tail;
    let per_conn = ((cfg.rate * span) / n as f64).round().max(1.0) as usize;
    let per_s = per_conn as f64 / span;
    let now_s = linli_gateway::clock::now_ms() / 1000;
    seed.background
        .iter()
        .enumerate()
        .map(|(d, dev)| {
            let kind = seed.fleet.profiles[d].kind;
            let mut dev = dev.clone();
            (0..per_conn)
                .map(|i| {
                    let r = normal_report(kind, i + d);
                    let t = (now_s + (i as f64 / per_s) as u64) as u32;
                    (dev.topic_for(&r), dev.seal_next(t, r).1)
                })
                .collect()
        })
        .collect()
}

/// Alarm `i`'s packet: pendant `i`'s first frame, an SOS, stamped with the time it is
/// due.
fn sos_packets(cfg: &DeliveryConfig, seed: &Seed) -> Packets {
    let due_s = linli_gateway::clock::now_ms() / 1000 + cfg.warmup as u64;
    seed.pendants
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let r = Report::Pendant(Pendant::Sos);
            let t = (due_s + (i as f64 / cfg.alarm_rate) as u64) as u32;
            let mut p = p.clone();
            (p.topic_for(&r), p.seal_next(t, r).1)
        })
        .collect()
}

/// The routing: one caregiver on duty everywhere, reached by the `sms` webhook; a
/// priority-1 alarm pages them at once, other priorities page nobody.
pub const ROUTING: &str = r#"[[person]]
id = "bench"
name = "Bench Caregiver"
phone = "+86 138 0000 0000"
contact = ["webhook:sms"]

[[team]]
id = "care"
role = "caregiver"
members = ["bench"]

[[policy]]
priority = 1
[[policy.step]]
after_s = 0
notify = ["caregiver"]

[[policy]]
priority = 2

[[policy]]
priority = 3

[[policy]]
priority = 4
"#;

/// Writes the run's gateway config, rules and routing into `dir`; checks the routing
/// as the gateway will.
fn write_config(
    cfg: &DeliveryConfig,
    seed: &Seed,
    dir: &Path,
    data: &Path,
    (mqtt, http): (SocketAddr, SocketAddr),
    webhook: &str,
) -> Result<PathBuf> {
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, rules_text(&seed.fleet))?;
    let routing = dir.join("routing.toml");
    std::fs::write(&routing, ROUTING)?;
    let path = dir.join("linli.toml");
    let text = format!(
        "data_dir = {data:?}\n[broker]\nlisten_v4 = \"{mqtt}\"\nlisten_v5 = \"127.0.0.1:0\"\n\
         max_inflight = {w}\n[http]\nlisten = \"{http}\"\n[ingest]\nfsync = \"{f}\"\nrecent_per_device = 1\n\
         [alarms]\nrules = {rules:?}\ntimezone = \"{TIMEZONE}\"\n[log]\nlevel = \"warn,rumqttd=off\"\n\
         [delivery]\nrouting = {routing:?}\nmqtt = {mq}\n\
         [[delivery.webhook]]\nname = \"sms\"\nurl = \"{webhook}\"\nsecret = \"{SECRET}\"\nreceives = \"pages\"\n",
        w = cfg.window.max(1),
        f = cfg.fsync,
        mq = cfg.mqtt_events,
    );
    std::fs::write(&path, &text)?;
    let config = linli_gateway::config::Config::parse(&text, &path)
        .map_err(|e| anyhow::anyhow!("the benchmark's gateway config: {e}"))?;
    linli_gateway::notify::stage::load_routing(&config, Some(&routing))
        .map_err(|e| anyhow::anyhow!("the benchmark's routing: {e}"))?;
    Ok(path)
}

/// A copy of the seed registry as a fresh data directory.
fn fresh_data(seed: &Seed, data: &Path) -> Result<()> {
    std::fs::create_dir_all(data)?;
    for f in std::fs::read_dir(&seed.dir)? {
        let f = f?;
        if f.file_type()?.is_file() {
            std::fs::copy(f.path(), data.join(f.file_name()))?;
        }
    }
    Ok(())
}

fn value(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

/// Publish → receipt of every alarm received in `(from, to]`, seconds, ascending.
fn latencies_between(
    stamps: &Stamps,
    receipts: &Receipts,
    from: Option<Instant>,
    to: Instant,
) -> Vec<f64> {
    let mut v: Vec<f64> = (0..stamps.at_ns.len())
        .filter_map(|i| {
            let got = receipts.received(i)?;
            if from.is_some_and(|f| got <= f) || got > to {
                return None;
            }
            Some(
                got.saturating_duration_since(stamps.sent_at(i)?)
                    .as_secs_f64(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// The gateway's figures at one moment.
#[derive(Clone)]
struct Snapshot {
    at: Instant,
    metrics: HashMap<String, f64>,
    background_sent: u64,
    sos_acked: u64,
}

fn snapshot(http: SocketAddr, background_sent: &AtomicU64, stamps: &Stamps) -> Result<Snapshot> {
    let metrics = tokio::task::block_in_place(|| scrape(http))?;
    Ok(Snapshot {
        at: Instant::now(),
        metrics,
        background_sent: background_sent.load(Relaxed),
        sos_acked: stamps.counters.pubacks.load(Relaxed),
    })
}

fn ms(s: f64) -> String {
    format!("{:.2} ms", s * 1e3)
}

/// Runs once in `dir` (created, a fresh directory).
pub async fn run_once(
    cfg: &DeliveryConfig,
    seed: &Seed,
    dir: &Path,
    run: usize,
) -> Result<DeliveryRun> {
    let data = dir.join("data");
    fresh_data(seed, &data)?;
    let n = seed.pendants.len();
    let base = Instant::now();
    let ids: Vec<String> = seed.pendants.iter().map(|p| p.id.clone()).collect();
    let receipts = Arc::new(Receipts::new(base, &ids, SECRET));
    let receiver = Receiver::start(receipts.clone())?;
    let (mqtt, http) = (free_addr()?, free_addr()?);
    let config = write_config(cfg, seed, dir, &data, (mqtt, http), &receiver.url())?;

    let t = Instant::now();
    let (background, sos) =
        tokio::task::block_in_place(|| (background_packets(cfg, seed), sos_packets(cfg, seed)));
    let offered: u64 = background.iter().map(|p| p.len() as u64).sum();
    eprintln!(
        "  sealed {offered} background readings and {} SOS in {:.1} s",
        sos.len(),
        t.elapsed().as_secs_f64()
    );

    let mut server = Server::gateway(&cfg.gateway_bin, &config)?;
    let pid = server.child.id();
    wait_port(http, Duration::from_secs(60)).await?;
    wait_port(mqtt, Duration::from_secs(60)).await?;
    let conns = connect_all(mqtt, &seed.background, true, false).await?;

    let stamps = Arc::new(Stamps::new(base, n));
    let start = Instant::now() + Duration::from_millis(300);
    let alarm_start = start + Duration::from_secs_f64(cfg.warmup);
    let courier = Courier::start(
        mqtt,
        &seed.courier,
        sos,
        Schedule {
            rate: cfg.alarm_rate,
            start: alarm_start,
            window: 1000,
        },
        stamps.clone(),
    )?;
    let background_sent = Arc::new(AtomicU64::new(0));
    let before = snapshot(http, &background_sent, &stamps)?;
    let counters = Arc::new(Counters::default());
    let per_conn_rate = cfg.rate / conns.len() as f64;
    let background = Arc::new(background);
    let mut set = JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        let (packets, counters, sent) = (
            background.clone(),
            counters.clone(),
            background_sent.clone(),
        );
        let pace = Pace {
            per_second: per_conn_rate,
            window: cfg.window,
            start: tokio::time::Instant::from_std(start),
            tick: Duration::from_millis(10),
        };
        set.spawn(async move { c.publish_paced(&packets[i], pace, counters, sent).await });
    }

    // Watch until every page is in, or the drain timeout after the last SOS.
    let me = std::process::id().to_string();
    let gw = pid.to_string();
    let mut window_start: Option<(Snapshot, [f64; 2], MachineCpu)> = None;
    let mut window_end: Option<Snapshot> = None;
    let mut give_up =
        alarm_start + Duration::from_secs_f64(cfg.alarm_seconds() * 2.0 + 60.0) + cfg.drain_timeout;
    let mut last_progress = Instant::now();
    let mut last_accepted = (
        Instant::now(),
        value(&before.metrics, "linli_readings_accepted_total"),
    );
    let mut last_receipt_cut: Option<Instant> = None;
    let mut notes = Vec::new();
    let mut last_scrape = Instant::now();
    // Most deliveries waiting (sampled every second), and when (s after the first SOS).
    let mut pending_peak = (0.0f64, 0.0f64);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(status) = server.child.try_wait()? {
            bail!("the gateway exited during the run ({status})");
        }
        let now = Instant::now();
        if window_start.is_none() && now >= alarm_start {
            let cpu = [cpu_seconds(&gw)?, cpu_seconds(&me)?];
            let machine = MachineCpu::read()?;
            window_start = Some((snapshot(http, &background_sent, &stamps)?, cpu, machine));
        }
        let sent = stamps.sent.load(Relaxed);
        if window_end.is_none() && (sent as usize >= n || courier.finished()) {
            window_end = Some(snapshot(http, &background_sent, &stamps)?);
            give_up = give_up.min(Instant::now() + cfg.drain_timeout);
            if (sent as usize) < n {
                notes.push(format!("the courier stopped after {sent} of {n} SOS"));
            }
        }
        let matched = receipts.matched.load(Relaxed);
        if window_end.is_some() && matched as usize >= n {
            break;
        }
        if now >= give_up {
            break;
        }
        if last_scrape.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let m = tokio::task::block_in_place(|| scrape(http))?;
        last_scrape = Instant::now();
        let pending = value(&m, "linli_deliveries_pending");
        if window_start.is_some() && pending > pending_peak.0 {
            pending_peak = (
                pending,
                now.saturating_duration_since(alarm_start).as_secs_f64(),
            );
        }
        if let Some(every) = cfg.progress.filter(|e| last_progress.elapsed() >= *e) {
            let acc = value(&m, "linli_readings_accepted_total");
            let rate = (acc - last_accepted.1) / last_accepted.0.elapsed().as_secs_f64();
            last_accepted = (Instant::now(), acc);
            let lat = latencies_between(&stamps, &receipts, last_receipt_cut, now);
            last_receipt_cut = Some(now);
            let pages = if lat.is_empty() {
                String::new()
            } else {
                format!(
                    "; last {:.0} s: {} pages, p50 {}, p99 {}, max {}",
                    every.as_secs_f64(),
                    lat.len(),
                    ms(quantile(&lat, 0.5)),
                    ms(quantile(&lat, 0.99)),
                    ms(lat.last().copied().unwrap_or(0.0))
                )
            };
            eprintln!(
                "  run {run} {:>6.1} s: journaled {:>7.0}/s; SOS sent {sent:>6}/{n}, pages {matched:>6}, deliveries pending {:.0}{pages}",
                now.saturating_duration_since(start).as_secs_f64(),
                rate,
                pending,
            );
            last_progress = Instant::now();
        }
    }
    let end = Instant::now();
    let gw_cpu_end = cpu_seconds(&gw)?;
    let gen_cpu_end = cpu_seconds(&me)?;
    let machine = MachineCpu::read()?;
    let after = snapshot(http, &background_sent, &stamps)?;
    let peak_rss = peak_rss_mib(pid);
    set.abort_all();
    while set.join_next().await.is_some() {}
    drop(server);
    let courier_cpu_s = if courier.finished() {
        courier.join()?
    } else {
        notes.push("the courier was still waiting for PUBACKs at the end".into());
        0.0
    };
    let receiver_cpu_s = receiver.stop()?;

    let (ws, [gw_cpu0, gen_cpu0], machine0) =
        window_start.context("the run ended before the first SOS")?;
    let we = window_end.unwrap_or_else(|| after.clone());
    let window_s = we
        .at
        .saturating_duration_since(ws.at)
        .as_secs_f64()
        .max(1e-9);
    let accepted = |s: &Snapshot| value(&s.metrics, "linli_readings_accepted_total");
    let background_rate =
        (accepted(&we) - accepted(&ws) - (we.sos_acked.saturating_sub(ws.sos_acked)) as f64)
            / window_s;
    let background_offered_rate =
        we.background_sent.saturating_sub(ws.background_sent) as f64 / window_s;

    let latencies_s = latencies_between(&stamps, &receipts, None, end);
    let (mut to_raised_ms, mut to_sent_ms, mut to_receipt_ms) =
        (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (Some(sent), Some(got)) = (stamps.sent_at(i), receipts.received(i)) else {
            continue;
        };
        let published_ms = stamps.wall_us[i].load(Relaxed) as f64 / 1e3;
        let got_ms = published_ms + got.saturating_duration_since(sent).as_secs_f64() * 1e3;
        let raised = receipts.raised_ms[i].load(Relaxed) as f64;
        let posted = receipts.sent_ms[i].load(Relaxed) as f64;
        if raised > 0.0 && posted > 0.0 {
            to_raised_ms.push(raised - published_ms);
            to_sent_ms.push(posted - raised);
            to_receipt_ms.push(got_ms - posted);
        }
    }
    for v in [&mut to_raised_ms, &mut to_sent_ms, &mut to_receipt_ms] {
        v.sort_by(|a, b| a.total_cmp(b));
    }

    let delta = |name: &str| value(&after.metrics, name) - value(&before.metrics, name);
    let mut r = DeliveryRun {
        alarms_sent: stamps.sent.load(Relaxed),
        pages_received: receipts.matched.load(Relaxed),
        requests: receipts.requests.load(Relaxed),
        duplicates: receipts.duplicates.load(Relaxed),
        unmatched: receipts.unmatched.load(Relaxed),
        bad_signatures: receipts.bad_signatures.load(Relaxed),
        latencies_s,
        to_raised_ms,
        to_sent_ms,
        to_receipt_ms,
        alarm_window_s: window_s,
        background_offered_rate,
        background_rate,
        measured_s: end.saturating_duration_since(ws.at).as_secs_f64(),
        gateway_cpu_s: gw_cpu_end - gw_cpu0,
        generator_cpu_s: gen_cpu_end - gen_cpu0,
        receiver_cpu_s,
        courier_cpu_s,
        // Linux charges some interrupt work to the interrupted process as well as to
        // /proc/stat's softirq: what is busy beyond these two is the rest.
        other_cpu_s: (machine.since(&machine0).tasks + machine.since(&machine0).irq
            - (gw_cpu_end - gw_cpu0)
            - (gen_cpu_end - gen_cpu0))
            .max(0.0),
        irq_cpu_s: machine.since(&machine0).irq,
        idle_cpu_s: machine.since(&machine0).idle,
        pending_peak,
        gateway_peak_rss_mib: peak_rss,
        raised: delta("linli_alarms_raised_total") as u64,
        delivered: delta("linli_deliveries_delivered_total") as u64,
        retries: delta("linli_delivery_retries_total") as u64,
        alarm_commit_s: after
            .metrics
            .get("linli_alarm_latency_seconds{quantile=\"0.5\"}")
            .copied()
            .zip(
                after
                    .metrics
                    .get("linli_alarm_latency_seconds{quantile=\"0.99\"}")
                    .copied(),
            ),
        warnings: Vec::new(),
    };
    warn(cfg, &r, &before, &after, &mut notes);
    r.warnings = notes;
    Ok(r)
}

/// Everything that says the figures are not the whole story.
fn warn(
    cfg: &DeliveryConfig,
    r: &DeliveryRun,
    before: &Snapshot,
    after: &Snapshot,
    out: &mut Vec<String>,
) {
    if r.missing() > 0 {
        out.push(format!(
            "{} of {} alarms' pages never arrived (waited {:.0} s after the last SOS)",
            r.missing(),
            r.alarms_sent,
            cfg.drain_timeout.as_secs_f64()
        ));
    }
    if (r.alarms_sent as usize) < cfg.alarms {
        out.push(format!(
            "only {} of {} SOS were sent",
            r.alarms_sent, cfg.alarms
        ));
    }
    if r.raised != r.alarms_sent {
        out.push(format!(
            "the gateway raised {} alarms for {} SOS",
            r.raised, r.alarms_sent
        ));
    }
    if r.duplicates > 0 {
        out.push(format!("{} pages arrived twice (resent)", r.duplicates));
    }
    if r.unmatched > 0 {
        out.push(format!(
            "{} requests were not a page of the benchmark's pendants",
            r.unmatched
        ));
    }
    if r.bad_signatures > 0 {
        out.push(format!(
            "{} requests had a missing or wrong X-Linli-Signature",
            r.bad_signatures
        ));
    }
    if r.retries > 0 {
        out.push(format!("{} delivery attempts were retried", r.retries));
    }
    let idle = r.idle_cpu_s / r.measured_s.max(1e-9);
    if idle < 0.1 {
        out.push(format!(
            "the machine had {idle:.2} cores idle on average: it was saturated, and the latency \
             includes waiting for a CPU"
        ));
    }
    let others = r.other_cpu_s / r.measured_s.max(1e-9);
    if others > 0.2 {
        out.push(format!(
            "the rest of the machine (other processes, kernel work charged to neither) kept \
             {others:.2} cores busy during the measurement: the figures include that interference"
        ));
    }
    if r.background_rate < 0.95 * cfg.rate {
        out.push(format!(
            "the background fell short: {:.0} readings/s journaled (generator wrote {:.0}/s) of {:.0}/s",
            r.background_rate, r.background_offered_rate, cfg.rate
        ));
    }
    for (name, v) in &after.metrics {
        let v = v - before.metrics.get(name).copied().unwrap_or(0.0);
        let lost = name.starts_with("linli_rejected_total")
            || name == "linli_broker_cursor_jumps_total"
            || name == "linli_deliveries_failed_total"
            || name == "linli_pages_unrouted_total"
            || name == "linli_delivery_db_errors_total";
        if lost && v > 0.0 {
            out.push(format!("{name} rose by {v}"));
        }
    }
    let rejected_total = rejected(&after.metrics) - rejected(&before.metrics);
    if rejected_total > 0.0 {
        out.push(format!(
            "{rejected_total} readings refused in all (firmware would resend these; this generator does not)"
        ));
    }
}
