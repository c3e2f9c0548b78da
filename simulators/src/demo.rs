//! `linli-sim demo`: a gateway on its embedded defaults and a small simulated
//! neighbourhood (a care-home wing, residents at home, a street with lamps, a manhole and
//! bins, an underpass) living through a night in which alarms happen within minutes, with
//! the people on the roster paged on a simulated phone — so a newcomer sees the product
//! work end to end.
//!
//! Owns the demo's directory, the gateway's demo config (with the street map's
//! coordinates), the dashboard's demo people and the run (the storyline is the shipped
//! scenario `scenarios/neighbourhood.toml`). Does not own the scenario runner, the fleet
//! or the gateway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::gateway::{Gateway, Ports};
use crate::pager::Pager;
use crate::scenario::{self, Outcome, Scenario, Target};
use crate::{bench, fleet};

/// The storyline and its rosters, written into the demo's directory.
const FILES: [(&str, &str); 3] = [
    (
        "neighbourhood.toml",
        include_str!("../scenarios/neighbourhood.toml"),
    ),
    (
        "rosters/evening.toml",
        include_str!("../scenarios/rosters/evening.toml"),
    ),
    (
        "rosters/night.toml",
        include_str!("../scenarios/rosters/night.toml"),
    ),
];

/// The page webhook's secret (loopback only).
const SECRET: &str = "linli-demo-pager";

/// The street map: where the neighbourhood's street assets stand (Elm Street runs east
/// from the care home; the underpass is at its far end).
const MAP: &str = r#"
[web]
[[web.map]]
asset = "L-ELM-1"
label = "Elm St lamp 1"
lat = 31.23010
lon = 121.47010
[[web.map]]
asset = "L-ELM-2"
label = "Elm St lamp 2"
lat = 31.23012
lon = 121.47060
[[web.map]]
asset = "L-ELM-3"
label = "Elm St lamp 3"
lat = 31.23014
lon = 121.47110
[[web.map]]
asset = "L-ELM-4"
label = "Elm St lamp 4"
lat = 31.23016
lon = 121.47160
[[web.map]]
asset = "M-ELM-1"
label = "Manhole"
lat = 31.22995
lon = 121.47085
[[web.map]]
asset = "B-ELM-1"
label = "Bin 1"
lat = 31.23030
lon = 121.47035
[[web.map]]
asset = "B-ELM-2"
label = "Bin 2"
lat = 31.23030
lon = 121.47135
[[web.map]]
asset = "U-ELM-1"
label = "Underpass"
lat = 31.22990
lon = 121.47210
"#;

/// The dashboard's people in the demo: (name, shown as, role, zones).
const PEOPLE: [(&str, &str, linli_gateway::people::Role, &str); 4] = {
    use linli_gateway::people::Role;
    [
        (
            "zhang.min",
            "Zhang Min",
            Role::Caregiver,
            "wing-a,east-district",
        ),
        ("li.wei", "Li Wei", Role::Crew, "elm-street,underpass"),
        ("chen.jing", "Chen Jing", Role::Supervisor, "*"),
        ("admin", "Administrator", Role::Admin, "*"),
    ]
};

/// Adds the demo's people with fresh passwords; returns (name, role, password) to show.
fn add_people(data: &Path) -> Result<Vec<(String, &'static str, String)>> {
    use linli_gateway::people::People;
    let people = People::open(
        data,
        linli_gateway::web::WebConfig::default().session_limits(),
    )?;
    let mut out = Vec::new();
    for (name, display, role, zones) in PEOPLE {
        let mut b = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        let pw = format!("demo-{}", hex::encode(b));
        let zones: Vec<String> = zones.split(',').map(str::to_owned).collect();
        people.add(
            name,
            display,
            role,
            &zones,
            &pw,
            linli_gateway::clock::now_ms(),
        )?;
        out.push((name.to_owned(), role.as_str(), pw));
    }
    Ok(out)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The demo's directory (config, data, log, the storyline's files).
    pub dir: PathBuf,
    /// The `linli` binary.
    pub gateway_bin: PathBuf,
    /// Device time runs this many times faster (default: the storyline's).
    pub speed: Option<u32>,
    /// Listen on these; default: the gateway's own ports (1883, 1884, 8080) where free.
    pub ports: Option<Ports>,
    /// After the storyline: keep the neighbourhood running until Ctrl-C (else stop).
    pub keep_running: bool,
}

/// The gateway's defaults where they are free, else free ports.
fn preferred_ports() -> Result<Ports> {
    let pick = |port: u16| -> Result<SocketAddr> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match std::net::TcpListener::bind(addr) {
            Ok(_) => Ok(addr),
            Err(_) => bench::free_addr(),
        }
    };
    Ok(Ports {
        mqtt: pick(1883)?,
        mqtt5: pick(1884)?,
        http: pick(8080)?,
    })
}

