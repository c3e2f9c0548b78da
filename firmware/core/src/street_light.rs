//! Street-light fault sensing: the relay's state against the lamp current. A lamp whose
//! relay is closed but draws (almost) nothing is dark; one drawing current with the relay
//! open burns by day (a stuck relay). Either needs several samples in a row, and the
//! decision is reported when it changes.
//!
//! Owns the fault decision only; measuring the current is the adapter's (INA219/INA226).

/// Lamp fault settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// With the relay closed, less than this is no light, mA.
    pub min_on_ma: u16,
    /// With the relay open, more than this is a stuck relay, mA.
    pub max_off_ma: u16,
    /// Samples in a row before a decision changes.
    pub consecutive: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_on_ma: 50,
            max_off_ma: 30,
            consecutive: 3,
        }
    }
}

/// What the lamp is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LampHealth {
    /// Relay and current agree.
    Ok,
    /// Relay closed, no current: a dead lamp, driver or fuse.
    Dark,
    /// Relay open, current flowing: a stuck relay, burning by day.
    BurningWhileOff,
}

/// The decision and the run of samples pointing elsewhere.
#[derive(Debug, Clone)]
pub struct LampFaults {
    cfg: Config,
    health: LampHealth,
    pending: Option<(LampHealth, u8)>,
}

impl LampFaults {
    /// A lamp assumed healthy.
    pub fn new(cfg: Config) -> Self {
        LampFaults {
            cfg,
            health: LampHealth::Ok,
            pending: None,
        }
    }

    /// The current decision.
    pub fn health(&self) -> LampHealth {
        self.health
    }

    /// Feeds one measurement; `Some(health)` when the decision changes.
    pub fn sample(&mut self, relay_on: bool, current_ma: u16) -> Option<LampHealth> {
        let seen = match (relay_on, current_ma) {
            (true, c) if c < self.cfg.min_on_ma => LampHealth::Dark,
            (false, c) if c > self.cfg.max_off_ma => LampHealth::BurningWhileOff,
            _ => LampHealth::Ok,
        };
        if seen == self.health {
            self.pending = None;
            return None;
        }
        let n = match self.pending {
            Some((h, n)) if h == seen => n.saturating_add(1),
            _ => 1,
        };
        if n >= self.cfg.consecutive.max(1) {
            self.health = seen;
            self.pending = None;
            return Some(seen);
        }
        self.pending = Some((seen, n));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_lamp_after_three_dark_samples_and_back_when_fixed() {
        let mut l = LampFaults::new(Config::default());
        assert_eq!(l.sample(true, 430), None);
        assert_eq!(l.sample(true, 0), None);
        assert_eq!(l.sample(true, 430), None, "one dark sample: a flicker");
        assert_eq!(l.sample(true, 0), None);
        assert_eq!(l.sample(true, 10), None);
        assert_eq!(l.sample(true, 0), Some(LampHealth::Dark));
        assert_eq!(
            l.sample(false, 0),
            None,
            "switched off: dark is normal, pending"
        );
        assert_eq!(l.sample(false, 0), None);
        assert_eq!(l.sample(false, 0), Some(LampHealth::Ok));
    }

    #[test]
    fn a_stuck_relay_burns_by_day() {
        let mut l = LampFaults::new(Config::default());
        for _ in 0..2 {
            assert_eq!(l.sample(false, 420), None);
        }
        assert_eq!(l.sample(false, 420), Some(LampHealth::BurningWhileOff));
        assert_eq!(l.health(), LampHealth::BurningWhileOff);
        // A dimmed lamp draws less but is not dark.
        let mut dim = LampFaults::new(Config::default());
        for _ in 0..5 {
            assert_eq!(dim.sample(true, 120), None);
        }
    }
}
