//! The ingest benchmark: N device connections publish sealed QoS1 readings through the
//! real `linli` gateway process into its journal, side by side in the same run with
//! Debian's mosquitto delivering the same packets to one subscriber. Prints rates, CPU
//! seconds and peak RSS per run, then medians and the ratio.
//!
//! Owns process orchestration and measurement; the MQTT traffic itself is `load`'s.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use linli_protocol::report::{PowerMeter, Report};
use rumqttc::mqttbytes::QoS;
use tokio::task::JoinSet;

use crate::device::SimDevice;
use crate::load::{AckReader, Conn, Counters, Credit, RESEND_AFTER};

/// Benchmark parameters.
#[derive(Debug, Clone)]
pub struct IngestBench {
    /// Device connections.
    pub connections: usize,
    /// Readings each connection publishes per run.
    pub per_connection: usize,
    /// QoS1 messages in flight per connection.
    pub window: usize,
    /// Alternating runs of each system.
    pub runs: usize,
    /// The `linli` binary.
    pub gateway_bin: PathBuf,
    /// The mosquitto binary.
    pub mosquitto_bin: PathBuf,
    /// Journal fsync policy for the gateway (`batch`, `interval`, `never`).
    pub fsync: String,
    /// Give up on a run after this long.
    pub timeout: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// "linli" or "mosquitto".
    pub system: &'static str,
    /// Readings delivered (journaled, or received by the subscriber).
    pub delivered: u64,
    /// Wall time from first publish to last delivery.
    pub seconds: f64,
    /// Server CPU seconds (user + system) during that time.
    pub cpu_s: f64,
    /// Server peak resident set, MiB.
    pub peak_rss_mib: f64,
    /// Generator CPU seconds during that time.
    pub generator_cpu_s: f64,
}

impl RunResult {
    /// Delivered readings per second.
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.seconds.max(1e-9)
    }
}

pub(crate) fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// CPU seconds (user + system) of a process, from /proc.
pub(crate) fn cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are utime and stime; `after` starts at field 3.
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ticks / clock_ticks())
}

/// The whole machine's CPU time so far, from /proc/stat, seconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MachineCpu {
    /// Processes (user, nice, system) and time stolen by the hypervisor.
    pub(crate) tasks: f64,
    /// Interrupt and softirq work (on loopback: much of the TCP traffic), which Linux
    /// charges to no process.
    pub(crate) irq: f64,
    /// Idle (and waiting for I/O).
    pub(crate) idle: f64,
}

