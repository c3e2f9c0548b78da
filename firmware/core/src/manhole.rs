//! Manhole cover: tilt relative to the cover's installed position (learnt at
//! installation from the accelerometer's gravity vector), with a tilt alarm (> 10°,
//! GB/T 41401 practice), a "cover removed" alarm (> 90°) and a deadband to clear.
//!
//! Owns the tilt decision; the water level under the cover is measured and reported
//! beside it by the application loop.

/// Cover settings, in 0.01°.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Tilt above this, `consecutive` samples in a row: tilted.
    pub tilt_cdeg: u16,
    /// Tilt above this: removed (at once).
    pub removed_cdeg: u16,
    /// Tilt back under this, `consecutive` samples in a row: level again.
    pub clear_cdeg: u16,
    /// Samples in a row for tilted or level.
    pub consecutive: u8,
    /// Samples averaged to learn the installed position.
    pub calibration_samples: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tilt_cdeg: 1_000,
            removed_cdeg: 9_000,
            clear_cdeg: 800,
            consecutive: 2,
            calibration_samples: 16,
        }
    }
}

/// Where the cover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverState {
    /// In place.
    Level,
    /// Tilted past the tilt level.
    Tilted,
    /// Lifted or flipped.
    Removed,
}

/// The cover's state.
#[derive(Debug, Clone)]
pub struct ManholeCover {
    cfg: Config,
    sum: [i64; 3],
    n: u16,
    baseline: Option<[f32; 3]>,
    state: CoverState,
    /// Samples in a row pointing at the same new state.
    pending: Option<(CoverState, u8)>,
}

impl ManholeCover {
    /// A cover not yet calibrated.
    pub fn new(cfg: Config) -> Self {
        ManholeCover {
            cfg,
            sum: [0; 3],
            n: 0,
            baseline: None,
            state: CoverState::Level,
            pending: None,
        }
    }

    /// Feeds a sample (mg per axis) taken at installation; true once the installed
    /// position is learnt.
    pub fn calibrate(&mut self, a: [i16; 3]) -> bool {
        if self.baseline.is_none() {
            for (s, v) in self.sum.iter_mut().zip(a) {
                *s += i64::from(v);
            }
            self.n += 1;
            if self.n >= self.cfg.calibration_samples.max(1) {
                let n = f32::from(self.n);
                self.baseline = Some(self.sum.map(|s| s as f32 / n));
            }
        }
        self.baseline.is_some()
    }

    /// The tilt of `a` from the installed position, 0.01°; None before calibration or for
    /// a zero vector.
    pub fn tilt_cdeg(&self, a: [i16; 3]) -> Option<u16> {
        let b = self.baseline?;
        let a = a.map(f32::from);
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: [f32; 3]| libm::sqrtf(v.iter().map(|x| x * x).sum());
        let d = norm(a) * norm(b);
        if d <= f32::EPSILON {
            return None;
        }
        let deg = libm::acosf((dot / d).clamp(-1.0, 1.0)).to_degrees();
        Some((deg * 100.0) as u16)
    }

    /// The current decision.
    pub fn state(&self) -> CoverState {
        self.state
    }

    /// Feeds a sample (mg per axis); returns the tilt and, when the decision changes, the
    /// new state.
    pub fn sample(&mut self, a: [i16; 3]) -> (Option<u16>, Option<CoverState>) {
        let Some(tilt) = self.tilt_cdeg(a) else {
            return (None, None);
        };
        let want = if tilt > self.cfg.removed_cdeg {
            CoverState::Removed
        } else if tilt > self.cfg.tilt_cdeg {
            CoverState::Tilted
        } else if tilt < self.cfg.clear_cdeg {
            CoverState::Level
        } else {
            // In the deadband: a tilted cover stays tilted, a level one level.
            self.state
        };
        if want == self.state {
            self.pending = None;
            return (Some(tilt), None);
        }
        // Only samples in a row that agree on the same new state count.
        let n = match self.pending {
            Some((s, n)) if s == want => n.saturating_add(1),
            _ => 1,
        };
        if want == CoverState::Removed || n >= self.cfg.consecutive.max(1) {
            self.state = want;
            self.pending = None;
            return (Some(tilt), Some(want));
        }
        self.pending = Some((want, n));
        (Some(tilt), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gravity (1000 mg) tilted by `deg` about the x axis from a cover mounted slanted.
    fn g(deg: f32) -> [i16; 3] {
        let r = deg.to_radians();
        [
            0,
            (1000.0 * libm::sinf(r)) as i16,
            (1000.0 * libm::cosf(r)) as i16,
        ]
    }

    #[test]
    fn tilt_is_measured_from_the_installed_position() {
        let mut c = ManholeCover::new(Config::default());
        assert_eq!(c.tilt_cdeg(g(0.0)), None, "not calibrated");
        // Installed 5° off level: that is its zero.
        for _ in 0..16 {
            c.calibrate(g(5.0));
        }
        let t = c.tilt_cdeg(g(5.0)).expect("calibrated");
        assert!(t < 20, "{t}");
        let t = c.tilt_cdeg(g(17.0)).expect("tilt");
        assert!((1_180..=1_220).contains(&t), "12° from its position: {t}");
    }

    #[test]
    fn tilted_needs_two_samples_removed_one_and_clearing_passes_the_deadband() {
        let mut c = ManholeCover::new(Config::default());
        while !c.calibrate(g(0.0)) {}
        assert_eq!(c.sample(g(12.0)).1, None, "one sample: a truck passing");
        assert_eq!(c.sample(g(2.0)).1, None);
        assert_eq!(c.sample(g(12.0)).1, None);
        assert_eq!(c.sample(g(12.0)).1, Some(CoverState::Tilted));
        assert_eq!(c.sample(g(9.0)).1, None, "deadband 8-10°: still tilted");
        assert_eq!(c.sample(g(9.0)).1, None);
        assert_eq!(c.sample(g(120.0)).1, Some(CoverState::Removed), "at once");
        assert_eq!(c.sample(g(1.0)).1, None);
        assert_eq!(c.sample(g(1.0)).1, Some(CoverState::Level));
        assert_eq!(c.sample([0, 0, 0]), (None, None), "no reading, no decision");
    }

    #[test]
    fn only_samples_agreeing_on_one_new_state_count() {
        let mut c = ManholeCover::new(Config::default());
        for _ in 0..16 {
            c.calibrate(g(0.0));
        }
        // Lifted off: removed at once.
        assert_eq!(c.sample(g(120.0)).1, Some(CoverState::Removed));
        // One tilted sample, then one level sample: neither has held long enough.
        assert_eq!(c.sample(g(20.0)).1, None);
        assert_eq!(
            c.sample(g(0.0)).1,
            None,
            "one level sample after a tilted one"
        );
        let needed = Config::default().consecutive.max(1);
        let mut last = None;
        for _ in 1..needed {
            last = c.sample(g(0.0)).1;
        }
        assert_eq!(last, Some(CoverState::Level));
    }
}
