//! One Modbus link's task: a TCP connection to one device, or a serial bus whose units it
//! polls one at a time. Keeps each device's schedule (per poll group), reads its blocks
//! under a timeout, decodes, builds the device's report and hands it to ingest; writes
//! commands and checks their read-back.
//!
//! A timeout, transport or protocol error drops the connection (a late reply would answer
//! the next request) and backs the device off; a Modbus exception keeps it. A value out
//! of its range or a failed read gives no report: last values are never sent again as
//! if fresh. Does not decide what a device is (`poller`) or how words decode
//! (`registers`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::{Request, Response, Slave, SlaveContext};

use super::audit::CommandRecord;
use super::config::{Parity, RtuBus};
use super::poller::{CommandError, DeviceState, Shared};
use super::registers::{blocks, Block, DecodeError, Table};
use super::stats::{LinkState, RegisterValue};
use super::verify::{target_of, Pending, Verifier};
use crate::clock::now_ms;
use crate::reading::{Inbound, Reading};
use crate::registry::Trust;

/// How a link reaches its devices.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Modbus TCP to `host:port`.
    Tcp(String),
    /// Modbus RTU on a serial line.
    Rtu(RtuBus),
}

impl Transport {
    /// True when both reach the same line: one TCP address, or one bus.
    pub fn same_link(&self, other: &Transport) -> bool {
        match (self, other) {
            (Transport::Tcp(a), Transport::Tcp(b)) => a == b,
            (Transport::Rtu(a), Transport::Rtu(b)) => a.name == b.name,
            _ => false,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp(a) => write!(f, "tcp://{a}"),
            Transport::Rtu(b) => write!(f, "rtu://{}@{}", b.port.display(), b.baud),
        }
    }
}

/// A command for a device of this link.
#[derive(Debug)]
pub struct Command {
    /// Index of the device in the link.
    pub unit: usize,
    /// Index of the register in its profile.
    pub register: usize,
    /// Value to write.
    pub value: f64,
    /// Audit id.
    pub audit: i64,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<CommandRecord, CommandError>>,
}

/// Registers polled at one interval.
#[derive(Debug)]
struct Group {
    period: Duration,
    next_due: Instant,
    blocks: Vec<Block>,
}

/// One device's poll state.
#[derive(Debug)]
struct Unit {
    dev: Arc<DeviceState>,
    groups: Vec<Group>,
    /// Each register's last value and when it was read.
    values: Vec<Option<(f64, Instant)>>,
    /// How long a value stays current: its group's period and a half.
    fresh_for: Vec<Duration>,
    verifier: Verifier,
    retry_at: Option<Instant>,
    backoff: Duration,
    counter: u32,
    /// Command checks ingest had no room for: sent with the next poll's report (a lost
    /// check would leave a fault alarm raised, or never raise it).
    unsent: Vec<linli_protocol::Report>,
    /// The slowest interval of the registers feeding the report: how often a device
    /// that answers shows supervision it is alive.
    alive_every: Duration,
    /// When the pipeline last heard of it (a report or a heartbeat).
    last_alive: Option<Instant>,
    /// When polling it began (a heartbeat's uptime).
    since: Instant,
}

