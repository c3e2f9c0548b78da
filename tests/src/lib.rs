//! Support for the black-box system tests: start a gateway (in-process or as the real
//! `linli` binary) on free loopback ports, provision devices, talk MQTT with real clients
//! and read the HTTP API; build device firmware and run it under QEMU ([`qemu`]).
//!
//! Owns test plumbing only; every assertion lives in `tests/*.rs`.

pub mod fixture;
pub mod qemu;
pub mod receivers;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use linli_gateway::registry::{DeviceProfile, Registry, SubjectKind, Trust};
use linli_gateway::{Config, Gateway};
use linli_protocol::DeviceKind;
use linli_sim::device::SimDevice;
use rumqttc::v5::Event as Event5;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

/// An in-process gateway on free loopback ports with its own data dir.
#[derive(Debug)]
pub struct TestGateway {
    /// The running gateway.
    pub gw: Gateway,
    /// Its data dir (removed on drop).
    pub dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// The machine API token every test gateway is given (written to its data directory's
/// `api-token` before it starts); the HTTP helpers below send it.
pub const API_TOKEN: &str = "linli-system-tests-api-token-0123456789abcdef";

/// Writes [`API_TOKEN`] as `data_dir`'s `api-token` (creating the directory).
pub fn seed_api_token(data_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(data_dir.join("api-token"), API_TOKEN)?;
    Ok(())
}

/// A config on port 0 everywhere, in `data_dir`.
pub fn test_config(data_dir: &Path) -> Config {
    let mut c = Config {
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    c.broker.listen_v4 = any;
    c.broker.listen_v5 = Some(any);
    c.http.listen = any;
    c.supervision.tick_ms = 100;
    c
}

impl TestGateway {
    /// Starts a gateway; `tweak` may change the config first.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Result<TestGateway> {
        let dir = tempfile::tempdir()?;
        let mut c = test_config(dir.path());
        tweak(&mut c);
        seed_api_token(&c.data_dir)?;
        let (tx, rx) = oneshot::channel::<()>();
        let gw = linli_gateway::start(c, async {
            let _ = rx.await;
        })
        .await?;
        Ok(TestGateway { gw, dir, _stop: tx })
    }

    /// Registers a device directly in the registry (heartbeat every 60 s).
    pub fn provision(&self, id: &str, kind: DeviceKind, trust: Trust) -> Result<SimDevice> {
        self.provision_with_heartbeat(id, kind, trust, 60)
    }

    /// Registers a device with a given heartbeat interval.
    pub fn provision_with_heartbeat(
        &self,
        id: &str,
        kind: DeviceKind,
        trust: Trust,
        heartbeat_s: u64,
    ) -> Result<SimDevice> {
        let reg = Registry::open(self.dir.path())?;
        provision_in(&reg, id, kind, trust, heartbeat_s)
    }

    /// `http://host:port` of the API.
    pub fn http(&self) -> String {
        format!("http://{}", self.gw.http)
    }
}

/// Registers a device in `reg` and returns it as a simulated device.
pub fn provision_in(
    reg: &Registry,
    id: &str,
    kind: DeviceKind,
    trust: Trust,
    heartbeat_s: u64,
) -> Result<SimDevice> {
    let c = reg.provision(&DeviceProfile {
        id: id.into(),
        kind,
        site: "site-1".into(),
        zone: "zone-1".into(),
        subject: Some((SubjectKind::Resident, format!("R-{id}"))),
        heartbeat_s: Some(heartbeat_s),
        trust,
    })?;
    Ok(SimDevice::from_credentials_json(&serde_json::to_string(
        &c,
    )?)?)
}

/// An MQTT client (rumqttc) whose incoming publishes arrive on a channel.
#[derive(Debug)]
pub struct Mqtt {
    /// The client.
    pub client: AsyncClient,
    /// Incoming publishes: (topic, payload).
    pub incoming: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

/// Connects with `id`/`password` as client id, username and password. Fails when the
/// broker closes the connection instead of accepting it.
pub async fn connect(addr: SocketAddr, id: &str, user: &str, password: &str) -> Result<Mqtt> {
    connect_opts(addr, id, user, password, None).await
}

/// Like [`connect`], with a Last Will (topic, payload) the broker publishes if the
/// connection drops without a DISCONNECT.
pub async fn connect_opts(
    addr: SocketAddr,
    id: &str,
    user: &str,
    password: &str,
    will: Option<(String, Vec<u8>)>,
) -> Result<Mqtt> {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    if let Some((topic, payload)) = will {
        opts.set_last_will(rumqttc::LastWill::new(
            topic,
            payload,
            QoS::AtLeastOnce,
            false,
        ));
    }
    opts.set_credentials(user, password);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut el) = AsyncClient::new(opts, 1000);
    let (tx, incoming) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.to_string(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(e) => {
                    // No automatic reconnect: a test that wants one connects again.
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.to_string()));
                    }
                    return;
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(Mqtt {
            client,
            incoming,
            task,
        }),
        Ok(Ok(Err(e))) => bail!("connection refused: {e}"),
        _ => bail!("no CONNACK within 10 s"),
    }
}

