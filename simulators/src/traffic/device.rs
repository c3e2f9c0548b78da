//! One simulated device's life under load: it seals a reading whenever one is due (at
//! its share of the run's rate), holds each until the gateway's application ack comes,
//! resends what it holds after a reconnect or a silence, drops its connection when told
//! (a storm) and comes back after a jittered wait, with backoff while the gateway is
//! away. Frames acked on the connection that sent them give a latency sample (send to
//! ack).
//!
//! Owns the connection loop and the device's counters; does not own the schedule of the
//! run, the gateway or the summary (see the parent module).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::Release};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use linli_protocol::DeviceKind;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, Publish, Subscribe};
use rumqttc::mqttbytes::{Error as MqttError, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::bench_alarms::latency::normal_report;
use crate::corpus::model::Rng;
use crate::device::SimDevice;

/// A device resends what it holds when no ack has come for this long (the firmware's
/// default `resend_ms`; resending sooner only floods a gateway that is catching up).
pub const RESEND_AFTER: Duration = Duration::from_secs(10);
/// Longest wait between connection attempts while the gateway is away.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
const MAX_PACKET: usize = 64 * 1024;

/// Counters shared by every device of a run.
#[derive(Debug, Default)]
pub struct Shared {
    /// Devices with a session up now.
    pub online: AtomicUsize,
    /// Devices that came back after the storm began (each counted once).
    pub returned: AtomicUsize,
    /// Distinct frames sealed.
    pub sealed: AtomicU64,
    /// Frames acked by the gateway.
    pub acked: AtomicU64,
    /// Frames written again (after a reconnect or a silence).
    pub resent: AtomicU64,
    /// Frames held, waiting for their ack (all devices).
    pub waiting: AtomicU64,
    /// Successful connects.
    pub connects: AtomicU64,
    /// Connection attempts that failed (refused, timed out, CONNACK refused).
    pub failed_connects: AtomicU64,
    /// Frames not sealed when due because the device already held `window` frames.
    pub deferred: AtomicU64,
    /// Devices that have seen publishing end (and seal nothing more).
    pub quiet: AtomicUsize,
    /// Send-to-ack latencies, ms, of frames acked on the connection that sent them once.
    pub latencies_ms: Mutex<Vec<f32>>,
}

/// How one device behaves.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What it reports.
    pub kind: DeviceKind,
    /// Readings per second.
    pub per_second: f64,
    /// Reading 0 is due this long after publishing begins (spreads devices over a
    /// period).
    pub phase: Duration,
    /// Publish with QoS 1 (else QoS 0); the application ack is what counts either way.
    pub qos1: bool,
    /// Most frames held unacked; past it, due readings are deferred.
    pub window: usize,
    /// Longest wait before coming back after a storm, s (uniform in [0, jitter]).
    pub jitter_s: f64,
    /// Seed of its jitter.
    pub seed: u64,
    /// A storm makes it drop its connection (else the storm is the gateway going away,
    /// which the device notices by itself).
    pub drop_on_storm: bool,
}

/// What the run tells every device.
#[derive(Debug, Clone)]
pub struct Control {
    /// True while new readings are due (false: only deliver what is held).
    pub publishing: watch::Receiver<bool>,
    /// Bumped when a storm begins: a session lost from then on counts towards
    /// [`Shared::returned`] when it is back.
    pub storm: watch::Receiver<u32>,
    /// True: stop now.
    pub stop: watch::Receiver<bool>,
}

/// What a device ends with.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Device id.
    pub id: String,
    /// Counters it sealed: 1 ..= `last_counter` (0: none).
    pub last_counter: u32,
    /// Counters still waiting for their ack.
    pub waiting: Vec<u32>,
}

struct Held {
    counter: u32,
    first_sent: Option<Instant>,
    last_sent: Option<Instant>,
    connection: u32,
    resent: bool,
}

struct Session {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    number: u32,
}

