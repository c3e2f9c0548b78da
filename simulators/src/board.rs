//! A device board on the host: runs a firmware [`Device`] (the real application loop,
//! node and outbox from `linli-firmware`) with the firmware's MQTT client (minimq) over a
//! tokio TCP socket, at real or accelerated device time.
//!
//! Owns the event loop a board's executor would run: the step timer, the socket, keep-
//! alive through minimq, reconnects paced by the node's backoff. Does not own device logic
//! (the firmware crate) or what the sensors read (the caller's sensor implementation).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use linli_firmware::app::{Application, Device};
use linli_firmware::mqtt::{self, MqttPublisher};
use linli_firmware::node::FrameBuf;
use linli_firmware::outbox::Priority;
use linli_firmware::publish::{flush, Publisher};
use linli_protocol::Header;
use minimq::{Buffers, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A tokio TCP stream as the `embedded-io-async` byte stream minimq drives.
#[derive(Debug)]
pub struct TokioIo(pub TcpStream);

impl embedded_io_async::ErrorType for TokioIo {
    type Error = std::io::Error;
}

impl embedded_io_async::Read for TokioIo {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf).await
    }
}

impl embedded_io_async::Write for TokioIo {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().await
    }
}

/// Where and how a board runs.
#[derive(Debug, Clone)]
pub struct Board {
    /// The gateway's MQTT 5 listener.
    pub broker: SocketAddr,
    /// The device's MQTT password.
    pub password: String,
    /// MQTT keep-alive, s.
    pub keepalive_s: u16,
    /// Device time between loop steps, ms (10 = a 100 Hz accelerometer).
    pub step_ms: u64,
    /// Device time runs this many times faster than real time.
    pub speed: u32,
}

/// What the board's device is doing, published after every step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Device time, ms since boot.
    pub now_ms: u64,
    /// An MQTT session is up.
    pub connected: bool,
    /// Successful connects since boot.
    pub connects: u32,
    /// Frames waiting for their ack.
    pub outbox: usize,
    /// Of which alarms.
    pub alarms: usize,
    /// Frames acked by the gateway.
    pub acked: u32,
    /// Entries evicted from the outbox for newer or more important ones.
    pub evicted: u32,
    /// Reports refused by a full outbox.
    pub refused: u32,
    /// The next frame counter.
    pub counter: u32,
    /// What the board's flash holds: the counter a reboot continues from.
    pub saved_counter: u32,
}

/// One frame handed to the MQTT client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Which connection (1 = the first) it went out on.
    pub connection: u32,
    /// Its counter.
    pub counter: u32,
    /// Alarm or telemetry.
    pub priority: Priority,
}

/// Channels a running board reports on.
#[derive(Debug)]
pub struct Observers {
    /// The latest [`Snapshot`].
    pub status: watch::Sender<Snapshot>,
    /// Every frame sent, in order.
    pub sent: mpsc::UnboundedSender<Sent>,
}

struct Clock {
    start: Instant,
    speed: u32,
}

impl Clock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 * u64::from(self.speed)
    }

    fn real(&self, device_ms: u64) -> Duration {
        Duration::from_millis((device_ms / u64::from(self.speed.max(1))).max(1))
    }
}

fn snapshot<A: Application, const N: usize, const K: usize>(
    dev: &Device<'_, A, N, K>,
    now_ms: u64,
    connected: bool,
    connects: u32,
    saved_counter: u32,
) -> Snapshot {
    let o = dev.node.outbox();
    let s = dev.node.outbox_stats();
    Snapshot {
        now_ms,
        connected,
        connects,
        outbox: o.len(),
        alarms: o.alarms(),
        acked: s.acked,
        evicted: s.evicted,
        refused: dev.node.stats().reports_refused,
        counter: dev.node.counter(),
        saved_counter,
    }
}

/// How often a board's host loop wakes, at most (real time).
const HOST_TICK: Duration = Duration::from_millis(20);

