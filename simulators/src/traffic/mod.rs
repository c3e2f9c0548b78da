//! Device traffic against a real gateway (`linli-sim load`): N sealed devices publish
//! at a controlled total rate with a mix of device kinds, optionally through a
//! reconnect storm (every device drops at once, or the gateway is killed -9 and
//! restarted, and the devices come back with jitter), with latency from each frame's
//! send time to its application ack. Afterwards every acked frame is looked up in the
//! gateway. Prints progress on the way and a summary with percentiles.
//!
//! Owns the run's timeline, the check and the summary; one device's loop is
//! [`device`]; the gateway process is [`crate::gateway`]. Does not own the wire codec or
//! the gateway itself.

pub mod device;
mod summary;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use linli_gateway::registry::{DeviceProfile, SubjectKind, Trust};
use linli_protocol::DeviceKind;
use tokio::sync::watch;

pub use summary::{LoadReport, StormReport};

use self::device::{Control, Plan, Shared};
use crate::gateway::{Gateway, Ports};

/// What makes every device reconnect at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StormCause {
    /// Every device drops its connection (an access point or uplink outage).
    Drop,
    /// The gateway is killed with SIGKILL and started again on the same data.
    Restart,
}

/// A reconnect storm.
#[derive(Debug, Clone, Copy)]
pub struct Storm {
    /// Seconds after publishing began.
    pub at_s: f64,
    /// What happens.
    pub cause: StormCause,
    /// Each device waits uniformly up to this long before reconnecting, s.
    pub jitter_s: f64,
}

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Devices, each its own connection, credentials and key.
    pub devices: usize,
    /// Readings per second, all devices together.
    pub rate: f64,
    /// Seconds of publishing.
    pub seconds: f64,
    /// Device kinds and their weights.
    pub mix: Vec<(DeviceKind, u32)>,
    /// Publish with QoS 1 (else QoS 0).
    pub qos1: bool,
    /// Most frames a device holds unacked.
    pub window: usize,
    /// A reconnect storm during the run.
    pub storm: Option<Storm>,
    /// Devices connecting at once at the start.
    pub connect_concurrency: usize,
    /// Seconds to wait for held frames after publishing ends.
    pub drain_timeout: Duration,
    /// Progress line interval.
    pub progress: Option<Duration>,
    /// The `linli` binary.
    pub gateway_bin: PathBuf,
    /// Scratch directory (default: a new one under $TMPDIR).
    pub work_dir: Option<PathBuf>,
    /// Keep the scratch directory.
    pub keep: bool,
}

impl LoadConfig {
    /// Defaults around `gateway_bin`: 100 devices, 1,000 readings/s for 30 s.
    pub fn new(gateway_bin: PathBuf) -> Self {
        LoadConfig {
            devices: 100,
            rate: 1_000.0,
            seconds: 30.0,
            mix: parse_mix(DEFAULT_MIX).unwrap_or_default(),
            qos1: true,
            window: 64,
            storm: None,
            connect_concurrency: 64,
            drain_timeout: Duration::from_secs(60),
            progress: Some(Duration::from_secs(5)),
            gateway_bin,
            work_dir: None,
            keep: false,
        }
    }

    /// Every problem, each naming its option.
    pub fn problems(&self) -> Vec<String> {
        let mut e = Vec::new();
        if self.devices == 0 {
            e.push("--devices: at least 1".to_owned());
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            e.push("--rate: a positive number of readings per second".to_owned());
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            e.push("--seconds: a positive duration".to_owned());
        }
        if self.mix.iter().all(|(_, w)| *w == 0) {
            e.push("--mix: give at least one kind a weight above 0".to_owned());
        }
        let max_window = linli_protocol::replay::WINDOW as usize / 2;
        if self.window == 0 || self.window > max_window {
            e.push(format!(
                "--window: 1 ..= {max_window} (held frames must stay inside the gateway's replay window)"
            ));
        }
        if let Some(s) = self.storm {
            if !(s.at_s >= 0.0 && s.at_s < self.seconds) {
                e.push("--storm-at: within the publishing time (0 ..< --seconds)".to_owned());
            }
            if !(s.jitter_s.is_finite() && s.jitter_s >= 0.0) {
                e.push("--storm-jitter: 0 or more seconds".to_owned());
            }
        }
        e
    }
}

/// The default payload mix.
pub const DEFAULT_MIX: &str = "power_meter=4,street_light=3,pendant=2,water_level=1";

