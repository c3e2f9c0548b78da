//! Synthetic pendant accelerometer streams: a real fall, a fall the wearer cancels, and
//! the look-alikes (sitting down hard, dropping the pendant, jogging, lying down into
//! bed) beside standing and walking. No fall data set ships anywhere (DESIGN §5), so the
//! detector is tested, and the simulators drive it, on these.
//!
//! A [`Scenario`] is an iterator of `(t_ms, [x, y, z] mg)` at a fixed sample rate — the
//! same units [`Detector::sample`](super::Detector::sample) takes; pass each sample
//! through [`Range::to_raw`](super::Range::to_raw) to get what a real sensor would give,
//! clipping included. It is deterministic per seed (xorshift32): every duration, level,
//! posture and the ±30 mg noise on each axis are drawn from it. Floats are fine here;
//! this is test and simulation code.
//!
//! Owns the shapes of the movements; does not own detection or the sensor's register
//! format.
//!
//! Axes: upright, the pendant reads +1 g on y (gravity's reaction points up); lying on
//! the back +z, on the front −z, on a side ±x.

use libm::{expf, sinf, sqrtf, tanf};

/// Noise on each axis, ± mg.
pub const NOISE_MG: f32 = 30.0;

/// How long every scenario lasts, ms: enough for a fall's stillness and cancel window.
pub const LENGTH_MS: u64 = 60_000;

const MAX_PHASES: usize = 10;
const PI: f32 = core::f32::consts::PI;

/// What the wearer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Standing still, upright.
    Stand,
    /// Walking, upright.
    Walk,
    /// Walking, a fall (free fall 300–500 ms, impact 3–8 g), lying still.
    Fall,
    /// A fall, lying 3–20 s, getting up and pressing cancel
    /// ([`Scenario::cancel_at_ms`]), walking on.
    FallThenCancel,
    /// Sitting down hard: a partial free fall, 1.5–3 g, then still and upright.
    SitHard,
    /// The pendant dropped: true free fall 400–500 ms, 8–12 g, bounces, still on the
    /// floor in a random orientation.
    Drop,
    /// Jogging at ~2.7 Hz (2–3 g steps, low flight phases), then standing.
    Jog,
    /// Sitting on the bed and lying down gently: posture turns, no impact.
    LieDown,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::Stand,
        Kind::Walk,
        Kind::Fall,
        Kind::FallThenCancel,
        Kind::SitHard,
        Kind::Drop,
        Kind::Jog,
        Kind::LieDown,
    ];
}

type V = [f32; 3];

/// Acceleration shape of one phase, in g; `u` is ms into the phase, `d` its length.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Still(V),
    /// Bounce along gravity at the step rate, sway on x.
    Walk {
        g: V,
        amp: f32,
        hz: f32,
    },
    /// Posture turning smoothly, with a wobble of the body moving.
    Turn {
        from: V,
        to: V,
        wobble: f32,
    },
    /// |a| ramps down to `low` (free fall when near 0) while the posture turns.
    Dip {
        from: V,
        to: V,
        low: f32,
        ramp: f32,
    },
    /// Half-sine impact along `g`, |a| peaking at `peak`.
    Pulse {
        g: V,
        peak: f32,
    },
    /// Decaying wobble around `g`.
    Settle {
        g: V,
        amp: f32,
    },
    /// Running: flight at `low`, landing at `peak`, stance, every `cycle` ms.
    Jog {
        g: V,
        low: f32,
        peak: f32,
        cycle: f32,
    },
}

