//! The pendant-fall check, end to end: accelerometer samples → the pendant's fall path →
//! sealed uplinks on an in-memory broker → the gateway's side (topic, open, decode) →
//! exactly the reports the pendant meant; and look-alikes (sitting down hard, a dropped
//! pendant) that must publish nothing.
//!
//! Owns the steps, their pass/fail lines and the [`Verdict`]. Does not own fall
//! detection (`linli_firmware::fall`), the wire format (`linli_protocol`), how lines
//! reach a screen (the caller's `log`) or how the verdict leaves the machine (the
//! binary: semihosting exit on the target, the process exit code on the host).
//!
//! The pendant's path is a parameter, [`pendant_fall_check`]'s `new_pendant`: today the
//! bare [`detector_path`]; the device application loop and a virtual LIS3DH plug in
//! there without changing the check.

use core::fmt;

use linli_firmware::fall::scenario::{Kind, Scenario};
use linli_firmware::fall::{Config, Detector, Event};
use linli_protocol::codec::MAX_BODY_LEN;
use linli_protocol::report::Pendant;
use linli_protocol::seal::{self, DeviceKey, FrameClass, OpenError};
use linli_protocol::topic::{self, UpChannel};
use linli_protocol::{decode_uplink, encode_uplink, Report, Uplink};

use crate::broker::{MemoryBroker, TopicBuf, MAX_PAYLOAD_LEN};

/// The device under test.
pub const DEVICE_ID: &str = "pendant-qemu-1";
/// Its key: a fixed test key, known to the device and the gateway side alike.
pub const TEST_KEY: [u8; 32] = *b"linli-qemu-test-key-not-secret!!";
/// The key id the device seals with.
pub const KEY_ID: u8 = 1;
/// Accelerometer sample rate, Hz (simulated time: nothing waits).
pub const RATE_HZ: u16 = 100;
/// Seed of the fall scenario.
pub const FALL_SEED: u64 = 7;
/// Look-alikes that must publish nothing: (what the wearer does, seed).
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

/// The pendant's fall path as it stands today: the default [`Detector`] fed milli-g.
pub fn detector_path() -> impl FnMut(u64, [i16; 3]) -> Option<Event> {
    let mut detector = Detector::new(Config::default());
    move |now_ms, mg| detector.sample(now_ms, mg)
}

