//! The storage benchmark: the same corpus ingested, stored and queried by the Linli
//! store and by Debian's VictoriaMetrics, side by side in one run. Each side of each run
//! is a child process (`linli-sim bench store --side vm|linli`) that prints its
//! [`SideFigures`] as one JSON line; the parent alternates them, then prints medians and
//! ratios next to the corpus stats.
//!
//! Owns orchestration, the shared query plan and the report. The VictoriaMetrics side is
//! [`vm`], the Linli side [`linli`] (a hook), the corpus [`crate::corpus`].

pub mod lineproto;
pub mod linli;
pub mod report;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use linli_protocol::report::DeviceKind;
use serde::{Deserialize, Serialize};

use linli_gateway::registry::{DeviceProfile, Trust};

use crate::corpus::{Corpus, CorpusConfig, DeviceSpec, Item};

/// The registry profile a corpus device would have (what the store and the export
/// encoder take).
pub fn profile_of(d: &DeviceSpec) -> DeviceProfile {
    DeviceProfile {
        id: d.id.clone(),
        kind: d.kind,
        site: d.site.to_owned(),
        zone: d.zone.to_owned(),
        subject: None,
        heartbeat_s: None,
        trust: Trust::Sealed,
    }
}

/// Profiles of every corpus device, indexed by [`DeviceSpec::index`].
pub fn profiles(corpus: &Corpus) -> Vec<DeviceProfile> {
    corpus.devices().iter().map(profile_of).collect()
}

/// Which system a child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// VictoriaMetrics over its InfluxDB write API.
    Vm,
    /// The embedded Linli store, in-process.
    Linli,
}

impl Side {
    /// Name on the command line and in the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Vm => "vm",
            Side::Linli => "linli",
        }
    }
}

/// What one side measured in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideFigures {
    /// Points written (must equal the corpus's).
    pub points: u64,
    /// Points / wall time from the first write to durable (flushed) and acknowledged.
    pub ingest_points_per_s: f64,
    /// Bytes the store's directory occupies on disk (allocated blocks) once compacted.
    pub bytes_on_disk: u64,
    /// `bytes_on_disk / points`.
    pub bytes_per_point: f64,
    /// Median latency of the raw 24 h query of one series, ms.
    pub query_raw_24h_ms: f64,
    /// Median latency of the same range in 1-minute averages, ms.
    pub query_1m_24h_ms: f64,
    /// Points the raw query returned (checked against the plan).
    pub raw_points_returned: u64,
    /// Buckets the 1-minute query returned.
    pub buckets_returned: u64,
    /// Peak resident set of the store, bytes.
    pub peak_rss_bytes: u64,
    /// How the figures were obtained, caveats.
    pub notes: Vec<String>,
}

/// The queries both sides answer, over the last 24 h of the corpus (or all of it when
/// shorter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPlan {
    /// The device of the queried series (the first vitals device).
    pub device: String,
    /// Its kind (the line-protocol measurement).
    pub kind: DeviceKind,
    /// The metric, as [`Report::for_each_metric`](linli_protocol::Report::for_each_metric)
    /// names it.
    pub metric: &'static str,
    /// First millisecond of the window (inclusive).
    pub start_ms: i64,
    /// Last millisecond of the window (inclusive).
    pub end_ms: i64,
    /// Bucket width of the aggregated query, ms.
    pub step_ms: i64,
    /// Times each query is repeated; the median is reported.
    pub repeats: usize,
    /// Points of the series inside the window.
    pub expected_raw: u64,
}

impl QueryPlan {
    /// Heart rate of the first vitals device over the last 24 h.
    pub fn new(corpus: &Corpus, repeats: usize) -> Result<Self> {
        let d = corpus
            .devices()
            .iter()
            .find(|d| d.kind == DeviceKind::Vitals)
            .context("the corpus has no vitals device to query")?;
        let end_ms = i64::from(corpus.config().end_s) * 1000 - 1000;
        let start_ms = (end_ms + 1000 - 86_400_000).max(i64::from(corpus.start_s()) * 1000);
        let metric = "heart_rate_bpm";
        let mut expected_raw = 0;
        corpus.for_each(|it| {
            if it.device.index == d.index && (start_ms..=end_ms).contains(&it.time_ms) {
                it.report.for_each_metric(&mut |m, _| {
                    expected_raw += u64::from(m == metric);
                });
            }
        });
        Ok(QueryPlan {
            device: d.id.clone(),
            kind: d.kind,
            metric,
            start_ms,
            end_ms,
            step_ms: 60_000,
            repeats: repeats.max(1),
            expected_raw,
        })
    }
}

/// Benchmark parameters (the CLI's `bench store`).
#[derive(Debug, Clone)]
pub struct StoreBench {
    /// The corpus.
    pub corpus: CorpusConfig,
    /// Runs of each side (alternating); medians are reported.
    pub runs: usize,
    /// The victoria-metrics binary.
    pub vm_bin: PathBuf,
    /// Where the stores live during runs (a fresh subdirectory per side and run).
    pub out_dir: PathBuf,
    /// Lines per write request (VictoriaMetrics side).
    pub batch_lines: usize,
    /// Concurrent write connections (VictoriaMetrics side).
    pub connections: usize,
    /// Repeats of each query.
    pub query_repeats: usize,
    /// Keep the stores' directories after the run.
    pub keep: bool,
}

