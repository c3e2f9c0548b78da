//! The one place that wires the gateway: registry → journal recovery → broker → link
//! reader → ingest worker → supervision → HTTP API. Reads top to bottom like DESIGN.md's
//! picture.
//!
//! Owns start-up order and shutdown; each stage's logic lives in its own module.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rumqttd::local::LinkRx;
use rumqttd::Notification;
use tokio::sync::{mpsc, watch};

use crate::alarms::follower::{AlarmDesk, AlarmStartError};
use crate::broker::{self, BrokerError};
use crate::checkpoint::{self, CheckpointError};
use crate::clock::now_ms;
use crate::config::{Config, SupervisionConfig};
use crate::follow::{self, Entry, Follower};
use crate::ingest::modbus::poller::{Modbus, ModbusStartError};
use crate::ingest::Rejection;
use crate::journal::{Journal, JournalError, Recovery};
use crate::metrics::{FollowerGauges, Metrics};
use crate::notify::mqtt::MqttOut;
use crate::notify::stage::{Notifier, NotifyStartError};
use crate::reading::{Inbound, RawMessage};
use crate::registry::{DeviceRecord, Registry, RegistryError};
use crate::state::Views;
use crate::store::{Store, StoreError, StoreFollower};
use crate::supervision::{self, Liveness, Thresholds};
use crate::worker::Worker;

