//! A `linli` gateway process the simulators start (the load run, the demo): its config
//! and data in a scratch directory, on chosen loopback ports; started, killed -9 and
//! started again on the same data, stopped with SIGINT.
//!
//! Owns the process, its addresses and its CPU accounting across restarts; does not own
//! what the config says (the caller writes it) or any traffic.

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
    /// Its listeners.
    pub ports: Ports,
    /// Where its log goes (None: this process's stderr).
    log: Option<PathBuf>,
    child: Option<Child>,
    /// CPU seconds of processes already gone (before a restart).
    spent_cpu_s: f64,
    peak_rss_mib: f64,
}

/// The file that marks a directory as made by a simulator run (and so clearable).
const MARKER: &str = ".linli-sim";

/// Makes `dir` an empty scratch directory for `who`: creates it, or clears it when an
/// earlier simulator run made it (it holds the marker). Refuses any other non-empty
/// directory, so a mistyped `--work-dir` never deletes someone's data.
pub fn claim_dir(dir: &Path, who: &str) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            anyhow::bail!(
                "{} exists, is not empty and was not made by linli-sim: choose another directory",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        format!("made by {who}; the next run may clear it\n"),
    )?;
    Ok(())
}

/// The scratch directory of a run: `given`, or `$TMPDIR/{name}-{pid}`, claimed for
/// `name` (see [`claim_dir`]).
pub fn scratch_dir(given: Option<&Path>, name: &str) -> Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_owned(),
        None => std::env::temp_dir().join(format!("{name}-{}", std::process::id())),
    };
    claim_dir(&dir, name)?;
    Ok(dir)
}

/// After a run: removes its scratch directory, or says where it was kept.
pub fn leave_scratch(dir: &Path, keep: bool) {
    if keep {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Where a gateway listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// MQTT 3.1.1.
    pub mqtt: SocketAddr,
    /// MQTT 5 (the firmware's client speaks it).
    pub mqtt5: SocketAddr,
    /// HTTP API.
    pub http: SocketAddr,
}

impl Ports {
    /// Three free loopback ports.
    pub fn free() -> Result<Ports> {
        Ok(Ports {
            mqtt: free_addr()?,
            mqtt5: free_addr()?,
            http: free_addr()?,
        })
    }
}

impl Gateway {
    /// Writes `config(data dir, ports)` to `work/linli.toml` (data under `work/data`)
    /// without starting anything; `log`: a file for the gateway's output.
    pub fn prepare(
        bin: &Path,
        work: &Path,
        ports: Ports,
        log: Option<PathBuf>,
        config: impl FnOnce(&Path, &Ports) -> String,
    ) -> Result<Gateway> {
        let data = work.join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let path = work.join("linli.toml");
        std::fs::write(&path, config(&data, &ports))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Gateway {
            bin: bin.to_owned(),
            config: path,
            data,
            ports,
            log,
            child: None,
            spent_cpu_s: 0.0,
            peak_rss_mib: 0.0,
        })
    }

    /// Its config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Starts the process and waits until its API answers.
    pub async fn start(&mut self) -> Result<()> {
        let (out, err) = match &self.log {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                (Stdio::from(f.try_clone()?), Stdio::from(f))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        let child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        wait_port(self.ports.http, Duration::from_secs(120)).await?;
        wait_port(self.ports.mqtt, Duration::from_secs(30)).await?;
        wait_port(self.ports.mqtt5, Duration::from_secs(30)).await
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

#[cfg(test)]
mod tests {
    use super::claim_dir;

    #[test]
    fn a_scratch_directory_is_claimed_only_when_empty_or_made_by_a_run() {
        let base = std::env::temp_dir().join(format!("linli-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // Someone's data: refused and left alone.
        std::fs::create_dir_all(&base).expect("dir");
        std::fs::write(base.join("precious.txt"), "keep me").expect("file");
        let e = claim_dir(&base, "test").expect_err("refused");
        assert!(e.to_string().contains("not made by linli-sim"), "{e}");
        assert!(base.join("precious.txt").exists());
        // A run's directory: cleared and claimed again.
        let run = base.join("run");
        claim_dir(&run, "test").expect("new");
        std::fs::write(run.join("data.bin"), "x").expect("file");
        claim_dir(&run, "test").expect("again");
        assert!(!run.join("data.bin").exists());
        let _ = std::fs::remove_dir_all(&base);
    }
}
