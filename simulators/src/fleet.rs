//! A fleet of firmware devices from a description file: which kinds, how many, in which
//! site and zone, for which residents or assets. The fleet is provisioned into a
//! gateway's registry (as `linli provision` does) and every device runs the firmware's
//! own application loop and MQTT client on a virtual board (`crate::board`,
//! `crate::virtual_board`), with its own credentials and key.
//!
//! Owns the description (parse, then validate collecting every error by key), the
//! provisioning and the fleet's thread. Does not own a device's logic (the firmware) or
//! the boards.
//!
//! ```toml
//! [[group]]
//! kind = "pendant"        # the kinds with a virtual board: pendant | bed | door | motion
//!                         # | vitals | hazard | street_light | manhole | water_level | waste_bin
//! count = 4
//! id = "wing-a-pendant"   # ids wing-a-pendant-1 .. -4
//! site = "care-home-1"
//! zone = "wing-a"
//! resident = "R-A"        # residents R-A-1 .. R-A-4 (care kinds); `asset` for facility kinds
//! ```

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use linli_firmware::app::bed::Bed;
use linli_firmware::app::door::Door;
use linli_firmware::app::hazard::Hazard;
use linli_firmware::app::manhole::Manhole;
use linli_firmware::app::motion::Motion;
use linli_firmware::app::pendant::Pendant;
use linli_firmware::app::street_light::StreetLight;
use linli_firmware::app::vitals::Vitals;
use linli_firmware::app::waste_bin::WasteBin;
use linli_firmware::app::water_level::WaterLevel;
use linli_firmware::app::{Application, Device};
use linli_firmware::node::{Cadence, Node};
use linli_firmware::{
    bed, fall, manhole, motion, sos, street_light, vitals, waste_bin, water_level,
};
use linli_gateway::registry::{DeviceProfile, Registry, SubjectKind, Trust};
use linli_protocol::{DeviceKey, DeviceKind};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::board::{self, Board, Observers, Snapshot};
use crate::virtual_board::{self, Handle, Lamp, Timed, WearerQueue, FULL_CELL_MV, KINDS};

/// One group of alike devices.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Device kind: one with a virtual board (`pendant`, `street_light`, `water_level` ...).
    pub kind: String,
    /// How many.
    pub count: u32,
    /// Id prefix: the devices are `{id}-1` ... `{id}-{count}`.
    pub id: String,
    /// Site.
    pub site: String,
    /// Zone within the site.
    pub zone: String,
    /// Resident id prefix (care devices): `{resident}-1` ...
    pub resident: Option<String>,
    /// Asset id prefix (facility devices): `{asset}-1` ...
    pub asset: Option<String>,
    /// Heartbeat interval, s (the gateway's supervision expects it).
    pub heartbeat_s: Option<u16>,
}

/// A fleet description.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The groups.
    #[serde(default)]
    pub group: Vec<Group>,
}

impl Description {
    /// Parses and validates `text` (from `path`, for messages); every problem is named
    /// by its key.
    pub fn parse(text: &str, path: &Path) -> Result<Description> {
        let d: Description = toml::from_str(text)
            .with_context(|| format!("fleet description {}", path.display()))?;
        let errors = d.problems();
        if !errors.is_empty() {
            bail!(
                "fleet description {}:\n  {}",
                path.display(),
                errors.join("\n  ")
            );
        }
        Ok(d)
    }

    /// Every problem of the description, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let d = self;
        let mut errors = Vec::new();
        if d.group.is_empty() {
            errors.push("no [[group]]: describe at least one group of devices".to_owned());
        }
        for (i, g) in d.group.iter().enumerate() {
            let at = format!("group[{i}]");
            match DeviceKind::parse(&g.kind) {
                Some(k) if KINDS.contains(&k) => {}
                _ => errors.push(format!(
                    "{at}.kind: {:?} has no virtual board; use one of {}",
                    g.kind,
                    KINDS.map(|k| k.as_str()).join(", ")
                )),
            }
            if g.count == 0 {
                errors.push(format!("{at}.count: at least 1"));
            }
            if !linli_protocol::topic::is_valid_device_id(&format!("{}-{}", g.id, g.count)) {
                errors.push(format!(
                    "{at}.id: {:?} is not a device id prefix (A-Z a-z 0-9 . _ -, ids up to 64)",
                    g.id
                ));
            }
            if g.resident.is_some() && g.asset.is_some() {
                errors.push(format!("{at}: give resident or asset, not both"));
            }
            if g.heartbeat_s == Some(0) {
                errors.push(format!("{at}.heartbeat_s: at least 1"));
            }
        }
        let mut ids: Vec<&str> = d.group.iter().map(|g| g.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            errors.push(format!("group ids: {:?} is used twice", w[0]));
        }
        errors
    }

    /// The kind of the device `id`, if the fleet has it.
    pub fn kind_of(&self, id: &str) -> Option<DeviceKind> {
        self.group
            .iter()
            .find(|g| {
                id.strip_prefix(g.id.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| (1..=g.count).contains(&n))
            })
            .and_then(|g| DeviceKind::parse(&g.kind))
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Description> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading fleet description {}", path.display()))?;
        Description::parse(&text, path)
    }
}

