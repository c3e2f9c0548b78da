//! The rules file: parse (strict TOML), validate (every problem, named by its key), then
//! compile into a [`RuleSet`] the engine runs. Per-resident/asset/device/zone overrides
//! become rules of their own, so evaluation never looks overrides up.
//!
//! Owns the file's format (documented in `gateway/RULES.md`); does not evaluate anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use linli_protocol::{DeviceKind, EventKind};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::localtime::{Calendar, LocalTime, Window};
use super::signal::{self, Signal};
use crate::config::ConfigIssue;
use crate::registry::DeviceProfile;

/// The rules shipped with the gateway, used when `[alarms] rules` names no file.
pub const DEFAULT_RULES: &str = include_str!("../../rules.default.toml");

/// A compiled, valid rules file.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Rules in file order (overrides after their base).
    pub rules: Vec<Rule>,
    /// Root-cause groups.
    pub groups: Vec<Group>,
    /// Lifecycle settings.
    pub lifecycle: Lifecycle,
    /// The gateway's time zone.
    pub local: LocalTime,
    /// Heartbeat interval for devices registered without one, ms.
    pub default_heartbeat_ms: u64,
}

/// Which alarms share one open alarm: per device, per resident/asset, or per zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// One alarm per device.
    Device,
    /// One per resident or asset (per device when the device has none).
    Subject,
    /// One per zone.
    Zone,
}

/// Which devices a rule applies to (every list that is given must match).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    kinds: Vec<DeviceKind>,
    sites: Vec<String>,
    zones: Vec<String>,
    subjects: Vec<String>,
    devices: Vec<String>,
    /// Subjects, devices or zones an override has taken over.
    except: Vec<(Target, String)>,
}

/// What an override narrows a rule to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A resident or asset.
    Subject,
    /// A device.
    Device,
    /// A zone.
    Zone,
}

impl Test {
    /// The report variants this test can use (a bit per `Report` variant): the engine
    /// skips the rule for any other report.
    pub fn reports(&self) -> u32 {
        use super::signal::{event_variants, metric_variants, signal_variants, ANY_REPORT};
        match self {
            Test::Event { events } => events.iter().fold(0, |m, e| m | event_variants(*e)),
            Test::Fall { .. } => 1 << 3,
            Test::Threshold { metric, .. } | Test::Rate { metric, .. } => metric_variants(metric),
            Test::Absence { signal, .. } => signal_variants(*signal),
            Test::NotBack { trigger, back, .. } => {
                signal_variants(*trigger) | signal_variants(*back)
            }
            Test::Silence { .. } => ANY_REPORT,
        }
    }
}

impl Selector {
    /// Does a place (site, zone, device) match the site, zone and device lists?
    pub fn matches_place(&self, site: &str, zone: &str, device: Option<&str>) -> bool {
        let any = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        any(&self.sites, Some(site)) && any(&self.zones, Some(zone)) && any(&self.devices, device)
    }

    /// Does the rule apply to this device?
    pub fn matches(&self, p: &DeviceProfile) -> bool {
        let subject = p.subject.as_ref().map(|(_, s)| s.as_str());
        let any = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        (self.kinds.is_empty() || self.kinds.contains(&p.kind))
            && any(&self.sites, Some(&p.site))
            && any(&self.zones, Some(&p.zone))
            && any(&self.subjects, subject)
            && any(&self.devices, Some(&p.id))
            && !self.except.iter().any(|(t, x)| match t {
                Target::Device => *x == p.id,
                Target::Zone => *x == p.zone,
                Target::Subject => Some(x.as_str()) == subject,
            })
    }
}

/// Which way a threshold looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Alarm at high values.
    High,
    /// Alarm at low values.
    Low,
}

