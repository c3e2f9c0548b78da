//! `bench delivery` at tiny size: the real gateway (debug build) under a little
//! background telemetry pages a caregiver through the benchmark's webhook receiver for
//! every SOS, each page is signed, matched to its SOS, and its latency is positive. No
//! latency threshold: a slow machine must not fail this.

mod common;
use common::linli_bin;
use std::time::Duration;

use linli_sim::bench_delivery::{run_bench, DeliveryConfig};

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
