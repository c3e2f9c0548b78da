//! `pendant_fall`: runs [`pendant_fall_check`] and turns its verdict into an exit code.
//! Built for thumbv7em-none-eabihf, it is a cortex-m-rt program for QEMU's mps2-an386:
//! lines go out over semihosting and the verdict is a semihosting exit (0 = pass), as
//! tests/tests/firmware_qemu.rs runs it. Built for the host (as `cargo build
//! --workspace` does), it runs the same check with std's I/O and exit code.
//!
//! Owns the two entries and the target's panic handler; does not own the check.

#![cfg_attr(target_os = "none", no_std, no_main)]

use linli_firmware_qemu::{pendant_fall_check, real_pendant};

#[cfg(target_os = "none")]
mod target {
    use cortex_m_rt::entry;
    use cortex_m_semihosting::{debug, hprintln};

    use super::{pendant_fall_check, real_pendant};

    // The `unsafe extern "C"` trampoline `#[entry]` exports as `main` comes from an
    // external macro, which the workspace's `forbid(unsafe_code)` does not look into:
    // no allow is needed, and this crate keeps the workspace lints unchanged.
    #[entry]
    fn main() -> ! {
        let verdict = pendant_fall_check(real_pendant, &mut |line| hprintln!("{}", line));
        debug::exit(if verdict.is_pass() {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
        // Not reached under QEMU; a debugger-less board would park here.
        loop {
            cortex_m::asm::wfi();
        }
    }

    /// A panic is a failed check: say where, and exit non-zero.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        hprintln!("pendant_fall: PANIC {}", info);
        debug::exit(debug::EXIT_FAILURE);
        loop {
            cortex_m::asm::wfi();
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    println!(
        "pendant_fall is meant for thumbv7em-none-eabihf under QEMU (mps2-an386), see \
         tests/tests/firmware_qemu.rs; on the host it runs the same check natively."
    );
    let verdict = pendant_fall_check(real_pendant, &mut |line| println!("{line}"));
    if verdict.is_pass() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
