//! The PIR motion sensor's application: rising edges of the PIR output into the trigger
//! accounting, the battery.
//!
//! Reports: `motion` at once for what the accounting decides (the first trigger, then one
//! count per hold-off when it ends); `battery` as telemetry. No motion summary is
//! repeated as telemetry: the gateway reads every `motion` report with motion as
//! activity. A PIR has no alarm condition and no threshold. Does not own the hold-off and
//! warm-up ([`crate::motion`]) or the PIR's pin.

use linli_protocol::report::Motion as Wire;
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::motion::{self, MotionReport, PirMotion};

/// What the motion sensor reads.
pub trait MotionSensors {
    /// The PIR output's level (high while it sees motion).
    fn pir(&mut self) -> bool;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// The motion sensor.
#[derive(Debug, Clone)]
pub struct Motion {
    pir: PirMotion,
    level: bool,
}

impl Motion {
    /// A sensor with the site's hold-off, powered on at `boot_ms`.
    pub fn new(cfg: motion::Config, boot_ms: u64) -> Self {
        Motion {
            pir: PirMotion::new(cfg, boot_ms),
            level: false,
        }
    }
}

impl Application for Motion {
    const KIND: DeviceKind = DeviceKind::Motion;
    type Sensors = dyn MotionSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        let level = s.pir();
        let rising = level && !self.level;
        self.level = level;
        let report = if rising {
            self.pir.trigger(now_ms)
        } else {
            self.pir.tick(now_ms)
        };
        if let Some(MotionReport { count }) = report {
            out(Report::Motion(Wire {
                motion: true,
                count,
            }));
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }
}