/// Connects a simulated device with its own credentials and subscribes to its acks.
pub async fn connect_device(addr: SocketAddr, dev: &SimDevice) -> Result<Mqtt> {
    let m = connect(addr, &dev.id, &dev.id, &dev.password).await?;
    m.client.subscribe(dev.ack_topic(), QoS::AtMostOnce).await?;
    // Give the broker a moment to install the subscription before acks flow.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(m)
}

impl Mqtt {
    /// Drops the TCP connection without DISCONNECT, as a device losing power does.
    pub fn kill(&self) {
        self.task.abort();
    }

    /// Publishes QoS1.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        Ok(())
    }

    /// Waits for acks until `want` counters have arrived or `within` passes; returns
    /// every counter acked, in arrival order.
    pub async fn acks(&mut self, dev: &SimDevice, want: usize, within: Duration) -> Vec<u32> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.incoming.recv()).await {
                Ok(Some((_, payload))) => {
                    if let Some(c) = dev.open_ack(&payload) {
                        got.push(c);
                    }
                }
                _ => break,
            }
        }
        got
    }
}

/// Publishes `payload` on `topic` with Debian's `mosquitto_pub` (QoS1) as `dev`.
pub fn mosquitto_pub(addr: SocketAddr, dev: &SimDevice, topic: &str, payload: &[u8]) -> Result<()> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), payload)?;
    let port = addr.port().to_string();
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "1",
            "-i",
            &dev.id,
            "-u",
            &dev.id,
        ])
        .args(["-P", &dev.password, "-t", topic, "-f"])
        .arg(file.path())
        .status()
        .context("running mosquitto_pub (apt-get install mosquitto-clients)")?;
    if !status.success() {
        bail!("mosquitto_pub exited with {status}");
    }
    Ok(())
}

/// GET `url`; returns (status, body). Runs the blocking client off the async threads.
pub async fn get(url: &str) -> Result<(u16, String)> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let r = ureq::get(&url)
            .set("authorization", &format!("Bearer {API_TOKEN}"))
            .timeout(Duration::from_secs(10))
            .call();
        match r {
            Ok(r) => Ok((r.status(), r.into_string()?)),
            Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string()?)),
            Err(e) => Err(anyhow::Error::from(e)),
        }
    })
    .await?
}

/// POST a JSON body to `url`; returns (status, parsed body).
pub async fn post_json(url: &str, body: serde_json::Value) -> Result<(u16, serde_json::Value)> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let r = ureq::post(&url)
            .set("authorization", &format!("Bearer {API_TOKEN}"))
            .timeout(Duration::from_secs(10))
            .send_json(body);
        let (code, text) = match r {
            Ok(r) => (r.status(), r.into_string()?),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string()?),
            Err(e) => return Err(anyhow::Error::from(e)),
        };
        Ok((
            code,
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text.clone())),
        ))
    })
    .await?
}

