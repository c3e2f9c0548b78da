//! Scenarios: a timed storyline for a simulated neighbourhood, run against a real gateway
//! at any speed, with the alarms the gateway must (or must not) raise.
//!
//! ```toml
//! name = "a night in wing A"
//! speed = 20                      # device time runs 20 times faster than real time
//!
//! [[group]]                       # the fleet, as in a fleet description
//! kind = "pendant"
//! count = 2
//! id = "wing-a-pendant"
//! site = "care-home-1"
//! zone = "wing-a"
//! resident = "R-A"
//!
//! [[step]]
//! at = "30s"                      # device time since the fleet came online
//! device = "wing-a-pendant-2"
//! do = "fall"
//!
//! [[expect]]
//! alarm = "fall"
//! device = "wing-a-pendant-2"
//! by = "3m"                       # raised by then (device time)
//!
//! [[expect]]
//! alarm = "fall"
//! device = "wing-a-pendant-1"
//! absent = true                   # never raised (checked at the last deadline)
//! by = "3m"
//! ```
//!
//! Owns the format (parse, validate every error by key), the timeline and the verdict.
//! Does not own the fleet (`crate::fleet`) or the gateway's rules.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use linli_firmware::fall::scenario::Kind;
use linli_protocol::DeviceKind;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fleet::{self, Description, Group};

/// What a step makes happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A pendant's wearer falls.
    Fall,
    /// Falls, then cancels within the window.
    FallThenCancel,
    /// Sits down hard (a look-alike).
    SitHard,
    /// Drops the pendant (a look-alike).
    Drop,
    /// Goes jogging (a look-alike).
    Jog,
    /// Lies down to sleep.
    LieDown,
    /// Presses the pendant's SOS button.
    Sos,
    /// A street lamp dies.
    LampBreaks,
    /// A street lamp is replaced.
    LampFixed,
    /// A lamp's relay welds shut.
    RelayWelds,
    /// A lamp's dimming driver stops following its input.
    DriverDeaf,
    /// The operator switches a lamp on (through the gateway's API).
    SwitchOn,
    /// The operator switches a lamp off.
    SwitchOff,
    /// Water (at a gauge, or under a manhole cover) rises `mm_per_min` (negative: falls;
    /// 0: stops).
    WaterRises,
    /// The water is at `mm` now.
    WaterLevel,
    /// The gauge's current loop is cut (every read fails).
    LoopCut,
    /// A manhole cover is lifted off its frame.
    CoverLifted,
    /// A manhole cover is pried `deg` degrees out of its frame.
    CoverTilted,
    /// A manhole cover is back in its frame.
    CoverReplaced,
    /// A waste bin is `pct` full.
    BinFill,
    /// A fire starts in a waste bin.
    BinFire,
    /// The fire in a waste bin is out.
    BinFireOut,
    /// A waste bin is knocked over.
    BinKnockedOver,
    /// A resident gets into bed.
    BedEnter,
    /// A resident gets out of bed.
    BedExit,
    /// A door opens.
    DoorOpen,
    /// A door closes.
    DoorClose,
    /// Someone moves in front of a PIR.
    Motion,
    /// The heart rate of the person under a vital-sign sensor is `bpm`.
    HeartRate,
    /// Their SpO2 is `pct`.
    Spo2,
    /// They get into bed (the sensor reads them).
    InBed,
    /// They leave the bed.
    OutOfBed,
    /// A hazard detector goes off.
    HazardOn,
    /// It stops.
    HazardOff,
    /// The roster changes: the gateway's routing file is replaced by `routing` (a path
    /// relative to the scenario) and reloaded. No device.
    Roster,
}

impl Action {
    fn wearer(self) -> Option<Kind> {
        Some(match self {
            Action::Fall => Kind::Fall,
            Action::FallThenCancel => Kind::FallThenCancel,
            Action::SitHard => Kind::SitHard,
            Action::Drop => Kind::Drop,
            Action::Jog => Kind::Jog,
            Action::LieDown => Kind::LieDown,
            _ => return None,
        })
    }

