//! The pendant's whole loop on the host at simulated speed: scenario samples → fall
//! detector → reports → outbox → sealed frames, checked by the gateway's own opener and
//! decoder (the protocol crate); acks, an outage, settings and commands from the gateway.

use std::collections::VecDeque;

use linli_firmware::app::pendant::{Pendant, PendantSensors};
use linli_firmware::app::Device;
use linli_firmware::fall::scenario::{Kind, Scenario};
use linli_firmware::node::{Cadence, DownlinkError, Downlinked, FrameBuf, Node, COUNTER_BLOCK};
use linli_firmware::outbox::Priority;
use linli_firmware::publish::{block_on, flush, Publisher};
use linli_firmware::{fall, sos};
use linli_protocol::codec::encode_downlink;
use linli_protocol::report::{
    Command, CommandTarget, Heartbeat, Pendant as Wire, Settings, Threshold,
};
use linli_protocol::seal::{open, seal};
use linli_protocol::topic::{parse_uplink, write_downlink, DownChannel};
use linli_protocol::{decode_uplink, DeviceKey, Downlink, FrameClass, Report, Uplink};

const ID: &str = "pendant-7";
const KEY: [u8; 32] = [0x42; 32];

/// Sensors replaying a scenario, one sample per step; buttons pressed on cue.
struct Script {
    samples: VecDeque<(u64, [i16; 3])>,
    press_from_ms: Option<(u64, u64)>,
    now_ms: u64,
}

impl Script {
    fn new(sc: Scenario) -> Self {
        let press = sc.cancel_at_ms().map(|t| (t, t + 200));
        Script {
            samples: sc.collect(),
            press_from_ms: press,
            now_ms: 0,
        }
    }
}

impl PendantSensors for Script {
    fn acceleration_mg(&mut self) -> Option<[i16; 3]> {
        self.samples.pop_front().map(|(_, a)| a)
    }
    fn sos_pressed(&mut self) -> bool {
        self.cancel_pressed()
    }
    fn cancel_pressed(&mut self) -> bool {
        self.press_from_ms
            .is_some_and(|(from, to)| (from..to).contains(&self.now_ms))
    }
    fn battery_mv(&mut self) -> Option<u16> {
        Some(3_900)
    }
}

/// The broker, as far as the device can tell: takes frames while up.
#[derive(Default)]
struct Broker {
    down: bool,
    frames: Vec<(String, Vec<u8>)>,
}

impl Publisher for Broker {
    type Error = &'static str;
    async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), Self::Error> {
        if self.down {
            return Err("connection lost");
        }
        self.frames.push((topic.to_owned(), payload.to_vec()));
        Ok(())
    }
}

/// What the gateway does with a frame: open, decode, check the topic; (counter, uplink).
fn gateway_opens(topic: &str, frame: &[u8]) -> (u32, Uplink) {
    let (device, channel) = parse_uplink(topic).expect("uplink topic");
    assert_eq!(device, ID);
    let mut frame = frame.to_vec();
    let (h, body) = open(&DeviceKey::new(&KEY), FrameClass::Uplink, ID, &mut frame).expect("opens");
    let uplink = decode_uplink(body).expect("decodes");
    assert_eq!(uplink.report.channel(), channel, "{uplink:?} on {topic}");
    assert!(uplink
        .report
        .allowed_for(linli_protocol::DeviceKind::Pendant));
    (h.counter, uplink)
}

/// A downlink sealed the way the gateway seals it.
fn gateway_seals(channel: DownChannel, counter: u32, d: Downlink) -> (String, Vec<u8>) {
    let class = if channel == DownChannel::Ack {
        FrameClass::Ack
    } else {
        FrameClass::Command
    };
    let mut body = [0u8; 32];
    let body = encode_downlink(&d, &mut body).expect("encodes");
    let mut frame = [0u8; 64];
    let n = seal(
        &DeviceKey::new(&KEY),
        0,
        class,
        ID,
        counter,
        body,
        &mut frame,
    )
    .expect("seals");
    let mut topic = String::new();
    write_downlink(&mut topic, ID, channel).expect("topic");
    (topic, frame[..n].to_vec())
}

type Pen = Device<'static, Pendant, 16, 4>;

fn pendant(counter: u32) -> Pen {
    let cadence = Cadence {
        heartbeat_s: 60,
        report_s: 300,
        alarm_report_s: 5,
        resend_ms: 10_000,
    };
    let node = Node::new(ID, DeviceKey::new(&KEY), 0, counter, cadence, 0, 7);
    Device::new(
        node,
        Pendant::new(fall::Config::default(), sos::Config::default()),
    )
}

