//! Bed occupancy from a pressure pad: hysteresis between an "in bed" and an "out of
//! bed" level, and dwell times, so turning over or sitting on the edge does not flap.
//!
//! Owns the occupancy decision only.

/// Bed sensor settings (raw pressure units of the pad).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// At or above: someone may be in bed.
    pub on_level: u16,
    /// Below: the bed may be empty.
    pub off_level: u16,
    /// Above `on_level` this long: occupied, ms.
    pub enter_ms: u64,
    /// Below `off_level` this long: empty, ms.
    pub exit_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            on_level: 600,
            off_level: 400,
            enter_ms: 5_000,
            exit_ms: 15_000,
        }
    }
}

/// The bed's state.
#[derive(Debug, Clone)]
pub struct BedOccupancy {
    cfg: Config,
    occupied: Option<bool>,
    /// A crossing in progress: its direction (true = into bed) and when it began.
    crossing: Option<(bool, u64)>,
}

impl BedOccupancy {
    /// A pad with `cfg`; the state is unknown until the first decision.
    pub fn new(cfg: Config) -> Self {
        BedOccupancy {
            cfg,
            occupied: None,
            crossing: None,
        }
    }

    /// The current decision.
    pub fn occupied(&self) -> Option<bool> {
        self.occupied
    }

    /// Feeds a pressure sample; `Some(occupied)` when the decision changes (the first
    /// decision too).
    pub fn sample(&mut self, pressure: u16, now_ms: u64) -> Option<bool> {
        let toward = if pressure >= self.cfg.on_level {
            true
        } else if pressure < self.cfg.off_level {
            false
        } else {
            // Between the levels: nothing changes, and a crossing must start again (the
            // dwell is time spent beyond the level without a break).
            self.crossing = None;
            return None;
        };
        if self.occupied == Some(toward) {
            self.crossing = None;
            return None;
        }
        let since = match self.crossing {
            Some((dir, since)) if dir == toward => since,
            _ => {
                self.crossing = Some((toward, now_ms));
                now_ms
            }
        };
        let dwell = if toward {
            self.cfg.enter_ms
        } else {
            self.cfg.exit_ms
        };
        if now_ms.saturating_sub(since) >= dwell {
            self.occupied = Some(toward);
            self.crossing = None;
            return Some(toward);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(b: &mut BedOccupancy, p: u16, from: u64, to: u64) -> Option<bool> {
        let mut last = None;
        for t in (from..to).step_by(500) {
            if let Some(e) = b.sample(p, t) {
                last = Some(e);
            }
        }
        last
    }

    #[test]
    fn getting_in_and_out_with_turning_over_in_between() {
        let mut b = BedOccupancy::new(Config::default());
        assert_eq!(
            feed(&mut b, 100, 0, 20_000),
            Some(false),
            "empty bed learnt"
        );
        assert_eq!(
            feed(&mut b, 900, 20_000, 23_000),
            None,
            "sitting on it briefly"
        );
        assert_eq!(feed(&mut b, 100, 23_000, 30_000), None);
        assert_eq!(feed(&mut b, 900, 30_000, 40_000), Some(true));
        // Turning over: pressure dips between the levels, then briefly below.
        assert_eq!(feed(&mut b, 500, 40_000, 60_000), None);
        assert_eq!(feed(&mut b, 300, 60_000, 70_000), None, "under exit_ms");
        assert_eq!(feed(&mut b, 900, 70_000, 80_000), None);
        assert_eq!(feed(&mut b, 50, 80_000, 100_000), Some(false), "got up");
        assert_eq!(b.occupied(), Some(false));
    }

    #[test]
    fn time_between_the_levels_does_not_count_as_dwell() {
        let mut b = BedOccupancy::new(Config::default());
        assert_eq!(feed(&mut b, 800, 0, 6_000), Some(true));
        // A dip below the off level, 20 s between the levels, then below again: the
        // 15 s below must be served from the new crossing, without a break.
        assert_eq!(feed(&mut b, 300, 6_000, 7_000), None);
        assert_eq!(feed(&mut b, 500, 7_000, 27_000), None);
        assert_eq!(
            feed(&mut b, 300, 27_000, 41_000),
            None,
            "14 s below: not yet"
        );
        assert_eq!(feed(&mut b, 300, 41_000, 43_000), Some(false));
    }

    #[test]
    fn a_crossing_that_turns_round_starts_its_dwell_again() {
        let mut b = BedOccupancy::new(Config::default());
        // Unknown at start: 10 s low, then high; occupied only after 5 s high.
        assert_eq!(feed(&mut b, 100, 0, 10_000), None);
        assert_eq!(feed(&mut b, 800, 10_000, 14_500), None);
        assert_eq!(feed(&mut b, 800, 14_500, 15_500), Some(true));
    }
}
