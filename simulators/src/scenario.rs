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
}

/// One step of the storyline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When, device time since the fleet came online ("30s", "2m", "1h30m").
    pub at: String,
    /// Which device.
    pub device: String,
    /// What happens.
    #[serde(rename = "do")]
    pub action: Action,
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

impl Scenario {
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
        for (i, s) in sc.step.iter().enumerate() {
            if parse_duration(&s.at).is_none() {
                errors.push(format!(
                    "step[{i}].at: {:?} is not a time like 30s, 2m or 1h30m",
                    s.at
                ));
            }
            match fleet.kind_of(&s.device) {
                None => errors.push(format!(
                    "step[{i}].device: {:?} is not in the fleet",
                    s.device
                )),
                Some(kind) => {
                    let pendant = s.action.wearer().is_some();
                    if pendant != (kind == DeviceKind::Pendant) {
                        errors.push(format!(
                            "step[{i}].do: {:?} does not apply to a {}",
                            s.action,
                            kind.as_str()
                        ));
                    }
                }
            }
        }
        for (i, e) in sc.expect.iter().enumerate() {
            if parse_duration(&e.by).is_none() {
                errors.push(format!(
                    "expect[{i}].by: {:?} is not a time like 30s, 2m or 1h30m",
                    e.by
                ));
            }
            if fleet.kind_of(&e.device).is_none() {
                errors.push(format!(
                    "expect[{i}].device: {:?} is not in the fleet",
                    e.device
                ));
            }
        }
        if sc.expect.is_empty() {
            errors.push("no [[expect]]: a scenario says what the gateway must do".into());
        }
        if !errors.is_empty() {
            bail!("scenario {}:\n  {}", path.display(), errors.join("\n  "));
        }
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
}

/// Every expectation's verdict.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// In the file's order.
    pub verdicts: Vec<Verdict>,
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
            let what = if e.absent { "no" } else { "a" };
            let seen = v.seen_at.map_or("never seen".to_owned(), |t| {
                format!("seen at {}s", t.as_secs())
            });
            writeln!(
                f,
                "{} {what} {} alarm for {} by {}: {seen}",
                if v.ok { "PASS" } else { "FAIL" },
                e.alarm,
                e.device,
                e.by
            )?;
        }
        Ok(())
    }
}

async fn alarms(http: &str) -> Vec<Value> {
    let url = format!("{http}/api/alarms");
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
        .and_then(|v| v["alarms"].as_array().cloned())
        .unwrap_or_default()
}

async fn command(http: &str, device: &str, on: bool) -> Result<()> {
    let url = format!("{http}/api/devices/{device}/command");
    let body = json!({"command": {"relay": {"on": on}}, "by": "scenario"});
    tokio::task::spawn_blocking(move || {
        ureq::post(&url)
            .set("content-type", "application/json")
            .timeout(Duration::from_secs(5))
            .send_string(&body.to_string())
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await?
    .with_context(|| format!("switching {device}"))?;
    Ok(())
}

/// Runs `sc` against `target`: provisions and starts its fleet, waits until every device
/// is online, plays the steps at their device times, and watches the gateway's alarms
/// until the last deadline. `progress` gets a line per step and per verdict.
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
    let start = tokio::time::Instant::now();
    let real = |device: Duration| device / speed;
    let device_since = |start: tokio::time::Instant| start.elapsed() * speed;
    let mut steps: Vec<&Step> = sc.step.iter().collect();
    steps.sort_by_key(|s| parse_duration(&s.at));
    let last = sc
        .expect
        .iter()
        .filter_map(|e| parse_duration(&e.by))
        .max()
        .unwrap_or_default();
    let mut seen: Vec<Option<Duration>> = vec![None; sc.expect.len()];
    let mut next = 0;
    loop {
        let now = device_since(start);
        while let Some(s) = steps
            .get(next)
            .filter(|s| parse_duration(&s.at).is_some_and(|at| at <= now))
        {
            progress(format!(
                "{:>5}s  {} {:?}",
                now.as_secs(),
                s.device,
                s.action
            ));
            perform(&fl, target, s).await?;
            next += 1;
        }
        let raised = alarms(&target.http).await;
        for (e, t) in sc.expect.iter().zip(seen.iter_mut()) {
            if t.is_none()
                && raised
                    .iter()
                    .any(|a| a["kind"] == e.alarm.as_str() && a["device"] == e.device.as_str())
            {
                *t = Some(device_since(start));
            }
        }
        if now >= last && next >= steps.len() {
            break;
        }
        tokio::time::sleep(real(Duration::from_secs(1)).max(Duration::from_millis(50))).await;
    }
    fl.stop()?;
    let verdicts = sc
        .expect
        .iter()
        .zip(seen)
        .map(|(e, t)| {
            let by = parse_duration(&e.by).unwrap_or_default();
            let in_time = t.is_some_and(|t| t <= by);
            Verdict {
                expect: e.clone(),
                ok: if e.absent { t.is_none() } else { in_time },
                seen_at: t,
            }
        })
        .collect();
    Ok(Outcome { verdicts })
}

async fn perform(fl: &fleet::Fleet, target: &Target, s: &Step) -> Result<()> {
    if let Some(kind) = s.action.wearer() {
        let w = fl
            .wearer(&s.device)
            .with_context(|| format!("{} is not a pendant of the fleet", s.device))?;
        w.push(kind, 7);
        return Ok(());
    }
    let lamp = fl
        .lamp(&s.device)
        .with_context(|| format!("{} is not a street light of the fleet", s.device))?;
    match s.action {
        Action::LampBreaks => lamp.set_broken(true),
        Action::LampFixed => lamp.set_broken(false),
        Action::RelayWelds => lamp.set_welded(true),
        Action::DriverDeaf => lamp.set_deaf(true),
        Action::SwitchOn => command(&target.http, &s.device, true).await?,
        Action::SwitchOff => command(&target.http, &s.device, false).await?,
        _ => {}
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
            Scenario::load(&path).expect("valid");
            n += 1;
        }
        assert!(n >= 1);
    }
}
