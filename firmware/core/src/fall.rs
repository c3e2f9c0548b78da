//! Fall detection for a pendant's 3-axis accelerometer: free fall, then an impact, then
//! the wearer lying still in a changed posture; a cancel window; look-alikes (a dropped
//! pendant, sitting down hard) told apart.
//!
//! Takes one sample at a time in milli-g (`[x, y, z]`, i16) with the time in ms since
//! boot (u64, so it does not wrap; time going backwards counts as no time passing), and
//! the wearer's cancel button. Gives [`Event`]s that mirror the wire protocol's
//! `Pendant::{Impact, Fall, FallCancelled}`. Raw lis3dh/lis2dh12 counts convert through
//! [`Range`]. The device does integer maths only; floats appear once, at compile time,
//! in the table of cos² that turns the tilt angle into a threshold.
//!
//! Does not own the sensor driver, sample timing, beeping during the cancel window, or
//! sending reports. [`scenario`] makes synthetic streams to test it against.
//!
//! The rules, in order (thresholds are [`Config`] fields, per site):
//! 1. **Free fall**: |a| < `free_fall_mg` for at least `free_fall_ms`.
//! 2. **Impact**: |a| ≥ `impact_mg` within `impact_window_ms` after the free fall ends.
//! 3. **Settled**: a still run — |a| within `still_band_mg` of 1 g and every axis within
//!    `still_band_mg` of the run's first sample — must begin within `settle_within_ms` of
//!    the last hard impact. After `settle_ms` of it the posture is judged:
//!    - a *drop* (the free fall had `drop_free_fall_ms` below `drop_free_fall_mg`, and
//!      the peak was ≥ `drop_impact_mg`) gives [`Event::Dropped`] and nothing else;
//!    - a posture within `min_tilt_deg` of the pre-fall gravity (averaged while idle)
//!      is no fall (sitting down hard): nothing is reported;
//!    - otherwise [`Event::Impact`] goes out.
//!
//!    `Impact` waits for this judgement (≈ 1–3 s after the hit) rather than going out
//!    on the hit itself, because the gateway confirms an impact followed by stillness
//!    on its own: an unjudged hard sit-down would become a fall alarm there.
//! 4. **Still**: a still run lasts `still_ms` in a posture still turned from the
//!    pre-fall gravity; then the cancel window (`cancel_ms`) opens. A wearer who moves
//!    before that restarts the run; one who gets up and never lies still again ends the
//!    fall silently after `still_ms + cancel_ms` (the gateway dismisses the `Impact` on
//!    steps), as does one who gets up and then keeps still upright.
//! 5. **Fall**: the window ends without [`Detector::cancel`] → [`Event::Fall`]. A cancel
//!    any time after `Impact` went out, until the window ends, gives
//!    [`Event::Cancelled`]. Movement inside the window does not abort it: only the
//!    wearer's button does (a writhing wearer still needs help).

mod range;
pub mod scenario;

pub use range::Range;

/// One g, milli-g.
const ONE_G_MG: u32 = 1_000;

/// Fall-detection settings, per site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Below this |a| is free fall, mg.
    pub free_fall_mg: u16,
    /// Free fall must last this long, ms.
    pub free_fall_ms: u64,
    /// At or above this |a| is an impact, mg (the gateway's rule uses 2.5 g too).
    pub impact_mg: u16,
    /// The impact must come this soon after the free fall ends, ms.
    pub impact_window_ms: u64,
    /// Still: |a| within this of 1 g and each axis within this of the run's start, mg.
    pub still_band_mg: u16,
    /// Stillness this long settles the posture (judged, `Impact` sent), ms.
    pub settle_ms: u64,
    /// Stillness must begin this soon after the last hard impact, ms.
    pub settle_within_ms: u64,
    /// Stillness this long (from its start) opens the cancel window, ms.
    pub still_ms: u64,
    /// Posture must turn more than this from the pre-fall gravity, degrees (≤ 90).
    pub min_tilt_deg: u8,
    /// The cancel window, ms.
    pub cancel_ms: u64,
    /// A drop's free fall is below this |a|, mg …
    pub drop_free_fall_mg: u16,
    /// … for at least this long, ms …
    pub drop_free_fall_ms: u64,
    /// … and ends in an impact at least this hard, mg.
    pub drop_impact_mg: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            free_fall_mg: 400,
            free_fall_ms: 60,
            impact_mg: 2_500,
            impact_window_ms: 1_000,
            still_band_mg: 150,
            settle_ms: 1_000,
            settle_within_ms: 5_000,
            still_ms: 10_000,
            min_tilt_deg: 50,
            cancel_ms: 30_000,
            drop_free_fall_mg: 150,
            drop_free_fall_ms: 250,
            drop_impact_mg: 6_000,
        }
    }
}

