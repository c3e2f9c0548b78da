//! The delivery stage, running: follows the alarm database's transitions (woken by
//! each alarm commit), routes them, commits the result with the position it reflects,
//! then hands notifications to one worker per channel and events to MQTT and the
//! server-sent-event subscribers. Escalation steps and work order deadlines fire on
//! the stage's own timer. People's work order actions and routing reloads come through
//! the same [`Notifier`].
//!
//! Each channel worker sends its queue in order, records every attempt, and backs off
//! on failure without holding up the other channels. Deliveries without a receipt are
//! queued again at start; keys already delivered are never sent again.
//!
//! Owns start-up recovery, commit, dispatch and the delivery metrics. Does not own
//! routing decisions (`router`), SQL (`db`) or the wire of a channel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, watch};

use super::db::{Attempt, Delivery, NotifyDb, NotifyDbError, Outcome};
use super::email::Email;
use super::mqtt::{alarm_topic, event_topic, MqttOut};
use super::router::{Answer, Event, Routed, Router};
use super::routing::{Routing, DEFAULT_ROUTING};
use super::webhook::Webhook;
use super::workorder::{WorkError, WorkOrder};
use super::Notification;
use crate::alarms::db::AlarmDb;
use crate::alarms::follower::AlarmDesk;
use crate::alarms::AlarmState;
use crate::clock::now_ms;
use crate::config::{Config, ConfigIssue, DeliveryConfig};

/// Transitions routed per round.
const BATCH: usize = 1000;

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
    #[error("delivery channel {channel}: {message}")]
    Channel {
        /// Which.
        channel: String,
        /// Why.
        message: String,
    },
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
    /// Deliveries refused for good.
    pub failed: AtomicU64,
    /// Pages that found nobody on duty.
    pub unrouted: AtomicU64,
    /// Commits that failed (retried).
    pub db_errors: AtomicU64,
    /// Deliveries waiting for a receipt.
    pub pending: AtomicU64,
    /// Work orders dispatched.
    pub work_orders: AtomicU64,
    /// Answers: total and within 60 s, per team.
    pub answers: Mutex<HashMap<String, (u64, u64)>>,
}

struct Job {
    id: u64,
    notification: Notification,
}

struct Inner {
    router: Router,
    db: NotifyDb,
    alarms: AlarmDb,
    cursor: u64,
    /// A failed commit's result and position, written with the next one.
    pending: Option<(Routed, u64)>,
    /// When finished deliveries past retention are next deleted, ms.
    next_purge_ms: u64,
}

/// The delivery stage's shared side (see the module docs).
pub struct Notifier {
    inner: Mutex<Inner>,
    reader: Mutex<NotifyDb>,
    desk: Arc<AlarmDesk>,
    config: Arc<Config>,
    queues: HashMap<String, mpsc::UnboundedSender<Job>>,
    event_webhooks: Vec<String>,
    events: broadcast::Sender<Arc<Event>>,
    mqtt: Option<mpsc::UnboundedSender<(String, Vec<u8>, bool)>>,
    /// Counters.
    pub metrics: NotifyMetrics,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

enum Sender {
    Webhook(Webhook),
    Email(Email),
}

impl Sender {
    async fn send(&self, n: &Notification) -> Outcome {
        match self {
            Sender::Webhook(w) => w.send(n, now_ms()).await,
            Sender::Email(e) => e.send(n).await,
        }
    }
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
        let db = NotifyDb::open(&config.data_dir)?;
        let reader = db.reader()?;
        let alarms = desk.open_reader()?;
        let loaded = db.load()?;
        let cursor = match loaded.cursor {
            Some(c) => c,
            // A new delivery database beside an old alarm database: what is already
            // recorded was never routed and is not paged now.
            None => alarms.last_transition()?,
        };
        let mut snapshots = Vec::new();
        for id in loaded
            .escalations
            .iter()
            .map(|e| e.alarm)
            .chain(loaded.work_orders.iter().map(|w| w.alarm))
        {
            if let Some(a) = alarms.get(id)? {
                snapshots.push(a);
            }
        }
        tracing::info!(
            escalations = loaded.escalations.len(),
            work_orders = loaded.work_orders.len(),
            pending_deliveries = loaded.pending.len(),
            cursor,
            "delivery state restored"
        );
        if routing.people.is_empty() {
            tracing::warn!("the routing has no people: alarms reach MQTT, server-sent events and event webhooks, but nobody is paged");
        }
        let router = Router::new(
            routing,
            loaded.escalations,
            loaded.work_orders,
            snapshots,
            loaded.next_work_order,
        );