fn config_text(data: &Path, p: &Ports, routing: &Path, pager: &str) -> String {
    format!(
        "# Written by linli-sim demo.\ndata_dir = {data:?}\n\n[broker]\nlisten_v4 = \"{}\"\nlisten_v5 = \"{}\"\n\n\
         [http]\nlisten = \"{}\"\n\n[delivery]\nrouting = {routing:?}\n\n\
         # The people's phones: the demo's pager.\n[[delivery.webhook]]\nname = \"phone\"\nurl = \"{pager}\"\n\
         secret = \"{SECRET}\"\nreceives = \"pages\"\n\n[log]\nlevel = \"info,rumqttd=warn\"\n{MAP}",
        p.mqtt, p.mqtt5, p.http
    )
}

/// Empties `dir` of an earlier demo (only a directory a simulator run made), or creates
/// it, and writes the storyline's files.
fn fresh(dir: &Path) -> Result<()> {
    crate::gateway::claim_dir(dir, "linli-sim demo")?;
    std::fs::create_dir_all(dir.join("rosters"))?;
    for (name, text) in FILES {
        std::fs::write(dir.join(name), text)?;
    }
    std::fs::copy(dir.join("rosters/evening.toml"), dir.join("routing.toml"))?;
    Ok(())
}

/// Runs the demo; `say` gets every line to show. Returns the storyline's verdicts.
pub async fn run(cfg: &DemoConfig, say: &mut dyn FnMut(String)) -> Result<Outcome> {
    let dir = std::path::absolute(&cfg.dir)?;
    fresh(&dir)?;
    let mut sc = Scenario::load(&dir.join("neighbourhood.toml"))?;
    if let Some(s) = cfg.speed {
        sc.speed = s.max(1);
    }
    let pager = Pager::start(SECRET).await?;
    let ports = match cfg.ports {
        Some(p) => p,
        None => preferred_ports()?,
    };
    let routing = dir.join("routing.toml");
    let log = dir.join("linli.log");
    let mut gw = Gateway::prepare(
        &cfg.gateway_bin,
        &dir,
        ports,
        Some(log.clone()),
        |data, p| config_text(data, p, &routing, &pager.url()),
    )?;
    let people = add_people(&gw.data)?;
    gw.start()
        .await
        .with_context(|| format!("starting the gateway (its log: {})", log.display()))?;
    let http = format!("http://{}", ports.http);
    let minutes = |m: f64| m * 60.0 / f64::from(sc.speed);
    say(format!(
        "Linli demo: {} (device time ×{}; its hour passes in {:.0} minutes)",
        sc.name,
        sc.speed,
        minutes(60.0) / 60.0
    ));
    say(format!(
        "  dashboard {http}/  sign in as (passwords made for this run):"
    ));
    for (name, role, pw) in &people {
        say(format!("           {name:<10} {role:<10} {pw}"));
    }
    say(format!(
        "  gateway  {http}   alarms {http}/api/alarms   devices {http}/api/devices"
    ));
    say(format!(
        "           work orders {http}/api/work-orders   metrics {http}/metrics"
    ));
    say(format!(
        "  MQTT     {} (3.1.1)  {} (5)",
        ports.mqtt, ports.mqtt5
    ));
    say(format!(
        "  files    {} (config linli.toml, log linli.log, roster routing.toml)",
        dir.display()
    ));
    say(format!(
        "  try      curl -s -H \"Authorization: Bearer $(cat {})\" {http}/api/alarms",
        gw.data.join("api-token").display()
    ));

    let members = fleet::provision(&sc.fleet(), &gw.data)?;
    let n = members.len();
    let fl = fleet::start(members, ports.mqtt5, sc.speed)?;
    let online = fleet::wait_online(&fl, Duration::from_secs(60)).await;
    if online < n {
        let _ = fl.stop();
        bail!(
            "only {online} of {n} simulated devices came online within a minute (gateway log: {})",
            log.display()
        );
    }
    say(format!("{n} simulated devices online; the night begins"));
    let target = Target {
        http: http.clone(),
        broker: ports.mqtt5,
        data_dir: gw.data.clone(),
        routing: Some(routing),
        pages: Some(pager.pages.clone()),
    };
    let outcome = scenario::play(&sc, &fl, &target, say).await;
    if let Ok(o) = &outcome {
        for line in o.to_string().lines() {
            say(line.to_owned());
        }
        if cfg.keep_running {
            say(format!(
                "The neighbourhood keeps living (Ctrl-C stops it); the gateway is at {http}"
            ));
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let stopped = fl.stop();
    gw.stop();
    say(format!(
        "stopped; the gateway's data stays in {}",
        dir.display()
    ));
    stopped?;
    outcome
}
