//! Rules: turn readings (and the passing of time) into [`Verdict`]s — "this alarm
//! condition began / ended for this source", or a note worth keeping.
//!
//! Owns rule evaluation: the compiled [`RuleSet`], each rule's state per target, the
//! context gates read (away mode, bed occupancy, relay, dimming) and the timers (hold
//! times, windows, silences). Pure: no I/O, time is an argument; the state it changed
//! is handed out as [`Dirty`] records for whoever persists it. Does not own what an
//! alarm does next (see `alarms`).

pub mod config;
pub mod localtime;
pub mod signal;
pub mod state;

use std::collections::BTreeSet;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use linli_protocol::Report;
use serde::{Deserialize, Serialize};

pub use config::{Defaults, Per, Rule, RuleSet};
use signal::Signals;
use state::{Context, Outcome, Sample, State};

use crate::registry::DeviceProfile;

/// Where a verdict comes from: the alarm's source and the hierarchy it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// `device:ID`, `resident:ID`, `asset:ID` or `zone:ID`: with the rule, the alarm's
    /// identity.
    pub source: String,
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Resident or asset id.
    pub subject: Option<String>,
    /// Device id (for subject and zone targets: the device that last reported).
    pub device: Option<String>,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The alarm condition began.
    Raise,
    /// It ended.
    Clear,
    /// Not an alarm, but kept (`suspected_fall`, `fall_dismissed`).
    Note(&'static str),
}

/// A rule's judgement at one moment.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The rule (its name is the alarm type).
    pub rule: Arc<Rule>,
    /// Where.
    pub origin: Arc<Origin>,
    /// What.
    pub change: Change,
    /// When, ms (event time: a reading's receive time or a timer's deadline).
    pub at_ms: u64,
    /// The value that crossed, when there is one.
    pub value: Option<f64>,
    /// A short explanation.
    pub detail: String,
    /// Receive time of the reading that caused it (None for timers).
    pub reading_ms: Option<u64>,
    /// The device whose reading or silence it is.
    pub device: Option<Arc<str>>,
}

/// A piece of engine state that changed: `(rule name or "" for context, target key)`,
/// and its new encoding (None = deleted).
pub type Dirty = ((String, String), Option<Vec<u8>>);

#[derive(Debug, Clone, Deserialize)]
struct Saved {
    fingerprint: u64,
    origin: Origin,
    state: State,
}

/// [`Saved`] as written, borrowing (no copies on the hot path).
#[derive(Serialize)]
struct SavedRef<'a> {
    fingerprint: u64,
    origin: &'a Origin,
    state: &'a State,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct SubjectCtx {
    away: bool,
    bed: Option<bool>,
}

#[derive(Debug)]
struct Plan {
    id: Arc<str>,
    profile: DeviceProfile,
    /// (rule index, target index, report variants it uses) for every rule that applies.
    rules: Arc<[(u16, u32, u32)]>,
    heartbeat_ms: u64,
    relay: Option<bool>,
    dimming: Option<f64>,
    /// Index of its resident/asset's context.
    subject: Option<u32>,
}

type Key = (u16, u32);

/// The rule engine.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    shared: Vec<Arc<Rule>>,
    /// Target keys and what they name.
    targets: Vec<Arc<Origin>>,
    target_ix: HashMap<String, u32>,
    plans: HashMap<Arc<str>, Plan>,
    states: HashMap<Key, State>,
    timers: BTreeSet<(u64, u16, u32)>,
    /// Residents' context (away, bed), by index; plans keep their subject's index.
    subjects: Vec<(String, SubjectCtx)>,
    subject_ix: HashMap<String, u32>,
    dirty: HashSet<Key>,
    dirty_ctx: HashSet<u32>,
    deleted: Vec<(String, String)>,
    now: u64,
}

