//! What a node makes of the frames the gateway sends it: acks clear the outbox; settings
//! change the cadence and hand a threshold to the application; commands go to the
//! application; both are answered with an `answer` report.
//!
//! Replays: acks are idempotent. Settings and commands open under the command class and
//! must carry a frame counter after the last one taken in this boot, and a `since` (the
//! newest uplink counter the gateway had accepted) no older than this boot's first
//! counter — a recording from before a reboot is refused. Does not own applying a
//! threshold or a command (the application's).

use core::fmt::Write as _;

use heapless::String;
use linli_protocol::codec::decode_downlink;
use linli_protocol::replay::is_after;
use linli_protocol::report::{Answer, Command, CommandCheck, CommandTarget, Settings, Threshold};
use linli_protocol::seal;
use linli_protocol::topic::{self, DownChannel};
use linli_protocol::{Downlink, FrameClass, OpenError, Report};

use super::{Node, MAX_TOPIC};
use crate::outbox::{Priority, Refused};

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
    /// A settings or command frame issued before this boot (its `since` is older than
    /// the boot counter), or naming a counter the device has not used yet.
    NotThisBoot,
    /// A body that does not belong on the topic it came on.
    WrongChannel,
}

/// What the application made of a settings or command frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Settings: the cadence is applied; `accepted` is false when the threshold did not
    /// belong to this device, was out of range or could not be taken now.
    Config {
        /// The config frame's counter.
        counter: u32,
        /// Everything in it was taken.
        accepted: bool,
    },
    /// A command, and the value read back afterwards (relay and pump 0/1, dimming %).
    Command {
        /// The command frame's counter.
        counter: u32,
        /// The command.
        command: Command,
        /// What the device observed.
        observed: i32,
    },
}

impl<const N: usize, const A: usize> Node<'_, N, A> {
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
            (DownChannel::Config, Downlink::Config { since, settings }) => {
                self.take_order(header.counter, since)?;
                self.apply(settings);
                Ok(Downlinked::Config {
                    counter: header.counter,
                    threshold: settings.threshold,
                })
            }
            (DownChannel::Cmd, Downlink::Command { since, command }) => {
                self.take_order(header.counter, since)?;
                Ok(Downlinked::Command {
                    counter: header.counter,
                    command,
                })
            }
            _ => Err(DownlinkError::WrongChannel),
        }
    }

    fn take_order(&mut self, counter: u32, since: u32) -> Result<(), DownlinkError> {
        // `since` must fall in [boot counter, next counter): issued after the gateway heard
        // this boot, and about frames this device has sealed.
        let this_boot = since.wrapping_sub(self.boot_counter);
        if this_boot >= self.counter.wrapping_sub(self.boot_counter) {
            return Err(DownlinkError::NotThisBoot);
        }
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

    /// Answers a settings or command frame with what the application made of it: queues
    /// the [`Answer`] report (a change: periodic readings never evict it).
    pub fn applied(&mut self, device_time: u32, outcome: Outcome) -> Result<u32, Refused> {
        let (counter, check) = match outcome {
            Outcome::Config { counter, accepted } => (
                counter,
                CommandCheck {
                    target: CommandTarget::Config,
                    requested: counter as i32,
                    observed: counter as i32,
                    applied: accepted,
                },
            ),
            Outcome::Command {
                counter,
                command,
                observed,
            } => {
                let (target, requested) = command.target();
                (
                    counter,
                    CommandCheck {
                        target,
                        requested,
                        observed,
                        applied: observed == requested,
                    },
                )
            }
        };
        self.report(
            device_time,
            Report::Answer(Answer { counter, check }),
            Priority::Change,
        )
    }
}
