//! Delivery in a real gateway, to real receivers: signed webhooks to an HTTP server in
//! the test (which checks the HMAC itself), e-mail to Debian's aiosmtpd, alarm state on
//! the gateway's own MQTT broker, server-sent events; a webhook that fails for a minute;
//! kill -9 with deliveries pending; a street-light work order over the API.

use std::time::{Duration, Instant};

use linli_gateway::config::{SmtpConfig, WebhookConfig};
use linli_gateway::registry::Trust;
use linli_protocol::report::{Pendant, Report, StreetLight};
use linli_protocol::DeviceKind;
use linli_system_tests::receivers::{SmtpServer, WebhookReceiver};
use linli_system_tests::*;
use rumqttc::QoS;
use serde_json::{json, Value};

const SECRET: &str = "test-secret-do-not-use";

/// A routing file: Anna is the caregiver everywhere, paged by SMS webhook and e-mail.
fn routing(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let p = dir.join("routing.toml");
    std::fs::write(
        &p,
        r#"
[[person]]
id = "anna"
name = "Anna Li"
email = "anna@care.example"
phone = "+86 138 0000 0001"
contact = ["webhook:sms", "email"]
[[team]]
id = "care"
role = "caregiver"
members = ["anna"]
[[team]]
id = "lights"
role = "lighting_crew"
members = ["anna"]
[[policy]]
priority = 1
[[policy.step]]
after_s = 0
notify = ["caregiver"]
[[policy]]
priority = 3
kinds = ["lamp_failure"]
work_order = { role = "lighting_crew", grade = "yellow" }
[[policy]]
priority = 2
[[policy]]
priority = 3
[[policy]]
priority = 4
[work_orders]
verify_s = 2
"#,
    )?;
    Ok(p)
}

fn webhooks(rx: &WebhookReceiver) -> Vec<WebhookConfig> {
    vec![
        WebhookConfig {
            name: "sms".into(),
            url: rx.url("/sms"),
            secret: Some(SECRET.into()),
            secret_env: None,
            receives: "pages".into(),
        },
        WebhookConfig {
            name: "platform".into(),
            url: rx.url("/platform"),
            secret: Some(SECRET.into()),
            secret_env: None,
            receives: "events".into(),
        },
    ]
}

fn smtp(s: &SmtpServer) -> SmtpConfig {
    SmtpConfig {
        server: s.addr.ip().to_string(),
        port: s.addr.port(),
        from: "linli@gateway.example".into(),
        username: None,
        password_env: None,
    }
}

/// Real receivers (webhooks, SMTP) and a gateway routing to them: Anna is paged by SMS
/// webhook and e-mail; `tweak` changes the config further.
struct Rig {
    rx: WebhookReceiver,
    mail: SmtpServer,
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

async fn rig(
    tweak: impl FnOnce(&mut linli_gateway::Config) + Send + 'static,
) -> anyhow::Result<Rig> {
    let rx = WebhookReceiver::start(SECRET).await?;
    let mail = SmtpServer::start().await?;
    let dir = tempfile::tempdir()?;
    let routing = routing(dir.path())?;
    let (hooks, smtp) = (webhooks(&rx), smtp(&mail));
    let gw = TestGateway::start(move |c| {
        c.delivery.routing = Some(routing);
        c.delivery.webhook = hooks;
        c.delivery.smtp = Some(smtp);
        tweak(c);
    })
    .await?;
    Ok(Rig {
        rx,
        mail,
        gw,
        _dir: dir,
    })
}

/// The gateway's deliveries in one state (`pending`, `delivered`, …), newest first.
async fn deliveries(http: &str, state: &str) -> anyhow::Result<Vec<Value>> {
    let d = get_json(&format!("{http}/api/deliveries?state={state}")).await?;
    Ok(d["deliveries"].as_array().cloned().unwrap_or_default())
}

/// Those of them on one channel.
fn on_channel<'a>(list: &'a [Value], channel: &str) -> Vec<&'a Value> {
    list.iter()
        .filter(|x| x["notification"]["channel"] == channel)
        .collect()
}

