//! Ultrasonic ranging: [`EchoTimer`], our one-method trait for a ping's round-trip time
//! (embedded-hal 1.0 has no timer/capture trait), and [`Ultrasonic`], which turns it into
//! mm for the waste bin, optionally corrected for the air temperature.
//!
//! Owns the time-to-distance conversion and the sensor's blind zone and reach; does not
//! own triggering, the timer hardware or filtering (the bin keeps a median).

use super::Error;
use crate::waste_bin::echo_to_mm;
use core::fmt;

/// A ping and its echo.
pub trait EchoTimer {
    /// The timer's own error.
    type Error: fmt::Debug;

    /// Sends one ping; the round-trip time to the first echo, µs, or `None` when no echo
    /// came back before the timer gave up.
    fn echo_us(&mut self) -> Result<Option<u32>, Self::Error>;
}

impl<T: EchoTimer + ?Sized> EchoTimer for &mut T {
    type Error = T::Error;

    fn echo_us(&mut self) -> Result<Option<u32>, T::Error> {
        (**self).echo_us()
    }
}

/// An ultrasonic sensor's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ultrasonic {
    /// Blind zone: nearer echoes read as this, mm (a bin this full is full).
    pub min_mm: u16,
    /// Reach: farther echoes are not trusted (a multipath echo), mm.
    pub max_mm: u16,
}

impl Default for Ultrasonic {
    /// A common waterproof module (JSN-SR04T class): 200 mm to 4.5 m.
    fn default() -> Self {
        Ultrasonic {
            min_mm: 200,
            max_mm: 4_500,
        }
    }
}

impl Ultrasonic {
    /// Distance for a round trip of `echo_us`; `temp_dc` (0.1 °C) corrects the speed of
    /// sound (331.3 + 0.606·T m/s), without it 343 m/s (20 °C). `None` beyond reach.
    pub fn distance_mm(&self, echo_us: u32, temp_dc: Option<i16>) -> Option<u16> {
        let mm = match temp_dc {
            None => echo_to_mm(echo_us),
            Some(dc) => {
                // Speed of sound in 0.1 m/s; mm = µs · (dm/s) / 20 000 for the round trip.
                let c = (3_313 + i64::from(dc) * 606 / 1_000).max(1) as u64;
                let mm = u64::from(echo_us) * c / 20_000;
                u32::try_from(mm).unwrap_or(u32::MAX)
            }
        };
        if mm > u32::from(self.max_mm) {
            return None;
        }
        Some((mm as u16).max(self.min_mm)) // ≤ max_mm
    }

    /// Pings once: the distance, or `None` for no echo or one beyond reach.
    pub fn read_mm<T: EchoTimer>(
        &self,
        timer: &mut T,
        temp_dc: Option<i16>,
    ) -> Result<Option<u16>, Error<T::Error>> {
        let echo = timer.echo_us().map_err(Error::Bus)?;
        Ok(echo.and_then(|us| self.distance_mm(us, temp_dc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pings<'a>(&'a [Option<u32>]);

    impl EchoTimer for Pings<'_> {
        type Error = &'static str;

        fn echo_us(&mut self) -> Result<Option<u32>, Self::Error> {
            let (&first, rest) = self.0.split_first().ok_or("timer stuck")?;
            self.0 = rest;
            Ok(first)
        }
    }

    #[test]
    fn echo_time_to_mm_with_blind_zone_reach_and_temperature() {
        let us = Ultrasonic::default();
        assert_eq!(us.distance_mm(5_831, None), Some(1_000));
        assert_eq!(us.distance_mm(100, None), Some(200), "blind zone");
        assert_eq!(us.distance_mm(30_000, None), None, "beyond reach");
        // At −10 °C sound is slower: the same echo is a shorter distance.
        let cold = us.distance_mm(5_831, Some(-100)).expect("in range");
        let warm = us.distance_mm(5_831, Some(300)).expect("in range");
        assert!((940..960).contains(&cold) && (1_005..1_020).contains(&warm));
        assert_eq!(us.distance_mm(5_831, Some(200)), Some(1_001));
        assert_eq!(us.distance_mm(u32::MAX, Some(i16::MAX)), None);
    }

    #[test]
    fn no_echo_and_timer_faults() {
        let us = Ultrasonic::default();
        let mut t = Pings(&[Some(2_915), None]);
        assert_eq!(us.read_mm(&mut t, None), Ok(Some(499)));
        assert_eq!(us.read_mm(&mut t, None), Ok(None));
        assert_eq!(us.read_mm(&mut t, None), Err(Error::Bus("timer stuck")));
    }
}
