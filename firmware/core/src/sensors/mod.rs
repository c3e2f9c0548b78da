//! Sensor adapters: small structs that own a maintained embedded-hal 1.0 driver (or one of
//! our own two-method traits where embedded-hal has none) and hand out readings in the
//! units the state machines take.
//!
//! - [`accel::Accelerometer`] — LIS3DH (`lis3dh` crate) → milli-g for [`crate::fall`].
//! - [`ppg::Ppg`] — MAX30102 (`max3010x` crate), SpO2 mode → red/IR pairs for
//!   [`crate::vitals`].
//! - [`power::PowerMonitor`] — INA219 (`ina219` crate) → bus mV and lamp mA for
//!   [`crate::street_light`].
//! - [`distance::Distance`] — VL53L0X (`vl53l0x` crate) → mm for [`crate::waste_bin`].
//! - [`analog::AdcChannel`] and its adapters — millivolts → water level mm, bed pad
//!   pressure, battery %.
//! - [`echo::EchoTimer`] and [`echo::Ultrasonic`] — echo time → mm.
//!
//! Every adapter reports failures as one [`Error`], generic over the bus's own error.
//!
//! Owns the conversion to our units and the chip settings we use; does not own timing
//! (when to sample), the decisions on the readings, or bus sharing (pass an
//! `embedded-hal-bus` device when several chips share one I2C bus).

pub mod accel;
pub mod analog;
pub mod distance;
pub mod echo;
pub mod power;
pub mod ppg;

use core::fmt;

/// What went wrong talking to a sensor; `E` is the bus's (or ADC's, timer's) own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The bus (I2C, ADC, timer) failed.
    Bus(E),
    /// The chip at that address is not the one expected: `found` is its identity
    /// register when the driver tells it.
    WrongDevice {
        /// The identity the chip should have.
        expected: u8,
        /// The identity it gave, when known.
        found: Option<u8>,
    },
    /// The settings given cannot be programmed into the chip (a shunt calibration out of
    /// range, a sample rate the pulse width does not allow, …).
    Config,
    /// The chip did not come out of reset in its documented state.
    Reset,
    /// The chip did not finish a measurement in time.
    Timeout,
    /// Below the measurable range (a 4–20 mA loop under 3.8 mA: a broken wire).
    Underrange,
    /// Above the measurable range (a shunt or bus voltage past full scale, a current
    /// the calibration overflows, a loop over 20.5 mA).
    Overrange,
    /// A FIFO overran and was cleared: the stream has a gap.
    Overrun,
}

impl<E> Error<E> {
    /// The same error with the bus error mapped by `f`.
    pub fn map_bus<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Bus(e) => Error::Bus(f(e)),
            Error::WrongDevice { expected, found } => Error::WrongDevice { expected, found },
            Error::Config => Error::Config,
            Error::Reset => Error::Reset,
            Error::Timeout => Error::Timeout,
            Error::Underrange => Error::Underrange,
            Error::Overrange => Error::Overrange,
            Error::Overrun => Error::Overrun,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "sensor bus error: {e:?}"),
            Error::WrongDevice {
                expected,
                found: Some(found),
            } => write!(
                f,
                "wrong device: identity {found:#04x}, expected {expected:#04x}"
            ),
            Error::WrongDevice {
                expected,
                found: None,
            } => write!(f, "wrong device: identity is not {expected:#04x}"),
            Error::Config => f.write_str("sensor settings cannot be programmed"),
            Error::Reset => f.write_str("sensor not in its reset state after a reset"),
            Error::Timeout => f.write_str("sensor did not finish in time"),
            Error::Underrange => f.write_str("reading below the sensor's range"),
            Error::Overrange => f.write_str("reading above the sensor's range"),
            Error::Overrun => f.write_str("sensor FIFO overran and was cleared"),
        }
    }
}
