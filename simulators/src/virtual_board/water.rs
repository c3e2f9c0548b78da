//! The water-level gauge's virtual board, and the water it measures: a 4–20 mA level
//! transducer (0–2 m, read across 150 Ω) in water that stands, rises or falls in device
//! time, read through the firmware's `AdcChannel`/`Transducer` path. The manhole's board
//! measures the water in its well with the same [`Water`].
//!
//! Owns the water's scene (level, rate, a cut loop) and the gauge's board glue; does not
//! own the transducer model (`linli_firmware::virtual_sensors::VirtualTransducer`), the
//! rise model (`WaterRise`) or the level decisions.
//!
//! Time: the board tells the water the device time of every step ([`super::Clocked`]); a
//! new level or rate starts from the level at the board's latest step.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use linli_firmware::app::water_level::{WaterLevel, WaterLevelSensors};
use linli_firmware::sensors::analog::{AdcChannel, Transducer};
use linli_firmware::virtual_sensors::{VirtualTransducer, WaterRise};

use super::{lock, Clocked};

/// The transducer: 4–20 mA over 0–2 m, read across 150 Ω (600–3000 mV).
const TRANSDUCER: Transducer = Transducer::current_loop(150, 2_000);

/// Water in front of a level transducer, which the simulation raises, lowers or cuts
/// off while the board runs.
#[derive(Debug, Clone)]
pub struct Water(Arc<Mutex<Tank>>);

#[derive(Debug)]
struct Tank {
    probe: VirtualTransducer,
    now_ms: u64,
}

impl Water {
    /// Calm water at `level_mm` (up to 2 000 mm, the transducer's span).
    pub fn new(level_mm: u16) -> Self {
        let still = WaterRise {
            base_mm: level_mm.min(TRANSDUCER.span_mm),
            from_ms: 0,
            mm_per_min: 0,
            max_mm: TRANSDUCER.span_mm,
        };
        Water(Arc::new(Mutex::new(Tank {
            probe: VirtualTransducer::new(TRANSDUCER, still),
            now_ms: 0,
        })))
    }

    /// The water stands at `level_mm` now (clamped to the span) and goes on rising or
    /// falling at the rate it had.
    pub fn set_level_mm(&self, level_mm: u16) {
        let mut t = lock(&self.0);
        let rate = t.probe.water.mm_per_min;
        t.restart(level_mm, rate);
    }

    /// From the level now, the water rises `mm_per_min` (falls when negative) in device
    /// time, between 0 and the span; 0 holds it where it is.
    pub fn rise(&self, mm_per_min: i32) {
        let mut t = lock(&self.0);
        let level = t.level_mm();
        t.restart(level, mm_per_min);
    }

    /// The transducer's loop is cut (true: every read fails) or mended.
    pub fn set_cut(&self, cut: bool) {
        lock(&self.0).probe.broken = cut;
    }

    /// The level at the board's latest step, mm.
    pub fn level_mm(&self) -> u16 {
        lock(&self.0).level_mm()
    }

    /// Device time is `now_ms`.
    pub(super) fn set_time(&self, now_ms: u64) {
        let mut t = lock(&self.0);
        t.now_ms = now_ms;
        t.probe.set_time(now_ms);
    }
}

impl Tank {
    fn level_mm(&self) -> u16 {
        self.probe.water.level_mm(self.now_ms)
    }

    fn restart(&mut self, level_mm: u16, mm_per_min: i32) {
        let max_mm = self.probe.water.max_mm;
        self.probe.water = WaterRise {
            base_mm: level_mm.min(max_mm),
            from_ms: self.now_ms,
            mm_per_min,
            max_mm,
        };
    }
}

/// The transducer's ADC input.
#[derive(Debug, Clone)]
struct Input(Water);

impl AdcChannel for Input {
    type Error = Infallible;

    fn read_mv(&mut self) -> Result<u16, Infallible> {
        lock(&(self.0).0).probe.read_mv()
    }
}

/// A level transducer on an ADC input: the level, or `None` for a loop fault.
#[derive(Debug, Clone)]
pub(super) struct Gauge {
    water: Water,
    input: Input,
    transducer: Transducer,
}

