//! Local time for rules: the gateway's time zone, daily windows (`"07:00-10:00"`, which
//! may cross midnight) and calendars (days of the week, excluded dates).
//!
//! Pure: takes and returns milliseconds since the epoch; never reads the clock. Daylight
//! saving is handled by the zone database (a window edge in a skipped hour moves forward).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A daily window in local time, `[start, end)`; `end <= start` means it ends the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    start: Time,
    end: Time,
}

impl Window {
    /// Parses `"HH:MM-HH:MM"` (seconds allowed: `"HH:MM:SS"`).
    pub fn parse(s: &str) -> Result<Window, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not a window: write \"HH:MM-HH:MM\""))?;
        let t = |x: &str| {
            x.trim()
                .parse::<Time>()
                .map_err(|_| format!("`{x}` is not a time of day (HH:MM)"))
        };
        let (start, end) = (t(a)?, t(b)?);
        if start == end {
            return Err(format!("window `{s}` is empty"));
        }
        Ok(Window { start, end })
    }

    fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }
}

/// Which days a window applies on (the day it starts), minus excluded dates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Calendar {
    /// Monday = 0.
    days: [bool; 7],
    except: Vec<Date>,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            days: [true; 7],
            except: Vec::new(),
        }
    }
}

impl Calendar {
    /// Builds a calendar from day names (`"mon"`, `"weekdays"`, `"weekends"`, `"daily"`)
    /// and excluded dates (`"2026-12-25"`).
    pub fn parse(days: &[String], except: &[String]) -> Result<Calendar, Vec<String>> {
        let mut errors = Vec::new();
        let mut set = [days.is_empty(); 7];
        for d in days {
            let idx: &[usize] = match d.to_ascii_lowercase().as_str() {
                "mon" | "monday" => &[0],
                "tue" | "tuesday" => &[1],
                "wed" | "wednesday" => &[2],
                "thu" | "thursday" => &[3],
                "fri" | "friday" => &[4],
                "sat" | "saturday" => &[5],
                "sun" | "sunday" => &[6],
                "weekdays" => &[0, 1, 2, 3, 4],
                "weekends" => &[5, 6],
                "daily" => &[0, 1, 2, 3, 4, 5, 6],
                _ => {
                    errors.push(format!(
                        "`{d}` is not a day (mon … sun, weekdays, weekends, daily)"
                    ));
                    &[]
                }
            };
            for &i in idx {
                set[i] = true;
            }
        }
        let mut dates = Vec::new();
        for e in except {
            match e.parse::<Date>() {
                Ok(d) => dates.push(d),
                Err(_) => errors.push(format!("`{e}` is not a date (YYYY-MM-DD)")),
            }
        }
        if errors.is_empty() {
            Ok(Calendar {
                days: set,
                except: dates,
            })
        } else {
            Err(errors)
        }
    }

    fn includes(&self, d: Date) -> bool {
        self.days[d.weekday().to_monday_zero_offset() as usize] && !self.except.contains(&d)
    }
}

/// One occurrence of a window: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// End, ms since the epoch.
    pub end_ms: u64,
}

/// The gateway's time zone.
#[derive(Debug, Clone)]
pub struct LocalTime {
    tz: TimeZone,
}

impl LocalTime {
    /// Looks up an IANA zone name (`"Asia/Shanghai"`, `"UTC"`).
    pub fn named(name: &str) -> Result<LocalTime, String> {
        TimeZone::get(name)
            .map(|tz| LocalTime { tz })
            .map_err(|e| format!("unknown time zone `{name}` ({e}); use an IANA name such as \"Asia/Shanghai\" or \"UTC\""))
    }

    /// The machine's zone (`TZ`, `/etc/localtime`), UTC when there is none.
    pub fn system() -> LocalTime {
        LocalTime {
            tz: TimeZone::try_system().unwrap_or(TimeZone::UTC),
        }
    }

    /// The zone's name, for logs and the API.
    pub fn name(&self) -> &str {
        self.tz.iana_name().unwrap_or("local")
    }

    /// Parses a local date and time (`"2026-11-27T07:00"`, seconds optional) to ms.
    pub fn parse_local(&self, s: &str) -> Result<u64, String> {
        let dt: DateTime = s
            .parse()
            .map_err(|e| format!("`{s}` is not a local date-time (YYYY-MM-DDTHH:MM[:SS]): {e}"))?;
        Ok(self.at(dt.date(), dt.time()))
    }

