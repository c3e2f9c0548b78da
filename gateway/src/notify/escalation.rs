//! One alarm's escalation: which step of its policy is next, when it is due, and who
//! has been paged so far. A step resolves its roles to people when it fires (so a shift
//! change between steps pages the new shift).
//!
//! Pure: time is an argument. Does not decide when an escalation starts or stops (the
//! router), nor send pages.

use serde::{Deserialize, Serialize};

use super::routing::{Contact, Person, Policy, Routing};
use crate::alarms::Alarm;

/// The stored state of one alarm's escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// Alarm id.
    pub alarm: u64,
    /// When paging started (the alarm was announced), ms.
    pub started_ms: u64,
    /// Next step to fire.
    pub next_step: usize,
    /// The alarm transition that started it (part of the pages' idempotency keys: an
    /// alarm paged again after an unshelve starts a new series).
    pub started_by: u64,
    /// People paged so far (for re-notification).
    pub paged: Vec<String>,
    /// Team of the first step's first role (answer-time KPIs are per team).
    pub team: Option<String>,
}

/// One page to one person through one contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Step number (0-based).
    pub step: usize,
    /// Role that led to this person (or `renotify`).
    pub role: String,
    /// Team.
    pub team: String,
    /// The person.
    pub person: Person,
    /// Through which contact.
    pub contact: Contact,
}

/// A role a step could not page: no team, or nobody on duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrouted {
    /// Step number.
    pub step: usize,
    /// Role.
    pub role: String,
    /// Team, if one covers the zone.
    pub team: Option<String>,
}

impl Escalation {
    /// A new escalation at its first step.
    pub fn start(alarm: u64, now: u64, started_by: u64) -> Escalation {
        Escalation {
            alarm,
            started_ms: now,
            next_step: 0,
            started_by,
            paged: Vec::new(),
            team: None,
        }
    }

    /// When the next step is due, if there is one.
    pub fn due(&self, policy: &Policy) -> Option<u64> {
        policy
            .steps
            .get(self.next_step)
            .map(|s| self.started_ms + s.after_ms)
    }

    /// Fires the next step at `now`: the on-duty people of each of its roles (for the
    /// alarm's site and zone), then — with `renotify` — everyone paged before, each
    /// once, through each of their contacts.
    pub fn fire(
        &mut self,
        routing: &Routing,
        policy: &Policy,
        alarm: &Alarm,
        now: u64,
    ) -> (Vec<Page>, Vec<Unrouted>) {
        let step = self.next_step;
        let Some(s) = policy.steps.get(step) else {
            return (Vec::new(), Vec::new());
        };
        self.next_step += 1;
        let mut pages = Vec::new();
        let mut unrouted = Vec::new();
        let mut now_paged: Vec<String> = Vec::new();
        for role in &s.roles {
            let Some(team) = routing.team(role, &alarm.site, &alarm.zone) else {
                unrouted.push(Unrouted {
                    step,
                    role: role.clone(),
                    team: None,
                });
                continue;
            };
            if self.team.is_none() {
                self.team = Some(team.id.clone());
            }
            let people = routing.on_duty(team, now);
            if people.iter().all(|p| p.contacts.is_empty()) {
                unrouted.push(Unrouted {
                    step,
                    role: role.clone(),
                    team: Some(team.id.clone()),
                });
            }
            for p in people {
                if now_paged.contains(&p.id) {
                    continue;
                }
                now_paged.push(p.id.clone());
                pages.extend(p.contacts.iter().map(|c| Page {
                    step,
                    role: role.clone(),
                    team: team.id.clone(),
                    person: p.clone(),
                    contact: c.clone(),
                }));
            }
        }
        if policy.renotify {
            pages.extend(self.renotify_except(routing, step, &now_paged));
        }
        for id in now_paged {
            if !self.paged.contains(&id) {
                self.paged.push(id);
            }
        }
        (pages, unrouted)
    }

    /// Pages everyone paged so far again (the rule's re-announcement).
    pub fn renotify(&self, routing: &Routing) -> Vec<Page> {
        self.renotify_except(routing, self.next_step.saturating_sub(1), &[])
    }

    fn renotify_except(&self, routing: &Routing, step: usize, except: &[String]) -> Vec<Page> {
        let team = self.team.clone().unwrap_or_default();
        self.paged
            .iter()
            .filter(|id| !except.contains(id))
            .filter_map(|id| routing.people.get(id))
            .flat_map(|p| {
                p.contacts.iter().map(|c| Page {
                    step,
                    role: "renotify".into(),
                    team: team.clone(),
                    person: p.clone(),
                    contact: c.clone(),
                })
            })
            .collect()
    }
}
