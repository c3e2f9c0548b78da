//! A virtual LIS3DH on I2C: the register file the `lis3dh` driver touches (WHO_AM_I 0x33,
//! CTRL_REG0..6, TEMP_CFG, STATUS_REG, OUT_X_L..OUT_Z_H with the 0x80 auto-increment bit),
//! encoding milli-g from an [`AccelSource`] at the configured full scale and mode
//! (high-resolution 12 bit, normal 10 bit, low-power 8 bit; left-justified,
//! little-endian).
//!
//! Data-ready model, chosen for determinism: **one source sample per read of the output
//! registers**. A read that starts at OUT_X_L (0x28) latches the next sample (the one
//! STATUS announced, if it was polled); reads starting elsewhere return the latched one.
//! STATUS_REG peeks: ZYXDA is set while a sample is waiting. So a reader that polls
//! STATUS and one that just reads the data each step through the stream one sample at a
//! time; nothing is ever dropped or repeated (no overrun bits). In power-down (ODR 0,
//! the reset state) no sample is ever ready. Disabled axes read 0.
//!
//! Owns the register behaviour; does not own the FIFO, interrupts, click or activity
//! detection, the high-pass filter or the temperature/ADC channels (they read 0).

use super::{AccelSource, Link, Registers};

/// WHO_AM_I value.
const WHO_AM_I: u8 = 0x33;
const REG_WHO_AM_I: u8 = 0x0F;
const CTRL_REG1: u8 = 0x20;
const CTRL_REG4: u8 = 0x23;
const CTRL_REG5: u8 = 0x24;
const STATUS_REG: u8 = 0x27;
const OUT_X_L: u8 = 0x28;
const OUT_Z_H: u8 = 0x2D;
/// STATUS_REG: ZYXDA and XDA, YDA, ZDA.
const DATA_READY: u8 = 0x0F;

/// A LIS3DH at 0x18 (SA0 low) or 0x19, fed by `S`.
#[derive(Debug, Clone)]
pub struct VirtualLis3dh<S> {
    link: Link,
    source: S,
    regs: [u8; 0x40],
    ptr: u8,
    auto_increment: bool,
    first_read: bool,
    pending: Option<[i16; 3]>,
    latched_mg: [i16; 3],
    samples: u32,
}

super::virtual_i2c!(VirtualLis3dh, AccelSource);

impl<S: AccelSource> VirtualLis3dh<S> {
    /// A chip fresh from power-up at `address` (0x18 or 0x19), fed by `source`.
    pub fn new(address: u8, source: S) -> Self {
        VirtualLis3dh {
            link: Link::new(address),
            source,
            regs: power_on_registers(),
            ptr: 0,
            auto_increment: false,
            first_read: true,
            pending: None,
            latched_mg: [0; 3],
            samples: 0,
        }
    }

    /// Samples taken from the source and delivered so far.
    pub fn samples_read(&self) -> u32 {
        self.samples
    }

    /// The raw register value, as the bus would read it (no side effects).
    pub fn register(&self, reg: u8) -> u8 {
        match reg & 0x3F {
            r @ OUT_X_L..=OUT_Z_H => {
                let i = usize::from(r - OUT_X_L);
                self.raw()[i / 2].to_le_bytes()[i % 2]
            }
            r => self.regs[usize::from(r)],
        }
    }

    fn powered(&self) -> bool {
        self.regs[usize::from(CTRL_REG1)] >> 4 != 0
    }

    /// Pulls a sample from the source into `pending` if none is waiting.
    fn fill(&mut self) {
        if self.pending.is_none() && self.powered() {
            self.pending = self.source.next_mg();
        }
    }

    /// The latched sample as the output registers hold it.
    fn raw(&self) -> [i16; 3] {
        let ctrl1 = self.regs[usize::from(CTRL_REG1)];
        let ctrl4 = self.regs[usize::from(CTRL_REG4)];
        let (low_power, high_res) = (ctrl1 & 0x08 != 0, ctrl4 & 0x08 != 0);
        let fs = usize::from((ctrl4 >> 4) & 0x03);
        let mut out = [0; 3];
        for (axis, (o, mg)) in out.iter_mut().zip(self.latched_mg).enumerate() {
            if ctrl1 & (1 << axis) != 0 {
                *o = encode(mg, fs, low_power, high_res);
            }
        }
        out
    }

    fn store(&mut self, reg: u8, value: u8) {
        let read_only = matches!(reg, 0x00..=0x1D | STATUS_REG..=0x2D | 0x2F | 0x31 | 0x35 | 0x39);
        if read_only {
            return;
        }
        if reg == CTRL_REG5 && value & 0x80 != 0 {
            // BOOT: reload the trimming and the power-on state.
            self.regs = power_on_registers();
            return;
        }
        self.regs[usize::from(reg)] = value;
    }
}

fn power_on_registers() -> [u8; 0x40] {
    let mut regs = [0; 0x40];
    regs[usize::from(REG_WHO_AM_I)] = WHO_AM_I;
    regs[usize::from(CTRL_REG1)] = 0x07; // power-down, X/Y/Z enabled
    regs[0x1E] = 0x10; // CTRL_REG0: pull-up connected
    regs
}

/// Milli-g to left-justified counts: `fs` 0–3 is ±2/4/8/16 g; 12 bits in high-resolution
/// mode, 8 in low-power, else 10; rounded to a digit, clipped at full scale. For
/// high-resolution ±8/±16 g this is [`Range::to_raw`](crate::fall::Range::to_raw).
pub(super) fn encode(mg: i16, fs: usize, low_power: bool, high_res: bool) -> i16 {
    const HR: [i32; 4] = [1, 2, 4, 12];
    let (bits, scale) = match (low_power, high_res) {
        (true, _) => (8, 16),
        (false, true) => (12, 1),
        (false, false) => (10, 4),
    };
    let digit = HR[fs & 3] * scale;
    let m = i32::from(mg);
    let digits = (m + m.signum() * digit / 2) / digit;
    let max = (1 << (bits - 1)) - 1;
    (digits.clamp(-max - 1, max) << (16 - bits)) as i16
}

impl<S: AccelSource> Registers for VirtualLis3dh<S> {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn select(&mut self, byte: u8) {
        self.ptr = byte & 0x7F;
        self.auto_increment = byte & 0x80 != 0;
        self.first_read = true;
    }

    fn write_next(&mut self, byte: u8) {
        if self.ptr < 0x40 {
            self.store(self.ptr, byte);
        }
        self.step();
    }

    fn read_next(&mut self) -> u8 {
        let reg = self.ptr;
        if self.first_read && reg == OUT_X_L {
            self.fill();
            if let Some(mg) = self.pending.take() {
                self.latched_mg = mg;
                self.samples = self.samples.saturating_add(1);
            }
        }
        self.first_read = false;
        let value = match reg {
            STATUS_REG => {
                self.fill();
                if self.pending.is_some() {
                    DATA_READY
                } else {
                    0
                }
            }
            0x40.. => 0,
            r => self.register(r),
        };
        self.step();
        value
    }
}

impl<S> VirtualLis3dh<S> {
    fn step(&mut self) {
        if self.auto_increment {
            self.ptr = self.ptr.wrapping_add(1) & 0x7F;
        }
    }
}

#[cfg(test)]
mod tests;
