//! The PPG adapter against the exact I2C traffic of the `max3010x` driver.

extern crate std;
use super::*;
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
use std::{vec, vec::Vec};

const A: u8 = 0x57;

fn w(bytes: &[u8]) -> T {
    T::write(A, bytes.to_vec())
}

fn rd(reg: u8, response: &[u8]) -> T {
    T::write_read(A, vec![reg], response.to_vec())
}

/// What `Ppg::new` does with the default settings, then `spo2_config` as programmed.
fn init(spo2: [u8; 3]) -> Vec<T> {
    vec![
        rd(0xFF, &[0x15]),      // PART_ID
        w(&[0x09, 0x40]),       // MODE: RESET
        w(&[0x09, 0x03]),       // MODE: SpO2
        w(&[0x04, 0, 0, 0]),    // clear FIFO: WR_PTR, OVF_COUNTER, RD_PTR
        w(&[0x08, 0x00]),       // FIFO_CONFIG: no averaging
        w(&[0x0A, spo2[0]]),    // SPO2_CONFIG: rate …
        w(&[0x0A, spo2[1]]),    // … pulse width …
        w(&[0x0A, spo2[2]]),    // … ADC range
        w(&[0x0C, 0x24, 0x24]), // LED1_PA, LED2_PA
    ]
}

const DEFAULT_SPO2: [u8; 3] = [0x04, 0x07, 0x27];

#[test]
fn init_then_fifo_pairs_red_first() {
    let mut t = init(DEFAULT_SPO2);
    t.extend([
        rd(0x04, &[2, 0, 0]), // WR_PTR 2, OVF 0, RD_PTR 0: two samples
        rd(
            0x07,
            &[
                0x01, 0x86, 0xA0, 0x01, 0xD4, 0xC0, // red 100 000, IR 120 000
                0x03, 0xFF, 0xFF, 0x00, 0x00, 0x00, // red full scale, IR 0
            ],
        ),
    ]);
    let mut bus = Mock::new(&t);
    let mut ppg = Ppg::new(bus.clone(), Config::default(), &mut NoopDelay).expect("init");
    assert_eq!(ppg.sample_rate_hz(), 100);
    let mut out = [(0, 0); 8];
    assert_eq!(ppg.read(&mut out), Ok(2));
    assert_eq!(out[..2], [(100_000, 120_000), (0x3_FFFF, 0)]);
    assert_eq!(ppg.read(&mut []), Ok(0), "no room: no traffic");
    bus.done();
}

#[test]
fn wrapped_pointers_and_a_short_buffer() {
    let mut t = init(DEFAULT_SPO2);
    t.extend([
        rd(0x04, &[1, 0, 30]), // 32 − 30 + 1 = 3 waiting; room for 2
        rd(0x07, &[0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4]),
    ]);
    let mut bus = Mock::new(&t);
    let mut ppg = Ppg::new(bus.clone(), Config::default(), &mut NoopDelay).expect("init");
    let mut out = [(0, 0); 2];
    assert_eq!(ppg.read(&mut out), Ok(2));
    assert_eq!(out, [(1, 2), (3, 4)]);
    bus.done();
}

#[test]
fn an_empty_fifo_and_a_full_one() {
    let mut t = init(DEFAULT_SPO2);
    t.extend([
        rd(0x04, &[5, 0, 5]), // empty …
        rd(0x05, &[0]),       // … and nothing lost
        rd(0x04, &[7, 3, 7]), // "empty" …
        rd(0x05, &[3]),       // … but it overflowed: full
        w(&[0x04, 0, 0, 0]),  // cleared
    ]);
    let mut bus = Mock::new(&t);
    let mut ppg = Ppg::new(bus.clone(), Config::default(), &mut NoopDelay).expect("init");
    let mut out = [(0, 0); 4];
    assert_eq!(ppg.read(&mut out), Ok(0));
    assert_eq!(ppg.read(&mut out), Err(Error::Overrun));
    bus.done();
}

#[test]
fn a_short_pulse_width_is_scaled_back_to_18_bits() {
    let cfg = Config {
        pulse_width: LedPulseWidth::Pw69,
        averaging: SampleAveraging::Sa4,
        ..Config::default()
    };
    let t = [
        rd(0xFF, &[0x15]),
        w(&[0x09, 0x40]),
        w(&[0x09, 0x03]),
        w(&[0x04, 0, 0, 0]),
        w(&[0x08, 0x40]), // 4 samples averaged
        w(&[0x0A, 0x04]),
        w(&[0x0A, 0x04]), // 69 µs: PW bits 0
        w(&[0x0A, 0x24]),
        w(&[0x0C, 0x24, 0x24]),
        rd(0x04, &[1, 0, 0]),
        rd(0x07, &[0x01, 0x86, 0xA7, 0x01, 0xD4, 0xC0]),
    ];
    let mut bus = Mock::new(&t);
    let mut ppg = Ppg::new(bus.clone(), cfg, &mut NoopDelay).expect("init");
    assert_eq!(ppg.sample_rate_hz(), 25);
    let mut out = [(0, 0); 1];
    assert_eq!(ppg.read(&mut out), Ok(1));
    // The 3 bits under a 15-bit ADC's resolution are dropped by the driver.
    assert_eq!(out, [(100_000, 120_000)]);
    bus.done();
}

#[test]
fn wrong_part_bad_settings_and_bus_errors() {
    let t = [rd(0xFF, &[0x11])];
    let mut bus = Mock::new(&t);
    let err = Ppg::new(bus.clone(), Config::default(), &mut NoopDelay).expect_err("not ours");
    assert_eq!(
        err,
        Error::WrongDevice {
            expected: 0x15,
            found: Some(0x11)
        }
    );
    bus.done();

    // 1000 samples/s leaves no time for 411 µs pulses on two LEDs.
    let cfg = Config {
        sampling_rate: SamplingRate::Sps1000,
        ..Config::default()
    };
    let t = [
        rd(0xFF, &[0x15]),
        w(&[0x09, 0x40]),
        w(&[0x09, 0x03]),
        w(&[0x04, 0, 0, 0]),
        w(&[0x08, 0x00]),
        w(&[0x0A, 0x14]),
    ];
    let mut bus = Mock::new(&t);
    let err = Ppg::new(bus.clone(), cfg, &mut NoopDelay).expect_err("invalid");
    assert_eq!(err, Error::Config);
    bus.done();

    let t = [
        rd(0xFF, &[0x15]),
        w(&[0x09, 0x40]).with_error(ErrorKind::Other),
    ];
    let mut bus = Mock::new(&t);
    let err = Ppg::new(bus.clone(), Config::default(), &mut NoopDelay).expect_err("bus");
    assert_eq!(err, Error::Bus(ErrorKind::Other));
    bus.done();

    let mut t = init(DEFAULT_SPO2);
    t.push(rd(0x04, &[0, 0, 0]).with_error(ErrorKind::Bus));
    let mut bus = Mock::new(&t);
    let mut ppg = Ppg::new(bus.clone(), Config::default(), &mut NoopDelay).expect("init");
    assert_eq!(ppg.read(&mut [(0, 0)]), Err(Error::Bus(ErrorKind::Bus)));
    bus.done();
}
