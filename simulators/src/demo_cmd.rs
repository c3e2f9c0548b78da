//! `linli-sim demo`: the command line of the demo (see `linli_sim::demo`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use linli_sim::demo::{self, DemoConfig};

/// Starts a gateway on its embedded defaults (no database, no broker to install) with a
/// small simulated neighbourhood — a care-home wing, residents at home, a street with
/// lamps, a manhole and bins, an underpass — and plays a night in it: a fall, a
/// look-alike, a roster change, SOS presses, a dead lamp, a lifted manhole cover, a bin
/// fire, a racing heart, smoke and a flooding underpass. Alarms arrive within the first
/// minutes; pages to the people on duty show up here. Afterwards the neighbourhood keeps
/// running until Ctrl-C, so the API has something to show.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The demo's directory: config, data, log and the storyline's files. Cleared and
    /// written afresh on every run (only a directory an earlier demo made).
    #[arg(long, default_value = "linli-demo")]
    dir: PathBuf,
    /// Device time runs this many times faster than real time (default: the
    /// storyline's, 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=60))]
    speed: Option<u32>,
    /// Stop after the storyline; exit 1 when an alarm it expects did not come.
    #[arg(long)]
    exit: bool,
    #[command(flatten)]
    gateway: crate::gateway_arg::GatewayBin,
}

impl DemoArgs {
    pub fn run(self) -> Result<()> {
        let gateway_bin = self.gateway.path()?;
        let cfg = DemoConfig {
            dir: self.dir,
            gateway_bin,
            speed: self.speed,
            ports: None,
            keep_running: !self.exit,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let outcome = rt.block_on(demo::run(&cfg, &mut |line| println!("{line}")))?;
        if self.exit && !outcome.passed() {
            anyhow::bail!("the night did not go as the storyline expects (see FAIL above)");
        }
        Ok(())
    }
}
