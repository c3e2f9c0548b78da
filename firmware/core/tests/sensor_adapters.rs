//! End to end on the host: synthetic physics → a virtual chip at register level → the
//! real driver crate → our sensor adapter → the state machine, for the pendant (fall),
//! the street light (lamp failure), the vitals band (PPG), the underpass gauge (water
//! rising) and the waste bin (time of flight).

use core::cell::RefCell;
use embedded_hal_mock::eh1::delay::NoopDelay;
use linli_firmware::fall::scenario::{Kind, Scenario};
use linli_firmware::fall::{Config, Detector, Event, Range};
use linli_firmware::sensors::accel::{Accelerometer, SlaveAddr};
use linli_firmware::sensors::analog::Transducer;
use linli_firmware::sensors::distance::{Distance, Reading};
use linli_firmware::sensors::power::{PowerMonitor, Shunt};
use linli_firmware::sensors::ppg::{self, Ppg};
use linli_firmware::street_light::{self, LampFaults, LampHealth};
use linli_firmware::virtual_sensors::{
    LampModel, Shared, VirtualIna219, VirtualLis3dh, VirtualMax30102, VirtualTransducer,
    VirtualVl53l0x, WaterRise,
};
use linli_firmware::vitals::{self, synth, VitalsEstimator};
use linli_firmware::waste_bin::{self, WasteBin};
use linli_firmware::water_level::{self, WaterGauge, WaterState};

/// Runs `sc` (sampled at 100 Hz, the rate the adapter programs) through a virtual LIS3DH,
/// the lis3dh driver and the adapter into a detector; the events with their times.
fn through_the_chip(sc: Scenario, range: Range) -> Vec<(u64, Event)> {
    let mut cancel_at = sc.cancel_at_ms();
    let chip = VirtualLis3dh::new(0x18, sc);
    let mut acc = Accelerometer::new(chip, SlaveAddr::Default, range).expect("init");
    let mut det = Detector::new(Config::default());
    let mut events = Vec::new();
    let mut t = 0;
    while let Some(mg) = acc.poll_mg().expect("read") {
        if let Some(c) = cancel_at.filter(|c| *c <= t) {
            events.extend(det.cancel(c).map(|e| (c, e)));
            cancel_at = None;
        }
        events.extend(det.sample(t, mg).map(|e| (t, e)));
        t += 10;
    }
    assert_eq!(t, 60_000, "the whole minute came through");
    events
}

/// The same stream fed as raw counts straight from the scenario.
fn direct(sc: Scenario, range: Range) -> Vec<(u64, Event)> {
    let mut det = Detector::new(Config::default());
    sc.filter_map(|(t, mg)| det.sample_raw(t, range.to_raw(mg), range).map(|e| (t, e)))
        .collect()
}

fn kinds(events: &[(u64, Event)]) -> Vec<Event> {
    events.iter().map(|(_, e)| *e).collect()
}

#[test]
fn a_fall_through_the_virtual_lis3dh_is_reported() {
    for seed in 0..5 {
        for range in [Range::G8, Range::G16] {
            let events = through_the_chip(Scenario::new(Kind::Fall, seed, 100), range);
            assert!(
                matches!(
                    kinds(&events)[..],
                    [Event::Impact { .. }, Event::Fall { .. }]
                ),
                "seed {seed} {range:?}: {events:?}"
            );
        }
    }
}

#[test]
fn look_alikes_through_the_virtual_lis3dh_are_not_falls() {
    for seed in 0..5 {
        for range in [Range::G8, Range::G16] {
            let sit = through_the_chip(Scenario::new(Kind::SitHard, seed, 100), range);
            assert_eq!(sit, [], "sitting down hard, seed {seed} {range:?}");
            let drop = through_the_chip(Scenario::new(Kind::Drop, seed, 100), range);
            assert!(
                matches!(kinds(&drop)[..], [] | [Event::Dropped { .. }]),
                "dropped pendant, seed {seed} {range:?}: {drop:?}"
            );
        }
    }
}

#[test]
fn the_chip_path_equals_the_raw_count_path() {
    for kind in [Kind::Fall, Kind::Drop, Kind::Jog, Kind::SitHard] {
        let sc = Scenario::new(kind, 42, 100);
        assert_eq!(
            through_the_chip(sc.clone(), Range::G8),
            direct(sc, Range::G8),
            "{kind:?}"
        );
    }
    let cancelled = through_the_chip(Scenario::new(Kind::FallThenCancel, 3, 100), Range::G16);
    assert!(
        matches!(
            kinds(&cancelled)[..],
            [Event::Impact { .. }, Event::Cancelled]
        ),
        "{cancelled:?}"
    );
}

