//! The per-rule, per-target state machines: what a threshold, a rate, a fall, an absence
//! window, a "not back" wait or a silence remembers between readings, and how a reading
//! or a timer moves it.
//!
//! Pure: time comes in as arguments, and every pending timer is a deadline kept in the
//! state itself (so it survives a restart with the state). Does not own targets, timer
//! ordering or persistence (the engine's), nor what an alarm then does (the lifecycle's).

use std::collections::VecDeque;

use linli_protocol::{EventKind, Report};
use serde::{Deserialize, Serialize};

use super::config::{Direction, Gates, Test};
use super::localtime::LocalTime;
use super::signal::{self, Signal, Signals};

/// Most samples a rate rule keeps per target (older ones drop first).
const RATE_SAMPLES: usize = 512;

/// What one rule remembers about one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum State {
    /// Events need no memory.
    Event,
    /// A suspected fall waiting for confirmation.
    Fall {
        /// When the impact came, ms.
        impact_at: Option<u64>,
        /// Its size, g.
        impact_g: f64,
    },
    /// Threshold with on/off delays.
    Threshold {
        /// The alarm condition holds.
        active: bool,
        /// First sample of the current run past the level.
        since: Option<u64>,
        /// Samples in that run.
        count: u32,
        /// First sample of the current run back inside the clear level.
        clear_since: Option<u64>,
    },
    /// Rate of rise.
    Rate {
        /// Recent (time, value) samples.
        samples: VecDeque<(u64, f64)>,
        /// The alarm condition holds.
        active: bool,
        /// When the rise fell back below the limit.
        clear_since: Option<u64>,
    },
    /// Absence in a window.
    Absence {
        /// Last time the signal was seen.
        last: Option<u64>,
        /// Since when this target has been watched (a window that started earlier is
        /// not judged).
        watching_from: u64,
        /// The window being waited on: (start, end) ms.
        next: Option<(u64, u64)>,
        /// The alarm condition holds (until the signal is seen).
        active: bool,
    },
    /// Waiting for `back` after `trigger`.
    NotBack {
        /// When the trigger came.
        since: Option<u64>,
        /// The alarm condition holds.
        active: bool,
    },
    /// Device silence.
    Silence {
        /// Last time the device was heard (0: never).
        last_seen: u64,
        /// `last_seen` as last handed out for saving (a device's every reading moves
        /// `last_seen`; it is saved again once it moved a quarter of `after_ms`). Not
        /// stored: 0 after a restore, so the first reading saves again.
        #[serde(skip)]
        saved_seen: u64,
        /// Silence that counts as lost, ms.
        after_ms: u64,
        /// The alarm condition holds.
        active: bool,
    },
}

/// What a step of a state machine decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The alarm condition began (at this time, with this value).
    Raise {
        /// When, ms (a timer's deadline, or the reading's time).
        at_ms: u64,
        /// The value that crossed, if any.
        value: Option<f64>,
        /// A short explanation.
        detail: String,
    },
    /// The condition ended.
    Clear {
        /// When, ms.
        at_ms: u64,
    },
    /// Worth recording, not an alarm (a suspected or dismissed fall).
    Note {
        /// When, ms.
        at_ms: u64,
        /// What, e.g. `suspected_fall`.
        what: &'static str,
        /// Details.
        detail: String,
    },
}

/// The context a reading is judged in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// The resident is away.
    pub away: bool,
    /// The resident's bed, when known.
    pub bed: Option<bool>,
    /// The device's relay, when known.
    pub relay: Option<bool>,
    /// The device's dimming level, when known.
    pub dimming: Option<f64>,
}

/// One reading as rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Its time (gateway receive time), ms.
    pub t: u64,
    /// The report.
    pub report: &'a Report,
    /// Its activity signals.
    pub signals: Signals,
    /// The context.
    pub ctx: Context,
    /// The device's heartbeat interval, ms.
    pub heartbeat_ms: u64,
}