fn encode(write: impl FnOnce(&mut BytesMut) -> Result<usize, MqttError>) -> Result<BytesMut> {
    let mut b = BytesMut::with_capacity(128);
    write(&mut b).map_err(|e| anyhow::anyhow!("encoding MQTT packet: {e:?}"))?;
    Ok(b)
}

async fn next_packet(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<Packet> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(MqttError::InsufficientBytes(_)) => {
                if rd.read_buf(buf).await? == 0 {
                    bail!("connection closed by the broker");
                }
            }
            Err(e) => bail!("malformed MQTT from the broker: {e:?}"),
        }
    }
}

/// CONNECT, CONNACK, SUBSCRIBE to the ack topic, SUBACK.
async fn open(addr: SocketAddr, dev: &SimDevice, number: u32) -> Result<Session> {
    let stream = TcpStream::connect(addr).await.context("TCP connect")?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    let mut connect = Connect::new(dev.id.as_str());
    connect.keep_alive = 600;
    connect.set_login(dev.id.as_str(), dev.password.as_str());
    wr.write_all(&encode(|b| connect.write(b))?).await?;
    match next_packet(&mut rd, &mut buf).await? {
        Packet::ConnAck(a) if a.code == ConnectReturnCode::Success => {}
        p => bail!("CONNECT refused: {p:?}"),
    }
    let mut s = Subscribe::new(dev.ack_topic(), QoS::AtMostOnce);
    s.pkid = 1;
    wr.write_all(&encode(|b| s.write(b))?).await?;
    loop {
        if let Packet::SubAck(_) = next_packet(&mut rd, &mut buf).await? {
            break;
        }
    }
    Ok(Session {
        rd,
        wr,
        buf,
        number,
    })
}

/// The device's state between connections.
struct Life {
    dev: SimDevice,
    plan: Plan,
    topic: String,
    held: VecDeque<Held>,
    next_reading: u64,
    start: Option<Instant>,
    pkid: u16,
    rng: Rng,
}

impl Life {
    /// When reading `k` is due; `None` before publishing began.
    fn due_at(&self, k: u64) -> Option<Instant> {
        Some(self.start? + Duration::from_secs_f64(k as f64 / self.plan.per_second))
    }

    fn publish_bytes(&mut self, counter: u32) -> Result<BytesMut> {
        let report = normal_report(self.plan.kind, counter as usize);
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let frame = self.dev.seal_with(counter, now_s, report);
        let (qos, pkid) = if self.plan.qos1 {
            self.pkid = self.pkid.checked_add(1).unwrap_or(1);
            (QoS::AtLeastOnce, self.pkid)
        } else {
            (QoS::AtMostOnce, 0)
        };
        let mut p = Publish::new(self.topic.as_str(), qos, frame);
        p.pkid = pkid;
        encode(|b| p.write(b))
    }

    fn jitter(&mut self) -> Duration {
        Duration::from_secs_f64(self.rng.unit() * self.plan.jitter_s.max(0.0))
    }
}

