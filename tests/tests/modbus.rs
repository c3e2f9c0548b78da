//! Modbus against real peers: Debian's pymodbus over TCP and over RTU on a socat pty
//! pair (two units on one bus), and the project's own equipment simulator (lamps,
//! meters): decoding in every type and word order, readings in the store, a server that
//! stops answering, commands verified by read-back and a lamp that ignores them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use linli_gateway::config::Config;
use linli_gateway::ingest::modbus::config::{ModbusDevice, RtuBus};
use linli_gateway::registry::Trust;
use linli_protocol::DeviceKind;
use linli_sim::modbus::{Fault, Fleet, FleetConfig, LampState, State};
use linli_system_tests::{
    eventually, free_port, get_json, mosquitto_pub, post_json, scrape, TestGateway,
};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

/// A child process killed on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pymodbus(args: &[&str]) -> Result<Peer> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("modbus/pymodbus_server.py");
    let child = Command::new(PYTHON)
        .arg(script)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start pymodbus (scripts/test.sh installs python3-pymodbus)")?;
    Ok(Peer(child))
}

/// Every type in every word order, at the addresses `pymodbus_server.py` fills.
fn all_types_profile() -> String {
    let mut s = String::from(
        r#"
[[profile]]
name = "all-types"
kind = "water_level"

[[profile.register]]
name = "level"
table = "holding"
address = 0
type = "u16"
scale = 0.001
feeds = "water_level_m"

[[profile.register]]
name = "i16"
table = "holding"
address = 1
type = "i16"

[[profile.register]]
name = "too_big"
table = "holding"
address = 60
type = "u16"
max = 1000

[[profile.register]]
name = "coil"
table = "coil"
address = 0
type = "bool"

[[profile.register]]
name = "discrete"
table = "discrete"
address = 0
type = "bool"

[[profile.register]]
name = "input"
table = "input"
address = 0
type = "u16"

# pymodbus holds 100 holding registers: one read spanning 99..104 is refused (0x02).
[[profile.register]]
name = "edge"
table = "holding"
address = 99
type = "u16"

[[profile.register]]
name = "missing"
table = "holding"
address = 104
type = "u16"
"#,
    );
    for (start, ty, width) in [
        (10, "u32", 2),
        (20, "i32", 2),
        (30, "f32", 2),
        (40, "f64", 4),
    ] {
        for (k, order) in ["abcd", "cdab", "badc", "dcba"].iter().enumerate() {
            s.push_str(&format!(
                "\n[[profile.register]]\nname = \"{ty}_{order}\"\ntable = \"holding\"\naddress = {}\ntype = \"{ty}\"\norder = \"{order}\"\n",
                start + k * width
            ));
        }
    }
    // Fed by a register whose value (holding 60) is always out of range: the device
    // answers, but never gives a report.
    s.push_str(
        r#"
[[profile]]
name = "refused-level"
kind = "water_level"

[[profile.register]]
name = "level"
table = "holding"
address = 60
type = "u16"
max = 1000
feeds = "water_level_m"
"#,
    );
    s
}

fn device(id: &str, profile: &str, poll_ms: u64) -> ModbusDevice {
    ModbusDevice {
        id: id.into(),
        profile: profile.into(),
        tcp: None,
        bus: None,
        unit: 1,
        poll_ms,
        site: "s1".into(),
        zone: "underpass".into(),
        asset: Some(format!("asset-{id}")),
    }
}

/// Quick reconnects for tests.
fn modbus_defaults(c: &mut Config, profiles: &Path) {
    c.modbus.profiles = Some(profiles.to_owned());
    c.modbus.timeout_ms = 300;
    c.modbus.backoff_min_ms = 100;
    c.modbus.backoff_max_ms = 400;
}

async fn device_json(http: &str, id: &str) -> Result<Value> {
    get_json(&format!("{http}/api/modbus/devices/{id}")).await
}

fn reg(d: &Value, name: &str) -> Option<f64> {
    d["registers"][name]["value"].as_f64()
}

