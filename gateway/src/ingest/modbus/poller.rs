//! The Modbus poller as the gateway sees it: builds the links from `[modbus]` (one task
//! per TCP device, one per RS-485 bus), registers each device in the registry as a polled
//! device of its profile's kind, and answers the API: device status, commands, the
//! audit trail.
//!
//! Owns start-up checks (profiles exist, ids are not taken by MQTT devices) and command
//! validation. Does not poll itself (`link`).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::audit::{Audit, AuditError, CommandRecord};
use super::config::ModbusConfig;
use super::link::{Command, Link, Transport};
use super::profile::{Profile, Profiles};
use super::registers::DataType;
use super::schedule::{Moment, Place, Schedule};
use super::stats::{PollerMetrics, Status};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::reading::Inbound;
use crate::registry::{DeviceProfile, Registry, SubjectKind, Trust};
use crate::rules::localtime::{LocalTime, Window};
use linli_protocol::DeviceKind;

/// Why the poller could not start. Names the config key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ModbusStartError {
    /// The profiles file could not be read.
    #[error("cannot read modbus.profiles {path}: {source}")]
    ProfilesFile {
        /// Path.
        path: String,
        /// Error.
        source: std::io::Error,
    },
    /// Profiles are invalid.
    #[error("modbus profiles have {} problem(s):\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Profiles(Vec<super::profile::ProfileIssue>),
    /// A device names an unknown profile.
    #[error("modbus.device[{index}].profile: no profile `{name}`; known: {known}")]
    UnknownProfile {
        /// Device index.
        index: usize,
        /// Name given.
        name: String,
        /// Known names.
        known: String,
    },
    /// The id belongs to a device registered otherwise.
    #[error("modbus.device[{index}].id: `{id}` is already registered as a {kind} ({trust}) device; pick another id")]
    IdTaken {
        /// Device index.
        index: usize,
        /// Id.
        id: String,
        /// Its kind.
        kind: &'static str,
        /// Its trust.
        trust: &'static str,
    },
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The audit database failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A schedule drives something it cannot.
    #[error("modbus.schedule[{index}]: {message}")]
    Schedule {
        /// Schedule index.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No such Modbus device.
    #[error("no Modbus device `{0}`")]
    UnknownDevice(String),
    /// No such register in the device's profile.
    #[error("profile {profile} has no register `{register}`; writable: {writable}")]
    UnknownRegister {
        /// Profile.
        profile: String,
        /// Name asked for.
        register: String,
        /// The writable ones.
        writable: String,
    },
    /// The register is read-only.
    #[error("register `{0}` is read-only")]
    ReadOnly(String),
    /// The value is out of the register's range or does not fit its type.
    #[error("{value} is not a valid value for `{register}` (range {min:?}..={max:?})")]
    BadValue {
        /// Register.
        register: String,
        /// Value.
        value: f64,
        /// Lower end.
        min: Option<f64>,
        /// Upper end.
        max: Option<f64>,
    },
    /// The device's link task is gone (the gateway is stopping).
    #[error("the device's poller has stopped")]
    Stopped,
    /// The write failed (timeout, transport, exception); the command is audited as failed.
    #[error("write failed: {error}")]
    Write {
        /// What happened.
        error: String,
        /// The audit record.
        record: Box<CommandRecord>,
    },
    /// The audit trail could not be written (before the write: nothing was sent; after
    /// it: the write's outcome is not recorded — check the device before retrying).
    #[error("command audit failed: {0}")]
    Audit(String),
}

/// A polled device as the API shows it.
#[derive(Debug)]
pub struct DeviceState {
    /// Device id.
    pub id: String,
    /// Its profile.
    pub profile: Arc<Profile>,
    /// Unit id.
    pub unit: u8,
    /// Poll interval, ms.
    pub poll_ms: u64,
    /// How it is reached.
    pub transport: String,
    /// Poll status.
    pub status: Mutex<Status>,
    link: mpsc::Sender<Command>,
    index: usize,
}