        let d = &config.delivery;
        let timeout = Duration::from_millis(d.timeout_ms);
        let mut senders: Vec<(String, Sender)> = Vec::new();
        let mut event_webhooks = Vec::new();
        for w in &d.webhook {
            let hook = Webhook::new(&w.url, w.key(), timeout).map_err(|message| {
                NotifyStartError::Channel {
                    channel: w.name.clone(),
                    message,
                }
            })?;
            let name = format!("webhook:{}", w.name);
            if w.receives == "events" {
                event_webhooks.push(name.clone());
            }
            senders.push((name, Sender::Webhook(hook)));
        }
        if let Some(s) = &d.smtp {
            let e = Email::new(s, timeout).map_err(|message| NotifyStartError::Channel {
                channel: "email".into(),
                message,
            })?;
            senders.push(("email".into(), Sender::Email(e)));
        }
        let mut queues = HashMap::new();
        let mut workers = Vec::new();
        for (name, sender) in senders {
            let (tx, rx) = mpsc::unbounded_channel();
            queues.insert(name.clone(), tx);
            workers.push((name, sender, rx));
        }
        let mqtt_tx = mqtt.map(|out| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(publish_mqtt(out, rx));
            tx
        });
        let (events, _) = broadcast::channel(4096);
        let pending = loaded.pending;
        let n = Arc::new(Notifier {
            inner: Mutex::new(Inner {
                router,
                db,
                alarms,
                cursor,
                pending: None,
                next_purge_ms: 0,
            }),
            reader: Mutex::new(reader),
            desk,
            config: config.clone(),
            queues,
            event_webhooks,
            events,
            mqtt: mqtt_tx,
            metrics: NotifyMetrics::default(),
        });
        for (name, sender, rx) in workers {
            tokio::spawn(run_channel(
                n.clone(),
                name,
                sender,
                rx,
                d.clone(),
                stop.clone(),
            ));
        }
        for p in pending {
            n.enqueue(p.id, p.notification);
        }
        n.republish_open();
        tokio::spawn(run(n.clone(), stop));
        Ok(n)
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
        let open = self.desk.list(&crate::alarms::db::Filter {
            open_only: true,
            limit: usize::MAX,
            ..Default::default()
        });
        match open {
            Ok(list) => {
                for a in list {
                    let body =
                        serde_json::to_vec(&super::router::alarm_json(&a)).unwrap_or_default();
                    let _ = m.send((alarm_topic(a.id), body, true));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "open alarms unreadable: their MQTT state is published on their next change")
            }
        }
    }

    /// Routes what the alarm stage recorded since the last round, and fires what is due.
    fn round(&self) {
        let now = now_ms();
        let mut inner = self.inner.lock();
        let mut out = Routed::default();
        let mut last = inner.cursor;
        loop {
            let batch = match inner.alarms.transitions_after(last, BATCH) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "alarm transitions unreadable; retrying");
                    break;
                }
            };
            let full = batch.len() == BATCH;
            let mut cache: HashMap<u64, Option<crate::alarms::Alarm>> = HashMap::new();
            for (seq, t) in batch {
                last = seq;
                let alarm = match cache.get(&t.alarm) {
                    Some(a) => a.clone(),
                    None => {
                        let a = inner.alarms.get(t.alarm).unwrap_or_else(|e| {
                            tracing::error!(error = %e, alarm = t.alarm, "alarm unreadable; its transition is not routed");
                            None
                        });
                        cache.insert(t.alarm, a.clone());
                        a
                    }
                };
                // A purged alarm (past retention) has nothing left to tell.
                if let Some(mut a) = alarm {
                    // The snapshot is the alarm now; the transition says what state it
                    // left it in then.
                    a.state = t.to;
                    inner.router.on_transition(seq, &t, &a, now, &mut out);
                }
            }
            if !full {
                break;
            }
        }
        inner.router.advance(now, &mut out);
        let cursor = (last != inner.cursor).then_some(last);
        self.commit(&mut inner, out, cursor);
        if now >= inner.next_purge_ms {
            // Deliveries, work orders and answers are kept as long as alarms are.
            inner.next_purge_ms = now + 3_600_000;
            let before = now.saturating_sub(self.config.alarms.retention_days * 86_400_000);
            match inner.db.purge(before) {
                Ok(0) => {}
                Ok(n) => tracing::info!(deliveries = n, "deliveries past their retention deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "delivery retention purge failed; retried in an hour")
                }
            }
        }
    }

    fn commit(&self, inner: &mut Inner, mut out: Routed, cursor: Option<u64>) {
        // Event webhooks get every event as a delivery of its own.
        for ev in &out.events {
            for w in &self.event_webhooks {
                out.notifications.push(Notification {
                    key: ev.key.clone(),
                    channel: w.clone(),
                    person: None,
                    subject: ev
                        .body
                        .get("action")
                        .and_then(|a| a.as_str())
                        .unwrap_or("event")
                        .to_owned(),
                    body: ev.body.clone(),
                    created_ms: now_ms(),
                });
            }
        }
        let mut cursor = cursor;
        if let Some((mut prev, pc)) = inner.pending.take() {
            cursor = cursor.max(Some(pc));
            prev.notifications.append(&mut out.notifications);
            prev.events.append(&mut out.events);
            prev.escalations.append(&mut out.escalations);
            prev.work_orders.append(&mut out.work_orders);
            prev.answers.append(&mut out.answers);
            prev.unrouted.append(&mut out.unrouted);
            prev.verified.append(&mut out.verified);
            out = prev;
        }
        if out.is_empty() && out.unrouted.is_empty() && cursor.is_none() {
            return;
        }
        let next_wo = inner.router.next_work_order();
        if let Err(e) = inner.db.commit(&out, cursor, next_wo) {
            self.metrics.db_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "delivery commit failed; retrying with the next round");
            inner.pending = Some((out, cursor.unwrap_or(inner.cursor)));
            return;
        }
        if let Some(c) = cursor {
            inner.cursor = c;
        }
        let ids = inner.db.ids(&out.notifications);
        dispatch(self, out, ids);
    }

    /// Alarm ids whose work order was verified are resolved by the stage.
    fn resolve_verified(&self, verified: Vec<(u64, u64)>) {
        for (alarm, wid) in verified {
            let r = self.desk.act(|core, now| {
                let disposition = format!("work order {wid} verified");
                match core.alarms.get(alarm).map(|a| a.state) {
                    Some(
                        AlarmState::ActiveUnacked
                        | AlarmState::ActiveAcked
                        | AlarmState::ReturnedUnacked,
                    ) => core.alarms.resolve(alarm, "system", now, &disposition),
                    _ => Ok(()),
                }
            });
            if let Err(e) = r {
                tracing::info!(alarm, work_order = wid, error = %e, "alarm left open after its work order was verified");
            }
        }
    }

    /// A person's action on a work order (`accept`, `arrive`, `fixed`).
    pub fn work_action(
        &self,
        id: u64,
        action: &str,
        by: &str,
        note: &str,
    ) -> Result<WorkOrder, WorkError> {
        let mut inner = self.inner.lock();
        let mut out = Routed::default();
        let now = now_ms();
        let w = inner
            .router
            .work_action(id, action, by, note, now, &mut out)?;
        self.commit(&mut inner, out, None);
        Ok(w)
    }

    /// Re-reads the routing file; on any problem the running routing stays.
    pub fn reload(&self) -> Result<Arc<Routing>, NotifyStartError> {
        let r = Arc::new(load_routing(
            &self.config,
            self.config.delivery.routing.as_ref(),
        )?);
        self.inner.lock().router.reload(r.clone());
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
        self.inner.lock().router.routing().clone()
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

    /// The delivery settings.
    pub fn settings(&self) -> &DeliveryConfig {
        &self.config.delivery
    }
}

