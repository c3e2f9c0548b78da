//! Linli device firmware, `#![no_std]` and allocation-free, in layers (see
//! `firmware/README.md`):
//!
//! - pure state machines every device kind runs — fall detection, SOS debounce, bed
//!   occupancy, PIR hold-off, door contact, vital signs from PPG, street-light fault
//!   sensing, manhole tilt, water level, waste-bin fill. Each takes its samples and the
//!   time (ms since boot) and returns what it decides; none touches a HAL, a clock or the
//!   network, so host tests drive them at simulated speed;
//! - [`sensors`] adapts the embedded-hal 1.0 driver crates (LIS3DH, MAX30102, INA219,
//!   VL53L0X) and our own ADC and echo-timer traits to the units these machines take;
//!   [`virtual_sensors`] simulates those chips at register level, so the real drivers run
//!   on the host, in simulators and under QEMU;
//! - [`app`] runs one application loop per device kind on a [`node::Node`] (counter,
//!   sealing, cadence, downlinks) with its [`outbox`];
//! - [`publish`] hands sealed frames to a transport; `mqtt` (feature `mqtt`) is the
//!   minimq client.

#![no_std]

pub mod app;
pub mod backoff;
pub mod bed;
pub mod boards;
pub mod debounce;
pub mod door;
pub mod fall;
pub mod manhole;
pub mod motion;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod node;
pub mod outbox;
pub mod publish;
pub mod sensors;
pub mod sos;
pub mod street_light;
pub mod virtual_sensors;
pub mod vitals;
pub mod waste_bin;
pub mod water_level;
