//! The channel workers: one per configured channel (each webhook, e-mail), sending
//! its deliveries most urgent first (priority, then age). Every attempt is recorded.
//! A failed message waits out its own backoff while the others go on; an unreachable
//! receiver pauses its channel (never the others). A delivery that was superseded or
//! already delivered meanwhile is dropped; one without a receipt after
//! `give_up_after_s` fails as expired. Also the MQTT publisher's thread.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Notifier;
use crate::clock::now_ms;
use crate::config::DeliveryConfig;
use crate::notify::db::Outcome;
use crate::notify::email::Email;
use crate::notify::mqtt::MqttOut;
use crate::notify::webhook::Webhook;
use crate::notify::{ChannelError, Notification};

/// A delivery handed to a worker.
pub(super) struct Job {
    /// Row id.
    pub id: u64,
    /// What to send.
    pub notification: Notification,
}

/// A channel's wire.
pub(super) enum Sender {
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

/// Every configured channel, by name (`webhook:NAME`, `email`).
pub(super) fn senders(d: &DeliveryConfig) -> Result<Vec<(String, Sender)>, ChannelError> {
    let timeout = Duration::from_millis(d.timeout_ms);
    let mut out = Vec::new();
    for w in &d.webhook {
        out.push((
            format!("webhook:{}", w.name),
            Sender::Webhook(Webhook::new(&w.name, &w.url, w.key(), timeout)?),
        ));
    }
    if let Some(s) = &d.smtp {
        out.push(("email".into(), Sender::Email(Email::new(s, timeout)?)));
    }
    Ok(out)
}

struct Queued {
    id: u64,
    priority: u8,
    notification: Notification,
    attempts: u32,
    next_at: Instant,
    /// When this worker took it (expiry counts from here, not from the event time,
    /// which can be long past for a step that fell due while the gateway was down).
    queued_ms: u64,
}

fn backoff(cfg: &DeliveryConfig, attempts: u32) -> Duration {
    let base = cfg
        .backoff_min_ms
        .saturating_mul(1 << attempts.min(20).saturating_sub(1))
        .min(cfg.backoff_max_ms);
    Duration::from_millis(base + rand::random::<u64>() % (base / 4 + 1))
}

/// One channel's worker (see the module docs).
pub(super) async fn run(
    n: Arc<Notifier>,
    name: String,
    sender: Sender,
    mut rx: mpsc::UnboundedReceiver<Job>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = n.config.delivery.clone();
    let m = &n.metrics;
    let mut queue: Vec<Queued> = Vec::new();
    let mut ids: HashSet<u64> = HashSet::new();
    let mut paused_until: Option<Instant> = None;
    let mut unreachable = 0u32;
    let take = |j: Job, queue: &mut Vec<Queued>, ids: &mut HashSet<u64>| {
        if ids.insert(j.id) {
            m.pending.fetch_add(1, Relaxed);
            // Pages most urgent first; events (no person) keep their order.
            let priority = match j.notification.person {
                Some(_) => j.notification.body["alarm"]["priority"]
                    .as_u64()
                    .unwrap_or(4)
                    .min(9) as u8,
                None => 9,
            };
            queue.push(Queued {
                id: j.id,
                priority,
                notification: j.notification,
                attempts: 0,
                next_at: Instant::now(),
                queued_ms: now_ms(),
            });
        }
    };
    loop {
        while let Ok(j) = rx.try_recv() {
            take(j, &mut queue, &mut ids);
        }
        let now = Instant::now();
        let paused = paused_until.filter(|p| *p > now);
        let ready = queue
            .iter()
            .enumerate()
            .filter(|(_, q)| paused.is_none() && q.next_at <= now)
            .min_by_key(|(_, q)| (q.priority, q.id))
            .map(|(i, _)| i);
        let Some(i) = ready else {
            let wake = paused.or_else(|| queue.iter().map(|q| q.next_at).min());
            tokio::select! {
                j = rx.recv() => match j {
                    Some(j) => take(j, &mut queue, &mut ids),
                    None => return,
                },
                _ = tokio::time::sleep_until(wake.unwrap_or(now + Duration::from_secs(3600))), if wake.is_some() => {}
                _ = stop.changed() => return,
            }
            continue;
        };
        let (id, queued_ms) = (queue[i].id, queue[i].queued_ms);
        // Superseded (its alarm was answered) or delivered meanwhile: drop it. (A point
        // read and, below, a small write on the reader connection: tens of µs, done
        // in place rather than through a blocking-pool hop on the page's path.)
        let state = n.reader.lock().state(id);
        let still_pending = !matches!(&state, Ok(Some(s)) if s != "pending");
        let expired = now_ms().saturating_sub(queued_ms) > cfg.give_up_after_s * 1000;
        let outcome = if !still_pending {
            None
        } else if expired {
            Some(Outcome::Failed(format!(
                "expired: no receipt within {} s",
                cfg.give_up_after_s
            )))
        } else {
            Some(sender.send(&queue[i].notification).await)
        };
        if let Some(o) = &outcome {
            if let Err(e) = n.reader.lock().attempt(id, now_ms(), o) {
                tracing::error!(channel = %name, delivery = id, error = %e, "attempt not recorded");
            }
        }
        let q = &mut queue[i];
        let done = match &outcome {
            None => true,
            Some(Outcome::Delivered(_)) => {
                m.delivered.fetch_add(1, Relaxed);
                unreachable = 0;
                paused_until = None;
                true
            }
            Some(Outcome::Failed(why)) => {
                unreachable = 0;
                m.failed.fetch_add(1, Relaxed);
                tracing::warn!(channel = %name, key = %q.notification.key, why = %why, "delivery refused or expired; not retried");
                true
            }
            Some(Outcome::Retry(why)) => {
                // The receiver answered: it is reachable.
                unreachable = 0;
                m.retries.fetch_add(1, Relaxed);
                q.attempts += 1;
                let wait = backoff(&cfg, q.attempts);
                q.next_at = Instant::now() + wait;
                tracing::warn!(channel = %name, key = %q.notification.key, why = %why, retry_in_ms = wait.as_millis() as u64, "delivery failed; retrying");
                false
            }
            Some(Outcome::Unreachable(why)) => {
                m.retries.fetch_add(1, Relaxed);
                q.attempts += 1;
                unreachable += 1;
                let wait = backoff(&cfg, unreachable);
                paused_until = Some(Instant::now() + wait);
                // The next probe after the pause tries another message first, so one
                // message the receiver chokes on cannot hold up the channel.
                q.next_at = Instant::now() + wait.max(backoff(&cfg, q.attempts));
                tracing::warn!(channel = %name, why = %why, queued = queue.len(), retry_in_ms = wait.as_millis() as u64, "receiver unreachable; channel paused");
                false
            }
        };
        if done {
            let q = queue.swap_remove(i);
            ids.remove(&q.id);
            m.pending.fetch_sub(1, Relaxed);
        }
    }
}

/// The MQTT publisher on its own thread (the broker link's send blocks when the
/// broker is busy; async workers must not).
pub(super) fn spawn_mqtt(mut out: MqttOut) -> std::sync::mpsc::Sender<(String, Vec<u8>, bool)> {
    let (tx, rx) = std::sync::mpsc::channel::<(String, Vec<u8>, bool)>();
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("linli-notify-mqtt".into())
        .spawn(move || {
            while let Ok((topic, payload, retain)) = rx.recv() {
                if !handle.block_on(out.publish(topic, payload, retain)) {
                    tracing::error!(
                        "broker link closed: alarm state is no longer published on MQTT"
                    );
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "no MQTT publisher thread: alarm state is not published on MQTT");
    }
    tx
}
