//! The InfluxDB export against a real server: Debian's VictoriaMetrics, which serves the
//! InfluxDB v2 write API (`/api/v2/write`) and reads back with `/api/v1/export`. Every
//! accepted reading must arrive exactly once, with its value, timestamp and tags, through
//! server freezes (SIGSTOP), server restarts (SIGTERM), gateway restarts and refused
//! batches.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use linli_gateway::config::InfluxConfig;
use linli_gateway::registry::Trust;
use linli_protocol::report::*;
use linli_protocol::DeviceKind;
use linli_system_tests::*;

const VM: &str = "/usr/bin/victoria-metrics";

/// A VictoriaMetrics server on a loopback port, killed on drop.
struct Victoria {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
}

impl Victoria {
    async fn start(port: u16, data: &Path) -> Result<Victoria> {
        let mut v = Victoria {
            child: None,
            port,
            data: data.to_owned(),
        };
        v.restart().await?;
        Ok(v)
    }

    async fn restart(&mut self) -> Result<()> {
        let child = Command::new(VM)
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.data.display()))
            .arg("-dedup.minScrapeInterval=1ms")
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {VM} (apt-get install victoria-metrics)"))?;
        self.child = Some(child);
        let url = format!("{}/health", self.url());
        let up = eventually(Duration::from_secs(30), || {
            let u = url.clone();
            async move { matches!(get(&u).await, Ok((200, _))) }
        })
        .await;
        if !up {
            bail!(
                "VictoriaMetrics did not become healthy on port {}",
                self.port
            );
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let pid = self.child.as_ref().context("not running")?.id().to_string();
        let s = Command::new("kill").args([sig, &pid]).status()?;
        anyhow::ensure!(s.success(), "kill {sig} {pid} failed");
        Ok(())
    }

    /// SIGTERM and wait for the exit (connections are refused afterwards).
    async fn stop(&mut self) -> Result<()> {
        self.signal("-TERM")?;
        let mut child = self.child.take().context("not running")?;
        tokio::task::spawn_blocking(move || child.wait()).await??;
        Ok(())
    }

    /// Every sample of the series whose name matches `re`: labels → (timestamp → values).
    async fn export(&self, re: &str) -> Result<Vec<Series>> {
        let (_, _) = get(&format!("{}/internal/force_flush", self.url())).await?;
        let sel = format!("{{__name__=~\"{re}\"}}");
        let (status, body) = get(&format!(
            "{}/api/v1/export?match[]={}",
            self.url(),
            encode(&sel)
        ))
        .await?;
        anyhow::ensure!(status == 200, "export: {status} {body}");
        let mut out = Vec::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let labels = v["metric"]
                .as_object()
                .context("metric")?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let ts = v["timestamps"].as_array().context("timestamps")?;
            let vals = v["values"].as_array().context("values")?;
            let mut points: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for (t, x) in ts.iter().zip(vals) {
                points
                    .entry(t.as_i64().context("ts")?)
                    .or_default()
                    .push(x.as_f64().context("value")?);
            }
            out.push(Series { labels, points });
        }
        Ok(out)
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Series {
    labels: BTreeMap<String, String>,
    points: BTreeMap<i64, Vec<f64>>,
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn influx(url: &str, tweak: impl FnOnce(&mut InfluxConfig)) -> InfluxConfig {
    let mut c = InfluxConfig {
        url: url.into(),
        org: "linli".into(),
        bucket: "test".into(),
        batch_points: 50,
        flush_interval_ms: 200,
        timeout_ms: 1_000,
        backoff_min_ms: 50,
        backoff_max_ms: 1_000,
        ..InfluxConfig::default()
    };
    tweak(&mut c);
    c
}

/// A device time an hour ago plus `i` seconds: distinct points, inside retention.
fn base_time() -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (now - 3600) as u32
}

fn lamp(i: u32) -> Report {
    Report::StreetLight(StreetLight {
        relay_on: i.is_multiple_of(2),
        current_ma: (i % 60_000) as u16,
        power_dw: 950,
        dimming_pct: 80,
    })
}

