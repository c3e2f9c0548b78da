//! Journal followers: the stages that consume accepted readings after the journal has
//! made them durable (the time-series store, the InfluxDB export, later the rules).
//!
//! Owns the hand-off: each follower runs on its own thread, gets every committed batch
//! in sequence order (and, at start, the journal records it had not yet made durable),
//! and publishes the sequence number below which it no longer needs the journal. Does
//! not own what a follower does with a reading, nor the journal's files.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::reading::Reading;
use crate::registry::DeviceRecord;

/// One journaled reading with the record of the device that sent it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Journal sequence number.
    pub seq: u64,
    /// The reading.
    pub reading: Reading,
    /// The sender as registered (its profile names kind, site, zone, subject).
    pub device: Arc<DeviceRecord>,
    /// When the broker handed it over (live readings only; None when replayed): for
    /// measuring how long a stage took from arrival.
    pub received_at: Option<std::time::Instant>,
}

/// A committed batch, shared by every follower.
pub type Batch = Arc<[Entry]>;

/// A consumer of the journal.
pub trait Follower: Send + 'static {
    /// Name for logs and thread names.
    fn name(&self) -> &'static str;
    /// First journal sequence number this follower has not made durable on its own:
    /// replay at start begins here, and the journal keeps everything from here on.
    fn durable_before(&self) -> u64;
    /// Takes entries in sequence order (replayed ones at start, then committed batches).
    fn apply(&mut self, entries: &[Entry]);
    /// Called at least every [`Follower::tick_interval`] while running (background work:
    /// sealing, flushing, retention, timers). `now_ms` is the wall clock.
    fn tick(&mut self, now_ms: u64);
    /// Called once on the follower's thread when live following begins (after the
    /// start-up replay, before the first live batch).
    fn live(&mut self, _now_ms: u64) {}
    /// How often [`Follower::tick`] runs.
    fn tick_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// The running side of a follower, held by the ingest worker.
#[derive(Debug, Clone)]
pub struct Handle {
    name: &'static str,
    tx: SyncSender<Batch>,
    durable_before: Arc<AtomicU64>,
}

impl Handle {
    /// Hands over a committed batch; waits while the follower is `capacity` batches
    /// behind (back-pressure on ingest, which then stops acking: nothing is dropped).
    pub fn send(&self, batch: Batch) {
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch)) => {
                tracing::debug!(follower = self.name, "follower behind: ingest waits");
                if self.tx.send(batch).is_err() {
                    tracing::error!(follower = self.name, "follower stopped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!(follower = self.name, "follower stopped");
            }
        }
    }

    /// First sequence number the follower still needs from the journal.
    pub fn durable_before(&self) -> u64 {
        self.durable_before.load(Relaxed)
    }

    /// The shared cell `durable_before` reads (for gauges).
    pub fn durable_cursor(&self) -> Arc<AtomicU64> {
        self.durable_before.clone()
    }
}

/// Clears its flag when dropped: when the follower thread ends, panics included.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

/// Starts `follower` on its own thread, taking batches from a queue of `capacity` and
/// ticking every `tick`. `alive` is set now and cleared when the thread ends for any
/// reason (a panic included), for `/healthz`.
pub fn spawn(
    mut follower: Box<dyn Follower>,
    capacity: usize,
    clock: fn() -> u64,
    alive: Arc<AtomicBool>,
) -> std::io::Result<Handle> {
    let tick = follower.tick_interval();
    let (tx, rx) = mpsc::sync_channel::<Batch>(capacity);
    let durable_before = Arc::new(AtomicU64::new(follower.durable_before()));
    let name = follower.name();
    let durable = durable_before.clone();
    alive.store(true, Relaxed);
    let guard = Alive(alive);
    std::thread::Builder::new()
        .name(format!("linli-{name}"))
        .spawn(move || {
            let _alive = guard;
            follower.live(clock());
            let mut last_tick = std::time::Instant::now();
            loop {
                match rx.recv_timeout(tick) {
                    Ok(batch) => follower.apply(&batch),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        follower.tick(clock());
                        durable.store(follower.durable_before(), Relaxed);
                        return;
                    }
                }
                if last_tick.elapsed() >= tick {
                    follower.tick(clock());
                    last_tick = std::time::Instant::now();
                }
                durable.store(follower.durable_before(), Relaxed);
            }
        })?;
    Ok(Handle {
        name,
        tx,
        durable_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panicky;

    impl Follower for Panicky {
        fn name(&self) -> &'static str {
            "panicky"
        }
        fn durable_before(&self) -> u64 {
            0
        }
        fn apply(&mut self, _: &[Entry]) {
            panic!("a follower bug");
        }
        fn tick(&mut self, _: u64) {}
        fn tick_interval(&self) -> Duration {
            Duration::from_millis(10)
        }
    }

    #[test]
    fn a_follower_that_dies_is_seen_as_down() {
        let alive = Arc::new(AtomicBool::new(false));
        let h = spawn(Box::new(Panicky), 1, || 0, alive.clone()).unwrap();
        assert!(alive.load(Relaxed));
        h.send(Arc::from(Vec::new()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive.load(Relaxed) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!alive.load(Relaxed), "the panic cleared the flag");
        h.send(Arc::from(Vec::new())); // logs, does not block or panic
    }
}
