//! The alarm lifecycle as a pure state machine: verdicts and people's actions in, alarm
//! records and recorded transitions out.
//!
//! Owns: one open alarm per (type, source) with a repeat count; ISA-18.2 states with
//! latching; acknowledgement and resolution; shelving (capped, refused for life-safety);
//! out-of-service sources; chatter flags; flood summaries per zone; root-cause groups
//! whose children are suppressed; escalation deadlines. Time is always an argument.
//! Does not own rules (it takes their verdicts) or storage (it hands out changes).

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::{ActionError, Alarm, AlarmState, Note, Transition};
use crate::rules::config::{Group, Lifecycle};
use crate::rules::{Change, Verdict};

type Key = (String, String);

/// What changed since the last [`Alarms::take_changes`].
#[derive(Debug, Default)]
pub struct Changes {
    /// Alarms created or changed (closed ones included, once).
    pub alarms: Vec<Alarm>,
    /// Transitions, in order.
    pub transitions: Vec<Transition>,
    /// Notes.
    pub notes: Vec<Note>,
    /// Shelves and out-of-service marks as they now stand.
    pub controls: Option<Controls>,
}

/// Shelves and out-of-service marks: people's settings that outlive single alarms.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Controls {
    /// (type, source) → (until ms, who).
    pub shelves: Vec<((String, String), (u64, String))>,
    /// Source or device → who.
    pub out_of_service: Vec<(String, String)>,
}

/// The open alarms and the lifecycle's memory.
#[derive(Debug)]
pub struct Alarms {
    cfg: Lifecycle,
    groups: Vec<Group>,
    alarms: HashMap<u64, Alarm>,
    open: HashMap<Key, u64>,
    next_id: u64,
    shelves: HashMap<Key, (u64, String)>,
    oos: HashMap<String, String>,
    flood: HashMap<String, VecDeque<u64>>,
    changed: BTreeSet<u64>,
    transitions: Vec<Transition>,
    notes: Vec<Note>,
    controls_changed: bool,
    next_due: u64,
    raises: u64,
}

const RULES: &str = "rules";
const SYSTEM: &str = "system";

impl Alarms {
    /// A lifecycle with these settings, open alarms, controls, and next free id.
    pub fn new(
        cfg: Lifecycle,
        groups: Vec<Group>,
        open: Vec<Alarm>,
        controls: Controls,
        next_id: u64,
    ) -> Alarms {
        let mut a = Alarms {
            cfg,
            groups,
            alarms: HashMap::new(),
            open: HashMap::new(),
            next_id: next_id.max(1),
            shelves: controls.shelves.into_iter().collect(),
            oos: controls.out_of_service.into_iter().collect(),
            flood: HashMap::new(),
            changed: BTreeSet::new(),
            transitions: Vec::new(),
            notes: Vec::new(),
            controls_changed: false,
            next_due: 0,
            raises: 0,
        };
        for al in open {
            a.next_id = a.next_id.max(al.id + 1);
            a.open.insert((al.kind.clone(), al.source.clone()), al.id);
            a.alarms.insert(al.id, al);
        }
        a
    }

    /// New settings and groups (a rules reload).
    pub fn reconfigure(&mut self, cfg: Lifecycle, groups: Vec<Group>) {
        self.cfg = cfg;
        self.groups = groups;
        self.next_due = 0;
    }

    /// Open alarms.
    pub fn open(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.values()
    }

    /// One open alarm.
    pub fn get(&self, id: u64) -> Option<&Alarm> {
        self.alarms.get(&id)
    }

    /// The open alarm of this type for this source.
    pub fn find(&self, kind: &str, source: &str) -> Option<&Alarm> {
        self.open
            .get(&(kind.to_owned(), source.to_owned()))
            .and_then(|id| self.alarms.get(id))
    }

