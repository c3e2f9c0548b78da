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
    /// The InfluxDB export (rendered only when it is configured).
    pub export: ExportMetrics,
    /// Sequence number the journal gives its next record.
    pub journal_next_seq: AtomicU64,
    /// Each journal follower: its name, whether its thread runs (cleared when it ends,
    /// panics included) and the first sequence number it has not made durable.
    pub followers: parking_lot::Mutex<Vec<FollowerGauges>>,
}

/// What `/metrics` and `/healthz` show of one journal follower.
#[derive(Debug, Clone)]
pub struct FollowerGauges {
    /// Follower name.
    pub name: &'static str,
    /// True while its thread runs.
    pub up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// First journal sequence number it has not made durable.
    pub durable_before: std::sync::Arc<AtomicU64>,
}

/// Counters and gauges of the InfluxDB export (`store::influxdb`).
#[derive(Debug, Default)]
pub struct ExportMetrics {
    /// 1 when `[export.influxdb]` is configured; the export lines are rendered only then.
    pub enabled: AtomicU64,
    /// 1 while the last write attempt got an answer from the server (or none was made
    /// yet); 0 while writes time out, fail to connect or get 5xx/429/401/403/404.
    pub up: AtomicU64,
    /// Batches in the spool, not yet sent.
    pub spool_batches: AtomicU64,
    /// Bytes of those batches on disk.
    pub spool_bytes: AtomicU64,
    /// Creation time of the oldest unsent batch, ms since the epoch (0 = none).
    pub oldest_unsent_ms: AtomicU64,
    /// Points written (2xx).
    pub points_sent: AtomicU64,
    /// Batches written (2xx).
    pub batches_sent: AtomicU64,
    /// Write attempts that failed and will be retried.
    pub retries: AtomicU64,
    /// Batches refused by the server with a 4xx and set aside in `rejected/`.
    pub batches_rejected: AtomicU64,
    /// Oldest batches dropped because the spool reached its size cap.
    pub batches_dropped: AtomicU64,
    /// Fields not written because their value was NaN or infinite.
    pub fields_skipped: AtomicU64,
    /// 1 once the spool could not be written for too long: the export takes nothing
    /// more until a restart (the journal keeps the readings for it).
    pub stalled: AtomicU64,
}

impl Metrics {
    /// Counts one rejection.
    pub fn reject(&self, r: Rejection) {
        self.rejected[r.index()].fetch_add(1, Relaxed);
    }

    /// Names of followers whose thread has stopped.
    pub fn followers_down(&self) -> Vec<&'static str> {
        self.followers
            .lock()
            .iter()
            .filter(|f| !f.up.load(Relaxed))
            .map(|f| f.name)
            .collect()
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
        if self.export.enabled.load(Relaxed) == 1 {
            self.export.render(&mut s);
        }
        let _ = writeln!(
            s,
            "# HELP linli_follower_lag_records Journal records a follower (store, export) has not made durable yet; the journal is kept for them.\n# TYPE linli_follower_lag_records gauge"
        );
        let next = self.journal_next_seq.load(Relaxed);
        let followers = self.followers.lock().clone();
        for f in &followers {
            let lag = next.saturating_sub(f.durable_before.load(Relaxed));
            let _ = writeln!(
                s,
                "linli_follower_lag_records{{follower=\"{}\"}} {lag}",
                f.name
            );
        }
        let _ = writeln!(
            s,
            "# HELP linli_follower_up 1 while a journal follower (store, export) runs.\n# TYPE linli_follower_up gauge"
        );
        for f in &followers {
            let _ = writeln!(
                s,
                "linli_follower_up{{follower=\"{}\"}} {}",
                f.name,
                u8::from(f.up.load(Relaxed))
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

impl ExportMetrics {
    /// Appends the export's lines to a Prometheus text exposition.
    fn render(&self, s: &mut String) {
        let mut one = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let g = |a: &AtomicU64| a.load(Relaxed) as f64;
        let oldest = self.oldest_unsent_ms.load(Relaxed);
        let age = if oldest == 0 {
            0.0
        } else {
            crate::clock::now_ms().saturating_sub(oldest) as f64 / 1e3
        };
        one(
            "linli_export_up",
            "gauge",
            "1 while the InfluxDB server answers writes; 0 while they time out or fail.",
            g(&self.up),
        );
        one(
            "linli_export_stalled",
            "gauge",
            "1 when the spool could not be written for too long and the export stopped taking readings (restart after fixing the disk).",
            g(&self.stalled),
        );
        one(
            "linli_export_spool_batches",
            "gauge",
            "Batches in the export spool waiting to be sent.",
            g(&self.spool_batches),
        );
        one(
            "linli_export_spool_bytes",
            "gauge",
            "Bytes of the batches in the export spool.",
            g(&self.spool_bytes),
        );
        one(
            "linli_export_oldest_unsent_age_seconds",
            "gauge",
            "Age of the oldest batch in the export spool (0 when it is empty).",
            age,
        );
        one(
            "linli_export_points_sent_total",
            "counter",
            "Points written to InfluxDB.",
            g(&self.points_sent),
        );
        one(
            "linli_export_batches_sent_total",
            "counter",
            "Batches written to InfluxDB.",
            g(&self.batches_sent),
        );
        one(
            "linli_export_retries_total",
            "counter",
            "Write attempts that failed (timeout, network, 5xx, 429) and are retried.",
            g(&self.retries),
        );
        one(
            "linli_export_batches_rejected_total",
            "counter",
            "Batches the server refused with a 4xx, set aside in the spool's rejected/ directory.",
            g(&self.batches_rejected),
        );
        one(
            "linli_export_batches_dropped_total",
            "counter",
            "Oldest batches dropped because the export spool was full (spool_max_mib).",
            g(&self.batches_dropped),
        );
        one(
            "linli_export_fields_skipped_total",
            "counter",
            "Fields not exported because their value was NaN or infinite.",
            g(&self.fields_skipped),
        );
    }
}
