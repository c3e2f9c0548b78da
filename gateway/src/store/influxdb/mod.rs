//! The InfluxDB v2 export: a journal follower that turns every accepted reading into
//! line protocol, closes it into batches kept in a disk spool, and a sender task that
//! forwards the spool to InfluxDB (store-and-forward: nothing accepted is lost while the
//! server is down, slow or restarting, up to the spool's size cap).
//!
//! Owns the follower's bookkeeping: its `durable_before` is the first journal sequence
//! number not yet in the spool (readings that produce no line count as spooled), so a
//! restart replays exactly what was missing. Does not own the line format
//! ([`line`], schema in `SCHEMA.md`), the files ([`spool`]) or HTTP ([`sender`]); does not
//! query InfluxDB (the embedded store answers the gateway's own queries).

pub mod line;
pub mod sender;
pub mod spool;

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::InfluxConfig;
use crate::follow::{Entry, Follower};
use crate::metrics::Metrics;
pub use sender::Sender;
pub use spool::{Spool, SpoolError};

/// Why the export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The spool could not be opened or recovered.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// `token_env` names a variable that is not set.
    #[error("export.influxdb.token_env: environment variable {0} is not set (or not UTF-8); set it to the InfluxDB API token or change the config")]
    TokenEnv(String),
    /// The URL does not parse.
    #[error("export.influxdb.url {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the InfluxDB client: {0}")]
    Client(String),
}

/// Most points kept in memory while the spool cannot be written, in batches; past it the
/// follower stops (the journal keeps everything from its durable point for a restart).
const MAX_PENDING_BATCHES: usize = 8;

/// The follower half: encodes, batches and spools.
#[derive(Debug)]
pub struct InfluxExport {
    spool: Arc<Mutex<Spool>>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    batch_points: usize,
    flush_interval: Duration,
    pending: Vec<u8>,
    points: usize,
    /// Sequence number of the first entry with lines in `pending`.
    pending_start: u64,
    pending_since: Option<Instant>,
    /// First sequence number not yet applied.
    applied_before: u64,
    /// The spool's cursor.
    spooled_before: u64,
    /// After a failed spool write: no new attempt before this.
    retry_at: Option<Instant>,
    /// The spool could not be written for too long: nothing more is taken, and the
    /// durable point stays here (the first reading not spooled).
    stalled_at: Option<u64>,
}

/// Opens the export: the spool under `data_dir/export/influxdb` (recovering it) and the
/// client. Returns the follower (to add to the pipeline's followers before replay) and
/// the sender (to spawn on the runtime).
pub fn open(
    config: &InfluxConfig,
    data_dir: &Path,
    metrics: Arc<Metrics>,
) -> Result<(InfluxExport, Sender), ExportError> {
    let token = match (&config.token, &config.token_env) {
        (Some(t), _) => t.clone(),
        (None, Some(var)) => std::env::var(var).map_err(|_| ExportError::TokenEnv(var.clone()))?,
        (None, None) => String::new(),
    };
    // influxdb2 panics on a URL it cannot parse: check first.
    url::Url::parse(&config.url).map_err(|e| ExportError::Url {
        url: config.url.clone(),
        reason: e.to_string(),
    })?;
    let client = influxdb2::ClientBuilder::new(&config.url, &config.org, token)
        .build()
        .map_err(|e| ExportError::Client(e.to_string()))?;
    let dir = data_dir.join("export").join("influxdb");
    let (spool, rec) = Spool::open(&dir, config.spool_max_mib * 1024 * 1024, metrics.clone())?;
    tracing::info!(
        url = %config.url,
        bucket = %config.bucket,
        spool = %dir.display(),
        unsent_batches = rec.batches,
        unsent_bytes = spool.bytes(),
        torn_removed = rec.torn_removed,
        corrupt_set_aside = rec.corrupt,
        durable_before = spool.durable_before(),
        "InfluxDB export enabled"
    );
    metrics.export.enabled.store(1, Relaxed);
    metrics.export.up.store(1, Relaxed);
    let spooled_before = spool.durable_before();
    let spool = Arc::new(Mutex::new(spool));
    let wake = Arc::new(Notify::new());
    let follower = InfluxExport {
        spool: spool.clone(),
        wake: wake.clone(),
        metrics: metrics.clone(),
        batch_points: config.batch_points,
        flush_interval: Duration::from_millis(config.flush_interval_ms),
        pending: Vec::new(),
        points: 0,
        pending_start: spooled_before,
        pending_since: None,
        applied_before: spooled_before,
        spooled_before,
        retry_at: None,
        stalled_at: None,
    };
    let sender = Sender {
        client,
        org: config.org.clone(),
        bucket: config.bucket.clone(),
        timeout: Duration::from_millis(config.timeout_ms),
        backoff: sender::Backoff::new(
            Duration::from_millis(config.backoff_min_ms),
            Duration::from_millis(config.backoff_max_ms),
        ),
        spool,
        wake,
        metrics,
    };
    Ok((follower, sender))
}

