//! The PIR motion sensor's virtual board: the PIR's output on an input pin and a cell.
//!
//! Owns the pulses the simulation asks for and the board glue; does not own the
//! trigger accounting, hold-off or warm-up (the firmware's).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use embedded_hal::digital::{self, InputPin};
use linli_firmware::app::motion::MotionSensors;

use super::{lock, Cell, FULL_CELL_MV};

/// A PIR's field of view, where the simulation makes someone move while the board runs.
/// Each movement is one pulse of the PIR's output: high for one read of the board, low
/// for the next (one rising edge; a real PIR holds its output a second or two, which the
/// firmware counts the same).
#[derive(Debug, Clone, Default)]
pub struct Pir(Arc<Mutex<Output>>);

#[derive(Debug, Default)]
struct Output {
    /// Pulses asked for and not yet given.
    pending: u32,
    high: bool,
}

impl Pir {
    /// Someone moves in view now: one PIR pulse.
    pub fn pulse(&self) {
        let mut o = lock(&self.0);
        o.pending = o.pending.saturating_add(1);
    }
}

impl digital::ErrorType for Pir {
    type Error = Infallible;
}

impl InputPin for Pir {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        let mut o = lock(&self.0);
        o.high = if o.high {
            false
        } else if o.pending > 0 {
            o.pending -= 1;
            true
        } else {
            false
        };
        Ok(o.high)
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|h| !h)
    }
}

/// A motion-sensor board on virtual parts: the PIR's output pin, a full cell.
#[derive(Debug, Clone)]
pub struct VirtualMotion {
    pir: Pir,
    cell: Cell,
}

/// Builds a [`VirtualMotion`] watching `pir`.
pub fn motion(pir: &Pir) -> VirtualMotion {
    VirtualMotion {
        pir: pir.clone(),
        cell: Cell::new(FULL_CELL_MV),
    }
}

impl MotionSensors for VirtualMotion {
    fn pir(&mut self) -> bool {
        self.pir.is_high().unwrap_or(false)
    }

    fn battery_mv(&mut self) -> Option<u16> {
        self.cell.read_mv()
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{changes, Rig, SEC};
    use super::*;
    use linli_firmware::app::motion::Motion;
    use linli_protocol::report::Motion as Wire;
    use linli_protocol::Report;

    #[test]
    fn a_pulse_after_the_warm_up_is_motion_one_during_it_is_not() {
        let pir = Pir::default();
        let mut board = motion(&pir);
        let app = Motion::new(linli_firmware::motion::Config::default(), 0);
        let mut rig = Rig::new(app, 100);
        rig.run_until(&mut board, 10 * SEC);
        pir.pulse();
        let got = rig.run_until(&mut board, 40 * SEC);
        assert_eq!(changes(&got).count(), 0, "the PIR settling: {got:?}");
        pir.pulse();
        let got = rig.run_until(&mut board, 41 * SEC);
        let m: Vec<_> = changes(&got)
            .filter_map(|g| match g.report {
                Report::Motion(m) => Some((g.t_ms, m)),
                _ => None,
            })
            .collect();
        assert_eq!(
            m,
            [(
                40 * SEC,
                Wire {
                    motion: true,
                    count: 1
                }
            )]
        );
        // Nobody about: nothing more.
        let got = rig.run_until(&mut board, 300 * SEC);
        assert_eq!(changes(&got).count(), 0, "{got:?}");
    }
}