impl Gates {
    /// Does the condition hold in this context (gates that make it false)?
    fn allow(&self, s: &Sample, local: &LocalTime) -> bool {
        self.relay.is_none_or(|want| s.ctx.relay == Some(want))
            && self
                .dimming_min_pct
                .is_none_or(|min| s.ctx.dimming.is_some_and(|d| d >= min))
            && self.during.as_ref().is_none_or(|w| {
                local
                    .containing(w, &super::localtime::Calendar::default(), s.t)
                    .is_some()
            })
    }
}

impl State {
    /// The initial state for a test, created when a target is first seen at `now`.
    pub fn new(test: &Test, now: u64, local: &LocalTime, heartbeat_ms: u64) -> State {
        match test {
            Test::Event { .. } => State::Event,
            Test::Fall { .. } => State::Fall {
                impact_at: None,
                impact_g: 0.0,
            },
            Test::Threshold { .. } => State::Threshold {
                active: false,
                since: None,
                count: 0,
                clear_since: None,
            },
            Test::Rate { .. } => State::Rate {
                samples: VecDeque::new(),
                active: false,
                clear_since: None,
            },
            Test::Absence {
                window, calendar, ..
            } => State::Absence {
                last: None,
                watching_from: now,
                next: local
                    .next_ending_after(window, calendar, now)
                    .map(|o| (o.start_ms, o.end_ms)),
                active: false,
            },
            Test::NotBack { .. } => State::NotBack {
                since: None,
                active: false,
            },
            // Never heard: unknown, not lost. The first reading starts the clock.
            Test::Silence { missed, after_ms } => State::Silence {
                last_seen: 0,
                saved_seen: 0,
                after_ms: after_ms.unwrap_or(heartbeat_ms.saturating_mul(u64::from(*missed))),
                active: false,
            },
        }
    }

    /// The rule's definition changed (same kind): keep what still means the same, and
    /// recompute what depends on the old parameters (an absence window's next
    /// occurrence, a silence's interval is kept as it was measured).
    pub fn rebase(&mut self, test: &Test, local: &LocalTime, now: u64) {
        if let (
            State::Absence {
                next,
                watching_from,
                ..
            },
            Test::Absence {
                window, calendar, ..
            },
        ) = (self, test)
        {
            // The new window is judged from now on.
            *watching_from = (*watching_from).max(now);
            *next = local
                .next_ending_after(window, calendar, now)
                .map(|o| (o.start_ms, o.end_ms));
        }
    }

    /// Did a step change this state in a way worth saving (from `before`)? A silence is
    /// saved when its condition changes or its `last_seen` moved a quarter of its
    /// interval: after a crash, a healthy device (heard every interval / `missed`) then
    /// still has more than half an interval before it would count as lost, while the
    /// state of every reading is not rewritten.
    pub fn worth_saving(&mut self, before: &State) -> bool {
        match self {
            State::Silence {
                last_seen,
                saved_seen,
                after_ms,
                active,
            } => {
                let moved = last_seen.saturating_sub(*saved_seen) >= *after_ms / 4;
                let flipped = !matches!(before, State::Silence { active: a, after_ms: b, .. } if a == active && b == after_ms);
                if moved || flipped || *saved_seen == 0 {
                    *saved_seen = *last_seen;
                    return true;
                }
                false
            }
            State::Event => false,
            s => *s != *before,
        }
    }

    /// Is this state the kind `test` needs (a rule changed kind across a restart)?
    pub fn fits(&self, test: &Test) -> bool {
        matches!(
            (self, test),
            (State::Event, Test::Event { .. })
                | (State::Fall { .. }, Test::Fall { .. })
                | (State::Threshold { .. }, Test::Threshold { .. })
                | (State::Rate { .. }, Test::Rate { .. })
                | (State::Absence { .. }, Test::Absence { .. })
                | (State::NotBack { .. }, Test::NotBack { .. })
                | (State::Silence { .. }, Test::Silence { .. })
        )
    }

