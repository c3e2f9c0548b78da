//! What rules can look at in a report: its metrics (numbers named with their unit, as the
//! protocol's `for_each_metric` gives them), its event, and the activity signals that
//! absence rules watch ("motion", "bed_exit", …).
//!
//! Owns the names rules are written in and the mapping from reports to signals; does not
//! own any rule state (a bed exit needs the previous bed state, which the caller passes).

use linli_protocol::report::Pendant;
use linli_protocol::{EventKind, Report};

/// Every metric name a report can carry (the protocol's `for_each_metric` names).
pub const METRICS: &[&str] = &[
    "uptime_s",
    "battery_v",
    "battery_pct",
    "rssi_dbm",
    "tamper",
    "impact_g",
    "still_s",
    "activity",
    "steps",
    "bed_occupied",
    "bed_pressure",
    "door_open",
    "motion",
    "motion_count",
    "heart_rate_bpm",
    "spo2_pct",
    "respiration_bpm",
    "vitals_quality",
    "hazard_alarm",
    "hazard_level",
    "devices_seen",
    "mains",
    "relay_on",
    "current_a",
    "power_w",
    "dimming_pct",
    "tilt_deg",
    "water_m",
    "gas_ppm",
    "water_level_m",
    "fill_pct",
    "temperature_c",
    "voltage_v",
    "power_factor",
    "frequency_hz",
    "energy_import_kwh",
    "pump_on",
    "pump_current_a",
    "flow_lps",
    "relay_fault",
    "dimming_fault",
    "pump_fault",
    "config_fault",
];

/// Every event name rules accept.
pub const EVENTS: &[EventKind] = &[
    EventKind::Fall,
    EventKind::FallCancelled,
    EventKind::Sos,
    EventKind::Smoke,
    EventKind::Gas,
    EventKind::Co,
    EventKind::WaterLeak,
    EventKind::Tamper,
    EventKind::Impact,
];

/// Looks an event up by its wire name.
pub fn event_named(name: &str) -> Option<EventKind> {
    EVENTS.iter().copied().find(|e| e.as_str() == name)
}

/// The value of `metric` in `report`, if it carries it.
pub fn metric(report: &Report, metric: &str) -> Option<f64> {
    let mut found = None;
    report.for_each_metric(&mut |name, v| {
        if found.is_none() && name == metric {
            found = Some(v);
        }
    });
    found
}

/// A report's variant as a bit (`Report` variant order), for masks of the reports a rule
/// can use.
pub fn variant_bit(r: &Report) -> u32 {
    1 << match r {
        Report::Heartbeat(_) => 0,
        Report::Battery(_) => 1,
        Report::Status(_) => 2,
        Report::Pendant(_) => 3,
        Report::Bed(_) => 4,
        Report::Door(_) => 5,
        Report::Motion(_) => 6,
        Report::Vitals(_) => 7,
        Report::Hazard(_) => 8,
        Report::HubHeartbeat(_) => 9,
        Report::StreetLight(_) => 10,
        Report::Manhole(_) => 11,
        Report::WaterLevel(_) => 12,
        Report::WasteBin(_) => 13,
        Report::PowerMeter(_) => 14,
        Report::ConnectionLost => 15,
        Report::PumpStation(_) => 16,
        Report::CommandCheck(_) => 17,
        Report::Answer(_) => 18,
    }
}

/// Every variant but the Last Will.
pub const ANY_REPORT: u32 = ((1 << 19) - 1) & !(1 << 15);

