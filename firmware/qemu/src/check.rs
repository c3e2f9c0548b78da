//! The pendant-fall check, end to end through the real device path: a fall scenario's
//! samples → a virtual LIS3DH at register level → the `lis3dh` driver under
//! `linli_firmware::sensors::accel::Accelerometer` → the pendant application in a
//! `Device` (its `Node` seals with the key and counter, keeps the outbox) →
//! `linli_firmware::publish::flush` into the in-memory broker → the gateway's side
//! (topic, open, decode, each frame exactly as queued) → an ack sealed the way the
//! gateway seals it, handed back to the device → an empty outbox. A fall's event-channel
//! reports are exactly `[Impact, Fall]`; look-alikes (sitting down hard, a dropped
//! pendant) publish no event-channel report. Telemetry (heartbeat, activity, battery)
//! goes out beside them and is opened, checked and acked like the rest.
//!
//! Owns the steps, their pass/fail lines and the [`Verdict`], the stand-in board (the
//! virtual chip under the real adapter, a fixed battery, buttons never pressed) and the
//! gateway's side. Does not own fall detection, the application, sealing, the outbox
//! (`linli_firmware`), the wire format (`linli_protocol`), how lines reach a screen (the
//! caller's `log`) or how the verdict leaves the machine (the binary: semihosting exit
//! on the target, the process exit code on the host).
//!
//! The application is a parameter, [`pendant_fall_check`]'s `new_app`: the real
//! [`Pendant`] ([`real_pendant`]); the host tests plug in broken ones to show the check
//! catches them.

use core::fmt;

use linli_firmware::app::pendant::{Pendant, PendantSensors};
use linli_firmware::app::{Application, Device};
use linli_firmware::fall::scenario::{Kind, Scenario, LENGTH_MS};
use linli_firmware::fall::Range;
use linli_firmware::node::{Cadence, Downlinked, FrameBuf, Node};
use linli_firmware::publish::flush;
use linli_firmware::sensors::accel::{Accelerometer, SlaveAddr};
use linli_firmware::virtual_sensors::VirtualLis3dh;
use linli_firmware::{fall, sos};
use linli_protocol::codec::encode_downlink;
use linli_protocol::report::Pendant as Wire;
use linli_protocol::seal::{self, DeviceKey, FrameClass, OpenError, OVERHEAD};
use linli_protocol::topic::{self, DownChannel, UpChannel};
use linli_protocol::{decode_uplink, DeviceKind, Downlink, Report};

use crate::block_on;
use crate::broker::{MemoryBroker, Message, TopicBuf, MAX_PAYLOAD_LEN};

/// The device under test.
pub const DEVICE_ID: &str = "pendant-qemu-1";
/// Its key: a fixed test key, known to the device and the gateway side alike.
pub const TEST_KEY: [u8; 32] = *b"linli-qemu-test-key-not-secret!!";
/// The key id the device seals with.
pub const KEY_ID: u8 = 1;
/// Accelerometer sample rate, Hz: the rate the adapter programs (simulated time:
/// nothing waits). The device loop turns once per sample.
pub const RATE_HZ: u16 = 100;
/// The accelerometer's full scale.
pub const RANGE: Range = Range::G16;
/// The LIS3DH's I2C address (SA0 low).
pub const LIS3DH_ADDRESS: u8 = 0x18;
/// The cell voltage the stand-in board reads, mV.
pub const BATTERY_MV: u16 = 3_900;
/// Outbox slots of the device.
pub const OUTBOX_SLOTS: usize = 16;
/// Outbox slots reserved for alarms.
pub const ALARM_SLOTS: usize = 4;
/// Seed of the fall scenario.
pub const FALL_SEED: u64 = 7;
/// Look-alikes that must publish no event-channel report: (what the wearer does, seed).
pub const LOOK_ALIKES: [(Kind, u64); 4] = [
    (Kind::SitHard, 7),
    (Kind::SitHard, 8),
    (Kind::Drop, 7),
    (Kind::Drop, 8),
];
/// The device clock at boot, Unix seconds (2026-01-01T00:00:00Z).
pub const BOOT_EPOCH_S: u32 = 1_767_225_600;
/// The last line printed when every check passed.
pub const PASS_LINE: &str = "pendant_fall: PASS";
/// The last line printed when a check failed (followed by the count).
pub const FAIL_LINE: &str = "pendant_fall: FAIL";

