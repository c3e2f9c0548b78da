//! People: who may sign in to the dashboard, with which role and zones, their sessions,
//! what they did (the audit log), and the slowing of password guesses.
//!
//! `roles` is the policy (pure), `throttle` the sign-in brake (pure), `db` the records.
//! HTTP (cookies, the API token header) is the API's (`api::session`).

pub mod db;
pub mod roles;
pub mod throttle;

pub use db::{People, PeopleError, SessionLimits};
pub use roles::{Need, Person, Role};
