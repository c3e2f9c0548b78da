//! A device on the network: its identity and key, its frame counter, its outbox, its
//! timing (heartbeats, reporting cadence, reconnect backoff) and what it makes of the
//! frames the gateway sends it ([`downlink`]: acks, settings, commands).
//!
//! Pure, like the state machines: time comes in as ms since boot, frames come in and go
//! out as bytes. Does not own sampling or detection (see [`crate::app`]), nor the MQTT
//! connection (see [`crate::publish`]).
//!
//! Counters are nonces: one must never seal two frames after a reboot. The node reserves
//! them in blocks — [`Node::counter_to_save`] says what to write to flash, and
//! [`Node::counter_saved`] that it is written — and hands out no frame sealed beyond what
//! is saved. At boot it continues from the saved value, which is also its boot counter:
//! settings and commands issued before it are refused (see [`downlink`]).

pub mod downlink;

pub use downlink::{DownlinkError, Downlinked, Outcome};

use heapless::String;
use linli_protocol::codec::{encode_uplink, MAX_BODY_LEN};
use linli_protocol::replay::is_after;
use linli_protocol::report::Heartbeat;
use linli_protocol::seal::{self, OVERHEAD};
use linli_protocol::topic::{self, DownChannel};
use linli_protocol::{DeviceKey, FrameClass, Report, Uplink};

use crate::backoff::Backoff;
use crate::outbox::{Outbox, OutboxStats, Priority, Refused};

/// Largest sealed uplink frame.
pub const MAX_FRAME: usize = MAX_BODY_LEN + OVERHEAD;
/// Longest topic a node writes (prefix, 64-byte id, channel).
pub const MAX_TOPIC: usize = 96;
/// Counters reserved by one write to flash.
pub const COUNTER_BLOCK: u32 = 256;
/// A connection that lasted this long was a success: the next failure backs off from the
/// start again, ms.
const STABLE_CONNECTION_MS: u64 = 60_000;

/// Reporting cadence; the gateway may change it with `Downlink::Config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Heartbeat interval, s.
    pub heartbeat_s: u16,
    /// Telemetry interval in normal times, s.
    pub report_s: u16,
    /// Telemetry interval while an alarm condition lasts, s.
    pub alarm_report_s: u16,
    /// An unacked frame is sent again after this long, ms.
    pub resend_ms: u64,
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence {
            heartbeat_s: 300,
            report_s: 600,
            alarm_report_s: 10,
            resend_ms: 10_000,
        }
    }
}

/// One sealed frame ready for the publisher.
#[derive(Debug)]
pub struct Frame<'b> {
    /// Its topic.
    pub topic: &'b str,
    /// Header, ciphertext and tag.
    pub payload: &'b [u8],
    /// The counter its ack will carry.
    pub counter: u32,
}

/// Scratch space for [`Node::next_frame`] (kept by the caller so frames can borrow it).
#[derive(Debug)]
pub struct FrameBuf {
    topic: String<MAX_TOPIC>,
    bytes: [u8; MAX_FRAME],
}

impl Default for FrameBuf {
    fn default() -> Self {
        FrameBuf {
            topic: String::new(),
            bytes: [0; MAX_FRAME],
        }
    }
}

/// Counters since boot, for status reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames handed to the publisher (first sends and resends).
    pub sent: u32,
    /// Downlinks refused, by any reason.
    pub downlinks_refused: u32,
    /// Reports the outbox refused.
    pub reports_refused: u32,
    /// Reports dropped because they could not be encoded or sealed (none should be: the
    /// protocol's tests check every report fits).
    pub dropped: u32,
}

/// A device: identity, counter, outbox of `N` slots (`A` reserved for alarms), timing.
#[derive(Debug)]
pub struct Node<'id, const N: usize, const A: usize> {
    id: &'id str,
    key: DeviceKey,
    key_id: u8,
    counter: u32,
    /// Counters below this are covered by what is saved in flash.
    reserved: u32,
    /// The counter this boot began at (the saved value).
    boot_counter: u32,
    outbox: Outbox<N, A>,
    cadence: Cadence,
    next_heartbeat_ms: u64,
    next_report_ms: u64,
    last_command: Option<u32>,
    backoff: Backoff,
    connected_at: Option<u64>,
    stats: NodeStats,
}

