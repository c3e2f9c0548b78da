//! The hazard detector's virtual board (smoke, gas, CO or water leak): the detector's
//! alarm output on an input pin, no measured level (reported as 0/1), a cell.
//!
//! Owns the detector's scene and the board glue; does not own the detection itself (the
//! detector's, here the simulation's) or the debouncing (the firmware's).

use embedded_hal::digital::InputPin;
use linli_firmware::app::hazard::HazardSensors;
use linli_protocol::report::HazardKind;

use super::{Cell, SharedPin, FULL_CELL_MV};

/// A hazard detector's alarm output, which the simulation sets off and clears while the
/// board runs. Quiet at first.
#[derive(Debug, Clone)]
pub struct Detector {
    output: SharedPin,
    kind: HazardKind,
}

impl Detector {
    /// A quiet detector of `kind`.
    pub fn new(kind: HazardKind) -> Self {
        Detector {
            output: SharedPin::default(),
            kind,
        }
    }

    /// The detector goes into alarm (true) or clears.
    pub fn set_alarm(&self, on: bool) {
        self.output.set(on);
    }

    /// What it detects.
    pub fn kind(&self) -> HazardKind {
        self.kind
    }
}

/// A hazard-detector board on virtual parts: the alarm output pin, a full cell.
#[derive(Debug, Clone)]
pub struct VirtualHazard {
    kind: HazardKind,
    output: SharedPin,
    cell: Cell,
}

/// Builds a [`VirtualHazard`] on `detector`.
pub fn hazard(detector: &Detector) -> VirtualHazard {
    VirtualHazard {
        kind: detector.kind,
        output: detector.output.clone(),
        cell: Cell::new(FULL_CELL_MV),
    }
}

impl HazardSensors for VirtualHazard {
    fn hazard(&self) -> HazardKind {
        self.kind
    }

    fn alarm_output(&mut self) -> bool {
        self.output.is_high().unwrap_or(false)
    }

    fn level(&mut self) -> Option<u16> {
        None
    }

    fn battery_mv(&mut self) -> Option<u16> {
        self.cell.read_mv()
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{changes, Rig, SEC};
    use super::*;
    use linli_firmware::app::hazard::Hazard;
    use linli_firmware::app::Application;
    use linli_firmware::outbox::Priority;
    use linli_protocol::{EventKind, Report};

    #[test]
    fn smoke_is_an_alarm_event_after_the_debounce_and_clears() {
        let detector = Detector::new(HazardKind::Smoke);
        let mut board = hazard(&detector);
        let mut rig = Rig::new(Hazard::new(1_000), 100);
        let got = rig.run_until(&mut board, 30 * SEC);
        let quiet: Vec<_> = got.iter().filter_map(|g| g.report.event()).collect();
        assert!(quiet.is_empty(), "a quiet detector: {got:?}");
        assert!(!rig.dev.app.alarm_condition());

        detector.set_alarm(true);
        let got = rig.run_until(&mut board, 60 * SEC);
        let on = changes(&got).next().expect("the alarm");
        assert_eq!(on.t_ms, 31 * SEC);
        assert_eq!(on.priority, Priority::Alarm);
        assert_eq!(on.report.event(), Some(EventKind::Smoke));
        assert!(rig.dev.app.alarm_condition());

        detector.set_alarm(false);
        let got = rig.run_until(&mut board, 90 * SEC);
        let off = changes(&got).next().expect("the all-clear");
        assert_eq!(off.t_ms, 61 * SEC);
        assert!(matches!(off.report, Report::Hazard(h) if !h.alarm && h.level == 0));
        assert!(!rig.dev.app.alarm_condition());
    }
}
