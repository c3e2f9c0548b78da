//! The street-light controller's application: drives the lamp relay and dimming output,
//! measures supply voltage and lamp current, and tells a dark lamp or a stuck relay from
//! a healthy one ([`crate::street_light::LampFaults`]).
//!
//! Reports `street_light` telemetry on its cadence and at once when the lamp's health
//! changes; the alarm cadence holds while a fault lasts. Commands (relay, dimming) are
//! applied and answered with what the driver's feedback shows. Does not own the INA219
//! driver or the output pins (see [`StreetLightSensors`]).

use linli_protocol::report::{Command, StreetLight as Wire};
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::street_light::{self, LampFaults, LampHealth};

/// What the controller reads and drives.
pub trait StreetLightSensors {
    /// Supply voltage (mV) and lamp current (mA); `None` when the read failed.
    fn lamp(&mut self) -> Option<(u16, u16)>;
    /// Closes (true) or opens the lamp relay.
    fn set_relay(&mut self, on: bool);
    /// The relay's feedback contact: closed?
    fn relay_feedback(&mut self) -> bool;
    /// Sets the dimming output, % of full light.
    fn set_dimming(&mut self, percent: u8);
    /// The dimming level the driver reports back, %.
    fn dimming_feedback(&mut self) -> u8;
}

/// The controller.
#[derive(Debug, Clone)]
pub struct StreetLight {
    faults: LampFaults,
    sample_every_ms: u64,
    next_sample_ms: u64,
    last: Option<Wire>,
}

impl StreetLight {
    /// A controller judging faults with `cfg`, measuring every `sample_every_ms`.
    pub fn new(cfg: street_light::Config, sample_every_ms: u64) -> Self {
        StreetLight {
            faults: LampFaults::new(cfg),
            sample_every_ms: sample_every_ms.max(1),
            next_sample_ms: 0,
            last: None,
        }
    }

    /// The lamp's health as last judged.
    pub fn health(&self) -> LampHealth {
        self.faults.health()
    }

    fn measure(&mut self, s: &mut dyn StreetLightSensors) -> Option<(Wire, Option<LampHealth>)> {
        let (mv, ma) = s.lamp()?;
        let relay_on = s.relay_feedback();
        let change = self.faults.sample(relay_on, ma);
        let power_dw = (u32::from(mv) * u32::from(ma) / 100_000).min(u32::from(u16::MAX)) as u16;
        let w = Wire {
            relay_on,
            current_ma: ma,
            power_dw,
            dimming_pct: s.dimming_feedback(),
        };
        self.last = Some(w);
        Some((w, change))
    }
}

impl Application for StreetLight {
    const KIND: DeviceKind = DeviceKind::StreetLight;
    type Sensors = dyn StreetLightSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if now_ms < self.next_sample_ms {
            return;
        }
        self.next_sample_ms = now_ms + self.sample_every_ms;
        if let Some((w, Some(_))) = self.measure(s) {
            // A fault appearing or clearing goes out at once, not at the next report.
            out(Report::StreetLight(w));
        }
    }

    fn telemetry(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        // The latest measurement, taken at the sampling pace (a fault decided now goes out
        // from `sample` as a change, not hidden in a periodic report).
        if self.last.is_none() {
            self.sample(now_ms, s, out);
        }
        if let Some(w) = self.last {
            out(Report::StreetLight(w));
        }
    }

    fn alarm_condition(&self) -> bool {
        self.faults.health() != LampHealth::Ok
    }

    fn command(&mut self, command: Command, s: &mut Self::Sensors) -> Option<i32> {
        match command {
            Command::Relay { on } => {
                s.set_relay(on);
                Some(i32::from(s.relay_feedback()))
            }
            Command::Dim { percent } => {
                s.set_dimming(percent.min(100));
                Some(i32::from(s.dimming_feedback()))
            }
            Command::Pump { .. } => None,
        }
    }
}
