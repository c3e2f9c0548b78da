//! Vital signs from a reflective PPG sensor (MAX30102 class): heart rate, SpO2,
//! respiration and a quality score from raw 18-bit red and IR ADC counts at a fixed
//! sample rate, reported every `report_interval_ms`.
//!
//! Owns the signal processing and the estimates. Does not own the sensor (FIFO reads,
//! LED currents), the wire format ([`Vitals`] mirrors the protocol's `Vitals`) or any
//! alarm decision. Pure and allocation-free: time (ms since boot) is an input, all state
//! is fixed-size (~3.5 KB). [`synth`] makes test signals.
//!
//! **Per sample** (integers, Q4 fixed point): a one-pole low-pass (~4–5 Hz) on both
//! channels and two one-pole high-pass stages (~0.5 Hz) on top. A finger is present while
//! the IR level is at least `finger_ir_min` and neither channel reaches `saturation`.
//! Beats are the steepest points of the systolic upstrokes (`vitals/detect.rs`).
//!
//! **Per beat** (`vitals/beat.rs`, floats once a beat): DC, ratio of ratios `R`
//! (orthogonal regression of the high-passed red on IR, detrended over the beat),
//! red–IR correlation, energy, perfusion index, upstroke/downstroke asymmetry.
//!
//! **Per report**, over the beats of the last `window_ms`: heart rate = 60 / mean of the
//! intervals within ±15 % of their median; SpO2 = `110 − 25·R` on the median `R` of
//! those beats, clamped to 70–100 % (the common empirical calibration; a product
//! calibrates per device); respiration from the beat-by-beat baseline over 32 s
//! (`vitals/resp.rs`), only while all that is steady and at least three beats a breath.
//! Quality is the worst of ramps (0 → 1 between the bounds given):
//! - pulse terms: perfusion index 0.02 → 0.1 %; red–IR correlation 0.3 → 0.6; asymmetry
//!   1.15 → 1.4 (a pulse rises faster than it falls, motion swings both ways alike); share
//!   of the window covered by regular beats 60 → 90 %; share of regular intervals
//!   70 → 95 %; share of beats with a slope peak within 0.6–1.6× the median 70 → 95 %;
//! - SpO2 terms: standard error of the median SpO2 (from the MAD of `R`) 1.0 → 0.3 %;
//!   correlation 0.6 → 0.9; share of beats with an energy within 0.8–1.25× the median
//!   75 → 100 %.
//!
//! Motion artefacts break those regularities, so they lower quality instead of bending
//! the numbers. Below `min_quality` (default 50) estimates are withheld (0): SpO2 needs
//! both groups, heart rate and respiration the pulse terms; `quality` scores what is
//! reported. No finger or saturation: quality 0, no estimates, beat history dropped (as
//! on a time jump: backwards or a gap over 250 ms). After that, or at start, the first
//! estimate comes once `min_beats` intervals are in: ~7 s at 60 bpm, ~9 s at 45 bpm.

mod beat;
mod detect;
mod resp;
pub mod synth;

use beat::{Beat, Sums};
use detect::{Detector, Fiducial};

/// Full scale of the 18-bit ADC; larger inputs count as saturated.
pub const RAW_MAX: u32 = 0x3FFFF;
/// Calibration `SpO2 = SPO2_A − SPO2_B · R`.
pub const SPO2_A: f32 = 110.0;
/// See [`SPO2_A`].
pub const SPO2_B: f32 = 25.0;

/// SpO2 (%) for a ratio of ratios, before clamping.
pub fn spo2_from_ratio(r: f32) -> f32 {
    SPO2_A - SPO2_B * r
}

/// The ratio of ratios that reads as `spo2` % (the inverse of [`spo2_from_ratio`]).
pub fn ratio_for_spo2(spo2: f32) -> f32 {
    (SPO2_A - spo2) / SPO2_B
}

/// One report; mirrors the wire protocol's `Vitals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vitals {
    /// Heart rate, beats per minute (0 = no estimate).
    pub heart_rate_bpm: u8,
    /// Oxygen saturation, % (0 = no estimate).
    pub spo2_pct: u8,
    /// Respiration rate, breaths per minute (0 = no estimate).
    pub respiration_bpm: u8,
    /// Quality of the reported estimates, 0 (none: no finger, too little signal) – 100.
    pub quality: u8,
}