/// State shared by the stages and the API.
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Device registry.
    pub registry: Registry,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// Device views.
    pub views: Mutex<Views>,
    /// The embedded time-series store.
    pub store: Arc<Store>,
    /// Rules and alarms.
    pub alarms: Arc<AlarmDesk>,
    /// Delivery: pages, work orders, events.
    pub notify: Arc<Notifier>,
    /// The Modbus poller (None when no equipment is configured).
    pub modbus: Option<Arc<Modbus>>,
    /// Settings and commands to firmware devices.
    pub downlinks: Arc<crate::downlink::Downlinks>,
    /// Dashboard users, sessions, the audit log and the API token.
    pub people: Arc<crate::people::People>,
    /// When the gateway started.
    pub started: std::time::Instant,
    /// Test and maintenance hook: while true the ingest worker takes nothing from its
    /// queue (simulates a slow stage; messages queue up unacked).
    pub paused: AtomicBool,
}

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Registry could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Journal could not be opened or recovered.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The time-series store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replay-window checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Broker did not start.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// HTTP listener could not be bound.
    #[error("cannot listen on {addr} (http.listen): {source}; pick another address or stop what uses it")]
    Http {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
    /// Rules or the alarm database could not be loaded.
    #[error(transparent)]
    Alarms(#[from] AlarmStartError),
    /// The delivery stage could not start.
    #[error(transparent)]
    Notify(#[from] NotifyStartError),
    /// The Modbus poller could not start.
    #[error(transparent)]
    Modbus(#[from] ModbusStartError),
    /// The downlink audit could not be opened.
    #[error(transparent)]
    Downlink(#[from] crate::downlink::DownlinkError),
    /// The InfluxDB export could not start.
    #[error(transparent)]
    Export(#[from] crate::store::influxdb::ExportError),
    /// People (users, sessions, API token) could not be opened.
    #[error(transparent)]
    People(#[from] crate::people::PeopleError),
    /// A thread could not be spawned.
    #[error("cannot spawn {what}: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// Error.
        source: std::io::Error,
    },
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// MQTT 3.1.1 address.
    pub mqtt_v4: SocketAddr,
    /// MQTT 5 address.
    pub mqtt_v5: Option<SocketAddr>,
    /// HTTP address.
    pub http: SocketAddr,
    /// Shared state (for tests and embedding).
    pub shared: Arc<Shared>,
    /// What journal recovery found at start.
    pub recovery: Recovery,
    /// The first start's `admin` password (shown once), when nobody existed yet.
    pub first_admin_password: Option<String>,
    http_task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Waits until the HTTP server stops (after the shutdown signal).
    pub async fn wait(self) {
        let _ = self.http_task.await;
    }
}

/// Starts every stage. `shutdown` resolving stops the HTTP server and the link reader.
/// (rumqttd has no stop: its thread ends with the process.)
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Gateway, StartError> {
    let config = Arc::new(config);
    let registry = Registry::open(&config.data_dir)?;
    let metrics = Arc::new(Metrics::default());

    // The stages that follow the journal, each at its own durable point.
    let store = Arc::new(Store::open(&config.data_dir, config.store.clone(), now_ms)?);
    let mut followers: Vec<Box<dyn Follower>> = vec![Box::new(StoreFollower(store.clone()))];
    let alarms = tokio::task::block_in_place(|| {
        AlarmDesk::open(
            &config.data_dir,
            config.alarms.rules.clone(),
            config.rule_defaults(),
            registry.clone(),
            config.alarms.retention_days,
        )
    })?;
    followers.push(Box::new(
        alarms.follower(Duration::from_millis(config.alarms.tick_ms)),
    ));
    // What the gateway publishes to devices (acks, settings, commands) goes through
    // one thread holding the broker link.
    let (acks_tx, acks_rx) = std::sync::mpsc::channel();
    let downlinks = crate::downlink::Downlinks::open(&config.data_dir, acks_tx.clone())?;
    followers.push(Box::new(downlinks.follower()));
    let mut export_sender = None;
    if let Some(c) = &config.export.influxdb {
        let (f, s) = crate::store::influxdb::open(c, &config.data_dir, metrics.clone())?;
        followers.push(Box::new(f));
        export_sender = Some(s);
    }

    // Recover: replay windows from their checkpoint, then the journal from the earliest
    // point anything still needs (windows, views and followers each take their part).
    let checkpoint_path = checkpoint::path(&config.data_dir);
    let (mut windows, windows_seq) = checkpoint::load(&checkpoint_path)?;
    let mut views = Views::new(config.ingest.recent_per_device);
    let from_seq = followers
        .iter()
        .map(|f| f.durable_before())
        .fold(windows_seq, u64::min);
    // Numbering never restarts below what anything has already seen (a lost or reset
    // journal directory), or followers would skip the new records as already done.
    let seq_floor = followers
        .iter()
        .map(|f| f.durable_before())
        .fold(windows_seq, u64::max);
    let mut replay = Replayer::new(&registry, &mut followers);
    let (journal, recovery) = Journal::open(
        &config.data_dir.join("journal"),
        config.ingest.segment_mib * 1024 * 1024,
        config.ingest.fsync,
        config.fsync_interval(),
        (from_seq, seq_floor),
        &mut |seq, r| {
            if seq < from_seq {
                return;
            }
            if seq >= windows_seq {
                windows
                    .entry(r.device.clone())
                    .or_default()
                    .accept(r.counter);
            }
            views.apply(&r, false);
            replay.push(seq, r);
        },
    )?;
    replay.finish()?;
    metrics.journal_next_seq.store(journal.next_seq(), Relaxed);
    // Devices whose readings all sit in released journal segments: the store knows them.
    for id in registry.device_ids()? {
        if views.get(&id).is_none_or(|v| v.last_seen_any_ms.is_none()) {
            views.seed(&id, &store.latest(&id)?);
        }
    }
    if recovery.truncated_bytes > 0 || recovery.corrupt_records > 0 {
        tracing::warn!(
            truncated_bytes = recovery.truncated_bytes,
            corrupt_records = recovery.corrupt_records,
            "journal had a torn tail (cut) or corrupt records (skipped)"
        );
    }
    tracing::info!(
        records = recovery.records,
        segments = recovery.segments,
        "journal recovered"
    );

    let started =
        tokio::task::block_in_place(|| broker::start(&config, registry.clone(), metrics.clone()))?;
    let (stop_tx, stop_rx) = watch::channel(false);

    // Alarm transitions → routing → channels (webhook, e-mail, MQTT, server-sent events).
    let (notify_tx, notify_rx) = started.notify_link;
    let mqtt = config
        .delivery
        .mqtt
        .then(|| MqttOut::new(notify_tx, notify_rx));
    let notify = tokio::task::block_in_place(|| {
        Notifier::start(config.clone(), alarms.clone(), mqtt, stop_rx.clone())
    })?;

    // Broker link and Modbus poller → one bounded queue → ingest worker (journal, then ack).
    let (tx, rx) = mpsc::channel(config.ingest.queue_capacity);
    let modbus = if config.modbus.device.is_empty() {
        None
    } else {
        let text = match &config.modbus.profiles {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|source| {
                ModbusStartError::ProfilesFile {
                    path: path.display().to_string(),
                    source,
                }
            })?),
            None => None,
        };
        Some(tokio::task::block_in_place(|| {
            Modbus::start(
                &config.modbus,
                text.as_deref(),
                &config.data_dir,
                &registry,
                (tx.clone(), metrics.clone()),
                config.rule_defaults().local,
                stop_rx.clone(),
            )
        })?)
    };

    let people = Arc::new(crate::people::People::open(
        &config.data_dir,
        config.web.session_limits(),
    )?);
    let first_admin_password = people.first_admin(now_ms())?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        registry,
        metrics: metrics.clone(),
        views: Mutex::new(views),
        store,
        alarms,
        notify,
        modbus,
        downlinks,
        people,
        started: std::time::Instant::now(),
        paused: AtomicBool::new(false),
    });
    if let Some(s) = export_sender {
        tokio::spawn(s.run(stop_rx.clone()));
    }

    tokio::spawn(read_link(
        started.link_rx,
        tx,
        config.ingest.max_message_bytes,
        metrics.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(broker::watch_alerts(started.alerts, metrics.clone()));
    let link_tx = started.link_tx;
    let acker_metrics = metrics.clone();
    std::thread::Builder::new()
        .name("linli-acker".into())
        .spawn(move || crate::worker::run_acker(link_tx, acks_rx, acker_metrics))
        .map_err(|source| StartError::Spawn {
            what: "acker",
            source,
        })?;
    let mut handles = Vec::new();
    for f in followers {
        let name = f.name();
        let alive = Arc::new(AtomicBool::new(false));
        let handle = follow::spawn(f, 64, now_ms, alive.clone())
            .map_err(|source| StartError::Spawn { what: name, source })?;
        metrics.followers.lock().push(FollowerGauges {
            name,
            up: alive,
            durable_before: handle.durable_cursor(),
        });
        handles.push(handle);
    }
    let worker = Worker {
        shared: shared.clone(),
        journal,
        windows,
        acks: acks_tx,
        rx,
        followers: handles,
        checkpoint: (
            checkpoint_path,
            Duration::from_secs(config.ingest.checkpoint_interval_s),
        ),
    };
    std::thread::Builder::new()
        .name("linli-ingest".into())
        .spawn(move || worker.run())
        .map_err(|source| StartError::Spawn {
            what: "ingest worker",
            source,
        })?;

    tokio::spawn(supervise(shared.clone(), stop_rx.clone()));

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| StartError::Http {
            addr: config.http.listen,
            source,
        })?;
    let http = listener.local_addr().map_err(|source| StartError::Http {
        addr: config.http.listen,
        source,
    })?;
    let app = crate::api::router(shared.clone());
    let http_task = tokio::spawn(async move {
        // The peer's address: sign-in attempts are slowed per address as well as per name.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok(Gateway {
        mqtt_v4: started.v4,
        mqtt_v5: started.v5,
        http,
        shared,
        recovery,
        first_admin_password,
        http_task,
    })
}

/// Hands replayed journal records to the followers that have not made them durable,
/// in chunks, looking each sender up in the registry.
struct Replayer<'a> {
    registry: &'a Registry,
    followers: &'a mut [Box<dyn Follower>],
    starts: Vec<u64>,
    devices: std::collections::HashMap<String, Option<Arc<DeviceRecord>>>,
    pending: Vec<Entry>,
    unknown: u64,
    error: Option<RegistryError>,
}

impl<'a> Replayer<'a> {
    fn new(registry: &'a Registry, followers: &'a mut [Box<dyn Follower>]) -> Self {
        let starts = followers.iter().map(|f| f.durable_before()).collect();
        Replayer {
            registry,
            followers,
            starts,
            devices: Default::default(),
            pending: Vec::new(),
            unknown: 0,
            error: None,
        }
    }

    fn push(&mut self, seq: u64, reading: crate::reading::Reading) {
        if self.starts.iter().all(|s| seq < *s) {
            return;
        }
        if self.error.is_some() {
            return;
        }
        let device = match self.devices.get(&reading.device) {
            Some(d) => d.clone(),
            None => match self.registry.get(&reading.device) {
                Ok(d) => {
                    self.devices.insert(reading.device.clone(), d.clone());
                    d
                }
                Err(e) => {
                    // Not "unknown": a registry that cannot be read must stop the start,
                    // or the followers would skip these readings for good.
                    self.error = Some(e);
                    return;
                }
            },
        };
        let Some(device) = device else {
            self.unknown += 1;
            return;
        };
        self.pending.push(Entry {
            seq,
            reading,
            device,
            received_at: None,
        });
        if self.pending.len() >= 4096 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        for (f, start) in self.followers.iter_mut().zip(&self.starts) {
            let from = self.pending.partition_point(|e| e.seq < *start);
            if from < self.pending.len() {
                f.apply(&self.pending[from..]);
            }
        }
        self.pending.clear();
    }

    fn finish(mut self) -> Result<(), RegistryError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.flush();
        if self.unknown > 0 {
            tracing::warn!(
                records = self.unknown,
                "journal records of devices no longer registered were not replayed to the store or export"
            );
        }
        Ok(())
    }
}