const PERIOD_MS: u64 = 1_000 / RATE_HZ as u64;
/// Loop turns per scenario: every sample, plus the one that finds the stream ended.
const STEPS: u64 = LENGTH_MS / PERIOD_MS + 1;
/// Event-channel reports remembered per scenario (more are counted).
const MAX_EVENTS: usize = 8;

/// The device: the application on a node with the check's outbox.
pub type DeviceUnderTest<A> = Device<'static, A, OUTBOX_SLOTS, ALARM_SLOTS>;

/// How many checks passed and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Checks that passed.
    pub passed: u16,
    /// Checks that failed.
    pub failed: u16,
}

impl Verdict {
    /// Everything passed, and something was checked.
    pub fn is_pass(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

/// The pendant application as it ships: the default fall and SOS settings.
pub fn real_pendant() -> Pendant {
    Pendant::new(fall::Config::default(), sos::Config::default())
}

/// Runs every check and prints one line per step through `log`, the verdict last.
///
/// `new_app` makes a fresh application for each scenario; it runs on a fresh node over
/// a fresh board.
pub fn pendant_fall_check<A, F>(mut new_app: F, log: &mut dyn FnMut(fmt::Arguments<'_>)) -> Verdict
where
    F: FnMut() -> A,
    A: Application<Sensors = dyn PendantSensors>,
{
    let mut c = Checks {
        log,
        verdict: Verdict::default(),
    };
    c.line(format_args!(
        "pendant_fall: {DEVICE_ID}, virtual LIS3DH → lis3dh driver → pendant device → \
         broker → gateway side, {RATE_HZ} Hz simulated time"
    ));
    fall_reaches_the_gateway(&mut c, new_app());
    for (kind, seed) in LOOK_ALIKES {
        look_alike_publishes_no_event(&mut c, new_app(), kind, seed);
    }
    let v = c.verdict;
    if v.is_pass() {
        c.line(format_args!("{PASS_LINE} ({} checks)", v.passed));
    } else {
        c.line(format_args!(
            "{FAIL_LINE} ({} of {} checks failed)",
            v.failed,
            v.passed + v.failed
        ));
    }
    v
}

/// Counts checks and prints their lines.
struct Checks<'l> {
    log: &'l mut dyn FnMut(fmt::Arguments<'_>),
    verdict: Verdict,
}

impl Checks<'_> {
    fn line(&mut self, args: fmt::Arguments<'_>) {
        (self.log)(args);
    }

    /// Records `ok` and prints `what` after `ok` or `FAIL`; returns `ok`.
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) -> bool {
        if ok {
            self.verdict.passed += 1;
            (self.log)(format_args!("ok   {what}"));
        } else {
            self.verdict.failed += 1;
            (self.log)(format_args!("FAIL {what}"));
        }
        ok
    }

    /// A step that must succeed for the next ones to mean anything: `None` (after a
    /// `FAIL` line naming `what` and the error) when it did not.
    fn require<T, E: fmt::Debug>(&mut self, r: Result<T, E>, what: &str) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.check(false, format_args!("{what}: {e:?}"));
                None
            }
        }
    }
}

/// The stand-in board: the scenario plays through a virtual LIS3DH under the real
/// driver and adapter; the battery reads [`BATTERY_MV`]; no button is pressed.
struct Board {
    accel: Accelerometer<VirtualLis3dh<Scenario>>,
    samples: u32,
    bus_errors: u32,
    /// The chip had no sample waiting: the scenario is over.
    ended: bool,
}

