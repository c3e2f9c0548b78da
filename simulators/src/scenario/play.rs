//! Playing a scenario against a gateway: the steps at their device times (through the
//! fleet's handles and the gateway's API), the alarms and pages seen as they come, and
//! the verdict of each expectation.
//!
//! Owns the timeline and the verdict; does not own the format (see `format`), the
//! fleet or the gateway.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use linli_firmware::fall::scenario::Kind;
use serde_json::{json, Value};

use super::format::{parse_clock, Action, Expect, Scenario, Step};
use crate::api::Api;
use crate::fleet;

/// The gateway a scenario runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its HTTP API, `http://host:port`.
    pub http: String,
    /// Its MQTT 5 listener.
    pub broker: std::net::SocketAddr,
    /// Its data directory (the fleet is provisioned into its registry).
    pub data_dir: std::path::PathBuf,
    /// Its routing file (`[delivery] routing`), which a `roster` step replaces.
    pub routing: Option<std::path::PathBuf>,
    /// The pages its page webhook delivered to the simulation's pager, if it has one.
    pub pages: Option<crate::pager::Pages>,
}

/// How one expectation came out.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The expectation.
    pub expect: Expect,
    /// It held.
    pub ok: bool,
    /// When the alarm was first seen, device time since the start.
    pub seen_at: Option<Duration>,
    /// Its count when last seen.
    pub count: Option<u32>,
}

/// Every expectation's verdict.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// In the file's order.
    pub verdicts: Vec<Verdict>,
    /// The storyline's clock at its start, if it has one (for showing times).
    pub start: Option<Duration>,
}

impl Outcome {
    /// Every expectation held.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.ok)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for v in &self.verdicts {
            let e = &v.expect;
            let what = match (e.absent, &e.page) {
                (true, None) => "no".to_owned(),
                (false, None) => "a".to_owned(),
                (true, Some(p)) => format!("no page to {p} about a"),
                (false, Some(p)) => format!("a page to {p} about a"),
            };
            let seen = v.seen_at.map_or("never seen".to_owned(), |t| {
                format!("seen at {}", clock_label(self.start, t).trim_start())
            });
            let count = match (e.count, v.count) {
                (Some(want), got) => format!(", count {} (want {want})", got.unwrap_or(0)),
                _ => String::new(),
            };
            let held = e
                .gateway_hold_s
                .map(|h| format!(" (+{h} s held on the gateway's clock)"))
                .unwrap_or_default();
            writeln!(
                f,
                "{} {what} {} alarm for {} by {}{held}: {seen}{count}",
                if v.ok { "PASS" } else { "FAIL" },
                e.alarm,
                e.device,
                e.by
            )?;
        }
        Ok(())
    }
}

/// The gateway's API, with its token.
fn api(target: &Target) -> Result<Api> {
    Api::new(&target.http, &target.data_dir)
}

/// The alarms raised since `since_ms` (wall clock): a gateway that ran earlier
/// scenarios keeps their alarms.
async fn alarms(target: &Target, since_ms: u64) -> Vec<Value> {
    let Ok(api) = api(target) else {
        return Vec::new();
    };
    tokio::task::spawn_blocking(move || {
        api.get(
            &format!("/api/alarms?since={since_ms}"),
            Duration::from_secs(5),
        )
    })
    .await
    .ok()
    .and_then(Result::ok)
    .and_then(|v| v["alarms"].as_array().cloned())
    .unwrap_or_default()
}

async fn post(target: &Target, path: String, body: Value) -> Result<()> {
    let api = api(target)?;
    tokio::task::spawn_blocking(move || api.post(&path, &body, Duration::from_secs(5)).map(|_| ()))
        .await?
}

/// The roster changes: `file` replaces the gateway's routing file, which it reloads.
async fn roster(target: &Target, file: &Path) -> Result<()> {
    let Some(routing) = &target.routing else {
        bail!(
            "a roster step replaces the gateway's routing file, and this gateway has none \
             ([delivery] routing in its config)"
        );
    };
    std::fs::copy(file, routing)
        .with_context(|| format!("copying {} to {}", file.display(), routing.display()))?;
    post(target, "/api/routing/reload".into(), json!({}))
        .await
        .context("the gateway refused the new roster")
}

/// Runs `sc` against `target`: provisions and starts its fleet, waits until every device
/// is online, then [`play`]s the storyline. `progress` gets a line per step, per alarm
/// and per verdict.
pub async fn run(
    sc: &Scenario,
    target: &Target,
    progress: &mut dyn FnMut(String),
) -> Result<Outcome> {
    let speed = sc.speed.max(1);
    let members = fleet::provision(&sc.fleet(), &target.data_dir)?;
    let n = members.len();
    let fl = fleet::start(members, target.broker, speed)?;
    let online = fleet::wait_online(&fl, Duration::from_secs(60)).await;
    if online < n {
        let _ = fl.stop();
        bail!("only {online} of {n} devices came online within a minute");
    }
    progress(format!("{n} devices online; device time ×{speed}"));
    let outcome = play(sc, &fl, target, progress).await;
    fl.stop()?;
    outcome
}

