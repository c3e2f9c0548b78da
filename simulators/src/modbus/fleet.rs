//! [`Fleet`]: N lamps, M meters and K pumps spread over as many Modbus TCP listeners as
//! needed (at most 247 units each, ids 1..=247), each device with a stable id
//! (`lamp-0001`, `meter-001`, `pump-01`), its address and unit id; and the line commands
//! of `linli-sim modbus` ([`Fleet::control`]).
//!
//! Takes a [`FleetConfig`]; gives the devices and their [`Equipment`] handles. Stops its
//! servers on [`Fleet::shutdown`] or when dropped. Must be started inside a tokio runtime.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{
    serve_tcp, Equipment, Error, Fault, Kind, Lamp, LampConfig, Meter, MeterConfig, Pump,
    PumpConfig, State, Unit, MAX_UNIT,
};

/// What to simulate and where.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Street-light controllers (`lamp-0001`, ...).
    pub lamps: usize,
    /// Power meters (`meter-001`, ...).
    pub meters: usize,
    /// Pump stations (`pump-01`, ...).
    pub pumps: usize,
    /// The first listener's address; the next listeners take the next ports. Port 0:
    /// each listener gets a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Units per listener, 1..=247 (default 247).
    pub units_per_listener: u8,
    /// Every lamp's configuration (each gets its own noise seed from this one).
    pub lamp: LampConfig,
    /// Every meter's configuration (likewise).
    pub meter: MeterConfig,
    /// Every pump's configuration (likewise).
    pub pump: PumpConfig,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            lamps: 0,
            meters: 0,
            pumps: 0,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            units_per_listener: MAX_UNIT,
            lamp: LampConfig::default(),
            meter: MeterConfig::default(),
            pump: PumpConfig::default(),
        }
    }
}

/// One simulated device of a fleet. Serializes (for `linli-sim modbus`) as
/// `{"id":"lamp-0001","addr":"127.0.0.1:40000","unit":1,"kind":"lamp","profile":"street-light"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// `lamp-0001`, `meter-001`, `pump-01`, ...
    pub id: String,
    /// Its listener.
    pub addr: SocketAddr,
    /// Its unit id there.
    pub unit: u8,
    /// Its kind.
    pub kind: Kind,
    /// The gateway profile that reads it.
    pub profile: &'static str,
    /// Its listener's units.
    #[serde(skip)]
    pub equipment: Equipment,
}

impl Device {
    /// Sets or clears its fault.
    pub fn set_fault(&self, fault: Option<Fault>) -> Result<(), Error> {
        self.equipment.set_fault(self.unit, fault)
    }

    /// What its registers show now.
    pub fn state(&self) -> Result<State, Error> {
        self.equipment.state(self.unit)
    }
}

/// One listener of a fleet and the units behind it.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its units.
    pub equipment: Equipment,
}

/// A running fleet of simulated Modbus devices.
#[derive(Debug)]
pub struct Fleet {
    devices: Vec<Device>,
    index: HashMap<String, usize>,
    listeners: Vec<Listener>,
    /// Dropped (with the fleet) to stop the servers.
    stop: watch::Sender<()>,
    servers: Vec<JoinHandle<io::Result<()>>>,
}

/// What [`Fleet::control`] makes of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Print this line.
    Reply(String),
    /// Nothing to do (blank line).
    Nothing,
    /// Stop.
    Quit,
}

