//! The export's HTTP side: a tokio task that sends spooled batches to InfluxDB, oldest
//! first, with `influxdb2`'s `write_line_protocol` at millisecond precision.
//!
//! Owns the retry policy: every call bounded by `tokio::time::timeout`; timeouts,
//! network errors, 5xx and 429 retried with exponential backoff and jitter (never a hot
//! loop); 401/403/404 (token, org or bucket wrong: every batch would fail alike) held and
//! retried the same way with an error naming the setting; any other 4xx sets the batch
//! aside in `rejected/` and goes on. A batch file is deleted only after a 2xx. Does not
//! own the spool's files or encoding.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use influxdb2::api::write::TimestampPrecision;
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{watch, Notify};

use super::spool::{BatchMeta, Spool, SpoolError};
use crate::metrics::Metrics;

/// What to do with a batch after a write attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it (2xx): delete it.
    Sent,
    /// A passing failure (timeout, network, 5xx, 429): try again after a backoff.
    Retry(String),
    /// The server cannot take any batch as configured (401, 403, 404): keep it, back
    /// off, and tell the operator which setting to fix.
    Misconfigured(String),
    /// The server refuses this batch (other 4xx): set it aside and go on.
    SetAside(String),
}

/// Classifies an HTTP status and the server's message.
pub fn classify_status(status: u16, text: &str) -> Outcome {
    let why = format!("HTTP {status}: {}", text.trim());
    match status {
        200..=299 => Outcome::Sent,
        429 | 500..=599 => Outcome::Retry(why),
        401 | 403 | 404 => Outcome::Misconfigured(why),
        400..=499 => Outcome::SetAside(why),
        // 1xx/3xx are not answers to a write: treat as passing trouble.
        _ => Outcome::Retry(why),
    }
}

/// Classifies the result of one bounded write call.
pub fn classify(
    r: Result<Result<(), influxdb2::RequestError>, tokio::time::error::Elapsed>,
) -> Outcome {
    match r {
        Ok(Ok(())) => Outcome::Sent,
        Ok(Err(influxdb2::RequestError::Http { status, text })) => {
            classify_status(status.as_u16(), &text)
        }
        Ok(Err(e)) => Outcome::Retry(e.to_string()),
        Err(_) => Outcome::Retry("timed out".into()),
    }
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling from
/// `min` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The next delay.
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=d - half)
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Sends the spool. Built by [`super::open`]; run with [`Sender::run`].
#[derive(Debug)]
pub struct Sender {
    pub(super) client: influxdb2::Client,
    pub(super) org: String,
    pub(super) bucket: String,
    pub(super) timeout: Duration,
    pub(super) backoff: Backoff,
    pub(super) spool: Arc<Mutex<Spool>>,
    pub(super) wake: Arc<Notify>,
    pub(super) metrics: Arc<Metrics>,
}

/// Runs a spool operation off the async threads (it may wait on a fsync).
async fn on_spool<T: Send + 'static>(
    spool: &Arc<Mutex<Spool>>,
    f: impl FnOnce(&mut Spool) -> T + Send + 'static,
) -> Option<T> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || f(&mut spool.lock()))
        .await
        .ok()
}

enum Next {
    Batch(u64, BatchMeta, Result<Vec<u8>, SpoolError>),
    Empty,
}

