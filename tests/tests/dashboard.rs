//! The web dashboard in a real browser: the `linli` process with two people (a caregiver
//! for wing A, a crew member for Elm Street), a firmware fleet (a pendant, two street
//! lights) on virtual boards, and Debian's chromium driven headless by
//! `tests/browser/dashboard.mjs` (playwright-core, installed by `scripts/test.sh`).
//!
//! The browser script does the people's part and checks what they see; this test runs
//! the world (a lamp fails before, the wearer falls when the caregiver's inbox is open)
//! and checks afterwards what the gateway recorded: the alarm's history and the audit log
//! name the caregiver. A supervisor's operations view shows a junk frame's rejection.
//! Screenshots: `target/test-artefacts/dashboard/*.png`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use linli_firmware::fall::scenario::Kind;
use linli_protocol::topic::UpChannel;
use linli_sim::fleet::{self, Description};
use linli_sim::virtual_board::Handle;
use linli_system_tests::*;
use serde_json::{json, Value};

const FLEET: &str = r#"
[[group]]
kind = "pendant"
count = 1
id = "wing-a-pendant"
site = "care-home-1"
zone = "wing-a"
resident = "R-W"
heartbeat_s = 60

[[group]]
kind = "street_light"
count = 2
id = "elm-lamp"
site = "city"
zone = "elm-street"
asset = "L-ELM"
heartbeat_s = 60
"#;

/// The street map: the two lamps and a manhole with no device yet (drawn "unknown").
const WEB: &str = r#"
[[web.map]]
asset = "L-ELM-1"
label = "Elm St 1"
lat = 31.2301
lon = 121.4701
[[web.map]]
asset = "L-ELM-2"
label = "Elm St 2"
lat = 31.2304
lon = 121.4712
[[web.map]]
asset = "M-ELM-9"
label = "Manhole 9"
lat = 31.2299
lon = 121.4708
zone = "elm-street"
"#;

const CARER: (&str, &str, &str) = ("zhang.min", "Zhang Min", "night-shift-wing-a");
const CREW: (&str, &str, &str) = ("li.wei", "Li Wei", "lamps-and-drains-7");
const SUPERVISOR: (&str, &str, &str) = ("chen.jing", "Chen Jing", "whole-district-3");

