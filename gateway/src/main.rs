//! `linli`: the gateway binary. Runs the gateway, provisions devices, and prints or
//! checks the configuration. All wiring lives in `linli_gateway::pipeline`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use linli_gateway::config::{Config, LogFormat, TEMPLATE};
use linli_gateway::registry::{DeviceProfile, Registry, SubjectKind, Trust};
use linli_protocol::DeviceKind;

mod user_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "linli",
    version,
    about = "Linli IoT gateway for elderly care and street infrastructure"
)]
struct Cli {
    /// Config file (TOML). Default: ./linli.toml if it exists, else built-in defaults.
    #[arg(long, short, global = true, env = "LINLI_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (the default when no command is given).
    Run,
    /// Register a device and print its MQTT credentials and sealing key (shown once).
    Provision(ProvisionArgs),
    /// List registered devices.
    Devices,
    /// Print an annotated config template, or check a config file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Validate a rules file and report every problem (default: the configured one, or
    /// the built-in rules). A running gateway applies an edited file on SIGHUP or
    /// POST /api/rules/reload.
    CheckRules {
        /// The rules file.
        file: Option<PathBuf>,
    },
    /// Print the built-in rules (a starting point for your own rules file).
    DefaultRules,
    /// Validate a routing file (people, teams, shifts, escalation policies) against the
    /// config's channels and report every problem (default: the configured one, or the
    /// built-in routing). A running gateway applies an edited file on SIGHUP or
    /// POST /api/routing/reload.
    CheckRouting {
        /// The routing file.
        file: Option<PathBuf>,
    },
    /// Print the built-in routing (a starting point for your own routing file).
    DefaultRouting,
    /// Check the config's Modbus equipment against the profiles (shipped and
    /// `modbus.profiles`) and print each device, and each schedule with its lamps and
    /// what it wants of them now.
    CheckModbus,
    /// Print the shipped Modbus profiles (street-light, eastron-sdm, pump-station): the
    /// form for your own `modbus.profiles` file.
    ModbusProfiles,
    /// People who sign in to the dashboard: add, list, passwd, remove.
    User {
        #[command(subcommand)]
        action: user_cmd::UserAction,
    },
    /// Print the audit log (sign-ins, views of residents' data, every action), newest
    /// first: time ms, who, role, action, target, detail.
    Audit {
        /// Only records about this target, e.g. `resident:R-1` or `session`.
        #[arg(long)]
        target: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print the annotated template with every default.
    Template,
    /// Validate the config file and report every problem.
    Check,
}

#[derive(Parser, Debug)]
struct ProvisionArgs {
    /// Device id: MQTT client id and username (1-64 of A-Z a-z 0-9 . _ -).
    #[arg(long)]
    id: String,
    /// Device kind.
    #[arg(long, value_parser = parse_kind)]
    kind: DeviceKind,
    /// Site id (created if new).
    #[arg(long)]
    site: String,
    /// Zone id within the site (created if new).
    #[arg(long)]
    zone: String,
    /// Resident the device belongs to (care devices).
    #[arg(long, conflicts_with = "asset")]
    resident: Option<String>,
    /// Asset the device monitors (facility devices).
    #[arg(long)]
    asset: Option<String>,
    /// Heartbeat interval in seconds (default: supervision.default_heartbeat_s).
    #[arg(long)]
    heartbeat_s: Option<u64>,
    /// Third-party device speaking the JSON form (lower trust; no sealing key used).
    #[arg(long)]
    json: bool,
    /// Provision this many devices at once, with ids `{id}-00000`, `{id}-00001`, ...
    /// (JSON output is then an array).
    #[arg(long)]
    count: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Text,
    Json,
}

fn parse_kind(s: &str) -> Result<DeviceKind, String> {
    DeviceKind::parse(s).ok_or_else(|| {
        let all: Vec<_> = DeviceKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {s:?}; one of: {}", all.join(", "))
    })
}

fn load_config(path: Option<&Path>) -> Result<(Config, String)> {
    let default = Path::new("linli.toml");
    let path = match path {
        Some(p) => p,
        None if default.exists() => default,
        None => return Ok((Config::default(), "built-in defaults".into())),
    };
    let config = Config::load(path)?;
    Ok((config, path.display().to_string()))
}

fn main() {
    if let Err(e) = run_cli(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run_cli(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Config {
            action: ConfigAction::Template,
        } => {
            print!("{TEMPLATE}");
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let (_, source) = load_config(cli.config.as_deref())?;
            println!("{source}: ok");
            Ok(())
        }
        Command::CheckRules { file } => {
            let (config, _) = load_config(cli.config.as_deref())?;
            let file = file.or(config.alarms.rules.clone());
            let rules = linli_gateway::alarms::follower::load_rules(
                file.as_ref(),
                &config.rule_defaults(),
            )?;
            let name = file.map_or("built-in rules".into(), |f| f.display().to_string());
            println!(
                "{name}: ok ({} rules, {} groups, time zone {})",
                rules.rules.len(),
                rules.groups.len(),
                rules.local.name()
            );
            for r in &rules.rules {
                println!(
                    "  P{} {}{}",
                    r.priority,
                    r.name,
                    if r.life_safety { " (life-safety)" } else { "" }
                );
            }
            Ok(())
        }
        Command::DefaultRules => {
            print!("{}", linli_gateway::rules::config::DEFAULT_RULES);
            Ok(())
        }
        Command::CheckRouting { file } => {
            let (config, _) = load_config(cli.config.as_deref())?;
            let file = file.or(config.delivery.routing.clone());
            let r = linli_gateway::notify::stage::load_routing(&config, file.as_ref())?;
            let name = file.map_or("built-in routing".into(), |f| f.display().to_string());
            println!(
                "{name}: ok ({} people, {} teams, {} policies, time zone {})",
                r.people.len(),
                r.teams.len(),
                r.policies.len(),
                r.local.name()
            );
            for t in &r.teams {
                let who = if t.shifts.is_empty() {
                    format!("{} member(s), always on duty", t.members.len())
                } else {
                    format!("{} shift(s)", t.shifts.len())
                };
                println!("  team {} (role {}): {who}", t.id, t.role);
            }
            // Life-safety pages must always find someone: show the week's gaps.
            let now = linli_gateway::clock::now_ms() / 900_000 * 900_000;
            for (team, gaps) in r.life_safety_gaps(now) {
                let list: Vec<String> = gaps
                    .iter()
                    .take(5)
                    .map(|(a, b)| format!("{} – {}", r.local.format(*a), r.local.format(*b)))
                    .collect();
                let more = if gaps.len() > 5 {
                    format!(" (+{} more)", gaps.len() - 5)
                } else {
                    String::new()
                };
                println!(
                    "  warning: team {} (role {}, paged for life-safety alarms) has nobody reachable on duty: {}{more}",
                    team.id,
                    team.role,
                    list.join(", ")
                );
            }
            Ok(())
        }
        Command::ModbusProfiles => {
            print!("{}", linli_gateway::ingest::modbus::profile::SHIPPED);
            Ok(())
        }
        Command::CheckModbus => check_modbus(cli.config.as_deref()),
        Command::DefaultRouting => {
            print!("{}", linli_gateway::notify::routing::DEFAULT_ROUTING);
            Ok(())
        }
        Command::Provision(args) => provision(cli.config.as_deref(), args),
        Command::Devices => {
            let (config, _) = load_config(cli.config.as_deref())?;
            let registry = Registry::open(&config.data_dir).with_context(|| {
                format!("opening the registry in {}", config.data_dir.display())
            })?;
            for d in registry.all()? {
                let p = &d.profile;
                println!("{}\t{}\t{}/{}", p.id, p.kind.as_str(), p.site, p.zone);
            }
            Ok(())
        }
        Command::User { action } => {
            let (config, _) = load_config(cli.config.as_deref())?;
            user_cmd::user(&config, action)
        }
        Command::Audit { target, limit } => {
            let (config, _) = load_config(cli.config.as_deref())?;
            user_cmd::audit(&config, target.as_deref(), limit)
        }
        Command::Run => run(cli.config.as_deref()),
    }
}

fn provision(config: Option<&Path>, a: ProvisionArgs) -> Result<()> {
    let (config, _) = load_config(config)?;
    let registry = Registry::open(&config.data_dir)
        .with_context(|| format!("opening the registry in {}", config.data_dir.display()))?;
    let subject = match (&a.resident, &a.asset) {
        (Some(r), _) => Some((SubjectKind::Resident, r.clone())),
        (_, Some(x)) => Some((SubjectKind::Asset, x.clone())),
        _ => None,
    };
    let ids: Vec<String> = match a.count {
        None => vec![a.id.clone()],
        Some(n) => (0..n).map(|i| format!("{}-{i:05}", a.id)).collect(),
    };
    let mut all = Vec::with_capacity(ids.len());
    for id in ids {
        let creds = registry
            .provision(&DeviceProfile {
                id: id.clone(),
                kind: a.kind,
                site: a.site.clone(),
                zone: a.zone.clone(),
                subject: subject.clone(),
                heartbeat_s: a.heartbeat_s,
                trust: if a.json {
                    Trust::Integration
                } else {
                    Trust::Sealed
                },
            })
            .with_context(|| format!("provisioning device {id}"))?;
        if let Format::Text = a.format {
            println!("device {} provisioned. These secrets are shown once; store them in the device now.", creds.device_id);
            println!("  mqtt client id / username: {}", creds.device_id);
            println!("  mqtt password:             {}", creds.password);
            if !a.json {
                println!("  sealing key id:            {}", creds.key_id);
                println!("  sealing key (hex):         {}", creds.key_hex);
            }
        }
        all.push(creds);
    }
    if let Format::Json = a.format {
        let out = if a.count.is_some() {
            serde_json::to_string_pretty(&all)?
        } else {
            serde_json::to_string_pretty(&all[0])?
        };
        println!("{out}");
    }
    Ok(())
}

fn init_logging(config: &Config) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .context("log.level")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = res {
        bail!("cannot initialise logging: {e}");
    }
    Ok(())
}

fn run(config_path: Option<&Path>) -> Result<()> {
    let (config, source) = load_config(config_path)?;
    init_logging(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let data_dir = config.data_dir.clone();
        let export = config
            .export
            .influxdb
            .as_ref()
            .map(|c| format!("{} (org {}, bucket {})", c.url, c.org, c.bucket));
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        let gw = linli_gateway::start(config, shutdown)
            .await
            .context("starting the gateway")?;
        tracing::info!(config = %source, data_dir = %data_dir.display(), "gateway started");
        let desk = gw.shared.alarms.clone();
        let notify = gw.shared.notify.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let (desk, notify) = (desk.clone(), notify.clone());
                // Errors are logged (and counted by the desk); what runs stays.
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = desk.reload();
                    if let Err(e) = notify.reload() {
                        tracing::warn!(error = %e, "routing reload refused; the running routing stays");
                    }
                })
                .await;
            }
        });
        println!("Linli gateway is running (config: {source}).");
        println!("  Dashboard:      http://{}/", gw.http);
        match &gw.first_admin_password {
            Some(pw) => println!(
                "                  first start: sign in as admin / {pw}  (shown once; add people: linli user add NAME --role caregiver --zones wing-a)"
            ),
            None => println!(
                "                  people: linli user list; a new admin password: linli user passwd admin"
            ),
        }
        println!("  MQTT (v3.1.1):  {}", gw.mqtt_v4);
        if let Some(v5) = gw.mqtt_v5 {
            println!("  MQTT (v5):      {v5}");
        }
        println!(
            "  HTTP API:       http://{}/api/devices  (sign in, or send Authorization: Bearer $(cat {}))",
            gw.http,
            data_dir.join("api-token").display()
        );
        println!(
            "  Time series:    http://{}/api/series/list  (then /api/series?device=ID&metric=NAME&step=1m)",
            gw.http
        );
        if let Some(export) = export {
            println!("  InfluxDB export: {export}; spool depth in /metrics (linli_export_*)");
        }
        println!(
            "  Alarms:         http://{}/api/alarms?open=true  (rules: {}, GET /api/rules)",
            gw.http,
            gw.shared.alarms.rules_source()
        );
        let routing = gw.shared.notify.routing();
        let source = gw
            .shared
            .config
            .delivery
            .routing
            .as_ref()
            .map_or("built-in routing".into(), |p| p.display().to_string());
        if routing.people.is_empty() {
            println!("  Delivery:       {source} has nobody in it: nobody is paged (add people: gateway/DELIVERY.md)");
        } else {
            println!(
                "  Delivery:       {} people in {} teams ({source}; on duty now: http://{}/api/routing)",
                routing.people.len(),
                routing.teams.len(),
                gw.http
            );
        }
        println!(
            "  Live events:    http://{}/api/events  (server-sent events; MQTT linli/v1/alarms/# with [delivery] mqtt = true)",
            gw.http
        );
        println!(
            "  Work orders:    http://{}/api/work-orders?open=true  (deliveries: /api/deliveries, answer times: /api/kpis)",
            gw.http
        );
        println!("  Health:         http://{}/healthz", gw.http);
        println!("  Metrics:        http://{}/metrics", gw.http);
        println!(
            "  Data:           {} (registry, journal, store.sqlite3, alarms.sqlite3, notify.sqlite3)",
            data_dir.display()
        );
        println!("Provision a device:  linli provision --id pendant-1 --kind pendant --site home --zone room-1 --resident R-1");
        println!("Stop with Ctrl-C.");
        gw.wait().await;
        anyhow::Ok(())
    })?;
    // rumqttd has no shutdown; its threads end with the process.
    std::process::exit(0);
}

