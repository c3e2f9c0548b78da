//! The hazard detector's application (smoke, gas, CO or water leak): the detector's
//! alarm output, debounced, into alarm on and off; its measured level; the battery.
//!
//! Reports: `hazard` at once when the alarm output settles in a new state (the first
//! settled state too; alarm on travels as an event, alarm off as telemetry), `hazard`
//! and `battery` as telemetry. The alarm cadence holds while the detector is in alarm
//! (each `hazard` report then carries `alarm: true`, so it travels as an event too). No
//! threshold: the detector decides its own alarm. Does not own the detection itself
//! (the detector's), the debouncing ([`crate::debounce`]) or the pins.

use linli_protocol::report::{Hazard as Wire, HazardKind};
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::debounce::Debouncer;

/// What the hazard detector reads.
pub trait HazardSensors {
    /// What the detector detects.
    fn hazard(&self) -> HazardKind;
    /// The detector's alarm output, raw level (true: in alarm).
    fn alarm_output(&mut self) -> bool;
    /// The measured level (ppm for gas and CO, obscuration ‰ for smoke), when the
    /// detector gives one; `None` reports the alarm output as 0/1.
    fn level(&mut self) -> Option<u16>;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// The hazard detector.
#[derive(Debug, Clone)]
pub struct Hazard {
    output: Debouncer,
    level: Option<u16>,
}

impl Hazard {
    /// A detector whose alarm output counts once held `debounce_ms`.
    pub fn new(debounce_ms: u64) -> Self {
        Hazard {
            output: Debouncer::new(debounce_ms),
            level: None,
        }
    }

    /// In alarm (the settled alarm output).
    pub fn in_alarm(&self) -> bool {
        self.output.level() == Some(true)
    }

    fn report(&self, hazard: HazardKind) -> Report {
        let alarm = self.in_alarm();
        Report::Hazard(Wire {
            hazard,
            alarm,
            level: self.level.unwrap_or(u16::from(alarm)),
        })
    }
}

impl Application for Hazard {
    const KIND: DeviceKind = DeviceKind::Hazard;
    type Sensors = dyn HazardSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if let Some(level) = s.level() {
            self.level = Some(level);
        }
        if self.output.update(s.alarm_output(), now_ms).is_some() {
            out(self.report(s.hazard()));
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if self.output.level().is_some() {
            out(self.report(s.hazard()));
        }
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }

    fn alarm_condition(&self) -> bool {
        self.in_alarm()
    }
}