/// What a rule tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// An event raises at once (a momentary alarm: it has no clear condition).
    Event {
        /// Events that raise.
        events: Vec<EventKind>,
    },
    /// Falls: a pendant's confirmed fall raises at once; an impact is confirmed by
    /// stillness, or dismissed by steps or a cancel.
    Fall {
        /// Smallest impact that is a suspected fall, g.
        impact_g: f64,
        /// Steps this soon after the impact dismiss it, ms.
        steps_within_ms: u64,
        /// A cancel this soon after the impact dismisses it, ms.
        cancel_within_ms: u64,
        /// Stillness this long after the impact confirms it, ms.
        confirm_ms: u64,
        /// Activity above this level before confirmation dismisses it.
        still_level: f64,
    },
    /// A metric past a level.
    Threshold {
        /// Metric name.
        metric: Arc<str>,
        /// High or low alarm.
        direction: Direction,
        /// The level (as signed: low alarms are negated).
        level: f64,
        /// Inclusive comparison (`at_least`/`at_most`).
        inclusive: bool,
        /// The condition clears past `level ∓ deadband`.
        deadband: f64,
        /// On-delay, ms.
        hold_ms: u64,
        /// Off-delay, ms.
        clear_hold_ms: u64,
        /// Consecutive samples past the level before raising.
        consecutive: u32,
    },
    /// A metric rising by at least `rise` within `window_ms`.
    Rate {
        /// Metric name.
        metric: Arc<str>,
        /// The rise.
        rise: f64,
        /// Over this window, ms.
        window_ms: u64,
        /// Off-delay, ms.
        clear_hold_ms: u64,
    },
    /// No `signal` within a local-time window: raises at the window's end.
    Absence {
        /// What counts as a sign.
        signal: Signal,
        /// Daily window.
        window: Window,
        /// Days it applies.
        calendar: Calendar,
    },
    /// After `trigger` (inside the window, when one is given), `back` must follow within
    /// `within_ms`.
    NotBack {
        /// Starts the wait.
        trigger: Signal,
        /// Ends it.
        back: Signal,
        /// How long, ms.
        within_ms: u64,
        /// Only triggers inside this window.
        window: Option<Window>,
        /// Days the window applies.
        calendar: Calendar,
    },
    /// Nothing heard from a device for `missed` heartbeat intervals (or `after_ms`).
    Silence {
        /// Missed intervals.
        missed: u32,
        /// A fixed silence instead of the device's interval, ms.
        after_ms: Option<u64>,
    },
}

/// Conditions under which a rule's samples count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gates {
    /// Nothing raises while the resident is marked away.
    pub unless_away: bool,
    /// Samples taken while the resident's bed is empty are discarded.
    pub bed_occupied: bool,
    /// The condition holds only while the relay is in this state.
    pub relay: Option<bool>,
    /// The condition holds only at or above this dimming level.
    pub dimming_min_pct: Option<f64>,
    /// The condition holds only inside this local window.
    pub during: Option<Window>,
}

/// One compiled rule: its name is the alarm type it raises.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Alarm type.
    pub name: Arc<str>,
    /// 1 (life-safety) … 4 (maintenance).
    pub priority: u8,
    /// Never shelved, suppressed or flood-grouped.
    pub life_safety: bool,
    /// Stays active after its condition clears until reset by a person.
    pub latching: bool,
    /// Alarm identity.
    pub per: Per,
    /// Re-announce while unacknowledged, every this long.
    pub escalate_after_ms: Option<u64>,
    /// Which devices.
    pub select: Selector,
    /// The test.
    pub test: Test,
    /// Its gates.
    pub gates: Gates,
    /// Identity of its state: the name, or `name@subject:R-12` for an override.
    pub key: Arc<str>,
    /// Changes when what the rule tests does (not its description or which targets
    /// overrides took): state of a changed rule is carried over where it still fits.
    pub fingerprint: u64,
    /// The report variants its test uses ([`Test::reports`], computed once here).
    pub reports: u32,
}

/// A root cause that groups other alarms under one parent.
#[derive(Debug, Clone)]
pub struct Group {
    /// Parent alarm type (aggregate groups) and the group's name.
    pub name: Arc<str>,
    /// Rules whose alarms become children.
    pub children: Vec<Arc<str>>,
    /// Which devices' alarms are members.
    pub members: Selector,
    /// The parent is this rule's alarm on one of `cause_devices`…
    pub cause: Option<(Arc<str>, Vec<String>)>,
    /// …or a parent of its own once this many children are open within `window_ms`.
    pub min_children: u32,
    /// See `min_children`.
    pub window_ms: u64,
    /// Priority of an aggregate parent.
    pub priority: u8,
}

