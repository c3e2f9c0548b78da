//! The manhole cover monitor's virtual board: the cover's attitude through a virtual
//! LIS3DH and the real `lis3dh` driver, the water in the well through a level transducer
//! ([`Water`]), a cell; no gas sensor.
//!
//! Owns the cover's scene (seated, pried open, lifted off) and the board glue; does not
//! own the tilt decision or the learning of the installed position (the firmware's).

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use linli_firmware::app::manhole::{Manhole, ManholeSensors};
use linli_firmware::fall::Range;
use linli_firmware::sensors::accel::{Accelerometer, SlaveAddr};
use linli_firmware::virtual_sensors::{AccelSource, VirtualLis3dh};

use super::water::Gauge;
use super::{lock, Cell, Clocked, Water, FULL_CELL_MV};

/// Where the cover is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lid {
    /// In its frame.
    Seated,
    /// Pried this many degrees out of its frame.
    Tilted(f32),
    /// Off the frame, lying upside down on the road.
    Lifted,
}

/// A manhole cover and the water in the well under it, which the simulation lifts,
/// tilts, puts back or floods while the board runs.
#[derive(Debug, Clone)]
pub struct Cover {
    lid: Arc<Mutex<Lid>>,
    water: Water,
}

impl Cover {
    /// A seated cover over `water_mm` of calm water.
    pub fn new(water_mm: u16) -> Self {
        Cover {
            lid: Arc::new(Mutex::new(Lid::Seated)),
            water: Water::new(water_mm),
        }
    }

    /// The cover is lifted off its frame (and laid upside down).
    pub fn lift(&self) {
        *lock(&self.lid) = Lid::Lifted;
    }

    /// The cover is pried `deg` degrees out of its frame (0 seats it).
    pub fn tilt(&self, deg: u8) {
        *lock(&self.lid) = Lid::Tilted(f32::from(deg));
    }

    /// The cover is put back in its frame.
    pub fn replace(&self) {
        *lock(&self.lid) = Lid::Seated;
    }

    /// The water in the well: set its level, make it rise, cut its transducer.
    pub fn water(&self) -> &Water {
        &self.water
    }
}

/// The cover as its accelerometer feels it: gravity, turned by the cover's tilt about
/// the x axis.
#[derive(Debug, Clone)]
struct Attitude(Arc<Mutex<Lid>>);

impl AccelSource for Attitude {
    fn next_mg(&mut self) -> Option<[i16; 3]> {
        let deg = match *lock(&self.0) {
            Lid::Seated => 0.0,
            Lid::Tilted(deg) => deg,
            Lid::Lifted => 180.0,
        };
        let r = deg.to_radians();
        Some([0, (1_000.0 * r.sin()) as i16, (1_000.0 * r.cos()) as i16])
    }
}

/// A manhole monitor board on virtual parts: LIS3DH (±8 g) on I2C, the well's level
/// transducer, a full cell. Run its application in [`super::Timed`].
#[derive(Debug)]
pub struct VirtualManhole {
    accel: Option<Accelerometer<VirtualLis3dh<Attitude>>>,
    gauge: Gauge,
    cell: Cell,
}

/// Builds a [`VirtualManhole`] under `cover`.
pub fn manhole(cover: &Cover) -> Result<VirtualManhole> {
    let chip = VirtualLis3dh::new(0x18, Attitude(cover.lid.clone()));
    let accel = Accelerometer::new(chip, SlaveAddr::Default, Range::G8)
        .map_err(|e| anyhow!("virtual LIS3DH: {e}"))?;
    Ok(VirtualManhole {
        accel: Some(accel),
        gauge: Gauge::new(&cover.water),
        cell: Cell::new(FULL_CELL_MV),
    })
}

impl ManholeSensors for VirtualManhole {
    fn acceleration_mg(&mut self) -> Option<[i16; 3]> {
        self.accel.as_mut()?.poll_mg().ok().flatten()
    }