/// `linli check-modbus`.
fn check_modbus(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    use linli_gateway::ingest::modbus::{poller, schedule::Place};
    let (config, source) = load_config(path)?;
    let m = &config.modbus;
    let text = match &m.profiles {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading modbus.profiles {}", p.display()))?,
        ),
        None => None,
    };
    let plan = poller::plan(m, text.as_deref())?;
    println!(
        "{source}: ok ({} Modbus device(s), {} schedule(s))",
        m.device.len(),
        plan.schedules.len()
    );
    for (d, p) in m.device.iter().zip(&plan.profiles) {
        let link = match (&d.tcp, &d.bus) {
            (Some(a), _) => format!("tcp {a}"),
            (None, Some(b)) => format!("bus {b}"),
            (None, None) => "-".into(),
        };
        println!(
            "  {} {} ({}) {link} unit {} every {} ms, zone {}",
            d.id,
            p.name,
            p.kind.as_str(),
            d.unit,
            d.poll_ms,
            d.zone
        );
    }
    let local = config.rule_defaults().local;
    let place = m
        .latitude
        .zip(m.longitude)
        .map(|(latitude, longitude)| Place {
            latitude,
            longitude,
        });
    let now = linli_gateway::clock::now_ms();
    for s in &plan.schedules {
        let w = s.desired(&local, place, now);
        let want = format!(
            "now: {} at {} %",
            match w.relay_on {
                Some(true) => "on",
                Some(false) => "off",
                None => "relay left alone (no sunrise or sunset today here)",
            },
            w.dimming_pct
        );
        println!(
            "  schedule {}: {} lamp(s); {want} ({})",
            s.name,
            s.devices.len(),
            local.name()
        );
    }
    Ok(())
}
