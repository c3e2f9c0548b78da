//! Modbus equipment (street cabinets, lamp controllers, pump stations, power meters) as
//! a source of readings: register maps (`registers`). The poller over tokio-modbus, the
//! device profiles in config and commands are issue 6's work still to come.
//!
//! Does not own the pipeline's stages after ingest: Modbus readings are to flow through
//! the same journal, store, rules and alarms as MQTT ones.

pub mod registers;
