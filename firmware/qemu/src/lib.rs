//! The on-target test of the pendant's fall path, shared by the `pendant_fall` binary's
//! two entries: a Cortex-M4 under QEMU (mps2-an386, semihosting, exit code = verdict)
//! and the host (std, process exit code). `no_std` and allocation-free, so both run the
//! very same code.
//!
//! Owns the check ([`check::pendant_fall_check`]) and its in-memory broker
//! ([`broker::MemoryBroker`]); does not own the fall detector, the wire contract, the
//! target's startup or how QEMU is run (tests/tests/firmware_qemu.rs does that).

#![cfg_attr(not(test), no_std)]

pub mod broker;
pub mod check;

pub use check::{detector_path, pendant_fall_check, Verdict, FAIL_LINE, PASS_LINE};
