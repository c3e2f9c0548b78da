//! One routing round: read the transitions recorded since the cursor, route them with
//! what came due, commit with the new cursor, then dispatch — deliveries to their
//! channel workers, events to MQTT and the subscribers — and resolve the alarms of
//! verified work orders. The loop runs a round on every alarm commit and at the next
//! deadline.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Inner, Notifier};
use crate::alarms::db::AlarmDbError;
use crate::alarms::{Alarm, AlarmState, Transition};
use crate::clock::now_ms;
use crate::notify::db::NotifyDbError;
use crate::notify::mqtt::{alarm_topic, event_topic};
use crate::notify::router::Routed;
use crate::notify::Notification;

/// Transitions routed per round (a backlog takes several rounds, back to back).
const BATCH: usize = 1000;

/// The routing loop: a round on every alarm commit, and at the next deadline.
pub(super) async fn run(n: Arc<Notifier>, mut stop: watch::Receiver<bool>) {
    let wake = n.desk.committed();
    loop {
        // In place (the runtime moves its other tasks away meanwhile): a round is short,
        // and a hop to the blocking pool would add to every page's latency.
        let (next, more) = tokio::task::block_in_place(|| n.round());
        if more {
            continue;
        }
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

impl Notifier {
    /// Routes what the alarm stage recorded since the last round and fires what is
    /// due. Returns the next deadline, and whether a backlog is left.
    fn round(&self) -> (Option<u64>, bool) {
        let now = now_ms();
        let mut inner = self.inner.lock();
        if self.requeue.swap(false, Relaxed) {
            self.requeue_pending();
        }
        let from = inner.routed;
        let read = read_batch(&inner, from);
        // A partial read (more waiting, or stopped at an unreadable row) fires deadlines
        // only up to its last transition: a later acknowledgement may still come.
        let limit = if read.complete {
            now
        } else {
            read.last_at.unwrap_or(0)
        };
        let mut out = Routed::default();
        inner.router.route(&read.batch, limit.min(now), &mut out);
        inner.routed = read.last;
        let cursor = (read.last != inner.cursor).then_some(read.last);
        let stored = self.commit(&mut inner, out, cursor, false);
        if stored {
            self.resolve_verified(&mut inner);
        }
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
        // While the database refuses commits, wait for the next tick rather than
        // reading on.
        (inner.router.next_due(), read.more && stored)
    }

    /// Resolves the alarms of verified work orders (crash-safe: the order keeps
    /// `resolve_pending` until this is recorded). A refusal because the alarm's
    /// condition still holds reopens the order.
    pub(super) fn resolve_verified(&self, inner: &mut Inner) {
        let todo = inner.router.pending_resolves();
        if todo.is_empty() {
            return;
        }
        let mut out = Routed::default();
        for (alarm, wid) in todo {
            let result = self.desk.act(|core, now| {
                let open = core
                    .alarms
                    .get(alarm)
                    .is_some_and(|a| a.state != AlarmState::Normal);
                if open {
                    core.alarms
                        .resolve(alarm, "system", now, &format!("work order {wid} verified"))
                } else {
                    Ok(())
                }
            });
            if let Err(e) = &result {
                tracing::warn!(alarm, work_order = wid, error = %e, "alarm of a verified work order not resolved");
            }
            inner.router.resolved(wid, result, now_ms(), &mut out);
        }
        self.commit(inner, out, None, false);
    }

    /// Commits a routing result (with the event-webhook deliveries it implies) and
    /// dispatches it; a failed commit is kept and written with the next one. Returns
    /// whether it is stored.
    pub(super) fn commit(
        &self,
        inner: &mut Inner,
        mut out: Routed,
        cursor: Option<u64>,
        durable: bool,
    ) -> bool {
        for ev in &out.events {
            for w in &self.event_webhooks {
                let action = ev
                    .body
                    .get("action")
                    .and_then(|a| a.as_str())
                    .unwrap_or("event");
                out.notifications.push(Notification {
                    key: ev.key.clone(),
                    channel: w.clone(),
                    person: None,
                    subject: action.to_owned(),
                    body: ev.body.clone(),
                    created_ms: now_ms(),
                });
            }
        }
        let mut cursor = cursor;
        if let Some((mut prev, pc)) = inner.pending.take() {
            cursor = cursor.max(Some(pc));
            prev.append(out);
            out = prev;
        }
        if out.is_empty() && out.unrouted.is_empty() && cursor.is_none() {
            return true;
        }
        let next_wo = inner.router.next_work_order();
        match inner.db.commit(&out, cursor, next_wo, durable) {
            Ok(superseded) => {
                self.metrics
                    .superseded
                    .fetch_add(superseded as u64, Relaxed);
            }
            Err(e) => {
                self.metrics.db_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "delivery commit failed; retrying with the next round");
                inner.pending = Some((out, cursor.unwrap_or(inner.cursor)));
                return false;
            }
        }
        if let Some(c) = cursor {
            inner.cursor = c;
        }
        let ids = inner.db.ids(&out.notifications);
        self.dispatch(out, ids);
        true
    }

    /// Deliveries committed but not handed to a worker (their ids were unreadable).
    fn requeue_pending(&self) {
        match self
            .reader
            .lock()
            .deliveries(Some("pending"), usize::MAX, true)
        {
            Ok(list) => list
                .into_iter()
                .for_each(|d| self.enqueue(d.id, d.notification)),
            Err(e) => {
                tracing::error!(error = %e, "pending deliveries unreadable; retrying next round");
                self.requeue.store(true, Relaxed);
            }
        }
    }

    /// After a commit: notifications to their channels (unless already delivered or
    /// superseded), events to MQTT and the subscribers, metrics.
    fn dispatch(&self, out: Routed, ids: Result<Vec<(u64, String)>, NotifyDbError>) {
        let m = &self.metrics;
        match ids {
            Ok(ids) => {
                for (note, (id, state)) in out.notifications.into_iter().zip(ids) {
                    if state == "pending" {
                        if note.person.is_some() {
                            m.notifications.fetch_add(1, Relaxed);
                        }
                        self.enqueue(id, note);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "delivery ids unreadable: re-reading the pending deliveries next round");
                self.requeue.store(true, Relaxed);
            }
        }
        for (alarm, u) in &out.unrouted {
            m.unrouted.fetch_add(1, Relaxed);
            tracing::warn!(alarm, step = u.step, role = %u.role, team = ?u.team, "page found nobody on duty to reach");
        }
        let dispatched = out
            .work_orders
            .iter()
            .filter(|w| w.history.len() == 1)
            .count();
        m.work_orders.fetch_add(dispatched as u64, Relaxed);
        {
            let mut a = m.answers.lock();
            for x in &out.answers {
                let e = a.entry(x.team.clone()).or_default();
                e.0 += 1;
                e.1 += u64::from(x.in_time());
            }
        }
        for ev in out.events {
            m.events.fetch_add(1, Relaxed);
            if let Some(mq) = &self.mqtt {
                let kind = ev
                    .body
                    .get("type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("alarm")
                    .to_owned();
                if let (Some(id), Some(a)) = (ev.alarm, ev.body.get("alarm")) {
                    let closed = a.get("state").and_then(|s| s.as_str()) == Some("normal");
                    // A closed alarm's retained state is cleared.
                    let state = if closed {
                        Vec::new()
                    } else {
                        serde_json::to_vec(a).unwrap_or_default()
                    };
                    let _ = mq.send((alarm_topic(id), state, true));
                }
                let body = serde_json::to_vec(&ev.body).unwrap_or_default();
                let _ = mq.send((event_topic(&kind), body, false));
            }
            let _ = self.events.send(Arc::new(ev));
        }
    }
}

/// What one read of the alarm transitions gave.
struct Read {
    batch: Vec<(u64, Transition, Alarm)>,
    /// Position after it.
    last: u64,
    /// Time of its last transition.
    last_at: Option<u64>,
    /// A full batch: more are waiting.
    more: bool,
    /// Everything up to now was read (not more waiting, no stop at an unreadable row).
    complete: bool,
}

/// The next transitions after `cursor` with the alarm each left behind. Stops before a
/// transition whose alarm cannot be read for now (retried next round); a transition
/// whose alarm row is damaged for good is skipped, counted and logged.
fn read_batch(inner: &Inner, cursor: u64) -> Read {
    let mut read = Read {
        batch: Vec::new(),
        last: cursor,
        last_at: None,
        more: false,
        complete: false,
    };
    let rows = match inner.alarms.transitions_after(cursor, BATCH) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "alarm transitions unreadable; retrying");
            return read;
        }
    };
    read.more = rows.len() == BATCH;
    let mut cache: std::collections::HashMap<u64, Option<Alarm>> = Default::default();
    for (seq, t) in rows {
        let alarm = match cache.get(&t.alarm) {
            Some(a) => a.clone(),
            None => match inner.alarms.get(t.alarm) {
                Ok(a) => {
                    cache.insert(t.alarm, a.clone());
                    a
                }
                Err(AlarmDbError::Damaged { what, .. }) => {
                    tracing::error!(alarm = t.alarm, seq, what = %what, "alarm record damaged: its transition is skipped, nobody is paged for it");
                    None
                }
                Err(e) => {
                    tracing::error!(error = %e, alarm = t.alarm, seq, "alarm unreadable; its transitions wait for the next round");
                    return read;
                }
            },
        };
        read.last = seq;
        read.last_at = Some(t.at_ms);
        // A purged alarm (past retention) has nothing left to tell.
        if let Some(mut a) = alarm {
            // The row is the alarm now; the transition says what state it left then.
            a.state = t.to;
            read.batch.push((seq, t, a));
        }
    }
    read.complete = !read.more;
    read
}
