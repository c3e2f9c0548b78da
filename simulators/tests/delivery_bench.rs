//! `bench delivery` at tiny size: the real gateway (debug build) under a little
//! background telemetry pages a caregiver through the benchmark's webhook receiver for
//! every SOS, each page is signed, matched to its SOS, and its latency is positive. No
//! latency threshold: a slow machine must not fail this.

use std::time::Duration;

use linli_sim::bench_delivery::{run_bench, DeliveryConfig};

/// The `linli` binary of this workspace (debug), built if needed (a no-op after the test
/// script's workspace build).
fn linli_bin() -> std::path::PathBuf {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sos_pages_once_with_a_sane_latency() {
    let cfg = DeliveryConfig {
        alarms: 200,
        alarm_rate: 100.0,
        connections: 20,
        rate: 2_000.0,
        warmup: 1.0,
        tail: 0.5,
        window: 20,
        runs: 2,
        drain_timeout: Duration::from_secs(60),
        progress: None,
        ..DeliveryConfig::new(linli_bin())
    };
    let runs = run_bench(&cfg).await.unwrap();
    assert_eq!(runs.len(), 2);
    for r in &runs {
        assert_eq!(r.alarms_sent, 200, "{:?}", r.warnings);
        assert_eq!(r.pages_received, 200, "{:?}", r.warnings);
        assert_eq!(r.raised, 200, "{:?}", r.warnings);
        assert_eq!(r.delivered, 200, "{:?}", r.warnings);
        assert_eq!(r.bad_signatures, 0);
        assert_eq!(r.unmatched, 0);
        assert_eq!(r.duplicates, 0);
        assert_eq!(r.latencies_s.len(), 200);
        // Positive, ordered, and within the wait the bench allows (sane, not fast).
        assert!(r.latencies_s[0] > 0.0, "{:?}", &r.latencies_s[..3]);
        assert!(r.p50_s() <= r.p99_s() && r.p99_s() <= r.max_s());
        assert!(r.max_s() < 60.0 + cfg.alarms as f64 / cfg.alarm_rate);
        assert!(r.background_rate > 0.0 && r.gateway_cpu_s > 0.0);
        assert_eq!(r.to_raised_ms.len(), 200);
    }
}