/// Lifecycle settings (`[lifecycle]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    /// Raise/clear transitions within `chatter_window_s` that flag an alarm as chattering.
    pub chatter_transitions: u32,
    /// See `chatter_transitions`.
    pub chatter_window_s: u64,
    /// More new alarms than this per zone within `flood_window_s` is a flood.
    pub flood_alarms: u32,
    /// See `flood_alarms`.
    pub flood_window_s: u64,
    /// Longest a shelf lasts; longer requests are cut to this.
    pub max_shelve_s: u64,
    /// Re-announcements of an unacknowledged alarm before it stops escalating.
    pub max_escalations: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            chatter_transitions: 3,
            chatter_window_s: 60,
            flood_alarms: 10,
            flood_window_s: 600,
            max_shelve_s: 8 * 3600,
            max_escalations: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    timezone: Option<String>,
    #[serde(default)]
    lifecycle: Lifecycle,
    #[serde(default)]
    calendar: BTreeMap<String, CalendarDef>,
    #[serde(default)]
    rule: Vec<toml::Table>,
    #[serde(default)]
    group: Vec<toml::Table>,
    #[serde(default, rename = "override")]
    overrides: Vec<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarDef {
    #[serde(default)]
    days: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindDef {
    Event,
    Fall,
    Threshold,
    Rate,
    Absence,
    NotBack,
    Silence,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    name: String,
    kind: KindDef,
    #[serde(default = "default_priority")]
    priority: u8,
    life_safety: Option<bool>,
    latching: Option<bool>,
    per: Option<Per>,
    escalate_after_s: Option<u64>,
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    // selectors
    #[serde(default)]
    device_kinds: Vec<String>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    // event
    #[serde(default)]
    events: Vec<String>,
    // fall
    impact_g: Option<f64>,
    steps_within_s: Option<u64>,
    cancel_within_s: Option<u64>,
    confirm_s: Option<u64>,
    still_level: Option<f64>,
    // threshold / rate
    metric: Option<String>,
    above: Option<f64>,
    at_least: Option<f64>,
    below: Option<f64>,
    at_most: Option<f64>,
    #[serde(default)]
    deadband: f64,
    #[serde(default)]
    hold_s: u64,
    #[serde(default)]
    clear_hold_s: u64,
    #[serde(default = "one")]
    consecutive: u32,
    rise: Option<f64>,
    window_s: Option<u64>,
    // gates
    #[serde(default = "yes")]
    unless_away: bool,
    #[serde(default)]
    bed_occupied: bool,
    relay: Option<String>,
    dimming_min_pct: Option<f64>,
    during: Option<String>,
    // absence / not_back
    signal: Option<String>,
    window: Option<String>,
    calendar: Option<String>,
    #[serde(default)]
    days: Vec<String>,
    trigger: Option<String>,
    back: Option<String>,
    within_s: Option<u64>,
    // silence
    missed: Option<u32>,
    after_s: Option<u64>,
}

fn default_priority() -> u8 {
    3
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDef {
    name: String,
    children: Vec<String>,
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    cause: Option<String>,
    #[serde(default)]
    cause_devices: Vec<String>,
    #[serde(default = "default_min_children")]
    min_children: u32,
    #[serde(default = "default_group_window")]
    window_s: u64,
    #[serde(default = "default_group_priority")]
    priority: u8,
}

fn default_min_children() -> u32 {
    5
}
fn default_group_window() -> u64 {
    300
}
fn default_group_priority() -> u8 {
    2
}

/// What the override keys `subject`, `device`, `zone` and `rule` take out of a table.
const OVERRIDE_KEYS: [&str; 4] = ["rule", "subject", "device", "zone"];

/// Where the zone and heartbeat defaults come from when the file does not say.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Zone when the file has no `timezone`.
    pub local: LocalTime,
    /// Heartbeat for devices registered without one, seconds.
    pub heartbeat_s: u64,
}

impl RuleSet {
    /// Parses, validates and compiles a rules file; `Err` holds every problem found.
    pub fn parse(text: &str, defaults: &Defaults) -> Result<RuleSet, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut issue = |key: String, message: String| issues.push(ConfigIssue { key, message });
        let file: FileDef = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                issue("rules".into(), e.to_string());
                return Err(issues);
            }
        };
        let local = match &file.timezone {
            Some(name) => LocalTime::named(name).unwrap_or_else(|m| {
                issue("timezone".into(), m);
                defaults.local.clone()
            }),
            None => defaults.local.clone(),
        };
        let mut calendars = BTreeMap::new();
        for (name, c) in &file.calendar {
            match Calendar::parse(&c.days, &c.except) {
                Ok(cal) => {
                    calendars.insert(name.clone(), cal);
                }
                Err(ms) => ms
                    .into_iter()
                    .for_each(|m| issue(format!("calendar.{name}"), m)),
            }
        }
        let lc = &file.lifecycle;
        if lc.chatter_transitions < 2 {
            issue(
                "lifecycle.chatter_transitions".into(),
                "must be at least 2".into(),
            );
        }
        if lc.max_shelve_s > 30 * 86_400
            || lc.chatter_window_s > 86_400
            || lc.flood_window_s > 86_400
        {
            issue(
                "lifecycle".into(),
                "max_shelve_s is at most 30 days; chatter_window_s and flood_window_s at most a day".into(),
            );
        }
        if lc.flood_alarms == 0 || lc.flood_window_s == 0 || lc.chatter_window_s == 0 {
            issue(
                "lifecycle".into(),
                "flood_alarms, flood_window_s and chatter_window_s must be above 0".into(),
            );
        }

        // Overrides: each becomes a copy of its rule narrowed to one target, and the base
        // rule leaves that target alone.
        let mut tables: Vec<(String, toml::Table, Option<String>)> = file
            .rule
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("rule[{i}]"), t.clone(), None))
            .collect();
        let mut excepts: BTreeMap<String, Vec<(Target, String)>> = BTreeMap::new();
        for (i, o) in file.overrides.iter().enumerate() {
            let key = format!("override[{i}]");
            let Some(base_name) = o.get("rule").and_then(|v| v.as_str()) else {
                issue(key, "`rule` (the rule's name) is required".into());
                continue;
            };
            let Some(base) = file
                .rule
                .iter()
                .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(base_name))
            else {
                issue(
                    format!("{key}.rule"),
                    format!("no rule is named `{base_name}`"),
                );
                continue;
            };
            let targets: Vec<(&str, Target, &str)> = [
                ("subject", Target::Subject),
                ("device", Target::Device),
                ("zone", Target::Zone),
            ]
            .into_iter()
            .filter_map(|(k, t)| o.get(k).and_then(|v| v.as_str()).map(|v| (k, t, v)))
            .collect();
            let [(which, kind, target)] = targets[..] else {
                issue(
                    key,
                    "give exactly one of `subject`, `device` or `zone` (a string)".into(),
                );
                continue;
            };
            excepts
                .entry(base_name.to_owned())
                .or_default()
                .push((kind, target.to_owned()));
            let mut merged = base.clone();
            for (k, v) in o
                .iter()
                .filter(|(k, _)| !OVERRIDE_KEYS.contains(&k.as_str()))
            {
                merged.insert(k.clone(), v.clone());
            }
            merged.insert(
                format!("{which}s"),
                toml::Value::Array(vec![toml::Value::String(target.to_owned())]),
            );
            tables.push((key, merged, Some(format!("{base_name}@{which}:{target}"))));
        }

        let mut rules = Vec::new();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for (key, table, override_key) in &tables {
            let fingerprint = fingerprint(table);
            let def: RuleDef = match table.clone().try_into() {
                Ok(d) => d,
                Err(e) => {
                    issue(key.clone(), e.to_string().trim().to_owned());
                    continue;
                }
            };
            if !key.starts_with("override") {
                if let Some(first) = names.insert(def.name.clone(), key.clone()) {
                    issue(
                        format!("{key}.name"),
                        format!("`{}` is already the name of {first}", def.name),
                    );
                }
            }
            let mut errs = Vec::new();
            let rule = compile_rule(&def, &calendars, fingerprint, &mut errs);
            errs.into_iter()
                .for_each(|(k, m)| issue(format!("{key}.{k}"), m));
            if let Some(mut rule) = rule {
                match override_key {
                    Some(k) => rule.key = Arc::from(k.as_str()),
                    None => {
                        rule.select.except = excepts.get(&def.name).cloned().unwrap_or_default()
                    }
                }
                if def.enabled {
                    rules.push(rule);
                }
            }
        }

        let mut groups = Vec::new();
        for (i, t) in file.group.iter().enumerate() {
            let key = format!("group[{i}]");
            let def: GroupDef = match t.clone().try_into() {
                Ok(d) => d,
                Err(e) => {
                    issue(key, e.to_string().trim().to_owned());
                    continue;
                }
            };
            let mut errs = Vec::new();
            if let Some(g) = compile_group(def, &names, &mut errs) {
                groups.push(g);
            }
            errs.into_iter()
                .for_each(|(k, m)| issue(format!("{key}.{k}"), m));
        }

        if issues.is_empty() {
            Ok(RuleSet {
                rules,
                groups,
                lifecycle: file.lifecycle,
                local,
                default_heartbeat_ms: defaults.heartbeat_s * 1000,
            })
        } else {
            Err(issues)
        }
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.name == name)
    }
}

