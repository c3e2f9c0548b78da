//! Signal models of the corpus: how each device kind's readings evolve (noise, slow
//! drifts, steps), quantized to the integer device units of the wire [`Report`]s.
//!
//! Owns the per-device state and a tiny seeded PRNG; does not own scheduling (when a
//! device reports) or the fleet layout, which are the parent module's.

use linli_protocol::report::{
    Battery, DeviceKind, Manhole, PowerMeter, Report, StreetLight, Vitals, WasteBin, WaterLevel,
};

/// SplitMix64: tiny, fast, seedable, identical on every platform and crate version.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Approximately standard normal (Irwin–Hall of 4 uniforms, rescaled).
    pub(crate) fn normal(&mut self) -> f64 {
        let s = self.unit() + self.unit() + self.unit() + self.unit();
        (s - 2.0) * 3f64.sqrt()
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Local time of day in hours (the fleet is in UTC+8).
pub(crate) fn local_hour(t: u32) -> f64 {
    f64::from((t + 8 * 3600) % 86_400) / 3600.0
}

/// 1 at 15:00 local, -1 at 03:00: a smooth daily cycle.
fn diurnal(t: u32) -> f64 {
    ((local_hour(t) - 9.0) / 24.0 * std::f64::consts::TAU).sin()
}

/// A rain event at one site: water rises linearly for `rise_s`, then recedes
/// exponentially.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rain {
    pub start: u32,
    pub rise_s: f64,
    pub peak_mm: f64,
    pub tau_s: f64,
}

impl Rain {
    fn level(&self, t: u32) -> f64 {
        if t < self.start {
            return 0.0;
        }
        let dt = f64::from(t - self.start);
        if dt < self.rise_s {
            self.peak_mm * dt / self.rise_s
        } else {
            self.peak_mm * (-(dt - self.rise_s) / self.tau_s).exp()
        }
    }
}

/// Water added by every rain event of a site at time `t`.
pub(crate) fn rain_mm(rain: &[Rain], t: u32) -> f64 {
    rain.iter().map(|r| r.level(t)).sum()
}

/// The evolving state of one device. Fields mean different things per kind; each
/// model documents its own use.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub rng: Rng,
    /// Per-device constants drawn once.
    base: f64,
    scale: f64,
    /// Slow mean-reverting walks.
    walk: [f64; 3],
    /// End of the current episode (activity, motion artefact, lamp fault ...).
    episode_until: u32,
    episode_gain: f64,
    /// Accumulators (energy, bin fill, battery).
    acc: f64,
    pub battery_mv: f64,
}

