//! Every device kind's application loop but the pendant's (`pendant_device.rs`) and the
//! street light's, end to end at simulated speed: scripted sensors → the kind's
//! application on a [`Device`] → sealed frames, opened and decoded by the protocol crate
//! as the gateway does (topic channel and the kind's allowed reports checked on every
//! frame, every frame acked) → what the gateway received, when. Per kind: the events
//! that matter, a look-alike that must not raise one, telemetry, and thresholds.
//!
//! Events and telemetry travel as the same report type; the tests tell them apart by
//! time (telemetry goes every 900 s, or every 10 s while an alarm condition lasts).

use linli_firmware::app::Application;
use linli_firmware::app::Device;
use linli_firmware::node::{Cadence, Downlinked, FrameBuf, Node};
use linli_firmware::publish::{block_on, flush, Publisher};
use linli_protocol::codec::{decode_uplink, encode_downlink};
use linli_protocol::report::{CommandTarget, Settings, Threshold};
use linli_protocol::seal::{open, seal};
use linli_protocol::topic::{parse_uplink, write_downlink, DownChannel, UpChannel};
use linli_protocol::{DeviceKey, Downlink, FrameClass, Report};

// ---------------------------------------------------------------------------------------
// The rig: a device over scripted sensors, and the gateway's side of the wire.

const KEY: [u8; 32] = [0x24; 32];
const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
/// Telemetry interval in normal times, s.
const REPORT_S: u16 = 900;

/// Scripted sensors of one kind: told the time, then read through the kind's trait.
trait Script<A: Application> {
    fn at(&mut self, now_ms: u64) -> &mut A::Sensors;
}

/// The broker: takes every frame.
#[derive(Default)]
struct Broker {
    frames: Vec<(String, Vec<u8>)>,
}

impl Publisher for Broker {
    type Error = &'static str;
    async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), Self::Error> {
        self.frames.push((topic.to_owned(), payload.to_vec()));
        Ok(())
    }
}

/// One report the gateway received: when it was published, on which channel.
#[derive(Debug, Clone, Copy)]
struct Got {
    t_ms: u64,
    channel: UpChannel,
    report: Report,
}

/// A device of kind `A` over the script `S`, stepped every `step_ms`.
struct Rig<A: Application, S> {
    dev: Device<'static, A, 16, 4>,
    script: S,
    now_ms: u64,
    step_ms: u64,
    commands: u32,
    /// The newest uplink counter the gateway accepted (what it puts in `since`).
    newest: Option<u32>,
    buf: FrameBuf,
    got: Vec<Got>,
}

impl<A: Application, S: Script<A>> Rig<A, S> {
    fn new(app: A, script: S, step_ms: u64) -> Self {
        let cadence = Cadence {
            heartbeat_s: 60,
            report_s: REPORT_S,
            alarm_report_s: 10,
            resend_ms: 10_000,
        };
        let node = Node::new(A::KIND.as_str(), DeviceKey::new(&KEY), 0, 0, cadence, 0, 7);
        Rig {
            dev: Device::new(node, app),
            script,
            now_ms: 0,
            step_ms,
            commands: 0,
            newest: None,
            buf: FrameBuf::default(),
            got: Vec::new(),
        }
    }

    /// Steps the device until (not including) `until_ms`; what the gateway got meanwhile.
    fn run_until(&mut self, until_ms: u64) -> Vec<Got> {
        let from = self.got.len();
        while self.now_ms < until_ms {
            let now = self.now_ms;
            let device_time = 1_764_230_400 + (now / 1_000) as u32;
            self.dev.step(now, device_time, self.script.at(now));
            self.deliver();
            self.now_ms += self.step_ms;
        }
        self.got[from..].to_vec()
    }

    /// Publishes what is due; the gateway opens, checks and acks every frame.
    fn deliver(&mut self) {
        let mut broker = Broker::default();
        // Flash is RAM here.
        self.dev.node.save_counter(|_| true);
        block_on(flush(
            &mut self.dev.node,
            self.now_ms,
            &mut self.buf,
            &mut broker,
        ))
        .expect("the broker is up");
        for (topic, frame) in broker.frames {
            let (device, channel) = parse_uplink(&topic).expect("uplink topic");
            assert_eq!(device, A::KIND.as_str());
            let mut frame = frame;
            let key = DeviceKey::new(&KEY);
            let (h, body) = open(&key, FrameClass::Uplink, device, &mut frame).expect("opens");
            let report = decode_uplink(body).expect("decodes").report;
            assert_eq!(report.channel(), channel, "{report:?} on {topic}");
            assert!(report.allowed_for(A::KIND), "{report:?} from {:?}", A::KIND);
            self.newest = Some(h.counter);
            self.got.push(Got {
                t_ms: self.now_ms,
                channel,
                report,
            });
            let (t, mut f) = self.gateway_seals(
                DownChannel::Ack,
                h.counter,
                Downlink::Ack { counter: h.counter },
            );
            let script = self.script.at(self.now_ms);
            let r = self.dev.downlink(0, &t, &mut f, script).expect("ack opens");
            assert_eq!(r, Downlinked::Acked(h.counter));
        }
    }

