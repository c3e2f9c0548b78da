//! Beat detection on the low-passed IR level: finds each systolic upstroke and times it.
//!
//! Owns the detector state only; the estimator decides what a beat means. The inverted
//! IR (more blood, less light) rises over `lag` samples (~80 ms) fastest on the systolic
//! upstroke, steeper than baseline wander or the dicrotic wave. A slope peak is a beat
//! when it passes the threshold — half the typical peak, learnt over the first 1.5 s and
//! updated each beat (falling fast, rising at most by a quarter of the excess), sinking
//! with τ ≈ 1.3 s once a beat is 1.5 intervals overdue — after a refractory period of
//! `max(refractory, 0.4 × last interval)`. A candidate ends when the slope falls below
//! half its peak; a parabola through the peak and its neighbours gives the sub-sample
//! time.

const HIST: usize = 128;
/// Peaks learnt for this long after a restart before detection starts, ms.
pub(super) const LEARN_MS: u64 = 1_500;

/// A detected beat.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fiducial {
    /// When the upstroke was steepest, µs.
    pub t_us: u64,
    /// Interval since the previous beat, µs, when that was no longer than the maximum.
    pub interval_us: Option<u32>,
    /// The slope peak (IR fall over `lag`, Q4 counts).
    pub peak: i32,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    t_ms: u64,
    prev: i32,
    max: i32,
    next: Option<i32>,
}

/// The detector's state.
#[derive(Debug, Clone)]
pub(super) struct Detector {
    lag: usize,
    decay_shift: u32,
    period_us: u32,
    refractory_us: u64,
    max_interval_us: u64,
    hist: [i32; HIST],
    pos: usize,
    len: usize,
    prev: i32,
    level: i32,
    threshold: i32,
    cand: Option<Candidate>,
    last_us: Option<u64>,
    interval_us: u32,
    learn_until_ms: u64,
}

impl Detector {
    /// A detector for `fs` samples per second (10–1000).
    pub fn new(fs: u32, refractory_ms: u32, max_interval_ms: u32) -> Self {
        Detector {
            lag: ((fs + 6) / 12).clamp(1, HIST as u32 - 1) as usize,
            decay_shift: fs.ilog2() + 1,
            period_us: 1_000_000 / fs,
            refractory_us: u64::from(refractory_ms) * 1_000,
            max_interval_us: u64::from(max_interval_ms) * 1_000,
            hist: [0; HIST],
            pos: 0,
            len: 0,
            prev: 0,
            level: 0,
            threshold: 0,
            cand: None,
            last_us: None,
            interval_us: 0,
            learn_until_ms: 0,
        }
    }

    /// Forgets all beats; learns from `t_ms` on.
    pub fn restart(&mut self, t_ms: u64) {
        let (lag, decay_shift, period_us) = (self.lag, self.decay_shift, self.period_us);
        let (refractory_us, max_interval_us) = (self.refractory_us, self.max_interval_us);
        *self = Detector {
            lag,
            decay_shift,
            period_us,
            refractory_us,
            max_interval_us,
            learn_until_ms: t_ms.saturating_add(LEARN_MS),
            ..Detector::new(10, 0, 0)
        };
    }

    /// Feeds the IR level (Q4) at `t_ms`: the slope, once there is history, and the beat
    /// it completes, if any.
    pub fn push(&mut self, t_ms: u64, ir: i32) -> (Option<i32>, Option<Fiducial>) {
        let back = self.hist[(self.pos + HIST - self.lag) % HIST];
        self.hist[self.pos] = ir;
        self.pos = (self.pos + 1) % HIST;
        self.len = (self.len + 1).min(HIST);
        if self.len <= self.lag {
            return (None, None);
        }
        let slope = back - ir;
        let prev = core::mem::replace(&mut self.prev, slope);
        if t_ms < self.learn_until_ms {
            self.level = self.level.max(slope);
            self.threshold = self.level / 2;
            return (Some(slope), None);
        }
        let now_us = t_ms.saturating_mul(1_000);
        let overdue = u64::from(self.interval_us) * 3 / 2;
        if self
            .last_us
            .is_none_or(|b| now_us > b.saturating_add(overdue))
        {
            self.threshold -= self.threshold >> self.decay_shift;
        }
        let fiducial = match self.cand.as_mut() {
            None => {
                let refractory = self.refractory_us.max(u64::from(self.interval_us) * 2 / 5);
                let rested = self
                    .last_us
                    .is_none_or(|b| now_us >= b.saturating_add(refractory));
                if slope > self.threshold.max(0) && rested {
                    self.cand = Some(Candidate {
                        t_ms,
                        prev,
                        max: slope,
                        next: None,
                    });
                }
                None
            }
            Some(c) if slope > c.max => {
                *c = Candidate {
                    t_ms,
                    prev,
                    max: slope,
                    next: None,
                };
                None
            }
            Some(c) => {
                c.next.get_or_insert(slope);
                if slope < c.max / 2 {
                    self.cand.take().map(|c| self.beat(c))
                } else {
                    None
                }
            }
        };
        (Some(slope), fiducial)
    }

    fn beat(&mut self, c: Candidate) -> Fiducial {
        let next = c.next.unwrap_or(c.max);
        let den = (c.prev - 2 * c.max + next) as f32;
        let frac = if den < 0.0 {
            (0.5 * (c.prev - next) as f32 / den).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        let shift = (frac * self.period_us as f32) as i64;
        let t_us = c.t_ms.saturating_mul(1_000).saturating_add_signed(shift);
        self.level = match self.level {
            l if l <= 0 => c.max,
            l if c.max < l => c.max,
            l => l + (c.max.min(l.saturating_mul(2)) - l) / 4,
        };
        self.threshold = self.level / 2;
        let interval = self
            .last_us
            .map(|last| t_us.saturating_sub(last))
            .filter(|&i| i <= self.max_interval_us)
            .map(|i| i.min(u64::from(u32::MAX)) as u32);
        if let Some(i) = interval {
            self.interval_us = i;
        }
        self.last_us = Some(t_us);
        Fiducial {
            t_us,
            interval_us: interval,
            peak: c.max,
        }
    }
}