/// What the detector decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A suspected fall (free fall, impact, lying in a changed posture): report it now.
    Impact {
        /// Peak |a| of the impact, mg.
        impact_mg: u16,
    },
    /// A confirmed fall: the cancel window ended without a cancel.
    Fall {
        /// Peak |a| of the impact, mg.
        impact_mg: u16,
        /// Longest stillness since the impact, s.
        still_s: u16,
    },
    /// The wearer cancelled after `Impact`.
    Cancelled,
    /// The pendant itself was dropped (diagnostics; not a fall).
    Dropped {
        /// Peak |a| of the impact, mg.
        impact_mg: u16,
    },
}

/// Where the detector is, for the application (e.g. beep while `CancelWindow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing going on.
    Idle,
    /// In free fall.
    FreeFall,
    /// Free fall over, waiting for the impact.
    AwaitImpact,
    /// After the impact, waiting for stillness.
    PostImpact,
    /// Still long enough; the wearer may cancel.
    CancelWindow,
}

/// A run of still samples.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    /// Start time and first sample of the current run.
    start: Option<(u64, [i16; 3])>,
    sum: [i32; 3],
    n: i32,
    longest_ms: u64,
}

impl Run {
    fn len(&self, now: u64) -> u64 {
        self.start.map_or(0, |(t, _)| now.saturating_sub(t))
    }

    fn longest(&self, now: u64) -> u64 {
        self.longest_ms.max(self.len(now))
    }

    fn update(&mut self, now: u64, a: [i16; 3], in_band: bool, band: i32) {
        let same = self.start.is_some_and(|(_, first)| {
            (0..3).all(|i| (i32::from(a[i]) - i32::from(first[i])).abs() <= band)
        });
        if !(in_band && same) {
            self.longest_ms = self.longest(now);
            self.start = in_band.then_some((now, a));
            (self.sum, self.n) = ([0; 3], 0);
        }
        if in_band {
            for (s, v) in self.sum.iter_mut().zip(a) {
                *s = s.saturating_add(i32::from(v));
            }
            self.n = self.n.saturating_add(1);
        }
    }

    fn mean(&self) -> [i32; 3] {
        self.sum.map(|s| s / self.n.max(1))
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    FreeFall {
        since: u64,
        deep_since: Option<u64>,
        deep_ms: u64,
    },
    AwaitImpact {
        until: u64,
        drop_like: bool,
    },
    PostImpact {
        last_hit: u64,
        peak2: u32,
        drop_like: bool,
        run: Run,
        sent: bool,
    },
    CancelWindow {
        until: u64,
        impact_mg: u16,
        run: Run,
    },
}

/// The fall detector of one pendant.
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: Config,
    /// cos² of `min_tilt_deg`, scaled by 2¹⁶.
    cos2_q16: u128,
    /// Pre-fall gravity, ×16 (a 1/16-per-sample moving average of near-1 g samples).
    gravity: Option<[i32; 3]>,
    state: State,
}

/// `mg` squared, to compare with |a|².
fn sq(mg: u32) -> u32 {
    mg.saturating_mul(mg)
}

/// Whether |a|² is within `band_mg` of 1 g.
fn near_1g(m2: u32, band_mg: u16) -> bool {
    let w = u32::from(band_mg);
    (sq(ONE_G_MG.saturating_sub(w))..=sq(ONE_G_MG + w)).contains(&m2)
}

