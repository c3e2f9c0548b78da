//! Linli device firmware logic, `#![no_std]` and allocation-free: the pure state machines
//! every device kind runs — fall detection, SOS debounce, bed occupancy, PIR hold-off,
//! door contact, vital signs from PPG, street-light fault sensing, manhole tilt, water
//! level, waste-bin fill.
//!
//! Each machine takes its samples and the time (ms since boot) as inputs and returns the
//! events it decides on; none touches a HAL, a clock or the network, so host tests drive
//! them at simulated speed. Sensor adapters, application loops, the outbox and the MQTT
//! publisher build on these (issue 7, still to come).

#![no_std]

pub mod bed;
pub mod debounce;
pub mod door;
pub mod fall;
pub mod manhole;
pub mod motion;
pub mod sos;
pub mod street_light;
pub mod vitals;
pub mod waste_bin;
pub mod water_level;