/// Runs one device until `ctl.stop`; connects first when `gate` lets it.
pub async fn run(
    dev: SimDevice,
    addr: SocketAddr,
    plan: Plan,
    mut ctl: Control,
    shared: &Shared,
    gate: &tokio::sync::Semaphore,
) -> Result<Outcome> {
    let topic = dev.topic_for(&normal_report(plan.kind, 0));
    let rng = Rng::new(plan.seed);
    let mut life = Life {
        dev,
        plan,
        topic,
        held: VecDeque::new(),
        next_reading: 0,
        start: None,
        pkid: 0,
        rng,
    };
    let mut session: Option<Session> = None;
    let mut connections = 0u32;
    let mut retry_at = Instant::now();
    let mut backoff = Duration::from_millis(500);
    // A device counts as returned once it is back after losing a session in a storm.
    let mut lost_in_storm = false;
    let mut latencies: Vec<f32> = Vec::new();
    let mut last_ack = Instant::now();
    let mut resend = tokio::time::interval(RESEND_AFTER / 2);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet = false;
    // Counted in `Shared::returned` (once, however often it drops again).
    let mut returned = false;
    let mut stopping = *ctl.stop.borrow();
    while !stopping {
        if session.is_none() && Instant::now() >= retry_at {
            let permit = if connections == 0 {
                Some(gate.acquire().await?)
            } else {
                None
            };
            let attempt = tokio::time::timeout(
                Duration::from_secs(10),
                open(addr, &life.dev, connections + 1),
            )
            .await;
            drop(permit);
            match attempt {
                Ok(Ok(mut s)) => {
                    connections += 1;
                    backoff = Duration::from_millis(500);
                    shared.connects.fetch_add(1, Relaxed);
                    shared.online.fetch_add(1, Relaxed);
                    if lost_in_storm && !returned {
                        shared.returned.fetch_add(1, Relaxed);
                        returned = true;
                    }
                    lost_in_storm = false;
                    // Deliver what was held while away, oldest first.
                    if deliver_held(&mut life, &mut s, shared).await.is_ok() {
                        session = Some(s);
                        last_ack = Instant::now();
                    } else {
                        shared.online.fetch_sub(1, Relaxed);
                        lost_in_storm = *ctl.storm.borrow() > 0;
                        retry_at = Instant::now() + life.jitter();
                    }
                }
                _ => {
                    shared.failed_connects.fetch_add(1, Relaxed);
                    retry_at = Instant::now() + backoff / 2 + backoff.mul_f64(life.rng.unit());
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        }
        let publishing = *ctl.publishing.borrow();
        if publishing && life.start.is_none() {
            life.start = Some(Instant::now() + life.plan.phase);
        }
        if !publishing && life.start.is_some() && !quiet {
            // Whatever it sealed is counted in `waiting` by now.
            quiet = true;
            shared.quiet.fetch_add(1, Release);
        }
        let can_seal = publishing && life.held.len() < life.plan.window;
        let due = life.due_at(life.next_reading).unwrap_or_else(Instant::now);
        let connected = session.is_some();
        let mut lost = false;
        tokio::select! {
            r = async {
                match session.as_mut() {
                    Some(s) => s.rd.read_buf(&mut s.buf).await,
                    None => std::future::pending().await,
                }
            } => {
                match (r, session.as_mut()) {
                    (Ok(n), Some(s)) if n > 0 => match read_acks(&mut life, s, shared, &mut latencies) {
                        Ok(0) => {}
                        Ok(_) => last_ack = Instant::now(),
                        Err(e) => {
                            tracing::warn!(device = %life.dev.id, error = %e, "dropping the connection");
                            lost = true;
                        }
                    },
                    _ => lost = true,
                }
            }
            _ = tokio::time::sleep_until(due), if can_seal => {
                // Every reading due by now (a catch-up after a stall), up to the window.
                while life.due_at(life.next_reading).is_some_and(|t| t <= Instant::now())
                    && life.held.len() < life.plan.window
                {
                    life.next_reading += 1;
                    let counter = life.dev.counter;
                    life.dev.counter += 1;
                    shared.sealed.fetch_add(1, Relaxed);
                    shared.waiting.fetch_add(1, Relaxed);
                    let mut held = Held { counter, first_sent: None, last_sent: None, connection: 0, resent: false };
                    if let Some(s) = session.as_mut() {
                        let bytes = life.publish_bytes(counter)?;
                        if write(&mut s.wr, &bytes).await.is_err() {
                            lost = true;
                        } else {
                            held.first_sent = Some(Instant::now());
                            held.last_sent = held.first_sent;
                            held.connection = s.number;
                        }
                    }
                    life.held.push_back(held);
                    if lost {
                        break;
                    }
                }
            }
            _ = tokio::time::sleep_until(due), if publishing && !can_seal => {
                // The device's outbox is full: this reading is not taken.
                life.next_reading += 1;
                shared.deferred.fetch_add(1, Relaxed);
            }
            _ = tokio::time::sleep_until(retry_at), if !connected => {}
            _ = resend.tick(), if connected && !life.held.is_empty() => {
                // Silence: the oldest held frame went out a while ago and no ack
                // came since.
                let oldest = life.held.front().and_then(|h| h.last_sent);
                if last_ack.elapsed() >= RESEND_AFTER
                    && oldest.is_some_and(|t| t.elapsed() >= RESEND_AFTER)
                {
                    if let Some(s) = session.as_mut() {
                        lost = deliver_held(&mut life, s, shared).await.is_err();
                    }
                    last_ack = Instant::now();
                }
            }
            r = ctl.storm.changed() => {
                if r.is_ok() && life.plan.drop_on_storm && session.is_some() {
                    // Drop the connection as a dead access point would: no DISCONNECT.
                    session = None;
                    shared.online.fetch_sub(1, Relaxed);
                    lost_in_storm = true;
                    retry_at = Instant::now() + life.jitter();
                }
            }
            r = ctl.stop.changed() => stopping = r.is_err() || *ctl.stop.borrow(),
            _ = ctl.publishing.changed() => {}
        }
        if lost && session.take().is_some() {
            shared.online.fetch_sub(1, Relaxed);
            lost_in_storm = *ctl.storm.borrow() > 0;
            // The gateway went away: every device would retry at once; jitter first.
            retry_at = Instant::now() + life.jitter().max(Duration::from_millis(100));
        }
    }
    if session.take().is_some() {
        shared.online.fetch_sub(1, Relaxed);
    }
    shared
        .latencies_ms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(latencies);
    Ok(Outcome {
        id: life.dev.id.clone(),
        last_counter: life.dev.counter.saturating_sub(1),
        waiting: life.held.iter().map(|h| h.counter).collect(),
    })
}

/// Writes `bytes`, or fails when the peer has not taken them within [`RESEND_AFTER`] (a
/// gateway that stopped reading must not hang the device, or the run's stop).
async fn write(wr: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<()> {
    match tokio::time::timeout(RESEND_AFTER, wr.write_all(bytes)).await {
        Ok(r) => Ok(r?),
        Err(_) => bail!("the gateway took no data for {RESEND_AFTER:?}"),
    }
}

/// Writes every held frame on `s`, oldest first; frames written before count as resent.
async fn deliver_held(life: &mut Life, s: &mut Session, shared: &Shared) -> Result<()> {
    let mut wire = BytesMut::new();
    let counters: Vec<u32> = life.held.iter().map(|h| h.counter).collect();
    for c in counters {
        wire.extend_from_slice(&life.publish_bytes(c)?);
    }
    write(&mut s.wr, &wire).await?;
    let now = Instant::now();
    for h in life.held.iter_mut() {
        h.last_sent = Some(now);
        if h.first_sent.is_some() {
            h.resent = true;
            shared.resent.fetch_add(1, Relaxed);
        } else {
            h.first_sent = Some(now);
            h.connection = s.number;
        }
    }
    Ok(())
}

/// Handles every whole packet in `s.buf`: application acks release held frames. Returns
/// how many frames were acked.
fn read_acks(
    life: &mut Life,
    s: &mut Session,
    shared: &Shared,
    lat: &mut Vec<f32>,
) -> Result<usize> {
    let mut n = 0;
    loop {
        let p = match Packet::read(&mut s.buf, MAX_PACKET) {
            Ok(p) => p,
            Err(MqttError::InsufficientBytes(_)) => return Ok(n),
            Err(e) => bail!("malformed MQTT from the broker: {e:?}"),
        };
        let Packet::Publish(p) = p else { continue };
        let Some(counter) = life.dev.open_ack(&p.payload) else {
            continue;
        };
        let Some(i) = life.held.iter().position(|h| h.counter == counter) else {
            continue; // a second ack for a resent frame
        };
        if let Some(h) = life.held.remove(i) {
            n += 1;
            shared.acked.fetch_add(1, Relaxed);
            shared.waiting.fetch_sub(1, Relaxed);
            if let (false, Some(t), true) = (h.resent, h.first_sent, h.connection == s.number) {
                lat.push(t.elapsed().as_secs_f32() * 1000.0);
            }
        }
    }
}
