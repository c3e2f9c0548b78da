//! The door contact's virtual board: a reed switch on an input pin (high while the
//! magnet is away: the door open) and a cell.
//!
//! Owns the door's scene and the board glue; does not own the debouncing (the
//! firmware's).

use embedded_hal::digital::InputPin;
use linli_firmware::app::door::DoorSensors;

use super::{Cell, SharedPin, FULL_CELL_MV};

/// A door with a reed contact, which the simulation opens and closes while the board
/// runs. Closed at first.
#[derive(Debug, Clone, Default)]
pub struct Doorway(SharedPin);

impl Doorway {
    /// The door opens (true) or closes.
    pub fn set_open(&self, open: bool) {
        self.0.set(open);
    }
}

/// A door-contact board on virtual parts: the reed switch's pin, a full cell.
#[derive(Debug, Clone)]
pub struct VirtualDoor {
    contact: SharedPin,
    cell: Cell,
}

/// Builds a [`VirtualDoor`] on `door`.
pub fn door(door: &Doorway) -> VirtualDoor {
    VirtualDoor {
        contact: door.0.clone(),
        cell: Cell::new(FULL_CELL_MV),
    }
}

impl DoorSensors for VirtualDoor {
    fn contact_open(&mut self) -> bool {
        self.contact.is_high().unwrap_or(false)
    }

    fn battery_mv(&mut self) -> Option<u16> {
        self.cell.read_mv()
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{changes, Got, Rig, SEC};
    use super::*;
    use linli_firmware::app::door::Door;
    use linli_protocol::Report;

    fn doors(got: &[Got]) -> Vec<(u64, bool)> {
        changes(got)
            .filter_map(|g| match g.report {
                Report::Door(d) => Some((g.t_ms, d.open)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn opening_and_closing_are_reported_after_the_debounce_and_nothing_else() {
        let doorway = Doorway::default();
        let mut board = door(&doorway);
        // 50 ms debounce, stepped every 10 ms as the fleet's boards are.
        let mut rig = Rig::new(Door::new(50), 10);
        let got = rig.run_until(&mut board, 10 * SEC);
        assert_eq!(doors(&got), [(50, false)], "the settled position at boot");
        doorway.set_open(true);
        let got = rig.run_until(&mut board, 20 * SEC);
        assert_eq!(doors(&got), [(10_050, true)]);
        doorway.set_open(false);
        let got = rig.run_until(&mut board, 30 * SEC);
        assert_eq!(doors(&got), [(20_050, false)]);
        // Left alone: the battery as telemetry, no door report.
        let got = rig.run_until(&mut board, 150 * SEC);
        assert!(
            got.iter().all(|g| !matches!(g.report, Report::Door(_))),
            "{got:?}"
        );
        assert!(got.iter().any(|g| matches!(g.report, Report::Battery(_))));
    }
}