/// Checks the `street_light_current_a` series of `device`: exactly the points in `want`
/// (device_time → current_ma), each once.
async fn check_lamp(
    vm: &Victoria,
    device: &str,
    want: &BTreeMap<u32, u32>,
) -> Result<std::result::Result<(), String>> {
    let series = vm.export("street_light_current_a").await?;
    let Some(s) = series
        .iter()
        .find(|s| s.labels.get("device").map(String::as_str) == Some(device))
    else {
        return Ok(Err("no series yet".into()));
    };
    let want: BTreeMap<i64, Vec<f64>> = want
        .iter()
        .map(|(t, ma)| (i64::from(*t) * 1000, vec![f64::from(*ma) / 1000.0]))
        .collect();
    if s.points != want {
        let missing = want.keys().filter(|t| !s.points.contains_key(t)).count();
        let twice = s.points.values().filter(|v| v.len() > 1).count();
        let extra = s.points.keys().filter(|t| !want.contains_key(t)).count();
        return Ok(Err(format!(
            "{} of {} points; missing {missing}, twice {twice}, unexpected {extra}",
            s.points.len(),
            want.len()
        )));
    }
    Ok(Ok(()))
}

async fn wait_lamp(vm: &Victoria, device: &str, want: &BTreeMap<u32, u32>, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let why = match check_lamp(vm, device, want).await {
            Ok(Ok(())) => return,
            Ok(Err(why)) => why,
            Err(e) => e.to_string(),
        };
        assert!(
            std::time::Instant::now() < deadline,
            "{device}: not every point arrived exactly once: {why}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Publishes `n` lamp readings from `start` and waits for every ack; returns
/// device_time → current_ma of each.
async fn publish_lamp(
    m: &mut Mqtt,
    dev: &mut linli_sim::device::SimDevice,
    t0: u32,
    range: std::ops::Range<u32>,
) -> Result<BTreeMap<u32, u32>> {
    let mut sent = BTreeMap::new();
    for i in range.clone() {
        let r = lamp(i);
        let (_, frame) = dev.seal_next(t0 + i, r);
        m.publish(&dev.topic_for(&r), frame).await?;
        sent.insert(t0 + i, i % 60_000);
    }
    let acks = m.acks(dev, range.len(), Duration::from_secs(30)).await;
    anyhow::ensure!(
        acks.len() == range.len(),
        "acked {} of {}",
        acks.len(),
        range.len()
    );
    Ok(sent)
}

async fn metric_eventually(http: &str, name: &str, pred: impl Fn(f64) -> bool) -> bool {
    eventually(Duration::from_secs(60), || {
        let f = scrape(http, name);
        let pred = &pred;
        async move { f.await.is_ok_and(pred) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_arrives_once_with_value_time_and_tags() -> Result<()> {
    let vm_dir = tempfile::tempdir()?;
    let vm = Victoria::start(free_port()?, vm_dir.path()).await?;
    let url = vm.url();
    let tg = TestGateway::start(|c| c.export.influxdb = Some(influx(&url, |_| {}))).await?;
    let mut lamp_dev = tg.provision("lamp-1", DeviceKind::StreetLight, Trust::Sealed)?;
    let mut pendant = tg.provision("pendant-1", DeviceKind::Pendant, Trust::Sealed)?;
    let mut m = connect_device(tg.gw.mqtt_v4, &lamp_dev).await?;
    let t0 = base_time();
    // 120 readings: more than two full batches plus a partial one closed by the timer.
    let want = publish_lamp(&mut m, &mut lamp_dev, t0, 0..120).await?;

    let mut mp = connect_device(tg.gw.mqtt_v4, &pendant).await?;
    let sos = Report::Pendant(Pendant::Sos);
    let act = Report::Pendant(Pendant::Activity {
        level: 42,
        steps: 7,
    });
    for (dt, r) in [(t0 + 5, act), (t0 + 6, sos)] {
        let (_, f) = pendant.seal_next(dt, r);
        mp.publish(&pendant.topic_for(&r), f).await?;
    }
    assert_eq!(mp.acks(&pendant, 2, Duration::from_secs(30)).await.len(), 2);

    wait_lamp(&vm, "lamp-1", &want, Duration::from_secs(60)).await;
    let all = vm.export("street_light_.*").await?;
    let names: Vec<_> = all.iter().map(|s| s.labels["__name__"].as_str()).collect();
    for f in ["relay_on", "current_a", "power_w", "dimming_pct"] {
        assert!(
            names.contains(&format!("street_light_{f}").as_str()),
            "{names:?}"
        );
    }
    let s = all
        .iter()
        .find(|s| s.labels["__name__"] == "street_light_power_w")
        .context("power_w")?;
    assert_eq!(s.labels["device"], "lamp-1");
    assert_eq!(s.labels["site"], "site-1");
    assert_eq!(s.labels["zone"], "zone-1");
    assert_eq!(s.labels["resident"], "R-lamp-1");
    assert_eq!(s.points.len(), 120);
    assert!(s.points.values().all(|v| v == &[95.0]));

    let ok = eventually(Duration::from_secs(30), || async {
        let ev = vm
            .export("event_count|pendant_steps")
            .await
            .unwrap_or_default();
        let event = ev.iter().find(|s| s.labels["__name__"] == "event_count");
        let steps = ev.iter().find(|s| s.labels["__name__"] == "pendant_steps");
        event.is_some_and(|e| {
            e.labels["kind"] == "sos"
                && e.labels["device"] == "pendant-1"
                && e.labels["device_kind"] == "pendant"
                && e.points
                    .iter()
                    .eq([(&(i64::from(t0 + 6) * 1000), &vec![1.0])])
        }) && steps.is_some_and(|s| {
            s.points
                .iter()
                .eq([(&(i64::from(t0 + 5) * 1000), &vec![7.0])])
        })
    })
    .await;
    assert!(ok, "the SOS event and the activity reading arrive");
    assert!(metric_eventually(&tg.http(), "linli_export_spool_batches", |v| v == 0.0).await);
    let http = tg.http();
    assert!(scrape(&http, "linli_export_points_sent_total").await? >= 122.0);
    assert_eq!(scrape(&http, "linli_export_up").await?, 1.0);
    assert_eq!(
        scrape(&http, "linli_export_batches_rejected_total").await?,
        0.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_freeze_and_restart_during_ingest_lose_and_duplicate_nothing() -> Result<()> {
    let vm_dir = tempfile::tempdir()?;
    let mut vm = Victoria::start(free_port()?, vm_dir.path()).await?;
    let url = vm.url();
    let tg = TestGateway::start(|c| c.export.influxdb = Some(influx(&url, |_| {}))).await?;
    let http = tg.http();
    let mut dev = tg.provision("lamp-2", DeviceKind::StreetLight, Trust::Sealed)?;
    let mut m = connect_device(tg.gw.mqtt_v4, &dev).await?;
    let t0 = base_time();
    let mut want = publish_lamp(&mut m, &mut dev, t0, 0..20).await?;
    wait_lamp(&vm, "lamp-2", &want, Duration::from_secs(60)).await;

    // Steady ingest in the background: ten readings a second until told to stop.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let publisher = tokio::spawn(async move {
        let mut sent = BTreeMap::new();
        let mut i = 20u32;
        loop {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            let r = lamp(i);
            let (_, frame) = dev.seal_next(t0 + i, r);
            if m.publish(&dev.topic_for(&r), frame).await.is_err() {
                break;
            }
            sent.insert(t0 + i, i % 60_000);
            i += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let acked = m
            .acks(&dev, sent.len(), Duration::from_secs(60))
            .await
            .len();
        (sent, acked)
    });

    // Frozen: writes hang until the timeout; batches pile up in the spool.
    let retries0 = scrape(&http, "linli_export_retries_total").await?;
    vm.signal("-STOP")?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let depth = scrape(&http, "linli_export_spool_batches").await?;
    let age = scrape(&http, "linli_export_oldest_unsent_age_seconds").await?;
    assert!(
        depth >= 2.0,
        "spool grew while the server was frozen: {depth}"
    );
    assert!(age >= 5.0, "oldest unsent age grew: {age}");
    assert_eq!(scrape(&http, "linli_export_up").await?, 0.0);
    assert!(scrape(&http, "linli_export_retries_total").await? > retries0);
    vm.signal("-CONT")?;
    assert!(
        metric_eventually(&http, "linli_export_spool_batches", |v| v == 0.0).await,
        "spool drained after SIGCONT"
    );

    // Down: connections refused; then back on the same port and data.
    vm.stop().await?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let depth = scrape(&http, "linli_export_spool_batches").await?;
    assert!(
        depth >= 2.0,
        "spool grew while the server was down: {depth}"
    );
    vm.restart().await?;
    let _ = stop_tx.send(());
    let (sent, acked) = publisher.await?;
    assert_eq!(acked, sent.len(), "every background reading acked");
    assert!(sent.len() >= 100, "steady ingest ran: {}", sent.len());
    want.extend(sent);
    wait_lamp(&vm, "lamp-2", &want, Duration::from_secs(90)).await;
    assert!(metric_eventually(&http, "linli_export_spool_batches", |v| v == 0.0).await);
    assert_eq!(scrape(&http, "linli_export_up").await?, 1.0);
    assert_eq!(
        scrape(&http, "linli_export_batches_dropped_total").await?,
        0.0
    );
    Ok(())
}

/// Kill -9 with closed batches in the spool and a tail not yet closed into one (the
/// flush interval is long): after the restart the spool is sent and the journal replays
/// the tail, so every reading arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_batches_and_the_unspooled_tail_survive_a_gateway_kill() -> Result<()> {
    let vm_dir = tempfile::tempdir()?;
    let mut vm = Victoria::start(free_port()?, vm_dir.path()).await?;
    let dir = tempfile::tempdir()?;
    let extra = format!(
        "[export.influxdb]\nurl = \"{}\"\norg = \"linli\"\nbucket = \"test\"\nbatch_points = 20\nflush_interval_ms = 600000\ntimeout_ms = 1000\nbackoff_min_ms = 50\nbackoff_max_ms = 500\n",
        vm.url()
    );
    let (config, mqtt, http) = write_process_config(dir.path(), &extra)?;
    let mut dev = provision_cli(&config, "lamp-3", "street_light")?;
    let gw = spawn_gateway(&config, mqtt, http).await?;
    let mut m = connect_device(gw.mqtt, &dev).await?;
    let t0 = base_time();
    // Two full batches: sent at once.
    let mut want = publish_lamp(&mut m, &mut dev, t0, 0..40).await?;
    wait_lamp(&vm, "lamp-3", &want, Duration::from_secs(60)).await;
    // The last sent batch may still be on disk until its 2xx is processed.
    assert!(metric_eventually(&gw.http, "linli_export_spool_batches", |v| v == 0.0).await);

    // Server down: two more full batches wait in the spool, 15 readings in memory only.
    vm.stop().await?;
    want.extend(publish_lamp(&mut m, &mut dev, t0, 40..95).await?);
    assert!(
        metric_eventually(&gw.http, "linli_export_spool_batches", |v| v >= 2.0).await,
        "the readings wait in the spool"
    );
    drop(m);
    drop(gw); // SIGKILL
    let spool = dir.path().join("data/export/influxdb");
    let batches = std::fs::read_dir(&spool)?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "batch"))
        })
        .count();
    assert_eq!(batches, 2, "batch files on disk");

    // Restart both (the gateway with a short flush interval, so the replayed tail goes
    // out without waiting for a full batch).
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace("flush_interval_ms = 600000", "flush_interval_ms = 200"),
    )?;
    vm.restart().await?;
    let gw = spawn_gateway(&config, mqtt, http).await?;
    wait_lamp(&vm, "lamp-3", &want, Duration::from_secs(60)).await;
    assert!(metric_eventually(&gw.http, "linli_export_spool_batches", |v| v == 0.0).await);
    Ok(())
}

/// A stand-in server: answers the first write with 400, later ones with 204, and keeps
/// the bodies it took.
async fn refusing_server() -> Result<(SocketAddr, Arc<responder::Bodies>)> {
    let bodies = Arc::new(responder::Bodies::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let b = bodies.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let b = b.clone();
            tokio::spawn(responder::serve(sock, b));
        }
    });
    Ok((addr, bodies))
}