async fn sos(gw: &TestGateway, id: &str) -> anyhow::Result<()> {
    let mut dev = gw.provision(id, DeviceKind::Pendant, Trust::Sealed)?;
    let m = connect_device(gw.gw.mqtt_v4, &dev).await?;
    let r = Report::Pendant(Pendant::Sos);
    let (_, f) = dev.seal_next(0, r);
    m.publish(&dev.topic_for(&r), f).await?;
    let mut m = m;
    let acked = m.acks(&dev, 1, Duration::from_secs(10)).await;
    anyhow::ensure!(acked.len() == 1, "SOS of {id} not acked");
    Ok(())
}

async fn open_alarm(http: &str, source: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(v) = get_json(&format!("{http}/api/alarms?open=true")).await {
            if let Some(a) = v["alarms"]
                .as_array()
                .and_then(|l| l.iter().find(|a| a["source"] == source))
            {
                return Ok(a.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("no open alarm for {source}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sos_reaches_the_caregiver_by_signed_webhook_and_email_and_the_streams_by_mqtt_and_sse(
) -> anyhow::Result<()> {
    let Rig { rx, mail, gw, .. } = rig(|c| c.delivery.mqtt = true).await?;
    let http = gw.http();
    let auth = format!("Bearer {API_TOKEN}");
    let events = sse(&http, ("authorization", &auth));
    // A display subscribes to the alarm topics with a device's credentials.
    let display = gw.provision("display-1", DeviceKind::HomeHub, Trust::Sealed)?;
    let mut sub = connect(gw.gw.mqtt_v4, "display-1", &display.id, &display.password).await?;
    sub.client.subscribe("linli/v1/#", QoS::AtMostOnce).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    sos(&gw, "pendant-1").await?;
    let a = open_alarm(&http, "resident:R-pendant-1").await?;
    let id = a["id"].as_u64().expect("id");

    // The page arrives signed, once, with the person and the alarm.
    let paged = eventually(Duration::from_secs(15), || async {
        rx.receipts("/sms").len() == 1
    })
    .await;
    assert!(paged, "no page on the SMS webhook: {:?}", rx.seen());
    let page = rx
        .seen()
        .into_iter()
        .find(|h| h.path == "/sms")
        .expect("page");
    assert!(page.signed, "HMAC did not verify: {page:?}");
    assert_eq!(page.body["type"], "page");
    assert_eq!(page.body["to"]["id"], "anna");
    assert_eq!(page.body["to"]["phone"], "+86 138 0000 0001");
    assert_eq!(page.body["alarm"]["id"], id);
    assert_eq!(page.body["alarm"]["kind"], "sos");
    assert_eq!(page.body["key"], page.key.as_str());

    // The e-mail, with the idempotency key as its Message-ID.
    let got_mail = eventually(Duration::from_secs(15), || async {
        !mail.messages().is_empty()
    })
    .await;
    assert!(got_mail, "no e-mail arrived at aiosmtpd");
    let msg = &mail.messages()[0];
    assert_eq!(
        SmtpServer::header(msg, "To").as_deref(),
        Some("anna@care.example")
    );
    assert!(
        SmtpServer::header(msg, "Subject").is_some_and(|s| s.contains("sos")),
        "{msg}"
    );
    assert_eq!(
        SmtpServer::header(msg, "Message-ID"),
        Some(format!("<{}@linli>", page.key))
    );

    // The platform gets the event stream, signed.
    let raised = eventually(Duration::from_secs(15), || async {
        rx.seen()
            .iter()
            .any(|h| h.path == "/platform" && h.body["action"] == "raised")
    })
    .await;
    assert!(raised, "{:?}", rx.seen());
    assert!(rx
        .seen()
        .iter()
        .filter(|h| h.path == "/platform")
        .all(|h| h.signed));

    // SSE and MQTT carry the same events; the alarm's state is retained on its topic.
    let ev = events.recv_timeout(Duration::from_secs(10))?;
    assert_eq!(ev["type"], "alarm");
    assert_eq!(ev["alarm"]["id"], id);
    let mut topics = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = |topics: &[(String, Value)]| {
        topics
            .iter()
            .any(|(t, _)| *t == format!("linli/v1/alarms/{id}"))
            && topics
                .iter()
                .any(|(t, v)| t == "linli/v1/events/alarm" && v["action"] == "raised")
    };
    while Instant::now() < deadline && !seen(&topics) {
        if let Ok(Some((t, p))) =
            tokio::time::timeout(Duration::from_millis(500), sub.incoming.recv()).await
        {
            topics.push((t, serde_json::from_slice(&p).unwrap_or(Value::Null)));
        }
    }
    assert!(
        topics
            .iter()
            .any(|(t, v)| t == "linli/v1/events/alarm" && v["action"] == "raised"),
        "{topics:?}"
    );
    let state = topics
        .iter()
        .find(|(t, _)| t == &format!("linli/v1/alarms/{id}"))
        .expect("retained state");
    assert_eq!(state.1["state"], "active_unacked");
    // A display connecting later gets the retained state at once.
    let hub2 = gw.provision("display-2", DeviceKind::HomeHub, Trust::Sealed)?;
    let mut late = connect(gw.gw.mqtt_v4, "display-2", &hub2.id, &hub2.password).await?;
    late.client
        .subscribe(format!("linli/v1/alarms/{id}"), QoS::AtMostOnce)
        .await?;
    let (t, p) = tokio::time::timeout(Duration::from_secs(10), late.incoming.recv())
        .await?
        .expect("retained");
    assert_eq!(t, format!("linli/v1/alarms/{id}"));
    assert_eq!(serde_json::from_slice::<Value>(&p)?["kind"], "sos");

    // Acknowledged and assigned over the API: the streams hear of it, nobody is paged again.
    let (code, body) = post_json(
        &format!("{http}/api/alarms/{id}/ack"),
        json!({"by": "anna"}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_json(
        &format!("{http}/api/alarms/{id}/assign"),
        json!({"by": "anna", "to": "bo"}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_json(
        &format!("{http}/api/alarms/{id}/comment"),
        json!({"by": "bo", "text": "resident is fine, sitting up"}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_json(
        &format!("{http}/api/alarms/{id}/comment"),
        json!({"by": "bo", "text": " "}),
    )
    .await?;
    assert_eq!(code, 409, "{body}");
    let acked = eventually(Duration::from_secs(10), || async {
        rx.seen().iter().any(|h| {
            h.path == "/platform" && h.body["action"] == "acked" && h.body["who"] == "anna"
        })
    })
    .await;
    assert!(acked, "{:?}", rx.seen());
    let one = get_json(&format!("{http}/api/alarms/{id}")).await?;
    assert_eq!(one["assignee"], "bo");
    assert!(
        one["time_to_ack_s"].as_f64().is_some_and(|s| s >= 0.0),
        "{one}"
    );
    let actions: Vec<&str> = one["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|t| t["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"assigned") && actions.contains(&"comment"),
        "{actions:?}"
    );
    assert_eq!(rx.receipts("/sms").len(), 1, "paged once");

    // Every delivery is on record with its attempt and receipt; the answer time counts.
    let list = deliveries(&http, "delivered").await?;
    let sms = on_channel(&list, "webhook:sms")[0];
    assert_eq!(sms["receipt"], "HTTP 200");
    let email = list
        .iter()
        .find(|x| x["notification"]["channel"] == "email")
        .expect("email delivery");
    assert!(
        email["receipt"]
            .as_str()
            .is_some_and(|r| r.starts_with("SMTP 2")),
        "{email}"
    );
    let att = get_json(&format!("{http}/api/deliveries/{}/attempts", sms["id"])).await?;
    assert_eq!(att["attempts"].as_array().map(Vec::len), Some(1), "{att}");
    let k = get_json(&format!("{http}/api/kpis")).await?;
    assert_eq!(k["teams"]["care"]["answered"], 1, "{k}");
    assert_eq!(k["teams"]["care"]["within_60s"], 1, "{k}");
    assert_eq!(
        scrape(&http, "linli_alarms_answered_total{team=\"care\"}").await?,
        1.0
    );
    assert!(scrape(&http, "linli_deliveries_delivered_total").await? >= 3.0);
    let r = get_json(&format!("{http}/api/routing")).await?;
    assert_eq!(r["teams"][0]["on_duty"], json!(["anna"]), "{r}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_failing_for_a_minute_gets_every_page_exactly_once_and_email_is_not_held_up(
) -> anyhow::Result<()> {
    let Rig { rx, mail, gw, .. } = rig(|c| {
        c.delivery.backoff_min_ms = 200;
        c.delivery.backoff_max_ms = 2_000;
    })
    .await?;
    let http = gw.http();
    rx.answer(500);
    let outage = Instant::now();
    let n = 5;
    for i in 0..n {
        sos(&gw, &format!("pendant-{i}")).await?;
    }
    // E-mail goes out while the webhooks fail.
    let mailed = eventually(Duration::from_secs(30), || async {
        mail.messages().len() == n
    })
    .await;
    assert!(mailed, "{} of {n} e-mails", mail.messages().len());
    assert!(
        outage.elapsed() < Duration::from_secs(60),
        "e-mail waited for the webhook outage"
    );
    assert!(
        rx.seen().iter().any(|h| h.status == 500),
        "the webhook was tried during the outage"
    );
    assert!(rx.receipts("/sms").is_empty());

    // After a minute the receiver recovers.
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed())).await;
    rx.answer(200);
    let done = eventually(Duration::from_secs(30), || async {
        rx.receipts("/sms").len() == n && rx.receipts("/platform").len() >= n
    })
    .await;
    assert!(
        done,
        "sms {:?} platform {:?}",
        rx.receipts("/sms"),
        rx.receipts("/platform")
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // nothing more may come
    for path in ["/sms", "/platform"] {
        let receipts = rx.receipts(path);
        assert!(
            receipts.values().all(|c| *c == 1),
            "{path}: a key received twice: {receipts:?}"
        );
    }
    assert!(rx.seen().iter().all(|h| h.signed), "every request signed");
    let pending = deliveries(&http, "pending").await?;
    assert_eq!(pending.len(), 0, "{pending:?}");
    // Each page was attempted several times and the failures are on record.
    let delivered = deliveries(&http, "delivered").await?;
    let sms = on_channel(&delivered, "webhook:sms");
    assert_eq!(sms.len(), n);
    let first = sms
        .iter()
        .map(|x| x["attempts"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(
        first > 3,
        "the first page was retried with backoff: {first} attempts"
    );
    let att = get_json(&format!(
        "{http}/api/deliveries/{}/attempts",
        sms.iter()
            .max_by_key(|x| x["attempts"].as_u64())
            .expect("one")["id"]
    ))
    .await?;
    let details: Vec<&str> = att["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["detail"].as_str())
        .collect();
    assert!(
        details.contains(&"HTTP 500") && details.last() == Some(&"HTTP 200"),
        "{details:?}"
    );
    assert!(scrape(&http, "linli_delivery_retries_total").await? > 0.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_pauses_only_its_channel_and_catches_up_once_it_listens(
) -> anyhow::Result<()> {
    // The SMS provider is not listening yet; the platform and e-mail are.
    let port = free_port()?;
    let Rig { rx, mail, gw, .. } = rig(move |c| {
        c.delivery.webhook[0].url = format!("http://127.0.0.1:{port}/sms");
        c.delivery.backoff_min_ms = 100;
        c.delivery.backoff_max_ms = 1_000;
    })
    .await?;
    let http = gw.http();
    let n = 3;
    for i in 0..n {
        sos(&gw, &format!("pendant-{i}")).await?;
    }
    let others = eventually(Duration::from_secs(30), || async {
        mail.messages().len() == n && rx.receipts("/platform").len() >= n
    })
    .await;
    assert!(
        others,
        "e-mail and the platform went on while the SMS provider was down"
    );
    let pending = deliveries(&http, "pending").await?;
    let sms = on_channel(&pending, "webhook:sms");
    assert_eq!(sms.len(), n, "{pending:?}");
    assert!(
        sms.iter().any(|x| x["last_error"].is_string()),
        "the failures are on record: {pending:?}"
    );
    // The provider comes up: every page arrives, once.
    let sms_rx = WebhookReceiver::start_on(SECRET, port).await?;
    let all = eventually(Duration::from_secs(20), || async {
        sms_rx.receipts("/sms").len() == n
    })
    .await;
    assert!(all, "{:?}", sms_rx.receipts("/sms"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sms_rx.receipts("/sms").values().all(|c| *c == 1));
    assert!(sms_rx.seen().iter().all(|h| h.signed));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_deliveries_pending_completes_them_after_restart_and_sends_none_twice(
) -> anyhow::Result<()> {
    let rx = WebhookReceiver::start(SECRET).await?;
    let dir = tempfile::tempdir()?;
    let routing = routing(dir.path())?;
    let extra = format!(
        "[delivery]\nrouting = {routing:?}\nbackoff_min_ms = 200\nbackoff_max_ms = 1000\n\
         [[delivery.webhook]]\nname = \"sms\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
         [[delivery.webhook]]\nname = \"platform\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\nreceives = \"events\"\n",
        rx.url("/sms"),
        rx.url("/platform")
    );
    // Anna's e-mail contact needs SMTP; this test is about webhooks only.
    let routing_text = std::fs::read_to_string(&routing)?.replace(
        "contact = [\"webhook:sms\", \"email\"]",
        "contact = [\"webhook:sms\"]",
    );
    std::fs::write(&routing, routing_text)?;
    let (config, mqtt, http) = write_process_config(dir.path(), &extra)?;
    let mut devs = Vec::new();
    for i in 0..4 {
        devs.push(provision_cli(&config, &format!("pendant-{i}"), "pendant")?);
    }
    let mut gw = spawn_gateway(&config, mqtt, http).await?;
    let press = |gw: &GatewayProcess, dev: &mut linli_sim::device::SimDevice| {
        let r = Report::Pendant(Pendant::Sos);
        let (_, f) = dev.seal_next(0, r);
        let topic = dev.topic_for(&r);
        let addr = gw.mqtt;
        let dev = dev.clone();
        async move {
            let mut m = connect_device(addr, &dev).await?;
            m.publish(&topic, f).await?;
            anyhow::ensure!(
                m.acks(&dev, 1, Duration::from_secs(10)).await.len() == 1,
                "not acked"
            );
            anyhow::Ok(())
        }
    };
    // Two alarms delivered while the receiver is up.
    for d in devs.iter_mut().take(2) {
        press(&gw, d).await?;
    }
    let two = eventually(Duration::from_secs(20), || async {
        rx.receipts("/sms").len() == 2
    })
    .await;
    assert!(two, "{:?}", rx.receipts("/sms"));
    // Then the receiver fails, two more alarms wait, and the gateway is killed.
    rx.answer(503);
    for d in devs.iter_mut().skip(2) {
        press(&gw, d).await?;
    }
    let failing = eventually(Duration::from_secs(20), || async {
        rx.seen()
            .iter()
            .filter(|h| h.path == "/sms" && h.status == 503)
            .count()
            >= 2
    })
    .await;
    assert!(failing);
    let pending = deliveries(&gw.http, "pending").await?;
    assert!(pending.len() >= 2, "{pending:?}");
    gw.child.kill()?;
    gw.child.wait()?;
    let before = rx.seen().len();
    rx.answer(200);
    let gw2 = spawn_gateway(&config, mqtt, http).await?;
    let all = eventually(Duration::from_secs(30), || async {
        rx.receipts("/sms").len() == 4
    })
    .await;
    assert!(all, "after restart: {:?}", rx.receipts("/sms"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    for path in ["/sms", "/platform"] {
        let receipts = rx.receipts(path);
        assert!(
            receipts.values().all(|c| *c == 1),
            "{path}: a key delivered twice: {receipts:?}"
        );
    }
    // Nothing delivered before the crash was sent again after it.
    let delivered_before: Vec<String> = rx.seen()[..before]
        .iter()
        .filter(|h| h.status == 200)
        .map(|h| h.key.clone())
        .collect();
    assert!(!delivered_before.is_empty());
    for h in &rx.seen()[before..] {
        assert!(
            !delivered_before.contains(&h.key),
            "{} re-sent after the restart",
            h.key
        );
    }
    let pending = deliveries(&gw2.http, "pending").await?;
    assert_eq!(pending.len(), 0, "{pending:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_street_light_work_order_reopens_when_fixed_while_dark_and_closes_when_really_fixed(
) -> anyhow::Result<()> {
    let rx = WebhookReceiver::start(SECRET).await?;
    let dir = tempfile::tempdir()?;
    let routing = routing(dir.path())?;
    let text = std::fs::read_to_string(&routing)?.replace(
        "contact = [\"webhook:sms\", \"email\"]",
        "contact = [\"webhook:sms\"]",
    );
    std::fs::write(&routing, text)?;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"lamp_failure\"\nkind = \"threshold\"\npriority = 3\nmetric = \"current_a\"\nbelow = 0.05\nrelay = \"on\"\nconsecutive = 3\nper = \"device\"\n",
    )?;
    let hooks = webhooks(&rx);
    let gw = TestGateway::start(move |c| {
        c.alarms.rules = Some(rules);
        c.delivery.routing = Some(routing);
        c.delivery.webhook = hooks;
    })
    .await?;
    let http = gw.http();
    let mut lamp = gw.provision("lamp-1", DeviceKind::StreetLight, Trust::Sealed)?;
    let m = connect_device(gw.gw.mqtt_v4, &lamp).await?;
    let mut poll = |ma: u16| {
        let r = Report::StreetLight(StreetLight {
            relay_on: true,
            current_ma: ma,
            power_dw: 0,
            dimming_pct: 100,
        });
        let (_, f) = lamp.seal_next(0, r);
        (lamp.topic_for(&r), f)
    };
    for _ in 0..3 {
        let (t, f) = poll(0);
        m.publish(&t, f).await?;
    }
    let a = open_alarm(&http, "device:lamp-1").await?;
    assert_eq!(a["kind"], "lamp_failure");
    let wo = |http: String| async move {
        let v = get_json(&format!("{http}/api/work-orders"))
            .await
            .unwrap_or(Value::Null);
        v["work_orders"]
            .as_array()
            .and_then(|l| l.first().cloned())
            .unwrap_or(Value::Null)
    };
    let up = eventually(Duration::from_secs(10), || async {
        wo(http.clone()).await["state"] == "dispatched"
    })
    .await;
    assert!(up, "no work order: {}", wo(http.clone()).await);
    let w = wo(http.clone()).await;
    assert_eq!(w["grade"], "yellow");
    let id = w["id"].as_u64().expect("id");
    let act = |what: &str| format!("{http}/api/work-orders/{id}/{what}");
    // The crew hears of it; it is not a page.
    let told = eventually(Duration::from_secs(10), || async {
        rx.seen().iter().any(|h| {
            h.path == "/sms" && h.body["type"] == "work_order" && h.body["action"] == "dispatched"
        })
    })
    .await;
    assert!(told, "{:?}", rx.seen());
    assert!(!rx.seen().iter().any(|h| h.body["type"] == "page"));

    let (code, body) = post_json(&act("fixed"), json!({})).await?;
    assert_eq!(code, 400, "who is required: {body}");
    let (code, body) = post_json(&act("accept"), json!({"by": "wei"})).await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_json(&act("accept"), json!({"by": "wei"})).await?;
    assert_eq!(code, 409, "already accepted: {body}");
    // Marked fixed while the lamp still draws 0 A: reopened when the 2 s window ends.
    let (code, body) = post_json(
        &act("fixed"),
        json!({"by": "wei", "note": "replaced driver"}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "fixed");
    let (t, f) = poll(0);
    m.publish(&t, f).await?;
    let reopened = eventually(Duration::from_secs(15), || async {
        wo(http.clone()).await["reopened"] == 1
    })
    .await;
    assert!(reopened, "{}", wo(http.clone()).await);
    assert_eq!(wo(http.clone()).await["state"], "dispatched");
    // Fixed for real: the lamp draws current, then the crew marks it fixed.
    let (code, body) = post_json(&act("accept"), json!({"by": "wei"})).await?;
    assert_eq!(code, 200, "{body}");
    let (t, f) = poll(450);
    m.publish(&t, f).await?;
    let cleared = eventually(Duration::from_secs(10), || async {
        get_json(&format!("{http}/api/alarms/{}", a["id"]))
            .await
            .is_ok_and(|v| v["condition"] == false)
    })
    .await;
    assert!(cleared);
    let (code, body) =
        post_json(&act("fixed"), json!({"by": "wei", "note": "replaced lamp"})).await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "verified");
    let closed = eventually(Duration::from_secs(10), || async {
        get_json(&format!("{http}/api/alarms/{}", a["id"]))
            .await
            .is_ok_and(|v| v["state"] == "normal")
    })
    .await;
    assert!(
        closed,
        "the alarm is resolved when its work order is verified"
    );
    let one = get_json(&format!("{http}/api/work-orders/{id}")).await?;
    let actions: Vec<&str> = one["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|s| s["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "dispatched",
            "accepted",
            "fixed",
            "reopened",
            "accepted",
            "fixed",
            "verified"
        ]
    );
    let who: Vec<&str> = one["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|s| s["who"].as_str())
        .collect();
    assert_eq!(who[1], "wei");
    Ok(())
}