/// Why a poll or a write failed in a way that drops the connection.
#[derive(Debug)]
enum LinkError {
    Timeout,
    Transport(String),
    Protocol(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Timeout => write!(f, "no answer within the timeout"),
            LinkError::Transport(e) => write!(f, "transport: {e}"),
            LinkError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

/// A link and its devices.
pub struct Link {
    transport: Transport,
    units: Vec<Unit>,
    ctx: Option<Context>,
    shared: Arc<Shared>,
    connected_once: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("transport", &self.transport)
            .field("devices", &self.units.len())
            .field("connected", &self.ctx.is_some())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link polling `devices` over `transport`.
    pub fn new(transport: Transport, devices: Vec<Arc<DeviceState>>, shared: Arc<Shared>) -> Link {
        let start = Instant::now();
        let seed = (now_ms() / 100) as u32;
        let units = devices
            .into_iter()
            .map(|dev| {
                let map = dev.profile.map();
                let mut periods: Vec<u64> = dev
                    .profile
                    .registers
                    .iter()
                    .map(|r| r.poll_ms.unwrap_or(dev.poll_ms))
                    .collect();
                let fresh_for = periods
                    .iter()
                    .map(|p| Duration::from_millis(p + p / 2))
                    .collect();
                let per_register = periods.clone();
                let alive_every = dev
                    .profile
                    .registers
                    .iter()
                    .zip(&per_register)
                    .filter(|(r, _)| r.feeds.is_some())
                    .map(|(_, p)| *p)
                    .max()
                    .unwrap_or(dev.poll_ms);
                periods.sort_unstable();
                periods.dedup();
                let groups = periods
                    .into_iter()
                    .map(|p| {
                        let members: Vec<usize> =
                            (0..map.len()).filter(|i| per_register[*i] == p).collect();
                        Group {
                            period: Duration::from_millis(p),
                            next_due: start + phase(&dev.id, p),
                            blocks: blocks(&map, &members, shared.config.max_gap),
                        }
                    })
                    .collect();
                Unit {
                    values: vec![None; map.len()],
                    fresh_for,
                    groups,
                    verifier: Verifier::default(),
                    retry_at: None,
                    backoff: Duration::from_millis(shared.config.backoff_min_ms),
                    counter: seed,
                    unsent: Vec::new(),
                    alive_every: Duration::from_millis(alive_every),
                    last_alive: None,
                    since: start,
                    dev,
                }
            })
            .collect();
        Link {
            transport,
            units,
            ctx: None,
            shared,
            connected_once: false,
        }
    }

    /// Polls and takes commands until `stop`.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                Some(c) = commands.recv() => self.command(c).await,
                _ = tokio::time::sleep_until(wake) => self.poll_due().await,
            }
        }
    }

    fn next_wake(&self) -> Instant {
        self.units
            .iter()
            .flat_map(|u| {
                u.groups
                    .iter()
                    .map(move |g| u.retry_at.map_or(g.next_due, |r| r.max(g.next_due)))
            })
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    async fn poll_due(&mut self) {
        for i in 0..self.units.len() {
            let now = Instant::now();
            let due: Vec<usize> = (0..self.units[i].groups.len())
                .filter(|g| self.units[i].groups[*g].next_due <= now)
                .collect();
            if due.is_empty() {
                continue;
            }
            let backing_off = self.units[i].retry_at.is_some_and(|t| now < t);
            // The first poll after a failure starts when the backoff ends, not on schedule:
            // not jitter.
            let recovering = self.units[i].retry_at.is_some();
            self.advance(i, &due, now, !backing_off, !recovering);
            if backing_off {
                continue;
            }
            if let Err(e) = self.connect(i).await {
                self.failed(i, e);
                continue;
            }
            let started = now_ms();
            match self.poll_unit(i, &due).await {
                Ok(()) => {}
                Err(e) => self.failed(i, e),
            }
            tracing::trace!(device = %self.units[i].dev.id, took_ms = now_ms() - started, "polled");
        }
    }

    /// Moves the due groups' schedule on, noting how late this poll starts; polls that
    /// fell wholly behind are counted as missed, not run in a burst.
    fn advance(&mut self, i: usize, due: &[usize], now: Instant, polling: bool, on_time: bool) {
        let metrics = &self.shared.metrics;
        for g in due {
            let group = &mut self.units[i].groups[*g];
            if polling && on_time {
                metrics.jitter(now - group.next_due);
            } else if !polling {
                metrics.missed.fetch_add(1, Relaxed);
            }
            group.next_due += group.period;
            if group.next_due <= now {
                let behind = (now - group.next_due).as_nanos() / group.period.as_nanos().max(1) + 1;
                metrics.missed.fetch_add(behind as u64, Relaxed);
                group.next_due += group.period * behind as u32;
            }
        }
    }

    async fn connect(&mut self, i: usize) -> Result<(), LinkError> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let r = self.open(i).await;
        if r.is_err() {
            self.shared.metrics.connect_failures.fetch_add(1, Relaxed);
        }
        r
    }

    async fn open(&mut self, i: usize) -> Result<(), LinkError> {
        let timeout = Duration::from_millis(self.shared.config.timeout_ms);
        let unit = Slave(self.units[i].dev.unit);
        let ctx = match &self.transport {
            Transport::Tcp(addr) => {
                let connect = async {
                    let mut last = None;
                    for a in tokio::net::lookup_host(addr.as_str()).await? {
                        match tokio_modbus::client::tcp::connect_slave(a, unit).await {
                            Ok(c) => return Ok(c),
                            Err(e) => last = Some(e),
                        }
                    }
                    Err(last.unwrap_or_else(|| std::io::Error::other("resolves to no address")))
                };
                tokio::time::timeout(timeout, connect)
                    .await
                    .map_err(|_| LinkError::Timeout)?
                    .map_err(|e| LinkError::Transport(format!("connect {addr}: {e}")))?
            }
            Transport::Rtu(bus) => {
                let port = open_serial(bus).map_err(|e| {
                    LinkError::Transport(format!("open {}: {e}", bus.port.display()))
                })?;
                if self.connected_once {
                    // Reopening after a failure: let a late reply from the unit that timed
                    // out arrive, then drop it, so it cannot answer the next unit's request.
                    tokio::time::sleep(RTU_QUIET).await;
                    use tokio_serial::SerialPort;
                    if let Err(e) = port.clear(tokio_serial::ClearBuffer::Input) {
                        tracing::debug!(error = %e, "cannot clear the serial input buffer");
                    }
                }
                tokio_modbus::client::rtu::attach_slave(port, unit)
            }
        };
        let m = &self.shared.metrics;
        m.connects.fetch_add(1, Relaxed);
        if self.connected_once {
            self.units[i].dev.status.lock().reconnects += 1;
        }
        self.connected_once = true;
        tracing::debug!(link = %self.transport, "modbus connected");
        self.ctx = Some(ctx);
        Ok(())
    }

    /// Drops the connection and backs the device off (a failed connect backs every
    /// device of the link off: they share it).
    fn failed(&mut self, i: usize, e: LinkError) {
        self.ctx = None;
        let m = &self.shared.metrics;
        match &e {
            LinkError::Timeout => m.timeouts.fetch_add(1, Relaxed),
            LinkError::Transport(_) => m.transport_errors.fetch_add(1, Relaxed),
            LinkError::Protocol(_) => m.protocol_errors.fetch_add(1, Relaxed),
        };
        let max = Duration::from_millis(self.shared.config.backoff_max_ms);
        let now = Instant::now();
        let u = &mut self.units[i];
        u.retry_at = Some(now + u.backoff);
        let mut st = u.dev.status.lock();
        let first = st.consecutive_failures == 0;
        st.state = LinkState::Down;
        st.failures += 1;
        st.consecutive_failures += 1;
        if matches!(e, LinkError::Timeout) {
            st.timeouts += 1;
        }
        st.last_error = Some(e.to_string());
        drop(st);
        if first {
            tracing::warn!(
                device = %u.dev.id,
                link = %self.transport,
                error = %e,
                retry_in_ms = u.backoff.as_millis() as u64,
                "modbus device not answering: connection dropped, retrying with backoff"
            );
        }
        u.backoff = (u.backoff * 2).min(max);
    }

    async fn poll_unit(&mut self, i: usize, due: &[usize]) -> Result<(), LinkError> {
        let timeout = Duration::from_millis(self.shared.config.timeout_ms);
        let shared = self.shared.clone();
        let metrics = &shared.metrics;
        metrics.polls.fetch_add(1, Relaxed);
        let unit = &mut self.units[i];
        unit.dev.status.lock().polls += 1;
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(LinkError::Transport("not connected".into()));
        };
        ctx.set_slave(Slave(unit.dev.unit));
        let profile = unit.dev.profile.clone();
        let mut read: Vec<usize> = Vec::new();
        let mut clean = true;
        // Some block came back with data (even data then rejected): the device is there.
        // A unit that only answers exceptions (a Modbus TCP gateway's 0x0B for a dead unit
        // behind it) is not.
        let mut answered = false;
        let mut exception = None;
        // Blocks a device refused as a whole (0x02: it does not implement some address the
        // block spans): read register by register from the next poll on.
        let mut split: Vec<(usize, usize)> = Vec::new();
        for g in due {
            for (bi, b) in unit.groups[*g].blocks.iter().enumerate() {
                let words = match tokio::time::timeout(timeout, read_block(ctx, b)).await {
                    Err(_) => {
                        forget(unit, due, &read);
                        return Err(LinkError::Timeout);
                    }
                    Ok(Err(e)) => {
                        forget(unit, due, &read);
                        return Err(e);
                    }
                    Ok(Ok(Err(code))) => {
                        if code == ILLEGAL_DATA_ADDRESS && b.registers.len() > 1 {
                            split.push((*g, bi));
                        }
                        metrics.exception(code);
                        exception = Some(code);
                        clean = false;
                        let now = now_ms();
                        let mut st = unit.dev.status.lock();
                        *st.exceptions.entry(format!("{code:#04x}")).or_default() += 1;
                        for r in &b.registers {
                            unit.values[*r] = None;
                            st.registers.insert(
                                profile.registers[*r].reg.name.clone(),
                                RegisterValue {
                                    value: None,
                                    unit: profile.registers[*r].unit.clone(),
                                    error: Some(format!("exception {code:#04x}")),
                                    at_ms: now,
                                },
                            );
                        }
                        continue;
                    }
                    Ok(Ok(Ok(w))) => {
                        answered = true;
                        w
                    }
                };
                let now = now_ms();
                let at = Instant::now();
                let mut st = unit.dev.status.lock();
                for r in &b.registers {
                    let pr = &profile.registers[*r];
                    let off = usize::from(pr.reg.address - b.start);
                    let decoded = pr.reg.decode(words.get(off..).unwrap_or(&[]));
                    let (value, error) = match decoded {
                        Ok(v) => {
                            unit.values[*r] = Some((v, at));
                            read.push(*r);
                            (Some(v), None)
                        }
                        Err(e) => {
                            clean = false;
                            unit.values[*r] = None;
                            st.rejected += 1;
                            match e {
                                DecodeError::OutOfRange { .. } => &metrics.out_of_range,
                                DecodeError::NotANumber { .. } => &metrics.not_a_number,
                                DecodeError::Short { .. } => &metrics.protocol_errors,
                            }
                            .fetch_add(1, Relaxed);
                            tracing::debug!(device = %unit.dev.id, error = %e, "modbus value rejected");
                            (None, Some(e.to_string()))
                        }
                    };
                    st.registers.insert(
                        pr.reg.name.clone(),
                        RegisterValue {
                            value,
                            unit: pr.unit.clone(),
                            error,
                            at_ms: now,
                        },
                    );
                }
            }
        }
        // A pending check whose read-back this poll could not read still uses up a poll.
        let unread: Vec<usize> = due
            .iter()
            .flat_map(|g| unit.groups[*g].blocks.iter())
            .flat_map(|b| b.registers.iter().copied())
            .filter(|r| !read.contains(r))
            .collect();
        for r in unread {
            if let Some(command) = unit.verifier.unreadable(r) {
                tracing::warn!(device = %unit.dev.id, command, register = %profile.registers[r].reg.name, "command unverified: its read-back could not be read");
                if let Err(e) = tokio::task::block_in_place(|| {
                    shared.audit.verified(command, "unreadable", None, now_ms())
                }) {
                    tracing::error!(error = %e, "cannot record a command's verification");
                }
            }
        }
        for (g, bi) in split.into_iter().rev() {
            let group = &mut unit.groups[g];
            let b = group.blocks.remove(bi);
            tracing::info!(device = %unit.dev.id, start = b.start, count = b.count, "device refused a coalesced read (exception 0x02): reading its registers one by one");
            let map = profile.map();
            for r in b.registers {
                group.blocks.extend(blocks(&map, &[r], 0));
            }
        }
        unit.retry_at = None;
        unit.backoff = Duration::from_millis(self.shared.config.backoff_min_ms);
        {
            let mut st = unit.dev.status.lock();
            if st.state == LinkState::Down {
                tracing::info!(device = %unit.dev.id, "modbus device answering again");
            }
            st.state = LinkState::Up;
            if clean {
                st.last_ok_ms = Some(now_ms());
                st.consecutive_failures = 0;
                st.last_error = None;
            } else {
                st.failures += 1;
                st.consecutive_failures += 1;
                st.last_error = Some(match exception {
                    Some(code) => format!("exception {code:#04x}"),
                    None => "a value was rejected (see registers)".into(),
                });
            }
        }
        self.deliver(i, &read, answered);
        Ok(())
    }

    /// Builds the device's report when this poll read any register that feeds it and
    /// every such register is current; then checks pending commands' read-backs.
    fn deliver(&mut self, i: usize, read: &[usize], answered: bool) {
        let now = Instant::now();
        let unit = &mut self.units[i];
        let profile = unit.dev.profile.clone();
        let mut out = Vec::new();
        let feeds_read = read.iter().any(|r| profile.registers[*r].feeds.is_some());
        let current = |r: usize| {
            unit.values[r].filter(|(_, at)| now.duration_since(*at) <= unit.fresh_for[r])
        };
        if feeds_read {
            let all_current = profile
                .registers
                .iter()
                .enumerate()
                .all(|(r, pr)| pr.feeds.is_none() || current(r).is_some());
            if all_current {
                let value = |m: &str| {
                    profile
                        .registers
                        .iter()
                        .position(|pr| pr.feeds == Some(m))
                        .and_then(current)
                        .map_or(f64::NAN, |(v, _)| v)
                };
                match super::assemble::assemble(profile.kind, value) {
                    Ok(report) => {
                        out.push(report);
                        unit.last_alive = Some(now);
                    }
                    Err(e) => {
                        self.shared.metrics.unfit.fetch_add(1, Relaxed);
                        unit.dev.status.lock().rejected += 1;
                        tracing::warn!(device = %unit.dev.id, error = %e, "polled values do not fit the report: fix the profile's range");
                    }
                }
            }
        }
        // It answered with data, but a refused or rejected feeding register left no
        // report: it is still alive, so supervision hears a heartbeat instead of calling
        // it silent; its values are not repeated. At most once per half of the slowest
        // feeding interval: a poll finishing a little earlier than the last one must not
        // skip a beat and leave a gap supervision counts as missed.
        if answered
            && unit
                .last_alive
                .is_none_or(|t| now.duration_since(t) >= unit.alive_every / 2)
        {
            let uptime_s =
                u32::try_from(now.duration_since(unit.since).as_secs()).unwrap_or(u32::MAX);
            out.push(linli_protocol::Report::Heartbeat(
                linli_protocol::report::Heartbeat { uptime_s },
            ));
            unit.last_alive = Some(now);
        }
        // A lamp that is off may report any dimming level: dimming is judged while lit.
        let dark = profile
            .registers
            .iter()
            .position(|pr| pr.feeds == Some("relay_on"))
            .and_then(current)
            .is_some_and(|(v, _)| v < 0.5);
        for r in read {
            let Some((v, _)) = unit.values[*r] else {
                continue;
            };
            if dark && profile.registers[*r].feeds == Some("dimming_pct") {
                continue;
            }
            if let Some(o) = unit.verifier.observe(*r, v) {
                let m = &self.shared.metrics;
                if o.applied {
                    &m.verified
                } else {
                    &m.not_applied
                }
                .fetch_add(1, Relaxed);
                if !o.applied {
                    tracing::warn!(device = %unit.dev.id, command = o.command, observed = o.observed, "command not applied: the read-back does not show it");
                }
                let outcome = if o.applied { "verified" } else { "not_applied" };
                if let Err(e) = tokio::task::block_in_place(|| {
                    self.shared
                        .audit
                        .verified(o.command, outcome, Some(o.observed), now_ms())
                }) {
                    tracing::error!(error = %e, "cannot record a command's verification");
                }
                if let Some(c) = o.check {
                    out.push(linli_protocol::Report::CommandCheck(c));
                }
            }
        }
        // Checks held back go first: an older outcome must not land after a newer one.
        out.splice(0..0, unit.unsent.drain(..));
        for report in out {
            unit.counter = unit.counter.wrapping_add(1);
            let reading = Reading {
                device: unit.dev.id.clone(),
                counter: unit.counter,
                device_time: 0,
                received_ms: now_ms(),
                trust: Trust::Polled,
                report,
            };
            self.shared.ingest_metrics.queue_depth.fetch_add(1, Relaxed);
            if self
                .shared
                .ingest
                .try_send(Inbound::Polled(reading, std::time::Instant::now()))
                .is_err()
            {
                self.shared.ingest_metrics.queue_depth.fetch_sub(1, Relaxed);
                self.shared
                    .ingest_metrics
                    .reject(crate::ingest::Rejection::Overload);
                self.shared.metrics.overload.fetch_add(1, Relaxed);
                if matches!(report, linli_protocol::Report::CommandCheck(_)) {
                    unit.unsent.push(report);
                }
            } else {
                self.shared.metrics.readings.fetch_add(1, Relaxed);
                unit.dev.status.lock().readings += 1;
            }
        }
    }

    async fn command(&mut self, c: Command) {
        let result = self.write(&c).await;
        let audit = &self.shared.audit;
        let record = tokio::task::block_in_place(|| {
            let (error, verifying) = match &result {
                Ok(v) => (None, *v),
                Err(e) => (Some(e.to_string()), false),
            };
            audit.written(c.audit, error.as_deref(), verifying)?;
            audit.get(c.audit)
        });
        let m = &self.shared.metrics;
        if result.is_ok() {
            &m.commands_written
        } else {
            &m.commands_failed
        }
        .fetch_add(1, Relaxed);
        let reply = match (record, result) {
            (Err(e), _) => Err(CommandError::Audit(e.to_string())),
            (Ok(None), _) => Err(CommandError::Audit("record vanished".into())),
            (Ok(Some(r)), Ok(_)) => Ok(r),
            (Ok(Some(r)), Err(e)) => Err(CommandError::Write {
                error: e.to_string(),
                record: Box::new(r),
            }),
        };
        let _ = c.reply.send(reply);
    }

    /// Writes; true when a read-back will verify it.
    async fn write(&mut self, c: &Command) -> Result<bool, LinkError> {
        if let Err(e) = self.connect(c.unit).await {
            self.failed(c.unit, LinkError::Transport(e.to_string()));
            return Err(e);
        }
        let timeout = Duration::from_millis(self.shared.config.timeout_ms);
        let unit = &mut self.units[c.unit];
        let pr = unit.dev.profile.registers[c.register].clone();
        let words = pr
            .reg
            .encode(c.value)
            .ok_or_else(|| LinkError::Protocol("value does not encode".into()))?;
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(LinkError::Transport("not connected".into()));
        };
        ctx.set_slave(Slave(unit.dev.unit));
        let outcome = tokio::time::timeout(
            timeout,
            write_words(ctx, pr.reg.table, pr.reg.address, &words),
        )
        .await;
        let result = match outcome {
            Err(_) => Err(LinkError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Err(code))) => {
                self.shared.metrics.exception(code);
                *unit
                    .dev
                    .status
                    .lock()
                    .exceptions
                    .entry(format!("{code:#04x}"))
                    .or_default() += 1;
                return Err(LinkError::Protocol(format!("exception {code:#04x}")));
            }
            Ok(Ok(Ok(()))) => Ok(()),
        };
        if let Err(e) = result {
            let msg = e.to_string();
            self.failed(c.unit, e);
            return Err(LinkError::Transport(msg));
        }
        let Some(readback) = pr.verifies else {
            return Ok(false);
        };
        let rb = &unit.dev.profile.registers[readback];
        // What the register holds after the write (a value rounded to its type and scale).
        let written = pr.reg.decode(&words).unwrap_or(c.value);
        let superseded = unit.verifier.expect(Pending {
            command: c.audit,
            readback,
            requested: written,
            tolerance: pr.tolerance,
            polls_left: self.shared.config.verify_polls,
            target: target_of(rb.feeds),
            failed: false,
        });
        if let Some(old) = superseded {
            let audit = &self.shared.audit;
            if let Err(e) =
                tokio::task::block_in_place(|| audit.verified(old, "superseded", None, now_ms()))
            {
                tracing::error!(error = %e, "cannot record a superseded command");
            }
        }
        Ok(true)
    }
}