impl State {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let base = rng.unit();
        let scale = rng.unit();
        let battery_mv = rng.range(3_700.0, 4_150.0);
        State {
            rng,
            base,
            scale,
            walk: [0.0; 3],
            episode_until: 0,
            episode_gain: 0.0,
            acc: 0.0,
            battery_mv,
        }
    }

    /// Ornstein–Uhlenbeck step of walk `i`: pulled back to 0 at rate `theta`.
    fn step_walk(&mut self, i: usize, theta: f64, sigma: f64) -> f64 {
        let w = self.walk[i] * (1.0 - theta) + sigma * self.rng.normal();
        self.walk[i] = w;
        w
    }

    /// The next report of a device of `kind` at time `t`; `rain` is its site's rain.
    pub(crate) fn report(&mut self, kind: DeviceKind, t: u32, rain: &[Rain]) -> Report {
        match kind {
            DeviceKind::Vitals => self.vitals(t),
            DeviceKind::StreetLight => self.street_light(t),
            DeviceKind::WaterLevel => self.water_level(t, rain),
            DeviceKind::PowerMeter => self.power_meter(t),
            DeviceKind::WasteBin => self.waste_bin(t),
            _ => self.manhole(t, rain),
        }
    }

    /// Heart rate drifts (walk 0), dips at night, climbs in activity episodes; SpO2 and
    /// respiration walk slowly; motion artefacts drop quality and the estimates go to 0
    /// ("no estimate"), as real sensors report them.
    fn vitals(&mut self, t: u32) -> Report {
        let h = local_hour(t);
        let asleep = !(6.5..23.0).contains(&h);
        if t >= self.episode_until {
            self.episode_gain = 0.0;
            if self.rng.chance(1.0 / 1500.0) {
                // Getting up, walking about: +10..25 bpm for 3..15 minutes.
                self.episode_until = t + self.rng.range(180.0, 900.0) as u32;
                self.episode_gain = self.rng.range(10.0, 25.0);
            } else if self.rng.chance(1.0 / 800.0) {
                // Motion artefact: the sensor loses the signal for 10..90 s.
                self.episode_until = t + self.rng.range(10.0, 90.0) as u32;
                self.episode_gain = -1.0;
            }
        }
        let artefact = self.episode_gain < 0.0;
        let hr = 62.0 + 16.0 * self.base - if asleep { 7.0 } else { 0.0 }
            + self.step_walk(0, 0.002, 0.35)
            + self.episode_gain.max(0.0)
            + 1.2 * self.rng.normal();
        let spo2 =
            96.5 + 1.5 * self.scale + self.step_walk(1, 0.01, 0.15) + 0.5 * self.rng.normal();
        let resp = 14.0 + 3.0 * self.scale - if asleep { 1.5 } else { 0.0 }
            + self.step_walk(2, 0.005, 0.1)
            + 0.6 * self.rng.normal()
            + self.episode_gain.max(0.0) / 5.0;
        let quality = if artefact {
            self.rng.range(5.0, 35.0)
        } else {
            94.0 + 3.0 * self.rng.normal()
        };
        let q = quality.round().clamp(0.0, 100.0) as u8;
        let est = |v: f64, lo: f64, hi: f64| {
            if q < 30 {
                0
            } else {
                v.round().clamp(lo, hi) as u8
            }
        };
        Report::Vitals(Vitals {
            heart_rate_bpm: est(hr, 35.0, 200.0),
            spo2_pct: est(spo2, 80.0, 100.0),
            respiration_bpm: est(resp, 6.0, 40.0),
            quality: q,
        })
    }

    /// On from dusk (~18:30 local) to dawn (~06:00), dimmed to 50 % from 23:00 to
    /// 05:00; a few lamps are dead (relay on, almost no current).
    fn street_light(&mut self, t: u32) -> Report {
        let h = local_hour(t);
        let dusk = 18.5 + (self.base - 0.5) / 3.0;
        let dawn = 6.0 + (self.scale - 0.5) / 3.0;
        let on = h >= dusk || h < dawn;
        let dimming: u8 = if !on {
            0
        } else if !(5.0..23.0).contains(&h) {
            50
        } else {
            100
        };
        let dead = self.base < 0.02;
        let current = match (on, dead) {
            (false, _) => self.rng.range(0.0, 3.0),
            (true, true) => 20.0 + 5.0 * self.rng.normal(),
            (true, false) => {
                (380.0 + 80.0 * self.scale) * f64::from(dimming) / 100.0
                    + 30.0
                    + 4.0 * self.rng.normal()
            }
        };
        let current_ma = current.round().clamp(0.0, 2_000.0) as u16;
        // 230 V, power factor ~0.95, in 0.1 W.
        let power_dw = if on {
            (f64::from(current_ma) * 2.185).round() as u16
        } else {
            0
        };
        Report::StreetLight(StreetLight {
            relay_on: on,
            current_ma,
            power_dw,
            dimming_pct: dimming,
        })
    }

    /// Gauge zero plus a slow drift, millimetre noise, and the site's rain.
    fn water_level(&mut self, t: u32, rain: &[Rain]) -> Report {
        let level = 80.0
            + 120.0 * self.base
            + self.step_walk(0, 0.001, 0.3)
            + (0.5 + self.scale) * rain_mm(rain, t)
            + 1.5 * self.rng.normal();
        Report::WaterLevel(WaterLevel {
            level_mm: level.round().clamp(0.0, 5_000.0) as u16,
        })
    }

    /// A building's load with a daily profile; voltage, power factor and frequency
    /// wander; the energy register only counts up (`acc` holds it in Wh).
    fn power_meter(&mut self, t: u32) -> Report {
        let base_w = 800.0 + 6_000.0 * self.base;
        let p = base_w * (0.7 + 0.3 * diurnal(t)) * (1.0 + self.step_walk(0, 0.01, 0.01))
            + 0.02 * base_w * self.rng.normal();
        let v = 2_300.0 + 40.0 * self.scale - 20.0 * diurnal(t) + 3.0 * self.rng.normal();
        let pf = (0.94 + self.step_walk(1, 0.01, 0.002)).clamp(0.80, 0.999);
        let f = 5_000.0 + self.step_walk(2, 0.05, 0.8);
        self.acc += p.max(0.0) / 60.0;
        let current_ma = p / (v / 10.0 * pf) * 1000.0;
        Report::PowerMeter(PowerMeter {
            voltage_dv: v.round() as u16,
            current_ma: current_ma.round().max(0.0) as u32,
            power_w: p.round() as i32,
            power_factor_milli: (pf * 1000.0).round() as i16,
            frequency_chz: f.round() as u16,
            import_wh: (1_000_000.0 * self.scale + self.acc) as u32,
        })
    }

    /// Fills at a per-bin rate, emptied (a step down) at collection; temperature follows
    /// the day.
    fn waste_bin(&mut self, t: u32) -> Report {
        if self.acc == 0.0 {
            self.acc = 5.0 + 60.0 * self.base;
        }
        self.acc += (0.5 + 2.0 * self.scale) / 4.0 * (1.0 + 0.5 * self.rng.normal()).max(0.0);
        if self.acc > 85.0 + 10.0 * self.rng.unit() {
            self.acc = self.rng.range(2.0, 8.0);
        }
        let temp =
            220.0 + 60.0 * diurnal(t) + self.step_walk(0, 0.05, 4.0) + 3.0 * self.rng.normal();
        Report::WasteBin(WasteBin {
            fill_pct: self.acc.round().clamp(0.0, 100.0) as u8,
            temperature_dc: temp.round() as i16,
            tilt_deg: if self.rng.chance(0.01) {
                3
            } else {
                (self.base * 2.0) as u8
            },
        })
    }

    /// A still cover with sensor noise, well water following the rain, trace gas.
    fn manhole(&mut self, t: u32, rain: &[Rain]) -> Report {
        let tilt = 40.0 * (self.base - 0.5) + 2.0 * self.rng.normal();
        let water = 300.0 * self.scale + 2.0 * rain_mm(rain, t) + 3.0 * self.rng.normal();
        let gas = 2.0 + self.step_walk(0, 0.05, 0.6).abs() + self.rng.unit();
        Report::Manhole(Manhole {
            tilt_cdeg: tilt.round() as i16,
            water_mm: water.round().clamp(0.0, 10_000.0) as u16,
            gas_ppm: gas.round() as u16,
        })
    }

    /// The hourly battery report: a slow discharge with measurement noise.
    pub(crate) fn battery(&mut self) -> Report {
        self.battery_mv -= self.rng.range(0.5, 2.0);
        let mv = self.battery_mv + 4.0 * self.rng.normal();
        let pct = ((mv - 3_300.0) / 9.0).clamp(0.0, 100.0);
        Report::Battery(Battery {
            millivolts: mv.round() as u16,
            percent: pct.round() as u8,
        })
    }
}
