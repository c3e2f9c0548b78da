//! Paging: when an alarm's escalation starts and stops, its steps firing in time, the
//! pages they make, and the answer-time samples. Part of the pure router.

use serde_json::json;

use super::{subject_line, Answer, Routed, Router};
use crate::alarms::{Alarm, AlarmState, Transition};
use crate::notify::escalation::{Escalation, Page};
use crate::notify::Notification;

/// Somebody is to be told and nobody has answered yet.
pub(super) fn wants_attention(alarm: &Alarm) -> bool {
    alarm.announced()
        && matches!(
            alarm.state,
            AlarmState::ActiveUnacked | AlarmState::ReturnedUnacked
        )
}

/// Transitions after which an unanswered, announced alarm starts paging: newly
/// announced, or unacknowledged again (pressed again after an acknowledgement).
const STARTS: [&str; 5] = [
    "raised",
    "repeat",
    "unshelved",
    "unsuppressed",
    "in_service",
];

impl Router {
    pub(super) fn page_on(&mut self, seq: u64, t: &Transition, alarm: &Alarm, out: &mut Routed) {
        let id = alarm.id;
        match t.action.as_str() {
            "acked" | "resolved" => {
                out.superseded
                    .push((self.key(format_args!("a{id}-%")), t.at_ms));
                if let Some(e) = self.drop_escalation(id) {
                    out.escalations.push((id, None));
                    // The gateway resolving after a verified work order is no answer.
                    if let (Some(team), false) = (e.team, t.who == "system") {
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
                    let again = e.renotify(&self.routing);
                    let key = self.key(format_args!("a{id}-t{seq}"));
                    page(alarm, &key, again, t.at_ms, out);
                }
            }
            _ => {}
        }
        if !wants_attention(alarm) {
            // Closed, or nobody is to be told any more (shelved, suppressed, flooded,
            // out of service): paging stops.
            if alarm.state == AlarmState::Normal || !alarm.announced() {
                if self.drop_escalation(id).is_some() {
                    out.escalations.push((id, None));
                }
                if alarm.state == AlarmState::Normal {
                    out.superseded
                        .push((self.key(format_args!("a{id}-%")), t.at_ms));
                }
            }
        } else if !self.escalations.contains_key(&id) && STARTS.contains(&t.action.as_str()) {
            self.start_paging(alarm, t.at_ms, seq, out);
        }
    }

    /// Starts the alarm's escalation (if its policy pages anyone) at `at`.
    pub(super) fn start_paging(
        &mut self,
        alarm: &Alarm,
        at: u64,
        started_by: u64,
        out: &mut Routed,
    ) {
        let pages = self
            .routing
            .policy(alarm.priority, &alarm.kind)
            .is_some_and(|p| !p.steps.is_empty());
        if pages {
            let e = Escalation::start(alarm.id, at, started_by);
            out.escalations.push((alarm.id, Some(e.clone())));
            self.escalations.insert(alarm.id, e);
            self.reindex(alarm.id);
        }
    }

    /// Fires every escalation step due by `limit` at its own time. A step that reached
    /// nobody brings the next step forward to the same moment, so an empty shift never
    /// swallows a page.
    pub(super) fn advance_paging(&mut self, limit: u64, out: &mut Routed) {
        let routing = self.routing.clone();
        let epoch = self.epoch.clone();
        let due: Vec<u64> = self
            .due
            .range(..=(limit, u64::MAX))
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            let (Some(e), Some(alarm)) = (self.escalations.get_mut(&id), self.alarms.get(&id))
            else {
                continue;
            };
            let Some(policy) = routing.policy(alarm.priority, &alarm.kind) else {
                continue;
            };
            let mut carry: Option<u64> = None;
            while let Some(due) = e.due(policy) {
                let at = match carry {
                    Some(c) => c,
                    None if due <= limit => due,
                    None => break,
                };
                let key = format!("{epoch}a{id}-t{}-s{}", e.started_by, e.next_step);
                let (pages, unrouted) = e.fire(&routing, policy, alarm, at);
                // Re-notifying earlier people does not count as reaching this step.
                let reached = pages.iter().any(|p| p.role != "renotify");
                carry = (!reached).then_some(at);
                out.unrouted.extend(unrouted.into_iter().map(|u| (id, u)));
                page(alarm, &key, pages, at, out);
            }
            out.escalations.push((id, Some(e.clone())));
            self.reindex(id);
        }
    }
}

/// Pages to people, keyed `{key}-{person}`.
pub(super) fn page(alarm: &Alarm, key: &str, pages: Vec<Page>, at: u64, out: &mut Routed) {
    let subject = subject_line(alarm);
    for p in pages {
        let body = json!({
            "type": "page", "step": p.step, "role": p.role, "team": p.team,
            "alarm": super::alarm_json(alarm),
        });
        out.notifications.push(Notification::to_person(
            format!("{key}-{}", p.person.id),
            &p.person,
            &p.contact,
            subject.clone(),
            body,
            at,
        ));
    }
}
