//! The pendant's firmware on a Cortex-M4: the `pendant_fall` ELF (firmware/qemu) runs on
//! QEMU's mps2-an386 with semihosting and its exit status is the verdict. A fall is
//! detected, sealed, published, opened and decoded by the gateway side as sent; the
//! look-alikes publish nothing. And a build whose frames are tampered with must fail.

use std::time::Duration;

use anyhow::{Context, Result};
use linli_firmware_qemu::check::DEVICE_ID;
use linli_firmware_qemu::{FAIL_LINE, PASS_LINE};
use linli_system_tests::qemu::{firmware_elf, run_qemu, QemuRun};

const PACKAGE: &str = "linli-firmware-qemu";
const BIN: &str = "pendant_fall";
/// Only for a hung guest: the check takes well under a second of emulation.
const HANG_AFTER: Duration = Duration::from_secs(120);

fn run(features: &[&str]) -> Result<QemuRun> {
    let elf = firmware_elf(PACKAGE, BIN, features)?;
    let run = run_qemu(&elf, "mps2-an386", "cortex-m4", HANG_AFTER)
        .with_context(|| format!("run {} under QEMU", elf.display()))?;
    eprintln!(
        "{} under QEMU, {:?}, {:.2?}:\n{}{}",
        elf.display(),
        run.status,
        run.took,
        run.stdout,
        run.stderr
    );
    Ok(run)
}

#[test]
fn pendant_fall_passes_on_a_cortex_m4() -> Result<()> {
    let run = run(&[])?;
    let out = &run.stdout;
    let status = run.status.context("QEMU hung: killed after 120 s")?;
    assert!(status.success(), "exit {status}:\n{out}{}", run.stderr);
    let fall_line = format!("ok   gateway: pendant fall from {DEVICE_ID} on the event channel");
    for want in [
        fall_line.as_str(),
        "ok   gateway: a flipped bit and a moved frame are refused",
        "ok   look-alike SitHard",
        "ok   look-alike Drop",
        PASS_LINE,
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert_eq!(
        out.lines().last(),
        out.lines().find(|l| l.starts_with(PASS_LINE))
    );
    Ok(())
}

#[test]
fn tampered_frames_make_it_exit_non_zero() -> Result<()> {
    let run = run(&["tamper"])?;
    let out = &run.stdout;
    let status = run.status.context("QEMU hung: killed after 120 s")?;
    assert_eq!(status.code(), Some(1), "{out}{}", run.stderr);
    assert!(out.contains("FAIL gateway: open: Tampered"), "{out}");
    assert!(out.contains(FAIL_LINE) && !out.contains(PASS_LINE), "{out}");
    Ok(())
}