impl<'id, const N: usize, const A: usize> Node<'id, N, A> {
    /// A node that seals as `id` with `key` (`key_id`), continuing from `saved_counter`
    /// (what [`Node::counter_to_save`] last had written to flash; 0 on the very first
    /// boot), booted at `now_ms`. `seed` makes its reconnect jitter differ from its
    /// neighbours' (use its serial number).
    pub fn new(
        id: &'id str,
        key: DeviceKey,
        key_id: u8,
        saved_counter: u32,
        cadence: Cadence,
        now_ms: u64,
        seed: u32,
    ) -> Self {
        Node {
            id,
            key,
            key_id,
            counter: saved_counter,
            reserved: saved_counter,
            boot_counter: saved_counter,
            outbox: Outbox::new(cadence.resend_ms),
            cadence,
            // The first heartbeat and telemetry go out at once: the gateway sees the boot.
            next_heartbeat_ms: now_ms,
            next_report_ms: now_ms,
            last_command: None,
            backoff: Backoff::new(1_000, 60_000, seed),
            connected_at: None,
            stats: NodeStats::default(),
        }
    }

    /// The device id.
    pub fn id(&self) -> &str {
        self.id
    }

    /// The next frame counter.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The value to write to flash now, when the saved reserve runs low: frames sealed
    /// beyond what is saved wait until [`Node::counter_saved`].
    pub fn counter_to_save(&self) -> Option<u32> {
        let ahead = self.reserved.wrapping_sub(self.counter);
        // `ahead` wraps to a huge value once the counter has passed the reserve.
        let low = !(COUNTER_BLOCK / 2..=COUNTER_BLOCK).contains(&ahead);
        low.then(|| self.counter.wrapping_add(COUNTER_BLOCK))
    }

    /// `saved` (from [`Node::counter_to_save`]) is in flash.
    pub fn counter_saved(&mut self, saved: u32) {
        self.reserved = saved;
    }

    /// When the reserve runs low, writes the value to save through `write` (flash) and,
    /// if it says it succeeded, counts it saved. Call it before publishing.
    pub fn save_counter(&mut self, write: impl FnOnce(u32) -> bool) {
        if let Some(c) = self.counter_to_save() {
            if write(c) {
                self.counter_saved(c);
            }
        }
    }

    /// The cadence in force.
    pub fn cadence(&self) -> Cadence {
        self.cadence
    }

    /// The outbox (read-only).
    pub fn outbox(&self) -> &Outbox<N, A> {
        &self.outbox
    }

    /// Outbox counters.
    pub fn outbox_stats(&self) -> OutboxStats {
        self.outbox.stats()
    }

