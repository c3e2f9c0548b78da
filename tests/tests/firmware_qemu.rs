//! The pendant's firmware on a Cortex-M4: the `pendant_fall` ELF (firmware/qemu) runs on
//! QEMU's mps2-an386 with semihosting and its exit status is the verdict. Through the
//! device's real path (virtual LIS3DH, lis3dh driver, pendant application, node, outbox,
//! publisher) a fall goes out sealed; the gateway side opens and decodes every frame as
//! queued and acks it, and the outbox ends empty. The event channel carries exactly
//! `[Impact, Fall]`; the look-alikes publish no event-channel report. And a build whose
//! frames are tampered with must fail.

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
    let first_ack = format!("ok   device: ack #0 on linli/v1/{DEVICE_ID}/down/ack: Ok(Acked(0))");
    for want in [
        fall_line.as_str(),
        "ok   gateway: the event-channel reports are exactly [Impact, Fall]",
        "ok   pendant: 6000 samples through the virtual LIS3DH and the lis3dh driver, 0 bus errors",
        "ok   device: outbox empty after the acks (0 left)",
        first_ack.as_str(),
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
    // Nothing was acked, so the device still holds its frames.
    assert!(
        out.contains("FAIL device: outbox empty after the acks"),
        "{out}"
    );
    assert!(out.contains(FAIL_LINE) && !out.contains(PASS_LINE), "{out}");
    Ok(())
}
