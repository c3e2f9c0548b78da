//! The VictoriaMetrics side of the storage benchmark: starts Debian's
//! `victoria-metrics` on a free loopback port and a fresh data directory, writes the
//! pre-formatted corpus through the InfluxDB v2 write API, lets merges settle, checks the
//! stored point count, times the plan's queries and reads the server's peak RSS.
//!
//! Owns the VictoriaMetrics process and its HTTP traffic (ureq, blocking). Does not own
//! the corpus, the line-protocol format ([`super::lineproto`]) or the report.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::lineproto::{format_corpus, Batches};
use super::{du_bytes, proc_status_bytes, QueryPlan, SideFigures, StoreBench};
use crate::corpus::Corpus;

/// Flags besides address and data path, and why:
/// - retention 100 y: VM drops (silently) samples older than its retention;
/// - dedup 1 ms: as the gateway's export runs it (replays do not duplicate samples);
/// - no response cache: each repeat of a query is computed, as in the Linli store;
/// - final merge 5 s after ingest stops: the settled, compacted size is what we report.
pub const VM_FLAGS: [&str; 5] = [
    "-retentionPeriod=100y",
    "-dedup.minScrapeInterval=1ms",
    "-search.disableCache",
    "-finalMergeDelay=5s",
    "-loggerLevel=ERROR",
];

/// VictoriaMetrics side parameters.
#[derive(Debug, Clone)]
pub struct VmSide {
    /// The victoria-metrics binary.
    pub bin: PathBuf,
    /// Work directory (data in `data/`, log in `vm.log`).
    pub dir: PathBuf,
    /// Lines per write request.
    pub batch_lines: usize,
    /// Concurrent write connections.
    pub connections: usize,
    /// The store is settled when its size and merges have not moved for this long.
    pub quiet: Duration,
    /// Give up settling after this long.
    pub settle_timeout: Duration,
}

impl VmSide {
    /// Parameters from the benchmark's.
    pub fn from_bench(b: &StoreBench) -> Self {
        VmSide {
            bin: b.vm_bin.clone(),
            dir: b.out_dir.clone(),
            batch_lines: b.batch_lines,
            connections: b.connections,
            quiet: Duration::from_secs(20),
            settle_timeout: Duration::from_secs(900),
        }
    }

    /// One full measurement in a fresh server.
    pub fn run(&self, corpus: &Corpus, plan: &QueryPlan) -> Result<SideFigures> {
        eprintln!("  vm: formatting line protocol (untimed) ...");
        let batches = format_corpus(corpus, self.batch_lines);
        let bytes: usize = batches.bodies.iter().map(Vec::len).sum();
        eprintln!(
            "  vm: {} points in {} lines, {} requests, {:.0} MiB",
            batches.points,
            batches.lines,
            batches.bodies.len(),
            bytes as f64 / 1048576.0
        );
        let data = self.dir.join("data");
        let vm = Vm::start(&self.bin, &data, &self.dir.join("vm.log"))?;
        let seconds = self.ingest(&vm, &batches)?;
        let mut f = SideFigures {
            points: batches.points,
            ingest_points_per_s: batches.points as f64 / seconds,
            ..SideFigures::default()
        };
        eprintln!(
            "  vm: ingested in {seconds:.2} s = {:.0} points/s",
            f.ingest_points_per_s
        );
        let (size, unsettled, settle) = self.settle(&vm, &data)?;
        f.bytes_on_disk = size;
        f.bytes_per_point = size as f64 / batches.points.max(1) as f64;
        let stored = vm.count_all()?;
        if stored != batches.points {
            bail!(
                "VictoriaMetrics holds {stored} points, {} written",
                batches.points
            );
        }
        let (raw_ms, raw_n) = vm.time_query(plan, Query::Raw)?;
        let (agg_ms, agg_n) = vm.time_query(plan, Query::Buckets)?;
        (f.query_raw_24h_ms, f.raw_points_returned) = (raw_ms, raw_n);
        (f.query_1m_24h_ms, f.buckets_returned) = (agg_ms, agg_n);
        f.peak_rss_bytes = proc_status_bytes(&vm.child.id().to_string(), "VmHWM")?;
        f.notes = vec![
            format!(
                "{} concurrent connections, {} lines/request; timed: first write to last 2xx + /internal/force_flush",
                self.connections, self.batch_lines
            ),
            format!(
                "disk: du of the data dir once size and vm_active_merges were still for {:?} ({settle:.0} s after flush; 1 s after flush: {unsettled} B = {:.3} B/point); {stored} points read back",
                self.quiet,
                unsettled as f64 / batches.points.max(1) as f64
            ),
            format!("flags: {}", VM_FLAGS.join(" ")),
        ];
        Ok(f)
    }

