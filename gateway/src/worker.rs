//! The ingest worker: takes batches of [`Inbound`] items — broker messages, which it
//! admits, and readings the Modbus poller took — journals the new readings in one group
//! commit, then updates device views and hands the acks to the acker, which seals and
//! publishes them (polled readings have nobody to ack).
//!
//! Owns the order "journal, then ack" and rejection accounting (counted always, logged
//! at most once per device per interval). Runs on its own thread because journal commits
//! block; it never holds up the broker link (the link reader only enqueues). The acker
//! runs on another thread so sealing acks overlaps with the next batch.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::local::LinkTx;
use tokio::sync::mpsc;

use crate::follow::{self, Entry};
use crate::ingest::{self, Admitted, Policy, Rejected, Windows};
use crate::journal::Journal;
use crate::pipeline::Shared;
use crate::reading::Inbound;
use crate::registry::DeviceRecord;

/// Rate limiter for rejection log lines: one per device per interval, with a count of
/// what was suppressed in between.
#[derive(Debug)]
struct RejectionLog {
    interval: Duration,
    last: HashMap<String, (Instant, u64)>,
}

impl RejectionLog {
    fn note(&mut self, r: &Rejected, now: Instant) {
        // Ids of unregistered devices are chosen by the sender: log them under one key
        // so a flood of made-up ids cannot grow this map.
        let key = match (&r.device, r.reason) {
            (Some(d), reason) if reason != ingest::Rejection::UnknownDevice => d.clone(),
            _ => "(unregistered)".to_owned(),
        };
        if self.last.len() >= 10_000 && !self.last.contains_key(&key) {
            self.last
                .retain(|_, (t, _)| now.duration_since(*t) < self.interval);
            if self.last.len() >= 10_000 {
                self.last.clear();
            }
        }
        match self.last.get_mut(&key) {
            Some((t, suppressed)) if now.duration_since(*t) < self.interval => *suppressed += 1,
            entry => {
                let suppressed = entry.map(|(_, s)| *s).unwrap_or(0);
                tracing::warn!(
                    device = %key,
                    reason = r.reason.as_str(),
                    suppressed_since_last_log = suppressed,
                    hint = r.reason.hint(),
                    "message rejected"
                );
                self.last.insert(key, (now, 0));
            }
        }
    }
}

/// An ack to send: the device and the journaled counter.
pub type Ack = (Arc<DeviceRecord>, u32);

/// What the gateway publishes to devices.
#[derive(Debug)]
pub enum Outgoing {
    /// Acks of one committed batch.
    Acks(Vec<Ack>),
    /// A sealed settings or command frame (see [`crate::downlink`]).
    Frame {
        /// Its topic.
        topic: String,
        /// The sealed frame.
        payload: Vec<u8>,
    },
}

/// Seals and publishes acks, batch by batch, in commit order, and the downlink frames
/// handed to it, until every sender is gone.
pub fn run_acker(
    mut link_tx: LinkTx,
    rx: std::sync::mpsc::Receiver<Outgoing>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    while let Ok(out) = rx.recv() {
        match out {
            Outgoing::Acks(batch) => {
                for (device, counter) in batch {
                    let (topic, payload) = ingest::ack(&device, counter);
                    match link_tx.publish(topic, payload) {
                        Ok(_) => {
                            metrics.acks_sent.fetch_add(1, Relaxed);
                        }
                        Err(e) => tracing::error!(error = %e, "cannot publish ack to the broker"),
                    }
                }
            }
            Outgoing::Frame { topic, payload } => {
                if let Err(e) = link_tx.publish(topic.clone(), payload) {
                    tracing::error!(error = %e, %topic, "cannot publish downlink to the broker");
                }
            }
        }
    }
}

