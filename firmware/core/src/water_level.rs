//! Water-level gauge (underpasses, drains): warning and alarm levels with a deadband
//! (an underpass closes at 25 cm), and the rate of rise over a window, so a fast-rising
//! flood is flagged before it reaches the alarm level and the gauge reports faster.
//!
//! Owns the level decisions and the rate; keeps samples spread over the rate window in a
//! fixed ring (no allocation), whatever the sample rate.

/// Gauge settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// At or above: warning, mm.
    pub warn_mm: u16,
    /// At or above: alarm, mm.
    pub alarm_mm: u16,
    /// A level clears this far below it, mm.
    pub deadband_mm: u16,
    /// Rising at least this fast: rising fast, mm per minute.
    pub fast_rise_mm_per_min: u16,
    /// The rate is measured over this window, ms (at least a minute of samples).
    pub window_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            warn_mm: 150,
            alarm_mm: 250,
            deadband_mm: 20,
            fast_rise_mm_per_min: 10,
            window_ms: 300_000,
        }
    }
}

/// How high the water is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaterState {
    /// Below the warning level.
    Normal,
    /// At or above the warning level.
    Warning,
    /// At or above the alarm level.
    Alarm,
}

/// What changed with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaterChange {
    /// The new level state.
    pub state: Option<WaterState>,
    /// Rising fast started (true) or ended (false).
    pub rising_fast: Option<bool>,
}

const RING: usize = 32;

/// The gauge's state.
#[derive(Debug, Clone)]
pub struct WaterGauge {
    cfg: Config,
    ring: [(u64, u16); RING],
    head: usize,
    len: usize,
    latest: Option<(u64, u16)>,
    state: WaterState,
    rising_fast: bool,
}

impl WaterGauge {
    /// A gauge with `cfg`.
    pub fn new(cfg: Config) -> Self {
        WaterGauge {
            cfg,
            ring: [(0, 0); RING],
            head: 0,
            len: 0,
            latest: None,
            state: WaterState::Normal,
            rising_fast: false,
        }
    }

    /// The level state.
    pub fn state(&self) -> WaterState {
        self.state
    }

    /// True while the gauge should report faster (water up or rising fast).
    pub fn fast_reporting(&self) -> bool {
        self.rising_fast || self.state > WaterState::Normal
    }

    /// Rise over the window up to the latest sample, mm per minute (negative: falling);
    /// None with less than a minute of samples in it.
    pub fn rate_mm_per_min(&self) -> Option<i32> {
        let newest = self.latest?;
        let oldest = (0..self.len)
            .map(|k| self.ring[(self.head + RING - self.len + k) % RING])
            .find(|(t, _)| newest.0.saturating_sub(*t) <= self.cfg.window_ms)?;
        let dt = newest.0.saturating_sub(oldest.0);
        if dt < 60_000 {
            return None;
        }
        let rise = i64::from(newest.1) - i64::from(oldest.1);
        Some((rise * 60_000 / dt as i64) as i32)
    }

    /// Keeps `(now_ms, level_mm)` in the history when the last kept sample is at least a
    /// ring slot's share of the window old: however fast the gauge is sampled, the ring
    /// spans the whole window.
    fn record(&mut self, now_ms: u64, level_mm: u16) {
        let spacing = self.cfg.window_ms / (RING as u64 - 1);
        let last = self.ring[(self.head + RING - 1) % RING].0;
        if self.len > 0 && now_ms.saturating_sub(last) < spacing {
            return;
        }
        self.ring[self.head] = (now_ms, level_mm);
        self.head = (self.head + 1) % RING;
        self.len = (self.len + 1).min(RING);
    }

    /// Feeds a level sample.
    pub fn sample(&mut self, level_mm: u16, now_ms: u64) -> WaterChange {
        self.latest = Some((now_ms, level_mm));
        self.record(now_ms, level_mm);
        let c = &self.cfg;
        let up = |level: u16| level_mm >= level;
        let down = |level: u16| level_mm < level.saturating_sub(c.deadband_mm);
        let state = match self.state {
            _ if up(c.alarm_mm) => WaterState::Alarm,
            WaterState::Alarm if !down(c.alarm_mm) => WaterState::Alarm,
            _ if up(c.warn_mm) => WaterState::Warning,
            WaterState::Alarm | WaterState::Warning if !down(c.warn_mm) => WaterState::Warning,
            _ => WaterState::Normal,
        };
        let mut change = WaterChange::default();
        if state != self.state {
            self.state = state;
            change.state = Some(state);
        }
        let fast = self
            .rate_mm_per_min()
            .is_some_and(|r| r >= i32::from(c.fast_rise_mm_per_min));
        if fast != self.rising_fast {
            self.rising_fast = fast;
            change.rising_fast = Some(fast);
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_flood_is_flagged_rising_before_it_reaches_the_alarm_level() {
        let mut g = WaterGauge::new(Config::default());
        let mut t = 0;
        let mut events = [(0u16, WaterChange::default()); 8];
        let mut n = 0;
        let mut level = 20u16;
        // Dry for 10 min, then 15 mm/min for 20 min, then draining at 30 mm/min.
        for step in 0..360 {
            let minute = step / 6;
            level = match minute {
                0..=9 => 20,
                10..=29 => level + 2 + u16::from(step % 2 == 0),
                _ => level.saturating_sub(5),
            };
            let c = g.sample(level, t);
            if c != WaterChange::default() && n < events.len() {
                events[n] = (level, c);
                n += 1;
            }
            t += 10_000;
        }
        let first = events[0];
        assert_eq!(first.1.rising_fast, Some(true), "{events:?}");
        assert!(first.0 < 150, "flagged while still low: {}", first.0);
        assert!(events[..n]
            .iter()
            .any(|e| e.1.state == Some(WaterState::Warning)));
        assert!(events[..n]
            .iter()
            .any(|e| e.1.state == Some(WaterState::Alarm)));
        assert!(events[..n].iter().any(|e| e.1.rising_fast == Some(false)));
        assert_eq!(g.state(), WaterState::Normal, "drained");
        assert!(!g.fast_reporting());
    }

    #[test]
    fn the_deadband_holds_a_level_against_ripples() {
        let mut g = WaterGauge::new(Config::default());
        assert_eq!(g.sample(260, 0).state, Some(WaterState::Alarm));
        assert_eq!(
            g.sample(240, 10_000).state,
            None,
            "ripple inside the deadband"
        );
        assert_eq!(g.sample(229, 20_000).state, Some(WaterState::Warning));
        assert_eq!(g.sample(140, 30_000).state, None);
        assert_eq!(g.sample(129, 40_000).state, Some(WaterState::Normal));
        assert_eq!(g.rate_mm_per_min(), None, "under a minute of samples");
    }

    #[test]
    fn a_fast_rise_is_seen_however_often_the_gauge_is_sampled() {
        for every_ms in [1_000u64, 5_000, 20_000] {
            let mut g = WaterGauge::new(Config::default());
            let mut flagged = None;
            // Flat for 10 minutes, then 15 mm/min.
            for i in 0..(40 * 60_000 / every_ms) {
                let t = i * every_ms;
                let level = 20 + (t.saturating_sub(600_000) * 15 / 60_000) as u16;
                if g.sample(level, t).rising_fast == Some(true) {
                    flagged = Some(t);
                    break;
                }
            }
            // Flagged within a few minutes of the rise starting, before the warning level.
            assert!(
                flagged.is_some_and(|t| (600_000..=600_000 + 8 * 60_000).contains(&t)),
                "sampled every {every_ms} ms: {flagged:?}"
            );
        }
    }
}
