//! The waste bin's application: the distance to the rubbish, read every `sample_ms`, into
//! the bin's fill (and "full" against the gateway's level); the temperature inside into
//! its fire decision; the bin's tilt; the battery.
//!
//! Reports: `waste_bin` (fill, temperature, tilt) at once when the bin becomes full or
//! stops being full (the first fill known too) and when fire starts or ends; `waste_bin`
//! and `battery` as telemetry. The alarm cadence holds while there is fire. Threshold:
//! [`Threshold::BinFullPct`]. Does not own the fill median and steps or the fire
//! decision ([`crate::waste_bin`]), nor the ranging ([`crate::sensors::echo`],
//! [`crate::sensors::distance`]).
//!
//! Sampling: the fire decision takes the rise between consecutive readings, so read at
//! most once a minute (read every second, a 0.1 °C flicker is a fast rise, and fire
//! above 30 °C); the fill median of five readings then ignores a lid held open for up to
//! two readings.

use linli_protocol::report::{Threshold, WasteBin as Wire};
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::waste_bin;

/// What the waste bin reads.
pub trait WasteBinSensors {
    /// Distance from the lid to the rubbish, mm; `None` for no echo (or one beyond reach).
    fn distance_mm(&mut self) -> Option<u16>;
    /// Temperature inside, 0.1 °C; `None` when the read failed.
    fn temperature_dc(&mut self) -> Option<i16>;
    /// Tilt from upright, degrees; `None` without a tilt sensor or when the read failed.
    fn tilt_deg(&mut self) -> Option<u8>;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// "Full" levels the gateway may set, %.
pub const FULL_PCT: core::ops::RangeInclusive<u8> = 50..=100;

/// The waste bin.
#[derive(Debug, Clone)]
pub struct WasteBin {
    bin: waste_bin::WasteBin,
    full_pct: u8,
    sample_ms: u64,
    next_sample_ms: u64,
    fill_pct: Option<u8>,
    full: Option<bool>,
    fire: bool,
    temperature_dc: Option<i16>,
    tilt_deg: Option<u8>,
}

impl WasteBin {
    /// A bin with `cfg`, full at `full_pct` %, reading every `sample_ms`.
    pub fn new(cfg: waste_bin::Config, full_pct: u8, sample_ms: u64) -> Self {
        WasteBin {
            bin: waste_bin::WasteBin::new(cfg),
            full_pct,
            sample_ms,
            next_sample_ms: 0,
            fill_pct: None,
            full: None,
            fire: false,
            temperature_dc: None,
            tilt_deg: None,
        }
    }

    /// Full, once the fill is known.
    pub fn full(&self) -> Option<bool> {
        self.full
    }

    /// Fire inside.
    pub fn fire(&self) -> bool {
        self.fire
    }

    fn report(&self) -> Report {
        Report::WasteBin(Wire {
            fill_pct: self.fill_pct.unwrap_or(0),
            temperature_dc: self.temperature_dc.unwrap_or(0),
            tilt_deg: self.tilt_deg.unwrap_or(0),
        })
    }
}

impl Application for WasteBin {
    const KIND: DeviceKind = DeviceKind::WasteBin;
    type Sensors = dyn WasteBinSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if now_ms < self.next_sample_ms {
            return;
        }
        self.next_sample_ms = now_ms.saturating_add(self.sample_ms.max(1));
        let mut worth = false;
        self.temperature_dc = s.temperature_dc();
        if let Some(dc) = self.temperature_dc {
            if let Some(fire) = self.bin.temperature(dc, now_ms) {
                self.fire = fire;
                worth = true;
            }
        }
        self.tilt_deg = s.tilt_deg();
        // No echo is no reading: the median is over the echoes that came back.
        if let Some(fill) = s.distance_mm().and_then(|mm| self.bin.distance(mm)) {
            self.fill_pct = Some(fill);
        }
        if let Some(fill) = self.fill_pct {
            let full = fill >= self.full_pct;
            worth |= self.full.replace(full) != Some(full);
        }
        if worth {
            out(self.report());
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        if self.fill_pct.is_some() || self.temperature_dc.is_some() {
            out(self.report());
        }
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }

    fn alarm_condition(&self) -> bool {
        self.fire
    }

    fn threshold(&mut self, t: Threshold) -> bool {
        match t {
            // The next reading decides "full" against the new level.
            Threshold::BinFullPct(pct) if FULL_PCT.contains(&pct) => {
                self.full_pct = pct;
                true
            }
            _ => false,
        }
    }
}
