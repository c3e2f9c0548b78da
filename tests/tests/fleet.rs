//! A fleet from a description file against the real `linli` process: provisioned into
//! its registry, every device (firmware application loop, node and MQTT client on a
//! virtual board, its own credentials and key) comes online and is acked, the gateway
//! lists each in its zone as alive, and a wearer's fall raises the fall alarm for the
//! right resident.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use linli_firmware::fall::scenario::Kind;
use linli_sim::fleet::{self, Description};
use linli_system_tests::*;
use serde_json::Value;

const FLEET: &str = r#"
[[group]]
kind = "pendant"
count = 3
id = "wing-a-pendant"
site = "care-home-1"
zone = "wing-a"
resident = "R-A"
heartbeat_s = 30

[[group]]
kind = "street_light"
count = 2
id = "elm-street-lamp"
site = "city"
zone = "elm-street"
asset = "L-ELM"
heartbeat_s = 30
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_described_fleet_comes_online_and_a_fall_raises_its_alarm() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let c = process_config(dir.path(), "")?;
    let description = Description::parse(FLEET, Path::new("fleet.toml"))?;
    let members = fleet::provision(&description, &dir.path().join("data"))?;
    assert_eq!(members.len(), 5);
    let gw = spawn_gateway(&c.path, c.mqtt, c.http).await?;

    // Device time 10× real time: heartbeats every 3 s, a fall in about 5 s.
    let fleet = fleet::start(members, c.mqtt_v5, 10)?;
    let online = fleet::wait_online(&fleet, Duration::from_secs(60)).await;
    assert_eq!(online, 5, "online: {:?}", fleet.total());
    let acked = eventually(Duration::from_secs(60), || async {
        fleet.status.iter().all(|(_, s)| s.borrow().acked >= 1)
    })
    .await;
    assert!(acked, "every device acked: {:?}", fleet.status);

    // The gateway knows each device in its zone, alive.
    let devices = get_json(&format!("{}/api/devices", gw.http)).await?;
    let list = devices.as_array().cloned().unwrap_or_default();
    for (id, zone) in [
        ("wing-a-pendant-1", "wing-a"),
        ("wing-a-pendant-3", "wing-a"),
        ("elm-street-lamp-2", "elm-street"),
    ] {
        let d = list
            .iter()
            .find(|d| d["id"] == id)
            .with_context(|| format!("{id} listed: {devices}"))?;
        assert_eq!(d["zone"], zone, "{d}");
        assert_eq!(d["liveness"], "ok", "{d}");
    }

    // Resident R-A-2 falls.
    let wearer = fleet
        .wearer("wing-a-pendant-2")
        .cloned()
        .context("the pendant's wearer")?;
    wearer.push(Kind::Fall, 3);
    let http = gw.http.clone();
    let alarmed = eventually(Duration::from_secs(60), || {
        let http = http.clone();
        async move {
            let Ok(v) = get_json(&format!("{http}/api/alarms")).await else {
                return false;
            };
            v["alarms"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a: &Value| a["kind"] == "fall" && a.to_string().contains("R-A-2"))
            })
        }
    })
    .await;
    assert!(alarmed, "no fall alarm for R-A-2");
    assert_eq!(fleet.total().refused, 0);
    fleet.stop()?;
    Ok(())
}

/// The command line: provisions on the first run and keeps the credentials and each
/// device's saved frame counter; the second run continues from them, so the gateway
/// stores its frames instead of refusing them as replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_command_keeps_credentials_and_counters_between_runs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let c = process_config(dir.path(), "")?;
    let fleet_file = dir.path().join("fleet.toml");
    std::fs::write(&fleet_file, FLEET)?;
    let creds = dir.path().join("creds.json");
    let gw = spawn_gateway(&c.path, c.mqtt, c.http).await?;
    let run = || {
        std::process::Command::new(linli_sim_bin()?)
            .args(["fleet", "--speed", "10", "--duration-s", "6", "--config"])
            .arg(&c.path)
            .arg("--description")
            .arg(&fleet_file)
            .arg("--credentials")
            .arg(&creds)
            .output()
            .context("running linli-sim fleet")
    };
    let first = run()?;
    let log = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(first.status.success(), "{log}");
    assert!(log.contains("provisioned 5 devices"), "{log}");
    assert!(log.contains("online 5/5"), "{log}");
    let saved = |path: &Path| -> Result<Vec<u64>> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d["saved_counter"].as_u64())
                    .collect()
            })
            .unwrap_or_default())
    };
    let after_first = saved(&creds)?;
    assert_eq!(after_first.len(), 5);
    assert!(after_first.iter().all(|c| *c > 0), "{after_first:?}");

    let second = run()?;
    let log = String::from_utf8_lossy(&second.stderr).to_string();
    assert!(second.status.success(), "{log}");
    assert!(log.contains("5 devices from"), "{log}");
    assert!(log.contains("online 5/5"), "{log}");
    assert!(saved(&creds)?.iter().zip(&after_first).all(|(b, a)| b > a));
    // Nothing the second run sent was refused as a replay or stale.
    let metrics = get(&format!("{}/metrics", gw.http)).await?.1;
    for reason in ["replay", "stale"] {
        let v = metric(
            &metrics,
            &format!("linli_rejected_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(v, Some(0.0), "{reason}");
    }
    Ok(())
}
