//! `linli-sim load`: the command line of a load run (see `linli_sim::traffic`).

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use linli_sim::traffic::{self, LoadConfig, Storm, StormCause};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Cause {
    /// Every device drops its connection at once (an uplink outage).
    Drop,
    /// The gateway is killed with SIGKILL and started again on the same data.
    Restart,
}

/// Runs N sealed devices against a gateway of its own (started on free loopback ports in
/// a scratch directory, on its embedded defaults), at a controlled rate and mix, through
/// an optional reconnect storm; prints progress, then a summary: send-to-ack latency
/// percentiles, the storm's time until every device is back, a check that every acked
/// frame is in the gateway, and what the gateway and this simulator each spent.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Devices, each its own MQTT connection, credentials and key.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Readings per second, all devices together.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Device kinds and weights: power_meter, street_light, pendant, water_level,
    /// manhole, waste_bin, vitals, bed, motion.
    #[arg(long, default_value = traffic::DEFAULT_MIX)]
    mix: String,
    /// MQTT QoS of the readings (the gateway's application ack is awaited either way).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Frames a device holds unacked before it defers new readings.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Reconnect storm this many seconds after publishing begins.
    #[arg(long)]
    storm_at: Option<f64>,
    /// What causes the storm.
    #[arg(long, value_enum, default_value_t = Cause::Restart)]
    storm: Cause,
    /// Devices come back uniformly within this many seconds after the storm.
    #[arg(long, default_value_t = 10.0)]
    storm_jitter: f64,
    /// Devices connecting at once at the start.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Seconds to wait for held frames after publishing ends.
    #[arg(long, default_value_t = 60)]
    drain_timeout_s: u64,
    /// Seconds between progress lines (0 = none).
    #[arg(long, default_value_t = 5.0)]
    progress_s: f64,
    #[command(flatten)]
    gateway: crate::gateway_arg::GatewayBin,
    #[command(flatten)]
    scratch: crate::gateway_arg::Scratch,
}

impl LoadArgs {
    pub fn run(self) -> Result<()> {
        let gateway_bin = self.gateway.path()?;
        let cfg = LoadConfig {
            devices: self.devices,
            rate: self.rate,
            seconds: self.seconds,
            mix: traffic::parse_mix(&self.mix)?,
            qos1: self.qos == 1,
            window: self.window,
            storm: self.storm_at.map(|at_s| Storm {
                at_s,
                cause: match self.storm {
                    Cause::Drop => StormCause::Drop,
                    Cause::Restart => StormCause::Restart,
                },
                jitter_s: self.storm_jitter,
            }),
            connect_concurrency: self.connect_concurrency,
            drain_timeout: Duration::from_secs(self.drain_timeout_s),
            progress: (self.progress_s > 0.0).then(|| Duration::from_secs_f64(self.progress_s)),
            gateway_bin,
            work_dir: self.scratch.work_dir,
            keep: self.scratch.keep,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let report = rt.block_on(traffic::run(&cfg))?;
        report.print();
        let lost = report.check.lost > 0;
        let stranded = report
            .storm
            .as_ref()
            .is_some_and(|s| s.all_back_s.is_none());
        if lost || stranded || report.waiting_at_end > 0 {
            anyhow::bail!(
                "the run did not end clean: {} acked frames lost, {} frames unacked, {}",
                report.check.lost,
                report.waiting_at_end,
                if stranded {
                    "not every device came back"
                } else {
                    "every device came back"
                }
            );
        }
        Ok(())
    }
}