/// How a moment of the storyline reads: `   75s`, or `03:11:15` with a `start`.
fn label(sc: &Scenario, t: Duration) -> String {
    clock_label(sc.start.as_deref().and_then(parse_clock), t)
}

fn clock_label(start: Option<Duration>, t: Duration) -> String {
    match start {
        Some(start) => {
            let s = (start + t).as_secs() % 86_400;
            format!("{:02}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
        }
        None => format!("{:>5}s", t.as_secs()),
    }
}

/// Plays the steps of `sc` on the running fleet `fl` at their device times and watches
/// the gateway's alarms until the last deadline: each step and each alarm the gateway
/// raises goes to `progress` as it happens.
///
/// A storyline with `roster` steps changes the gateway's routing file: it is put back
/// (and reloaded) afterwards, whatever happened.
pub async fn play(
    sc: &Scenario,
    fl: &fleet::Fleet,
    target: &Target,
    progress: &mut dyn FnMut(String),
) -> Result<Outcome> {
    let rosters = sc.step.iter().any(|s| s.action == Action::Roster);
    let original = match (&target.routing, rosters) {
        (Some(path), true) => Some((path, std::fs::read(path).ok())),
        _ => None,
    };
    let outcome = play_story(sc, fl, target, progress).await;
    if let Some((path, Some(text))) = original {
        let restored = match std::fs::write(path, text) {
            Ok(()) => post(target, "/api/routing/reload".into(), json!({})).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = restored {
            progress(format!(
                "could not put the routing file {} back: {e:#}",
                path.display()
            ));
        }
    }
    outcome
}

async fn play_story(
    sc: &Scenario,
    fl: &fleet::Fleet,
    target: &Target,
    progress: &mut dyn FnMut(String),
) -> Result<Outcome> {
    let speed = sc.speed.max(1);
    let start = tokio::time::Instant::now();
    let since_ms = linli_gateway::clock::now_ms().saturating_sub(1_000);
    let real = |device: Duration| device / speed;
    let device_since = |start: tokio::time::Instant| start.elapsed() * speed;
    let mut steps: Vec<&Step> = sc.step.iter().collect();
    steps.sort_by_key(|s| sc.offset(&s.at));
    let last = sc
        .expect
        .iter()
        .filter_map(|e| e.deadline(sc))
        .max()
        .unwrap_or_default();
    let mut seen: Vec<(Option<Duration>, Option<u32>)> = vec![(None, None); sc.expect.len()];
    let fleet_description = sc.fleet();
    let mut announced = std::collections::HashSet::new();
    let mut paged = 0;
    if target.pages.is_none() && sc.expect.iter().any(|e| e.page.is_some()) {
        bail!("the scenario expects pages, and this run has no pager (linli-sim demo has one)");
    }
    let mut next = 0;
    loop {
        let now = device_since(start);
        while let Some(s) = steps
            .get(next)
            .filter(|s| sc.offset(&s.at).is_some_and(|at| at <= now))
        {
            let what = format!("{} {:?}", s.device(), s.action);
            progress(format!("{}  {}", label(sc, now), what.trim_start()));
            perform(fl, target, sc, s).await?;
            next += 1;
        }
        let raised = alarms(target, since_ms).await;
        for a in &raised {
            if announced.insert(a["id"].as_u64().unwrap_or(0)) {
                progress(format!(
                    "{}  ALARM P{} {} from {}{}",
                    label(sc, now),
                    a["priority"],
                    a["kind"].as_str().unwrap_or("?"),
                    a["device"].as_str().unwrap_or("its subject"),
                    a["subject"]
                        .as_str()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ));
            }
        }
        let pages = target.pages.as_ref().map(|p| p.all()).unwrap_or_default();
        for page in &pages[paged..] {
            progress(format!(
                "{}  PAGE to {} ({}): {}",
                label(sc, now),
                page.name,
                page.to,
                page.text
            ));
        }
        paged = pages.len();
        for (e, (t, count)) in sc.expect.iter().zip(seen.iter_mut()) {
            if let Some(person) = &e.page {
                let subject = fleet_description.subject_of(&e.device);
                let found = pages.iter().any(|p| {
                    p.to == *person
                        && p.kind == e.alarm
                        && (p.device.as_deref() == Some(&e.device)
                            || (subject.is_some() && p.subject == subject))
                });
                if found {
                    t.get_or_insert(now);
                }
                continue;
            }
            // An alarm of a resident or an asset names the device whose reading raised
            // it, or none when a hold ran out on the gateway's clock: match either.
            let subject = fleet_description.subject_of(&e.device);
            let found = raised.iter().find(|a| {
                a["kind"] == e.alarm.as_str()
                    && (a["device"] == e.device.as_str()
                        || subject.as_deref().is_some_and(|s| a["subject"] == s))
            });
            if let Some(a) = found {
                t.get_or_insert(now);
                *count = a["count"].as_u64().map(|c| c as u32);
            }
        }
        if now >= last && next >= steps.len() {
            break;
        }
        tokio::time::sleep(real(Duration::from_secs(1)).max(Duration::from_millis(50))).await;
    }
    let verdicts = sc
        .expect
        .iter()
        .zip(seen)
        .map(|(e, (t, count))| {
            let by = e.deadline(sc).unwrap_or_default();
            let in_time = t.is_some_and(|t| t <= by);
            let counted = e.count.is_none_or(|want| count == Some(want));
            Verdict {
                expect: e.clone(),
                ok: if e.absent {
                    t.is_none_or(|t| t > by)
                } else {
                    in_time && counted
                },
                seen_at: t,
                count,
            }
        })
        .collect();
    Ok(Outcome {
        verdicts,
        start: sc.start.as_deref().and_then(parse_clock),
    })
}

async fn perform(fl: &fleet::Fleet, target: &Target, sc: &Scenario, s: &Step) -> Result<()> {
    use crate::virtual_board::Handle as H;
    use Action as A;
    if s.action == A::Roster {
        let file = sc.base.join(s.routing.as_deref().unwrap_or_default());
        return roster(target, &file).await;
    }
    let device = s.device();
    let h = fl
        .handle(device)
        .with_context(|| format!("{device} is not in the fleet"))?;
    let (mm_per_min, mm) = (s.mm_per_min.unwrap_or(0), s.mm.unwrap_or(0));
    match (s.action, h) {
        (a, H::Pendant(w)) if a.wearer().is_some() => {
            w.push(a.wearer().unwrap_or(Kind::LieDown), 7);
        }
        (A::Sos, H::Pendant(w)) => w.press(),
        (A::LampBreaks, H::StreetLight(l)) => l.set_broken(true),
        (A::LampFixed, H::StreetLight(l)) => l.set_broken(false),
        (A::RelayWelds, H::StreetLight(l)) => l.set_welded(true),
        (A::DriverDeaf, H::StreetLight(l)) => l.set_deaf(true),
        (A::SwitchOn | A::SwitchOff, H::StreetLight(_)) => {
            let body =
                json!({"command": {"relay": {"on": s.action == A::SwitchOn}}, "by": "scenario"});
            post(target, format!("/api/devices/{device}/command"), body)
                .await
                .with_context(|| format!("switching {device}"))?;
        }
        (A::WaterRises, H::WaterLevel(w)) => w.rise(mm_per_min),
        (A::WaterRises, H::Manhole(c)) => c.water().rise(mm_per_min),
        (A::WaterLevel, H::WaterLevel(w)) => w.set_level_mm(mm),
        (A::WaterLevel, H::Manhole(c)) => c.water().set_level_mm(mm),
        (A::LoopCut, H::WaterLevel(w)) => w.set_cut(true),
        (A::CoverLifted, H::Manhole(c)) => c.lift(),
        (A::CoverTilted, H::Manhole(c)) => c.tilt(s.deg.unwrap_or(0)),
        (A::CoverReplaced, H::Manhole(c)) => c.replace(),
        (A::BinFill, H::WasteBin(b)) => b.set_fill_pct(s.pct.unwrap_or(0)),
        (A::BinFire, H::WasteBin(b)) => b.set_fire(true),
        (A::BinFireOut, H::WasteBin(b)) => b.set_fire(false),
        (A::BinKnockedOver, H::WasteBin(b)) => b.set_knocked_over(true),
        (A::BedEnter, H::Bed(p)) => p.set_occupied(true),
        (A::BedExit, H::Bed(p)) => p.set_occupied(false),
        (A::DoorOpen, H::Door(d)) => d.set_open(true),
        (A::DoorClose, H::Door(d)) => d.set_open(false),
        (A::Motion, H::Motion(p)) => p.pulse(),
        (A::HeartRate, H::Vitals(v)) => v.set_heart_rate_bpm(s.bpm.unwrap_or(0)),
        (A::Spo2, H::Vitals(v)) => v.set_spo2_pct(s.pct.unwrap_or(0)),
        (A::InBed, H::Vitals(v)) => v.set_in_bed(true),
        (A::OutOfBed, H::Vitals(v)) => v.set_in_bed(false),
        (A::HazardOn, H::Hazard(d)) => d.set_alarm(true),
        (A::HazardOff, H::Hazard(d)) => d.set_alarm(false),
        (a, h) => bail!("{a:?} does not apply to {device}, a {}", h.kind().as_str()),
    }
    Ok(())
}