/// Kinds whose normal readings the load sends.
const MIX_KINDS: [DeviceKind; 9] = [
    DeviceKind::PowerMeter,
    DeviceKind::StreetLight,
    DeviceKind::Pendant,
    DeviceKind::WaterLevel,
    DeviceKind::Manhole,
    DeviceKind::WasteBin,
    DeviceKind::Vitals,
    DeviceKind::Bed,
    DeviceKind::Motion,
];

/// Parses `kind=weight,...` (e.g. [`DEFAULT_MIX`]); names every bad entry.
pub fn parse_mix(text: &str) -> Result<Vec<(DeviceKind, u32)>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, w) = part.split_once('=').unwrap_or((part, "1"));
        match (DeviceKind::parse(k.trim()), w.trim().parse::<u32>()) {
            (Some(kind), Ok(w)) if MIX_KINDS.contains(&kind) => out.push((kind, w)),
            (Some(_), Ok(_)) | (None, _) => errors.push(format!(
                "{k:?} is not a kind the load sends; use {}",
                MIX_KINDS.map(|k| k.as_str()).join(", ")
            )),
            (_, Err(_)) => errors.push(format!("{part:?}: the weight is a whole number")),
        }
    }
    if !errors.is_empty() {
        bail!("--mix: {}", errors.join("; "));
    }
    Ok(out)
}

/// The kind of device `i` of `n`: the mix's weights laid out in proportion, interleaved.
fn kind_of(mix: &[(DeviceKind, u32)], i: usize) -> DeviceKind {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut slot = (i as u32) % total.max(1);
    for (k, w) in mix {
        if slot < *w {
            return *k;
        }
        slot -= w;
    }
    DeviceKind::PowerMeter
}

fn profile(kind: DeviceKind, i: usize) -> DeviceProfile {
    let care = matches!(
        kind,
        DeviceKind::Pendant | DeviceKind::Vitals | DeviceKind::Bed | DeviceKind::Motion
    );
    DeviceProfile {
        id: format!("load-{}-{i:05}", kind.as_str().replace('_', "-")),
        kind,
        site: "load".into(),
        zone: format!("zone-{:03}", i / 50),
        subject: Some(if care {
            (SubjectKind::Resident, format!("LR-{i:05}"))
        } else {
            (SubjectKind::Asset, format!("LA-{i:05}"))
        }),
        heartbeat_s: Some(900),
        trust: Trust::Sealed,
    }
}

/// The gateway's config for `devices` devices keeping `recent` readings each in memory.
fn config_text(data: &std::path::Path, p: &Ports, devices: usize, recent: usize) -> String {
    // rumqttd holds ~40 KiB per connection; leave room for the messages themselves.
    let budget_mib = (128 + devices * 48 / 1024).min(65_536);
    format!(
        "data_dir = {data:?}\n[broker]\nlisten_v4 = \"{mqtt}\"\nlisten_v5 = \"{mqtt5}\"\n\
         max_connections = {conns}\nmemory_budget_mib = {budget_mib}\nconnect_timeout_ms = 30000\n\
         [http]\nlisten = \"{http}\"\n[ingest]\nrecent_per_device = {recent}\n\
         [log]\nlevel = \"warn,rumqttd=off\"\n",
        mqtt = p.mqtt,
        mqtt5 = p.mqtt5,
        http = p.http,
        conns = devices + 64,
    )
}

/// Runs `cfg` in a scratch directory; prints progress and returns the figures.
pub async fn run(cfg: &LoadConfig) -> Result<LoadReport> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        bail!("load:\n  {}", problems.join("\n  "));
    }
    let work = crate::gateway::scratch_dir(cfg.work_dir.as_deref(), "linli-load")?;
    let r = run_in(cfg, &work).await;
    crate::gateway::leave_scratch(&work, cfg.keep);
    r
}

