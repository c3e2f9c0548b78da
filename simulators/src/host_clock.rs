//! The embassy-time clock of the simulator process, which minimq's timers (keep-alive,
//! round trips) run on in the host boards: real time in microseconds, and a timer
//! queue without a size limit served by one thread.
//!
//! embassy-time's own std driver keeps a fixed queue (8 to 128 timers) and, when it is
//! full, wakes one early to make room; with more boards than slots every board's
//! keep-alive timer kept evicting another's (a fleet of 140 devices spent about 1.8
//! cores waking itself). Here every pending wake-up waits for its time, at most once per
//! waker and instant.
//!
//! Owns the clock and the queue; does not own what waits on them.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use embassy_time_driver::Driver;

/// The clock: ticks are microseconds since the first reading (`tick-hz-1_000_000`).
#[derive(Debug)]
struct HostClock {
    start: OnceLock<Instant>,
    /// Wakers by the tick they are due at.
    queue: Mutex<BTreeMap<u64, Vec<Waker>>>,
    /// Signalled when a wake-up earlier than every other is queued.
    earlier: Condvar,
    thread: OnceLock<()>,
}

embassy_time_driver::time_driver_impl!(static CLOCK: HostClock = HostClock {
    start: OnceLock::new(),
    queue: Mutex::new(BTreeMap::new()),
    earlier: Condvar::new(),
    thread: OnceLock::new(),
});

impl HostClock {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Vec<Waker>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes what is due, then sleeps until the next is (or an earlier one is queued).
    fn serve(&self) {
        let mut queue = self.lock();
        loop {
            let now = self.now();
            let mut due = Vec::new();
            while let Some(first) = queue.first_entry() {
                if *first.key() > now {
                    break;
                }
                due.extend(first.remove());
            }
            if !due.is_empty() {
                // Wake outside the lock: a woken task may queue its next wake-up.
                drop(queue);
                due.into_iter().for_each(Waker::wake);
                queue = self.lock();
                continue;
            }
            queue = match queue.keys().next().copied() {
                Some(at) => {
                    let wait = Duration::from_micros(at.saturating_sub(now));
                    match self.earlier.wait_timeout(queue, wait) {
                        Ok((q, _)) => q,
                        Err(p) => p.into_inner().0,
                    }
                }
                None => self.earlier.wait(queue).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

impl Driver for HostClock {
    fn now(&self) -> u64 {
        self.start.get_or_init(Instant::now).elapsed().as_micros() as u64
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        self.thread.get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("host-clock".into())
                .spawn(|| CLOCK.serve());
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the host clock: firmware timers will not fire");
            }
        });
        let mut queue = self.lock();
        let earliest = queue.keys().next().is_none_or(|first| at < *first);
        let wakers = queue.entry(at).or_default();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        drop(queue);
        if earliest {
            self.earlier.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn embassy_timers_fire_on_time_however_many_wait() {
        // More timers than embassy-time's largest fixed queue holds (128).
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..300u64 {
            set.spawn(async move {
                embassy_time::Timer::after_millis(50 + i % 50).await;
                Instant::now()
            });
        }
        let mut n = 0;
        while let Some(done) = set.join_next().await {
            let at = done.expect("joined") - start;
            assert!(at >= Duration::from_millis(50), "early: {at:?}");
            n += 1;
        }
        assert_eq!(n, 300);
        // Not a timing test: only that nothing waited for ever.
        assert!(start.elapsed() < Duration::from_secs(60));
    }
}
