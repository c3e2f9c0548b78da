//! The embedded MQTT broker (rumqttd): configured from ours, started on its own thread,
//! with our auth handler and one in-process link for ingest.
//!
//! Owns broker start-up and its pitfalls (DESIGN.md §5): rumqttd's `start()` blocks and
//! says Ok even when a port is taken, so listeners are checked here before and after. It
//! does not read messages (see `pipeline`'s link reader).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::alerts::AlertsLink;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, ConnectionSettings, RouterConfig, ServerSettings};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// Client id of the in-process ingest link.
const INGEST_CLIENT: &str = "linli-ingest";

/// Broker start-up errors; each names the address and config key.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The address cannot be bound (in use, or not an address of this host).
    #[error(
        "cannot listen on {addr} ({key}): {source}; pick another address or stop what uses it"
    )]
    Bind {
        /// Config key.
        key: &'static str,
        /// Address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The broker started but the listener never accepted a connection.
    #[error("broker listener {addr} ({key}) did not come up within {secs} s")]
    NotUp {
        /// Config key.
        key: &'static str,
        /// Address.
        addr: SocketAddr,
        /// How long we waited.
        secs: u64,
    },
    /// rumqttd refused the in-process link.
    #[error("broker link: {0}")]
    Link(String),
}

/// Client id of the link the gateway publishes alarm state and events on.
pub const NOTIFY_CLIENT: &str = "linli-notify";

/// The running broker's addresses and the ingest link.
pub struct Started {
    /// MQTT 3.1.1 listener address.
    pub v4: SocketAddr,
    /// MQTT 5 listener address.
    pub v5: Option<SocketAddr>,
    /// Link to publish acks.
    pub link_tx: LinkTx,
    /// Link to receive device messages.
    pub link_rx: LinkRx,
    /// The broker's alerts.
    pub alerts: AlertsLink,
    /// Link for the gateway's own publishes (alarm state and events).
    pub notify_link: (LinkTx, LinkRx),
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("v4", &self.v4)
            .field("v5", &self.v5)
            .finish_non_exhaustive()
    }
}

/// Resolves port 0 to a free port, and checks a fixed port is free, naming the key.
fn claim(key: &'static str, addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let l = TcpListener::bind(addr).map_err(|source| BrokerError::Bind { key, addr, source })?;
    l.local_addr()
        .map_err(|source| BrokerError::Bind { key, addr, source })
}

fn wait_up(key: &'static str, addr: SocketAddr, within: Duration) -> Result<(), BrokerError> {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotUp {
        key,
        addr,
        secs: within.as_secs(),
    })
}

/// Starts rumqttd with the registry as its authenticator. Blocks until every listener
/// accepts connections.
pub fn start(
    config: &Config,
    registry: Registry,
    metrics: Arc<Metrics>,
) -> Result<Started, BrokerError> {
    let b = &config.broker;
    let v4 = claim("broker.listen_v4", b.listen_v4)?;
    let v5 = b
        .listen_v5
        .map(|a| claim("broker.listen_v5", a))
        .transpose()?;

    let mut connections = ConnectionSettings {
        connection_timeout_ms: b.connect_timeout_ms,
        max_payload_size: b.max_payload_bytes,
        max_inflight_count: b.max_inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
        let registry = registry.clone();
        let metrics = metrics.clone();
        async move {
            let ok = client_id == user
                && matches!(registry.get(&user), Ok(Some(d)) if d.password_matches(&pass));
            if ok {
                metrics.auth_accepted.fetch_add(1, Relaxed);
            } else {
                metrics.auth_refused.fetch_add(1, Relaxed);
                tracing::warn!(
                    client_id,
                    username = user,
                    "mqtt connection refused: unknown device or bad credentials"
                );
            }
            ok
        }
    });
    let server = |name: &str, listen| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: connections.clone(),
    };
    let seg = config.broker_segments();
    // Alerts tell us when the broker discarded messages before our link read them
    // (a "cursor jump"): rumqttd's only signal of that otherwise silent loss. Its timer
    // thread panics unless meters are configured too, so they are, rarely.
    let every = |secs: u64| -> Result<rumqttd::MetricSettings, BrokerError> {
        serde_json::from_value(serde_json::json!({ "push_interval": secs }))
            .map_err(|e| BrokerError::Link(e.to_string()))
    };
    let rconfig = rumqttd::Config {
        id: 0,
        router: RouterConfig {
            max_connections: b.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: seg.device_size,
            max_segment_count: seg.count,
            custom_segment: Some(HashMap::from([(
                linli_protocol::topic::UPLINK_FILTER.to_owned(),
                rumqttd::SegmentConfig {
                    max_segment_size: seg.uplink_size,
                    max_segment_count: seg.count,
                },
            )])),
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server("v4", v4))])),
        v5: v5.map(|a| HashMap::from([("v5".to_owned(), server("v5", a))])),
        metrics: Some(HashMap::from([
            (rumqttd::MetricType::Alerts, every(1)?),
            (rumqttd::MetricType::Meters, every(3600)?),
        ])),
        ..rumqttd::Config::default()
    };
    let mut broker = Broker::new(rconfig);
    let (mut link_tx, link_rx) = broker
        .link(INGEST_CLIENT)
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    link_tx
        .subscribe(linli_protocol::topic::UPLINK_FILTER)
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let notify_link = broker
        .link(NOTIFY_CLIENT)
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let alerts = broker
        .alerts()
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let within = Duration::from_secs(10);
    wait_up("broker.listen_v4", v4, within)?;
    if let Some(a) = v5 {
        wait_up("broker.listen_v5", a, within)?;
    }
    Ok(Started {
        v4,
        v5,
        link_tx,
        link_rx,
        alerts,
        notify_link,
    })
}

/// Counts and logs the broker's alerts about our link: each cursor jump means the broker
/// dropped messages it had PUBACKed before ingest read them (devices resend them, since
/// they were never acked by us).
pub async fn watch_alerts(alerts: AlertsLink, metrics: Arc<Metrics>) {
    while let Ok(batch) = alerts.next().await {
        for alert in batch {
            if alert.client_id == INGEST_CLIENT && alert.kind.name() == "cursor_jump" {
                metrics.broker_dropped.fetch_add(1, Relaxed);
                tracing::warn!(
                    detail = %alert.kind.description(),
                    "broker discarded messages before ingest read them; devices will resend. Raise broker.memory_budget_mib"
                );
            }
        }
    }
}
