//! Part 2, reading-to-alarm latency under load: the real `linli` process on free
//! loopback ports with the benchmark's rules, devices of the fleet provisioned with their
//! residents and assets, and sealed QoS1 readings published at a steady rate from one
//! connection per device, a small share of them SOS presses from distinct residents
//! (then repeats). At the end the gateway's own `/metrics` give the latency quantiles
//! (reading received → alarm record committed) and the readings journaled.
//!
//! Owns this run's orchestration and measurement; connections and pacing are
//! [`crate::load`]'s, process helpers [`crate::bench`]'s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use linli_gateway::registry::Registry;
use linli_protocol::report::{
    Bed, Door, HubHeartbeat, Manhole, Motion, Pendant, PowerMeter, StreetLight, Vitals, WasteBin,
    WaterLevel,
};
use linli_protocol::{DeviceKind, Report};
use tokio::task::JoinSet;

use super::fleet::Fleet;
use super::rules::{rules_text, TIMEZONE};
use crate::bench::{connect_all, cpu_seconds, free_addr, peak_rss_mib, wait_port, Server};
use crate::device::SimDevice;
use crate::load::{Counters, Pace};

/// Part 2's target: p99 reading-to-alarm latency, seconds.
pub const LATENCY_TARGET_P99_S: f64 = 0.005;

/// Part 2 parameters.
#[derive(Debug, Clone)]
pub struct LatencyConfig {
    /// The `linli` binary.
    pub gateway_bin: PathBuf,
    /// Device connections (the first devices of the fleet: residents' six devices and
    /// street assets, interleaved).
    pub connections: usize,
    /// Readings per second offered, all connections together.
    pub rate: f64,
    /// Seconds of measured load (SOS presses are spread over these).
    pub seconds: f64,
    /// Seconds of the same load before, without SOS: the gateway's start-up (first
    /// connections, first commits, page faults) is kept out of the latency figures.
    pub warmup: f64,
    /// Share of readings that are SOS presses (the first from each pendant raises an
    /// alarm, later ones repeat it).
    pub alarm_share: f64,
    /// QoS1 messages awaiting PUBACK per connection.
    pub window: usize,
    /// Journal fsync policy (`batch`, `interval`, `never`).
    pub fsync: String,
    /// Give up waiting for the gateway this long after the load ends.
    pub drain_timeout: Duration,
    /// Print progress every second.
    pub progress: bool,
}

/// What part 2 measured.
#[derive(Debug, Clone, Default)]
pub struct LatencyRun {
    /// Readings offered (published).
    pub offered: u64,
    /// Readings the gateway accepted (journaled).
    pub accepted: u64,
    /// From the first publish until the last reading was journaled, s.
    pub ingest_seconds: f64,
    /// SOS readings among them.
    pub alarm_readings: u64,
    /// Distinct residents pressing SOS.
    pub residents: u64,
    /// p50 reading-to-alarm latency, s.
    pub p50_s: f64,
    /// p99, s.
    pub p99_s: f64,
    /// Latency samples behind the quantiles (the gateway keeps the latest 10 000).
    pub samples: u64,
    /// `linli_alarms_raised_total`.
    pub raised: u64,
    /// `linli_alarm_transitions_total`.
    pub transitions: u64,
    /// Gateway CPU seconds during the load.
    pub gateway_cpu_s: f64,
    /// Generator (this process) CPU seconds during the load.
    pub generator_cpu_s: f64,
    /// Gateway peak RSS, MiB.
    pub gateway_peak_rss_mib: f64,
    /// `linli_journal_lag_seconds` (receive → durable, the oldest reading of the last
    /// group commit) sampled every 0.1 s after the warm-up: the ingest share of the
    /// latency.
    pub journal_lag_s: Vec<f64>,
    /// The largest `linli_journal_lag_seconds` seen during the warm-up.
    pub warmup_journal_lag_max_s: f64,
    /// Rejections, cursor jumps: anything that says readings were lost or refused.
    pub warnings: Vec<String>,
}

impl LatencyRun {
    /// Readings journaled per second.
    pub fn ingest_rate(&self) -> f64 {
        self.accepted as f64 / self.ingest_seconds.max(1e-9)
    }
}

/// Every sample of `/metrics` by name (labels included, as written).
pub(crate) fn scrape(http: SocketAddr) -> Result<HashMap<String, f64>> {
    let body = ureq::get(&format!("http://{http}/metrics"))
        .timeout(Duration::from_secs(5))
        .call()
        .with_context(|| format!("GET http://{http}/metrics"))?
        .into_string()?;
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_owned(), v.parse().ok()?))
        })
        .collect())
}

