//! The pendant's LIS3DH accelerometer over I2C (the `lis3dh` driver): set up at 100 Hz,
//! high-resolution mode, ±8 g or ±16 g; samples as milli-g `[x, y, z]` for
//! [`fall::Detector::sample`](crate::fall::Detector::sample).
//!
//! Counts convert through [`fall::Range`](crate::fall::Range), the detector's own
//! convention. Owns the chip settings and the conversion; does not own the sampling
//! cadence (poll [`Accelerometer::poll_mg`] at ≥ 100 Hz, or on the data-ready pin) or the
//! timestamps.

use super::Error;
use crate::fall::Range;
use core::fmt;
use embedded_hal::i2c::I2c;
pub use lis3dh::SlaveAddr;
use lis3dh::{Configuration, DataRate, Lis3dh, Lis3dhCore, Lis3dhI2C, Mode};

/// WHO_AM_I of the LIS3DH.
pub const WHO_AM_I: u8 = 0x33;

/// A LIS3DH set up for fall detection.
pub struct Accelerometer<I2C> {
    dev: Lis3dh<Lis3dhI2C<I2C>>,
    range: Range,
}

impl<I2C: I2c> Accelerometer<I2C> {
    /// Checks WHO_AM_I and programs 100 Hz, high resolution, block data update, all axes,
    /// and `range`. `address`: SA0 low (0x18, `Default`) or high (0x19, `Alternate`).
    ///
    /// On an error the bus is dropped with the driver (the driver keeps it): pass a
    /// shared-bus device, not the bus itself, when the caller must go on using it.
    pub fn new(i2c: I2C, address: SlaveAddr, range: Range) -> Result<Self, Error<I2C::Error>> {
        let config = Configuration {
            mode: Mode::HighResolution,
            datarate: DataRate::Hz_100,
            enable_x_axis: true,
            enable_y_axis: true,
            enable_z_axis: true,
            block_data_update: true,
            enable_temperature: false,
        };
        let mut dev = Lis3dh::new_i2c_with_config(i2c, address, config).map_err(from_driver)?;
        let fs = match range {
            Range::G8 => lis3dh::Range::G8,
            Range::G16 => lis3dh::Range::G16,
        };
        dev.set_range(fs).map_err(from_driver)?;
        Ok(Accelerometer { dev, range })
    }

    /// The full scale in use.
    pub fn range(&self) -> Range {
        self.range
    }

    /// Whether a new sample of all three axes is waiting (STATUS_REG ZYXDA).
    pub fn data_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        self.dev.is_data_ready().map_err(from_driver)
    }

    /// Reads the output registers (one 6-byte burst) as milli-g, whether or not the
    /// sample is new.
    pub fn read_mg(&mut self) -> Result<[i16; 3], Error<I2C::Error>> {
        let b = self.dev.read_accel_bytes().map_err(from_driver)?;
        let raw = [0, 2, 4].map(|i| i16::from_le_bytes([b[i], b[i + 1]]));
        Ok(self.range.to_mg(raw))
    }

    /// The next sample in milli-g, or `None` when none is waiting yet.
    pub fn poll_mg(&mut self) -> Result<Option<[i16; 3]>, Error<I2C::Error>> {
        if !self.data_ready()? {
            return Ok(None);
        }
        self.read_mg().map(Some)
    }
}

impl<I2C> fmt::Debug for Accelerometer<I2C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accelerometer")
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