async fn run_in(cfg: &LoadConfig, work: &std::path::Path) -> Result<LoadReport> {
    let n = cfg.devices;
    let per_device = cfg.rate / n as f64;
    let expected_each = (per_device * cfg.seconds).ceil() as usize;
    let recent = (expected_each + expected_each / 4 + 32).clamp(256, 100_000);
    let mut gw = Gateway::prepare(&cfg.gateway_bin, work, Ports::free()?, None, |data, p| {
        config_text(data, p, n, recent)
    })?;
    let t = Instant::now();
    eprintln!("load: provisioning {n} devices ...");
    let profiles: Vec<DeviceProfile> = (0..n).map(|i| profile(kind_of(&cfg.mix, i), i)).collect();
    let data = gw.data.clone();
    let devices = tokio::task::spawn_blocking(move || {
        crate::bench_alarms::latency::provision_profiles(&data, &profiles)
    })
    .await??;
    eprintln!(
        "load: provisioned in {:.1} s; starting the gateway",
        t.elapsed().as_secs_f64()
    );
    gw.start().await?;

    let shared = Arc::new(Shared::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(cfg.connect_concurrency.max(1)));
    let (publishing_tx, publishing) = watch::channel(false);
    let (storm_tx, storm) = watch::channel(0u32);
    let (stop_tx, stop) = watch::channel(false);
    let ctl = Control {
        publishing,
        storm,
        stop,
    };
    let mut tasks = tokio::task::JoinSet::new();
    let t_connect = Instant::now();
    for (i, dev) in devices.into_iter().enumerate() {
        let plan = Plan {
            kind: kind_of(&cfg.mix, i),
            per_second: per_device,
            phase: Duration::from_secs_f64(i as f64 / n as f64 / per_device),
            qos1: cfg.qos1,
            window: cfg.window,
            jitter_s: cfg.storm.map_or(0.0, |s| s.jitter_s),
            seed: 0x10AD_0000 + i as u64,
            drop_on_storm: cfg.storm.is_some_and(|s| s.cause == StormCause::Drop),
        };
        let (ctl, shared, gate, addr) = (ctl.clone(), shared.clone(), gate.clone(), gw.ports.mqtt);
        tasks.spawn(async move { device::run(dev, addr, plan, ctl, &shared, &gate).await });
    }
    // Everyone online before the clock starts.
    let connect_within = Duration::from_secs(60 + n as u64 / 50);
    while shared.online.load(Relaxed) < n {
        if t_connect.elapsed() > connect_within {
            bail!(
                "only {} of {n} devices connected within {connect_within:?}",
                shared.online.load(Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_s = t_connect.elapsed().as_secs_f64();
    eprintln!(
        "load: {n} devices online in {connect_s:.1} s; publishing {} readings/s for {} s",
        cfg.rate, cfg.seconds
    );

    let me = std::process::id().to_string();
    let (gw_cpu0, sim_cpu0) = (gw.cpu_s(), crate::bench::cpu_seconds(&me)?);
    let t0 = Instant::now();
    publishing_tx.send_replace(true);
    let mut storm_report: Option<StormReport> = None;
    let mut storm_started: Option<Instant> = None;
    let mut last_progress = Instant::now();
    let mut last_acked = 0u64;
    let end = Duration::from_secs_f64(cfg.seconds);
    while t0.elapsed() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let (Some(s), None) = (cfg.storm, storm_started) {
            if t0.elapsed().as_secs_f64() >= s.at_s {
                eprintln!(
                    "load: storm: {}",
                    match s.cause {
                        StormCause::Drop => "every device drops its connection",
                        StormCause::Restart => "the gateway is killed (SIGKILL) and restarted",
                    }
                );
                storm_started = Some(Instant::now());
                storm_tx.send_replace(1);
                let mut back = None;
                if s.cause == StormCause::Restart {
                    gw.kill9();
                    let t = Instant::now();
                    gw.start()
                        .await
                        .context("restarting the gateway after SIGKILL")?;
                    back = Some(t.elapsed().as_secs_f64());
                }
                storm_report = Some(StormReport {
                    cause: s.cause,
                    jitter_s: s.jitter_s,
                    gateway_back_s: back,
                    all_back_s: None,
                });
            }
        }
        if let (Some(r), Some(at)) = (storm_report.as_mut(), storm_started) {
            if r.all_back_s.is_none() && shared.returned.load(Relaxed) >= n {
                r.all_back_s = Some(at.elapsed().as_secs_f64());
                eprintln!(
                    "load: all {n} devices back online {:.1} s after the storm began",
                    at.elapsed().as_secs_f64()
                );
            }
        }
        if let Some(every) = cfg.progress {
            if last_progress.elapsed() >= every {
                let acked = shared.acked.load(Relaxed);
                eprintln!(
                    "load: [{:>5.0} s] online {}/{n}, sealed {}, acked {}, waiting {}, resent {}, {:.0} acks/s",
                    t0.elapsed().as_secs_f64(),
                    shared.online.load(Relaxed),
                    shared.sealed.load(Relaxed),
                    acked,
                    shared.waiting.load(Relaxed),
                    shared.resent.load(Relaxed),
                    (acked - last_acked) as f64 / last_progress.elapsed().as_secs_f64(),
                );
                last_acked = acked;
                last_progress = Instant::now();
            }
        }
    }
    let publish_s = t0.elapsed().as_secs_f64();
    publishing_tx.send_replace(false);
    // Deliver what is held (and wait for stragglers of a late storm): done once every
    // device has seen publishing end and nothing waits for its ack.
    let t_drain = Instant::now();
    while t_drain.elapsed() < cfg.drain_timeout
        && (shared.quiet.load(std::sync::atomic::Ordering::Acquire) < n
            || shared.waiting.load(Relaxed) > 0
            || storm_report
                .as_ref()
                .is_some_and(|r| r.all_back_s.is_none()))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let (Some(r), Some(at)) = (storm_report.as_mut(), storm_started) {
            if r.all_back_s.is_none() && shared.returned.load(Relaxed) >= n {
                r.all_back_s = Some(at.elapsed().as_secs_f64());
            }
        }
    }
    let busy_s = t0.elapsed().as_secs_f64();
    let gateway_cpu_s = gw.cpu_s() - gw_cpu0;
    let simulator_cpu_s = crate::bench::cpu_seconds(&me)? - sim_cpu0;
    let online_at_end = shared.online.load(Relaxed);
    stop_tx.send_replace(true);
    let mut outcomes = Vec::with_capacity(n);
    // Devices stop at once (their writes give up after a while); bounded all the same.
    let joined = tokio::time::timeout(device::RESEND_AFTER * 3, async {
        while let Some(r) = tasks.join_next().await {
            outcomes.push(r.context("a device task panicked")??);
        }
        anyhow::Ok(())
    })
    .await;
    match joined {
        Ok(r) => r?,
        Err(_) => {
            tasks.abort_all();
            bail!(
                "{} devices did not stop within {:?}",
                n - outcomes.len(),
                device::RESEND_AFTER * 3
            );
        }
    }
    eprintln!("load: checking every acked frame in the gateway ...");
    let api = crate::api::Api::new(&gw.ports.http.to_string(), &gw.data)?;
    let check =
        tokio::task::spawn_blocking(move || summary::check(&api, &outcomes, recent)).await??;
    let gateway_peak_rss_mib = gw.peak_rss_mib();
    gw.stop();
    let mut latencies = std::mem::take(
        &mut *shared
            .latencies_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    latencies.sort_by(f32::total_cmp);
    Ok(LoadReport {
        devices: n,
        mix: cfg.mix.clone(),
        rate: cfg.rate,
        qos1: cfg.qos1,
        connect_s,
        publish_s,
        busy_s,
        sealed: shared.sealed.load(Relaxed),
        acked: shared.acked.load(Relaxed),
        resent: shared.resent.load(Relaxed),
        deferred: shared.deferred.load(Relaxed),
        waiting_at_end: shared.waiting.load(Relaxed),
        connects: shared.connects.load(Relaxed),
        failed_connects: shared.failed_connects.load(Relaxed),
        online_at_end,
        latencies_ms: latencies,
        storm: storm_report,
        check,
        gateway_cpu_s,
        simulator_cpu_s,
        gateway_peak_rss_mib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_parsed_and_laid_out_by_weight() {
        let mix = parse_mix("power_meter=3, pendant=1").unwrap();
        assert_eq!(
            mix,
            vec![(DeviceKind::PowerMeter, 3), (DeviceKind::Pendant, 1)]
        );
        let kinds: Vec<DeviceKind> = (0..8).map(|i| kind_of(&mix, i)).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == DeviceKind::Pendant).count(),
            2
        );
        let e = parse_mix("toaster=1,pendant=x").unwrap_err().to_string();
        assert!(
            e.contains("\"toaster\" is not a kind") && e.contains("whole number"),
            "{e}"
        );
        assert!(!parse_mix(DEFAULT_MIX).unwrap().is_empty());
    }

    #[test]
    fn bad_settings_are_named() {
        let cfg = LoadConfig {
            devices: 0,
            rate: 0.0,
            window: 0,
            storm: Some(Storm {
                at_s: 99.0,
                cause: StormCause::Drop,
                jitter_s: -1.0,
            }),
            ..LoadConfig::new("linli".into())
        };
        let p = cfg.problems().join("\n");
        for key in [
            "--devices",
            "--rate",
            "--window",
            "--storm-at",
            "--storm-jitter",
        ] {
            assert!(p.contains(key), "{key} missing from {p}");
        }
        assert!(LoadConfig::new("linli".into()).problems().is_empty());
    }
}
