//! `linli-sim bench modbus`: the real gateway (a child process) polling a simulated
//! street — N lamp controllers and M power meters, each its own Modbus TCP connection —
//! every second. Prints, per run and as medians: the gateway's CPU (% of one core), how
//! late polls started (jitter p50/p99/max, from the gateway's own schedule), and readings
//! per second into the pipeline. Targets: ≤ 10 % of one core, p99 jitter ≤ 50 ms.
//!
//! Beside it, in the same run and against the same simulated street, the peer (`peer`):
//! Debian's pymodbus polling the same devices with the same reads.
//!
//! Owns the bench's set-up and report; the simulator is `modbus`, the poller the
//! gateway's.

pub mod peer;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::bench::{cpu_seconds, free_addr, wait_port, Server};
use crate::bench_alarms::latency::scrape;
use crate::modbus::{Fleet, FleetConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct ModbusBenchConfig {
    /// The `linli` binary.
    pub gateway_bin: PathBuf,
    /// Lamp controllers.
    pub lamps: usize,
    /// Power meters.
    pub meters: usize,
    /// Poll interval, ms.
    pub poll_ms: u64,
    /// Seconds before measuring (connections, first polls).
    pub warmup_s: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// Runs (medians over them).
    pub runs: usize,
    /// Also measure the pymodbus peer in each run.
    pub peer: bool,
}

/// One run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModbusRun {
    /// Gateway CPU, % of one core.
    pub gateway_cpu_pct: f64,
    /// This process's CPU (the simulated street), % of one core.
    pub simulator_cpu_pct: f64,
    /// Poll jitter, ms.
    pub jitter_p50_ms: f64,
    /// Poll jitter p99, ms.
    pub jitter_p99_ms: f64,
    /// Worst jitter, ms.
    pub jitter_max_ms: f64,
    /// Polls measured.
    pub polls: usize,
    /// Readings per second into the pipeline.
    pub readings_per_s: f64,
    /// Poll errors (timeouts, transport, protocol) while measuring.
    pub errors: f64,
}

fn gateway_config(
    dir: &Path,
    fleet: &Fleet,
    poll_ms: u64,
) -> Result<(PathBuf, std::net::SocketAddr)> {
    let (mqtt, http) = (free_addr()?, free_addr()?);
    let mut s = format!(
        "data_dir = \"{}\"\n[broker]\nlisten_v4 = \"{mqtt}\"\nlisten_v5 = \"{}\"\n[http]\nlisten = \"{http}\"\n[log]\nlevel = \"warn\"\n[modbus]\ntimeout_ms = 1000\n",
        dir.join("data").display(),
        free_addr()?
    );
    for d in fleet.devices() {
        let _ = write!(
            s,
            "[[modbus.device]]\nid = \"{}\"\nprofile = \"{}\"\ntcp = \"{}\"\nunit = {}\npoll_ms = {poll_ms}\nsite = \"city\"\nzone = \"main-street\"\n",
            d.id, d.profile, d.addr, d.unit
        );
    }
    let path = dir.join("gateway.toml");
    std::fs::write(&path, s)?;
    Ok((path, http))
}

fn errors(m: &std::collections::HashMap<String, f64>) -> f64 {
    ["timeout", "transport", "protocol", "connect"]
        .iter()
        .map(|k| {
            m.get(&format!("linli_modbus_errors_total{{kind=\"{k}\"}}"))
                .copied()
                .unwrap_or(0.0)
        })
        .sum()
}

async fn jitter(api: &crate::api::Api, reset: bool) -> Result<serde_json::Value> {
    tokio::task::block_in_place(|| {
        api.get(
            &format!("/api/modbus/jitter?reset={reset}"),
            Duration::from_secs(5),
        )
    })
}

/// p50, p99 and max (ms) and the polls they cover, from a jitter report: the gateway's
/// `/api/modbus/jitter` and the peer's `report` share its form.
fn jitter_of(v: &serde_json::Value) -> (f64, f64, f64, usize) {
    let ms = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let polls = v["samples"].as_u64().unwrap_or(0) as usize;
    (ms("p50_ms"), ms("p99_ms"), ms("max_ms"), polls)
}

/// Sleeps `seconds`, saying every 5 s how far the measurement is.
async fn wait_measuring(seconds: f64) {
    let mut left = seconds;
    while left > 0.0 {
        let step = left.min(5.0);
        tokio::time::sleep(Duration::from_secs_f64(step)).await;
        left -= step;
        eprintln!("  {:.0} s of {seconds:.0} s measured", seconds - left);
    }
}

/// The gateway polling `fleet`: started fresh, warmed up, measured, stopped.
async fn measure_gateway(cfg: &ModbusBenchConfig, fleet: &Fleet, dir: &Path) -> Result<ModbusRun> {
    let (config, http) = gateway_config(dir, fleet, cfg.poll_ms)?;
    let server = Server::gateway(&cfg.gateway_bin, &config)?;
    let pid = server.child.id().to_string();
    let me = std::process::id().to_string();
    wait_port(http, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs_f64(cfg.warmup_s)).await;
    let api = crate::api::Api::new(&http.to_string(), &dir.join("data"))?;
    jitter(&api, true).await?;
    let m0 = tokio::task::block_in_place(|| scrape(http))?;
    let (gw0, me0, t0) = (cpu_seconds(&pid)?, cpu_seconds(&me)?, Instant::now());
    wait_measuring(cfg.seconds).await;
    let (gw1, me1, dt) = (
        cpu_seconds(&pid)?,
        cpu_seconds(&me)?,
        t0.elapsed().as_secs_f64(),
    );
    let m1 = tokio::task::block_in_place(|| scrape(http))?;
    let (jitter_p50_ms, jitter_p99_ms, jitter_max_ms, polls) =
        jitter_of(&jitter(&api, false).await?);
    drop(server);
    let readings = |m: &std::collections::HashMap<String, f64>| {
        m.get("linli_modbus_readings_total").copied().unwrap_or(0.0)
    };
    Ok(ModbusRun {
        gateway_cpu_pct: (gw1 - gw0) / dt * 100.0,
        simulator_cpu_pct: (me1 - me0) / dt * 100.0,
        jitter_p50_ms,
        jitter_p99_ms,
        jitter_max_ms,
        polls,
        readings_per_s: (readings(&m1) - readings(&m0)) / dt,
        errors: errors(&m1) - errors(&m0),
    })
}

