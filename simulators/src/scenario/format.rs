//! The scenario file: its storyline's steps, its expectations, times written as
//! durations or clock times; parsed, then validated with every problem named by key.
//!
//! Owns the format; does not run anything (see `play`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use linli_firmware::fall::scenario::Kind;
use linli_protocol::DeviceKind;
use serde::Deserialize;

use crate::fleet::{Description, Group};

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
    pub(super) fn wearer(self) -> Option<Kind> {
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
    pub(super) fn device(&self) -> &str {
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
    pub(super) fn deadline(&self, sc: &Scenario) -> Option<Duration> {
        let hold = self
            .gateway_hold_s
            .unwrap_or(0)
            .checked_mul(u64::from(sc.speed.max(1) - 1))?;
        sc.offset(&self.by)?.checked_add(Duration::from_secs(hold))
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
        let unit = match c {
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
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
            if sc.offset(&e.by).is_some() && e.deadline(&sc).is_none() {
                errors.push(format!("expect[{i}].gateway_hold_s: too large"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7_200)));
        for bad in ["", "30", "3x", "m", "1m30", "99999999999999999h"] {
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
