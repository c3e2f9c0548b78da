//! The door contact: a debounced reed switch, reported when it settles in a new position
//! (the first settled position too, so the gateway learns the state after a restart).
//!
//! Owns the contact's state only.

use crate::debounce::Debouncer;

/// A door contact.
#[derive(Debug, Clone)]
pub struct DoorContact {
    input: Debouncer,
}

impl Default for DoorContact {
    fn default() -> Self {
        DoorContact::new(50)
    }
}

impl DoorContact {
    /// A contact debounced over `debounce_ms`.
    pub const fn new(debounce_ms: u64) -> Self {
        DoorContact {
            input: Debouncer::new(debounce_ms),
        }
    }

    /// Feeds the raw contact (true = magnet away: door open) at `now_ms`; `Some(open)`
    /// when the door settles in a new position.
    pub fn sample(&mut self, open: bool, now_ms: u64) -> Option<bool> {
        self.input.update(open, now_ms)
    }

    /// The settled position, once known.
    pub fn open(&self) -> Option<bool> {
        self.input.level()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slammed_door_is_one_open_and_one_close() {
        let mut d = DoorContact::default();
        let mut events = [None; 4];
        let mut n = 0;
        let mut feed = |open: bool, from: u64, to: u64| {
            for t in from..to {
                if let Some(e) = d.sample(open, t) {
                    events[n] = Some(e);
                    n += 1;
                }
            }
        };
        feed(false, 0, 100);
        feed(true, 100, 2_000);
        // The slam rattles the contact for 20 ms.
        for t in 2_000..2_020 {
            feed(t % 3 == 0, t, t + 1);
        }
        feed(false, 2_020, 3_000);
        assert_eq!(events, [Some(false), Some(true), Some(false), None]);
    }
}
