//! The vitals estimator against the synthetic PPG: accuracy over a grid of heart rates,
//! saturations and sample rates; no finger; motion; a change of rate mid-stream; hostile
//! input. Run with `--nocapture` to see the worst errors.

use linli_firmware::vitals::synth::{self, Artefact, Episode, Synth};
use linli_firmware::vitals::{Config, Vitals, VitalsEstimator};

/// Tolerances of the brief.
const HR_TOL: i32 = 3;
const SPO2_TOL: i32 = 2;
/// Reports from here on must carry estimates (warm-up allowance), ms.
const SETTLED_MS: u64 = 12_000;

/// Runs `secs` s of a synthetic signal through an estimator at the same rate; `script`
/// may change the signal at each sample time. The reports with their times.
fn run(
    cfg: synth::Config,
    secs: u64,
    mut script: impl FnMut(u64, &mut synth::Config),
) -> Vec<(u64, Vitals)> {
    let fs = cfg.sample_rate_hz;
    let mut syn = Synth::new(cfg);
    let mut est = VitalsEstimator::new(Config {
        sample_rate_hz: fs,
        ..Config::default()
    });
    let mut out = Vec::new();
    for _ in 0..secs * u64::from(fs) {
        let s = syn.sample();
        script(s.t_ms, syn.config_mut());
        if let Some(v) = est.push(s.t_ms, s.red, s.ir) {
            out.push((s.t_ms, v));
        }
    }
    out
}

fn signal(fs: u16, hr: f32, spo2: f32, seed: u64) -> synth::Config {
    synth::Config {
        sample_rate_hz: fs,
        heart_rate_bpm: hr,
        spo2_pct: spo2,
        seed,
        ..synth::Config::default()
    }
}

fn episode(from_ms: u64, until_ms: u64, artefact: Artefact) -> Episode {
    Episode {
        from_ms,
        until_ms,
        artefact,
    }
}

fn hr_err(v: &Vitals, hr: f32) -> i32 {
    i32::from(v.heart_rate_bpm) - hr.round() as i32
}

fn spo2_err(v: &Vitals, spo2: f32) -> i32 {
    i32::from(v.spo2_pct) - spo2.round() as i32
}

/// Suppressed (quality below the gate, no estimates) or within tolerance.
fn suppressed_or_right(v: &Vitals, hr: f32, spo2: f32) -> bool {
    let suppressed = v.quality < Config::default().min_quality
        && *v
            == Vitals {
                quality: v.quality,
                ..Vitals::default()
            };
    let hr_ok = v.heart_rate_bpm == 0 || hr_err(v, hr).abs() <= HR_TOL;
    let spo2_ok = v.spo2_pct == 0 || spo2_err(v, spo2).abs() <= SPO2_TOL;
    suppressed || (hr_ok && spo2_ok)
}

#[test]
fn vitals_grid_of_rates_and_saturations_within_tolerance() {
    let (mut worst_hr, mut worst_spo2, mut min_q, mut latest_first) = (0, 0, 100, 0);
    for fs in [50, 100] {
        for hr in [45.0, 60.0, 90.0, 120.0, 160.0] {
            for spo2 in [88.0, 94.0, 98.0] {
                for seed in 1..=3 {
                    let reports = run(signal(fs, hr, spo2, seed), 40, |_, _| {});
                    let first = reports
                        .iter()
                        .find(|(_, v)| v.heart_rate_bpm > 0)
                        .map(|r| r.0);
                    latest_first = latest_first.max(first.unwrap_or(u64::MAX));
                    for (t, v) in reports.iter().filter(|(t, _)| *t >= SETTLED_MS) {
                        let (eh, es) = (hr_err(v, hr), spo2_err(v, spo2));
                        assert!(
                            v.quality >= 50 && eh.abs() <= HR_TOL && es.abs() <= SPO2_TOL,
                            "{fs} Hz, {hr} bpm, {spo2} %, seed {seed}, t {t}: {v:?}"
                        );
                        worst_hr = if eh.abs() > i32::abs(worst_hr) {
                            eh
                        } else {
                            worst_hr
                        };
                        worst_spo2 = if es.abs() > i32::abs(worst_spo2) {
                            es
                        } else {
                            worst_spo2
                        };
                        min_q = min_q.min(v.quality);
                    }
                }
            }
        }
    }
    println!(
        "grid: worst heart-rate error {worst_hr} bpm, worst SpO2 error {worst_spo2} %, \
         lowest quality {min_q}, first estimate at the latest {latest_first} ms"
    );
    assert!(
        latest_first <= 10_000,
        "first estimate only at {latest_first} ms"
    );
}

