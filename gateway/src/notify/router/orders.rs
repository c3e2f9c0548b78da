//! Work orders in the router: opening one when its alarm is announced, following the
//! alarm's fault (verify, reopen, cancel when the alarm closes), crews' actions,
//! deadlines, the events and crew messages each change makes, and the alarm the
//! gateway must resolve once an order is verified. Part of the pure router.

use serde_json::json;

use super::{alarm_json, subject_line, work_order_json, Event, Routed, Router};
use crate::alarms::{ActionError, Alarm, AlarmState, Transition};
use crate::notify::escalation::Unrouted;
use crate::notify::routing::Person;
use crate::notify::workorder::{Effect, WorkError, WorkOrder, WorkState};
use crate::notify::Notification;

/// Transitions after which an announced alarm in fault gets a work order (when it has
/// no open one): raised, announced again, or the fault raised again after its last
/// order closed.
const OPENS: [&str; 5] = [
    "raised",
    "repeat",
    "unshelved",
    "unsuppressed",
    "in_service",
];

impl Router {
    pub(super) fn follow_orders(&mut self, t: &Transition, alarm: &Alarm, out: &mut Routed) {
        let id = alarm.id;
        let at = t.at_ms;
        let open: Vec<u64> = self
            .work_orders
            .values()
            .filter(|w| w.alarm == id && !w.state.closed())
            .map(|w| w.id)
            .collect();
        for wid in &open {
            let Some(w) = self.work_orders.get_mut(wid) else {
                continue;
            };
            let mut effect = match t.action.as_str() {
                "cleared" => w.fault_cleared(at),
                "repeat" | "raised" => w.fault_again(at),
                _ => Effect::None,
            };
            if alarm.state == AlarmState::Normal && !w.state.closed() {
                // The alarm closed: a fixed order is verified by it, any other has
                // nothing left to do.
                effect = if w.state == WorkState::Fixed {
                    w.fault_cleared(at)
                } else {
                    w.cancel(at, &t.who, &format!("its alarm closed ({})", t.action));
                    Effect::None
                };
            }
            self.after_change(*wid, effect, alarm, at, out);
        }
        let in_fault = alarm.condition || alarm.momentary;
        let opens = open.is_empty()
            && OPENS.contains(&t.action.as_str())
            && alarm.announced()
            && in_fault
            && alarm.state != AlarmState::Normal;
        let policy = self
            .routing
            .policy(alarm.priority, &alarm.kind)
            .and_then(|p| p.work_order.clone());
        if let (true, Some(wp)) = (opens, policy) {
            let team = self
                .routing
                .team(&wp.role, &alarm.site, &alarm.zone)
                .map(|t| t.id.clone());
            let sla = self.routing.work_orders.sla_ms(wp.grade);
            let wid = self.next_work_order;
            self.next_work_order += 1;
            let mut w = WorkOrder::dispatch(wid, alarm, &wp.role, team, wp.grade, sla, at);
            w.overdue_role = wp.overdue.clone();
            self.work_orders.insert(wid, w);
            self.after_change(wid, Effect::Renotify, alarm, at, out);
        }
    }