fn fingerprint(t: &toml::Table) -> u64 {
    let mut t = t.clone();
    t.remove("description");
    let mut h = Sha256::new();
    h.update(toml::to_string(&t).unwrap_or_default().as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

type Errs = Vec<(&'static str, String)>;

fn kinds(names: &[String], errs: &mut Errs) -> Vec<DeviceKind> {
    names
        .iter()
        .filter_map(|n| {
            let k = DeviceKind::parse(n);
            if k.is_none() {
                errs.push(("device_kinds", format!("`{n}` is not a device kind")));
            }
            k
        })
        .collect()
}

fn window(s: &Option<String>, key: &'static str, errs: &mut Errs) -> Option<Window> {
    s.as_ref()
        .and_then(|w| Window::parse(w).map_err(|m| errs.push((key, m))).ok())
}

fn signal(s: &Option<String>, key: &'static str, errs: &mut Errs) -> Option<Signal> {
    match s {
        None => {
            errs.push((key, "is required".into()));
            None
        }
        Some(n) => Signal::named(n).or_else(|| {
            errs.push((key, format!("`{n}` is not a signal ({})", Signal::names())));
            None
        }),
    }
}

fn metric(def: &RuleDef, errs: &mut Errs) -> Option<Arc<str>> {
    match &def.metric {
        None => {
            errs.push(("metric", "is required".into()));
            None
        }
        Some(m) if !signal::METRICS.contains(&m.as_str()) => {
            errs.push((
                "metric",
                format!(
                    "`{m}` is not a metric; known: {}",
                    signal::METRICS.join(", ")
                ),
            ));
            None
        }
        Some(m) => Some(Arc::from(m.as_str())),
    }
}

fn compile_rule(
    def: &RuleDef,
    calendars: &BTreeMap<String, Calendar>,
    fingerprint: u64,
    errs: &mut Errs,
) -> Option<Rule> {
    if !(1..=4).contains(&def.priority) {
        errs.push((
            "priority",
            "must be 1 (life-safety) to 4 (maintenance)".into(),
        ));
    }
    if def.name.trim().is_empty() || def.name.contains(char::is_whitespace) {
        errs.push((
            "name",
            "must be a non-empty word (it names the alarm type)".into(),
        ));
    }
    let calendar = match (&def.calendar, def.days.is_empty()) {
        (Some(c), true) => calendars.get(c).cloned().unwrap_or_else(|| {
            errs.push(("calendar", format!("no [calendar.{c}] is defined")));
            Calendar::default()
        }),
        (None, _) => Calendar::parse(&def.days, &[]).unwrap_or_else(|ms| {
            ms.into_iter().for_each(|m| errs.push(("days", m)));
            Calendar::default()
        }),
        (Some(_), false) => {
            errs.push(("calendar", "give `calendar` or `days`, not both".into()));
            Calendar::default()
        }
    };
    const LONGEST_S: u64 = 10 * 366 * 86_400;
    for (key, v) in [
        ("hold_s", Some(def.hold_s)),
        ("clear_hold_s", Some(def.clear_hold_s)),
        ("window_s", def.window_s),
        ("within_s", def.within_s),
        ("after_s", def.after_s),
        ("escalate_after_s", def.escalate_after_s),
        ("confirm_s", def.confirm_s),
        ("steps_within_s", def.steps_within_s),
        ("cancel_within_s", def.cancel_within_s),
    ] {
        if v.is_some_and(|v| v > LONGEST_S) {
            errs.push((key, "must be at most 10 years".into()));
        }
    }
    let s = |v: u64| v.saturating_mul(1000);
    let test = match def.kind {
        KindDef::Event => {
            if def.events.is_empty() {
                errs.push(("events", "is required (e.g. [\"sos\"])".into()));
            }
            let events = def
                .events
                .iter()
                .filter_map(|e| {
                    signal::event_named(e).or_else(|| {
                        errs.push(("events", format!("`{e}` is not an event")));
                        None
                    })
                })
                .collect();
            Some(Test::Event { events })
        }
        KindDef::Fall => Some(Test::Fall {
            impact_g: def.impact_g.unwrap_or(2.5),
            steps_within_ms: s(def.steps_within_s.unwrap_or(8)),
            cancel_within_ms: s(def.cancel_within_s.unwrap_or(30)),
            confirm_ms: s(def.confirm_s.unwrap_or(60)),
            still_level: def.still_level.unwrap_or(20.0),
        }),
        KindDef::Threshold => {
            let m = metric(def, errs);
            let given: Vec<(Direction, f64, bool)> = [
                (Direction::High, def.above, false),
                (Direction::High, def.at_least, true),
                (Direction::Low, def.below, false),
                (Direction::Low, def.at_most, true),
            ]
            .into_iter()
            .filter_map(|(d, v, inc)| v.map(|v| (d, v, inc)))
            .collect();
            if def.deadband < 0.0 || !def.deadband.is_finite() {
                errs.push(("deadband", "must be a number ≥ 0".into()));
            }
            if def.consecutive == 0 {
                errs.push(("consecutive", "must be at least 1".into()));
            }
            match (m, &given[..]) {
                (Some(metric), [(direction, level, inclusive)]) if level.is_finite() => {
                    Some(Test::Threshold {
                        metric,
                        direction: *direction,
                        level: if *direction == Direction::High {
                            *level
                        } else {
                            -level
                        },
                        inclusive: *inclusive,
                        deadband: def.deadband,
                        hold_ms: s(def.hold_s),
                        clear_hold_ms: s(def.clear_hold_s),
                        consecutive: def.consecutive.max(1),
                    })
                }
                (_, [_]) | (None, _) => None,
                _ => {
                    errs.push((
                        "above",
                        "give exactly one of `above`, `at_least`, `below`, `at_most`".into(),
                    ));
                    None
                }
            }
        }
        KindDef::Rate => {
            let m = metric(def, errs);
            let rise = def.rise.filter(|r| *r > 0.0 && r.is_finite());
            if rise.is_none() {
                errs.push(("rise", "is required, a number above 0".into()));
            }
            let w = def.window_s.filter(|w| *w > 0);
            if w.is_none() {
                errs.push(("window_s", "is required, seconds above 0".into()));
            }
            match (m, rise, w) {
                (Some(metric), Some(rise), Some(w)) => Some(Test::Rate {
                    metric,
                    rise,
                    window_ms: s(w),
                    clear_hold_ms: s(def.clear_hold_s),
                }),
                _ => None,
            }
        }
        KindDef::Absence => {
            let sig = signal(&def.signal, "signal", errs);
            if def.window.is_none() {
                errs.push(("window", "is required (\"07:00-10:00\")".into()));
            }
            match (sig, window(&def.window, "window", errs)) {
                (Some(signal), Some(window)) => Some(Test::Absence {
                    signal,
                    window,
                    calendar,
                }),
                _ => None,
            }
        }
        KindDef::NotBack => {
            let trigger = signal(&def.trigger, "trigger", errs);
            let back = signal(&def.back, "back", errs);
            let within = def.within_s.filter(|w| *w > 0);
            if within.is_none() {
                errs.push(("within_s", "is required, seconds above 0".into()));
            }
            let win = window(&def.window, "window", errs);
            match (trigger, back, within) {
                (Some(trigger), Some(back), Some(w)) => Some(Test::NotBack {
                    trigger,
                    back,
                    within_ms: s(w),
                    window: win,
                    calendar,
                }),
                _ => None,
            }
        }
        KindDef::Silence => {
            if def.missed == Some(0) || def.after_s == Some(0) {
                errs.push(("missed", "`missed` and `after_s` must be above 0".into()));
            }
            Some(Test::Silence {
                missed: def.missed.unwrap_or(3).max(1),
                after_ms: def.after_s.map(s),
            })
        }
    };
    let relay = match def.relay.as_deref() {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(x) => {
            errs.push(("relay", format!("`{x}` is not \"on\" or \"off\"")));
            None
        }
    };
    let gates = Gates {
        unless_away: def.unless_away,
        bed_occupied: def.bed_occupied,
        relay,
        dimming_min_pct: def.dimming_min_pct,
        during: window(&def.during, "during", errs),
    };
    let select = Selector {
        kinds: kinds(&def.device_kinds, errs),
        sites: def.sites.clone(),
        zones: def.zones.clone(),
        subjects: def.subjects.clone(),
        devices: def.devices.clone(),
        except: Vec::new(),
    };
    let life_safety = def.life_safety.unwrap_or(def.priority == 1);
    let always_life_safety = def.kind == KindDef::Fall
        || def
            .events
            .iter()
            .any(|e| ["fall", "sos", "smoke", "gas", "co"].contains(&e.as_str()));
    if always_life_safety && !life_safety {
        errs.push((
            "life_safety",
            "falls, SOS, smoke, gas and CO are life-safety alarms: give them priority 1 and do not set life_safety = false".into(),
        ));
    }
    let per = def.per.unwrap_or(match def.kind {
        KindDef::Silence => Per::Device,
        _ => Per::Subject,
    });
    let test = test?;
    if !errs.is_empty() {
        return None;
    }
    let reports = test.reports();
    Some(Rule {
        name: Arc::from(def.name.as_str()),
        priority: def.priority,
        life_safety,
        latching: def.latching.unwrap_or(life_safety),
        per,
        escalate_after_ms: def.escalate_after_s.filter(|s| *s > 0).map(s),
        key: Arc::from(def.name.as_str()),
        select,
        test,
        gates,
        fingerprint,
        reports,
    })
}

fn compile_group(
    def: GroupDef,
    rules: &BTreeMap<String, String>,
    errs: &mut Errs,
) -> Option<Group> {
    for c in def.children.iter().chain(&def.cause) {
        if !rules.contains_key(c) {
            errs.push(("children", format!("no rule is named `{c}`")));
        }
    }
    if def.children.is_empty() {
        errs.push(("children", "name at least one rule".into()));
    }
    if def.cause.is_some() && def.cause_devices.is_empty() {
        errs.push((
            "cause_devices",
            "name the devices whose `cause` alarm is the parent".into(),
        ));
    }
    if def.min_children < 2 || def.window_s == 0 {
        errs.push(("min_children", "min_children ≥ 2 and window_s > 0".into()));
    }
    if !(1..=4).contains(&def.priority) {
        errs.push(("priority", "must be 1 to 4".into()));
    }
    let members = Selector {
        kinds: Vec::new(),
        sites: def.sites,
        zones: def.zones,
        subjects: Vec::new(),
        devices: def.devices,
        except: Vec::new(),
    };
    if !errs.is_empty() {
        return None;
    }
    Some(Group {
        name: Arc::from(def.name.as_str()),
        children: def.children.iter().map(|c| Arc::from(c.as_str())).collect(),
        members,
        cause: def
            .cause
            .map(|c| (Arc::from(c.as_str()), def.cause_devices)),
        min_children: def.min_children,
        window_ms: def.window_s * 1000,
        priority: def.priority,
    })
}