/// The screenshots the walk saves.
const SHOTS: [&str; 5] = [
    "inbox.png",
    "inbox-tablet.png",
    "resident.png",
    "street.png",
    "operations.png",
];

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn add_person(
    config: &Path,
    name: &str,
    display: &str,
    role: &str,
    zones: &str,
    pw: &str,
) -> Result<()> {
    let mut child = Command::new(linli_bin()?)
        .args(["user", "add", name, "--role", role, "--zones", zones])
        .args(["--display-name", display, "--password-stdin", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{pw}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "linli user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caregiver_and_crew_work_their_alarms_in_a_real_browser() -> Result<()> {
    let playwright = browser_dir().join("node_modules/playwright-core");
    if !playwright.exists() {
        bail!(
            "{} is missing: run `npm ci --prefix tests/browser` (scripts/test.sh does)",
            playwright.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let c = process_config(dir.path(), WEB)?;
    add_person(&c.path, CARER.0, CARER.1, "caregiver", "wing-a", CARER.2)?;
    add_person(&c.path, CREW.0, CREW.1, "crew", "elm-street", CREW.2)?;
    add_person(
        &c.path,
        SUPERVISOR.0,
        SUPERVISOR.1,
        "supervisor",
        "*",
        SUPERVISOR.2,
    )?;
    // A device that sends junk: operations shows the rejection by its reason.
    let junk = provision_cli(&c.path, "junk-1", "pendant")?;
    let description = Description::parse(FLEET, Path::new("fleet.toml"))?;
    let members = fleet::provision(&description, &dir.path().join("data"))?;
    let gw = spawn_gateway(&c.path, c.mqtt, c.http).await?;

    // Device time at 20×: readings every few seconds, a fall within seconds.
    let fleet = fleet::start(members, c.mqtt_v5, 20)?;
    let online = fleet::wait_online(&fleet, Duration::from_secs(60)).await;
    assert_eq!(online, 3, "every device online: {:?}", fleet.total());

    // Both lamps are switched on; lamp 1 draws nothing: a lamp failure and a work order
    // for the lighting crew, waiting on the crew member's street view.
    for lamp in ["elm-lamp-1", "elm-lamp-2"] {
        let (status, body) = post_json(
            &format!("{}/api/devices/{lamp}/command", gw.http),
            json!({"command": {"relay": {"on": true}}, "by": "test"}),
        )
        .await?;
        assert!(status < 300, "switching {lamp} on: {status} {body}");
    }
    match fleet.handle("elm-lamp-1") {
        Some(Handle::StreetLight(l)) => l.set_broken(true),
        _ => bail!("elm-lamp-1 is not a street light"),
    }
    mosquitto_pub(
        c.mqtt,
        &junk,
        &junk.topic(UpChannel::Telemetry),
        b"not a sealed frame",
    )?;
    let wearer = fleet
        .wearer("wing-a-pendant-1")
        .cloned()
        .context("the pendant's wearer")?;

    // The browser does the people's part.
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts/dashboard");
    std::fs::create_dir_all(&shots)?;
    for f in SHOTS {
        let _ = std::fs::remove_file(shots.join(f));
    }
    let mut node = Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .current_dir(browser_dir())
        .env("LINLI_URL", &gw.http)
        .env("CAREGIVER_NAME", CARER.0)
        .env("CAREGIVER_DISPLAY", CARER.1)
        .env("CAREGIVER_PASSWORD", CARER.2)
        .env("CREW_NAME", CREW.0)
        .env("CREW_DISPLAY", CREW.1)
        .env("CREW_PASSWORD", CREW.2)
        .env("SUPERVISOR_NAME", SUPERVISOR.0)
        .env("SUPERVISOR_DISPLAY", SUPERVISOR.1)
        .env("SUPERVISOR_PASSWORD", SUPERVISOR.2)
        .env("JUNK_DEVICE", "junk-1")
        .env("RESIDENT", "R-W-1")
        .env("RESIDENT_DEVICE", "wing-a-pendant-1")
        .env("LAMP_ASSET", "L-ELM-1")
        .env("SHOTS_DIR", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting node (Debian's nodejs)")?;
    let mut to_node = node.stdin.take().context("node stdin")?;
    let from_node = node.stdout.take().context("node stdout")?;
    let driver = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
        let mut said = Vec::new();
        for line in BufReader::new(from_node).lines() {
            let line = line?;
            println!("{line}");
            if line == "need fall" {
                wearer.push(Kind::Fall, 3);
                writeln!(to_node, "fall")?;
            }
            said.push(line);
        }
        Ok(said)
    });
    // A bound on the whole walk, so a hung browser fails the test instead of CI.
    let said = match tokio::time::timeout(Duration::from_secs(600), driver).await {
        Ok(r) => r??,
        Err(_) => {
            let _ = node.kill();
            bail!("the browser walk did not finish within 10 minutes");
        }
    };
    let status = node.wait()?;
    assert!(
        status.success(),
        "the browser walk failed: {}",
        said.iter()
            .rev()
            .find(|l| l.starts_with("FAILED"))
            .map_or("", |s| s)
    );

    // What the gateway recorded: the fall's history names the caregiver for both actions.
    let alarms = get_json(&format!("{}/api/alarms?kind=fall", gw.http)).await?;
    let fall = alarms["alarms"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .context("the fall alarm")?;
    let one = get_json(&format!("{}/api/alarms/{}", gw.http, fall["id"])).await?;
    let by = |action: &str| -> Vec<String> {
        one["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["action"] == action)
            .map(|t| t["who"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(by("acked"), [CARER.0], "{one}");
    assert_eq!(by("resolved"), [CARER.0], "{one}");
    assert_eq!(one["state"], "normal", "{one}");
    assert!(
        one["disposition"]
            .as_str()
            .is_some_and(|d| d.contains("no injury")),
        "the disposition keeps the caregiver's note: {one}"
    );

    // The audit log: the caregiver's sign-in, look at the resident, and actions; the
    // crew member's refused calls; the failed sign-ins.
    let audit = get_json(&format!("{}/api/audit?limit=1000", gw.http)).await?;
    let rows: Vec<&Value> = audit["audit"].as_array().into_iter().flatten().collect();
    let has = |name: &str, action: &str, target: &str| {
        rows.iter().any(|r| {
            r["name"] == name
                && r["action"] == action
                && r["target"].as_str().is_some_and(|t| t.contains(target))
        })
    };
    assert!(has(CARER.0, "sign_in", "session"), "{audit}");
    assert!(has(CARER.0, "view", "resident:R-W-1"), "{audit}");
    assert!(has(CARER.0, "ack", "/api/alarms/"), "{audit}");
    assert!(has(CARER.0, "resolve", "/api/alarms/"), "{audit}");
    assert!(has(CREW.0, "denied", "/api/residents"), "{audit}");
    assert!(!has(CREW.0, "view", "resident:"), "{audit}");
    assert!(has(CREW.0, "sign_in_failed", "session"), "{audit}");

    for f in SHOTS {
        let len = std::fs::metadata(shots.join(f))
            .with_context(|| format!("screenshot {f}"))?
            .len();
        assert!(len > 10_000, "{f} is only {len} bytes");
        println!("screenshot: {}", shots.join(f).display());
    }
    drop(gw);
    Ok(())
}
