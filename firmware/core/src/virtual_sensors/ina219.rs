//! A virtual INA219 on I2C: six 16-bit big-endian registers (configuration, shunt
//! voltage, bus voltage, power, current, calibration) and the chip's arithmetic —
//! `current = shunt × CAL / 4096`, `power = |current| × bus / 5000`, CNVR and OVF flags —
//! over levels from a [`PowerSource`] and a shunt of the given resistance.
//!
//! Conversion model: **a conversion completes just before each read of the bus-voltage
//! register** (the driver's `next_measurement` reads it first, then power, shunt and
//! current in one transaction), taking one [`PowerSource::levels`]; it latches all four
//! results and sets CNVR, which a read of the power register clears, as on the chip.
//! Power-down and ADC-off modes convert nothing. The shunt reading clips at the
//! configured PGA range, the bus reading at 32.76 V.
//!
//! Owns the register behaviour; does not own conversion timing, averaging or noise.

use super::{Link, PowerSource, Registers};

const CONFIG: u8 = 0x00;
const SHUNT: u8 = 0x01;
const BUS: u8 = 0x02;
const POWER: u8 = 0x03;
const CURRENT: u8 = 0x04;
const CALIBRATION: u8 = 0x05;
/// Configuration after reset: 32 V, ±320 mV, 12-bit, continuous shunt and bus.
const CONFIG_DEFAULT: u16 = 0x399F;
const CNVR: u16 = 0b10;
const OVF: u16 = 0b01;

/// An INA219 at a 0x40–0x4F address, measuring `S` across a shunt.
#[derive(Debug, Clone)]
pub struct VirtualIna219<S> {
    link: Link,
    source: S,
    r_shunt_uohm: u32,
    config: u16,
    calibration: u16,
    shunt: i16,
    bus: u16,
    power: u16,
    current: i16,
    ptr: u8,
    /// The next byte of the selected register is the low one.
    low_byte: bool,
    msb: u8,
    conversions: u32,
}

super::virtual_i2c!(VirtualIna219, PowerSource);

impl<S: PowerSource> VirtualIna219<S> {
    /// A chip in its reset state at `address`, with a `r_shunt_uohm` shunt (µΩ).
    pub fn new(address: u8, r_shunt_uohm: u32, source: S) -> Self {
        VirtualIna219 {
            link: Link::new(address),
            source,
            r_shunt_uohm,
            config: CONFIG_DEFAULT,
            calibration: 0,
            shunt: 0,
            bus: 0,
            power: 0,
            current: 0,
            ptr: 0,
            low_byte: false,
            msb: 0,
            conversions: 0,
        }
    }

    /// Conversions done so far.
    pub fn conversions(&self) -> u32 {
        self.conversions
    }

    /// A register's value, as the bus would read it (no side effects).
    pub fn register(&self, reg: u8) -> u16 {
        match reg {
            CONFIG => self.config,
            SHUNT => self.shunt as u16,
            BUS => self.bus,
            POWER => self.power,
            CURRENT => self.current as u16,
            CALIBRATION => self.calibration,
            _ => 0,
        }
    }

    fn reset(&mut self) {
        self.config = CONFIG_DEFAULT;
        (self.calibration, self.shunt, self.bus) = (0, 0, 0);
        (self.power, self.current) = (0, 0);
    }

    fn store(&mut self, reg: u8, value: u16) {
        match reg {
            CONFIG if value & 0x8000 != 0 => self.reset(),
            CONFIG => self.config = value,
            CALIBRATION => self.calibration = value & !1, // bit 0 reads 0
            _ => {}                                       // read-only
        }
    }

    fn convert(&mut self) {
        if matches!(self.config & 0b111, 0b000 | 0b100) {
            return; // power-down, ADC off
        }
        self.conversions = self.conversions.wrapping_add(1);
        let levels = self.source.levels();
        // Shunt: 10 µV steps, clipped at ±40 mV × 2^PGA.
        let shunt_uv = i64::from(levels.current_ua) * i64::from(self.r_shunt_uohm) / 1_000_000;
        let limit = 4_000i64 << ((self.config >> 11) & 0b11);
        let shunt = ((shunt_uv + shunt_uv.signum() * 5) / 10).clamp(-limit, limit);
        self.shunt = shunt as i16; // |shunt| ≤ 32 000
                                   // Bus: 4 mV steps in bits 15..3.
        let bus_4mv = (levels.bus_mv / 4).min(0x1FFF);
        let current = shunt * i64::from(self.calibration) / 4_096;
        let power = current.abs() * i64::from(bus_4mv) / 5_000;
        let overflow = i16::try_from(current).is_err() || u16::try_from(power).is_err();
        self.current = current.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16;
        self.power = power.min(i64::from(u16::MAX)) as u16;
        self.bus = bus_4mv << 3 | CNVR | if overflow { OVF } else { 0 };
    }
}

impl<S: PowerSource> Registers for VirtualIna219<S> {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn select(&mut self, byte: u8) {
        self.ptr = byte;
        self.low_byte = false;
    }

    fn write_next(&mut self, byte: u8) {
        if self.low_byte {
            self.store(self.ptr, u16::from_be_bytes([self.msb, byte]));
        } else {
            self.msb = byte;
        }
        self.low_byte = !self.low_byte;
    }

    fn read_next(&mut self) -> u8 {
        if !self.low_byte {
            match self.ptr {
                BUS => self.convert(),
                POWER => self.bus &= !CNVR,
                _ => {}
            }
        }
        let [hi, lo] = self.register(self.ptr).to_be_bytes();
        self.low_byte = !self.low_byte;
        if self.low_byte {
            hi
        } else {
            lo
        }
    }
}

#[cfg(test)]
mod tests;