impl Engine {
    /// An engine with no state.
    pub fn new(rules: Arc<RuleSet>) -> Engine {
        let shared = rules.rules.iter().cloned().map(Arc::new).collect();
        Engine {
            rules,
            shared,
            targets: Vec::new(),
            target_ix: HashMap::default(),
            plans: HashMap::default(),
            states: HashMap::default(),
            timers: BTreeSet::new(),
            subjects: Vec::new(),
            subject_ix: HashMap::default(),
            dirty: HashSet::default(),
            dirty_ctx: HashSet::default(),
            deleted: Vec::new(),
            now: 0,
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The latest time the engine has seen, ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Restores one persisted record (from [`Engine::take_dirty`], keyed by the rule's
    /// key). State of a rule that changed while the gateway was down is carried over
    /// where it still fits (windows are recomputed); the rest is dropped.
    pub fn restore(&mut self, rule: &str, target: &str, bytes: &[u8]) {
        if rule.is_empty() {
            if let Ok(ctx) = postcard::from_bytes::<SubjectCtx>(bytes) {
                let i = self.subject(target);
                self.subjects[i as usize].1 = ctx;
            }
            return;
        }
        let Some(ix) = self.rules.rules.iter().position(|r| &*r.key == rule) else {
            return;
        };
        let Ok(mut saved) = postcard::from_bytes::<Saved>(bytes) else {
            return;
        };
        let r = &self.rules.rules[ix];
        if !saved.state.fits(&r.test) {
            return;
        }
        if saved.fingerprint != r.fingerprint {
            saved.state.rebase(&r.test, &self.rules.local, self.now);
        }
        let t = self.intern(saved.origin);
        self.put((ix as u16, t), saved.state);
    }

    /// The engine's clock starts at `ms` (the last time it ran): restored states may hold
    /// times up to then, and a reading stamped earlier (a clock that went back) is taken
    /// as of then.
    pub fn start_at(&mut self, ms: u64) {
        self.now = self.now.max(ms);
    }

    /// A restart after the gateway was down from `down_since` to `now`: silences whose
    /// deadline fell in that time restart from `now` (devices could not reach us; their
    /// silence says nothing). Absence windows and holds keep their deadlines.
    pub fn resume(&mut self, down_since: u64, now: u64) {
        let keys: Vec<Key> = self
            .states
            .iter()
            .filter(|(_, s)| matches!(s, State::Silence { active: false, .. }))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            let test = &self.rules.rules[k.0 as usize].test;
            let old = self.states[&k].deadline(test);
            if let (Some(d), Some(State::Silence { last_seen, .. })) =
                (old, self.states.get_mut(&k))
            {
                if d > down_since && d <= now {
                    *last_seen = now;
                    self.reschedule(k, old);
                    self.dirty.insert(k);
                }
            }
        }
    }

    /// Drops every state no device's plan uses any more (its rule no longer selects the
    /// target after a reload, or the rules changed while the gateway was down); returns
    /// their (alarm type, source), whose open alarms no rule will clear.
    #[must_use = "open alarms of dropped states must be cleared"]
    pub fn drop_unplanned(&mut self) -> Vec<(String, String)> {
        let used: HashSet<Key> = self
            .plans
            .values()
            .flat_map(|p| p.rules.iter().map(|&(r, t, _)| (r, t)))
            .collect();
        let gone: Vec<Key> = self
            .states
            .keys()
            .filter(|k| !used.contains(k))
            .copied()
            .collect();
        let mut dropped = Vec::with_capacity(gone.len());
        for k in gone {
            self.states.remove(&k);
            self.dirty.remove(&k);
            let rule = &self.rules.rules[k.0 as usize];
            let source = self.targets[k.1 as usize].source.clone();
            self.deleted.push((rule.key.to_string(), source.clone()));
            dropped.push((rule.name.to_string(), source));
        }
        dropped
    }

    /// Marks a resident away (or back). Nothing away-gated raises while away.
    pub fn set_away(&mut self, subject: &str, away: bool) {
        let i = self.subject(subject);
        self.subjects[i as usize].1.away = away;
        self.dirty_ctx.insert(i);
    }

    /// Is this resident away?
    pub fn is_away(&self, subject: &str) -> bool {
        self.subject_ix
            .get(subject)
            .is_some_and(|&i| self.subjects[i as usize].1.away)
    }

    /// Makes a device known before it reports, so that windows (absence) start being
    /// watched from `now`.
    pub fn register(&mut self, profile: &DeviceProfile, now: u64) {
        self.plan(profile, now);
    }

    /// Swaps in new rules. State is carried over by rule key where it still fits the
    /// new test (a changed window is recomputed); returns the (alarm type, source) of
    /// every state dropped, whose open alarms no rule will clear any more.
    #[must_use = "open alarms of dropped states must be cleared"]
    pub fn reload(&mut self, rules: Arc<RuleSet>) -> Vec<(String, String)> {
        let old = std::mem::replace(&mut self.rules, rules);
        self.shared = self.rules.rules.iter().cloned().map(Arc::new).collect();
        let remap: HashMap<u16, u16> = old
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let j = self.rules.rules.iter().position(|n| n.key == o.key)?;
                Some((i as u16, j as u16))
            })
            .collect();
        self.timers.clear();
        let dirty: Vec<Key> = self.dirty.drain().collect();
        let mut dropped = Vec::new();
        let now = self.now;
        for ((r, t), mut s) in std::mem::take(&mut self.states) {
            let o = &old.rules[r as usize];
            match remap.get(&r) {
                Some(&n) if s.fits(&self.rules.rules[n as usize].test) => {
                    let new = &self.rules.rules[n as usize];
                    let changed = new.fingerprint != o.fingerprint;
                    if changed {
                        s.rebase(&new.test, &self.rules.local, now);
                    }
                    self.put((n, t), s);
                    if changed || dirty.contains(&(r, t)) {
                        self.dirty.insert((n, t));
                    }
                }
                _ => {
                    let source = self.targets[t as usize].source.clone();
                    self.deleted.push((o.key.to_string(), source.clone()));
                    dropped.push((o.name.to_string(), source));
                }
            }
        }
        let profiles: Vec<DeviceProfile> = self.plans.drain().map(|(_, p)| p.profile).collect();
        for p in profiles {
            self.plan(&p, now);
        }
        dropped
    }

