//! The SOS button: a debounced press raises one SOS; a held button does not repeat it,
//! and a second press soon after the first (a nervous double press) is the same SOS.
//!
//! Owns press detection only; building and sending the report is the application loop's.

use crate::debounce::Debouncer;

/// SOS button settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// A level must hold this long to count, ms.
    pub debounce_ms: u64,
    /// The press must last this long to raise an SOS (0 = at once), ms.
    pub hold_ms: u64,
    /// After an SOS, presses within this long are the same SOS, ms.
    pub rearm_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            debounce_ms: 30,
            hold_ms: 0,
            rearm_ms: 3_000,
        }
    }
}

/// The button.
#[derive(Debug, Clone)]
pub struct SosButton {
    cfg: Config,
    input: Debouncer,
    pressed_since: Option<u64>,
    raised_this_press: bool,
    last_sos: Option<u64>,
}

impl SosButton {
    /// A button with `cfg`.
    pub fn new(cfg: Config) -> Self {
        SosButton {
            cfg,
            input: Debouncer::new(cfg.debounce_ms),
            pressed_since: None,
            raised_this_press: false,
            last_sos: None,
        }
    }

    /// Feeds the raw button level (true = pressed) at `now_ms`; true when an SOS is to be
    /// raised now.
    pub fn sample(&mut self, pressed: bool, now_ms: u64) -> bool {
        match self.input.update(pressed, now_ms) {
            Some(true) => {
                self.pressed_since = Some(now_ms);
                self.raised_this_press = false;
            }
            Some(false) => self.pressed_since = None,
            None => {}
        }
        let Some(since) = self.pressed_since else {
            return false;
        };
        if self.raised_this_press || now_ms.saturating_sub(since) < self.cfg.hold_ms {
            return false;
        }
        self.raised_this_press = true;
        let rearmed = self
            .last_sos
            .is_none_or(|t| now_ms.saturating_sub(t) >= self.cfg.rearm_ms);
        if rearmed {
            self.last_sos = Some(now_ms);
        }
        rearmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `level` every ms over `[from, to)`; counts SOS raised.
    fn hold(b: &mut SosButton, level: bool, from: u64, to: u64) -> usize {
        (from..to).filter(|t| b.sample(level, *t)).count()
    }

    #[test]
    fn one_press_one_sos_however_long_or_bouncy() {
        let mut b = SosButton::new(Config::default());
        assert_eq!(hold(&mut b, false, 0, 100), 0);
        // Bounces for 8 ms, then held for 5 s.
        let bouncy = (100..108).filter(|t| b.sample(t % 2 == 0, *t)).count();
        assert_eq!(bouncy, 0);
        assert_eq!(hold(&mut b, true, 108, 5_000), 1);
        assert_eq!(hold(&mut b, false, 5_000, 6_000), 0);
    }

    #[test]
    fn a_double_press_is_one_sos_and_a_later_press_another() {
        let mut b = SosButton::new(Config::default());
        hold(&mut b, false, 0, 50);
        assert_eq!(hold(&mut b, true, 50, 300), 1);
        hold(&mut b, false, 300, 600);
        assert_eq!(hold(&mut b, true, 600, 900), 0, "within rearm_ms");
        hold(&mut b, false, 900, 5_000);
        assert_eq!(hold(&mut b, true, 5_000, 5_300), 1, "after rearm_ms");
    }

    #[test]
    fn a_glitch_or_a_brush_shorter_than_the_hold_raises_nothing() {
        let mut b = SosButton::new(Config {
            hold_ms: 500,
            ..Config::default()
        });
        hold(&mut b, false, 0, 50);
        assert_eq!(hold(&mut b, true, 50, 55), 0, "5 ms glitch");
        hold(&mut b, false, 55, 100);
        assert_eq!(hold(&mut b, true, 100, 400), 0, "a brush of 300 ms");
        hold(&mut b, false, 400, 500);
        assert_eq!(hold(&mut b, true, 500, 1_200), 1, "held past 0.5 s");
    }
}