/// Poll phases are multiples of this: devices sharing a slot wake together (one timer
/// wake-up serves them all), devices in different slots do not pile up.
const PHASE_SLOT_MS: u64 = 50;

/// Where in its period a device's polls fall: spread over the period's slots by its id,
/// so a street of lamps polled every second is not all asked in the same millisecond (and
/// keeps its phase across restarts).
fn phase(id: &str, period_ms: u64) -> Duration {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let slots = (period_ms / PHASE_SLOT_MS).max(1);
    Duration::from_millis(h % slots * PHASE_SLOT_MS)
}

/// How long a reopened serial line is left quiet before its input is dropped.
const RTU_QUIET: Duration = Duration::from_millis(50);

/// A failed poll leaves the registers it had not read yet without a current value (a
/// report built later must not carry them as if fresh), and their groups are asked again
/// as soon as the device answers rather than a whole interval later.
fn forget(unit: &mut Unit, due: &[usize], read: &[usize]) {
    for g in due {
        let group = &mut unit.groups[*g];
        let mut missed = false;
        for r in group.blocks.iter().flat_map(|b| b.registers.iter()) {
            if !read.contains(r) {
                unit.values[*r] = None;
                missed = true;
            }
        }
        if missed {
            group.next_due = Instant::now();
        }
    }
}

