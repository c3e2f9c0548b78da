//! The virtual LIS3DH at register level, and under the real `lis3dh` driver through our
//! accelerometer adapter.

use super::*;
use crate::fall::Range;
use crate::sensors::accel::{Accelerometer, SlaveAddr};
use crate::sensors::Error;
use embedded_hal::i2c::{ErrorKind, I2c, NoAcknowledgeSource};

/// A source replaying `samples`, then ending.
fn replay(samples: &[[i16; 3]]) -> impl FnMut() -> Option<[i16; 3]> + '_ {
    let mut it = samples.iter().copied();
    move || it.next()
}

#[test]
fn encoding_agrees_with_the_detectors_range_convention() {
    for mg in (-30_000..=30_000).step_by(7).map(|m: i32| m as i16) {
        let v = [mg, -mg, mg / 3];
        assert_eq!(
            v.map(|m| encode(m, 2, false, true)),
            Range::G8.to_raw(v),
            "{mg}"
        );
        assert_eq!(
            v.map(|m| encode(m, 3, false, true)),
            Range::G16.to_raw(v),
            "{mg}"
        );
    }
    // Normal mode ±2 g: 10 bits of 4 mg; low power ±16 g: 8 bits of 192 mg.
    assert_eq!(encode(1_000, 0, false, false), 250 << 6);
    assert_eq!(encode(-3_000, 0, false, false), -512 << 6, "clipped");
    assert_eq!(encode(1_000, 3, true, false), 5 << 8);
}

#[test]
fn registers_power_down_and_auto_increment() {
    let samples = [[1_000, 0, -1_000], [0, 2_000, 0]];
    let mut chip = VirtualLis3dh::new(0x18, replay(&samples));
    let mut b = [0u8; 2];
    chip.write_read(0x18, &[0x0F], &mut b[..1]).expect("ack");
    assert_eq!(b[0], 0x33);
    chip.write_read(0x18, &[0x27], &mut b[..1]).expect("ack");
    assert_eq!(b[0], 0, "power-down: never ready");
    // 100 Hz, all axes; high resolution ±2 g.
    chip.write(0x18, &[0x20, 0x57]).expect("ack");
    chip.write(0x18, &[0x23, 0x08]).expect("ack");
    chip.write_read(0x18, &[0x27], &mut b[..1]).expect("ack");
    assert_eq!(b[0], 0x0F, "ZYXDA");
    let mut out = [0u8; 6];
    chip.write_read(0x18, &[0xA8], &mut out).expect("ack");
    assert_eq!(out, [0x80, 0x3E, 0, 0, 0x80, 0xC1]); // +1000, 0, −1000 digits << 4
                                                     // Without the auto-increment bit the pointer stays on OUT_X_L … and a read starting
                                                     // there takes the next sample.
    chip.write_read(0x18, &[0x28], &mut b).expect("ack");
    assert_eq!(b, [0, 0]);
    chip.write_read(0x18, &[0x2B], &mut b[..1]).expect("ack");
    assert_eq!(b[0], 0x7D, "OUT_Y_H of 2000 digits (0x7D00)");
    chip.write_read(0x18, &[0x27], &mut b[..1]).expect("ack");
    assert_eq!((b[0], chip.samples_read()), (0, 2), "the source has ended");
    // Read-only registers ignore writes; BOOT restores the power-on state.
    chip.write(0x18, &[0x0F, 0x00]).expect("ack");
    chip.write(0x18, &[0x24, 0x80]).expect("ack");
    assert_eq!((chip.register(0x0F), chip.register(0x20)), (0x33, 0x07));
}

#[test]
fn the_real_driver_reads_the_stream_through_the_adapter() {
    let samples = [[0, 1_000, 0], [-2_000, 9_000, 30], [5, -5, 12_001]];
    for (range, want) in [
        (
            Range::G8,
            [[0, 1_000, 0], [-2_000, 8_188, 32], [4, -4, 8_188]],
        ),
        (
            Range::G16,
            [[0, 996, 0], [-2_004, 9_000, 36], [0, 0, 12_000]],
        ),
    ] {
        let chip = VirtualLis3dh::new(0x19, replay(&samples));
        let mut acc = Accelerometer::new(chip, SlaveAddr::Alternate, range).expect("init");
        for w in want {
            assert_eq!(acc.poll_mg(), Ok(Some(w)), "{range:?}");
        }
        assert_eq!(acc.poll_mg(), Ok(None), "ended");
    }
}

#[test]
fn a_silent_chip_and_a_wrong_address_are_bus_errors() {
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let chip = VirtualLis3dh::new(0x18, replay(&[]));
    let err =
        Accelerometer::new(chip, SlaveAddr::Alternate, Range::G8).expect_err("nobody at 0x19");
    assert_eq!(err, Error::Bus(nack));

    let mut chip = VirtualLis3dh::new(0x18, replay(&[[0, 1_000, 0]]));
    chip.set_offline(true);
    let mut b = [0];
    assert_eq!(chip.write_read(0x18, &[0x0F], &mut b), Err(nack));
    chip.set_offline(false);
    let mut acc = Accelerometer::new(chip, SlaveAddr::Default, Range::G8).expect("back");
    assert_eq!(acc.read_mg(), Ok([0, 1_000, 0]));
}