    /// Formats ms as local `YYYY-MM-DDTHH:MM:SS`.
    pub fn format(&self, t_ms: u64) -> String {
        let ts = Timestamp::from_millisecond(t_ms as i64).unwrap_or(Timestamp::UNIX_EPOCH);
        self.tz
            .to_datetime(ts)
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    /// The local date at `t_ms`.
    pub fn date_of(&self, t_ms: u64) -> Date {
        let ts = Timestamp::from_millisecond(t_ms as i64).unwrap_or(Timestamp::UNIX_EPOCH);
        self.tz.to_datetime(ts).date()
    }

    /// `t` on local date `d`, in ms (a time in a daylight-saving gap moves forward).
    pub fn at(&self, d: Date, t: Time) -> u64 {
        let dt = DateTime::from_parts(d, t);
        self.tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .map(|ts| ts.as_millisecond().max(0) as u64)
            .unwrap_or(0)
    }

    fn occurrence_on(&self, w: &Window, d: Date) -> Occurrence {
        let end_day = if w.crosses_midnight() {
            d.tomorrow().unwrap_or(d)
        } else {
            d
        };
        Occurrence {
            start_ms: self.at(d, w.start),
            end_ms: self.at(end_day, w.end),
        }
    }

    /// The occurrence containing `t_ms`, if `t_ms` is inside one on a calendar day.
    pub fn containing(&self, w: &Window, cal: &Calendar, t_ms: u64) -> Option<Occurrence> {
        let d = self.date_of(t_ms);
        [d.yesterday().unwrap_or(d), d]
            .into_iter()
            .filter(|d| cal.includes(*d))
            .map(|d| self.occurrence_on(w, d))
            .find(|o| o.start_ms <= t_ms && t_ms < o.end_ms)
    }

    /// The first occurrence on a calendar day that ends after `t_ms` (it may have started
    /// already). `None` when the calendar has no day in the next year.
    pub fn next_ending_after(&self, w: &Window, cal: &Calendar, t_ms: u64) -> Option<Occurrence> {
        let mut d = self.date_of(t_ms).yesterday().ok()?;
        for _ in 0..370 {
            if cal.includes(d) {
                let o = self.occurrence_on(w, d);
                // A window inside a daylight-saving gap has no length that day: skipped.
                if o.end_ms > t_ms && o.start_ms < o.end_ms {
                    return Some(o);
                }
            }
            d = d.tomorrow().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str, lt: &LocalTime) -> u64 {
        let dt: DateTime = s.parse().unwrap();
        lt.tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .unwrap()
            .as_millisecond() as u64
    }

    #[test]
    fn windows_cross_midnight_and_follow_the_calendar() {
        let lt = LocalTime::named("Asia/Shanghai").unwrap();
        let night = Window::parse("22:00-06:00").unwrap();
        let all = Calendar::default();
        let o = lt
            .containing(&night, &all, ms("2026-11-27T02:15", &lt))
            .unwrap();
        assert_eq!(o.start_ms, ms("2026-11-26T22:00", &lt));
        assert_eq!(o.end_ms, ms("2026-11-27T06:00", &lt));
        assert!(lt
            .containing(&night, &all, ms("2026-11-27T12:00", &lt))
            .is_none());

        let morning = Window::parse("07:00-10:00").unwrap();
        let next = lt
            .next_ending_after(&morning, &all, ms("2026-11-27T10:00", &lt))
            .unwrap();
        assert_eq!(next.end_ms, ms("2026-11-28T10:00", &lt));
        // 2026-11-27 is a Friday: the next weekday window after Friday's is Monday's.
        let weekdays = Calendar::parse(&["weekdays".into()], &[]).unwrap();
        let next = lt
            .next_ending_after(&morning, &weekdays, ms("2026-11-27T11:00", &lt))
            .unwrap();
        assert_eq!(next.start_ms, ms("2026-11-30T07:00", &lt));
        let holiday = Calendar::parse(&[], &["2026-11-28".into()]).unwrap();
        let next = lt
            .next_ending_after(&morning, &holiday, ms("2026-11-27T11:00", &lt))
            .unwrap();
        assert_eq!(next.start_ms, ms("2026-11-29T07:00", &lt));
    }

    #[test]
    fn a_window_inside_a_daylight_saving_gap_is_skipped_that_day() {
        let lt = LocalTime::named("Europe/Berlin").unwrap();
        let w = Window::parse("02:00-03:00").unwrap();
        // 2026-03-29: clocks jump from 02:00 to 03:00.
        let o = lt
            .next_ending_after(&w, &Calendar::default(), ms("2026-03-28T12:00", &lt))
            .unwrap();
        assert_eq!(o.start_ms, ms("2026-03-30T02:00", &lt));
    }

    #[test]
    fn bad_windows_days_and_zones_are_explained() {
        assert!(Window::parse("7-10").unwrap_err().contains("time of day"));
        assert!(Window::parse("07:00").unwrap_err().contains("HH:MM-HH:MM"));
        assert!(
            Calendar::parse(&["funday".into()], &["x".into()])
                .unwrap_err()
                .len()
                == 2
        );
        assert!(LocalTime::named("Mars/Olympus")
            .unwrap_err()
            .contains("IANA"));
    }
}