    /// The device kinds it applies to (none: it takes no device).
    fn kinds(self) -> &'static [DeviceKind] {
        use Action as A;
        use DeviceKind as K;
        match self {
            A::Fall | A::FallThenCancel | A::SitHard | A::Drop | A::Jog | A::LieDown | A::Sos => {
                &[K::Pendant]
            }
            A::LampBreaks
            | A::LampFixed
            | A::RelayWelds
            | A::DriverDeaf
            | A::SwitchOn
            | A::SwitchOff => &[K::StreetLight],
            A::WaterRises | A::WaterLevel => &[K::WaterLevel, K::Manhole],
            A::LoopCut => &[K::WaterLevel],
            A::CoverLifted | A::CoverTilted | A::CoverReplaced => &[K::Manhole],
            A::BinFill | A::BinFire | A::BinFireOut | A::BinKnockedOver => &[K::WasteBin],
            A::BedEnter | A::BedExit => &[K::Bed],
            A::DoorOpen | A::DoorClose => &[K::Door],
            A::Motion => &[K::Motion],
            A::HeartRate | A::Spo2 | A::InBed | A::OutOfBed => &[K::Vitals],
            A::HazardOn | A::HazardOff => &[K::Hazard],
            A::Roster => &[],
        }
    }

    /// The step key it needs a value in, if any.
    fn needs(self) -> Option<&'static str> {
        Some(match self {
            Action::WaterRises => "mm_per_min",
            Action::WaterLevel => "mm",
            Action::CoverTilted => "deg",
            Action::BinFill | Action::Spo2 => "pct",
            Action::HeartRate => "bpm",
            Action::Roster => "routing",
            _ => return None,
        })
    }
}

/// One step of the storyline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When: device time since the fleet came online ("30s", "2m", "1h30m"), or a clock
    /// time ("03:10") when the scenario has a `start`.
    pub at: String,
    /// Which device (every action but `roster`).
    pub device: Option<String>,
    /// What happens.
    #[serde(rename = "do")]
    pub action: Action,
    /// `water_rises`: mm per minute.
    pub mm_per_min: Option<i32>,
    /// `water_level`: mm.
    pub mm: Option<u16>,
    /// `cover_tilted`: degrees.
    pub deg: Option<u8>,
    /// `bin_fill`, `spo2`: percent.
    pub pct: Option<u8>,
    /// `heart_rate`: beats per minute.
    pub bpm: Option<u8>,
    /// `roster`: the new routing file, relative to the scenario file.
    pub routing: Option<String>,
}

impl Step {
    fn device(&self) -> &str {
        self.device.as_deref().unwrap_or("")
    }

    fn has(&self, key: &str) -> bool {
        match key {
            "mm_per_min" => self.mm_per_min.is_some(),
            "mm" => self.mm.is_some(),
            "deg" => self.deg.is_some(),
            "pct" => self.pct.is_some(),
            "bpm" => self.bpm.is_some(),
            "routing" => self.routing.is_some(),
            _ => false,
        }
    }
}

/// What the gateway must have done.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Alarm kind (a rule's name).
    pub alarm: String,
    /// For this device.
    pub device: String,
    /// Raised by this device time (or, with `absent`, not raised until then).
    pub by: String,
    /// The alarm must not be raised.
    #[serde(default)]
    pub absent: bool,
    /// The alarm's count (repeats of its cause) must be this at the end.
    pub count: Option<u32>,
    /// Instead of the alarm itself: a page about it to this person (an id of the
    /// gateway's routing file), as the simulation's pager received it.
    pub page: Option<String>,
    /// The rule holds its condition this many seconds before raising. The gateway
    /// keeps real time, so at speed N the hold spans N times as much device time: the
    /// deadline moves by `gateway_hold_s` × (N − 1) device seconds.
    pub gateway_hold_s: Option<u64>,
}

impl Expect {
    /// Its deadline in device time at `speed`, for scenario `sc`.
    fn deadline(&self, sc: &Scenario) -> Option<Duration> {
        let hold = self.gateway_hold_s.unwrap_or(0) * u64::from(sc.speed.max(1) - 1);
        Some(sc.offset(&self.by)? + Duration::from_secs(hold))
    }
}

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What it shows.
    pub name: String,
    /// Device time runs this many times faster than real time.
    #[serde(default = "one")]
    pub speed: u32,
    /// The clock time the storyline starts at ("03:00"): steps and deadlines may then
    /// be written as clock times ("03:10" = 10 minutes in). A label for the storyline:
    /// the gateway keeps its own clock.
    pub start: Option<String>,
    /// The directory of the scenario file (files it names are relative to it).
    #[serde(skip)]
    pub base: std::path::PathBuf,
    /// The fleet.
    #[serde(default)]
    pub group: Vec<Group>,
    /// The storyline.
    #[serde(default)]
    pub step: Vec<Step>,
    /// The verdict.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

fn one() -> u32 {
    1
}

