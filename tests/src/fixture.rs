//! Alarm scenario fixtures: a TOML file holds a rules file, the devices, a timed list of
//! readings and people's actions, and the alarms, transitions and notes expected (and
//! not expected). [`run`] plays one through the real rule engine and lifecycle at
//! simulated speed, committing every step to a real alarm database; a `restart` step
//! reopens everything from that database, as a gateway start does.
//!
//! Owns the fixture format (see `tests/fixtures/alarms/README.md`) and the checks.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use linli_gateway::alarms::core::AlarmCore;
use linli_gateway::alarms::db::AlarmDb;
use linli_gateway::alarms::{Alarm, Note, Transition};
use linli_gateway::registry::{DeviceProfile, SubjectKind, Trust};
use linli_gateway::rules::localtime::LocalTime;
use linli_gateway::rules::{Defaults, RuleSet};
use linli_protocol::{DeviceKind, Report};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[allow(dead_code)]
    description: String,
    start: String,
    end: Option<String>,
    rules: toml::Table,
    #[serde(default)]
    device: Vec<DeviceDef>,
    #[serde(default)]
    step: Vec<Step>,
    alarms_total: Option<usize>,
    /// Alarms somebody is told about (not suppressed, shelved, out of service, flooded).
    announced_total: Option<usize>,
    #[serde(default)]
    expect: Vec<Expect>,
    #[serde(default)]
    expect_none: Vec<ExpectNone>,
    #[serde(default)]
    expect_note: Vec<ExpectNote>,
    #[serde(default)]
    expect_transition: Vec<ExpectTransition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceDef {
    id: String,
    kind: String,
    #[serde(default = "site")]
    site: String,
    #[serde(default = "zone")]
    zone: String,
    resident: Option<String>,
    asset: Option<String>,
    heartbeat_s: Option<u64>,
    /// `{n}` in the id, resident and asset runs 1..=count (zero-padded to 2).
    count: Option<u32>,
}

