//! The delivery stage, running: follows the alarm database's transitions (woken by
//! each alarm commit), routes them, commits the result with the position it reflects,
//! then hands notifications to one worker per channel (`channel`) and events to MQTT
//! and the server-sent-event subscribers (`round`). Escalation steps and work order
//! deadlines fire on the stage's own timer. People's work order actions and routing
//! reloads come through the same [`Notifier`].
//!
//! Lock order: the Notifier's state, then the alarm desk (resolving the alarm of a
//! verified work order). The alarm desk never takes the Notifier's locks.
//!
//! Owns start-up recovery, commit, dispatch and the delivery metrics. Does not own
//! routing decisions (`router`), SQL (`db`) or the wire of a channel.

mod channel;
mod round;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, watch};

use super::db::{Attempt, Delivery, NotifyDb, NotifyDbError};
use super::mqtt::{alarm_topic, MqttOut};
use super::router::{alarm_json, Answer, Event, Routed, Router};
use super::routing::{Routing, DEFAULT_ROUTING};
use super::workorder::{WorkError, WorkOrder};
use super::Notification;
use crate::alarms::db::{AlarmDb, Filter};
use crate::alarms::follower::AlarmDesk;
use crate::clock::now_ms;
use crate::config::{Config, ConfigIssue};
use channel::Job;