/// Parses "90s", "2m", "1m30s", "1h" into a duration.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut digits = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total += n * match c {
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            _ => return None,
        };
        any = true;
    }
    (digits.is_empty() && any).then(|| Duration::from_millis(total))
}

/// Parses "03:10" or "03:10:30" into the time since midnight.
pub fn parse_clock(s: &str) -> Option<Duration> {
    let mut parts = s.trim().split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let sec: u64 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(Duration::from_secs(h * 3_600 + m * 60 + sec))
}

impl Scenario {
    /// The device time of `at` since the start: a duration, or a clock time after
    /// `start` (wrapping past midnight).
    pub fn offset(&self, at: &str) -> Option<Duration> {
        if !at.contains(':') {
            return parse_duration(at);
        }
        let start = parse_clock(self.start.as_deref()?)?;
        let t = parse_clock(at)?;
        let day = Duration::from_secs(86_400);
        Some(if t >= start {
            t - start
        } else {
            t + day - start
        })
    }

    /// Parses and validates `text` (from `path`); every problem is named by its key.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
        let sc: Scenario =
            toml::from_str(text).with_context(|| format!("scenario {}", path.display()))?;
        // The fleet part is checked as a fleet description.
        let fleet = sc.fleet();
        let mut errors = fleet.problems();
        if sc.speed == 0 {
            errors.push("speed: at least 1".into());
        }
        if let Some(t) = &sc.start {
            if parse_clock(t).is_none() {
                errors.push(format!("start: {t:?} is not a clock time like 03:00"));
            }
        }
        let when = "a time like 30s, 2m or 1h30m, or a clock time like 03:10 after `start`";
        for (i, s) in sc.step.iter().enumerate() {
            if sc.offset(&s.at).is_none() {
                errors.push(format!("step[{i}].at: {:?} is not {when}", s.at));
            }
            let kinds = s.action.kinds();
            match (&s.device, kinds.is_empty()) {
                (Some(d), true) => errors.push(format!(
                    "step[{i}].device: {:?} takes no device (remove {d:?})",
                    s.action
                )),
                (None, false) => errors.push(format!("step[{i}].device: missing")),
                (Some(d), false) => match fleet.kind_of(d) {
                    None => errors.push(format!("step[{i}].device: {d:?} is not in the fleet")),
                    Some(kind) if !kinds.contains(&kind) => errors.push(format!(
                        "step[{i}].do: {:?} does not apply to a {}",
                        s.action,
                        kind.as_str()
                    )),
                    Some(_) => {}
                },
                (None, true) => {}
            }
            if let Some(key) = s.action.needs() {
                if !s.has(key) {
                    errors.push(format!("step[{i}].{key}: {:?} needs it", s.action));
                }
            }
            if let Some(r) = &s.routing {
                if !path.parent().unwrap_or(Path::new(".")).join(r).is_file() {
                    errors.push(format!(
                        "step[{i}].routing: {r:?} is not a file (paths are relative to the scenario)"
                    ));
                }
            }
        }
        for (i, e) in sc.expect.iter().enumerate() {
            if sc.offset(&e.by).is_none() {
                errors.push(format!("expect[{i}].by: {:?} is not {when}", e.by));
            }
            if fleet.kind_of(&e.device).is_none() {
                errors.push(format!(
                    "expect[{i}].device: {:?} is not in the fleet",
                    e.device
                ));
            }
            if e.absent && e.count.is_some() {
                errors.push(format!("expect[{i}]: `count` of an absent alarm"));
            }
            if e.page.is_some() && e.count.is_some() {
                errors.push(format!("expect[{i}]: `count` is an alarm's, not a page's"));
            }
        }
        if sc.expect.is_empty() {
            errors.push("no [[expect]]: a scenario says what the gateway must do".into());
        }
        if !errors.is_empty() {
            bail!("scenario {}:\n  {}", path.display(), errors.join("\n  "));
        }
        let mut sc = sc;
        sc.base = path.parent().unwrap_or(Path::new(".")).to_owned();
        Ok(sc)
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text, path)
    }

    /// The fleet it runs.
    pub fn fleet(&self) -> Description {
        Description {
            group: self.group.clone(),
        }
    }
}

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

async fn http_get(url: String) -> Option<Value> {
    let got = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .timeout(Duration::from_secs(5))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
    })
    .await
    .ok()
    .flatten();
    got.and_then(|t| serde_json::from_str::<Value>(&t).ok())
}

async fn alarms(http: &str) -> Vec<Value> {
    http_get(format!("{http}/api/alarms"))
        .await
        .and_then(|v| v["alarms"].as_array().cloned())
        .unwrap_or_default()
}

