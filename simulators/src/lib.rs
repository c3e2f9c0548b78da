//! Linli simulators: stand-ins for devices and equipment that speak the real wire
//! protocol.
//!
//! Owns firmware devices on virtual boards ([`board`], [`virtual_board`]) gathered in
//! fleets ([`fleet`]) that play scenarios ([`scenario`]); raw sealed devices
//! ([`device`]) for load ([`load`] for the benches, [`traffic`] for `linli-sim load`);
//! simulated Modbus equipment ([`modbus`]); the time-series corpus ([`corpus`]) and
//! the benchmarks ([`bench`], [`bench_store`], [`bench_alarms`], [`bench_delivery`],
//! [`bench_modbus`]). Does not own device logic: that is the firmware crate's.

pub mod api;
pub mod bench;
pub mod bench_alarms;
pub mod bench_delivery;
pub mod bench_modbus;
pub mod bench_store;
pub mod board;
pub mod corpus;
pub mod demo;
pub mod device;
pub mod fleet;
pub mod gateway;
mod host_clock;
pub mod load;
pub mod modbus;
pub mod pager;
pub mod process;
pub mod scenario;
pub mod traffic;
pub mod virtual_board;