/// A night of a street light (relay closed from t = 0), sampled once a minute through a
/// virtual INA219; the fault decisions with their times.
fn night(lamp: LampModel, relay: impl Fn(u64) -> bool) -> Vec<(u64, LampHealth)> {
    let chip = RefCell::new(VirtualIna219::new(0x40, 100_000, lamp));
    let shunt = Shunt {
        r_shunt_uohm: 100_000,
        max_current_ma: 3_200,
    };
    let mut pm = PowerMonitor::new(Shared(&chip), 0x40, shunt).expect("init");
    let mut faults = LampFaults::new(street_light::Config::default());
    let mut changes = Vec::new();
    for minute in 0..120 {
        let t = minute * 60_000;
        let on = relay(t);
        {
            let mut chip = chip.borrow_mut();
            chip.source_mut().set_time(t);
            chip.source_mut().set_relay(on);
        }
        let s = pm.measure().expect("read").expect("a conversion");
        changes.extend(faults.sample(on, s.lamp_current_ma()).map(|h| (t, h)));
    }
    changes
}

#[test]
fn a_lamp_failing_at_night_is_seen_dark_through_the_virtual_ina219() {
    let healthy = night(LampModel::new(24_000, 430), |_| true);
    assert_eq!(healthy, []);
    let fails = night(LampModel::new(24_000, 430).failing_at(3_600_000), |_| true);
    // The third dark sample in a row decides.
    assert_eq!(fails, [(3_720_000, LampHealth::Dark)]);
    // Switched off at dawn (t = 1 h), the relay welded at 1.5 h: it burns by day.
    let welded = night(LampModel::new(24_000, 430).welding_at(5_400_000), |t| {
        t < 3_600_000
    });
    assert_eq!(welded, [(5_520_000, LampHealth::BurningWhileOff)]);
}

#[test]
fn vitals_through_the_virtual_max30102_are_within_tolerance() {
    for (hr, spo2, seed) in [(72.0, 97.0, 1), (48.0, 92.0, 2), (110.0, 99.0, 3)] {
        let signal = synth::Config {
            heart_rate_bpm: hr,
            spo2_pct: spo2,
            seed,
            ..synth::Config::default()
        };
        let chip = RefCell::new(VirtualMax30102::new(synth::Synth::new(signal)));
        let cfg = ppg::Config::default();
        let mut sensor = Ppg::new(Shared(&chip), cfg, &mut NoopDelay).expect("init");
        let fs = sensor.sample_rate_hz();
        let mut est = VitalsEstimator::new(vitals::Config {
            sample_rate_hz: fs,
            ..vitals::Config::default()
        });
        let (mut k, mut last) = (0u64, None);
        let mut pairs = [(0, 0); 32];
        // 30 s, the FIFO drained every 100 ms like the band's loop would.
        for _ in 0..300 {
            chip.borrow_mut().elapse_ms(100);
            let n = sensor.read(&mut pairs).expect("read");
            for &(red, ir) in &pairs[..n] {
                last = est.push(k * 1_000 / u64::from(fs), red, ir).or(last);
                k += 1;
            }
        }
        assert_eq!(k, 3_000);
        let v = last.expect("reports");
        assert!(
            (i32::from(v.heart_rate_bpm) - hr as i32).abs() <= 3
                && (i32::from(v.spo2_pct) - spo2 as i32).abs() <= 2,
            "{hr} bpm {spo2} %: {v:?}"
        );
    }
}

#[test]
fn rising_water_is_flagged_through_the_virtual_transducer() {
    let t = Transducer::current_loop(150, 1_000);
    let water = WaterRise {
        base_mm: 20,
        from_ms: 600_000,
        mm_per_min: 15,
        max_mm: 1_000,
    };
    let mut adc = VirtualTransducer::new(t, water);
    let mut gauge = WaterGauge::new(water_level::Config::default());
    let mut rising_at = None;
    for step in 0..180u64 {
        let now = step * 10_000;
        adc.set_time(now);
        let mm = t.read_mm(&mut adc).expect("in range");
        let c = gauge.sample(mm, now);
        if c.rising_fast == Some(true) {
            rising_at.get_or_insert((now, mm));
        }
    }
    let (when, level) = rising_at.expect("flagged");
    assert!(when > 600_000 && level < 150, "{when} ms at {level} mm");
    assert_eq!(gauge.state(), WaterState::Alarm);
    adc.broken = true;
    assert!(
        t.read_mm(&mut adc).is_err(),
        "a cut loop is a fault, not dry"
    );
}

#[test]
fn a_filling_bin_through_the_virtual_vl53l0x() {
    // The rubbish rises 10 mm a reading from the bottom of a 1 m bin; one lost echo.
    let mut k = 0u16;
    let source = move || {
        k += 1;
        (k != 7).then(|| 1_000u16.saturating_sub(k * 10))
    };
    let mut tof = Distance::new(VirtualVl53l0x::new(source)).expect("init");
    let mut bin = WasteBin::new(waste_bin::Config::default());
    let mut reports = Vec::new();
    tof.start_continuous().expect("start");
    for _ in 0..40 {
        match tof.read_continuous().expect("range") {
            Reading::Mm(mm) => reports.extend(bin.distance(mm)),
            Reading::NoTarget => {}
        }
    }
    assert_eq!(reports.first(), Some(&3), "first window: ~970 mm");
    assert!(reports.windows(2).all(|w| w[1] >= w[0] + 5), "{reports:?}");
    // Last report: 5 % steps behind a median that lags two readings (≤ 44 % at 620 mm).
    assert_eq!(reports.last(), Some(&40), "{reports:?}");
}
