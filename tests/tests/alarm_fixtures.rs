//! Runs every alarm scenario fixture in `tests/fixtures/alarms/` through the real rule
//! engine, lifecycle and alarm database at simulated speed.

use std::path::Path;

#[test]
fn every_alarm_fixture_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/alarms");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 14,
        "expected at least 14 fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        if let Err(e) = linli_system_tests::fixture::run(f) {
            failures.push(format!(
                "{}: {e:#}",
                f.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
