//! A device on the network: its identity and key, its frame counter, its outbox, its
//! timing (heartbeats, reporting cadence, reconnect backoff) and what it makes of the
//! frames the gateway sends it (acks, settings, commands).
//!
//! Pure, like the state machines: time comes in as ms since boot, frames come in and go
//! out as bytes. Does not own sampling or detection (see [`crate::app`]), nor the MQTT
//! connection (see [`crate::publish`]).
//!
//! Counters: every report takes the next frame counter; the caller persists
//! [`Node::counter`] (flash) so a reboot never seals two frames under one counter.
//! Downlinks: acks open under [`FrameClass::Ack`]; settings and commands under
//! [`FrameClass::Command`], and only with a counter after the last one taken, so a
//! recorded command cannot be replayed.

use core::fmt::Write as _;

use heapless::String;
use linli_protocol::codec::{decode_downlink, encode_uplink, MAX_BODY_LEN};
use linli_protocol::replay::is_after;
use linli_protocol::report::Threshold;
use linli_protocol::report::{Command, CommandCheck, CommandTarget, Heartbeat, Settings};
use linli_protocol::seal::{self, OVERHEAD};
use linli_protocol::topic::{self, DownChannel};
use linli_protocol::{DeviceKey, Downlink, FrameClass, OpenError, Report, Uplink};

use crate::backoff::Backoff;
use crate::outbox::{Outbox, OutboxStats, Priority, Refused};

/// Largest sealed uplink frame.
pub const MAX_FRAME: usize = MAX_BODY_LEN + OVERHEAD;
/// Longest topic a node writes (prefix, 64-byte id, channel).
pub const MAX_TOPIC: usize = 96;

/// Reporting cadence; the gateway may change it with [`Downlink::Config`].
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

/// What a downlink frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downlinked {
    /// The gateway journaled this frame; it left the outbox.
    Acked(u32),
    /// An ack for a frame no longer held (a resend's second ack).
    AckForUnknown(u32),
    /// New settings: the cadence is applied; the application applies the threshold
    /// (if any) and answers with [`Node::applied`].
    Config {
        /// The config frame's counter (echoed in the answer).
        counter: u32,
        /// A threshold for the application.
        threshold: Option<Threshold>,
    },
    /// A command for the application, which answers with [`Node::applied`].
    Command {
        /// The command frame's counter.
        counter: u32,
        /// What to do.
        command: Command,
    },
}

/// Why a downlink frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownlinkError {
    /// Not one of this device's downlink topics.
    Topic,
    /// Did not open under the device's key.
    Open(OpenError),
    /// Opened, but the body did not decode.
    Body,
    /// A settings or command frame whose counter is not after the last one taken.
    Replay,
    /// A body that does not belong on the topic it came on.
    WrongChannel,
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
}

/// A device: identity, counter, outbox of `N` slots (`A` reserved for alarms), timing.
#[derive(Debug)]
pub struct Node<'id, const N: usize, const A: usize> {
    id: &'id str,
    key: DeviceKey,
    key_id: u8,
    counter: u32,
    outbox: Outbox<N, A>,
    cadence: Cadence,
    next_heartbeat_ms: u64,
    next_report_ms: u64,
    last_command: Option<u32>,
    backoff: Backoff,
    stats: NodeStats,
}

impl<'id, const N: usize, const A: usize> Node<'id, N, A> {
    /// A node that seals as `id` with `key` (`key_id`), continuing from `counter` (the
    /// value persisted by the last boot; 0 on the first), booted at `now_ms`. `seed`
    /// makes its reconnect jitter differ from its neighbours' (use its id or serial).
    pub fn new(
        id: &'id str,
        key: DeviceKey,
        key_id: u8,
        counter: u32,
        cadence: Cadence,
        now_ms: u64,
        seed: u32,
    ) -> Self {
        Node {
            id,
            key,
            key_id,
            counter,
            outbox: Outbox::new(cadence.resend_ms),
            cadence,
            // The first heartbeat and telemetry go out at once: the gateway sees the boot.
            next_heartbeat_ms: now_ms,
            next_report_ms: now_ms,
            last_command: None,
            backoff: Backoff::new(1_000, 60_000, seed),
            stats: NodeStats::default(),
        }
    }

    /// The device id.
    pub fn id(&self) -> &str {
        self.id
    }