    fn gateway_seals(&self, channel: DownChannel, counter: u32, d: Downlink) -> (String, Vec<u8>) {
        let class = match channel {
            DownChannel::Ack => FrameClass::Ack,
            _ => FrameClass::Command,
        };
        let mut body = [0u8; 32];
        let body = encode_downlink(&d, &mut body).expect("encodes");
        let mut frame = [0u8; 64];
        let key = DeviceKey::new(&KEY);
        let id = A::KIND.as_str();
        let n = seal(&key, 0, class, id, counter, body, &mut frame).expect("seals");
        let mut topic = String::new();
        write_downlink(&mut topic, id, channel).expect("topic");
        (topic, frame[..n].to_vec())
    }

    /// Sends `threshold` in a settings frame; whether the device answered "applied".
    fn threshold(&mut self, threshold: Threshold) -> bool {
        self.commands += 1;
        let counter = self.commands;
        let settings = Settings {
            threshold: Some(threshold),
            ..Settings::default()
        };
        let since = self.newest.expect("the gateway has heard the device");
        let (t, mut f) = self.gateway_seals(
            DownChannel::Config,
            counter,
            Downlink::Config { since, settings },
        );
        let script = self.script.at(self.now_ms);
        self.dev
            .downlink(0, &t, &mut f, script)
            .expect("settings open");
        let from = self.got.len();
        self.deliver();
        self.got[from..]
            .iter()
            .find_map(|g| match g.report {
                Report::Answer(a) if a.counter == counter => {
                    assert_eq!(a.check.target, CommandTarget::Config);
                    Some(a.check.applied)
                }
                _ => None,
            })
            .expect("the settings are answered")
    }
}

/// The reports `f` picks, with their times.
fn pick<T>(got: &[Got], f: impl Fn(&Report) -> Option<T>) -> Vec<(u64, T)> {
    got.iter()
        .filter_map(|g| f(&g.report).map(|x| (g.t_ms, x)))
        .collect()
}

/// Telemetry in normal times goes at these times only.
fn telemetry_time(t_ms: u64) -> bool {
    t_ms.checked_rem(u64::from(REPORT_S) * SEC) == Some(0)
}

fn batteries(got: &[Got]) -> Vec<(u64, u16, u8)> {
    pick(got, |r| match r {
        Report::Battery(b) => Some((b.millivolts, b.percent)),
        _ => None,
    })
    .into_iter()
    .map(|(t, (mv, pct))| (t, mv, pct))
    .collect()
}

/// Thresholds that belong to no kind tested here, or to another kind.
fn refused_everywhere<A: Application, S: Script<A>>(rig: &mut Rig<A, S>) {
    assert!(!rig.threshold(Threshold::ImpactMg(3_000)), "a pendant's");
}

// ---------------------------------------------------------------------------------------
// Bed.

mod bed {
    use super::*;
    use linli_firmware::app::bed::{Bed, BedSensors};
    use linli_firmware::sensors::analog::{Battery, LI_ION_1S};
    use linli_protocol::report::Bed as Wire;

    pub struct Pad {
        now: u64,
        pressure: fn(u64) -> u16,
    }

    impl BedSensors for Pad {
        fn pressure(&mut self) -> Option<u16> {
            Some((self.pressure)(self.now))
        }
        fn battery_mv(&mut self) -> Option<u16> {
            Some(3_700)
        }
    }

    impl Script<Bed> for Pad {
        fn at(&mut self, now: u64) -> &mut (dyn BedSensors + 'static) {
            self.now = now;
            self
        }
    }

    fn rig(pressure: fn(u64) -> u16) -> Rig<Bed, Pad> {
        let pad = Pad { now: 0, pressure };
        Rig::new(Bed::new(linli_firmware::bed::Config::default()), pad, 500)
    }

    fn beds(got: &[Got]) -> Vec<(u64, Wire)> {
        pick(got, |r| match r {
            Report::Bed(b) => Some(*b),
            _ => None,
        })
    }

    #[test]
    fn getting_in_and_out_is_reported_at_once_a_blip_and_turning_over_are_not() {
        let mut rig = rig(|t| match t / SEC {
            60..63 => 900, // sitting on the edge for 3 s
            120..400 => match t / SEC {
                200..210 => 500, // turning over: between the levels
                250..258 => 300, // and briefly below "out of bed"
                _ => 900,
            },
            400.. => 50,
            _ => 100,
        });
        let got = rig.run_until(500 * SEC);
        let occupied = |t, occupied, pressure| (t, Wire { occupied, pressure });
        assert_eq!(
            beds(&got),
            [
                occupied(15 * SEC, false, 100),
                occupied(125 * SEC, true, 900),
                occupied(415 * SEC, false, 50),
            ],
            "no bed report at boot (occupancy unknown), none for the blip or turning over"
        );
        assert!(got.iter().all(|g| g.channel != UpChannel::Event));
        // Telemetry repeats the state it knows, with the battery.
        let got = rig.run_until(901 * SEC);
        assert_eq!(beds(&got), [occupied(900 * SEC, false, 50)]);
        let pct = Battery::new(LI_ION_1S).percent(3_700);
        assert!(
            (10..=60).contains(&pct),
            "a 3.7 V cell is neither full nor empty: {pct}"
        );
        assert_eq!(
            batteries(&rig.got),
            [(0, 3_700, pct), (900 * SEC, 3_700, pct)]
        );
        assert!(!rig.dev.app.alarm_condition());
    }

