//! Waste bin: fill level from an ultrasonic distance to the rubbish (median of the last
//! five echoes, which drops the odd echo off a bag's edge), and fire from the
//! temperature inside (a level, or a fast rise).
//!
//! Owns the fill and fire decisions; timing the echo is the adapter's.

/// Bin settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Distance from the sensor to the bottom of the empty bin, mm.
    pub empty_mm: u16,
    /// Distance when the bin is full to the brim, mm.
    pub full_mm: u16,
    /// Fill change that is worth a report, %.
    pub report_step_pct: u8,
    /// At or above: fire, 0.1 °C.
    pub fire_dc: i16,
    /// Rising this fast: fire, 0.1 °C per minute.
    pub fire_rise_dc_per_min: i16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            empty_mm: 1_000,
            full_mm: 150,
            report_step_pct: 5,
            fire_dc: 600,
            fire_rise_dc_per_min: 50,
        }
    }
}

/// Distance from an ultrasonic round-trip echo time (speed of sound 343 m/s at 20 °C).
pub fn echo_to_mm(echo_us: u32) -> u32 {
    echo_us.saturating_mul(343) / 2_000
}

const WINDOW: usize = 5;

/// The temperature rise is measured over at least this long, ms.
pub const RISE_SPAN_MS: u64 = 60_000;

/// The bin's state.
#[derive(Debug, Clone)]
pub struct WasteBin {
    cfg: Config,
    echoes: [u16; WINDOW],
    n: usize,
    reported: Option<u8>,
    /// The sample the rise is measured from.
    reference: Option<(u64, i16)>,
    rising: bool,
    fire: bool,
}

impl WasteBin {
    /// A bin with `cfg`.
    pub fn new(cfg: Config) -> Self {
        WasteBin {
            cfg,
            echoes: [0; WINDOW],
            n: 0,
            reported: None,
            reference: None,
            rising: false,
            fire: false,
        }
    }

    /// Fill for a distance, 0–100 %.
    pub fn fill_pct(&self, distance_mm: u16) -> u8 {
        let span = i32::from(self.cfg.empty_mm) - i32::from(self.cfg.full_mm);
        if span <= 0 {
            return 0;
        }
        let filled = i32::from(self.cfg.empty_mm) - i32::from(distance_mm);
        (filled * 100 / span).clamp(0, 100) as u8
    }

    /// Feeds a distance; `Some(fill %)` when the median fill moved by a report step (or
    /// on the first full window).
    pub fn distance(&mut self, distance_mm: u16) -> Option<u8> {
        self.echoes.copy_within(1.., 0);
        self.echoes[WINDOW - 1] = distance_mm;
        self.n = (self.n + 1).min(WINDOW);
        if self.n < WINDOW {
            return None;
        }
        let mut sorted = self.echoes;
        sorted.sort_unstable();
        let fill = self.fill_pct(sorted[WINDOW / 2]);
        let moved = self
            .reported
            .is_none_or(|r| r.abs_diff(fill) >= self.cfg.report_step_pct);
        if moved {
            self.reported = Some(fill);
            return Some(fill);
        }
        None
    }

    /// Fire, as last decided.
    pub fn fire(&self) -> bool {
        self.fire
    }

    /// Feeds a temperature (0.1 °C); `Some(fire)` when the fire decision changes. The
    /// rise is measured over at least [`RISE_SPAN_MS`], so a sensor's flicker between
    /// close samples is no rise, however often it is sampled.
    pub fn temperature(&mut self, dc: i16, now_ms: u64) -> Option<bool> {
        match self.reference {
            None => self.reference = Some((now_ms, dc)),
            Some((t, prev)) if now_ms.saturating_sub(t) >= RISE_SPAN_MS => {
                let dt = now_ms.saturating_sub(t) as i64;
                let rate = (i64::from(dc) - i64::from(prev)) * 60_000 / dt;
                self.rising = rate >= i64::from(self.cfg.fire_rise_dc_per_min);
                self.reference = Some((now_ms, dc));
            }
            Some(_) => {}
        }
        let fire = dc >= self.cfg.fire_dc || (self.rising && dc >= self.cfg.fire_dc / 2);
        if fire != self.fire {
            self.fire = fire;
            return Some(fire);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_ignores_stray_echoes_and_reports_in_steps() {
        let mut b = WasteBin::new(Config::default());
        assert_eq!(echo_to_mm(5_831), 1_000);
        let mut reports = [0u8; 4];
        let mut n = 0;
        // Half full (575 mm), with an echo off the lid (80 mm) and a lost one (4000 mm).
        for d in [575, 575, 80, 575, 4_000, 575, 570, 580, 575] {
            if let Some(f) = b.distance(d) {
                reports[n] = f;
                n += 1;
            }
        }
        assert_eq!(&reports[..n], &[50]);
        // Filling up to the brim.
        for d in [300u16; 5] {
            if let Some(f) = b.distance(d) {
                reports[n] = f;
                n += 1;
            }
        }
        assert_eq!(&reports[..n], &[50, 82]);
        assert_eq!(b.fill_pct(2_000), 0);
        assert_eq!(b.fill_pct(0), 100);
    }

    #[test]
    fn fire_by_level_or_by_a_fast_rise_and_a_sunny_day_is_not_fire() {
        let mut b = WasteBin::new(Config::default());
        // A sunny afternoon: 25 °C to 45 °C over two hours.
        for k in 0..=120u64 {
            assert_eq!(
                b.temperature(250 + (k as i16) * 2, k * 60_000)
                    .filter(|f| *f),
                None
            );
        }
        let mut b = WasteBin::new(Config::default());
        assert_eq!(b.temperature(250, 0), None);
        // Warming by 3 °C a minute: not yet; then smouldering, +8 °C a minute.
        assert_eq!(b.temperature(280, 60_000), None);
        assert_eq!(b.temperature(360, 120_000), Some(true));
        let mut b = WasteBin::new(Config::default());
        assert_eq!(b.temperature(650, 0), Some(true));
        assert_eq!(b.temperature(200, 3_600_000), Some(false));
    }

    #[test]
    fn flicker_between_close_samples_is_no_rise_but_a_real_one_is() {
        let mut b = WasteBin::new(Config::default());
        // A warm day, sampled every second, flickering by 0.1-0.3 °C.
        for i in 0..600u64 {
            let dc = 350 + [0, 1, 3, 0, 2][(i % 5) as usize];
            assert_eq!(b.temperature(dc, i * 1_000), None, "no fire at {i} s");
        }
        // Smouldering: +0.1 °C a second (6 °C a minute) from 31 °C.
        let mut fire_at = None;
        for i in 0..240u64 {
            if b.temperature(310 + i as i16, 600_000 + i * 1_000) == Some(true) {
                fire_at = Some(i);
                break;
            }
        }
        assert!(fire_at.is_some_and(|s| s <= 130), "{fire_at:?}");
        assert!(b.fire());
    }
}
