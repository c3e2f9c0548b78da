//! The virtual INA219 at register level, and under the real `ina219` driver through our
//! power adapter.

use super::*;
use crate::sensors::power::{PowerMonitor, PowerSample, Shunt};
use crate::sensors::Error;
use crate::virtual_sensors::{LampModel, PowerLevels, Shared};
use core::cell::RefCell;
use embedded_hal::i2c::I2c;

const SHUNT_01: Shunt = Shunt {
    r_shunt_uohm: 100_000,
    max_current_ma: 3_200,
};

fn fixed(bus_mv: u16, current_ua: i32) -> impl FnMut() -> PowerLevels {
    move || PowerLevels { bus_mv, current_ua }
}

fn read16(chip: &mut impl I2c, reg: u8) -> u16 {
    let mut b = [0; 2];
    chip.write_read(0x40, &[reg], &mut b).expect("ack");
    u16::from_be_bytes(b)
}

#[test]
fn registers_arithmetic_and_flags() {
    let mut chip = VirtualIna219::new(0x40, 100_000, fixed(12_000, 430_000));
    assert_eq!(read16(&mut chip, CONFIG), 0x399F);
    chip.write(0x40, &[CALIBRATION, 0x10, 0x53]).expect("ack");
    assert_eq!(read16(&mut chip, CALIBRATION), 4_178, "bit 0 is always 0");
    let bus = read16(&mut chip, BUS);
    assert_eq!((bus >> 3, bus & 0b11), (3_000, CNVR), "12 V, converted");
    assert_eq!(read16(&mut chip, SHUNT), 4_300, "43 mV in 10 µV steps");
    assert_eq!(read16(&mut chip, CURRENT), 4_386, "4300 · 4178 / 4096");
    assert_eq!(read16(&mut chip, POWER), 2_631, "4386 · 3000 / 5000");
    assert_eq!(read16(&mut chip, BUS) & CNVR, CNVR, "a fresh conversion");
    assert_eq!(chip.conversions(), 2);
    // ±40 mV range: the shunt clips at 4000.
    chip.write(0x40, &[CONFIG, 0x21, 0x9F]).expect("ack");
    let _ = read16(&mut chip, BUS);
    assert_eq!(read16(&mut chip, SHUNT), 4_000);
    // Power-down: nothing converts; reset restores everything.
    chip.write(0x40, &[CONFIG, 0x39, 0x98]).expect("ack");
    assert_eq!(read16(&mut chip, BUS), 3_000 << 3 | CNVR, "the old result");
    chip.write(0x40, &[CONFIG, 0x80, 0x00]).expect("ack");
    assert_eq!(
        (chip.register(CONFIG), chip.register(CALIBRATION)),
        (0x399F, 0)
    );
    assert_eq!(chip.conversions(), 3);
}

#[test]
fn the_real_driver_measures_a_lamp_through_the_adapter() {
    let lamp = LampModel::new(24_000, 430);
    let chip = RefCell::new(VirtualIna219::new(0x41, 100_000, lamp));
    let mut pm = PowerMonitor::new(Shared(&chip), 0x41, SHUNT_01).expect("init");
    assert_eq!(
        pm.measure(),
        Ok(Some(PowerSample {
            bus_mv: 24_000,
            shunt_uv: 0,
            current_ma: 0
        })),
        "relay open"
    );
    chip.borrow_mut().source_mut().set_relay(true);
    let lit = pm.measure().expect("read").expect("converted");
    assert_eq!((lit.shunt_uv, lit.lamp_current_ma()), (43_000, 430));
}

#[test]
fn overflow_and_a_missing_chip_reach_the_adapter_as_errors() {
    // 10 mΩ for 3.2 A: CAL 41 794; a 40 A fault clips the shunt and overflows the current.
    let shunt = Shunt {
        r_shunt_uohm: 10_000,
        ..SHUNT_01
    };
    let chip = VirtualIna219::new(0x40, 10_000, fixed(24_000, 40_000_000));
    let mut pm = PowerMonitor::new(chip, 0x40, shunt).expect("init");
    assert_eq!(pm.measure(), Err(Error::Overrange));

    let mut chip = VirtualIna219::new(0x40, 100_000, fixed(24_000, 0));
    chip.set_offline(true);
    assert!(matches!(
        PowerMonitor::new(chip, 0x40, SHUNT_01).map(|_| ()),
        Err(Error::Bus(_))
    ));
}
