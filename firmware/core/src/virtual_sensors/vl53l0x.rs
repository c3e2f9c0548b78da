//! A virtual VL53L0X on I2C (address 0x29): enough of the register map for the `vl53l0x`
//! driver's whole init (ST's DataInit and StaticInit, SPAD info from NVM, the tuning
//! table, reference calibration) and for ranging. Registers are plain bytes in two banks
//! (page register 0xFF zero or not), auto-incrementing, with a few that act:
//!
//! - 0xC0 reads the model ID 0xEE; page 1 holds the stop variable (0x91) and SPAD info
//!   (0x92: 5 aperture SPADs), and its 0x83 reports the NVM read done once cleared;
//! - SYSRANGE_START (0x00): bit 0 runs a single measurement — or stops continuous
//!   ranging — and clears at once; 0x02/0x04 start continuous ranging;
//! - RESULT_INTERRUPT_STATUS (0x13) reads 0x04 once a result is ready; in continuous mode
//!   a new result is ready whenever the last was cleared (SYSTEM_INTERRUPT_CLEAR, 0x0B);
//! - the result is RESULT_RANGE_STATUS 0x14 (valid) and the range, big-endian, at 0x1E;
//!   "nothing in range" reads 8190 mm.
//!
//! Each result takes one [`DistanceSource::next_mm`]; reference calibrations (sequence
//! config without the final range) take none. Owns the register behaviour; does not own
//! timing budgets (results are instant), signal rates or crosstalk.

use super::{DistanceSource, Link, Registers};

const SYSRANGE_START: u8 = 0x00;
const SYSTEM_SEQUENCE_CONFIG: u8 = 0x01;
const SYSTEM_INTERRUPT_CLEAR: u8 = 0x0B;
const RESULT_INTERRUPT_STATUS: u8 = 0x13;
const RESULT_RANGE_STATUS: u8 = 0x14;
const RESULT_RANGE_MM: u8 = 0x1E;
const PAGE: u8 = 0xFF;
/// Range reported with no target, mm.
const NO_TARGET_MM: u16 = 8_190;

/// A VL53L0X fed by `S`.
#[derive(Debug, Clone)]
pub struct VirtualVl53l0x<S> {
    link: Link,
    source: S,
    banks: [[u8; 256]; 2],
    page: u8,
    ptr: u8,
    continuous: bool,
    measurements: u32,
}

super::virtual_i2c!(VirtualVl53l0x, DistanceSource);

impl<S: DistanceSource> VirtualVl53l0x<S> {
    /// A chip fresh from power-up at 0x29, fed by `source`.
    pub fn new(source: S) -> Self {
        let mut banks = [[0u8; 256]; 2];
        let b0 = &mut banks[0];
        b0[0xC0] = 0xEE; // model ID
        b0[0xC1] = 0xAA; // module type
        b0[0xC2] = 0x10; // revision
        b0[0x84] = 0x11; // GPIO_HV_MUX_ACTIVE_HIGH
        b0[0xB0..0xB6].fill(0xFF); // reference SPAD map: all good
        b0[0x50] = 0x06; // pre-range VCSEL 14 PCLKs …
        b0[0x70] = 0x04; // … final range 10
        b0[0x46] = 0x25; // MSRC timeout
        b0[0x52] = 0x96; // pre-range timeout
        (b0[0x71], b0[0x72]) = (0x01, 0xFE); // final-range timeout
        banks[1][0x91] = 0x3C; // stop variable
        banks[1][0x92] = 0x85; // SPAD info: 5, aperture
        VirtualVl53l0x {
            link: Link::new(0x29),
            source,
            banks,
            page: 0,
            ptr: 0,
            continuous: false,
            measurements: 0,
        }
    }

    /// Ranging results produced so far.
    pub fn measurements(&self) -> u32 {
        self.measurements
    }

    /// Whether continuous ranging is on.
    pub fn continuous(&self) -> bool {
        self.continuous
    }

    fn bank(&self) -> usize {
        usize::from(self.page != 0)
    }

    /// One measurement (or a reference calibration) completes.
    fn complete(&mut self) {
        if self.banks[0][usize::from(SYSTEM_SEQUENCE_CONFIG)] & 0x80 != 0 {
            let mm = self
                .source
                .next_mm()
                .map_or(NO_TARGET_MM, |mm| mm.min(NO_TARGET_MM));
            let [hi, lo] = mm.to_be_bytes();
            let b0 = &mut self.banks[0];
            (
                b0[usize::from(RESULT_RANGE_MM)],
                b0[usize::from(RESULT_RANGE_MM) + 1],
            ) = (hi, lo);
            b0[usize::from(RESULT_RANGE_STATUS)] = 0x0B << 3 | 0x06; // range valid
            self.measurements = self.measurements.wrapping_add(1);
        }
        self.banks[0][usize::from(RESULT_INTERRUPT_STATUS)] = 0x04;
    }

