//! A provisioned fleet running: every member on its own virtual board with the
//! firmware's application for its kind, all on one thread against the gateway, with the
//! handles that drive their scenes and the snapshots that say what they do.
//!
//! Owns the fleet's thread, each kind's application settings and cadence; does not own
//! the description (see the parent module), the boards or the device logic.

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
use linli_protocol::{DeviceKey, DeviceKind};
use tokio::sync::{mpsc, watch};

use super::Member;
use crate::board::{self, Board, Observers, Snapshot};
use crate::virtual_board::{self, Handle, Lamp, Timed, WearerQueue, FULL_CELL_MV};

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