/// GET `url` and parse JSON, requiring 200.
pub async fn get_json(url: &str) -> Result<serde_json::Value> {
    let (status, body) = get(url).await?;
    if status != 200 {
        bail!("GET {url}: {status} {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Reads the server-sent events of `{http}/api/events` on a thread, sent with the header
/// `auth` (`("authorization", "Bearer …")` or `("cookie", "…")`); each `data:` line's JSON
/// arrives on the channel.
pub fn sse(http: &str, auth: (&str, &str)) -> std::sync::mpsc::Receiver<serde_json::Value> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let req = ureq::get(&format!("{http}/api/events")).set(auth.0, auth.1);
    std::thread::spawn(move || {
        let Ok(resp) = req.call() else { return };
        for line in std::io::BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(d) = line.strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str(d.trim()) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Value of a Prometheus sample line `name` (with labels, if given in `name`).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Fetches `/metrics` and reads one sample.
pub async fn scrape(http: &str, name: &str) -> Result<f64> {
    let (_, body) = get(&format!("{http}/metrics")).await?;
    metric(&body, name).with_context(|| format!("metric {name} missing"))
}

/// Polls `f` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A free loopback port (bound and released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Path of the `linli` binary, built (if needed) once per test run.
pub fn linli_bin() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let status = Command::new(cargo)
                // The same selection as the test script's build, so features unify the
                // same way and this is a no-op after it.
                .args([
                    "build",
                    "-q",
                    "--workspace",
                    "--all-targets",
                    "--manifest-path",
                ])
                .arg(&manifest)
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("cargo build of linli failed".into());
            }
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
            Ok(target.join("debug/linli"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The `linli-sim` binary, built beside `linli` by [`linli_bin`].
pub fn linli_sim_bin() -> Result<PathBuf> {
    Ok(linli_bin()?.with_file_name("linli-sim"))
}

/// The real `linli` binary running as a child process.
#[derive(Debug)]
pub struct GatewayProcess {
    /// The child.
    pub child: Child,
    /// MQTT v4 address.
    pub mqtt: SocketAddr,
    /// HTTP base URL.
    pub http: String,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // Never leave a gateway running after a test, whether it passed or failed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process config written by [`process_config`].
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The config file.
    pub path: PathBuf,
    /// MQTT v4 listener.
    pub mqtt: SocketAddr,
    /// MQTT 5 listener.
    pub mqtt_v5: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
}

/// Writes a config for fixed free ports (MQTT 3.1.1 and 5, HTTP) in `dir`, with `extra`
/// appended after the `[http]` table.
pub fn process_config(dir: &Path, extra: &str) -> Result<ProcessConfig> {
    let port = || -> Result<SocketAddr> { Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?))) };
    let (mqtt, mqtt_v5, http) = (port()?, port()?, port()?);
    seed_api_token(&dir.join("data"))?;
    let path = dir.join("linli.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n[broker]\nlisten_v4 = \"{mqtt}\"\nlisten_v5 = \"{mqtt_v5}\"\n[http]\nlisten = \"{http}\"\n{extra}",
            dir.join("data")
        ),
    )?;
    Ok(ProcessConfig {
        path,
        mqtt,
        mqtt_v5,
        http,
    })
}

/// [`process_config`], as (config path, mqtt, http).
pub fn write_process_config(dir: &Path, extra: &str) -> Result<(PathBuf, SocketAddr, SocketAddr)> {
    let c = process_config(dir, extra)?;
    Ok((c.path, c.mqtt, c.http))
}

/// Runs `linli provision` against `config` and returns the device.
pub fn provision_cli(config: &Path, id: &str, kind: &str) -> Result<SimDevice> {
    Ok(SimDevice::from_credentials_json(&provision_json(
        config, id, kind,
    )?)?)
}

/// Runs `linli provision --format json` against `config`; the credentials JSON it printed.
pub fn provision_json(config: &Path, id: &str, kind: &str) -> Result<String> {
    let out = Command::new(linli_bin()?)
        .args([
            "provision",
            "--format",
            "json",
            "--site",
            "s",
            "--zone",
            "z",
            "--kind",
            kind,
            "--id",
            id,
            "--config",
        ])
        .arg(config)
        .output()?;
    if !out.status.success() {
        bail!("provision failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Starts `linli run` with `config` and waits for `/healthz`.
pub async fn spawn_gateway(
    config: &Path,
    mqtt: SocketAddr,
    http: SocketAddr,
) -> Result<GatewayProcess> {
    // The gateway's log goes next to its config, for a look after a failure.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("gateway.log"))?;
    let child = Command::new(linli_bin()?)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let url = format!("http://{http}");
    let up = eventually(Duration::from_secs(20), || {
        let u = format!("{url}/healthz");
        async move { matches!(get(&u).await, Ok((200, _))) }
    })
    .await;
    if !up {
        bail!("gateway process did not become healthy");
    }
    Ok(GatewayProcess {
        child,
        mqtt,
        http: url,
    })
}

/// Over MQTT 5 (rumqttc's v5 client): connects as `dev`, subscribes to its acks,
/// publishes `frame` on `topic` with QoS1 and returns the first ack payload.
pub async fn v5_publish_and_ack(
    addr: SocketAddr,
    dev: &SimDevice,
    topic: &str,
    frame: Vec<u8>,
) -> Result<Vec<u8>> {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as C5, MqttOptions as O5};
    let mut opts = O5::new(&dev.id, addr.ip().to_string(), addr.port());
    opts.set_credentials(&dev.id, &dev.password);
    let (client, mut el) = C5::new(opts, 10);
    client.subscribe(dev.ack_topic(), Q5::AtLeastOnce).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut published = false;
    while Instant::now() < deadline {
        let ev = tokio::time::timeout(Duration::from_secs(10), el.poll()).await??;
        match ev {
            Event5::Incoming(P5::SubAck(_)) if !published => {
                published = true;
                client
                    .publish(topic, Q5::AtLeastOnce, false, frame.clone())
                    .await?;
            }
            Event5::Incoming(P5::Publish(p)) => return Ok(p.payload.to_vec()),
            _ => {}
        }
    }
    bail!("no ack over MQTT 5 within 10 s")
}