    /// Writes every body, `connections` at a time; seconds until flushed.
    fn ingest(&self, vm: &Vm, b: &Batches) -> Result<f64> {
        let url = vm.url("/api/v2/write?org=linli&bucket=bench&precision=ms");
        // One agent (= one keep-alive connection) per writer thread.
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let failed: Mutex<Option<String>> = Mutex::new(None);
        let abort = AtomicBool::new(false);
        let n = b.bodies.len();
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..self.connections.max(1) {
                s.spawn(|| {
                    let agent = agent(Duration::from_secs(300));
                    while let Some(body) = b.bodies.get(next.fetch_add(1, Relaxed)) {
                        if abort.load(Relaxed) {
                            break;
                        }
                        // ureq answers every status >= 400 with an error.
                        if let Err(e) = agent.post(&url).send_bytes(body) {
                            let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                            f.get_or_insert(e.to_string());
                            abort.store(true, Relaxed);
                        }
                        done.fetch_add(1, Relaxed);
                    }
                });
            }
            let mut last = Instant::now();
            while done.load(Relaxed) < n && !abort.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() >= Duration::from_secs(2) {
                    last = Instant::now();
                    eprintln!("  vm: {}/{n} requests written", done.load(Relaxed));
                }
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            bail!("write to VictoriaMetrics failed: {e}");
        }
        vm.get("/internal/force_flush")?;
        Ok(t0.elapsed().as_secs_f64())
    }

    /// Waits until the data directory's size and VM's active merges and pending rows have
    /// been still for `quiet`. Returns (bytes, bytes a second after the flush, seconds
    /// waited).
    fn settle(&self, vm: &Vm, data: &Path) -> Result<(u64, u64, f64)> {
        let t0 = Instant::now();
        let mut first = None;
        let mut last = (u64::MAX, f64::NAN);
        let mut still_since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let busy = vm.metric_sum("vm_active_merges")? + vm.metric_sum("vm_pending_rows")?;
            let size = du_bytes(data)?;
            first.get_or_insert(size);
            if size != last.0 || busy > 0.0 {
                if size != last.0 {
                    eprintln!("  vm: settling: {size} B on disk, merges+pending {busy}");
                }
                still_since = Instant::now();
            }
            last = (size, busy);
            if still_since.elapsed() >= self.quiet {
                return Ok((size, first.unwrap_or(size), t0.elapsed().as_secs_f64()));
            }
            if t0.elapsed() > self.settle_timeout {
                bail!(
                    "VictoriaMetrics did not settle within {:?}",
                    self.settle_timeout
                );
            }
        }
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(timeout).build()
}

#[derive(Debug, Clone, Copy)]
enum Query {
    /// `/api/v1/export` of the series over the window.
    Raw,
    /// `/api/v1/query_range` of `avg_over_time(series[step])` every step.
    Buckets,
}

/// A running victoria-metrics, stopped (SIGINT, then SIGKILL after 10 s) on drop.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    addr: SocketAddr,
    agent: ureq::Agent,
}

impl Vm {
    /// Starts `bin` with [`VM_FLAGS`] on a free loopback port, data in `data`, output to
    /// `log`, and waits for `/health`.
    pub fn start(bin: &Path, data: &Path, log: &Path) -> Result<Vm> {
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(log).context("creating vm.log")?;
        let child = Command::new(bin)
            .arg(format!("-httpListenAddr={addr}"))
            .arg(format!("-storageDataPath={}", data.display()))
            .args(VM_FLAGS)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (apt-get install victoria-metrics)",
                    bin.display()
                )
            })?;
        let vm = Vm {
            child,
            addr,
            agent: agent(Duration::from_secs(600)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while vm.get("/health").is_err() {
            if Instant::now() > deadline {
                bail!("victoria-metrics did not answer /health on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(vm)
    }

    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`, the body as text (an error for any status >= 400).
    pub fn get(&self, path: &str) -> Result<String> {
        Ok(self.agent.get(&self.url(path)).call()?.into_string()?)
    }

    /// POST a line-protocol body to the InfluxDB v2 write API, millisecond precision.
    pub fn write(&self, body: &[u8]) -> Result<()> {
        let url = self.url("/api/v2/write?org=linli&bucket=bench&precision=ms");
        self.agent.post(&url).send_bytes(body)?;
        Ok(())
    }

    /// Sum of every sample of a metric on `/metrics`, whatever its labels.
    fn metric_sum(&self, name: &str) -> Result<f64> {
        let body = self.get("/metrics")?;
        Ok(body
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(['{', ' ']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Every stored point, counted from a CSV export (one line per point).
    fn count_all(&self) -> Result<u64> {
        eprintln!("  vm: reading every point back (CSV export) ...");
        let resp = self
            .agent
            .get(&self.url("/api/v1/export/csv"))
            .query("format", "__timestamp__:unix_ms")
            .query("match[]", "{__name__=~\".+\"}")
            .call()?;
        let mut r = resp.into_reader();
        let (mut buf, mut lines) = (vec![0u8; 1 << 16], 0u64);
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(lines);
            }
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }

    /// Runs a query `plan.repeats` times; median ms (request to last body byte; parsing
    /// the answer is not timed) and the points or buckets it returned.
    fn time_query(&self, plan: &QueryPlan, q: Query) -> Result<(f64, u64)> {
        let series = format!(
            "{}_{}{{device=\"{}\"}}",
            plan.kind.as_str(),
            plan.metric,
            plan.device
        );
        let secs = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
        let (start, end) = (secs(plan.start_ms), secs(plan.end_ms));
        let req = match q {
            Query::Raw => self
                .agent
                .get(&self.url("/api/v1/export"))
                .query("match[]", &series),
            Query::Buckets => self
                .agent
                .get(&self.url("/api/v1/query_range"))
                .query(
                    "query",
                    &format!("avg_over_time({series}[{}ms])", plan.step_ms),
                )
                .query("step", &format!("{}ms", plan.step_ms)),
        }
        .query("start", &start)
        .query("end", &end);
        let mut times = Vec::with_capacity(plan.repeats);
        let mut body = String::new();
        for _ in 0..plan.repeats {
            let t = Instant::now();
            body = req.clone().call()?.into_string()?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let n = match q {
            Query::Raw => body
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| Some(v.get("timestamps")?.as_array()?.len() as u64))
                .sum(),
            Query::Buckets => {
                let v: serde_json::Value =
                    serde_json::from_str(&body).context("query_range answer")?;
                v.pointer("/data/result/0/values")
                    .and_then(|a| a.as_array())
                    .map_or(0, |a| a.len() as u64)
            }
        };
        Ok((times[times.len() / 2], n))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        crate::process::interrupt_then_kill(&mut self.child, Duration::from_secs(10));
    }
}
