//! Analog inputs: [`AdcChannel`], our one-method trait for a millivolt reading
//! (embedded-hal 1.0 has no ADC trait), and the conversions from millivolts to our units:
//! a water-level [`Transducer`] (4–20 mA loop or 0.5–4.5 V output) to mm for
//! [`WaterGauge`](crate::water_level::WaterGauge), a bed [`PressurePad`] to the 0–1000
//! units [`BedOccupancy`](crate::bed::BedOccupancy) takes, and a [`Battery`] curve to %.
//!
//! Owns the conversions and the loop-fault limits; does not own the ADC itself (its
//! reference, gain and averaging are the implementor's), nor when to sample.

use super::Error;
use core::fmt;

/// One analog input, read in millivolts at the pin.
pub trait AdcChannel {
    /// The ADC's own error.
    type Error: fmt::Debug;

    /// Converts once; the voltage at the input, mV.
    fn read_mv(&mut self) -> Result<u16, Self::Error>;
}

impl<T: AdcChannel + ?Sized> AdcChannel for &mut T {
    type Error = T::Error;

    fn read_mv(&mut self) -> Result<u16, T::Error> {
        (**self).read_mv()
    }
}

/// A level transducer whose output rises linearly from `zero_mv` (level 0) to `full_mv`
/// (level `span_mm`). Readings a little outside (NAMUR NE 43: 3.8–20.5 mA of a 4–20 mA
/// loop, the same share of other spans) clamp to the ends; further out is a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transducer {
    /// Output at level 0, mV.
    pub zero_mv: u16,
    /// Output at `span_mm`, mV.
    pub full_mv: u16,
    /// Level at full output, mm.
    pub span_mm: u16,
}

impl Transducer {
    /// A 4–20 mA loop read across a `shunt_ohm` resistor (150 Ω: 600–3000 mV).
    pub const fn current_loop(shunt_ohm: u16, span_mm: u16) -> Self {
        Transducer {
            zero_mv: 4u16.saturating_mul(shunt_ohm),
            full_mv: 20u16.saturating_mul(shunt_ohm),
            span_mm,
        }
    }

    /// A 0.5–4.5 V output, read at the pin (after any divider, scale the ends yourself).
    pub const fn half_to_four_and_a_half_volt(span_mm: u16) -> Self {
        Transducer {
            zero_mv: 500,
            full_mv: 4_500,
            span_mm,
        }
    }

    /// Level for an output of `mv`: [`Error::Underrange`] below 3.8 mA-equivalent (a
    /// broken wire, a dead sensor), [`Error::Overrange`] above 20.5 mA-equivalent (a
    /// short, or water over the sensor's range), [`Error::Config`] when the span is empty.
    pub fn level_mm<E>(&self, mv: u16) -> Result<u16, Error<E>> {
        let (zero, full) = (i32::from(self.zero_mv), i32::from(self.full_mv));
        let span = full - zero;
        if span <= 0 {
            return Err(Error::Config);
        }
        let mv = i32::from(mv);
        if mv < zero - span / 80 {
            return Err(Error::Underrange);
        }
        if mv > full + span / 32 {
            return Err(Error::Overrange);
        }
        let mm = (mv - zero).clamp(0, span) * i32::from(self.span_mm) / span;
        Ok(u16::try_from(mm).unwrap_or(self.span_mm))
    }

    /// The output at `level_mm` (clamped to the span), mV: the inverse of
    /// [`Transducer::level_mm`], for simulators.
    pub fn mv_at(&self, level_mm: u16) -> u16 {
        let (zero, full) = (i32::from(self.zero_mv), i32::from(self.full_mv));
        let span_mm = i32::from(self.span_mm).max(1);
        let level = i32::from(level_mm).min(span_mm);
        let mv = zero + (full - zero) * level / span_mm;
        u16::try_from(mv.max(0)).unwrap_or(u16::MAX)
    }

    /// Reads `adc` once and converts.
    pub fn read_mm<A: AdcChannel>(&self, adc: &mut A) -> Result<u16, Error<A::Error>> {
        let mv = adc.read_mv().map_err(Error::Bus)?;
        self.level_mm(mv)
    }
}