#[test]
fn vitals_low_perfusion_and_wander_degrade_gracefully() {
    // Hard but plausible signals: whatever is reported stays near the truth (within
    // ±3 for SpO2 at the lowest qualities), the rest is withheld.
    let hard = [
        (0.3, 20.0, 0.3),
        (0.3, 20.0, 1.0),
        (0.2, 40.0, 0.3),
        (0.5, 20.0, 2.0),
    ];
    let (mut reported, mut total) = (0, 0);
    for (perfusion_pct, noise_counts, wander) in hard {
        for fs in [50, 100] {
            for hr in [45.0, 90.0, 160.0] {
                let cfg = synth::Config {
                    perfusion_pct,
                    noise_counts,
                    wander,
                    ..signal(fs, hr, 92.0, 7)
                };
                for (t, v) in run(cfg, 40, |_, _| {})
                    .iter()
                    .filter(|(t, _)| *t >= SETTLED_MS)
                {
                    total += 1;
                    reported += usize::from(v.spo2_pct > 0);
                    assert!(
                        v.heart_rate_bpm == 0 || hr_err(v, hr).abs() <= HR_TOL,
                        "t {t}: {v:?}"
                    );
                    assert!(
                        v.spo2_pct == 0 || spo2_err(v, 92.0).abs() <= 3,
                        "t {t}: {v:?}"
                    );
                    assert!((v.heart_rate_bpm > 0) == (v.quality >= 50), "t {t}: {v:?}");
                }
            }
        }
    }
    println!("hard signals: SpO2 reported in {reported} of {total} reports");
}

#[test]
fn vitals_no_finger_gives_quality_zero_and_no_estimates() {
    let cfg = synth::Config {
        finger: false,
        ..signal(100, 70.0, 97.0, 1)
    };
    let reports = run(cfg, 20, |_, _| {});
    assert_eq!(reports.len(), 19);
    assert!(
        reports.iter().all(|(_, v)| *v == Vitals::default()),
        "{reports:?}"
    );

    // Lifted at 20 s, back at 30 s.
    let mut cfg = signal(100, 70.0, 97.0, 2);
    cfg.episodes[0] = Some(episode(20_000, 30_000, Artefact::NoFinger));
    let reports = run(cfg, 45, |_, _| {});
    for (t, v) in &reports {
        match t {
            12_000..=20_000 => assert!(
                v.quality >= 50 && hr_err(v, 70.0).abs() <= HR_TOL,
                "t {t}: {v:?}"
            ),
            20_001..=30_000 => assert_eq!(*v, Vitals::default(), "t {t}"),
            40_000.. => assert!(
                v.quality >= 50 && spo2_err(v, 97.0).abs() <= SPO2_TOL,
                "t {t}: {v:?}"
            ),
            _ => {}
        }
    }
}

