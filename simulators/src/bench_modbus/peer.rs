//! The Modbus benchmark's peer: Debian's pymodbus (`peers/pymodbus_poller.py`, run with
//! `/usr/bin/python3`) polling the same simulated street with the same reads the gateway
//! makes, so the bench can print the gateway's CPU and jitter beside a plain poller's.
//!
//! Owns the peer's read plan (from the gateway's own profiles and coalescing) and its
//! process; the figures' report is the bench's (`mod.rs`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use linli_gateway::ingest::modbus::config::ModbusConfig;
use linli_gateway::ingest::modbus::profile::Profiles;
use linli_gateway::ingest::modbus::registers::{blocks, Table};
use serde_json::{json, Value};

use crate::bench::cpu_seconds;
use crate::modbus::Fleet;

/// The peer, embedded so the bench needs nothing but Debian's python3-pymodbus.
const SCRIPT: &str = include_str!("../../peers/pymodbus_poller.py");

/// The interpreter Debian's python3-pymodbus is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// One measured stretch of the peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerRun {
    /// The peer's CPU, % of one core.
    pub cpu_pct: f64,
    /// Poll jitter p50, ms.
    pub jitter_p50_ms: f64,
    /// Poll jitter p99, ms.
    pub jitter_p99_ms: f64,
    /// Worst jitter, ms.
    pub jitter_max_ms: f64,
    /// Polls measured.
    pub polls: usize,
    /// Device polls whose every read succeeded, per second.
    pub readings_per_s: f64,
    /// Device polls with a failed read.
    pub errors: f64,
}

fn table_name(t: Table) -> &'static str {
    match t {
        Table::Holding => "holding",
        Table::Input => "input",
        Table::Coil => "coil",
        Table::Discrete => "discrete",
    }
}

/// Every device with the reads the gateway makes of it: its shipped profile's registers,
/// coalesced by the gateway's own `blocks` with the default gap.
pub fn plan(fleet: &Fleet, poll_ms: u64, timeout_ms: u64) -> Result<Value> {
    let profiles = Profiles::build(None)
        .map_err(|issues| anyhow!("the shipped Modbus profiles do not load: {issues:?}"))?;
    let max_gap = ModbusConfig::default().max_gap;
    let mut devices = Vec::new();
    for d in fleet.devices() {
        let profile = profiles
            .get(d.profile)
            .with_context(|| format!("no shipped profile `{}`", d.profile))?;
        let map = profile.map();
        let all: Vec<usize> = (0..map.len()).collect();
        let reads: Vec<Value> = blocks(&map, &all, max_gap)
            .iter()
            .map(|b| json!([table_name(b.table), b.start, b.count]))
            .collect();
        devices.push(json!({
            "id": d.id,
            "host": d.addr.ip().to_string(),
            "port": d.addr.port(),
            "unit": d.unit,
            "reads": reads,
        }));
    }
    Ok(json!({ "poll_ms": poll_ms, "timeout_ms": timeout_ms, "devices": devices }))
}

/// The running peer.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(dir: &Path, plan: &Value) -> Result<Peer> {
        let script = dir.join("pymodbus_poller.py");
        let plan_path = dir.join("peer-plan.json");
        std::fs::write(&script, SCRIPT)?;
        std::fs::write(&plan_path, serde_json::to_vec(plan)?)?;
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg(&plan_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!("starting the bench's peer with {PYTHON} (install python3-pymodbus, or pass --no-peer)")
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the peer's pipes were not set up");
        };
        let mut peer = Peer {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        peer.expect("ready")?;
        Ok(peer)
    }

    fn line(&mut self) -> Result<String> {
        let mut s = String::new();
        if self.stdout.read_line(&mut s)? == 0 {
            bail!("the pymodbus peer ended early (is python3-pymodbus installed? its errors are above)");
        }
        Ok(s.trim().to_string())
    }

    fn expect(&mut self, what: &str) -> Result<()> {
        let got = self.line()?;
        if got != what {
            bail!("the pymodbus peer said {got:?}, expected {what:?}");
        }
        Ok(())
    }

    fn command(&mut self, cmd: &str) -> Result<String> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.line()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        crate::process::interrupt_then_kill(&mut self.child, Duration::from_secs(5));
    }
}

/// Runs the peer against `fleet` for `warmup_s`, then measures it for `seconds`.
pub async fn measure(
    fleet: &Fleet,
    dir: &Path,
    poll_ms: u64,
    warmup_s: f64,
    seconds: f64,
) -> Result<PeerRun> {
    let plan = plan(fleet, poll_ms, 1000)?;
    let mut peer = tokio::task::block_in_place(|| Peer::start(dir, &plan))?;
    let pid = peer.child.id().to_string();
    tokio::time::sleep(Duration::from_secs_f64(warmup_s)).await;
    let ok = tokio::task::block_in_place(|| peer.command("reset"))?;
    if ok != "ok" {
        bail!("the pymodbus peer answered {ok:?} to reset");
    }
    let (cpu0, t0) = (cpu_seconds(&pid)?, Instant::now());
    super::wait_measuring(seconds).await;
    let (cpu1, dt) = (cpu_seconds(&pid)?, t0.elapsed().as_secs_f64());
    let report = tokio::task::block_in_place(|| peer.command("report"))?;
    let r: Value = serde_json::from_str(&report)
        .with_context(|| format!("the pymodbus peer's report {report:?}"))?;
    let (jitter_p50_ms, jitter_p99_ms, jitter_max_ms, polls) = super::jitter_of(&r);
    Ok(PeerRun {
        cpu_pct: (cpu1 - cpu0) / dt * 100.0,
        jitter_p50_ms,
        jitter_p99_ms,
        jitter_max_ms,
        polls,
        readings_per_s: r["readings"].as_f64().unwrap_or(0.0) / dt,
        errors: r["errors"].as_f64().unwrap_or(0.0),
    })
}
