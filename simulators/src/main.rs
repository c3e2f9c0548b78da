//! `linli-sim`: simulators and benchmarks for the Linli gateway.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use linli_sim::bench::IngestBench;
use linli_sim::bench_alarms::eval::EvalConfig;
use linli_sim::bench_alarms::latency::LatencyConfig;
use linli_sim::bench_delivery::DeliveryConfig;
use linli_sim::bench_store::{Side, StoreBench};
use linli_sim::corpus::{Corpus, CorpusConfig, DEFAULT_END_S};

mod demo_cmd;
mod fleet_cmd;
mod gateway_arg;
mod load_cmd;

#[derive(Parser, Debug)]
#[command(name = "linli-sim", version, about = "Linli simulators and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// Prints the stats of the storage-benchmark corpus (devices, series, points, span).
    Corpus(CorpusArgs),
    /// Simulated Modbus TCP equipment: street-light controllers, power meters and pump
    /// stations with the register maps of the gateway's `modbus.profiles.toml`.
    ///
    /// Prints one JSON line per device on stdout
    /// (`{"id":"lamp-0001","addr":"127.0.0.1:40000","unit":1,"kind":"lamp","profile":"street-light"}`),
    /// then `ready`, then reads commands on stdin, one a line, each answered with one
    /// line: `fault <id> <silent|broken|deaf|supply_lost|none>` (`ok`), `state <id>` (the
    /// actual state as JSON), `quit`. Exits on `quit` or end of input (keep stdin open,
    /// e.g. `sleep infinity | linli-sim modbus ...`). Units 1..=247 on each listener;
    /// unknown units get exception 0x0B (gateway target device failed to respond).
    #[command(verbatim_doc_comment)]
    Modbus(ModbusArgs),
    /// A fleet of firmware devices (the real application loops and MQTT client on virtual
    /// boards) from a description file, provisioned into a gateway and run against it.
    Fleet(fleet_cmd::FleetArgs),
    /// Runs a scenario (a timed storyline for a simulated fleet, with the alarms the
    /// gateway must raise) against a running gateway; exits 1 when an expectation fails.
    Scenario(fleet_cmd::ScenarioArgs),
    /// Load: N sealed devices against a gateway of its own at a controlled rate and
    /// mix, through an optional reconnect storm (drop, or the gateway killed -9);
    /// prints latency percentiles, the storm's time and a check that every acked frame
    /// is in the gateway.
    Load(load_cmd::LoadArgs),
    /// A gateway on its embedded defaults plus a simulated neighbourhood living through
    /// a night: alarms within the first minutes, pages to the people on duty.
    Demo(demo_cmd::DemoArgs),
}

#[derive(Args, Debug)]
struct ModbusArgs {
    /// Street-light controllers (ids lamp-0001, ...): 100 W at 230 V, relay on, 100 %.
    #[arg(long, default_value_t = 0)]
    lamps: usize,
    /// Eastron SDM-style power meters (ids meter-001, ...).
    #[arg(long, default_value_t = 0)]
    meters: usize,
    /// Pump / level stations (ids pump-01, ...).
    #[arg(long, default_value_t = 0)]
    pumps: usize,
    /// Address of the first listener; further listeners take the following ports
    /// (PORT+1, ...). Port 0: every listener gets a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Units per listener (1..=247): lamps first, then meters, then pumps fill the
    /// listeners in order.
    #[arg(long, default_value_t = 247, value_parser = clap::value_parser!(u8).range(1..=247))]
    units_per_listener: u8,
    /// Every meter's load, W.
    #[arg(long, default_value_t = 2000.0)]
    meter_load_w: f64,
    /// Every sump's inflow, mm of level per minute (a running pump takes 60 mm/min).
    #[arg(long, default_value_t = 10.0)]
    inflow_mm_per_min: f64,
    /// Milliseconds from a relay, dimming or pump command to the actual state following.
    #[arg(long, default_value_t = 0)]
    command_delay_ms: u64,
}

