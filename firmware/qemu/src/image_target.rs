//! The image binaries' target side, included by `pendant_image` and
//! `street_light_image` (`#[path]`): a 1 ms SysTick, minimq's embassy-time driver over
//! it, and a panic handler that resets the board.
//!
//! The driver's `schedule_wake` wakes at once: the images run a busy-polling executor
//! ([`linli_firmware_qemu::block_on`]) that polls again anyway, so a timer just sees
//! the clock pass its deadline. A board that sleeps between ticks would wake the waker
//! from the SysTick handler instead.

use core::cell::Cell;
use core::task::Waker;

use cortex_m::interrupt::{self, Mutex};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;
use embassy_time_driver::{Driver, TICK_HZ};

/// The core clock: QEMU's mps2-an386 runs its Cortex-M4 at 25 MHz.
pub const CORE_HZ: u32 = 25_000_000;

/// Milliseconds since [`start_clock`], counted by the SysTick exception (64 bits: it
/// never wraps, as embassy-time requires).
static MILLIS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

#[exception]
fn SysTick() {
    interrupt::free(|cs| {
        let ms = MILLIS.borrow(cs);
        ms.set(ms.get() + 1);
    });
}

/// Starts SysTick at 1 kHz.
pub fn start_clock(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1_000 - 1);
    syst.clear_current();
    syst.enable_counter();
    syst.enable_interrupt();
}

/// embassy-time's clock: the SysTick count in its ticks.
struct SysTickDriver;

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        interrupt::free(|cs| MILLIS.borrow(cs).get()) * (TICK_HZ / 1_000)
    }

    fn schedule_wake(&self, _at: u64, waker: &Waker) {
        waker.wake_by_ref();
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver);

/// A panic restarts the device (its counter is persisted; the outbox is lost).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    SCB::sys_reset()
}
