//! A virtual MAX30102 on I2C (address 0x57): interrupt status/enable, the 32-sample FIFO
//! with its write/read pointers and overflow counter, FIFO_DATA that does not
//! auto-increment, MODE (reset, shutdown; heart-rate and SpO2 modes), SPO2_CONFIG
//! (sample rate and pulse width), LED amplitudes, die temperature and PART_ID 0x15.
//!
//! Time model: the chip has no clock; [`VirtualMax30102::elapse_ms`] moves it on. It then
//! takes one `(red, ir)` pair from its [`PpgSource`] per ADC sample at the configured
//! rate (none while shut down or before a mode is set), averages `SMP_AVE` of them into a
//! FIFO entry, left-justifies it to the pulse width's resolution and pushes it: when the
//! FIFO is full the entry is lost and OVF_COUNTER counts it (with FIFO_ROLLOVER_EN the
//! oldest is overwritten instead). As on the chip, a full FIFO has equal pointers, and
//! popping a whole sample clears OVF_COUNTER.
//!
//! Owns the register and FIFO behaviour; does not own the optics (the source), the
//! ambient-light cancellation or multi-LED slot timing (multi-LED mode samples nothing).

use super::{Link, PpgSource, Registers};

const INT_STATUS_1: u8 = 0x00;
const INT_STATUS_2: u8 = 0x01;
const FIFO_WR_PTR: u8 = 0x04;
const OVF_COUNTER: u8 = 0x05;
const FIFO_RD_PTR: u8 = 0x06;
const FIFO_DATA: u8 = 0x07;
const FIFO_CONFIG: u8 = 0x08;
const MODE: u8 = 0x09;
const SPO2_CONFIG: u8 = 0x0A;
const TEMP_INT: u8 = 0x1F;
const TEMP_FRAC: u8 = 0x20;
const TEMP_CONFIG: u8 = 0x21;
const REV_ID: u8 = 0xFE;
const PART_ID: u8 = 0xFF;
const DEPTH: u8 = 32;
/// INT_STATUS_1 flags.
const A_FULL: u8 = 0x80;
const PPG_RDY: u8 = 0x40;
/// INT_STATUS_2: die temperature ready.
const DIE_TEMP_RDY: u8 = 0x02;

/// A MAX30102 fed by `S`.
#[derive(Debug, Clone)]
pub struct VirtualMax30102<S> {
    link: Link,
    source: S,
    regs: [u8; 0x22],
    fifo: [(u32, u32); DEPTH as usize],
    /// Entries waiting (the pointers alone cannot tell full from empty).
    unread: u8,
    ptr: u8,
    /// Byte within the FIFO sample being read.
    data_byte: u8,
    /// ms × sample rate not yet turned into samples.
    owed: u64,
    sum: (u64, u64),
    summed: u8,
    die_temp_cdeg: i16,
    samples: u32,
}

super::virtual_i2c!(VirtualMax30102, PpgSource);

impl<S: PpgSource> VirtualMax30102<S> {
    /// A chip fresh from power-up, fed by `source`.
    pub fn new(source: S) -> Self {
        VirtualMax30102 {
            link: Link::new(0x57),
            source,
            regs: [0; 0x22],
            fifo: [(0, 0); DEPTH as usize],
            unread: 0,
            ptr: 0,
            data_byte: 0,
            owed: 0,
            sum: (0, 0),
            summed: 0,
            die_temp_cdeg: 3_300,
            samples: 0,
        }
    }

    /// Sets the die temperature the chip measures, 0.01 °C.
    pub fn set_die_temp(&mut self, cdeg: i16) {
        self.die_temp_cdeg = cdeg;
    }

    /// FIFO entries waiting to be read.
    pub fn unread(&self) -> u8 {
        self.unread
    }

    /// FIFO entries pushed so far.
    pub fn samples_pushed(&self) -> u32 {
        self.samples
    }

    /// Lets `ms` pass: samples the source at the configured rate into the FIFO.
    pub fn elapse_ms(&mut self, ms: u32) {
        let mode = self.regs[usize::from(MODE)];
        if mode & 0x80 != 0 || !matches!(mode & 0x07, 0x02 | 0x03) {
            return; // shut down, or no (supported) mode
        }
        let spo2 = self.regs[usize::from(SPO2_CONFIG)];
        let rate: u64 = [50, 100, 200, 400, 800, 1_000, 1_600, 3_200][usize::from((spo2 >> 2) & 7)];
        self.owed += u64::from(ms) * rate;
        while self.owed >= 1_000 {
            self.owed -= 1_000;
            self.adc_sample();
        }
    }

