//! The MAX30102 pulse oximeter front end over I2C (the `max3010x` driver), in SpO2 mode:
//! red and IR LED samples from the chip's 32-deep FIFO, as `(red, ir)` pairs on the
//! 18-bit scale [`VitalsEstimator::push`](crate::vitals::VitalsEstimator::push) takes.
//!
//! Owns the chip settings and the FIFO draining; does not own the timestamps (sample `k`
//! of the stream is at `k / sample_rate_hz()`), the LED current control loop or the
//! estimates.
//!
//! FIFO caveat (chip and driver): the unread count is `WR_PTR − RD_PTR` mod 32, so a full
//! FIFO reads as empty and stays so. [`Ppg::read`] notices (an empty read with the
//! overflow counter up), clears the FIFO and reports [`Error::Overrun`]; read at least
//! every 300 ms at 100 samples/s to never get there.

use super::Error;
use core::fmt;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use max3010x::marker::{ic::Max30102, mode::Oximeter};
use max3010x::Max3010x;
pub use max3010x::{AdcRange, LedPulseWidth, SampleAveraging, SamplingRate};

/// PART_ID of the MAX30102.
pub const PART_ID: u8 = 0x15;
/// Samples the FIFO holds.
pub const FIFO_DEPTH: usize = 32;

/// Chip settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// ADC sample rate.
    pub sampling_rate: SamplingRate,
    /// Samples averaged into each FIFO entry.
    pub averaging: SampleAveraging,
    /// LED pulse width; sets the ADC resolution (411 µs: 18 bits).
    pub pulse_width: LedPulseWidth,
    /// ADC full scale.
    pub adc_range: AdcRange,
    /// Red and IR LED current, 0.2 mA steps (0x24 = 7.2 mA).
    pub led_amplitude: u8,
}

impl Default for Config {
    /// 100 samples/s, no averaging, 18 bits, 4096 nA full scale, 7.2 mA.
    fn default() -> Self {
        Config {
            sampling_rate: SamplingRate::Sps100,
            averaging: SampleAveraging::Sa1,
            pulse_width: LedPulseWidth::Pw411,
            adc_range: AdcRange::Fs4k,
            led_amplitude: 0x24,
        }
    }
}

impl Config {
    /// Samples per second reaching the FIFO (the ADC rate over the averaging).
    pub fn sample_rate_hz(&self) -> u16 {
        use SampleAveraging as A;
        use SamplingRate as S;
        let adc: u16 = match self.sampling_rate {
            S::Sps50 => 50,
            S::Sps100 => 100,
            S::Sps200 => 200,
            S::Sps400 => 400,
            S::Sps800 => 800,
            S::Sps1000 => 1_000,
            S::Sps1600 => 1_600,
            S::Sps3200 => 3_200,
        };
        let shift = match self.averaging {
            A::Sa1 => 0,
            A::Sa2 => 1,
            A::Sa4 => 2,
            A::Sa8 => 3,
            A::Sa16 => 4,
            A::Sa32 => 5,
        };
        adc >> shift
    }

    /// Bits below the ADC resolution, which [`Ppg::read`] shifts back in.
    fn shift(&self) -> u32 {
        match self.pulse_width {
            LedPulseWidth::Pw69 => 3,
            LedPulseWidth::Pw118 => 2,
            LedPulseWidth::Pw215 => 1,
            LedPulseWidth::Pw411 => 0,
        }
    }
}

/// A MAX30102 in SpO2 mode.
pub struct Ppg<I2C> {
    dev: Max3010x<I2C, Max30102, Oximeter>,
    cfg: Config,
}

impl<I2C: I2c> Ppg<I2C> {
    /// Checks PART_ID, resets the chip (waiting 1 ms on `delay`), enters SpO2 mode and
    /// programs `cfg`; the FIFO starts empty.
    pub fn new(i2c: I2C, cfg: Config, delay: &mut impl DelayNs) -> Result<Self, Error<I2C::Error>> {
        let mut dev = Max3010x::new_max30102(i2c);
        let part = dev.get_part_id().map_err(from_driver)?;
        if part != PART_ID {
            return Err(Error::WrongDevice {
                expected: PART_ID,
                found: Some(part),
            });
        }
        dev.reset().map_err(from_driver)?;
        delay.delay_ms(1);
        let mut dev = dev.into_oximeter().map_err(from_driver)?;
        dev.set_sample_averaging(cfg.averaging)
            .map_err(from_driver)?;
        dev.set_sampling_rate(cfg.sampling_rate)
            .map_err(from_driver)?;
        dev.set_pulse_width(cfg.pulse_width).map_err(from_driver)?;
        dev.set_adc_range(cfg.adc_range).map_err(from_driver)?;
        dev.set_pulse_amplitude(max3010x::Led::All, cfg.led_amplitude)
            .map_err(from_driver)?;
        Ok(Ppg { dev, cfg })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Samples per second the stream carries.
    pub fn sample_rate_hz(&self) -> u16 {
        self.cfg.sample_rate_hz()
    }

    /// Moves the waiting samples (at most `out.len()` and 32) into `out`, oldest first, as
    /// `(red, ir)` on the 18-bit scale whatever the pulse width; returns how many.
    /// [`Error::Overrun`] when the FIFO had filled up: it has been cleared, and samples
    /// were lost.
    pub fn read(&mut self, out: &mut [(u32, u32)]) -> Result<usize, Error<I2C::Error>> {
        let want = out.len().min(FIFO_DEPTH);
        if want == 0 {
            return Ok(0);
        }
        let mut words = [0u32; 2 * FIFO_DEPTH];
        let n = usize::from(
            self.dev
                .read_fifo(&mut words[..2 * want])
                .map_err(from_driver)?,
        )
        .min(want);
        if n == 0 {
            // Empty, or full (the pointers meet): only the overflow counter tells.
            if self.dev.get_overflow_sample_count().map_err(from_driver)? > 0 {
                self.dev.clear_fifo().map_err(from_driver)?;
                return Err(Error::Overrun);
            }
            return Ok(0);
        }
        let shift = self.cfg.shift();
        for (o, w) in out.iter_mut().zip(words.chunks_exact(2)).take(n) {
            *o = (w[0] << shift, w[1] << shift);
        }
        Ok(n)
    }

    /// Empties the FIFO (after a pause in reading, to restart the stream cleanly).
    pub fn clear(&mut self) -> Result<(), Error<I2C::Error>> {
        self.dev.clear_fifo().map_err(from_driver)
    }
}

impl<I2C> fmt::Debug for Ppg<I2C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ppg")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn from_driver<E>(e: max3010x::Error<E>) -> Error<E> {
    match e {
        max3010x::Error::I2C(e) => Error::Bus(e),
        max3010x::Error::InvalidArguments => Error::Config,
    }
}

#[cfg(test)]
mod tests;