/// One run: a fresh simulated street, polled by a fresh gateway and (with `cfg.peer`) by
/// the pymodbus peer, one after the other; `peer_first` swaps the order so neither always
/// meets a warmer machine.
pub async fn run_once(
    cfg: &ModbusBenchConfig,
    dir: &Path,
    peer_first: bool,
) -> Result<(ModbusRun, Option<peer::PeerRun>)> {
    std::fs::create_dir_all(dir)?;
    // Each device its own TCP listener, as a street of controllers is (units sharing a
    // listener would be a Modbus TCP gateway, which the gateway polls in turn).
    let fleet = Fleet::start(&FleetConfig {
        lamps: cfg.lamps,
        meters: cfg.meters,
        units_per_listener: 1,
        ..FleetConfig::default()
    })
    .await?;
    let measure_peer = || async {
        eprintln!("  the pymodbus peer polls the same street ...");
        peer::measure(&fleet, dir, cfg.poll_ms, cfg.warmup_s, cfg.seconds).await
    };
    let mut peer_run = None;
    if cfg.peer && peer_first {
        peer_run = Some(measure_peer().await?);
    }
    eprintln!("  the gateway polls the street ...");
    let gateway = measure_gateway(cfg, &fleet, dir).await?;
    if cfg.peer && !peer_first {
        peer_run = Some(measure_peer().await?);
    }
    fleet.shutdown().await?;
    Ok((gateway, peer_run))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What a bench run measured: the gateway's figures and, with the peer, the peer's.
#[derive(Debug, Clone, Default)]
pub struct ModbusBenchReport {
    /// The gateway, per run.
    pub gateway: Vec<ModbusRun>,
    /// The pymodbus peer, per run (empty without `peer`).
    pub peer: Vec<peer::PeerRun>,
}

/// Runs the bench and prints the figures.
pub async fn run_bench(cfg: &ModbusBenchConfig) -> Result<ModbusBenchReport> {
    println!(
        "modbus bench: {} lamps + {} meters, each its own TCP connection, polled every {} ms; {} run(s) of {:.0} s after {:.0} s warm-up{}",
        cfg.lamps,
        cfg.meters,
        cfg.poll_ms,
        cfg.runs,
        cfg.seconds,
        cfg.warmup_s,
        if cfg.peer { "; peer: pymodbus polling the same street with the same reads" } else { "" }
    );
    let work = std::env::temp_dir().join(format!("linli-bench-modbus-{}", std::process::id()));
    let mut out = ModbusBenchReport::default();
    let runs = cfg.runs.max(1);
    for k in 1..=runs {
        eprintln!("run {k}/{runs}: starting the simulated street ...");
        let dir = work.join(format!("run-{k}"));
        let r = run_once(cfg, &dir, k % 2 == 0).await;
        let _ = std::fs::remove_dir_all(&dir);
        let (r, p) = r?;
        println!(
            "run {k}: gateway CPU {:.1} % of a core (target <= 10), jitter p50 {:.2} ms p99 {:.2} ms (target <= 50) max {:.2} ms over {} polls, {:.0} readings/s, {} poll errors; simulator CPU {:.1} %",
            r.gateway_cpu_pct, r.jitter_p50_ms, r.jitter_p99_ms, r.jitter_max_ms, r.polls, r.readings_per_s, r.errors, r.simulator_cpu_pct
        );
        if let Some(p) = p {
            println!(
                "run {k}: peer    CPU {:.1} % of a core, jitter p50 {:.2} ms p99 {:.2} ms max {:.2} ms over {} polls, {:.0} polls/s read whole, {} failed polls",
                p.cpu_pct, p.jitter_p50_ms, p.jitter_p99_ms, p.jitter_max_ms, p.polls, p.readings_per_s, p.errors
            );
            out.peer.push(p);
        }
        out.gateway.push(r);
    }
    let _ = std::fs::remove_dir_all(&work);
    let med = |f: fn(&ModbusRun) -> f64| median(out.gateway.iter().map(f).collect());
    println!(
        "median of {} run(s): gateway CPU {:.1} % of a core, jitter p99 {:.2} ms, {:.0} readings/s (expected {:.0})",
        out.gateway.len(),
        med(|r| r.gateway_cpu_pct),
        med(|r| r.jitter_p99_ms),
        med(|r| r.readings_per_s),
        (cfg.lamps + cfg.meters) as f64 * 1000.0 / cfg.poll_ms as f64
    );
    if !out.peer.is_empty() {
        let pmed = |f: fn(&peer::PeerRun) -> f64| median(out.peer.iter().map(f).collect());
        println!(
            "median of {} run(s): peer    CPU {:.1} % of a core, jitter p99 {:.2} ms, {:.0} polls/s; gateway/peer CPU {:.2}x",
            out.peer.len(),
            pmed(|p| p.cpu_pct),
            pmed(|p| p.jitter_p99_ms),
            pmed(|p| p.readings_per_s),
            med(|r| r.gateway_cpu_pct) / pmed(|p| p.cpu_pct)
        );
    }
    Ok(out)
}
