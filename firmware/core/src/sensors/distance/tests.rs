//! The distance adapter against the exact I2C traffic of the `vl53l0x` driver: its init
//! (ST's DataInit, StaticInit with the SPAD set-up and tuning table, reference
//! calibration), single shots and continuous ranging.

extern crate std;
use super::*;
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
use std::{vec, vec::Vec};

const A: u8 = 0x29;

/// A register write: the driver does it as a write-read of one byte.
fn w(reg: u8, v: u8) -> T {
    T::write_read(A, vec![reg, v], vec![0])
}

fn r(reg: u8, v: u8) -> T {
    T::write_read(A, vec![reg], vec![v])
}

fn r16(reg: u8, v: u16) -> T {
    T::write_read(A, vec![reg], v.to_be_bytes().to_vec())
}

fn writes(list: &[(u8, u8)]) -> impl Iterator<Item = T> + '_ {
    list.iter().map(|&(reg, v)| w(reg, v))
}

/// DefaultTuningSettings, as the driver writes them.
const TUNING: [(u8, u8); 80] = [
    (0xFF, 0x01),
    (0x00, 0x00),
    (0xFF, 0x00),
    (0x09, 0x00),
    (0x10, 0x00),
    (0x11, 0x00),
    (0x24, 0x01),
    (0x25, 0xFF),
    (0x75, 0x00),
    (0xFF, 0x01),
    (0x4E, 0x2C),
    (0x48, 0x00),
    (0x30, 0x20),
    (0xFF, 0x00),
    (0x30, 0x09),
    (0x54, 0x00),
    (0x31, 0x04),
    (0x32, 0x03),
    (0x40, 0x83),
    (0x46, 0x25),
    (0x60, 0x00),
    (0x27, 0x00),
    (0x50, 0x06),
    (0x51, 0x00),
    (0x52, 0x96),
    (0x56, 0x08),
    (0x57, 0x30),
    (0x61, 0x00),
    (0x62, 0x00),
    (0x64, 0x00),
    (0x65, 0x00),
    (0x66, 0xA0),
    (0xFF, 0x01),
    (0x22, 0x32),
    (0x47, 0x14),
    (0x49, 0xFF),
    (0x4A, 0x00),
    (0xFF, 0x00),
    (0x7A, 0x0A),
    (0x7B, 0x00),
    (0x78, 0x21),
    (0xFF, 0x01),
    (0x23, 0x34),
    (0x42, 0x00),
    (0x44, 0xFF),
    (0x45, 0x26),
    (0x46, 0x05),
    (0x40, 0x40),
    (0x0E, 0x06),
    (0x20, 0x1A),
    (0x43, 0x40),
    (0xFF, 0x00),
    (0x34, 0x03),
    (0x35, 0x44),
    (0xFF, 0x01),
    (0x31, 0x04),
    (0x4B, 0x09),
    (0x4C, 0x05),
    (0x4D, 0x04),
    (0xFF, 0x00),
    (0x44, 0x00),
    (0x45, 0x20),
    (0x47, 0x08),
    (0x48, 0x28),
    (0x67, 0x00),
    (0x70, 0x04),
    (0x71, 0x01),
    (0x72, 0xFE),
    (0x76, 0x00),
    (0x77, 0x00),
    (0xFF, 0x01),
    (0x0D, 0x01),
    (0xFF, 0x00),
    (0x80, 0x01),
    (0x01, 0xF8),
    (0xFF, 0x01),
    (0x8E, 0x01),
    (0x00, 0x01),
    (0xFF, 0x00),
    (0x80, 0x00),
];

/// Reads of the sequence step timeouts, with the values the tuning table left:
/// pre-range 151 MCLKs at 14 PCLKs, final range 509 at 10, MSRC 38.
fn timeouts() -> [T; 5] {
    [
        r16(0x51, 0x0096),
        r16(0x71, 0x01FE),
        r(0x50, 0x06),
        r(0x46, 0x25),
        r(0x70, 0x04),
    ]
}

