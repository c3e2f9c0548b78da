//! The virtual MAX30102 at register level, and under the real `max3010x` driver through
//! our PPG adapter.

use super::*;
use crate::sensors::ppg::{Config, LedPulseWidth, Ppg, SampleAveraging};
use crate::sensors::Error;
use crate::virtual_sensors::Shared;
use core::cell::RefCell;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

/// A source counting up: red k, IR 1000 + k.
fn ramp() -> impl FnMut() -> Option<(u32, u32)> {
    let mut k = 0;
    move || {
        k += 1;
        Some((k, 1_000 + k))
    }
}

#[test]
fn the_real_driver_drains_the_fifo_through_the_adapter() {
    let chip = RefCell::new(VirtualMax30102::new(ramp()));
    let mut ppg = Ppg::new(Shared(&chip), Config::default(), &mut NoDelay).expect("init");
    let mut out = [(0, 0); 32];
    assert_eq!(ppg.read(&mut out), Ok(0), "nothing yet");
    chip.borrow_mut().elapse_ms(105); // 100 samples/s: 10 samples, 0.5 owed
    assert_eq!(ppg.read(&mut out[..4]), Ok(4));
    assert_eq!(out[..4], [(1, 1_001), (2, 1_002), (3, 1_003), (4, 1_004)]);
    chip.borrow_mut().elapse_ms(5); // the 11th
    assert_eq!(ppg.read(&mut out), Ok(7));
    assert_eq!(out[6], (11, 1_011));
    assert_eq!(chip.borrow().unread(), 0);
}

#[test]
fn a_full_fifo_overruns_is_cleared_and_resumes() {
    let chip = RefCell::new(VirtualMax30102::new(ramp()));
    let mut ppg = Ppg::new(Shared(&chip), Config::default(), &mut NoDelay).expect("init");
    chip.borrow_mut().elapse_ms(400); // 40 samples into 32 places
    {
        let c = chip.borrow();
        assert_eq!((c.unread(), c.regs[usize::from(OVF_COUNTER)]), (32, 8));
        assert_eq!(c.regs[4], c.regs[6], "full: the pointers meet");
    }
    let mut out = [(0, 0); 32];
    assert_eq!(ppg.read(&mut out), Err(Error::Overrun));
    chip.borrow_mut().elapse_ms(50);
    assert_eq!(ppg.read(&mut out), Ok(5));
    assert_eq!(out[0], (41, 1_041), "the stream resumes after the gap");
}

#[test]
fn averaging_and_a_short_pulse_width() {
    let mut k = 0u32;
    let source = move || {
        k += 1;
        Some((100_000 + k % 4, 120_000 + 2 * (k % 4)))
    };
    let cfg = Config {
        averaging: SampleAveraging::Sa4,
        pulse_width: LedPulseWidth::Pw69,
        ..Config::default()
    };
    let chip = RefCell::new(VirtualMax30102::new(source));
    let mut ppg = Ppg::new(Shared(&chip), cfg, &mut NoDelay).expect("init");
    chip.borrow_mut().elapse_ms(1_000);
    let mut out = [(0, 0); 32];
    assert_eq!(ppg.read(&mut out), Ok(25), "100 samples/s averaged by 4");
    // Means 100 001 and 120 003, at 15-bit resolution.
    assert!(
        out[..25].iter().all(|p| *p == (100_000, 120_000)),
        "{out:?}"
    );
}

#[test]
fn registers_heart_rate_mode_temperature_and_reset() {
    let mut chip = VirtualMax30102::new(ramp());
    let mut b = [0u8; 6];
    chip.write_read(0x57, &[PART_ID], &mut b[..1]).expect("ack");
    assert_eq!(b[0], 0x15);
    chip.write(0x57, &[MODE, 0x02]).expect("ack"); // heart rate: red only
    chip.write(0x57, &[SPO2_CONFIG, 0x07]).expect("ack"); // 100/s, 18 bits
    chip.elapse_ms(20);
    chip.write_read(0x57, &[INT_STATUS_1], &mut b[..1])
        .expect("ack");
    assert_eq!(b[0], PPG_RDY);
    chip.write_read(0x57, &[INT_STATUS_1], &mut b[..1])
        .expect("ack");
    assert_eq!(b[0], 0, "cleared by reading");
    chip.write_read(0x57, &[FIFO_DATA], &mut b).expect("ack");
    assert_eq!(b, [0, 0, 1, 0, 0, 2], "two 3-byte samples");
    chip.set_die_temp(-1_250);
    chip.write(0x57, &[TEMP_CONFIG, 0x01]).expect("ack");
    chip.write_read(0x57, &[TEMP_INT], &mut b[..3])
        .expect("ack");
    assert_eq!(b[..3], [(-13i8) as u8, 8, 0], "−13 + 8/16 °C, done");
    chip.write(0x57, &[MODE, 0x80]).expect("ack"); // shutdown
    chip.elapse_ms(1_000);
    assert_eq!(chip.samples_pushed(), 2);
    chip.write(0x57, &[MODE, 0x40]).expect("ack");
    assert_eq!((chip.unread(), chip.regs[usize::from(MODE)]), (0, 0));
}
