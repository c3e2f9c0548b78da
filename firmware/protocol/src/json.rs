//! The JSON form for third-party integration devices, which cannot seal frames.
//!
//! Owns the JSON message shape; does not parse it (the gateway uses serde_json). A JSON
//! message is accepted at the lower `integration` trust level: the gateway knows only that
//! some registered client published it, so it never trusts it for who sent it.
//!
//! ```json
//! {
//!   "counter": 17,
//!   "device_time": 1764230400,
//!   "report": { "street_light": { "relay_on": true, "current_ma": 420,
//!                                 "power_dw": 950, "dimming_pct": 80 } }
//! }
//! ```
//!
//! `WIRE.md` beside this crate lists every report with a JSON example.
//!
//! `counter` (u32, wrapping) is required and names the message in its ack (JSON is stored
//! at least once: an unauthenticated counter cannot be trusted to deduplicate);
//! `device_time` is seconds since the Unix epoch (0 if unknown); `report`
//! is one externally tagged [`Report`] with snake_case names, fields as in
//! [`crate::report`]. Unknown fields are rejected.

use serde::{Deserialize, Serialize};

use crate::report::Report;

/// One JSON uplink message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonUplink {
    /// Wrapping counter naming the message in its ack.
    pub counter: u32,
    /// Device time, seconds since the Unix epoch (0 when unknown).
    #[serde(default)]
    pub device_time: u32,
    /// The payload.
    pub report: Report,
}
