//! The fall pendant's application: accelerometer samples into the fall detector, the SOS
//! and cancel buttons, an activity score, the battery.
//!
//! Reports: `impact` when the detector judges a hit worth the gateway's attention, `fall`
//! when the cancel window ends, `fall_cancelled` when the wearer cancels, `sos` on a
//! press; `activity` and `battery` as telemetry. A dropped pendant reports nothing (it
//! is counted in [`Pendant::dropped`]). The alarm cadence holds while a fall is in
//! progress. Does not own the accelerometer driver or the button pins (see
//! [`PendantSensors`]).

use linli_protocol::report::{Pendant as Wire, Threshold};
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::debounce::Debouncer;
use crate::fall::{self, Detector, Event, Phase};
use crate::sos::{self, SosButton};

/// What the pendant reads.
pub trait PendantSensors {
    /// The next acceleration sample, mg; `None` when none is ready or the read failed.
    fn acceleration_mg(&mut self) -> Option<[i16; 3]>;
    /// The SOS button's raw level.
    fn sos_pressed(&mut self) -> bool;
    /// The cancel button's raw level (many pendants share one button: then return the
    /// same level as [`PendantSensors::sos_pressed`]; a press during the cancel window
    /// cancels, at other times it raises SOS).
    fn cancel_pressed(&mut self) -> bool;
    /// Cell voltage, mV.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// Movement above this distance from 1 g counts towards the activity score, mg.
const ACTIVE_MG: u32 = 150;
/// |a| above this, after being below it, is a step, mg.
const STEP_MG: u32 = 1_250;
/// Steps closer than this are one step, ms.
const STEP_REFRACTORY_MS: u64 = 250;

/// The pendant.
#[derive(Debug, Clone)]
pub struct Pendant {
    fall: Detector,
    sos: SosButton,
    cancel: Debouncer,
    samples: u32,
    active: u32,
    steps: u16,
    above_step: bool,
    last_step_ms: u64,
    dropped: u32,
    swallow_press: bool,
}

impl Pendant {
    /// A pendant with the site's fall and SOS settings.
    pub fn new(fall: fall::Config, sos: sos::Config) -> Self {
        Pendant {
            fall: Detector::new(fall),
            sos: SosButton::new(sos),
            cancel: Debouncer::new(sos.debounce_ms),
            samples: 0,
            active: 0,
            steps: 0,
            above_step: false,
            last_step_ms: 0,
            dropped: 0,
            swallow_press: false,
        }
    }

    /// Times the pendant itself was dropped since boot.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Where the fall detector is.
    pub fn phase(&self) -> Phase {
        self.fall.phase()
    }

    fn activity(&mut self, now_ms: u64, a: [i16; 3]) {
        let m2: u32 = a.iter().map(|v| u32::from(v.unsigned_abs()).pow(2)).sum();
        let m = libm::sqrtf(m2 as f32) as u32;
        self.samples += 1;
        if m.abs_diff(1_000) > ACTIVE_MG {
            self.active += 1;
        }
        let above = m > STEP_MG;
        if above
            && !self.above_step
            && now_ms.saturating_sub(self.last_step_ms) >= STEP_REFRACTORY_MS
        {
            self.steps = self.steps.saturating_add(1);
            self.last_step_ms = now_ms;
        }
        self.above_step = above;
    }
}

fn wire(event: Event) -> Option<Report> {
    Some(Report::Pendant(match event {
        Event::Impact { impact_mg } => Wire::Impact { impact_mg },
        Event::Fall { impact_mg, still_s } => Wire::Fall { impact_mg, still_s },
        Event::Cancelled => Wire::FallCancelled,
        Event::Dropped { .. } => return None,
    }))
}

impl Application for Pendant {
    const KIND: DeviceKind = DeviceKind::Pendant;
    type Sensors = dyn PendantSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if let Some(a) = s.acceleration_mg() {
            self.activity(now_ms, a);
            match self.fall.sample(now_ms, a) {
                Some(Event::Dropped { .. }) => self.dropped += 1,
                Some(e) => wire(e).into_iter().for_each(&mut *out),
                None => {}
            }
        }
        let cancel = self.cancel.update(s.cancel_pressed(), now_ms) == Some(true);
        let in_fall = matches!(self.fall.phase(), Phase::PostImpact | Phase::CancelWindow);
        if cancel && in_fall {
            if let Some(e) = self.fall.cancel(now_ms) {
                wire(e).into_iter().for_each(&mut *out);
                // The press that cancelled is not also an SOS (one shared button).
                self.swallow_press = true;
            }
        }
        let mut pressed = s.sos_pressed();
        if self.swallow_press {
            self.swallow_press = pressed;
            pressed = false;
        }
        if self.sos.sample(pressed, now_ms) {
            out(Report::Pendant(Wire::Sos));
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        let level = (self.active * 100).checked_div(self.samples).unwrap_or(0);
        out(Report::Pendant(Wire::Activity {
            level: level.min(100) as u8,
            steps: self.steps,
        }));
        (self.samples, self.active, self.steps) = (0, 0, 0);
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }

    fn alarm_condition(&self) -> bool {
        !matches!(self.fall.phase(), Phase::Idle)
    }

    fn threshold(&mut self, t: Threshold) -> bool {
        match t {
            Threshold::ImpactMg(mg)
                if (1_500..=8_000).contains(&mg) && self.fall.phase() == Phase::Idle =>
            {
                let cfg = fall::Config {
                    impact_mg: mg,
                    ..*self.fall.config()
                };
                self.fall = Detector::new(cfg);
                true
            }
            _ => false,
        }
    }
}
