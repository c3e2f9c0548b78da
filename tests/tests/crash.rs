//! Kill -9 the real `linli` process while a device publishes; on restart every acked
//! reading is there, resends are acked without being stored twice, and nothing the
//! device still held is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use linli_protocol::report::{Battery, Report};
use linli_system_tests::*;

fn battery(i: u32) -> Report {
    Report::Battery(Battery {
        millivolts: 3000 + (i % 1000) as u16,
        percent: 50,
    })
}

async fn stored(http: &str) -> anyhow::Result<Vec<u64>> {
    let r = get_json(&format!("{http}/api/devices/hub-1/readings?limit=100000")).await?;
    Ok(r.as_array()
        .map(|a| a.iter().filter_map(|r| r["counter"].as_u64()).collect())
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_acks_loses_no_acked_reading() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, mqtt, http) =
        write_process_config(dir.path(), "[ingest]\nrecent_per_device = 100000\n")?;
    let mut dev = provision_cli(&config, "hub-1", "home_hub")?;
    let mut gw = spawn_gateway(&config, mqtt, http).await?;
    let mut m = connect_device(gw.mqtt, &dev).await?;
    let topic = dev.topic_for(&battery(0));

    // Publish like firmware does: at most 200 frames unacked (its outbox), and kill -9
    // right after a burst, while frames and acks are in flight.
    let mut sent = BTreeSet::new();
    let mut acked = BTreeSet::new();
    for round in 0..20u32 {
        for i in 0..100 {
            let (c, f) = dev.seal_next(0, battery(round * 100 + i));
            sent.insert(c);
            m.publish(&topic, f).await?;
        }
        if round == 14 {
            break;
        }
        while sent.len() - acked.len() > 200 {
            let got = m.acks(&dev, 1, Duration::from_secs(10)).await;
            anyhow::ensure!(!got.is_empty(), "acks stopped before the kill");
            acked.extend(got);
        }
    }
    gw.child.kill()?; // SIGKILL
    gw.child.wait()?;
    acked.extend(m.acks(&dev, usize::MAX, Duration::from_millis(500)).await);
    assert!(
        acked.len() >= 1000,
        "acks arrived before the kill: {}",
        acked.len()
    );

    let gw2 = spawn_gateway(&config, mqtt, http).await?;
    let after_restart = stored(&gw2.http).await?;
    let set: BTreeSet<u64> = after_restart.iter().copied().collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|c| !set.contains(&u64::from(**c)))
        .collect();
    assert!(lost.is_empty(), "acked but lost after kill -9: {lost:?}");
    assert_eq!(
        set.len(),
        after_restart.len(),
        "no duplicates after recovery"
    );

    // The device resends everything it holds unacked; each is acked, none stored twice,
    // and afterwards every frame ever sent is stored exactly once.
    let unacked: Vec<u32> = sent.difference(&acked).copied().collect();
    let mut m2 = connect_device(gw2.mqtt, &dev).await?;
    for c in &unacked {
        m2.publish(&topic, dev.seal_with(*c, 0, battery(*c)))
            .await?;
    }
    let re_acked: BTreeSet<u32> = m2
        .acks(&dev, unacked.len(), Duration::from_secs(20))
        .await
        .into_iter()
        .collect();
    assert_eq!(re_acked.len(), unacked.len(), "every resend is acked");
    let finally = stored(&gw2.http).await?;
    let all: BTreeSet<u64> = sent.iter().map(|c| u64::from(*c)).collect();
    assert_eq!(finally.len(), all.len(), "each frame stored exactly once");
    assert_eq!(finally.iter().copied().collect::<BTreeSet<_>>(), all);
    Ok(())
}