    #[test]
    fn a_bed_takes_no_threshold() {
        let mut rig = rig(|_| 100);
        rig.run_until(SEC);
        refused_everywhere(&mut rig);
        assert!(!rig.threshold(Threshold::WaterAlarmMm(300)));
        assert!(!rig.threshold(Threshold::BinFullPct(90)));
    }
}

// ---------------------------------------------------------------------------------------
// Door.

mod door {
    use super::*;
    use linli_firmware::app::door::{Door, DoorSensors};

    pub struct Reed {
        now: u64,
        open: fn(u64) -> bool,
    }

    impl DoorSensors for Reed {
        fn contact_open(&mut self) -> bool {
            (self.open)(self.now)
        }
        fn battery_mv(&mut self) -> Option<u16> {
            Some(3_000)
        }
    }

    impl Script<Door> for Reed {
        fn at(&mut self, now: u64) -> &mut (dyn DoorSensors + 'static) {
            self.now = now;
            self
        }
    }

    fn rig(open: fn(u64) -> bool) -> Rig<Door, Reed> {
        Rig::new(Door::new(50), Reed { now: 0, open }, 1)
    }

    fn doors(got: &[Got]) -> Vec<(u64, bool)> {
        pick(got, |r| match r {
            Report::Door(d) => Some(d.open),
            _ => None,
        })
    }

    #[test]
    fn openings_are_reported_at_once_and_a_bounce_is_not() {
        let mut rig = rig(|t| match t {
            // A knock rattles the contact for 30 ms, shorter than the debounce.
            10_000..10_030 => t % 2 == 0,
            20_000..25_000 => true,
            // Slammed shut: 20 ms of rattle.
            25_000..25_020 => t % 3 == 0,
            _ => false,
        });
        let got = rig.run_until(30 * SEC);
        let door = doors(&got);
        assert_eq!(door.len(), 3, "{door:?}");
        assert_eq!(door[0], (50, false), "the settled position at boot");
        assert_eq!(door[1], (20_050, true));
        assert!(
            !door[2].1 && (25_050..=25_080).contains(&door[2].0),
            "{door:?}"
        );
        // The position is not repeated as telemetry (the gateway would see a door move).
        rig.step_ms = SEC;
        let got = rig.run_until(1_000 * SEC);
        assert!(doors(&got).is_empty());
        let times: Vec<u64> = batteries(&rig.got).iter().map(|b| b.0).collect();
        assert_eq!(times, [0, 900 * SEC]);
        assert!(!rig.dev.app.alarm_condition());
    }

    #[test]
    fn a_door_takes_no_threshold() {
        let mut rig = rig(|_| false);
        rig.run_until(SEC);
        refused_everywhere(&mut rig);
        assert!(!rig.threshold(Threshold::TiltAlarmCdeg(1_000)));
    }
}

// ---------------------------------------------------------------------------------------
// Motion.

mod motion {
    use super::*;
    use linli_firmware::app::motion::{Motion, MotionSensors};
    use linli_protocol::report::Motion as Wire;

    pub struct Pir {
        now: u64,
        level: fn(u64) -> bool,
    }

    impl MotionSensors for Pir {
        fn pir(&mut self) -> bool {
            (self.level)(self.now)
        }
        fn battery_mv(&mut self) -> Option<u16> {
            Some(3_600)
        }
    }

    impl Script<Motion> for Pir {
        fn at(&mut self, now: u64) -> &mut (dyn MotionSensors + 'static) {
            self.now = now;
            self
        }
    }

    fn rig(level: fn(u64) -> bool) -> Rig<Motion, Pir> {
        let app = Motion::new(linli_firmware::motion::Config::default(), 0);
        Rig::new(app, Pir { now: 0, level }, 500)
    }

    #[test]
    fn first_trigger_at_once_then_one_count_per_hold_off_and_warm_up_ignored() {
        // The PIR output goes high for 2 s per trigger; at 200 s someone stays in view
        // for 15 s (one rising edge: one trigger).
        let mut rig = rig(|t| {
            matches!(
                t / SEC,
                10 | 11 | 40 | 41 | 50 | 51 | 60 | 61 | 70 | 71 | 200..215
            )
        });
        let got = rig.run_until(400 * SEC);
        let motion = pick(&got, |r| match r {
            Report::Motion(m) => Some(*m),
            _ => None,
        });
        let seen = |t, count| {
            (
                t,
                Wire {
                    motion: true,
                    count,
                },
            )
        };
        assert_eq!(
            motion,
            [seen(40 * SEC, 1), seen(100 * SEC, 3), seen(200 * SEC, 1)],
            "the warm-up trigger at 10 s is ignored; 50–70 s counted, reported at 100 s"
        );
        let times: Vec<u64> = batteries(&got).iter().map(|b| b.0).collect();
        assert_eq!(times, [0], "telemetry is the battery");
    }

    #[test]
    fn a_pir_takes_no_threshold() {
        let mut rig = rig(|_| false);
        rig.run_until(SEC);
        refused_everywhere(&mut rig);
        assert!(!rig.threshold(Threshold::WaterAlarmMm(300)));
        assert!(!rig.dev.app.alarm_condition());
    }
}

// ---------------------------------------------------------------------------------------
// Vitals.

mod vitals {
    use super::*;
    use linli_firmware::app::vitals::{Vitals, VitalsSensors};
    use linli_firmware::vitals::synth::{self, Sample, Synth};
    use linli_protocol::report::Vitals as Wire;

