//! Alarms: the [`Alarm`] record and its ISA-18.2 / IEC 62682 lifecycle — one open alarm
//! per source and type, acknowledgement, latching, shelving, out-of-service, chatter,
//! flood summaries and root-cause groups — plus its durable store and the journal
//! follower that feeds it.
//!
//! The lifecycle ([`lifecycle::Alarms`]) is pure (time is an argument); `db` keeps
//! alarms, transitions and rule state in SQLite; `follower` wires rules → lifecycle → db.
//! Does not own rule evaluation (`rules`) or who gets told (delivery).

pub mod core;
pub mod db;
pub mod follower;
pub mod lifecycle;

use serde::{Deserialize, Serialize};

/// Where an alarm is in its life (ISA-18.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// Condition present (or latched), nobody has acknowledged.
    ActiveUnacked,
    /// Acknowledged, condition present (or latched until resolved).
    ActiveAcked,
    /// Condition gone, still waiting for an acknowledgement.
    ReturnedUnacked,
    /// Closed.
    Normal,
}

impl AlarmState {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::ActiveUnacked => "active_unacked",
            AlarmState::ActiveAcked => "active_acked",
            AlarmState::ReturnedUnacked => "returned_unacked",
            AlarmState::Normal => "normal",
        }
    }
}

/// One alarm: a rule's (or group's) condition for one source, from raise to close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Alarm id.
    pub id: u64,
    /// Alarm type: the rule's name, a group's name, or `flood`.
    pub kind: String,
    /// `device:…`, `resident:…`, `asset:…`, `zone:…` or `group:…`.
    pub source: String,
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Resident or asset id.
    pub subject: Option<String>,
    /// Device id.
    pub device: Option<String>,
    /// 1 (life-safety) … 4 (maintenance).
    pub priority: u8,
    /// Never shelved, suppressed or flood-grouped.
    pub life_safety: bool,
    /// Stays active after the condition clears until resolved.
    pub latching: bool,
    /// Raised by events, which have no clear condition (handled as latching).
    pub momentary: bool,
    /// Lifecycle state.
    pub state: AlarmState,
    /// The alarm condition holds now.
    pub condition: bool,
    /// Raises counted into this alarm (repeats increment it).
    pub count: u32,
    /// First raise, ms.
    pub raised_ms: u64,
    /// Last change, ms.
    pub updated_ms: u64,
    /// When it closed, ms.
    pub closed_ms: Option<u64>,
    /// Who acknowledged.
    pub acked_by: Option<String>,
    /// Who it is assigned to.
    #[serde(default)]
    pub assignee: Option<String>,
    /// When, ms.
    pub acked_ms: Option<u64>,
    /// How it was resolved ("resident fine", "ambulance called").
    pub disposition: Option<String>,
    /// Shelved until then, ms.
    pub shelved_until: Option<u64>,
    /// Its source is out of service.
    pub out_of_service: bool,
    /// Parent alarm that explains it (a shared root cause).
    pub suppressed_by: Option<u64>,
    /// Children attached (for a parent).
    pub children: u32,
    /// Flood summary it was grouped into.
    pub flooded_into: Option<u64>,
    /// Flagged as chattering.
    pub chattering: bool,
    /// Recent raise/clear times, ms (chatter detection).
    pub recent: Vec<u64>,
    /// Re-announce every this long while unacknowledged, ms.
    pub escalate_every_ms: Option<u64>,
    /// Next escalation, ms.
    pub escalate_at: Option<u64>,
    /// Escalations so far.
    pub escalations: u32,
    /// The value that crossed.
    pub value: Option<f64>,
    /// A short explanation.
    pub detail: String,
    /// Receive time of the reading that raised it, ms (latency measurement).
    pub reading_ms: Option<u64>,
}

impl Alarm {
    /// A newly raised alarm with the lifecycle's starting values: active,
    /// unacknowledged, condition present, count 1, nothing shelved, suppressed or
    /// escalating, no subject or device. Callers set what differs.
    pub fn opened(
        id: u64,
        kind: String,
        source: String,
        (site, zone): (String, String),
        priority: u8,
        at: u64,
        detail: String,
    ) -> Alarm {
        Alarm {
            id,
            kind,
            source,
            site,
            zone,
            subject: None,
            device: None,
            priority,
            life_safety: false,
            latching: false,
            momentary: false,
            state: AlarmState::ActiveUnacked,
            condition: true,
            count: 1,
            raised_ms: at,
            updated_ms: at,
            closed_ms: None,
            acked_by: None,
            assignee: None,
            acked_ms: None,
            disposition: None,
            shelved_until: None,
            out_of_service: false,
            suppressed_by: None,
            children: 0,
            flooded_into: None,
            chattering: false,
            recent: vec![at],
            escalate_every_ms: None,
            escalate_at: None,
            escalations: 0,
            value: None,
            detail,
            reading_ms: None,
        }
    }

    /// Is anybody to be told about it? (Not suppressed, shelved, out of service or
    /// folded into a flood summary; a life-safety alarm always is, even from a source
    /// out of service.)
    pub fn announced(&self) -> bool {
        self.suppressed_by.is_none()
            && self.shelved_until.is_none()
            && (self.life_safety || !self.out_of_service)
            && self.flooded_into.is_none()
    }

    /// What a screen shows for its device: `unknown` while a root cause explains it.
    pub fn shown_as(&self) -> &'static str {
        if self.suppressed_by.is_some() {
            "unknown"
        } else if self.state == AlarmState::Normal {
            "normal"
        } else {
            "alarm"
        }
    }
}

/// One recorded step of an alarm's life: what happened, who did it, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Alarm id.
    pub alarm: u64,
    /// When, ms.
    pub at_ms: u64,
    /// `raised`, `repeat`, `cleared`, `acked`, `resolved`, `shelved`, `unshelved`,
    /// `suppressed`, `unsuppressed`, `escalated`, `chattering`, `chatter_ended`,
    /// `flooded`, `out_of_service`, `in_service`, `assigned`, `comment`.
    pub action: String,
    /// State before.
    pub from: AlarmState,
    /// State after.
    pub to: AlarmState,
    /// `rules`, `system`, or the person.
    pub who: String,
    /// Details.
    pub note: String,
}

/// Something worth keeping that is not an alarm (a suspected or dismissed fall).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// When, ms.
    pub at_ms: u64,
    /// `suspected_fall`, `fall_dismissed`.
    pub what: String,
    /// Rule.
    pub rule: String,
    /// Source.
    pub source: String,
    /// Details.
    pub detail: String,
}

/// Why a person's action on an alarm was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No open alarm with this id.
    #[error("no open alarm {0}")]
    NotFound(u64),
    /// Life-safety alarms are never shelved.
    #[error("alarm {0} is life-safety ({1}): it cannot be shelved")]
    LifeSafety(u64, String),
    /// Closing a life-safety alarm needs a disposition.
    #[error("alarm {0} is life-safety: resolve it with a disposition (what was done)")]
    DispositionRequired(u64),
    /// The condition still holds.
    #[error(
        "alarm {0} is still active: it can be acknowledged, and resolved once its condition clears"
    )]
    StillActive(u64),
    /// Not allowed in this state.
    #[error("alarm {0}: {1}")]
    Invalid(u64, String),
}
