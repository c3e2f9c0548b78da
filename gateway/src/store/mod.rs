//! Where accepted readings are kept and forwarded after the journal: each sink is a
//! journal follower (see `follow`). Owns nothing itself; does not own the journal.

pub mod influxdb;
