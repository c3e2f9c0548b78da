//! Virtual boards: each device kind's sensor trait implemented over the firmware's
//! register-level virtual chips and its real driver adapters where the part has one
//! (LIS3DH, INA219, VL53L0X, MAX30102, an analog transducer), over shared pins and levels
//! where it has none (a reed contact, a PIR output, a detector's alarm line) — each with
//! a cloneable handle the simulation drives from another thread while the board runs (a
//! wearer told to fall, a lamp that breaks, water that rises, a bin on fire).
//!
//! Owns the scenes behind the sensors, the handles, the board glue of the kinds the
//! firmware has none for (`linli_firmware::boards` covers the pendant and street light),
//! and [`Timed`], which brings device time to boards whose physics moves with it. Does
//! not own the chips (`linli_firmware::virtual_sensors`), the device logic or the
//! connection (`crate::board`, `crate::fleet`).
//!
//! Device time: boards read no clock, as on a device. Where the scene moves with time
//! (water rising at so many mm a minute, a PPG chip filling its FIFO at 100 samples/s)
//! the board implements [`Clocked`] and runs its application wrapped in [`Timed`], which
//! hands the board the device time of each step before the application samples. A
//! handle's change applies from the board's latest step (at most one step late).

mod bed;
mod door;
mod hazard;
mod manhole;
mod motion;
mod pendant;
#[cfg(test)]
mod rig;
mod street_light;
mod vitals;
mod waste_bin;
mod water;

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::digital::{self, InputPin};
use linli_firmware::app::Application;
use linli_firmware::sensors::analog::{AdcChannel, Battery, LI_ION_1S};
use linli_firmware::virtual_sensors::VirtualAdc;
use linli_protocol::report::{Command, HazardKind, Threshold};
use linli_protocol::{DeviceKind, Report};

pub use bed::{bed, Pad, VirtualBed};
pub use door::{door, Doorway, VirtualDoor};
pub use hazard::{hazard, Detector, VirtualHazard};
pub use manhole::{manhole, Cover, VirtualManhole};
pub use motion::{motion, Pir, VirtualMotion};
pub use pendant::{pendant, VirtualPendant, Wearer, WearerQueue};
pub use street_light::{
    street_light, DimmingDriver, Lamp, RelayCoil, RelayContact, VirtualStreetLight,
};
pub use vitals::{vitals, Sleeper, VirtualVitals};
pub use waste_bin::{waste_bin, Bin, VirtualWasteBin};
pub use water::{water_level, VirtualWaterLevel, Water};

/// The kinds with a virtual board.
pub const KINDS: [DeviceKind; 10] = [
    DeviceKind::Pendant,
    DeviceKind::Bed,
    DeviceKind::Door,
    DeviceKind::Motion,
    DeviceKind::Vitals,
    DeviceKind::Hazard,
    DeviceKind::StreetLight,
    DeviceKind::Manhole,
    DeviceKind::WaterLevel,
    DeviceKind::WasteBin,
];

/// A full Li-ion cell, mV (what a battery-powered board reads unless told otherwise).
pub const FULL_CELL_MV: u16 = 3_950;

/// The handle to one device's scene, by kind.
#[derive(Debug, Clone)]
pub enum Handle {
    /// The pendant's wearer.
    Pendant(WearerQueue),
    /// The street light's lamp.
    StreetLight(Lamp),
    /// The gauge's water.
    WaterLevel(Water),
    /// The manhole's cover and the water under it.
    Manhole(Cover),
    /// The waste bin's contents.
    WasteBin(Bin),
    /// The bed's pressure pad.
    Bed(Pad),
    /// The door under the contact.
    Door(Doorway),
    /// The PIR's field of view.
    Motion(Pir),
    /// The person wearing the vital-sign sensor.
    Vitals(Sleeper),
    /// The hazard detector's alarm output.
    Hazard(Detector),
}

impl Handle {
    /// The scene a new device of `kind` starts in (`seed` varies what is random in it),
    /// or `None` for a kind without a virtual board: a wearer standing still; a working
    /// lamp (23 V, 420 mA); calm water at 20 mm; a seated cover over 50 mm of water; a
    /// bin 30 % full at 20 °C; an empty bed; a closed door; nobody moving; someone in bed
    /// at 72 bpm and 97 % SpO2; a quiet smoke detector.
    pub fn new(kind: DeviceKind, seed: u64) -> Option<Handle> {
        Some(match kind {
            DeviceKind::Pendant => Handle::Pendant(WearerQueue::default()),
            DeviceKind::StreetLight => Handle::StreetLight(Lamp::new(23_000, 420)),
            DeviceKind::WaterLevel => Handle::WaterLevel(Water::new(20)),
            DeviceKind::Manhole => Handle::Manhole(Cover::new(50)),
            DeviceKind::WasteBin => {
                let bin = Bin::new(&linli_firmware::waste_bin::Config::default());
                bin.set_fill_pct(30);
                Handle::WasteBin(bin)
            }
            DeviceKind::Bed => Handle::Bed(Pad::default()),
            DeviceKind::Door => Handle::Door(Doorway::default()),
            DeviceKind::Motion => Handle::Motion(Pir::default()),
            DeviceKind::Vitals => Handle::Vitals(Sleeper::new(seed)),
            DeviceKind::Hazard => Handle::Hazard(Detector::new(HazardKind::Smoke)),
            _ => return None,
        })
    }

