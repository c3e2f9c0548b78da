//! The bed sensor's application: the pressure pad into the occupancy decision, the
//! battery.
//!
//! Reports: `bed` at once when the occupancy decision changes (the first decision too, so
//! the gateway learns the state after a restart), `bed` and `battery` as telemetry (the
//! `bed` report only once the occupancy is known). A bed has no alarm condition and no
//! threshold of its own (the pad levels are set at installation). Does not own the
//! occupancy decision ([`crate::bed`]) or the pad's conversion to pressure units
//! ([`crate::sensors::analog::PressurePad`]).

use linli_protocol::report::Bed as Wire;
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::bed::{self, BedOccupancy};

/// What the bed sensor reads.
pub trait BedSensors {
    /// The pad's pressure, raw units of the pad; `None` when the read failed.
    fn pressure(&mut self) -> Option<u16>;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// The bed sensor.
#[derive(Debug, Clone)]
pub struct Bed {
    occupancy: BedOccupancy,
    pressure: Option<u16>,
}

impl Bed {
    /// A bed sensor with the pad's levels and dwell times.
    pub fn new(cfg: bed::Config) -> Self {
        Bed {
            occupancy: BedOccupancy::new(cfg),
            pressure: None,
        }
    }

    /// The occupancy decision, once there is one.
    pub fn occupied(&self) -> Option<bool> {
        self.occupancy.occupied()
    }
}

impl Application for Bed {
    const KIND: DeviceKind = DeviceKind::Bed;
    type Sensors = dyn BedSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        let Some(pressure) = s.pressure() else {
            return;
        };
        self.pressure = Some(pressure);
        if let Some(occupied) = self.occupancy.sample(pressure, now_ms) {
            out(Report::Bed(Wire { occupied, pressure }));
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        // An unknown occupancy is not reported as "empty": the gateway reads a change of
        // `occupied` as getting in or out of bed.
        if let (Some(occupied), Some(pressure)) = (self.occupancy.occupied(), self.pressure) {
            out(Report::Bed(Wire { occupied, pressure }));
        }
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }
}
