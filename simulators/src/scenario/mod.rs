//! Scenarios: a timed storyline for a simulated neighbourhood, run against a real gateway
//! at any speed, with the alarms the gateway must (or must not) raise.
//!
//! ```toml
//! name = "a night in wing A"
//! speed = 20                      # device time runs 20 times faster than real time
//!
//! [[group]]                       # the fleet, as in a fleet description
//! kind = "pendant"
//! count = 2
//! id = "wing-a-pendant"
//! site = "care-home-1"
//! zone = "wing-a"
//! resident = "R-A"
//!
//! [[step]]
//! at = "30s"                      # device time since the fleet came online
//! device = "wing-a-pendant-2"
//! do = "fall"
//!
//! [[expect]]
//! alarm = "fall"
//! device = "wing-a-pendant-2"
//! by = "3m"                       # raised by then (device time)
//!
//! [[expect]]
//! alarm = "fall"
//! device = "wing-a-pendant-1"
//! absent = true                   # never raised (checked at the last deadline)
//! by = "3m"
//! ```
//!
//! Owns the format ([`format`]: parse, validate every error by key) and the run ([`play`]:
//! the timeline, the alarms and pages seen, the verdict). Does not own the fleet
//! (`crate::fleet`) or the gateway's rules.

mod format;
mod play;

pub use format::{parse_clock, parse_duration, Action, Expect, Scenario, Step};
pub use play::{play, run, Outcome, Target, Verdict};
