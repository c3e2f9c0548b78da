//! The routing file: people and how to reach them, teams by role and zone, shifts in
//! local time (the roster), escalation policies per priority and alarm kind, and work
//! order grades. Parse, validate (every problem, named by key), then query.
//!
//! Pure: "who is on duty" takes the time as an argument. Does not send anything, keep
//! escalation state (`escalation`) or know the channels' addresses (main config).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::ConfigIssue;
use crate::rules::localtime::{Calendar, LocalTime, Window};

/// The built-in routing: teams by role with nobody in them yet, and the policies.
pub const DEFAULT_ROUTING: &str = include_str!("../../routing.default.toml");

/// How a person is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// E-mail over SMTP to the person's `email`.
    Email,
    /// A POST to the named webhook (an SMS or voice provider), carrying the person.
    Webhook(String),
}

impl Contact {
    /// Channel name as stored with a delivery: `email` or `webhook:NAME`.
    pub fn channel(&self) -> String {
        match self {
            Contact::Email => "email".into(),
            Contact::Webhook(n) => format!("webhook:{n}"),
        }
    }
}

/// Someone who can be paged.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Id (used in shifts, acknowledgements, work orders).
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number (passed to SMS/voice webhooks).
    pub phone: Option<String>,
    /// How to reach them, in order.
    pub contacts: Vec<Contact>,
}

/// One person's shift in a team.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// Person id.
    pub person: String,
    /// Daily window in local time.
    pub window: Window,
    /// Days it applies.
    pub calendar: Calendar,
}

/// A team: a role for some zones or sites (none = everywhere), and who is on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    /// Id.
    pub id: String,
    /// Role the policies name (`caregiver`, `supervisor`, `lighting_crew`, …).
    pub role: String,
    /// Zones covered; empty with `sites` empty = all.
    pub zones: Vec<String>,
    /// Sites covered.
    pub sites: Vec<String>,
    /// Always on duty when the team has no shifts.
    pub members: Vec<String>,
    /// Shifts (the roster).
    pub shifts: Vec<Shift>,
}

impl Team {
    fn covers(&self, site: &str, zone: &str) -> bool {
        (self.zones.is_empty() && self.sites.is_empty())
            || self.zones.iter().any(|z| z == zone)
            || self.sites.iter().any(|s| s == site)
    }

    fn specific(&self) -> bool {
        !(self.zones.is_empty() && self.sites.is_empty())
    }
}

/// One escalation step: after this long unacknowledged, page these roles.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Since the alarm was announced, ms.
    pub after_ms: u64,
    /// Roles to page (each resolves to the team covering the alarm's zone).
    pub roles: Vec<String>,
}

/// Work order grade (SLA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// 2 h by default.
    Red,
    /// 24 h.
    Yellow,
    /// 72 h.
    Blue,
}

impl Grade {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Red => "red",
            Grade::Yellow => "yellow",
            Grade::Blue => "blue",
        }
    }
}

/// A work order for a crew, opened when the alarm is raised.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkOrderPolicy {
    /// Role of the crew.
    pub role: String,
    /// SLA grade.
    pub grade: Grade,
    /// Role also told when the order goes overdue (a supervisor, the technical desk).
    pub overdue: Option<String>,
}

/// What happens to alarms of some priority (and kinds).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Alarm priority it applies to.
    pub priority: u8,
    /// Alarm kinds (rule names); empty = any kind of this priority.
    pub kinds: Vec<String>,
    /// Escalation steps (none: never a page).
    pub steps: Vec<Step>,
    /// Each step pages the earlier steps' people again.
    pub renotify: bool,
    /// Work order to open.
    pub work_order: Option<WorkOrderPolicy>,
}

/// SLA durations per grade and the verification window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkOrderTimes {
    /// Red, ms.
    pub red_ms: u64,
    /// Yellow, ms.
    pub yellow_ms: u64,
    /// Blue, ms.
    pub blue_ms: u64,
    /// After "fixed", the fault must be gone within this long or the order reopens, ms.
    pub verify_ms: u64,
}

impl WorkOrderTimes {
    /// SLA of a grade, ms.
    pub fn sla_ms(&self, g: Grade) -> u64 {
        match g {
            Grade::Red => self.red_ms,
            Grade::Yellow => self.yellow_ms,
            Grade::Blue => self.blue_ms,
        }
    }
}

