//! The pendant's virtual board: the wearer's movements through a virtual LIS3DH and the
//! real `lis3dh` driver, on the firmware's own board glue (`PendantBoard`).
//!
//! Owns the wearer (the scenario queue); does not own the fall scenarios
//! (`linli_firmware::fall::scenario`) or the fall detection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use linli_firmware::boards::PendantBoard;
use linli_firmware::fall::scenario::{Kind, Scenario};
use linli_firmware::fall::Range;
use linli_firmware::sensors::accel::{Accelerometer, SlaveAddr};
use linli_firmware::sensors::analog::{Battery, LI_ION_1S};
use linli_firmware::virtual_sensors::{AccelSource, VirtualAdc, VirtualLis3dh, VirtualPin};

use super::lock;

/// Sample rate of the scenarios, Hz (the board steps at 10 ms).
const RATE_HZ: u16 = 100;

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
        WearerQueue(self.next.clone())
    }
}

/// Queues scenarios for a [`Wearer`] while its board runs.
#[derive(Debug, Clone, Default)]
pub struct WearerQueue(Arc<Mutex<VecDeque<(Kind, u64)>>>);

impl WearerQueue {
    /// The wearer does `kind` (drawn from `seed`) after what it is doing now.
    pub fn push(&self, kind: Kind, seed: u64) {
        lock(&self.0).push_back((kind, seed));
    }

    /// The wearer this queue steers (for the one board that plays it).
    pub fn wearer(&self) -> Wearer {
        Wearer {
            next: self.0.clone(),
            doing: None,
        }
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
pub type VirtualPendant = PendantBoard<VirtualLis3dh<Wearer>, VirtualPin, VirtualAdc>;

/// Builds a [`VirtualPendant`] for `wearer`.
pub fn pendant(wearer: Wearer, cell_mv: u16) -> Result<VirtualPendant> {
    let chip = VirtualLis3dh::new(0x18, wearer);
    let accel = Accelerometer::new(chip, SlaveAddr::Default, Range::G16)
        .map_err(|e| anyhow!("virtual LIS3DH: {e}"))?;
    Ok(PendantBoard {
        accel: Some(accel),
        button: VirtualPin::default(),
        adc: VirtualAdc { mv: cell_mv / 2 },
        battery: Battery::new(LI_ION_1S).with_divider(2, 1),
    })
}
