//! The pendant's virtual board: the wearer's movements through a virtual LIS3DH and the
//! real `lis3dh` driver, and the wearer's thumb on the button, on the firmware's own
//! board glue (`PendantBoard`).
//!
//! Owns the wearer (the scenario queue and the presses); does not own the fall scenarios
//! (`linli_firmware::fall::scenario`), the fall detection or the SOS logic.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use embedded_hal::digital::{self, InputPin};

use anyhow::{anyhow, Result};
use linli_firmware::boards::PendantBoard;
use linli_firmware::fall::scenario::{Kind, Scenario};
use linli_firmware::fall::Range;
use linli_firmware::sensors::accel::{Accelerometer, SlaveAddr};
use linli_firmware::sensors::analog::{Battery, LI_ION_1S};
use linli_firmware::virtual_sensors::{AccelSource, VirtualAdc, VirtualLis3dh};

use super::lock;

/// Sample rate of the scenarios, Hz (the board steps at 10 ms).
const RATE_HZ: u16 = 100;
/// A press holds the button down for this many reads (300 ms at the board's 10 ms
/// step), then leaves it up as long before the next queued press.
const PRESS_READS: u32 = 30;

/// What a pendant's wearer does: stands still until told to do something (a fall, a
/// hard sit-down ...), then plays that scenario through the accelerometer.
#[derive(Debug, Clone, Default)]
pub struct Wearer {
    next: Arc<Mutex<VecDeque<(Kind, u64)>>>,
    doing: Option<Scenario>,
}

impl Wearer {
    /// A handle to queue what the wearer does next (kind, seed), from another thread.
    pub fn queue(&self) -> WearerQueue {
        WearerQueue {
            next: self.next.clone(),
            button: Button::default(),
        }
    }
}

/// Queues scenarios and presses for a [`Wearer`] while its board runs.
#[derive(Debug, Clone, Default)]
pub struct WearerQueue {
    next: Arc<Mutex<VecDeque<(Kind, u64)>>>,
    button: Button,
}

impl WearerQueue {
    /// The wearer does `kind` (drawn from `seed`) after what it is doing now.
    pub fn push(&self, kind: Kind, seed: u64) {
        lock(&self.next).push_back((kind, seed));
    }

    /// The wearer presses the button (300 ms), after any presses still queued.
    pub fn press(&self) {
        lock(&self.button.0).pending += 1;
    }

    /// The wearer this queue steers (for the one board that plays it).
    pub fn wearer(&self) -> Wearer {
        Wearer {
            next: self.next.clone(),
            doing: None,
        }
    }

    /// The button this queue presses (for the one board that reads it).
    pub fn button(&self) -> Button {
        self.button.clone()
    }
}

/// The pendant's button: pressed when [`WearerQueue::press`] says so.
#[derive(Debug, Clone, Default)]
pub struct Button(Arc<Mutex<Presses>>);

#[derive(Debug, Default)]
struct Presses {
    /// Presses not begun.
    pending: u32,
    /// Reads left in the current press (down) and the gap after it (up).
    down: u32,
    up: u32,
}

impl digital::ErrorType for Button {
    type Error = Infallible;
}

impl InputPin for Button {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        let mut p = lock(&self.0);
        if p.down == 0 && p.up == 0 && p.pending > 0 {
            p.pending -= 1;
            p.down = PRESS_READS;
            p.up = PRESS_READS;
        }
        Ok(if p.down > 0 {
            p.down -= 1;
            true
        } else {
            p.up = p.up.saturating_sub(1);
            false
        })
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|h| !h)
    }
}

impl AccelSource for Wearer {
    fn next_mg(&mut self) -> Option<[i16; 3]> {
        if self.doing.is_none() {
            let next = lock(&self.next).pop_front();
            self.doing = next.map(|(kind, seed)| Scenario::new(kind, seed, RATE_HZ));
        }
        match self.doing.as_mut().and_then(Iterator::next) {
            Some((_, a)) => Some(a),
            None => {
                // Standing still, pendant hanging level.
                self.doing = None;
                Some([0, 1_000, 0])
            }
        }
    }
}

/// A pendant board on virtual chips: the wearer through a LIS3DH (±16 g) and the real
/// `lis3dh` driver, one button, a cell at `cell_mv` behind a 2:1 divider.
pub type VirtualPendant = PendantBoard<VirtualLis3dh<Wearer>, Button, VirtualAdc>;

/// Builds a [`VirtualPendant`] for the wearer `queue` steers.
pub fn pendant(queue: &WearerQueue, cell_mv: u16) -> Result<VirtualPendant> {
    let chip = VirtualLis3dh::new(0x18, queue.wearer());
    let accel = Accelerometer::new(chip, SlaveAddr::Default, Range::G16)
        .map_err(|e| anyhow!("virtual LIS3DH: {e}"))?;
    Ok(PendantBoard {
        accel: Some(accel),
        button: queue.button(),
        adc: VirtualAdc { mv: cell_mv / 2 },
        battery: Battery::new(LI_ION_1S).with_divider(2, 1),
    })
}

#[cfg(test)]
mod tests {
    use super::super::rig::{Rig, SEC};
    use super::*;
    use linli_firmware::app::pendant::Pendant;
    use linli_firmware::{fall, sos};
    use linli_protocol::report::Pendant as Reported;
    use linli_protocol::Report;

    fn sos_count(got: &[super::super::rig::Got]) -> usize {
        got.iter()
            .filter(|g| matches!(g.report, Report::Pendant(Reported::Sos)))
            .count()
    }

    #[test]
    fn a_press_is_an_sos_and_presses_within_the_rearm_time_are_one_sos() {
        let queue = WearerQueue::default();
        let mut board = pendant(&queue, 3_950).expect("board");
        let mut rig = Rig::new(
            Pendant::new(fall::Config::default(), sos::Config::default()),
            10,
        );
        let got = rig.run_until(&mut board, 5 * SEC);
        assert_eq!(sos_count(&got), 0, "nobody pressed");
        queue.press();
        let got = rig.run_until(&mut board, 10 * SEC);
        assert_eq!(sos_count(&got), 1, "{got:?}");
        // Three presses 600 ms apart: within the 3 s re-arm time they are one SOS.
        for _ in 0..3 {
            queue.press();
        }
        let got = rig.run_until(&mut board, 20 * SEC);
        assert_eq!(sos_count(&got), 1, "{got:?}");
    }
}