fn site() -> String {
    "site-1".into()
}
fn zone() -> String {
    "zone-1".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    /// Local time of day (`"02:15"`, on the start date or, if earlier than the previous
    /// step, the next day) or a date-time.
    at: Option<String>,
    /// Or a duration after the previous step (`"8s"`, `"2m"`, `"1h"`).
    after: Option<String>,
    device: Option<String>,
    report: Option<toml::Value>,
    /// Reports sent in turn, `repeat` times in all, `every` apart.
    #[serde(default)]
    reports: Vec<toml::Value>,
    repeat: Option<u32>,
    every: Option<String>,
    /// With `{n}` in `device`: the step runs for devices 1..=count.
    count: Option<u32>,
    ack: Option<Act>,
    resolve: Option<Act>,
    shelve: Option<Act>,
    away: Option<Away>,
    out_of_service: Option<Oos>,
    /// Reopen from the database, as a restarted gateway does (time has moved on).
    #[serde(default)]
    restart: bool,
    /// Swap in this rules file, as `POST /api/rules/reload` does.
    reload: Option<toml::Table>,
    /// The action must be refused with a message containing this.
    expect_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Act {
    alarm: String,
    source: String,
    by: String,
    #[serde(default)]
    note: String,
    seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Away {
    subject: String,
    on: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Oos {
    source: String,
    on: bool,
    by: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    alarm: String,
    source: Option<String>,
    /// How many alarms of this type (and source) there were (default: at least 1).
    instances: Option<usize>,
    priority: Option<u8>,
    state: Option<String>,
    count: Option<u32>,
    raised_at: Option<String>,
    suppressed: Option<bool>,
    children: Option<u32>,
    chattering: Option<bool>,
    escalations: Option<u32>,
    shown_as: Option<String>,
    flooded: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectNone {
    alarm: String,
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectNote {
    what: String,
    source: Option<String>,
    count: Option<usize>,
    detail_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectTransition {
    alarm: String,
    source: Option<String>,
    action: String,
    who: Option<String>,
    note_contains: Option<String>,
    at: Option<String>,
    /// Exactly this many such transitions (default: at least one).
    count: Option<usize>,
}

/// What a fixture run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every alarm, latest version, by id.
    pub alarms: BTreeMap<u64, Alarm>,
    /// Every transition, in order.
    pub transitions: Vec<Transition>,
    /// Every note.
    pub notes: Vec<Note>,
}

fn expand(template: &str, n: Option<u32>) -> String {
    match n {
        Some(n) => template.replace("{n}", &format!("{n:02}")),
        None => template.to_owned(),
    }
}

fn duration_ms(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let v: f64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a duration"))?;
    let mult = match unit {
        "ms" => 1.0,
        "s" | "" => 1000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        u => bail!("`{u}` is not a duration unit (ms, s, m, h, d)"),
    };
    Ok((v * mult) as u64)
}

struct Clock {
    local: LocalTime,
    date: String,
    start: u64,
    now: u64,
}

impl Clock {
    /// An expected time: a date-time, or a time of day at or after the fixture's start.
    fn expected(&self, at: &str) -> Result<u64> {
        let start = Clock {
            local: self.local.clone(),
            date: self.date.clone(),
            start: self.start,
            now: self.start,
        };
        start.time(&Some(at.to_owned()), &None)
    }

    fn time(&self, at: &Option<String>, after: &Option<String>) -> Result<u64> {
        match (at, after) {
            (Some(a), None) => {
                if a.contains('T') {
                    return self.local.parse_local(a).map_err(|e| anyhow!(e));
                }
                let a = if a.len() == 5 {
                    format!("{a}:00")
                } else {
                    a.clone()
                };
                let mut t = self
                    .local
                    .parse_local(&format!("{}T{a}", self.date))
                    .map_err(|e| anyhow!(e))?;
                while t < self.now {
                    t += 86_400_000;
                }
                Ok(t)
            }
            (None, Some(d)) => Ok(self.now + duration_ms(d)?),
            (None, None) => Ok(self.now),
            _ => bail!("give `at` or `after`, not both"),
        }
    }
}

/// Runs the fixture file at `path`; `Err` explains the first failed expectation (or a
/// malformed fixture).
pub fn run(path: &Path) -> Result<Outcome> {
    let text = std::fs::read_to_string(path)?;
    let fx: Fixture = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let defaults = Defaults {
        local: LocalTime::named("UTC").map_err(|e| anyhow!(e))?,
        heartbeat_s: 900,
    };
    let rules_text = toml::to_string(&fx.rules)?;
    let mut rules = Arc::new(RuleSet::parse(&rules_text, &defaults).map_err(|issues| {
        anyhow!(
            "rules invalid: {}",
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?);
    let local = rules.local.clone();
    let start = local.parse_local(&fx.start).map_err(|e| anyhow!(e))?;
    let date = fx.start.split('T').next().unwrap_or_default().to_owned();
    let mut clock = Clock {
        local: local.clone(),
        date,
        start,
        now: start,
    };

    let mut profiles: BTreeMap<String, DeviceProfile> = BTreeMap::new();
    for d in &fx.device {
        let kind = DeviceKind::parse(&d.kind).ok_or_else(|| anyhow!("unknown kind {}", d.kind))?;
        let ns: Vec<Option<u32>> = match d.count {
            Some(c) => (1..=c).map(Some).collect(),
            None => vec![None],
        };
        for n in ns {
            let subject = match (&d.resident, &d.asset) {
                (Some(r), None) => Some((SubjectKind::Resident, expand(r, n))),
                (None, Some(a)) => Some((SubjectKind::Asset, expand(a, n))),
                (None, None) => None,
                _ => bail!("device {}: resident or asset, not both", d.id),
            };
            let id = expand(&d.id, n);
            profiles.insert(
                id.clone(),
                DeviceProfile {
                    id,
                    kind,
                    site: d.site.clone(),
                    zone: d.zone.clone(),
                    subject,
                    heartbeat_s: d.heartbeat_s,
                    trust: Trust::Sealed,
                },
            );
        }
    }

    let dir = tempfile::tempdir()?;
    let mut db = AlarmDb::open(dir.path())?;
    let mut core = AlarmCore::new(rules.clone(), Vec::new(), Default::default(), 1);
    for p in profiles.values() {
        core.rules.register(p, start);
    }
    let mut out = Outcome::default();
    let commit =
        |core: &mut AlarmCore, db: &mut AlarmDb, out: &mut Outcome, now: u64| -> Result<()> {
            let dirty = core.rules.take_dirty();
            let changes = core.take_changes();
            db.commit(dirty, &changes, None, now, false)?;
            for a in &changes.alarms {
                out.alarms.insert(a.id, a.clone());
            }
            out.transitions.extend(changes.transitions);
            out.notes.extend(changes.notes);
            Ok(())
        };

    for (i, step) in fx.step.iter().enumerate() {
        let t = clock
            .time(&step.at, &step.after)
            .with_context(|| format!("step {i}"))?;
        if t < clock.now {
            bail!("step {i} goes back in time");
        }
        clock.now = t;
        if step.restart {
            drop(core);
            let loaded = db.load()?;
            core = AlarmCore::new(rules.clone(), loaded.open, loaded.controls, loaded.next_id);
            core.rules.start_at(loaded.alive_ms);
            for (r, tg, s) in &loaded.states {
                core.rules.restore(r, tg, s);
            }
            core.rules.resume(loaded.alive_ms, t);
            for p in profiles.values() {
                core.rules.register(p, t);
            }
            core.drop_unplanned(t);
            core.advance(t);
            commit(&mut core, &mut db, &mut out, t)?;
            continue;
        }
        core.advance(t);
        commit(&mut core, &mut db, &mut out, t)?;
        if let Some(table) = &step.reload {
            let text = toml::to_string(table)?;
            let new = RuleSet::parse(&text, &defaults).map_err(|issues| {
                anyhow!(
                    "step {i}: reload refused: {}",
                    issues
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            rules = Arc::new(new);
            core.reload(rules.clone());
            commit(&mut core, &mut db, &mut out, t)?;
        }
        let result = action(&mut core, step, t);
        match (&step.expect_error, result) {
            (Some(want), Err(e)) if e.to_string().contains(want.as_str()) => {}
            (Some(want), r) => bail!("step {i}: expected an error containing `{want}`, got {r:?}"),
            (None, Err(e)) => bail!("step {i}: {e}"),
            (None, Ok(())) => {}
        }
        if let Some(dev) = &step.device {
            let ns: Vec<Option<u32>> = match step.count {
                Some(c) => (1..=c).map(Some).collect(),
                None => vec![None],
            };
            let reports: Vec<&toml::Value> = step.report.iter().chain(&step.reports).collect();
            let repeat = step.repeat.unwrap_or(reports.len().max(1) as u32);
            let every = step
                .every
                .as_deref()
                .map(duration_ms)
                .transpose()?
                .unwrap_or(0);
            let mut t = t;
            for k in 0..repeat {
                for n in &ns {
                    let id = expand(dev, *n);
                    let p = profiles
                        .get(&id)
                        .ok_or_else(|| anyhow!("step {i}: no device {id}"))?;
                    let r: Report = reports
                        .get(k as usize % reports.len().max(1))
                        .ok_or_else(|| anyhow!("step {i}: no report"))?
                        .to_owned()
                        .clone()
                        .try_into()
                        .with_context(|| format!("step {i}: report"))?;
                    core.apply(p, &r, t);
                    commit(&mut core, &mut db, &mut out, t)?;
                    if every > 0 && step.count.is_some() {
                        t += every;
                    }
                }
                if every > 0 && step.count.is_none() {
                    t += every;
                }
            }
            clock.now = clock.now.max(t.saturating_sub(every.min(t)));
        }
    }
    if let Some(end) = &fx.end {
        let t = clock.time(&Some(end.clone()), &None)?;
        core.advance(t);
        commit(&mut core, &mut db, &mut out, t)?;
    }
    check(&fx, &out, &clock)?;
    Ok(out)
}

fn find(core: &AlarmCore, a: &Act) -> Result<u64> {
    core.alarms
        .find(&a.alarm, &a.source)
        .map(|x| x.id)
        .ok_or_else(|| anyhow!("no open `{}` alarm for {}", a.alarm, a.source))
}

fn action(core: &mut AlarmCore, s: &Step, t: u64) -> Result<()> {
    if let Some(a) = &s.ack {
        let id = find(core, a)?;
        core.alarms.ack(id, &a.by, t, &a.note)?;
    }
    if let Some(a) = &s.resolve {
        let id = find(core, a)?;
        core.alarms.resolve(id, &a.by, t, &a.note)?;
    }
    if let Some(a) = &s.shelve {
        let id = find(core, a)?;
        core.alarms
            .shelve(id, &a.by, t, a.seconds.unwrap_or(3600), &a.note)?;
    }
    if let Some(a) = &s.away {
        core.rules.set_away(&a.subject, a.on);
    }
    if let Some(o) = &s.out_of_service {
        core.alarms.set_out_of_service(&o.source, o.on, &o.by, t);
    }
    Ok(())
}

fn check(fx: &Fixture, out: &Outcome, clock: &Clock) -> Result<()> {
    let summary = || {
        out.alarms
            .values()
            .map(|a| {
                format!(
                    "#{} {} {} P{} {:?} count {} at {}",
                    a.id,
                    a.kind,
                    a.source,
                    a.priority,
                    a.state,
                    a.count,
                    clock.local.format(a.raised_ms)
                )
            })
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    let matching = |kind: &str, source: &Option<String>| -> Vec<&Alarm> {
        out.alarms
            .values()
            .filter(|a| a.kind == kind && source.as_ref().is_none_or(|s| *s == a.source))
            .collect()
    };
    if let Some(n) = fx.alarms_total {
        if out.alarms.len() != n {
            bail!(
                "expected {n} alarms in all, got {}:\n  {}",
                out.alarms.len(),
                summary()
            );
        }
    }
    if let Some(n) = fx.announced_total {
        let got = out.alarms.values().filter(|a| a.announced()).count();
        if got != n {
            bail!("expected {n} announced alarms, got {got}:\n  {}", summary());
        }
    }
    for e in &fx.expect {
        let found = matching(&e.alarm, &e.source);
        match e.instances {
            Some(n) if found.len() != n => bail!(
                "expected {n} `{}` alarm(s) ({:?}), got {}:\n  {}",
                e.alarm,
                e.source,
                found.len(),
                summary()
            ),
            None if found.is_empty() => bail!(
                "expected a `{}` alarm ({:?}), got none:\n  {}",
                e.alarm,
                e.source,
                summary()
            ),
            _ => {}
        }
        for a in found {
            let what = format!("`{}` alarm #{} of {}", a.kind, a.id, a.source);
            let eq = |name: &str, want: String, got: String| -> Result<()> {
                if want != got {
                    bail!("{what}: {name} expected {want}, got {got}");
                }
                Ok(())
            };
            if let Some(p) = e.priority {
                eq("priority", p.to_string(), a.priority.to_string())?;
            }
            if let Some(s) = &e.state {
                eq("state", s.clone(), a.state.as_str().to_owned())?;
            }
            if let Some(c) = e.count {
                eq("count", c.to_string(), a.count.to_string())?;
            }
            if let Some(at) = &e.raised_at {
                let want = clock.expected(at)?;
                eq(
                    "raised at",
                    clock.local.format(want),
                    clock.local.format(a.raised_ms),
                )?;
            }
            if let Some(s) = e.suppressed {
                eq(
                    "suppressed",
                    s.to_string(),
                    a.suppressed_by.is_some().to_string(),
                )?;
            }
            if let Some(c) = e.children {
                eq("children", c.to_string(), a.children.to_string())?;
            }
            if let Some(c) = e.chattering {
                eq("chattering", c.to_string(), a.chattering.to_string())?;
            }
            if let Some(c) = e.escalations {
                eq("escalations", c.to_string(), a.escalations.to_string())?;
            }
            if let Some(s) = &e.shown_as {
                eq("shown as", s.clone(), a.shown_as().to_owned())?;
            }
            if let Some(f) = e.flooded {
                eq(
                    "flooded",
                    f.to_string(),
                    a.flooded_into.is_some().to_string(),
                )?;
            }
        }
    }
    for n in &fx.expect_none {
        let found = matching(&n.alarm, &n.source);
        if !found.is_empty() {
            bail!(
                "expected no `{}` alarm ({:?}), got:\n  {}",
                n.alarm,
                n.source,
                summary()
            );
        }
    }
    for n in &fx.expect_note {
        let found: Vec<&Note> = out
            .notes
            .iter()
            .filter(|x| x.what == n.what && n.source.as_ref().is_none_or(|s| *s == x.source))
            .filter(|x| {
                n.detail_contains
                    .as_ref()
                    .is_none_or(|d| x.detail.contains(d.as_str()))
            })
            .collect();
        let ok = match n.count {
            Some(c) => found.len() == c,
            None => !found.is_empty(),
        };
        if !ok {
            bail!(
                "expected note `{}` ({:?}, count {:?}), notes were: {:?}",
                n.what,
                n.source,
                n.count,
                out.notes
            );
        }
    }
    for t in &fx.expect_transition {
        let ids: Vec<u64> = matching(&t.alarm, &t.source).iter().map(|a| a.id).collect();
        let want_at = t.at.as_ref().map(|a| clock.expected(a)).transpose()?;
        let found: Vec<&Transition> = out
            .transitions
            .iter()
            .filter(|x| ids.contains(&x.alarm) && x.action == t.action)
            .filter(|x| t.who.as_ref().is_none_or(|w| *w == x.who))
            .filter(|x| {
                t.note_contains
                    .as_ref()
                    .is_none_or(|n| x.note.contains(n.as_str()))
            })
            .filter(|x| want_at.is_none_or(|w| w == x.at_ms))
            .collect();
        let ok = match t.count {
            Some(c) => found.len() == c,
            None => !found.is_empty(),
        };
        if !ok {
            let all: Vec<String> = out
                .transitions
                .iter()
                .filter(|x| ids.contains(&x.alarm))
                .map(|x| {
                    format!(
                        "{} {} by {} ({})",
                        clock.local.format(x.at_ms),
                        x.action,
                        x.who,
                        x.note
                    )
                })
                .collect();
            bail!(
                "expected transition `{}` of `{}` ({:?}) who {:?} note {:?} count {:?}; found {}; its transitions:\n  {}",
                t.action, t.alarm, t.source, t.who, t.note_contains, t.count, found.len(), all.join("\n  ")
            );
        }
    }
    Ok(())
}