impl InfluxExport {
    /// Closes the pending lines into a spooled batch. On failure keeps them for a later
    /// attempt (and, past [`MAX_PENDING_BATCHES`], gives up until restart).
    fn seal(&mut self, now_ms: u64) {
        if self.points == 0 {
            return;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let result = self.spool.lock().push(
            self.pending_start,
            self.applied_before,
            self.points as u32,
            now_ms,
            &self.pending,
        );
        match result {
            Ok(dropped) => {
                self.spooled_before = self.applied_before;
                self.pending.clear();
                self.points = 0;
                self.pending_since = None;
                self.retry_at = None;
                self.wake.notify_one();
                for d in dropped {
                    tracing::warn!(
                        points = d.points,
                        seq_start = d.seq_start,
                        seq_end = d.seq_end,
                        "export spool full: oldest batch dropped (lost for InfluxDB). Raise export.influxdb.spool_max_mib or restore the connection to InfluxDB"
                    );
                }
            }
            Err(e) => {
                self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                if self.points >= self.batch_points.saturating_mul(MAX_PENDING_BATCHES) {
                    self.stalled_at = Some(self.pending_start);
                    self.metrics.export.stalled.store(1, Relaxed);
                    self.pending = Vec::new();
                    self.points = 0;
                    tracing::error!(
                        error = %e,
                        durable_before = self.spooled_before,
                        "export spool cannot be written: the InfluxDB export stops here. The journal keeps every reading from this point; fix the disk and restart the gateway to export them"
                    );
                } else {
                    tracing::error!(error = %e, "cannot write the export spool; retrying. Check the disk");
                }
            }
        }
    }
}

impl Follower for InfluxExport {
    fn name(&self) -> &'static str {
        "export-influxdb"
    }

    fn durable_before(&self) -> u64 {
        // Everything before the first pending line is in the spool or wrote no line.
        if let Some(at) = self.stalled_at {
            at
        } else if self.points > 0 {
            self.pending_start
        } else {
            self.applied_before.max(self.spooled_before)
        }
    }

    fn apply(&mut self, entries: &[Entry]) {
        if self.stalled_at.is_some() {
            return;
        }
        let mut skipped = 0;
        for e in entries {
            if e.seq < self.applied_before {
                continue; // already spooled (a replay overlapping what was kept)
            }
            let n = line::encode(&mut self.pending, e);
            skipped += n.skipped_fields;
            if n.points > 0 {
                if self.points == 0 {
                    self.pending_start = e.seq;
                    self.pending_since = Some(Instant::now());
                }
                self.points += n.points;
            }
            self.applied_before = e.seq + 1;
            let due = self
                .pending_since
                .is_some_and(|t| t.elapsed() >= self.flush_interval);
            if self.points >= self.batch_points || due {
                self.seal(crate::clock::now_ms());
                if self.stalled_at.is_some() {
                    return;
                }
            }
        }
        if skipped > 0 {
            self.metrics
                .export
                .fields_skipped
                .fetch_add(skipped, Relaxed);
        }
    }