/// Runs every check and prints one line per step through `log`, the verdict last.
///
/// `new_pendant` makes a fresh pendant for each scenario: a step function taking one
/// sample (ms since boot, `[x, y, z]` milli-g at [`RATE_HZ`]) and giving the event it
/// completes, if any.
pub fn pendant_fall_check<P, S>(
    mut new_pendant: P,
    log: &mut dyn FnMut(fmt::Arguments<'_>),
) -> Verdict
where
    P: FnMut() -> S,
    S: FnMut(u64, [i16; 3]) -> Option<Event>,
{
    let mut c = Checks {
        log,
        verdict: Verdict::default(),
    };
    c.line(format_args!(
        "pendant_fall: {DEVICE_ID}, fall detector at {RATE_HZ} Hz simulated time"
    ));
    fall_reaches_the_gateway(&mut c, &mut new_pendant());
    for (kind, seed) in LOOK_ALIKES {
        look_alike_publishes_nothing(&mut c, &mut new_pendant(), kind, seed);
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

/// The device side: seals every report-worthy event into an uplink and publishes it.
struct Device {
    key: DeviceKey,
    counter: u32,
    /// What it published, in order (the gateway must get exactly these).
    sent: [Option<Uplink>; 4],
    n_sent: usize,
}

impl Device {
    fn new() -> Self {
        Device {
            key: DeviceKey::new(&TEST_KEY),
            counter: 0,
            sent: [None; 4],
            n_sent: 0,
        }
    }

    /// The report an event goes out as; `Dropped` is diagnostics and stays on the device.
    fn report(event: Event) -> Option<Pendant> {
        match event {
            Event::Impact { impact_mg } => Some(Pendant::Impact { impact_mg }),
            Event::Fall { impact_mg, still_s } => Some(Pendant::Fall { impact_mg, still_s }),
            Event::Cancelled => Some(Pendant::FallCancelled),
            Event::Dropped { .. } => None,
        }
    }

    /// Encodes, seals and publishes `pendant` seen at `now_ms` on the event channel.
    fn publish(
        &mut self,
        c: &mut Checks<'_>,
        broker: &mut MemoryBroker,
        now_ms: u64,
        pendant: Pendant,
    ) -> Option<()> {
        let since_boot = u32::try_from(now_ms / 1_000).unwrap_or(u32::MAX);
        let uplink = Uplink {
            device_time: BOOT_EPOCH_S.saturating_add(since_boot),
            report: Report::Pendant(pendant),
        };
        let mut body = [0u8; MAX_BODY_LEN];
        let body = c.require(encode_uplink(&uplink, &mut body), "device: encode")?;
        self.counter += 1;
        let mut frame = [0u8; MAX_PAYLOAD_LEN];
        let sealed = seal::seal(
            &self.key,
            KEY_ID,
            FrameClass::Uplink,
            DEVICE_ID,
            self.counter,
            body,
            &mut frame,
        );
        let n = c.require(sealed, "device: seal")?;
        let mut topic = TopicBuf::default();
        let written = topic::write_uplink(&mut topic, DEVICE_ID, UpChannel::Event);
        c.require(written, "device: format the topic")?;
        if cfg!(feature = "tamper") {
            frame[n / 2] ^= 0x10; // see the `tamper` feature in Cargo.toml
        }
        let published = broker.publish(topic.as_str(), &frame[..n]);
        c.require(published, "device: publish")?;
        let slot = self.sent.get_mut(self.n_sent);
        *c.require(slot.ok_or("more than 4 reports"), "device: remember")? = Some(uplink);
        self.n_sent += 1;
        c.check(
            true,
            format_args!(
                "device: {pendant:?} as {} B body, {n} B frame #{}, published to {}",
                body.len(),
                self.counter,
                topic.as_str()
            ),
        );
        Some(())
    }

    fn sent(&self) -> impl Iterator<Item = &Uplink> {
        self.sent[..self.n_sent].iter().flatten()
    }
}

/// What a pendant said over one scenario (first of each, with the time).
#[derive(Debug, Default, Clone, Copy)]
struct Said {
    impact: Option<(u64, u16)>,
    fall: Option<(u64, u16, u16)>,
    dropped: Option<u16>,
    cancelled: bool,
    samples: u32,
}

/// Feeds `scenario` to `pendant`; every event goes to `device`. Stops after a fall when
/// `stop_at_fall`.
fn run<S>(
    c: &mut Checks<'_>,
    pendant: &mut S,
    scenario: Scenario,
    device: &mut Device,
    broker: &mut MemoryBroker,
    stop_at_fall: bool,
) -> Said
where
    S: FnMut(u64, [i16; 3]) -> Option<Event>,
{
    let mut said = Said::default();
    for (t, mg) in scenario {
        said.samples += 1;
        let Some(event) = pendant(t, mg) else {
            continue;
        };
        c.line(format_args!("     pendant: {event:?} at {t} ms"));
        match event {
            Event::Impact { impact_mg } => {
                said.impact.get_or_insert((t, impact_mg));
            }
            Event::Fall { impact_mg, still_s } => {
                said.fall.get_or_insert((t, impact_mg, still_s));
            }
            Event::Dropped { impact_mg } => {
                said.dropped.get_or_insert(impact_mg);
            }
            Event::Cancelled => said.cancelled = true,
        }
        if let Some(report) = Device::report(event) {
            // A failure here is already a FAIL line; the gateway side then sees less.
            let _ = device.publish(c, broker, t, report);
        }
        if stop_at_fall && matches!(event, Event::Fall { .. }) {
            break;
        }
    }
    said
}

/// A fall is detected and its reports arrive at the gateway exactly as sent.
fn fall_reaches_the_gateway<S>(c: &mut Checks<'_>, pendant: &mut S)
where
    S: FnMut(u64, [i16; 3]) -> Option<Event>,
{
    let scenario = Scenario::new(Kind::Fall, FALL_SEED, RATE_HZ);
    let hit_at = scenario.impact_at_ms().unwrap_or_default();
    let (mut device, mut broker) = (Device::new(), MemoryBroker::new());
    let said = run(c, pendant, scenario, &mut device, &mut broker, true);
    let (Some((t_impact, impact_mg)), Some((t_fall, fall_mg, still_s))) = (said.impact, said.fall)
    else {
        c.check(
            false,
            format_args!(
                "pendant: fall scenario seed {FALL_SEED} (impact at {hit_at} ms) gave no \
                 impact then fall in {} samples: {said:?}",
                said.samples
            ),
        );
        return;
    };
    c.check(
        t_impact < t_fall && impact_mg == fall_mg && !said.cancelled,
        format_args!(
            "pendant: fall scenario seed {FALL_SEED}: hit at {hit_at} ms, Impact {impact_mg} mg \
             at {t_impact} ms, Fall {fall_mg} mg still {still_s} s at {t_fall} ms ({} samples)",
            said.samples
        ),
    );
    gateway_gets_exactly(c, &mut broker, &device);
}

/// The gateway's side: every message on the broker is on the device's event topic,
/// opens with its key, decodes, and the sequence is exactly what the device sent, a
/// pendant fall last. A bit flipped or the frame moved to another device is refused.
fn gateway_gets_exactly(c: &mut Checks<'_>, broker: &mut MemoryBroker, device: &Device) {
    let key = DeviceKey::new(&TEST_KEY);
    let mut counter = 0;
    let waiting = broker.len();
    let mut sent = device.sent();
    let (mut decoded, mut last) = (0, None);
    while let Some(mut msg) = broker.take() {
        let (topic, frame) = msg.parts_mut();
        let Some((id, channel)) = c.require(topic::parse_uplink(topic), "gateway: topic") else {
            continue;
        };
        let mine = id == DEVICE_ID && channel == UpChannel::Event;
        c.check(
            mine,
            format_args!("gateway: message on {topic} ({channel:?})"),
        );
        if !mine {
            continue;
        }
        let (mut flipped, mut moved) = ([0u8; MAX_PAYLOAD_LEN], [0u8; MAX_PAYLOAD_LEN]);
        let (flipped, moved) = (&mut flipped[..frame.len()], &mut moved[..frame.len()]);
        flipped.copy_from_slice(frame);
        moved.copy_from_slice(frame);
        if let Some(b) = flipped.last_mut() {
            *b ^= 0x01;
        }
        let refused = (
            seal::open(&key, FrameClass::Uplink, id, flipped).err(),
            seal::open(&key, FrameClass::Uplink, "pendant-qemu-2", moved).err(),
        );
        c.check(
            refused == (Some(OpenError::Tampered), Some(OpenError::Tampered)),
            format_args!("gateway: a flipped bit and a moved frame are refused: {refused:?}"),
        );
        let opened = seal::open(&key, FrameClass::Uplink, id, frame);
        let Some((header, body)) = c.require(opened, "gateway: open") else {
            continue;
        };
        counter += 1;
        let Some(uplink) = c.require(decode_uplink(body), "gateway: decode") else {
            continue;
        };
        let expected = sent.next();
        c.check(
            header.counter == counter && header.key_id == KEY_ID && expected == Some(&uplink),
            format_args!(
                "gateway: frame #{} from {id}: {:?} at device time {}",
                header.counter, uplink.report, uplink.device_time
            ),
        );
        (decoded, last) = (decoded + 1, Some(uplink));
    }
    c.check(
        waiting == device.n_sent && decoded == device.n_sent && sent.next().is_none(),
        format_args!(
            "gateway: took {waiting} messages and decoded {decoded}, the device sent {}",
            device.n_sent
        ),
    );
    let fall = matches!(
        last,
        Some(Uplink {
            report: Report::Pendant(Pendant::Fall { .. }),
            ..
        })
    );
    c.check(
        fall,
        format_args!("gateway: pendant fall from {DEVICE_ID} on the event channel"),
    );
}

/// A look-alike runs its whole length without a fall, an impact, or anything published.
fn look_alike_publishes_nothing<S>(c: &mut Checks<'_>, pendant: &mut S, kind: Kind, seed: u64)
where
    S: FnMut(u64, [i16; 3]) -> Option<Event>,
{
    let (mut device, mut broker) = (Device::new(), MemoryBroker::new());
    let scenario = Scenario::new(kind, seed, RATE_HZ);
    let said = run(c, pendant, scenario, &mut device, &mut broker, false);
    c.check(
        said.impact.is_none() && said.fall.is_none() && broker.is_empty(),
        format_args!(
            "look-alike {kind:?} seed {seed}: no fall, nothing published ({} samples, \
             dropped: {:?}, impact: {:?}, fall: {:?})",
            said.samples, said.dropped, said.impact, said.fall
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(_: fmt::Arguments<'_>) {}

    #[test]
    fn the_detector_passes_unless_frames_are_tampered_with() {
        let v = pendant_fall_check(detector_path, &mut quiet);
        assert_eq!(v.is_pass(), !cfg!(feature = "tamper"), "{v:?}");
    }

    #[test]
    fn a_pendant_that_never_reports_fails() {
        let v = pendant_fall_check(|| |_, _| None, &mut quiet);
        assert!(!v.is_pass(), "{v:?}");
    }

    #[test]
    fn a_pendant_that_cries_fall_at_every_hard_hit_fails_the_look_alikes() {
        let trigger_happy = || {
            let mut done = false;
            move |_, mg: [i16; 3]| {
                let m2: i32 = mg.iter().map(|v| i32::from(*v).pow(2)).sum();
                (m2 > 1_800 * 1_800 && !core::mem::replace(&mut done, true)).then_some(
                    Event::Fall {
                        impact_mg: 2_000,
                        still_s: 10,
                    },
                )
            }
        };
        let v = pendant_fall_check(trigger_happy, &mut quiet);
        assert!(v.failed >= LOOK_ALIKES.len() as u16, "{v:?}");
    }
}