impl Gauge {
    pub(super) fn new(water: &Water) -> Self {
        Gauge {
            water: water.clone(),
            input: Input(water.clone()),
            transducer: TRANSDUCER,
        }
    }

    pub(super) fn read_mm(&mut self) -> Option<u16> {
        self.transducer.read_mm(&mut self.input).ok()
    }

    pub(super) fn set_time(&self, now_ms: u64) {
        self.water.set_time(now_ms);
    }
}

/// A water-level gauge on mains power (a 4–20 mA loop is too hungry for a cell): the
/// transducer only, no battery. Run its application in [`super::Timed`].
#[derive(Debug, Clone)]
pub struct VirtualWaterLevel {
    gauge: Gauge,
}

/// Builds a [`VirtualWaterLevel`] in `water`.
pub fn water_level(water: &Water) -> VirtualWaterLevel {
    VirtualWaterLevel {
        gauge: Gauge::new(water),
    }
}

impl WaterLevelSensors for VirtualWaterLevel {
    fn level_mm(&mut self) -> Option<u16> {
        self.gauge.read_mm()
    }

    fn battery_mv(&mut self) -> Option<u16> {
        None
    }
}

impl Clocked<WaterLevel> for VirtualWaterLevel {
    fn set_time(&mut self, now_ms: u64) {
        self.gauge.set_time(now_ms);
    }

    fn sensors(&mut self) -> &mut (dyn WaterLevelSensors + 'static) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{changes, Rig, MIN, SEC};
    use super::super::Timed;
    use super::*;
    use linli_firmware::app::Application;
    use linli_firmware::water_level::{Config, WaterState};
    use linli_protocol::Report;

    type App = Timed<WaterLevel, VirtualWaterLevel>;

    fn rig() -> Rig<App> {
        // Read every 10 s, as the firmware's gauge does with its default window.
        Rig::new(
            Timed::new(WaterLevel::new(Config::default(), 10 * SEC)),
            SEC,
        )
    }

    fn levels(got: &[super::super::rig::Got]) -> Vec<u16> {
        got.iter()
            .filter_map(|g| match g.report {
                Report::WaterLevel(w) => Some(w.level_mm),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn water_rising_50_mm_a_minute_is_reported_at_once_and_reaches_the_alarm() {
        let water = Water::new(20);
        let mut board = water_level(&water);
        let mut rig = rig();
        rig.run_until(&mut board, 5 * MIN);
        water.rise(50);
        let got = rig.run_until(&mut board, 12 * MIN);
        let first = changes(&got)
            .find_map(|g| match g.report {
                Report::WaterLevel(w) => Some((g.t_ms, w.level_mm)),
                _ => None,
            })
            .expect("the rise is reported at once");
        assert!(
            first.1 < 150,
            "rising fast before the warning level: {first:?}"
        );
        assert!(levels(&got).iter().any(|&mm| mm >= 250), "{got:?}");
        assert_eq!(rig.dev.app.app.gauge().state(), WaterState::Alarm);
        assert!(rig.dev.app.alarm_condition());
        // The level follows the device clock: 20 mm + 7 min × 50 mm.
        assert_eq!(water.level_mm(), 370);
        // Stopped and drained: the gauge calms down.
        water.rise(0);
        water.set_level_mm(30);
        rig.run_until(&mut board, 25 * MIN);
        assert_eq!(rig.dev.app.app.gauge().state(), WaterState::Normal);
        assert!(!rig.dev.app.alarm_condition());
    }

    #[test]
    fn calm_water_is_telemetry_only_and_a_cut_loop_reads_nothing() {
        let water = Water::new(20);
        let mut board = water_level(&water);
        let mut rig = rig();
        let got = rig.run_until(&mut board, 30 * MIN);
        assert_eq!(changes(&got).count(), 0, "{got:?}");
        assert!(levels(&got).iter().all(|&mm| mm == 20), "{got:?}");
        assert!(!rig.dev.app.alarm_condition());
        water.set_cut(true);
        rig.run_until(&mut board, 31 * MIN);
        let got = rig.run_until(&mut board, 35 * MIN);
        assert!(
            levels(&got).is_empty(),
            "a failed read is no level: {got:?}"
        );
    }
}
