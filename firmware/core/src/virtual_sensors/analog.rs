//! A virtual water-level transducer behind an ADC: an
//! [`AdcChannel`](crate::sensors::analog::AdcChannel) whose millivolts are what a
//! [`Transducer`] would output for the level of a [`WaterRise`] at the time the caller
//! set, with a broken-wire fault to switch on.
//!
//! Owns the level-to-millivolt side; does not own ADC noise or quantisation.

use super::WaterRise;
use crate::sensors::analog::{AdcChannel, Transducer};
use core::convert::Infallible;

/// A transducer in water that rises (or falls) with time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualTransducer {
    /// The transducer's output range.
    pub transducer: Transducer,
    /// The water.
    pub water: WaterRise,
    /// The loop is cut: the input reads 0 mV.
    pub broken: bool,
    now_ms: u64,
}

impl VirtualTransducer {
    /// `transducer` in `water`, at t = 0.
    pub const fn new(transducer: Transducer, water: WaterRise) -> Self {
        VirtualTransducer {
            transducer,
            water,
            broken: false,
            now_ms: 0,
        }
    }

    /// Moves the clock (ms).
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }
}

impl AdcChannel for VirtualTransducer {
    type Error = Infallible;

    fn read_mv(&mut self) -> Result<u16, Infallible> {
        if self.broken {
            return Ok(0);
        }
        Ok(self.transducer.mv_at(self.water.level_mm(self.now_ms)))
    }
}
