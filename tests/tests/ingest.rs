//! System tests of the ingest path: real MQTT clients (rumqttc and Debian's
//! mosquitto_pub) against the gateway's embedded broker, checked through the HTTP API
//! and `/metrics`.

use std::time::Duration;

use linli_gateway::registry::Trust;
use linli_protocol::report::*;
use linli_protocol::topic::UpChannel;
use linli_system_tests::*;

const T: u32 = 1_764_230_400;

fn lamp(current_ma: u16) -> Report {
    Report::StreetLight(StreetLight {
        relay_on: true,
        current_ma,
        power_dw: 950,
        dimming_pct: 80,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_reading_is_journaled_acked_and_visible() -> anyhow::Result<()> {
    let tg = TestGateway::start(|_| {}).await?;
    let mut dev = tg.provision(
        "lamp-1",
        linli_protocol::DeviceKind::StreetLight,
        Trust::Sealed,
    )?;
    let (_, body) = get(&format!("{}/api/devices/lamp-1", tg.http())).await?;
    assert!(
        body.contains("\"liveness\":\"unknown\""),
        "never heard = unknown: {body}"
    );

    let mut m = connect_device(tg.gw.mqtt_v4, &dev).await?;
    let (counter, frame) = dev.seal_next(T, lamp(420));
    m.publish(&dev.topic(UpChannel::Telemetry), frame).await?;
    let acks = m.acks(&dev, 1, Duration::from_secs(10)).await;
    assert_eq!(
        acks,
        [counter],
        "the sealed ack names the journaled counter"
    );

    let d = get_json(&format!("{}/api/devices/lamp-1", tg.http())).await?;
    assert_eq!(d["metrics"]["current_a"]["value"], 0.42);
    assert_eq!(d["liveness"], "ok");
    assert_eq!(d["kind"], "street_light");
    let r = get_json(&format!("{}/api/devices/lamp-1/readings", tg.http())).await?;
    assert_eq!(r[0]["counter"], counter);
    assert_eq!(r[0]["report"]["street_light"]["current_ma"], 420);
    assert_eq!(
        scrape(&tg.http(), "linli_readings_accepted_total").await?,
        1.0
    );
    assert!(scrape(&tg.http(), "linli_process_resident_memory_bytes").await? > 1e6);

    // The MQTT 5 listener serves devices too.
    let v5 = tg.gw.mqtt_v5.expect("v5 listener");
    drop(m);
    let (c2, frame) = dev.seal_next(T, lamp(300));
    let ack = v5_publish_and_ack(v5, &dev, &dev.topic(UpChannel::Telemetry), frame).await?;
    assert_eq!(dev.open_ack(&ack), Some(c2));

    // Unknown route and unknown device: JSON errors with a stable shape.
    let (status, body) = get(&format!("{}/api/devices/nope", tg.http())).await?;
    assert_eq!(status, 404);
    let e: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(e["error"]["code"], "not_found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_sealed_and_json_devices_are_accepted() -> anyhow::Result<()> {
    let tg = TestGateway::start(|_| {}).await?;
    let mut dev = tg.provision("bin-7", linli_protocol::DeviceKind::WasteBin, Trust::Sealed)?;
    let json_dev = tg.provision(
        "meter-3",
        linli_protocol::DeviceKind::PowerMeter,
        Trust::Integration,
    )?;
    let (_, frame) = dev.seal_next(
        T,
        Report::WasteBin(WasteBin {
            fill_pct: 85,
            temperature_dc: 215,
            tilt_deg: 2,
        }),
    );
    mosquitto_pub(
        tg.gw.mqtt_v4,
        &dev,
        &dev.topic(UpChannel::Telemetry),
        &frame,
    )?;
    let json = r#"{"counter":5,"device_time":1764230400,"report":{"power_meter":{"voltage_dv":2301,"current_ma":5120,"power_w":1150,"power_factor_milli":950,"frequency_chz":5001,"import_wh":123456}}}"#;
    let topic = json_dev.topic(UpChannel::Telemetry);
    mosquitto_pub(tg.gw.mqtt_v4, &json_dev, &topic, json.as_bytes())?;
    let http = tg.http();
    let ok = eventually(Duration::from_secs(10), || {
        let http = http.clone();
        async move {
            let a = get_json(&format!("{http}/api/devices/bin-7")).await.ok();
            let b = get_json(&format!("{http}/api/devices/meter-3")).await.ok();
            a.is_some_and(|a| a["metrics"]["fill_pct"]["value"] == 85.0)
                && b.is_some_and(|b| {
                    b["metrics"]["voltage_v"]["value"] == 230.1 && b["trust"] == "integration"
                })
        }
    })
    .await;
    assert!(ok, "both readings visible through the API");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_and_impostor_clients_are_refused() -> anyhow::Result<()> {
    let tg = TestGateway::start(|_| {}).await?;
    let dev = tg.provision("door-1", linli_protocol::DeviceKind::Door, Trust::Sealed)?;
    let addr = tg.gw.mqtt_v4;
    assert!(
        connect(addr, "ghost", "ghost", "whatever").await.is_err(),
        "unknown device"
    );
    assert!(
        connect(addr, "door-1", "door-1", "wrong").await.is_err(),
        "bad password"
    );
    assert!(
        connect(addr, "other", "door-1", &dev.password)
            .await
            .is_err(),
        "client id must equal username"
    );
    assert!(
        connect(addr, "door-1", "door-1", &dev.password)
            .await
            .is_ok(),
        "the real device connects"
    );
    assert_eq!(
        scrape(&tg.http(), "linli_broker_auth_refused_total").await?,
        3.0
    );
    assert_eq!(
        scrape(&tg.http(), "linli_broker_auth_accepted_total").await?,
        1.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_counted_and_the_valid_device_keeps_being_served(
) -> anyhow::Result<()> {
    let tg = TestGateway::start(|_| {}).await?;
    let kind = linli_protocol::DeviceKind::StreetLight;
    let mut good = tg.provision("lamp-good", kind, Trust::Sealed)?;
    let mut evil = tg.provision("lamp-evil", kind, Trust::Sealed)?;
    let json_dev = tg.provision("lamp-json", kind, Trust::Integration)?;
    let mut g = connect_device(tg.gw.mqtt_v4, &good).await?;
    let e = connect_device(tg.gw.mqtt_v4, &evil).await?;
    let j = connect_device(tg.gw.mqtt_v4, &json_dev).await?;
    let http = tg.http();
    let mut expected_acks = Vec::new();

    // A good reading before and after the attacks.
    let (c, f) = good.seal_next(T, lamp(400));
    expected_acks.push(c);
    g.publish(&good.topic(UpChannel::Telemetry), f).await?;

    let telemetry_of_good = good.topic(UpChannel::Telemetry);
    // 1. Another device publishing under lamp-good's id (sealed with its own key).
    let (_, f) = evil.seal_next(T, lamp(1));
    e.publish(&telemetry_of_good, f).await?;
    // 2. A tampered seal.
    let (_, mut f) = evil.seal_next(T, lamp(1));
    let last = f.len() - 1;
    f[last] ^= 1;
    e.publish(&evil.topic(UpChannel::Telemetry), f).await?;
    // 3. A replayed frame (captured from the good device and sent again).
    let (c, f) = good.seal_next(T, lamp(410));
    expected_acks.push(c);
    g.publish(&telemetry_of_good, f.clone()).await?;
    e.publish(&telemetry_of_good, f).await?;
    // 4. A 1 MiB payload.
    e.publish(&evil.topic(UpChannel::Telemetry), vec![0x55; 1 << 20])
        .await?;
    // 5. Random bytes.
    let noise: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    e.publish(&evil.topic(UpChannel::Telemetry), noise).await?;
    // 6. Invalid UTF-8 where JSON is expected.
    j.publish(
        &json_dev.topic(UpChannel::Telemetry),
        vec![b'{', 0xff, 0xfe, b'}'],
    )
    .await?;
    // 7. A bad topic.
    e.publish("linli/v1/lamp-evil/up/nonsense", vec![1, 2, 3])
        .await?;

    let (c, f) = good.seal_next(T, lamp(420));
    expected_acks.push(c);
    g.publish(&telemetry_of_good, f).await?;

    let acks = g
        .acks(&good, expected_acks.len() + 1, Duration::from_secs(10))
        .await;
    for c in &expected_acks {
        assert!(
            acks.contains(c),
            "good device's counter {c} acked (got {acks:?})"
        );
    }
    let want = [
        ("wrong_key", 1.0),
        ("tampered", 1.0),
        ("replay", 1.0),
        ("oversized", 1.0),
        ("bad_json", 1.0),
        ("bad_topic", 1.0),
    ];
    let all_counted = eventually(Duration::from_secs(10), || {
        let http = http.clone();
        async move {
            for (reason, n) in want {
                let name = format!("linli_rejected_total{{reason=\"{reason}\"}}");
                if scrape(&http, &name).await.ok() != Some(n) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let (_, text) = get(&format!("{http}/metrics")).await?;
    assert!(
        all_counted,
        "every attack counted under its reason:\n{text}"
    );
    // The random bytes are rejected under some header reason, not accepted.
    let noise_rejections: f64 = [
        "truncated",
        "unsupported_version",
        "unknown_key_id",
        "wrong_key",
        "tampered",
    ]
    .iter()
    .filter_map(|r| metric(&text, &format!("linli_rejected_total{{reason=\"{r}\"}}")))
    .sum();
    assert!(noise_rejections >= 3.0, "noise rejected:\n{text}");
    let readings = get_json(&format!("{http}/api/devices/lamp-good/readings")).await?;
    assert_eq!(
        readings.as_array().map(Vec::len),
        Some(expected_acks.len()),
        "replay not stored twice"
    );
    let evil_readings = get_json(&format!("{http}/api/devices/lamp-evil/readings")).await?;
    assert_eq!(evil_readings.as_array().map(Vec::len), Some(0));
    assert_eq!(metric(&text, "linli_ingest_up"), Some(1.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stage_shows_lag_and_loses_nothing_acked() -> anyhow::Result<()> {
    let tg = TestGateway::start(|_| {}).await?;
    let http = tg.http();
    let (devices, per_device) = (10, 200u32);
    let mut fleet = Vec::new();
    for i in 0..devices {
        let dev = tg.provision(
            &format!("pir-{i}"),
            linli_protocol::DeviceKind::Motion,
            Trust::Sealed,
        )?;
        let m = connect_device(tg.gw.mqtt_v4, &dev).await?;
        fleet.push((dev, m, Vec::new()));
    }
    tg.gw
        .shared
        .paused
        .store(true, std::sync::atomic::Ordering::Relaxed);
    for _ in 0..per_device {
        for (dev, m, sent) in &mut fleet {
            let (c, f) = dev.seal_next(
                T,
                Report::Motion(Motion {
                    motion: true,
                    count: 1,
                }),
            );
            sent.push(c);
            m.publish(&dev.topic(UpChannel::Telemetry), f).await?;
        }
    }
    let total = f64::from(devices * per_device);
    let queued = eventually(Duration::from_secs(20), || {
        let http = http.clone();
        async move { scrape(&http, "linli_ingest_queue_depth").await.ok() == Some(total) }
    })
    .await;
    assert!(queued, "the queue depth shows every waiting message");
    let (dev0, m0, _) = &mut fleet[0];
    let early = m0.acks(dev0, 1, Duration::from_millis(500)).await;
    assert!(early.is_empty(), "nothing acked while stalled");
    assert_eq!(scrape(&http, "linli_readings_accepted_total").await?, 0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tg.gw
        .shared
        .paused
        .store(false, std::sync::atomic::Ordering::Relaxed);
    for (dev, m, sent) in &mut fleet {
        let mut acks = m.acks(dev, sent.len(), Duration::from_secs(30)).await;
        acks.sort_unstable();
        let missing: Vec<_> = sent
            .iter()
            .filter(|c| acks.binary_search(c).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "{}: not acked after the stall: {missing:?}",
            dev.id
        );
    }
    let lag = scrape(&http, "linli_broker_link_lag_seconds").await?;
    assert!(lag >= 0.3, "link lag reflects the stall: {lag}");
    assert_eq!(scrape(&http, "linli_readings_accepted_total").await?, total);
    assert_eq!(scrape(&http, "linli_ingest_queue_depth").await?, 0.0);
    let readings = get_json(&format!("{http}/api/devices/pir-3/readings?limit=5000")).await?;
    assert_eq!(readings.as_array().map(Vec::len), Some(per_device as usize));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_fails_start_up_naming_it() -> anyhow::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?;
    type SetListen = fn(&mut linli_gateway::Config, std::net::SocketAddr);
    let taken_by: [(&str, SetListen); 2] = [
        ("broker.listen_v4", |c, a| c.broker.listen_v4 = a),
        ("http.listen", |c, a| c.http.listen = a),
    ];
    for (key, set) in taken_by {
        let err = TestGateway::start(|c| set(c, addr)).await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&addr.to_string()) && msg.contains(key),
            "{msg}"
        );
    }
    Ok(())
}
