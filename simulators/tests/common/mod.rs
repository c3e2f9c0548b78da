//! Helpers shared by the simulators' smoke tests.

/// The `linli` binary of this workspace (debug), built if needed (a no-op after the test
/// script's workspace build).
pub fn linli_bin() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "linli-gateway",
            "--bin",
            "linli",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build of linli failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("debug/linli")
}
