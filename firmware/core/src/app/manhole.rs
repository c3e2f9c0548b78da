//! The manhole cover monitor's application: the accelerometer, read every `sample_ms`,
//! into the cover's tilt decision (after learning the installed position); the water
//! under the cover into a water gauge; the gas reading; the battery.
//!
//! Reports: `manhole` (tilt, water, gas) at once when the installed position is learnt,
//! when the cover's state changes (level, tilted, removed) and when the water gauge's
//! level state or fast rise changes; `manhole` and `battery` as telemetry. The alarm
//! cadence holds while the cover is not level or the water gauge says to report faster.
//! Thresholds: [`Threshold::TiltAlarmCdeg`] and [`Threshold::WaterAlarmMm`]. Does not own
//! the tilt decision ([`crate::manhole`]), the water decisions ([`crate::water_level`]),
//! any gas decision (the gateway's) or the drivers.
//!
//! The installed position is kept here too ([`Manhole::installed`]): a board persists it
//! and restores it with [`Manhole::with_installed`] after a reboot (a cover open at that
//! moment would otherwise be learnt as its installed position), and a new tilt threshold
//! keeps it.

use linli_protocol::report::{Manhole as Wire, Threshold};
use linli_protocol::{DeviceKind, Report};

use super::water_level::set_alarm_mm;
use super::Application;
use crate::manhole::{self, CoverState, ManholeCover};
use crate::water_level::{self, WaterGauge};

/// What the manhole monitor reads.
pub trait ManholeSensors {
    /// An acceleration sample, mg; `None` when none is ready or the read failed.
    fn acceleration_mg(&mut self) -> Option<[i16; 3]>;
    /// Water under the cover, mm above the well floor; `None` when the read failed.
    fn water_mm(&mut self) -> Option<u16>;
    /// Gas concentration, ppm; `None` without a gas sensor or when the read failed.
    fn gas_ppm(&mut self) -> Option<u16>;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// Tilt thresholds the gateway may set, 0.01° (3°–60°).
pub const TILT_ALARM_CDEG: core::ops::RangeInclusive<u16> = 300..=6_000;

/// The manhole monitor.
#[derive(Debug, Clone)]
pub struct Manhole {
    cfg: manhole::Config,
    cover: ManholeCover,
    learning: ([i64; 3], i64),
    installed: Option<[i16; 3]>,
    water_cfg: water_level::Config,
    gauge: WaterGauge,
    sample_ms: u64,
    next_sample_ms: u64,
    tilt_cdeg: Option<u16>,
    water_mm: Option<u16>,
    gas_ppm: Option<u16>,
}

impl Manhole {
    /// A monitor that learns the cover's installed position from its first samples,
    /// watches the water with `water`, and reads every `sample_ms`.
    pub fn new(cfg: manhole::Config, water: water_level::Config, sample_ms: u64) -> Self {
        Manhole {
            cfg,
            cover: ManholeCover::new(cfg),
            learning: ([0; 3], 0),
            installed: None,
            water_cfg: water,
            gauge: WaterGauge::new(water),
            sample_ms,
            next_sample_ms: 0,
            tilt_cdeg: None,
            water_mm: None,
            gas_ppm: None,
        }
    }

    /// The same monitor with the installed position already known (mg per axis).
    pub fn with_installed(mut self, a: [i16; 3]) -> Self {
        self.restart_cover(Some(a));
        self
    }

    /// A new cover for the settings in force, knowing `installed` when given.
    fn restart_cover(&mut self, installed: Option<[i16; 3]>) {
        self.cover = ManholeCover::new(self.cfg);
        self.learning = ([0; 3], 0);
        self.installed = installed;
        if let Some(a) = installed {
            // Every calibration sample the same: the cover's mean is `a`.
            for _ in 0..self.cfg.calibration_samples.max(1) {
                self.cover.calibrate(a);
            }
        }
    }

    /// The installed position, once learnt (mg per axis, to persist).
    pub fn installed(&self) -> Option<[i16; 3]> {
        self.installed
    }

    /// Where the cover is.
    pub fn cover(&self) -> CoverState {
        self.cover.state()
    }

    /// The readings; one not known goes as 0 (tilt: until the position is learnt).
    fn report(&self) -> Report {
        Report::Manhole(Wire {
            tilt_cdeg: self
                .tilt_cdeg
                .map_or(0, |t| i16::try_from(t).unwrap_or(i16::MAX)),
            water_mm: self.water_mm.unwrap_or(0),
            gas_ppm: self.gas_ppm.unwrap_or(0),
        })
    }

    /// Feeds an acceleration sample; true when it is worth a report.
    fn accel(&mut self, a: [i16; 3]) -> bool {
        if self.installed.is_some() {
            let (tilt, state) = self.cover.sample(a);
            self.tilt_cdeg = tilt.or(self.tilt_cdeg);
            return state.is_some();
        }
        let (sum, n) = &mut self.learning;
        sum.iter_mut().zip(a).for_each(|(s, v)| *s += i64::from(v));
        *n += 1;
        if !self.cover.calibrate(a) {
            return false;
        }
        let mean = sum.map(|s| libm::roundf(s as f32 / *n as f32) as i16);
        self.installed = Some(mean);
        self.tilt_cdeg = self.cover.tilt_cdeg(a);
        true
    }
}

impl Application for Manhole {
    const KIND: DeviceKind = DeviceKind::Manhole;
    type Sensors = dyn ManholeSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if now_ms < self.next_sample_ms {
            return;
        }
        self.next_sample_ms = now_ms.saturating_add(self.sample_ms.max(1));
        self.gas_ppm = s.gas_ppm();
        let mut worth = s.acceleration_mg().is_some_and(|a| self.accel(a));
        self.water_mm = s.water_mm();
        if let Some(mm) = self.water_mm {
            let change = self.gauge.sample(mm, now_ms);
            worth |= change.state.is_some() || change.rising_fast.is_some();
        }
        if worth {
            out(self.report());
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if self.tilt_cdeg.is_some() || self.water_mm.is_some() {
            out(self.report());
        }
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }

    fn alarm_condition(&self) -> bool {
        self.cover.state() != CoverState::Level || self.gauge.fast_reporting()
    }

    fn threshold(&mut self, t: Threshold) -> bool {
        match t {
            Threshold::WaterAlarmMm(mm) => set_alarm_mm(&mut self.water_cfg, &mut self.gauge, mm),
            // Only while the cover is level: a new cover starts level.
            Threshold::TiltAlarmCdeg(cdeg)
                if TILT_ALARM_CDEG.contains(&cdeg)
                    && cdeg < self.cfg.removed_cdeg
                    && self.cover.state() == CoverState::Level =>
            {
                // The clearing deadband keeps its width.
                let band = self.cfg.tilt_cdeg.saturating_sub(self.cfg.clear_cdeg);
                self.cfg.tilt_cdeg = cdeg;
                self.cfg.clear_cdeg = cdeg - band.min(cdeg / 2);
                self.restart_cover(self.installed);
                true
            }
            _ => false,
        }
    }
}
