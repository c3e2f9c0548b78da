//! The power meter model (profile `eastron-sdm`, Eastron SDM style): voltage, current,
//! power, power factor, frequency and import energy integrated over time.
//!
//! Register map (zero-based input registers, IEEE-754 f32, high word first): voltage
//! 0x0000, current 0x0006, power 0x000C, power factor 0x001E, frequency 0x0046, import
//! kWh 0x0048. Other input registers below 0x004A read 0 (as on a real SDM); anything
//! beyond, and every other table, is an illegal address. Nothing is writable.

use std::time::Duration;

use serde::Serialize;

use super::{noise, Fault};

/// One past the last input register a meter answers.
const INPUT_END: u16 = 0x004A;

/// A meter's supply and load.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterConfig {
    /// Supply voltage, V.
    pub voltage_v: f64,
    /// Load, W (negative = export, which does not count as import).
    pub load_w: f64,
    /// Power factor.
    pub power_factor: f64,
    /// Mains frequency, Hz.
    pub frequency_hz: f64,
    /// Import energy at start, kWh.
    pub energy_kwh: f64,
    /// Noise on voltage and power, ± percent (changes once a second); frequency gets
    /// a tenth of it.
    pub noise_pct: f64,
    /// Seed of the noise (give each unit its own).
    pub seed: u64,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            voltage_v: 230.0,
            load_w: 2000.0,
            power_factor: 0.95,
            frequency_hz: 50.0,
            energy_kwh: 0.0,
            noise_pct: 0.5,
            seed: 0,
        }
    }
}

/// What a meter's registers show.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeterState {
    /// 0x0000: voltage, V.
    pub voltage_v: f64,
    /// 0x0006: current, A.
    pub current_a: f64,
    /// 0x000C: active power, W.
    pub power_w: f64,
    /// 0x001E: power factor.
    pub power_factor: f64,
    /// 0x0046: frequency, Hz.
    pub frequency_hz: f64,
    /// 0x0048: import energy, kWh.
    pub energy_import_kwh: f64,
    /// The unit's fault, if any.
    pub fault: Option<Fault>,
}

impl MeterState {
    pub(super) fn input(&self, addr: u16) -> Option<u16> {
        if addr >= INPUT_END {
            return None;
        }
        let value = match addr & !1 {
            0x0000 => self.voltage_v,
            0x0006 => self.current_a,
            0x000C => self.power_w,
            0x001E => self.power_factor,
            0x0046 => self.frequency_hz,
            0x0048 => self.energy_import_kwh,
            _ => return Some(0),
        };
        let bits = (value as f32).to_bits();
        Some(if addr & 1 == 0 {
            (bits >> 16) as u16
        } else {
            bits as u16
        })
    }
}

/// A simulated power meter. Pure: time comes in through [`Meter::advance`].
#[derive(Debug, Clone)]
pub struct Meter {
    cfg: MeterConfig,
    energy_kwh: f64,
    fault: Option<Fault>,
    now: Duration,
}

impl Meter {
    /// A healthy meter at time 0.
    pub fn new(cfg: MeterConfig) -> Self {
        Meter {
            energy_kwh: cfg.energy_kwh.max(0.0),
            fault: None,
            now: Duration::ZERO,
            cfg,
        }
    }

