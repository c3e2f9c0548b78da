//! Work orders for crews: dispatched → accepted → on site → fixed → verified, with an
//! SLA grade (red 2 h / yellow 24 h / blue 72 h by default) and overdue escalation. A
//! work order marked fixed while its alarm's condition still holds is verified only
//! when the condition clears; if it has not cleared within the verification window, or
//! the fault is raised again, the order reopens by itself.
//!
//! Pure: time is an argument, and every change is recorded with who and when. Does not
//! decide which alarms get a work order (the router) or tell anyone (the stage).

use serde::{Deserialize, Serialize};

use super::routing::Grade;

/// Where a work order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkState {
    /// Sent to the crew, nobody has taken it.
    Dispatched,
    /// A crew member took it.
    Accepted,
    /// The crew is at the asset.
    OnSite,
    /// The crew says it is fixed; waiting for the sensor to agree.
    Fixed,
    /// The sensor agrees: closed.
    Verified,
    /// Its alarm was closed by someone before it was fixed: closed.
    Cancelled,
}

impl WorkState {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkState::Dispatched => "dispatched",
            WorkState::Accepted => "accepted",
            WorkState::OnSite => "on_site",
            WorkState::Fixed => "fixed",
            WorkState::Verified => "verified",
            WorkState::Cancelled => "cancelled",
        }
    }

    /// Closed for good.
    pub fn closed(self) -> bool {
        matches!(self, WorkState::Verified | WorkState::Cancelled)
    }
}

/// One recorded step of a work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkStep {
    /// When, ms.
    pub at_ms: u64,
    /// `dispatched`, `accepted`, `on_site`, `fixed`, `verified`, `reopened`, `overdue`,
    /// `cancelled`.
    pub action: String,
    /// State after.
    pub state: WorkState,
    /// The person, or `system`.
    pub who: String,
    /// Details.
    pub note: String,
}

/// A work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrder {
    /// Id.
    pub id: u64,
    /// The alarm it came from.
    pub alarm: u64,
    /// Alarm kind.
    pub kind: String,
    /// Alarm source.
    pub source: String,
    /// Site.
    pub site: String,
    /// Zone.
    pub zone: String,
    /// Asset or resident.
    pub subject: Option<String>,
    /// Device.
    pub device: Option<String>,
    /// Crew team.
    pub team: Option<String>,
    /// Crew role.
    pub role: String,
    /// Role also told when it goes overdue.
    #[serde(default)]
    pub overdue_role: Option<String>,
    /// SLA grade.
    pub grade: Grade,
    /// State.
    pub state: WorkState,
    /// Who accepted it.
    pub assignee: Option<String>,
    /// Created, ms.
    pub created_ms: u64,
    /// SLA deadline, ms.
    pub due_ms: u64,
    /// Past its deadline while open.
    pub overdue: bool,
    /// Times reopened.
    pub reopened: u32,
    /// Marked fixed, waiting for verification until then, ms.
    pub verify_by_ms: Option<u64>,
    /// Closed, ms.
    pub closed_ms: Option<u64>,
    /// Every change.
    pub history: Vec<WorkStep>,
    /// History entries already published as events.
    #[serde(default)]
    pub emitted: usize,
    /// Verified, and its alarm still to be resolved by the gateway (kept until done, so
    /// a crash in between does not leave the alarm open).
    #[serde(default)]
    pub resolve_pending: bool,
}

/// Why an action on a work order was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    /// No such open work order.
    #[error("no open work order {0}")]
    NotFound(u64),
    /// Not allowed in this state.
    #[error("work order {0} is {1}: {2}")]
    Invalid(u64, &'static str, &'static str),
}

/// What a change means for the outside world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing more.
    None,
    /// The crew must be told again (reopened or overdue).
    Renotify,
    /// Verified: its alarm can be resolved.
    Verified,
}

