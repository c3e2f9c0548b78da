//! Respiration rate from the baseline a PPG rides on: breathing swings the venous and
//! tissue blood volume, so the mean IR level of successive beats rises and falls with
//! each breath (respiration-induced intensity variation).
//!
//! Owns only the rate estimate from that beat-by-beat series; the beats come from the
//! parent estimator. Method: remove the series' linear trend, count upward zero
//! crossings confirmed by a swing beyond ±0.3 rms (hysteresis against beat-to-beat
//! noise), rate = crossings − 1 over the time between the first and the last. Needs
//! three crossings in [`WINDOW_MS`]; 0 otherwise or outside 4–60 breaths/min.

/// Beats this far back are used, ms.
pub const WINDOW_MS: u32 = 32_000;
const MAX_POINTS: usize = 64;

/// Breaths per minute from `(t_ms, baseline)` points, oldest first; 0 = no estimate.
pub fn rate_bpm(points: impl Iterator<Item = (u64, f32)>) -> u8 {
    let (mut t, mut x) = ([0f32; MAX_POINTS], [0f32; MAX_POINTS]);
    let mut n = 0;
    let mut t0 = None;
    for (t_ms, v) in points.take(MAX_POINTS) {
        let t0 = *t0.get_or_insert(t_ms);
        (t[n], x[n]) = (t_ms.saturating_sub(t0) as f32 / 1e3, v);
        n += 1;
    }
    if n < 8 {
        return 0;
    }
    let (t, x) = (&t[..n], &mut x[..n]);

    // Remove the linear trend.
    let nf = n as f32;
    let (mt, mx) = (t.iter().sum::<f32>() / nf, x.iter().sum::<f32>() / nf);
    let (mut stt, mut stx) = (0.0, 0.0);
    for (ti, xi) in t.iter().zip(x.iter()) {
        stt += (ti - mt) * (ti - mt);
        stx += (ti - mt) * (xi - mx);
    }
    let slope = if stt > 0.0 { stx / stt } else { 0.0 };
    let mut ss = 0.0;
    for (ti, xi) in t.iter().zip(x.iter_mut()) {
        *xi -= mx + slope * (ti - mt);
        ss += *xi * *xi;
    }
    let hyst = 0.3 * libm::sqrtf(ss / nf);
    if hyst.is_nan() || hyst <= 0.0 {
        return 0;
    }

    // Upward zero crossings, each confirmed by a dip below −hyst before it and a rise
    // above +hyst after it.
    let (mut first, mut last, mut count) = (0.0, 0.0, 0u32);
    let (mut armed, mut pending) = (false, None);
    for j in 1..n {
        if x[j] < -hyst {
            armed = true;
            pending = None;
        } else if armed && x[j - 1] <= 0.0 && x[j] > 0.0 {
            let f = -x[j - 1] / (x[j] - x[j - 1]);
            pending = Some(t[j - 1] + f * (t[j] - t[j - 1]));
        }
        if x[j] > hyst && armed {
            if let Some(tz) = pending.take() {
                if count == 0 {
                    first = tz;
                }
                last = tz;
                count += 1;
            }
            armed = false;
        }
    }
    if count < 3 || last <= first {
        return 0;
    }
    let bpm = (count - 1) as f32 * 60.0 / (last - first);
    if (4.0..=60.0).contains(&bpm) {
        (bpm + 0.5) as u8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_breaths_on_a_drifting_baseline() {
        // One point a beat at 72 bpm, breathing 15/min, on a slow drift.
        let points = (0..38).map(|k| {
            let t = k as f32 * 60.0 / 72.0;
            let breath = libm::sinf(t * core::f32::consts::TAU * 15.0 / 60.0);
            ((t * 1e3) as u64, 120_000.0 + 300.0 * breath + 20.0 * t)
        });
        assert_eq!(rate_bpm(points), 15);
        assert_eq!(rate_bpm((0..40).map(|k| (k * 800, 5.0))), 0);
        assert_eq!(rate_bpm((0..4).map(|k| (k * 800, k as f32))), 0);
    }
}
