//! `bench modbus` at tiny size: the real gateway (debug build) polls a few simulated lamps
//! and meters; every poll lands as a reading and none fails. The pymodbus peer polls the
//! same street with the same reads and every poll of its succeeds too. No CPU or jitter
//! threshold: a slow machine must not fail this.

mod common;
use common::linli_bin;

use linli_sim::bench_modbus::{run_bench, ModbusBenchConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_poll_becomes_a_reading() {
    let cfg = ModbusBenchConfig {
        gateway_bin: linli_bin(),
        lamps: 20,
        meters: 5,
        poll_ms: 500,
        warmup_s: 2.0,
        seconds: 3.0,
        runs: 1,
        peer: true,
    };
    let report = run_bench(&cfg).await.unwrap();
    assert_eq!(report.gateway.len(), 1);
    let r = report.gateway[0];
    assert_eq!(r.errors, 0.0, "{r:?}");
    // 25 devices at 2 polls/s: about 50 readings/s (timing at the edges is loose).
    assert!(r.readings_per_s > 30.0 && r.readings_per_s < 70.0, "{r:?}");
    assert!(r.polls >= 100, "{r:?}");
    assert!(
        r.jitter_p50_ms <= r.jitter_p99_ms && r.jitter_p99_ms <= r.jitter_max_ms,
        "{r:?}"
    );
    assert!(r.gateway_cpu_pct > 0.0, "{r:?}");
    assert_eq!(report.peer.len(), 1);
    let p = report.peer[0];
    assert_eq!(p.errors, 0.0, "{p:?}");
    assert!(p.readings_per_s > 30.0 && p.readings_per_s < 70.0, "{p:?}");
    assert!(p.polls >= 100, "{p:?}");
    assert!(p.cpu_pct > 0.0, "{p:?}");
}
