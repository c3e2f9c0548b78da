//! Supervision: liveness walks unknown → ok → late → lost from heartbeats, and a
//! device's Last Will marks it late at once.

use std::time::Duration;

use linli_gateway::registry::Trust;
use linli_protocol::report::{Battery, Heartbeat, Report};
use linli_protocol::topic::UpChannel;
use linli_protocol::DeviceKind;
use linli_system_tests::*;

async fn liveness(http: &str, id: &str) -> String {
    get_json(&format!("{http}/api/devices/{id}"))
        .await
        .map(|d| d["liveness"].as_str().unwrap_or("?").to_owned())
        .unwrap_or_default()
}

async fn becomes(http: &str, id: &str, want: &str, within: Duration) -> bool {
    eventually(within, || async move { liveness(http, id).await == want }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_walks_from_unknown_to_ok_late_and_lost() -> anyhow::Result<()> {
    let tg = TestGateway::start(|_| {}).await?;
    let http = tg.http();
    let mut dev = tg.provision_with_heartbeat("hub-9", DeviceKind::HomeHub, Trust::Sealed, 1)?;
    let quiet = tg.provision_with_heartbeat("hub-quiet", DeviceKind::HomeHub, Trust::Sealed, 1)?;
    assert_eq!(liveness(&http, &quiet.id).await, "unknown");
    let mut m = connect_device(tg.gw.mqtt_v4, &dev).await?;
    let (_, f) = dev.seal_next(0, Report::Heartbeat(Heartbeat { uptime_s: 5 }));
    m.publish(&dev.topic(UpChannel::Heartbeat), f).await?;
    let (_, f) = dev.seal_next(
        0,
        Report::Battery(Battery {
            millivolts: 3600,
            percent: 77,
        }),
    );
    m.publish(&dev.topic(UpChannel::Status), f).await?;
    assert_eq!(m.acks(&dev, 2, Duration::from_secs(10)).await.len(), 2);
    assert_eq!(liveness(&http, &dev.id).await, "ok");
    let d = get_json(&format!("{http}/api/devices/hub-9")).await?;
    assert_eq!(d["battery_pct"], 77);
    assert!(d["last_seen_ms"].as_u64().is_some());
    assert!(
        becomes(&http, &dev.id, "late", Duration::from_secs(5)).await,
        "late after a missed heartbeat"
    );
    assert!(
        becomes(&http, &dev.id, "lost", Duration::from_secs(8)).await,
        "lost after three"
    );
    assert_eq!(
        liveness(&http, &quiet.id).await,
        "unknown",
        "never heard stays unknown, not lost"
    );
    let gauges = eventually(Duration::from_secs(5), || {
        let http = http.clone();
        async move {
            let text = get(&format!("{http}/metrics"))
                .await
                .map(|r| r.1)
                .unwrap_or_default();
            metric(&text, "linli_devices{liveness=\"lost\"}") == Some(1.0)
                && metric(&text, "linli_devices{liveness=\"unknown\"}") == Some(1.0)
        }
    })
    .await;
    assert!(gauges, "liveness gauges in /metrics follow");
    // Heard again: ok again.
    let (_, f) = dev.seal_next(0, Report::Heartbeat(Heartbeat { uptime_s: 9 }));
    m.publish(&dev.topic(UpChannel::Heartbeat), f).await?;
    assert!(becomes(&http, &dev.id, "ok", Duration::from_secs(5)).await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_last_will_marks_a_device_late_and_a_forged_one_is_refused() -> anyhow::Result<()>
{
    let tg = TestGateway::start(|_| {}).await?;
    let http = tg.http();
    let mut dev = tg.provision_with_heartbeat("bed-4", DeviceKind::Bed, Trust::Sealed, 600)?;
    let bystander = tg.provision_with_heartbeat("bed-5", DeviceKind::Bed, Trust::Sealed, 600)?;
    // Firmware seals its will at connect time with a counter it reserves.
    let (_, will_frame) = dev.seal_next(0, Report::ConnectionLost);
    let will = Some((dev.topic(UpChannel::Will), will_frame));
    let m = connect_opts(tg.gw.mqtt_v4, &dev.id, &dev.id, &dev.password, will).await?;
    let (_, f) = dev.seal_next(0, Report::Heartbeat(Heartbeat { uptime_s: 1 }));
    m.publish(&dev.topic(UpChannel::Heartbeat), f).await?;
    assert!(becomes(&http, &dev.id, "ok", Duration::from_secs(5)).await);

    // Another client forging bed-4's will is refused: it is not sealed with bed-4's key.
    let other = connect_device(tg.gw.mqtt_v4, &bystander).await?;
    other
        .publish(&dev.topic(UpChannel::Will), b"gone".to_vec())
        .await?;
    let refused = eventually(Duration::from_secs(5), || {
        let http = http.clone();
        async move {
            scrape(&http, "linli_rejected_total{reason=\"truncated\"}")
                .await
                .ok()
                == Some(1.0)
        }
    })
    .await;
    assert!(refused, "forged will counted as a rejection");
    assert_eq!(
        liveness(&http, &dev.id).await,
        "ok",
        "a forged will changes nothing"
    );

    m.kill();
    assert!(
        becomes(&http, &dev.id, "late", Duration::from_secs(10)).await,
        "will received"
    );
    let d = get_json(&format!("{http}/api/devices/bed-4")).await?;
    assert_eq!(d["disconnected"], true);
    assert_eq!(scrape(&http, "linli_wills_total").await?, 1.0);
    let mut m2 = connect_device(tg.gw.mqtt_v4, &dev).await?;
    let (_, f) = dev.seal_next(0, Report::Heartbeat(Heartbeat { uptime_s: 2 }));
    m2.publish(&dev.topic(UpChannel::Heartbeat), f).await?;
    assert_eq!(m2.acks(&dev, 1, Duration::from_secs(10)).await.len(), 1);
    assert!(becomes(&http, &dev.id, "ok", Duration::from_secs(5)).await);
    Ok(())
}