/// What the links share.
#[derive(Debug)]
pub struct Shared {
    /// `[modbus]`.
    pub config: ModbusConfig,
    /// Poller counters.
    pub metrics: PollerMetrics,
    /// Command audit.
    pub audit: Audit,
    /// Ingest's queue.
    pub ingest: mpsc::Sender<Inbound>,
    /// Ingest's counters (queue depth, overload rejections).
    pub ingest_metrics: Arc<Metrics>,
}

/// A device's status for the API.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// Id.
    pub id: String,
    /// Profile name.
    pub profile: String,
    /// Kind.
    pub kind: &'static str,
    /// Transport.
    pub transport: String,
    /// Unit id.
    pub unit: u8,
    /// Poll interval, ms.
    pub poll_ms: u64,
    /// Status.
    #[serde(flatten)]
    pub status: Status,
}

/// The running poller.
#[derive(Debug)]
pub struct Modbus {
    devices: BTreeMap<String, Arc<DeviceState>>,
    shared: Arc<Shared>,
}

impl Modbus {
    /// Checks the devices against the profiles and the registry, registers new ones,
    /// and starts one task per link and the schedules. `profiles_text` is the site's
    /// profiles file, if any; `ingest` is the ingest worker's queue and its counters.
    pub fn start(
        config: &ModbusConfig,
        profiles_text: Option<&str>,
        data_dir: &std::path::Path,
        registry: &Registry,
        (ingest, ingest_metrics): (mpsc::Sender<Inbound>, Arc<Metrics>),
        local: LocalTime,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Modbus>, ModbusStartError> {
        let Plan {
            profiles: chosen,
            schedules,
        } = plan(config, profiles_text)?;
        for (index, (d, p)) in config.device.iter().zip(&chosen).enumerate() {
            register(registry, index, d, p)?;
        }
        let audit = Audit::open(data_dir)?;
        let stale = audit.close_pending()?;
        if stale > 0 {
            tracing::info!(
                commands = stale,
                "commands left open by the last run closed: checks marked superseded, unanswered writes interrupted"
            );
        }
        let shared = Arc::new(Shared {
            config: config.clone(),
            metrics: PollerMetrics::default(),
            audit,
            ingest,
            ingest_metrics,
        });
        // Group devices into links: one per TCP address (several units at one host:port
        // sit behind a Modbus TCP gateway on one RS-485 line: one connection, asked in
        // turn), one per serial bus with its units.
        let mut links: Vec<(Transport, Vec<usize>)> = Vec::new();
        for (i, d) in config.device.iter().enumerate() {
            let transport = match (&d.tcp, &d.bus) {
                (Some(addr), _) => Transport::Tcp(addr.clone()),
                (None, Some(bus)) => match config.bus.iter().find(|b| &b.name == bus) {
                    Some(b) => Transport::Rtu(b.clone()),
                    None => continue,
                },
                (None, None) => continue,
            };
            match links.iter_mut().find(|(t, _)| t.same_link(&transport)) {
                Some((_, members)) => members.push(i),
                None => links.push((transport, vec![i])),
            }
        }
        let mut devices = BTreeMap::new();
        for (transport, members) in links {
            let (tx, rx) = mpsc::channel(64);
            let states: Vec<Arc<DeviceState>> = members
                .iter()
                .enumerate()
                .map(|(index, i)| {
                    let d = &config.device[*i];
                    Arc::new(DeviceState {
                        id: d.id.clone(),
                        profile: chosen[*i].clone(),
                        unit: d.unit,
                        poll_ms: d.poll_ms,
                        transport: transport.to_string(),
                        status: Mutex::new(Status::default()),
                        link: tx.clone(),
                        index,
                    })
                })
                .collect();
            for s in &states {
                devices.insert(s.id.clone(), s.clone());
            }
            let link = Link::new(transport, states, shared.clone());
            tokio::spawn(link.run(rx, stop.clone()));
        }
        if !devices.is_empty() {
            tracing::info!(devices = devices.len(), "modbus poller started");
        }
        let modbus = Arc::new(Modbus { devices, shared });
        if !schedules.is_empty() {
            let place = config
                .latitude
                .zip(config.longitude)
                .map(|(latitude, longitude)| Place {
                    latitude,
                    longitude,
                });
            let tick = std::time::Duration::from_millis(config.schedule_tick_ms);
            tokio::spawn(
                modbus
                    .clone()
                    .run_schedules(schedules, local, place, tick, stop),
            );
        }
        Ok(modbus)
    }

    /// Applies the schedules: each tick, every lamp whose desired relay or dimming differs
    /// from what the schedule last commanded gets a command (audited as
    /// `schedule:NAME`, verified like any other). At start, everything is commanded once.
    /// A lamp that is not answering is retried on a later tick.
    async fn run_schedules(
        self: Arc<Self>,
        schedules: Vec<Schedule>,
        local: LocalTime,
        place: Option<Place>,
        tick: std::time::Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut applied: std::collections::HashMap<(String, &'static str), f64> =
            Default::default();
        let mut warned = std::collections::HashSet::new();
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => return,
            }
            let now = now_ms();
            // Each lamp's commands run beside the others' (a lamp that does not answer
            // costs its own timeout, not the street's); one lamp's commands in turn.
            let mut jobs = Vec::new();
            for s in &schedules {
                let want = s.desired(&local, place, now);
                if want.relay_on.is_none() && warned.insert(s.name.clone()) {
                    tracing::warn!(schedule = %s.name, "no sunrise or sunset today at these coordinates: relays left as they are, dimming still applied");
                }
                for id in &s.devices {
                    let Some(d) = self.devices.get(id) else {
                        continue;
                    };
                    let todo: Vec<(&'static str, f64, String)> = [
                        ("relay_on", want.relay_on.map(|on| f64::from(u8::from(on)))),
                        ("dimming_pct", Some(f64::from(want.dimming_pct))),
                    ]
                    .into_iter()
                    .filter_map(|(metric, value)| {
                        let value = value?;
                        let register = d.profile.command_register(metric)?;
                        (applied.get(&(id.clone(), metric)) != Some(&value))
                            .then(|| (metric, value, register.to_string()))
                    })
                    .collect();
                    if !todo.is_empty() {
                        jobs.push(self.schedule_lamp(id, d, todo, format!("schedule:{}", s.name)));
                    }
                }
            }
            for done in futures_util::future::join_all(jobs).await {
                applied.extend(done);
            }
        }
    }

