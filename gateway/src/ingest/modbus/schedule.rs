//! Lamp schedules: when a street's lamps are on (`on = "sunset+10m"`, `off =
//! "sunrise-15m"`, or clock times) and how far they are dimmed in the small hours
//! (`[[modbus.schedule.dim]] window = "23:00-05:00", level = 50`), from the configured
//! coordinates and the gateway's time zone.
//!
//! Pure: [`Schedule::desired`] takes the time and gives the state a lamp should be in;
//! the poller turns changes into audited, verified commands. Does not write registers.

use jiff::civil::{Date, Time};

use crate::rules::localtime::{Calendar, LocalTime, Window};

/// A moment of a day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Moment {
    /// A local clock time.
    At(Time),
    /// Sunrise plus minutes (negative: before).
    Sunrise(i64),
    /// Sunset plus minutes.
    Sunset(i64),
}

impl Moment {
    /// Parses `"18:30"`, `"sunset"`, `"sunset+10m"`, `"sunrise-15m"`, `"sunset+1h"`.
    pub fn parse(s: &str) -> Result<Moment, String> {
        let s = s.trim();
        for (name, make) in [
            ("sunrise", Moment::Sunrise as fn(i64) -> Moment),
            ("sunset", Moment::Sunset),
        ] {
            if let Some(rest) = s.strip_prefix(name) {
                if rest.is_empty() {
                    return Ok(make(0));
                }
                let (sign, num) = if let Some(n) = rest.strip_prefix('+') {
                    (1, n)
                } else if let Some(n) = rest.strip_prefix('-') {
                    (-1, n)
                } else {
                    return Err(format!("`{s}`: write {name}, {name}+10m or {name}-1h"));
                };
                let (n, per) = match num.strip_suffix('h') {
                    Some(h) => (h, 60),
                    None => (num.strip_suffix('m').unwrap_or(num), 1),
                };
                let n: i64 = n
                    .parse::<u16>()
                    .ok()
                    .map(|n| i64::from(n) * per)
                    .filter(|n| *n <= 720)
                    .ok_or_else(|| {
                        format!("`{s}`: the offset is whole minutes (m) or hours (h), at most 12 h")
                    })?;
                return Ok(make(sign * n));
            }
        }
        s.parse::<Time>()
            .map(Moment::At)
            .map_err(|_| format!("`{s}` is not HH:MM, sunrise±offset or sunset±offset"))
    }

    fn needs_sun(&self) -> bool {
        !matches!(self, Moment::At(_))
    }
}

/// The longest a schedule lights its lamps in one go. An overnight window at 65° N in
/// December (sunset+10m to sunrise-15m) is under 21 h; a window that would run longer is
/// a clash of clock and sun (an evening end before a summer sunset, a morning start after
/// a summer sunrise), not a night.
const MAX_LIT_MS: u64 = 22 * 3_600_000;

/// Where the sun is computed for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
}

/// What a lamp should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desired {
    /// Relay closed; `None` when the sun neither rises nor sets on a day the schedule
    /// needs (polar day or night): the relay is then left as it is.
    pub relay_on: Option<bool>,
    /// Dimming level, %.
    pub dimming_pct: u8,
}

/// One schedule, validated.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Name (audited as who commanded).
    pub name: String,
    /// Lamps on at.
    pub on: Moment,
    /// Lamps off at.
    pub off: Moment,
    /// Dimming windows and their levels; outside them, 100 %.
    pub dims: Vec<(Window, u8)>,
    /// Device ids it drives.
    pub devices: Vec<String>,
}

impl Schedule {
    /// True when a moment needs coordinates.
    pub fn needs_sun(&self) -> bool {
        self.on.needs_sun() || self.off.needs_sun()
    }