/// One provisioned device.
#[derive(Debug, Clone)]
pub struct Member {
    /// Device id.
    pub id: String,
    /// Kind.
    pub kind: DeviceKind,
    /// MQTT password.
    pub password: String,
    /// Sealing key id.
    pub key_id: u8,
    /// Sealing key.
    pub key: [u8; 32],
    /// Heartbeat interval, s.
    pub heartbeat_s: u16,
    /// The frame counter its flash holds: where its next boot continues (0 when new).
    pub saved_counter: u32,
}

/// Registers every device of `d` in the registry under `data_dir` (the gateway's data
/// directory; the gateway may be running) and returns them with their secrets.
pub fn provision(d: &Description, data_dir: &Path) -> Result<Vec<Member>> {
    let registry = Registry::open(data_dir)
        .with_context(|| format!("opening the registry in {}", data_dir.display()))?;
    let mut members = Vec::new();
    for g in &d.group {
        let kind = DeviceKind::parse(&g.kind).context("validated kind")?;
        let heartbeat_s = g.heartbeat_s.unwrap_or(60);
        for n in 1..=g.count {
            let id = format!("{}-{n}", g.id);
            let subject = match (&g.resident, &g.asset) {
                (Some(r), _) => Some((SubjectKind::Resident, format!("{r}-{n}"))),
                (_, Some(a)) => Some((SubjectKind::Asset, format!("{a}-{n}"))),
                _ => None,
            };
            let c = registry
                .provision(&DeviceProfile {
                    id: id.clone(),
                    kind,
                    site: g.site.clone(),
                    zone: g.zone.clone(),
                    subject,
                    heartbeat_s: Some(u64::from(heartbeat_s)),
                    trust: Trust::Sealed,
                })
                .with_context(|| format!("provisioning {id}"))?;
            let key: [u8; 32] = hex::decode(&c.key_hex)
                .ok()
                .and_then(|k| k.try_into().ok())
                .context("the registry's key is 32 bytes of hex")?;
            members.push(Member {
                id,
                kind,
                password: c.password,
                key_id: c.key_id,
                key,
                heartbeat_s,
                saved_counter: 0,
            });
        }
    }
    Ok(members)
}

/// What the fleet's devices are doing, one snapshot each, and handles to drive them.
#[derive(Debug)]
pub struct Fleet {
    /// Each device's latest snapshot, in member order.
    pub status: Vec<(String, watch::Receiver<Snapshot>)>,
    /// Each device's scene handle, by device id, in member order.
    pub handles: Vec<(String, Handle)>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Fleet {
    /// The handle to the scene of device `id`.
    pub fn handle(&self, id: &str) -> Option<&Handle> {
        self.handles.iter().find(|(d, _)| d == id).map(|(_, h)| h)
    }

    /// The wearer of pendant `id`.
    pub fn wearer(&self, id: &str) -> Option<&WearerQueue> {
        match self.handle(id)? {
            Handle::Pendant(w) => Some(w),
            _ => None,
        }
    }

    /// The lamp of street light `id`.
    pub fn lamp(&self, id: &str) -> Option<&Lamp> {
        match self.handle(id)? {
            Handle::StreetLight(l) => Some(l),
            _ => None,
        }
    }

    /// What each device's flash holds now (its saved frame counter), by id: keep it for
    /// the next run, or its frames would repeat counters the gateway has seen.
    pub fn saved_counters(&self) -> Vec<(String, u32)> {
        self.status
            .iter()
            .map(|(id, s)| (id.clone(), s.borrow().saved_counter))
            .collect()
    }

    /// Devices with an MQTT session up now.
    pub fn online(&self) -> usize {
        self.status
            .iter()
            .filter(|(_, s)| s.borrow().connected)
            .count()
    }

    /// The sum of every device's snapshot (counts added, `connected` = all connected).
    pub fn total(&self) -> Snapshot {
        self.status.iter().fold(
            Snapshot {
                connected: true,
                ..Snapshot::default()
            },
            |t, (_, s)| {
                let s = *s.borrow();
                Snapshot {
                    now_ms: t.now_ms.max(s.now_ms),
                    connected: t.connected && s.connected,
                    connects: t.connects + s.connects,
                    outbox: t.outbox + s.outbox,
                    alarms: t.alarms + s.alarms,
                    acked: t.acked + s.acked,
                    evicted: t.evicted + s.evicted,
                    refused: t.refused + s.refused,
                    counter: 0,
                    saved_counter: 0,
                }
            },
        )
    }

    /// Stops every device and waits for the fleet's thread.
    pub fn stop(mut self) -> Result<()> {
        self.stop.send_replace(true);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the fleet's thread panicked"),
            None => Ok(()),
        }
    }
}