/// Modbus exception 0x02.
const ILLEGAL_DATA_ADDRESS: u8 = 0x02;

fn link_error(e: tokio_modbus::Error) -> LinkError {
    match e {
        tokio_modbus::Error::Transport(e) => LinkError::Transport(e.to_string()),
        tokio_modbus::Error::Protocol(e) => LinkError::Protocol(e.to_string()),
    }
}

/// Reads a block through `Client::call`, so a reply of the wrong length is our protocol
/// error rather than tokio-modbus's debug assertion (which would end the link task).
/// Writes `words` at `address` through `Client::call` (tokio-modbus's `Writer` helpers
/// only `debug_assert` the device's echo, which would panic the link in a debug build and
/// pass a wrong echo in a release one): an echo that does not match the request is a
/// protocol error. `Ok(Err(code))` is a Modbus exception.
async fn write_words(
    ctx: &mut Context,
    table: Table,
    address: u16,
    words: &[u16],
) -> Result<Result<(), u8>, LinkError> {
    let request = match (table, words) {
        (Table::Coil, [w]) => Request::WriteSingleCoil(address, *w != 0),
        (Table::Holding, [w]) => Request::WriteSingleRegister(address, *w),
        (Table::Holding, ws) => Request::WriteMultipleRegisters(address, ws.to_vec().into()),
        _ => {
            return Err(LinkError::Protocol(format!(
                "{table:?} {address} cannot be written with {} word(s)",
                words.len()
            )))
        }
    };
    let echoed = match ctx.call(request).await.map_err(link_error)? {
        Err(code) => return Ok(Err(u8::from(code))),
        Ok(Response::WriteSingleCoil(a, on)) => a == address && words == [u16::from(on)],
        Ok(Response::WriteSingleRegister(a, w)) => a == address && words == [w],
        Ok(Response::WriteMultipleRegisters(a, n)) => a == address && usize::from(n) == words.len(),
        Ok(other) => {
            return Err(LinkError::Protocol(format!(
                "wrote {table:?} {address}, got {other:?}"
            )))
        }
    };
    if !echoed {
        return Err(LinkError::Protocol(format!(
            "the device's echo of the write to {table:?} {address} does not match it"
        )));
    }
    Ok(Ok(()))
}