#[test]
fn vitals_heavy_motion_lowers_quality_and_suppresses_estimates() {
    // Clean for 15 s, heavy motion (swings of 5 and 10 pulse depths) for 30 s, clean again.
    // While the window holds clean beats a report may still carry estimates, but only
    // right ones; once the window is all motion (8 s in), every report is suppressed:
    // quality below `min_quality` (50) and no estimates.
    for motion in [5.0, 10.0] {
        for fs in [50, 100] {
            for hr in [60.0, 120.0] {
                for seed in 1..=3 {
                    let mut cfg = signal(fs, hr, 96.0, seed);
                    cfg.episodes[0] = Some(episode(15_000, 45_000, Artefact::Motion(motion)));
                    let reports = run(cfg, 65, |_, _| {});
                    for (t, v) in &reports {
                        let ctx = format!("motion {motion}, {fs} Hz, {hr} bpm, seed {seed}, t {t}");
                        assert!(suppressed_or_right(v, hr, 96.0), "{ctx}: {v:?}");
                        if (23_000..=45_000).contains(t) {
                            assert!(
                                v.quality < 50 && v.heart_rate_bpm == 0 && v.spo2_pct == 0,
                                "{ctx}: {v:?}"
                            );
                        }
                        if *t >= 57_000 {
                            assert!(
                                v.quality >= 50 && v.spo2_pct > 0,
                                "{ctx}: {v:?} (after motion)"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn vitals_motion_bursts_are_suppressed_or_do_not_bend_the_numbers() {
    // 2 s of heavy motion every 10 s: each report is suppressed or within tolerance.
    let mut suppressed = 0;
    for fs in [50, 100] {
        for hr in [50.0, 80.0, 140.0] {
            let script = |t: u64, c: &mut synth::Config| {
                c.motion = if t % 10_000 < 2_000 { 8.0 } else { 0.0 }
            };
            for (t, v) in run(signal(fs, hr, 95.0, 3), 60, script) {
                assert!(
                    suppressed_or_right(&v, hr, 95.0),
                    "{fs} Hz, {hr} bpm, t {t}: {v:?}"
                );
                suppressed += usize::from(v.heart_rate_bpm == 0 && t >= SETTLED_MS);
            }
        }
    }
    println!("motion bursts: {suppressed} reports suppressed");
}

#[test]
fn vitals_heart_rate_change_is_followed_within_a_window() {
    // Steps at 20 s; the window is 8 s, so from 29 s on the new rate must be reported.
    for fs in [50, 100] {
        for (from, to) in [(60.0, 120.0), (120.0, 70.0), (90.0, 150.0), (150.0, 50.0)] {
            let script = |t: u64, c: &mut synth::Config| {
                c.heart_rate_bpm = if t < 20_000 { from } else { to }
            };
            let reports = run(signal(fs, from, 97.0, 5), 40, script);
            for (t, v) in &reports {
                if *t >= 29_000 {
                    assert!(
                        v.quality >= 50 && hr_err(v, to).abs() <= HR_TOL,
                        "{fs} Hz {from}→{to}, t {t}: {v:?}"
                    );
                } else if *t >= SETTLED_MS {
                    let near = |hr: f32| hr_err(v, hr).abs() <= HR_TOL;
                    assert!(
                        v.heart_rate_bpm == 0 || near(from) || near(to),
                        "{fs} Hz {from}→{to}, t {t}: {v:?}"
                    );
                }
            }
            let first = reports
                .iter()
                .find(|(t, v)| *t > 20_000 && hr_err(v, to).abs() <= HR_TOL);
            println!(
                "{fs} Hz {from}→{to} bpm: followed at {:?} ms",
                first.map(|r| r.0)
            );
        }
    }
}

#[test]
fn vitals_respiration_from_baseline_wander() {
    let mut errs = Vec::new();
    for fs in [50, 100] {
        // At least three beats a breath, or the estimate is withheld (aliasing).
        for hr in [66.0, 90.0, 120.0] {
            for resp in [12.0, 15.0, 20.0] {
                let cfg = synth::Config {
                    respiration_bpm: resp,
                    ..signal(fs, hr, 97.0, 11)
                };
                let late: Vec<_> = run(cfg, 60, |_, _| {})
                    .into_iter()
                    .filter(|(t, _)| *t >= 40_000)
                    .collect();
                let estimated = late.iter().filter(|(_, v)| v.respiration_bpm > 0).count();
                assert!(
                    estimated * 2 >= late.len(),
                    "{fs} Hz {hr} bpm {resp}/min: {late:?}"
                );
                for (t, v) in late.iter().filter(|(_, v)| v.respiration_bpm > 0) {
                    let e = i32::from(v.respiration_bpm) - resp as i32;
                    assert!(e.abs() <= 2, "{fs} Hz {hr} bpm {resp}/min, t {t}: {v:?}");
                    errs.push(e);
                }
            }
        }
    }
    println!(
        "respiration: worst error {:?} breaths/min",
        errs.iter().max_by_key(|e| e.abs())
    );
}

#[test]
fn vitals_reports_come_every_interval_and_time_jumps_restart() {
    let mut syn = Synth::new(signal(100, 75.0, 97.0, 9));
    let mut est = VitalsEstimator::new(Config::default());
    let mut times = Vec::new();
    for _ in 0..2_000 {
        let s = syn.sample();
        if est.push(s.t_ms, s.red, s.ir).is_some() {
            times.push(s.t_ms);
        }
    }
    assert_eq!(times, (1..=19).map(|k| k * 1_000).collect::<Vec<_>>());
    assert!(est.latest().heart_rate_bpm > 0);
    // A gap of a second drops the beats: the next report has no estimate.
    let s = syn.sample();
    let v = est
        .push(s.t_ms + 1_000, s.red, s.ir)
        .expect("a report is overdue");
    assert_eq!(v, Vitals::default());
    // Time going backwards starts afresh.
    assert_eq!(est.push(5, s.red, s.ir), None);
}

/// Makes one (red, IR) pair from the sample index and a generator.
type Input = fn(u64, &mut Lcg) -> (u32, u32);

/// A small deterministic generator for hostile input.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
}

#[test]
fn vitals_never_panics_on_arbitrary_input() {
    let configs = [
        Config::default(),
        Config {
            sample_rate_hz: 50,
            ..Config::default()
        },
        Config {
            sample_rate_hz: 0,
            report_interval_ms: 0,
            window_ms: 0,
            min_beats: 0,
            ..Config::default()
        },
        Config {
            sample_rate_hz: u16::MAX,
            refractory_ms: u32::MAX,
            max_interval_ms: u32::MAX,
            ..Config::default()
        },
        Config {
            finger_ir_min: 0,
            saturation: u32::MAX,
            min_quality: 0,
            min_beats: 255,
            ..Config::default()
        },
    ];
    for cfg in configs {
        let inputs: [(&str, Input); 5] = [
            ("zeros", |_, _| (0, 0)),
            ("saturated", |_, _| (0x3FFFF, 0x3FFFF)),
            ("alternating", |k, _| {
                if k % 2 == 0 {
                    (0, 0x3FFFF)
                } else {
                    (0x3FFFF, 0)
                }
            }),
            ("random 18 bits", |_, r| {
                ((r.next() & 0x3FFFF) as u32, (r.next() & 0x3FFFF) as u32)
            }),
            ("random u32", |_, r| (r.next() as u32, r.next() as u32)),
        ];
        for (name, input) in inputs {
            let mut est = VitalsEstimator::new(cfg);
            let mut rng = Lcg(42);
            for k in 0..6_000u64 {
                let (red, ir) = input(k, &mut rng);
                if let Some(v) = est.push(k * 10, red, ir) {
                    if name != "random 18 bits" && name != "random u32" && cfg.finger_ir_min > 0 {
                        assert_eq!(v, Vitals::default(), "{name}: {cfg:?}");
                    }
                }
            }
        }
        // Random times: jumps, repeats, reversals, the end of time.
        let mut est = VitalsEstimator::new(cfg);
        let mut rng = Lcg(7);
        let mut t = 0u64;
        for _ in 0..20_000 {
            t = match rng.next() % 10 {
                0 => rng.next(),
                1 => u64::MAX - rng.next() % 3,
                2 => t.saturating_sub(rng.next() % 1_000),
                _ => t.saturating_add(rng.next() % 30),
            };
            let (red, ir) = ((rng.next() % 300_000) as u32, (rng.next() % 300_000) as u32);
            let _ = est.push(t, red, ir);
        }
    }
}

#[test]
fn vitals_synth_is_deterministic_and_in_range() {
    let cfg = signal(100, 70.0, 95.0, 3);
    let a: Vec<_> = Synth::new(cfg).take(3_000).collect();
    let b: Vec<_> = Synth::new(cfg).take(3_000).collect();
    let c: Vec<_> = Synth::new(synth::Config { seed: 4, ..cfg })
        .take(3_000)
        .collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a
        .iter()
        .all(|s| s.red <= 0x3FFFF && s.ir <= 0x3FFFF && s.ir > 100_000));
    assert_eq!(a[100].t_ms, 1_000);
    let dark = Synth::new(synth::Config {
        finger: false,
        ..cfg
    })
    .take(100)
    .all(|s| s.ir < 5_000);
    assert!(dark);
}