impl ModbusArgs {
    fn run(self) -> Result<()> {
        use anyhow::Context as _;
        use linli_sim::modbus::{Control, Fleet, FleetConfig, LampConfig, MeterConfig, PumpConfig};
        use std::io::{BufRead as _, Write as _};

        let delay = Duration::from_millis(self.command_delay_ms);
        let cfg = FleetConfig {
            lamps: self.lamps,
            meters: self.meters,
            pumps: self.pumps,
            listen: self.listen,
            units_per_listener: self.units_per_listener,
            lamp: LampConfig {
                command_delay: delay,
                ..LampConfig::default()
            },
            meter: MeterConfig {
                load_w: self.meter_load_w,
                ..MeterConfig::default()
            },
            pump: PumpConfig {
                inflow_mm_per_min: self.inflow_mm_per_min,
                command_delay: delay,
                ..PumpConfig::default()
            },
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let fleet = rt
            .block_on(Fleet::start(&cfg))
            .context("starting the Modbus equipment")?;
        eprintln!(
            "linli-sim modbus: {} devices on {} listeners ({})",
            fleet.devices().len(),
            fleet.listeners().len(),
            fleet
                .listeners()
                .iter()
                .map(|l| l.addr.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for device in fleet.devices() {
            writeln!(out, "{}", serde_json::to_string(device)?)?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading commands from stdin")?;
            match fleet.control(&line) {
                Control::Quit => break,
                Control::Nothing => {}
                Control::Reply(reply) => {
                    if reply.starts_with("error:") {
                        eprintln!("linli-sim modbus: {line:?}: {reply}");
                    }
                    writeln!(out, "{reply}")?;
                    out.flush()?;
                }
            }
        }
        eprintln!("linli-sim modbus: stopping");
        rt.block_on(fleet.shutdown())
            .context("a Modbus listener failed")?;
        Ok(())
    }
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// N devices publish sealed QoS1 readings through the gateway into its journal,
    /// side by side with mosquitto delivering the same packets to one subscriber.
    Ingest(IngestArgs),
    /// The same corpus into the Linli store and into VictoriaMetrics: ingest rate, bytes
    /// per point, 24 h query latencies, peak RSS; each side in a child process.
    Store(StoreArgs),
    /// Alarm evaluation: (1) a seeded day of a mixed care + street fleet replayed through
    /// the gateway's rules and alarm lifecycle on one thread (readings evaluated/s,
    /// target ≥ 1 M/s); (2) the real gateway under MQTT load, its reading-to-alarm
    /// latency from /metrics (target p99 ≤ 5 ms).
    Alarms(AlarmsArgs),
    /// Alarm delivery: the real gateway under background telemetry; SOS presses from
    /// distinct pendants, each paging a caregiver through a webhook served by this
    /// process. Prints SOS-publish to page-receipt latency p50/p99/max (targets p50 ≤ 2 ms,
    /// p99 ≤ 10 ms), the background rate achieved and CPU, per run and as medians.
    Delivery(DeliveryArgs),
    /// Modbus polling: the real gateway polls N simulated lamp controllers and M power
    /// meters (each its own TCP connection) every second. Prints the gateway's CPU (% of
    /// one core, target <= 10), poll jitter p50/p99/max (target p99 <= 50 ms) and
    /// readings/s into the pipeline, per run and as medians.
    Modbus(ModbusBenchArgs),
}

#[derive(Args, Debug)]
struct ModbusBenchArgs {
    /// Simulated street-light controllers.
    #[arg(long, default_value_t = 500)]
    lamps: usize,
    /// Simulated power meters.
    #[arg(long, default_value_t = 50)]
    meters: usize,
    /// Poll interval, ms.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Seconds before measuring.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Runs; medians are printed over them.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the peer (Debian's pymodbus polling the same street with the same reads,
    /// measured in each run beside the gateway; needs python3-pymodbus).
    #[arg(long)]
    no_peer: bool,
    #[command(flatten)]
    gateway: crate::gateway_arg::GatewayBin,
}

#[derive(Args, Debug)]
struct DeliveryArgs {
    /// SOS alarms per run, each from its own pendant (its own resident), so each raises
    /// a new alarm and a new page.
    #[arg(long, default_value_t = 10_000)]
    alarms: usize,
    /// SOS published per second, over one courier connection (a hub relaying the
    /// pendants' sealed frames).
    #[arg(long, default_value_t = 200.0)]
    alarm_rate: f64,
    /// Background telemetry, readings per second, all connections together.
    #[arg(long, default_value_t = 50_000.0)]
    rate: f64,
    /// Background connections (one device each).
    #[arg(long, default_value_t = 500)]
    connections: usize,
    /// Seconds of background load before the first SOS (keeps the gateway's start-up
    /// out of the figures).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Seconds of background load after the last SOS is due.
    #[arg(long, default_value_t = 3.0)]
    tail: f64,
    /// QoS1 messages awaiting PUBACK per background connection.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Gateway journal fsync policy (the product default is batch).
    #[arg(long, default_value = "batch", value_parser = ["batch", "interval", "never"])]
    fsync: String,
    /// Also publish alarm state and events on the gateway's broker (`[delivery] mqtt =
    /// true`; off by default, as in the product).
    #[arg(long)]
    mqtt_events: bool,
    /// Runs, each on a fresh gateway; per-run figures and the medians are printed.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds to wait for missing pages after the last SOS.
    #[arg(long, default_value_t = 30)]
    drain_timeout_s: u64,
    /// Seconds between progress lines (0 = none).
    #[arg(long, default_value_t = 5.0)]
    progress_s: f64,
    #[command(flatten)]
    gateway: crate::gateway_arg::GatewayBin,
    #[command(flatten)]
    scratch: crate::gateway_arg::Scratch,
}

impl DeliveryArgs {
    fn run(self) -> Result<()> {
        let gateway_bin = self.gateway.path()?;
        let cfg = DeliveryConfig {
            alarms: self.alarms,
            alarm_rate: self.alarm_rate,
            connections: self.connections,
            rate: self.rate,
            warmup: self.warmup,
            tail: self.tail,
            window: self.window,
            fsync: self.fsync,
            mqtt_events: self.mqtt_events,
            runs: self.runs,
            drain_timeout: Duration::from_secs(self.drain_timeout_s),
            progress: Duration::try_from_secs_f64(self.progress_s)
                .ok()
                .filter(|d| !d.is_zero()),
            work_dir: self.scratch.work_dir,
            keep: self.scratch.keep,
            ..DeliveryConfig::new(gateway_bin)
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(linli_sim::bench_delivery::run_bench(&cfg))?;
        Ok(())
    }
}

#[derive(Args, Debug)]
struct AlarmsArgs {
    /// Which part to run: `eval` (throughput), `latency`, or `all`.
    #[arg(long, default_value = "all", value_parser = ["all", "eval", "latency"])]
    part: String,
    /// Residents and street assets (half each); every resident has a pendant, bed,
    /// vitals, PIR, door and home-hub device, every asset one device.
    #[arg(long, default_value_t = 10_000)]
    subjects: usize,
    /// Simulated hours replayed (part 1), from a Friday local midnight (Asia/Shanghai).
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Runs of part 1; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the replayed readings.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Readings between drains of rule state and alarm changes (as the follower does).
    #[arg(long, default_value_t = 500)]
    drain_every: usize,
    /// Part 1: also time each apply by report type (slower; shows where the time goes).
    #[arg(long)]
    breakdown: bool,
    /// Part 2: device connections (the fleet's first devices, one connection each).
    #[arg(long, default_value_t = 500)]
    connections: usize,
    /// Part 2: readings per second offered, all connections together.
    #[arg(long, default_value_t = 50_000.0)]
    rate: f64,
    /// Part 2: seconds of measured load.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Part 2: seconds of the same load first, without SOS (keeps the gateway's
    /// start-up out of the latency figures).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Part 2: share of readings that are SOS presses (first per resident raises, the
    /// rest repeat).
    #[arg(long, default_value_t = 0.001)]
    alarm_share: f64,
    /// Part 2: QoS1 messages awaiting PUBACK per connection.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Part 2: gateway journal fsync policy.
    #[arg(long, default_value = "batch", value_parser = ["batch", "interval", "never"])]
    fsync: String,
    #[command(flatten)]
    gateway: crate::gateway_arg::GatewayBin,
    /// Part 2: keep the gateway's scratch directory.
    #[arg(long)]
    keep: bool,
}

impl AlarmsArgs {
    fn run(self) -> Result<()> {
        if !(self.hours > 0.0 && self.hours <= 24.0 * 366.0) {
            anyhow::bail!("--hours must be above 0 and at most a year");
        }
        if self.subjects == 0 {
            anyhow::bail!("--subjects must be at least 1");
        }
        if matches!(self.part.as_str(), "all" | "eval") {
            let cfg = EvalConfig {
                subjects: self.subjects,
                hours: self.hours,
                seed: self.seed,
                drain_every: self.drain_every,
                breakdown: self.breakdown,
                ..EvalConfig::default()
            };
            linli_sim::bench_alarms::run_eval(&cfg, self.runs)?;
        }
        if matches!(self.part.as_str(), "all" | "latency") {
            if !(self.alarm_share > 0.0 && self.alarm_share < 1.0) {
                anyhow::bail!("--alarm-share must be between 0 and 1");
            }
            let cfg = LatencyConfig {
                gateway_bin: self.gateway.path()?,
                connections: self.connections,
                rate: self.rate,
                seconds: self.seconds,
                warmup: self.warmup,
                alarm_share: self.alarm_share,
                window: self.window,
                fsync: self.fsync,
                drain_timeout: Duration::from_secs(60),
                progress: true,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(linli_sim::bench_alarms::run_latency(&cfg, self.keep))?;
        }
        Ok(())
    }
}

#[derive(Args, Debug, Clone)]
struct CorpusArgs {
    /// Devices in the fleet (mixed kinds; vitals every 5 s dominate the points).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Simulated span, hours.
    #[arg(long, default_value_t = 24.0)]
    span_h: f64,
    /// Simulated span, seconds (overrides --span-h).
    #[arg(long)]
    span_s: Option<u32>,
    /// End of the span (exclusive), Unix seconds; the default is 2026-06-01T00:00:00Z.
    #[arg(long, default_value_t = DEFAULT_END_S)]
    end_s: u32,
    /// Seed of the corpus.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl CorpusArgs {
    fn config(&self) -> Result<CorpusConfig> {
        let span_s = match self.span_s {
            Some(s) => s,
            None if self.span_h > 0.0 && self.span_h * 3600.0 < f64::from(u32::MAX) => {
                (self.span_h * 3600.0).round() as u32
            }
            None => anyhow::bail!("--span-h must be positive and under 136 years"),
        };
        Ok(CorpusConfig {
            devices: self.devices,
            span_s,
            end_s: self.end_s,
            seed: self.seed,
        })
    }
}

#[derive(Args, Debug)]
struct StoreArgs {
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Runs of each side (alternating); medians are reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// The victoria-metrics binary.
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    vm_bin: PathBuf,
    /// Where the stores live during the runs (default: a new directory under $TMPDIR).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Lines per write request (VictoriaMetrics side).
    #[arg(long, default_value_t = 10_000)]
    batch_lines: usize,
    /// Concurrent write connections (VictoriaMetrics side).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Repeats of each query; the median is reported.
    #[arg(long, default_value_t = 20)]
    query_repeats: usize,
    /// Keep the stores' directories.
    #[arg(long)]
    keep: bool,
    /// Measure one side only, in --out-dir, and print its figures as one JSON line
    /// (what the parent runs as a child process).
    #[arg(long, value_parser = ["vm", "linli"])]
    side: Option<String>,
}

impl StoreArgs {
    fn run(self) -> Result<()> {
        let out_dir = match self.out_dir {
            Some(d) => d,
            None => std::env::temp_dir().join(format!("linli-bench-store-{}", std::process::id())),
        };
        let bench = StoreBench {
            corpus: self.corpus.config()?,
            runs: self.runs.max(1),
            vm_bin: self.vm_bin,
            out_dir,
            batch_lines: self.batch_lines,
            connections: self.connections,
            query_repeats: self.query_repeats,
            keep: self.keep,
        };
        let side = match self.side.as_deref() {
            Some("vm") => Some(Side::Vm),
            Some(_) => Some(Side::Linli),
            None => None,
        };
        match side {
            Some(side) => {
                if !bench.run_side(side)? {
                    // The JSON line on stdout already says why.
                    std::process::exit(2);
                }
                Ok(())
            }
            None => {
                let r = bench.run().map(|_| ());
                if !bench.keep {
                    let _ = std::fs::remove_dir_all(&bench.out_dir);
                }
                r
            }
        }
    }
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Device connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Readings per connection per run.
    #[arg(long, default_value_t = 300)]
    per_connection: usize,
    /// QoS1 messages in flight per connection.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Runs of each system (alternating); medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[command(flatten)]
    gateway: crate::gateway_arg::GatewayBin,
    /// The mosquitto binary.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto_bin: PathBuf,
    /// Gateway journal fsync policy.
    #[arg(long, default_value = "batch", value_parser = ["batch", "interval", "never"])]
    fsync: String,
    /// Seconds before a run is given up as incomplete.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
}

impl IngestArgs {
    fn into_bench(self) -> Result<IngestBench> {
        let gateway_bin = self.gateway.path()?;
        Ok(IngestBench {
            connections: self.connections,
            per_connection: self.per_connection,
            window: self.window,
            runs: self.runs,
            gateway_bin,
            mosquitto_bin: self.mosquitto_bin,
            fsync: self.fsync,
            timeout: Duration::from_secs(self.timeout_s),
        })
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Modbus(args) => args.run()?,
        Command::Fleet(args) => args.run()?,
        Command::Scenario(args) => args.run()?,
        Command::Load(args) => args.run()?,
        Command::Demo(args) => args.run()?,
        Command::Corpus(args) => {
            let corpus = Corpus::new(args.config()?)?;
            println!("{}", corpus.stats());
        }
        Command::Bench {
            which: Bench::Store(args),
        } => args.run()?,
        Command::Bench {
            which: Bench::Alarms(args),
        } => args.run()?,
        Command::Bench {
            which: Bench::Delivery(args),
        } => args.run()?,
        Command::Bench {
            which: Bench::Modbus(a),
        } => {
            let cfg = linli_sim::bench_modbus::ModbusBenchConfig {
                gateway_bin: a.gateway.path()?,
                lamps: a.lamps,
                meters: a.meters,
                poll_ms: a.poll_ms,
                warmup_s: a.warmup,
                seconds: a.seconds,
                runs: a.runs,
                peer: !a.no_peer,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(linli_sim::bench_modbus::run_bench(&cfg))?;
        }
        Command::Bench {
            which: Bench::Ingest(args),
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(args.into_bench()?.run())?;
        }
    }
    Ok(())
}