    /// A person's action on a work order (`accept`, `arrive`, `fixed`) at `now`.
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
        let alarm = self
            .alarms
            .get(&w.alarm)
            .cloned()
            .ok_or(WorkError::NotFound(wid))?;
        let effect = match action {
            "accept" => w.accept(who, now).map(|()| Effect::None)?,
            "arrive" => w.arrive(who, now).map(|()| Effect::None)?,
            "fixed" => w.fixed(who, now, alarm.condition, verify_ms, note)?,
            _ => {
                return Err(WorkError::Invalid(
                    wid,
                    w.state.as_str(),
                    "unknown action (accept, arrive, fixed)",
                ))
            }
        };
        let snapshot = w.clone();
        self.after_change(wid, effect, &alarm, now, out);
        Ok(self.work_orders.get(&wid).cloned().unwrap_or(snapshot))
    }

    /// Verified orders whose alarm the gateway still has to resolve: (alarm, order).
    pub fn pending_resolves(&self) -> Vec<(u64, u64)> {
        self.work_orders
            .values()
            .filter(|w| w.resolve_pending)
            .map(|w| (w.alarm, w.id))
            .collect()
    }

    /// How resolving a verified order's alarm went. Refused because the alarm's
    /// condition still holds: the order reopens (the sensor disagrees with the fix).
    pub fn resolved(
        &mut self,
        wid: u64,
        result: Result<(), ActionError>,
        now: u64,
        out: &mut Routed,
    ) {
        let Some(w) = self.work_orders.get_mut(&wid) else {
            return;
        };
        w.resolve_pending = false;
        let mut effect = Effect::None;
        if let Err(ActionError::StillActive(_)) = result {
            w.reopen(now, "its alarm's condition still holds");
            effect = Effect::Renotify;
        }
        let alarm = self.alarms.get(&w.alarm).cloned();
        match alarm {
            Some(a) => self.after_change(wid, effect, &a, now, out),
            None => {
                out.work_orders.push(w.clone());
                self.work_orders.remove(&wid);
            }
        }
    }

    /// Orders whose alarm no longer exists (purged, or a lost alarm database) are
    /// cancelled: nothing could verify or close them.
    pub fn cancel_orphans(&mut self, now: u64, out: &mut Routed) {
        let orphans: Vec<u64> = self
            .work_orders
            .values()
            .filter(|w| !self.alarms.contains_key(&w.alarm))
            .map(|w| w.id)
            .collect();
        for wid in orphans {
            if let Some(mut w) = self.work_orders.remove(&wid) {
                w.cancel(now, "system", "its alarm no longer exists");
                w.resolve_pending = false;
                out.work_orders.push(w);
            }
        }
    }

    pub(super) fn advance_orders(&mut self, limit: u64, out: &mut Routed) {
        // Most calls come before each routed transition, with nothing due: skip the scan.
        if self.orders_due.is_some_and(|d| limit < d) {
            return;
        }
        let due: Vec<u64> = self
            .work_orders
            .values()
            .filter(|w| w.due().is_some_and(|d| d <= limit))
            .map(|w| w.id)
            .collect();
        for wid in due {
            // Each deadline fires at its own time (verification, then the SLA).
            for _ in 0..2 {
                let Some(w) = self.work_orders.get_mut(&wid) else {
                    break;
                };
                let Some(at) = w.due().filter(|d| *d <= limit) else {
                    break;
                };
                let Some(alarm) = self.alarms.get(&w.alarm).cloned() else {
                    break;
                };
                let effect = w.advance(at, alarm.condition);
                self.after_change(wid, effect, &alarm, at, out);
            }
        }
        let next = self
            .work_orders
            .values()
            .filter(|w| self.alarms.contains_key(&w.alarm))
            .filter_map(|w| w.due())
            .min();
        self.orders_due = Some(next.unwrap_or(u64::MAX));
    }

    /// After a change: one event per new history entry, the crew told when the
    /// change calls for it, the order stored, and forgotten once nothing is left to do.
    fn after_change(&mut self, wid: u64, effect: Effect, alarm: &Alarm, at: u64, out: &mut Routed) {
        self.orders_due = None;
        let Some(w) = self.work_orders.get_mut(&wid) else {
            return;
        };
        if effect == Effect::Verified {
            // Life-safety alarms are closed by a person, with a disposition.
            w.resolve_pending = !alarm.life_safety && alarm.state != AlarmState::Normal;
        }
        let w = w.clone();
        for (n, step) in w.history.iter().enumerate().skip(w.emitted) {
            let key = self.key(format_args!("w{wid}-{n}"));
            out.events.push(Event {
                key: key.clone(),
                alarm: None,
                body: json!({
                    "type": "work_order", "key": key, "action": step.action, "at_ms": step.at_ms,
                    "who": step.who, "note": step.note, "work_order": work_order_json(&w),
                    "alarm": alarm_json(alarm),
                }),
            });
        }
        if effect == Effect::Renotify {
            self.tell_crew(&w, alarm, at, out);
        }
        let mut stored = w;
        stored.emitted = stored.history.len();
        out.work_orders.push(stored.clone());
        if stored.live() {
            self.work_orders.insert(wid, stored);
        } else {
            self.work_orders.remove(&wid);
        }
    }

    /// The crew on duty (and whoever accepted it) hear of the latest change; past its
    /// SLA, the overdue role too.
    fn tell_crew(&self, w: &WorkOrder, alarm: &Alarm, at: u64, out: &mut Routed) {
        let n = w.history.len().saturating_sub(1);
        let Some(last) = w.history.last() else { return };
        let mut people = self.on_duty_for(&w.role, w, at, out);
        let overdue = w.overdue_role.as_ref().filter(|_| last.action == "overdue");
        if let Some(role) = overdue {
            people.extend(self.on_duty_for(role, w, at, out));
        }
        if let Some(p) = w
            .assignee
            .as_ref()
            .and_then(|id| self.routing.people.get(id))
        {
            people.push(p.clone());
        }
        let mut seen = Vec::new();
        people.retain(|p| {
            let first = !seen.contains(&p.id);
            seen.push(p.id.clone());
            first
        });
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
                    self.key(format_args!("w{}-{n}-{}", w.id, p.id)),
                    &p,
                    c,
                    subject.clone(),
                    body.clone(),
                    at,
                ));
            }
        }
    }

    /// The on-duty people of the team with `role` for a work order's place; a role
    /// nobody can be reached for is reported as unrouted.
    fn on_duty_for(&self, role: &str, w: &WorkOrder, at: u64, out: &mut Routed) -> Vec<Person> {
        let team = self.routing.team(role, &w.site, &w.zone);
        let people: Vec<Person> = team
            .map(|t| self.routing.on_duty(t, at).into_iter().cloned().collect())
            .unwrap_or_default();
        if people.iter().all(|p| p.contacts.is_empty()) {
            let unrouted = Unrouted {
                step: 0,
                role: role.to_owned(),
                team: team.map(|t| t.id.clone()),
            };
            out.unrouted.push((w.alarm, unrouted));
        }
        people
    }
}
