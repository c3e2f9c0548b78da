//! The shipped storyline `simulators/scenarios/night-in-wing-a.toml` against the real
//! `linli` process at 20× device time: its fleet of firmware devices is provisioned and
//! comes online, the steps happen (a fall, a look-alike, lamps switched on through the
//! API, a lamp dying), and the gateway's alarms match the scenario's expectations — and
//! an expectation the storyline does not bear out is reported as failed.

use std::path::Path;

use anyhow::Result;
use linli_sim::scenario::{self, Expect, Scenario, Target};
use linli_system_tests::*;

/// A gateway of its own on free ports (alive while the handles are) and the scenario
/// target on it.
async fn gateway() -> Result<(tempfile::TempDir, GatewayProcess, Target)> {
    let dir = tempfile::tempdir()?;
    let c = process_config(dir.path(), "")?;
    let gw = spawn_gateway(&c.path, c.mqtt, c.http).await?;
    let target = Target {
        http: gw.http.clone(),
        broker: c.mqtt_v5,
        data_dir: dir.path().join("data"),
        routing: None,
        pages: None,
    };
    Ok((dir, gw, target))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_night_in_wing_a_raises_exactly_the_alarms_it_expects() -> Result<()> {
    let (_dir, _gw, target) = gateway().await?;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulators/scenarios/night-in-wing-a.toml");
    let mut sc = Scenario::load(&path)?;
    let shipped = sc.expect.len();
    // Nobody else falls: this one must come out FAIL.
    sc.expect.push(Expect {
        alarm: "fall".into(),
        device: "wing-a-pendant-3".into(),
        by: "3m".into(),
        absent: false,
        count: None,
        page: None,
        gateway_hold_s: None,
    });
    let mut log = Vec::new();
    let outcome = scenario::run(&sc, &target, &mut |l| log.push(l)).await?;
    let report = format!("{}\n{outcome}", log.join("\n"));
    let (theirs, ours) = outcome.verdicts.split_at(shipped);
    assert!(theirs.iter().all(|v| v.ok), "{report}");
    assert!(!ours[0].ok, "an alarm that never came is a FAIL: {report}");
    assert!(!outcome.passed());
    // The fall was raised well before its deadline.
    assert!(
        theirs[0].seen_at.is_some_and(|t| t.as_secs() < 180),
        "{report}"
    );
    Ok(())
}

/// The alarm engine's scenarios that firmware devices can play against the built-in
/// rules (`simulators/scenarios/engine-*.toml`), one after another on one gateway: every
/// expectation of every file holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alarm_engine_scenarios_hold_against_the_real_gateway() -> Result<()> {
    let (_dir, _gw, target) = gateway().await?;
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulators/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&folder)?
        .filter_map(|f| f.ok().map(|f| f.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("engine-") && n.ends_with(".toml"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    // One after another: a wearer's movements play one sample per step of the device,
    // so a fleet thread starved of CPU stretches them (a fall "cancelled" too late).
    let mut report = String::new();
    for f in &files {
        let sc = Scenario::load(f)?;
        let mut log = Vec::new();
        let outcome = scenario::run(&sc, &target, &mut |l| log.push(l)).await?;
        report += &format!("== {}\n{}\n{outcome}\n", sc.name, log.join("\n"));
        assert!(outcome.passed(), "{report}");
    }
    Ok(())
}
