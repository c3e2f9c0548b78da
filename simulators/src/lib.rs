//! Linli simulators: stand-ins for devices that speak the real wire protocol.
//!
//! Owns simulated device identities ([`device`]), raw MQTT load generation ([`load`]),
//! simulated Modbus equipment ([`modbus`]), the time-series corpus ([`corpus`]) and the
//! benchmarks built on them ([`bench`], [`bench_store`], [`bench_alarms`],
//! [`bench_delivery`]). The firmware's state machines
//! are not here yet (see the firmware issue); devices here build reports directly.

pub mod bench;
pub mod bench_alarms;
pub mod bench_delivery;
pub mod bench_modbus;
pub mod bench_store;
pub mod board;
pub mod corpus;
pub mod device;
pub mod fleet;
pub mod load;
pub mod modbus;
pub mod process;
pub mod scenario;
pub mod virtual_board;
