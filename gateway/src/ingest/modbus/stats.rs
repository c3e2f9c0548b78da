//! What the poller tells operators: each device's link state, last good poll, errors and
//! exceptions by code, and its registers' last values; counters for `/metrics`; and the
//! poll-jitter window the benchmark reads.
//!
//! Owns these numbers; does not poll.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use serde::Serialize;

/// Where a device's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not connected yet.
    #[default]
    Connecting,
    /// Answering.
    Up,
    /// Failing: waiting to reconnect (`retry_in_ms`).
    Down,
}

/// A register's last value, or why the last read gave none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterValue {
    /// Scaled value; None when the last read was rejected or failed.
    pub value: Option<f64>,
    /// Unit.
    pub unit: Option<String>,
    /// Why there is no value.
    pub error: Option<String>,
    /// When it was read, ms since the epoch.
    pub at_ms: u64,
}

/// One device's poll status.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Status {
    /// Link state.
    pub state: LinkState,
    /// Last poll that read everything due, ms since the epoch.
    pub last_ok_ms: Option<u64>,
    /// The last error.
    pub last_error: Option<String>,
    /// Failed polls since the last good one.
    pub consecutive_failures: u64,
    /// Polls attempted.
    pub polls: u64,
    /// Polls that failed (timeout, transport, protocol or exception).
    pub failures: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Connections made after a failure.
    pub reconnects: u64,
    /// Modbus exceptions, by code (`0x02` = illegal data address, …).
    pub exceptions: BTreeMap<String, u64>,
    /// Values rejected (out of range, not a number, do not fit the report).
    pub rejected: u64,
    /// Readings sent into the pipeline.
    pub readings: u64,
    /// Registers' last values.
    pub registers: BTreeMap<String, RegisterValue>,
}

/// Most jitter samples kept.
const JITTER_WINDOW: usize = 65_536;

/// Poller counters for `/metrics`.
#[derive(Debug, Default)]
pub struct PollerMetrics {
    /// Polls attempted.
    pub polls: AtomicU64,
    /// Requests that timed out.
    pub timeouts: AtomicU64,
    /// Transport (I/O) errors.
    pub transport_errors: AtomicU64,
    /// Protocol errors (mismatched replies).
    pub protocol_errors: AtomicU64,
    /// Exceptions by code 0..=255.
    pub exceptions: Mutex<BTreeMap<u8, u64>>,
    /// Connections (re)made.
    pub connects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Polls skipped because the device was backing off or the link was busy past them.
    pub missed: AtomicU64,
    /// Readings sent into the pipeline.
    pub readings: AtomicU64,
    /// Values rejected: out of range.
    pub out_of_range: AtomicU64,
    /// Values rejected: NaN or infinite.
    pub not_a_number: AtomicU64,
    /// Values that do not fit the kind's report.
    pub unfit: AtomicU64,
    /// Readings refused because ingest's queue was full.
    pub overload: AtomicU64,
    /// Commands written.
    pub commands_written: AtomicU64,
    /// Commands whose write failed.
    pub commands_failed: AtomicU64,
    /// Commands whose read-back showed them.
    pub verified: AtomicU64,
    /// Commands whose read-back did not show them.
    pub not_applied: AtomicU64,
    jitter_us: Mutex<VecDeque<u32>>,
}

/// Percentiles of recent poll jitter (how late each poll started against its schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Jitter {
    /// Samples in the window.
    pub samples: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Worst, ms.
    pub max_ms: f64,
}

impl PollerMetrics {
    /// Notes one poll's lateness.
    pub fn jitter(&self, late: std::time::Duration) {
        let mut j = self.jitter_us.lock();
        if j.len() == JITTER_WINDOW {
            j.pop_front();
        }
        j.push_back(late.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    /// Percentiles of the window; `reset` empties it (the benchmark measures per run).
    pub fn jitter_summary(&self, reset: bool) -> Jitter {
        let mut v: Vec<u32> = {
            let mut j = self.jitter_us.lock();
            let v = j.iter().copied().collect();
            if reset {
                j.clear();
            }
            v
        };
        v.sort_unstable();
        let at = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |us| f64::from(*us) / 1000.0)
        };
        Jitter {
            samples: v.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }

    /// Notes an exception code.
    pub fn exception(&self, code: u8) {
        *self.exceptions.lock().entry(code).or_default() += 1;
    }

    /// Appends the Prometheus text.
    pub fn render(&self, s: &mut String) {
        let c = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        c(
            s,
            "linli_modbus_polls_total",
            "Modbus polls attempted.",
            self.polls.load(Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP linli_modbus_errors_total Modbus requests that failed, by kind.\n# TYPE linli_modbus_errors_total counter"
        );
        for (kind, v) in [
            ("timeout", &self.timeouts),
            ("transport", &self.transport_errors),
            ("protocol", &self.protocol_errors),
            ("connect", &self.connect_failures),
        ] {
            let _ = writeln!(
                s,
                "linli_modbus_errors_total{{kind=\"{kind}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP linli_modbus_exceptions_total Modbus exception replies, by code.\n# TYPE linli_modbus_exceptions_total counter"
        );
        for (code, v) in self.exceptions.lock().iter() {
            let _ = writeln!(
                s,
                "linli_modbus_exceptions_total{{code=\"{code:#04x}\"}} {v}"
            );
        }
        c(
            s,
            "linli_modbus_connects_total",
            "Modbus connections made.",
            self.connects.load(Relaxed),
        );
        c(
            s,
            "linli_modbus_polls_missed_total",
            "Scheduled polls skipped (device backing off, or the link busy past them).",
            self.missed.load(Relaxed),
        );
        c(
            s,
            "linli_modbus_readings_total",
            "Readings polled into the pipeline.",
            self.readings.load(Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP linli_modbus_rejected_total Polled values rejected, by reason.\n# TYPE linli_modbus_rejected_total counter"
        );
        for (reason, v) in [
            ("out_of_range", &self.out_of_range),
            ("not_a_number", &self.not_a_number),
            ("unfit", &self.unfit),
            ("overload", &self.overload),
        ] {
            let _ = writeln!(
                s,
                "linli_modbus_rejected_total{{reason=\"{reason}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP linli_modbus_commands_total Commands to equipment, by outcome.\n# TYPE linli_modbus_commands_total counter"
        );
        for (outcome, v) in [
            ("written", &self.commands_written),
            ("failed", &self.commands_failed),
            ("verified", &self.verified),
            ("not_applied", &self.not_applied),
        ] {
            let _ = writeln!(
                s,
                "linli_modbus_commands_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        let j = self.jitter_summary(false);
        let _ = writeln!(
            s,
            "# HELP linli_modbus_poll_jitter_p99_seconds 99th percentile of how late polls started (recent window).\n# TYPE linli_modbus_poll_jitter_p99_seconds gauge\nlinli_modbus_poll_jitter_p99_seconds {}",
            j.p99_ms / 1000.0
        );
    }
}
