//! Linli gateway library: the stages of the ingest path and the wiring that runs them.
//!
//! `RawMessage → Reading` (ingest) is journaled (journal), then acked; supervision tracks
//! liveness; the API shows it all. `pipeline` is the one place that wires the stages; the
//! `linli` binary adds the CLI around it.

pub mod alarms;
pub mod api;
pub mod broker;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod downlink;
pub mod follow;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod people;
pub mod pipeline;
pub mod reading;
pub mod registry;
pub mod rules;
pub mod state;
pub mod store;
pub mod supervision;
pub mod web;
pub mod worker;

pub use config::Config;
pub use pipeline::{start, Gateway, StartError};
