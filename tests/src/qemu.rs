//! Firmware under QEMU: find (or build) a cross-compiled ELF in the workspace's target
//! directory and run it on an emulated Cortex-M with semihosting, killed if it hangs.
//!
//! Owns locating, building and running; every assertion on what the firmware printed
//! lives in `tests/firmware_qemu.rs`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The firmware's bare-metal target.
pub const THUMBV7EM: &str = "thumbv7em-none-eabihf";

/// The workspace's target directory: `CARGO_TARGET_DIR`, else `target/` at its root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The release ELF of `bin` in `package` for [`THUMBV7EM`], always built first (like
/// `linli_bin`: a no-op when it is up to date, so after scripts/test.sh's build it costs
/// nothing, and a test never runs a stale ELF).
///
/// Without `features`: in the workspace's target directory, the very build
/// scripts/test.sh makes. With `features`: in a target directory of its own, so it never
/// replaces the plain ELF another test may be running.
pub fn firmware_elf(package: &str, bin: &str, features: &[&str]) -> Result<PathBuf> {
    let mut dir = target_dir();
    if !features.is_empty() {
        dir = dir.join("firmware-features").join(features.join("+"));
    }
    let elf = dir.join(THUMBV7EM).join("release").join(bin);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "-q",
            "-p",
            package,
            "--target",
            THUMBV7EM,
            "--release",
        ])
        .arg("--manifest-path")
        .arg(&manifest);
    if !features.is_empty() {
        build
            .args(["--features", &features.join(",")])
            .arg("--target-dir")
            .arg(&dir);
    }
    let what = format!("cargo build -p {package} --target {THUMBV7EM} --release {features:?}");
    let status = build.status().with_context(|| format!("run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    if !elf.is_file() {
        bail!("{} still missing after {what}", elf.display());
    }
    Ok(elf)
}

/// How a QEMU run ended.
#[derive(Debug)]
pub struct QemuRun {
    /// QEMU's exit status; `None` when it was killed for taking too long.
    pub status: Option<ExitStatus>,
    /// Semihosting output (QEMU's stdout).
    pub stdout: String,
    /// QEMU's own complaints.
    pub stderr: String,
    /// How long it ran.
    pub took: Duration,
}

/// A child process killed on drop, so a failing test leaves no QEMU behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `elf` on `machine` with `cpu` under `qemu-system-arm`, semihosting on (the
/// program's exit call is QEMU's exit status); kills it after `hang_after`.
pub fn run_qemu(elf: &Path, machine: &str, cpu: &str, hang_after: Duration) -> Result<QemuRun> {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-arm")
        .args(["-machine", machine, "-cpu", cpu, "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start qemu-system-arm (scripts/test.sh installs it)")?;
    let out = drain(child.stdout.take().context("qemu stdout")?);
    let err = drain(child.stderr.take().context("qemu stderr")?);
    let mut child = Killed(child);
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > hang_after {
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    drop(child); // kills it if it hung; the pipes close and the readers finish
    let took = start.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(QemuRun {
        status,
        stdout,
        stderr,
        took,
    })
}