    /// The state a lamp should be in at `t_ms`. The lamps are lit from a day's `on`
    /// until that day's `off` when it comes later, else until the next day's `off`
    /// (overnight) — unless that would light them for more than [`MAX_LIT_MS`], which
    /// leaves them dark that day rather than lit round the clock. Dimming applies
    /// whatever the sun does.
    pub fn desired(&self, lt: &LocalTime, place: Option<Place>, t_ms: u64) -> Desired {
        let today = lt.date_of(t_ms);
        let lit_on = |day: Date| -> Option<bool> {
            let on = resolve(self.on, lt, place, day)?;
            let mut off = resolve(self.off, lt, place, day)?;
            if off <= on {
                off = resolve(self.off, lt, place, day.tomorrow().ok()?)?;
            }
            Some(off - on <= MAX_LIT_MS && on <= t_ms && t_ms < off)
        };
        let relay_on = match today.yesterday() {
            Ok(yesterday) => lit_on(yesterday).zip(lit_on(today)).map(|(a, b)| a || b),
            Err(_) => None,
        };
        let all = Calendar::default();
        let dimming_pct = self
            .dims
            .iter()
            .find(|(w, _)| lt.containing(w, &all, t_ms).is_some())
            .map_or(100, |(_, level)| *level);
        Desired {
            relay_on,
            dimming_pct,
        }
    }
}

