//! The router: turns recorded alarm transitions into what people and systems are told
//! — pages along the alarm's escalation policy (`paging`), events for the streams,
//! work orders for crews (`orders`) — and fires escalation steps and work order
//! deadlines as time passes. Every output carries an idempotency key derived from what
//! caused it, so routing the same transitions again (after a crash) yields the same
//! keys, and deadlines fire in event time: a step due before a later transition (an
//! acknowledgement) fires before it, never after.
//!
//! Pure: time is an argument; no I/O. Does not send (the stage and its channels) or
//! store (the notify database) anything.

mod orders;
mod paging;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use super::escalation::{Escalation, Unrouted};
use super::routing::Routing;
use super::workorder::WorkOrder;
use super::Notification;
use crate::alarms::{Alarm, Transition};

/// Answered within this long of the first page counts as answered in time (telecare
/// practice: 98.5 % within 60 s).
pub const ANSWER_TARGET_MS: u64 = 60_000;

/// An alarm answered (acknowledged or resolved by a person) after it was paged: one
/// sample of the answer-time KPIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Alarm id.
    pub alarm: u64,
    /// Team first paged.
    pub team: String,
    /// Priority.
    pub priority: u8,
    /// Paging started, ms.
    pub started_ms: u64,
    /// Answered, ms.
    pub answered_ms: u64,
    /// By whom.
    pub by: String,
}

impl Answer {
    /// Answered within [`ANSWER_TARGET_MS`].
    pub fn in_time(&self) -> bool {
        self.answered_ms.saturating_sub(self.started_ms) <= ANSWER_TARGET_MS
    }
}

/// An event for the streams (MQTT, SSE, event webhooks).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Idempotency key (also the SSE event id).
    pub key: String,
    /// Alarm id (for the retained per-alarm MQTT topic), if about an alarm.
    pub alarm: Option<u64>,
    /// The documented JSON body.
    pub body: Value,
}

/// What routing produced; the stage stores and sends it.
#[derive(Debug, Default)]
pub struct Routed {
    /// Pages and work order messages to people.
    pub notifications: Vec<Notification>,
    /// Events for the streams.
    pub events: Vec<Event>,
    /// Escalations changed (stored) or ended (`None`: deleted), by alarm id; the last
    /// entry for an alarm wins.
    pub escalations: Vec<(u64, Option<Escalation>)>,
    /// Work orders as they are after each change; the last entry for an id wins.
    pub work_orders: Vec<WorkOrder>,
    /// KPI samples.
    pub answers: Vec<Answer>,
    /// Roles a page found nobody for.
    pub unrouted: Vec<(u64, Unrouted)>,
    /// Pages of alarms acknowledged or closed, not yet delivered, are superseded:
    /// (key pattern of the alarm's pages, created at or before this time, ms).
    pub superseded: Vec<(String, u64)>,
}

impl Routed {
    /// Nothing to store.
    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty()
            && self.events.is_empty()
            && self.escalations.is_empty()
            && self.work_orders.is_empty()
            && self.answers.is_empty()
            && self.superseded.is_empty()
    }

    /// Appends another result.
    pub fn append(&mut self, mut o: Routed) {
        self.notifications.append(&mut o.notifications);
        self.events.append(&mut o.events);
        self.escalations.append(&mut o.escalations);
        self.work_orders.append(&mut o.work_orders);
        self.answers.append(&mut o.answers);
        self.unrouted.append(&mut o.unrouted);
        self.superseded.append(&mut o.superseded);
    }
}

/// Routing state: escalations in progress, live work orders, the alarms they follow.
#[derive(Debug)]
pub struct Router {
    routing: Arc<Routing>,
    /// By alarm id.
    pub escalations: BTreeMap<u64, Escalation>,
    /// Live work orders (open, or verified with the alarm still to resolve) by id.
    pub work_orders: BTreeMap<u64, WorkOrder>,
    /// Latest snapshot of alarms with an escalation or live work order.
    pub alarms: BTreeMap<u64, Alarm>,
    next_work_order: u64,
    /// Escalations with a step still to fire, by its deadline: (due ms, alarm id).
    /// Time only touches what is due, however many alarms are open.
    due: BTreeSet<(u64, u64)>,
    /// Each indexed escalation's deadline, by alarm id.
    due_of: HashMap<u64, u64>,
    /// Earliest work order deadline, when known (`None`: rescan on the next advance).
    orders_due: Option<u64>,
    /// Key prefix: empty, or `e{n}.` after the delivery database had to start over
    /// beside its alarm database (so new keys never collide with delivered ones).
    epoch: String,
}

/// The JSON summary of an alarm in every message.
pub fn alarm_json(a: &Alarm) -> Value {
    json!({
        "id": a.id, "kind": a.kind, "priority": a.priority, "life_safety": a.life_safety,
        "state": a.state.as_str(), "condition": a.condition, "source": a.source,
        "site": a.site, "zone": a.zone, "subject": a.subject, "device": a.device,
        "count": a.count, "value": a.value, "detail": a.detail, "raised_ms": a.raised_ms,
        "acked_by": a.acked_by, "assignee": a.assignee, "disposition": a.disposition,
    })
}

/// The JSON summary of a work order.
pub fn work_order_json(w: &WorkOrder) -> Value {
    json!({
        "id": w.id, "alarm": w.alarm, "kind": w.kind, "state": w.state.as_str(),
        "grade": w.grade.as_str(), "due_ms": w.due_ms, "overdue": w.overdue,
        "assignee": w.assignee, "team": w.team, "site": w.site, "zone": w.zone,
        "subject": w.subject, "device": w.device, "reopened": w.reopened,
    })
}

