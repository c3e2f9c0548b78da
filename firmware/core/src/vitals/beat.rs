//! One beat's measurements: the estimator feeds each sample between two beat fiducials
//! into running sums, and turns them into a [`Beat`] when the next beat is found.
//!
//! Owns the per-beat arithmetic only (integer sums per sample, floats once per beat).
//! From the sums come the DC of both channels (the beat's mean level) and the AC inner
//! products of the high-passed channels with their mean and linear trend over the beat
//! removed (what is left of baseline wander). The ratio of ratios is the slope of red on
//! IR by orthogonal regression — unbiased when both channels carry the same noise in ADC
//! counts (one ADC), where least squares would shrink with the IR noise — times
//! `DC_ir / DC_red`.

use libm::sqrt;

/// Longest segment, samples: bounds every sum well inside i64 (values are at most 2^23
/// in Q4, so Σx² < 2^46 · 2^12, Σt·x < 2^47).
pub(super) const MAX_SAMPLES: i64 = 4_096;

/// What one beat measured.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Beat {
    /// Beat time, ms.
    pub t_ms: u64,
    /// Interval since the previous beat, µs.
    pub interval_us: u32,
    /// Ratio of ratios `(AC_red/DC_red) / (AC_ir/DC_ir)`.
    pub ratio: f32,
    /// Correlation of the red and IR pulses.
    pub corr: f32,
    /// Perfusion index from the upstroke: IR fall over the steepest lag over DC, %.
    pub pi_pct: f32,
    /// High-passed IR, rms over DC (the beat's energy).
    pub ac: f32,
    /// Mean IR level, counts (the baseline respiration rides on).
    pub dc_ir: f32,
    /// Steepest rise over steepest fall of the blood volume (a pulse rises faster).
    pub asym: f32,
}

/// Running sums over one beat (Q4): levels relative to the first sample, high-passed
/// values against the sample index `t`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sums {
    n: i64,
    st: i64,
    stt: i64,
    li: i64,
    lr: i64,
    hi: i64,
    hr: i64,
    thi: i64,
    thr: i64,
    hii: i64,
    hrr: i64,
    hri: i64,
    ref_i: i32,
    ref_r: i32,
    min_slope: i32,
}

impl Sums {
    /// Sums starting at levels `lr`, `li` (red, IR).
    pub fn new(lr: i32, li: i32) -> Self {
        Sums {
            ref_i: li,
            ref_r: lr,
            ..Sums::default()
        }
    }

    /// Samples so far.
    pub fn len(&self) -> i64 {
        self.n
    }

    /// One sample: low-passed levels, high-passed values and the detector's slope.
    pub fn add(&mut self, (lr, li): (i32, i32), (hr, hi): (i32, i32), slope: i32) {
        let (t, hr, hi) = (self.n, i64::from(hr), i64::from(hi));
        self.n += 1;
        self.st += t;
        self.stt += t * t;
        self.li += i64::from(li) - i64::from(self.ref_i);
        self.lr += i64::from(lr) - i64::from(self.ref_r);
        self.hi += hi;
        self.hr += hr;
        self.thi += t * hi;
        self.thr += t * hr;
        self.hii += hi * hi;
        self.hrr += hr * hr;
        self.hri += hr * hi;
        self.min_slope = self.min_slope.min(slope);
    }

    /// The beat, given the slope peak that ended it; `None` when degenerate (too short,
    /// no pulse, red and IR moving apart).
    pub fn finish(&self, peak_slope: i32) -> Option<Beat> {
        let f = |x: i64| x as f64;
        let (n, st, stt) = (f(self.n), f(self.st), f(self.stt));
        let det = n * stt - st * st;
        if self.n < 4 || det <= 0.0 {
            return None;
        }
        // <a, b> minus its projection on span(1, t), from the sums of a, t·a, b, t·b.
        let inner = |sab: i64, sa: i64, sta: i64, sb: i64, stb: i64| {
            let (sa, sta, sb, stb) = (f(sa), f(sta), f(sb), f(stb));
            f(sab) - (sa * (stt * sb - st * stb) + sta * (n * stb - st * sb)) / det
        };
        let ii = inner(self.hii, self.hi, self.thi, self.hi, self.thi);
        let rr = inner(self.hrr, self.hr, self.thr, self.hr, self.thr);
        let ri = inner(self.hri, self.hr, self.thr, self.hi, self.thi);
        let dc_ir = f64::from(self.ref_i) + f(self.li) / n;
        let dc_red = f64::from(self.ref_r) + f(self.lr) / n;
        if ii <= 0.0 || rr <= 0.0 || ri <= 0.0 || dc_ir <= 0.0 || dc_red <= 0.0 {
            return None;
        }
        let slope = (rr - ii + sqrt((rr - ii) * (rr - ii) + 4.0 * ri * ri)) / (2.0 * ri);
        Some(Beat {
            ratio: (slope * dc_ir / dc_red) as f32,
            corr: (ri / sqrt(ii * rr)) as f32,
            pi_pct: (f64::from(peak_slope) / dc_ir * 100.0) as f32,
            ac: (sqrt(ii / n) / dc_ir) as f32,
            dc_ir: (dc_ir / 16.0) as f32,
            asym: (f64::from(peak_slope) / f64::from(self.min_slope).abs().max(1.0)) as f32,
            ..Beat::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_survives_a_linear_trend_and_equal_noise() {
        // IR level 100 000, red 80 000 counts; the red pulse is 0.4× the IR one in counts,
        // so R = 0.4 · 100 000 / 80 000 = 0.5. Both ride on the same ramp (wander).
        let mut s = Sums::new(80_000 << 4, 100_000 << 4);
        let mut noise = 12_345u32;
        let mut rnd = || {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (noise >> 16) as i32 % 64 - 32
        };
        for t in 0..100 {
            let pulse = (libm::sinf(t as f32 * 0.0628) * 16_000.0) as i32;
            let trend = t * 40;
            let (hi, hr) = (pulse + trend + rnd(), pulse * 2 / 5 + trend + rnd());
            s.add(((80_000 << 4) + hr, (100_000 << 4) + hi), (hr, hi), -pulse);
        }
        let b = s.finish(16_000).expect("a beat");
        assert!((b.ratio - 0.5).abs() < 0.01, "{b:?}");
        assert!(b.corr > 0.99 && b.asym > 0.9 && b.asym < 1.1, "{b:?}");
        assert!(Sums::new(1, 1).finish(1).is_none());
    }
}
