//! The outbox: every report a device made, kept until the gateway's application-level
//! ack for its frame counter, in a fixed number of slots (heapless, no alloc).
//!
//! Three priorities. **Alarms** (falls, SOS, hazards: the `event` channel, when a
//! detector decides) have `ALARMS` reserved slots that nothing else takes, and may also
//! take a shared slot, evicting the oldest periodic report, else the oldest change.
//! **Changes** (a door opened, a lamp went dark, a command's answer) take shared slots
//! and evict the oldest periodic report, else the oldest change. **Periodic** reports
//! (heartbeats, telemetry) take shared slots and evict only the oldest periodic report:
//! a newer reading is worth more than an older one, and neither is worth a change. What
//! finds no room is refused and counted; every eviction is counted: nothing leaves the
//! outbox silently.
//!
//! Sending order is alarms first, then everything else oldest counter first (the gateway
//! sees changes and readings in the order they happened). A frame is sent again when
//! unacked after `resend_ms`, and every frame is due again after a reconnect. Entries keep
//! the report, not the sealed bytes: sealing again with the same key and counter gives
//! the same frame, and a frame that fell too far behind the gateway's anti-replay window
//! gets a new counter (see [`Outbox::renumber_stale`]).
//!
//! Does not own sealing, the counter source or the connection (see [`crate::node`]).

use heapless::Vec;
use linli_protocol::replay::{is_after, WINDOW};
use linli_protocol::report::Pendant;
use linli_protocol::topic::UpChannel;
use linli_protocol::{Report, Uplink};

/// How much an entry matters, most first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A detector's alarm (event channel): reserved slots, sent first.
    Alarm,
    /// A state change or an answer: evicts periodic reports, not evicted by them.
    Change,
    /// Heartbeats and periodic telemetry: the first to go.
    Periodic,
}

impl Priority {
    /// The priority of a report a detector emitted as it happened: an alarm on the
    /// `event` channel, a change otherwise. A pendant's `impact` and `fall_cancelled`
    /// travel on the event channel but are changes: a day of hard sit-downs out of
    /// coverage must not fill the alarm slots a real fall needs.
    pub fn of_event(report: &Report) -> Priority {
        match report {
            Report::Pendant(Pendant::Impact { .. } | Pendant::FallCancelled) => Priority::Change,
            r if r.channel() == UpChannel::Event => Priority::Alarm,
            _ => Priority::Change,
        }
    }
}

/// One report waiting for its ack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// Frame counter it is sealed under.
    pub counter: u32,
    /// What it says.
    pub uplink: Uplink,
    /// How much it matters.
    pub priority: Priority,
    /// When it was last handed to the publisher, ms since boot.
    pub sent_ms: Option<u64>,
    /// The counter it had before it was last renumbered: a late ack for that one
    /// clears it too.
    pub previous: Option<u32>,
}

/// Why [`Outbox::push`] refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No slot it may take: every slot holds an alarm, or (for periodic reports) an alarm
    /// or a change.
    NoRoom,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pushed {
    /// Stored in a free slot.
    Stored,
    /// Stored in place of this entry, which is lost (counted).
    Evicted(Entry),
}

/// Counters since boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Entries acked by the gateway.
    pub acked: u32,
    /// Entries evicted to make room for newer or more important ones.
    pub evicted: u32,
    /// Reports refused for want of a slot they may take.
    pub refused: u32,
    /// Entries given a new counter because the old one fell behind the replay window.
    pub renumbered: u32,
}

/// `N` slots in all, `ALARMS` of them reserved for alarms.
#[derive(Debug)]
pub struct Outbox<const N: usize, const ALARMS: usize> {
    entries: Vec<Entry, N>,
    resend_ms: u64,
    stats: OutboxStats,
}

impl<const N: usize, const ALARMS: usize> Outbox<N, ALARMS> {
    const CHECK: () = assert!(ALARMS < N, "an outbox needs at least one shared slot");

