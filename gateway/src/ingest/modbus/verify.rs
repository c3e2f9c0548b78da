//! Command verification: after a write, the next polls must read the command back from
//! the register that shows its effect (a lamp's actual dimming level, its relay
//! feedback, a pump's run contact). Pure: polls are counted, not timed.
//!
//! Owns the pending checks of one device; does not write or poll (`poller`), nor keep the
//! audit trail (`audit`).

use linli_protocol::report::{CommandCheck, CommandTarget};

/// A command waiting for its read-back.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Audit id of the command.
    pub command: i64,
    /// Index of the register whose read-back shows the effect.
    pub readback: usize,
    /// The commanded value.
    pub requested: f64,
    /// How far the read-back may be.
    pub tolerance: f64,
    /// Reads of the read-back left before it counts as not applied.
    pub polls_left: u32,
    /// What the read-back is, when it is one the rules know (dimming, relay, pump).
    pub target: Option<CommandTarget>,
    /// A not-applied outcome was already given (the check goes on, so that a late
    /// success clears the fault).
    pub failed: bool,
}

/// What a read-back showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Audit id.
    pub command: i64,
    /// True when the read-back matched.
    pub applied: bool,
    /// The value read.
    pub observed: f64,
    /// The report for the pipeline, when the target is one rules know.
    pub check: Option<CommandCheck>,
}

/// The target a read-back metric stands for.
pub fn target_of(feeds: Option<&str>) -> Option<CommandTarget> {
    match feeds? {
        "relay_on" => Some(CommandTarget::Relay),
        "dimming_pct" => Some(CommandTarget::Dimming),
        "pump_on" => Some(CommandTarget::Pump),
        _ => None,
    }
}

/// The pending checks of one device.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    pending: Vec<Pending>,
}

impl Verifier {
    /// Starts checking a command; a newer command to the same read-back replaces the
    /// older one (which is then neither verified nor failed: superseded). Returns the
    /// replaced command's audit id.
    pub fn expect(&mut self, p: Pending) -> Option<i64> {
        let old = self
            .pending
            .iter()
            .position(|q| q.readback == p.readback)
            .map(|i| self.pending.swap_remove(i).command);
        self.pending.push(p);
        old
    }

    /// Checks a polled read-back of register `register`.
    pub fn observe(&mut self, register: usize, value: f64) -> Option<Outcome> {
        let i = self.pending.iter().position(|p| p.readback == register)?;
        let p = &mut self.pending[i];
        let applied = (value - p.requested).abs() <= p.tolerance;
        p.polls_left = p.polls_left.saturating_sub(1);
        let give = applied || (p.polls_left == 0 && !p.failed);
        if !give {
            return None;
        }
        let out = Outcome {
            command: p.command,
            applied,
            observed: value,
            check: p.target.map(|target| CommandCheck {
                target,
                requested: p.requested.round() as i32,
                observed: value.round() as i32,
                applied,
            }),
        };
        if applied {
            self.pending.swap_remove(i);
        } else {
            p.failed = true;
        }
        Some(out)
    }

    /// A poll could not read register `register` (an exception, a rejected value): a
    /// pending check on it uses up a poll all the same. When its polls run out without a
    /// read-back, the check ends undecided: the command's audit id is returned. No
    /// `CommandCheck` follows, so nothing is raised on a guess.
    pub fn unreadable(&mut self, register: usize) -> Option<i64> {
        let i = self.pending.iter().position(|p| p.readback == register)?;
        let p = &mut self.pending[i];
        p.polls_left = p.polls_left.saturating_sub(1);
        if p.polls_left > 0 {
            return None;
        }
        // A check that already failed stays open for a late success: only an undecided
        // one ends here.
        if p.failed {
            return None;
        }
        Some(self.pending.swap_remove(i).command)
    }

    /// Checks still open.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// No check open.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(command: i64, to: f64) -> Pending {
        Pending {
            command,
            readback: 3,
            requested: to,
            tolerance: 0.5,
            polls_left: 3,
            target: Some(CommandTarget::Dimming),
            failed: false,
        }
    }

    #[test]
    fn a_lamp_that_follows_is_verified_on_the_first_matching_poll() {
        let mut v = Verifier::default();
        v.expect(dim(1, 40.0));
        assert_eq!(
            v.observe(3, 100.0),
            None,
            "one poll may still show the old level"
        );
        let o = v.observe(3, 40.0).expect("verified");
        assert!(o.applied);
        assert_eq!(o.check.map(|c| c.applied), Some(true));
        assert!(v.is_empty());
        assert_eq!(v.observe(3, 40.0), None);
    }

    #[test]
    fn a_lamp_that_ignores_fails_once_then_clears_when_it_follows() {
        let mut v = Verifier::default();
        v.expect(dim(1, 40.0));
        assert_eq!(v.observe(3, 100.0), None);
        assert_eq!(v.observe(7, 100.0), None, "other registers do not count");
        assert_eq!(v.observe(3, 100.0), None);
        let o = v.observe(3, 100.0).expect("not applied after 3 polls");
        assert!(!o.applied);
        let c = o.check.expect("dimming is a rules target");
        assert_eq!((c.requested, c.observed, c.applied), (40, 100, false));
        assert_eq!(v.observe(3, 100.0), None, "the fault is given once");
        assert!(v.observe(3, 40.0).expect("late success").applied);
    }

    #[test]
    fn a_newer_command_supersedes_the_older() {
        let mut v = Verifier::default();
        assert_eq!(v.expect(dim(1, 40.0)), None);
        assert_eq!(v.expect(dim(2, 60.0)), Some(1));
        assert_eq!(v.len(), 1);
        assert_eq!(v.observe(3, 60.0).map(|o| o.command), Some(2));
    }

    #[test]
    fn a_read_back_that_cannot_be_read_ends_the_check_undecided() {
        let mut v = Verifier::default();
        v.expect(dim(7, 40.0));
        assert_eq!(v.unreadable(9), None, "another register");
        assert_eq!(v.unreadable(3), None);
        assert_eq!(v.unreadable(3), None);
        assert_eq!(v.unreadable(3), Some(7), "out of polls");
        assert!(v.is_empty());
        // One that already failed stays open for a late success.
        v.expect(dim(8, 40.0));
        for _ in 0..3 {
            v.observe(3, 100.0);
        }
        assert_eq!(v.unreadable(3), None);
        assert_eq!(v.observe(3, 40.0).map(|o| o.applied), Some(true));
    }
}
