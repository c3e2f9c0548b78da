//! What a load run measured, the check that every acked frame is in the gateway, and
//! the printed summary.
//!
//! Owns the figures and their presentation; does not run anything.

use std::collections::HashMap;
use std::time::Duration;

use crate::api::Api;
use anyhow::{Context, Result};
use linli_protocol::DeviceKind;

use super::device::Outcome;
use super::StormCause;

/// The storm's figures.
#[derive(Debug, Clone)]
pub struct StormReport {
    /// What caused it.
    pub cause: StormCause,
    /// Devices waited up to this long before coming back, s.
    pub jitter_s: f64,
    /// Restart: seconds from SIGKILL until the new gateway answered.
    pub gateway_back_s: Option<f64>,
    /// Seconds from the storm until every device was back online (`None`: never).
    pub all_back_s: Option<f64>,
}

/// The check of the gateway's readings against what the devices saw acked.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// Devices checked.
    pub devices: usize,
    /// Acked frames looked up.
    pub acked_frames: u64,
    /// Acked frames the gateway does not have.
    pub lost: u64,
    /// Frames the gateway holds twice.
    pub duplicates: u64,
    /// The first few lost frames, `device#counter`.
    pub examples: Vec<String>,
}

/// Everything a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Devices.
    pub devices: usize,
    /// Kind mix.
    pub mix: Vec<(DeviceKind, u32)>,
    /// Readings/s asked for.
    pub rate: f64,
    /// QoS 1 publishes.
    pub qos1: bool,
    /// Seconds until every device was online at the start.
    pub connect_s: f64,
    /// Seconds of publishing.
    pub publish_s: f64,
    /// Seconds from the first reading until everything held was delivered.
    pub busy_s: f64,
    /// Frames sealed.
    pub sealed: u64,
    /// Frames acked.
    pub acked: u64,
    /// Frames written again.
    pub resent: u64,
    /// Readings not taken because a device held its whole window.
    pub deferred: u64,
    /// Frames still unacked when the run ended.
    pub waiting_at_end: u64,
    /// Successful connects (every device's first, and each return).
    pub connects: u64,
    /// Failed connection attempts.
    pub failed_connects: u64,
    /// Devices online when publishing ended.
    pub online_at_end: usize,
    /// Send-to-ack latencies, ms, ascending (frames acked on the connection that sent
    /// them once).
    pub latencies_ms: Vec<f32>,
    /// The storm, if there was one.
    pub storm: Option<StormReport>,
    /// The check.
    pub check: Check,
    /// Gateway CPU seconds while publishing and draining.
    pub gateway_cpu_s: f64,
    /// This process's CPU seconds over the same time.
    pub simulator_cpu_s: f64,
    /// Gateway peak resident set, MiB.
    pub gateway_peak_rss_mib: f64,
}

impl LoadReport {
    /// Latency quantile `q`, ms (0 when none).
    pub fn latency_ms(&self, q: f64) -> f64 {
        let v = &self.latencies_ms;
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        f64::from(v[rank - 1])
    }

    /// Readings acked per second of publishing and draining.
    pub fn acked_per_s(&self) -> f64 {
        self.acked as f64 / self.busy_s.max(1e-9)
    }

    /// Readings one core of the simulator would sustain at its cost in this run.
    pub fn simulator_readings_per_cpu_s(&self) -> f64 {
        self.acked as f64 / self.simulator_cpu_s.max(1e-9)
    }