    /// The device kind this handle drives.
    pub fn kind(&self) -> DeviceKind {
        match self {
            Handle::Pendant(_) => DeviceKind::Pendant,
            Handle::StreetLight(_) => DeviceKind::StreetLight,
            Handle::WaterLevel(_) => DeviceKind::WaterLevel,
            Handle::Manhole(_) => DeviceKind::Manhole,
            Handle::WasteBin(_) => DeviceKind::WasteBin,
            Handle::Bed(_) => DeviceKind::Bed,
            Handle::Door(_) => DeviceKind::Door,
            Handle::Motion(_) => DeviceKind::Motion,
            Handle::Vitals(_) => DeviceKind::Vitals,
            Handle::Hazard(_) => DeviceKind::Hazard,
        }
    }
}

/// Locks a scene's state; a thread that panicked holding it left a usable value.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A Li-ion cell on an ADC pin behind a 2:1 divider, as on the pendant.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    adc: VirtualAdc,
    battery: Battery,
}

impl Cell {
    /// A cell at `cell_mv`.
    pub fn new(cell_mv: u16) -> Self {
        Cell {
            adc: VirtualAdc { mv: cell_mv / 2 },
            battery: Battery::new(LI_ION_1S).with_divider(2, 1),
        }
    }

    /// The cell's voltage as the board reads it, mV.
    pub fn read_mv(&mut self) -> Option<u16> {
        let pin_mv = self.adc.read_mv().ok()?;
        Some(self.battery.battery_mv(pin_mv))
    }
}

/// An input pin whose level another thread sets (a contact, a detector's output).
#[derive(Debug, Clone, Default)]
pub struct SharedPin(Arc<AtomicBool>);

impl SharedPin {
    /// Drives the pin high (true) or low.
    pub fn set(&self, high: bool) {
        self.0.store(high, Ordering::Relaxed);
    }

    /// The level.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl digital::ErrorType for SharedPin {
    type Error = Infallible;
}

impl InputPin for SharedPin {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.get())
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.get())
    }
}

/// A board whose scene moves with device time, for application `A`.
pub trait Clocked<A: Application> {
    /// Device time is now `now_ms` (ms since boot; it never goes back).
    fn set_time(&mut self, now_ms: u64);
    /// The board as the application's sensors.
    fn sensors(&mut self) -> &mut A::Sensors;
}

/// Application `A` on a [`Clocked`] board `B`: before each sampling and telemetry, the
/// board is told the device time the application is given; everything else is `A`'s.
pub struct Timed<A, B> {
    /// The application.
    pub app: A,
    board: PhantomData<fn(&mut B)>,
}

impl<A, B> Timed<A, B> {
    /// Wraps `app`.
    pub fn new(app: A) -> Self {
        Timed {
            app,
            board: PhantomData,
        }
    }
}

impl<A: fmt::Debug, B> fmt::Debug for Timed<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timed").field("app", &self.app).finish()
    }
}

impl<A: Application, B: Clocked<A>> Application for Timed<A, B> {
    const KIND: DeviceKind = A::KIND;
    type Sensors = B;

    fn sample(&mut self, now_ms: u64, board: &mut B, out: &mut dyn FnMut(Report)) {
        board.set_time(now_ms);
        self.app.sample(now_ms, board.sensors(), out);
    }

    fn telemetry(&mut self, now_ms: u64, board: &mut B, out: &mut dyn FnMut(Report)) {
        board.set_time(now_ms);
        self.app.telemetry(now_ms, board.sensors(), out);
    }

    fn alarm_condition(&self) -> bool {
        self.app.alarm_condition()
    }

    fn threshold(&mut self, threshold: Threshold) -> bool {
        self.app.threshold(threshold)
    }

    fn command(&mut self, command: Command, board: &mut B) -> Option<i32> {
        self.app.command(command, board.sensors())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_with_a_board_has_a_scene_of_its_kind() {
        for kind in KINDS {
            let h = Handle::new(kind, 1).expect("a scene");
            assert_eq!(h.kind(), kind);
        }
        assert!(Handle::new(DeviceKind::PowerMeter, 1).is_none());
        assert_eq!(Cell::new(FULL_CELL_MV).read_mv(), Some(FULL_CELL_MV));
    }
}
