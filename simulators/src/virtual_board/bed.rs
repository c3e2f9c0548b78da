//! The bed sensor's virtual board: a pressure pad (a force-sensing resistor in a
//! divider) on an ADC input, read through the firmware's `AdcChannel`/`PressurePad`
//! path, and a cell.
//!
//! Owns the pad's scene (someone in bed or not) and the board glue; does not own the
//! occupancy decision or its dwell times (the firmware's).

use std::convert::Infallible;

use linli_firmware::app::bed::BedSensors;
use linli_firmware::sensors::analog::{AdcChannel, PressurePad};

use super::{Cell, SharedPin, FULL_CELL_MV};

/// The pad's output with the bed empty and with a heavy sleeper on it, mV.
const PAD: PressurePad = PressurePad {
    empty_mv: 200,
    full_mv: 2_800,
};
/// The pad's output with someone lying on it (pressure ~850 of 1000), mV.
const LYING_MV: u16 = 2_400;
/// The pad's output with the bed empty but for the bedding (pressure ~40), mV.
const EMPTY_MV: u16 = 300;

/// A bed's pressure pad, which the simulation puts someone on or takes them off while
/// the board runs. Empty at first.
#[derive(Debug, Clone, Default)]
pub struct Pad(SharedPin);

impl Pad {
    /// Someone lies in the bed (true) or has left it.
    pub fn set_occupied(&self, occupied: bool) {
        self.0.set(occupied);
    }
}

impl AdcChannel for Pad {
    type Error = Infallible;

    fn read_mv(&mut self) -> Result<u16, Infallible> {
        Ok(if self.0.get() { LYING_MV } else { EMPTY_MV })
    }
}

/// A bed-sensor board on virtual parts: the pad on an ADC input, a full cell.
#[derive(Debug, Clone)]
pub struct VirtualBed {
    adc: Pad,
    cell: Cell,
}

/// Builds a [`VirtualBed`] under `pad`.
pub fn bed(pad: &Pad) -> VirtualBed {
    VirtualBed {
        adc: pad.clone(),
        cell: Cell::new(FULL_CELL_MV),
    }
}

impl BedSensors for VirtualBed {
    fn pressure(&mut self) -> Option<u16> {
        PAD.read(&mut self.adc).ok()
    }

    fn battery_mv(&mut self) -> Option<u16> {
        self.cell.read_mv()
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{changes, Rig, SEC};
    use super::*;
    use linli_firmware::app::bed::Bed;
    use linli_protocol::Report;

    fn occupancy(got: &[super::super::rig::Got]) -> Vec<(u64, bool)> {
        changes(got)
            .filter_map(|g| match g.report {
                Report::Bed(b) => Some((g.t_ms, b.occupied)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn getting_in_and_out_of_bed_is_reported_at_once() {
        let pad = Pad::default();
        let mut board = bed(&pad);
        let mut rig = Rig::new(Bed::new(linli_firmware::bed::Config::default()), 500);
        let got = rig.run_until(&mut board, 60 * SEC);
        assert_eq!(occupancy(&got), [(15 * SEC, false)], "the first decision");
        pad.set_occupied(true);
        let got = rig.run_until(&mut board, 120 * SEC);
        assert_eq!(occupancy(&got), [(65 * SEC, true)]);
        pad.set_occupied(false);
        let got = rig.run_until(&mut board, 180 * SEC);
        assert_eq!(occupancy(&got), [(135 * SEC, false)], "the bed exit");
        assert_eq!(rig.dev.app.occupied(), Some(false));
    }

    #[test]
    fn sitting_on_the_edge_for_a_moment_is_no_change() {
        let pad = Pad::default();
        let mut board = bed(&pad);
        let mut rig = Rig::new(Bed::new(linli_firmware::bed::Config::default()), 500);
        rig.run_until(&mut board, 60 * SEC);
        pad.set_occupied(true);
        rig.run_until(&mut board, 63 * SEC);
        pad.set_occupied(false);
        let got = rig.run_until(&mut board, 300 * SEC);
        assert!(occupancy(&got).is_empty(), "{got:?}");
        let beds = got
            .iter()
            .filter(|g| matches!(g.report, Report::Bed(b) if !b.occupied));
        assert!(beds.count() >= 3, "telemetry repeats the state: {got:?}");
    }
}