/// A minimal HTTP/1.1 responder (keep-alive, Content-Length bodies only).
mod responder {
    use std::sync::Mutex;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    pub struct Bodies {
        pub calls: AtomicUsize,
        pub taken: Mutex<Vec<String>>,
    }

    pub async fn serve(mut sock: tokio::net::TcpStream, bodies: Arc<Bodies>) {
        let mut buf = Vec::new();
        loop {
            let head_end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                let mut chunk = [0u8; 4096];
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let mut chunk = [0u8; 4096];
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
            buf.drain(..head_end + len);
            let reply = if bodies.calls.fetch_add(1, SeqCst) == 0 {
                let msg = r#"{"code":"invalid","message":"unable to parse: bad timestamp"}"#;
                format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{msg}",
                    msg.len()
                )
            } else {
                bodies.taken.lock().map(|mut t| t.push(body)).ok();
                "HTTP/1.1 204 No Content\r\n\r\n".to_owned()
            };
            if sock.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_set_aside_and_later_batches_go() -> Result<()> {
    let (addr, bodies) = refusing_server().await?;
    let url = format!("http://{addr}");
    let tg = TestGateway::start(|c| c.export.influxdb = Some(influx(&url, |_| {}))).await?;
    let http = tg.http();
    let mut dev = tg.provision("lamp-4", DeviceKind::StreetLight, Trust::Sealed)?;
    let mut m = connect_device(tg.gw.mqtt_v4, &dev).await?;
    let t0 = base_time();
    publish_lamp(&mut m, &mut dev, t0, 0..3).await?;
    assert!(
        metric_eventually(&http, "linli_export_batches_rejected_total", |v| v == 1.0).await,
        "the refused batch is counted"
    );
    let rejected = tg.dir.path().join("export/influxdb/rejected");
    let read_reasons = || -> Vec<String> {
        std::fs::read_dir(&rejected)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "reason"))
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    // The counter moves just before the reason file is written: wait for the file.
    assert!(
        eventually(Duration::from_secs(30), || async {
            read_reasons().iter().any(|r| r.contains("bad timestamp"))
        })
        .await,
        "the reason is written beside the set-aside batch"
    );
    let reasons = read_reasons();
    assert_eq!(
        reasons.len(),
        1,
        "one batch set aside in {}",
        rejected.display()
    );
    assert!(
        reasons[0].contains("400") && reasons[0].contains("bad timestamp"),
        "{reasons:?}"
    );

    publish_lamp(&mut m, &mut dev, t0, 3..5).await?;
    // Readings 0..3 may have closed into two batches, so "a batch was sent" is not yet
    // "readings 3 and 4 were sent": wait for those.
    let stamps: Vec<String> = (3..5u32)
        .map(|i| format!(" {}\n", i64::from(t0 + i) * 1000))
        .collect();
    let sent_all = || {
        let taken = bodies.taken.lock().map(|t| t.join("")).unwrap_or_default();
        stamps.iter().all(|ts| taken.contains(ts))
    };
    assert!(
        eventually(Duration::from_secs(60), || async { sent_all() }).await,
        "readings 3 and 4 sent after the refusal"
    );
    // The readings may have closed into more than one batch: wait for the spool to drain.
    assert!(
        metric_eventually(&http, "linli_export_spool_batches", |v| v == 0.0).await,
        "the spool drains"
    );
    assert_eq!(scrape(&http, "linli_export_up").await?, 1.0);
    Ok(())
}