/// The device's steps: one every `step_ms` of device time, as its timer would fire on a
/// board, however the host's ticks fall. A tick that spans several steps runs them all
/// (at 20x a 1 ms tick spans two 10 ms steps), so a 100 Hz accelerometer is sampled 100
/// times a device second at any speed; a host too far behind skips ahead instead.
struct Steps {
    next_ms: u64,
    step_ms: u64,
    /// Most steps one tick catches up: twice a tick's worth, and 200 at least.
    max_catch_up: u64,
}

impl Steps {
    /// Steps of `step_ms` for a host waking every `tick_device_ms` of device time.
    fn new(step_ms: u64, tick_device_ms: u64) -> Self {
        let step_ms = step_ms.max(1);
        Steps {
            next_ms: 0,
            step_ms,
            max_catch_up: (2 * tick_device_ms.div_ceil(step_ms)).max(200),
        }
    }

    /// Runs `step` for every step due by `now_ms`, each at its own device time.
    fn until(&mut self, now_ms: u64, mut step: impl FnMut(u64)) {
        let mut n = 0;
        while self.next_ms <= now_ms && n < self.max_catch_up {
            step(self.next_ms);
            self.next_ms += self.step_ms;
            n += 1;
        }
        if self.next_ms <= now_ms {
            // The host stalled: skip ahead rather than replay seconds at once.
            self.next_ms = now_ms + self.step_ms;
        }
    }
}

/// Runs the future `make` builds on a thread of its own, with a current-thread runtime:
/// firmware futures are not `Send` (one core, one executor), so a board gets a thread.
pub fn spawn<F, Fut>(make: F) -> std::thread::JoinHandle<Result<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(make())
    })
}

/// Runs `dev` until `stop` turns true: steps it every `step_ms` of device time,
/// connects to the broker (again and again, paced by the node's backoff), publishes due
/// frames and hands every downlink to the device.
pub async fn run<A: Application, const N: usize, const K: usize>(
    board: &Board,
    dev: &mut Device<'_, A, N, K>,
    sensors: &mut A::Sensors,
    obs: &Observers,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    // Before the first step: what the board's flash holds at boot.
    obs.status
        .send_replace(snapshot(dev, 0, false, 0, dev.node.counter()));
    let clock = Clock {
        start: Instant::now(),
        speed: board.speed.max(1),
    };
    let id = dev.node.id().to_owned();
    let (mut rx, mut tx) = ([0u8; 512], [0u8; 1536]);
    let config = mqtt::config(
        Buffers::new(&mut rx, &mut tx),
        &id,
        &board.password,
        board.keepalive_s,
    )
    .map_err(|e| anyhow::anyhow!("MQTT session settings: {e:?}"))?;
    let mut session = Session::new(config);
    let mut connects = 0;
    let mut buf = FrameBuf::default();
    // The board's flash: the counter reserve the node asks to save.
    let mut flash = dev.node.counter();
    // The host wakes at most every HOST_TICK and runs the steps due since (see Steps):
    // each wake re-arms minimq's keep-alive timer (`crate::host_clock`), so waking per
    // 1 ms step at high speed would cost more than the steps.
    let tick_real = clock.real(board.step_ms).max(HOST_TICK);
    let mut tick = tokio::time::interval(tick_real);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut steps = Steps::new(
        board.step_ms,
        tick_real.as_millis() as u64 * u64::from(clock.speed),
    );
    let mut stopping = *stop.borrow();
    while !stopping {
        let conn = async {
            let tcp = TcpStream::connect(board.broker).await?;
            tcp.set_nodelay(true)?;
            session
                .connect(TokioIo(tcp))
                .await
                .map_err(|e| std::io::Error::other(format!("{e:?}")))
        };
        if let Ok(Ok(mut conn)) = tokio::time::timeout(Duration::from_secs(5), conn).await {
            if mqtt::subscribe(&mut conn, &dev.node).await.is_ok() {
                connects += 1;
                dev.node.connected(clock.now_ms());
                loop {
                    tokio::select! {
                        r = conn.poll() => match r {
                            Ok(Some(m)) => {
                                let (topic, mut payload) = (m.topic().to_owned(), m.payload().to_vec());
                                // Refusals are counted in the node's stats.
                                let _ = dev.downlink(0, &topic, &mut payload, sensors);
                            }
                            Ok(None) => {}
                            Err(_) => break,
                        },
                        _ = tick.tick() => {
                            // The device samples at its own pace, not at the network's.
                            let now = clock.now_ms();
                            steps.until(now, |t| dev.step(t, 0, sensors));
                            dev.node.save_counter(|c| {
                                flash = c;
                                true
                            });
                            let mut publisher = Logged {
                                inner: MqttPublisher(&mut conn),
                                counters: Vec::new(),
                            };
                            let flushed = flush(&mut dev.node, now, &mut buf, &mut publisher).await;
                            // The frames just sent are still in the outbox (no ack yet):
                            // tell the observers their priorities.
                            for counter in publisher.counters {
                                let entry = dev.node.outbox().entries().iter().find(|e| e.counter == counter);
                                if let Some(e) = entry {
                                    let _ = obs.sent.send(Sent { connection: connects, counter, priority: e.priority });
                                }
                            }
                            obs.status.send_replace(snapshot(dev, now, true, connects, flash));
                            if flushed.is_err() {
                                break;
                            }
                        }
                        r = stop.changed() => {
                            // A dropped sender stops the board too.
                            stopping = r.is_err() || *stop.borrow();
                            if stopping {
                                break;
                            }
                        }
                    }
                }
            }
        }
        obs.status
            .send_replace(snapshot(dev, clock.now_ms(), false, connects, flash));
        if stopping {
            break;
        }
        // The connection failed or dropped: wait as the node says, sampling meanwhile.
        let until = Instant::now() + clock.real(dev.node.disconnected(clock.now_ms()));
        while Instant::now() < until && !stopping {
            tokio::select! {
                _ = tick.tick() => {
                    let now = clock.now_ms();
                    steps.until(now, |t| dev.step(t, 0, sensors));
                    obs.status.send_replace(snapshot(dev, now, false, connects, flash));
                }
                r = stop.changed() => stopping = r.is_err() || *stop.borrow(),
            }
        }
    }
    Ok(())
}

