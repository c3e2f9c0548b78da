//! `linli-sim bench alarms`: how fast the gateway turns readings into alarms.
//!
//! Part 1 ([`eval`]) replays a realistic, seeded day of a mixed care and street fleet
//! ([`fleet`], [`day`]) through the gateway's pure alarm core on one thread, with the
//! built-in rules plus care rules and per-resident overrides ([`rules`]), and reports
//! readings evaluated per second. Part 2 ([`latency`]) runs the real `linli` process
//! under MQTT load and reads its reading-to-alarm latency from `/metrics`.
//!
//! Owns orchestration of the parts; printing is [`report`]'s.

pub mod day;
pub mod eval;
pub mod fleet;
pub mod report;
pub mod rules;

use std::sync::Arc;

use anyhow::Result;

use eval::{EvalConfig, EvalRun};
use fleet::Fleet;

/// Part 1: `runs` runs of the replay, each printed as it ends, then the summary.
pub fn run_eval(cfg: &EvalConfig, runs: usize) -> Result<Vec<EvalRun>> {
    let fleet = Fleet::new(cfg.subjects);
    let rules = Arc::new(rules::rule_set(&fleet)?);
    report::print_eval_header(&fleet, cfg.hours, rules.rules.len());
    let mut out = Vec::new();
    for run in 1..=runs.max(1) {
        let r = eval::run_once(cfg, &fleet, &rules, &format!("run {run}"))?;
        report::print_eval_run(run, &r);
        out.push(r);
    }
    report::print_eval_summary(&out);
    Ok(out)
}
