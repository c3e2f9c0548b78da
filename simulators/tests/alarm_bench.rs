//! `bench alarms` at tiny size: part 1 (the replayed fleet through the alarm core) raises
//! the alarms its injected anomalies call for, evaluates at a positive rate, and is
//! deterministic; part 2 drives the real gateway for a few seconds and reads its
//! reading-to-alarm latency from `/metrics`.

mod common;
use common::linli_bin;
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
