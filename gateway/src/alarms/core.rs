//! Rules and lifecycle in one pure step: a reading (or the passing of time) goes through
//! the rule engine, and its verdicts through the alarm lifecycle, in event-time order.
//!
//! Owns only that ordering; the follower adds storage, the fixture runner and the
//! benchmark drive it directly at simulated speed.

use std::sync::Arc;

use linli_protocol::Report;

use super::lifecycle::{Alarms, Changes, Controls};
use super::Alarm;
use crate::registry::DeviceProfile;
use crate::rules::{Engine, RuleSet, Verdict};

/// The rule engine and the lifecycle, driven together.
#[derive(Debug)]
pub struct AlarmCore {
    /// Rule evaluation.
    pub rules: Engine,
    /// Alarm lifecycle.
    pub alarms: Alarms,
    verdicts: Vec<Verdict>,
}

impl AlarmCore {
    /// A core with these rules, open alarms, controls and next alarm id.
    pub fn new(
        rules: Arc<RuleSet>,
        open: Vec<Alarm>,
        controls: Controls,
        next_id: u64,
    ) -> AlarmCore {
        let alarms = Alarms::new(
            rules.lifecycle,
            rules.groups.clone(),
            open,
            controls,
            next_id,
        );
        AlarmCore {
            rules: Engine::new(rules),
            alarms,
            verdicts: Vec::new(),
        }
    }

    /// Judges one reading received at `t` (ms). Timers due before `t` fire first; one
    /// due at `t` itself fires after the reading (which may still cancel it).
    pub fn apply(&mut self, profile: &DeviceProfile, report: &Report, t: u64) {
        self.advance(t.saturating_sub(1));
        self.rules.apply(profile, report, t, &mut self.verdicts);
        self.drain();
    }

    /// Lets time pass to `now`: due timers fire in deadline order.
    pub fn advance(&mut self, now: u64) {
        loop {
            let rules_next = self.rules.next_deadline().filter(|d| *d <= now);
            let alarms_next = self.alarms.next_deadline().filter(|d| *d <= now);
            match (rules_next, alarms_next) {
                (None, None) => break,
                (Some(r), Some(a)) if a < r => self.alarms.advance(a),
                (Some(r), _) => {
                    self.rules.advance(r, &mut self.verdicts);
                    self.drain();
                }
                (None, Some(a)) => self.alarms.advance(a),
            }
        }
        self.rules.advance(now, &mut self.verdicts);
        self.drain();
        self.alarms.advance(now);
    }

    /// Swaps in new rules (state is carried over where it fits; open alarms stay). An
    /// open alarm whose rule state was dropped (rule removed, or changed kind) has its
    /// condition cleared, so it can be acknowledged and closed.
    pub fn reload(&mut self, rules: Arc<RuleSet>) {
        let now = self.rules.now();
        self.alarms
            .reconfigure(rules.lifecycle, rules.groups.clone());
        for (kind, source) in self.rules.reload(rules) {
            self.alarms.clear_condition(
                &kind,
                &source,
                now,
                "its rule was removed or changed kind",
            );
        }
        self.drop_unplanned(now);
    }

    /// Drops rule state that no device's plan uses any more (a rule no longer selects
    /// the target: an override took it, a selector narrowed) and clears the condition of
    /// its open alarm. Runs after a reload and once a restart has registered the devices.
    pub fn drop_unplanned(&mut self, now: u64) {
        for (kind, source) in self.rules.drop_unplanned() {
            self.alarms.clear_condition(
                &kind,
                &source,
                now,
                "its rule no longer applies to this source",
            );
        }
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.rules.next_deadline(), self.alarms.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What the lifecycle changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        self.alarms.take_changes()
    }

    fn drain(&mut self) {
        for v in self.verdicts.drain(..) {
            self.alarms.on_verdict(&v);
        }
    }
}
