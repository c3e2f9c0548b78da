//! Gateway counters and gauges, rendered as Prometheus text for `/metrics`.
//!
//! Owns the numbers only: stages increment them, the API renders them. No global
//! registry: one [`Metrics`] is created by the pipeline and shared.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::ingest::Rejection;
use crate::supervision::Liveness;

/// Resident set size of this process, from /proc (Linux only).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Every counter and gauge the gateway exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages taken from the broker link.
    pub messages_in: AtomicU64,
    /// Readings journaled.
    pub readings_accepted: AtomicU64,
    /// Rejections by [`Rejection::index`].
    pub rejected: [AtomicU64; Rejection::ALL.len()],
    /// Acks published.
    pub acks_sent: AtomicU64,
    /// Messages between the broker link and the journal right now.
    pub queue_depth: AtomicU64,
    /// Age of the oldest message when the ingest worker took its last batch, µs.
    pub link_lag_us: AtomicU64,
    /// Receive-to-durable time of the oldest message of the last commit, µs.
    pub journal_lag_us: AtomicU64,
    /// Group commits.
    pub journal_commits: AtomicU64,
    /// fsync calls.
    pub journal_fsyncs: AtomicU64,
    /// Broker connections admitted by the auth handler.
    pub auth_accepted: AtomicU64,
    /// Broker connections refused by the auth handler.
    pub auth_refused: AtomicU64,
    /// Times the broker discarded messages before ingest read them (cursor jumps).
    pub broker_dropped: AtomicU64,
    /// Last Will messages received.
    pub wills: AtomicU64,
    /// Devices per liveness state ([`Liveness::ALL`] order).
    pub liveness: [AtomicU64; 4],
    /// Devices whose connection is up (heard since start, no Will since).
    pub connected: AtomicU64,
    /// 1 while the ingest worker runs; 0 after a journal failure.
    pub ingest_up: AtomicU64,
}

impl Metrics {
    /// Counts one rejection.
    pub fn reject(&self, r: Rejection) {
        self.rejected[r.index()].fetch_add(1, Relaxed);
    }

    /// Rejections of one reason so far.
    pub fn rejected_of(&self, r: Rejection) -> u64 {
        self.rejected[r.index()].load(Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let g = |a: &AtomicU64| a.load(Relaxed) as f64;
        one(
            "linli_messages_in_total",
            "counter",
            "Messages taken from the broker link.",
            g(&self.messages_in),
        );
        one(
            "linli_readings_accepted_total",
            "counter",
            "Readings journaled.",
            g(&self.readings_accepted),
        );
        one(
            "linli_acks_sent_total",
            "counter",
            "Application acks published to devices.",
            g(&self.acks_sent),
        );
        one(
            "linli_ingest_queue_depth",
            "gauge",
            "Messages received from the broker and not yet journaled (broker link lag).",
            g(&self.queue_depth),
        );
        one(
            "linli_broker_link_lag_seconds",
            "gauge",
            "Age of the oldest message when the ingest worker last took a batch.",
            g(&self.link_lag_us) / 1e6,
        );
        one(
            "linli_journal_lag_seconds",
            "gauge",
            "Receive-to-durable time of the oldest message in the last group commit.",
            g(&self.journal_lag_us) / 1e6,
        );
        one(
            "linli_journal_commits_total",
            "counter",
            "Journal group commits.",
            g(&self.journal_commits),
        );
        one(
            "linli_journal_fsyncs_total",
            "counter",
            "Journal fsync calls.",
            g(&self.journal_fsyncs),
        );
        one(
            "linli_broker_auth_accepted_total",
            "counter",
            "MQTT connections admitted.",
            g(&self.auth_accepted),
        );
        one(
            "linli_broker_auth_refused_total",
            "counter",
            "MQTT connections refused (unknown device or bad credentials).",
            g(&self.auth_refused),
        );
        one(
            "linli_broker_cursor_jumps_total",
            "counter",
            "Times the broker discarded PUBACKed messages before ingest read them (devices resend).",
            g(&self.broker_dropped),
        );
        one(
            "linli_wills_total",
            "counter",
            "Last Will messages (device connection dropped).",
            g(&self.wills),
        );
        one(
            "linli_devices_connected",
            "gauge",
            "Devices heard since start with no Last Will since.",
            g(&self.connected),
        );
        one(
            "linli_ingest_up",
            "gauge",
            "1 while ingest runs; 0 after a journal failure.",
            g(&self.ingest_up),
        );
        if let Some(rss) = resident_bytes() {
            one(
                "linli_process_resident_memory_bytes",
                "gauge",
                "Resident memory of the gateway process.",
                rss as f64,
            );
        }
        let _ = writeln!(s, "# HELP linli_rejected_total Messages rejected, by reason.\n# TYPE linli_rejected_total counter");
        for r in Rejection::ALL {
            let _ = writeln!(
                s,
                "linli_rejected_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.rejected_of(r)
            );
        }
        let _ = writeln!(
            s,
            "# HELP linli_devices Registered devices by liveness.\n# TYPE linli_devices gauge"
        );
        for (i, l) in Liveness::ALL.iter().enumerate() {
            let _ = writeln!(
                s,
                "linli_devices{{liveness=\"{}\"}} {}",
                l.as_str(),
                self.liveness[i].load(Relaxed)
            );
        }
        s
    }
}
