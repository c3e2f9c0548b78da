//! `bench alarms` at tiny size: part 1 (the replayed fleet through the alarm core) raises
//! the alarms its injected anomalies call for, evaluates at a positive rate, and is
//! deterministic; part 2 drives the real gateway for a few seconds and reads its
//! reading-to-alarm latency from `/metrics`.

use linli_sim::bench_alarms::eval::EvalConfig;
use linli_sim::bench_alarms::latency::LatencyConfig;
use linli_sim::bench_alarms::{run_eval, run_latency};

#[test]
fn part1_smoke_raises_alarms_at_a_positive_rate() {
    let cfg = EvalConfig {
        subjects: 50,
        hours: 1.0,
        seed: 7,
        progress_every_ms: None,
        ..EvalConfig::default()
    };
    let runs = run_eval(&cfg, 2).unwrap();
    let r = &runs[0];
    assert!(r.readings > 5_000, "{} readings", r.readings);
    assert!(r.rate() > 0.0);
    assert!(r.raised() > 0, "no alarm raised: {r:?}");
    // At least one SOS is injected into any span; every one raises (or repeats) an alarm.
    assert!(r.injected.sos >= 1);
    assert!(
        r.raised_by_kind.get("sos").copied().unwrap_or(0) >= 1,
        "{r:?}"
    );
    assert_eq!(runs[1].readings, r.readings);
    assert_eq!(runs[1].raised_by_kind, r.raised_by_kind);
}

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
async fn part2_smoke_reads_latency_from_the_real_gateway() {
    let cfg = LatencyConfig {
        gateway_bin: linli_bin(),
        connections: 20,
        rate: 1_000.0,
        seconds: 3.0,
        warmup: 1.0,
        alarm_share: 0.01,
        window: 20,
        fsync: "batch".into(),
        drain_timeout: std::time::Duration::from_secs(20),
        progress: false,
    };
    let r = run_latency(&cfg, false).await.unwrap();
    assert_eq!(r.accepted, r.offered, "{r:?}");
    assert_eq!(r.alarm_readings, 30);
    // The first 20 devices hold 4 residents' pendants: each raises once, then repeats.
    assert_eq!(r.raised, r.residents, "{r:?}");
    assert_eq!(r.samples, 30, "{r:?}");
    assert!(r.p99_s >= r.p50_s && r.p99_s < 5.0, "{r:?}");
    assert!(r.ingest_rate() > 0.0);
}