/// One line a child prints on stdout.
#[derive(Debug, Serialize, Deserialize)]
struct ChildLine {
    side: Side,
    #[serde(default)]
    figures: Option<SideFigures>,
    #[serde(default)]
    error: Option<String>,
}

impl StoreBench {
    /// Parent: runs each side `runs` times as child processes and prints the report.
    pub fn run(&self) -> Result<Vec<(Side, Result<SideFigures, String>)>> {
        let corpus = Corpus::new(self.corpus)?;
        eprintln!("corpus: counting ...");
        let stats = corpus.stats();
        eprintln!("corpus: {stats}");
        let exe = std::env::current_exe().context("locating linli-sim")?;
        let mut results = Vec::new();
        for run in 1..=self.runs {
            for side in [Side::Vm, Side::Linli] {
                eprintln!("run {run}/{}: {} ...", self.runs, side.as_str());
                let dir = self.out_dir.join(format!("{}-{run}", side.as_str()));
                let r = self.child(&exe, side, &dir);
                if !self.keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                match &r {
                    Ok(f) => report::print_run(run, side, f),
                    Err(e) => println!("run {run}  {:<6} not measured: {e}", side.as_str()),
                }
                results.push((side, r));
            }
        }
        report::print_summary(&stats, &results, self.runs);
        if results.iter().any(|(s, r)| *s == Side::Vm && r.is_err()) {
            bail!("the VictoriaMetrics side failed");
        }
        Ok(results)
    }

    fn child(&self, exe: &Path, side: Side, dir: &Path) -> Result<SideFigures, String> {
        let c = self.corpus;
        let out = Command::new(exe)
            .args(["bench", "store", "--side", side.as_str()])
            .args(["--devices", &c.devices.to_string()])
            .args(["--span-s", &c.span_s.to_string()])
            .args([
                "--end-s",
                &c.end_s.to_string(),
                "--seed",
                &c.seed.to_string(),
            ])
            .args(["--batch-lines", &self.batch_lines.to_string()])
            .args(["--connections", &self.connections.to_string()])
            .args(["--query-repeats", &self.query_repeats.to_string()])
            .arg("--vm-bin")
            .arg(&self.vm_bin)
            .arg("--out-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("starting {}: {e}", exe.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().rev().find(|l| l.starts_with('{'));
        match line.map(serde_json::from_str::<ChildLine>) {
            Some(Ok(ChildLine {
                figures: Some(f), ..
            })) => Ok(f),
            Some(Ok(ChildLine { error: Some(e), .. })) => Err(e),
            _ => Err(format!("child exited {} without figures", out.status)),
        }
    }

    /// Child: measures one side in `out_dir` and prints one JSON line on stdout, with
    /// the figures or the error. Returns whether it measured.
    pub fn run_side(&self, side: Side) -> Result<bool> {
        let result = self.measure(side);
        let line = match &result {
            Ok(f) => ChildLine {
                side,
                figures: Some(f.clone()),
                error: None,
            },
            Err(e) => ChildLine {
                side,
                figures: None,
                error: Some(format!("{e:#}")),
            },
        };
        println!("{}", serde_json::to_string(&line)?);
        if let Err(e) = &result {
            eprintln!("  {}: {e:#}", side.as_str());
        }
        Ok(result.is_ok())
    }

    fn measure(&self, side: Side) -> Result<SideFigures> {
        let corpus = Corpus::new(self.corpus)?;
        let plan = QueryPlan::new(&corpus, self.query_repeats)?;
        if self.out_dir.exists() {
            bail!("{} exists: give a fresh --out-dir", self.out_dir.display());
        }
        std::fs::create_dir_all(&self.out_dir)
            .with_context(|| format!("creating {}", self.out_dir.display()))?;
        let mut f = match side {
            Side::Vm => vm::VmSide::from_bench(self).run(&corpus, &plan)?,
            Side::Linli => {
                eprintln!("  linli: materializing the corpus (untimed) ...");
                // Sized exactly first: a growing Vec's reallocation peak would count in
                // VmHWM as if the store had used it.
                let mut n = 0usize;
                corpus.for_each(|_| n += 1);
                let mut items: Vec<Item<'_>> = Vec::with_capacity(n);
                corpus.for_each(|it| items.push(*it));
                let baseline = proc_status_bytes("self", "VmRSS")?;
                let mut f = linli::linli_side(&corpus, &items, &self.out_dir, &plan)?;
                let hwm = proc_status_bytes("self", "VmHWM")?;
                f.peak_rss_bytes = hwm.saturating_sub(baseline);
                f.notes.push(format!(
                    "peak RSS = own VmHWM {hwm} B minus VmRSS {baseline} B with the corpus loaded"
                ));
                f.bytes_on_disk = du_bytes(&self.out_dir)?;
                f.bytes_per_point = f.bytes_on_disk as f64 / f.points.max(1) as f64;
                f
            }
        };
        if f.raw_points_returned != plan.expected_raw {
            f.notes.push(format!(
                "raw query returned {} points, expected {}",
                f.raw_points_returned, plan.expected_raw
            ));
        }
        Ok(f)
    }
}

/// A `/proc/{pid}/status` field given in kB (`VmHWM`, `VmRSS`), in bytes.
pub fn proc_status_bytes(pid: &str, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Bytes allocated on disk under `dir` (what `du -s` says), following no symlinks.
pub fn du_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // Stores delete merged parts while we walk: a vanished directory is fine.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", d.display())),
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(total)
}