/// cos² of every whole degree 0–90, scaled by 2¹⁶, worked out by the compiler: the
/// device does no trigonometry (a software cosine would cost a pendant ~6 KiB of flash).
const COS2_Q16: [u32; 91] = {
    let mut table = [0u32; 91];
    let mut deg = 0;
    while deg <= 90 {
        let x = deg as f64 * core::f64::consts::PI / 180.0;
        // The Taylor series of cos x: 12 terms are exact to f64 precision for x ≤ π/2.
        let (mut term, mut cos, mut k) = (1.0f64, 1.0f64, 1);
        while k < 12 {
            term = -term * x * x / (((2 * k - 1) * (2 * k)) as f64);
            cos += term;
            k += 1;
        }
        table[deg] = (cos * cos * 65_536.0) as u32;
        deg += 1;
    }
    table
};

impl Detector {
    /// A detector with `cfg`, idle.
    pub fn new(cfg: Config) -> Self {
        Detector {
            cfg,
            cos2_q16: u128::from(COS2_Q16[usize::from(cfg.min_tilt_deg.min(90))]),
            gravity: None,
            state: State::Idle,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Where the detector is.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::FreeFall { .. } => Phase::FreeFall,
            State::AwaitImpact { .. } => Phase::AwaitImpact,
            State::PostImpact { .. } => Phase::PostImpact,
            State::CancelWindow { .. } => Phase::CancelWindow,
        }
    }

