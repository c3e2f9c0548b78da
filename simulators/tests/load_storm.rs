//! Reconnect storms against the real gateway (debug build): 2,000 sealed devices
//! publishing, the gateway killed with SIGKILL and restarted mid-run; every device must
//! come back online, every frame it saw acked must be in the gateway, and nothing held
//! is left unacked. A smaller run drops every device's connection instead. No timing
//! threshold: a slow machine must not fail this.

mod common;
use common::linli_bin;
use std::time::Duration;

use linli_sim::traffic::{run, LoadConfig, Storm, StormCause};

fn storm_run(devices: usize, cause: StormCause) -> LoadConfig {
    LoadConfig {
        devices,
        rate: 1_000.0,
        seconds: 12.0,
        storm: Some(Storm {
            at_s: 4.0,
            cause,
            jitter_s: 4.0,
        }),
        drain_timeout: Duration::from_secs(120),
        progress: Some(Duration::from_secs(5)),
        ..LoadConfig::new(linli_bin())
    }
}

fn assert_clean(r: &linli_sim::traffic::LoadReport, devices: usize) {
    r.print();
    let storm = r.storm.as_ref().expect("a storm happened");
    assert!(storm.all_back_s.is_some(), "not every device came back");
    assert_eq!(r.online_at_end, devices);
    assert_eq!(r.waiting_at_end, 0, "frames left unacked");
    assert_eq!(r.sealed, r.acked);
    assert!(r.sealed > 8_000, "the run published ({} frames)", r.sealed);
    // Every acked frame is in the gateway, once.
    assert_eq!(r.check.devices, devices);
    assert_eq!(r.check.acked_frames, r.acked);
    assert_eq!(r.check.lost, 0, "{:?}", r.check.examples);
    assert_eq!(r.check.duplicates, 0);
    assert!(!r.latencies_ms.is_empty() && r.latency_ms(0.5) <= r.latency_ms(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_devices_come_back_after_the_gateway_is_killed_and_nothing_acked_is_lost() {
    let r = run(&storm_run(2_000, StormCause::Restart)).await.unwrap();
    assert_clean(&r, 2_000);
    let storm = r.storm.as_ref().unwrap();
    assert!(storm.gateway_back_s.is_some());
    // The devices lost their sessions and held frames through the outage.
    assert!(r.connects >= 2 * 2_000, "{} connects", r.connects);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_drop_their_connections_come_back_and_resend_what_they_held() {
    let r = run(&storm_run(300, StormCause::Drop)).await.unwrap();
    assert_clean(&r, 300);
    assert!(r.storm.as_ref().unwrap().gateway_back_s.is_none());
}
