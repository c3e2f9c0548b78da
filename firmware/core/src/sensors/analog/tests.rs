//! The analog conversions, with a scripted ADC.

use super::*;

/// An ADC that gives the next of its readings, or fails once they run out.
struct Script<'a>(&'a [u16]);

impl AdcChannel for Script<'_> {
    type Error = &'static str;

    fn read_mv(&mut self) -> Result<u16, Self::Error> {
        let (&first, rest) = self.0.split_first().ok_or("ADC timeout")?;
        self.0 = rest;
        Ok(first)
    }
}

#[test]
fn a_4_20_ma_loop_gives_mm_and_flags_a_broken_wire_or_a_short() {
    // 150 Ω: 600 mV at 4 mA, 3000 mV at 20 mA; a 5 m range.
    let t = Transducer::current_loop(150, 5_000);
    let mm = |mv| t.level_mm::<()>(mv);
    assert_eq!(
        (mm(600), mm(1_800), mm(3_000)),
        (Ok(0), Ok(2_500), Ok(5_000))
    );
    assert_eq!(mm(570), Ok(0), "3.8 mA: still the bottom");
    assert_eq!(
        mm(569),
        Err(Error::Underrange),
        "under 3.8 mA: a broken loop"
    );
    assert_eq!(mm(0), Err(Error::Underrange));
    assert_eq!(mm(3_075), Ok(5_000), "20.5 mA: still the top");
    assert_eq!(mm(3_076), Err(Error::Overrange));
    for level in [0, 1, 999, 2_500, 4_321, 5_000] {
        let back = mm(t.mv_at(level)).expect("in range");
        assert!(back.abs_diff(level) <= 3, "{level} -> {back}");
    }
    assert_eq!(t.mv_at(9_999), 3_000, "clamped to the span");
}

#[test]
fn a_voltage_transducer_and_a_bad_span() {
    let t = Transducer::half_to_four_and_a_half_volt(2_000);
    assert_eq!(t.level_mm::<()>(2_500), Ok(1_000));
    let flat = Transducer {
        zero_mv: 1_000,
        full_mv: 1_000,
        span_mm: 100,
    };
    assert_eq!(flat.level_mm::<()>(1_000), Err(Error::Config));
    let mut adc = Script(&[4_500]);
    assert_eq!(t.read_mm(&mut adc), Ok(2_000));
    assert_eq!(t.read_mm(&mut adc), Err(Error::Bus("ADC timeout")));
}

#[test]
fn the_bed_pad_scales_to_a_thousand() {
    let pad = PressurePad {
        empty_mv: 200,
        full_mv: 2_200,
    };
    let p: [u16; 4] = [1_400, 100, 3_000, 200].map(|mv| pad.pressure(mv));
    assert_eq!(p, [600, 0, 1_000, 0]);
    let backwards = PressurePad {
        empty_mv: 2_000,
        full_mv: 1_000,
    };
    assert_eq!(backwards.pressure(1_500), 0);
    assert_eq!(pad.read(&mut Script(&[1_200])), Ok(500));
}

#[test]
fn battery_curves_interpolate_and_clamp() {
    let li = Battery::new(LI_ION_1S);
    let pct: [u8; 6] = [4_200, 3_300, 3_000, 3_650, 4_300, 3_800].map(|mv| li.percent(mv));
    assert_eq!(pct, [100, 0, 0, 17, 100, 55]);
    let halved = li.with_divider(2, 1);
    assert_eq!(halved.battery_mv(1_900), 3_800);
    assert_eq!(halved.percent(1_900), 55);
    assert_eq!(Battery::new(ALKALINE_2AA).percent(2_500), 45);
    assert_eq!(Battery::new(&[]).percent(3_000), 0);
    let mut adc = Script(&[]);
    assert_eq!(li.read_percent(&mut adc), Err(Error::Bus("ADC timeout")));
}
