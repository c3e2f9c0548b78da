//! Ingest: turns a [`RawMessage`] into a [`Reading`] or a counted [`Rejection`].
//!
//! Checks topic shape and size, finds the device, opens the seal (or parses the JSON form
//! for integration devices), rejects replays, decodes, and checks the report fits the
//! device's kind and the channel. Pure apart from the registry lookup: no journal, no
//! network, time comes in on the message. Building acks lives here too, since ingest
//! knows how each device speaks.

pub mod modbus;

use std::collections::HashMap;
use std::sync::Arc;

use linli_protocol::codec::{decode_uplink, encode_downlink, DecodeError};
use linli_protocol::json::JsonUplink;
use linli_protocol::replay::{ReplayWindow, Verdict};
use linli_protocol::seal::{self, FrameClass, OpenError, OVERHEAD};
use linli_protocol::topic::{self, DownChannel, TopicError};
use linli_protocol::Downlink;

use crate::reading::{RawMessage, Reading};
use crate::registry::{DeviceRecord, Registry, Trust};

/// Why a message was not accepted. Every variant is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Topic is not `linli/v1/{device}/up/{channel}` (or not UTF-8).
    BadTopic,
    /// Payload larger than `ingest.max_message_bytes`.
    Oversized,
    /// No registered device with that id.
    UnknownDevice,
    /// Shorter than a sealed frame.
    Truncated,
    /// Schema version this gateway does not speak.
    UnsupportedVersion,
    /// Key id is not the device's current one.
    UnknownKeyId,
    /// Sealed with another key (e.g. another device publishing under this id).
    WrongKey,
    /// Authentication tag failed: altered in transit.
    Tampered,
    /// Counter already accepted (a replay or a resend; a resend is re-acked).
    Replay,
    /// Counter too old to check against the replay window.
    Stale,
    /// Body is not a report this gateway knows.
    Undecodable,
    /// Report from a newer schema (unknown variant).
    UnknownReport,
    /// Report does not belong to the device's kind.
    WrongKind,
    /// Report sent on the wrong channel.
    WrongChannel,
    /// JSON payload that is not valid UTF-8, not JSON, or not the documented schema.
    BadJson,
    /// JSON from a device registered as sealed, or JSON while JSON is disabled.
    JsonNotAllowed,
    /// Ingest queue full: refused unacked so the device resends later.
    Overload,
    /// Registry could not be read.
    RegistryError,
    /// Published under the id of Modbus equipment the gateway polls itself.
    PolledDevice,
}

impl Rejection {
    /// Every reason, for metrics.
    pub const ALL: [Rejection; 19] = [
        Rejection::BadTopic,
        Rejection::Oversized,
        Rejection::UnknownDevice,
        Rejection::Truncated,
        Rejection::UnsupportedVersion,
        Rejection::UnknownKeyId,
        Rejection::WrongKey,
        Rejection::Tampered,
        Rejection::Replay,
        Rejection::Stale,
        Rejection::Undecodable,
        Rejection::UnknownReport,
        Rejection::WrongKind,
        Rejection::WrongChannel,
        Rejection::BadJson,
        Rejection::JsonNotAllowed,
        Rejection::Overload,
        Rejection::RegistryError,
        Rejection::PolledDevice,
    ];

    /// Stable label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rejection::BadTopic => "bad_topic",
            Rejection::Oversized => "oversized",
            Rejection::UnknownDevice => "unknown_device",
            Rejection::Truncated => "truncated",
            Rejection::UnsupportedVersion => "unsupported_version",
            Rejection::UnknownKeyId => "unknown_key_id",
            Rejection::WrongKey => "wrong_key",
            Rejection::Tampered => "tampered",
            Rejection::Replay => "replay",
            Rejection::Stale => "stale",
            Rejection::Undecodable => "undecodable",
            Rejection::UnknownReport => "unknown_report",
            Rejection::WrongKind => "wrong_kind",
            Rejection::WrongChannel => "wrong_channel",
            Rejection::BadJson => "bad_json",
            Rejection::JsonNotAllowed => "json_not_allowed",
            Rejection::Overload => "overload",
            Rejection::RegistryError => "registry_error",
            Rejection::PolledDevice => "polled_device",
        }
    }

    /// Index into [`Rejection::ALL`] (declaration order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// What an operator should know about it, for the log line.
    pub const fn hint(self) -> &'static str {
        match self {
            Rejection::BadTopic => "publish on linli/v1/{device}/up/{telemetry|event|status|hb}",
            Rejection::Oversized => "frames are small; check the device firmware",
            Rejection::UnknownDevice => "provision the device with `linli provision`",
            Rejection::WrongKey | Rejection::UnknownKeyId => {
                "the device's key does not match the registry (re-provision, or another device uses this id)"
            }
            Rejection::Tampered => "frame altered in transit or forged",
            Rejection::Replay => "counter seen before; resends are re-acked, not stored twice",
            Rejection::Stale => "counter far older than the newest; check the device's counter",
            Rejection::JsonNotAllowed => "this device is registered as sealed; JSON is refused",
            Rejection::Overload => "ingest queue full; the device will resend",
            Rejection::PolledDevice => {
                "this id is Modbus equipment the gateway polls; it does not publish over MQTT"
            }
            _ => "see docs for the wire format",
        }
    }
}