/// The compiled routing file.
#[derive(Debug, Clone)]
pub struct Routing {
    /// People by id.
    pub people: BTreeMap<String, Person>,
    /// Teams in file order.
    pub teams: Vec<Team>,
    /// Policies in file order (the first that matches wins).
    pub policies: Vec<Policy>,
    /// Work order SLAs.
    pub work_orders: WorkOrderTimes,
    /// Zone for shifts.
    pub local: LocalTime,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    timezone: Option<String>,
    #[serde(default)]
    person: Vec<PersonDef>,
    #[serde(default)]
    team: Vec<TeamDef>,
    #[serde(default)]
    policy: Vec<PolicyDef>,
    #[serde(default)]
    work_orders: TimesDef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonDef {
    id: String,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[serde(default)]
    contact: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamDef {
    id: String,
    role: String,
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    shift: Vec<ShiftDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftDef {
    person: String,
    window: String,
    #[serde(default)]
    days: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDef {
    priority: u8,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    step: Vec<StepDef>,
    #[serde(default = "yes")]
    renotify: bool,
    work_order: Option<WorkOrderDef>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDef {
    after_s: u64,
    notify: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkOrderDef {
    role: String,
    grade: Grade,
    overdue: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TimesDef {
    red_h: f64,
    yellow_h: f64,
    blue_h: f64,
    verify_s: u64,
}

impl Default for TimesDef {
    fn default() -> Self {
        TimesDef {
            red_h: 2.0,
            yellow_h: 24.0,
            blue_h: 72.0,
            verify_s: 600,
        }
    }
}

/// Problems found so far, each named by its key.
type Issues = Vec<ConfigIssue>;

fn issue(issues: &mut Issues, key: String, message: String) {
    issues.push(ConfigIssue { key, message });
}

/// Ids end up in idempotency keys, e-mail headers and metric labels. A person's id is
/// the last part of a delivery key, whose parts `-` separates, so it has none.
fn check_id(issues: &mut Issues, key: String, id: &str, dash: bool) {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || (dash && b == b'-'));
    if !ok {
        let allowed = if dash {
            "A-Z a-z 0-9 _ . -"
        } else {
            "A-Z a-z 0-9 _ . (no `-`: it separates the parts of delivery keys)"
        };
        issue(issues, key, format!("`{id}`: use 1-64 of {allowed}"));
    }
}

fn parse_people(
    defs: &[PersonDef],
    webhooks: &[String],
    has_smtp: bool,
    issues: &mut Issues,
) -> BTreeMap<String, Person> {
    let mut people = BTreeMap::new();
    for (i, p) in defs.iter().enumerate() {
        let key = format!("person[{i}]");
        check_id(issues, format!("{key}.id"), &p.id, false);
        if let Some(e) = &p.email {
            if let Err(err) = e.parse::<lettre::Address>() {
                issue(
                    issues,
                    format!("{key}.email"),
                    format!("`{e}` is not an e-mail address ({err})"),
                );
            }
        }
        let mut contacts = Vec::new();
        for c in &p.contact {
            let k = format!("{key}.contact");
            match c.split_once(':') {
                None if c == "email" => {
                    if p.email.is_none() {
                        issue(
                            issues,
                            k.clone(),
                            "`email` needs the person's `email` address".into(),
                        );
                    }
                    if !has_smtp {
                        issue(
                            issues,
                            k,
                            "`email` needs [delivery.smtp] in the gateway config".into(),
                        );
                    }
                    contacts.push(Contact::Email);
                }
                Some(("webhook", name)) => {
                    if !webhooks.iter().any(|w| w == name) {
                        issue(issues, k, format!("no [[delivery.webhook]] named `{name}` (receives = \"pages\") in the gateway config"));
                    }
                    contacts.push(Contact::Webhook(name.to_owned()));
                }
                _ => issue(
                    issues,
                    k,
                    format!("`{c}` is not a contact: write \"email\" or \"webhook:NAME\""),
                ),
            }
        }
        let person = Person {
            id: p.id.clone(),
            name: p.name.clone().unwrap_or_else(|| p.id.clone()),
            email: p.email.clone(),
            phone: p.phone.clone(),
            contacts,
        };
        if people.insert(p.id.clone(), person).is_some() {
            issue(
                issues,
                format!("{key}.id"),
                format!("`{}` is used twice", p.id),
            );
        }
    }
    people
}

fn parse_teams(
    defs: &[TeamDef],
    people: &BTreeMap<String, Person>,
    issues: &mut Issues,
) -> Vec<Team> {
    let mut teams: Vec<Team> = Vec::new();
    for (i, t) in defs.iter().enumerate() {
        let key = format!("team[{i}]");
        check_id(issues, format!("{key}.id"), &t.id, true);
        if teams.iter().any(|x| x.id == t.id) {
            issue(
                issues,
                format!("{key}.id"),
                format!("`{}` is used twice", t.id),
            );
        }
        for m in t.members.iter().filter(|m| !people.contains_key(*m)) {
            issue(
                issues,
                format!("{key}.members"),
                format!("no [[person]] with id `{m}`"),
            );
        }
        let mut shifts = Vec::new();
        for (j, s) in t.shift.iter().enumerate() {
            let skey = format!("{key}.shift[{j}]");
            if !people.contains_key(&s.person) {
                issue(
                    issues,
                    format!("{skey}.person"),
                    format!("no [[person]] with id `{}`", s.person),
                );
            }
            let window =
                Window::parse(&s.window).map_err(|m| issue(issues, format!("{skey}.window"), m));
            let calendar = Calendar::parse(&s.days, &s.except).map_err(|ms| {
                ms.into_iter()
                    .for_each(|m| issue(issues, format!("{skey}.days"), m))
            });
            if let (Ok(window), Ok(calendar)) = (window, calendar) {
                shifts.push(Shift {
                    person: s.person.clone(),
                    window,
                    calendar,
                });
            }
        }
        teams.push(Team {
            id: t.id.clone(),
            role: t.role.clone(),
            zones: t.zones.clone(),
            sites: t.sites.clone(),
            members: t.members.clone(),
            shifts,
        });
    }
    teams
}

fn parse_policies(defs: &[PolicyDef], teams: &[Team], issues: &mut Issues) -> Vec<Policy> {
    let has_role = |r: &str| teams.iter().any(|t| t.role == r);
    let mut policies = Vec::new();
    for (i, p) in defs.iter().enumerate() {
        let key = format!("policy[{i}]");
        if !(1..=4).contains(&p.priority) {
            issue(
                issues,
                format!("{key}.priority"),
                "must be 1 (life-safety) … 4 (maintenance)".into(),
            );
        }
        let mut last = 0;
        let mut steps = Vec::new();
        for (j, s) in p.step.iter().enumerate() {
            let skey = format!("{key}.step[{j}]");
            if s.after_s < last {
                issue(
                    issues,
                    format!("{skey}.after_s"),
                    "steps must come in time order".into(),
                );
            }
            if s.after_s > 7 * 86_400 {
                issue(
                    issues,
                    format!("{skey}.after_s"),
                    "is at most a week".into(),
                );
            }
            last = s.after_s;
            if s.notify.is_empty() {
                issue(issues, format!("{skey}.notify"), "names no role".into());
            }
            for r in s.notify.iter().filter(|r| !has_role(r)) {
                issue(
                    issues,
                    format!("{skey}.notify"),
                    format!("no [[team]] has role `{r}`"),
                );
            }
            steps.push(Step {
                after_ms: s.after_s * 1000,
                roles: s.notify.clone(),
            });
        }
        if p.priority == 1 && steps.first().is_none_or(|s| s.after_ms > 0) {
            issue(issues, format!("{key}.step"), "a priority-1 (life-safety) policy must page someone at once (a first step with after_s = 0)".into());
        }
        if let Some(w) = &p.work_order {
            for (k, role) in [("role", Some(&w.role)), ("overdue", w.overdue.as_ref())] {
                if let Some(role) = role.filter(|r| !has_role(r)) {
                    issue(
                        issues,
                        format!("{key}.work_order.{k}"),
                        format!("no [[team]] has role `{role}`"),
                    );
                }
            }
        }
        policies.push(Policy {
            priority: p.priority,
            kinds: p.kinds.clone(),
            steps,
            renotify: p.renotify,
            work_order: p.work_order.as_ref().map(|w| WorkOrderPolicy {
                role: w.role.clone(),
                grade: w.grade,
                overdue: w.overdue.clone(),
            }),
        });
    }
    for prio in 1..=4u8 {
        if !policies
            .iter()
            .any(|p| p.priority == prio && p.kinds.is_empty())
        {
            issue(
                issues,
                "policy".into(),
                format!(
                    "no policy for priority {prio} without `kinds` (the fallback for its alarms)"
                ),
            );
        }
    }
    policies
}

fn parse_times(t: &TimesDef, issues: &mut Issues) -> WorkOrderTimes {
    let mut h = |x: f64, k: &str| {
        if !(x > 0.0 && x <= 24.0 * 365.0) {
            issue(
                issues,
                format!("work_orders.{k}"),
                "must be above 0 and at most a year".into(),
            );
        }
        (x * 3_600_000.0) as u64
    };
    let times = WorkOrderTimes {
        red_ms: h(t.red_h, "red_h"),
        yellow_ms: h(t.yellow_h, "yellow_h"),
        blue_ms: h(t.blue_h, "blue_h"),
        verify_ms: t.verify_s * 1000,
    };
    if t.verify_s == 0 || t.verify_s > 86_400 {
        issue(
            issues,
            "work_orders.verify_s".into(),
            "must be above 0 and at most a day".into(),
        );
    }
    times
}

impl Routing {
    /// Parses and validates a routing file. `webhooks` are the configured webhook names
    /// that take pages (contacts may only name those); `has_smtp` says whether e-mail
    /// is configured.
    pub fn parse(
        text: &str,
        local: &LocalTime,
        webhooks: &[String],
        has_smtp: bool,
    ) -> Result<Routing, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let file: FileDef = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                issue(&mut issues, "routing".into(), e.to_string());
                return Err(issues);
            }
        };
        let local = match &file.timezone {
            Some(n) => LocalTime::named(n).unwrap_or_else(|m| {
                issue(&mut issues, "timezone".into(), m);
                local.clone()
            }),
            None => local.clone(),
        };
        let people = parse_people(&file.person, webhooks, has_smtp, &mut issues);
        let teams = parse_teams(&file.team, &people, &mut issues);
        let policies = parse_policies(&file.policy, &teams, &mut issues);
        let work_orders = parse_times(&file.work_orders, &mut issues);
        if issues.is_empty() {
            Ok(Routing {
                people,
                teams,
                policies,
                work_orders,
                local,
            })
        } else {
            Err(issues)
        }
    }

    /// The policy for an alarm: the first naming its kind, else its priority's fallback.
    pub fn policy(&self, priority: u8, kind: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.priority == priority && p.kinds.iter().any(|k| k == kind))
            .or_else(|| {
                self.policies
                    .iter()
                    .find(|p| p.priority == priority && p.kinds.is_empty())
            })
    }

    /// The team with `role` for a site and zone: one naming the zone or site first,
    /// else one covering everywhere.
    pub fn team(&self, role: &str, site: &str, zone: &str) -> Option<&Team> {
        let mut of_role = self.teams.iter().filter(|t| t.role == role);
        of_role
            .clone()
            .find(|t| t.specific() && t.covers(site, zone))
            .or_else(|| of_role.find(|t| !t.specific()))
    }

    /// Teams that life-safety (priority-1) steps page, with the stretches of the week
    /// from `from_ms` when nobody on them can be reached (no shift, or no contact),
    /// checked every 15 minutes: `(team, [(start_ms, end_ms)])`, teams with gaps only.
    pub fn life_safety_gaps(&self, from_ms: u64) -> Vec<(&Team, Vec<(u64, u64)>)> {
        const SLOT: u64 = 15 * 60_000;
        let roles: Vec<&String> = self
            .policies
            .iter()
            .filter(|p| p.priority == 1)
            .flat_map(|p| p.steps.iter().flat_map(|s| &s.roles))
            .collect();
        let mut out = Vec::new();
        for team in self.teams.iter().filter(|t| roles.contains(&&t.role)) {
            let mut gaps: Vec<(u64, u64)> = Vec::new();
            for i in 0..(7 * 24 * 4) {
                let t = from_ms + i * SLOT;
                let reachable = self.on_duty(team, t).iter().any(|p| !p.contacts.is_empty());
                if reachable {
                    continue;
                }
                match gaps.last_mut() {
                    Some(g) if g.1 == t => g.1 = t + SLOT,
                    _ => gaps.push((t, t + SLOT)),
                }
            }
            if !gaps.is_empty() {
                out.push((team, gaps));
            }
        }
        out
    }

    /// Who of a team is on duty at `t_ms`: the members when it has no shifts, else the
    /// people whose shift window contains `t_ms`.
    pub fn on_duty(&self, team: &Team, t_ms: u64) -> Vec<&Person> {
        let ids: Vec<&String> = if team.shifts.is_empty() {
            team.members.iter().collect()
        } else {
            team.shifts
                .iter()
                .filter(|s| {
                    self.local
                        .containing(&s.window, &s.calendar, t_ms)
                        .is_some()
                })
                .map(|s| &s.person)
                .collect()
        };
        let mut out: Vec<&Person> = Vec::new();
        for id in ids {
            if let Some(p) = self.people.get(id) {
                if !out.iter().any(|x| x.id == p.id) {
                    out.push(p);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> LocalTime {
        LocalTime::named("UTC").expect("utc")
    }

    #[test]
    fn default_routing_is_valid() {
        let r = Routing::parse(DEFAULT_ROUTING, &utc(), &[], false).expect("valid");
        assert!(r.policy(1, "fall").is_some_and(|p| !p.steps.is_empty()));
        let p4 = r.policy(4, "low_battery").expect("p4");
        assert!(
            p4.steps.is_empty() && p4.work_order.is_some(),
            "P4 is a work order, never a page"
        );
    }

    #[test]
    fn every_problem_is_named_by_key() {
        let text = r#"
[[person]]
id = "anna"
contact = ["email", "webhook:sms", "pager"]
[[team]]
id = "c"
role = "caregiver"
members = ["bob"]
[[team.shift]]
person = "anna"
window = "25:00-07:00"
[[policy]]
priority = 1
[[policy]]
priority = 2
[[policy.step]]
after_s = 60
notify = ["nurse"]
[[policy.step]]
after_s = 0
notify = ["caregiver"]
"#;
        let issues = Routing::parse(text, &utc(), &[], false).expect_err("invalid");
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for k in [
            "person[0].contact",
            "team[0].members",
            "team[0].shift[0].window",
            "policy[0].step",
            "policy[1].step[0].notify",
            "policy[1].step[1].after_s",
            "policy",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        // email without address, email without SMTP, unknown webhook, unknown contact
        assert_eq!(
            keys.iter().filter(|k| **k == "person[0].contact").count(),
            4
        );
    }

    #[test]
    fn shifts_decide_who_is_on_duty_and_zones_pick_the_team() {
        let text = r#"
[[person]]
id = "anna"
[[person]]
id = "bo"
[[person]]
id = "chen"
[[team]]
id = "wing-a"
role = "caregiver"
zones = ["wing-a"]
[[team.shift]]
person = "anna"
window = "07:00-19:00"
[[team.shift]]
person = "bo"
window = "19:00-07:00"
[[team]]
id = "everyone"
role = "caregiver"
members = ["chen"]
[[policy]]
priority = 1
[[policy.step]]
after_s = 0
notify = ["caregiver"]
[[policy]]
priority = 2
[[policy]]
priority = 3
[[policy]]
priority = 4
"#;
        let r = Routing::parse(text, &utc(), &[], false).expect("valid");
        let t = r.team("caregiver", "s", "wing-a").expect("team");
        assert_eq!(t.id, "wing-a");
        let at = |h: u64| 1_767_225_600_000 + h * 3_600_000; // 2026-01-01 00:00 UTC
        let ids = |h| {
            r.on_duty(t, at(h))
                .iter()
                .map(|p| p.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(8), ["anna"]);
        assert_eq!(ids(3), ["bo"]);
        assert_eq!(ids(20), ["bo"]);
        assert_eq!(
            r.team("caregiver", "s", "wing-b").expect("fallback").id,
            "everyone"
        );
        assert!(r.team("supervisor", "s", "wing-a").is_none());
    }
}
