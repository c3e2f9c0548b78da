//! Load generation over raw MQTT 3.1.1 connections: packets are encoded up front with
//! rumqttc's `mqttbytes` codec and written with a QoS1 in-flight window, so the
//! generator spends its CPU on sockets, not on a client library's event loop.
//!
//! Owns connections, publishing with flow control and the counting subscriber. Does not
//! start brokers or decide what to measure (see `bench`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::{Error as MqttError, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const MAX_PACKET: usize = 1 << 20;

/// Counters shared by every connection of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// PUBACKs received by publishers.
    pub pubacks: AtomicU64,
    /// Publishes received (app acks for devices; readings for the subscriber).
    pub received: AtomicU64,
    /// Frames sent again because their application ack did not come.
    pub resent: AtomicU64,
}

/// Reads an application ack and names the index of the frame it acknowledges.
pub type AckReader = Arc<dyn Fn(&[u8]) -> Option<usize> + Send + Sync>;

/// What returns a publisher's in-flight credit.
#[derive(Clone)]
pub enum Credit {
    /// The broker's PUBACK (the message is in the broker's memory).
    PubAck,
    /// The gateway's application ack on `down/ack` (the reading is journaled). Frames
    /// without one after [`RESEND_AFTER`] are sent again, as firmware does.
    AppAck(AckReader),
}

impl std::fmt::Debug for Credit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credit::PubAck => "PubAck",
            Credit::AppAck(_) => "AppAck",
        })
    }
}

/// How long a publisher waits without any new application ack before resending.
pub const RESEND_AFTER: Duration = Duration::from_secs(1);

/// How [`Conn::publish_paced`] spaces its packets.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Packets per second (this connection).
    pub per_second: f64,
    /// Most packets awaiting PUBACK.
    pub window: usize,
    /// When packet 0 is due (shared by every connection of a run).
    pub start: tokio::time::Instant,
    /// Shortest sleep between bursts.
    pub tick: Duration,
}

/// One MQTT connection after CONNACK.
#[derive(Debug)]
pub struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
}

fn encode(write: impl FnOnce(&mut BytesMut) -> Result<usize, MqttError>) -> Result<BytesMut> {
    let mut b = BytesMut::with_capacity(128);
    write(&mut b).map_err(|e| anyhow::anyhow!("encoding MQTT packet: {e:?}"))?;
    Ok(b)
}

/// Reads the broker's side of a publishing connection until `total` PUBACKs came, each
/// returning one unit of `credit` (the in-flight window); counts stray publishes.
async fn read_pubacks(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    total: usize,
    counters: Arc<Counters>,
    credit: Arc<Semaphore>,
) -> Result<()> {
    let mut done = 0usize;
    while done < total {
        match Packet::read(&mut buf, MAX_PACKET) {
            Ok(Packet::PubAck(_)) => {
                counters.pubacks.fetch_add(1, Relaxed);
                done += 1;
                credit.add_permits(1);
            }
            Ok(Packet::Publish(_)) => {
                counters.received.fetch_add(1, Relaxed);
            }
            Ok(_) => {}
            Err(MqttError::InsufficientBytes(_)) => {
                if rd.read_buf(&mut buf).await? == 0 {
                    bail!("connection closed after {done} of {total} PUBACKs");
                }
            }
            Err(e) => bail!("malformed MQTT from the broker: {e:?}"),
        }
    }
    Ok(())
}

