//! The router: turns each recorded alarm transition into what people and systems are
//! told — pages along the alarm's escalation policy, events for the streams, work
//! orders for crews — and fires escalation steps and work order deadlines as time
//! passes. Every output carries an idempotency key derived from what caused it, so
//! routing the same transition again (after a crash) yields the same keys.
//!
//! Pure: time is an argument; no I/O. Does not send (the stage and its channels) or
//! store (the notify database) anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::escalation::{Escalation, Page, Unrouted};
use super::routing::{Person, Routing};
use super::workorder::{Effect, WorkError, WorkOrder};
use super::Notification;
use crate::alarms::{Alarm, AlarmState, Transition};

/// An alarm answered (acknowledged or resolved) after it was paged: one sample of the
/// answer-time KPIs.
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

/// An event for the streams (MQTT, SSE, event webhooks).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Idempotency key (also the SSE event id's basis).
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
    /// Alarms whose work order was verified (the stage resolves them).
    pub verified: Vec<(u64, u64)>,
}

impl Routed {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty()
            && self.events.is_empty()
            && self.escalations.is_empty()
            && self.work_orders.is_empty()
            && self.answers.is_empty()
    }
}

/// Routing state: escalations in progress, open work orders, the open alarms they need.
#[derive(Debug)]
pub struct Router {
    routing: Arc<Routing>,
    /// By alarm id.
    pub escalations: BTreeMap<u64, Escalation>,
    /// Open work orders by id.
    pub work_orders: BTreeMap<u64, WorkOrder>,
    /// Latest snapshot of alarms with an escalation or open work order.
    pub alarms: BTreeMap<u64, Alarm>,
    next_work_order: u64,
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
        Router {
            routing,
            escalations: escalations.into_iter().map(|e| (e.alarm, e)).collect(),
            work_orders: work_orders.into_iter().map(|w| (w.id, w)).collect(),
            alarms: alarms.into_iter().map(|a| (a.id, a)).collect(),
            next_work_order,
        }
    }

    /// The routing in force.
    pub fn routing(&self) -> &Arc<Routing> {
        &self.routing
    }

    /// Swaps the routing in (escalations continue at their step under the new policy;
    /// the next step resolves people with the new roster).
    pub fn reload(&mut self, routing: Arc<Routing>) {
        self.routing = routing;
    }

    /// Next work order id.
    pub fn next_work_order(&self) -> u64 {
        self.next_work_order
    }

    /// Routes one recorded transition (`seq` is its number in the alarm database) of
    /// `alarm` (its state after the transition) at `now`.
    pub fn on_transition(
        &mut self,
        seq: u64,
        t: &Transition,
        alarm: &Alarm,
        now: u64,
        out: &mut Routed,
    ) {
        out.events.push(Event {
            key: format!("t{seq}"),
            alarm: Some(alarm.id),
            body: json!({
                "type": "alarm", "key": format!("t{seq}"), "seq": seq, "action": t.action,
                "at_ms": t.at_ms, "who": t.who, "note": t.note, "alarm": alarm_json(alarm),
            }),
        });
        let id = alarm.id;
        let policy = self.routing.policy(alarm.priority, &alarm.kind).cloned();
        let wants_attention = alarm.announced()
            && matches!(
                alarm.state,
                AlarmState::ActiveUnacked | AlarmState::ReturnedUnacked
            );
        match t.action.as_str() {
            "acked" | "resolved" => {
                if let Some(e) = self.escalations.remove(&id) {
                    out.escalations.push((id, None));
                    if let Some(team) = e.team {
                        out.answers.push(Answer {
                            alarm: id,
                            team,
                            priority: alarm.priority,
                            started_ms: e.started_ms,
                            answered_ms: t.at_ms,
                            by: t.who.clone(),
                        });
                    }
                }
            }
            "escalated" => {
                // The rule's own re-announcement: everyone paged so far, again.
                if let Some(e) = self.escalations.get(&id) {
                    let key = format!("a{id}-t{seq}");
                    let again = e.renotify(&self.routing);
                    page(alarm, &key, again, now, out);
                }
            }
            _ => {}
        }
        if !wants_attention {
            // Closed, or nobody is to be told any more (shelved, suppressed, flooded,
            // out of service): paging stops.
            if (alarm.state == AlarmState::Normal || !alarm.announced())
                && self.escalations.remove(&id).is_some()
            {
                out.escalations.push((id, None));
            }
        } else if !self.escalations.contains_key(&id)
            && matches!(
                t.action.as_str(),
                "raised" | "repeat" | "unshelved" | "unsuppressed" | "in_service"
            )
        {
            // Newly announced, or unacknowledged again (a new press after the
            // acknowledgement): paging starts from the first step.
            if let Some(p) = policy.as_ref().filter(|p| !p.steps.is_empty()) {
                let e = Escalation::start(id, p, t.at_ms, seq);
                out.escalations.push((id, Some(e.clone())));
                self.escalations.insert(id, e);
            }
        }

        // Work orders follow the fault.
        let open_wo: Vec<u64> = self
            .work_orders
            .values()
            .filter(|w| w.alarm == id && !w.state.closed())
            .map(|w| w.id)
            .collect();
        for wid in &open_wo {
            let Some(w) = self.work_orders.get_mut(wid) else {
                continue;
            };
            let effect = match t.action.as_str() {
                "cleared" => w.fault_cleared(t.at_ms),
                "repeat" | "raised" => w.fault_again(t.at_ms),
                "resolved" => {
                    w.cancel(t.at_ms, &t.who);
                    Effect::None
                }
                _ => continue,
            };
            self.after_work_change(*wid, effect, alarm, now, out);
        }
        if open_wo.is_empty()
            && t.action == "raised"
            && alarm.announced()
            && alarm.state != AlarmState::Normal
        {
            if let Some(wp) = policy.as_ref().and_then(|p| p.work_order.clone()) {
                let team = self
                    .routing
                    .team(&wp.role, &alarm.site, &alarm.zone)
                    .map(|t| t.id.clone());
                let sla = self.routing.work_orders.sla_ms(wp.grade);
                let wid = self.next_work_order;
                self.next_work_order += 1;
                let mut w = WorkOrder::dispatch(wid, alarm, &wp.role, team, wp.grade, sla, t.at_ms);
                w.overdue_role = wp.overdue.clone();
                self.work_orders.insert(wid, w);
                self.after_work_change(wid, Effect::Renotify, alarm, now, out);
            }
        }

        if self.escalations.contains_key(&id)
            || self
                .work_orders
                .values()
                .any(|w| w.alarm == id && !w.state.closed())
        {
            self.alarms.insert(id, alarm.clone());
        } else {
            self.alarms.remove(&id);
        }
        self.advance(now, out);
    }

    /// A person's action on a work order; `fault` is whether its alarm's condition
    /// holds now (from the latest snapshot).
    pub fn work_action(
        &mut self,
        wid: u64,
        action: &str,
        who: &str,
        note: &str,
        now: u64,
        out: &mut Routed,
    ) -> Result<WorkOrder, WorkError> {
        let verify_ms = self.routing.work_orders.verify_ms;
        let w = self
            .work_orders
            .get_mut(&wid)
            .filter(|w| !w.state.closed())
            .ok_or(WorkError::NotFound(wid))?;
        let fault = self.alarms.get(&w.alarm).is_some_and(|a| a.condition);
        let effect = match action {
            "accept" => w.accept(who, now).map(|()| Effect::None)?,
            "arrive" => w.arrive(who, now).map(|()| Effect::None)?,
            "fixed" => w.fixed(who, now, fault, verify_ms, note)?,
            _ => {
                return Err(WorkError::Invalid(
                    wid,
                    w.state.as_str(),
                    "unknown action (accept, arrive, fixed)",
                ))
            }
        };
        let snapshot = w.clone();
        let alarm = self.alarms.get(&snapshot.alarm).cloned();
        if let Some(a) = alarm {
            self.after_work_change(wid, effect, &a, now, out);
        }
        Ok(self.work_orders.get(&wid).cloned().unwrap_or(snapshot))
    }

    fn after_work_change(
        &mut self,
        wid: u64,
        effect: Effect,
        alarm: &Alarm,
        now: u64,
        out: &mut Routed,
    ) {
        let Some(w) = self.work_orders.get(&wid) else {
            return;
        };
        let step = w.history.len() - 1;
        let last = &w.history[step];
        let key = format!("w{wid}-{step}");
        out.events.push(Event {
            key: key.clone(),
            alarm: None,
            body: json!({
                "type": "work_order", "key": key, "action": last.action, "at_ms": last.at_ms,
                "who": last.who, "note": last.note, "work_order": work_order_json(w),
                "alarm": alarm_json(alarm),
            }),
        });
        match effect {
            Effect::Verified => out.verified.push((w.alarm, wid)),
            Effect::Renotify => {
                // The crew on duty (and whoever accepted it) hear of it; past its SLA,
                // the overdue role too.
                let mut people = self.on_duty_for(&w.role, w, now, out);
                if last.action == "overdue" {
                    if let Some(role) = &w.overdue_role {
                        for p in self.on_duty_for(role, w, now, out) {
                            if !people.iter().any(|x| x.id == p.id) {
                                people.push(p);
                            }
                        }
                    }
                }
                if let Some(p) = w
                    .assignee
                    .as_ref()
                    .and_then(|id| self.routing.people.get(id))
                {
                    if !people.iter().any(|x| x.id == p.id) {
                        people.push(p.clone());
                    }
                }
                let body = json!({
                    "type": "work_order", "action": last.action, "work_order": work_order_json(w),
                    "alarm": alarm_json(alarm),
                });
                let subject = format!(
                    "Work order {} ({}, {}): {}",
                    w.id,
                    w.grade.as_str(),
                    last.action,
                    subject_line(alarm)
                );
                for p in people {
                    for c in &p.contacts {
                        out.notifications.push(Notification::to_person(
                            format!("{key}-{}", p.id),
                            &p,
                            c,
                            subject.clone(),
                            body.clone(),
                            now,
                        ));
                    }
                }
            }
            Effect::None => {}
        }
        out.work_orders.push(w.clone());
        if w.state.closed() {
            self.work_orders.remove(&wid);
        }
    }

    /// The on-duty people of the team with `role` for a work order's place; a role
    /// nobody can be reached for is reported as unrouted.
    fn on_duty_for(&self, role: &str, w: &WorkOrder, now: u64, out: &mut Routed) -> Vec<Person> {
        let team = self.routing.team(role, &w.site, &w.zone);
        let people: Vec<Person> = team
            .map(|t| self.routing.on_duty(t, now).into_iter().cloned().collect())
            .unwrap_or_default();
        if people.iter().all(|p| p.contacts.is_empty()) {
            out.unrouted.push((
                w.alarm,
                Unrouted {
                    step: 0,
                    role: role.to_owned(),
                    team: team.map(|t| t.id.clone()),
                },
            ));
        }
        people
    }

    /// Fires escalation steps and work order deadlines due by `now`.
    pub fn advance(&mut self, now: u64, out: &mut Routed) {
        let routing = self.routing.clone();
        for (id, e) in self.escalations.iter_mut() {
            let Some(alarm) = self.alarms.get(id) else {
                continue;
            };
            let Some(policy) = routing.policy(alarm.priority, &alarm.kind) else {
                continue;
            };
            let mut fired = false;
            while e.due(policy).is_some_and(|d| d <= now) {
                let key = format!("a{id}-t{}-s{}", e.started_by, e.next_step);
                let (pages, unrouted) = e.fire(&routing, policy, alarm, now);
                out.unrouted.extend(unrouted.into_iter().map(|u| (*id, u)));
                page(alarm, &key, pages, now, out);
                fired = true;
            }
            if fired {
                out.escalations.push((*id, Some(e.clone())));
            }
        }
        let due_wo: Vec<u64> = self
            .work_orders
            .values()
            .filter(|w| w.due().is_some_and(|d| d <= now))
            .map(|w| w.id)
            .collect();
        for wid in due_wo {
            let Some(w) = self.work_orders.get_mut(&wid) else {
                continue;
            };
            let Some(alarm) = self.alarms.get(&w.alarm).cloned() else {
                continue;
            };
            let effect = w.advance(now, alarm.condition);
            self.after_work_change(wid, effect, &alarm, now, out);
        }
    }

    /// Earliest deadline (escalation step or work order), for the stage's timer.
    pub fn next_due(&self) -> Option<u64> {
        let esc = self.escalations.values().filter_map(|e| {
            let a = self.alarms.get(&e.alarm)?;
            e.due(self.routing.policy(a.priority, &a.kind)?)
        });
        esc.chain(self.work_orders.values().filter_map(|w| w.due()))
            .min()
    }
}

fn page(alarm: &Alarm, key: &str, pages: Vec<Page>, now: u64, out: &mut Routed) {
    let subject = subject_line(alarm);
    for p in pages {
        let body = json!({
            "type": "page", "step": p.step, "role": p.role, "team": p.team,
            "alarm": alarm_json(alarm),
        });
        out.notifications.push(Notification::to_person(
            format!("{key}-{}", p.person.id),
            &p.person,
            &p.contact,
            subject.clone(),
            body,
            now,
        ));
    }
}
