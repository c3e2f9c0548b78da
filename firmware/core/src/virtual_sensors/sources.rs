//! What the virtual chips measure: one small trait per kind of chip, implemented for our
//! generators (fall scenarios, synthetic PPG), for closures, and for two scenario models
//! with time passed in: a street lamp that fails (or whose relay welds) at a given time,
//! and water rising at a steady rate.
//!
//! Owns the physics the chips sample; does not own register formats (the chips do) or
//! the clock (callers set the time).

use crate::fall::scenario::Scenario;
use crate::vitals::synth::Synth;

/// Accelerations for [`VirtualLis3dh`](super::VirtualLis3dh), one sample per call.
pub trait AccelSource {
    /// The next sample, milli-g `[x, y, z]`; `None` when the stream has ended.
    fn next_mg(&mut self) -> Option<[i16; 3]>;
}

impl AccelSource for Scenario {
    /// The scenario's samples in order (its timestamps dropped: the reader keeps time).
    fn next_mg(&mut self) -> Option<[i16; 3]> {
        self.next().map(|(_, mg)| mg)
    }
}

impl<F: FnMut() -> Option<[i16; 3]>> AccelSource for F {
    fn next_mg(&mut self) -> Option<[i16; 3]> {
        self()
    }
}

/// Red and IR light for [`VirtualMax30102`](super::VirtualMax30102), one ADC sample per
/// call at the chip's configured ADC rate.
pub trait PpgSource {
    /// The next `(red, ir)` in 18-bit ADC counts; `None` when the stream has ended.
    fn next_pair(&mut self) -> Option<(u32, u32)>;
}

impl PpgSource for Synth {
    fn next_pair(&mut self) -> Option<(u32, u32)> {
        let s = self.sample();
        Some((s.red, s.ir))
    }
}

impl<F: FnMut() -> Option<(u32, u32)>> PpgSource for F {
    fn next_pair(&mut self) -> Option<(u32, u32)> {
        self()
    }
}

/// Distances for [`VirtualVl53l0x`](super::VirtualVl53l0x), one per measurement.
pub trait DistanceSource {
    /// Distance to the target, mm; `None`: nothing in range.
    fn next_mm(&mut self) -> Option<u16>;
}

impl<F: FnMut() -> Option<u16>> DistanceSource for F {
    fn next_mm(&mut self) -> Option<u16> {
        self()
    }
}

/// What an [`VirtualIna219`](super::VirtualIna219) converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerLevels {
    /// Bus voltage, mV.
    pub bus_mv: u16,
    /// Current through the shunt, µA.
    pub current_ua: i32,
}

/// Bus voltage and current for [`VirtualIna219`](super::VirtualIna219), one per
/// conversion.
pub trait PowerSource {
    /// The levels now.
    fn levels(&mut self) -> PowerLevels;
}

impl<F: FnMut() -> PowerLevels> PowerSource for F {
    fn levels(&mut self) -> PowerLevels {
        self()
    }
}

/// A street lamp behind a relay, measured on its low-voltage supply: it draws `lamp_ma`
/// while the relay conducts, ~1 mA (its driver's standby) once it has failed, nothing
/// while the relay is open — unless the relay has welded shut. Time and the relay are
/// set by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LampModel {
    /// Supply voltage, mV.
    pub supply_mv: u16,
    /// A working lamp's current, mA.
    pub lamp_ma: u16,
    /// The lamp dies at this time, ms.
    pub fails_at_ms: Option<u64>,
    /// The relay welds shut at this time, ms.
    pub welds_at_ms: Option<u64>,
    now_ms: u64,
    relay_on: bool,
}

/// A dead lamp driver's standby current, µA.
const STANDBY_UA: i32 = 900;

impl LampModel {
    /// A working lamp on `supply_mv`, relay open, at t = 0.
    pub const fn new(supply_mv: u16, lamp_ma: u16) -> Self {
        LampModel {
            supply_mv,
            lamp_ma,
            fails_at_ms: None,
            welds_at_ms: None,
            now_ms: 0,
            relay_on: false,
        }
    }

    /// The same lamp, failing at `t_ms`.
    pub const fn failing_at(mut self, t_ms: u64) -> Self {
        self.fails_at_ms = Some(t_ms);
        self
    }

    /// The same lamp, its relay welding shut at `t_ms`.
    pub const fn welding_at(mut self, t_ms: u64) -> Self {
        self.welds_at_ms = Some(t_ms);
        self
    }

    /// Moves the clock (ms).
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Drives the relay.
    pub fn set_relay(&mut self, on: bool) {
        self.relay_on = on;
    }

    fn since(at: Option<u64>, now: u64) -> bool {
        at.is_some_and(|t| now >= t)
    }

    /// The relay conducts (closed, or welded shut).
    pub fn conducting(&self) -> bool {
        self.relay_on || Self::since(self.welds_at_ms, self.now_ms)
    }

    /// Current drawn now, µA.
    pub fn current_ua(&self) -> i32 {
        match (
            self.conducting(),
            Self::since(self.fails_at_ms, self.now_ms),
        ) {
            (false, _) => 0,
            (true, true) => STANDBY_UA,
            (true, false) => i32::from(self.lamp_ma) * 1_000,
        }
    }
}

impl PowerSource for LampModel {
    fn levels(&mut self) -> PowerLevels {
        PowerLevels {
            bus_mv: self.supply_mv,
            current_ua: self.current_ua(),
        }
    }
}

/// Water standing at `base_mm` until `from_ms`, then rising `mm_per_min` (negative:
/// falling), bounded to `0..=max_mm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaterRise {
    /// Level before the rise, mm.
    pub base_mm: u16,
    /// The rise starts, ms.
    pub from_ms: u64,
    /// Rate, mm per minute.
    pub mm_per_min: i32,
    /// Highest level (the top of the underpass), mm.
    pub max_mm: u16,
}

impl WaterRise {
    /// The level at `now_ms`, mm.
    pub fn level_mm(&self, now_ms: u64) -> u16 {
        let t = i64::try_from(now_ms.saturating_sub(self.from_ms)).unwrap_or(i64::MAX);
        let rise = i64::from(self.mm_per_min).saturating_mul(t) / 60_000;
        let level = i64::from(self.base_mm).saturating_add(rise);
        level.clamp(0, i64::from(self.max_mm)) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lamp_fails_and_the_relay_welds_on_time() {
        let mut lamp = LampModel::new(24_000, 430).failing_at(60_000);
        assert_eq!(lamp.levels().current_ua, 0, "relay open");
        lamp.set_relay(true);
        lamp.set_time(59_999);
        assert_eq!(lamp.current_ua(), 430_000);
        lamp.set_time(60_000);
        assert_eq!(lamp.current_ua(), STANDBY_UA);
        let mut welded = LampModel::new(24_000, 430).welding_at(1_000);
        welded.set_time(1_000);
        assert_eq!(welded.current_ua(), 430_000, "burning with the relay open");
    }

    #[test]
    fn water_rises_at_its_rate_within_bounds() {
        let w = WaterRise {
            base_mm: 20,
            from_ms: 600_000,
            mm_per_min: 15,
            max_mm: 400,
        };
        assert_eq!(w.level_mm(0), 20);
        assert_eq!(w.level_mm(600_000 + 120_000), 50);
        assert_eq!(w.level_mm(u64::MAX), 400);
        let ebb = WaterRise {
            mm_per_min: -30,
            ..w
        };
        assert_eq!(ebb.level_mm(600_000 + 60_000), 0);
    }
}
