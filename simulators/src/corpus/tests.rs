//! Corpus tests: determinism, rates, size.

use super::*;

fn small(seed: u64) -> Corpus {
    Corpus::new(CorpusConfig {
        devices: 40,
        span_s: 2 * 3600,
        end_s: DEFAULT_END_S,
        seed,
    })
    .unwrap()
}

fn digest(c: &Corpus) -> (u64, Vec<String>) {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut first = Vec::new();
    c.for_each(|it| {
        let line = format!("{} {} {:?}", it.device.id, it.time_ms, it.report);
        for b in line.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        if first.len() < 50 {
            first.push(line);
        }
    });
    (h, first)
}

#[test]
fn same_seed_same_corpus_other_seed_other_values() {
    assert_eq!(digest(&small(7)), digest(&small(7)));
    assert_ne!(digest(&small(7)).0, digest(&small(8)).0);
}

#[test]
fn items_in_time_order_within_span_whole_seconds() {
    let c = small(1);
    let (lo, hi) = (
        i64::from(c.start_s()) * 1000,
        i64::from(DEFAULT_END_S) * 1000,
    );
    let mut last = i64::MIN;
    c.for_each(|it| {
        assert!(it.time_ms >= last, "out of order");
        assert!((lo..hi).contains(&it.time_ms));
        assert_eq!(it.time_ms % 1000, 0);
        assert!(it.report.allowed_for(it.device.kind));
        last = it.time_ms;
    });
}

#[test]
fn every_kind_reports_at_its_advertised_rate() {
    let c = small(3);
    let span = 2 * 3600;
    let mut main = vec![0u32; c.devices().len()];
    let mut battery = vec![0u32; c.devices().len()];
    let mut last = vec![0i64; c.devices().len()];
    c.for_each(|it| {
        let i = it.device.index;
        if matches!(it.report, Report::Battery(_)) {
            battery[i] += 1;
            return;
        }
        if main[i] > 0 {
            let gap = (it.time_ms - last[i]) / 1000;
            let p = i64::from(it.device.period_s);
            assert!((p - 1..=p + 1).contains(&gap), "{} gap {gap}", it.device.id);
        }
        main[i] += 1;
        last[i] = it.time_ms;
    });
    for d in c.devices() {
        let expect = span / period_s(d.kind);
        let n = main[d.index];
        assert!(
            n.abs_diff(expect) <= 1,
            "{}: {n} reports, expected {expect}",
            d.id
        );
        let b = if d.battery {
            span / BATTERY_PERIOD_S
        } else {
            0
        };
        assert_eq!(battery[d.index], b, "{} battery", d.id);
    }
    assert_eq!(period_s(DeviceKind::Vitals), 5);
    assert_eq!(period_s(DeviceKind::StreetLight), 300);
    assert_eq!(period_s(DeviceKind::WaterLevel), 60);
}

#[test]
fn default_size_is_at_least_ten_million_points_over_a_thousand_series() {
    let s = Corpus::new(CorpusConfig::default()).unwrap().stats();
    assert!(s.points >= 10_000_000, "{s}");
    assert!(s.series >= 1_000, "{s}");
    assert_eq!(s.devices, 1_000);
    assert_eq!(s.end_s - s.start_s, 86_400);
}

#[test]
fn readings_are_decimal_drifting_and_quantized() {
    let c = small(5);
    let (mut levels, mut lamp_on, mut lamp_off) = (Vec::new(), 0, 0);
    c.for_each(|it| match it.report {
        Report::WaterLevel(w) if it.device.index == 2 => levels.push(w.level_mm),
        Report::StreetLight(l) => {
            if l.relay_on {
                lamp_on += 1
            } else {
                lamp_off += 1
            }
        }
        _ => {}
    });
    // The window 22:00..24:00 UTC is 06:00..08:00 local: lamps switch off at dawn.
    assert!(lamp_on > 0 && lamp_off > 0, "{lamp_on} on, {lamp_off} off");
    let distinct: std::collections::BTreeSet<_> = levels.iter().collect();
    assert!(distinct.len() > 5, "water level should move: {distinct:?}");
    let mut metric = None;
    c.for_each(|it| {
        if let Report::WaterLevel(_) = it.report {
            it.report.for_each_metric(&mut |_, v| metric = Some(v));
        }
    });
    let v = metric.unwrap();
    assert_eq!(
        (v * 1000.0).round() / 1000.0,
        v,
        "millimetres as metres: {v}"
    );
}

#[test]
fn rejects_empty_and_overlong() {
    let cfg = CorpusConfig {
        devices: 0,
        ..CorpusConfig::default()
    };
    assert_eq!(Corpus::new(cfg).unwrap_err(), CorpusError::Empty);
    let cfg = CorpusConfig {
        span_s: DEFAULT_END_S + 1,
        ..CorpusConfig::default()
    };
    assert!(matches!(
        Corpus::new(cfg),
        Err(CorpusError::SpanTooLong { .. })
    ));
}