    /// Sends one lamp its scheduled commands in turn; stops at the first that fails (the
    /// rest wait for the next tick). Gives back what was commanded.
    async fn schedule_lamp(
        &self,
        id: &str,
        d: &DeviceState,
        todo: Vec<(&'static str, f64, String)>,
        by: String,
    ) -> Vec<((String, &'static str), f64)> {
        let mut done = Vec::new();
        for (metric, value, register) in todo {
            if d.status.lock().state == super::stats::LinkState::Down {
                break;
            }
            match self.command(id, &register, value, "schedule", &by).await {
                Ok(_) => done.push(((id.to_string(), metric), value)),
                Err(e) => {
                    tracing::warn!(device = %id, by = %by, error = %e, "scheduled command failed; retried next tick");
                    break;
                }
            }
        }
        done
    }

    /// Every device's status.
    pub fn devices(&self) -> Vec<DeviceView> {
        self.devices.values().map(|d| view(d)).collect()
    }

    /// One device's status.
    pub fn device(&self, id: &str) -> Option<DeviceView> {
        self.devices.get(id).map(|d| view(d))
    }

    /// Counters and jitter.
    pub fn metrics(&self) -> &PollerMetrics {
        &self.shared.metrics
    }

    /// Recent commands, newest first.
    pub fn commands(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, AuditError> {
        self.shared.audit.list(device, limit)
    }

    /// Writes `value` to `register` of `device`: validated, audited (`source`, `by`),
    /// written, and — for a register with a read-back — verified by the next polls.
    pub async fn command(
        &self,
        device: &str,
        register: &str,
        value: f64,
        source: &str,
        by: &str,
    ) -> Result<CommandRecord, CommandError> {
        let d = self
            .devices
            .get(device)
            .ok_or_else(|| CommandError::UnknownDevice(device.into()))?;
        let p = &d.profile;
        let writable = || {
            p.registers
                .iter()
                .filter(|r| r.writable)
                .map(|r| r.reg.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let index = p
            .index(register)
            .ok_or_else(|| CommandError::UnknownRegister {
                profile: p.name.clone(),
                register: register.into(),
                writable: writable(),
            })?;
        let r = &p.registers[index];
        if !r.writable {
            return Err(CommandError::ReadOnly(register.into()));
        }
        let in_range = r.reg.min.is_none_or(|m| value >= m)
            && r.reg.max.is_none_or(|m| value <= m)
            && (r.reg.data_type != DataType::Bool || value == 0.0 || value == 1.0);
        if !in_range || r.reg.encode(value).is_none() {
            return Err(CommandError::BadValue {
                register: register.into(),
                value,
                min: r.reg.min,
                max: r.reg.max,
            });
        }
        let audit = &self.shared.audit;
        let id = tokio::task::block_in_place(|| {
            audit.request(device, register, value, source, by, now_ms())
        })
        .map_err(|e| CommandError::Audit(e.to_string()))?;
        tracing::info!(
            device,
            register,
            value,
            source,
            by,
            command = id,
            "modbus command"
        );
        let (reply, rx) = oneshot::channel();
        let sent = d
            .link
            .send(Command {
                unit: d.index,
                register: index,
                value,
                audit: id,
                reply,
            })
            .await;
        match (sent, rx.await) {
            (Ok(()), Ok(outcome)) => outcome,
            _ => {
                // The link is gone (the gateway is stopping): say so in the audit too.
                let _ = tokio::task::block_in_place(|| {
                    audit.written(id, Some("not sent: the poller stopped"), false)
                });
                Err(CommandError::Stopped)
            }
        }
    }
}

/// What `[modbus]` asks for, checked against the profiles (no I/O): each device's
/// profile, in config order, and the schedules with their lamps.
#[derive(Debug)]
pub struct Plan {
    /// Profile of `config.device[i]`.
    pub profiles: Vec<Arc<Profile>>,
    /// Schedules.
    pub schedules: Vec<Schedule>,
}

/// Checks the devices' profiles and the schedules; `profiles_text` is the site's
/// profiles file, if any.
pub fn plan(config: &ModbusConfig, profiles_text: Option<&str>) -> Result<Plan, ModbusStartError> {
    let profiles = Profiles::build(profiles_text).map_err(ModbusStartError::Profiles)?;
    let mut chosen = Vec::new();
    for (index, d) in config.device.iter().enumerate() {
        chosen.push(
            profiles
                .get(&d.profile)
                .ok_or_else(|| ModbusStartError::UnknownProfile {
                    index,
                    name: d.profile.clone(),
                    known: profiles.names().join(", "),
                })?,
        );
    }
    let schedules = schedules(config, &chosen)?;
    Ok(Plan {
        profiles: chosen,
        schedules,
    })
}

/// Validated schedules with their lamps resolved (by id and by zone); every lamp must
/// have relay and dimming commands, and belong to one schedule only.
fn schedules(
    config: &ModbusConfig,
    profiles: &[Arc<Profile>],
) -> Result<Vec<Schedule>, ModbusStartError> {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for (index, s) in config.schedule.iter().enumerate() {
        let err = |message: String| ModbusStartError::Schedule { index, message };
        let mut devices = Vec::new();
        for (i, d) in config.device.iter().enumerate() {
            let named = s.devices.contains(&d.id);
            let zoned = s.zones.contains(&d.zone) && profiles[i].kind == DeviceKind::StreetLight;
            if !(named || zoned) {
                continue;
            }
            for metric in ["relay_on", "dimming_pct"] {
                if profiles[i].command_register(metric).is_none() {
                    return Err(err(format!(
                        "device `{}` (profile {}) has no writable register verified by `{metric}`",
                        d.id, profiles[i].name
                    )));
                }
            }
            if let Some(other) = owner.insert(&d.id, &s.name) {
                return Err(err(format!(
                    "device `{}` is also in schedule `{other}`",
                    d.id
                )));
            }
            devices.push(d.id.clone());
        }
        if devices.is_empty() {
            return Err(err("names no lamp (check `devices` and `zones`)".into()));
        }
        let moment = |m: &str| Moment::parse(m).map_err(err);
        let mut dims = Vec::new();
        for d in &s.dim {
            dims.push((Window::parse(&d.window).map_err(err)?, d.level));
        }
        out.push(Schedule {
            name: s.name.clone(),
            on: moment(&s.on)?,
            off: moment(&s.off)?,
            dims,
            devices,
        });
    }
    Ok(out)
}

fn view(d: &DeviceState) -> DeviceView {
    DeviceView {
        id: d.id.clone(),
        profile: d.profile.name.clone(),
        kind: d.profile.kind.as_str(),
        transport: d.transport.clone(),
        unit: d.unit,
        poll_ms: d.poll_ms,
        status: d.status.lock().clone(),
    }
}

/// A polled device's heartbeat: twice the slowest interval of the registers that feed
/// its report, so one late poll is not `late` (supervision counts missed heartbeats).
fn heartbeat_s(d: &super::config::ModbusDevice, p: &Profile) -> u64 {
    let slowest = p
        .registers
        .iter()
        .filter(|r| r.feeds.is_some())
        .map(|r| r.poll_ms.unwrap_or(d.poll_ms))
        .max()
        .unwrap_or(d.poll_ms);
    (2 * slowest).div_ceil(1000).max(1)
}

/// Registers a configured device, or checks that the registered one is this polled
/// device. Its heartbeat is its poll interval, so supervision marks it late and lost
/// when polls stop answering.
fn register(
    registry: &Registry,
    index: usize,
    d: &super::config::ModbusDevice,
    p: &Profile,
) -> Result<(), ModbusStartError> {
    let heartbeat_s = heartbeat_s(d, p);
    match registry.get(&d.id)? {
        Some(r) if r.profile.trust != Trust::Polled || r.profile.kind != p.kind => {
            Err(ModbusStartError::IdTaken {
                index,
                id: d.id.clone(),
                kind: r.profile.kind.as_str(),
                trust: match r.profile.trust {
                    Trust::Sealed => "sealed",
                    Trust::Integration => "integration",
                    Trust::Polled => "polled",
                },
            })
        }
        Some(r) => {
            let subject = d.asset.clone().map(|a| (SubjectKind::Asset, a));
            if r.profile.zone != d.zone
                || r.profile.site != d.site
                || r.profile.heartbeat_s != Some(heartbeat_s)
                || r.profile.subject != subject
            {
                // The config is the truth for polled equipment: follow its changes.
                registry.relocate_polled(&d.id, &d.site, &d.zone, subject.as_ref(), heartbeat_s)?;
                tracing::info!(device = %d.id, zone = %d.zone, heartbeat_s, "modbus device's registration updated from the config");
            }
            Ok(())
        }
        None => {
            registry.provision(&DeviceProfile {
                id: d.id.clone(),
                kind: p.kind,
                site: d.site.clone(),
                zone: d.zone.clone(),
                subject: d.asset.clone().map(|a| (SubjectKind::Asset, a)),
                heartbeat_s: Some(heartbeat_s),
                trust: Trust::Polled,
            })?;
            tracing::info!(device = %d.id, profile = %p.name, "modbus device registered");
            Ok(())
        }
    }
}