impl MachineCpu {
    /// Now.
    pub(crate) fn read() -> Result<MachineCpu> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let cpu = stat
            .lines()
            .find(|l| l.starts_with("cpu "))
            .context("/proc/stat has no cpu line")?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let f: Vec<f64> = cpu
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        let sum = |ix: &[usize]| -> f64 {
            ix.iter()
                .map(|i| f.get(*i).copied().unwrap_or(0.0))
                .sum::<f64>()
                / clock_ticks()
        };
        Ok(MachineCpu {
            tasks: sum(&[0, 1, 2, 7]),
            irq: sum(&[5, 6]),
            idle: sum(&[3, 4]),
        })
    }

    /// What was spent between `earlier` and `self`.
    pub(crate) fn since(&self, earlier: &MachineCpu) -> MachineCpu {
        MachineCpu {
            tasks: self.tasks - earlier.tasks,
            irq: self.irq - earlier.irq,
            idle: self.idle - earlier.idle,
        }
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn http_metric(http: SocketAddr, name: &str) -> Option<f64> {
    let body = ureq::get(&format!("http://{http}/metrics"))
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    body.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub(crate) async fn wait_port(addr: SocketAddr, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{addr} did not open within {within:?}")
}

pub(crate) struct Server {
    pub(crate) child: Child,
}

impl Server {
    /// Starts `linli run --config CONFIG` from `bin`, its log on our stderr.
    pub(crate) fn gateway(bin: &Path, config: &Path) -> Result<Server> {
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Server { child })
    }
}

impl Drop for Server {
    /// Asks the server to stop (SIGINT, as Ctrl-C would), then kills it after 10 s.
    fn drop(&mut self) {
        crate::process::interrupt_then_kill(&mut self.child, Duration::from_secs(10));
    }
}

/// Provisions `n` devices with the gateway CLI into `data_dir`.
fn provision(bin: &Path, config: &Path, n: usize) -> Result<Vec<SimDevice>> {
    let out = Command::new(bin)
        .args([
            "provision",
            "--id",
            "bench",
            "--kind",
            "power_meter",
            "--site",
            "bench",
            "--zone",
            "z",
        ])
        .args(["--format", "json", "--count", &n.to_string(), "--config"])
        .arg(config)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "provisioning failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let creds: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    creds
        .iter()
        .map(|c| SimDevice::from_credentials_json(&c.to_string()).map_err(Into::into))
        .collect()
}

fn reading(i: usize) -> Report {
    Report::PowerMeter(PowerMeter {
        voltage_dv: 2300 + (i % 17) as u16,
        current_ma: 5_000 + (i % 1000) as u32,
        power_w: 1_150 + (i % 300) as i32,
        power_factor_milli: 950,
        frequency_chz: 5_000 + (i % 5) as u16,
        import_wh: 100_000 + i as u32,
    })
}

/// Connects every device, `concurrency` at a time.
pub(crate) async fn connect_all(
    addr: SocketAddr,
    devices: &[SimDevice],
    login: bool,
    subscribe_acks: bool,
) -> Result<Vec<Conn>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = JoinSet::new();
    for (i, d) in devices.iter().enumerate() {
        let d = d.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _p = gate.acquire_owned().await?;
            let mut c = if login {
                Conn::open(addr, &d.id, Some((&d.id, &d.password))).await?
            } else {
                Conn::open(addr, &d.id, None).await?
            };
            if subscribe_acks {
                c.subscribe(&d.ack_topic(), QoS::AtMostOnce).await?;
            }
            anyhow::Ok((i, c))
        });
    }
    let mut conns: Vec<Option<Conn>> = (0..devices.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, c) = r??;
        conns[i] = Some(c);
    }
    Ok(conns.into_iter().flatten().collect())
}

/// How one timed run publishes.
struct Drive<'a> {
    devices: &'a [SimDevice],
    frames: &'a Arc<Vec<Vec<Vec<u8>>>>,
    window: usize,
    /// Credit returns on the gateway's application acks (and frames are resent without
    /// one); otherwise on PUBACK.
    app_acks: bool,
    timeout: Duration,
    /// Server process id, for CPU accounting.
    pid: u32,
}

/// Publishes every device's frames and waits until `delivered()` reaches the total.
/// Returns (delivered, seconds, server CPU s, generator CPU s).
async fn drive(
    d: Drive<'_>,
    conns: Vec<Conn>,
    delivered: impl Fn() -> u64,
) -> Result<(u64, f64, f64, f64)> {
    let Drive {
        devices,
        frames,
        window,
        app_acks,
        timeout,
        pid,
    } = d;
    let total: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let counters = Arc::new(Counters::default());
    let me = std::process::id().to_string();
    let server_cpu0 = cpu_seconds(&pid.to_string())?;
    let gen_cpu0 = cpu_seconds(&me)?;
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        let topic = devices[i].topic_for(&reading(0));
        let frames = frames.clone();
        let counters = counters.clone();
        // Frames were sealed with counters 1, 2, ...: frame index = counter - 1.
        let credit = match app_acks {
            false => Credit::PubAck,
            true => {
                let dev = devices[i].clone();
                let read: AckReader = Arc::new(move |p: &[u8]| {
                    dev.open_ack(p).and_then(|c| (c as usize).checked_sub(1))
                });
                Credit::AppAck(read)
            }
        };
        set.spawn(async move {
            c.publish_all(&topic, &frames[i], window, credit, counters)
                .await
        });
    }
    let mut got = 0;
    while t0.elapsed() < timeout {
        got = delivered();
        if got >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&pid.to_string())? - server_cpu0;
    let gen_cpu = cpu_seconds(&me)? - gen_cpu0;
    set.abort_all();
    while set.join_next().await.is_some() {}
    let resent = counters.resent.load(Relaxed);
    if resent > 0 {
        eprintln!("  note: {resent} frames resent after {RESEND_AFTER:?} without an ack");
    }
    Ok((got, secs, server_cpu, gen_cpu))
}