    /// Its fault, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Sets or clears its fault (`deaf` changes nothing: a meter takes no commands).
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.fault = fault;
    }

    /// Changes the load from now on, W.
    pub fn set_load_w(&mut self, load_w: f64) {
        self.cfg.load_w = load_w;
    }

    /// Brings it to time `now`: integrates import energy since the last call.
    pub fn advance(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.now);
        self.now = self.now.max(now);
        if self.metering() && self.cfg.load_w > 0.0 {
            self.energy_kwh += self.cfg.load_w * dt.as_secs_f64() / 3_600_000.0;
        }
    }

    /// What its registers show now.
    pub fn state(&self) -> MeterState {
        let c = &self.cfg;
        if self.fault == Some(Fault::SupplyLost) {
            return MeterState {
                voltage_v: 0.0,
                current_a: 0.0,
                power_w: 0.0,
                power_factor: 0.0,
                frequency_hz: 0.0,
                energy_import_kwh: 0.0,
                fault: self.fault,
            };
        }
        let jitter = |channel, pct: f64| 1.0 + pct / 100.0 * noise(c.seed, channel, self.now);
        let voltage_v = c.voltage_v * jitter(0, c.noise_pct);
        let power_w = if self.metering() {
            c.load_w * jitter(1, c.noise_pct)
        } else {
            0.0
        };
        let va = voltage_v * c.power_factor;
        MeterState {
            voltage_v,
            current_a: if va > 0.0 { power_w.abs() / va } else { 0.0 },
            power_w,
            power_factor: c.power_factor,
            frequency_hz: c.frequency_hz * jitter(2, c.noise_pct / 10.0),
            energy_import_kwh: self.energy_kwh,
            fault: self.fault,
        }
    }

    fn metering(&self) -> bool {
        !matches!(self.fault, Some(Fault::Broken | Fault::SupplyLost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_at(s: &MeterState, addr: u16) -> f32 {
        let hi = s.input(addr).unwrap_or(0);
        let lo = s.input(addr + 1).unwrap_or(0);
        f32::from_bits(u32::from(hi) << 16 | u32::from(lo))
    }

    fn quiet() -> MeterConfig {
        MeterConfig {
            noise_pct: 0.0,
            ..MeterConfig::default()
        }
    }

    #[test]
    fn floats_are_big_endian_high_word_first() {
        let s = Meter::new(quiet()).state();
        // 230.0f32 = 0x4366_0000
        assert_eq!((s.input(0), s.input(1)), (Some(0x4366), Some(0x0000)));
        assert_eq!(f32_at(&s, 0x0006), (2000.0 / (230.0 * 0.95)) as f32);
        assert_eq!(f32_at(&s, 0x000C), 2000.0);
        assert_eq!(f32_at(&s, 0x001E), 0.95);
        assert_eq!(f32_at(&s, 0x0046), 50.0);
        assert_eq!(f32_at(&s, 0x0048), 0.0);
    }

    #[test]
    fn unmapped_registers_read_zero_up_to_0x4a() {
        let s = Meter::new(quiet()).state();
        for addr in [0x0002, 0x0003, 0x0010, 0x0020, 0x0045] {
            assert_eq!(s.input(addr), Some(0), "{addr:#x}");
        }
        assert_eq!(s.input(0x0049).map(|_| ()), Some(()));
        assert_eq!(s.input(0x004A), None);
        assert_eq!(s.input(0x1000), None);
    }

    #[test]
    fn energy_integrates_the_load() {
        let mut m = Meter::new(MeterConfig {
            energy_kwh: 10.0,
            ..quiet()
        });
        m.advance(Duration::from_secs(1800));
        assert!((m.state().energy_import_kwh - 11.0).abs() < 1e-9);
        m.set_fault(Some(Fault::Broken));
        m.advance(Duration::from_secs(3600));
        let s = m.state();
        assert!((s.energy_import_kwh - 11.0).abs() < 1e-9);
        assert_eq!((s.power_w, s.current_a), (0.0, 0.0));
        assert_eq!(s.voltage_v, 230.0);
        m.set_fault(None);
        m.set_load_w(-500.0);
        m.advance(Duration::from_secs(7200));
        assert!((m.state().energy_import_kwh - 11.0).abs() < 1e-9, "export");
        // Time never goes back.
        m.set_load_w(1000.0);
        m.advance(Duration::from_secs(10));
        assert!((m.state().energy_import_kwh - 11.0).abs() < 1e-9);
    }

    #[test]
    fn noisy_readings_stay_near_nominal() {
        let mut m = Meter::new(MeterConfig {
            seed: 3,
            ..MeterConfig::default()
        });
        for t in 0..300 {
            m.advance(Duration::from_secs(t));
            let s = m.state();
            assert!((f64::from(f32_at(&s, 0)) - 230.0).abs() <= 2.3);
            assert!((s.power_w - 2000.0).abs() <= 20.0);
            assert!((s.frequency_hz - 50.0).abs() <= 0.03);
        }
    }

    #[test]
    fn supply_lost_reads_zero() {
        let mut m = Meter::new(quiet());
        m.advance(Duration::from_secs(3600));
        m.set_fault(Some(Fault::SupplyLost));
        let s = m.state();
        assert!((0..INPUT_END).all(|a| s.input(a) == Some(0)));
        m.advance(Duration::from_secs(7200));
        m.set_fault(None);
        assert!((m.state().energy_import_kwh - 2.0).abs() < 1e-9);
    }
}