impl Board {
    fn new(scenario: Scenario) -> Result<Self, linli_firmware::sensors::Error<impl fmt::Debug>> {
        let chip = VirtualLis3dh::new(LIS3DH_ADDRESS, scenario);
        Ok(Board {
            accel: Accelerometer::new(chip, SlaveAddr::Default, RANGE)?,
            samples: 0,
            bus_errors: 0,
            ended: false,
        })
    }
}

impl PendantSensors for Board {
    fn acceleration_mg(&mut self) -> Option<[i16; 3]> {
        match self.accel.poll_mg() {
            Ok(Some(mg)) => {
                self.samples += 1;
                Some(mg)
            }
            Ok(None) => {
                self.ended = true;
                None
            }
            Err(_) => {
                self.bus_errors += 1;
                None
            }
        }
    }

    fn sos_pressed(&mut self) -> bool {
        false
    }

    fn cancel_pressed(&mut self) -> bool {
        false
    }

    fn battery_mv(&mut self) -> Option<u16> {
        Some(BATTERY_MV)
    }
}

/// What the gateway's side received over one scenario.
#[derive(Debug, Default)]
struct Received {
    messages: u16,
    /// Messages on the event topic, whether or not they opened.
    event_messages: u16,
    opened: u16,
    acked: u16,
    last_counter: Option<u32>,
    heartbeats: u16,
    activity: u16,
    battery: u16,
    /// Event-channel reports in order, with the time (ms since boot) they arrived.
    events: [Option<(u64, Wire)>; MAX_EVENTS],
    n_events: usize,
}

impl Received {
    fn events(&self) -> impl Iterator<Item = (u64, Wire)> + '_ {
        self.events.iter().flatten().copied()
    }

    fn record(&mut self, now_ms: u64, report: Report) {
        match report {
            Report::Heartbeat(_) => self.heartbeats += 1,
            Report::Battery(_) => self.battery += 1,
            Report::Pendant(Wire::Activity { .. }) => self.activity += 1,
            Report::Pendant(p) if report.channel() == UpChannel::Event => {
                if let Some(slot) = self.events.get_mut(self.n_events) {
                    *slot = Some((now_ms, p));
                }
                self.n_events += 1;
            }
            _ => {}
        }
    }
}