    fn adc_sample(&mut self) {
        let Some((red, ir)) = self.source.next_pair() else {
            return;
        };
        self.sum = (self.sum.0 + u64::from(red), self.sum.1 + u64::from(ir));
        self.summed += 1;
        let averaged = 1u8 << (self.regs[usize::from(FIFO_CONFIG)] >> 5).min(5);
        if self.summed < averaged {
            return;
        }
        let n = u64::from(self.summed);
        // Left-justified: the bits under the pulse width's resolution read 0.
        let mask = !((1u32 << (3 - (self.regs[usize::from(SPO2_CONFIG)] & 3))) - 1) & 0x3_FFFF;
        let entry = [self.sum.0 / n, self.sum.1 / n].map(|v| (v.min(0x3_FFFF) as u32) & mask);
        (self.sum, self.summed) = ((0, 0), 0);
        self.push((entry[0], entry[1]));
    }

    fn push(&mut self, entry: (u32, u32)) {
        let cfg = self.regs[usize::from(FIFO_CONFIG)];
        let wr = self.regs[usize::from(FIFO_WR_PTR)] & 0x1F;
        if self.unread == DEPTH {
            let ovf = &mut self.regs[usize::from(OVF_COUNTER)];
            *ovf = (*ovf + 1).min(0x1F);
            if cfg & 0x10 == 0 {
                return; // no rollover: lost
            }
            let rd = &mut self.regs[usize::from(FIFO_RD_PTR)];
            *rd = (*rd + 1) & 0x1F; // the oldest is overwritten
            self.unread -= 1;
        }
        self.fifo[usize::from(wr)] = entry;
        self.regs[usize::from(FIFO_WR_PTR)] = (wr + 1) & 0x1F;
        self.unread += 1;
        self.samples = self.samples.wrapping_add(1);
        let mut status = PPG_RDY;
        if self.unread >= DEPTH - (cfg & 0x0F) {
            status |= A_FULL;
        }
        self.regs[usize::from(INT_STATUS_1)] |= status;
    }

    fn channels(&self) -> u8 {
        match self.regs[usize::from(MODE)] & 0x07 {
            0x02 => 1,
            _ => 2,
        }
    }

    /// One byte of the FIFO's oldest entry; a whole entry read pops it.
    fn fifo_byte(&mut self) -> u8 {
        if self.unread == 0 {
            return 0;
        }
        let rd = self.regs[usize::from(FIFO_RD_PTR)] & 0x1F;
        let (red, ir) = self.fifo[usize::from(rd)];
        let word = if self.data_byte < 3 { red } else { ir };
        let byte = (word >> (8 * (2 - self.data_byte % 3))) as u8;
        self.data_byte += 1;
        if self.data_byte == 3 * self.channels() {
            self.data_byte = 0;
            self.regs[usize::from(FIFO_RD_PTR)] = (rd + 1) & 0x1F;
            self.regs[usize::from(OVF_COUNTER)] = 0;
            self.unread -= 1;
        }
        byte
    }

    fn store(&mut self, reg: u8, value: u8) {
        match reg {
            MODE if value & 0x40 != 0 => {
                // RESET: every register to its power-on value; the bit clears itself.
                self.regs = [0; 0x22];
                (self.unread, self.owed, self.sum, self.summed) = (0, 0, (0, 0), 0);
            }
            FIFO_WR_PTR | FIFO_RD_PTR => {
                self.regs[usize::from(reg)] = value & 0x1F;
                let (wr, rd) = (self.regs[4], self.regs[6]);
                self.unread = wr.wrapping_sub(rd) & 0x1F;
                self.data_byte = 0;
            }
            TEMP_CONFIG if value & 1 != 0 => {
                // The conversion is instant; TEMP_EN clears itself.
                let c = self.die_temp_cdeg;
                self.regs[usize::from(TEMP_INT)] = c.div_euclid(100) as u8;
                self.regs[usize::from(TEMP_FRAC)] = (c.rem_euclid(100) * 16 / 100) as u8;
                self.regs[usize::from(INT_STATUS_2)] |= DIE_TEMP_RDY;
            }
            INT_STATUS_1 | INT_STATUS_2 | FIFO_DATA | TEMP_INT | TEMP_FRAC => {}
            r if r < 0x22 => self.regs[usize::from(r)] = value,
            _ => {}
        }
    }

    fn load(&mut self, reg: u8) -> u8 {
        match reg {
            FIFO_DATA => self.fifo_byte(),
            INT_STATUS_1 | INT_STATUS_2 => core::mem::take(&mut self.regs[usize::from(reg)]),
            REV_ID => 0x03,
            PART_ID => 0x15,
            r if r < 0x22 => self.regs[usize::from(r)],
            _ => 0,
        }
    }
}

impl<S: PpgSource> Registers for VirtualMax30102<S> {
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
        if self.ptr != FIFO_DATA {
            self.ptr = self.ptr.wrapping_add(1);
        }
        value
    }
}

#[cfg(test)]
mod tests;