    fn store(&mut self, reg: u8, value: u8) {
        let bank = self.bank();
        match (bank, reg) {
            (_, PAGE) => self.page = value,
            (0, SYSRANGE_START) if value & 0x06 != 0 => {
                self.continuous = true;
                self.banks[0][0] = value;
            }
            (0, SYSRANGE_START) if value & 0x01 != 0 => {
                if self.continuous {
                    self.continuous = false;
                } else {
                    self.complete();
                }
                self.banks[0][0] = value & !0x01;
            }
            (0, SYSRANGE_START) => {
                self.continuous = false;
                self.banks[0][0] = value;
            }
            (0, SYSTEM_INTERRUPT_CLEAR) if value & 0x01 != 0 => {
                self.banks[0][usize::from(RESULT_INTERRUPT_STATUS)] = 0;
            }
            (0, 0xC0..=0xC2) => {} // identity: read-only
            // Clearing 0x83 starts the NVM read, which is instantly done.
            (1, 0x83) if value == 0 => self.banks[1][0x83] = 0x10,
            (b, r) => self.banks[b][usize::from(r)] = value,
        }
    }

    fn load(&mut self, reg: u8) -> u8 {
        let bank = self.bank();
        if (bank, reg) == (0, RESULT_INTERRUPT_STATUS)
            && self.continuous
            && self.banks[0][usize::from(reg)] == 0
        {
            self.complete();
        }
        match reg {
            PAGE => self.page,
            r => self.banks[bank][usize::from(r)],
        }
    }
}

impl<S: DistanceSource> Registers for VirtualVl53l0x<S> {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn select(&mut self, byte: u8) {
        self.ptr = byte;
    }

    fn write_next(&mut self, byte: u8) {
        self.store(self.ptr, byte);
        self.ptr = self.ptr.wrapping_add(1);
    }

    fn read_next(&mut self) -> u8 {
        let value = self.load(self.ptr);
        self.ptr = self.ptr.wrapping_add(1);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::distance::{Distance, Reading};
    use crate::sensors::Error;

    fn replay(mm: &[Option<u16>]) -> impl FnMut() -> Option<u16> + '_ {
        let mut it = mm.iter().copied();
        move || it.next().flatten()
    }

    #[test]
    fn the_real_driver_inits_and_ranges_through_the_adapter() {
        let chip = VirtualVl53l0x::new(replay(&[Some(512), None, Some(300), Some(290)]));
        let mut d = Distance::new(chip).expect("init");
        assert_eq!(d.single(), Ok(Reading::Mm(512)));
        assert_eq!(d.single(), Ok(Reading::NoTarget));
        d.start_continuous().expect("start");
        assert_eq!(d.read_continuous(), Ok(Reading::Mm(300)));
        assert_eq!(d.read_continuous(), Ok(Reading::Mm(290)));
        d.stop_continuous().expect("stop");
        d.set_timing_budget_us(50_000).expect("a longer budget");
        assert_eq!(d.set_timing_budget_us(10_000), Err(Error::Config));
    }

    #[test]
    fn init_traffic_and_results() {
        let mut chip = VirtualVl53l0x::new(replay(&[Some(1_234)]));
        {
            let mut d = Distance::new(&mut chip).expect("init");
            assert_eq!(d.single(), Ok(Reading::Mm(1_234)));
        }
        // ST's init is long: 153 transfers, then 12 for a single shot.
        assert_eq!(chip.transfers(), 165);
        assert_eq!(chip.measurements(), 1, "calibrations take no range");
        assert_eq!(chip.banks[0][0x01], 0xE8, "sequence config restored");
        assert!(!chip.continuous());
    }

    #[test]
    fn a_wrong_address_or_a_dead_chip_fails_init() {
        let mut chip = VirtualVl53l0x::new(replay(&[]));
        chip.set_offline(true);
        assert!(matches!(
            Distance::new(&mut chip).map(|_| ()),
            Err(Error::Bus(_))
        ));
        chip.set_offline(false);
        chip.banks[0][0xC0] = 0xEF;
        assert_eq!(
            Distance::new(&mut chip).map(|_| ()),
            Err(Error::WrongDevice {
                expected: 0xEE,
                found: Some(0xEF)
            })
        );
    }
}