async fn post(url: String, body: Value) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        ureq::post(&url)
            .set("content-type", "application/json")
            .timeout(Duration::from_secs(5))
            .send_string(&body.to_string())
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))
    })
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
    post(format!("{}/api/routing/reload", target.http), json!({}))
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
pub async fn play(
    sc: &Scenario,
    fl: &fleet::Fleet,
    target: &Target,
    progress: &mut dyn FnMut(String),
) -> Result<Outcome> {
    let speed = sc.speed.max(1);
    let start = tokio::time::Instant::now();
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
        let raised = alarms(&target.http).await;
        for a in &raised {
            if announced.insert(a["id"].as_u64().unwrap_or(0)) {
                progress(format!(
                    "{}  ALARM P{} {} from {}{}",
                    label(sc, now),
                    a["priority"],
                    a["kind"].as_str().unwrap_or("?"),
                    a["device"].as_str().unwrap_or("?"),
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
                let found = pages.iter().any(|p| {
                    p.to == *person && p.kind == e.alarm && p.device.as_deref() == Some(&e.device)
                });
                if found {
                    t.get_or_insert(device_since(start));
                }
                continue;
            }
            let found = raised
                .iter()
                .find(|a| a["kind"] == e.alarm.as_str() && a["device"] == e.device.as_str());
            if let Some(a) = found {
                t.get_or_insert(device_since(start));
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
                    t.is_none()
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
            post(
                format!("{}/api/devices/{device}/command", target.http),
                body,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7_200)));
        for bad in ["", "30", "3x", "m", "1m30"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn clock_times_count_from_the_start_and_wrap_past_midnight() {
        let sc = |start: Option<&str>| Scenario {
            name: "t".into(),
            speed: 10,
            start: start.map(str::to_owned),
            base: Default::default(),
            group: vec![],
            step: vec![],
            expect: vec![],
        };
        let night = sc(Some("23:50"));
        assert_eq!(night.offset("23:55"), Some(Duration::from_secs(300)));
        assert_eq!(night.offset("00:10:30"), Some(Duration::from_secs(1_230)));
        assert_eq!(night.offset("2m"), Some(Duration::from_secs(120)));
        assert_eq!(sc(None).offset("03:10"), None, "a clock time needs a start");
        for bad in ["24:00", "03:60", "3", "03:10:10:10", "x:10"] {
            assert_eq!(parse_clock(bad), None, "{bad:?}");
        }
        let hold = Expect {
            alarm: "a".into(),
            device: "d".into(),
            by: "00:00".into(),
            absent: false,
            count: None,
            page: None,
            gateway_hold_s: Some(60),
        };
        // At 10x, 60 real seconds of hold span 600 device seconds: 540 more.
        assert_eq!(hold.deadline(&night), Some(Duration::from_secs(600 + 540)));
    }

    #[test]
    fn a_scenario_names_every_problem_by_key() {
        let text = r#"
            name = "bad"
            [[group]]
            kind = "pendant"
            count = 1
            id = "p"
            site = "s"
            zone = "z"
            [[step]]
            at = "soon"
            device = "p-2"
            do = "fall"
            [[step]]
            at = "1m"
            device = "p-1"
            do = "lamp_breaks"
            [[step]]
            at = "03:10"
            do = "roster"
            device = "p-1"
            [[step]]
            at = "1m"
            device = "p-1"
            do = "heart_rate"
            [[expect]]
            alarm = "fall"
            device = "q-1"
            by = "2m"
        "#;
        let e = Scenario::parse(text, Path::new("s.toml"))
            .expect_err("invalid")
            .to_string();
        for want in [
            "step[0].at: \"soon\"",
            "step[0].device: \"p-2\" is not in the fleet",
            "step[1].do: LampBreaks does not apply to a pendant",
            "expect[0].device: \"q-1\" is not in the fleet",
            "step[2].at: \"03:10\" is not a time like 30s",
            "step[2].device: Roster takes no device",
            "step[2].routing: Roster needs it",
            "step[3].do: HeartRate does not apply to a pendant",
            "step[3].bpm: HeartRate needs it",
        ] {
            assert!(e.contains(want), "{want:?} missing from:\n{e}");
        }
    }

    #[test]
    fn the_shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for f in std::fs::read_dir(&dir).expect("scenarios/") {
            let path = f.expect("entry").path();
            // rosters/ holds the routing files the scenarios name.
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                n += 1;
            }
        }
        assert!(n >= 2);
    }
}