/// Reads the broker link and enqueues; never blocks on the journal. Answers
/// `Unschedule` with `ready()`, without which rumqttd stops delivering for good.
async fn read_link(
    mut link_rx: LinkRx,
    tx: mpsc::Sender<Inbound>,
    max_message_bytes: usize,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut overload_logged: Option<Instant> = None;
    let mut overloaded_since_log = 0u64;
    loop {
        let n = tokio::select! {
            n = link_rx.next() => n,
            _ = stop.changed() => return,
        };
        match n {
            Ok(Some(Notification::Forward(f))) if f.publish.payload.len() > max_message_bytes => {
                // Refused before it is copied or queued: no memory for oversized frames.
                metrics.reject(Rejection::Oversized);
            }
            Ok(Some(Notification::Forward(f))) => {
                // Copy out: rumqttd's Bytes pin whole network read buffers.
                let raw = RawMessage {
                    topic: bytes::Bytes::copy_from_slice(&f.publish.topic),
                    payload: bytes::Bytes::copy_from_slice(&f.publish.payload),
                    received_ms: now_ms(),
                    received_at: Instant::now(),
                };
                metrics.queue_depth.fetch_add(1, Relaxed);
                if tx.try_send(Inbound::Mqtt(raw)).is_err() {
                    metrics.queue_depth.fetch_sub(1, Relaxed);
                    metrics.reject(Rejection::Overload);
                    overloaded_since_log += 1;
                    if overload_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(
                            refused = overloaded_since_log,
                            capacity = tx.max_capacity(),
                            "ingest queue full: messages refused unacked (devices resend); raise ingest.queue_capacity or slow the devices"
                        );
                        overload_logged = Some(Instant::now());
                        overloaded_since_log = 0;
                    }
                }
            }
            Ok(Some(Notification::Unschedule)) => {
                if let Err(e) = link_rx.ready() {
                    tracing::error!(error = %e, "broker link lost");
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "broker link lost");
                return;
            }
        }
    }
}