impl Fleet {
    /// Binds the listeners and starts serving.
    pub async fn start(cfg: &FleetConfig) -> Result<Fleet, Error> {
        let per = cfg.units_per_listener;
        if per == 0 || per > MAX_UNIT {
            return Err(Error::UnitsPerListener(per));
        }
        let per = usize::from(per);
        let total = cfg.lamps + cfg.meters + cfg.pumps;
        let n_listeners = total.div_ceil(per);
        let first = cfg.listen.port();
        if first != 0 && usize::from(first) + n_listeners > usize::from(u16::MAX) + 1 {
            return Err(Error::PortRange {
                first,
                listeners: n_listeners,
            });
        }

        let (stop, _) = watch::channel(());
        let mut listeners = Vec::with_capacity(n_listeners);
        let mut servers = Vec::with_capacity(n_listeners);
        for i in 0..n_listeners {
            let mut addr = cfg.listen;
            if first != 0 {
                // Checked above: fits.
                addr.set_port(first.saturating_add(u16::try_from(i).unwrap_or(u16::MAX)));
            }
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })?;
            let addr = tcp
                .local_addr()
                .map_err(|source| Error::Bind { addr, source })?;
            let equipment = Equipment::new();
            let mut stopped = stop.subscribe();
            let shutdown = async move {
                // Completes on a send or when the fleet (the sender) is dropped.
                let _ = stopped.changed().await;
            };
            let serving = equipment.clone();
            servers.push(tokio::spawn(async move {
                let served = serve_tcp(tcp, serving, shutdown).await;
                if let Err(e) = &served {
                    eprintln!("modbus simulator on {addr} stopped: {e}");
                }
                served
            }));
            listeners.push(Listener { addr, equipment });
        }

        let mut devices = Vec::with_capacity(total);
        let kinds = std::iter::repeat_n(Kind::Lamp, cfg.lamps)
            .chain(std::iter::repeat_n(Kind::Meter, cfg.meters))
            .chain(std::iter::repeat_n(Kind::Pump, cfg.pumps));
        let mut numbers = HashMap::new();
        for (k, kind) in kinds.enumerate() {
            let Some(listener) = listeners.get(k / per) else {
                break; // cannot happen: enough listeners for `total`
            };
            let unit = u8::try_from(k % per + 1).map_err(|_| Error::UnitsPerListener(0))?;
            let seed = k as u64;
            let model: Unit = match kind {
                Kind::Lamp => Lamp::new(LampConfig {
                    seed: cfg.lamp.seed.wrapping_add(seed),
                    ..cfg.lamp.clone()
                })
                .into(),
                Kind::Meter => Meter::new(MeterConfig {
                    seed: cfg.meter.seed.wrapping_add(seed),
                    ..cfg.meter.clone()
                })
                .into(),
                Kind::Pump => Pump::new(PumpConfig {
                    seed: cfg.pump.seed.wrapping_add(seed),
                    ..cfg.pump.clone()
                })
                .into(),
            };
            listener.equipment.insert(unit, model)?;
            let n: &mut usize = numbers.entry(kind).or_default();
            *n += 1;
            let id = match kind {
                Kind::Lamp => format!("lamp-{n:04}"),
                Kind::Meter => format!("meter-{n:03}"),
                Kind::Pump => format!("pump-{n:02}"),
            };
            devices.push(Device {
                id,
                addr: listener.addr,
                unit,
                kind,
                profile: kind.profile(),
                equipment: listener.equipment.clone(),
            });
        }
        let index = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        Ok(Fleet {
            devices,
            index,
            listeners,
            stop,
            servers,
        })
    }

    /// Every device: lamps, then meters, then pumps.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The device with this id.
    pub fn device(&self, id: &str) -> Result<&Device, Error> {
        self.index
            .get(id)
            .and_then(|&i| self.devices.get(i))
            .ok_or_else(|| Error::NoSuchDevice(id.to_owned()))
    }

    /// The listeners, in port order of creation.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Sets or clears device `id`'s fault.
    pub fn set_fault(&self, id: &str, fault: Option<Fault>) -> Result<(), Error> {
        self.device(id)?.set_fault(fault)
    }

    /// What device `id`'s registers show now.
    pub fn state(&self, id: &str) -> Result<State, Error> {
        self.device(id)?.state()
    }

    /// Runs one command line: `fault <id> <silent|broken|deaf|supply_lost|none>` (replies
    /// `ok`), `state <id>` (replies the state as JSON, with the id), `help`, `quit`.
    /// Mistakes reply `error: ...`.
    pub fn control(&self, line: &str) -> Control {
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            [] => return Control::Nothing,
            ["quit" | "exit"] => return Control::Quit,
            ["help"] => Ok(HELP.to_owned()),
            ["fault", id, fault] => Fault::parse_optional(fault)
                .and_then(|f| self.set_fault(id, f))
                .map(|()| "ok".to_owned()),
            ["state", id] => self.state(id).map(|s| state_json(id, &s)),
            _ => Ok(format!("error: unknown command {line:?}; {HELP}")),
        };
        Control::Reply(reply.unwrap_or_else(|e| format!("error: {e}")))
    }

    /// Stops every listener and closes every connection; returns the first server error.
    pub async fn shutdown(self) -> io::Result<()> {
        let Fleet { stop, servers, .. } = self;
        drop(stop);
        let mut result = Ok(());
        for server in servers {
            let served = server.await.unwrap_or_else(|e| Err(io::Error::other(e)));
            if result.is_ok() {
                result = served;
            }
        }
        result
    }
}