    /// A PPG front end: the synthetic samples due by now, a FIFO's worth at a time; the
    /// reads fail (and the samples are lost) over `lost`.
    pub struct Finger {
        now: u64,
        synth: Synth,
        pending: Option<Sample>,
        lost: std::ops::Range<u64>,
    }

    impl VitalsSensors for Finger {
        fn ppg(&mut self, out: &mut [(u32, u32)]) -> Option<usize> {
            let mut n = 0;
            while n < out.len() {
                let s = self.pending.take().unwrap_or_else(|| self.synth.sample());
                if s.t_ms > self.now {
                    self.pending = Some(s);
                    break;
                }
                out[n] = (s.red, s.ir);
                n += 1;
            }
            (!self.lost.contains(&self.now)).then_some(n)
        }
        fn battery_mv(&mut self) -> Option<u16> {
            Some(4_000)
        }
    }

    impl Script<Vitals> for Finger {
        fn at(&mut self, now: u64) -> &mut (dyn VitalsSensors + 'static) {
            self.now = now;
            self
        }
    }

    fn rig(cfg: synth::Config, lost: std::ops::Range<u64>) -> Rig<Vitals, Finger> {
        let finger = Finger {
            now: 0,
            synth: Synth::new(cfg),
            pending: None,
            lost,
        };
        let app = Vitals::new(linli_firmware::vitals::Config::default());
        // 25 samples a read at 100 samples/s.
        Rig::new(app, finger, 250)
    }

    fn vitals(got: &[Got]) -> Vec<(u64, Wire)> {
        pick(got, |r| match r {
            Report::Vitals(v) => Some(*v),
            _ => None,
        })
    }

    #[test]
    fn a_steady_finger_gives_heart_rate_and_spo2_as_telemetry() {
        // 72 bpm, 97 %.
        let mut rig = rig(synth::Config::default(), 0..0);
        let got = rig.run_until(910 * SEC);
        let v = vitals(&got);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(
            v[0],
            (
                0,
                Wire {
                    heart_rate_bpm: 0,
                    spo2_pct: 0,
                    respiration_bpm: 0,
                    quality: 0
                }
            )
        );
        let (t, w) = v[1];
        assert_eq!(t, 900 * SEC);
        assert!(w.heart_rate_bpm.abs_diff(72) <= 3, "{w:?}");
        assert!(w.spo2_pct.abs_diff(97) <= 2, "{w:?}");
        assert!(w.quality >= 50, "{w:?}");
        assert!(got.iter().all(|g| g.channel != UpChannel::Event));
        let latest = rig.dev.app.latest();
        assert!(latest.heart_rate_bpm.abs_diff(72) <= 3, "{latest:?}");
    }

    #[test]
    fn the_estimate_recovers_after_lost_samples() {
        let mut rig = rig(synth::Config::default(), 20_000..20_400);
        rig.run_until(20 * SEC);
        let before = rig.dev.app.latest();
        assert!(before.heart_rate_bpm.abs_diff(72) <= 3, "{before:?}");
        rig.run_until(21 * SEC);
        assert_eq!(
            rig.dev.app.latest().heart_rate_bpm,
            0,
            "history dropped at the gap"
        );
        rig.run_until(35 * SEC);
        let after = rig.dev.app.latest();
        assert!(after.heart_rate_bpm.abs_diff(72) <= 3, "{after:?}");
        assert!(after.spo2_pct.abs_diff(97) <= 2, "{after:?}");
    }

    #[test]
    fn no_finger_no_estimate() {
        let cfg = synth::Config {
            finger: false,
            ..synth::Config::default()
        };
        let mut rig = rig(cfg, 0..0);
        rig.run_until(60 * SEC);
        let got = rig.run_until(901 * SEC);
        let v = vitals(&got);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].1,
            Wire {
                heart_rate_bpm: 0,
                spo2_pct: 0,
                respiration_bpm: 0,
                quality: 0
            }
        );
        assert_eq!(rig.dev.app.latest(), Default::default());
        refused_everywhere(&mut rig);
        assert!(!rig.threshold(Threshold::WaterAlarmMm(300)));
        assert!(!rig.dev.app.alarm_condition());
    }
}

// ---------------------------------------------------------------------------------------
// Hazard.

mod hazard {
    use super::*;
    use linli_firmware::app::hazard::{Hazard, HazardSensors};
    use linli_protocol::report::{Hazard as Wire, HazardKind};
    use linli_protocol::EventKind;

    pub struct Detector {
        now: u64,
        kind: HazardKind,
        output: fn(u64) -> bool,
        level: fn(u64) -> Option<u16>,
    }

    impl HazardSensors for Detector {
        fn hazard(&self) -> HazardKind {
            self.kind
        }
        fn alarm_output(&mut self) -> bool {
            (self.output)(self.now)
        }
        fn level(&mut self) -> Option<u16> {
            (self.level)(self.now)
        }
        fn battery_mv(&mut self) -> Option<u16> {
            Some(2_900)
        }
    }

    impl Script<Hazard> for Detector {
        fn at(&mut self, now: u64) -> &mut (dyn HazardSensors + 'static) {
            self.now = now;
            self
        }
    }