    /// Shelves and out-of-service marks.
    pub fn controls(&self) -> Controls {
        let mut c = Controls {
            shelves: self
                .shelves
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            out_of_service: self
                .oos
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        c.shelves.sort();
        c.out_of_service.sort();
        c
    }

    /// Takes a rules verdict.
    pub fn on_verdict(&mut self, v: &Verdict) {
        self.advance(v.at_ms);
        match v.change {
            Change::Note(what) => self.notes.push(Note {
                at_ms: v.at_ms,
                what: what.to_owned(),
                rule: v.rule.name.to_string(),
                source: v.origin.source.clone(),
                detail: v.detail.clone(),
            }),
            Change::Raise => self.raise(v),
            Change::Clear => {
                let key = (v.rule.name.to_string(), v.origin.source.clone());
                if let Some(&id) = self.open.get(&key) {
                    self.clear(id, v.at_ms, RULES, String::new());
                }
            }
        }
    }

    /// Is anything waiting for [`Alarms::take_changes`]?
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty()
            || !self.transitions.is_empty()
            || !self.notes.is_empty()
            || self.controls_changed
    }

    /// Raises and repeats so far (a caller can tell whether a reading raised one).
    pub fn raises(&self) -> u64 {
        self.raises
    }

    fn raise(&mut self, v: &Verdict) {
        self.raises += 1;
        let key = (v.rule.name.to_string(), v.origin.source.clone());
        let momentary = matches!(v.rule.test, crate::rules::config::Test::Event { .. })
            || (matches!(v.rule.test, crate::rules::config::Test::Fall { .. }));
        if let Some(&id) = self.open.get(&key) {
            let a = self.alarms.get_mut(&id).expect("open index");
            let from = a.state;
            a.count += 1;
            a.condition = !momentary;
            a.value = v.value.or(a.value);
            a.detail.clone_from(&v.detail);
            a.updated_ms = v.at_ms;
            if v.reading_ms.is_some() {
                a.reading_ms = v.reading_ms;
            }
            a.state = match from {
                AlarmState::ActiveAcked if momentary => AlarmState::ActiveUnacked,
                AlarmState::ReturnedUnacked => AlarmState::ActiveUnacked,
                s => s,
            };
            if a.state == AlarmState::ActiveUnacked && from != AlarmState::ActiveUnacked {
                a.escalate_at = a.escalate_every_ms.map(|e| v.at_ms + e);
                a.escalations = 0;
                self.next_due = self.next_due.min(a.escalate_at.unwrap_or(u64::MAX));
            }
            let note = format!("count {}", a.count);
            self.record(id, v.at_ms, "repeat", from, RULES, note);
            self.chatter(id, v.at_ms);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let device = v
            .device
            .as_deref()
            .map(str::to_owned)
            .or(v.origin.device.clone());
        let oos = self.oos.contains_key(&v.origin.source)
            || device.as_ref().is_some_and(|d| self.oos.contains_key(d));
        let shelf = (!v.rule.life_safety)
            .then(|| self.shelves.get(&key).map(|s| s.0))
            .flatten()
            .filter(|until| *until > v.at_ms);
        let place = (v.origin.site.clone(), v.origin.zone.clone());
        let alarm = Alarm {
            subject: v.origin.subject.clone(),
            device,
            life_safety: v.rule.life_safety,
            latching: v.rule.latching,
            momentary,
            condition: !momentary,
            shelved_until: shelf,
            out_of_service: oos,
            escalate_every_ms: v.rule.escalate_after_ms,
            escalate_at: v.rule.escalate_after_ms.map(|e| v.at_ms + e),
            value: v.value,
            reading_ms: v.reading_ms,
            ..Alarm::opened(
                id,
                key.0.clone(),
                key.1.clone(),
                place,
                v.rule.priority,
                v.at_ms,
                v.detail.clone(),
            )
        };
        self.insert(alarm, v.at_ms, RULES);
        if let Some(until) = shelf {
            let who = self
                .shelves
                .get(&key)
                .map(|s| s.1.clone())
                .unwrap_or_default();
            let note = format!("under the shelf {who} set, until {until}");
            self.record(
                id,
                v.at_ms,
                "shelved",
                AlarmState::ActiveUnacked,
                &who,
                note,
            );
        }
        if oos {
            let who = self
                .oos
                .get(&v.origin.source)
                .or_else(|| v.device.as_deref().and_then(|d| self.oos.get(d)));
            let note = format!(
                "source out of service (set by {})",
                who.map_or("?", |w| w.as_str())
            );
            self.record(
                id,
                v.at_ms,
                "out_of_service",
                AlarmState::ActiveUnacked,
                SYSTEM,
                note,
            );
        }
        if !v.rule.life_safety {
            self.group(id, v.at_ms);
            self.flood_check(id, v.at_ms);
        }
    }

    fn insert(&mut self, alarm: Alarm, at: u64, who: &str) {
        let id = alarm.id;
        let note = alarm.detail.clone();
        self.open
            .insert((alarm.kind.clone(), alarm.source.clone()), id);
        // Only this alarm's own deadlines are new: no need to rescan every open alarm
        // on the next advance (that scan grows with the number of open alarms).
        let own = own_deadline(&alarm, self.cfg.chatter_window_s * 1000);
        self.alarms.insert(id, alarm);
        self.record_from(id, at, "raised", AlarmState::Normal, who, note);
        self.next_due = self.next_due.min(own);
    }

    /// Clears the condition of the open `kind` alarm of `source` (its rule is gone).
    pub fn clear_condition(&mut self, kind: &str, source: &str, at: u64, why: &str) {
        if let Some(&id) = self.open.get(&(kind.to_owned(), source.to_owned())) {
            self.clear(id, at, SYSTEM, why.to_owned());
        }
    }

    fn clear(&mut self, id: u64, at: u64, who: &str, note: String) {
        let Some(a) = self.alarms.get_mut(&id) else {
            return;
        };
        if !a.condition {
            return;
        }
        let from = a.state;
        a.condition = false;
        a.updated_ms = at;
        if !(a.latching || a.momentary) {
            a.state = match from {
                AlarmState::ActiveUnacked => AlarmState::ReturnedUnacked,
                AlarmState::ActiveAcked => AlarmState::Normal,
                s => s,
            };
        }
        self.record(id, at, "cleared", from, who, note);
        self.chatter(id, at);
        self.after_clear(id, at);
        self.close_if_normal(id, at);
    }

    /// A child's condition cleared: an aggregate parent whose children all cleared
    /// clears too.
    fn after_clear(&mut self, id: u64, at: u64) {
        let Some(parent) = self.alarms.get(&id).and_then(|a| a.suppressed_by) else {
            return;
        };
        let aggregate = self
            .alarms
            .get(&parent)
            .is_some_and(|p| p.source.starts_with("group:"));
        let any_active = self
            .alarms
            .values()
            .any(|c| c.suppressed_by == Some(parent) && c.condition);
        if aggregate && !any_active {
            self.clear(parent, at, SYSTEM, "every child cleared".into());
        }
    }

    fn close_if_normal(&mut self, id: u64, at: u64) {
        let Some(a) = self.alarms.get_mut(&id) else {
            return;
        };
        if a.state != AlarmState::Normal {
            return;
        }
        a.closed_ms = Some(at);
        a.escalate_at = None;
        let key = (a.kind.clone(), a.source.clone());
        self.open.remove(&key);
        // Children still in fault once their root cause is gone are real faults.
        let children: Vec<u64> = self
            .alarms
            .values()
            .filter(|c| c.suppressed_by == Some(id))
            .map(|c| c.id)
            .collect();
        for c in children {
            let child = self.alarms.get_mut(&c).expect("child");
            child.suppressed_by = None;
            let from = child.state;
            self.record(
                c,
                at,
                "unsuppressed",
                from,
                SYSTEM,
                format!("root cause {id} closed"),
            );
            self.rearm(c, at);
        }
        self.next_due = 0;
    }

    /// Acknowledges an alarm.
    pub fn ack(&mut self, id: u64, who: &str, at: u64, note: &str) -> Result<(), ActionError> {
        self.advance(at);
        let a = self.alarms.get_mut(&id).ok_or(ActionError::NotFound(id))?;
        let from = a.state;
        a.state = match from {
            AlarmState::ActiveUnacked => AlarmState::ActiveAcked,
            AlarmState::ReturnedUnacked => AlarmState::Normal,
            AlarmState::ActiveAcked => {
                return Err(ActionError::Invalid(id, "already acknowledged".into()))
            }
            AlarmState::Normal => return Err(ActionError::NotFound(id)),
        };
        a.acked_by = Some(who.to_owned());
        a.acked_ms = Some(at);
        a.escalate_at = None;
        a.updated_ms = at;
        self.record(id, at, "acked", from, who, note.to_owned());
        self.close_if_normal(id, at);
        Ok(())
    }

    /// Assigns an open alarm to a person.
    pub fn assign(&mut self, id: u64, to: &str, who: &str, at: u64) -> Result<(), ActionError> {
        self.advance(at);
        let a = self.alarms.get_mut(&id).ok_or(ActionError::NotFound(id))?;
        if to.trim().is_empty() {
            return Err(ActionError::Invalid(
                id,
                "assign it to someone (`to`)".into(),
            ));
        }
        a.assignee = Some(to.to_owned());
        a.updated_ms = at;
        let from = a.state;
        self.record(id, at, "assigned", from, who, to.to_owned());
        Ok(())
    }

    /// Adds a comment to an open alarm's history.
    pub fn comment(&mut self, id: u64, text: &str, who: &str, at: u64) -> Result<(), ActionError> {
        self.advance(at);
        let a = self.alarms.get(&id).ok_or(ActionError::NotFound(id))?;
        if text.trim().is_empty() {
            return Err(ActionError::Invalid(id, "the comment is empty".into()));
        }
        let from = a.state;
        self.record(id, at, "comment", from, who, text.to_owned());
        Ok(())
    }

    /// Closes an alarm with a disposition (what was done). Latched and event alarms
    /// close this way; a life-safety alarm only with a disposition.
    pub fn resolve(
        &mut self,
        id: u64,
        who: &str,
        at: u64,
        disposition: &str,
    ) -> Result<(), ActionError> {
        self.advance(at);
        let a = self.alarms.get_mut(&id).ok_or(ActionError::NotFound(id))?;
        if a.life_safety && disposition.trim().is_empty() {
            return Err(ActionError::DispositionRequired(id));
        }
        if a.condition {
            return Err(ActionError::StillActive(id));
        }
        let from = a.state;
        a.state = AlarmState::Normal;
        if a.acked_by.is_none() {
            a.acked_by = Some(who.to_owned());
            a.acked_ms = Some(at);
        }
        a.disposition = Some(disposition.to_owned());
        a.updated_ms = at;
        self.record(id, at, "resolved", from, who, disposition.to_owned());
        self.close_if_normal(id, at);
        Ok(())
    }

    /// Shelves an alarm (and its type for its source) for up to `max_shelve_s`; returns
    /// the time granted, ms. Refused for life-safety alarms.
    pub fn shelve(
        &mut self,
        id: u64,
        who: &str,
        at: u64,
        want_s: u64,
        reason: &str,
    ) -> Result<u64, ActionError> {
        self.advance(at);
        let a = self.alarms.get_mut(&id).ok_or(ActionError::NotFound(id))?;
        if a.life_safety {
            let e = ActionError::LifeSafety(id, a.kind.clone());
            let from = a.state;
            self.record(id, at, "shelve_refused", from, who, reason.to_owned());
            return Err(e);
        }
        let granted_s = want_s.min(self.cfg.max_shelve_s).max(1);
        let until = at + granted_s * 1000;
        a.shelved_until = Some(until);
        let from = a.state;
        let key = (a.kind.clone(), a.source.clone());
        let capped = if granted_s < want_s {
            format!(" (asked {want_s} s, capped at {granted_s} s)")
        } else {
            String::new()
        };
        self.shelves.insert(key, (until, who.to_owned()));
        self.controls_changed = true;
        self.record(
            id,
            at,
            "shelved",
            from,
            who,
            format!("{granted_s} s{capped}: {reason}"),
        );
        self.next_due = 0;
        Ok(granted_s * 1000)
    }

    /// Takes a shelf off before it expires.
    pub fn unshelve(&mut self, id: u64, who: &str, at: u64) -> Result<(), ActionError> {
        let a = self.alarms.get_mut(&id).ok_or(ActionError::NotFound(id))?;
        if a.shelved_until.take().is_none() {
            return Err(ActionError::Invalid(id, "not shelved".into()));
        }
        let from = a.state;
        self.shelves.remove(&(a.kind.clone(), a.source.clone()));
        self.controls_changed = true;
        self.record(id, at, "unshelved", from, who, String::new());
        self.rearm(id, at);
        Ok(())
    }

    /// Takes a source (or a device) out of service, or puts it back.
    pub fn set_out_of_service(&mut self, source: &str, on: bool, who: &str, at: u64) {
        if on {
            self.oos.insert(source.to_owned(), who.to_owned());
        } else {
            self.oos.remove(source);
        }
        self.controls_changed = true;
        let hit: Vec<u64> = self
            .alarms
            .values()
            .filter(|a| a.source == source || a.device.as_deref() == Some(source))
            .filter(|a| a.out_of_service != on)
            .map(|a| a.id)
            .collect();
        for id in hit {
            let a = self.alarms.get_mut(&id).expect("hit");
            a.out_of_service = on;
            let from = a.state;
            let action = if on { "out_of_service" } else { "in_service" };
            self.record(id, at, action, from, who, String::new());
            self.rearm(id, at);
        }
    }

    /// Fires what is due by `now`: escalations, shelf expiries, chatter and flood ends.
    pub fn advance(&mut self, now: u64) {
        if now < self.next_due {
            return;
        }
        let mut next = u64::MAX;
        let chatter_ms = self.cfg.chatter_window_s * 1000;
        let ids: Vec<u64> = self.alarms.keys().copied().collect();
        for id in ids {
            let a = self.alarms.get_mut(&id).expect("id");
            if let Some(until) = a.shelved_until {
                if until <= now {
                    a.shelved_until = None;
                    let from = a.state;
                    self.shelves.remove(&(a.kind.clone(), a.source.clone()));
                    self.controls_changed = true;
                    self.record(id, until, "unshelved", from, SYSTEM, "shelf expired".into());
                    self.rearm(id, until);
                } else {
                    next = next.min(until);
                }
            }
            loop {
                let a = self.alarms.get_mut(&id).expect("id");
                let Some(at) = a.escalate_at else { break };
                if !a.announced() {
                    a.escalate_at = None; // shelved, suppressed or out of service
                    break;
                }
                if at > now {
                    next = next.min(at);
                    break;
                }
                a.escalations += 1;
                a.escalate_at = a
                    .escalate_every_ms
                    .filter(|_| a.escalations < self.cfg.max_escalations)
                    .map(|e| at + e);
                let from = a.state;
                let note = format!("unacknowledged, step {}", a.escalations);
                self.record(id, at, "escalated", from, SYSTEM, note);
            }
            let a = self.alarms.get_mut(&id).expect("id");
            if a.chattering {
                let last = a.recent.last().copied().unwrap_or(0);
                if last + chatter_ms <= now {
                    a.chattering = false;
                    let from = a.state;
                    self.record(
                        id,
                        last + chatter_ms,
                        "chatter_ended",
                        from,
                        SYSTEM,
                        String::new(),
                    );
                } else {
                    next = next.min(last + chatter_ms);
                }
            }
        }
        // Shelves outlive their alarms (a chattering contact closes and reopens); expired
        // ones go.
        let shelves = self.shelves.len();
        self.shelves.retain(|_, (until, _)| *until > now);
        self.controls_changed |= self.shelves.len() != shelves;
        let window = self.cfg.flood_window_s * 1000;
        let limit = self.cfg.flood_alarms as usize;
        let zones: Vec<String> = self.flood.keys().cloned().collect();
        for z in zones {
            let q = self.flood.get_mut(&z).expect("zone");
            while q.front().is_some_and(|t| t + window <= now) {
                q.pop_front();
            }
            let (len, front) = (q.len(), q.front().copied());
            if len <= limit {
                if let Some(&id) = self.open.get(&("flood".to_owned(), format!("zone:{z}"))) {
                    self.clear(
                        id,
                        now,
                        SYSTEM,
                        "alarm rate back under the flood limit".into(),
                    );
                }
            }
            match front {
                Some(t) => next = next.min(t + window),
                None => {
                    self.flood.remove(&z);
                }
            }
        }
        self.next_due = next;
    }

    /// The next time something is due, if anything is.
    pub fn next_deadline(&self) -> Option<u64> {
        (self.next_due != u64::MAX && self.next_due != 0).then_some(self.next_due)
    }

    /// Everything that changed since the last call; closed alarms leave memory.
    pub fn take_changes(&mut self) -> Changes {
        let mut alarms = Vec::with_capacity(self.changed.len());
        for id in std::mem::take(&mut self.changed) {
            let Some(a) = self.alarms.get(&id) else {
                continue;
            };
            alarms.push(a.clone());
            if a.state == AlarmState::Normal {
                self.alarms.remove(&id);
            }
        }
        let controls = std::mem::take(&mut self.controls_changed).then(|| self.controls());
        Changes {
            alarms,
            transitions: std::mem::take(&mut self.transitions),
            notes: std::mem::take(&mut self.notes),
            controls,
        }
    }

    fn record(
        &mut self,
        id: u64,
        at: u64,
        action: &str,
        from: AlarmState,
        who: &str,
        note: String,
    ) {
        self.record_from(id, at, action, from, who, note);
    }

    fn record_from(
        &mut self,
        id: u64,
        at: u64,
        action: &str,
        from: AlarmState,
        who: &str,
        note: String,
    ) {
        let to = self.alarms.get(&id).map_or(from, |a| a.state);
        self.changed.insert(id);
        self.transitions.push(Transition {
            alarm: id,
            at_ms: at,
            action: action.to_owned(),
            from,
            to,
            who: who.to_owned(),
            note,
        });
    }

    /// An alarm announced again (unshelved, back in service, unsuppressed) while still
    /// unacknowledged escalates again from now.
    fn rearm(&mut self, id: u64, at: u64) {
        if let Some(a) = self.alarms.get_mut(&id) {
            if a.announced() && a.state == AlarmState::ActiveUnacked && a.escalate_at.is_none() {
                a.escalate_at = a.escalate_every_ms.map(|e| at + e);
                self.next_due = 0;
            }
        }
    }

    fn chatter(&mut self, id: u64, at: u64) {
        let window = self.cfg.chatter_window_s * 1000;
        let limit = self.cfg.chatter_transitions as usize;
        let Some(a) = self.alarms.get_mut(&id) else {
            return;
        };
        a.recent.retain(|t| t + window > at);
        a.recent.push(at);
        if a.recent.len() >= limit && !a.chattering {
            a.chattering = true;
            let from = a.state;
            let note = format!("{} transitions in {} s", a.recent.len(), window / 1000);
            self.record(id, at, "chattering", from, SYSTEM, note);
            self.next_due = 0;
        }
    }

    /// Root-cause grouping for a new alarm: attach it to its parent, make it a parent,
    /// or create an aggregate parent once enough siblings are open.
    fn group(&mut self, id: u64, at: u64) {
        let a = self.alarms[&id].clone();
        for g in self.groups.clone() {
            let is_member = |c: &Alarm| {
                g.children.iter().any(|k| **k == *c.kind)
                    && g.members
                        .matches_place(&c.site, &c.zone, c.device.as_deref())
                    && !c.life_safety
            };
            if let Some((cause, devices)) = &g.cause {
                let is_cause = |p: &Alarm| {
                    *p.kind == **cause && p.device.as_ref().is_some_and(|d| devices.contains(d))
                };
                if is_cause(&a) {
                    let kids: Vec<u64> = self
                        .alarms
                        .values()
                        .filter(|c| is_member(c) && c.suppressed_by.is_none() && c.id != id)
                        .map(|c| c.id)
                        .collect();
                    for k in kids {
                        self.suppress(k, id, at);
                    }
                } else if is_member(&a) {
                    let parent = self
                        .alarms
                        .values()
                        .find(|p| is_cause(p) && p.state != AlarmState::Normal)
                        .map(|p| p.id);
                    if let Some(p) = parent {
                        self.suppress(id, p, at);
                        return;
                    }
                }
                continue;
            }
            if !is_member(&a) {
                continue;
            }
            let source = format!("group:{}", g.name);
            if let Some(&p) = self.open.get(&(g.name.to_string(), source.clone())) {
                if let Some(parent) = self.alarms.get_mut(&p) {
                    parent.condition = true;
                }
                self.suppress(id, p, at);
                return;
            }
            let kids: Vec<u64> = self
                .alarms
                .values()
                .filter(|c| {
                    is_member(c)
                        && c.suppressed_by.is_none()
                        && c.condition
                        && c.raised_ms + g.window_ms >= at
                })
                .map(|c| c.id)
                .collect();
            if kids.len() < g.min_children as usize {
                continue;
            }
            let p = self.next_id;
            self.next_id += 1;
            let detail = format!(
                "{} {} alarms share one cause",
                kids.len(),
                g.children.join("/")
            );
            let place = (a.site.clone(), a.zone.clone());
            let parent = Alarm {
                reading_ms: a.reading_ms,
                ..Alarm::opened(p, g.name.to_string(), source, place, g.priority, at, detail)
            };
            self.insert(parent, at, SYSTEM);
            for k in kids {
                self.suppress(k, p, at);
            }
            return;
        }
    }

    fn suppress(&mut self, child: u64, parent: u64, at: u64) {
        let Some(c) = self.alarms.get_mut(&child) else {
            return;
        };
        c.suppressed_by = Some(parent);
        let from = c.state;
        // A child folded into a flood summary before its root cause was known moves to
        // the root cause.
        c.flooded_into = None;
        self.record(
            child,
            at,
            "suppressed",
            from,
            SYSTEM,
            format!("root cause: alarm {parent}"),
        );
        if let Some(p) = self.alarms.get_mut(&parent) {
            p.children += 1;
            p.updated_ms = at;
            self.changed.insert(parent);
        }
    }

    /// Flood handling: past `flood_alarms` new announced alarms in a zone within the
    /// window, further ones (never life-safety) fold into one summary alarm.
    fn flood_check(&mut self, id: u64, at: u64) {
        let a = &self.alarms[&id];
        if !a.announced() {
            return;
        }
        let zone = a.zone.clone();
        let window = self.cfg.flood_window_s * 1000;
        let q = self.flood.entry(zone.clone()).or_default();
        while q.front().is_some_and(|t| t + window <= at) {
            q.pop_front();
        }
        q.push_back(at);
        self.next_due = self.next_due.min(at + window);
        if q.len() <= self.cfg.flood_alarms as usize {
            return;
        }
        let key = ("flood".to_owned(), format!("zone:{zone}"));
        let summary = match self.open.get(&key) {
            Some(&s) => {
                let sa = self.alarms.get_mut(&s).expect("summary");
                sa.count += 1;
                sa.condition = true;
                sa.updated_ms = at;
                let from = sa.state;
                if from == AlarmState::ReturnedUnacked {
                    // Flooding again before anyone acknowledged the last flood.
                    sa.state = AlarmState::ActiveUnacked;
                    self.record(s, at, "repeat", from, SYSTEM, "flooding again".into());
                }
                self.changed.insert(s);
                s
            }
            None => {
                let s = self.next_id;
                self.next_id += 1;
                let a = &self.alarms[&id];
                let place = (a.site.clone(), a.zone.clone());
                let detail = format!(
                    "more than {} alarms in {} min in zone {zone}",
                    self.cfg.flood_alarms,
                    window / 60_000
                );
                let summary = Alarm {
                    reading_ms: a.reading_ms,
                    ..Alarm::opened(s, key.0, key.1, place, 2, at, detail)
                };
                self.insert(summary, at, SYSTEM);
                s
            }
        };
        let a = self.alarms.get_mut(&id).expect("id");
        a.flooded_into = Some(summary);
        let from = a.state;
        self.record(
            id,
            at,
            "flooded",
            from,
            SYSTEM,
            format!("summarised in alarm {summary}"),
        );
    }
}

/// The earliest time something is due for one alarm (its escalation, shelf end, or
/// the end of its chatter), `u64::MAX` when nothing is.
fn own_deadline(a: &Alarm, chatter_ms: u64) -> u64 {
    let chatter = a
        .chattering
        .then(|| a.recent.last().map(|t| t + chatter_ms))
        .flatten();
    [a.escalate_at, a.shelved_until, chatter]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX)
}
