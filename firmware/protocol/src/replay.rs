//! Anti-replay window over wrapping 32-bit frame counters (serial-number arithmetic,
//! as in RFC 1982, with a 1024-frame ring bitmap as in IPsec).
//!
//! A frame more than [`WINDOW`] counters behind the newest accepted one is stale and
//! refused; firmware that resends such an old frame must re-seal it with a new counter.
//!
//! Owns the "have I seen this counter" decision; does not own persistence (the gateway
//! rebuilds windows from its journal) or what to do with a duplicate.

/// Frames older than the newest by this many or more are stale.
pub const WINDOW: u32 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Outcome of checking a counter against the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: accept it.
    Fresh,
    /// Seen before (a resend or a replay).
    Duplicate,
    /// Too old to tell: reject.
    Stale,
}

/// Per-device window: the newest accepted counter and which of the 1024 before it were seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplayWindow {
    newest: Option<u32>,
    /// Bit `c % WINDOW` is set when counter `c` (within the window) was accepted.
    seen: [u64; WORDS],
}

fn slot(counter: u32) -> (usize, u64) {
    let i = counter % WINDOW;
    ((i / 64) as usize, 1u64 << (i % 64))
}

/// Is `a` after `b` in wrapping counter order?
pub fn is_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000_0000
}

impl ReplayWindow {
    /// The newest accepted counter, if any.
    pub fn newest(&self) -> Option<u32> {
        self.newest
    }

    /// Checks `counter` without recording it.
    pub fn check(&self, counter: u32) -> Verdict {
        let Some(newest) = self.newest else {
            return Verdict::Fresh;
        };
        if is_after(counter, newest) {
            return Verdict::Fresh;
        }
        let back = newest.wrapping_sub(counter);
        let (w, bit) = slot(counter);
        if back >= WINDOW {
            Verdict::Stale
        } else if self.seen[w] & bit != 0 {
            Verdict::Duplicate
        } else {
            Verdict::Fresh
        }
    }

    /// Records `counter` as accepted. Call only after [`ReplayWindow::check`] said Fresh.
    pub fn accept(&mut self, counter: u32) {
        match self.newest {
            None => self.newest = Some(counter),
            Some(newest) if is_after(counter, newest) => {
                let advance = counter.wrapping_sub(newest);
                if advance >= WINDOW {
                    self.seen = [0; WORDS];
                } else {
                    // Forget what the slots of the newly covered counters held.
                    for c in 1..=advance {
                        let (w, bit) = slot(newest.wrapping_add(c));
                        self.seen[w] &= !bit;
                    }
                }
                self.newest = Some(counter);
            }
            Some(newest) => {
                if newest.wrapping_sub(counter) >= WINDOW {
                    return;
                }
            }
        }
        let (w, bit) = slot(counter);
        self.seen[w] |= bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_then_replay() {
        let mut w = ReplayWindow::default();
        for c in 1..=100 {
            assert_eq!(w.check(c), Verdict::Fresh);
            w.accept(c);
        }
        assert_eq!(w.check(100), Verdict::Duplicate);
        assert_eq!(w.check(50), Verdict::Duplicate);
        for c in 101..=1100 {
            w.accept(c);
        }
        assert_eq!(w.check(100), Verdict::Duplicate);
        assert_eq!(w.check(76), Verdict::Stale);
        assert_eq!(w.check(1101), Verdict::Fresh);
    }

    #[test]
    fn late_resend_inside_window_is_fresh_once() {
        let mut w = ReplayWindow::default();
        for c in [10, 12, 13] {
            w.accept(c);
        }
        assert_eq!(w.check(11), Verdict::Fresh);
        w.accept(11);
        assert_eq!(w.check(11), Verdict::Duplicate);
        assert_eq!(w.check(12), Verdict::Duplicate);
    }

    #[test]
    fn wraps_around() {
        let mut w = ReplayWindow::default();
        w.accept(u32::MAX - 1);
        w.accept(u32::MAX);
        assert_eq!(w.check(0), Verdict::Fresh);
        w.accept(0);
        assert_eq!(w.check(u32::MAX), Verdict::Duplicate);
        assert_eq!(w.check(1), Verdict::Fresh);
    }

    #[test]
    fn big_jump_forgets_old_bits() {
        let mut w = ReplayWindow::default();
        w.accept(5);
        w.accept(5000);
        assert_eq!(w.check(5), Verdict::Stale);
        assert_eq!(w.check(4999), Verdict::Fresh);
        assert_eq!(
            w.check(5000 - 1024 + 5),
            Verdict::Fresh,
            "old slot bits were cleared"
        );
    }
}