/// Re-evaluates liveness of every registered device periodically and publishes gauges.
async fn supervise(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let s = &shared.config.supervision;
    let mut tick = tokio::time::interval(Duration::from_millis(s.tick_ms));
    let mut previous: std::collections::HashMap<String, Liveness> = Default::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let sh = shared.clone();
        let tallied = tokio::task::spawn_blocking(move || {
            let devices = sh.registry.all().ok()?;
            let views = sh.views.lock();
            let now = now_ms();
            let states: Vec<(String, Liveness)> = devices
                .iter()
                .map(|d| {
                    (
                        d.profile.id.clone(),
                        device_liveness(&sh.config.supervision, &views, d, now),
                    )
                })
                .collect();
            Some(states)
        })
        .await;
        let Ok(Some(states)) = tallied else {
            continue;
        };
        let mut counts = [0u64; 4];
        let mut connected = 0;
        {
            for (id, l) in states {
                if l == Liveness::Ok {
                    connected += 1;
                }
                counts[l.index()] += 1;
                if previous.get(&id).is_some_and(|p| *p != l) {
                    tracing::info!(device = %id, liveness = l.as_str(), "device liveness changed");
                }
                previous.insert(id, l);
            }
        }
        for (i, c) in counts.iter().enumerate() {
            shared.metrics.liveness[i].store(*c, Relaxed);
        }
        shared.metrics.connected.store(connected, Relaxed);
    }
}

/// Liveness of `device` at `now` from its view.
pub fn device_liveness(
    s: &SupervisionConfig,
    views: &Views,
    device: &DeviceRecord,
    now: u64,
) -> Liveness {
    let v = views.get(&device.profile.id);
    supervision::liveness(
        v.and_then(|v| v.last_seen_ms),
        v.is_some_and(|v| v.disconnected),
        device
            .profile
            .heartbeat_s
            .unwrap_or(s.default_heartbeat_s)
            .saturating_mul(1000),
        now,
        Thresholds {
            late_after_missed: s.late_after_missed,
            lost_after_missed: s.lost_after_missed,
        },
    )
}