impl Shape {
    fn at(self, u: f32, d: f32) -> V {
        match self {
            Shape::Still(g) => g,
            Shape::Walk { g, amp, hz } => {
                let ph = 2.0 * PI * hz * u / 1_000.0;
                let v = scale(g, 1.0 + amp * sinf(ph));
                [v[0] + 0.4 * amp * sinf(ph / 2.0), v[1], v[2]]
            }
            Shape::Turn { from, to, wobble } => {
                let s = smooth(u / d);
                scale(
                    nlerp(from, to, s),
                    1.0 + wobble * sinf(2.0 * PI * 3.0 * u / 1e3),
                )
            }
            Shape::Dip {
                from,
                to,
                low,
                ramp,
            } => {
                let m = if u < ramp {
                    1.0 - (1.0 - low) * u / ramp
                } else {
                    low
                };
                scale(nlerp(from, to, u / d), m)
            }
            Shape::Pulse { g, peak } => scale(g, 1.0 + (peak - 1.0) * sinf(PI * u / d)),
            Shape::Settle { g, amp } => {
                let w = amp * expf(-4.0 * u / d) * sinf(2.0 * PI * 5.0 * u / 1e3);
                let v = scale(g, 1.0 + w);
                [v[0] + 0.5 * w, v[1], v[2]]
            }
            Shape::Jog {
                g,
                low,
                peak,
                cycle,
            } => {
                let p = u % cycle;
                let (flight, land) = (0.35 * cycle, 0.22 * cycle);
                let m = if p < flight {
                    low
                } else if p < flight + land {
                    low + (peak - low) * sinf(PI * (p - flight) / land)
                } else {
                    1.0 + 0.15 * sinf(PI * (p - flight - land) / (cycle - flight - land))
                };
                scale(g, m)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    end_ms: u64,
    shape: Shape,
}

/// A seeded xorshift32 generator.
#[derive(Debug, Clone)]
pub struct Rng(u32);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let folded = (seed ^ (seed >> 32)) as u32;
        let mut r = Rng(folded.wrapping_mul(0x9E37_79B9) ^ 0x6A09_E667);
        if r.0 == 0 {
            r.0 = 0x2545_F491;
        }
        for _ in 0..4 {
            r.next_u32();
        }
        r
    }

    /// The next value.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

/// One synthetic stream; iterate it for `(t_ms, [x, y, z] mg)`.
#[derive(Debug, Clone)]
pub struct Scenario {
    kind: Kind,
    phases: [Phase; MAX_PHASES],
    n: usize,
    cur: usize,
    period_ms: u64,
    t_ms: u64,
    rng: Rng,
    impact: Option<(u64, usize)>,
    cancel_at: Option<u64>,
}

impl Scenario {
    /// `kind` drawn from `seed`, sampled at `rate_hz` (the period is whole ms: rates
    /// dividing 1000, such as 50 or 100 Hz, are exact).
    pub fn new(kind: Kind, seed: u64, rate_hz: u16) -> Self {
        let filler = Phase {
            end_ms: 0,
            shape: Shape::Still([0.0, 1.0, 0.0]),
        };
        let mut s = Scenario {
            kind,
            phases: [filler; MAX_PHASES],
            n: 0,
            cur: 0,
            period_ms: 1_000 / u64::from(rate_hz.clamp(1, 1_000)),
            t_ms: 0,
            rng: Rng::new(seed),
            impact: None,
            cancel_at: None,
        };
        s.build();
        s
    }

    /// The same scenario with its main impact peaking at `impact_mg` instead (falls,
    /// sitting down hard, drops; others are unchanged).
    pub fn with_impact_mg(mut self, impact_mg: u16) -> Self {
        if let Some((_, i)) = self.impact {
            if let Shape::Pulse { peak, .. } = &mut self.phases[i].shape {
                *peak = f32::from(impact_mg) / 1_000.0;
            }
        }
        self
    }

    /// What the wearer does.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// When the main impact begins, ms (falls, sitting down hard, drops).
    pub fn impact_at_ms(&self) -> Option<u64> {
        self.impact.map(|(t, _)| t)
    }

    /// When the wearer presses cancel, ms ([`Kind::FallThenCancel`] only).
    pub fn cancel_at_ms(&self) -> Option<u64> {
        self.cancel_at
    }

    /// Appends a phase of `dur` ms (to the end of the scenario when `None`); returns
    /// when it starts.
    fn then(&mut self, dur: Option<f32>, shape: Shape) -> u64 {
        let start = self.phases[..self.n].last().map_or(0, |p| p.end_ms);
        let end_ms = dur.map_or(LENGTH_MS, |d| start + d as u64).min(LENGTH_MS);
        if self.n < MAX_PHASES {
            self.phases[self.n] = Phase { end_ms, shape };
            self.n += 1;
        }
        start
    }

    fn build(&mut self) {
        let mut r = self.rng.clone();
        let up = perturb([0.0, 1.0, 0.0], &mut r);
        let lying = lying(&mut r);
        let walk = Shape::Walk {
            g: up,
            amp: r.range(0.15, 0.3),
            hz: r.range(1.6, 2.1),
        };
        let walk_ms = Some(r.range(4_000.0, 8_000.0));
        match self.kind {
            Kind::Stand => {
                self.then(None, Shape::Still(up));
            }
            Kind::Walk => {
                self.then(None, walk);
            }
            Kind::Fall | Kind::FallThenCancel => {
                self.then(walk_ms, walk);
                let dip = Shape::Dip {
                    from: up,
                    to: lying,
                    low: r.range(0.22, 0.38),
                    ramp: r.range(60.0, 100.0),
                };
                self.then(Some(r.range(300.0, 500.0)), dip);
                self.pulse(Some(r.range(80.0, 150.0)), lying, r.range(3.0, 8.0));
                let amp = r.range(0.2, 0.4);
                self.then(Some(r.range(300.0, 800.0)), Shape::Settle { g: lying, amp });
                if self.kind == Kind::Fall {
                    self.then(None, Shape::Still(lying));
                } else {
                    self.then(Some(r.range(3_000.0, 20_000.0)), Shape::Still(lying));
                    let get_up = Shape::Turn {
                        from: lying,
                        to: up,
                        wobble: 0.25,
                    };
                    let t = self.then(Some(r.range(1_500.0, 2_500.0)), get_up);
                    self.cancel_at = Some(t + r.range(1_000.0, 3_000.0) as u64);
                    self.then(Some(r.range(500.0, 1_000.0)), Shape::Still(up));
                    self.then(None, walk);
                }
            }
            Kind::SitHard => {
                let lean = tanf(r.range(0.0, 25.0) * PI / 180.0);
                let sit = normalize([up[0], up[1], up[2] + lean]);
                self.then(walk_ms, walk);
                self.then(Some(r.range(500.0, 1_500.0)), Shape::Still(up));
                let dip = Shape::Dip {
                    from: up,
                    to: sit,
                    low: r.range(0.25, 0.6),
                    ramp: r.range(50.0, 80.0),
                };
                self.then(Some(r.range(200.0, 350.0)), dip);
                self.pulse(Some(r.range(100.0, 200.0)), sit, r.range(1.5, 3.0));
                let amp = r.range(0.15, 0.3);
                self.then(Some(r.range(300.0, 600.0)), Shape::Settle { g: sit, amp });
                self.then(None, Shape::Still(sit));
            }
            Kind::Drop => {
                let floor = random_unit(&mut r);
                let fall = |from, ramp| Shape::Dip {
                    from,
                    to: floor,
                    low: 0.0,
                    ramp,
                };
                self.then(walk_ms, walk);
                self.then(Some(r.range(400.0, 500.0)), fall(up, r.range(20.0, 30.0)));
                self.pulse(Some(r.range(50.0, 70.0)), floor, r.range(8.0, 12.0));
                for _ in 0..1 + r.next_u32() % 2 {
                    self.then(Some(r.range(80.0, 200.0)), fall(floor, 10.0));
                    let peak = r.range(2.0, 4.0);
                    self.then(Some(r.range(40.0, 60.0)), Shape::Pulse { g: floor, peak });
                }
                let settle = Shape::Settle { g: floor, amp: 0.3 };
                self.then(Some(r.range(200.0, 500.0)), settle);
                self.then(None, Shape::Still(floor));
            }
            Kind::Jog => {
                let lean = tanf(r.range(5.0, 10.0) * PI / 180.0);
                let jog = Shape::Jog {
                    g: normalize([up[0], up[1], up[2] - lean]),
                    low: r.range(0.2, 0.5),
                    peak: r.range(2.0, 3.0),
                    cycle: r.range(350.0, 390.0),
                };
                self.then(Some(r.range(2_000.0, 4_000.0)), walk);
                self.then(Some(r.range(30_000.0, 40_000.0)), jog);
                self.then(None, Shape::Still(up));
            }
            Kind::LieDown => {
                let sit = Shape::Dip {
                    from: up,
                    to: up,
                    low: r.range(0.8, 0.9),
                    ramp: 100.0,
                };
                self.then(walk_ms, walk);
                self.then(Some(r.range(500.0, 1_500.0)), Shape::Still(up));
                self.then(Some(300.0), sit);
                let peak = r.range(1.2, 1.4);
                self.then(Some(150.0), Shape::Pulse { g: up, peak });
                self.then(Some(r.range(1_000.0, 3_000.0)), Shape::Still(up));
                let lie = Shape::Turn {
                    from: up,
                    to: lying,
                    wobble: 0.08,
                };
                self.then(Some(r.range(1_500.0, 3_000.0)), lie);
                let settle = Shape::Settle { g: lying, amp: 0.1 };
                self.then(Some(300.0), settle);
                self.then(None, Shape::Still(lying));
            }
        }
        self.rng = r;
    }

    /// Appends the main impact.
    fn pulse(&mut self, dur: Option<f32>, g: V, peak: f32) {
        let t = self.then(dur, Shape::Pulse { g, peak });
        self.impact = Some((t, self.n - 1));
    }
}

impl Iterator for Scenario {
    type Item = (u64, [i16; 3]);

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.t_ms;
        while self.cur < self.n && self.phases[self.cur].end_ms <= t {
            self.cur += 1;
        }
        let phase = self.phases.get(self.cur).filter(|_| self.cur < self.n)?;
        let start = self.cur.checked_sub(1).map_or(0, |i| self.phases[i].end_ms);
        let d = phase.end_ms.saturating_sub(start).max(1) as f32;
        let g = phase.shape.at(t.saturating_sub(start) as f32, d);
        self.t_ms = t + self.period_ms;
        let rng = &mut self.rng;
        let mg = g.map(|c| (c * 1_000.0 + rng.range(-NOISE_MG, NOISE_MG)) as i16);
        Some((t, mg))
    }
}

fn scale(v: V, k: f32) -> V {
    v.map(|c| c * k)
}

fn normalize(v: V) -> V {
    let n = sqrtf(v.iter().map(|c| c * c).sum());
    if n < 1e-6 {
        [0.0, 1.0, 0.0]
    } else {
        scale(v, 1.0 / n)
    }
}

/// Normalised linear interpolation: a turn from `a` to `b` (not opposite).
fn nlerp(a: V, b: V, s: f32) -> V {
    let s = s.clamp(0.0, 1.0);
    normalize([0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * s))
}

fn smooth(s: f32) -> f32 {
    let s = s.clamp(0.0, 1.0);
    s * s * (3.0 - 2.0 * s)
}

/// `v` tilted by up to ~14° at random.
fn perturb(v: V, r: &mut Rng) -> V {
    normalize(v.map(|c| c + r.range(-0.14, 0.14)))
}

/// Lying on the back, the front or a side, tilted a little.
fn lying(r: &mut Rng) -> V {
    let base = match r.next_u32() % 4 {
        0 => [0.0, 0.0, 1.0],
        1 => [0.0, 0.0, -1.0],
        2 => [1.0, 0.0, 0.0],
        _ => [-1.0, 0.0, 0.0],
    };
    perturb(base, r)
}

/// Any orientation.
fn random_unit(r: &mut Rng) -> V {
    for _ in 0..16 {
        let v = [(); 3].map(|_| r.range(-1.0, 1.0));
        let n2: f32 = v.iter().map(|c| c * c).sum();
        if (0.04..=1.0).contains(&n2) {
            return normalize(v);
        }
    }
    [0.0, 0.0, 1.0]
}
