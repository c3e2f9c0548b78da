//! Synthetic PPG for tests and simulators: what a MAX30102-class sensor would deliver
//! from a finger — 18-bit red and IR ADC counts at a fixed sample rate, stamped with ms
//! since start.
//!
//! Owns the signal model only; deterministic for a seed, `no_std`, no allocation. Motion
//! bursts and no-finger periods are scheduled as [`Episode`]s; any [`Config`] field may
//! also be changed mid-stream through [`Synth::config_mut`] (a new heart rate, say).
//!
//! Model, per channel: `DC · (1 + wander + motion) · (1 − PI · v(t)) + noise`, where
//! `v(t)` is the arterial blood volume of the current beat (0 at the foot, ~1 at the
//! systolic peak): a fast systolic rise, a slower fall, a dicrotic notch and a small
//! reflected wave, timed in seconds so the systole keeps its width as the rate changes.
//! Beat lengths jitter (heart-rate variability). The IR pulse depth is `perfusion_pct`;
//! the red depth is `R` times it, with `R` from the inverse of the estimator's SpO2
//! calibration ([`super::ratio_for_spo2`]). The baseline wanders with respiration (and
//! the pulse depth with it); motion is an irregular, smoothed random swing of both
//! channels alike; without a finger the channels read ambient light only.

use super::{ratio_for_spo2, RAW_MAX};
use libm::{expf, sinf};

/// The simulated person and sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Samples per second.
    pub sample_rate_hz: u16,
    /// Mean heart rate, beats per minute.
    pub heart_rate_bpm: f32,
    /// Beat-to-beat jitter of the beat length, % (rms).
    pub hrv_pct: f32,
    /// Oxygen saturation, %.
    pub spo2_pct: f32,
    /// IR pulse depth (peak to trough) over IR DC, % (perfusion index).
    pub perfusion_pct: f32,
    /// IR level with a finger on, ADC counts.
    pub dc_ir: f32,
    /// Red level with a finger on, ADC counts.
    pub dc_red: f32,
    /// White noise on each channel, ADC counts rms.
    pub noise_counts: f32,
    /// Breaths per minute.
    pub respiration_bpm: f32,
    /// Baseline wander with respiration, in IR pulse depths (amplitude; ~0.1–0.5 at
    /// rest, the same blood volume drives both).
    pub wander: f32,
    /// Motion artefact amplitude, in IR pulse depths (0 = still; 5+ is heavy).
    pub motion: f32,
    /// A finger is on the sensor.
    pub finger: bool,
    /// Scheduled motion bursts and no-finger periods.
    pub episodes: [Option<Episode>; 4],
    /// Seed of the noise, jitter and motion.
    pub seed: u64,
}

/// Something that happens for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Artefact {
    /// Motion of this amplitude (see [`Config::motion`]).
    Motion(f32),
    /// The finger is off the sensor.
    NoFinger,
}

/// An artefact from `from_ms` until (not including) `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// Start, ms since the generator started.
    pub from_ms: u64,
    /// End, ms.
    pub until_ms: u64,
    /// What happens.
    pub artefact: Artefact,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sample_rate_hz: 100,
            heart_rate_bpm: 72.0,
            hrv_pct: 2.0,
            spo2_pct: 97.0,
            perfusion_pct: 1.5,
            dc_ir: 120_000.0,
            dc_red: 90_000.0,
            noise_counts: 20.0,
            respiration_bpm: 15.0,
            wander: 0.3,
            motion: 0.0,
            finger: true,
            episodes: [None; 4],
            seed: 1,
        }
    }
}

/// One sensor reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time, ms since the generator started.
    pub t_ms: u64,
    /// Red ADC counts (18 bits).
    pub red: u32,
    /// IR ADC counts (18 bits).
    pub ir: u32,
}

/// The generator; an endless [`Iterator`] of [`Sample`]s.
#[derive(Debug, Clone)]
pub struct Synth {
    cfg: Config,
    n: u64,
    rng: u64,
    /// Time into the current beat, and its length, s.
    beat_t: f32,
    beat_len: f32,
    resp_phase: f32,
    motion: f32,
    motion_target: f32,
    motion_hold: u32,
}

const TAU: f32 = core::f32::consts::TAU;

