//! The waste bin's virtual board: the distance to the rubbish through a virtual VL53L0X
//! and the real `vl53l0x` driver (the firmware's `Distance` adapter), the temperature
//! inside and the bin's tilt as the simulation sets them (a thermistor and a tilt switch:
//! no chip here), a cell.
//!
//! Owns the bin's scene (fill, fire, knocked over) and the board glue; does not own the
//! fill median, the "full" level or the fire decision (the firmware's).

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use linli_firmware::app::waste_bin::WasteBinSensors;
use linli_firmware::sensors::distance::{Distance, Reading};
use linli_firmware::virtual_sensors::{DistanceSource, VirtualVl53l0x};
use linli_firmware::waste_bin;

use super::{lock, Cell, FULL_CELL_MV};

/// Inside a bin on a mild day, 0.1 °C.
const AMBIENT_DC: i16 = 200;
/// Inside a bin on fire, 0.1 °C (above the firmware's 60 °C fire level).
const BURNING_DC: i16 = 850;
/// A bin on its side, degrees.
const KNOCKED_OVER_DEG: u8 = 90;

/// A waste bin's contents and posture, which the simulation fills, sets on fire or
/// knocks over while the board runs.
#[derive(Debug, Clone)]
pub struct Bin(Arc<Mutex<Contents>>);

#[derive(Debug)]
struct Contents {
    /// Sensor to the bottom of the empty bin, and to the brim, mm.
    empty_mm: u16,
    full_mm: u16,
    fill_pct: u8,
    temperature_dc: i16,
    tilt_deg: u8,
}

impl Bin {
    /// An empty, upright bin at 20 °C, shaped as `cfg` says (the application's settings).
    pub fn new(cfg: &waste_bin::Config) -> Self {
        Bin(Arc::new(Mutex::new(Contents {
            empty_mm: cfg.empty_mm,
            full_mm: cfg.full_mm,
            fill_pct: 0,
            temperature_dc: AMBIENT_DC,
            tilt_deg: 0,
        })))
    }

    /// The bin is filled to `pct` % (at most 100).
    pub fn set_fill_pct(&self, pct: u8) {
        lock(&self.0).fill_pct = pct.min(100);
    }

    /// The rubbish catches fire (true: 85 °C inside) or is put out (20 °C).
    pub fn set_fire(&self, burning: bool) {
        self.set_temperature_dc(if burning { BURNING_DC } else { AMBIENT_DC });
    }

    /// The temperature inside is `dc` (0.1 °C).
    pub fn set_temperature_dc(&self, dc: i16) {
        lock(&self.0).temperature_dc = dc;
    }

    /// The bin is knocked over (true: on its side, 90°) or stood up again.
    pub fn set_knocked_over(&self, over: bool) {
        lock(&self.0).tilt_deg = if over { KNOCKED_OVER_DEG } else { 0 };
    }
}

impl DistanceSource for Bin {
    /// The lid sensor to the rubbish's surface.
    fn next_mm(&mut self) -> Option<u16> {
        let c = lock(&self.0);
        let span = u32::from(c.empty_mm.saturating_sub(c.full_mm));
        // Rounded, so the firmware's truncating fill gives back the percent set.
        let filled = (span * u32::from(c.fill_pct) + 50) / 100;
        Some(c.empty_mm.saturating_sub(filled as u16))
    }
}

/// A waste-bin board on virtual parts: VL53L0X in the lid, thermistor, tilt switch, a
/// full cell.
#[derive(Debug)]
pub struct VirtualWasteBin {
    ranger: Option<Distance<VirtualVl53l0x<Bin>>>,
    bin: Bin,
    cell: Cell,
}

/// Builds a [`VirtualWasteBin`] for `bin` (the driver's whole init runs here).
pub fn waste_bin(bin: &Bin) -> Result<VirtualWasteBin> {
    let ranger = Distance::new(VirtualVl53l0x::new(bin.clone()))
        .map_err(|e| anyhow!("virtual VL53L0X: {e}"))?;
    Ok(VirtualWasteBin {
        ranger: Some(ranger),
        bin: bin.clone(),
        cell: Cell::new(FULL_CELL_MV),
    })
}

