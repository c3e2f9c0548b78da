//! The README's demo command, end to end: `linli-sim demo --exit` starts the real
//! gateway (debug build) on its embedded defaults with the simulated neighbourhood, plays
//! the night at the storyline's own speed (10×, as a newcomer sees it; faster runs leave
//! the vital-sign board's 320 ms FIFO no slack on a busy machine) and exits 0 only when
//! every alarm and page the storyline expects came (and none it rules out). Its output
//! tells the newcomer where to look.

mod common;
use common::linli_bin;

#[test]
fn the_demo_plays_the_night_and_every_expected_alarm_and_page_comes() {
    let dir = std::env::temp_dir().join(format!("linli-demo-test-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_linli-sim"))
        .args(["demo", "--exit", "--dir"])
        .arg(&dir)
        .arg("--gateway-bin")
        .arg(linli_bin())
        .output()
        .expect("running linli-sim demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(dir.join("linli.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{report}\n--- gateway log tail ---\n{}",
        tail(&log)
    );
    // Where to look.
    assert!(stdout.contains("gateway  http://127.0.0.1:"), "{report}");
    assert!(stdout.contains("/api/alarms"), "{report}");
    // The storyline's verdicts, all passed; the roster change shows in who is paged.
    assert!(stdout.matches("PASS ").count() >= 13, "{report}");
    assert!(!stdout.contains("FAIL "), "{report}");
    assert!(
        stdout.contains("PAGE to Zhang Min (zhang): [P1] fall"),
        "{report}"
    );
    assert!(
        stdout.contains("PAGE to Wang Fang (wang): [P1] sos"),
        "{report}"
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
