//! The street light's INA219 current/voltage monitor over I2C (the `ina219` driver, with
//! its `paranoid` reset checks): calibrated for the shunt the caller fits, giving the bus
//! voltage (mV) and the lamp current (mA) that
//! [`LampFaults::sample`](crate::street_light::LampFaults::sample) takes.
//!
//! Owns the calibration maths and unit conversion; does not own the relay, the sampling
//! cadence or the fault decision. The chip runs in its default mode (continuous shunt
//! and bus conversions, 12 bits, ±320 mV shunt range, 32 V bus range).

use super::Error;
use core::fmt;
use embedded_hal::i2c::I2c;
use ina219::address::Address;
use ina219::calibration::{IntCalibration, MicroAmpere};
use ina219::errors::{InitializationErrorReason, MeasurementError};
use ina219::SyncIna219;

/// The shunt resistor and the largest current to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shunt {
    /// Shunt resistance, µΩ (0.1 Ω = 100 000).
    pub r_shunt_uohm: u32,
    /// Largest current to resolve, mA; sets the current LSB (`max / 32768`).
    pub max_current_ma: u32,
}

impl Shunt {
    /// The driver's calibration: the current LSB rounded up to a whole µA; `None` when the
    /// chip cannot be programmed for it.
    fn calibration(self) -> Option<IntCalibration> {
        let lsb_ua = u64::from(self.max_current_ma)
            .saturating_mul(1_000)
            .div_ceil(32_768);
        IntCalibration::new(MicroAmpere(i64::try_from(lsb_ua).ok()?), self.r_shunt_uohm)
    }
}

/// One conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerSample {
    /// Bus voltage, mV (4 mV steps).
    pub bus_mv: u16,
    /// Shunt voltage, µV (10 µV steps).
    pub shunt_uv: i32,
    /// Current through the shunt, mA (rounded; negative when it flows backwards).
    pub current_ma: i32,
}

impl PowerSample {
    /// The lamp current for the fault detector: negative counts as none, capped at u16.
    pub fn lamp_current_ma(&self) -> u16 {
        u16::try_from(self.current_ma.max(0)).unwrap_or(u16::MAX)
    }
}

/// An INA219 calibrated for one shunt.
pub struct PowerMonitor<I2C> {
    dev: SyncIna219<I2C, IntCalibration>,
    shunt: Shunt,
}

impl<I2C: I2c> PowerMonitor<I2C> {
    /// Resets the chip at `address` (7-bit, 0x40–0x4F), checks it came back in its reset
    /// state, and calibrates it for `shunt`. [`Error::Config`] when the shunt and
    /// current cannot be calibrated (or the address is not an INA219's).
    pub fn new(i2c: I2C, address: u8, shunt: Shunt) -> Result<Self, Error<I2C::Error>> {
        let address = Address::from_byte(address).map_err(|_| Error::Config)?;
        let calibration = shunt.calibration().ok_or(Error::Config)?;
        let dev =
            SyncIna219::new_calibrated(i2c, address, calibration).map_err(|e| match e.reason {
                InitializationErrorReason::I2cError(e) => Error::Bus(e),
                InitializationErrorReason::ConfigurationNotDefaultAfterReset
                | InitializationErrorReason::RegisterNotZeroAfterReset(_) => Error::Reset,
                InitializationErrorReason::ShuntVoltageOutOfRange
                | InitializationErrorReason::BusVoltageOutOfRange => Error::Overrange,
            })?;
        Ok(PowerMonitor { dev, shunt })
    }

    /// The shunt it is calibrated for.
    pub fn shunt(&self) -> Shunt {
        self.shunt
    }

    /// The latest conversion, or `None` when none finished since the last call (one
    /// takes ~1.1 ms in the default mode). [`Error::Overrange`] when the current or
    /// power overflowed the calibration or a voltage is past full scale.
    pub fn measure(&mut self) -> Result<Option<PowerSample>, Error<I2C::Error>> {
        let m = match self.dev.next_measurement() {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(MeasurementError::I2cError(e)) => return Err(Error::Bus(e)),
            Err(
                MeasurementError::MathOverflow(_)
                | MeasurementError::ShuntVoltageReadError(_)
                | MeasurementError::BusVoltageReadError(_),
            ) => return Err(Error::Overrange),
        };
        let ua = m.current.0;
        let current_ma = i32::try_from((ua + 500).div_euclid(1_000)).unwrap_or(i32::MAX);
        Ok(Some(PowerSample {
            bus_mv: m.bus_voltage.voltage_mv(),
            shunt_uv: m.shunt_voltage.shunt_voltage_uv(),
            current_ma,
        }))
    }
}