    fn rig(
        kind: HazardKind,
        output: fn(u64) -> bool,
        level: fn(u64) -> Option<u16>,
    ) -> Rig<Hazard, Detector> {
        let detector = Detector {
            now: 0,
            kind,
            output,
            level,
        };
        Rig::new(Hazard::new(1_000), detector, 100)
    }

    fn hazards(got: &[Got]) -> Vec<(u64, UpChannel, Wire)> {
        got.iter()
            .filter_map(|g| match g.report {
                Report::Hazard(h) => Some((g.t_ms, g.channel, h)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn smoke_alarm_on_at_once_as_an_event_fast_telemetry_then_off_and_a_glitch_is_nothing() {
        let mut rig = rig(
            HazardKind::Smoke,
            // A 300 ms glitch at 10 s (the test button tapped), then smoke for a minute.
            |t| (10_000..10_300).contains(&t) || (30_000..90_000).contains(&t),
            |t| {
                Some(if (30_000..90_000).contains(&t) {
                    150
                } else {
                    5
                })
            },
        );
        let got = rig.run_until(30 * SEC);
        let quiet = Wire {
            hazard: HazardKind::Smoke,
            alarm: false,
            level: 5,
        };
        assert_eq!(
            hazards(&got),
            [(SEC, UpChannel::Telemetry, quiet)],
            "the settled state once known, nothing for the glitch"
        );
        let got = rig.run_until(200 * SEC);
        let h = hazards(&got);
        let alarm = Wire {
            hazard: HazardKind::Smoke,
            alarm: true,
            level: 150,
        };
        assert_eq!(h[0], (31 * SEC, UpChannel::Event, alarm), "{h:?}");
        let on = got
            .iter()
            .find(|g| matches!(g.report, Report::Hazard(_)))
            .expect("alarm");
        assert_eq!(on.report.event(), Some(EventKind::Smoke));
        // While in alarm, telemetry every 10 s (each one an event too); then the all-clear.
        let during: Vec<u64> = h[1..].iter().filter(|x| x.2.alarm).map(|x| x.0).collect();
        assert_eq!(during, [31, 41, 51, 61, 71, 81].map(|s| s * SEC));
        // The all-clear at once (and the telemetry due then, at the normal cadence again).
        let after: Vec<_> = h.iter().filter(|x| !x.2.alarm).collect();
        assert!(!after.is_empty(), "{h:?}");
        assert!(
            after
                .iter()
                .all(|x| **x == (91 * SEC, UpChannel::Telemetry, quiet)),
            "{h:?}"
        );
        assert!(!rig.dev.app.alarm_condition());
    }

    #[test]
    fn a_leak_detector_without_a_level_reports_its_output_as_the_level() {
        let mut rig = rig(HazardKind::Water, |t| t >= 5_000, |_| None);
        let got = rig.run_until(7 * SEC);
        let h = hazards(&got);
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h[0].2.level, 0);
        assert_eq!(h[1].0, 6 * SEC);
        assert_eq!(h[1].2.level, 1);
        assert!(rig.dev.app.alarm_condition());
        let on = pick(&got, |r| r.event())
            .into_iter()
            .map(|e| e.1)
            .collect::<Vec<_>>();
        assert_eq!(
            on,
            [EventKind::WaterLeak, EventKind::WaterLeak],
            "the event, then telemetry"
        );
        refused_everywhere(&mut rig);
        assert!(!rig.threshold(Threshold::WaterAlarmMm(10)));
    }
}

// ---------------------------------------------------------------------------------------
// Manhole.

mod manhole {
    use super::*;
    use linli_firmware::app::manhole::{Manhole, ManholeSensors};
    use linli_firmware::manhole::CoverState;
    use linli_protocol::report::Manhole as Wire;

    /// Gravity (1000 mg) tilted by `deg` about the x axis.
    fn g(deg: f32) -> [i16; 3] {
        let r = deg.to_radians();
        [0, (1000.0 * r.sin()) as i16, (1000.0 * r.cos()) as i16]
    }

    /// Installed 5° off level.
    const INSTALLED: f32 = 5.0;

    pub struct Cover {
        now: u64,
        tilt_deg: fn(u64) -> f32,
        water_mm: fn(u64) -> u16,
    }

    impl ManholeSensors for Cover {
        fn acceleration_mg(&mut self) -> Option<[i16; 3]> {
            Some(g((self.tilt_deg)(self.now)))
        }
        fn water_mm(&mut self) -> Option<u16> {
            Some((self.water_mm)(self.now))
        }
        fn gas_ppm(&mut self) -> Option<u16> {
            Some(3)
        }
        fn battery_mv(&mut self) -> Option<u16> {
            Some(3_500)
        }
    }

    impl Script<Manhole> for Cover {
        fn at(&mut self, now: u64) -> &mut (dyn ManholeSensors + 'static) {
            self.now = now;
            self
        }
    }

    fn rig(
        app: Manhole,
        tilt_deg: fn(u64) -> f32,
        water_mm: fn(u64) -> u16,
    ) -> Rig<Manhole, Cover> {
        let cover = Cover {
            now: 0,
            tilt_deg,
            water_mm,
        };
        Rig::new(app, cover, SEC)
    }

    fn manhole() -> Manhole {
        let water = linli_firmware::water_level::Config::default();
        Manhole::new(linli_firmware::manhole::Config::default(), water, 5 * SEC)
    }

    fn covers(got: &[Got]) -> Vec<(u64, Wire)> {
        pick(got, |r| match r {
            Report::Manhole(m) => Some(*m),
            _ => None,
        })
    }

    #[test]
    fn tilted_removed_and_back_at_once_a_passing_truck_is_not() {
        let mut rig = rig(
            manhole(),
            |t| match t / SEC {
                120 => 17.0,       // a truck rocks the cover for one sample
                200..300 => 17.0,  // pried 12° from its position
                300..400 => 125.0, // lifted off
                _ => INSTALLED,
            },
            |_| 100,
        );
        let got = rig.run_until(200 * SEC);
        let m = covers(&got);
        assert_eq!(m.len(), 2, "boot telemetry and the learnt position: {m:?}");
        assert_eq!(m[0].0, 0);
        assert_eq!(
            (m[1].0, m[1].1.water_mm, m[1].1.gas_ppm),
            (75 * SEC, 100, 3)
        );
        assert!(m[1].1.tilt_cdeg < 20, "{m:?}");
        assert!(rig.dev.app.installed().is_some());

        let got = rig.run_until(406 * SEC);
        let m = covers(&got);
        let first_tilted = m.iter().find(|x| x.1.tilt_cdeg > 1_000).expect("tilted");
        assert_eq!(first_tilted.0, 205 * SEC, "two samples in a row: {m:?}");
        assert!((1_150..=1_250).contains(&first_tilted.1.tilt_cdeg), "{m:?}");
        let first_removed = m.iter().find(|x| x.1.tilt_cdeg > 9_000).expect("removed");
        assert_eq!(first_removed.0, 300 * SEC, "at once");
        let last = m.last().expect("level again");
        assert_eq!(last.0, 405 * SEC);
        assert!(last.1.tilt_cdeg < 800, "{m:?}");
        // While open, telemetry every 10 s.
        assert!(m.windows(2).all(|w| w[1].0 - w[0].0 <= 10 * SEC), "{m:?}");
        assert_eq!(rig.dev.app.cover(), CoverState::Level);
        assert!(!rig.dev.app.alarm_condition());
        let got = rig.run_until(899 * SEC);
        assert!(covers(&got).is_empty(), "back to the normal cadence");
    }

    #[test]
    fn water_rising_under_the_cover_is_reported_while_still_low() {
        let mut rig = rig(
            manhole(),
            |_| INSTALLED,
            |t| {
                let rise = t.saturating_sub(100 * SEC) * 30 / MIN; // 30 mm/min from 100 s
                (20 + rise).min(400) as u16
            },
        );
        let got = rig.run_until(600 * SEC);
        let m: Vec<_> = covers(&got)
            .into_iter()
            .filter(|x| x.0 > 75 * SEC)
            .collect();
        assert!(m[0].0 > 100 * SEC && m[0].1.water_mm < 150, "{m:?}");
        assert!(rig.dev.app.alarm_condition());
        assert!(m.iter().any(|x| x.1.water_mm >= 250));
        assert!(m.windows(2).all(|w| w[1].0 - w[0].0 <= 10 * SEC), "{m:?}");
    }

    #[test]
    fn thresholds_tilt_while_level_and_water_while_calm() {
        let mut rig = rig(
            manhole(),
            |t| {
                if (200..300).contains(&(t / SEC)) {
                    17.0
                } else {
                    INSTALLED
                }
            },
            |_| 100,
        );
        rig.run_until(100 * SEC);
        let installed = rig.dev.app.installed();
        assert!(!rig.threshold(Threshold::TiltAlarmCdeg(100)), "under 3°");
        assert!(!rig.threshold(Threshold::TiltAlarmCdeg(9_500)), "over 60°");
        assert!(rig.threshold(Threshold::TiltAlarmCdeg(1_500)));
        assert_eq!(rig.dev.app.installed(), installed, "the position is kept");
        assert!(rig.threshold(Threshold::WaterAlarmMm(400)));
        assert!(
            !rig.threshold(Threshold::WaterAlarmMm(100)),
            "under the warning level"
        );
        assert!(!rig.threshold(Threshold::BinFullPct(80)));
        refused_everywhere(&mut rig);
        // 12° is under the new 15°: no report but the telemetry the settings pulled in.
        let got = rig.run_until(300 * SEC);
        let m = covers(&got);
        assert!(m.iter().all(|x| x.0 == 100 * SEC), "{m:?}");
        assert_eq!(rig.dev.app.cover(), CoverState::Level);
        assert!(!rig.dev.app.alarm_condition());
        // Tilted past a 10° threshold again, a new one is refused until it is level.
        let tilted_at_100_s = |t| if t >= 100 * SEC { 17.0 } else { INSTALLED };
        let mut rig = self::rig(manhole(), tilted_at_100_s, |_| 100);
        rig.run_until(120 * SEC);
        assert_eq!(rig.dev.app.cover(), CoverState::Tilted);
        assert!(!rig.threshold(Threshold::TiltAlarmCdeg(1_500)));
    }

    #[test]
    fn a_restored_position_catches_a_cover_left_open_over_a_reboot() {
        let app = manhole().with_installed(g(INSTALLED));
        let mut rig = rig(app, |_| 125.0, |_| 100);
        let got = rig.run_until(SEC);
        let m = covers(&got);
        assert!(m.iter().all(|x| x.1.tilt_cdeg > 9_000), "{m:?}");
        assert_eq!(rig.dev.app.cover(), CoverState::Removed);
        assert!(rig.dev.app.alarm_condition());
    }
}

// ---------------------------------------------------------------------------------------
// Water level.

mod water_level {
    use super::*;
    use linli_firmware::app::water_level::{WaterLevel, WaterLevelSensors};
    use linli_firmware::sensors::analog::Transducer;
    use linli_firmware::virtual_sensors::{VirtualTransducer, WaterRise};
    use linli_firmware::water_level::{Config, WaterState};

    /// A 4–20 mA transducer (0–2 m) read across 150 Ω, in the virtual water.
    pub struct Probe {
        adc: VirtualTransducer,
    }

    impl WaterLevelSensors for Probe {
        fn level_mm(&mut self) -> Option<u16> {
            let transducer = self.adc.transducer;
            transducer.read_mm(&mut self.adc).ok()
        }
        fn battery_mv(&mut self) -> Option<u16> {
            None
        }
    }

    impl Script<WaterLevel> for Probe {
        fn at(&mut self, now: u64) -> &mut (dyn WaterLevelSensors + 'static) {
            self.adc.set_time(now);
            self
        }
    }

    fn rig(water: WaterRise) -> Rig<WaterLevel, Probe> {
        let adc = VirtualTransducer::new(Transducer::current_loop(150, 2_000), water);
        Rig::new(
            WaterLevel::new(Config::default(), 10 * SEC),
            Probe { adc },
            10 * SEC,
        )
    }

    fn rise(from_ms: u64, mm_per_min: i32) -> WaterRise {
        WaterRise {
            base_mm: 20,
            from_ms,
            mm_per_min,
            max_mm: 400,
        }
    }

    fn levels(got: &[Got]) -> Vec<(u64, u16)> {
        pick(got, |r| match r {
            Report::WaterLevel(w) => Some(w.level_mm),
            _ => None,
        })
    }

    #[test]
    fn a_flash_flood_is_reported_rising_before_the_warning_level() {
        // Dry for 10 min, then 15 mm a minute.
        let mut rig = rig(rise(10 * MIN, 15));
        let got = rig.run_until(800 * SEC);
        assert_eq!(levels(&got).len(), 1, "boot telemetry only: {got:?}");
        assert!(!rig.dev.app.alarm_condition());
        let got = rig.run_until(1_600 * SEC);
        let l = levels(&got);
        let (t, first) = l[0];
        assert!(first < 150, "flagged rising at {first} mm ({t} ms)");
        assert!(rig.dev.app.alarm_condition());
        assert!(
            l.windows(2).all(|w| w[1].0 - w[0].0 <= 10 * SEC),
            "fast cadence: {l:?}"
        );
        assert_eq!(rig.dev.app.gauge().state(), WaterState::Alarm);
        assert!(l.iter().any(|x| x.1 >= 250));
        assert!(batteries(&got).is_empty(), "mains powered");
    }

    #[test]
    fn water_rising_slowly_is_telemetry_only() {
        // 2 mm a minute for an hour: 20 → 140 mm, under the warning level.
        let mut rig = rig(rise(0, 2));
        let got = rig.run_until(3_601 * SEC);
        let l = levels(&got);
        let times: Vec<u64> = l.iter().map(|x| x.0).collect();
        assert_eq!(
            times,
            [0, 900, 1_800, 2_700, 3_600].map(|s| s * SEC),
            "{l:?}"
        );
        assert!((135..=145).contains(&l[4].1), "{l:?}");
        assert!(!rig.dev.app.alarm_condition());
    }

    #[test]
    fn the_alarm_level_is_taken_while_the_water_is_calm() {
        let mut rig = rig(rise(0, 0));
        rig.run_until(60 * SEC);
        assert!(rig.threshold(Threshold::WaterAlarmMm(200)));
        assert_eq!(rig.dev.app.config().alarm_mm, 200);
        assert!(
            !rig.threshold(Threshold::WaterAlarmMm(150)),
            "at the warning level"
        );
        assert!(
            !rig.threshold(Threshold::WaterAlarmMm(20_000)),
            "beyond any gauge"
        );
        assert!(!rig.threshold(Threshold::TiltAlarmCdeg(1_000)));
        assert!(!rig.threshold(Threshold::BinFullPct(90)));
        refused_everywhere(&mut rig);
        // The water up at the warning level: no new alarm level now.
        let mut rig = self::rig(WaterRise {
            base_mm: 180,
            ..rise(0, 0)
        });
        rig.run_until(30 * SEC);
        assert_eq!(rig.dev.app.gauge().state(), WaterState::Warning);
        assert!(!rig.threshold(Threshold::WaterAlarmMm(300)));
        assert!(rig.dev.app.alarm_condition());
    }
}

// ---------------------------------------------------------------------------------------
// Waste bin.

mod waste_bin {
    use super::*;
    use linli_firmware::app::waste_bin::{WasteBin, WasteBinSensors};
    use linli_firmware::sensors::echo::Ultrasonic;
    use linli_protocol::report::WasteBin as Wire;

    /// The round trip of an echo off something `mm` away.
    fn echo_us(mm: u32) -> u32 {
        (mm * 2_000).div_ceil(343)
    }

    /// An ultrasonic sensor in the lid (echo times, `None`: no echo) and a thermometer.
    pub struct Bin {
        now: u64,
        echo_us: fn(u64) -> Option<u32>,
        temperature_dc: fn(u64) -> i16,
    }

    impl WasteBinSensors for Bin {
        fn distance_mm(&mut self) -> Option<u16> {
            (self.echo_us)(self.now).and_then(|us| Ultrasonic::default().distance_mm(us, None))
        }
        fn temperature_dc(&mut self) -> Option<i16> {
            Some((self.temperature_dc)(self.now))
        }
        fn tilt_deg(&mut self) -> Option<u8> {
            Some(2)
        }
        fn battery_mv(&mut self) -> Option<u16> {
            Some(3_800)
        }
    }

    impl Script<WasteBin> for Bin {
        fn at(&mut self, now: u64) -> &mut (dyn WasteBinSensors + 'static) {
            self.now = now;
            self
        }
    }

    fn rig(echo_us: fn(u64) -> Option<u32>, temperature_dc: fn(u64) -> i16) -> Rig<WasteBin, Bin> {
        let bin = Bin {
            now: 0,
            echo_us,
            temperature_dc,
        };
        let app = WasteBin::new(linli_firmware::waste_bin::Config::default(), 90, MIN);
        Rig::new(app, bin, 10 * SEC)
    }

    fn bins(got: &[Got]) -> Vec<(u64, Wire)> {
        pick(got, |r| match r {
            Report::WasteBin(w) => Some(*w),
            _ => None,
        })
    }

    #[test]
    fn full_and_emptied_at_once_a_lid_opened_briefly_is_not_full() {
        let mut rig = rig(
            |t| match t / MIN {
                30 | 31 => Some(echo_us(100)), // the lid open: a hand under the sensor
                40 | 41 => None,               // the lid open: no echo
                60..120 => Some(echo_us(200)), // filled to the brim
                120.. => Some(echo_us(1_000)), // emptied
                _ => Some(echo_us(575)),       // half full
            },
            // A sunny day: 25 °C warming by 0.1 °C a minute.
            |t| 250 + (t / MIN) as i16,
        );
        let got = rig.run_until(150 * MIN);
        let events: Vec<(u64, u8)> = bins(&got)
            .into_iter()
            .filter(|x| !telemetry_time(x.0))
            .map(|(t, w)| (t, w.fill_pct))
            .collect();
        assert_eq!(
            events,
            [(4 * MIN, 50), (62 * MIN, 94), (122 * MIN, 0)],
            "the first fill, full, emptied"
        );
        let w = bins(&got)
            .into_iter()
            .find(|x| x.0 == 62 * MIN)
            .expect("full")
            .1;
        assert_eq!((w.temperature_dc, w.tilt_deg), (312, 2));
        assert!(!rig.dev.app.alarm_condition(), "a sunny day is no fire");
        assert_eq!(rig.dev.app.full(), Some(false));
        assert_eq!(batteries(&got).len(), 10, "boot and every 15 min");
    }

    #[test]
    fn fire_at_once_fast_telemetry_while_it_burns() {
        let mut rig = rig(
            |_| Some(echo_us(575)),
            |t| match t / MIN {
                ..10 => 300,
                10..20 => 300 + ((t / MIN - 9) * 80) as i16, // smouldering: +8 °C a minute
                _ => 200,                                    // put out
            },
        );
        let got = rig.run_until(30 * MIN);
        let b = bins(&got);
        let fire = b.iter().find(|x| x.0 > 5 * MIN && !telemetry_time(x.0));
        assert_eq!(
            fire.map(|x| (x.0, x.1.temperature_dc)),
            Some((10 * MIN, 380)),
            "{b:?}"
        );
        let during: Vec<_> = b
            .iter()
            .filter(|x| (10 * MIN..20 * MIN).contains(&x.0))
            .collect();
        assert!(
            during.windows(2).all(|w| w[1].0 - w[0].0 <= 10 * SEC),
            "{during:?}"
        );
        assert_eq!(
            b.iter()
                .find(|x| x.0 >= 20 * MIN)
                .map(|x| (x.0, x.1.temperature_dc)),
            Some((20 * MIN, 200)),
            "out at once"
        );
        assert!(!rig.dev.app.fire());
        assert!(!rig.dev.app.alarm_condition());
        assert!(
            b.iter().all(|x| x.0 <= 20 * MIN || telemetry_time(x.0)),
            "{b:?}"
        );
    }

    #[test]
    fn the_full_level_is_the_gateways() {
        // 85 % full.
        let mut rig = rig(|_| Some(echo_us(277)), |_| 200);
        rig.run_until(5 * MIN);
        assert_eq!(rig.dev.app.full(), Some(false));
        assert!(!rig.threshold(Threshold::BinFullPct(30)), "under half");
        assert!(!rig.threshold(Threshold::BinFullPct(101)));
        assert!(!rig.threshold(Threshold::WaterAlarmMm(300)));
        refused_everywhere(&mut rig);
        assert!(rig.threshold(Threshold::BinFullPct(80)));
        let got = rig.run_until(7 * MIN);
        assert_eq!(rig.dev.app.full(), Some(true));
        assert!(bins(&got).iter().any(|x| x.1.fill_pct == 85));
    }
}
