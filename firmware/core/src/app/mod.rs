//! Per-device application loops: each device kind samples its sensors, runs its state
//! machines, and turns what they decide into reports; [`Device`] ties one application
//! to a [`Node`] (counter, outbox, cadence, downlinks) so every kind runs the same loop:
//! sample → detect → report → seal → publish.
//!
//! Owns the glue; does not own detection (the state machines), sensor drivers
//! ([`crate::sensors`]) or the connection ([`crate::publish`]). Sensors reach an
//! application through a small trait per kind, implemented by real adapters on a board
//! and by virtual sensors in tests and simulators.

pub mod bed;
pub mod door;
pub mod hazard;
pub mod manhole;
pub mod motion;
pub mod pendant;
pub mod street_light;
pub mod vitals;
pub mod waste_bin;
pub mod water_level;

use linli_protocol::report::{Command, Threshold};
use linli_protocol::{DeviceKind, Report};

use crate::node::{DownlinkError, Downlinked, Node, Outcome};
use crate::outbox::{Priority, Refused};
use crate::sensors::analog::{Battery, LI_ION_1S};

/// The battery report for a single Li-ion cell at `mv`, when it was read.
pub fn battery(mv: Option<u16>) -> Option<Report> {
    const CELL: Battery = Battery::new(LI_ION_1S);
    mv.map(|mv| {
        Report::Battery(linli_protocol::report::Battery {
            millivolts: mv,
            percent: CELL.percent(mv),
        })
    })
}

/// One device kind's logic.
pub trait Application {
    /// The kind it is (decides which reports it may send).
    const KIND: DeviceKind;
    /// What it reads and drives (a trait object of the kind's sensor trait).
    type Sensors: ?Sized;

    /// Samples the sensors at `now_ms` and emits the reports its detectors decide on
    /// (events at once: falls, SOS, openings, faults).
    fn sample(&mut self, now_ms: u64, sensors: &mut Self::Sensors, out: &mut dyn FnMut(Report));

    /// Emits the periodic telemetry.
    fn telemetry(&mut self, now_ms: u64, sensors: &mut Self::Sensors, out: &mut dyn FnMut(Report));

    /// An alarm condition lasts: telemetry goes out at the alarm cadence.
    fn alarm_condition(&self) -> bool {
        false
    }

    /// Takes a threshold from the gateway; false when it does not belong to this kind
    /// or is out of range.
    fn threshold(&mut self, _threshold: Threshold) -> bool {
        false
    }

    /// Carries out a command; the value observed afterwards (see
    /// [`Outcome::Command`]), or `None` when this kind has nothing to command.
    fn command(&mut self, _command: Command, _sensors: &mut Self::Sensors) -> Option<i32> {
        None
    }
}

/// An application on a node: the whole device, less its radio.
#[derive(Debug)]
pub struct Device<'id, A: Application, const N: usize, const K: usize> {
    /// Identity, counter, outbox, timing.
    pub node: Node<'id, N, K>,
    /// The kind's logic.
    pub app: A,
}

impl<'id, A: Application, const N: usize, const K: usize> Device<'id, A, N, K> {
    /// Ties `app` to `node`.
    pub fn new(node: Node<'id, N, K>, app: A) -> Self {
        Device { node, app }
    }

    /// One turn of the loop at `now_ms` (device time `device_time`): sample and detect,
    /// then heartbeat and telemetry when due. Reports the outbox refused are counted in
    /// the node's stats.
    pub fn step(&mut self, now_ms: u64, device_time: u32, sensors: &mut A::Sensors) {
        let node = &mut self.node;
        // What a detector decides now is an alarm or a change; what telemetry repeats
        // (even a hazard still in alarm) is periodic.
        let mut queue = |r: Report| {
            let _ = node.report(device_time, r, Priority::of_event(&r));
        };
        self.app.sample(now_ms, sensors, &mut queue);
        if self
            .node
            .tick(now_ms, device_time, self.app.alarm_condition())
        {
            let node = &mut self.node;
            let mut queue = |r: Report| {
                let _ = node.report(device_time, r, Priority::Periodic);
            };
            self.app.telemetry(now_ms, sensors, &mut queue);
        }
    }

    /// Handles a frame from the gateway: acks clear the outbox; settings and commands are
    /// applied and answered with an `answer` report.
    pub fn downlink(
        &mut self,
        device_time: u32,
        topic: &str,
        payload: &mut [u8],
        sensors: &mut A::Sensors,
    ) -> Result<Downlinked, DownlinkError> {
        let what = self.node.downlink(topic, payload)?;
        let outcome = match what {
            Downlinked::Acked(_) | Downlinked::AckForUnknown(_) => None,
            Downlinked::Config { counter, threshold } => Some(Outcome::Config {
                counter,
                accepted: threshold.is_none_or(|t| self.app.threshold(t)),
            }),
            Downlinked::Command { counter, command } => Some(Outcome::Command {
                counter,
                command,
                // A kind with nothing to command answers "not applied": the gateway
                // then sees the command did nothing rather than hearing nothing.
                observed: self.app.command(command, sensors).unwrap_or(i32::MIN),
            }),
        };
        if let Some(outcome) = outcome {
            let _: Result<u32, Refused> = self.node.applied(device_time, outcome);
        }
        Ok(what)
    }
}