impl<I2C> fmt::Debug for PowerMonitor<I2C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerMonitor")
            .field("shunt", &self.shunt)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
    use std::{vec, vec::Vec};

    const A: u8 = 0x40;
    /// 0.1 Ω, up to 3.2 A: LSB 98 µA, CAL = 40.96e9 / (98 · 100 000) = 4179 → 4178 (even).
    const SHUNT: Shunt = Shunt {
        r_shunt_uohm: 100_000,
        max_current_ma: 3_200,
    };

    fn rd(reg: u8, v: u16) -> T {
        T::write_read(A, vec![reg], v.to_be_bytes().to_vec())
    }

    /// The driver's reset and paranoid checks, then the calibration write.
    fn init() -> Vec<T> {
        vec![
            T::write(A, vec![0x00, 0xB9, 0x9F]), // CONFIG: RST + defaults
            rd(0x00, 0x399F),                    // back to defaults
            rd(0x05, 0),                         // CALIBRATION, CURRENT, POWER zero
            rd(0x04, 0),
            rd(0x03, 0),
            rd(0x01, 0), // shunt, bus in range
            rd(0x02, 0xBB80),
            T::write(A, vec![0x05, 0x10, 0x52]), // CAL = 4178
        ]
    }

    /// `next_measurement`: bus, power, shunt, current in one transaction.
    fn measurement(bus: u16, power: u16, shunt: u16, current: u16) -> [T; 10] {
        let r = |v: u16| T::read(A, v.to_be_bytes().to_vec());
        [
            T::transaction_start(A),
            T::write(A, vec![0x02]),
            r(bus),
            T::write(A, vec![0x03]),
            r(power),
            T::write(A, vec![0x01]),
            r(shunt),
            T::write(A, vec![0x04]),
            r(current),
            T::transaction_end(A),
        ]
    }

    #[test]
    fn a_lit_lamp_a_dark_one_and_no_new_conversion() {
        let mut t = init();
        // 24 V with CNVR; 43.00 mV across 0.1 Ω; 4300 · 4178 / 4096 = 4386 LSBs.
        t.extend(measurement(0xBB82, 5_263, 4_300, 4_386));
        t.extend(measurement(0xBB82, 0, 10, 10)); // 0.1 mV: ~1 mA of leakage
        t.extend(measurement(0xBB80, 0, 10, 10)); // CNVR clear: nothing new
        let mut bus = Mock::new(&t);
        let mut pm = PowerMonitor::new(bus.clone(), A, SHUNT).expect("init");
        let lit = pm.measure().expect("read").expect("a conversion");
        assert_eq!(
            lit,
            PowerSample {
                bus_mv: 24_000,
                shunt_uv: 43_000,
                current_ma: 430, // 4386 · 98 µA = 429.8 mA
            }
        );
        assert_eq!(lit.lamp_current_ma(), 430);
        let dark = pm.measure().expect("read").expect("a conversion");
        assert_eq!((dark.current_ma, dark.lamp_current_ma()), (1, 1));
        assert_eq!(pm.measure(), Ok(None));
        bus.done();
    }

    #[test]
    fn backwards_current_counts_as_none_for_the_lamp() {
        let mut t = init();
        t.extend(measurement(0xBB82, 0, (-500i16) as u16, (-510i16) as u16));
        let mut bus = Mock::new(&t);
        let mut pm = PowerMonitor::new(bus.clone(), A, SHUNT).expect("init");
        let s = pm.measure().expect("read").expect("conversion");
        assert_eq!((s.shunt_uv, s.current_ma), (-5_000, -50));
        assert_eq!(s.lamp_current_ma(), 0);
        bus.done();
    }

    #[test]
    fn overflow_and_impossible_shunts() {
        let mut t = init();
        t.extend(measurement(0xBB83, 0, 31_000, 0)); // OVF set
        let mut bus = Mock::new(&t);
        let mut pm = PowerMonitor::new(bus.clone(), A, SHUNT).expect("init");
        assert_eq!(pm.measure(), Err(Error::Overrange));
        bus.done();

        // 1 µΩ with a 1 mA range cannot be calibrated; 0x20 is no INA219 address.
        let tiny = Shunt {
            r_shunt_uohm: 1,
            max_current_ma: 1,
        };
        let mut bus = Mock::new(&[]);
        assert_eq!(
            PowerMonitor::new(bus.clone(), A, tiny).map(|_| ()),
            Err(Error::Config)
        );
        assert_eq!(
            PowerMonitor::new(bus.clone(), 0x20, SHUNT).map(|_| ()),
            Err(Error::Config)
        );
        bus.done();
    }

    #[test]
    fn a_chip_that_does_not_reset_and_a_dead_bus() {
        let mut t = vec![T::write(A, vec![0x00, 0xB9, 0x9F])];
        // The driver polls CONFIG 12 times for its defaults.
        t.extend((0..12).map(|_| rd(0x00, 0x0000)));
        let mut bus = Mock::new(&t);
        assert_eq!(
            PowerMonitor::new(bus.clone(), A, SHUNT).map(|_| ()),
            Err(Error::Reset)
        );
        bus.done();

        let t = [T::write(A, vec![0x00, 0xB9, 0x9F]).with_error(ErrorKind::Other)];
        let mut bus = Mock::new(&t);
        assert_eq!(
            PowerMonitor::new(bus.clone(), A, SHUNT).map(|_| ()),
            Err(Error::Bus(ErrorKind::Other))
        );
        bus.done();
    }
}