impl IngestBench {
    fn drive<'a>(
        &self,
        devices: &'a [SimDevice],
        frames: &'a Arc<Vec<Vec<Vec<u8>>>>,
        app_acks: bool,
        pid: u32,
    ) -> Drive<'a> {
        Drive {
            devices,
            frames,
            window: self.window,
            app_acks,
            timeout: self.timeout,
            pid,
        }
    }

    /// Runs the benchmark and prints the table.
    pub async fn run(&self) -> Result<Vec<RunResult>> {
        let work = std::env::temp_dir().join(format!("linli-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let result = self.run_in(&work).await;
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    async fn run_in(&self, work: &Path) -> Result<Vec<RunResult>> {
        let seed_dir = work.join("seed");
        let seed_cfg = work.join("seed.toml");
        std::fs::write(&seed_cfg, format!("data_dir = {:?}\n", seed_dir))?;
        eprintln!("provisioning {} devices ...", self.connections);
        let devices = provision(&self.gateway_bin, &seed_cfg, self.connections)?;
        eprintln!(
            "sealing {} readings ...",
            self.connections * self.per_connection
        );
        let frames: Vec<Vec<Vec<u8>>> = devices
            .iter()
            .map(|d| {
                let mut d = d.clone();
                (0..self.per_connection)
                    .map(|i| d.seal_next(0, reading(i)).1)
                    .collect()
            })
            .collect();
        let sample = MqttSize::of(&devices[0], &frames[0][0]);
        eprintln!(
            "each reading: {} B sealed frame, {} B MQTT packet",
            sample.frame, sample.packet
        );
        let frames = Arc::new(frames);
        let mut results = Vec::new();
        for run in 1..=self.runs {
            eprintln!("run {run}/{}: linli ...", self.runs);
            let r = self
                .run_linli(work, run, &seed_dir, &devices, &frames)
                .await?;
            print_row(run, &r);
            results.push(r);
            eprintln!("run {run}/{}: mosquitto ...", self.runs);
            let r = self.run_mosquitto(work, run, &devices, &frames).await?;
            print_row(run, &r);
            results.push(r);
        }
        print_summary(&results, self);
        Ok(results)
    }

    async fn run_linli(
        &self,
        work: &Path,
        run: usize,
        seed: &Path,
        devices: &[SimDevice],
        frames: &Arc<Vec<Vec<Vec<u8>>>>,
    ) -> Result<RunResult> {
        let data = work.join(format!("linli-{run}"));
        std::fs::create_dir_all(&data)?;
        for f in std::fs::read_dir(seed)? {
            let f = f?;
            if f.file_type()?.is_file() {
                std::fs::copy(f.path(), data.join(f.file_name()))?;
            }
        }
        let (mqtt, http) = (free_addr()?, free_addr()?);
        let cfg = work.join(format!("linli-{run}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "data_dir = {data:?}\n[broker]\nlisten_v4 = \"{mqtt}\"\nlisten_v5 = \"127.0.0.1:0\"\n\
                 max_inflight = {w}\n{extra}[http]\nlisten = \"{http}\"\n[ingest]\nfsync = \"{f}\"\nrecent_per_device = 1\n\
                 [log]\nlevel = \"warn,rumqttd=off\"\n",
                w = self.window.max(1),
                f = self.fsync,
                extra = std::env::var("LINLI_BENCH_BROKER").unwrap_or_default()
            ),
        )?;
        let server = Server::gateway(&self.gateway_bin, &cfg)?;
        wait_port(http, Duration::from_secs(30)).await?;
        let conns = connect_all(mqtt, devices, true, true).await?;
        let pid = server.child.id();
        let (delivered, seconds, cpu_s, generator_cpu_s) =
            drive(self.drive(devices, frames, true, pid), conns, || {
                tokio::task::block_in_place(|| {
                    http_metric(http, "linli_readings_accepted_total").unwrap_or(0.0) as u64
                })
            })
            .await?;
        let lost = tokio::task::block_in_place(|| {
            let jumps = http_metric(http, "linli_broker_cursor_jumps_total").unwrap_or(0.0);
            let overload =
                http_metric(http, "linli_rejected_total{reason=\"overload\"}").unwrap_or(0.0);
            (jumps, overload)
        });
        if lost != (0.0, 0.0) {
            eprintln!(
                "  note: broker cursor jumps {}, overload refusals {} (devices would resend these)",
                lost.0, lost.1
            );
        }
        Ok(RunResult {
            system: "linli",
            delivered,
            seconds,
            cpu_s,
            peak_rss_mib: peak_rss_mib(pid),
            generator_cpu_s,
        })
    }

    async fn run_mosquitto(
        &self,
        work: &Path,
        run: usize,
        devices: &[SimDevice],
        frames: &Arc<Vec<Vec<Vec<u8>>>>,
    ) -> Result<RunResult> {
        let addr = free_addr()?;
        let conf = work.join(format!("mosquitto-{run}.conf"));
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n",
                addr.port()
            ),
        )?;
        let child = Command::new(&self.mosquitto_bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.mosquitto_bin.display()))?;
        let server = Server { child };
        wait_port(addr, Duration::from_secs(10)).await?;
        let mut sub = Conn::open(addr, "bench-subscriber", None).await?;
        sub.subscribe(linli_protocol::topic::UPLINK_FILTER, QoS::AtLeastOnce)
            .await?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicU64::new(0));
        let sub_task = tokio::spawn(sub.count_incoming(counters.clone(), stop.clone()));
        let conns = connect_all(addr, devices, false, false).await?;
        let pid = server.child.id();
        let c = counters.clone();
        let (delivered, seconds, cpu_s, generator_cpu_s) =
            drive(self.drive(devices, frames, false, pid), conns, move || {
                c.received.load(Relaxed)
            })
            .await?;
        stop.store(1, Relaxed);
        let _ = sub_task.await;
        Ok(RunResult {
            system: "mosquitto",
            delivered,
            seconds,
            cpu_s,
            peak_rss_mib: peak_rss_mib(pid),
            generator_cpu_s,
        })
    }
}

