//! The stage nouns of ingest: [`RawMessage`] (what the broker handed over) and
//! [`Reading`] (an authenticated, decoded report, the unit the journal keeps).
//!
//! Owns these types only; building them is `ingest`'s job.

use std::time::Instant;

use bytes::Bytes;
use linli_protocol::Report;
use serde::{Deserialize, Serialize};

use crate::registry::Trust;

/// A message as the broker delivered it, before anything is checked.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// MQTT topic bytes (not yet known to be UTF-8).
    pub topic: Bytes,
    /// Payload bytes.
    pub payload: Bytes,
    /// Gateway receive time, ms since the epoch.
    pub received_ms: u64,
    /// Gateway receive instant, for lag measurement.
    pub received_at: Instant,
}

/// What reaches the ingest worker: a message the broker delivered, or a reading the
/// gateway took itself (a Modbus poll), already decoded and checked.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// From the broker: still to be admitted.
    Mqtt(RawMessage),
    /// From the Modbus poller, with when it was taken (for lag measurement).
    Polled(Reading, Instant),
}

impl Inbound {
    /// When the gateway got it.
    pub fn received_at(&self) -> Instant {
        match self {
            Inbound::Mqtt(m) => m.received_at,
            Inbound::Polled(_, at) => *at,
        }
    }
}

/// An accepted report from a known device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Device id.
    pub device: String,
    /// Frame counter the device used.
    pub counter: u32,
    /// Device clock, seconds since the epoch (0 = unknown).
    pub device_time: u32,
    /// Gateway receive time, ms since the epoch.
    pub received_ms: u64,
    /// How the sender was authenticated.
    pub trust: Trust,
    /// What the device reported.
    pub report: Report,
}

impl Reading {
    /// The time a reading's points are filed under, ms since the epoch: the device clock
    /// when the device has one (a resend keeps its time), else the gateway receive time.
    /// The store and the export both use it, so replays land on the same timestamp.
    pub fn point_time_ms(&self) -> i64 {
        if self.device_time != 0 {
            i64::from(self.device_time) * 1000
        } else {
            self.received_ms as i64
        }
    }
}