/// Starts every member on its own virtual board, all on one thread (firmware futures are
/// not Send: one executor, as on a board), against the MQTT 5 listener `broker`, device
/// time `speed` times real time.
pub fn start(members: Vec<Member>, broker: std::net::SocketAddr, speed: u32) -> Result<Fleet> {
    let (stop, stop_rx) = watch::channel(false);
    let mut status = Vec::new();
    let mut handles = Vec::new();
    let mut jobs = Vec::new();
    for m in members {
        let Some(handle) = Handle::new(m.kind, u64::from(seed_of(&m.id))) else {
            bail!("{}: no virtual board for kind {}", m.id, m.kind.as_str());
        };
        let (tx, rx) = watch::channel(Snapshot::default());
        status.push((m.id.clone(), rx));
        handles.push((m.id.clone(), handle.clone()));
        jobs.push(Job {
            member: m,
            handle,
            status: tx,
        });
    }
    let thread = std::thread::Builder::new()
        .name("linli-sim-fleet".into())
        .spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let mut handles = Vec::new();
                for job in jobs {
                    let stop = stop_rx.clone();
                    handles.push(tokio::task::spawn_local(job.run(broker, speed, stop)));
                }
                for h in handles {
                    match h.await {
                        Ok(Err(e)) => tracing::warn!(error = %e, "a simulated device stopped"),
                        Err(e) => tracing::warn!(error = %e, "a simulated device panicked"),
                        Ok(Ok(())) => {}
                    }
                }
                Ok(())
            })
        })
        .context("starting the fleet's thread")?;
    Ok(Fleet {
        status,
        handles,
        stop,
        thread: Some(thread),
    })
}

/// One device to run: who it is, its scene, where it reports its state.
struct Job {
    member: Member,
    handle: Handle,
    status: watch::Sender<Snapshot>,
}