struct MqttSize {
    frame: usize,
    packet: usize,
}

impl MqttSize {
    fn of(d: &SimDevice, frame: &[u8]) -> MqttSize {
        let topic = d.topic_for(&reading(0));
        // fixed header (2) + topic length (2) + topic + packet id (2) + payload
        MqttSize {
            frame: frame.len(),
            packet: 2 + 2 + topic.len() + 2 + frame.len(),
        }
    }
}

fn print_row(run: usize, r: &RunResult) {
    println!(
        "run {run}  {:<9}  {:>9} readings in {:>6.2} s = {:>9.0} /s   server CPU {:>6.2} s ({:>5.2} µs/reading)   peak RSS {:>6.1} MiB   generator CPU {:>6.2} s",
        r.system,
        r.delivered,
        r.seconds,
        r.rate(),
        r.cpu_s,
        r.cpu_s * 1e6 / r.delivered.max(1) as f64,
        r.peak_rss_mib,
        r.generator_cpu_s
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn print_summary(results: &[RunResult], b: &IngestBench) {
    let of = |s: &str, f: &dyn Fn(&RunResult) -> f64| {
        median(results.iter().filter(|r| r.system == s).map(f).collect())
    };
    let total = (b.connections * b.per_connection) as u64;
    let complete = |s: &str| {
        results
            .iter()
            .filter(|r| r.system == s)
            .all(|r| r.delivered >= total)
    };
    let (lr, mr) = (
        of("linli", &RunResult::rate),
        of("mosquitto", &RunResult::rate),
    );
    println!(
        "\nmedian of {} runs, {} connections x {} readings, window {}, fsync {}:",
        b.runs, b.connections, b.per_connection, b.window, b.fsync
    );
    println!(
        "  linli      {lr:>9.0} readings/s accepted+journaled   CPU {:.2} s   peak RSS {:.1} MiB{}",
        of("linli", &|r| r.cpu_s),
        of("linli", &|r| r.peak_rss_mib),
        if complete("linli") {
            ""
        } else {
            "   (INCOMPLETE: timed out)"
        }
    );
    println!(
        "  mosquitto  {mr:>9.0} readings/s delivered to 1 subscriber   CPU {:.2} s   peak RSS {:.1} MiB{}",
        of("mosquitto", &|r| r.cpu_s),
        of("mosquitto", &|r| r.peak_rss_mib),
        if complete("mosquitto") { "" } else { "   (INCOMPLETE: timed out)" }
    );
    println!("  ratio linli / mosquitto: {:.2}x", lr / mr.max(1e-9));
}