/// Every rejection, whatever the reason.
pub(crate) fn rejected(m: &HashMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("linli_rejected_total"))
        .map(|(_, v)| v)
        .sum()
}

fn metric(m: &HashMap<String, f64>, name: &str) -> Result<f64> {
    m.get(name).copied().with_context(|| {
        format!(
            "the gateway's /metrics has no `{name}`: a gateway without the alarm latency \
             metrics (commit \"Alarms wired\"), or no alarm-raising reading reached its alarm stage"
        )
    })
}

/// A reading of `kind` that raises nothing under the benchmark's rules.
pub(crate) fn normal_report(kind: DeviceKind, i: usize) -> Report {
    let w = (i % 7) as u8;
    match kind {
        DeviceKind::Pendant => Report::Pendant(Pendant::Activity {
            level: 25 + w,
            steps: 30 + u16::from(w),
        }),
        DeviceKind::Bed => Report::Bed(Bed {
            occupied: true,
            pressure: 600 + u16::from(w),
        }),
        DeviceKind::Vitals => Report::Vitals(Vitals {
            heart_rate_bpm: 62 + w,
            spo2_pct: 96,
            respiration_bpm: 14,
            quality: 90,
        }),
        DeviceKind::Motion => Report::Motion(Motion {
            motion: true,
            count: 1 + u16::from(w),
        }),
        DeviceKind::Door => Report::Door(Door { open: i & 1 == 0 }),
        DeviceKind::StreetLight => Report::StreetLight(StreetLight {
            relay_on: true,
            current_ma: 450 + u16::from(w),
            power_dw: 1035,
            dimming_pct: 100,
        }),
        DeviceKind::Manhole => Report::Manhole(Manhole {
            tilt_cdeg: 30 + i16::from(w),
            water_mm: 200,
            gas_ppm: 1,
        }),
        DeviceKind::WaterLevel => Report::WaterLevel(WaterLevel {
            level_mm: 20 + u16::from(w),
        }),
        DeviceKind::WasteBin => Report::WasteBin(WasteBin {
            fill_pct: 40,
            temperature_dc: 150 + i16::from(w),
            tilt_deg: 1,
        }),
        DeviceKind::PowerMeter => Report::PowerMeter(PowerMeter {
            voltage_dv: 2300 + u16::from(w),
            current_ma: 12_000,
            power_w: 2_600,
            power_factor_milli: 950,
            frequency_chz: 5000,
            import_wh: 100_000 + i as u32,
        }),
        _ => Report::HubHeartbeat(HubHeartbeat {
            devices_seen: 5,
            mains: true,
        }),
    }
}

/// The run's devices: the first `n` of a fleet big enough, provisioned into `data`.
fn provision(data: &Path, n: usize) -> Result<(Fleet, Vec<SimDevice>)> {
    let fleet = Fleet::new(n);
    let devices = provision_profiles(data, &fleet.profiles[..n])?;
    Ok((fleet, devices))
}

/// Provisions `profiles` into the registry in `data` (the gateway not running) and
/// returns their identities, in order.
pub(crate) fn provision_profiles(
    data: &Path,
    profiles: &[linli_gateway::registry::DeviceProfile],
) -> Result<Vec<SimDevice>> {
    let registry = Registry::open(data).context("opening the gateway's registry")?;
    profiles
        .iter()
        .map(|p| {
            let c = registry
                .provision(p)
                .with_context(|| format!("provisioning {}", p.id))?;
            let key: [u8; 32] = hex::decode(&c.key_hex)
                .ok()
                .and_then(|k| k.try_into().ok())
                .context("provisioning returned a bad key")?;
            Ok(SimDevice::new(&c.device_id, &c.password, c.key_id, &key))
        })
        .collect()
}

/// One device's sealed packets, (topic, frame), in publishing order.
type Packets = Vec<(String, Vec<u8>)>;