/// Estimator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Samples per second (10–1000); sets the filter constants.
    pub sample_rate_hz: u16,
    /// Estimates come from the beats of this long a window, ms (at most 64 beats).
    pub window_ms: u32,
    /// A report this often, ms.
    pub report_interval_ms: u32,
    /// IR level (ADC counts) from which a finger is taken to be on the sensor.
    pub finger_ir_min: u32,
    /// At or above on either channel: saturated, no estimate.
    pub saturation: u32,
    /// Shortest beat interval, ms (250 = 240 bpm).
    pub refractory_ms: u32,
    /// Longest beat interval, ms (2500 = 24 bpm).
    pub max_interval_ms: u32,
    /// Fewest beat intervals in the window for an estimate.
    pub min_beats: u8,
    /// Quality below this: estimates withheld.
    pub min_quality: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sample_rate_hz: 100,
            window_ms: 8_000,
            report_interval_ms: 1_000,
            finger_ir_min: 30_000,
            saturation: RAW_MAX - 1_000,
            refractory_ms: 250,
            max_interval_ms: 2_500,
            min_beats: 4,
            min_quality: 50,
        }
    }
}

/// Beats kept: 8 s at 240 bpm, and the respiration history.
const MAX_BEATS: usize = 64;
const MAX_GAP_MS: u64 = 250;
const SETTLE_MS: u64 = 500;

/// The estimator's state.
#[derive(Debug, Clone)]
pub struct VitalsEstimator {
    cfg: Config,
    lp_shift: u32,
    hp_shift: u32,
    /// Low-passed red and IR (Q4).
    lp: Option<[i32; 2]>,
    /// The two high-pass stages' running means per channel, scaled by 2^hp_shift.
    hp: [[i64; 2]; 2],
    detector: Detector,
    sums: Option<Sums>,
    beats: [Beat; MAX_BEATS],
    beat_head: usize,
    beat_len: usize,
    contact: bool,
    /// Detection runs from here (settled after a restart), ms.
    since_ms: u64,
    last_t: Option<u64>,
    next_report: Option<u64>,
    latest: Vitals,
}