fn subject_line(a: &Alarm) -> String {
    let what = a
        .subject
        .as_deref()
        .or(a.device.as_deref())
        .unwrap_or(&a.source);
    format!(
        "[P{}] {} — {} ({}/{})",
        a.priority, a.kind, what, a.site, a.zone
    )
}

impl Router {
    /// A router with restored state.
    pub fn new(
        routing: Arc<Routing>,
        escalations: Vec<Escalation>,
        work_orders: Vec<WorkOrder>,
        alarms: Vec<Alarm>,
        next_work_order: u64,
    ) -> Router {
        let mut r = Router {
            routing,
            escalations: escalations.into_iter().map(|e| (e.alarm, e)).collect(),
            work_orders: work_orders.into_iter().map(|w| (w.id, w)).collect(),
            alarms: alarms.into_iter().map(|a| (a.id, a)).collect(),
            next_work_order,
            due: BTreeSet::new(),
            due_of: HashMap::new(),
            orders_due: None,
            epoch: String::new(),
        };
        r.reindex_all();
        r
    }

    /// Files an escalation's next deadline (or takes it out when it has none).
    fn reindex(&mut self, id: u64) {
        if let Some(old) = self.due_of.remove(&id) {
            self.due.remove(&(old, id));
        }
        let due = self.escalations.get(&id).and_then(|e| {
            let a = self.alarms.get(&id)?;
            e.due(self.routing.policy(a.priority, &a.kind)?)
        });
        if let Some(d) = due {
            self.due.insert((d, id));
            self.due_of.insert(id, d);
        }
    }

    fn reindex_all(&mut self) {
        self.due.clear();
        self.due_of.clear();
        let ids: Vec<u64> = self.escalations.keys().copied().collect();
        ids.into_iter().for_each(|id| self.reindex(id));
    }

    /// Ends an alarm's escalation.
    fn drop_escalation(&mut self, id: u64) -> Option<Escalation> {
        let e = self.escalations.remove(&id);
        self.reindex(id);
        e
    }

    /// Sets the key epoch (0: none).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = if epoch == 0 {
            String::new()
        } else {
            format!("e{epoch}.")
        };
    }

    /// An idempotency key in the current epoch.
    fn key(&self, k: std::fmt::Arguments<'_>) -> String {
        format!("{}{k}", self.epoch)
    }

    /// Forgets every escalation (the delivery database starts over): their alarms are
    /// adopted again.
    pub fn forget_escalations(&mut self, out: &mut Routed) {
        for id in std::mem::take(&mut self.escalations).into_keys() {
            out.escalations.push((id, None));
            self.forget_if_done(id);
        }
        self.reindex_all();
    }

    /// The routing in force.
    pub fn routing(&self) -> &Arc<Routing> {
        &self.routing
    }

    /// Swaps the routing in: escalations go on at their step under the policy that now
    /// applies to their alarm, and later steps resolve people with the new roster.
    pub fn reload(&mut self, routing: Arc<Routing>) {
        self.routing = routing;
        self.reindex_all();
    }

    /// Next work order id.
    pub fn next_work_order(&self) -> u64 {
        self.next_work_order
    }

    /// Routes recorded transitions in order — `(seq, transition, alarm)`, the alarm as
    /// the transition left it — firing each deadline due before a transition first,
    /// at its own time; then fires what is due by `now`.
    pub fn route(&mut self, batch: &[(u64, Transition, Alarm)], now: u64, out: &mut Routed) {
        for (seq, t, alarm) in batch {
            self.advance(t.at_ms, out);
            self.on_transition(*seq, t, alarm, out);
        }
        self.advance(now, out);
    }

    fn on_transition(&mut self, seq: u64, t: &Transition, alarm: &Alarm, out: &mut Routed) {
        let key = self.key(format_args!("t{seq}"));
        out.events.push(Event {
            key: key.clone(),
            alarm: Some(alarm.id),
            body: json!({
                "type": "alarm", "key": key, "seq": seq, "action": t.action,
                "at_ms": t.at_ms, "who": t.who, "note": t.note, "alarm": alarm_json(alarm),
            }),
        });
        self.alarms.insert(alarm.id, alarm.clone());
        self.page_on(seq, t, alarm, out);
        self.follow_orders(t, alarm, out);
        self.forget_if_done(alarm.id);
        // Its priority or kind may have changed with the transition.
        self.reindex(alarm.id);
    }

    /// Keeps an alarm's snapshot only while something follows it.
    fn forget_if_done(&mut self, id: u64) {
        let followed =
            self.escalations.contains_key(&id) || self.work_orders.values().any(|w| w.alarm == id);
        if !followed {
            self.alarms.remove(&id);
        }
    }

    /// Starts paging for an open alarm that was never routed (a new delivery database
    /// beside an existing alarm database): its steps count from its raise.
    pub fn adopt(&mut self, alarm: &Alarm, now: u64, out: &mut Routed) {
        if self.escalations.contains_key(&alarm.id) || !paging::wants_attention(alarm) {
            return;
        }
        self.alarms.insert(alarm.id, alarm.clone());
        self.start_paging(alarm, alarm.raised_ms, 0, out);
        self.advance(now, out);
        self.forget_if_done(alarm.id);
    }

    /// Fires escalation steps and work order deadlines due by `limit`, each at its
    /// own time.
    pub fn advance(&mut self, limit: u64, out: &mut Routed) {
        self.advance_paging(limit, out);
        self.advance_orders(limit, out);
    }

    /// Earliest deadline (escalation step or work order), for the stage's timer.
    pub fn next_due(&self) -> Option<u64> {
        let esc = self.due.first().map(|(d, _)| *d);
        let orders = self
            .work_orders
            .values()
            .filter(|w| self.alarms.contains_key(&w.alarm))
            .filter_map(|w| w.due());
        esc.into_iter().chain(orders).min()
    }
}