/// Runs the device over `script` at 100 Hz until the samples end, publishing each step
/// and (when `ack`) acking what the gateway received. Returns what the gateway received.
fn run(dev: &mut Pen, script: &mut Script, broker: &mut Broker, ack: bool) -> Vec<(u32, Uplink)> {
    let mut buf = FrameBuf::default();
    let mut got = Vec::new();
    while let Some(&(now, _)) = script.samples.front() {
        script.now_ms = now;
        dev.step(now, 1_764_230_400 + (now / 1000) as u32, script);
        // Flash is RAM here.
        dev.node.save_counter(|_| true);
        if block_on(flush(&mut dev.node, now, &mut buf, broker)).is_err() {
            continue;
        }
        for (topic, frame) in broker.frames.drain(..) {
            let (counter, uplink) = gateway_opens(&topic, &frame);
            got.push((counter, uplink));
            if ack {
                let (t, mut f) =
                    gateway_seals(DownChannel::Ack, counter, Downlink::Ack { counter });
                let r = dev.downlink(0, &t, &mut f, script).expect("ack opens");
                assert_eq!(r, Downlinked::Acked(counter));
            }
        }
    }
    got
}

fn pendant_reports(got: &[(u32, Uplink)]) -> Vec<Wire> {
    got.iter()
        .filter_map(|(_, u)| match u.report {
            Report::Pendant(
                p @ (Wire::Fall { .. } | Wire::Impact { .. } | Wire::FallCancelled | Wire::Sos),
            ) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fall_goes_out_sealed_is_acked_and_leaves_the_outbox() {
    let mut dev = pendant(1_000);
    let mut script = Script::new(Scenario::new(Kind::Fall, 3, 100));
    let mut broker = Broker::default();
    let got = run(&mut dev, &mut script, &mut broker, true);
    let events = pendant_reports(&got);
    assert!(
        matches!(events.as_slice(), [Wire::Impact { .. }, Wire::Fall { impact_mg, .. }] if *impact_mg >= 2_500),
        "{events:?}"
    );
    // Heartbeats, activity and battery went too, each under its own counter.
    assert!(got
        .iter()
        .any(|(_, u)| matches!(u.report, Report::Heartbeat(_))));
    assert!(got
        .iter()
        .any(|(_, u)| matches!(u.report, Report::Battery(_))));
    let mut counters: Vec<u32> = got.iter().map(|(c, _)| *c).collect();
    counters.dedup();
    assert!(
        counters.windows(2).all(|w| w[0] < w[1]),
        "counters in order: {counters:?}"
    );
    assert!(counters[0] >= 1_000, "continues from the persisted counter");
    assert!(
        dev.node.outbox().is_empty(),
        "every acked frame left the outbox"
    );
    assert_eq!(dev.node.counter(), 1_000 + got.len() as u32);
}

#[test]
fn look_alikes_send_no_fall() {
    for kind in [Kind::SitHard, Kind::Drop, Kind::Jog, Kind::LieDown] {
        for seed in 0..5 {
            let mut dev = pendant(0);
            let mut script = Script::new(Scenario::new(kind, seed, 100));
            let got = run(&mut dev, &mut script, &mut Broker::default(), true);
            let events = pendant_reports(&got);
            assert!(
                !events.iter().any(|e| matches!(e, Wire::Fall { .. })),
                "{kind:?}/{seed}: {events:?}"
            );
        }
    }
}

#[test]
fn a_cancelled_fall_sends_the_cancel_and_no_sos() {
    let mut dev = pendant(0);
    let mut script = Script::new(Scenario::new(Kind::FallThenCancel, 5, 100));
    let got = run(&mut dev, &mut script, &mut Broker::default(), true);
    let events = pendant_reports(&got);
    assert!(
        matches!(
            events.as_slice(),
            [Wire::Impact { .. }, Wire::FallCancelled]
        ),
        "{events:?}"
    );
}

#[test]
fn frames_wait_through_an_outage_and_alarms_go_first() {
    let mut dev = pendant(0);
    let mut script = Script::new(Scenario::new(Kind::Fall, 3, 100));
    let mut broker = Broker {
        down: true,
        ..Broker::default()
    };
    // The whole fall happens while the connection is down.
    let got = run(&mut dev, &mut script, &mut broker, true);
    assert!(got.is_empty());
    let held = dev.node.outbox().len();
    assert_eq!(
        dev.node.outbox().alarms(),
        1,
        "the fall is held as an alarm"
    );
    // Back online: every held frame goes, the alarm first, then the rest (the impact
    // among them) oldest first.
    broker.down = false;
    dev.node.connected(200_000);
    let mut buf = FrameBuf::default();
    let now = 200_000;
    block_on(flush(&mut dev.node, now, &mut buf, &mut broker)).expect("flush");
    let order: Vec<(u32, Uplink)> = broker
        .frames
        .iter()
        .map(|(t, f)| gateway_opens(t, f))
        .collect();
    assert_eq!(order.len(), held);
    assert!(matches!(
        order[0].1.report,
        Report::Pendant(Wire::Fall { .. })
    ));
    assert!(order[1..]
        .iter()
        .any(|(_, u)| matches!(u.report, Report::Pendant(Wire::Impact { .. }))));
    assert!(
        order[1..].windows(2).all(|w| w[0].0 < w[1].0),
        "the rest oldest first"
    );
    // Unacked frames are sent again after the resend time, not before.
    broker.frames.clear();
    block_on(flush(&mut dev.node, now + 5_000, &mut buf, &mut broker)).expect("flush");
    assert!(broker.frames.is_empty());
    block_on(flush(&mut dev.node, now + 10_000, &mut buf, &mut broker)).expect("flush");
    assert_eq!(broker.frames.len(), held);
    let evicted = dev.node.outbox_stats().evicted;
    let sent_before = dev.node.stats().sent;
    assert!(sent_before as usize >= 2 * held);
    // Whatever telemetry was evicted to keep the outbox bounded is counted, not hidden.
    assert_eq!(held + evicted as usize, dev.node.counter() as usize);
}

fn config(counter: u32, since: u32, settings: Settings) -> (String, Vec<u8>) {
    gateway_seals(
        DownChannel::Config,
        counter,
        Downlink::Config { since, settings },
    )
}

fn command(counter: u32, since: u32, command: Command) -> (String, Vec<u8>) {
    gateway_seals(
        DownChannel::Cmd,
        counter,
        Downlink::Command { since, command },
    )
}

#[test]
fn settings_and_commands_are_applied_answered_and_not_replayable() {
    let mut dev = pendant(100);
    let mut script = Script::new(Scenario::new(Kind::Stand, 1, 100));
    // Boot: the first reports (heartbeat, activity, battery) take counters 100-102, and
    // the gateway has heard #100 when it orders.
    dev.step(0, 0, &mut script);
    let since = 100;
    let settings = Settings {
        heartbeat_s: Some(20),
        threshold: Some(Threshold::ImpactMg(3_000)),
        ..Settings::default()
    };
    let (t, f) = config(5, since, settings);
    let r = dev.downlink(0, &t, &mut f.clone(), &mut script);
    assert_eq!(
        r,
        Ok(Downlinked::Config {
            counter: 5,
            threshold: settings.threshold
        })
    );
    assert_eq!(dev.node.cadence().heartbeat_s, 20);
    // The same frame again is a replay.
    assert_eq!(
        dev.downlink(0, &t, &mut f.clone(), &mut script),
        Err(DownlinkError::Replay)
    );
    // A pendant has nothing to dim: it says so rather than staying silent.
    let (t, mut f) = command(6, since, Command::Dim { percent: 30 });
    assert!(dev.downlink(0, &t, &mut f, &mut script).is_ok());
    // A threshold out of range is refused in the answer.
    let bad = Settings {
        threshold: Some(Threshold::ImpactMg(100)),
        ..Settings::default()
    };
    let (t, mut f) = config(7, since, bad);
    assert!(dev.downlink(0, &t, &mut f, &mut script).is_ok());
    // A frame tampered with is refused.
    let (t, mut f) = command(8, since, Command::Relay { on: true });
    f[10] ^= 1;
    assert!(matches!(
        dev.downlink(0, &t, &mut f, &mut script),
        Err(DownlinkError::Open(_))
    ));
    // An order naming a counter the device has not sealed yet is not about this boot.
    let (t, mut f) = command(9, 5_000, Command::Relay { on: true });
    assert_eq!(
        dev.downlink(0, &t, &mut f, &mut script),
        Err(DownlinkError::NotThisBoot)
    );
    assert_eq!(dev.node.stats().downlinks_refused, 3);

    let got = run(&mut dev, &mut script, &mut Broker::default(), true);
    let answers: Vec<_> = got
        .iter()
        .filter_map(|(_, u)| match u.report {
            Report::Answer(a) => Some((
                a.counter,
                a.check.target,
                a.check.requested,
                a.check.applied,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [
            (5, CommandTarget::Config, 5, true),
            (6, CommandTarget::Dimming, 30, false),
            (7, CommandTarget::Config, 7, false)
        ]
    );
    // Heartbeats now come every 20 s of the scenario.
    let beats: Vec<u32> = got
        .iter()
        .filter_map(|(_, u)| match u.report {
            Report::Heartbeat(h) => Some(h.uptime_s),
            _ => None,
        })
        .collect();
    // (The boot heartbeat, one at once when the settings arrived, then every 20 s.)
    assert!(beats.len() > 3);
    assert!(
        beats[1..].windows(2).all(|w| w[1] - w[0] == 20),
        "{beats:?}"
    );
}

#[test]
fn an_order_recorded_before_a_reboot_is_refused_after_it() {
    // Before the reboot: counters up to 299 were sealed, the gateway had heard #250 and
    // ordered "impact 8000 mg" (counter 40). Someone recorded that frame.
    let recorded = config(
        40,
        250,
        Settings {
            threshold: Some(Threshold::ImpactMg(8_000)),
            ..Settings::default()
        },
    );
    // After the reboot the device continues from its saved counter, 512.
    let mut dev = pendant(512);
    let mut script = Script::new(Scenario::new(Kind::Stand, 1, 100));
    dev.step(0, 0, &mut script);
    let (t, mut f) = recorded;
    assert_eq!(
        dev.downlink(0, &t, &mut f, &mut script),
        Err(DownlinkError::NotThisBoot)
    );
    assert_eq!(dev.app.phase(), linli_firmware::fall::Phase::Idle);
    // The gateway's next order names a counter of this boot: taken, even with a lower
    // command counter than the recording's (the device's memory of those is per boot).
    let (t, mut f) = config(
        41,
        512,
        Settings {
            heartbeat_s: Some(30),
            ..Settings::default()
        },
    );
    assert!(dev.downlink(0, &t, &mut f, &mut script).is_ok());
}

#[test]
fn no_frame_leaves_before_its_counter_is_saved() {
    let mut dev = pendant(1_000);
    let mut script = Script::new(Scenario::new(Kind::Stand, 1, 100));
    dev.step(0, 0, &mut script);
    let mut buf = FrameBuf::default();
    let mut broker = Broker::default();
    // Nothing saved beyond 1000 yet: the boot reports wait.
    assert_eq!(dev.node.counter(), 1_003);
    assert_eq!(dev.node.counter_to_save(), Some(1_003 + COUNTER_BLOCK));
    assert_eq!(
        block_on(flush(&mut dev.node, 0, &mut buf, &mut broker)),
        Ok(0)
    );
    // A failed flash write changes nothing.
    dev.node.save_counter(|_| false);
    assert_eq!(
        block_on(flush(&mut dev.node, 0, &mut buf, &mut broker)),
        Ok(0)
    );
    let mut flash = None;
    dev.node.save_counter(|c| {
        flash = Some(c);
        true
    });
    assert_eq!(flash, Some(1_003 + COUNTER_BLOCK));
    assert_eq!(dev.node.counter_to_save(), None);
    assert_eq!(
        block_on(flush(&mut dev.node, 0, &mut buf, &mut broker)),
        Ok(3)
    );
    // Half a block later the next reserve is asked for, before it runs out.
    for i in 0..=COUNTER_BLOCK / 2 {
        let _ = dev.node.report(
            0,
            Report::Heartbeat(Heartbeat { uptime_s: i }),
            Priority::Periodic,
        );
    }
    assert_eq!(
        dev.node.counter_to_save(),
        Some(dev.node.counter() + COUNTER_BLOCK)
    );
}

#[test]
fn telemetry_speeds_up_while_a_fall_is_in_progress() {
    let mut dev = pendant(0);
    let mut script = Script::new(Scenario::new(Kind::Fall, 3, 100));
    let got = run(&mut dev, &mut script, &mut Broker::default(), true);
    let activity = got
        .iter()
        .filter(|(_, u)| matches!(u.report, Report::Pendant(Wire::Activity { .. })))
        .count();
    // report_s is 300 s, longer than the scenario: all but the boot report come from the
    // 5 s alarm cadence during the fall.
    assert!(activity >= 3, "{activity} activity reports");
}

mod street_light {
    use linli_firmware::app::street_light::{StreetLight, StreetLightSensors};
    use linli_firmware::app::Application;
    use linli_firmware::street_light::LampHealth;

    use super::*;

    /// A lamp on a relay: draws 420 mA at full light, proportionally less dimmed, none
    /// when broken or switched off.
    struct Lamp {
        relay: bool,
        dim: u8,
        broken: bool,
        deaf: bool,
    }

    impl StreetLightSensors for Lamp {
        fn lamp(&mut self) -> Option<(u16, u16)> {
            let ma = if self.relay && !self.broken {
                420 * u16::from(self.dim) / 100
            } else {
                0
            };
            Some((23_000, ma))
        }
        fn set_relay(&mut self, on: bool) {
            self.relay = on;
        }
        fn relay_feedback(&mut self) -> bool {
            self.relay
        }
        fn set_dimming(&mut self, percent: u8) {
            if !self.deaf {
                self.dim = percent;
            }
        }
        fn dimming_feedback(&mut self) -> u8 {
            self.dim
        }
    }

    #[test]
    fn a_lamp_that_fails_reports_at_once_and_commands_are_answered() {
        let node = Node::new(
            "lamp-1",
            DeviceKey::new(&KEY),
            0,
            0,
            Cadence::default(),
            0,
            1,
        );
        let mut dev: Device<'_, StreetLight, 8, 2> =
            Device::new(node, StreetLight::new(Default::default(), 1_000));
        let mut lamp = Lamp {
            relay: true,
            dim: 100,
            broken: false,
            deaf: false,
        };
        let mut reports = Vec::new();
        let step = |dev: &mut Device<'_, StreetLight, 8, 2>,
                    lamp: &mut Lamp,
                    t: u64,
                    reports: &mut Vec<(u64, Report)>| {
            let mut buf = FrameBuf::default();
            dev.step(t, 0, lamp);
            dev.node.save_counter(|_| true);
            while let Some(f) = dev.node.next_frame(t, &mut buf) {
                let mut frame = f.payload.to_vec();
                let (_, body) = open(
                    &DeviceKey::new(&KEY),
                    FrameClass::Uplink,
                    "lamp-1",
                    &mut frame,
                )
                .expect("opens");
                let u = decode_uplink(body).expect("decodes");
                assert!(u
                    .report
                    .allowed_for(linli_protocol::DeviceKind::StreetLight));
                reports.push((t, u.report));
            }
        };
        for t in (0..10_000).step_by(500) {
            step(&mut dev, &mut lamp, t, &mut reports);
        }
        lamp.broken = true;
        for t in (10_000..20_000).step_by(500) {
            step(&mut dev, &mut lamp, t, &mut reports);
        }
        assert_eq!(dev.app.health(), LampHealth::Dark);
        let dark = reports
            .iter()
            .find(|(_, r)| matches!(r, Report::StreetLight(w) if w.relay_on && w.current_ma == 0))
            .map(|(t, _)| *t);
        // Three dark samples a second apart, then reported without waiting 600 s.
        assert!(
            dark.is_some_and(|t| (12_000..=13_500).contains(&t)),
            "{reports:?}"
        );
        assert!(dev.app.alarm_condition());

        // Commands: dimming is applied and answered; a deaf driver is answered as not applied.
        lamp.broken = false;
        let cmd = |c: u32, command| {
            let mut body = [0u8; 16];
            let downlink = Downlink::Command { since: 0, command };
            let body = encode_downlink(&downlink, &mut body).expect("encodes");
            let mut frame = [0u8; 48];
            let n = seal(
                &DeviceKey::new(&KEY),
                0,
                FrameClass::Command,
                "lamp-1",
                c,
                body,
                &mut frame,
            )
            .expect("seals");
            frame[..n].to_vec()
        };
        let topic = "linli/v1/lamp-1/down/cmd";
        dev.downlink(
            0,
            topic,
            &mut cmd(1, Command::Dim { percent: 40 }),
            &mut lamp,
        )
        .expect("dim");
        lamp.deaf = true;
        dev.downlink(
            0,
            topic,
            &mut cmd(2, Command::Dim { percent: 10 }),
            &mut lamp,
        )
        .expect("dim");
        dev.downlink(
            0,
            topic,
            &mut cmd(3, Command::Relay { on: false }),
            &mut lamp,
        )
        .expect("relay");
        assert!(!lamp.relay);
        reports.clear();
        step(&mut dev, &mut lamp, 20_000, &mut reports);
        let checks: Vec<_> = reports
            .iter()
            .filter_map(|(_, r)| match r {
                Report::Answer(a) => Some((
                    a.counter,
                    a.check.target,
                    a.check.requested,
                    a.check.observed,
                    a.check.applied,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            checks,
            [
                (1, CommandTarget::Dimming, 40, 40, true),
                (2, CommandTarget::Dimming, 10, 40, false),
                (3, CommandTarget::Relay, 0, 0, true)
            ]
        );
    }
}
