//! Modbus equipment (street cabinets, lamp controllers, pump stations, power meters) as
//! a source of readings and a target of commands: profiles (`profile`, register maps in
//! `registers`), the `[modbus]` config, the poller (`poller` builds links, `link` polls
//! over tokio-modbus), report building (`assemble`), command verification (`verify`)
//! and its audit trail (`audit`), lamp schedules (`schedule`), and what operators see
//! (`stats`).
//!
//! Does not own the pipeline's stages after ingest: polled readings go into the ingest
//! worker's queue and through the same journal, store, rules and alarms as MQTT ones.

pub mod assemble;
pub mod audit;
pub mod config;
pub mod link;
pub mod poller;
pub mod profile;
pub mod registers;
pub mod schedule;
pub mod stats;
pub mod verify;
