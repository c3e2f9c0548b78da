//! Settings and commands from the gateway's API to a host build of the street-light
//! firmware (the real application loop, node and minimq client; the lamp through a
//! virtual INA219, the real `ina219` driver and the firmware's board glue) over the
//! embedded broker:
//! sealed, applied, answered with an `answer` report, and audited with it; a lamp
//! whose driver ignores dimming raises the `dimming_fault` alarm; bad requests are
//! refused with a reason.

use std::time::Duration;

use anyhow::{Context, Result};
use linli_firmware::app::street_light::StreetLight;
use linli_firmware::app::Device;
use linli_firmware::node::{Cadence, Node};
use linli_gateway::registry::Trust;
use linli_protocol::DeviceKind;
use linli_sim::board::{self, Board, Observers, Snapshot};
use linli_sim::virtual_board::{self, Lamp};
use linli_system_tests::*;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

async fn downlinks(http: &str, id: &str) -> Vec<Value> {
    get_json(&format!("{http}/api/devices/{id}/downlinks"))
        .await
        .ok()
        .and_then(|v| v["downlinks"].as_array().cloned())
        .unwrap_or_default()
}

/// Waits until the downlink with `counter` has an answer; returns it.
async fn answered(http: &str, id: &str, counter: u64) -> Result<Value> {
    let mut last = Value::Null;
    for _ in 0..300 {
        if let Some(d) = downlinks(http, id)
            .await
            .into_iter()
            .find(|d| d["counter"] == counter)
        {
            if d["answer"] != "pending" {
                return Ok(d);
            }
            last = d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("downlink {counter} to {id} never answered: {last}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamp_firmware_applies_and_answers_what_the_api_sends() -> Result<()> {
    let tg = TestGateway::start(|_| {}).await?;
    let http = tg.http();
    let dev = tg.provision("lamp-7", DeviceKind::StreetLight, Trust::Sealed)?;
    let v5 = tg.gw.mqtt_v5.context("v5 listener")?;

    // A lamp drawing 420 mA at full light (its relay open until commanded).
    let lamp = Lamp::new(23_000, 420);
    let (status_tx, mut status) = watch::channel(Snapshot::default());
    let (sent_tx, _sent) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let b = Board {
        broker: v5,
        password: dev.password.clone(),
        keepalive_s: 10,
        step_ms: 100,
        speed: 1,
    };
    let (id, key, key_id) = (dev.id.clone(), dev.key.clone(), dev.key_id);
    let lamp_for_board = lamp.clone();
    let task = board::spawn(move || async move {
        // Faults are reported every second while they last (the default is 10 s).
        let cadence = Cadence {
            alarm_report_s: 1,
            ..Cadence::default()
        };
        let node = Node::new(&id, key, key_id, 1, cadence, 0, 7);
        let mut dev: Device<'_, StreetLight, 8, 2> =
            Device::new(node, StreetLight::new(Default::default(), 1_000));
        let obs = Observers {
            status: status_tx,
            sent: sent_tx,
        };
        let mut sensors = virtual_board::street_light(&lamp_for_board)?;
        board::run(&b, &mut dev, &mut sensors, &obs, stop_rx).await
    });
    tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| s.connected && s.acked >= 1),
    )
    .await??;

    // Dim to 40 %: sealed with counter 1, applied, answered, audited.
    let url = |what: &str| format!("{http}/api/devices/lamp-7/{what}");
    let (code, r) = post_json(
        &url("command"),
        json!({"command": {"dim": {"percent": 40}}, "by": "crew-3"}),
    )
    .await?;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["answer"], "pending");
    assert_eq!(r["by"], "crew-3");
    let d = answered(&http, "lamp-7", r["counter"].as_u64().context("counter")?).await?;
    assert_eq!(
        (d["answer"].as_str(), d["observed"].as_i64()),
        (Some("applied"), Some(40)),
        "{d}"
    );
    assert_eq!(lamp.dimming_pct(), 40);

    // New settings: the device takes the next counter and answers for that counter.
    let (code, r) = post_json(&url("config"), json!({"heartbeat_s": 30, "by": "ops"})).await?;
    assert_eq!(code, 200, "{r}");
    let c = r["counter"].as_u64().context("counter")?;
    assert!(c > d["counter"].as_u64().unwrap_or(0));
    assert_eq!(answered(&http, "lamp-7", c).await?["answer"], "applied");

    // A driver that ignores dimming: answered as not applied, and the alarm is raised.
    lamp.set_deaf(true);
    let (code, r) = post_json(
        &url("command"),
        json!({"command": {"dim": {"percent": 10}}, "by": "crew-3"}),
    )
    .await?;
    assert_eq!(code, 200, "{r}");
    let d = answered(&http, "lamp-7", r["counter"].as_u64().context("counter")?).await?;
    assert_eq!(
        (d["answer"].as_str(), d["observed"].as_i64()),
        (Some("not_applied"), Some(40)),
        "{d}"
    );
    let alarmed = eventually(Duration::from_secs(20), || async {
        get_json(&format!("{http}/api/alarms"))
            .await
            .ok()
            .and_then(|v| v["alarms"].as_array().cloned())
            .is_some_and(|a| a.iter().any(|a| a["kind"] == "dimming_fault"))
    })
    .await;
    assert!(alarmed, "no dimming_fault alarm");

    // Switched on, the lamp lights; then it dies: the controller sees the relay closed and
    // no current through the virtual INA219, and the gateway raises `lamp_failure`.
    let (code, r) = post_json(
        &url("command"),
        json!({"command": {"relay": {"on": true}}, "by": "crew-3"}),
    )
    .await?;
    assert_eq!(code, 200, "{r}");
    let d = answered(&http, "lamp-7", r["counter"].as_u64().context("counter")?).await?;
    assert_eq!(d["answer"], "applied", "{d}");
    lamp.set_broken(true);
    let failed = eventually(Duration::from_secs(30), || async {
        get_json(&format!("{http}/api/alarms"))
            .await
            .ok()
            .and_then(|v| v["alarms"].as_array().cloned())
            .is_some_and(|a| a.iter().any(|a| a["kind"] == "lamp_failure"))
    })
    .await;
    assert!(failed, "no lamp_failure alarm for a dead lamp");

    // Refused with a reason: a threshold of another kind, a command for another kind, a
    // device without sealed downlinks, an unknown device, a setting of zero.
    let (code, r) = post_json(
        &url("config"),
        json!({"threshold": {"impact_mg": 3000}, "by": "ops"}),
    )
    .await?;
    assert_eq!(code, 400);
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("impact_mg is for pendant")),
        "{r}"
    );
    let (code, _) = post_json(&url("config"), json!({"report_s": 0, "by": "ops"})).await?;
    assert_eq!(code, 400);
    tg.provision("pendant-9", DeviceKind::Pendant, Trust::Sealed)?;
    let (code, r) = post_json(
        &format!("{http}/api/devices/pendant-9/command"),
        json!({"command": {"relay": {"on": false}}, "by": "ops"}),
    )
    .await?;
    assert_eq!(code, 400, "{r}");
    tg.provision("door-json", DeviceKind::Door, Trust::Integration)?;
    let (code, _) = post_json(
        &format!("{http}/api/devices/door-json/config"),
        json!({"heartbeat_s": 60, "by": "ops"}),
    )
    .await?;
    assert_eq!(code, 409);
    let (code, _) = post_json(
        &format!("{http}/api/devices/nobody/config"),
        json!({"heartbeat_s": 60, "by": "ops"}),
    )
    .await?;
    assert_eq!(code, 404);
    // Refusals leave no audit record and burn no counter.
    assert_eq!(downlinks(&http, "lamp-7").await.len(), 4);
    assert!(downlinks(&http, "pendant-9").await.is_empty());

    stop_tx.send_replace(true);
    task.join()
        .map_err(|_| anyhow::anyhow!("board thread panicked"))??;
    Ok(())
}