    /// Node counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    fn take_counter(&mut self) -> u32 {
        let c = self.counter;
        self.counter = self.counter.wrapping_add(1);
        c
    }

    /// Queues `report` (device time `device_time`, s since the epoch or 0) with
    /// `priority` under the next counter. Returns the counter, or the refusal (counted).
    pub fn report(
        &mut self,
        device_time: u32,
        report: Report,
        priority: Priority,
    ) -> Result<u32, Refused> {
        let counter = self.take_counter();
        let uplink = Uplink {
            device_time,
            report,
        };
        if let Err(e) = self.outbox.push(counter, uplink, priority) {
            self.stats.reports_refused += 1;
            return Err(e);
        }
        // Entries that waited through a long outage must not fall out of the gateway's
        // anti-replay window.
        let mut next = self.counter;
        self.outbox.renumber_stale(counter, || {
            let c = next;
            next = next.wrapping_add(1);
            c
        });
        self.counter = next;
        Ok(counter)
    }

    /// Heartbeat and telemetry timing at `now_ms`. Queues a heartbeat when one is due,
    /// and says whether telemetry is due: every `report_s`, or every `alarm_report_s`
    /// while `alarm_condition` lasts (adaptive reporting).
    pub fn tick(&mut self, now_ms: u64, device_time: u32, alarm_condition: bool) -> bool {
        if now_ms >= self.next_heartbeat_ms {
            self.next_heartbeat_ms = now_ms + u64::from(self.cadence.heartbeat_s) * 1_000;
            let uptime_s = (now_ms / 1_000) as u32;
            let _ = self.report(
                device_time,
                Report::Heartbeat(Heartbeat { uptime_s }),
                Priority::Periodic,
            );
        }
        let every_s = if alarm_condition {
            self.cadence.alarm_report_s.min(self.cadence.report_s)
        } else {
            self.cadence.report_s
        };
        // An alarm condition that begins pulls the next report in.
        let due_by = now_ms + u64::from(every_s) * 1_000;
        if self.next_report_ms > due_by {
            self.next_report_ms = now_ms;
        }
        if now_ms >= self.next_report_ms {
            self.next_report_ms = due_by;
            return true;
        }
        false
    }

    /// The next frame to publish at `now_ms`, sealed into `buf` (alarms first, then
    /// oldest first, resends after `resend_ms`). It counts as sent once returned.
    pub fn next_frame<'b>(&mut self, now_ms: u64, buf: &'b mut FrameBuf) -> Option<Frame<'b>> {
        let entry = *self.outbox.next_due(now_ms)?;
        if !is_after(self.reserved, entry.counter) {
            // Not covered by flash yet: a reboot could seal another frame with it.
            return None;
        }
        let mut body = [0u8; MAX_BODY_LEN];
        // Every report fits MAX_BODY_LEN (the protocol's golden tests check it); a report
        // that did not could never be sent: it is dropped and counted.
        let Ok(body) = encode_uplink(&entry.uplink, &mut body) else {
            self.outbox.remove(entry.counter);
            self.stats.dropped += 1;
            return None;
        };
        let sealed = seal::seal(
            &self.key,
            self.key_id,
            FrameClass::Uplink,
            self.id,
            entry.counter,
            body,
            &mut buf.bytes,
        );
        let Ok(n) = sealed else {
            self.outbox.remove(entry.counter);
            self.stats.dropped += 1;
            return None;
        };
        buf.topic.clear();
        // MAX_TOPIC holds the longest valid id's topic.
        let _ = topic::write_uplink(&mut buf.topic, self.id, entry.uplink.report.channel());
        self.outbox.mark_sent(entry.counter, now_ms);
        self.stats.sent += 1;
        Some(Frame {
            topic: &buf.topic,
            payload: &buf.bytes[..n],
            counter: entry.counter,
        })
    }

    /// The connection is up at `now_ms`: every unacked frame is due, alarms first.
    pub fn connected(&mut self, now_ms: u64) {
        self.connected_at = Some(now_ms);
        self.outbox.reconnected();
    }

    /// A connection attempt failed, or the connection dropped, at `now_ms`: how long to
    /// wait before the next attempt (exponential backoff with jitter, so a street of
    /// devices does not return in lockstep). Only a connection that lasted a while starts
    /// the backoff from the beginning again.
    pub fn disconnected(&mut self, now_ms: u64) -> u64 {
        if self
            .connected_at
            .take()
            .is_some_and(|t| now_ms.saturating_sub(t) >= STABLE_CONNECTION_MS)
        {
            self.backoff.reset();
        }
        self.backoff.next_delay_ms()
    }

    /// The topics to subscribe to: `down/ack`, `down/cmd`, `down/config`.
    pub fn downlink_topics(&self) -> [String<MAX_TOPIC>; 3] {
        [DownChannel::Ack, DownChannel::Cmd, DownChannel::Config].map(|ch| {
            let mut t = String::new();
            let _ = topic::write_downlink(&mut t, self.id, ch);
            t
        })
    }
}
