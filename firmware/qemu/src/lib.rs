//! The on-target test of the pendant's fall path, shared by the `pendant_fall` binary's
//! two entries: a Cortex-M4 under QEMU (mps2-an386, semihosting, exit code = verdict)
//! and the host (std, process exit code). `no_std` and allocation-free, so both run the
//! very same code. The `pendant_image` and `street_light_image` binaries are what a
//! board would flash, built to measure flash and RAM (see the crate's README).
//!
//! Owns the check ([`check::pendant_fall_check`]), its in-memory broker
//! ([`broker::MemoryBroker`]); does not own the device (the
//! `linli-firmware` crate), the wire contract, the target's startup or how QEMU is run
//! (tests/tests/firmware_qemu.rs does that).

#![cfg_attr(not(test), no_std)]

pub mod broker;
pub mod check;
pub mod image;

pub use linli_firmware::publish::block_on;

pub use check::{pendant_fall_check, real_pendant, Verdict, FAIL_LINE, PASS_LINE};
