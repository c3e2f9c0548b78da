//! The water-level gauge's application (underpasses, drains): the level, read every
//! `sample_ms`, into the gauge's level states and rate of rise; the battery.
//!
//! Reports: `water_level` at once when the gauge's level state changes (normal, warning,
//! alarm) or rising fast starts or ends; `water_level` and `battery` as telemetry. The
//! alarm cadence holds while the gauge says to report faster (water at the warning level
//! or above, or rising fast). Threshold: [`Threshold::WaterAlarmMm`]. Does not own the
//! level decisions or the rate ([`crate::water_level`]), nor the transducer's conversion
//! ([`crate::sensors::analog::Transducer`]).
//!
//! Sampling: the gauge keeps 32 samples, and its rate needs a minute of them; read every
//! `window_ms / 31` (10 s for the default 5 min window) for the whole window to count.

use linli_protocol::report::{Threshold, WaterLevel as Wire};
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::water_level::{self, WaterGauge};

/// What the water-level gauge reads.
pub trait WaterLevelSensors {
    /// The level above the gauge zero, mm; `None` when the read failed (a cut loop).
    fn level_mm(&mut self) -> Option<u16>;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// Highest alarm level the gateway may set, mm.
pub const MAX_ALARM_MM: u16 = 10_000;

/// Takes a new alarm level for `gauge` (set up with `cfg`): above the warning level and
/// at most [`MAX_ALARM_MM`], and only while the water is calm (below the warning level,
/// not rising fast): the gauge starts afresh, its rate window empty. Shared with the
/// manhole, which watches the water under its cover with the same gauge.
pub(super) fn set_alarm_mm(cfg: &mut water_level::Config, gauge: &mut WaterGauge, mm: u16) -> bool {
    if mm <= cfg.warn_mm || mm > MAX_ALARM_MM || gauge.fast_reporting() {
        return false;
    }
    cfg.alarm_mm = mm;
    *gauge = WaterGauge::new(*cfg);
    true
}

/// The water-level gauge.
#[derive(Debug, Clone)]
pub struct WaterLevel {
    cfg: water_level::Config,
    gauge: WaterGauge,
    sample_ms: u64,
    next_sample_ms: u64,
    level_mm: Option<u16>,
}

impl WaterLevel {
    /// A gauge with `cfg`, reading the level every `sample_ms`.
    pub fn new(cfg: water_level::Config, sample_ms: u64) -> Self {
        WaterLevel {
            cfg,
            gauge: WaterGauge::new(cfg),
            sample_ms,
            next_sample_ms: 0,
            level_mm: None,
        }
    }

    /// The gauge's settings in force.
    pub fn config(&self) -> &water_level::Config {
        &self.cfg
    }

    /// The gauge.
    pub fn gauge(&self) -> &WaterGauge {
        &self.gauge
    }
}

impl Application for WaterLevel {
    const KIND: DeviceKind = DeviceKind::WaterLevel;
    type Sensors = dyn WaterLevelSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if now_ms < self.next_sample_ms {
            return;
        }
        self.next_sample_ms = now_ms.saturating_add(self.sample_ms.max(1));
        // A failed read is not reported as the last level.
        self.level_mm = s.level_mm();
        let Some(level_mm) = self.level_mm else {
            return;
        };
        let change = self.gauge.sample(level_mm, now_ms);
        if change.state.is_some() || change.rising_fast.is_some() {
            out(Report::WaterLevel(Wire { level_mm }));
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if let Some(level_mm) = self.level_mm {
            out(Report::WaterLevel(Wire { level_mm }));
        }
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }

    fn alarm_condition(&self) -> bool {
        self.gauge.fast_reporting()
    }

    fn threshold(&mut self, t: Threshold) -> bool {
        match t {
            Threshold::WaterAlarmMm(mm) => set_alarm_mm(&mut self.cfg, &mut self.gauge, mm),
            _ => false,
        }
    }
}