async fn read_block(ctx: &mut Context, b: &Block) -> Result<Result<Vec<u16>, u8>, LinkError> {
    let request = match b.table {
        Table::Holding => Request::ReadHoldingRegisters(b.start, b.count),
        Table::Input => Request::ReadInputRegisters(b.start, b.count),
        Table::Coil => Request::ReadCoils(b.start, b.count),
        Table::Discrete => Request::ReadDiscreteInputs(b.start, b.count),
    };
    let words = match ctx.call(request).await.map_err(link_error)? {
        Err(code) => return Ok(Err(u8::from(code))),
        Ok(Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w)) => w,
        Ok(Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits)) => {
            bits.into_iter().map(u16::from).collect()
        }
        Ok(other) => {
            return Err(LinkError::Protocol(format!(
                "asked for {:?} {}+{}, got {other:?}",
                b.table, b.start, b.count
            )))
        }
    };
    // Bits come padded to whole bytes; registers must be exactly what was asked for.
    if words.len() < usize::from(b.count)
        || (!b.table.is_bits() && words.len() != usize::from(b.count))
    {
        return Err(LinkError::Protocol(format!(
            "asked for {} values at {}, got {}",
            b.count,
            b.start,
            words.len()
        )));
    }
    Ok(Ok(words))
}

fn open_serial(bus: &RtuBus) -> std::io::Result<tokio_serial::SerialStream> {
    use tokio_serial::SerialPortBuilderExt;
    tokio_serial::new(bus.port.to_string_lossy(), bus.baud)
        .parity(match bus.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if bus.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .data_bits(tokio_serial::DataBits::Eight)
        .open_native_async()
        .map_err(std::io::Error::other)
}