/// Why the delivery stage could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum NotifyStartError {
    /// The routing file could not be read.
    #[error("cannot read routing file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The routing file is invalid.
    #[error("routing file {path} has {} problem(s):\n  {}", .issues.len(), .issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem.
        issues: Vec<ConfigIssue>,
    },
    /// The delivery database failed.
    #[error(transparent)]
    Db(#[from] NotifyDbError),
    /// The alarm database could not be read.
    #[error(transparent)]
    Alarms(#[from] crate::alarms::db::AlarmDbError),
    /// A channel could not be set up.
    #[error(transparent)]
    Channel(#[from] super::ChannelError),
}

/// Reads and validates the routing (`path`, or the built-in routing).
pub fn load_routing(c: &Config, path: Option<&PathBuf>) -> Result<Routing, NotifyStartError> {
    let (text, name) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| NotifyStartError::Read {
                path: p.clone(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (DEFAULT_ROUTING.to_owned(), "built-in routing".to_owned()),
    };
    let webhooks: Vec<String> = c
        .delivery
        .webhook
        .iter()
        .filter(|w| w.receives == "pages")
        .map(|w| w.name.clone())
        .collect();
    Routing::parse(
        &text,
        &c.rule_defaults().local,
        &webhooks,
        c.delivery.smtp.is_some(),
    )
    .map_err(|issues| NotifyStartError::Invalid { path: name, issues })
}

/// Counters of the delivery stage.
#[derive(Debug, Default)]
pub struct NotifyMetrics {
    /// Notifications to people created (pages and work order messages).
    pub notifications: AtomicU64,
    /// Events published to the streams.
    pub events: AtomicU64,
    /// Receipts.
    pub delivered: AtomicU64,
    /// Failed attempts that will be retried.
    pub retries: AtomicU64,
    /// Deliveries refused for good or expired.
    pub failed: AtomicU64,
    /// Pages dropped because their alarm was answered or closed first.
    pub superseded: AtomicU64,
    /// Pages that found nobody on duty.
    pub unrouted: AtomicU64,
    /// Commits that failed (retried).
    pub db_errors: AtomicU64,
    /// Deliveries queued in the channel workers.
    pub pending: AtomicU64,
    /// Work orders dispatched.
    pub work_orders: AtomicU64,
    /// Answers since start: (total, within 60 s) per team.
    pub answers: Mutex<HashMap<String, (u64, u64)>>,
}

struct Inner {
    router: Router,
    db: NotifyDb,
    alarms: AlarmDb,
    /// Durable position: transitions up to here are routed and committed.
    cursor: u64,
    /// Transitions up to here are routed (committed, or held in `pending`).
    routed: u64,
    /// A failed commit's result and position, written with the next one.
    pending: Option<(Routed, u64)>,
    /// When finished deliveries past retention are next deleted, ms.
    next_purge_ms: u64,
}

/// The delivery stage's shared side (see the module docs).
pub struct Notifier {
    inner: Mutex<Inner>,
    reader: Mutex<NotifyDb>,
    routing: Mutex<Arc<Routing>>,
    desk: Arc<AlarmDesk>,
    config: Arc<Config>,
    queues: HashMap<String, mpsc::UnboundedSender<Job>>,
    event_webhooks: Vec<String>,
    events: broadcast::Sender<Arc<Event>>,
    mqtt: Option<std::sync::mpsc::Sender<(String, Vec<u8>, bool)>>,
    /// Committed deliveries could not be handed to their workers: re-read them.
    requeue: AtomicBool,
    /// Counters.
    pub metrics: NotifyMetrics,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

/// What start-up found in the delivery database.
struct Restored {
    router: Router,
    cursor: u64,
    pending: Vec<Delivery>,
    /// Open, unanswered alarms must be (re)adopted: the database is new beside an
    /// existing alarm database, or starts over (a new key epoch).
    adopt: bool,
    /// It starts over: escalations are forgotten and adopted again.
    restart: bool,
}

/// Restores the router from the delivery database.
///
/// - A new database starts after what the alarm database already holds; the open
///   alarms nobody answered are adopted (paged now).
/// - A cursor past the alarm database (one restored from an older backup, or rolled
///   back by a power cut) starts a new key epoch, so new keys never collide with
///   delivered ones, and adopts the open alarms again.
fn restore(
    routing: Arc<Routing>,
    db: &mut NotifyDb,
    alarms: &AlarmDb,
) -> Result<Restored, NotifyStartError> {
    let loaded = db.load()?;
    let last = alarms.last_transition()?;
    let mut epoch = loaded.epoch;
    let (cursor, adopt, restart) = match loaded.cursor {
        Some(c) if c > last => {
            epoch += 1;
            tracing::error!(cursor = c, alarm_transitions = last, epoch, "the delivery database is ahead of the alarm database (restored from an older backup, or a power cut): starting over from its end with new idempotency keys; open alarms nobody answered are paged again");
            db.start_epoch(epoch, last)?;
            (last, true, true)
        }
        Some(c) => (c, false, false),
        None => (last, last > 0, false),
    };
    let mut snapshots = Vec::new();
    let followed = loaded
        .escalations
        .iter()
        .map(|e| e.alarm)
        .chain(loaded.work_orders.iter().map(|w| w.alarm));
    for id in followed {
        match alarms.get(id) {
            Ok(Some(a)) => snapshots.push(a),
            Ok(None) => {}
            // Its escalation or work order is dropped (cancelled as an orphan).
            Err(e) => {
                tracing::error!(alarm = id, error = %e, "alarm unreadable at start; what delivery followed for it is dropped")
            }
        }
    }
    tracing::info!(
        escalations = loaded.escalations.len(),
        work_orders = loaded.work_orders.len(),
        pending_deliveries = loaded.pending.len(),
        cursor,
        epoch,
        "delivery state restored"
    );
    let mut router = Router::new(
        routing,
        loaded.escalations,
        loaded.work_orders,
        snapshots,
        loaded.next_work_order,
    );
    router.set_epoch(epoch);
    Ok(Restored {
        router,
        cursor,
        pending: loaded.pending,
        adopt,
        restart,
    })
}

impl Notifier {
    /// Opens the delivery database, restores routing state and starts the channel
    /// workers, the MQTT publisher and the routing loop (until `stop`).
    pub fn start(
        config: Arc<Config>,
        desk: Arc<AlarmDesk>,
        mqtt: Option<MqttOut>,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Notifier>, NotifyStartError> {
        let routing = Arc::new(load_routing(&config, config.delivery.routing.as_ref())?);
        if routing.people.is_empty() {
            tracing::warn!("the routing has no people: alarms reach MQTT, server-sent events and event webhooks, but nobody is paged");
        } else {
            for (team, gaps) in routing.life_safety_gaps(now_ms()) {
                tracing::warn!(team = %team.id, role = %team.role, stretches = gaps.len(), "a team paged for life-safety alarms has hours this week with nobody reachable (linli check-routing lists them)");
            }
        }
        let mut db = NotifyDb::open(&config.data_dir)?;
        let reader = db.reader()?;
        let alarms = desk.open_reader()?;
        let Restored {
            router,
            cursor,
            pending,
            adopt,
            restart,
        } = restore(routing.clone(), &mut db, &alarms)?;

        let senders = channel::senders(&config.delivery)?;
        let event_webhooks = config
            .delivery
            .webhook
            .iter()
            .filter(|w| w.receives == "events")
            .map(|w| format!("webhook:{}", w.name))
            .collect();
        let mut queues = HashMap::new();
        let mut workers = Vec::new();
        for (name, sender) in senders {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.insert(name.clone(), tx);
            workers.push((name, sender, rx));
        }
        let (events, _) = broadcast::channel(4096);
        let n = Arc::new(Notifier {
            inner: Mutex::new(Inner {
                router,
                db,
                alarms,
                cursor,
                routed: cursor,
                pending: None,
                next_purge_ms: 0,
            }),
            reader: Mutex::new(reader),
            routing: Mutex::new(routing),
            desk,
            config: config.clone(),
            queues,
            event_webhooks,
            events,
            mqtt: mqtt.map(channel::spawn_mqtt),
            requeue: AtomicBool::new(false),
            metrics: NotifyMetrics::default(),
        });
        for (name, sender, rx) in workers {
            tokio::spawn(channel::run(n.clone(), name, sender, rx, stop.clone()));
        }
        for p in pending {
            n.enqueue(p.id, p.notification);
        }
        n.recover(adopt, restart);
        n.republish_open();
        tokio::spawn(round::run(n.clone(), stop));
        Ok(n)
    }

    /// Start-up work on the restored router: work orders whose alarm is gone are
    /// cancelled; with a new delivery database beside an existing alarm database, the
    /// open alarms nobody answered start paging now.
    fn recover(&self, adopt: bool, restart: bool) {
        let now = now_ms();
        let mut out = Routed::default();
        let mut inner = self.inner.lock();
        if restart {
            inner.router.forget_escalations(&mut out);
        }
        inner.router.cancel_orphans(now, &mut out);
        if adopt {
            match self.desk.list(&Filter {
                open_only: true,
                limit: usize::MAX,
                ..Default::default()
            }) {
                Ok(open) => {
                    tracing::warn!(
                        open = open.len(),
                        "new delivery database: open alarms start paging now"
                    );
                    for a in &open {
                        inner.router.adopt(a, now, &mut out);
                    }
                }
                Err(e) => tracing::error!(error = %e, "open alarms unreadable: they are not paged"),
            }
        }
        self.commit(&mut inner, out, None, false);
    }

    fn enqueue(&self, id: u64, notification: Notification) {
        match self.queues.get(&notification.channel) {
            Some(q) => {
                let _ = q.send(Job { id, notification });
            }
            None => {
                tracing::warn!(channel = %notification.channel, key = %notification.key, "no such channel configured; the delivery waits until it is")
            }
        }
    }

    /// Retained MQTT state of every open alarm (the broker keeps retained messages in
    /// RAM only).
    fn republish_open(&self) {
        let Some(m) = &self.mqtt else { return };
        match self.desk.list(&Filter {
            open_only: true,
            limit: usize::MAX,
            ..Default::default()
        }) {
            Ok(list) => {
                for a in list {
                    let body = serde_json::to_vec(&alarm_json(&a)).unwrap_or_default();
                    let _ = m.send((alarm_topic(a.id), body, true));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "open alarms unreadable: their MQTT state is published on their next change")
            }
        }
    }

    /// A person's action on a work order (`accept`, `arrive`, `fixed`), committed
    /// durably before it is confirmed.
    pub fn work_action(
        &self,
        id: u64,
        action: &str,
        by: &str,
        note: &str,
    ) -> Result<WorkOrder, WorkActionError> {
        let mut inner = self.inner.lock();
        let mut out = Routed::default();
        let w = inner
            .router
            .work_action(id, action, by, note, now_ms(), &mut out)?;
        if !self.commit(&mut inner, out, None, true) {
            return Err(WorkActionError::NotStored);
        }
        self.resolve_verified(&mut inner);
        Ok(w)
    }

    /// Re-reads the routing file; on any problem the running routing stays.
    pub fn reload(&self) -> Result<Arc<Routing>, NotifyStartError> {
        let r = Arc::new(load_routing(
            &self.config,
            self.config.delivery.routing.as_ref(),
        )?);
        self.inner.lock().router.reload(r.clone());
        *self.routing.lock() = r.clone();
        tracing::info!(
            people = r.people.len(),
            teams = r.teams.len(),
            policies = r.policies.len(),
            "routing reloaded"
        );
        Ok(r)
    }

    /// The routing in force.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.lock().clone()
    }

    /// Live events (server-sent events).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Work orders, newest first.
    pub fn work_orders(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, NotifyDbError> {
        self.reader.lock().work_orders(open_only, limit)
    }

    /// One work order.
    pub fn work_order(&self, id: u64) -> Result<Option<WorkOrder>, NotifyDbError> {
        self.reader.lock().work_order(id)
    }

    /// Deliveries, newest first.
    pub fn deliveries(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, NotifyDbError> {
        self.reader.lock().deliveries(state, limit, false)
    }

    /// A delivery's attempts.
    pub fn attempts(&self, id: u64) -> Result<Vec<Attempt>, NotifyDbError> {
        self.reader.lock().attempts(id)
    }

    /// Answers since `since_ms`.
    pub fn answers(&self, since_ms: u64) -> Result<Vec<Answer>, NotifyDbError> {
        self.reader.lock().answers(since_ms)
    }
}

/// Why a work order action was not done.
#[derive(Debug, thiserror::Error)]
pub enum WorkActionError {
    /// Refused by the work order's lifecycle.
    #[error(transparent)]
    Refused(#[from] WorkError),
    /// The delivery database did not take it yet: it is held and retried with the
    /// next round, but not confirmed.
    #[error("the action is not stored yet (the delivery database failed; it is retried): check the work order before repeating it")]
    NotStored,
}