    /// The pending deadline, if any: the engine calls [`State::on_timer`] then.
    pub fn deadline(&self, test: &Test) -> Option<u64> {
        match (self, test) {
            (
                State::Fall {
                    impact_at: Some(t), ..
                },
                Test::Fall { confirm_ms, .. },
            ) => Some(t + confirm_ms),
            (
                State::Threshold {
                    active: false,
                    since: Some(t),
                    ..
                },
                Test::Threshold { hold_ms, .. },
            ) if *hold_ms > 0 => Some(t + hold_ms),
            (
                State::Threshold {
                    active: true,
                    clear_since: Some(t),
                    ..
                },
                Test::Threshold { clear_hold_ms, .. },
            )
            | (
                State::Rate {
                    active: true,
                    clear_since: Some(t),
                    ..
                },
                Test::Rate { clear_hold_ms, .. },
            ) if *clear_hold_ms > 0 => Some(t + clear_hold_ms),
            (
                State::Absence {
                    next: Some((_, end)),
                    ..
                },
                _,
            ) => Some(*end),
            (State::NotBack { since: Some(t), .. }, Test::NotBack { within_ms, .. }) => {
                Some(t + within_ms)
            }
            (
                State::Silence {
                    active: false,
                    last_seen,
                    after_ms,
                    ..
                },
                _,
            ) if *last_seen > 0 => Some(last_seen + after_ms),
            _ => None,
        }
    }

