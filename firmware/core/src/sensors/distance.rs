//! A VL53L0X time-of-flight distance sensor over I2C (the `vl53l0x` driver): distance in
//! mm, single-shot or back-to-back continuous, for the waste bin's fill level
//! ([`WasteBin::distance`](crate::waste_bin::WasteBin::distance)).
//!
//! Owns the driver's set-up (its constructor runs ST's whole init and reference
//! calibration, 153 transfers) and the "no target" reading; does not own the cadence or
//! the median filtering (the bin does that).
//!
//! Driver limits worth knowing: it reads only the range word, not the range status, so a
//! weak or wrapped-around echo is not flagged (only the chip's 8190/8191 mm "nothing
//! there" is); its timed continuous mode writes the inter-measurement period
//! byte-swapped (little-endian into a big-endian register), so only back-to-back
//! continuous mode is offered here; and every register write is done as a write-read of
//! one byte.

use super::Error;
use core::fmt;
use embedded_hal::i2c::I2c;
use vl53l0x::VL53L0x;

/// The VL53L0X's model ID (register 0xC0).
pub const MODEL_ID: u8 = 0xEE;
/// At or above: the chip saw nothing in range, mm.
pub const NO_TARGET_MM: u16 = 8_190;

/// One ranging result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Distance to the target, mm.
    Mm(u16),
    /// Nothing within range (the chip reports 8190/8191 mm).
    NoTarget,
}

impl Reading {
    fn from_mm(mm: u16) -> Self {
        if mm >= NO_TARGET_MM {
            Reading::NoTarget
        } else {
            Reading::Mm(mm)
        }
    }
}

/// An initialised VL53L0X.
pub struct Distance<I2C: I2c> {
    dev: VL53L0x<I2C>,
}

impl<I2C: I2c> Distance<I2C> {
    /// Checks the model ID at the default address (0x29) and runs the driver's init and
    /// reference calibration (timing budget ~33 ms).
    pub fn new(i2c: I2C) -> Result<Self, Error<I2C::Error>> {
        let dev = VL53L0x::new(i2c).map_err(from_driver)?;
        Ok(Distance { dev })
    }

    /// Sets the time one measurement may take, µs (≥ 20 000; longer is more precise).
    pub fn set_timing_budget_us(&mut self, budget_us: u32) -> Result<(), Error<I2C::Error>> {
        match self.dev.set_measurement_timing_budget(budget_us) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Config),
            Err(e) => Err(Error::Bus(e)),
        }
    }

    /// Starts one measurement and waits (polling the bus) for it.
    pub fn single(&mut self) -> Result<Reading, Error<I2C::Error>> {
        let mm = self
            .dev
            .read_range_single_millimeters_blocking()
            .map_err(from_driver)?;
        Ok(Reading::from_mm(mm))
    }

    /// Starts back-to-back continuous ranging; collect with [`Distance::read_continuous`].
    pub fn start_continuous(&mut self) -> Result<(), Error<I2C::Error>> {
        self.dev.start_continuous(0).map_err(Error::Bus)
    }

    /// Stops continuous ranging.
    pub fn stop_continuous(&mut self) -> Result<(), Error<I2C::Error>> {
        self.dev.stop_continuous().map_err(Error::Bus)
    }

    /// The next continuous result, waiting (polling the chip's status, at most 10 000
    /// reads) for it. The driver's non-blocking read returns an `nb::Result`, which this
    /// crate cannot match without depending on `nb` itself.
    pub fn read_continuous(&mut self) -> Result<Reading, Error<I2C::Error>> {
        let mm = self
            .dev
            .read_range_continuous_millimeters_blocking()
            .map_err(from_driver)?;
        Ok(Reading::from_mm(mm))
    }
}

impl<I2C: I2c> fmt::Debug for Distance<I2C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Distance")
            .field("revision_id", &self.dev.revision_id)
            .finish_non_exhaustive()
    }
}

fn from_driver<E>(e: vl53l0x::Error<E>) -> Error<E> {
    match e {
        vl53l0x::Error::BusError(e) => Error::Bus(e),
        vl53l0x::Error::InvalidDevice(found) => Error::WrongDevice {
            expected: MODEL_ID,
            found: Some(found),
        },
        vl53l0x::Error::Timeout => Error::Timeout,
        vl53l0x::Error::InvalidAddress(_) => Error::Config,
    }
}

#[cfg(test)]
mod tests;
