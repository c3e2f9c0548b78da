//! The fall detector against the synthetic scenarios: falls are reported, a cancelled
//! fall is not, the look-alikes never are — over many seeds, both sample rates and both
//! sensor ranges.

use linli_firmware::fall::scenario::{Kind, Rng, Scenario};
use linli_firmware::fall::{Config, Detector, Event, Phase, Range};

/// How samples reach the detector.
#[derive(Debug, Clone, Copy)]
enum Feed {
    /// Milli-g straight from the scenario.
    Mg,
    /// Through the sensor's raw counts at this range (quantised, clipped).
    Raw(Range),
}

const FEEDS: [Feed; 3] = [Feed::Mg, Feed::Raw(Range::G8), Feed::Raw(Range::G16)];

/// Runs `sc` through a detector with `cfg`, pressing cancel when the scenario says.
fn run(sc: Scenario, cfg: Config, feed: Feed) -> Vec<(u64, Event)> {
    traced(sc, cfg, feed).0
}

/// [`run`], and whether the detector got as far as an impact after a free fall.
fn traced(sc: Scenario, cfg: Config, feed: Feed) -> (Vec<(u64, Event)>, bool) {
    let mut det = Detector::new(cfg);
    let mut candidate = false;
    let mut cancel_at = sc.cancel_at_ms();
    let mut events = Vec::new();
    for (t, mg) in sc {
        if let Some(c) = cancel_at.filter(|c| *c <= t) {
            events.extend(det.cancel(c).map(|e| (c, e)));
            cancel_at = None;
        }
        let e = match feed {
            Feed::Mg => det.sample(t, mg),
            Feed::Raw(range) => det.sample_raw(t, range.to_raw(mg), range),
        };
        events.extend(e.map(|e| (t, e)));
        candidate |= det.phase() == Phase::PostImpact;
    }
    (events, candidate)
}

fn kinds(events: &[(u64, Event)]) -> Vec<Event> {
    events.iter().map(|(_, e)| *e).collect()
}

/// Whether `events` is the right outcome for `kind`.
fn correct(kind: Kind, events: &[(u64, Event)]) -> bool {
    match (kind, kinds(events).as_slice()) {
        (Kind::Fall, [Event::Impact { impact_mg: a }, Event::Fall { impact_mg: b, .. }]) => a == b,
        (Kind::FallThenCancel, [Event::Impact { .. }, Event::Cancelled]) => true,
        (Kind::Drop, [] | [Event::Dropped { .. }]) => true,
        (_, []) => !matches!(kind, Kind::Fall | Kind::FallThenCancel),
        _ => false,
    }
}

/// Named `fall::…` so that `cargo test -p linli-firmware fall` runs them.
mod fall {
    use super::*;

    #[test]
    fn a_real_fall_gives_impact_then_fall() {
        let sc = Scenario::new(Kind::Fall, 1, 50);
        let hit = sc.impact_at_ms().expect("a fall has an impact");
        let events = run(sc, Config::default(), Feed::Mg);
        let [Event::Impact { impact_mg }, Event::Fall {
            impact_mg: m,
            still_s,
        }] = kinds(&events)[..]
        else {
            panic!("{events:?}");
        };
        let (t1, t2) = (events[0].0, events[1].0);
        assert_eq!(impact_mg, m);
        assert!((2_500..=9_000).contains(&impact_mg), "{impact_mg}");
        assert!(
            t1 > hit && t1 - hit <= 3_000,
            "Impact {} ms after the hit",
            t1 - hit
        );
        // 10 s of stillness, then the 30 s window; the wearer stayed still throughout.
        assert!(
            (40_000..=42_000).contains(&(t2 - hit)),
            "Fall {} ms after",
            t2 - hit
        );
        assert!((39..=41).contains(&still_s), "still_s {still_s}");
    }

    #[test]
    fn a_fall_the_wearer_cancels_gives_impact_then_cancelled() {
        for seed in 0..10 {
            let sc = Scenario::new(Kind::FallThenCancel, seed, 100);
            let cancel = sc.cancel_at_ms().expect("a cancel");
            let events = run(sc, Config::default(), Feed::Mg);
            assert!(
                matches!(kinds(&events)[..], [Event::Impact { .. }, Event::Cancelled]),
                "seed {seed}: {events:?}"
            );
            assert_eq!(events[1].0, cancel);
        }
    }