    /// Prints the summary on stdout.
    pub fn print(&self) {
        let mix: Vec<String> = self
            .mix
            .iter()
            .map(|(k, w)| format!("{}={w}", k.as_str()))
            .collect();
        println!(
            "load: {} devices ({}), {:.0} readings/s asked, QoS {}",
            self.devices,
            mix.join(","),
            self.rate,
            if self.qos1 { 1 } else { 0 }
        );
        println!(
            "  connect     all {} online in {:.1} s",
            self.devices, self.connect_s
        );
        println!(
            "  traffic     sealed {}, acked {} ({:.0}/s over {:.1} s), resent {}, deferred {}, unacked at end {}",
            self.sealed,
            self.acked,
            self.acked_per_s(),
            self.busy_s,
            self.resent,
            self.deferred,
            self.waiting_at_end
        );
        println!(
            "  latency     send -> gateway ack, ms, frames acked at the first try (n={}): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.latencies_ms.len(),
            self.latency_ms(0.5),
            self.latency_ms(0.9),
            self.latency_ms(0.99),
            self.latency_ms(0.999),
            self.latency_ms(1.0)
        );
        if let Some(s) = &self.storm {
            let cause = match s.cause {
                StormCause::Drop => "every device dropped its connection".to_owned(),
                StormCause::Restart => format!(
                    "gateway killed -9 and restarted (answering again after {:.1} s)",
                    s.gateway_back_s.unwrap_or(f64::NAN)
                ),
            };
            match s.all_back_s {
                Some(t) => println!(
                    "  storm       {cause}; devices came back within {:.1} s jitter; all {} online after {t:.1} s; {} failed connection attempts",
                    s.jitter_s, self.devices, self.failed_connects
                ),
                None => println!("  storm       {cause}; NOT every device came back ({} online)", self.online_at_end),
            }
        }
        let c = &self.check;
        println!(
            "  check       {} acked frames of {} devices looked up in the gateway: {} lost, {} held twice{}",
            c.acked_frames,
            c.devices,
            c.lost,
            c.duplicates,
            if c.examples.is_empty() { String::new() } else { format!(" (e.g. {})", c.examples.join(", ")) }
        );
        let busy = self.busy_s.max(1e-9);
        println!(
            "  cost        gateway {:.1} CPU-s ({:.0} % of a core, peak RSS {:.0} MiB); simulator {:.1} CPU-s ({:.0} % of a core), {:.2} of the gateway's",
            self.gateway_cpu_s,
            100.0 * self.gateway_cpu_s / busy,
            self.gateway_peak_rss_mib,
            self.simulator_cpu_s,
            100.0 * self.simulator_cpu_s / busy,
            self.simulator_cpu_s / self.gateway_cpu_s.max(1e-9)
        );
        println!(
            "  simulator   ≈ {:.0} readings/s per core at this run's cost (sealing, MQTT, acks)",
            self.simulator_readings_per_cpu_s()
        );
    }
}

impl Check {
    /// Adds device `o`, whose frames the gateway holds with `counters`: its acked
    /// frames (1 ..= last, less those waiting) among the newest `recent`.
    fn add(&mut self, o: &Outcome, counters: &[u64], recent: usize) {
        let mut seen: HashMap<u64, u32> = HashMap::new();
        for c in counters {
            *seen.entry(*c).or_default() += 1;
        }
        self.duplicates += seen.values().filter(|n| **n > 1).count() as u64;
        let from = o.last_counter.saturating_sub(recent as u32) + 1;
        for counter in from..=o.last_counter {
            if o.waiting.contains(&counter) {
                continue;
            }
            self.acked_frames += 1;
            if !seen.contains_key(&u64::from(counter)) {
                self.lost += 1;
                if self.examples.len() < 5 {
                    self.examples.push(format!("{}#{counter}", o.id));
                }
            }
        }
        self.devices += 1;
    }
}

/// Looks up each device's acked frames (its counters 1 ..= last, less those still
/// waiting) among the gateway's readings of it; the gateway keeps the newest `recent`
/// per device in memory, so older ones are not looked up.
pub fn check(api: &Api, outcomes: &[Outcome], recent: usize) -> Result<Check> {
    let mut c = Check::default();
    for o in outcomes {
        let body = api.get(
            &format!("/api/devices/{}/readings?limit={recent}", o.id),
            Duration::from_secs(30),
        )?;
        let readings: Vec<serde_json::Value> =
            serde_json::from_value(body).with_context(|| format!("readings of {}", o.id))?;
        let counters: Vec<u64> = readings
            .iter()
            .filter_map(|r| r.get("counter").and_then(serde_json::Value::as_u64))
            .collect();
        c.add(o, &counters, recent);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_or_doubled_frame_is_found_and_a_waiting_one_is_not_counted() {
        let o = Outcome {
            id: "d".into(),
            last_counter: 5,
            waiting: vec![5],
        };
        let mut c = Check::default();
        c.add(&o, &[1, 2, 2, 4], 256);
        assert_eq!((c.acked_frames, c.lost, c.duplicates), (4, 1, 1));
        assert_eq!(c.examples, vec!["d#3".to_owned()]);
        // Only the newest `recent` are looked up.
        let mut c = Check::default();
        c.add(&o, &[4], 2);
        assert_eq!((c.acked_frames, c.lost), (1, 0));
    }
}