impl Synth {
    /// A generator for `cfg`, starting at t = 0 at the foot of a beat.
    pub fn new(cfg: Config) -> Self {
        let mut s = Synth {
            cfg,
            n: 0,
            rng: cfg.seed ^ 0x9E37_79B9_7F4A_7C15,
            beat_t: 0.0,
            beat_len: 1.0,
            resp_phase: 0.0,
            motion: 0.0,
            motion_target: 0.0,
            motion_hold: 0,
        };
        s.beat_len = s.draw_beat_len();
        s.resp_phase = s.uniform() * TAU;
        s
    }

    /// The current settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The settings, to change mid-stream (takes effect from the next sample; a new
    /// heart rate from the next beat).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.cfg
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// About standard normal (sum of four uniforms).
    fn gauss(&mut self) -> f32 {
        let s = self.uniform() + self.uniform() + self.uniform() + self.uniform();
        (s - 2.0) * 1.732_050_8
    }

    fn draw_beat_len(&mut self) -> f32 {
        let hr = self.cfg.heart_rate_bpm.clamp(20.0, 250.0);
        let jitter = (self.gauss() * self.cfg.hrv_pct / 100.0).clamp(-0.2, 0.2);
        60.0 / hr * (1.0 + jitter)
    }

    /// Blood volume `t` s into a beat of `len` s: 0 at the foot, ~1 at the peak.
    fn pulse(t: f32, len: f32) -> f32 {
        let k = len.clamp(0.4, 1.2);
        let (peak, rise, fall) = (0.18 * k, 0.05 * k, 0.12 * k);
        let sig = if t < peak { rise } else { fall };
        let sys = expf(-0.5 * ((t - peak) / sig) * ((t - peak) / sig));
        let (refl, width) = (0.42 * k, 0.07 * k);
        let dia = 0.3 * expf(-0.5 * ((t - refl) / width) * ((t - refl) / width));
        sys + dia
    }

    fn step_motion(&mut self, amplitude: f32) {
        let fs = f32::from(self.cfg.sample_rate_hz.max(1));
        if self.motion_hold == 0 {
            self.motion_target = (self.uniform() * 2.0 - 1.0) * amplitude;
            // A new direction every 80–400 ms.
            self.motion_hold = ((0.08 + 0.32 * self.uniform()) * fs) as u32 + 1;
        }
        self.motion_hold -= 1;
        // Follows the target with a ~60 ms time constant.
        let alpha = (1.0 / (0.06 * fs)).min(1.0);
        self.motion += (self.motion_target - self.motion) * alpha;
    }

    /// The next sample.
    pub fn sample(&mut self) -> Sample {
        let fs = self.cfg.sample_rate_hz.max(1);
        let dt = 1.0 / f32::from(fs);
        let t_ms = (self.n * 1000 + u64::from(fs) / 2) / u64::from(fs);
        self.n += 1;

        self.beat_t += dt;
        if self.beat_t >= self.beat_len {
            self.beat_t -= self.beat_len;
            self.beat_len = self.draw_beat_len();
        }
        self.resp_phase += TAU * self.cfg.respiration_bpm / 60.0 * dt;
        if self.resp_phase > TAU {
            self.resp_phase -= TAU;
        }
        let (mut motion, mut finger) = (self.cfg.motion, self.cfg.finger);
        let now = self.cfg.episodes.into_iter().flatten();
        for e in now.filter(|e| (e.from_ms..e.until_ms).contains(&t_ms)) {
            match e.artefact {
                Artefact::Motion(m) => motion = motion.max(m),
                Artefact::NoFinger => finger = false,
            }
        }
        self.step_motion(motion);

        let (n_red, n_ir) = (self.gauss(), self.gauss());
        let c = &self.cfg;
        let (red, ir) = if finger {
            let breath = sinf(self.resp_phase);
            let pi_ir = c.perfusion_pct / 100.0;
            let pi_red = pi_ir * ratio_for_spo2(c.spo2_pct);
            let v = Self::pulse(self.beat_t, self.beat_len) * (1.0 + 0.1 * breath);
            let base = 1.0 + (c.wander * breath + self.motion) * pi_ir;
            (
                c.dc_red * base * (1.0 - pi_red * v),
                c.dc_ir * base * (1.0 - pi_ir * v),
            )
        } else {
            // Ambient light leaking in.
            (1_200.0, 1_500.0)
        };
        let adc = |x: f32| (x + 0.5).clamp(0.0, RAW_MAX as f32) as u32;
        Sample {
            t_ms,
            red: adc(red + c.noise_counts * n_red),
            ir: adc(ir + c.noise_counts * n_ir),
        }
    }
}

impl Iterator for Synth {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        Some(self.sample())
    }
}
