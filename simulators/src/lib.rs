//! Linli simulators: stand-ins for devices that speak the real wire protocol.
//!
//! Owns simulated device identities ([`device`]) and the load generator ([`load`]).
//! The firmware's state machines are not here yet (see the firmware issue); devices here
//! build reports directly.

pub mod device;