    /// A reading for this target.
    pub fn on_sample(
        &mut self,
        test: &Test,
        gates: &Gates,
        s: &Sample,
        local: &LocalTime,
    ) -> Option<Outcome> {
        let t = s.t;
        match (self, test) {
            (State::Event, Test::Event { events }) => {
                let e = s.report.event()?;
                (events.contains(&e)
                    && !(gates.unless_away && s.ctx.away && e == EventKind::Tamper))
                    .then(|| Outcome::Raise {
                        at_ms: t,
                        value: None,
                        detail: e.as_str().to_owned(),
                    })
            }
            (
                State::Fall {
                    impact_at,
                    impact_g,
                },
                test,
            ) => fall(impact_at, impact_g, test, s),
            (
                State::Threshold {
                    active,
                    since,
                    count,
                    clear_since,
                },
                Test::Threshold {
                    metric,
                    direction,
                    level,
                    inclusive,
                    deadband,
                    hold_ms,
                    clear_hold_ms,
                    consecutive,
                },
            ) => {
                let raw = signal::metric(s.report, metric)?;
                if gates.bed_occupied && s.ctx.bed == Some(false) {
                    return None; // vitals with the bed empty are not the resident's
                }
                let v = if *direction == Direction::High {
                    raw
                } else {
                    -raw
                };
                let allowed = gates.allow(s, local);
                let past = allowed && if *inclusive { v >= *level } else { v > *level };
                if !*active {
                    if !past {
                        (*since, *count) = (None, 0);
                        return None;
                    }
                    let start = *since.get_or_insert(t);
                    *count += 1;
                    if *count >= *consecutive
                        && t.saturating_sub(start) >= *hold_ms
                        && !(gates.unless_away && s.ctx.away)
                    {
                        (*active, *since, *count, *clear_since) = (true, None, 0, None);
                        return Some(Outcome::Raise {
                            at_ms: t,
                            value: Some(raw),
                            detail: format!("{metric} {raw}"),
                        });
                    }
                    return None;
                }
                let back = !allowed || v < *level - *deadband || (*deadband == 0.0 && !past);
                if !back {
                    *clear_since = None;
                    return None;
                }
                let start = *clear_since.get_or_insert(t);
                if t.saturating_sub(start) >= *clear_hold_ms {
                    (*active, *clear_since) = (false, None);
                    return Some(Outcome::Clear { at_ms: t });
                }
                None
            }
            (
                State::Rate {
                    samples,
                    active,
                    clear_since,
                },
                Test::Rate {
                    metric,
                    rise,
                    window_ms,
                    clear_hold_ms,
                },
            ) => {
                let v = signal::metric(s.report, metric)?;
                if !gates.allow(s, local) {
                    return None;
                }
                while samples
                    .front()
                    .is_some_and(|(st, _)| st.saturating_add(*window_ms) < t)
                    || samples.len() >= RATE_SAMPLES
                {
                    samples.pop_front();
                }
                samples.push_back((t, v));
                let low = samples
                    .iter()
                    .map(|(_, x)| *x)
                    .fold(f64::INFINITY, f64::min);
                let risen = v - low >= *rise;
                if !*active && risen {
                    if gates.unless_away && s.ctx.away {
                        return None;
                    }
                    (*active, *clear_since) = (true, None);
                    return Some(Outcome::Raise {
                        at_ms: t,
                        value: Some(v),
                        detail: format!("{metric} rose {:.3} in {} s", v - low, window_ms / 1000),
                    });
                }
                if *active && !risen {
                    let start = *clear_since.get_or_insert(t);
                    if t.saturating_sub(start) >= *clear_hold_ms {
                        (*active, *clear_since) = (false, None);
                        return Some(Outcome::Clear { at_ms: t });
                    }
                } else if *active {
                    *clear_since = None;
                }
                None
            }
            (State::Absence { last, active, .. }, Test::Absence { signal, .. }) => {
                if !s.signals.has(*signal) {
                    return None;
                }
                *last = Some(t);
                if *active {
                    *active = false;
                    return Some(Outcome::Clear { at_ms: t });
                }
                None
            }
            (
                State::NotBack { since, active },
                Test::NotBack {
                    trigger,
                    back,
                    window,
                    calendar,
                    ..
                },
            ) => {
                if since.is_some() || *active {
                    if s.signals.has(*back) {
                        *since = None;
                        if *active {
                            *active = false;
                            return Some(Outcome::Clear { at_ms: t });
                        }
                    }
                    return None;
                }
                let in_window = window
                    .as_ref()
                    .is_none_or(|w| local.containing(w, calendar, t).is_some());
                if s.signals.has(*trigger) && in_window && !(gates.unless_away && s.ctx.away) {
                    *since = Some(t);
                }
                None
            }
            (
                State::Silence {
                    last_seen,
                    active,
                    after_ms,
                    ..
                },
                Test::Silence {
                    missed,
                    after_ms: fixed,
                },
            ) => {
                if !s.signals.has(Signal::Report) {
                    return None; // a Last Will is not a sign of life
                }
                // The rule or the device's heartbeat may have changed since this state
                // was made.
                *after_ms = fixed.unwrap_or(s.heartbeat_ms.saturating_mul(u64::from(*missed)));
                *last_seen = (*last_seen).max(t);
                if *active {
                    *active = false;
                    return Some(Outcome::Clear { at_ms: t });
                }
                None
            }
            _ => None,
        }
    }

