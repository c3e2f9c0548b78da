//! A debounced digital input (a button, a reed contact): a level counts once it has held
//! for the debounce time. Shared by the SOS button and the door contact.
//!
//! Owns only the stable level; what a change means is its user's business.

/// Debounces one input.
#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce_ms: u64,
    stable: Option<bool>,
    candidate: Option<(bool, u64)>,
}

impl Debouncer {
    /// An input whose level counts after holding `debounce_ms`.
    pub const fn new(debounce_ms: u64) -> Self {
        Debouncer {
            debounce_ms,
            stable: None,
            candidate: None,
        }
    }

    /// The stable level, once there is one.
    pub fn level(&self) -> Option<bool> {
        self.stable
    }

    /// Feeds the raw level at `now_ms`; returns the new stable level when it changes (the
    /// first stable level counts as a change).
    pub fn update(&mut self, level: bool, now_ms: u64) -> Option<bool> {
        if self.stable == Some(level) {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((l, since)) if l == level => {
                if now_ms.saturating_sub(since) >= self.debounce_ms {
                    self.stable = Some(level);
                    self.candidate = None;
                    return Some(level);
                }
            }
            _ => self.candidate = Some((level, now_ms)),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounces_and_glitches_do_not_count() {
        let mut d = Debouncer::new(20);
        assert_eq!(d.update(false, 0), None);
        assert_eq!(d.update(false, 20), Some(false), "first stable level");
        // A contact bouncing for 10 ms, then held.
        let mut changes = 0;
        for t in 100..110 {
            if d.update(t % 2 == 0, t).is_some() {
                changes += 1;
            }
        }
        assert_eq!(changes, 0);
        assert_eq!(d.update(true, 115), None);
        assert_eq!(d.update(true, 135), Some(true));
        // A 5 ms glitch back to open.
        assert_eq!(d.update(false, 200), None);
        assert_eq!(d.update(true, 205), None);
        assert_eq!(d.level(), Some(true));
    }
}
