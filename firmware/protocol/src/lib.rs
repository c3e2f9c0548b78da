//! Linli wire contract shared by device firmware, the gateway and the simulators.
//!
//! Owns: the MQTT topic scheme ([`topic`]), the payload type of every device kind
//! ([`report`]), the compact postcard encoding with its schema version ([`codec`]),
//! sealed frames with per-device keys and frame counters ([`seal`]) and the anti-replay
//! window ([`replay`]). Does no I/O, needs no allocator, and knows nothing of the gateway.
//!
//! Evolution is append-only: new device kinds, reports and events are added as new enum
//! variants at the end; an existing variant's fields never change. A decoder meeting a
//! variant it does not know rejects the frame with [`codec::DecodeError::UnknownVariant`].
#![no_std]
#![forbid(unsafe_code)]

pub mod codec;
pub mod json;
pub mod replay;
pub mod report;
pub mod seal;
pub mod topic;

pub use codec::{decode_uplink, encode_uplink, DecodeError, EncodeError, SCHEMA_VERSION};
pub use report::{DeviceKind, Downlink, EventKind, Report, Uplink};
pub use seal::{DeviceKey, FrameClass, Header, OpenError, SealError};
