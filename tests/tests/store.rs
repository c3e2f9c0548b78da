//! The embedded time-series store end to end: readings published over MQTT come back
//! from `/api/series` (raw, bucketed, CSV), late and resent points overwrite instead of
//! duplicating, bad queries name their bad keys, and after kill -9 of the real process
//! every acked point is still there, even with journal segments released behind it.

use std::collections::BTreeSet;
use std::time::Duration;

use linli_gateway::registry::Trust;
use linli_protocol::report::{Report, WaterLevel};
use linli_protocol::DeviceKind;
use linli_sim::device::SimDevice;
use linli_system_tests::*;

fn level(mm: u16) -> Report {
    Report::WaterLevel(WaterLevel { level_mm: mm })
}

/// Device clock of the first reading, seconds: two days ago (the store keeps points
/// within the retention window and up to a day ahead).
static T0: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (now - 2 * 86_400) as u32
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_come_back_raw_bucketed_and_as_csv() -> anyhow::Result<()> {
    let gw = TestGateway::start(|c| c.store.chunk_points = 64).await?;
    let mut dev = gw.provision("wl-7", DeviceKind::WaterLevel, Trust::Sealed)?;
    let mut m = connect_device(gw.gw.mqtt_v4, &dev).await?;
    let topic = dev.topic_for(&level(0));
    // 120 minutes of readings, sent newest first (out of order), value = minute index.
    for i in (0..120u32).rev() {
        let (_, f) = dev.seal_next(*T0 + i * 60, level(i as u16));
        m.publish(&topic, f).await?;
    }
    // A corrected reading for minute 7 (a new frame, same device time) overwrites.
    let (_, f) = dev.seal_next(*T0 + 7 * 60, level(700));
    m.publish(&topic, f).await?;
    assert_eq!(m.acks(&dev, 121, Duration::from_secs(20)).await.len(), 121);

    let http = gw.http();
    let t0 = i64::from(*T0) * 1000;
    let url = format!(
        "{http}/api/series?device=wl-7&metric=water_level_m&from={t0}&to={}",
        t0 + 120 * 60_000
    );
    let fetch = || async {
        let v = get_json(&url).await.ok()?;
        v["points"].as_array().cloned()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            fetch().await.is_some_and(|p| p.len() == 120)
        })
        .await,
        "120 points stored"
    );
    let points = fetch().await.unwrap_or_default();
    for (i, p) in points.iter().enumerate() {
        let want = if i == 7 { 0.7 } else { i as f64 / 1000.0 };
        assert_eq!(
            p[0].as_i64(),
            Some(t0 + i as i64 * 60_000),
            "sorted by time"
        );
        assert_eq!(p[1].as_f64(), Some(want), "value at minute {i}");
    }

    let hourly = get_json(&format!("{url}&step=1h&agg=max")).await?;
    let hourly = hourly["points"].as_array().cloned().unwrap_or_default();
    let maxima: Vec<f64> = hourly.iter().filter_map(|p| p[1].as_f64()).collect();
    assert!(!hourly.is_empty() && maxima.contains(&0.7), "{hourly:?}");
    let counts = get_json(&format!("{url}&step=1h&agg=count")).await?;
    let total: f64 = counts["points"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p[1].as_f64()).sum())
        .unwrap_or(0.0);
    assert_eq!(total, 120.0, "each point counted once");

    let (status, csv) = get(&url.replace("/api/series?", "/api/series.csv?")).await?;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time_ms,value");
    assert_eq!(lines.len(), 121);
    assert_eq!(lines[8], format!("{},0.7", t0 + 7 * 60_000));

    assert_eq!(
        scrape(&http, "linli_follower_up{follower=\"store\"}").await?,
        1.0
    );
    let latest = get_json(&format!("{http}/api/devices/wl-7/latest")).await?;
    assert_eq!(latest[0]["metric"], "water_level_m");
    assert_eq!(latest[0]["value"].as_f64(), Some(0.119));
    let list = get_json(&format!("{http}/api/series/list?device=wl-7")).await?;
    assert_eq!(list[0]["zone"], "zone-1");

    let (status, body) = get(&format!(
        "{http}/api/series?metric=water_level_m&from=yesterday&step=1w&agg=median"
    ))
    .await?;
    assert_eq!(status, 400);
    for key in ["device:", "from:", "step:", "agg:"] {
        assert!(body.contains(key), "{key} named in {body}");
    }
    let (status, _) = get(&format!("{http}/api/series?device=wl-7&metric=nope")).await?;
    assert_eq!(status, 404);
    Ok(())
}