impl Job {
    /// Builds the device's board over its scene and runs its application on it, with
    /// the firmware's default settings. Outboxes: 16 slots, 4 for alarms, for the
    /// pendant (falls and SOS); 8 and 2 for the rest. Boards whose scene moves with
    /// device time run their application in [`Timed`].
    async fn run(
        self,
        broker: std::net::SocketAddr,
        speed: u32,
        stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let Job {
            member: m,
            handle,
            status: tx,
        } = self;
        match handle {
            Handle::Pendant(wearer) => {
                let mut sensors = virtual_board::pendant(&wearer, FULL_CELL_MV)?;
                let app = Pendant::new(fall::Config::default(), sos::Config::default());
                run_device::<_, 16, 4>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::StreetLight(lamp) => {
                let mut sensors = virtual_board::street_light(&lamp)?;
                let app = StreetLight::new(street_light::Config::default(), 1_000);
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::WaterLevel(water) => {
                let mut sensors = virtual_board::water_level(&water);
                // Every 10 s: 31 readings span the gauge's 5 min rate window.
                let app = WaterLevel::new(water_level::Config::default(), 10_000);
                let app = Timed::new(app);
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::Manhole(cover) => {
                let mut sensors = virtual_board::manhole(&cover)?;
                let (cfg, water) = (manhole::Config::default(), water_level::Config::default());
                // Every 5 s: the installed position is learnt in 80 s.
                let app = Timed::new(Manhole::new(cfg, water, 5_000));
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::WasteBin(bin) => {
                let mut sensors = virtual_board::waste_bin(&bin)?;
                // Full at 90 %; read once a minute, as the fire decision wants.
                let app = WasteBin::new(waste_bin::Config::default(), 90, 60_000);
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::Bed(pad) => {
                let mut sensors = virtual_board::bed(&pad);
                let app = Bed::new(bed::Config::default());
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::Door(door) => {
                let mut sensors = virtual_board::door(&door);
                let app = Door::new(50);
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::Motion(pir) => {
                let mut sensors = virtual_board::motion(&pir);
                let app = Motion::new(motion::Config::default(), 0);
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::Vitals(sleeper) => {
                let mut sensors = virtual_board::vitals(&sleeper)?;
                let app = Timed::new(Vitals::new(vitals::Config::default()));
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
            Handle::Hazard(detector) => {
                let mut sensors = virtual_board::hazard(&detector);
                let app = Hazard::new(1_000);
                run_device::<_, 8, 2>(&m, app, &mut sensors, broker, speed, tx, stop).await
            }
        }
    }
}

/// Seconds between a kind's periodic readings: a vital-sign sensor every 30 s (the
/// gateway's heart-rate rule holds for a minute), the rest at the firmware's default.
fn report_s(kind: DeviceKind) -> u16 {
    match kind {
        DeviceKind::Vitals => 30,
        _ => Cadence::default().report_s,
    }
}

/// A device's own seed (its jitter, its scene's noise), from its id.
fn seed_of(id: &str) -> u32 {
    id.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

async fn run_device<A: Application, const N: usize, const K: usize>(
    m: &Member,
    app: A,
    sensors: &mut A::Sensors,
    broker: std::net::SocketAddr,
    speed: u32,
    status: watch::Sender<Snapshot>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let cadence = Cadence {
        heartbeat_s: m.heartbeat_s,
        report_s: report_s(A::KIND),
        ..Cadence::default()
    };
    // Each device's jitter differs: seeded from its id.
    let seed = seed_of(&m.id);
    let node = Node::new(
        &m.id,
        DeviceKey::new(&m.key),
        m.key_id,
        m.saved_counter,
        cadence,
        0,
        seed,
    );
    let mut dev: Device<'_, A, N, K> = Device::new(node, app);
    let b = Board {
        broker,
        password: m.password.clone(),
        keepalive_s: 30,
        step_ms: 10,
        speed,
    };
    // Nobody reads the per-frame log of a fleet device.
    let (sent, _) = mpsc::unbounded_channel();
    let obs = Observers { status, sent };
    board::run(&b, &mut dev, sensors, &obs, stop).await
}

/// Waits until every device is online or `within` passes; how many are.
pub async fn wait_online(fleet: &Fleet, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline && fleet.online() < fleet.status.len() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.online()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_names_every_problem_by_key() {
        let text = r#"
            [[group]]
            kind = "pendant"
            count = 2
            id = "p"
            site = "s"
            zone = "z"
            resident = "R"

            [[group]]
            kind = "toaster"
            count = 0
            id = "bad id"
            site = "s"
            zone = "z"
            resident = "R"
            asset = "A"

            [[group]]
            kind = "street_light"
            count = 1
            id = "p"
            site = "s"
            zone = "z"
        "#;
        let e = Description::parse(text, Path::new("fleet.toml"))
            .expect_err("invalid")
            .to_string();
        for want in [
            "group[1].kind: \"toaster\" has no virtual board; use one of pendant, bed, door, motion, vitals, hazard, street_light, manhole, water_level, waste_bin",
            "group[1].count: at least 1",
            "group[1].id: \"bad id\"",
            "group[1]: give resident or asset, not both",
            "group ids: \"p\" is used twice",
        ] {
            assert!(e.contains(want), "{want:?} missing from:\n{e}");
        }
        assert!(!e.contains("group[0]"), "{e}");
        let unknown = Description::parse("[[group]]\nkinds = 1\n", Path::new("f.toml"));
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/example.toml");
        let d = Description::load(&path).expect("valid");
        assert_eq!(d.group.iter().map(|g| g.count).sum::<u32>(), 16);
    }
}