    #[test]
    fn look_alikes_report_nothing_but_a_drop() {
        for kind in [
            Kind::Stand,
            Kind::Walk,
            Kind::SitHard,
            Kind::Jog,
            Kind::LieDown,
        ] {
            let events = run(Scenario::new(kind, 7, 50), Config::default(), Feed::Mg);
            assert_eq!(events, [], "{kind:?}");
        }
        let events = run(
            Scenario::new(Kind::Drop, 7, 50),
            Config::default(),
            Feed::Mg,
        );
        assert!(
            matches!(kinds(&events)[..], [Event::Dropped { impact_mg }] if impact_mg >= 6_000),
            "{events:?}"
        );
    }

    #[test]
    fn seed_sweep_has_no_misses_and_no_false_alarms() {
        let mut misses = 0; // a fall not reported, or a cancel not honoured
        let mut false_alarms = 0; // Impact or Fall for a look-alike
        let mut drops_seen = 0;
        let mut runs = 0;
        let mut candidates = [0; Kind::ALL.len()]; // free fall + impact seen
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            for seed in 0..50 {
                for rate in [50, 100] {
                    for feed in FEEDS {
                        let sc = Scenario::new(kind, seed, rate);
                        let (events, candidate) = traced(sc, Config::default(), feed);
                        runs += 1;
                        candidates[k] += usize::from(candidate);
                        drops_seen +=
                            usize::from(matches!(events[..], [(_, Event::Dropped { .. })]));
                        if correct(kind, &events) {
                            continue;
                        }
                        eprintln!("{kind:?} seed {seed} {rate} Hz {feed:?}: {events:?}");
                        match kind {
                            Kind::Fall | Kind::FallThenCancel => misses += 1,
                            _ => false_alarms += 1,
                        }
                    }
                }
            }
        }
        println!(
            "{runs} runs: {misses} misses, {false_alarms} false alarms, \
             {drops_seen} of 300 drops recognised as drops"
        );
        for (kind, n) in Kind::ALL.iter().zip(candidates) {
            println!("{kind:?}: {n} of 300 runs passed free fall + impact");
        }
        assert_eq!((misses, false_alarms), (0, 0));
        // The look-alikes reach the later rules, not only the free-fall gate.
        let reached = |kind| candidates[Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)];
        assert!(
            reached(Kind::SitHard) > 0 && reached(Kind::Jog) > 0,
            "{candidates:?}"
        );
    }

    #[test]
    fn a_clipping_8g_range_still_sees_a_hard_fall() {
        let sc = Scenario::new(Kind::Fall, 3, 100).with_impact_mg(12_000);
        let events = run(sc.clone(), Config::default(), Feed::Raw(Range::G8));
        let [Event::Impact { impact_mg }, Event::Fall { .. }] = kinds(&events)[..] else {
            panic!("{events:?}");
        };
        // One axis pinned at 8188 mg; the others add a little.
        assert!((8_000..=9_500).contains(&impact_mg), "{impact_mg}");
        let events = run(sc, Config::default(), Feed::Raw(Range::G16));
        let [Event::Impact { impact_mg }, Event::Fall { .. }] = kinds(&events)[..] else {
            panic!("{events:?}");
        };
        assert!(impact_mg > 10_000, "{impact_mg}");
    }

    #[test]
    fn thresholds_are_per_site() {
        let soft = |seed| Scenario::new(Kind::Fall, seed, 50).with_impact_mg(1_900);
        let sensitive = Config {
            impact_mg: 1_600,
            ..Config::default()
        };
        for seed in 0..20 {
            assert_eq!(
                run(soft(seed), Config::default(), Feed::Mg),
                [],
                "seed {seed}"
            );
            let events = run(soft(seed), sensitive, Feed::Mg);
            assert!(
                matches!(
                    kinds(&events)[..],
                    [Event::Impact { .. }, Event::Fall { .. }]
                ),
                "seed {seed}: {events:?}"
            );
        }
    }

    #[test]
    fn a_cancel_after_the_window_is_too_late() {
        let sc = Scenario::new(Kind::Fall, 5, 50);
        let mut det = Detector::new(Config::default());
        let mut fall_at = None;
        let mut window_seen = None;
        for (t, mg) in sc {
            if det
                .sample(t, mg)
                .is_some_and(|e| matches!(e, Event::Fall { .. }))
            {
                fall_at = Some(t);
            }
            if det.phase() == Phase::CancelWindow {
                window_seen.get_or_insert(t);
            }
        }
        let (open, fall) = (window_seen.expect("window"), fall_at.expect("fall"));
        assert_eq!(fall - open, 30_000);
        assert_eq!(det.cancel(fall + 1), None);
    }

    #[test]
    fn any_stream_and_any_clock_are_survived() {
        let mut r = Rng::new(99);
        let mut det = Detector::new(Config::default());
        let mut t = u64::MAX - 5_000_000;
        for i in 0..200_000u32 {
            let a = [(); 3].map(|_| r.next_u32() as i16);
            // Mostly forward, sometimes backwards, sometimes stuck, near the end of time.
            t = match r.next_u32() % 8 {
                0 => t.saturating_sub(u64::from(r.next_u32() % 10_000)),
                1 => t,
                _ => t.saturating_add(u64::from(r.next_u32() % 100)),
            };
            let _ = det.sample(t, a);
            if i % 997 == 0 {
                let _ = det.cancel(t);
            }
        }
        // Extremes: full-scale vectors and silence.
        for a in [[i16::MIN; 3], [i16::MAX; 3], [0; 3]] {
            for k in 0..100 {
                let _ = det.sample(u64::MAX - 100 + k, a);
            }
        }
        det.reset();
        assert_eq!(det.phase(), Phase::Idle);
        // After a reset it works as new.
        let events = run(
            Scenario::new(Kind::Fall, 2, 50),
            Config::default(),
            Feed::Mg,
        );
        assert!(correct(Kind::Fall, &events), "{events:?}");
    }

    #[test]
    fn scenarios_are_deterministic_per_seed() {
        let a: Vec<_> = Scenario::new(Kind::Drop, 11, 100).collect();
        let b: Vec<_> = Scenario::new(Kind::Drop, 11, 100).collect();
        let c: Vec<_> = Scenario::new(Kind::Drop, 12, 100).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 6_000);
        assert_eq!(a[1].0 - a[0].0, 10);
    }

    #[test]
    fn range_conversions_round_trip_and_clip() {
        assert_eq!(Range::G8.to_mg([16, -16, 0x7ff0]), [4, -4, 8_188]);
        assert_eq!(
            Range::G16.to_mg([16, i16::MIN, 0x7ff0]),
            [12, -24_576, 24_564]
        );
        assert_eq!(
            Range::G8.to_raw([1_000, -9_000, 9_000]),
            [4_000, i16::MIN, 0x7ff0]
        );
        assert_eq!(Range::G16.to_raw([1_000, 5, -6]), [83 * 16, 0, -16]);
        for mg in [-8_000i16, -1_001, 0, 3, 997, 8_000] {
            let back = Range::G8.to_mg(Range::G8.to_raw([mg; 3]))[0];
            assert!((back - mg).abs() <= 2, "{mg} -> {back}");
        }
    }

    /// Upright, a free fall, a 4 g impact, then still at `deg` from upright.
    fn tilted_fall(deg: f64) -> impl Iterator<Item = (u64, [i16; 3])> {
        let (s, c) = deg.to_radians().sin_cos();
        let lying = [0, (c * 1_000.0) as i16, (s * 1_000.0) as i16];
        (0..2_500u64).map(move |i| {
            let t = i * 20;
            let a = match t {
                0..3_000 => [0, 1_000, 0],
                3_000..3_300 => [0, 300, 0],
                3_300..3_360 => [0, 4_000, 0],
                _ => lying,
            };
            (t, a)
        })
    }

    #[test]
    fn the_posture_must_turn_more_than_min_tilt() {
        for (deg, fall) in [
            (0.0, false),
            (40.0, false),
            (48.0, false),
            (53.0, true),
            (90.0, true),
            (180.0, true),
        ] {
            let mut det = Detector::new(Config::default());
            let events: Vec<_> = tilted_fall(deg)
                .filter_map(|(t, a)| det.sample(t, a))
                .collect();
            let want: &[_] = if fall {
                &[
                    Event::Impact { impact_mg: 4_000 },
                    Event::Fall {
                        impact_mg: 4_000,
                        still_s: 40,
                    },
                ]
            } else {
                &[]
            };
            assert_eq!(events, want, "{deg}°");
        }
    }
}