    fn water_mm(&mut self) -> Option<u16> {
        self.gauge.read_mm()
    }

    fn gas_ppm(&mut self) -> Option<u16> {
        None
    }

    fn battery_mv(&mut self) -> Option<u16> {
        self.cell.read_mv()
    }
}

impl Clocked<Manhole> for VirtualManhole {
    fn set_time(&mut self, now_ms: u64) {
        self.gauge.set_time(now_ms);
    }

    fn sensors(&mut self) -> &mut (dyn ManholeSensors + 'static) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{changes, Got, Rig, MIN, SEC};
    use super::super::Timed;
    use super::*;
    use linli_firmware::app::Application;
    use linli_firmware::manhole::{self, CoverState};
    use linli_firmware::water_level;
    use linli_protocol::report::Manhole as Wire;
    use linli_protocol::Report;

    fn rig() -> Rig<Timed<Manhole, VirtualManhole>> {
        let app = Manhole::new(
            manhole::Config::default(),
            water_level::Config::default(),
            5 * SEC,
        );
        Rig::new(Timed::new(app), SEC)
    }

    fn covers<'a>(got: impl IntoIterator<Item = &'a Got>) -> Vec<(u64, Wire)> {
        got.into_iter()
            .filter_map(|g| match g.report {
                Report::Manhole(m) => Some((g.t_ms, m)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lifted_cover_is_reported_at_once_a_pried_one_soon_and_back_in_place() {
        let cover = Cover::new(50);
        let mut board = manhole(&cover).expect("board");
        let mut rig = rig();
        rig.run_until(&mut board, 2 * MIN);
        assert!(
            rig.dev.app.app.installed().is_some(),
            "the position is learnt"
        );
        cover.lift();
        let got = rig.run_until(&mut board, 2 * MIN + 6 * SEC);
        let m = covers(changes(&got));
        assert_eq!(m.len(), 1, "{got:?}");
        assert!(m[0].1.tilt_cdeg > 9_000, "{m:?}");
        assert_eq!(m[0].1.water_mm, 50);
        assert_eq!(rig.dev.app.app.cover(), CoverState::Removed);
        assert!(rig.dev.app.alarm_condition());

        cover.replace();
        let got = rig.run_until(&mut board, 3 * MIN);
        let m = covers(changes(&got));
        assert!(m.iter().any(|x| x.1.tilt_cdeg < 100), "{m:?}");
        assert_eq!(rig.dev.app.app.cover(), CoverState::Level);

        cover.tilt(12);
        let got = rig.run_until(&mut board, 4 * MIN);
        let m = covers(changes(&got));
        assert_eq!(m.len(), 1, "two samples in a row: {m:?}");
        assert!((1_150..=1_250).contains(&m[0].1.tilt_cdeg), "{m:?}");
        assert_eq!(rig.dev.app.app.cover(), CoverState::Tilted);
    }

    #[test]
    fn a_seated_cover_over_rising_water_reports_the_water_not_the_cover() {
        let cover = Cover::new(50);
        let mut board = manhole(&cover).expect("board");
        let mut rig = rig();
        let got = rig.run_until(&mut board, 10 * MIN);
        // The one change: the installed position, learnt from the first 16 samples.
        let m = covers(changes(&got));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].1.tilt_cdeg < 20, "{m:?}");
        assert!(!rig.dev.app.alarm_condition());
        assert!(
            got.iter()
                .any(|g| matches!(g.report, Report::Battery(b) if b.millivolts == 3_950)),
            "{got:?}"
        );

        cover.water().rise(30);
        let got = rig.run_until(&mut board, 20 * MIN);
        let m = covers(changes(&got));
        assert!(!m.is_empty() && m[0].1.water_mm < 150, "rising fast: {m:?}");
        assert!(m.iter().all(|x| x.1.tilt_cdeg < 20), "{m:?}");
        assert_eq!(rig.dev.app.app.cover(), CoverState::Level);
        assert!(rig.dev.app.alarm_condition(), "the water");
    }
}
