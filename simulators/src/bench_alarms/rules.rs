//! The rules the alarm benchmark evaluates: the gateway's built-in rules file plus the
//! care rules a care home adds (no morning activity, a night bed exit not followed by a
//! return, low SpO2) and a few per-resident overrides, as one rules file.
//!
//! Owns that text and its parse; the gateway's `rules::config` owns the format.

use anyhow::{anyhow, Result};
use linli_gateway::rules::config::{Defaults, DEFAULT_RULES};
use linli_gateway::rules::localtime::LocalTime;
use linli_gateway::rules::RuleSet;

use super::fleet::Fleet;

/// The fleet's (and the rules') time zone.
pub const TIMEZONE: &str = "Asia/Shanghai";

/// Care rules appended to the built-in ones.
pub const CARE_RULES: &str = r#"
[[rule]]
name = "no_morning_activity"
kind = "absence"
priority = 2
signal = "motion"
window = "07:00-10:00"
device_kinds = ["motion"]

[[rule]]
name = "bed_exit_night"
kind = "not_back"
priority = 2
trigger = "bed_exit"
back = "bed_enter"
within_s = 1200
window = "22:00-06:00"
device_kinds = ["bed"]

[[rule]]
name = "spo2_low"
kind = "threshold"
priority = 2
metric = "spo2_pct"
below = 90
hold_s = 120
deadband = 2
bed_occupied = true
device_kinds = ["vitals"]
"#;

/// Per-resident overrides, as (rule, keys) applied to residents spread over the fleet.
const OVERRIDES: [(&str, &str); 6] = [
    ("heart_rate_high", "above = 115"),
    ("bed_exit_night", "within_s = 600"),
    ("no_morning_activity", "window = \"08:30-11:00\""),
    ("heart_rate_high", "above = 140\nhold_s = 120"),
    ("bed_exit_night", "within_s = 900"),
    ("spo2_low", "below = 88"),
];

/// The whole rules file for `fleet`: built-in rules, care rules, overrides.
pub fn rules_text(fleet: &Fleet) -> String {
    let mut text = format!("timezone = \"{TIMEZONE}\"\n{DEFAULT_RULES}\n{CARE_RULES}");
    let n = fleet.homes.len();
    if n == 0 {
        return text;
    }
    for (i, (rule, keys)) in OVERRIDES.iter().enumerate() {
        // Residents 1, n/6+1, 2n/6+1, …: spread, and distinct when there are enough.
        let who = &fleet.homes[(i * n / OVERRIDES.len() + 1) % n].resident;
        text.push_str(&format!(
            "\n[[override]]\nrule = \"{rule}\"\nsubject = \"{who}\"\n{keys}\n"
        ));
    }
    text
}

/// The fleet's time zone.
pub fn local_time() -> Result<LocalTime> {
    LocalTime::named(TIMEZONE).map_err(|e| anyhow!(e))
}

/// Parses [`rules_text`].
pub fn rule_set(fleet: &Fleet) -> Result<RuleSet> {
    let defaults = Defaults {
        local: local_time()?,
        heartbeat_s: 900,
    };
    RuleSet::parse(&rules_text(fleet), &defaults).map_err(|issues| {
        let all: Vec<String> = issues
            .iter()
            .map(|i| format!("{}: {}", i.key, i.message))
            .collect();
        anyhow!("the benchmark's rules do not parse: {}", all.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_overrides() {
        let fleet = Fleet::new(200);
        let rs = rule_set(&fleet).unwrap();
        assert!(rs.rule("sos").is_some() && rs.rule("bed_exit_night").is_some());
        // 19 built-in (6 of them for polled equipment) + 3 care rules + 6 overrides.
        assert_eq!(rs.rules.len(), 19 + 3 + 6, "{:?}", rs.rules.len());
    }
}