fn from_driver<E>(e: lis3dh::Error<E, core::convert::Infallible>) -> Error<E> {
    match e {
        lis3dh::Error::Bus(e) => Error::Bus(e),
        // The driver calls a wrong WHO_AM_I a wrong address, without the value read.
        lis3dh::Error::WrongAddress => Error::WrongDevice {
            expected: WHO_AM_I,
            found: None,
        },
        lis3dh::Error::Pin(never) => match never {},
        lis3dh::Error::InvalidDataRate
        | lis3dh::Error::InvalidMode
        | lis3dh::Error::InvalidRange
        | lis3dh::Error::WriteToReadOnly => Error::Config,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
    use std::{vec, vec::Vec};

    const A: u8 = 0x18;

    fn rd(reg: u8, v: u8) -> T {
        T::write_read(A, vec![reg], vec![v])
    }

    fn wr(reg: u8, v: u8) -> T {
        T::write(A, vec![reg, v])
    }

    /// What `Accelerometer::new` does on a chip fresh from power-up (CTRL_REG1 = 0x07).
    fn init(ctrl4_range: u8) -> Vec<T> {
        vec![
            rd(0x0F, 0x33), // WHO_AM_I
            wr(0x23, 0x80), // CTRL_REG4 = BDU
            rd(0x20, 0x07), // mode: clear LPen …
            wr(0x20, 0x07),
            rd(0x23, 0x80), // … set HR
            wr(0x23, 0x88),
            rd(0x20, 0x07), // ODR = 100 Hz
            wr(0x20, 0x57),
            rd(0x20, 0x57), // X, Y, Z enabled
            wr(0x20, 0x57),
            rd(0x1F, 0x00), // TEMP_CFG: ADC_EN
            wr(0x1F, 0x80),
            rd(0x23, 0x88), // full scale
            wr(0x23, ctrl4_range),
        ]
    }

    #[test]
    fn init_then_samples_in_milli_g_at_8g() {
        let mut t = init(0xA8);
        t.extend([
            rd(0x27, 0x00), // STATUS: nothing yet
            rd(0x27, 0x08), // ZYXDA
            // +1000 mg, −500 mg, full scale: 250, −125, 2047 digits of 4 mg, << 4.
            T::write_read(A, vec![0xA8], vec![0xA0, 0x0F, 0x30, 0xF8, 0xF0, 0x7F]),
        ]);
        let mut bus = Mock::new(&t);
        let mut acc = Accelerometer::new(bus.clone(), SlaveAddr::Default, Range::G8).expect("init");
        assert_eq!(acc.range(), Range::G8);
        assert_eq!(acc.poll_mg().expect("status"), None);
        assert_eq!(acc.poll_mg().expect("read"), Some([1_000, -500, 8_188]));
        bus.done();
    }

    #[test]
    fn sixteen_g_uses_12_mg_digits() {
        let mut t = init(0xB8);
        // 1000 digits (12 000 mg), −1 digit, 0.
        t.push(T::write_read(
            A,
            vec![0xA8],
            vec![0x80, 0x3E, 0xF0, 0xFF, 0x00, 0x00],
        ));
        let mut bus = Mock::new(&t);
        let mut acc =
            Accelerometer::new(bus.clone(), SlaveAddr::Default, Range::G16).expect("init");
        assert_eq!(acc.read_mg().expect("read"), [12_000, -12, 0]);
        bus.done();
    }

    #[test]
    fn a_wrong_who_am_i_is_a_wrong_device() {
        let t = [T::write_read(0x19, vec![0x0F], vec![0x44])];
        let mut bus = Mock::new(&t);
        let err = Accelerometer::new(bus.clone(), SlaveAddr::Alternate, Range::G8)
            .expect_err("not a LIS3DH");
        assert_eq!(
            err,
            Error::WrongDevice {
                expected: 0x33,
                found: None
            }
        );
        assert_eq!(std::format!("{err}"), "wrong device: identity is not 0x33");
        bus.done();
    }

    #[test]
    fn bus_errors_come_back_as_bus_errors() {
        let t = [rd(0x0F, 0).with_error(ErrorKind::Other)];
        let mut bus = Mock::new(&t);
        let err =
            Accelerometer::new(bus.clone(), SlaveAddr::Default, Range::G8).expect_err("no chip");
        assert_eq!(err, Error::Bus(ErrorKind::Other));
        bus.done();

        let mut t = init(0xA8);
        t.push(rd(0x27, 0).with_error(ErrorKind::ArbitrationLoss));
        t.push(T::write_read(A, vec![0xA8], vec![0; 6]).with_error(ErrorKind::Other));
        let mut bus = Mock::new(&t);
        let mut acc = Accelerometer::new(bus.clone(), SlaveAddr::Default, Range::G8).expect("init");
        assert_eq!(acc.poll_mg(), Err(Error::Bus(ErrorKind::ArbitrationLoss)));
        assert_eq!(acc.read_mg(), Err(Error::Bus(ErrorKind::Other)));
        bus.done();
    }
}