    /// Judges one reading from `profile`'s device; verdicts go to `out`. Timers due
    /// before the reading's time fire first.
    pub fn apply(
        &mut self,
        profile: &DeviceProfile,
        report: &Report,
        t: u64,
        out: &mut Vec<Verdict>,
    ) {
        self.advance(t.saturating_sub(1), out);
        let t = t.max(self.now);
        self.now = t;
        let cached = self
            .plans
            .get(profile.id.as_str())
            .filter(|p| same_place(&p.profile, profile))
            .map(|p| {
                let c = (p.id.clone(), p.heartbeat_ms, p.relay, p.dimming);
                (c, p.rules.clone(), p.subject)
            });
        let ((device, heartbeat_ms, mut relay, mut dimming), keys, subject) = match cached {
            Some(c) => c,
            None => match self.plan(profile, t) {
                Some(p) => {
                    let c = (p.id.clone(), p.heartbeat_ms, p.relay, p.dimming);
                    (c, p.rules.clone(), p.subject)
                }
                None => return,
            },
        };
        let sctx = subject
            .map(|i| self.subjects[i as usize].1)
            .unwrap_or_default();
        let signals = Signals::of(report, sctx.bed);
        if let Report::StreetLight(l) = report {
            relay = Some(l.relay_on);
            dimming = Some(l.dimming_pct.into());
            if let Some(p) = self.plans.get_mut(&*device) {
                (p.relay, p.dimming) = (relay, dimming);
            }
        }
        let variant = signal::variant_bit(report);
        let ctx = Context {
            away: sctx.away,
            bed: match report {
                Report::Bed(b) => Some(b.occupied),
                _ => sctx.bed,
            },
            relay,
            dimming,
        };
        let sample = Sample {
            t,
            report,
            signals,
            ctx,
            heartbeat_ms,
        };
        for &(r, tg, uses) in keys.iter() {
            if uses & variant == 0 {
                continue;
            }
            let key = (r, tg);
            let rule = &self.rules.rules[r as usize];
            let Some(st) = self.states.get_mut(&key) else {
                continue;
            };
            let before = st.deadline(&rule.test);
            let snapshot = match st {
                State::Rate { .. } | State::Event => None,
                _ => Some(st.clone()),
            };
            let outcome = st.on_sample(&rule.test, &rule.gates, &sample, &self.rules.local);
            let save = match &snapshot {
                Some(before) => st.worth_saving(before),
                None => !matches!(st, State::Event),
            };
            if save {
                self.dirty.insert(key);
                self.reschedule(key, before);
            }
            if let Some(o) = outcome {
                out.push(self.verdict(key, o, Some(t), Some(device.clone())));
            }
        }
        if let (Some(i), Report::Bed(b)) = (subject, report) {
            if sctx.bed != Some(b.occupied) {
                self.subjects[i as usize].1.bed = Some(b.occupied);
                self.dirty_ctx.insert(i);
            }
        }
    }