impl WorkOrder {
    /// A new work order, dispatched at `now` with its SLA deadline.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        id: u64,
        alarm: &crate::alarms::Alarm,
        role: &str,
        team: Option<String>,
        grade: Grade,
        sla_ms: u64,
        now: u64,
    ) -> WorkOrder {
        WorkOrder {
            id,
            alarm: alarm.id,
            kind: alarm.kind.clone(),
            source: alarm.source.clone(),
            site: alarm.site.clone(),
            zone: alarm.zone.clone(),
            subject: alarm.subject.clone(),
            device: alarm.device.clone(),
            team,
            role: role.to_owned(),
            overdue_role: None,
            grade,
            state: WorkState::Dispatched,
            assignee: None,
            created_ms: now,
            due_ms: now + sla_ms,
            overdue: false,
            reopened: 0,
            verify_by_ms: None,
            closed_ms: None,
            history: vec![WorkStep {
                at_ms: now,
                action: "dispatched".into(),
                state: WorkState::Dispatched,
                who: "system".into(),
                note: format!("{} grade, due in {} min", grade.as_str(), sla_ms / 60_000),
            }],
            emitted: 0,
            resolve_pending: false,
        }
    }

    fn step(&mut self, at: u64, action: &str, to: WorkState, who: &str, note: String) {
        self.state = to;
        if to.closed() {
            self.closed_ms = Some(at);
            self.verify_by_ms = None;
        }
        self.history.push(WorkStep {
            at_ms: at,
            action: action.into(),
            state: to,
            who: who.into(),
            note,
        });
    }

    /// A crew member takes it.
    pub fn accept(&mut self, who: &str, at: u64) -> Result<(), WorkError> {
        match self.state {
            WorkState::Dispatched => {
                self.assignee = Some(who.to_owned());
                self.step(at, "accepted", WorkState::Accepted, who, String::new());
                Ok(())
            }
            s => Err(WorkError::Invalid(
                self.id,
                s.as_str(),
                "only a dispatched work order can be accepted",
            )),
        }
    }

    /// The crew is at the asset.
    pub fn arrive(&mut self, who: &str, at: u64) -> Result<(), WorkError> {
        match self.state {
            WorkState::Accepted | WorkState::Dispatched => {
                if self.assignee.is_none() {
                    self.assignee = Some(who.to_owned());
                }
                self.step(at, "on_site", WorkState::OnSite, who, String::new());
                Ok(())
            }
            s => Err(WorkError::Invalid(
                self.id,
                s.as_str(),
                "accept it first, or it is already fixed or closed",
            )),
        }
    }

    /// The crew says it is fixed. `fault` is whether the alarm's condition holds now:
    /// if not, the order is verified at once; otherwise it waits up to `verify_ms`.
    pub fn fixed(
        &mut self,
        who: &str,
        at: u64,
        fault: bool,
        verify_ms: u64,
        note: &str,
    ) -> Result<Effect, WorkError> {
        match self.state {
            WorkState::Accepted | WorkState::OnSite | WorkState::Dispatched => {
                self.step(at, "fixed", WorkState::Fixed, who, note.to_owned());
                if fault {
                    self.verify_by_ms = Some(at + verify_ms);
                    Ok(Effect::None)
                } else {
                    self.step(
                        at,
                        "verified",
                        WorkState::Verified,
                        "system",
                        "the sensor shows no fault".into(),
                    );
                    Ok(Effect::Verified)
                }
            }
            s => Err(WorkError::Invalid(
                self.id,
                s.as_str(),
                "only an open work order can be marked fixed",
            )),
        }
    }

    /// Its alarm's condition cleared.
    pub fn fault_cleared(&mut self, at: u64) -> Effect {
        if self.state == WorkState::Fixed {
            self.step(
                at,
                "verified",
                WorkState::Verified,
                "system",
                "the fault cleared after the fix".into(),
            );
            return Effect::Verified;
        }
        Effect::None
    }

    /// Its alarm's fault was raised again (a repeat).
    pub fn fault_again(&mut self, at: u64) -> Effect {
        if self.state == WorkState::Fixed {
            self.reopen(at, "the fault was raised again after the fix");
            return Effect::Renotify;
        }
        Effect::None
    }

    /// Reopens it (dispatched again) for a reason.
    pub fn reopen(&mut self, at: u64, why: &str) {
        self.reopened += 1;
        self.verify_by_ms = None;
        self.closed_ms = None;
        self.step(at, "reopened", WorkState::Dispatched, "system", why.into());
    }

    /// Its alarm closed before the order was fixed (resolved or acknowledged by
    /// someone, or gone): nothing left to do.
    pub fn cancel(&mut self, at: u64, who: &str, why: &str) {
        if !self.state.closed() {
            self.step(at, "cancelled", WorkState::Cancelled, who, why.to_owned());
        }
    }

    /// Still to be stored and acted on: open, or verified with its alarm to resolve.
    pub fn live(&self) -> bool {
        !self.state.closed() || self.resolve_pending
    }

    /// Next deadline: verification or SLA.
    pub fn due(&self) -> Option<u64> {
        if self.state.closed() {
            return None;
        }
        let sla = (!self.overdue).then_some(self.due_ms);
        match (self.verify_by_ms, sla) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires what is due at `now`; `fault` is whether the alarm's condition still holds.
    pub fn advance(&mut self, now: u64, fault: bool) -> Effect {
        let mut effect = Effect::None;
        if let Some(v) = self.verify_by_ms.filter(|v| now >= *v) {
            if fault {
                self.reopen(v, "still faulty when the verification window ended");
                effect = Effect::Renotify;
            } else {
                self.step(
                    v,
                    "verified",
                    WorkState::Verified,
                    "system",
                    "the sensor shows no fault".into(),
                );
                return Effect::Verified;
            }
        }
        if !self.state.closed() && !self.overdue && now >= self.due_ms {
            self.overdue = true;
            let state = self.state;
            let note = format!("past its {} SLA", self.grade.as_str());
            self.step(self.due_ms, "overdue", state, "system", note);
            effect = Effect::Renotify;
        }
        effect
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::Alarm;

    fn order() -> WorkOrder {
        let a = Alarm::opened(
            7,
            "lamp_failure".into(),
            "device:L-1".into(),
            ("s".into(), "z".into()),
            3,
            0,
            String::new(),
        );
        WorkOrder::dispatch(
            1,
            &a,
            "lighting_crew",
            Some("lights".into()),
            Grade::Red,
            7_200_000,
            1_000,
        )
    }

    #[test]
    fn fixed_while_faulty_reopens_then_verifies_when_really_fixed() {
        let mut w = order();
        w.accept("wei", 2_000).expect("accept");
        w.arrive("wei", 3_000).expect("arrive");
        assert_eq!(
            w.fixed("wei", 4_000, true, 60_000, "replaced")
                .expect("fixed"),
            Effect::None
        );
        assert_eq!(w.due(), Some(64_000));
        assert_eq!(w.advance(64_000, true), Effect::Renotify);
        assert_eq!((w.state, w.reopened), (WorkState::Dispatched, 1));
        w.accept("wei", 70_000).expect("accept again");
        w.fixed("wei", 80_000, true, 60_000, "").expect("fixed");
        assert_eq!(w.fault_cleared(85_000), Effect::Verified);
        assert_eq!((w.state, w.closed_ms), (WorkState::Verified, Some(85_000)));
        let actions: Vec<&str> = w.history.iter().map(|s| s.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "dispatched",
                "accepted",
                "on_site",
                "fixed",
                "reopened",
                "accepted",
                "fixed",
                "verified"
            ]
        );
        assert!(
            w.accept("x", 90_000).is_err(),
            "closed orders take no actions"
        );
    }

    #[test]
    fn overdue_once_and_a_repeat_after_fixing_reopens() {
        let mut w = order();
        assert_eq!(w.advance(7_201_000, true), Effect::Renotify);
        assert!(w.overdue);
        assert_eq!(
            w.advance(7_300_000, true),
            Effect::None,
            "overdue fires once"
        );
        w.fixed("wei", 7_400_000, true, 600_000, "").expect("fixed");
        assert_eq!(w.fault_again(7_401_000), Effect::Renotify);
        assert_eq!(w.state, WorkState::Dispatched);
        assert_eq!(
            w.fixed("wei", 7_500_000, false, 600_000, "")
                .expect("fixed"),
            Effect::Verified
        );
    }
}
