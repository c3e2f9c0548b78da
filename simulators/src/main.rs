//! `linli-sim`: simulators and benchmarks for the Linli gateway.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use linli_sim::bench::IngestBench;

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
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// N devices publish sealed QoS1 readings through the gateway into its journal,
    /// side by side with mosquitto delivering the same packets to one subscriber.
    Ingest(IngestArgs),
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
    /// The gateway binary (default: `linli` next to this binary).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
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
        let gateway_bin = match self.gateway_bin {
            Some(p) => p,
            None => std::env::current_exe()?.with_file_name("linli"),
        };
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
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Bench {
            which: Bench::Ingest(args),
        } => {
            rt.block_on(args.into_bench()?.run())?;
        }
    }
    Ok(())
}