/// What [`admit`] decided for a message that was not rejected.
#[derive(Debug)]
pub enum Admitted {
    /// A new reading to journal, then ack.
    New(Reading, Arc<DeviceRecord>),
    /// Already accepted before: ack again, do not store again (counted as a replay).
    Duplicate(u32, Arc<DeviceRecord>),
}

/// A rejection with the device id it concerns, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Why.
    pub reason: Rejection,
    /// Device id from the topic, if the topic had one.
    pub device: Option<String>,
}

/// Ingest settings that matter to [`admit`].
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Largest payload accepted.
    pub max_message_bytes: usize,
    /// Accept JSON from integration devices.
    pub accept_json: bool,
}

/// Replay windows per device.
pub type Windows = HashMap<String, ReplayWindow>;

/// Checks one message. On success the replay window already counts the frame.
pub fn admit(
    raw: &RawMessage,
    registry: &Registry,
    windows: &mut Windows,
    policy: Policy,
) -> Result<Admitted, Rejected> {
    let reject = |reason, device: Option<&str>| Rejected {
        reason,
        device: device.map(str::to_owned),
    };
    let topic_str =
        std::str::from_utf8(&raw.topic).map_err(|_| reject(Rejection::BadTopic, None))?;
    let (device, channel) = topic::parse_uplink(topic_str).map_err(|e| {
        let dev = match e {
            TopicError::UnknownChannel => topic_str.split('/').nth(2),
            _ => None,
        };
        reject(Rejection::BadTopic, dev)
    })?;
    let dev = Some(device);
    if raw.payload.len() > policy.max_message_bytes {
        return Err(reject(Rejection::Oversized, dev));
    }
    let record = match registry.get(device) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(reject(Rejection::UnknownDevice, dev)),
        Err(_) => return Err(reject(Rejection::RegistryError, dev)),
    };
    let (counter, uplink, trust) = match record.profile.trust {
        Trust::Sealed => {
            if raw.payload.first() == Some(&b'{') {
                return Err(reject(Rejection::JsonNotAllowed, dev));
            }
            // Decrypt in place in a copy: on the stack for every real frame.
            let mut stack = [0u8; 256];
            let mut heap;
            let frame: &mut [u8] = match stack.get_mut(..raw.payload.len()) {
                Some(f) => {
                    f.copy_from_slice(&raw.payload);
                    f
                }
                None => {
                    heap = raw.payload.to_vec();
                    &mut heap
                }
            };
            let header = seal::Header::parse(frame).map_err(|e| reject(open_reason(e), dev))?;
            if header.key_id != record.key_id {
                return Err(reject(Rejection::UnknownKeyId, dev));
            }
            let (_, body) = seal::open(&record.key, FrameClass::Uplink, device, frame)
                .map_err(|e| reject(open_reason(e), dev))?;
            let uplink = decode_uplink(body).map_err(|e| {
                reject(
                    if e == DecodeError::UnknownVariant {
                        Rejection::UnknownReport
                    } else {
                        Rejection::Undecodable
                    },
                    dev,
                )
            })?;
            (header.counter, uplink, Trust::Sealed)
        }
        Trust::Polled => return Err(reject(Rejection::PolledDevice, dev)),
        Trust::Integration => {
            if !policy.accept_json {
                return Err(reject(Rejection::JsonNotAllowed, dev));
            }
            let text =
                std::str::from_utf8(&raw.payload).map_err(|_| reject(Rejection::BadJson, dev))?;
            let j: JsonUplink =
                serde_json::from_str(text).map_err(|_| reject(Rejection::BadJson, dev))?;
            let uplink = linli_protocol::Uplink {
                device_time: j.device_time,
                report: j.report,
            };
            (j.counter, uplink, Trust::Integration)
        }
    };
    if !uplink.report.allowed_for(record.profile.kind) {
        return Err(reject(Rejection::WrongKind, dev));
    }
    if uplink.report.channel() != channel {
        return Err(reject(Rejection::WrongChannel, dev));
    }
    let window = windows.entry(device.to_owned()).or_default();
    match (window.check(counter), trust) {
        (Verdict::Fresh, _) => window.accept(counter),
        (Verdict::Duplicate, Trust::Sealed) => return Ok(Admitted::Duplicate(counter, record)),
        // Nor can a JSON duplicate be trusted to be one: a forged counter must not
        // suppress the real reading, so store it again (at-least-once for JSON).
        (Verdict::Duplicate, Trust::Integration) => {}
        // A JSON counter proves nothing (any registered client can publish it), so an
        // old one only means "cannot deduplicate": accept rather than let a forged jump
        // silence the device.
        (Verdict::Stale, Trust::Integration) => {}
        (Verdict::Stale, Trust::Sealed) => return Err(reject(Rejection::Stale, dev)),
        (_, Trust::Polled) => return Err(reject(Rejection::PolledDevice, dev)),
    }
    Ok(Admitted::New(
        Reading {
            device: device.to_owned(),
            counter,
            device_time: uplink.device_time,
            received_ms: raw.received_ms,
            trust,
            report: uplink.report,
        },
        record,
    ))
}