/// One report of every kind with every field set, for finding which carry a metric.
fn samples() -> [Report; 25] {
    use linli_protocol::report::*;
    [
        Report::Heartbeat(Heartbeat { uptime_s: 1 }),
        Report::Battery(Battery {
            millivolts: 1,
            percent: 1,
        }),
        Report::Status(Status {
            firmware: [1, 1, 1],
            rssi_dbm: 1,
            tamper: true,
        }),
        Report::Pendant(Pendant::Fall {
            impact_mg: 1,
            still_s: 1,
        }),
        Report::Pendant(Pendant::Activity { level: 1, steps: 1 }),
        Report::Pendant(Pendant::Impact { impact_mg: 1 }),
        Report::Bed(Bed {
            occupied: true,
            pressure: 1,
        }),
        Report::Door(Door { open: true }),
        Report::Motion(Motion {
            motion: true,
            count: 1,
        }),
        Report::Vitals(Vitals {
            heart_rate_bpm: 1,
            spo2_pct: 1,
            respiration_bpm: 1,
            quality: 1,
        }),
        Report::Hazard(Hazard {
            hazard: HazardKind::Smoke,
            alarm: true,
            level: 1,
        }),
        Report::HubHeartbeat(HubHeartbeat {
            devices_seen: 1,
            mains: true,
        }),
        Report::StreetLight(StreetLight {
            relay_on: true,
            current_ma: 1,
            power_dw: 1,
            dimming_pct: 1,
        }),
        Report::Manhole(Manhole {
            tilt_cdeg: 1,
            water_mm: 1,
            gas_ppm: 1,
        }),
        Report::WaterLevel(WaterLevel { level_mm: 1 }),
        Report::WasteBin(WasteBin {
            fill_pct: 1,
            temperature_dc: 1,
            tilt_deg: 1,
        }),
        Report::PowerMeter(PowerMeter {
            voltage_dv: 1,
            current_ma: 1,
            power_w: 1,
            power_factor_milli: 1,
            frequency_chz: 1,
            import_wh: 1,
        }),
        Report::PumpStation(PumpStation {
            level_mm: 1,
            pump_on: true,
            pump_current_ca: 1,
            flow_dlps: 1,
        }),
        Report::CommandCheck(CommandCheck {
            target: CommandTarget::Relay,
            requested: 1,
            observed: 0,
            applied: false,
        }),
        Report::CommandCheck(CommandCheck {
            target: CommandTarget::Dimming,
            requested: 1,
            observed: 0,
            applied: false,
        }),
        Report::CommandCheck(CommandCheck {
            target: CommandTarget::Pump,
            requested: 1,
            observed: 0,
            applied: false,
        }),
        answer(CommandTarget::Relay),
        answer(CommandTarget::Dimming),
        answer(CommandTarget::Pump),
        answer(CommandTarget::Config),
    ]
}

/// A firmware device's answer about `target`, for [`samples`].
fn answer(target: linli_protocol::report::CommandTarget) -> Report {
    use linli_protocol::report::{Answer, CommandCheck};
    Report::Answer(Answer {
        counter: 1,
        check: CommandCheck {
            target,
            requested: 1,
            observed: 0,
            applied: false,
        },
    })
}

/// The report variants that can carry `metric`.
pub fn metric_variants(metric: &str) -> u32 {
    samples()
        .iter()
        .filter(|r| self::metric(r, metric).is_some())
        .fold(0, |m, r| m | variant_bit(r))
}

/// The report variants that can carry `event`.
pub fn event_variants(event: EventKind) -> u32 {
    match event {
        EventKind::Fall | EventKind::FallCancelled | EventKind::Sos | EventKind::Impact => {
            variant_bit(&Report::Pendant(Pendant::Sos))
        }
        EventKind::Tamper => 1 << 2,
        EventKind::Smoke | EventKind::Gas | EventKind::Co | EventKind::WaterLeak => 1 << 8,
    }
}

/// The report variants that can carry `signal`.
pub fn signal_variants(signal: Signal) -> u32 {
    let (pendant, bed, door, motion) = (1 << 3, 1 << 4, 1 << 5, 1 << 6);
    match signal {
        Signal::Activity => pendant | bed | door | motion,
        Signal::Motion => motion,
        Signal::DoorOpen | Signal::DoorClose => door,
        Signal::BedExit | Signal::BedEnter => bed,
        Signal::Steps => pendant,
        Signal::Report => ANY_REPORT,
    }
}

/// Activity signals, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals(u16);