async fn stored_times(http: &str) -> anyhow::Result<BTreeSet<i64>> {
    let t0 = i64::from(*T0) * 1000;
    let r = get_json(&format!(
        "{http}/api/series?device=wl-1&metric=water_level_m&from={t0}&to={}",
        t0 + 10_000_000_000
    ))
    .await?;
    let points = r["points"].as_array().cloned().unwrap_or_default();
    let set: BTreeSet<i64> = points.iter().filter_map(|p| p[0].as_i64()).collect();
    anyhow::ensure!(set.len() == points.len(), "duplicate timestamps");
    Ok(set)
}

/// Publishes `n` new frames, device time = *T0 + counter seconds.
async fn publish_round(
    m: &Mqtt,
    dev: &mut SimDevice,
    topic: &str,
    sent: &mut BTreeSet<u32>,
    n: u32,
) -> anyhow::Result<()> {
    for _ in 0..n {
        let c = dev.counter;
        let (c2, f) = dev.seal_next(*T0 + c, level((c % 5000) as u16));
        sent.insert(c2);
        m.publish(topic, f).await?;
    }
    Ok(())
}

fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("data").join("journal"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acked_point_with_journal_segments_released() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, mqtt, http) = write_process_config(
        dir.path(),
        "[ingest]\nsegment_mib = 1\ncheckpoint_interval_s = 1\n\
         [store]\nchunk_points = 256\nhead_max_age_s = 1\n",
    )?;
    let mut dev = provision_cli(&config, "wl-1", "water_level")?;
    let mut early = provision_cli(&config, "wl-2", "water_level")?;
    let mut gw = spawn_gateway(&config, mqtt, http).await?;
    let topic = dev.topic_for(&level(0));
    // A device that reports a little, then goes quiet while others fill the journal.
    let mut m_early = connect_device(gw.mqtt, &early).await?;
    let mut early_sent = BTreeSet::new();
    let early_topic = early.topic_for(&level(0));
    publish_round(&m_early, &mut early, &early_topic, &mut early_sent, 10).await?;
    assert_eq!(
        m_early
            .acks(&early, 10, Duration::from_secs(10))
            .await
            .len(),
        10
    );
    m_early.kill();

    let mut m = connect_device(gw.mqtt, &dev).await?;
    let mut sent = BTreeSet::new();
    let mut acked = BTreeSet::new();
    // ~12 MB of journal in 1 MiB segments, acked in windows of 500 frames.
    for _ in 0..60 {
        publish_round(&m, &mut dev, &topic, &mut sent, 500).await?;
        acked.extend(m.acks(&dev, 500, Duration::from_secs(30)).await);
    }
    let most = segments(dir.path());
    assert!(
        eventually(Duration::from_secs(30), || async {
            // Sealed by age, checkpointed, released: fewer segments than were written.
            segments(dir.path()) < most.max(2)
        })
        .await,
        "journal segments released (had {most})"
    );
    let lag_key = "linli_follower_lag_records{follower=\"store\"}";
    assert!(
        eventually(Duration::from_secs(30), || async {
            scrape(&format!("http://{http}"), lag_key)
                .await
                .is_ok_and(|lag| lag < 1000.0)
        })
        .await,
        "the store follower catches up with the journal when ingest is idle"
    );
    acked.extend(m.acks(&dev, usize::MAX, Duration::from_millis(500)).await);
    // Then a burst and kill -9 while it is in flight.
    publish_round(&m, &mut dev, &topic, &mut sent, 2000).await?;
    acked.extend(m.acks(&dev, 1000, Duration::from_secs(30)).await);
    gw.child.kill()?;
    gw.child.wait()?;
    acked.extend(m.acks(&dev, usize::MAX, Duration::from_millis(300)).await);

    let gw2 = spawn_gateway(&config, mqtt, http).await?;
    let times = stored_times(&gw2.http).await?;
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|c| !times.contains(&((i64::from(*T0) + i64::from(*c)) * 1000)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acked points lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // The quiet device's frames sit in released segments, yet a resend of one is still
    // known as seen (the replay windows were checkpointed): re-acked, not stored again.
    let mut m2 = connect_device(gw2.mqtt, &early).await?;
    m2.publish(&early_topic, early.seal_with(5, *T0 + 5, level(4999)))
        .await?;
    assert_eq!(m2.acks(&early, 1, Duration::from_secs(10)).await, vec![5]);
    let replays = scrape(&gw2.http, "linli_rejected_total{reason=\"replay\"}").await?;
    assert_eq!(replays, 1.0, "the resend is refused as a replay");
    let t0 = i64::from(*T0) * 1000;
    let early_points = get_json(&format!(
        "{}/api/series?device=wl-2&metric=water_level_m&from={t0}&to={}",
        gw2.http,
        t0 + 100_000
    ))
    .await?;
    let early_points = early_points["points"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(early_points.len(), 10);
    assert!(early_points.iter().all(|p| p[1].as_f64() != Some(4.999)));
    Ok(())
}