fn open_reason(e: OpenError) -> Rejection {
    match e {
        OpenError::Truncated => Rejection::Truncated,
        OpenError::UnsupportedVersion(_) => Rejection::UnsupportedVersion,
        OpenError::WrongKey => Rejection::WrongKey,
        OpenError::Tampered => Rejection::Tampered,
    }
}

/// Builds the ack for `counter` to `device`: a sealed [`Downlink::Ack`] for sealed
/// devices, `{"ack": counter}` for integration devices. Returns (topic, payload).
pub fn ack(device: &DeviceRecord, counter: u32) -> (String, Vec<u8>) {
    match device.profile.trust {
        Trust::Integration | Trust::Polled => (
            downlink_topic(&device.profile.id, DownChannel::Ack),
            format!("{{\"ack\":{counter}}}").into_bytes(),
        ),
        Trust::Sealed => sealed_downlink(
            device,
            DownChannel::Ack,
            counter,
            &Downlink::Ack { counter },
        )
        .unwrap_or_else(|| {
            (
                downlink_topic(&device.profile.id, DownChannel::Ack),
                Vec::new(),
            )
        }),
    }
}

/// The topic of `device`'s downlink `channel`.
pub fn downlink_topic(device: &str, channel: DownChannel) -> String {
    let mut topic = String::with_capacity(48);
    // Writing to a String cannot fail.
    let _ = topic::write_downlink(&mut topic, device, channel);
    topic
}

/// Seals `downlink` under `device`'s key with `counter` for `channel` (acks with the ack
/// class, settings and commands with the command class). Returns (topic, frame), or
/// None when it does not fit a frame (no downlink is that large).
pub fn sealed_downlink(
    device: &DeviceRecord,
    channel: DownChannel,
    counter: u32,
    downlink: &Downlink,
) -> Option<(String, Vec<u8>)> {
    let class = match channel {
        DownChannel::Ack => FrameClass::Ack,
        DownChannel::Cmd | DownChannel::Config => FrameClass::Command,
    };
    let mut body = [0u8; 32];
    let mut frame = [0u8; 32 + OVERHEAD];
    let body = encode_downlink(downlink, &mut body).ok()?;
    let n = seal::seal(
        &device.key,
        device.key_id,
        class,
        &device.profile.id,
        counter,
        body,
        &mut frame,
    )
    .ok()?;
    Some((
        downlink_topic(&device.profile.id, channel),
        frame[..n].to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use linli_protocol::DeviceKind;

    use super::*;
    use crate::registry::DeviceProfile;

    fn raw(topic: &str, payload: &[u8]) -> RawMessage {
        RawMessage {
            topic: bytes::Bytes::copy_from_slice(topic.as_bytes()),
            payload: bytes::Bytes::copy_from_slice(payload),
            received_ms: 1,
            received_at: Instant::now(),
        }
    }

    const POLICY: Policy = Policy {
        max_message_bytes: 4096,
        accept_json: true,
    };

    #[test]
    fn forged_json_counters_cannot_silence_or_suppress_an_integration_device() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        reg.provision(&DeviceProfile {
            id: "door-9".into(),
            kind: DeviceKind::Door,
            site: "s".into(),
            zone: "z".into(),
            subject: None,
            heartbeat_s: None,
            trust: Trust::Integration,
        })
        .unwrap();
        let mut windows = Windows::new();
        let topic = "linli/v1/door-9/up/telemetry";
        let msg = |c: u32| format!(r#"{{"counter":{c},"report":{{"door":{{"open":true}}}}}}"#);
        let forged = admit(
            &raw(topic, msg(90_000).as_bytes()),
            &reg,
            &mut windows,
            POLICY,
        );
        assert!(matches!(forged, Ok(Admitted::New(..))));
        let real = admit(&raw(topic, msg(7).as_bytes()), &reg, &mut windows, POLICY);
        assert!(
            matches!(real, Ok(Admitted::New(..))),
            "old JSON counter still accepted"
        );
        let again = admit(
            &raw(topic, msg(90_000).as_bytes()),
            &reg,
            &mut windows,
            POLICY,
        );
        assert!(
            matches!(again, Ok(Admitted::New(..))),
            "JSON is stored again, never suppressed"
        );
    }
}
