//! The door contact's application: the reed switch into the debounced door position, the
//! battery.
//!
//! Reports: `door` at once when the door settles in a new position (the first settled
//! position too, so the gateway learns the state after a restart); `battery` as
//! telemetry. The position is not repeated as telemetry: the gateway reads every `door`
//! report as the door moving (a door opening, activity in the home). A door has no alarm
//! condition and no threshold. Does not own the debouncing ([`crate::door`]) or the
//! contact's pin.

use linli_protocol::report::Door as Wire;
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::door::DoorContact;

/// What the door contact reads.
pub trait DoorSensors {
    /// The raw contact: true when the magnet is away (the door open).
    fn contact_open(&mut self) -> bool;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// The door contact.
#[derive(Debug, Clone, Default)]
pub struct Door {
    contact: DoorContact,
}

impl Door {
    /// A contact debounced over `debounce_ms`.
    pub fn new(debounce_ms: u64) -> Self {
        Door {
            contact: DoorContact::new(debounce_ms),
        }
    }

    /// The settled position, once known.
    pub fn open(&self) -> Option<bool> {
        self.contact.open()
    }
}

impl Application for Door {
    const KIND: DeviceKind = DeviceKind::Door;
    type Sensors = dyn DoorSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if let Some(open) = self.contact.sample(s.contact_open(), now_ms) {
            out(Report::Door(Wire { open }));
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }
}