const HELP: &str = "commands: fault <id> <silent|broken|deaf|supply_lost|none>, state <id>, quit";

/// `{"id":..,"kind":..,<state fields>}` on one line.
fn state_json(id: &str, state: &State) -> String {
    let id = serde_json::Value::from(id);
    match serde_json::to_string(state) {
        // `{"kind":...}` → `{"id":..,"kind":...}`
        Ok(fields) => format!(
            "{{\"id\":{id},{}",
            fields.strip_prefix('{').unwrap_or(&fields)
        ),
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spreads_units_over_listeners_with_ids() {
        let cfg = FleetConfig {
            lamps: 250,
            meters: 3,
            pumps: 2,
            ..FleetConfig::default()
        };
        let fleet = Fleet::start(&cfg).await.expect("fleet");
        let devices = fleet.devices();
        assert_eq!(devices.len(), 255);
        assert_eq!(fleet.listeners().len(), 2);
        let first = &devices[0];
        assert_eq!((first.id.as_str(), first.unit), ("lamp-0001", 1));
        let d = fleet.device("lamp-0248").expect("lamp-0248");
        assert_eq!((d.unit, d.addr), (1, fleet.listeners()[1].addr));
        assert_ne!(fleet.listeners()[0].addr, fleet.listeners()[1].addr);
        let m = fleet.device("meter-001").expect("meter");
        assert_eq!((m.kind, m.unit), (Kind::Meter, 4));
        assert_eq!(fleet.device("pump-02").expect("pump").unit, 8);
        assert!(matches!(
            fleet.device("lamp-9999"),
            Err(Error::NoSuchDevice(_))
        ));
        assert_eq!(fleet.listeners()[1].equipment.units().len(), 8);
        let json = serde_json::to_string(first).expect("json");
        assert!(
            json.starts_with(r#"{"id":"lamp-0001","addr":"127.0.0.1:"#),
            "{json}"
        );
        assert!(
            json.ends_with(r#","unit":1,"kind":"lamp","profile":"street-light"}"#),
            "{json}"
        );
        fleet.shutdown().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn control_lines() {
        let cfg = FleetConfig {
            lamps: 1,
            pumps: 1,
            ..FleetConfig::default()
        };
        let fleet = Fleet::start(&cfg).await.expect("fleet");
        let reply = |line| match fleet.control(line) {
            Control::Reply(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(reply("fault lamp-0001 deaf"), "ok");
        let line = reply("state lamp-0001");
        assert!(
            line.starts_with(r#"{"id":"lamp-0001","kind":"lamp","relay_command":true,"#),
            "{line}"
        );
        let state: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(state["id"], "lamp-0001");
        assert_eq!(state["kind"], "lamp");
        assert_eq!(state["fault"], "deaf");
        assert_eq!(state["relay_on"], true);
        assert_eq!(state["dimming_pct"], 100);
        assert_eq!(reply("  fault pump-01   none "), "ok");
        assert!(reply("fault pump-01 melted").starts_with("error: unknown fault"));
        assert!(reply("fault pump-99 none").starts_with("error: no simulated device"));
        assert!(reply("explode").starts_with("error: unknown command"));
        assert_eq!(fleet.control("   "), Control::Nothing);
        assert_eq!(fleet.control("quit"), Control::Quit);
    }

    #[tokio::test]
    async fn bad_configs_are_refused() {
        let too_many = FleetConfig {
            units_per_listener: 248,
            lamps: 1,
            ..FleetConfig::default()
        };
        assert!(matches!(
            Fleet::start(&too_many).await,
            Err(Error::UnitsPerListener(248))
        ));
        let past_end = FleetConfig {
            lamps: 500,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 65535)),
            ..FleetConfig::default()
        };
        assert!(matches!(
            Fleet::start(&past_end).await,
            Err(Error::PortRange { .. })
        ));
    }
}
