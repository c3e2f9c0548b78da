//! The alarm stage in a real gateway: alarms raised from MQTT readings, people's actions
//! over HTTP with their audit trail, rule reloads, and (against the real `linli` process)
//! timers that come due while the gateway is killed firing exactly once on restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use linli_gateway::registry::Trust;
use linli_protocol::report::{Pendant, Report};
use linli_protocol::DeviceKind;
use linli_system_tests::*;
use serde_json::{json, Value};

async fn alarms(http: &str) -> anyhow::Result<Vec<Value>> {
    let v = get_json(&format!("{http}/api/alarms")).await?;
    Ok(v["alarms"].as_array().cloned().unwrap_or_default())
}

async fn find(http: &str, kind: &str) -> Option<Value> {
    alarms(http)
        .await
        .ok()?
        .into_iter()
        .find(|a| a["kind"] == kind)
}

/// Polls `/api/alarms` until a `kind` alarm satisfies `ok`.
async fn wait_until(http: &str, kind: &str, ok: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        last = find(http, kind).await;
        if last.as_ref().is_some_and(&ok) {
            return Ok(last.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("no `{kind}` alarm as expected appeared; last seen: {last:?}")
}

async fn wait_for(http: &str, kind: &str) -> anyhow::Result<Value> {
    wait_until(http, kind, |_| true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sos_over_mqtt_is_acknowledged_and_resolved_over_http_with_an_audit_trail(
) -> anyhow::Result<()> {
    let gw = TestGateway::start(|_| {}).await?;
    let http = gw.http();
    let mut dev = gw.provision("pendant-1", DeviceKind::Pendant, Trust::Sealed)?;
    let m = connect_device(gw.gw.mqtt_v4, &dev).await?;
    let sos = Report::Pendant(Pendant::Sos);
    for _ in 0..3 {
        let (_, f) = dev.seal_next(0, sos);
        m.publish(&dev.topic_for(&sos), f).await?;
    }
    // One alarm for the three presses.
    let a = wait_until(&http, "sos", |a| a["count"] == 3).await?;
    assert_eq!(a["priority"], 1);
    assert_eq!(a["source"], "resident:R-pendant-1");
    assert_eq!(a["state"], "active_unacked");
    let id = a["id"].as_u64().expect("id");
    let url = |what: &str| format!("{http}/api/alarms/{id}/{what}");

    // Shelving a life-safety alarm is refused, and the refusal is on record.
    let (code, body) = post_json(
        &url("shelve"),
        json!({"by": "amy", "seconds": 600, "reason": "busy"}),
    )
    .await?;
    assert_eq!(code, 409, "{body}");
    assert!(body.to_string().contains("life-safety"), "{body}");
    // An action must say who did it.
    let (code, body) = post_json(&url("ack"), json!({"by": " "})).await?;
    assert_eq!(code, 400, "{body}");
    let (code, _) = post_json(&url("ack"), json!({"by": "nurse-amy", "note": "on my way"})).await?;
    assert_eq!(code, 200);
    // Life-safety: closing needs a disposition.
    let (code, body) = post_json(&url("resolve"), json!({"by": "nurse-amy"})).await?;
    assert_eq!(code, 409, "{body}");
    let (code, _) = post_json(
        &url("resolve"),
        json!({"by": "nurse-amy", "disposition": "resident fine"}),
    )
    .await?;
    assert_eq!(code, 200);
    let (code, body) =
        post_json(&format!("{http}/api/alarms/999999/ack"), json!({"by": "x"})).await?;
    assert_eq!(code, 404, "{body}");
    // Away mode and out-of-service must name something registered.
    let away = |who: &str| format!("{http}/api/residents/{who}/away");
    let (code, body) = post_json(&away("nobody"), json!({"on": true, "by": "amy"})).await?;
    assert_eq!(code, 404, "{body}");
    let (code, body) = post_json(&away("R-pendant-1"), json!({"on": true, "by": "amy"})).await?;
    assert_eq!(code, 200, "{body}");
    let oos = format!("{http}/api/out-of-service");
    let (code, body) = post_json(&oos, json!({"source": "ghost", "on": true, "by": "amy"})).await?;
    assert_eq!(code, 404, "{body}");
    let (code, body) = post_json(
        &oos,
        json!({"source": "pendant-1", "on": true, "by": "amy"}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");

    let one = get_json(&format!("{http}/api/alarms/{id}")).await?;
    assert_eq!(one["state"], "normal");
    assert_eq!(one["disposition"], "resident fine");
    let history: Vec<(String, String)> = one["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|t| {
            (
                t["action"].as_str().unwrap_or("").to_owned(),
                t["who"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let has = |action: &str, who: &str| history.iter().any(|(a, w)| a == action && w == who);
    assert!(
        has("raised", "rules") && has("repeat", "rules"),
        "{history:?}"
    );
    assert!(has("shelve_refused", "amy"), "{history:?}");
    assert!(
        has("acked", "nurse-amy") && has("resolved", "nurse-amy"),
        "{history:?}"
    );
    assert!(scrape(&http, "linli_alarms_raised_total").await? >= 1.0);
    assert!(scrape(&http, "linli_alarm_latency_seconds_count").await? >= 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rules_file_is_refused_on_reload_with_every_problem_and_the_old_rules_stay(
) -> anyhow::Result<()> {
    let rules_dir = tempfile::tempdir()?;
    let path = rules_dir.path().join("rules.toml");
    std::fs::write(
        &path,
        "[[rule]]\nname = \"sos\"\nkind = \"event\"\npriority = 1\nevents = [\"sos\"]\n",
    )?;
    let p = path.clone();
    let gw = TestGateway::start(move |c| c.alarms.rules = Some(p)).await?;
    let http = gw.http();
    std::fs::write(
        &path,
        "[[rule]]\nname = \"hr\"\nkind = \"threshold\"\nmetric = \"heart_rate\"\nabove = 130\n\
         [[rule]]\nname = \"x\"\nkind = \"absence\"\nsignal = \"motion\"\nwindow = \"7-10\"\n\
         [[rule]]\nname = \"y\"\nkind = \"event\"\nevents = [\"sos\"]\nprioritee = 1\n",
    )?;
    let (code, body) = post_json(&format!("{http}/api/rules/reload"), json!({})).await?;
    assert_eq!(code, 400);
    let msg = body.to_string();
    for key in ["rule[0].metric", "rule[1].window", "prioritee"] {
        assert!(msg.contains(key), "{key} not named in {msg}");
    }
    let rules = get_json(&format!("{http}/api/rules")).await?;
    assert_eq!(rules["rules"][0]["name"], "sos", "{rules}");
    assert_eq!(
        scrape(&http, "linli_rules_reloads_total{result=\"refused\"}").await?,
        1.0
    );

    std::fs::write(
        &path,
        "[[rule]]\nname = \"hr\"\nkind = \"threshold\"\nmetric = \"heart_rate_bpm\"\nabove = 130\n",
    )?;
    let (code, body) = post_json(&format!("{http}/api/rules/reload"), json!({})).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["rules"][0]["name"], "hr");
    Ok(())
}

fn hms(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn transitions(http: &str, id: u64, action: &str) -> anyhow::Result<Vec<Value>> {
    let one = get_json(&format!("{http}/api/alarms/{id}")).await?;
    Ok(one["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t["action"] == action)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_window_and_an_escalation_pending_fires_each_exactly_once_on_restart(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.toml");
    // Until the test sets a window, a harmless one.
    std::fs::write(&rules, "timezone = \"UTC\"\n")?;
    let (config, mqtt, http) = write_process_config(
        dir.path(),
        &format!("[alarms]\nrules = {:?}\ntick_ms = 100\n", rules),
    )?;
    let mut pendant = provision_cli(&config, "pendant-1", "pendant")?;
    let pir = provision_cli(&config, "pir-1", "motion")?;
    let mut gw = spawn_gateway(&config, mqtt, http).await?;
    let m = connect_device(gw.mqtt, &pendant).await?;
    let mp = connect_device(gw.mqtt, &pir).await?;
    drop(mp);

    // An absence window that opens 4 s from now and closes 12 s from now (whole seconds,
    // UTC), and an SOS that escalates after 10 s unacknowledged.
    let t0 = now_ms();
    let start = (t0 / 1000 + 4) * 1000;
    let end = start + 8000;
    std::fs::write(
        &rules,
        format!(
            "timezone = \"UTC\"\n[lifecycle]\nmax_escalations = 1\n\
             [[rule]]\nname = \"no_motion\"\nkind = \"absence\"\npriority = 2\nsignal = \"motion\"\nwindow = \"{}-{}\"\ndevice_kinds = [\"motion\"]\n\
             [[rule]]\nname = \"sos\"\nkind = \"event\"\npriority = 1\nevents = [\"sos\"]\nescalate_after_s = 10\n",
            hms(start),
            hms(end)
        ),
    )?;
    let (code, body) = post_json(&format!("{}/api/rules/reload", gw.http), json!({})).await?;
    assert_eq!(code, 200, "{body}");
    assert!(
        now_ms() < start,
        "the reload took longer than the 4 s margin; the window would not be watched"
    );
    let sos = Report::Pendant(Pendant::Sos);
    let (_, f) = pendant.seal_next(0, sos);
    m.publish(&pendant.topic_for(&sos), f).await?;
    let a = wait_for(&gw.http, "sos").await?;
    let id = a["id"].as_u64().expect("id");
    let raised = a["raised_ms"].as_u64().expect("raised");
    assert!(transitions(&gw.http, id, "escalated").await?.is_empty());
    let early = find(&gw.http, "no_motion").await;
    assert!(early.is_none(), "{early:?} {start} {end}");

    // kill -9 before either deadline, and start again after both.
    gw.child.kill()?;
    gw.child.wait()?;
    drop(m);
    let until = end.max(raised + 10_000) + 1500;
    tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
    let gw2 = spawn_gateway(&config, mqtt, http).await?;
    let absent = wait_for(&gw2.http, "no_motion").await?;
    assert_eq!(absent["source"], "device:pir-1");
    assert_eq!(
        absent["raised_ms"].as_u64(),
        Some(end),
        "fired at the window's end: {absent}"
    );
    // Both deadlines fire in the first tick after the journal replay; by the time the
    // absence alarm is visible the escalation is committed too.
    let esc = transitions(&gw2.http, id, "escalated").await?;
    assert_eq!(esc.len(), 1, "{esc:?}");
    assert_eq!(
        esc[0]["at_ms"].as_u64(),
        Some(raised + 10_000),
        "at its original deadline"
    );
    drop(gw2);

    // Another restart fires nothing again.
    let gw3 = spawn_gateway(&config, mqtt, http).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = alarms(&gw3.http).await?;
    assert_eq!(
        all.iter().filter(|a| a["kind"] == "no_motion").count(),
        1,
        "{all:?}"
    );
    assert_eq!(
        find(&gw3.http, "no_motion").await.expect("absence")["count"],
        1
    );
    assert_eq!(transitions(&gw3.http, id, "escalated").await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamps_on_a_dead_cabinet_show_unknown_under_one_cabinet_alarm() -> anyhow::Result<()> {
    use linli_protocol::report::{PowerMeter, StreetLight};
    let rules_dir = tempfile::tempdir()?;
    let path = rules_dir.path().join("rules.toml");
    std::fs::write(
        &path,
        "[[rule]]\nname = \"lamp_failure\"\nkind = \"threshold\"\nmetric = \"current_a\"\nbelow = 0.05\nrelay = \"on\"\nconsecutive = 3\nper = \"device\"\n\
         [[rule]]\nname = \"cabinet_supply\"\nkind = \"threshold\"\npriority = 2\nmetric = \"voltage_v\"\nbelow = 50\nper = \"device\"\n\
         [[group]]\nname = \"cabinet\"\nchildren = [\"lamp_failure\"]\nzones = [\"zone-1\"]\ncause = \"cabinet_supply\"\ncause_devices = [\"meter\"]\n",
    )?;
    let gw = TestGateway::start(move |c| c.alarms.rules = Some(path)).await?;
    let http = gw.http();
    let mut meter = gw.provision("meter", DeviceKind::PowerMeter, Trust::Sealed)?;
    let mut lamps = Vec::new();
    for i in 0..4 {
        lamps.push(gw.provision(&format!("lamp-{i}"), DeviceKind::StreetLight, Trust::Sealed)?);
    }
    let off = Report::PowerMeter(PowerMeter {
        voltage_dv: 0,
        current_ma: 0,
        power_w: 0,
        power_factor_milli: 0,
        frequency_chz: 0,
        import_wh: 7,
    });
    let m = connect_device(gw.gw.mqtt_v4, &meter).await?;
    let (_, f) = meter.seal_next(0, off);
    m.publish(&meter.topic_for(&off), f).await?;
    wait_for(&http, "cabinet_supply").await?;
    let dark = Report::StreetLight(StreetLight {
        relay_on: true,
        current_ma: 0,
        power_dw: 0,
        dimming_pct: 100,
    });
    for lamp in &mut lamps {
        let mut c = connect_device(gw.gw.mqtt_v4, lamp).await?;
        for _ in 0..3 {
            let (_, f) = lamp.seal_next(0, dark);
            c.publish(&lamp.topic_for(&dark), f).await?;
        }
        c.acks(lamp, 3, Duration::from_secs(10)).await;
    }
    let parent = wait_until(&http, "cabinet_supply", |a| a["children"] == 4).await?;
    let all = alarms(&http).await?;
    let lamps_alarms: Vec<&Value> = all.iter().filter(|a| a["kind"] == "lamp_failure").collect();
    assert_eq!(lamps_alarms.len(), 4, "{all:?}");
    for a in &lamps_alarms {
        assert_eq!(a["suppressed_by"], parent["id"], "{a}");
        assert_eq!(a["announced"], false);
        assert_eq!(a["shown_as"], "unknown");
    }
    let devices = get_json(&format!("{http}/api/devices")).await?;
    for d in devices.as_array().expect("devices") {
        let want = if d["id"] == "meter" {
            "alarm"
        } else {
            "unknown"
        };
        assert_eq!(d["alarm_status"], want, "{d}");
    }
    Ok(())
}