/// Each device's packets, the SOS among them, and the residents pressing it.
fn packets(
    cfg: &LatencyConfig,
    fleet: &Fleet,
    devices: &[SimDevice],
) -> Result<(Vec<Packets>, u64, u64)> {
    let n = devices.len();
    let span = cfg.warmup + cfg.seconds;
    let per_conn = ((cfg.rate * span) / n as f64).round().max(1.0) as usize;
    // SOS presses only after the warm-up.
    let first = ((cfg.warmup / span) * per_conn as f64) as usize;
    let measured = per_conn - first;
    let mut reports: Vec<Vec<Report>> = (0..n)
        .map(|d| {
            let kind = fleet.profiles[d].kind;
            (0..per_conn).map(|i| normal_report(kind, i + d)).collect()
        })
        .collect();
    let pendants: Vec<usize> = (0..n)
        .filter(|d| fleet.profiles[*d].kind == DeviceKind::Pendant)
        .collect();
    if pendants.is_empty() {
        bail!("no pendant among {n} connections: use --connections 2 or more");
    }
    let alarms = ((cfg.rate * cfg.seconds * cfg.alarm_share).round() as usize).max(1);
    // SOS k goes to pendant k mod P, at fraction (k + ½)/alarms of the measured part:
    // every resident's first press raises an alarm, later ones repeat it.
    let mut placed = 0u64;
    for k in 0..alarms {
        let seq = &mut reports[pendants[k % pendants.len()]];
        let mut at = first + (((k as f64 + 0.5) / alarms as f64) * measured as f64) as usize;
        while at < per_conn && matches!(seq[at], Report::Pendant(Pendant::Sos)) {
            at += 1;
        }
        if at < per_conn {
            seq[at] = Report::Pendant(Pendant::Sos);
            placed += 1;
        }
    }
    let residents = pendants.len().min(alarms) as u64;
    let now_s = linli_gateway::clock::now_ms() / 1000;
    let per_s = per_conn as f64 / span;
    let out = devices
        .iter()
        .zip(reports)
        .map(|(d, reports)| {
            let mut d = d.clone();
            reports
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let t = (now_s + (i as f64 / per_s) as u64) as u32;
                    (d.topic_for(&r), d.seal_next(t, r).1)
                })
                .collect()
        })
        .collect();
    Ok((out, placed, residents))
}

fn gateway_config(
    work: &Path,
    data: &Path,
    mqtt: SocketAddr,
    http: SocketAddr,
    cfg: &LatencyConfig,
) -> Result<PathBuf> {
    let path = work.join("linli.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {data:?}\n[broker]\nlisten_v4 = \"{mqtt}\"\nlisten_v5 = \"127.0.0.1:0\"\n\
             max_inflight = {w}\n[http]\nlisten = \"{http}\"\n[ingest]\nfsync = \"{f}\"\nrecent_per_device = 1\n\
             [alarms]\nrules = {rules:?}\ntimezone = \"{TIMEZONE}\"\n[log]\nlevel = \"warn,rumqttd=off\"\n",
            w = cfg.window.max(1),
            f = cfg.fsync,
            rules = work.join("rules.toml"),
        ),
    )?;
    Ok(path)
}