impl WasteBinSensors for VirtualWasteBin {
    fn distance_mm(&mut self) -> Option<u16> {
        match self.ranger.as_mut()?.single() {
            Ok(Reading::Mm(mm)) => Some(mm),
            Ok(Reading::NoTarget) | Err(_) => None,
        }
    }

    fn temperature_dc(&mut self) -> Option<i16> {
        Some(lock(&self.bin.0).temperature_dc)
    }

    fn tilt_deg(&mut self) -> Option<u8> {
        Some(lock(&self.bin.0).tilt_deg)
    }

    fn battery_mv(&mut self) -> Option<u16> {
        self.cell.read_mv()
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{changes, Got, Rig, MIN, SEC};
    use super::*;
    use linli_firmware::app::waste_bin::WasteBin;
    use linli_firmware::app::Application;
    use linli_protocol::report::WasteBin as Wire;
    use linli_protocol::Report;

    fn rig() -> Rig<WasteBin> {
        // Full at 90 %, read once a minute (the fire decision wants no faster).
        let app = WasteBin::new(waste_bin::Config::default(), 90, MIN);
        Rig::new(app, 10 * SEC)
    }

    fn bins<'a>(got: impl IntoIterator<Item = &'a Got>) -> Vec<(u64, Wire)> {
        got.into_iter()
            .filter_map(|g| match g.report {
                Report::WasteBin(w) => Some((g.t_ms, w)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn filling_up_is_full_and_a_fire_is_reported_at_once() {
        let bin = Bin::new(&waste_bin::Config::default());
        bin.set_fill_pct(50);
        let mut board = waste_bin(&bin).expect("board");
        let mut rig = rig();
        let got = rig.run_until(&mut board, 10 * MIN);
        let b = bins(changes(&got));
        assert_eq!(b.len(), 1, "the first fill: {b:?}");
        assert_eq!((b[0].1.fill_pct, b[0].1.temperature_dc), (50, 200));
        assert_eq!(rig.dev.app.full(), Some(false));

        bin.set_fill_pct(95);
        let got = rig.run_until(&mut board, 15 * MIN);
        let b = bins(changes(&got));
        assert_eq!(b.len(), 1, "full, once the median says so: {b:?}");
        assert_eq!(b[0].1.fill_pct, 95);
        assert_eq!(rig.dev.app.full(), Some(true));

        bin.set_fire(true);
        let got = rig.run_until(&mut board, 16 * MIN);
        let b = bins(changes(&got));
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].1.temperature_dc, 850);
        assert!(rig.dev.app.fire() && rig.dev.app.alarm_condition());

        bin.set_fire(false);
        bin.set_knocked_over(true);
        let got = rig.run_until(&mut board, 18 * MIN);
        let b = bins(changes(&got));
        assert_eq!(b.len(), 1, "the fire out: {b:?}");
        assert_eq!((b[0].1.temperature_dc, b[0].1.tilt_deg), (200, 90));
        assert!(!rig.dev.app.fire());
    }

    #[test]
    fn a_bin_on_a_mild_day_raises_nothing() {
        let bin = Bin::new(&waste_bin::Config::default());
        bin.set_fill_pct(40);
        let mut board = waste_bin(&bin).expect("board");
        let mut rig = rig();
        let got = rig.run_until(&mut board, 30 * MIN);
        let b = bins(changes(&got));
        assert_eq!(b.len(), 1, "only the first fill: {b:?}");
        assert!(!rig.dev.app.fire() && !rig.dev.app.alarm_condition());
        // Telemetry before the first median (five readings) has no fill yet.
        let known = bins(&got).into_iter().filter(|x| x.0 >= 4 * MIN);
        assert!(known
            .into_iter()
            .all(|x| x.1.fill_pct == 40 && x.1.temperature_dc == 200));
    }
}