    fn tick(&mut self, now_ms: u64) {
        if self
            .pending_since
            .is_some_and(|t| t.elapsed() >= self.flush_interval)
        {
            self.seal(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use linli_protocol::report::{Heartbeat, Report};
    use linli_protocol::DeviceKind;

    use super::*;
    use crate::reading::Reading;
    use crate::registry::{DeviceProfile, Registry, Trust};

    fn config(batch_points: usize) -> InfluxConfig {
        InfluxConfig {
            url: "http://127.0.0.1:9".into(),
            org: "o".into(),
            bucket: "b".into(),
            batch_points,
            flush_interval_ms: 600_000,
            ..InfluxConfig::default()
        }
    }

    fn entries(reg: &Registry, seqs: std::ops::Range<u64>, report: Report) -> Vec<Entry> {
        let device = reg.get("hub-1").expect("get").expect("there");
        seqs.map(|seq| Entry {
            seq,
            reading: Reading {
                device: "hub-1".into(),
                counter: seq as u32,
                device_time: 0,
                received_ms: 1_000 + seq,
                trust: Trust::Sealed,
                report,
            },
            device: device.clone(),
            received_at: None,
        })
        .collect()
    }

    fn registry(dir: &Path) -> Registry {
        let reg = Registry::open(dir).expect("registry");
        reg.provision(&DeviceProfile {
            id: "hub-1".into(),
            kind: DeviceKind::HomeHub,
            site: "s".into(),
            zone: "z".into(),
            subject: None,
            heartbeat_s: None,
            trust: Trust::Sealed,
        })
        .expect("provision");
        reg
    }

    const HB: Report = Report::Heartbeat(Heartbeat { uptime_s: 1 });

    #[test]
    fn durable_before_moves_only_when_lines_are_spooled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = registry(dir.path());
        let m = Arc::new(Metrics::default());
        let (mut f, _sender) = open(&config(3), dir.path(), m.clone()).expect("open");
        assert_eq!(f.durable_before(), 0);
        // Readings without lines are "spooled" at once.
        f.apply(&entries(&reg, 0..2, Report::ConnectionLost));
        assert_eq!(f.durable_before(), 2);
        // Two points pending: not durable yet.
        f.apply(&entries(&reg, 2..4, HB));
        assert_eq!(f.durable_before(), 2);
        assert_eq!(m.export.spool_batches.load(Relaxed), 0);
        // The third closes a batch of three.
        f.apply(&entries(&reg, 4..5, HB));
        assert_eq!(f.durable_before(), 5);
        assert_eq!(m.export.spool_batches.load(Relaxed), 1);
        // One more pending, closed by the flush interval.
        f.apply(&entries(&reg, 5..6, HB));
        assert_eq!(f.durable_before(), 5);
        f.tick(9);
        assert_eq!(f.durable_before(), 5, "not due yet");
        f.flush_interval = Duration::ZERO;
        f.tick(9);
        assert_eq!(f.durable_before(), 6);
        let (id, meta) = f.spool.lock().oldest().expect("batch");
        assert_eq!((meta.seq_start, meta.seq_end, meta.points), (2, 5, 3));
        let body = f.spool.lock().read(id).expect("read");
        assert_eq!(String::from_utf8_lossy(&body).lines().count(), 3);
        drop(f);
        // Restart: the spool's cursor is where replay starts; older entries are ignored.
        let (mut f, _sender) = open(&config(3), dir.path(), m.clone()).expect("reopen");
        assert_eq!(f.durable_before(), 6);
        f.apply(&entries(&reg, 0..7, HB));
        assert_eq!(f.points, 1, "only seq 6 is new");
        assert_eq!(f.durable_before(), 6);
    }

    #[test]
    fn a_missing_token_variable_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = InfluxConfig {
            token_env: Some("LINLI_TEST_SURELY_UNSET_TOKEN".into()),
            ..config(1)
        };
        let e = open(&c, dir.path(), Arc::new(Metrics::default())).expect_err("fails");
        assert!(
            e.to_string().contains("LINLI_TEST_SURELY_UNSET_TOKEN"),
            "{e}"
        );
    }
}