/// Runs part 2 once in `work` (a fresh directory).
pub async fn run(cfg: &LatencyConfig, work: &Path) -> Result<LatencyRun> {
    if cfg.connections < 2 || cfg.rate <= 0.0 || cfg.seconds <= 0.0 || cfg.warmup < 0.0 {
        bail!("part 2 needs at least 2 connections, a positive rate and seconds, and a warm-up of 0 s or more");
    }
    let data = work.join("data");
    let t = Instant::now();
    let (fleet, devices) = tokio::task::block_in_place(|| provision(&data, cfg.connections))?;
    eprintln!(
        "  provisioned {} devices in {:.1} s",
        devices.len(),
        t.elapsed().as_secs_f64()
    );
    std::fs::write(work.join("rules.toml"), rules_text(&fleet))?;
    let t = Instant::now();
    let (packets, alarm_readings, residents) = packets(cfg, &fleet, &devices)?;
    let offered: u64 = packets.iter().map(|p| p.len() as u64).sum();
    eprintln!(
        "  sealed {offered} readings ({alarm_readings} SOS from {residents} residents) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (mqtt, http) = (free_addr()?, free_addr()?);
    let config = gateway_config(work, &data, mqtt, http, cfg)?;
    let server = Server::gateway(&cfg.gateway_bin, &config)?;
    let pid = server.child.id();
    wait_port(http, Duration::from_secs(30)).await?;
    wait_port(mqtt, Duration::from_secs(30)).await?;
    let conns = connect_all(mqtt, &devices, true, false).await?;
    let before = scrape(http)?;
    let accepted0 = metric(&before, "linli_readings_accepted_total")?;
    let rejected0 = rejected(&before);

    let per_conn_rate = cfg.rate / devices.len() as f64;
    let counters = Arc::new(Counters::default());
    let sent = Arc::new(AtomicU64::new(0));
    let me = std::process::id().to_string();
    let (gw_cpu0, gen_cpu0) = (cpu_seconds(&pid.to_string())?, cpu_seconds(&me)?);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let packets = Arc::new(packets);
    let mut set = JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        let (packets, counters, sent) = (packets.clone(), counters.clone(), sent.clone());
        let pace = Pace {
            per_second: per_conn_rate,
            window: cfg.window,
            start,
            tick: Duration::from_millis(10),
        };
        set.spawn(async move { c.publish_paced(&packets[i], pace, counters, sent).await });
    }
    // Watch the gateway until every reading is journaled or refused.
    let total = offered as f64;
    let mut last = (Instant::now(), accepted0);
    let mut done_at = None;
    let mut journal_lag_s = Vec::new();
    let deadline = Duration::from_secs_f64(cfg.warmup + cfg.seconds) + cfg.drain_timeout;
    let mut warmup_lag_max: f64 = 0.0;
    tokio::time::sleep_until(start).await;
    let t0 = Instant::now();
    while t0.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = tokio::task::block_in_place(|| scrape(http))?;
        let acc = metric(&m, "linli_readings_accepted_total")? - accepted0;
        if let Some(lag) = m.get("linli_journal_lag_seconds") {
            if t0.elapsed().as_secs_f64() < cfg.warmup {
                warmup_lag_max = warmup_lag_max.max(*lag);
            } else {
                journal_lag_s.push(*lag);
            }
        }
        if acc + rejected(&m) - rejected0 >= total {
            done_at = Some(t0.elapsed());
            break;
        }
        if cfg.progress && last.0.elapsed() >= Duration::from_secs(1) {
            let lag = m
                .get("linli_follower_lag_records{follower=\"alarms\"}")
                .copied()
                .unwrap_or(0.0);
            eprintln!(
                "  {:>5.1} s: sent {:>9}, journaled {:>9} ({:>7.0}/s), alarm follower lag {lag:.0} records",
                t0.elapsed().as_secs_f64(),
                sent.load(Relaxed),
                acc,
                (acc - last.1) / last.0.elapsed().as_secs_f64()
            );
            last = (Instant::now(), acc);
        }
    }
    let ingest = done_at.unwrap_or_else(|| t0.elapsed());
    let gateway_cpu_s = cpu_seconds(&pid.to_string())? - gw_cpu0;
    let generator_cpu_s = cpu_seconds(&me)? - gen_cpu0;
    // Publishers end on their last PUBACK; give them a moment, then stop them.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while set.join_next().await.is_some() {}
    })
    .await;
    set.abort_all();
    // Let the alarm follower catch up before reading its figures.
    let settle = Instant::now();
    let mut m = tokio::task::block_in_place(|| scrape(http))?;
    while settle.elapsed() < cfg.drain_timeout {
        let lag = m
            .get("linli_follower_lag_records{follower=\"alarms\"}")
            .copied();
        if lag == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        m = tokio::task::block_in_place(|| scrape(http))?;
    }
    let accepted = (metric(&m, "linli_readings_accepted_total")? - accepted0) as u64;
    let mut warnings = Vec::new();
    if done_at.is_none() {
        warnings.push(format!(
            "only {accepted} of {offered} readings journaled or refused within {:.0} s",
            deadline.as_secs_f64()
        ));
    }
    for (name, v) in &m {
        let v = v - before.get(name).copied().unwrap_or(0.0);
        let lost =
            name.starts_with("linli_rejected_total") || name == "linli_broker_cursor_jumps_total";
        if lost && v > 0.0 {
            warnings.push(format!(
                "{name} rose by {v} (firmware would resend these; this generator does not)"
            ));
        }
    }
    warnings.sort();
    let run = LatencyRun {
        offered,
        accepted,
        ingest_seconds: ingest.as_secs_f64(),
        alarm_readings,
        residents,
        p50_s: metric(&m, "linli_alarm_latency_seconds{quantile=\"0.5\"}")?,
        p99_s: metric(&m, "linli_alarm_latency_seconds{quantile=\"0.99\"}")?,
        samples: metric(&m, "linli_alarm_latency_seconds_count")? as u64,
        raised: metric(&m, "linli_alarms_raised_total")? as u64,
        transitions: metric(&m, "linli_alarm_transitions_total")? as u64,
        gateway_cpu_s,
        generator_cpu_s,
        gateway_peak_rss_mib: peak_rss_mib(pid),
        journal_lag_s,
        warmup_journal_lag_max_s: warmup_lag_max,
        warnings,
    };
    drop(server);
    Ok(run)
}
