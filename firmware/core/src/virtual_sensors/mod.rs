//! Virtual chips at register level: each implements [`embedded_hal::i2c::I2c`] with the
//! register map, auto-increment rules and data-ready behaviour of the real part, so the
//! real driver crates (and our [`sensors`](crate::sensors) adapters over them) run
//! unchanged on the host, in simulators and on a Cortex-M under QEMU. `no_std`, no
//! allocation, no clock: time reaches a chip only through its source or an explicit call.
//!
//! - [`VirtualLis3dh`] — accelerometer, fed milli-g by an [`AccelSource`] (a fall
//!   [`Scenario`](crate::fall::scenario::Scenario)).
//! - [`VirtualIna219`] — current/bus monitor, fed by a [`PowerSource`] ([`LampModel`]).
//! - [`VirtualMax30102`] — PPG with its FIFO, fed by a [`PpgSource`]
//!   ([`Synth`](crate::vitals::synth::Synth)); time moves with
//!   [`VirtualMax30102::elapse_ms`].
//! - [`VirtualVl53l0x`] — time-of-flight ranger, fed by a [`DistanceSource`].
//! - [`VirtualTransducer`] — an [`AdcChannel`](crate::sensors::analog::AdcChannel) reading
//!   a water-level transducer over a [`WaterRise`].
//!
//! Every chip answers only its own address, and can be taken off the bus
//! (`set_offline`) to exercise bus errors; the error type is
//! [`embedded_hal::i2c::ErrorKind`]. [`Shared`] lends a chip to a driver while the test
//! or simulator keeps a handle on it (to move time, flip a relay).
//!
//! Owns the register-level behaviour; does not own the physics (the sources do), timing
//! accuracy, or the parts of each chip no driver here uses (interrupt pins, FIFOs of the
//! LIS3DH, the filters).

mod analog;
mod ina219;
mod lis3dh;
mod max30102;
mod pins;
mod sources;
mod vl53l0x;

pub use analog::VirtualTransducer;
pub use ina219::VirtualIna219;
pub use lis3dh::VirtualLis3dh;
pub use max30102::VirtualMax30102;
pub use pins::{VirtualAdc, VirtualPin};
pub use sources::{
    AccelSource, DistanceSource, LampModel, PowerLevels, PowerSource, PpgSource, WaterRise,
};
pub use vl53l0x::VirtualVl53l0x;

use core::cell::RefCell;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

/// What a chip does with the bytes of a transfer: the first written byte selects a
/// register, further written bytes and read bytes go to (and move) the pointer by the
/// chip's own rules.
trait Registers {
    /// The chip's bus attachment.
    fn link(&mut self) -> &mut Link;
    /// A write's first byte.
    fn select(&mut self, byte: u8);
    /// A written data byte.
    fn write_next(&mut self, byte: u8);
    /// A read byte.
    fn read_next(&mut self) -> u8;
}

/// A chip's address and whether it answers.
#[derive(Debug, Clone, Copy)]
struct Link {
    address: u8,
    offline: bool,
    transfers: u32,
}

impl Link {
    const fn new(address: u8) -> Self {
        Link {
            address,
            offline: false,
            transfers: 0,
        }
    }
}

/// Runs one I2C transaction (START … STOP) against `chip`.
fn transfer<R: Registers>(
    chip: &mut R,
    address: u8,
    operations: &mut [Operation<'_>],
) -> Result<(), ErrorKind> {
    let link = chip.link();
    if address != link.address || link.offline {
        return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
    }
    link.transfers = link.transfers.wrapping_add(1);
    for op in operations {
        match op {
            Operation::Write(bytes) => {
                if let Some((&reg, data)) = bytes.split_first() {
                    chip.select(reg);
                    data.iter().for_each(|&b| chip.write_next(b));
                }
            }
            Operation::Read(buf) => buf.iter_mut().for_each(|b| *b = chip.read_next()),
        }
    }
    Ok(())
}

/// Implements the bus traits and the common controls for a chip type with `Registers`.
macro_rules! virtual_i2c {
    ($chip:ident, $source:ident) => {
        impl<S> embedded_hal::i2c::ErrorType for $chip<S> {
            type Error = embedded_hal::i2c::ErrorKind;
        }

        impl<S: $source> embedded_hal::i2c::I2c for $chip<S> {
            fn transaction(
                &mut self,
                address: u8,
                operations: &mut [embedded_hal::i2c::Operation<'_>],
            ) -> Result<(), Self::Error> {
                super::transfer(self, address, operations)
            }
        }

        impl<S> $chip<S> {
            /// Takes the chip off the bus (every transfer NACKed) or puts it back.
            pub fn set_offline(&mut self, offline: bool) {
                self.link.offline = offline;
            }

            /// Transactions answered so far.
            pub fn transfers(&self) -> u32 {
                self.link.transfers
            }

            /// The source.
            pub fn source(&self) -> &S {
                &self.source
            }

            /// The source, to steer it mid-run.
            pub fn source_mut(&mut self) -> &mut S {
                &mut self.source
            }
        }
    };
}
use virtual_i2c;

/// A chip lent to a driver through a `RefCell`, so its owner can still reach it between
/// transfers (`borrow_mut` outside a driver call). Implements [`I2c`] by forwarding; a
/// transfer while the owner holds the chip fails as lost arbitration (another bus master).
#[derive(Debug)]
pub struct Shared<'a, C>(pub &'a RefCell<C>);

impl<C> ErrorType for Shared<'_, C> {
    type Error = ErrorKind;
}

impl<C: I2c<Error = ErrorKind>> I2c for Shared<'_, C> {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        let mut chip = self
            .0
            .try_borrow_mut()
            .map_err(|_| ErrorKind::ArbitrationLoss)?;
        chip.transaction(address, operations)
    }
}