/// A publisher that notes which frames went out (their counters, read off the clear
/// header) before handing them to the real one.
struct Logged<P> {
    inner: P,
    counters: Vec<u32>,
}

impl<P: Publisher> Publisher for Logged<P> {
    type Error = P::Error;

    async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), Self::Error> {
        self.inner.publish(topic, payload).await?;
        if let Ok(h) = Header::parse(payload) {
            self.counters.push(h.counter);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Steps;

    #[test]
    fn a_tick_runs_every_step_due_each_at_its_own_time_and_a_stall_skips_ahead() {
        let mut s = Steps::new(10, 20);
        let mut at = Vec::new();
        s.until(0, |t| at.push(t));
        s.until(25, |t| at.push(t));
        assert_eq!(at, [0, 10, 20]);
        at.clear();
        s.until(29, |t| at.push(t));
        assert!(at.is_empty(), "nothing due before 30");
        // A 10 s stall: 200 steps at most, then the next step is after now.
        s.until(10_000, |t| at.push(t));
        assert_eq!(at.len(), 200);
        assert_eq!(at[0], 30);
        at.clear();
        s.until(10_005, |t| at.push(t));
        assert!(at.is_empty());
        s.until(10_010, |t| at.push(t));
        assert_eq!(at, [10_010]);
    }

    #[test]
    fn a_fast_host_tick_is_caught_up_whole() {
        // At 500x a 20 ms tick spans 10 s of device time: 1,000 steps, none dropped.
        let mut s = Steps::new(10, 20 * 500);
        let mut n = 0;
        s.until(9_990, |_| n += 1);
        assert_eq!(n, 1_000);
    }
}
