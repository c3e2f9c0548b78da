//! `linli-sim fleet`: provisions a described fleet into a gateway (or reads the
//! credentials of an earlier run) and runs it, printing progress until the duration ends
//! or Ctrl-C; `linli-sim scenario`: runs a scenario file against a gateway and prints
//! its verdict.
//!
//! Owns these command lines and the credentials file; the fleet is `linli_sim::fleet`,
//! scenarios `linli_sim::scenario`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use linli_gateway::config::Config;
use linli_protocol::DeviceKind;
use linli_sim::fleet::{self, Description, Member};
use serde::{Deserialize, Serialize};

#[derive(Args, Debug)]
pub struct FleetArgs {
    /// The fleet description (TOML: `[[group]]` kind, count, id, site, zone, resident or
    /// asset, heartbeat_s).
    #[arg(long)]
    description: PathBuf,
    /// The gateway's config file: its data directory (for provisioning) and its MQTT 5
    /// listener. Default: ./linli.toml if it exists, else the gateway's built-in defaults
    /// (./data, 127.0.0.1:1884), as `linli` itself does.
    #[arg(long, short, env = "LINLI_CONFIG")]
    config: Option<PathBuf>,
    /// Where the devices' credentials are kept. If the file exists the fleet uses them;
    /// otherwise it provisions the devices and writes them there (secrets: keep it safe).
    #[arg(long, default_value = "fleet-credentials.json")]
    credentials: PathBuf,
    /// The gateway's MQTT 5 listener (default: `broker.listen_v5` of the config).
    #[arg(long)]
    broker: Option<SocketAddr>,
    /// Device time runs this many times faster than real time.
    #[arg(long, default_value_t = 1)]
    speed: u32,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    kind: String,
    password: String,
    key_id: u8,
    key_hex: String,
    heartbeat_s: u16,
    /// The device's flash: its saved frame counter (a next run continues after it).
    #[serde(default)]
    saved_counter: u32,
}

impl FleetArgs {
    pub fn run(self) -> Result<()> {
        let config = gateway_config(self.config.clone())?;
        let broker = match (self.broker, config.broker.listen_v5) {
            (Some(b), _) | (None, Some(b)) => b,
            (None, None) => anyhow::bail!(
                "the gateway has no MQTT 5 listener (broker.listen_v5) and no --broker was given; the firmware speaks MQTT 5"
            ),
        };
        let mut members = self.members(&config)?;
        let n = members.len();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let fleet = fleet::start(members.clone(), broker, self.speed)?;
            eprintln!("fleet: {n} devices against {broker}, device time ×{}", self.speed);
            let until = self.duration_s.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        let t = fleet.total();
                        eprintln!(
                            "online {}/{n} · acked {} · outbox {} (alarms {}) · evicted {} · refused {}",
                            fleet.online(), t.acked, t.outbox, t.alarms, t.evicted, t.refused
                        );
                        // The devices' flash: their counters survive this process.
                        self.save_counters(&mut members, &fleet)?;
                        if until.is_some_and(|u| tokio::time::Instant::now() >= u) {
                            break;
                        }
                    }
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            self.save_counters(&mut members, &fleet)?;
            fleet.stop()
        })
    }

    fn save_counters(&self, members: &mut [Member], fleet: &fleet::Fleet) -> Result<()> {
        for (m, (id, saved)) in members.iter_mut().zip(fleet.saved_counters()) {
            if m.id == id {
                m.saved_counter = m.saved_counter.max(saved);
            }
        }
        self.store(members)
    }

    fn store(&self, members: &[Member]) -> Result<()> {
        let stored: Vec<Stored> = members
            .iter()
            .map(|m| Stored {
                id: m.id.clone(),
                kind: m.kind.as_str().into(),
                password: m.password.clone(),
                key_id: m.key_id,
                key_hex: hex::encode(m.key),
                heartbeat_s: m.heartbeat_s,
                saved_counter: m.saved_counter,
            })
            .collect();
        // Written whole to a neighbour, then renamed: a crash never leaves half a file.
        let tmp = self.credentials.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&stored)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.credentials)
            .with_context(|| format!("writing {}", self.credentials.display()))
    }

    fn members(&self, config: &Config) -> Result<Vec<Member>> {
        if self.credentials.exists() {
            let text = std::fs::read_to_string(&self.credentials)
                .with_context(|| format!("reading {}", self.credentials.display()))?;
            let stored: Vec<Stored> = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a fleet credentials file",
                    self.credentials.display()
                )
            })?;
            eprintln!(
                "fleet: {} devices from {}",
                stored.len(),
                self.credentials.display()
            );
            return stored
                .into_iter()
                .map(|s| {
                    Ok(Member {
                        kind: DeviceKind::parse(&s.kind)
                            .with_context(|| format!("{}: unknown kind {}", s.id, s.kind))?,
                        key: hex::decode(&s.key_hex)
                            .ok()
                            .and_then(|k| k.try_into().ok())
                            .with_context(|| format!("{}: key_hex is not 64 hex digits", s.id))?,
                        id: s.id,
                        password: s.password,
                        key_id: s.key_id,
                        heartbeat_s: s.heartbeat_s,
                        saved_counter: s.saved_counter,
                    })
                })
                .collect();
        }
        let description = Description::load(&self.description)?;
        let members = fleet::provision(&description, &config.data_dir)?;
        self.store(&members)?;
        eprintln!(
            "fleet: provisioned {} devices into {}; credentials in {}",
            members.len(),
            config.data_dir.display(),
            self.credentials.display()
        );
        Ok(members)
    }
}