fn resolve(m: Moment, lt: &LocalTime, place: Option<Place>, day: Date) -> Option<u64> {
    let sun = |event: sunrise::SolarEvent, minutes: i64| {
        let p = place?;
        let coords = sunrise::Coordinates::new(p.latitude, p.longitude)?;
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::from(day.year()),
            u32::try_from(day.month()).ok()?,
            u32::try_from(day.day()).ok()?,
        )?;
        let t = sunrise::SolarDay::new(coords, date).event_time(event)?;
        u64::try_from(t.timestamp_millis() + minutes * 60_000).ok()
    };
    match m {
        Moment::At(t) => Some(lt.at(day, t)),
        Moment::Sunrise(min) => sun(sunrise::SolarEvent::Sunrise, min),
        Moment::Sunset(min) => sun(sunrise::SolarEvent::Sunset, min),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: Place = Place {
        latitude: 31.23,
        longitude: 121.47,
    };

    fn schedule() -> Schedule {
        Schedule {
            name: "main-street".into(),
            on: Moment::parse("sunset+10m").unwrap(),
            off: Moment::parse("sunrise-15m").unwrap(),
            dims: vec![(Window::parse("23:00-05:00").unwrap(), 50)],
            devices: vec!["lamp-1".into()],
        }
    }

    #[test]
    fn moments_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!(Moment::parse("sunset"), Ok(Moment::Sunset(0)));
        assert_eq!(Moment::parse("sunset+1h"), Ok(Moment::Sunset(60)));
        assert_eq!(Moment::parse("sunrise-15m"), Ok(Moment::Sunrise(-15)));
        assert!(matches!(Moment::parse("18:30"), Ok(Moment::At(_))));
        assert!(Moment::parse("sunset*2")
            .unwrap_err()
            .contains("sunset+10m"));
        assert!(Moment::parse("sunset+13h").is_err());
        assert!(Moment::parse("dusk").is_err());
    }

    #[test]
    fn lamps_follow_the_sun_and_dim_after_eleven() {
        let lt = LocalTime::named("Asia/Shanghai").unwrap();
        let s = schedule();
        let at = |t: &str| s.desired(&lt, Some(SHANGHAI), lt.parse_local(t).unwrap());
        let lit = |t: &str| at(t).relay_on;
        // Midsummer in Shanghai: sunrise ~04:50, sunset ~19:00 local.
        assert_eq!(lit("2026-06-21T12:00"), Some(false));
        assert_eq!(lit("2026-06-21T19:05"), Some(false), "before sunset+10m");
        assert_eq!(
            at("2026-06-21T19:30"),
            Desired {
                relay_on: Some(true),
                dimming_pct: 100
            }
        );
        assert_eq!(
            at("2026-06-22T01:00"),
            Desired {
                relay_on: Some(true),
                dimming_pct: 50
            },
            "after midnight: the night that began yesterday"
        );
        assert_eq!(lit("2026-06-22T04:45"), Some(false), "sunrise-15m passed");
        // Midwinter: sunset ~17:00, so 17:30 is dark already.
        assert_eq!(lit("2026-12-21T17:30"), Some(true));
        assert_eq!(lit("2026-12-21T16:30"), Some(false));
    }

    #[test]
    fn an_evening_schedule_whose_end_comes_before_sunset_stays_dark_that_day() {
        // Helsinki at midsummer: sunset ~22:50, so "sunset+10m" to "23:00" is empty.
        // It must not become a day-long window ending at 23:00 tomorrow.
        let lt = LocalTime::named("Europe/Helsinki").unwrap();
        let helsinki = Place {
            latitude: 60.17,
            longitude: 24.94,
        };
        let s = Schedule {
            on: Moment::parse("sunset+10m").unwrap(),
            off: Moment::parse("23:00").unwrap(),
            dims: vec![],
            ..schedule()
        };
        let lit = |t: &str| {
            s.desired(&lt, Some(helsinki), lt.parse_local(t).unwrap())
                .relay_on
        };
        for t in ["2026-06-21T12:00", "2026-06-21T23:30", "2026-06-22T12:00"] {
            assert_eq!(lit(t), Some(false), "{t}");
        }
        // In October the sun sets ~18:20: lit from 18:30 to 23:00, not overnight.
        assert_eq!(lit("2026-10-15T20:00"), Some(true));
        assert_eq!(lit("2026-10-16T02:00"), Some(false));
        assert_eq!(lit("2026-10-16T12:00"), Some(false));
    }

    #[test]
    fn a_morning_schedule_lights_until_sunrise_and_not_all_day_in_summer() {
        let lt = LocalTime::named("Asia/Shanghai").unwrap();
        let s = Schedule {
            on: Moment::parse("06:30").unwrap(),
            off: Moment::parse("sunrise").unwrap(),
            dims: vec![],
            ..schedule()
        };
        let lit = |t: &str| {
            s.desired(&lt, Some(SHANGHAI), lt.parse_local(t).unwrap())
                .relay_on
        };
        // Midwinter sunrise ~06:52: lit 06:30-06:52.
        assert_eq!(lit("2026-12-21T06:40"), Some(true));
        assert_eq!(lit("2026-12-21T12:00"), Some(false));
        // Midsummer sunrise ~04:50, before 06:30: dark all day, not lit until tomorrow.
        for t in ["2026-06-21T06:40", "2026-06-21T12:00", "2026-06-21T23:00"] {
            assert_eq!(lit(t), Some(false), "{t}");
        }
    }

    #[test]
    fn clock_times_need_no_place_and_polar_days_leave_the_relay_alone() {
        let lt = LocalTime::named("UTC").unwrap();
        let s = Schedule {
            on: Moment::parse("18:00").unwrap(),
            off: Moment::parse("06:00").unwrap(),
            ..schedule()
        };
        assert!(!s.needs_sun());
        let t = lt.parse_local("2026-03-01T05:59").unwrap();
        assert_eq!(s.desired(&lt, None, t).relay_on, Some(true));
        let noon = lt.parse_local("2026-03-01T12:00").unwrap();
        assert_eq!(s.desired(&lt, None, noon).relay_on, Some(false));
        assert!(schedule().needs_sun());
        assert_eq!(schedule().desired(&lt, None, t).relay_on, None);
        let north_pole = Place {
            latitude: 89.9,
            longitude: 0.0,
        };
        let midsummer_night = lt.parse_local("2026-06-21T23:30").unwrap();
        assert_eq!(
            schedule().desired(&lt, Some(north_pole), midsummer_night),
            Desired {
                relay_on: None,
                dimming_pct: 50
            },
            "no sunset: the relay is left alone, the dimming window still applies"
        );
    }
}
