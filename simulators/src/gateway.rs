//! The gateway a load run drives: a `linli` process on free loopback ports, sized for
//! the run (connections, broker memory, readings kept per device), that the run can
//! kill -9 and start again on the same data.
//!
//! Owns the process and its CPU accounting across restarts; does not own the traffic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::{cpu_seconds, free_addr, peak_rss_mib, wait_port};

/// A gateway process and its addresses.
#[derive(Debug)]
pub struct Gateway {
    bin: PathBuf,
    config: PathBuf,
    /// Data directory (registry, journal).
    pub data: PathBuf,
    /// MQTT 3.1.1 listener.
    pub mqtt: SocketAddr,
    /// HTTP API.
    pub http: SocketAddr,
    child: Option<Child>,
    /// CPU seconds of processes already gone (before a restart).
    spent_cpu_s: f64,
    peak_rss_mib: f64,
}

/// Sizing for a run of `devices` devices keeping `recent` readings each in memory.
pub fn config_text(
    data: &Path,
    mqtt: SocketAddr,
    http: SocketAddr,
    devices: usize,
    recent: usize,
) -> String {
    // rumqttd holds ~40 KiB per connection; leave room for the messages themselves.
    let budget_mib = (128 + devices * 48 / 1024).min(65_536);
    format!(
        "data_dir = {data:?}\n[broker]\nlisten_v4 = \"{mqtt}\"\nlisten_v5 = \"127.0.0.1:0\"\n\
         max_connections = {conns}\nmemory_budget_mib = {budget_mib}\nconnect_timeout_ms = 30000\n\
         [http]\nlisten = \"{http}\"\n[ingest]\nrecent_per_device = {recent}\n\
         [log]\nlevel = \"warn,rumqttd=off\"\n",
        conns = devices + 64,
    )
}

impl Gateway {
    /// Writes a config into `work` (data under `work/data`) without starting anything.
    pub fn prepare(bin: &Path, work: &Path, devices: usize, recent: usize) -> Result<Gateway> {
        let data = work.join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let (mqtt, http) = (free_addr()?, free_addr()?);
        let config = work.join("linli.toml");
        std::fs::write(&config, config_text(&data, mqtt, http, devices, recent))
            .with_context(|| format!("writing {}", config.display()))?;
        Ok(Gateway {
            bin: bin.to_owned(),
            config,
            data,
            mqtt,
            http,
            child: None,
            spent_cpu_s: 0.0,
            peak_rss_mib: 0.0,
        })
    }

    /// Starts the process and waits until its API answers.
    pub async fn start(&mut self) -> Result<()> {
        let child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        wait_port(self.http, Duration::from_secs(120)).await?;
        wait_port(self.mqtt, Duration::from_secs(30)).await
    }

    /// Kills the process with SIGKILL (no chance to flush or say goodbye).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.note_usage(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn note_usage(&mut self, pid: u32) {
        self.spent_cpu_s += cpu_seconds(&pid.to_string()).unwrap_or(0.0);
        self.peak_rss_mib = self.peak_rss_mib.max(peak_rss_mib(pid));
    }

    /// CPU seconds of every process of this gateway so far.
    pub fn cpu_s(&self) -> f64 {
        self.spent_cpu_s
            + self
                .child
                .as_ref()
                .map_or(0.0, |c| cpu_seconds(&c.id().to_string()).unwrap_or(0.0))
    }

    /// Highest resident set of any of its processes, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_mib
            .max(self.child.as_ref().map_or(0.0, |c| peak_rss_mib(c.id())))
    }

    /// Asks the process to stop (SIGINT) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.note_usage(c.id());
            crate::process::interrupt_then_kill(&mut c, Duration::from_secs(15));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}