/// A named activity signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Any sign of life: motion, a door, a bed change, pendant steps or movement.
    Activity,
    /// The PIR saw motion.
    Motion,
    /// A door opened.
    DoorOpen,
    /// A door closed.
    DoorClose,
    /// The bed became empty.
    BedExit,
    /// The bed became occupied.
    BedEnter,
    /// Steps counted by a pendant.
    Steps,
    /// Any report at all (a hub heartbeat, a fridge door…).
    Report,
}

const NAMES: &[(&str, Signal)] = &[
    ("activity", Signal::Activity),
    ("motion", Signal::Motion),
    ("door_open", Signal::DoorOpen),
    ("door_close", Signal::DoorClose),
    ("bed_exit", Signal::BedExit),
    ("bed_enter", Signal::BedEnter),
    ("steps", Signal::Steps),
    ("report", Signal::Report),
];

impl Signal {
    /// Looks a signal up by name.
    pub fn named(name: &str) -> Option<Signal> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// Every signal name, for error messages.
    pub fn names() -> String {
        NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl Signals {
    /// Does the set hold `s`?
    pub fn has(self, s: Signal) -> bool {
        self.0 & s.bit() != 0
    }

    fn add(&mut self, s: Signal) {
        self.0 |= s.bit();
    }

    /// The signals in `report`. `bed_was` is the subject's bed state before it (a bed
    /// exit is occupied → empty; the first bed report after start is not an exit).
    pub fn of(report: &Report, bed_was: Option<bool>) -> Signals {
        let mut s = Signals::default();
        if matches!(report, Report::ConnectionLost) {
            return s;
        }
        s.add(Signal::Report);
        match *report {
            Report::Motion(m) if m.motion => {
                s.add(Signal::Motion);
                s.add(Signal::Activity);
            }
            Report::Door(d) => {
                s.add(if d.open {
                    Signal::DoorOpen
                } else {
                    Signal::DoorClose
                });
                s.add(Signal::Activity);
            }
            Report::Bed(b) if bed_was.is_some_and(|was| was != b.occupied) => {
                s.add(if b.occupied {
                    Signal::BedEnter
                } else {
                    Signal::BedExit
                });
                s.add(Signal::Activity);
            }
            Report::Pendant(Pendant::Activity { steps, level }) => {
                if steps > 0 {
                    s.add(Signal::Steps);
                }
                if steps > 0 || level > 0 {
                    s.add(Signal::Activity);
                }
            }
            _ => {}
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linli_protocol::report::{Bed, Door, Motion};

    #[test]
    fn every_metric_a_report_carries_is_known() {
        for r in samples() {
            r.for_each_metric(&mut |name, _| assert!(METRICS.contains(&name), "{name}"));
        }
        let impact = Report::Pendant(Pendant::Impact { impact_mg: 3200 });
        assert_eq!(
            metric(&impact, "impact_g"),
            Some(3.2),
            "impact in g, not milli-g"
        );
        for m in METRICS {
            assert_ne!(metric_variants(m), 0, "{m} is carried by some report");
        }
        assert_eq!(metric_variants("tilt_deg"), (1 << 11) | (1 << 13));
    }

    #[test]
    fn bed_exit_needs_a_known_previous_state() {
        let empty = Report::Bed(Bed {
            occupied: false,
            pressure: 0,
        });
        assert!(Signals::of(&empty, Some(true)).has(Signal::BedExit));
        assert!(!Signals::of(&empty, None).has(Signal::BedExit));
        assert!(!Signals::of(&empty, Some(false)).has(Signal::Activity));
        let door = Signals::of(&Report::Door(Door { open: true }), None);
        assert!(door.has(Signal::DoorOpen) && door.has(Signal::Activity));
        let still = Report::Motion(Motion {
            motion: false,
            count: 0,
        });
        assert!(!Signals::of(&still, None).has(Signal::Activity));
        assert!(!Signals::of(&Report::ConnectionLost, None).has(Signal::Report));
    }
}