impl VitalsEstimator {
    /// An estimator for `cfg`.
    pub fn new(cfg: Config) -> Self {
        let fs = u32::from(cfg.sample_rate_hz.clamp(10, 1_000));
        VitalsEstimator {
            cfg,
            lp_shift: (fs / 25).max(1).ilog2(),
            hp_shift: (fs * 8 / 25).ilog2(),
            lp: None,
            hp: [[0; 2]; 2],
            detector: Detector::new(fs, cfg.refractory_ms, cfg.max_interval_ms),
            sums: None,
            beats: [Beat::default(); MAX_BEATS],
            beat_head: 0,
            beat_len: 0,
            contact: false,
            since_ms: 0,
            last_t: None,
            next_report: None,
            latest: Vitals::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The last report (all zero before the first).
    pub fn latest(&self) -> Vitals {
        self.latest
    }

    /// Forgets all signal history (keeps the settings).
    pub fn reset(&mut self) {
        *self = VitalsEstimator::new(self.cfg);
    }

    /// Feeds one red/IR sample pair taken at `t_ms`; returns a report when one is due
    /// (every `report_interval_ms`, the first one interval after the first sample).
    pub fn push(&mut self, t_ms: u64, red: u32, ir: u32) -> Option<Vitals> {
        match self.last_t {
            Some(last) if t_ms < last => self.reset(),
            Some(last) if t_ms - last > MAX_GAP_MS => self.restart(t_ms),
            _ => {}
        }
        self.last_t = Some(t_ms);
        self.sample(t_ms, red.min(RAW_MAX), ir.min(RAW_MAX));

        let every = u64::from(self.cfg.report_interval_ms);
        let due = *self.next_report.get_or_insert(t_ms.saturating_add(every));
        if t_ms < due {
            return None;
        }
        let next = if t_ms - due >= every { t_ms } else { due };
        self.next_report = Some(next.saturating_add(every.max(1)));
        self.latest = self.report(t_ms);
        Some(self.latest)
    }

    /// Drops the beats and the detector state (keeps the filters); detection resumes
    /// after a settling time.
    fn restart(&mut self, t_ms: u64) {
        self.since_ms = t_ms.saturating_add(SETTLE_MS);
        self.detector.restart(self.since_ms);
        self.sums = None;
        self.beat_len = 0;
    }

    fn sample(&mut self, t_ms: u64, red: u32, ir: u32) {
        let x = [(red as i32) << 4, (ir as i32) << 4];
        let k = self.hp_shift;
        let lp = match self.lp {
            Some(lp) => [0, 1].map(|c| lp[c] + ((x[c] - lp[c]) >> self.lp_shift)),
            None => {
                self.hp = x.map(|x| [i64::from(x) << k, 0]);
                x
            }
        };
        self.lp = Some(lp);
        // y = x − its running mean, twice.
        let mut hp = [0i32; 2];
        for (c, m) in self.hp.iter_mut().enumerate() {
            let y1 = i64::from(lp[c]) - (m[0] >> k);
            m[0] += y1;
            let y2 = y1 - (m[1] >> k);
            m[1] += y2;
            hp[c] = y2 as i32;
        }

        let sat = self.cfg.saturation;
        let finger = lp[1] >= (self.cfg.finger_ir_min.min(RAW_MAX) as i32) << 4;
        let contact = finger && red < sat && ir < sat;
        if contact != self.contact {
            self.contact = contact;
            self.restart(t_ms);
        }
        if !contact || t_ms < self.since_ms {
            return;
        }

        let (Some(slope), fiducial) = self.detector.push(t_ms, lp[1]) else {
            return;
        };
        if let Some(s) = self.sums.as_mut() {
            if s.len() >= beat::MAX_SAMPLES {
                self.sums = None;
            } else {
                s.add((lp[0], lp[1]), (hp[0], hp[1]), slope);
            }
        }
        if let Some(f) = fiducial {
            self.beat(f, lp);
        }
    }

    /// A beat: closes the running segment, opens the next.
    fn beat(&mut self, f: Fiducial, lp: [i32; 2]) {
        if let (Some(s), Some(interval_us)) = (self.sums, f.interval_us) {
            if let Some(b) = s.finish(f.peak) {
                let t_ms = f.t_us / 1_000;
                self.beats[self.beat_head] = Beat {
                    t_ms,
                    interval_us,
                    ..b
                };
                self.beat_head = (self.beat_head + 1) % MAX_BEATS;
                self.beat_len = (self.beat_len + 1).min(MAX_BEATS);
            }
        }
        self.sums = Some(Sums::new(lp[0], lp[1]));
    }

    /// Beats of the last `window_ms` before `now`, oldest first.
    fn recent(&self, now: u64, window_ms: u32) -> impl Iterator<Item = &Beat> + Clone {
        let start = self.beat_head + MAX_BEATS - self.beat_len;
        (0..self.beat_len)
            .map(move |k| &self.beats[(start + k) % MAX_BEATS])
            .filter(move |b| b.t_ms.saturating_add(u64::from(window_ms)) > now)
    }

    fn report(&self, now: u64) -> Vitals {
        let all = self.recent(now, self.cfg.window_ms);
        let n = all.clone().count();
        if !self.contact || n < usize::from(self.cfg.min_beats.max(2)) {
            return Vitals::default();
        }
        let med_iv = median(all.clone().map(|b| b.interval_us));
        let is_regular = |b: &&Beat| b.interval_us.abs_diff(med_iv) <= med_iv / 100 * 15;
        let regular = all.clone().filter(is_regular);
        let k = regular.clone().count();
        let sum_us: u64 = regular.clone().map(|b| u64::from(b.interval_us)).sum();
        let bpm = 60e6 / (sum_us as f32 / k.max(1) as f32).max(1.0);
        let span_ms = now.saturating_sub(self.since_ms.saturating_add(detect::LEARN_MS));
        let cover =
            sum_us as f32 / 1e3 / span_ms.clamp(1, u64::from(self.cfg.window_ms.max(1))) as f32;

        let med = |f: fn(&Beat) -> f32| median(regular.clone().map(f));
        let (ratio, corr, pi, asym, ac) = (
            med(|b| b.ratio),
            med(|b| b.corr),
            med(|b| b.pi_pct),
            med(|b| b.asym),
            med(|b| b.ac),
        );
        let share =
            |f: &dyn Fn(&Beat) -> bool| all.clone().filter(|b| f(b)).count() as f32 / n as f32;
        let steady_depth = share(&|b| b.pi_pct > 0.6 * pi && b.pi_pct < 1.6 * pi);
        let steady_energy = share(&|b| b.ac > 0.8 * ac && b.ac < 1.25 * ac);
        // Standard error of the median SpO2, from the median absolute deviation of R.
        let mad = median(regular.clone().map(|b| (b.ratio - ratio).abs()));
        let se_pct = SPO2_B * 1.85 * mad / libm::sqrtf(k.max(1) as f32);
        let worst = |terms: &[f32]| terms.iter().fold(1.0f32, |q, &t| q.min(t));
        let q_pulse = worst(&[
            ramp(pi, 0.02, 0.1),
            ramp(corr, 0.3, 0.6),
            ramp(asym, 1.15, 1.4),
            ramp(cover, 0.6, 0.9),
            ramp(k as f32 / n as f32, 0.7, 0.95),
            ramp(steady_depth, 0.7, 0.95),
        ]);
        let q_spo2 = worst(&[
            1.0 - ramp(se_pct, 0.3, 1.0),
            ramp(corr, 0.6, 0.9),
            ramp(steady_energy, 0.75, 1.0),
        ]);

        let pct = |q: f32| (100.0 * q + 0.5) as u8;
        let min_q = self.cfg.min_quality;
        let (hr_ok, spo2_ok) = (pct(q_pulse) >= min_q, pct(q_pulse.min(q_spo2)) >= min_q);
        // Respiration only over a steady stretch: regular beats of a regular energy.
        let breathing = self.recent(now, resp::WINDOW_MS);
        let calm = |b: &&Beat| is_regular(b) && b.ac > 0.5 * ac && b.ac < 2.0 * ac;
        let steady = breathing.clone().filter(calm).count() * 10 >= breathing.clone().count() * 9;
        let baseline = breathing.map(|b| (b.t_ms, b.dc_ir));
        Vitals {
            heart_rate_bpm: if hr_ok {
                (bpm + 0.5).clamp(1.0, 255.0) as u8
            } else {
                0
            },
            spo2_pct: if spo2_ok {
                (spo2_from_ratio(ratio).clamp(70.0, 100.0) + 0.5) as u8
            } else {
                0
            },
            // Sampled once a beat, breathing needs three beats a breath not to alias.
            respiration_bpm: match resp::rate_bpm(baseline) {
                r if hr_ok && steady && f32::from(r) * 3.0 <= bpm => r,
                _ => 0,
            },
            quality: if hr_ok && !spo2_ok {
                pct(q_pulse)
            } else {
                pct(q_pulse.min(q_spo2))
            },
        }
    }
}

/// 0 at or below `lo`, 1 at or above `hi`, linear between.
fn ramp(x: f32, lo: f32, hi: f32) -> f32 {
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// The median (upper median for an even count) of up to `MAX_BEATS` values; the default
/// value when there are none.
fn median<T: Copy + Default + PartialOrd>(values: impl Iterator<Item = T>) -> T {
    let mut v = [T::default(); MAX_BEATS];
    let mut n = 0;
    for x in values.take(MAX_BEATS) {
        // Insertion sort.
        let mut j = n;
        while j > 0 && v[j - 1] > x {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
        n += 1;
    }
    v[n / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_round_trips_and_helpers_behave() {
        for spo2 in [70.0, 88.0, 94.0, 100.0] {
            assert!((spo2_from_ratio(ratio_for_spo2(spo2)) - spo2).abs() < 1e-4);
        }
        assert_eq!(median([5u32, 1, 4, 2, 3].into_iter()), 3);
        assert_eq!(median(core::iter::empty::<f32>()), 0.0);
        assert_eq!(median([2.0f32, 1.0].into_iter()), 2.0);
        assert_eq!(
            (
                ramp(0.0, 1.0, 2.0),
                ramp(1.5, 1.0, 2.0),
                ramp(9.0, 1.0, 2.0)
            ),
            (0.0, 0.5, 1.0)
        );
        assert!(core::mem::size_of::<VitalsEstimator>() < 4_096);
    }
}