impl Sender {
    /// Sends until `stop` turns true (or its sender goes away). Unsent batches stay in
    /// the spool for the next start.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut current: Option<(u64, Bytes)> = None;
        let mut failing = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let cached = current.as_ref().map(|(id, _)| *id);
            let next = on_spool(&self.spool, move |s| match s.oldest() {
                None => Next::Empty,
                Some((id, m)) if Some(id) == cached => Next::Batch(id, m, Ok(Vec::new())),
                Some((id, m)) => Next::Batch(id, m, s.read(id)),
            })
            .await;
            let (id, meta, body) = match next {
                None => {
                    tracing::error!(
                        "export spool task failed: the InfluxDB export stops; restart the gateway"
                    );
                    self.metrics.export.up.store(0, Relaxed);
                    return;
                }
                Some(Next::Empty) => {
                    current = None;
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
                Some(Next::Batch(id, meta, Ok(bytes))) => {
                    if current.as_ref().is_none_or(|(c, _)| *c != id) {
                        current = Some((id, Bytes::from(bytes)));
                    }
                    let body = current.as_ref().map(|(_, b)| b.clone()).unwrap_or_default();
                    (id, meta, body)
                }
                Some(Next::Batch(id, _, Err(e @ SpoolError::Corrupt { .. }))) => {
                    let reason = e.to_string();
                    tracing::error!(batch = id, error = %e, "export batch unreadable: set aside in rejected/");
                    self.metrics.export.batches_rejected.fetch_add(1, Relaxed);
                    on_spool(&self.spool, move |s| s.set_aside(id, &reason)).await;
                    continue;
                }
                Some(Next::Batch(id, _, Err(e))) => {
                    tracing::error!(batch = id, error = %e, "cannot read export batch; retrying. Check the disk");
                    if self.pause(&mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            let write = self.client.write_line_protocol_with_precision(
                &self.org,
                &self.bucket,
                body,
                TimestampPrecision::Milliseconds,
            );
            let result = tokio::select! {
                r = tokio::time::timeout(self.timeout, write) => r,
                _ = stop.changed() => return,
            };
            match classify(result) {
                Outcome::Sent => {
                    current = None;
                    self.backoff.reset();
                    let m = &self.metrics.export;
                    m.points_sent.fetch_add(u64::from(meta.points), Relaxed);
                    m.batches_sent.fetch_add(1, Relaxed);
                    m.up.store(1, Relaxed);
                    if failing > 0 {
                        tracing::info!(failed_attempts = failing, "InfluxDB export recovered");
                        failing = 0;
                    }
                    if let Some(Err(e)) = on_spool(&self.spool, move |s| s.remove(id)).await {
                        tracing::error!(error = %e, "cannot delete a sent export batch; it will be sent again");
                    }
                }
                Outcome::SetAside(why) => {
                    current = None;
                    self.metrics.export.batches_rejected.fetch_add(1, Relaxed);
                    self.metrics.export.up.store(1, Relaxed);
                    tracing::error!(
                        batch = id,
                        points = meta.points,
                        seq_start = meta.seq_start,
                        seq_end = meta.seq_end,
                        server = %why,
                        "InfluxDB refused an export batch: set aside in the spool's rejected/ directory with the reason; later batches go on. Inspect it, fix the cause, and re-send it by hand if needed"
                    );
                    let reason = why.clone();
                    if let Some(Err(e)) =
                        on_spool(&self.spool, move |s| s.set_aside(id, &reason)).await
                    {
                        tracing::error!(error = %e, "cannot set the refused export batch aside; check the disk");
                        if self.pause(&mut stop).await {
                            return;
                        }
                    }
                }
                Outcome::Retry(why) => {
                    failing += 1;
                    self.metrics.export.retries.fetch_add(1, Relaxed);
                    self.metrics.export.up.store(0, Relaxed);
                    tracing::warn!(
                        batch = id,
                        attempt = failing,
                        error = %why,
                        "InfluxDB write failed; retrying with backoff (readings wait in the spool). Check that the server at export.influxdb.url is up and reachable"
                    );
                    if self.pause(&mut stop).await {
                        return;
                    }
                }
                Outcome::Misconfigured(why) => {
                    failing += 1;
                    self.metrics.export.retries.fetch_add(1, Relaxed);
                    self.metrics.export.up.store(0, Relaxed);
                    tracing::error!(
                        batch = id,
                        attempt = failing,
                        server = %why,
                        "InfluxDB refuses every write: check export.influxdb.token (or token_env), org and bucket. Batches wait in the spool and are retried"
                    );
                    if self.pause(&mut stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits one backoff delay; true when stopped meanwhile.
    async fn pause(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let d = self.backoff.delay();
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = stop.changed() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_spool_does() {
        assert_eq!(classify_status(204, ""), Outcome::Sent);
        assert_eq!(classify_status(200, ""), Outcome::Sent);
        assert!(matches!(classify_status(503, "busy"), Outcome::Retry(w) if w.contains("busy")));
        assert!(matches!(classify_status(429, ""), Outcome::Retry(_)));
        assert!(matches!(
            classify_status(401, ""),
            Outcome::Misconfigured(_)
        ));
        assert!(matches!(
            classify_status(404, "bucket not found"),
            Outcome::Misconfigured(_)
        ));
        assert!(
            matches!(classify_status(400, "unable to parse"), Outcome::SetAside(w) if w == "HTTP 400: unable to parse")
        );
        assert!(matches!(classify_status(413, ""), Outcome::SetAside(_)));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut bound = 100;
        for _ in 0..8 {
            let d = b.delay().as_millis() as u64;
            assert!(
                d >= bound / 2 && d <= bound,
                "{d} not in [{}, {bound}]",
                bound / 2
            );
            bound = (bound * 2).min(1000);
        }
        b.reset();
        assert!(b.delay() <= Duration::from_millis(100));
    }
}