    /// Fires every timer due at or before `now`, in deadline order.
    pub fn advance(&mut self, now: u64, out: &mut Vec<Verdict>) {
        while let Some(&(at, r, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let key = (r, t);
            let rule = &self.rules.rules[r as usize];
            let origin = self.targets[t as usize].clone();
            let away = origin.subject.as_ref().is_some_and(|s| self.is_away(s));
            let Some(st) = self.states.get_mut(&key) else {
                continue;
            };
            match st.deadline(&rule.test) {
                Some(d) if d == at => {}
                Some(d) if d > at => {
                    // The deadline moved later since this entry was filed.
                    self.timers.insert((d, r, t));
                    continue;
                }
                _ => continue, // superseded
            }
            let ctx = Context {
                away,
                ..Context::default()
            };
            let outcome = st.on_timer(&rule.test, at, ctx, &self.rules.local, &rule.gates);
            self.dirty.insert(key);
            // The entry for `at` is gone: file the next deadline, whenever it is (an
            // absence rule moves on to its next window).
            if let Some(d) = st.deadline(&rule.test) {
                self.timers.insert((d, r, t));
            }
            if let Some(o) = outcome {
                let device = origin.device.as_deref().map(Arc::from);
                out.push(self.verdict(key, o, None, device));
            }
        }
        self.now = self.now.max(now);
    }

    /// The next timer deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|t| t.0)
    }

    /// State changed since the last call, encoded for storage.
    pub fn take_dirty(&mut self) -> Vec<Dirty> {
        let mut out = Vec::with_capacity(self.dirty.len() + self.deleted.len());
        for (r, t) in self.deleted.drain(..) {
            out.push(((r, t), None));
        }
        for key in self.dirty.drain() {
            let Some(state) = self.states.get(&key) else {
                continue;
            };
            let rule = &self.rules.rules[key.0 as usize];
            let origin = &self.targets[key.1 as usize];
            let saved = SavedRef {
                fingerprint: rule.fingerprint,
                origin,
                state,
            };
            out.push((
                (rule.key.to_string(), origin.source.clone()),
                postcard::to_allocvec(&saved).ok(),
            ));
        }
        for i in self.dirty_ctx.drain() {
            let (name, ctx) = &self.subjects[i as usize];
            out.push((
                (String::new(), name.clone()),
                postcard::to_allocvec(ctx).ok(),
            ));
        }
        out
    }

    fn verdict(
        &self,
        key: Key,
        o: Outcome,
        reading_ms: Option<u64>,
        device: Option<Arc<str>>,
    ) -> Verdict {
        let (change, at_ms, value, detail) = match o {
            Outcome::Raise {
                at_ms,
                value,
                detail,
            } => (Change::Raise, at_ms, value, detail),
            Outcome::Clear { at_ms } => (Change::Clear, at_ms, None, String::new()),
            Outcome::Note {
                at_ms,
                what,
                detail,
            } => (Change::Note(what), at_ms, None, detail),
        };
        Verdict {
            rule: self.shared[key.0 as usize].clone(),
            origin: self.targets[key.1 as usize].clone(),
            change,
            at_ms,
            value,
            detail,
            reading_ms,
            device,
        }
    }