/// `linli-sim scenario`: runs a scenario file against a running gateway.
#[derive(Args, Debug)]
pub struct ScenarioArgs {
    /// The scenario (TOML: name, speed, `[[group]]` fleet, `[[step]]` storyline,
    /// `[[expect]]` alarms).
    scenario: PathBuf,
    /// The gateway's config file: its data directory, MQTT 5 listener and HTTP API.
    /// Default: ./linli.toml if it exists, else the gateway's built-in defaults.
    #[arg(long, short, env = "LINLI_CONFIG")]
    config: Option<PathBuf>,
    /// Run at this speed instead of the scenario's.
    #[arg(long)]
    speed: Option<u32>,
}

impl ScenarioArgs {
    /// Runs it; fails (exit code 1) when an expectation did not hold.
    pub fn run(self) -> Result<()> {
        let config = gateway_config(self.config.clone())?;
        let mut sc = linli_sim::scenario::Scenario::load(&self.scenario)?;
        if let Some(s) = self.speed {
            sc.speed = s;
        }
        let broker = config.broker.listen_v5.context(
            "the gateway has no MQTT 5 listener (broker.listen_v5); the firmware speaks MQTT 5",
        )?;
        let target = linli_sim::scenario::Target {
            http: format!("http://{}", config.http.listen),
            broker,
            data_dir: config.data_dir.clone(),
            routing: config.delivery.routing.clone(),
            pages: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        eprintln!("scenario {:?}: device time ×{}", sc.name, sc.speed);
        let outcome = rt.block_on(linli_sim::scenario::run(&sc, &target, &mut |l| {
            eprintln!("{l}")
        }))?;
        print!("{outcome}");
        if !outcome.passed() {
            anyhow::bail!("scenario {:?}: an expectation did not hold", sc.name);
        }
        Ok(())
    }
}

/// The gateway's config as `linli` finds it: the given file, ./linli.toml, or defaults.
fn gateway_config(path: Option<PathBuf>) -> Result<Config> {
    let default = PathBuf::from("linli.toml");
    let path = path.or_else(|| default.exists().then_some(default));
    Ok(match &path {
        Some(p) => Config::load(p).with_context(|| format!("gateway config {}", p.display()))?,
        None => Config::default(),
    })
}