/// A bed pressure pad (a force-sensing resistor in a divider): 0 with the bed empty,
/// 1000 at `full_mv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressurePad {
    /// Output of the empty bed, mV.
    pub empty_mv: u16,
    /// Output with a heavy sleeper on it, mV.
    pub full_mv: u16,
}

impl PressurePad {
    /// Pressure on the 0–1000 scale (clamped; 0 when the span is empty or reversed).
    pub fn pressure(&self, mv: u16) -> u16 {
        let (empty, full) = (u32::from(self.empty_mv), u32::from(self.full_mv));
        if full <= empty {
            return 0;
        }
        let p = (u32::from(mv).clamp(empty, full) - empty) * 1_000 / (full - empty);
        u16::try_from(p).unwrap_or(1_000)
    }

    /// Reads `adc` once and converts.
    pub fn read<A: AdcChannel>(&self, adc: &mut A) -> Result<u16, Error<A::Error>> {
        adc.read_mv()
            .map(|mv| self.pressure(mv))
            .map_err(Error::Bus)
    }
}

/// A battery's charge from its voltage: a piecewise-linear curve of `(mV, %)` points in
/// rising order, measured through a divider of `divider_num / divider_den`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Battery {
    /// `(battery mV, %)`, rising; below the first point is its %, above the last its %.
    pub curve: &'static [(u16, u8)],
    /// Battery voltage = pin voltage × `divider_num` / `divider_den`.
    pub divider_num: u16,
    /// See `divider_num`.
    pub divider_den: u16,
}

/// One Li-ion / Li-polymer cell, resting.
pub const LI_ION_1S: &[(u16, u8)] = &[
    (3_300, 0),
    (3_600, 10),
    (3_700, 25),
    (3_750, 40),
    (3_800, 55),
    (3_900, 70),
    (4_000, 82),
    (4_100, 92),
    (4_200, 100),
];

/// Two alkaline AA cells in series, under a light load.
pub const ALKALINE_2AA: &[(u16, u8)] = &[
    (2_000, 0),
    (2_200, 10),
    (2_400, 30),
    (2_600, 60),
    (2_800, 85),
    (3_000, 100),
];

impl Battery {
    /// `curve` read straight at the pin (no divider).
    pub const fn new(curve: &'static [(u16, u8)]) -> Self {
        Battery {
            curve,
            divider_num: 1,
            divider_den: 1,
        }
    }

    /// The same curve behind a divider (e.g. `2, 1` for two equal resistors).
    pub const fn with_divider(self, num: u16, den: u16) -> Self {
        Battery {
            divider_num: num,
            divider_den: den,
            ..self
        }
    }

    /// Battery voltage for a pin voltage, mV.
    pub fn battery_mv(&self, pin_mv: u16) -> u16 {
        let mv =
            u32::from(pin_mv) * u32::from(self.divider_num) / u32::from(self.divider_den.max(1));
        u16::try_from(mv).unwrap_or(u16::MAX)
    }

    /// Charge for a pin voltage, % (0 with an empty curve).
    pub fn percent(&self, pin_mv: u16) -> u8 {
        let mv = i32::from(self.battery_mv(pin_mv));
        let Some(&(first_mv, first_pct)) = self.curve.first() else {
            return 0;
        };
        if mv <= i32::from(first_mv) {
            return first_pct;
        }
        for pair in self.curve.windows(2) {
            let ((m0, p0), (m1, p1)) = (pair[0], pair[1]);
            let (m0, p0, m1, p1) = (i32::from(m0), i32::from(p0), i32::from(m1), i32::from(p1));
            if mv <= m1 && m1 > m0 {
                let pct = p0 + (p1 - p0) * (mv - m0) / (m1 - m0);
                return pct.clamp(0, 100) as u8;
            }
        }
        self.curve.last().map_or(0, |&(_, p)| p)
    }

    /// Reads `adc` once and converts.
    pub fn read_percent<A: AdcChannel>(&self, adc: &mut A) -> Result<u8, Error<A::Error>> {
        adc.read_mv().map(|mv| self.percent(mv)).map_err(Error::Bus)
    }
}

#[cfg(test)]
mod tests;