    /// An empty outbox that resends unacked frames after `resend_ms`.
    pub fn new(resend_ms: u64) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        Outbox {
            entries: Vec::new(),
            resend_ms,
            stats: OutboxStats::default(),
        }
    }

    /// Entries waiting for their ack.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing waits for an ack.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Unacked alarms.
    pub fn alarms(&self) -> usize {
        self.count(Priority::Alarm)
    }

    /// Counters since boot.
    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn count(&self, p: Priority) -> usize {
        self.entries.iter().filter(|e| e.priority == p).count()
    }

    /// Keeps `uplink`, sealed under `counter` with `priority`, until its ack.
    pub fn push(
        &mut self,
        counter: u32,
        uplink: Uplink,
        priority: Priority,
    ) -> Result<Pushed, Refused> {
        let entry = Entry {
            counter,
            uplink,
            priority,
            sent_ms: None,
            previous: None,
        };
        let others = self.entries.len() - self.count(Priority::Alarm);
        let room = match priority {
            // An alarm may use any free slot.
            Priority::Alarm => self.entries.len() < N,
            // Nothing else may eat into the alarms' reserve.
            Priority::Change | Priority::Periodic => others < N - ALARMS && self.entries.len() < N,
        };
        if room {
            // Cannot fail: room was checked above.
            let _ = self.entries.push(entry);
            return Ok(Pushed::Stored);
        }
        let victim = match priority {
            Priority::Alarm | Priority::Change => self
                .oldest(Priority::Periodic)
                .or_else(|| self.oldest(Priority::Change)),
            Priority::Periodic => self.oldest(Priority::Periodic),
        };
        let Some(victim) = victim else {
            self.stats.refused += 1;
            return Err(Refused::NoRoom);
        };
        let evicted = core::mem::replace(&mut self.entries[victim], entry);
        self.stats.evicted += 1;
        Ok(Pushed::Evicted(evicted))
    }

    /// The newest counter held, in wrapping counter order.
    fn newest(&self) -> Option<u32> {
        self.entries.iter().map(|e| e.counter).max_by(|a, b| {
            if is_after(*a, *b) {
                core::cmp::Ordering::Greater
            } else {
                core::cmp::Ordering::Less
            }
        })
    }

    fn oldest(&self, p: Priority) -> Option<usize> {
        // Oldest = the one whose counter is furthest behind the newest.
        let newest = self.newest()?;
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.priority == p)
            .max_by_key(|(_, e)| newest.wrapping_sub(e.counter))
            .map(|(i, _)| i)
    }

    /// The gateway journaled the frame with `counter`: forget it. False if unknown
    /// (already acked, or an ack for another boot's frame).
    pub fn ack(&mut self, counter: u32) -> bool {
        let acked = self.take(|e| e.counter == counter || e.previous == Some(counter));
        if acked {
            self.stats.acked += 1;
        }
        acked
    }

    /// Drops the entry with `counter` without an ack (it can never be sent; the caller
    /// counts it). False if unknown.
    pub fn remove(&mut self, counter: u32) -> bool {
        self.take(|e| e.counter == counter)
    }

    fn take(&mut self, which: impl Fn(&Entry) -> bool) -> bool {
        match self.entries.iter().position(which) {
            Some(i) => {
                self.entries.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// After a reconnect every unacked frame is due again.
    pub fn reconnected(&mut self) {
        for e in &mut self.entries {
            e.sent_ms = None;
        }
    }

    /// The next entry to send at `now_ms`: never sent, or unacked for `resend_ms`;
    /// alarms first, then the rest, older counters first. Call [`Outbox::mark_sent`] once it
    /// is handed to the publisher.
    pub fn next_due(&self, now_ms: u64) -> Option<&Entry> {
        let due = |e: &&Entry| match e.sent_ms {
            None => true,
            Some(t) => now_ms.saturating_sub(t) >= self.resend_ms,
        };
        let newest = self.newest()?;
        self.entries.iter().filter(due).min_by_key(|e| {
            (
                e.priority != Priority::Alarm,
                core::cmp::Reverse(newest.wrapping_sub(e.counter)),
            )
        })
    }

    /// The entry with `counter` was handed to the publisher at `now_ms`.
    pub fn mark_sent(&mut self, counter: u32, now_ms: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.counter == counter) {
            e.sent_ms = Some(now_ms);
        }
    }

    /// When any entry has fallen so far behind `current` that the gateway would soon
    /// refuse it as stale (half the anti-replay window is kept as margin), gives every
    /// entry a new counter from `next`, oldest first, so their order is kept. An entry
    /// whose frame the gateway journaled without its ack reaching the device is then
    /// stored twice (better than never). Returns how many were renumbered.
    pub fn renumber_stale(&mut self, current: u32, mut next: impl FnMut() -> u32) -> usize {
        let stale = self
            .entries
            .iter()
            .any(|e| current.wrapping_sub(e.counter) >= WINDOW / 2);
        if !stale {
            return 0;
        }
        // Oldest first: by distance behind `current`, largest first.
        self.entries
            .sort_unstable_by_key(|e| core::cmp::Reverse(current.wrapping_sub(e.counter)));
        for e in self.entries.iter_mut() {
            e.previous = Some(e.counter);
            e.counter = next();
            e.sent_ms = None;
        }
        let n = self.entries.len();
        self.stats.renumbered += n as u32;
        n
    }
}

#[cfg(test)]
mod tests {
    use linli_protocol::report::Heartbeat;

    use super::*;

    fn hb(uptime_s: u32) -> Uplink {
        Uplink {
            device_time: 0,
            report: Report::Heartbeat(Heartbeat { uptime_s }),
        }
    }

    fn fall() -> Uplink {
        Uplink {
            device_time: 0,
            report: Report::Pendant(Pendant::Fall {
                impact_mg: 3000,
                still_s: 20,
            }),
        }
    }

    fn order(o: &mut Outbox<6, 2>, now: u64) -> std::vec::Vec<u32> {
        let mut v = std::vec::Vec::new();
        while let Some(e) = o.next_due(now).copied() {
            o.mark_sent(e.counter, now);
            v.push(e.counter);
        }
        v
    }

    extern crate std;

    #[test]
    fn telemetry_never_takes_the_alarm_reserve() {
        let mut o: Outbox<6, 2> = Outbox::new(5_000);
        for c in 1..=10 {
            o.push(c, hb(c), Priority::Periodic).unwrap();
        }
        // 4 shared slots: the 4 newest heartbeats remain, 6 evicted.
        assert_eq!(o.len(), 4);
        assert_eq!(o.stats().evicted, 6);
        let mut kept: std::vec::Vec<u32> = o.entries().iter().map(|e| e.counter).collect();
        kept.sort();
        assert_eq!(kept, [7, 8, 9, 10]);
        // Alarms still find their reserve.
        assert_eq!(o.push(11, fall(), Priority::Alarm), Ok(Pushed::Stored));
        assert_eq!(o.push(12, fall(), Priority::Alarm), Ok(Pushed::Stored));
        // A third alarm evicts the oldest telemetry rather than being lost.
        assert!(
            matches!(o.push(13, fall(), Priority::Alarm), Ok(Pushed::Evicted(e)) if e.counter == 7)
        );
        assert_eq!(o.alarms(), 3);
    }

    fn door(open: bool) -> Uplink {
        Uplink {
            device_time: 0,
            report: Report::Door(linli_protocol::report::Door { open }),
        }
    }

    #[test]
    fn changes_outlive_periodic_reports_and_keep_their_order() {
        let mut o: Outbox<6, 2> = Outbox::new(5_000);
        o.push(1, door(true), Priority::Change).unwrap();
        for c in 2..=4 {
            o.push(c, hb(c), Priority::Periodic).unwrap();
        }
        let evicts = |o: &mut Outbox<6, 2>, c: u32, u: Uplink, p: Priority| match o.push(c, u, p) {
            Ok(Pushed::Evicted(e)) => Some(e.counter),
            _ => None,
        };
        // Shared slots full (a change, three heartbeats): a change evicts the oldest
        // heartbeat, and so does a heartbeat.
        assert_eq!(evicts(&mut o, 5, door(false), Priority::Change), Some(2));
        assert_eq!(evicts(&mut o, 6, hb(6), Priority::Periodic), Some(3));
        assert_eq!(evicts(&mut o, 7, door(true), Priority::Change), Some(4));
        assert_eq!(evicts(&mut o, 8, door(false), Priority::Change), Some(6));
        // Only changes left in the shared slots: a heartbeat finds no room ...
        assert_eq!(o.push(9, hb(9), Priority::Periodic), Err(Refused::NoRoom));
        // ... a newer change evicts the oldest change ...
        assert_eq!(evicts(&mut o, 10, door(true), Priority::Change), Some(1));
        // ... and an alarm still has its reserve, and goes first; the rest in order.
        o.push(11, fall(), Priority::Alarm).unwrap();
        assert_eq!(order(&mut o, 0), [11, 5, 7, 8, 10]);
        assert_eq!((o.stats().evicted, o.stats().refused), (5, 1));
    }

    #[test]
    fn an_outbox_full_of_alarms_refuses_and_counts() {
        let mut o: Outbox<6, 2> = Outbox::new(5_000);
        for c in 1..=6 {
            o.push(c, fall(), Priority::Alarm).unwrap();
        }
        assert_eq!(o.push(7, fall(), Priority::Alarm), Err(Refused::NoRoom));
        assert_eq!(o.push(8, hb(1), Priority::Periodic), Err(Refused::NoRoom));
        assert_eq!(o.stats().refused, 2);
        assert_eq!(o.len(), 6);
    }

    #[test]
    fn alarms_go_first_then_oldest_first_and_acks_clear() {
        let mut o: Outbox<6, 2> = Outbox::new(5_000);
        o.push(1, hb(1), Priority::Periodic).unwrap();
        o.push(2, hb(2), Priority::Periodic).unwrap();
        o.push(3, fall(), Priority::Alarm).unwrap();
        o.push(4, hb(4), Priority::Periodic).unwrap();
        assert_eq!(order(&mut o, 0), [3, 1, 2, 4]);
        // Nothing is due again before the resend time.
        assert_eq!(o.next_due(4_999), None);
        assert!(o.ack(3));
        assert!(o.ack(1));
        assert!(!o.ack(1), "a second ack for the same frame finds nothing");
        assert_eq!(order(&mut o, 5_000), [2, 4]);
        // A reconnect makes every unacked frame due at once.
        o.reconnected();
        assert_eq!(order(&mut o, 5_001), [2, 4]);
        assert_eq!(o.stats().acked, 2);
    }

    #[test]
    fn order_survives_counter_wrap() {
        let mut o: Outbox<6, 2> = Outbox::new(5_000);
        o.push(u32::MAX - 1, hb(1), Priority::Periodic).unwrap();
        o.push(u32::MAX, hb(2), Priority::Periodic).unwrap();
        o.push(0, hb(3), Priority::Periodic).unwrap();
        o.push(1, hb(4), Priority::Periodic).unwrap();
        o.push(2, hb(5), Priority::Periodic).unwrap(); // evicts the oldest: u32::MAX - 1
        assert_eq!(order(&mut o, 0), [u32::MAX, 0, 1, 2]);
    }

    #[test]
    fn stale_entries_renumber_everything_in_order_and_late_acks_still_count() {
        let mut o: Outbox<6, 2> = Outbox::new(5_000);
        o.push(600, door(true), Priority::Change).unwrap();
        o.push(10, door(false), Priority::Change).unwrap();
        o.push(700, hb(1), Priority::Periodic).unwrap();
        o.mark_sent(10, 0);
        let mut next = 1000;
        let n = o.renumber_stale(1000, || {
            next += 1;
            next
        });
        // One entry was stale: all three are renumbered, oldest first, so the door's
        // open (600) still comes after its close (10).
        assert_eq!(n, 3);
        let by_new: std::vec::Vec<(u32, Option<u32>)> = {
            let mut v: std::vec::Vec<_> = o
                .entries()
                .iter()
                .map(|e| (e.counter, e.previous))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            by_new,
            [(1001, Some(10)), (1002, Some(600)), (1003, Some(700))]
        );
        assert_eq!(order(&mut o, 0), [1001, 1002, 1003], "all due again");
        // The gateway journaled #10 before the renumbering: its late ack clears #1001.
        assert!(o.ack(10));
        assert_eq!(o.len(), 2);
        assert_eq!(o.stats().renumbered, 3);
        // Nothing stale: nothing renumbered.
        assert_eq!(o.renumber_stale(1010, || 0), 0);
    }

    #[test]
    fn impacts_and_cancels_do_not_take_alarm_slots() {
        let impact = Uplink {
            device_time: 0,
            report: Report::Pendant(Pendant::Impact { impact_mg: 3000 }),
        };
        assert_eq!(Priority::of_event(&impact.report), Priority::Change);
        assert_eq!(Priority::of_event(&fall().report), Priority::Alarm);
        assert_eq!(Priority::of_event(&door(true).report), Priority::Change);
        let mut o: Outbox<6, 2> = Outbox::new(5_000);
        for c in 0..10 {
            o.push(c, impact, Priority::of_event(&impact.report))
                .unwrap();
        }
        // Impacts filled the shared slots only; two falls still find their reserve.
        assert_eq!(o.push(10, fall(), Priority::Alarm), Ok(Pushed::Stored));
        assert_eq!(o.push(11, fall(), Priority::Alarm), Ok(Pushed::Stored));
    }
}