/// Everything `VL53L0x::new` does, with the stop variable 0x3C and 5 aperture SPADs.
fn init() -> Vec<T> {
    let mut t = vec![r(0xC0, 0xEE), r(0x89, 0x00), w(0x89, 0x01)];
    t.extend(writes(&[(0x88, 0), (0x80, 1), (0xFF, 1), (0x00, 0)]));
    t.push(r(0x91, 0x3C)); // stop variable
    t.extend(writes(&[(0x00, 1), (0xFF, 0), (0x80, 0)]));
    t.extend([r(0x60, 0x00), w(0x60, 0x12)]); // MSRC_CONFIG_CONTROL
    t.push(T::write_read(A, vec![0x44, 0x00, 0x20], vec![0])); // 0.25 MCPS
    t.push(w(0x01, 0xFF));
    // SPAD info from NVM.
    t.extend(writes(&[(0x80, 1), (0xFF, 1), (0x00, 0), (0xFF, 6)]));
    t.extend([r(0x83, 0x00), w(0x83, 0x04)]);
    t.extend(writes(&[
        (0xFF, 7),
        (0x81, 1),
        (0x80, 1),
        (0x94, 0x6B),
        (0x83, 0),
    ]));
    t.extend([r(0x83, 0x10), w(0x83, 0x01), r(0x92, 0x85)]); // 5 SPADs, aperture
    t.extend([w(0x81, 0), w(0xFF, 6), r(0x83, 0x04), w(0x83, 0x00)]);
    t.extend(writes(&[(0xFF, 1), (0x00, 1), (0xFF, 0), (0x80, 0)]));
    // Reference SPADs: keep 5 from number 12 on.
    t.push(T::write_read(A, vec![0xB0], vec![0xFF; 6]));
    t.extend(writes(&[
        (0xFF, 1),
        (0x4F, 0),
        (0x4E, 0x2C),
        (0xFF, 0),
        (0xB6, 0xB4),
    ]));
    t.push(T::write_read(
        A,
        vec![0xB0, 0x00, 0xF0, 0x01, 0x00, 0x00, 0x00],
        vec![0; 6],
    ));
    t.extend(writes(&TUNING));
    // GPIO: new sample ready, active low.
    t.extend([w(0x0A, 0x04), r(0x84, 0x11), w(0x84, 0x01), w(0x0B, 0x01)]);
    // Timing budget: 33 971 µs with TCC and DSS on …
    t.push(r(0x01, 0xF8));
    t.extend(timeouts());
    t.push(w(0x01, 0xE8));
    // … re-applied without them: final range 461 + 151 MCLKs, encoded 0x0298.
    t.push(r(0x01, 0xE8));
    t.extend(timeouts());
    t.push(T::write_read(A, vec![0x71, 0x02, 0x98], vec![0]));
    // VHV and phase calibration.
    for (seq, start) in [(0x01, 0x41), (0x02, 0x01)] {
        t.extend([w(0x01, seq), w(0x00, start), r(0x13, 0x01)]);
        t.extend([w(0x0B, 0x01), w(0x00, 0x00)]);
    }
    t.push(w(0x01, 0xE8));
    t
}

/// Leaving the "stop variable" dance of a start, single or continuous.
fn start() -> impl Iterator<Item = T> {
    [
        (0x80, 1),
        (0xFF, 1),
        (0x00, 0),
        (0x91, 0x3C),
        (0x00, 1),
        (0xFF, 0),
        (0x80, 0),
    ]
    .into_iter()
    .map(|(reg, v)| w(reg, v))
}

/// Waiting for, reading and clearing one result.
fn result(mm: u16) -> [T; 4] {
    [r(0x13, 0x00), r(0x13, 0x04), r16(0x1E, mm), w(0x0B, 0x01)]
}

#[test]
fn init_then_single_shots() {
    let mut t = init();
    for mm in [500, 8_190] {
        t.extend(start());
        t.extend([w(0x00, 0x01), r(0x00, 0x01), r(0x00, 0x00)]); // start; bit clears
        t.extend(result(mm));
    }
    let mut bus = Mock::new(&t);
    let mut d = Distance::new(bus.clone()).expect("init");
    assert_eq!(d.single(), Ok(Reading::Mm(500)));
    assert_eq!(d.single(), Ok(Reading::NoTarget));
    bus.done();
}

#[test]
fn continuous_ranging_and_the_timing_budget() {
    let mut t = init();
    t.extend(start());
    t.push(w(0x00, 0x02)); // back-to-back
    t.extend(result(812));
    t.extend(result(799));
    t.push(w(0x00, 0x01)); // stop
    t.extend(writes(&[
        (0xFF, 1),
        (0x00, 0),
        (0x91, 0),
        (0x00, 1),
        (0xFF, 0),
    ]));
    let mut bus = Mock::new(&t);
    let mut d = Distance::new(bus.clone()).expect("init");
    d.start_continuous().expect("start");
    assert_eq!(d.read_continuous(), Ok(Reading::Mm(812)));
    assert_eq!(d.read_continuous(), Ok(Reading::Mm(799)));
    d.stop_continuous().expect("stop");
    assert_eq!(
        d.set_timing_budget_us(19_999),
        Err(Error::Config),
        "no traffic"
    );
    bus.done();
}

#[test]
fn wrong_model_and_bus_errors() {
    let t = [r(0xC0, 0xEA)];
    let mut bus = Mock::new(&t);
    let err = Distance::new(bus.clone())
        .map(|_| ())
        .expect_err("not a VL53L0X");
    assert_eq!(
        err,
        Error::WrongDevice {
            expected: 0xEE,
            found: Some(0xEA)
        }
    );
    assert_eq!(
        std::format!("{err}"),
        "wrong device: identity 0xea, expected 0xee"
    );
    bus.done();

    let t = [r(0xC0, 0).with_error(ErrorKind::NoAcknowledge(
        embedded_hal::i2c::NoAcknowledgeSource::Address,
    ))];
    let mut bus = Mock::new(&t);
    let err = Distance::new(bus.clone())
        .map(|_| ())
        .expect_err("nobody there");
    assert!(matches!(err, Error::Bus(ErrorKind::NoAcknowledge(_))));
    bus.done();

    let mut t = init();
    t.push(r(0x13, 0).with_error(ErrorKind::Other));
    let mut bus = Mock::new(&t);
    let mut d = Distance::new(bus.clone()).expect("init");
    assert_eq!(d.read_continuous(), Err(Error::Bus(ErrorKind::Other)));
    bus.done();
}