    /// The deadline `at` (from [`State::deadline`]) has come.
    pub fn on_timer(
        &mut self,
        test: &Test,
        at: u64,
        ctx: Context,
        local: &LocalTime,
        gates: &Gates,
    ) -> Option<Outcome> {
        match (self, test) {
            (
                State::Fall {
                    impact_at,
                    impact_g,
                },
                _,
            ) => {
                impact_at.take()?;
                Some(Outcome::Raise {
                    at_ms: at,
                    value: Some(*impact_g),
                    detail: format!("impact {impact_g} g, no movement since"),
                })
            }
            (
                State::Threshold {
                    active,
                    since,
                    count,
                    clear_since,
                },
                Test::Threshold {
                    consecutive,
                    metric,
                    ..
                },
            ) => {
                if !*active {
                    if *count < *consecutive || (gates.unless_away && ctx.away) {
                        return None; // held long enough, but not enough samples yet
                    }
                    (*active, *since, *count, *clear_since) = (true, None, 0, None);
                    Some(Outcome::Raise {
                        at_ms: at,
                        value: None,
                        detail: format!("{metric} held past its level"),
                    })
                } else {
                    (*active, *clear_since) = (false, None);
                    Some(Outcome::Clear { at_ms: at })
                }
            }
            (
                State::Rate {
                    active,
                    clear_since,
                    ..
                },
                _,
            ) => {
                (*active, *clear_since) = (false, None);
                Some(Outcome::Clear { at_ms: at })
            }
            (
                State::Absence {
                    last,
                    watching_from,
                    next,
                    active,
                },
                Test::Absence {
                    window,
                    calendar,
                    signal,
                },
            ) => {
                let (start, end) = next.take()?;
                *next = local
                    .next_ending_after(window, calendar, end)
                    .map(|o| (o.start_ms, o.end_ms));
                let missing = last.is_none_or(|l| l < start);
                if missing && *watching_from <= start && !(gates.unless_away && ctx.away) {
                    *active = true;
                    return Some(Outcome::Raise {
                        at_ms: end,
                        value: None,
                        detail: format!("no {signal:?} in the window").to_lowercase(),
                    });
                }
                None
            }
            (State::NotBack { since, active }, Test::NotBack { within_ms, .. }) => {
                since.take()?;
                *active = true;
                Some(Outcome::Raise {
                    at_ms: at,
                    value: None,
                    detail: format!("not back within {} s", within_ms / 1000),
                })
            }
            (
                State::Silence {
                    active, after_ms, ..
                },
                _,
            ) => {
                *active = true;
                Some(Outcome::Raise {
                    at_ms: at,
                    value: None,
                    detail: format!("nothing heard for {} s", *after_ms / 1000),
                })
            }
            _ => None,
        }
    }
}

fn fall(
    impact_at: &mut Option<u64>,
    impact_g: &mut f64,
    test: &Test,
    s: &Sample,
) -> Option<Outcome> {
    let Test::Fall {
        impact_g: threshold,
        steps_within_ms,
        cancel_within_ms,
        still_level,
        ..
    } = test
    else {
        return None;
    };
    let t = s.t;
    match s.report.event() {
        Some(EventKind::Fall) => {
            *impact_at = None;
            return Some(Outcome::Raise {
                at_ms: t,
                value: signal::metric(s.report, "impact_g"),
                detail: "fall confirmed by the pendant".into(),
            });
        }
        Some(EventKind::Impact) => {
            let g = signal::metric(s.report, "impact_g").unwrap_or(0.0);
            if g >= *threshold && impact_at.is_none() {
                (*impact_at, *impact_g) = (Some(t), g);
                return Some(Outcome::Note {
                    at_ms: t,
                    what: "suspected_fall",
                    detail: format!("impact {g} g"),
                });
            }
            return None;
        }
        Some(EventKind::FallCancelled) => {
            let at = (*impact_at)?;
            if t.saturating_sub(at) <= *cancel_within_ms {
                *impact_at = None;
                return Some(Outcome::Note {
                    at_ms: t,
                    what: "fall_dismissed",
                    detail: "cancelled by the wearer".into(),
                });
            }
            return None;
        }
        _ => {}
    }
    let at = (*impact_at)?;
    let steps = s.signals.has(Signal::Steps) && t.saturating_sub(at) <= *steps_within_ms;
    let moving = signal::metric(s.report, "activity").is_some_and(|a| a > *still_level);
    if steps || moving {
        *impact_at = None;
        return Some(Outcome::Note {
            at_ms: t,
            what: "fall_dismissed",
            detail: if steps {
                "steps after the impact"
            } else {
                "movement after the impact"
            }
            .into(),
        });
    }
    None
}