    fn put(&mut self, key: Key, state: State) {
        let d = state.deadline(&self.rules.rules[key.0 as usize].test);
        self.states.insert(key, state);
        if let Some(d) = d {
            self.timers.insert((d, key.0, key.1));
        }
    }

    /// Files a changed deadline. A deadline that moved later keeps its earlier entry,
    /// which re-files itself when it comes up (a silence moves on every reading: this
    /// keeps that off the timer set).
    fn reschedule(&mut self, key: Key, before: Option<u64>) {
        let after = self.states[&key].deadline(&self.rules.rules[key.0 as usize].test);
        if let Some(a) = after {
            if before.is_none_or(|b| a < b) {
                self.timers.insert((a, key.0, key.1));
            }
        }
    }

    fn subject(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.subject_ix.get(name) {
            return i;
        }
        let i = self.subjects.len() as u32;
        self.subject_ix.insert(name.to_owned(), i);
        self.subjects.push((name.to_owned(), SubjectCtx::default()));
        i
    }

    fn intern(&mut self, origin: Origin) -> u32 {
        if let Some(&i) = self.target_ix.get(&origin.source) {
            return i;
        }
        let i = self.targets.len() as u32;
        self.target_ix.insert(origin.source.clone(), i);
        self.targets.push(Arc::new(origin));
        i
    }

    /// The device's plan, built (and its new targets' states created) on first sight or
    /// when its registration changed.
    fn plan(&mut self, profile: &DeviceProfile, now: u64) -> Option<&mut Plan> {
        let fresh = self.plans.get(profile.id.as_str()).is_some_and(|p| {
            p.profile.zone == profile.zone
                && p.profile.site == profile.site
                && p.profile.subject == profile.subject
        });
        if !fresh {
            let heartbeat_ms = profile
                .heartbeat_s
                .map_or(self.rules.default_heartbeat_ms, |s| s * 1000);
            let mut keys = Vec::new();
            for (ix, rule) in self.rules.clone().rules.iter().enumerate() {
                if !rule.select.matches(profile) {
                    continue;
                }
                let origin = origin(rule.per, profile);
                let t = self.intern(origin);
                let key = (ix as u16, t);
                if !self.states.contains_key(&key) {
                    self.put(
                        key,
                        State::new(&rule.test, now, &self.rules.local, heartbeat_ms),
                    );
                    self.dirty.insert(key);
                }
                keys.push((key.0, key.1, rule.reports));
            }
            let (relay, dimming) = self
                .plans
                .get(profile.id.as_str())
                .map_or((None, None), |p| (p.relay, p.dimming));
            let subject = profile.subject.as_ref().map(|(_, s)| self.subject(s));
            let id: Arc<str> = Arc::from(profile.id.as_str());
            self.plans.insert(
                id.clone(),
                Plan {
                    id,
                    profile: profile.clone(),
                    rules: keys.into(),
                    heartbeat_ms,
                    relay,
                    dimming,
                    subject,
                },
            );
        }
        self.plans.get_mut(profile.id.as_str())
    }
}

/// Is the device still where its plan put it (same site, zone, resident/asset)?
fn same_place(a: &DeviceProfile, b: &DeviceProfile) -> bool {
    a.zone == b.zone && a.site == b.site && a.subject == b.subject
}

fn origin(per: Per, p: &DeviceProfile) -> Origin {
    let subject = p.subject.as_ref();
    let source = match (per, subject) {
        (Per::Zone, _) => format!("zone:{}", p.zone),
        (Per::Subject, Some((kind, id))) => format!("{}:{id}", kind.as_str()),
        _ => format!("device:{}", p.id),
    };
    let device = match (per, subject) {
        (Per::Device, _) | (Per::Subject, None) => Some(p.id.clone()),
        _ => None,
    };
    Origin {
        source,
        site: p.site.clone(),
        zone: p.zone.clone(),
        subject: subject.map(|(_, s)| s.clone()),
        device,
    }
}