/// Everything the worker thread owns.
pub struct Worker {
    /// Shared state and metrics.
    pub shared: Arc<Shared>,
    /// The journal.
    pub journal: Journal,
    /// Replay windows, rebuilt from the journal.
    pub windows: Windows,
    /// Acks of each committed batch, to the acker.
    pub acks: std::sync::mpsc::Sender<Outgoing>,
    /// Incoming messages.
    pub rx: mpsc::Receiver<Inbound>,
    /// Stages that consume committed readings (store, export).
    pub followers: Vec<follow::Handle>,
    /// Where the replay windows are checkpointed, and how often.
    pub checkpoint: (std::path::PathBuf, Duration),
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// Runs until the queue closes or the journal fails.
    pub fn run(mut self) {
        let cfg = &self.shared.config.ingest;
        let policy = Policy {
            max_message_bytes: cfg.max_message_bytes,
            accept_json: cfg.accept_json,
        };
        let max_batch = cfg.max_batch;
        let mut log = RejectionLog {
            interval: Duration::from_secs(cfg.rejection_log_interval_s),
            last: HashMap::new(),
        };
        let metrics = self.shared.metrics.clone();
        metrics.ingest_up.store(1, Relaxed);
        let mut batch: Vec<Inbound> = Vec::with_capacity(max_batch);
        let mut fresh: Vec<Entry> = Vec::with_capacity(max_batch);
        let mut last_checkpoint = Instant::now();
        let mut acks: Vec<Ack> = Vec::with_capacity(max_batch);
        let mut rejected_devices: Vec<String> = Vec::new();
        loop {
            match self.rx.blocking_recv() {
                Some(m) => batch.push(m),
                None => break,
            }
            while self.shared.paused.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            while batch.len() < max_batch {
                match self.rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            metrics.queue_depth.fetch_sub(batch.len() as u64, Relaxed);
            let oldest = batch[0].received_at();
            metrics
                .link_lag_us
                .store(oldest.elapsed().as_micros() as u64, Relaxed);
            let now = Instant::now();
            for item in batch.drain(..) {
                let raw = match item {
                    Inbound::Mqtt(raw) => raw,
                    Inbound::Polled(reading, at) => {
                        let device = match self.shared.registry.get(&reading.device) {
                            Ok(Some(d)) => d,
                            Ok(None) => {
                                metrics.reject(ingest::Rejection::UnknownDevice);
                                continue;
                            }
                            Err(_) => {
                                metrics.reject(ingest::Rejection::RegistryError);
                                continue;
                            }
                        };
                        let seq = match self.journal.append(&reading) {
                            Ok(seq) => seq,
                            Err(e) => return self.fail(e),
                        };
                        fresh.push(Entry {
                            seq,
                            reading,
                            device,
                            received_at: Some(at),
                        });
                        continue;
                    }
                };
                metrics.messages_in.fetch_add(1, Relaxed);
                match ingest::admit(&raw, &self.shared.registry, &mut self.windows, policy) {
                    Ok(Admitted::New(reading, device)) => {
                        if reading.report == linli_protocol::Report::ConnectionLost {
                            metrics.wills.fetch_add(1, Relaxed);
                            tracing::info!(device = %reading.device, "device connection dropped (last will)");
                        }
                        let seq = match self.journal.append(&reading) {
                            Ok(seq) => seq,
                            Err(e) => return self.fail(e),
                        };
                        acks.push((device.clone(), reading.counter));
                        fresh.push(Entry {
                            seq,
                            reading,
                            device,
                            received_at: Some(raw.received_at),
                        });
                    }
                    Ok(Admitted::Duplicate(counter, device)) => {
                        metrics.reject(ingest::Rejection::Replay);
                        rejected_devices.push(device.profile.id.clone());
                        log.note(
                            &Rejected {
                                reason: ingest::Rejection::Replay,
                                device: Some(device.profile.id.clone()),
                            },
                            now,
                        );
                        acks.push((device, counter));
                    }
                    Err(r) => {
                        metrics.reject(r.reason);
                        if let Some(d) = &r.device {
                            rejected_devices.push(d.clone());
                        }
                        log.note(&r, now);
                    }
                }
            }
            if !fresh.is_empty() {
                match self.journal.commit() {
                    Ok(synced) => {
                        metrics
                            .journal_next_seq
                            .store(self.journal.next_seq(), Relaxed);
                        metrics.journal_commits.fetch_add(1, Relaxed);
                        if synced {
                            metrics.journal_fsyncs.fetch_add(1, Relaxed);
                        }
                    }
                    Err(e) => return self.fail(e),
                }
                metrics
                    .journal_lag_us
                    .store(oldest.elapsed().as_micros() as u64, Relaxed);
                metrics
                    .readings_accepted
                    .fetch_add(fresh.len() as u64, Relaxed);
            }
            {
                let mut views = self.shared.views.lock();
                for e in &fresh {
                    views.apply(&e.reading, true);
                }
                for d in rejected_devices.drain(..) {
                    views.rejected(&d);
                }
            }
            if !fresh.is_empty() {
                let batch: follow::Batch = std::mem::take(&mut fresh).into();
                for f in &self.followers {
                    f.send(batch.clone());
                }
            }
            if last_checkpoint.elapsed() >= self.checkpoint.1 {
                self.checkpoint_and_release();
                last_checkpoint = Instant::now();
            }
            if !acks.is_empty() {
                let batch = std::mem::replace(&mut acks, Vec::with_capacity(max_batch));
                if self.acks.send(Outgoing::Acks(batch)).is_err() {
                    tracing::error!("acker stopped: acks can no longer be sent");
                }
            }
        }
        metrics.ingest_up.store(0, Relaxed);
    }

    /// Checkpoints the replay windows, then releases the journal segments that neither
    /// they nor any follower still need. Failures are logged; ingest goes on (the journal
    /// just keeps more).
    fn checkpoint_and_release(&mut self) {
        let seq = self.journal.next_seq();
        if let Err(e) = crate::checkpoint::store(&self.checkpoint.0, &self.windows, seq) {
            tracing::error!(error = %e, "cannot checkpoint replay windows: journal kept");
            return;
        }
        let keep_from = self
            .followers
            .iter()
            .map(|f| f.durable_before())
            .fold(seq, u64::min);
        match self.journal.release_before(keep_from) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(segments = n, keep_from, "journal segments released"),
            Err(e) => tracing::error!(error = %e, "cannot release journal segments"),
        }
    }

    fn fail(self, e: crate::journal::JournalError) {
        self.shared.metrics.ingest_up.store(0, Relaxed);
        tracing::error!(
            error = %e,
            "journal write failed: ingest stopped, nothing more is acked; devices keep their frames. Fix the disk and restart the gateway"
        );
    }
}
