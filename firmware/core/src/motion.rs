//! The PIR motion sensor: the first trigger is reported at once, then triggers are only
//! counted for a hold-off period (a person moving about a room would otherwise report
//! every few seconds) and reported as one count when it ends. Triggers during the
//! sensor's warm-up after power-on are ignored.
//!
//! Owns trigger accounting only.

/// PIR settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Triggers after a report are counted, not reported, for this long, ms.
    pub hold_off_ms: u64,
    /// Triggers this soon after power-on are ignored (the PIR settling), ms.
    pub warm_up_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hold_off_ms: 60_000,
            warm_up_ms: 30_000,
        }
    }
}

/// A motion report: triggers since the last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MotionReport {
    /// Triggers counted.
    pub count: u16,
}

/// The sensor's state.
#[derive(Debug, Clone)]
pub struct PirMotion {
    cfg: Config,
    boot_ms: u64,
    holding_until: Option<u64>,
    counted: u16,
}

impl PirMotion {
    /// A sensor powered on at `boot_ms`.
    pub fn new(cfg: Config, boot_ms: u64) -> Self {
        PirMotion {
            cfg,
            boot_ms,
            holding_until: None,
            counted: 0,
        }
    }

    /// A trigger (rising edge of the PIR output) at `now_ms`.
    pub fn trigger(&mut self, now_ms: u64) -> Option<MotionReport> {
        if now_ms.saturating_sub(self.boot_ms) < self.cfg.warm_up_ms {
            return None;
        }
        if let Some(r) = self.tick(now_ms) {
            // A hold-off ended unnoticed: report it, and this trigger starts the next.
            self.counted = 1;
            self.holding_until = Some(now_ms + self.cfg.hold_off_ms);
            return Some(r);
        }
        match self.holding_until {
            Some(_) => {
                self.counted = self.counted.saturating_add(1);
                None
            }
            None => {
                self.holding_until = Some(now_ms + self.cfg.hold_off_ms);
                Some(MotionReport { count: 1 })
            }
        }
    }

    /// Time passing: ends a hold-off, reporting the triggers it counted (if any).
    pub fn tick(&mut self, now_ms: u64) -> Option<MotionReport> {
        let until = self.holding_until?;
        if now_ms < until {
            return None;
        }
        self.holding_until = None;
        let count = core::mem::take(&mut self.counted);
        (count > 0).then_some(MotionReport { count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_trigger_at_once_then_one_count_per_hold_off() {
        let mut p = PirMotion::new(Config::default(), 0);
        assert_eq!(p.trigger(10_000), None, "warming up");
        assert_eq!(p.trigger(40_000), Some(MotionReport { count: 1 }));
        // Someone moving about: a trigger every 5 s for 50 s.
        for k in 1..=10 {
            assert_eq!(p.trigger(40_000 + k * 5_000), None);
        }
        assert_eq!(p.tick(99_999), None);
        assert_eq!(p.tick(100_000), Some(MotionReport { count: 10 }));
        assert_eq!(p.tick(200_000), None, "nothing more to say");
        assert_eq!(p.trigger(300_000), Some(MotionReport { count: 1 }));
    }

    #[test]
    fn a_hold_off_ended_without_a_tick_is_still_reported() {
        let mut p = PirMotion::new(Config::default(), 0);
        p.trigger(40_000);
        p.trigger(50_000);
        assert_eq!(p.trigger(200_000), Some(MotionReport { count: 1 }));
        assert_eq!(p.tick(260_000), Some(MotionReport { count: 1 }));
    }
}