    /// The next frame counter: persist it.
    pub fn counter(&self) -> u32 {
        self.counter
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
        let mut body = [0u8; MAX_BODY_LEN];
        // Every report fits MAX_BODY_LEN (the protocol's golden tests check it); a report
        // that did not could never be sent, so it is dropped as if acked.
        let Ok(body) = encode_uplink(&entry.uplink, &mut body) else {
            self.outbox.ack(entry.counter);
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
            self.outbox.ack(entry.counter);
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

    /// The connection is up again: every unacked frame is due, alarms first.
    pub fn connected(&mut self) {
        self.backoff.reset();
        self.outbox.reconnected();
    }

    /// The connection failed: how long to wait before the next attempt (exponential
    /// backoff with jitter, so a street of devices does not return in lockstep).
    pub fn disconnected(&mut self) -> u64 {
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

    fn channel_of(&self, topic: &str) -> Option<DownChannel> {
        [DownChannel::Ack, DownChannel::Cmd, DownChannel::Config]
            .into_iter()
            .find(|ch| {
                let mut t: String<MAX_TOPIC> = String::new();
                write!(t, "{}{}/down/{}", topic::PREFIX, self.id, ch.as_str()).is_ok() && t == topic
            })
    }

    /// Opens a frame the gateway sent on `topic` (decrypting `payload` in place) and
    /// acts on it: acks clear the outbox, settings change the cadence; thresholds and
    /// commands are handed back for the application.
    pub fn downlink(
        &mut self,
        topic: &str,
        payload: &mut [u8],
    ) -> Result<Downlinked, DownlinkError> {
        let r = self.open_downlink(topic, payload);
        if r.is_err() {
            self.stats.downlinks_refused += 1;
        }
        r
    }

    fn open_downlink(
        &mut self,
        topic: &str,
        payload: &mut [u8],
    ) -> Result<Downlinked, DownlinkError> {
        let channel = self.channel_of(topic).ok_or(DownlinkError::Topic)?;
        let class = match channel {
            DownChannel::Ack => FrameClass::Ack,
            DownChannel::Cmd | DownChannel::Config => FrameClass::Command,
        };
        let (header, body) =
            seal::open(&self.key, class, self.id, payload).map_err(DownlinkError::Open)?;
        let downlink = decode_downlink(body).map_err(|_| DownlinkError::Body)?;
        match (channel, downlink) {
            (DownChannel::Ack, Downlink::Ack { counter }) if counter == header.counter => {
                Ok(if self.outbox.ack(counter) {
                    Downlinked::Acked(counter)
                } else {
                    Downlinked::AckForUnknown(counter)
                })
            }
            (DownChannel::Config, Downlink::Config(settings)) => {
                self.take_command(header.counter)?;
                self.apply(settings);
                Ok(Downlinked::Config {
                    counter: header.counter,
                    threshold: settings.threshold,
                })
            }
            (DownChannel::Cmd, Downlink::Command(command)) => {
                self.take_command(header.counter)?;
                Ok(Downlinked::Command {
                    counter: header.counter,
                    command,
                })
            }
            _ => Err(DownlinkError::WrongChannel),
        }
    }

    fn take_command(&mut self, counter: u32) -> Result<(), DownlinkError> {
        if self
            .last_command
            .is_some_and(|last| !is_after(counter, last))
        {
            return Err(DownlinkError::Replay);
        }
        self.last_command = Some(counter);
        Ok(())
    }

    fn apply(&mut self, s: Settings) {
        let c = &mut self.cadence;
        // Zero would mean "report continuously": keep a floor of one second.
        c.heartbeat_s = s.heartbeat_s.unwrap_or(c.heartbeat_s).max(1);
        c.report_s = s.report_s.unwrap_or(c.report_s).max(1);
        c.alarm_report_s = s.alarm_report_s.unwrap_or(c.alarm_report_s).max(1);
        // New intervals take effect from now, not after the old ones run out.
        self.next_heartbeat_ms = 0;
        self.next_report_ms = 0;
    }

    /// Answers a settings or command frame: `observed` is what the device sees after
    /// applying it (for settings: whether the threshold was accepted). Queues the
    /// [`CommandCheck`] the gateway reads as the acknowledgement.
    pub fn applied(&mut self, device_time: u32, answer: Answer) -> Result<u32, Refused> {
        let check = match answer {
            Answer::Config { counter, accepted } => CommandCheck {
                target: CommandTarget::Config,
                requested: counter as i32,
                observed: counter as i32,
                applied: accepted,
            },
            Answer::Command { command, observed } => {
                let (target, requested) = command.target();
                CommandCheck {
                    target,
                    requested,
                    observed,
                    applied: observed == requested,
                }
            }
        };
        self.report(device_time, Report::CommandCheck(check), Priority::Change)
    }
}

/// What the application made of a settings or command frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Settings: the cadence is applied; `accepted` is false when the threshold did not
    /// belong to this device or was out of range.
    Config {
        /// The config frame's counter.
        counter: u32,
        /// Everything in it was taken.
        accepted: bool,
    },
    /// A command, and the value read back afterwards (relay and pump 0/1, dimming %).
    Command {
        /// The command.
        command: Command,
        /// What the device observed.
        observed: i32,
    },
}