/// Waits until every named register has a value.
async fn registers_read(http: &str, id: &str, names: &[String]) -> Result<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let last = device_json(http, id).await.unwrap_or(Value::Null);
        if names.iter().all(|n| reg(&last, n).is_some()) {
            return Ok(last);
        }
        if std::time::Instant::now() > deadline {
            bail!("registers of {id} never all read: {last:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_all_types(d: &Value, unit: u8) {
    let close = |name: &str, want: f64| {
        let got = reg(d, name).unwrap_or(f64::NAN);
        assert!(
            (got - want).abs() <= want.abs() * 1e-6 + 1e-9,
            "{name}: got {got}, want {want}"
        );
    };
    close("level", (12000.0 + f64::from(unit)) / 1000.0);
    close("i16", -1234.0);
    close("coil", 1.0);
    close("discrete", 1.0);
    close("input", 777.0);
    for order in ["abcd", "cdab", "badc", "dcba"] {
        close(&format!("u32_{order}"), 3_000_000_000.0);
        close(&format!("i32_{order}"), -123_456_789.0);
        close(&format!("f32_{order}"), 230.5);
        close(&format!("f64_{order}"), -12345.678);
    }
    assert_eq!(d["registers"]["too_big"]["value"], Value::Null, "{d:#}");
    let why = d["registers"]["too_big"]["error"].as_str().unwrap_or("");
    assert!(why.contains("outside its range"), "{why}");
}

fn all_type_names() -> Vec<String> {
    let mut v: Vec<String> = ["level", "i16", "coil", "discrete", "input"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for ty in ["u32", "i32", "f32", "f64"] {
        for order in ["abcd", "cdab", "badc", "dcba"] {
            v.push(format!("{ty}_{order}"));
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_tcp_every_type_and_word_order_decodes_and_the_reading_is_stored() -> Result<()> {
    let port = free_port()?;
    let _server = pymodbus(&["--tcp", &port.to_string(), "--units", "1,2"])?;
    let dir = tempfile::tempdir()?;
    let profiles = dir.path().join("profiles.toml");
    std::fs::write(&profiles, all_types_profile())?;
    let gw = TestGateway::start(|c| {
        modbus_defaults(c, &profiles);
        let mut d = device("tank-1", "all-types", 300);
        d.tcp = Some(format!("127.0.0.1:{port}"));
        c.modbus.device.push(d);
        let mut d = device("tank-2", "refused-level", 300);
        d.tcp = Some(format!("127.0.0.1:{port}"));
        d.unit = 2;
        c.modbus.device.push(d);
    })
    .await?;
    let http = gw.http();
    let d = registers_read(&http, "tank-1", &all_type_names()).await?;
    assert_all_types(&d, 1);
    assert_eq!(d["kind"], "water_level");
    // The refused block is split: the register that exists is read, the one that does
    // not keeps its exception, counted by code, and the connection stays up.
    let d = registers_read(&http, "tank-1", &["edge".to_string()]).await?;
    assert_eq!(reg(&d, "edge"), Some(0.0));
    assert_eq!(
        d["registers"]["missing"]["error"], "exception 0x02",
        "{d:#}"
    );
    assert!(d["exceptions"]["0x02"].as_u64().unwrap_or(0) >= 1, "{d:#}");
    assert_eq!(d["state"], "up");
    assert_eq!(d["reconnects"], 0, "exceptions keep the connection");
    // The reading went through ingest into the store, under the polled device.
    let ok = eventually(Duration::from_secs(10), || async {
        get_json(&format!("{http}/api/devices/tank-1/latest"))
            .await
            .ok()
            .and_then(|v| {
                v.as_array()?
                    .iter()
                    .find(|m| m["metric"] == "water_level_m")?["value"]
                    .as_f64()
            })
            == Some(12.001)
    })
    .await;
    assert!(ok, "water_level_m never stored");
    let registered = get_json(&format!("{http}/api/devices/tank-1")).await?;
    assert_eq!(registered["trust"], "polled");
    // The out-of-range register is counted, not stored.
    assert!(
        scrape(
            &http,
            "linli_modbus_rejected_total{reason=\"out_of_range\"}"
        )
        .await?
            >= 1.0
    );
    assert!(scrape(&http, "linli_modbus_readings_total").await? >= 1.0);

    // tank-2 answers every poll, but its level is always out of range: no level is
    // stored, yet it stays live: it answers with data, so it sends heartbeats.
    let polled = eventually(Duration::from_secs(20), || async {
        device_json(&http, "tank-2")
            .await
            .is_ok_and(|d| d["polls"].as_u64().unwrap_or(0) >= 20)
    })
    .await;
    assert!(polled, "tank-2 polled");
    let d = device_json(&http, "tank-2").await?;
    assert_eq!(d["liveness"], "ok", "{d:#}");
    assert_eq!(d["state"], "up", "{d:#}");
    assert!(
        d["registers"]["level"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("range")),
        "{d:#}"
    );
    // Two units at one address (a Modbus TCP gateway) share one connection, asked in
    // turn: one connect, plus one per dropped connection (none expected, but a slow
    // machine may time out).
    assert_eq!(
        d["transport"],
        device_json(&http, "tank-1").await?["transport"]
    );
    let mut drops = 0.0;
    for kind in ["timeout", "transport", "protocol"] {
        drops += scrape(
            &http,
            &format!("linli_modbus_errors_total{{kind=\"{kind}\"}}"),
        )
        .await
        .unwrap_or(0.0);
    }
    assert_eq!(
        scrape(&http, "linli_modbus_connects_total").await?,
        1.0 + drops
    );
    let latest = get_json(&format!("{http}/api/devices/tank-2/latest")).await?;
    assert!(
        !latest
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["metric"] == "water_level_m")),
        "a refused value is not stored: {latest:#}"
    );
    Ok(())
}

/// Units 1 and 2 (`{prefix}-1`, `{prefix}-2`, polled every 500 ms) on the serial bus
/// `rs485-1` at `port`.
fn two_units_on_a_bus(c: &mut Config, port: &str, prefix: &str, profile: &str) {
    c.modbus.bus.push(RtuBus {
        name: "rs485-1".into(),
        port: port.into(),
        baud: 19200,
        parity: Default::default(),
        stop_bits: 1,
    });
    for unit in [1u8, 2] {
        let mut d = device(&format!("{prefix}-{unit}"), profile, 500);
        d.bus = Some("rs485-1".into());
        d.unit = unit;
        c.modbus.device.push(d);
    }
}

/// A socat pty pair: the gateway opens one end, pymodbus the other.
fn pty_pair(dir: &Path) -> Result<(Peer, String, String)> {
    let (a, b) = (dir.join("gw"), dir.join("dev"));
    let child = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start socat (scripts/test.sh installs it)")?;
    let peer = Peer(child);
    for _ in 0..100 {
        if a.exists() && b.exists() {
            return Ok((peer, a.display().to_string(), b.display().to_string()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("socat made no pty pair")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_rtu_two_units_on_one_bus_are_polled_in_turn() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_socat, gw_end, dev_end) = pty_pair(dir.path())?;
    let _server = pymodbus(&["--rtu", &dev_end, "--units", "1,2"])?;
    let profiles = dir.path().join("profiles.toml");
    std::fs::write(&profiles, all_types_profile())?;
    let gw = TestGateway::start(|c| {
        modbus_defaults(c, &profiles);
        c.modbus.timeout_ms = 1000;
        two_units_on_a_bus(c, &gw_end, "sump", "all-types");
    })
    .await?;
    let http = gw.http();
    for unit in [1u8, 2] {
        let id = format!("sump-{unit}");
        let d = registers_read(&http, &id, &all_type_names()).await?;
        assert_all_types(&d, unit);
        assert!(d["transport"].as_str().unwrap_or("").starts_with("rtu://"));
    }
    // Both keep being polled, in turn, on the one connection.
    let polls = |d: &Value| d["polls"].as_u64().unwrap_or(0);
    let before = [
        polls(&device_json(&http, "sump-1").await?),
        polls(&device_json(&http, "sump-2").await?),
    ];
    let ok = eventually(Duration::from_secs(20), || async {
        let a = device_json(&http, "sump-1")
            .await
            .map(|d| polls(&d))
            .unwrap_or(0);
        let b = device_json(&http, "sump-2")
            .await
            .map(|d| polls(&d))
            .unwrap_or(0);
        a >= before[0] + 3 && b >= before[1] + 3
    })
    .await;
    assert!(ok, "both units polled again");
    for id in ["sump-1", "sump-2"] {
        let d = device_json(&http, id).await?;
        assert_eq!(d["state"], "up", "{d:#}");
        assert_eq!(d["transport"], format!("rtu://{gw_end}@19200"));
    }
    Ok(())
}

async fn alarm(http: &str, rule: &str, device: &str) -> Option<Value> {
    let v = get_json(&format!("{http}/api/alarms")).await.ok()?;
    v["alarms"]
        .as_array()?
        .iter()
        .find(|a| a["kind"] == rule && a["device"] == device)
        .cloned()
}

/// The simulator's fleet, each device on its own TCP listener, polled every 200 ms by a
/// gateway whose config `tweak` may change.
async fn simulated(
    lamps: usize,
    meters: usize,
    tweak: impl FnOnce(&mut Config),
) -> Result<(Fleet, TestGateway)> {
    let fleet = Fleet::start(&FleetConfig {
        lamps,
        meters,
        units_per_listener: 1,
        ..FleetConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let profiles = dir.path().join("none.toml");
    std::fs::write(&profiles, "")?;
    let devices: Vec<ModbusDevice> = fleet
        .devices()
        .iter()
        .map(|d| {
            let mut m = device(&d.id, d.profile, 200);
            m.tcp = Some(d.addr.to_string());
            m.unit = d.unit;
            m
        })
        .collect();
    let gw = TestGateway::start(|c| {
        modbus_defaults(c, &profiles);
        c.modbus.device = devices;
        tweak(c);
    })
    .await?;
    Ok((fleet, gw))
}

fn lamp(fleet: &Fleet, id: &str) -> Result<LampState> {
    match fleet.state(id)? {
        State::Lamp(l) => Ok(l),
        other => bail!("{id} is not a lamp: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_values_decode_and_a_silent_lamp_goes_late_then_lost_while_others_keep_polling(
) -> Result<()> {
    let (fleet, gw) = simulated(2, 1, |_| {}).await?;
    let http = gw.http();
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let l = registers_read(
        &http,
        "lamp-0001",
        &names(&[
            "dimming_pct",
            "current_a",
            "power_w",
            "relay_on",
            "supply_v",
        ]),
    )
    .await?;
    let s = lamp(&fleet, "lamp-0001")?;
    let near = |got: Option<f64>, want: f64, tol: f64| got.is_some_and(|g| (g - want).abs() <= tol);
    assert!(
        near(reg(&l, "dimming_pct"), f64::from(s.dimming_pct), 0.0),
        "{l:#}"
    );
    assert!(near(reg(&l, "power_w"), s.power_w, 2.0), "{l:#} vs {s:?}");
    assert!(
        near(reg(&l, "current_a"), s.current_a, 0.01),
        "{l:#} vs {s:?}"
    );
    assert!(near(reg(&l, "supply_v"), s.supply_v, 0.1), "{l:#} vs {s:?}");
    let m = registers_read(
        &http,
        "meter-001",
        &names(&[
            "voltage_v",
            "frequency_hz",
            "power_factor",
            "energy_import_kwh",
        ]),
    )
    .await?;
    assert!(near(reg(&m, "voltage_v"), 230.0, 5.0), "{m:#}");
    assert!(near(reg(&m, "frequency_hz"), 50.0, 0.5), "{m:#}");
    assert!(near(reg(&m, "power_factor"), 0.95, 0.05), "{m:#}");

    // lamp-0001 stops answering; lamp-0002 and the meter go on.
    let quiet = |d: &Value| d["liveness"].as_str().map(str::to_owned);
    let ok = eventually(Duration::from_secs(10), || async {
        device_json(&http, "lamp-0001")
            .await
            .ok()
            .and_then(|d| quiet(&d))
            .as_deref()
            == Some("ok")
    })
    .await;
    assert!(ok, "lamp-0001 live before the outage");
    let other_polls = device_json(&http, "lamp-0002").await?["polls"]
        .as_u64()
        .unwrap_or(0);
    fleet.set_fault("lamp-0001", Some(Fault::Silent))?;
    // Once the poller has seen it fail, no reading of it may follow until it answers.
    let down = eventually(Duration::from_secs(10), || async {
        device_json(&http, "lamp-0001")
            .await
            .is_ok_and(|d| d["state"] == "down")
    })
    .await;
    assert!(down, "the silent lamp's polls time out");
    let down_at = unix_ms();
    let readings_at_outage = device_json(&http, "lamp-0001").await?["readings"].as_u64();
    let mut seen_late = false;
    let mut other_always_ok = true;
    let mut lost = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !lost && std::time::Instant::now() < deadline {
        let d = device_json(&http, "lamp-0001").await.unwrap_or(Value::Null);
        let o = device_json(&http, "lamp-0002").await.unwrap_or(Value::Null);
        other_always_ok &= quiet(&o).as_deref() == Some("ok");
        seen_late |= quiet(&d).as_deref() == Some("late");
        lost = quiet(&d).as_deref() == Some("lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lost && seen_late,
        "lamp-0001 went late ({seen_late}) then lost ({lost})"
    );
    let a = eventually(Duration::from_secs(20), || async {
        alarm(&http, "equipment_silent", "lamp-0001")
            .await
            .is_some()
    })
    .await;
    assert!(a, "the lost lamp raised the supervision alarm");
    let d = device_json(&http, "lamp-0001").await?;
    assert_eq!(d["state"], "down", "{d:#}");
    assert!(d["timeouts"].as_u64().unwrap_or(0) >= 1, "{d:#}");
    assert_eq!(
        d["readings"].as_u64(),
        readings_at_outage,
        "no reading while silent: nothing stale stored"
    );
    let o = device_json(&http, "lamp-0002").await?;
    // ~6 s of outage at 5 polls/s: the neighbour was never held up by the silent lamp.
    assert!(
        o["polls"].as_u64().unwrap_or(0) >= other_polls + 15,
        "{o:#}"
    );
    assert!(other_always_ok, "lamp-0002 stayed live throughout");
    assert_eq!(o["consecutive_failures"], 0);

    // It answers again: reconnected, fresh readings, live.
    let answering_at = unix_ms();
    fleet.set_fault("lamp-0001", None)?;
    let back = eventually(Duration::from_secs(20), || async {
        device_json(&http, "lamp-0001").await.ok().is_some_and(|d| {
            quiet(&d).as_deref() == Some("ok")
                && d["state"] == "up"
                && d["readings"].as_u64() > readings_at_outage
        })
    })
    .await;
    assert!(back, "lamp-0001 back after the outage");
    assert!(
        device_json(&http, "lamp-0001").await?["reconnects"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    // The store agrees: points before the outage and after it, none while it was silent.
    let fresh = eventually(Duration::from_secs(10), || async {
        stored_power_times(&http, "lamp-0001")
            .await
            .is_ok_and(|t| t.range(answering_at..).next().is_some())
    })
    .await;
    assert!(fresh, "fresh points stored after the outage");
    let stored = stored_power_times(&http, "lamp-0001").await?;
    assert!(stored.range(..down_at).next().is_some(), "{stored:?}");
    let stale: Vec<_> = stored.range(down_at..answering_at).collect();
    assert!(
        stale.is_empty(),
        "points stored while the lamp was silent: {stale:?}"
    );
    Ok(())
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_unit_behind_a_tcp_gateway_is_never_live_while_its_neighbour_polls_on() -> Result<()>
{
    // Unit 99 at lamp-0001's address: the simulator answers every request for it with
    // exception 0x0B (gateway target failed to respond), as a Modbus TCP gateway does
    // for a dead unit behind it. Answering is not being alive.
    let (_fleet, gw) = simulated(1, 0, |c| {
        let mut ghost = c.modbus.device[0].clone();
        ghost.id = "lamp-ghost".into();
        ghost.unit = 99;
        c.modbus.device.push(ghost);
    })
    .await?;
    let http = gw.http();
    // Many polls, every one answered with 0x0B: no heartbeat, no reading, never live.
    let polled = eventually(Duration::from_secs(30), || async {
        device_json(&http, "lamp-ghost")
            .await
            .is_ok_and(|d| d["polls"].as_u64().unwrap_or(0) >= 20)
    })
    .await;
    let ghost = device_json(&http, "lamp-ghost").await?;
    assert!(polled, "{ghost:#}");
    assert!(
        ghost["exceptions"]["0x0b"].as_u64().unwrap_or(0) >= 20,
        "{ghost:#}"
    );
    assert_eq!(ghost["readings"], 0, "{ghost:#}");
    assert_ne!(ghost["liveness"], "ok", "{ghost:#}");
    let n = device_json(&http, "lamp-0001").await?;
    assert_eq!(
        (&n["liveness"], &n["state"]),
        (&Value::from("ok"), &Value::from("up")),
        "{n:#}"
    );
    Ok(())
}

/// Waits until command `id` of `device` has verification `verify` with read-back `observed`.
async fn checked(http: &str, device: &str, id: i64, verify: &str, observed: f64) -> bool {
    eventually(Duration::from_secs(10), || async {
        get_json(&format!("{http}/api/modbus/commands?device={device}"))
            .await
            .ok()
            .and_then(|v| {
                v["commands"]
                    .as_array()?
                    .iter()
                    .find(|c| c["id"] == id)
                    .cloned()
            })
            .is_some_and(|c| c["verify"] == verify && c["observed"].as_f64() == Some(observed))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_dims_a_lamp_verified_by_read_back_and_a_deaf_lamp_raises_dimming_fault(
) -> Result<()> {
    let (fleet, gw) = simulated(2, 0, |_| {}).await?;
    let http = gw.http();
    let write = |id: &str, register: &str, value: f64| {
        let url = format!("{http}/api/modbus/devices/{id}/write");
        let body = serde_json::json!({"register": register, "value": value, "by": "ops-li"});
        async move { post_json(&url, body).await }
    };
    registers_read(&http, "lamp-0001", &["dimming_pct".to_string()]).await?;
    let (status, rec) = write("lamp-0001", "dimming_setpoint", 40.0).await?;
    assert_eq!(status, 200, "{rec:#}");
    assert_eq!(rec["result"], "written");
    assert_eq!(rec["by"], "ops-li");
    let id = rec["id"].as_i64().context("command id")?;
    let verified = checked(&http, "lamp-0001", id, "verified", 40.0).await;
    assert!(verified, "the next polls verified the dimming");
    let s = lamp(&fleet, "lamp-0001")?;
    assert_eq!(s.dimming_pct, 40);
    assert!(s.power_w < 45.0, "a dimmed lamp draws less: {s:?}");

    // A lamp that takes the write but does not dim: not applied, and an alarm.
    registers_read(&http, "lamp-0002", &["dimming_pct".to_string()]).await?;
    fleet.set_fault("lamp-0002", Some(Fault::Deaf))?;
    let (status, rec) = write("lamp-0002", "dimming_setpoint", 30.0).await?;
    assert_eq!(status, 200, "{rec:#}");
    let id = rec["id"].as_i64().context("command id")?;
    let failed = checked(&http, "lamp-0002", id, "not_applied", 100.0).await;
    assert!(failed, "the deaf lamp's command is not applied");
    let raised = eventually(Duration::from_secs(10), || async {
        alarm(&http, "dimming_fault", "lamp-0002").await.is_some()
    })
    .await;
    assert!(raised, "dimming_fault raised for the deaf lamp");
    assert!(alarm(&http, "dimming_fault", "lamp-0001").await.is_none());
    assert!(
        scrape(
            &http,
            "linli_modbus_commands_total{outcome=\"not_applied\"}"
        )
        .await?
            >= 1.0
    );

    // Bad commands are refused with a reason, and never reach the lamp.
    let (status, e) = write("lamp-0001", "dimming_setpoint", 150.0).await?;
    assert_eq!(status, 400, "{e:#}");
    let (status, e) = write("lamp-0001", "power_w", 1.0).await?;
    assert_eq!(status, 400, "{e:#}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("read-only"));
    let (status, e) = write("lamp-0001", "brightness", 1.0).await?;
    assert_eq!(status, 400);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("dimming_setpoint"));
    assert_eq!(lamp(&fleet, "lamp-0001")?.dimming_setpoint, 40);

    // Nobody may publish as polled equipment: an integration client that tries is refused.
    let hub = gw.provision("hub-x", DeviceKind::StreetLight, Trust::Integration)?;
    let forged = br#"{"counter":1,"device_time":0,"report":{"street_light":{"relay_on":false,"current_ma":0,"power_dw":0,"dimming_pct":0}}}"#;
    mosquitto_pub(
        gw.gw.mqtt_v4,
        &hub,
        "linli/v1/lamp-0001/up/telemetry",
        forged,
    )?;
    let refused = eventually(Duration::from_secs(10), || async {
        scrape(&http, "linli_rejected_total{reason=\"polled_device\"}")
            .await
            .ok()
            == Some(1.0)
    })
    .await;
    assert!(
        refused,
        "a publish under a polled device's id is refused and counted"
    );
    Ok(())
}

/// A zone where the local hour is now `hour` (`Etc/GMT-N` is UTC+N).
fn zone_at(hour: i64) -> String {
    let utc_hour = (unix_ms() / 3_600_000).rem_euclid(24);
    let mut east = (hour - utc_hour).rem_euclid(24);
    if east > 14 {
        east -= 24;
    }
    match east {
        0 => "Etc/UTC".to_string(),
        e if e > 0 => format!("Etc/GMT-{e}"),
        e => format!("Etc/GMT+{}", -e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_lamp_lit_at_noon_raises_day_burner_and_switching_it_off_clears_it() -> Result<()>
{
    // At midnight a lit lamp is what a lamp is for: many polls, no day_burner.
    let (_night_fleet, night) = simulated(1, 0, |c| c.alarms.timezone = Some(zone_at(0))).await?;
    let polled = eventually(Duration::from_secs(10), || async {
        device_json(&night.http(), "lamp-0001")
            .await
            .is_ok_and(|d| d["readings"].as_u64().unwrap_or(0) >= 10)
    })
    .await;
    assert!(polled, "the lamp is polled at night");
    assert!(alarm(&night.http(), "day_burner", "lamp-0001")
        .await
        .is_none());
    drop(night);

    // At noon the same lit lamp burns by day: after three polls, day_burner.
    let (fleet, gw) = simulated(1, 0, |c| c.alarms.timezone = Some(zone_at(12))).await?;
    let http = gw.http();
    let raised = eventually(Duration::from_secs(10), || async {
        alarm(&http, "day_burner", "lamp-0001")
            .await
            .is_some_and(|a| a["condition"] == true)
    })
    .await;
    assert!(raised, "day_burner raised for a lamp lit at noon");

    // A crew switches it off from the API: the next polls verify it, the condition clears.
    let (status, rec) = post_json(
        &format!("{http}/api/modbus/devices/lamp-0001/write"),
        serde_json::json!({"register": "relay_command", "value": 0, "by": "crew-wu"}),
    )
    .await?;
    assert_eq!(status, 200, "{rec:#}");
    let id = rec["id"].as_i64().context("command id")?;
    assert!(checked(&http, "lamp-0001", id, "verified", 0.0).await);
    assert!(!lamp(&fleet, "lamp-0001")?.relay_on);
    let cleared = eventually(Duration::from_secs(10), || async {
        alarm(&http, "day_burner", "lamp-0001")
            .await
            .is_some_and(|a| a["condition"] == false)
    })
    .await;
    assert!(
        cleared,
        "day_burner's condition cleared once the lamp is off"
    );
    Ok(())
}

/// `HH:MM` in UTC, `minutes` from now.
fn utc_clock(minutes: i64) -> String {
    let m = (unix_ms() / 60_000 + minutes).rem_euclid(24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_switches_and_dims_its_lamps_with_audited_verified_commands() -> Result<()> {
    let fleet = Fleet::start(&FleetConfig {
        lamps: 2,
        units_per_listener: 1,
        lamp: linli_sim::modbus::LampConfig {
            relay_on: false,
            ..Default::default()
        },
        ..FleetConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let profiles = dir.path().join("none.toml");
    std::fs::write(&profiles, "")?;
    let gw = TestGateway::start(|c| {
        modbus_defaults(c, &profiles);
        c.alarms.timezone = Some("UTC".into());
        c.modbus.schedule_tick_ms = 200;
        for d in fleet.devices() {
            let mut m = device(&d.id, d.profile, 200);
            m.tcp = Some(d.addr.to_string());
            m.unit = d.unit;
            // lamp-0001 on main-street (by zone), lamp-0002 elsewhere and unscheduled.
            if d.id == "lamp-0002" {
                m.zone = "park".into();
            } else {
                m.zone = "main-street".into();
            }
            c.modbus.device.push(m);
        }
        c.modbus
            .schedule
            .push(linli_gateway::ingest::modbus::config::ScheduleDef {
                name: "night".into(),
                devices: vec![],
                zones: vec!["main-street".into()],
                // On from an hour ago to an hour from now; dimmed to 60 % around now.
                on: utc_clock(-60),
                off: utc_clock(60),
                dim: vec![linli_gateway::ingest::modbus::config::DimDef {
                    window: format!("{}-{}", utc_clock(-30), utc_clock(30)),
                    level: 60,
                }],
            });
    })
    .await?;
    let http = gw.http();
    let switched = eventually(Duration::from_secs(20), || async {
        lamp(&fleet, "lamp-0001").is_ok_and(|l| l.relay_on && l.dimming_pct == 60)
    })
    .await;
    assert!(
        switched,
        "the scheduled lamp is on and dimmed: {:?}",
        lamp(&fleet, "lamp-0001")
    );
    let verified = eventually(Duration::from_secs(10), || async {
        get_json(&format!("{http}/api/modbus/commands?device=lamp-0001"))
            .await
            .ok()
            .and_then(|v| v["commands"].as_array().cloned())
            .is_some_and(|c| {
                c.iter()
                    .all(|c| c["by"] == "schedule:night" && c["source"] == "schedule")
                    && c.iter()
                        .filter(|c| c["result"] == "written" && c["verify"] == "verified")
                        .count()
                        == 2
            })
    })
    .await;
    assert!(
        verified,
        "one relay and one dimming command, audited and verified"
    );
    // Nothing changes, so nothing more is sent; the unscheduled lamp is left alone.
    let rows = |v: &Value| v["commands"].as_array().map_or(0, Vec::len);
    let settled = get_json(&format!("{http}/api/modbus/commands")).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = get_json(&format!("{http}/api/modbus/commands")).await?;
    assert_eq!(rows(&all), rows(&settled), "{all:#}");
    assert!(!lamp(&fleet, "lamp-0002")?.relay_on);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_unit_on_an_rtu_bus_does_not_stop_its_neighbour() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_socat, gw_end, dev_end) = pty_pair(dir.path())?;
    let equipment = linli_sim::modbus::Equipment::new();
    for unit in [1, 2] {
        equipment.insert(unit, linli_sim::modbus::Lamp::new(Default::default()))?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server =
        linli_sim::modbus::serve_rtu(Path::new(&dev_end), 19200, equipment.clone(), async {
            let _ = stopped.await;
        })?;
    let server = tokio::spawn(server);
    let profiles = dir.path().join("none.toml");
    std::fs::write(&profiles, "")?;
    let gw = TestGateway::start(|c| {
        modbus_defaults(c, &profiles);
        two_units_on_a_bus(c, &gw_end, "lamp", "street-light");
    })
    .await?;
    let http = gw.http();
    for id in ["lamp-1", "lamp-2"] {
        registers_read(&http, id, &["power_w".to_string()]).await?;
    }
    equipment.set_fault(1, Some(Fault::Silent))?;
    let down = eventually(Duration::from_secs(10), || async {
        device_json(&http, "lamp-1")
            .await
            .is_ok_and(|d| d["state"] == "down")
    })
    .await;
    assert!(down, "the silent unit times out");
    let count = |d: &Value, k: &str| d[k].as_u64().unwrap_or(0);
    let before = device_json(&http, "lamp-2").await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = device_json(&http, "lamp-2").await?;
    // 8 polls due in 4 s; the dead unit's timeouts (backed off) only slow the bus down.
    assert!(
        count(&after, "readings") >= count(&before, "readings") + 4,
        "{before:#} {after:#}"
    );
    // At most one slip on a loaded machine; a stalled bus would fail every poll.
    assert!(
        count(&after, "failures") <= count(&before, "failures") + 1,
        "{after:#}"
    );
    assert!(count(&device_json(&http, "lamp-1").await?, "timeouts") >= 2);

    equipment.set_fault(1, None)?;
    let back = eventually(Duration::from_secs(20), || async {
        device_json(&http, "lamp-1")
            .await
            .is_ok_and(|d| d["state"] == "up" && d["consecutive_failures"] == 0)
    })
    .await;
    assert!(back, "the unit is polled again once it answers");
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// When the store holds a `power_w` point of `device` (ms since the epoch).
async fn stored_power_times(http: &str, device: &str) -> Result<std::collections::BTreeSet<i64>> {
    let r = get_json(&format!(
        "{http}/api/series?device={device}&metric=power_w&from=0&to=now"
    ))
    .await?;
    let points = r["points"].as_array().cloned().unwrap_or_default();
    Ok(points.iter().filter_map(|p| p[0].as_i64()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_stored_polled_readings_and_the_command_audit() -> Result<()> {
    let fleet = Fleet::start(&FleetConfig {
        lamps: 1,
        units_per_listener: 1,
        ..FleetConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let lamp = &fleet.devices()[0];
    let extra = format!(
        "[modbus]\ntimeout_ms = 300\nbackoff_min_ms = 100\nbackoff_max_ms = 400\n\
         [[modbus.device]]\nid = \"{}\"\nprofile = \"street-light\"\ntcp = \"{}\"\nunit = {}\n\
         poll_ms = 200\nsite = \"city\"\nzone = \"main-street\"\n",
        lamp.id, lamp.addr, lamp.unit
    );
    let (config, mqtt, http_addr) = linli_system_tests::write_process_config(dir.path(), &extra)?;
    let mut gw = linli_system_tests::spawn_gateway(&config, mqtt, http_addr).await?;
    let http = gw.http.clone();
    let (status, rec) = post_json(
        &format!("{http}/api/modbus/devices/lamp-0001/write"),
        serde_json::json!({"register": "dimming_setpoint", "value": 70, "by": "ops-li"}),
    )
    .await?;
    assert_eq!(status, 200, "{rec:#}");
    let id = rec["id"].as_i64().context("id")?;
    assert!(checked(&http, "lamp-0001", id, "verified", 70.0).await);
    let stored = eventually(Duration::from_secs(20), || async {
        stored_power_times(&http, "lamp-0001")
            .await
            .is_ok_and(|t| t.len() >= 10)
    })
    .await;
    assert!(stored, "polled readings stored");
    let before = stored_power_times(&http, "lamp-0001").await?;
    gw.child.kill()?; // SIGKILL
    let _ = gw.child.wait();

    let gw = linli_system_tests::spawn_gateway(&config, mqtt, http_addr).await?;
    let after = stored_power_times(&gw.http, "lamp-0001").await?;
    let lost: Vec<&i64> = before.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "stored before the kill, gone after: {lost:?}"
    );
    let audit = get_json(&format!("{}/api/modbus/commands?device=lamp-0001", gw.http)).await?;
    let c = &audit["commands"][0];
    assert_eq!(
        (c["id"].as_i64(), &c["verify"], &c["by"]),
        (Some(id), &Value::from("verified"), &Value::from("ops-li"))
    );
    // And polling goes on after the restart.
    let more = eventually(Duration::from_secs(20), || async {
        stored_power_times(&gw.http, "lamp-0001")
            .await
            .is_ok_and(|t| t.len() > after.len())
    })
    .await;
    assert!(more, "polling resumed");
    Ok(())
}
