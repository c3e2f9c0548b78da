//! The vital-sign sensor's virtual board: the wearer's pulse as synthetic PPG (the
//! firmware's `vitals::synth`) through a virtual MAX30102 and the real `max3010x` driver
//! (the firmware's `Ppg` adapter, SpO2 mode, 100 samples/s), a cell.
//!
//! Owns the wearer's scene (in bed with the sensor on, heart rate, SpO2) and the board
//! glue; does not own the signal model or the estimates (the firmware's).
//!
//! Time: the chip fills its FIFO as device time passes ([`super::Clocked`]); the FIFO
//! holds 320 ms, so a board stepping more than 320 ms of device time at a time (a fleet
//! run far faster than real time) overruns it and the estimates restart.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation};
use linli_firmware::app::vitals::{Vitals, VitalsSensors};
use linli_firmware::sensors::ppg::{self, Ppg};
use linli_firmware::virtual_sensors::VirtualMax30102;
use linli_firmware::vitals::synth::{self, Synth};

use super::{lock, Cell, Clocked, FULL_CELL_MV};

type Chip = VirtualMax30102<Synth>;

/// The person wearing a vital-sign sensor, whom the simulation puts to bed or gets up,
/// and whose heart rate and SpO2 it sets while the board runs.
#[derive(Debug, Clone)]
pub struct Sleeper(Arc<Mutex<Chip>>);

impl Sleeper {
    /// Someone in bed with the sensor on, at 72 bpm and 97 % SpO2; `seed` draws the
    /// signal's noise and beat-to-beat jitter.
    pub fn new(seed: u64) -> Self {
        let cfg = synth::Config {
            seed,
            ..synth::Config::default()
        };
        Sleeper(Arc::new(Mutex::new(VirtualMax30102::new(Synth::new(cfg)))))
    }

    fn with(&self, f: impl FnOnce(&mut synth::Config)) {
        f(lock(&self.0).source_mut().config_mut());
    }

    /// In bed with the sensor on (true), or up and away from it.
    pub fn set_in_bed(&self, in_bed: bool) {
        self.with(|c| c.finger = in_bed);
    }

    /// The heart beats `bpm` times a minute (from the next beat).
    pub fn set_heart_rate_bpm(&self, bpm: u8) {
        self.with(|c| c.heart_rate_bpm = f32::from(bpm));
    }

    /// The blood's oxygen saturation is `pct` %.
    pub fn set_spo2_pct(&self, pct: u8) {
        self.with(|c| c.spo2_pct = f32::from(pct));
    }
}

/// The I2C bus to the shared chip.
#[derive(Debug, Clone)]
struct Bus(Arc<Mutex<Chip>>);

impl ErrorType for Bus {
    type Error = ErrorKind;
}

impl I2c for Bus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        lock(&self.0).transaction(address, operations)
    }
}

/// The chip comes out of reset at once.
struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

/// A vital-sign board on virtual parts: MAX30102 on I2C, a full cell. Run its
/// application in [`super::Timed`].
#[derive(Debug)]
pub struct VirtualVitals {
    ppg: Option<Ppg<Bus>>,
    chip: Arc<Mutex<Chip>>,
    now_ms: Option<u64>,
    cell: Cell,
}

/// Builds a [`VirtualVitals`] on `sleeper` (the driver resets and sets up the chip).
pub fn vitals(sleeper: &Sleeper) -> Result<VirtualVitals> {
    let ppg = Ppg::new(Bus(sleeper.0.clone()), ppg::Config::default(), &mut NoDelay)
        .map_err(|e| anyhow!("virtual MAX30102: {e}"))?;
    Ok(VirtualVitals {
        ppg: Some(ppg),
        chip: sleeper.0.clone(),
        now_ms: None,
        cell: Cell::new(FULL_CELL_MV),
    })
}

impl VitalsSensors for VirtualVitals {
    fn ppg(&mut self, out: &mut [(u32, u32)]) -> Option<usize> {
        self.ppg.as_mut()?.read(out).ok()
    }

    fn battery_mv(&mut self) -> Option<u16> {
        self.cell.read_mv()
    }
}

impl Clocked<Vitals> for VirtualVitals {
    fn set_time(&mut self, now_ms: u64) {
        let since = self.now_ms.map_or(0, |t| now_ms.saturating_sub(t));
        self.now_ms = Some(now_ms);
        let since = u32::try_from(since).unwrap_or(u32::MAX);
        lock(&self.chip).elapse_ms(since);
    }

    fn sensors(&mut self) -> &mut (dyn VitalsSensors + 'static) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::rig::{Got, Rig, SEC};
    use super::super::Timed;
    use super::*;
    use linli_protocol::report::Vitals as Wire;
    use linli_protocol::Report;

    fn rig() -> Rig<Timed<Vitals, VirtualVitals>> {
        let app = Vitals::new(linli_firmware::vitals::Config::default());
        // 25 samples a read at 100 samples/s.
        Rig::new(Timed::new(app), 250)
    }

    fn vitals_at(got: &[Got]) -> Vec<(u64, Wire)> {
        got.iter()
            .filter_map(|g| match g.report {
                Report::Vitals(v) => Some((g.t_ms, v)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn someone_in_bed_at_60_bpm_is_reported_near_60_bpm() {
        let sleeper = Sleeper::new(5);
        sleeper.set_heart_rate_bpm(60);
        sleeper.set_spo2_pct(95);
        let mut board = vitals(&sleeper).expect("board");
        let mut rig = rig();
        let got = rig.run_until(&mut board, 61 * SEC);
        let v = vitals_at(&got);
        assert_eq!(v.len(), 2, "at boot and a minute later: {v:?}");
        assert_eq!(v[0].1.quality, 0, "nothing measured at boot");
        let (t, w) = v[1];
        assert_eq!(t, 60 * SEC);
        assert!(w.heart_rate_bpm.abs_diff(60) <= 3, "{w:?}");
        assert!(w.spo2_pct.abs_diff(95) <= 2, "{w:?}");
        assert!(w.quality >= 50, "{w:?}");
        assert!(got.iter().all(|g| g.report.event().is_none()));
    }

    #[test]
    fn a_racing_heart_is_reported_racing() {
        let sleeper = Sleeper::new(5);
        let mut board = vitals(&sleeper).expect("board");
        let mut rig = rig();
        rig.run_until(&mut board, 61 * SEC);
        sleeper.set_heart_rate_bpm(145);
        let got = rig.run_until(&mut board, 241 * SEC);
        let v = vitals_at(&got);
        assert!(v.len() >= 3, "{v:?}");
        let (_, w) = v[v.len() - 1];
        assert!(w.heart_rate_bpm.abs_diff(145) <= 5, "{w:?}");
    }

    #[test]
    fn nobody_in_bed_no_estimate() {
        let sleeper = Sleeper::new(5);
        sleeper.set_in_bed(false);
        let mut board = vitals(&sleeper).expect("board");
        let mut rig = rig();
        let got = rig.run_until(&mut board, 121 * SEC);
        let v = vitals_at(&got);
        assert_eq!(v.len(), 3, "{v:?}");
        let none = Wire {
            heart_rate_bpm: 0,
            spo2_pct: 0,
            respiration_bpm: 0,
            quality: 0,
        };
        assert!(v.iter().all(|x| x.1 == none), "{v:?}");
        assert_eq!(rig.dev.app.app.latest(), Default::default());
    }
}
