//! The vital-sign sensor's application: batches of PPG samples, time-stamped on the
//! sample stream's own clock, into the vitals estimator; the battery.
//!
//! Reports: `vitals` (the latest estimate, or all zero with quality 0 when no estimate
//! came since the last report) and `battery` as telemetry. Nothing is reported at once,
//! and there is no alarm condition or threshold: the estimator decides no alarm, the
//! gateway's rules do. Does not own the signal processing ([`crate::vitals`]) or the
//! FIFO reads and LED settings ([`crate::sensors::ppg`]).
//!
//! Time stamps: sample `k` of the stream is `k / sample_rate_hz` after the first, as the
//! sensor samples on its own clock. The stream is re-anchored to the caller's clock (so
//! the batch ends now) when a read failed or samples were lost, or when it lags the
//! clock by more than a second; it never steps backwards.

use linli_protocol::report::Vitals as Wire;
use linli_protocol::{DeviceKind, Report};

use super::Application;
use crate::sensors::ppg::FIFO_DEPTH;
use crate::vitals::{self, VitalsEstimator};

/// What the vital-sign sensor reads.
pub trait VitalsSensors {
    /// Moves the samples waiting (oldest first, `(red, ir)` in 18-bit ADC counts) into
    /// `out`: how many; `None` when the read failed or samples were lost (a FIFO overrun).
    fn ppg(&mut self, out: &mut [(u32, u32)]) -> Option<usize>;
    /// Cell voltage, mV; `None` on mains power or when the read failed.
    fn battery_mv(&mut self) -> Option<u16>;
}

/// A stream lagging the clock by more than this has lost samples, µs.
const MAX_LAG_US: u64 = 1_000_000;

/// The vital-sign sensor.
#[derive(Debug, Clone)]
pub struct Vitals {
    estimator: VitalsEstimator,
    /// The next sample's time on the stream's clock, µs since boot.
    next_us: u64,
    synced: bool,
    fresh: bool,
}

impl Vitals {
    /// A sensor with the estimator's settings (`sample_rate_hz` must match the sensor's).
    pub fn new(cfg: vitals::Config) -> Self {
        Vitals {
            estimator: VitalsEstimator::new(cfg),
            next_us: 0,
            synced: false,
            fresh: false,
        }
    }

    /// The estimator's latest report (all zero before the first).
    pub fn latest(&self) -> vitals::Vitals {
        self.estimator.latest()
    }
}

impl Application for Vitals {
    const KIND: DeviceKind = DeviceKind::Vitals;
    type Sensors = dyn VitalsSensors;

    fn sample(&mut self, now_ms: u64, s: &mut Self::Sensors, _out: &mut dyn FnMut(Report)) {
        let mut batch = [(0u32, 0u32); FIFO_DEPTH];
        let Some(n) = s.ppg(&mut batch) else {
            self.synced = false;
            return;
        };
        let batch = &batch[..n.min(FIFO_DEPTH)];
        let Some(last) = (batch.len() as u64).checked_sub(1) else {
            return;
        };
        let fs = u64::from(self.estimator.config().sample_rate_hz.clamp(10, 1_000));
        let period_us = 1_000_000 / fs;
        let now_us = now_ms.saturating_mul(1_000);
        let lagging = self.next_us + last * period_us + MAX_LAG_US < now_us;
        if !self.synced || lagging {
            // The batch ends now; a gap this opens restarts the estimator's beat history.
            self.next_us = now_us.saturating_sub(last * period_us).max(self.next_us);
            self.synced = true;
        }
        for &(red, ir) in batch {
            if self.estimator.push(self.next_us / 1_000, red, ir).is_some() {
                self.fresh = true;
            }
            self.next_us += period_us;
        }
    }

    fn telemetry(&mut self, _now_ms: u64, s: &mut Self::Sensors, out: &mut dyn FnMut(Report)) {
        let v = if core::mem::take(&mut self.fresh) {
            self.estimator.latest()
        } else {
            vitals::Vitals::default()
        };
        out(Report::Vitals(Wire {
            heart_rate_bpm: v.heart_rate_bpm,
            spo2_pct: v.spo2_pct,
            respiration_bpm: v.respiration_bpm,
            quality: v.quality,
        }));
        if let Some(r) = super::battery(s.battery_mv()) {
            out(r);
        }
    }
}