/// After a commit: notifications to their channels (unless already delivered), events
/// to MQTT and the subscribers, verified work orders' alarms resolved, metrics.
fn dispatch(n: &Notifier, out: Routed, ids: Result<Vec<(u64, String)>, NotifyDbError>) {
    let m = &n.metrics;
    match ids {
        Ok(ids) => {
            for (note, (id, state)) in out.notifications.into_iter().zip(ids) {
                if state == "pending" {
                    if note.person.is_some() {
                        m.notifications.fetch_add(1, Relaxed);
                    }
                    n.enqueue(id, note);
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "delivery ids unreadable: the deliveries go out after a restart")
        }
    }
    for (alarm, u) in &out.unrouted {
        m.unrouted.fetch_add(1, Relaxed);
        tracing::warn!(alarm, step = u.step, role = %u.role, team = ?u.team, "page found nobody on duty to reach");
    }
    for w in &out.work_orders {
        if w.history.len() == 1 {
            m.work_orders.fetch_add(1, Relaxed);
        }
    }
    {
        let mut a = m.answers.lock();
        for x in &out.answers {
            let e = a.entry(x.team.clone()).or_default();
            e.0 += 1;
            if x.answered_ms.saturating_sub(x.started_ms) <= 60_000 {
                e.1 += 1;
            }
        }
    }
    for ev in out.events {
        m.events.fetch_add(1, Relaxed);
        if let Some(mq) = &n.mqtt {
            let body = serde_json::to_vec(&ev.body).unwrap_or_default();
            let kind = ev
                .body
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("alarm")
                .to_owned();
            if let Some(a) = ev.body.get("alarm").filter(|_| kind == "alarm") {
                let id = ev.alarm.unwrap_or_default();
                let closed = a.get("state").and_then(|s| s.as_str()) == Some("normal");
                let state = if closed {
                    Vec::new()
                } else {
                    serde_json::to_vec(a).unwrap_or_default()
                };
                let _ = mq.send((alarm_topic(id), state, true));
            }
            let _ = mq.send((event_topic(&kind), body, false));
        }
        let _ = n.events.send(Arc::new(ev));
    }
    // Resolution records alarm transitions, which come back through the next round.
    n.resolve_verified(out.verified);
}

async fn publish_mqtt(mut out: MqttOut, mut rx: mpsc::UnboundedReceiver<(String, Vec<u8>, bool)>) {
    while let Some((topic, payload, retain)) = rx.recv().await {
        if !out.publish(topic, payload, retain).await {
            tracing::error!("broker link closed: alarm state is no longer published on MQTT");
            return;
        }
    }
}

/// The routing loop: a round on every alarm commit, and at the next deadline.
async fn run(n: Arc<Notifier>, mut stop: watch::Receiver<bool>) {
    let wake = n.desk.committed();
    loop {
        let n2 = n.clone();
        if tokio::task::spawn_blocking(move || n2.round())
            .await
            .is_err()
        {
            tracing::error!("delivery round panicked; continuing");
        }
        let next = n.inner.lock().router.next_due();
        let wait = next
            .map(|d| d.saturating_sub(now_ms()))
            .unwrap_or(1000)
            .clamp(5, 1000);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One channel: its queue in order; on failure the head is retried with backoff while
/// new work queues behind it.
async fn run_channel(
    n: Arc<Notifier>,
    name: String,
    sender: Sender,
    mut rx: mpsc::UnboundedReceiver<Job>,
    cfg: DeliveryConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut queued: HashSet<u64> = HashSet::new();
    let mut backoff = cfg.backoff_min_ms;
    loop {
        if queue.is_empty() {
            tokio::select! {
                j = rx.recv() => match j {
                    Some(j) => {
                        if queued.insert(j.id) {
                            n.metrics.pending.fetch_add(1, Relaxed);
                            queue.push_back(j);
                        }
                    }
                    None => return,
                },
                _ = stop.changed() => return,
            }
        }
        while let Ok(j) = rx.try_recv() {
            if queued.insert(j.id) {
                n.metrics.pending.fetch_add(1, Relaxed);
                queue.push_back(j);
            }
        }
        let Some(job) = queue.front() else { continue };
        let outcome = sender.send(&job.notification).await;
        let id = job.id;
        let n2 = n.clone();
        let o2 = outcome.clone();
        let recorded = tokio::task::spawn_blocking(move || n2.inner_db_attempt(id, &o2)).await;
        if !matches!(recorded, Ok(Ok(()))) {
            tracing::error!(channel = %name, delivery = id, "attempt not recorded");
        }
        let m = &n.metrics;
        match &outcome {
            Outcome::Delivered(_) | Outcome::Failed(_) => {
                if let Outcome::Failed(why) = &outcome {
                    m.failed.fetch_add(1, Relaxed);
                    tracing::warn!(channel = %name, key = %job.notification.key, why = %why, "delivery refused by the receiver; not retried");
                } else {
                    m.delivered.fetch_add(1, Relaxed);
                }
                m.pending.fetch_sub(1, Relaxed);
                queued.remove(&id);
                queue.pop_front();
                backoff = cfg.backoff_min_ms;
            }
            Outcome::Retry(why) => {
                m.retries.fetch_add(1, Relaxed);
                let jitter = rand::random::<u64>() % (backoff / 4 + 1);
                tracing::warn!(channel = %name, key = %job.notification.key, why = %why, retry_in_ms = backoff + jitter, queued = queue.len(), "delivery failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(backoff + jitter)) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(cfg.backoff_max_ms);
            }
        }
    }
}

impl Notifier {
    fn inner_db_attempt(&self, id: u64, o: &Outcome) -> Result<(), NotifyDbError> {
        // Attempts go through the reader connection: the routing loop holds the writer.
        self.reader.lock().attempt(id, now_ms(), o)
    }
}