    /// Back to idle, forgetting the pre-fall gravity too.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.gravity = None;
    }

    /// Feeds raw left-justified counts read at `range`.
    pub fn sample_raw(&mut self, now_ms: u64, raw: [i16; 3], range: Range) -> Option<Event> {
        self.sample(now_ms, range.to_mg(raw))
    }

    /// Feeds one sample `a` (mg) taken at `now_ms`; the event it completes, if any.
    pub fn sample(&mut self, now_ms: u64, a: [i16; 3]) -> Option<Event> {
        let m2 = a.iter().map(|v| u32::from(v.unsigned_abs()).pow(2)).sum();
        if matches!(self.state, State::Idle) {
            self.track_gravity(a, m2);
        }
        let (next, event) = self.step(self.state, now_ms, a, m2);
        self.state = next;
        event
    }

    /// The wearer pressed cancel at `now_ms`: aborts a fall whose `Impact` went out and
    /// whose cancel window has not ended; `None` (and no change) otherwise.
    pub fn cancel(&mut self, now_ms: u64) -> Option<Event> {
        match self.state {
            State::PostImpact { sent: true, .. } => {}
            State::CancelWindow { until, .. } if now_ms < until => {}
            _ => return None,
        }
        self.state = State::Idle;
        Some(Event::Cancelled)
    }

    fn track_gravity(&mut self, a: [i16; 3], m2: u32) {
        if !near_1g(m2, 300) {
            return;
        }
        let a = a.map(|v| i32::from(v) * 16);
        let g = self.gravity.get_or_insert(a);
        for (g, v) in g.iter_mut().zip(a) {
            *g += (v - *g) / 16;
        }
    }

    /// Whether `now` (a still posture's mean) is turned more than `min_tilt_deg` from
    /// the pre-fall gravity: dot < cos θ·|g|·|n|, squared. Unknown counts as turned.
    fn turned(&self, now: [i32; 3]) -> bool {
        let g = self.gravity.unwrap_or_default().map(i64::from);
        let n = now.map(i64::from);
        let dot: i64 = (0..3).map(|i| g[i] * n[i]).sum();
        let norm2 = |v: [i64; 3]| v.iter().map(|c| c.unsigned_abs().pow(2)).sum::<u64>();
        let (g2, n2) = (u128::from(norm2(g)), u128::from(norm2(n)));
        dot <= 0 || (u128::from(dot.unsigned_abs()).pow(2) << 16) < self.cos2_q16 * g2 * n2
    }

    fn step(&self, mut st: State, now: u64, a: [i16; 3], m2: u32) -> (State, Option<Event>) {
        let cfg = &self.cfg;
        let (free_fall, impact) = (
            m2 < sq(cfg.free_fall_mg.into()),
            m2 >= sq(cfg.impact_mg.into()),
        );
        let deep = m2 < sq(cfg.drop_free_fall_mg.into()) && free_fall;
        let (in_band, band) = (near_1g(m2, cfg.still_band_mg), i32::from(cfg.still_band_mg));
        let mut event = None;
        match &mut st {
            State::Idle if free_fall => {
                let (since, deep_since, deep_ms) = (now, None, 0);
                let ff = State::FreeFall {
                    since,
                    deep_since,
                    deep_ms,
                };
                return self.step(ff, now, a, m2);
            }
            State::Idle => {}
            State::FreeFall {
                since,
                deep_since,
                deep_ms,
            } => {
                match (*deep_since, deep) {
                    (Some(t), false) => {
                        *deep_ms = (*deep_ms).max(now.saturating_sub(t));
                        *deep_since = None;
                    }
                    (None, true) => *deep_since = Some(now),
                    _ => {}
                }
                if !free_fall && now.saturating_sub(*since) < cfg.free_fall_ms {
                    return (State::Idle, None); // too short
                }
                if !free_fall {
                    let until = now.saturating_add(cfg.impact_window_ms);
                    let drop_like = *deep_ms >= cfg.drop_free_fall_ms;
                    return self.step(State::AwaitImpact { until, drop_like }, now, a, m2);
                }
            }
            State::AwaitImpact { drop_like, .. } if impact => {
                let (last_hit, peak2, drop_like) = (now, m2, *drop_like);
                let (run, sent) = (Run::default(), false);
                let hit = State::PostImpact {
                    last_hit,
                    peak2,
                    drop_like,
                    run,
                    sent,
                };
                return self.step(hit, now, a, m2);
            }
            State::AwaitImpact { until, .. } if now > *until => {
                return self.step(State::Idle, now, a, m2); // no impact came
            }
            State::AwaitImpact { .. } => {}
            State::PostImpact {
                last_hit,
                peak2,
                drop_like,
                run,
                sent,
            } => {
                if impact {
                    *last_hit = now;
                }
                if !*sent {
                    *peak2 = (*peak2).max(m2);
                }
                run.update(now, a, in_band, band);
                let impact_mg = u16::try_from(peak2.isqrt()).unwrap_or(u16::MAX);
                let dropped = (*drop_like && impact_mg >= cfg.drop_impact_mg)
                    .then_some(Event::Dropped { impact_mg });
                if !*sent && run.len(now) >= cfg.settle_ms {
                    if dropped.is_some() || !self.turned(run.mean()) {
                        return (State::Idle, dropped); // a drop, or sat down hard
                    }
                    *sent = true;
                    event = Some(Event::Impact { impact_mg });
                }
                if *sent && run.len(now) >= cfg.still_ms {
                    if !self.turned(run.mean()) {
                        return (State::Idle, event); // got up, then kept still
                    }
                    let until = now.saturating_add(cfg.cancel_ms);
                    return (
                        State::CancelWindow {
                            until,
                            impact_mg,
                            run: *run,
                        },
                        event,
                    );
                }
                // Before `Impact`, stillness must begin soon; after it, the fall stays
                // open to a cancel as long as a still run plus the window could take.
                let horizon = match *sent {
                    false => cfg.settle_within_ms,
                    true => cfg.still_ms.saturating_add(cfg.cancel_ms),
                };
                let settle_by = last_hit.saturating_add(horizon);
                if now > settle_by && run.start.is_none_or(|(t, _)| t > settle_by) {
                    return (State::Idle, dropped.filter(|_| !*sent));
                }
            }
            State::CancelWindow {
                until,
                impact_mg,
                run,
            } => {
                run.update(now, a, in_band, band);
                if now >= *until {
                    let still_s = u16::try_from(run.longest(now) / 1_000).unwrap_or(u16::MAX);
                    let impact_mg = *impact_mg;
                    return (State::Idle, Some(Event::Fall { impact_mg, still_s }));
                }
            }
        }
        (st, event)
    }
}

#[cfg(test)]
mod table_tests {
    use super::COS2_Q16;

    #[test]
    fn the_cos2_table_matches_the_float_cosine() {
        for (deg, q) in COS2_Q16.iter().enumerate() {
            let c = libm::cos((deg as f64).to_radians());
            let want = (c * c * 65_536.0) as i64;
            assert!((i64::from(*q) - want).abs() <= 1, "{deg}°: {q} vs {want}");
        }
        assert_eq!(COS2_Q16[0], 65_536);
        assert_eq!(COS2_Q16[60], 16_384);
    }
}
