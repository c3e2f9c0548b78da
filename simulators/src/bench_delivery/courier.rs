//! The delivery benchmark's courier: one MQTT connection, on a thread and runtime of its
//! own, that relays the pendants' sealed SOS frames (as a home hub would) at a steady
//! rate, one packet at a time, stamping the monotonic instant just before each leaves.
//!
//! Owns the send side's timestamps; the packets are the run's, the connection
//! [`crate::load`]'s.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::device::SimDevice;
use crate::load::{Conn, Counters};

/// When each SOS left.
#[derive(Debug)]
pub struct Stamps {
    /// Instant 0 of `at_ns` (the receiver's too).
    pub base: Instant,
    /// Alarm `i`'s publish: ns since `base`, plus 1 (0 = not sent yet).
    pub at_ns: Vec<AtomicU64>,
    /// The same moment on the wall clock, µs since the Unix epoch (to compare with the
    /// gateway's millisecond timestamps).
    pub wall_us: Vec<AtomicU64>,
    /// SOS packets written.
    pub sent: AtomicU64,
    /// PUBACKs of them.
    pub counters: Arc<Counters>,
}

impl Stamps {
    /// Stamps for `n` alarms.
    pub fn new(base: Instant, n: usize) -> Stamps {
        let zeros = || (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Stamps {
            base,
            at_ns: zeros(),
            wall_us: zeros(),
            sent: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
        }
    }

    /// When alarm `i` was published, if it was.
    pub fn sent_at(&self, i: usize) -> Option<Instant> {
        match self.at_ns.get(i).map(|a| a.load(Relaxed)) {
            Some(0) | None => None,
            Some(ns) => Some(self.base + Duration::from_nanos(ns - 1)),
        }
    }

    fn stamp(&self, i: usize) {
        let now = Instant::now();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.at_ns[i].store(
            now.saturating_duration_since(self.base).as_nanos() as u64 + 1,
            Relaxed,
        );
        self.wall_us[i].store(wall, Relaxed);
        self.sent.fetch_add(1, Relaxed);
    }
}

/// How the courier sends.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// SOS packets per second.
    pub rate: f64,
    /// When the first is due.
    pub start: Instant,
    /// Most packets awaiting PUBACK.
    pub window: usize,
}

/// The courier's thread; [`Courier::join`] returns the thread's CPU seconds.
#[derive(Debug)]
pub struct Courier {
    thread: JoinHandle<Result<f64>>,
}

impl Courier {
    /// Connects to `mqtt` as `login` (on the courier's own thread) and, once connected,
    /// returns while the thread sends `packets` (alarm `i` = packet `i`) on `schedule`.
    pub fn start(
        mqtt: SocketAddr,
        login: &SimDevice,
        packets: Vec<(String, Vec<u8>)>,
        schedule: Schedule,
        stamps: Arc<Stamps>,
    ) -> Result<Courier> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let login = login.clone();
        let thread = std::thread::Builder::new()
            .name("bench-courier".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let conn = match Conn::open(mqtt, &login.id, Some((&login.id, &login.password)))
                        .await
                    {
                        Ok(c) => {
                            let _ = ready_tx.send(Ok(()));
                            c
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let counters = stamps.counters.clone();
                    conn.publish_timed(
                        &packets,
                        schedule.rate,
                        tokio::time::Instant::from_std(schedule.start),
                        schedule.window,
                        counters,
                        |i| stamps.stamp(i),
                    )
                    .await
                })?;
                crate::bench::cpu_seconds("thread-self")
            })
            .context("starting the courier thread")?;
        ready_rx
            .recv()
            .context("the courier thread ended before connecting")?
            .context("the courier could not connect")?;
        Ok(Courier { thread })
    }

    /// Whether the courier is done (every SOS sent and PUBACKed, or failed).
    pub fn finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the courier; its thread's CPU seconds.
    pub fn join(self) -> Result<f64> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the courier thread panicked"))?
    }
}