/// Runs `scenario` through `app` on a fresh device: one loop turn per sample (step,
/// flush into the broker, the gateway takes and acks every message), until the chip
/// has no more samples. Then checks the whole stream came through the chip and the
/// outbox is empty. What the gateway received, or `None` when the board did not start.
fn run<A>(c: &mut Checks<'_>, app: A, scenario: Scenario) -> Option<Received>
where
    A: Application<Sensors = dyn PendantSensors>,
{
    let mut board = c.require(Board::new(scenario), "pendant: LIS3DH set up")?;
    let node = Node::new(
        DEVICE_ID,
        DeviceKey::new(&TEST_KEY),
        KEY_ID,
        0,
        Cadence::default(),
        0,
        1,
    );
    let mut device: DeviceUnderTest<A> = Device::new(node, app);
    let (mut broker, mut buf) = (MemoryBroker::new(), FrameBuf::default());
    let mut got = Received::default();
    for step in 0..STEPS {
        let now_ms = step * PERIOD_MS;
        let device_time = device_time(now_ms);
        device.step(now_ms, device_time, &mut board);
        // The counter reserve in "flash" (this check's RAM: it runs one boot).
        device.node.save_counter(|_| true);
        let flushed = block_on(flush(&mut device.node, now_ms, &mut buf, &mut broker));
        // A failure is a FAIL line; the frames stay in the outbox and show up below.
        let _ = c.require(flushed, "device: flush into the broker");
        while let Some(msg) = broker.take() {
            gateway_takes(c, &mut device, &mut board, now_ms, msg, &mut got);
        }
        if board.ended {
            break;
        }
    }
    c.check(
        board.ended && board.bus_errors == 0 && u64::from(board.samples) == STEPS - 1,
        format_args!(
            "pendant: {} samples through the virtual LIS3DH and the lis3dh driver, {} bus \
             errors, stream ended: {}",
            board.samples, board.bus_errors, board.ended
        ),
    );
    let (stats, outbox) = (device.node.stats(), device.node.outbox_stats());
    c.check(
        got.messages > 0
            && got.opened == got.messages
            && got.acked == got.messages
            && device.node.outbox().is_empty()
            && stats.reports_refused == 0
            && stats.downlinks_refused == 0,
        format_args!(
            "device: outbox empty after the acks ({} left); gateway took {} messages, opened \
             {}, acked {} (heartbeat {}, activity {}, battery {}, events {}); node {stats:?}, \
             outbox {outbox:?}",
            device.node.outbox().len(),
            got.messages,
            got.opened,
            got.acked,
            got.heartbeats,
            got.activity,
            got.battery,
            got.n_events,
        ),
    );
    Some(got)
}

fn device_time(now_ms: u64) -> u32 {
    let since_boot = u32::try_from(now_ms / 1_000).unwrap_or(u32::MAX);
    BOOT_EPOCH_S.saturating_add(since_boot)
}

/// The gateway's side of one message: on the device's topic; a flipped bit or the
/// frame moved to another device is refused; it opens with the device's key, decodes
/// to a report that belongs on its channel and to a pendant, under a counter after the
/// last, exactly as the device queued it. Then the ack, sealed as the gateway seals it,
/// goes back on `down/ack` and must clear that frame from the outbox.
fn gateway_takes<A>(
    c: &mut Checks<'_>,
    device: &mut DeviceUnderTest<A>,
    board: &mut Board,
    now_ms: u64,
    mut msg: Message,
    got: &mut Received,
) where
    A: Application<Sensors = dyn PendantSensors>,
{
    got.messages += 1;
    let (topic, frame) = msg.parts_mut();
    let Some((id, channel)) = c.require(topic::parse_uplink(topic), "gateway: topic") else {
        return;
    };
    got.event_messages += u16::from(channel == UpChannel::Event);
    let (mut flipped, mut moved) = ([0u8; MAX_PAYLOAD_LEN], [0u8; MAX_PAYLOAD_LEN]);
    let (flipped, moved) = (&mut flipped[..frame.len()], &mut moved[..frame.len()]);
    flipped.copy_from_slice(frame);
    moved.copy_from_slice(frame);
    if let Some(b) = flipped.last_mut() {
        *b ^= 0x01;
    }
    let refused = (
        seal::open(&key(), FrameClass::Uplink, id, flipped).err(),
        seal::open(&key(), FrameClass::Uplink, "pendant-qemu-2", moved).err(),
    );
    c.check(
        refused == (Some(OpenError::Tampered), Some(OpenError::Tampered)),
        format_args!("gateway: a flipped bit and a moved frame are refused: {refused:?}"),
    );
    let opened = seal::open(&key(), FrameClass::Uplink, id, frame);
    let Some((header, body)) = c.require(opened, "gateway: open") else {
        return;
    };
    got.opened += 1;
    let Some(uplink) = c.require(decode_uplink(body), "gateway: decode") else {
        return;
    };
    let queued = device
        .node
        .outbox()
        .entries()
        .iter()
        .find(|e| e.counter == header.counter)
        .map(|e| e.uplink);
    let fresh = got.last_counter.is_none_or(|last| header.counter > last);
    c.check(
        id == DEVICE_ID
            && header.key_id == KEY_ID
            && fresh
            && queued == Some(uplink)
            && uplink.report.channel() == channel
            && uplink.report.allowed_for(DeviceKind::Pendant),
        format_args!(
            "gateway: frame #{} on {topic}: {:?} at device time {}, as queued",
            header.counter, uplink.report, uplink.device_time
        ),
    );
    got.last_counter = Some(header.counter);
    got.record(now_ms, uplink.report);

    let mut ack_topic = TopicBuf::default();
    let mut ack = [0u8; 16 + OVERHEAD];
    let Some(n) = c.require(
        seal_ack(header.counter, &mut ack_topic, &mut ack),
        "gateway: seal the ack",
    ) else {
        return;
    };
    let answer = device.downlink(
        device_time(now_ms),
        ack_topic.as_str(),
        &mut ack[..n],
        board,
    );
    let acked = answer == Ok(Downlinked::Acked(header.counter));
    got.acked += u16::from(acked);
    c.check(
        acked,
        format_args!(
            "device: ack #{} on {}: {answer:?}",
            header.counter,
            ack_topic.as_str()
        ),
    );
}

fn key() -> DeviceKey {
    DeviceKey::new(&TEST_KEY)
}

/// The ack for `counter` as the gateway builds it (gateway/src/ingest `ack`): a sealed
/// `Downlink::Ack` under that counter, class `Ack`, on the device's `down/ack` topic.
fn seal_ack(counter: u32, topic: &mut TopicBuf, frame: &mut [u8]) -> Result<usize, AckError> {
    topic::write_downlink(topic, DEVICE_ID, DownChannel::Ack).map_err(|_| AckError::Topic)?;
    let mut body = [0u8; 16];
    let body =
        encode_downlink(&Downlink::Ack { counter }, &mut body).map_err(|_| AckError::Encode)?;
    seal::seal(
        &key(),
        KEY_ID,
        FrameClass::Ack,
        DEVICE_ID,
        counter,
        body,
        frame,
    )
    .map_err(|_| AckError::Seal)
}

/// Why the gateway's side could not build an ack.
#[derive(Debug)]
enum AckError {
    Topic,
    Encode,
    Seal,
}

/// A fall is detected and its event-channel reports reach the gateway exactly as
/// `[Impact, Fall]`, the same impact in both, the fall after the impact.
fn fall_reaches_the_gateway<A>(c: &mut Checks<'_>, app: A)
where
    A: Application<Sensors = dyn PendantSensors>,
{
    let scenario = Scenario::new(Kind::Fall, FALL_SEED, RATE_HZ);
    let hit_at = scenario.impact_at_ms().unwrap_or_default();
    c.line(format_args!(
        "     fall scenario seed {FALL_SEED}: the hit at {hit_at} ms"
    ));
    let Some(got) = run(c, app, scenario) else {
        return;
    };
    let mut events = got.events();
    let exact = match (events.next(), events.next(), events.next()) {
        (
            Some((t_impact, Wire::Impact { impact_mg })),
            Some((
                t_fall,
                Wire::Fall {
                    impact_mg: fall_mg, ..
                },
            )),
            None,
        ) => got.n_events == 2 && hit_at <= t_impact && t_impact < t_fall && impact_mg == fall_mg,
        _ => false,
    };
    c.check(
        exact,
        format_args!(
            "gateway: the event-channel reports are exactly [Impact, Fall] (hit at {hit_at} \
             ms): {} of them: {:?}",
            got.n_events,
            EventList(&got)
        ),
    );
    let fall = got
        .events()
        .last()
        .filter(|(_, w)| matches!(w, Wire::Fall { .. }));
    c.check(
        fall.is_some(),
        format_args!("gateway: pendant fall from {DEVICE_ID} on the event channel: {fall:?}"),
    );
}

/// A look-alike runs its whole length without an event-channel report (telemetry is
/// fine).
fn look_alike_publishes_no_event<A>(c: &mut Checks<'_>, app: A, kind: Kind, seed: u64)
where
    A: Application<Sensors = dyn PendantSensors>,
{
    c.line(format_args!("     look-alike {kind:?} seed {seed}"));
    let scenario = Scenario::new(kind, seed, RATE_HZ);
    let Some(got) = run(c, app, scenario) else {
        return;
    };
    c.check(
        got.n_events == 0 && got.event_messages == 0,
        format_args!(
            "look-alike {kind:?} seed {seed}: no event-channel report ({} messages on the \
             event topic; telemetry: heartbeat {}, activity {}, battery {}): {:?}",
            got.event_messages,
            got.heartbeats,
            got.activity,
            got.battery,
            EventList(&got)
        ),
    );
}

/// The event-channel reports, `(ms, report)`, for a line.
struct EventList<'r>(&'r Received);

impl fmt::Debug for EventList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.events()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(_: fmt::Arguments<'_>) {}

    #[test]
    fn the_pendant_passes_unless_frames_are_tampered_with() {
        let mut lines = std::vec::Vec::new();
        let v = pendant_fall_check(real_pendant, &mut |l| lines.push(l.to_string()));
        let all = lines.join("\n");
        assert_eq!(v.is_pass(), !cfg!(feature = "tamper"), "{v:?}\n{all}");
        if cfg!(feature = "tamper") {
            assert!(all.contains("FAIL gateway: open: Tampered"), "{all}");
        } else {
            // Telemetry went out and was acked alongside the events.
            assert!(
                all.contains("Heartbeat(") && all.contains("Battery("),
                "{all}"
            );
        }
    }

    /// Reads the accelerometer like a pendant but never reports anything.
    struct Mute;

    impl Application for Mute {
        const KIND: DeviceKind = DeviceKind::Pendant;
        type Sensors = dyn PendantSensors;

        fn sample(&mut self, _: u64, s: &mut Self::Sensors, _: &mut dyn FnMut(Report)) {
            s.acceleration_mg();
        }

        fn telemetry(&mut self, _: u64, _: &mut Self::Sensors, _: &mut dyn FnMut(Report)) {}
    }

    #[test]
    fn a_pendant_that_never_reports_fails() {
        let v = pendant_fall_check(|| Mute, &mut quiet);
        assert!(!v.is_pass(), "{v:?}");
    }

    /// Cries fall at the first hard hit.
    struct TriggerHappy(bool);

    impl Application for TriggerHappy {
        const KIND: DeviceKind = DeviceKind::Pendant;
        type Sensors = dyn PendantSensors;

        fn sample(&mut self, _: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
            let Some(mg) = s.acceleration_mg() else {
                return;
            };
            let m2: i32 = mg.iter().map(|v| i32::from(*v).pow(2)).sum();
            if m2 > 1_800 * 1_800 && !core::mem::replace(&mut self.0, true) {
                out(Report::Pendant(Wire::Fall {
                    impact_mg: 2_000,
                    still_s: 10,
                }));
            }
        }

        fn telemetry(&mut self, _: u64, _: &mut Self::Sensors, _: &mut dyn FnMut(Report)) {}
    }

    #[test]
    fn a_pendant_that_cries_fall_at_every_hard_hit_fails_the_look_alikes() {
        let mut lines = std::vec::Vec::new();
        let v = pendant_fall_check(|| TriggerHappy(false), &mut |l| lines.push(l.to_string()));
        let failed_look_alikes = lines
            .iter()
            .filter(|l| l.starts_with("FAIL look-alike"))
            .count();
        assert_eq!(failed_look_alikes, LOOK_ALIKES.len(), "{v:?}");
    }

    /// Never reads the accelerometer (its node still sends heartbeats).
    struct Deaf;

    impl Application for Deaf {
        const KIND: DeviceKind = DeviceKind::Pendant;
        type Sensors = dyn PendantSensors;

        fn sample(&mut self, _: u64, _: &mut Self::Sensors, _: &mut dyn FnMut(Report)) {}

        fn telemetry(&mut self, _: u64, _: &mut Self::Sensors, _: &mut dyn FnMut(Report)) {}
    }

    #[test]
    fn a_pendant_that_skips_the_accelerometer_fails() {
        let mut lines = std::vec::Vec::new();
        let v = pendant_fall_check(|| Deaf, &mut |l| lines.push(l.to_string()));
        assert!(!v.is_pass(), "{v:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("FAIL pendant: 0 samples")),
            "{lines:?}"
        );
    }
}
