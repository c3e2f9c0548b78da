//! A host build of the pendant firmware (the real application loop, node, outbox and
//! minimq MQTT client from `linli-firmware`, on a tokio socket; the wearer through a
//! virtual LIS3DH, the real `lis3dh` driver and the firmware's board glue) against the
//! real `linli` gateway process: a fall goes out sealed, is acked and leaves the outbox; while the
//! gateway is down (kill -9) frames are kept; when it returns they are all delivered,
//! alarms first, none lost.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use linli_firmware::app::pendant::Pendant;
use linli_firmware::app::Device;
use linli_firmware::fall::scenario::Kind;
use linli_firmware::node::{Cadence, Node};
use linli_firmware::outbox::Priority;
use linli_firmware::{fall, sos};
use linli_sim::board::{self, Board, Observers, Sent, Snapshot};
use linli_sim::virtual_board::{self, WearerQueue};
use linli_system_tests::*;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

async fn wait(
    status: &mut watch::Receiver<Snapshot>,
    what: &str,
    ok: impl Fn(&Snapshot) -> bool,
) -> Result<Snapshot> {
    let r = tokio::time::timeout(Duration::from_secs(90), async {
        status.wait_for(|s| ok(s)).await.map(|s| *s)
    })
    .await;
    match r {
        Ok(Ok(s)) => Ok(s),
        _ => bail!(
            "the pendant never got to: {what}; last: {:?}",
            *status.borrow()
        ),
    }
}

async fn fall_alarms(http: &str) -> usize {
    let Ok(v) = get_json(&format!("{http}/api/alarms")).await else {
        return 0;
    };
    v["alarms"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|a| a["kind"] == "fall").count())
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Sent>) -> Vec<Sent> {
    let mut v = Vec::new();
    while let Ok(s) = rx.try_recv() {
        v.push(s);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pendant_firmware_delivers_falls_through_a_gateway_outage() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let c = process_config(dir.path(), "")?;
    let (cfg, v4, v5, http) = (c.path, c.mqtt, c.mqtt_v5, c.http);
    let json: Value = serde_json::from_str(&provision_json(&cfg, "pendant-host-1", "pendant")?)?;
    let creds = linli_sim::device::SimDevice::from_credentials_json(&json.to_string())?;
    let gw = spawn_gateway(&cfg, v4, http).await?;

    // The device: the firmware's pendant on a host board, device time 10× real time.
    let key: [u8; 32] = hex::decode(json["key_hex"].as_str().context("key_hex")?)
        .ok()
        .and_then(|k| k.try_into().ok())
        .context("key")?;
    let next = WearerQueue::default();
    let wearer = next.clone();
    let (status_tx, mut status) = watch::channel(Snapshot::default());
    let (sent_tx, mut sent) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let b = Board {
        broker: v5,
        password: creds.password.clone(),
        keepalive_s: 10,
        step_ms: 10,
        speed: 10,
    };
    let id = creds.id.clone();
    let task = board::spawn(move || async move {
        let cadence = Cadence {
            heartbeat_s: 60,
            report_s: 120,
            alarm_report_s: 10,
            resend_ms: 20_000,
        };
        let node = Node::new(
            &id,
            linli_protocol::DeviceKey::new(&key),
            creds.key_id,
            1,
            cadence,
            0,
            1,
        );
        let mut dev: Device<'_, Pendant, 16, 4> = Device::new(
            node,
            Pendant::new(fall::Config::default(), sos::Config::default()),
        );
        let mut pendant = virtual_board::pendant(&wearer, 3_950)?;
        let obs = Observers {
            status: status_tx,
            sent: sent_tx,
        };
        board::run(&b, &mut dev, &mut pendant, &obs, stop_rx).await
    });

    // Online: boot reports are acked and leave the outbox.
    wait(&mut status, "connected with an empty outbox", |s| {
        s.connected && s.acked >= 2 && s.outbox == 0
    })
    .await?;
    // A fall: sealed, published, journaled, acked; the gateway raises the alarm.
    next.push(Kind::Fall, 3);
    let alarmed = eventually(Duration::from_secs(60), || async {
        fall_alarms(&gw.http).await >= 1
    })
    .await;
    assert!(alarmed, "the gateway raised no fall alarm");
    let s = wait(&mut status, "the fall acked", |s| {
        s.outbox == 0 && s.alarms == 0
    })
    .await?;
    assert!(s.acked >= 4, "{s:?}");

    // The gateway dies. The wearer falls again while it is down.
    let connects = s.connects;
    drop(gw);
    wait(&mut status, "offline", |s| !s.connected).await?;
    drain(&mut sent);
    next.push(Kind::Fall, 3);
    let held = wait(&mut status, "the fall held offline with telemetry", |s| {
        s.alarms >= 1 && s.outbox > s.alarms
    })
    .await?;
    assert!(!held.connected);

    // It returns: every held frame is delivered, alarms first, and acked.
    let gw = spawn_gateway(&cfg, v4, http).await?;
    let back = wait(&mut status, "reconnected and drained", |s| {
        s.connects > connects && s.outbox == 0
    })
    .await?;
    let after: Vec<Sent> = drain(&mut sent)
        .into_iter()
        .filter(|s| s.connection == back.connects)
        .collect();
    assert!(
        after.len() >= held.outbox,
        "sent {} of {} held",
        after.len(),
        held.outbox
    );
    let first_telemetry = after
        .iter()
        .position(|s| s.priority != Priority::Alarm)
        .unwrap_or(after.len());
    let alarms_sent = after
        .iter()
        .filter(|s| s.priority == Priority::Alarm)
        .count();
    assert!(alarms_sent >= 1);
    assert!(
        first_telemetry >= 1
            && after[first_telemetry..]
                .iter()
                .take(held.outbox - first_telemetry.min(held.outbox))
                .all(|s| s.priority != Priority::Alarm),
        "alarms first: {after:?}"
    );
    assert_eq!(back.refused, 0, "no report was refused by the outbox");

    // Gateway side: the held frames were journaled in the order they were sent, and the
    // second fall raised its alarm.
    let readings = get_json(&format!(
        "{}/api/devices/{}/readings?limit=1000",
        gw.http, creds.id
    ))
    .await?;
    let got: Vec<u64> = readings
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r: &Value| r["counter"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    let first_after: Vec<u64> = after
        .iter()
        .take(held.outbox)
        .map(|s| u64::from(s.counter))
        .collect();
    let pos: Vec<Option<usize>> = first_after
        .iter()
        .map(|c| got.iter().position(|g| g == c))
        .collect();
    assert!(
        pos.iter().all(Option::is_some),
        "every held frame reached the gateway: sent {first_after:?}, stored {got:?}"
    );
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "stored in the order sent: {pos:?}"
    );
    // The fall from the outage is among them (the first fall's alarm is still open, so
    // the gateway folds the second into it rather than raising another).
    let falls_after: Vec<u64> = readings
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| !r["report"]["pendant"]["fall"].is_null())
                .filter_map(|r| r["counter"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        falls_after.iter().any(|c| first_after.contains(c)),
        "the fall from the outage was stored: falls {falls_after:?}, held {first_after:?}"
    );

    stop_tx.send_replace(true);
    task.join()
        .map_err(|_| anyhow::anyhow!("board thread panicked"))??;
    Ok(())
}