impl Conn {
    /// Connects and waits for a successful CONNACK.
    pub async fn open(
        addr: SocketAddr,
        client_id: &str,
        login: Option<(&str, &str)>,
    ) -> Result<Conn> {
        let stream = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr))
            .await
            .context("TCP connect timed out")??;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut c = Conn {
            rd,
            wr,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 600;
        if let Some((u, p)) = login {
            connect.set_login(u, p);
        }
        c.wr.write_all(&encode(|b| connect.write(b))?).await?;
        match tokio::time::timeout(Duration::from_secs(30), c.next()).await {
            Ok(Ok(Packet::ConnAck(a)))
                if a.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success =>
            {
                Ok(c)
            }
            Ok(Ok(p)) => bail!("{client_id}: unexpected reply to CONNECT: {p:?}"),
            Ok(Err(e)) => Err(e.context(format!("{client_id}: connection refused"))),
            Err(_) => bail!("{client_id}: no CONNACK within 30 s"),
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<()> {
        let mut s = Subscribe::new(filter, qos);
        s.pkid = 1;
        self.wr.write_all(&encode(|b| s.write(b))?).await?;
        loop {
            if let Packet::SubAck(_) = self.next().await? {
                return Ok(());
            }
        }
    }

    async fn next(&mut self) -> Result<Packet> {
        loop {
            match Packet::read(&mut self.buf, MAX_PACKET) {
                Ok(p) => return Ok(p),
                Err(MqttError::InsufficientBytes(_)) => {
                    if self.rd.read_buf(&mut self.buf).await? == 0 {
                        bail!("connection closed by the broker");
                    }
                }
                Err(e) => bail!("malformed MQTT from the broker: {e:?}"),
            }
        }
    }

    /// Publishes every payload on `topic` with QoS1, at most `window` unacknowledged,
    /// and returns when all are acknowledged. With [`Credit::AppAck`] a frame counts as
    /// acknowledged when the gateway's application ack arrives (it is journaled), as
    /// firmware does; with [`Credit::PubAck`] when the broker's PUBACK does.
    pub async fn publish_all(
        self,
        topic: &str,
        payloads: &[Vec<u8>],
        window: usize,
        credit_on: Credit,
        counters: Arc<Counters>,
    ) -> Result<()> {
        // Encode everything first: the timed part only moves bytes.
        let mut wire = BytesMut::with_capacity(payloads.len() * (topic.len() + 64));
        let mut ends = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            let mut publish = Publish::new(topic, QoS::AtLeastOnce, p.clone());
            publish.pkid = (i % 65_535 + 1) as u16;
            publish
                .write(&mut wire)
                .map_err(|e| anyhow::anyhow!("encoding publish: {e:?}"))?;
            ends.push(wire.len());
        }
        let total = payloads.len();
        // With application acks, an unacked frame must stay inside the gateway's replay
        // window, or its resend is refused as stale.
        let max_window = match credit_on {
            Credit::AppAck(_) => linli_protocol::replay::WINDOW as usize / 2,
            Credit::PubAck => 65_535,
        };
        let window = window.clamp(1, max_window);
        let credit = Arc::new(Semaphore::new(window));
        let acked: Arc<Vec<AtomicBool>> =
            Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
        let progress = Arc::new(AtomicU64::new(0));
        let Conn {
            mut rd,
            mut wr,
            mut buf,
        } = self;
        let (reader_credit, reader_acked, reader_progress) =
            (credit.clone(), acked.clone(), progress.clone());
        let reader_counters = counters.clone();
        let app_ack = match &credit_on {
            Credit::AppAck(read) => Some(read.clone()),
            Credit::PubAck => None,
        };
        let mut reader = tokio::spawn(async move {
            let mut done = 0usize;
            let counters = reader_counters;
            while done < total {
                let newly = match Packet::read(&mut buf, MAX_PACKET) {
                    Ok(Packet::PubAck(_)) => {
                        counters.pubacks.fetch_add(1, Relaxed);
                        app_ack.is_none()
                    }
                    Ok(Packet::Publish(p)) => {
                        counters.received.fetch_add(1, Relaxed);
                        match app_ack.as_ref().and_then(|read| read(&p.payload)) {
                            Some(i) => reader_acked.get(i).is_some_and(|a| !a.swap(true, Relaxed)),
                            None => false,
                        }
                    }
                    Ok(_) => false,
                    Err(MqttError::InsufficientBytes(_)) => {
                        if rd.read_buf(&mut buf).await? == 0 {
                            bail!("connection closed after {done} of {total} acks");
                        }
                        false
                    }
                    Err(e) => bail!("malformed MQTT from the broker: {e:?}"),
                };
                if newly {
                    done += 1;
                    reader_progress.fetch_add(1, Relaxed);
                    reader_credit.add_permits(1);
                }
            }
            anyhow::Ok(())
        });
        let frame = |i: usize| &wire[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        let resend_unacked = |upto: usize| {
            (0..upto)
                .filter(|i| !acked[*i].load(Relaxed))
                .flat_map(|i| frame(i).iter().copied())
                .collect::<Vec<u8>>()
        };
        let resends = matches!(credit_on, Credit::AppAck(_));
        let mut sent = 0usize;
        let mut seen_progress = 0;
        while sent < total {
            let k = (total - sent).min(32).min(window);
            match tokio::time::timeout(RESEND_AFTER, credit.acquire_many(k as u32)).await {
                Ok(permit) => {
                    permit?.forget();
                    let start = if sent == 0 { 0 } else { ends[sent - 1] };
                    wr.write_all(&wire[start..ends[sent + k - 1]]).await?;
                    sent += k;
                }
                Err(_) if resends && progress.load(Relaxed) == seen_progress => {
                    let again = resend_unacked(sent);
                    counters
                        .resent
                        .fetch_add((again.len() / frame(0).len().max(1)) as u64, Relaxed);
                    wr.write_all(&again).await?;
                }
                Err(_) => seen_progress = progress.load(Relaxed),
            }
        }
        loop {
            tokio::select! {
                r = &mut reader => return r?,
                _ = tokio::time::sleep(RESEND_AFTER) => {
                    let now = progress.load(Relaxed);
                    if resends && now == seen_progress {
                        let again = resend_unacked(total);
                        counters.resent.fetch_add((again.len() / frame(0).len().max(1)) as u64, Relaxed);
                        wr.write_all(&again).await?;
                    }
                    seen_progress = now;
                }
            }
        }
    }

    /// Publishes `packets` (topic, payload) in order with QoS1 at `pace`, and returns
    /// once every one is PUBACKed. Packets are written in small bursts, never ahead of
    /// schedule; when credit runs out they fall behind, and the achieved rate shows it.
    /// Counts each PUBACK in `counters.pubacks` and each packet written in `sent`.
    pub async fn publish_paced(
        self,
        packets: &[(String, Vec<u8>)],
        pace: Pace,
        counters: Arc<Counters>,
        sent: Arc<AtomicU64>,
    ) -> Result<()> {
        let Pace {
            per_second,
            window,
            start,
            tick,
        } = pace;
        let mut wire = BytesMut::with_capacity(packets.len() * 96);
        let mut ends = Vec::with_capacity(packets.len());
        for (i, (topic, p)) in packets.iter().enumerate() {
            let mut publish = Publish::new(topic, QoS::AtLeastOnce, p.clone());
            publish.pkid = (i % 65_535 + 1) as u16;
            publish
                .write(&mut wire)
                .map_err(|e| anyhow::anyhow!("encoding publish: {e:?}"))?;
            ends.push(wire.len());
        }
        let total = packets.len();
        let window = window.clamp(1, 65_535);
        let credit = Arc::new(Semaphore::new(window));
        let Conn { rd, mut wr, buf } = self;
        let reader = tokio::spawn(read_pubacks(rd, buf, total, counters, credit.clone()));
        tokio::time::sleep_until(start).await;
        let mut done = 0usize;
        while done < total {
            let due = ((start.elapsed().as_secs_f64() * per_second) as usize + 1).min(total);
            if due > done {
                let k = (due - done).min(credit.available_permits().max(1));
                credit.acquire_many(k as u32).await?.forget();
                let from = if done == 0 { 0 } else { ends[done - 1] };
                wr.write_all(&wire[from..ends[done + k - 1]]).await?;
                done += k;
                sent.fetch_add(k as u64, Relaxed);
            }
            if done < total {
                let next = start + Duration::from_secs_f64(done as f64 / per_second);
                let soonest = tokio::time::Instant::now() + tick;
                tokio::time::sleep_until(next.max(soonest)).await;
            }
        }
        reader.await?
    }

    /// Publishes `packets` (topic, payload) with QoS1 one at a time, packet `i` due at
    /// `start + i / per_second`, never ahead of schedule, at most `window` awaiting
    /// PUBACK. Calls `stamp(i)` immediately before packet `i` is written (what a latency
    /// measurement starts from), and returns once every packet is PUBACKed. Unlike
    /// [`Conn::publish_paced`] nothing is written in bursts: each packet leaves at its
    /// own time.
    pub async fn publish_timed(
        self,
        packets: &[(String, Vec<u8>)],
        per_second: f64,
        start: tokio::time::Instant,
        window: usize,
        counters: Arc<Counters>,
        mut stamp: impl FnMut(usize),
    ) -> Result<()> {
        if per_second.is_nan() || per_second <= 0.0 {
            bail!("publish_timed needs a positive rate");
        }
        let mut wire = Vec::with_capacity(packets.len());
        for (i, (topic, p)) in packets.iter().enumerate() {
            let mut publish = Publish::new(topic, QoS::AtLeastOnce, p.clone());
            publish.pkid = (i % 65_535 + 1) as u16;
            let mut b = BytesMut::with_capacity(topic.len() + p.len() + 8);
            publish
                .write(&mut b)
                .map_err(|e| anyhow::anyhow!("encoding publish: {e:?}"))?;
            wire.push(b);
        }
        let total = packets.len();
        let credit = Arc::new(Semaphore::new(window.clamp(1, 65_535)));
        let Conn { rd, mut wr, buf } = self;
        let reader = tokio::spawn(read_pubacks(rd, buf, total, counters, credit.clone()));
        for (i, packet) in wire.iter().enumerate() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / per_second)).await;
            credit.acquire().await?.forget();
            stamp(i);
            wr.write_all(packet).await?;
        }
        reader.await?
    }

    /// Reads publishes until `stop` says so, PUBACKing QoS1 ones and counting each.
    pub async fn count_incoming(
        mut self,
        counters: Arc<Counters>,
        stop: Arc<AtomicU64>,
    ) -> Result<()> {
        let mut out = BytesMut::with_capacity(64 * 1024);
        while stop.load(Relaxed) == 0 {
            loop {
                match Packet::read(&mut self.buf, MAX_PACKET) {
                    Ok(Packet::Publish(p)) => {
                        counters.received.fetch_add(1, Relaxed);
                        if p.qos != QoS::AtMostOnce {
                            PubAck::new(p.pkid)
                                .write(&mut out)
                                .map_err(|e| anyhow::anyhow!("encoding puback: {e:?}"))?;
                        }
                    }
                    Ok(_) => {}
                    Err(MqttError::InsufficientBytes(_)) => break,
                    Err(e) => bail!("malformed MQTT from the broker: {e:?}"),
                }
            }
            if !out.is_empty() {
                self.wr.write_all(&out).await?;
                out.clear();
            }
            match tokio::time::timeout(Duration::from_millis(200), self.rd.read_buf(&mut self.buf))
                .await
            {
                Ok(Ok(0)) => bail!("subscriber connection closed by the broker"),
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
