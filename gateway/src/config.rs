//! Gateway configuration: one TOML file, parsed strictly, validated with every error
//! collected and named by its key, with embedded defaults when there is no file at all.
//!
//! Owns the config schema, its defaults, validation and the annotated template. Does not
//! open sockets or files (the pipeline builds from a validated [`Config`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the registry, journal and other state live.
    pub data_dir: PathBuf,
    /// Embedded MQTT broker.
    pub broker: BrokerConfig,
    /// HTTP API.
    pub http: HttpConfig,
    /// Ingest and journal.
    pub ingest: IngestConfig,
    /// Device liveness.
    pub supervision: SupervisionConfig,
    /// Embedded time-series store.
    pub store: StoreConfig,
    /// Logging.
    pub log: LogConfig,
    /// Forwarding readings to other systems.
    pub export: ExportConfig,
    /// Rules and alarms.
    pub alarms: AlarmsConfig,
    /// Who is told about alarms, and how.
    pub delivery: DeliveryConfig,
    /// Modbus equipment the gateway polls.
    pub modbus: crate::ingest::modbus::config::ModbusConfig,
    /// The web dashboard: sessions and the street map.
    pub web: crate::web::WebConfig,
}

/// `[delivery]`: routing file and channels (see `notify`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Routing file (people, teams, shifts, policies); None = the built-in routing.
    pub routing: Option<PathBuf>,
    /// Publish alarm state and events on the gateway's own broker (off by default:
    /// any client with device credentials could read them).
    pub mqtt: bool,
    /// Longest a delivery attempt may take, ms.
    pub timeout_ms: u64,
    /// First retry delay of a channel that failed, ms.
    pub backoff_min_ms: u64,
    /// Longest retry delay, ms.
    pub backoff_max_ms: u64,
    /// A delivery without a receipt this long after it was created fails as expired.
    pub give_up_after_s: u64,
    /// E-mail.
    pub smtp: Option<SmtpConfig>,
    /// Webhooks.
    pub webhook: Vec<WebhookConfig>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            routing: None,
            mqtt: false,
            timeout_ms: 10_000,
            backoff_min_ms: 1_000,
            backoff_max_ms: 60_000,
            give_up_after_s: 86_400,
            smtp: None,
            webhook: Vec::new(),
        }
    }
}

/// `[delivery.smtp]`
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host name or address.
    pub server: String,
    /// Port (plain SMTP; put a local relay in front for TLS to the outside).
    #[serde(default = "smtp_port")]
    pub port: u16,
    /// Sender address.
    pub from: String,
    /// User for AUTH, if the relay wants it.
    pub username: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
}

fn smtp_port() -> u16 {
    25
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .finish()
    }
}

/// `[[delivery.webhook]]`
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name (contacts say `webhook:NAME`).
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// HMAC-SHA256 key, in the file. Prefer `secret_env`.
    pub secret: Option<String>,
    /// Environment variable holding the HMAC key.
    pub secret_env: Option<String>,
    /// `events`: every alarm and work order event (a platform); `pages`: pages to the
    /// people whose contact names this webhook (an SMS or voice provider).
    #[serde(default = "pages")]
    pub receives: String,
}

fn pages() -> String {
    "pages".into()
}

impl std::fmt::Debug for WebhookConfig {
    // By hand, so the secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "(redacted)"))
            .field("secret_env", &self.secret_env)
            .field("receives", &self.receives)
            .finish()
    }
}

impl WebhookConfig {
    /// The HMAC key (from the file or the environment), if any.
    pub fn key(&self) -> Option<String> {
        self.secret
            .clone()
            .or_else(|| self.secret_env.as_ref().and_then(|v| std::env::var(v).ok()))
    }
}

impl DeliveryConfig {
    /// Every problem with this section, keys prefixed `delivery.`.
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let mut check = |ok: bool, key: String, message: String| {
            if !ok {
                issues.push(ConfigIssue {
                    key: format!("delivery.{key}"),
                    message,
                });
            }
        };
        check(
            self.timeout_ms >= 10,
            "timeout_ms".into(),
            "must be at least 10".into(),
        );
        check(
            self.backoff_min_ms >= 10
                && self.backoff_max_ms >= self.backoff_min_ms
                && self.backoff_max_ms <= 3_600_000,
            "backoff_max_ms".into(),
            "backoff_min_ms must be at least 10, backoff_max_ms between it and 3600000".into(),
        );
        if let Some(m) = &self.smtp {
            check(
                !m.server.is_empty(),
                "smtp.server".into(),
                "is required".into(),
            );
            check(
                m.from.contains('@'),
                "smtp.from".into(),
                "must be an e-mail address".into(),
            );
            check(
                m.username.is_none()
                    || m.password_env
                        .as_ref()
                        .is_some_and(|v| std::env::var(v).is_ok()),
                "smtp.password_env".into(),
                "a username needs password_env naming a set environment variable".into(),
            );
        }
        for (i, w) in self.webhook.iter().enumerate() {
            let k = |f: &str| format!("webhook[{i}].{f}");
            check(
                !w.name.is_empty() && !w.name.contains(':'),
                k("name"),
                "is required, without `:`".into(),
            );
            check(
                self.webhook[..i].iter().all(|x| x.name != w.name),
                k("name"),
                format!("`{}` is used twice", w.name),
            );
            check(
                matches!(url::Url::parse(&w.url), Ok(u) if u.scheme() == "http" && u.host().is_some()),
                k("url"),
                "must be an http:// URL (put a TLS-terminating proxy in front for https)".into(),
            );
            check(
                w.secret.is_some() != w.secret_env.is_some(),
                k("secret"),
                "give the HMAC key as secret or secret_env (one of them: every webhook is signed)"
                    .into(),
            );
            check(
                w.secret_env
                    .as_ref()
                    .is_none_or(|v| std::env::var(v).is_ok()),
                k("secret_env"),
                "names an environment variable that is not set".into(),
            );
            check(
                matches!(w.receives.as_str(), "events" | "pages"),
                k("receives"),
                "must be \"events\" or \"pages\"".into(),
            );
        }
    }
}

/// `[alarms]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsConfig {
    /// Rules file; None = the built-in rules (`gateway/rules.default.toml`).
    pub rules: Option<PathBuf>,
    /// IANA time zone for rule windows when the rules file names none; None = the
    /// machine's zone.
    pub timezone: Option<String>,
    /// How often timers (hold times, windows, escalations) are checked, ms.
    pub tick_ms: u64,
    /// Closed alarms (with their history) and notes are deleted after this many days.
    pub retention_days: u64,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        AlarmsConfig {
            rules: None,
            timezone: None,
            tick_ms: 200,
            retention_days: 400,
        }
    }
}

/// `[broker]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// MQTT 3.1.1 listener.
    pub listen_v4: SocketAddr,
    /// MQTT 5 listener; omit to disable.
    pub listen_v5: Option<SocketAddr>,
    /// Largest accepted MQTT payload, bytes.
    pub max_payload_bytes: usize,
    /// Maximum simultaneous connections.
    pub max_connections: usize,
    /// RAM the broker may hold in device messages waiting for ingest, MiB (see
    /// [`Config::broker_segments`]); each connection adds ~40 KiB for its acks.
    pub memory_budget_mib: usize,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_ms: u16,
    /// Inflight QoS1 messages per connection.
    pub max_inflight: usize,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// HTTP listener.
    pub listen: SocketAddr,
}

/// When the journal calls fsync.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync every group commit before any ack (safest; the default).
    Batch,
    /// fsync at most every `fsync_interval_ms`; acks wait for it.
    Interval,
    /// Never fsync (the OS decides); acks after write(2). Survives a process crash,
    /// not a power cut.
    Never,
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest message ingest accepts, bytes; larger ones are counted as `oversized`.
    /// (Messages above `broker.max_payload_bytes` never reach ingest: the broker closes
    /// the connection.)
    pub max_message_bytes: usize,
    /// Messages waiting between the broker link and the journal before new ones are
    /// refused (unacked, so devices resend).
    pub queue_capacity: usize,
    /// Most messages per group commit.
    pub max_batch: usize,
    /// fsync policy.
    pub fsync: FsyncPolicy,
    /// With `fsync = "interval"`: the interval.
    pub fsync_interval_ms: u64,
    /// Journal segment size before rolling to a new file, MiB.
    pub segment_mib: u64,
    /// Seconds between two log lines about rejections from the same device.
    pub rejection_log_interval_s: u64,
    /// Accept JSON from devices registered as integration devices.
    pub accept_json: bool,
    /// Readings kept in memory per device for `/api/devices/{id}/readings`.
    pub recent_per_device: usize,
    /// How often replay windows are checkpointed and spent journal segments released, s.
    pub checkpoint_interval_s: u64,
}

/// `[supervision]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// Heartbeat interval for devices registered without one, seconds.
    pub default_heartbeat_s: u64,
    /// Intervals missed before `late`.
    pub late_after_missed: u32,
    /// Intervals missed before `lost`.
    pub lost_after_missed: u32,
    /// How often liveness is re-evaluated, ms.
    pub tick_ms: u64,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A series' head is sealed into a chunk at this many points.
    pub chunk_points: usize,
    /// Small adjacent chunks are merged up to this many points.
    pub compact_points: usize,
    /// A head older than this is sealed anyway, seconds (bounds the journal kept).
    pub head_max_age_s: u64,
    /// All heads are sealed when together they hold more points than this.
    pub max_head_points: usize,
    /// How long data is kept.
    pub retention: RetentionConfig,
}

/// `[store.retention]`, in days.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Raw points of care devices (vitals, activity, bed, door, motion, ...).
    pub care_days: u32,
    /// Raw points of facility devices (lights, manholes, water, bins, meters).
    pub facility_days: u32,
    /// 1-minute roll-ups.
    pub rollup_1m_days: u32,
    /// 1-hour roll-ups.
    pub rollup_1h_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            chunk_points: 4096,
            compact_points: 16384,
            head_max_age_s: 900,
            max_head_points: 4_000_000,
            retention: RetentionConfig::default(),
        }
    }
}

/// `[export]`: where accepted readings are forwarded, besides the embedded store.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// `[export.influxdb]`; absent = no InfluxDB export.
    pub influxdb: Option<InfluxConfig>,
}

/// `[export.influxdb]`: the InfluxDB v2 sink (see `store::influxdb`).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    /// Server base URL, `http://host:8086` (`https://` needs the `influxdb-rustls` build).
    pub url: String,
    /// Organization.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token, in the file. Prefer `token_env`.
    pub token: Option<String>,
    /// Name of an environment variable holding the API token.
    pub token_env: Option<String>,
    /// Most points per batch (one HTTP write).
    pub batch_points: usize,
    /// A batch is closed and spooled at the latest this long after its first point, ms
    /// (checked as readings arrive and on the follower's tick, once a second).
    pub flush_interval_ms: u64,
    /// Longest a write may take before it is abandoned and retried, ms.
    pub timeout_ms: u64,
    /// Disk the spool of unsent batches may use, MiB; past it the oldest batch is dropped.
    pub spool_max_mib: u64,
    /// First retry delay, ms.
    pub backoff_min_ms: u64,
    /// Longest retry delay, ms.
    pub backoff_max_ms: u64,
}

impl std::fmt::Debug for InfluxConfig {
    // By hand, so the token never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &self.url)
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("token", &self.token.as_ref().map(|_| "(redacted)"))
            .field("token_env", &self.token_env)
            .field("batch_points", &self.batch_points)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("timeout_ms", &self.timeout_ms)
            .field("spool_max_mib", &self.spool_max_mib)
            .field("backoff_min_ms", &self.backoff_min_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .finish()
    }
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            url: String::new(),
            org: String::new(),
            bucket: String::new(),
            token: None,
            token_env: None,
            batch_points: 5_000,
            flush_interval_ms: 1_000,
            timeout_ms: 10_000,
            spool_max_mib: 1_024,
            backoff_min_ms: 500,
            backoff_max_ms: 60_000,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            care_days: 30,
            facility_days: 365,
            rollup_1m_days: 400,
            rollup_1h_days: 1830,
        }
    }
}

impl InfluxConfig {
    /// Every problem with this section, keys prefixed `export.influxdb.`.
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let mut check = |ok: bool, key: &str, message: &str| {
            if !ok {
                issues.push(ConfigIssue {
                    key: format!("export.influxdb.{key}"),
                    message: message.into(),
                });
            }
        };
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "http" && u.host().is_some() => {}
            Ok(u) if u.scheme() == "https" && u.host().is_some() => check(
                cfg!(feature = "influxdb-rustls"),
                "url",
                "https needs a gateway built with --features influxdb-rustls (or use http to a local server or TLS proxy)",
            ),
            _ => check(
                false,
                "url",
                "must be the server's base URL, e.g. \"http://127.0.0.1:8086\"",
            ),
        }
        check(!self.org.is_empty(), "org", "is required");
        check(!self.bucket.is_empty(), "bucket", "is required");
        check(
            self.token.is_none() || self.token_env.is_none(),
            "token_env",
            "give token or token_env, not both",
        );
        check(
            self.token_env.as_ref().is_none_or(|v| !v.is_empty()),
            "token_env",
            "must name an environment variable",
        );
        check(
            (1..=100_000).contains(&self.batch_points),
            "batch_points",
            "must be between 1 and 100000",
        );
        check(
            (10..=600_000).contains(&self.flush_interval_ms),
            "flush_interval_ms",
            "must be between 10 and 600000",
        );
        check(
            (100..=600_000).contains(&self.timeout_ms),
            "timeout_ms",
            "must be between 100 and 600000",
        );
        check(
            (1..=1_048_576).contains(&self.spool_max_mib),
            "spool_max_mib",
            "must be between 1 and 1048576",
        );
        check(
            self.backoff_min_ms >= 10,
            "backoff_min_ms",
            "must be at least 10",
        );
        check(
            (self.backoff_min_ms..=3_600_000).contains(&self.backoff_max_ms),
            "backoff_max_ms",
            "must be between backoff_min_ms and 3600000",
        );
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter, e.g. `info` or `linli_gateway=debug,rumqttd=warn`.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            broker: BrokerConfig::default(),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            supervision: SupervisionConfig::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            export: ExportConfig::default(),
            delivery: DeliveryConfig::default(),
            alarms: AlarmsConfig::default(),
            modbus: Default::default(),
            web: Default::default(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen_v4: SocketAddr::from(([127, 0, 0, 1], 1883)),
            listen_v5: Some(SocketAddr::from(([127, 0, 0, 1], 1884))),
            max_payload_bytes: 2 * 1024 * 1024,
            max_connections: 2_000,
            memory_budget_mib: 128,
            connect_timeout_ms: 5_000,
            max_inflight: 100,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_message_bytes: 4096,
            queue_capacity: 100_000,
            max_batch: 4_096,
            fsync: FsyncPolicy::Batch,
            fsync_interval_ms: 20,
            segment_mib: 64,
            rejection_log_interval_s: 60,
            accept_json: true,
            recent_per_device: 256,
            checkpoint_interval_s: 30,
        }
    }
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            default_heartbeat_s: 900,
            late_after_missed: 1,
            lost_after_missed: 3,
            tick_ms: 1_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info,rumqttd=off".into(),
            format: LogFormat::Text,
        }
    }
}

/// Sizes of the broker's in-memory logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerSegments {
    /// Segment size of the log behind ingest's uplink subscription, bytes.
    pub uplink_size: usize,
    /// Segment size of each device's own subscription log, bytes.
    pub device_size: usize,
    /// Segments per log.
    pub count: usize,
}

/// Segments per log in the broker.
const BROKER_SEGMENTS: usize = 4;
/// Segment size of each device's own (ack) filter: ~100 acks per segment, ~400 in all.
const DEVICE_SEGMENT_BYTES: usize = 4096;
/// RAM per byte rumqttd counts in its logs (measured: ~700 B of RSS per retained
/// 80-byte reading).
pub const BROKER_OVERHEAD: usize = 8;

/// One problem found in a config, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `broker.listen_v4`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// Values parsed but are not valid together.
    #[error("config file {path} has {} problem(s):\n  {}", .issues.len(), issues_text(.issues))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
}

fn issues_text(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

impl Config {
    /// Where rule windows' local time comes from, and the heartbeat default.
    pub fn rule_defaults(&self) -> crate::rules::Defaults {
        crate::rules::Defaults {
            local: self
                .alarms
                .timezone
                .as_deref()
                .and_then(|tz| crate::rules::localtime::LocalTime::named(tz).ok())
                .unwrap_or_else(crate::rules::localtime::LocalTime::system),
            heartbeat_s: self.supervision.default_heartbeat_s,
        }
    }

    /// Parses TOML text (strict: unknown keys are errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Config::parse(&text, path)?;
        let issues = config.validate();
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                issues,
            })
        }
    }

    /// Every problem with this config; empty when it is valid.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut check = |ok: bool, key: &str, message: &str| {
            if !ok {
                issues.push(ConfigIssue {
                    key: key.into(),
                    message: message.into(),
                });
            }
        };
        check(
            (10..=10_000).contains(&self.alarms.tick_ms),
            "alarms.tick_ms",
            "must be between 10 and 10000",
        );
        check(
            (1..=36_500).contains(&self.alarms.retention_days),
            "alarms.retention_days",
            "must be between 1 and 36500 days",
        );
        if let Some(tz) = &self.alarms.timezone {
            check(
                crate::rules::localtime::LocalTime::named(tz).is_ok(),
                "alarms.timezone",
                "is not a known IANA time zone (e.g. \"Asia/Shanghai\", \"UTC\")",
            );
        }
        let st = &self.store;
        check(
            (64..=65536).contains(&st.chunk_points),
            "store.chunk_points",
            "must be between 64 and 65536",
        );
        check(
            st.compact_points >= st.chunk_points && st.compact_points <= 1 << 20,
            "store.compact_points",
            "must be at least store.chunk_points and at most 1048576",
        );
        check(
            (1..=86_400).contains(&st.head_max_age_s),
            "store.head_max_age_s",
            "must be between 1 and 86400",
        );
        check(
            st.max_head_points >= st.chunk_points,
            "store.max_head_points",
            "must be at least store.chunk_points",
        );
        let r = &st.retention;
        for (key, days) in [
            ("store.retention.care_days", r.care_days),
            ("store.retention.facility_days", r.facility_days),
            ("store.retention.rollup_1m_days", r.rollup_1m_days),
            ("store.retention.rollup_1h_days", r.rollup_1h_days),
        ] {
            check(
                (1..=36_500).contains(&days),
                key,
                "must be between 1 and 36500 days",
            );
        }
        check(
            r.rollup_1m_days >= r.care_days.max(r.facility_days),
            "store.retention.rollup_1m_days",
            "must be at least the longest raw retention (roll-ups outlive raw points)",
        );
        check(
            r.rollup_1h_days >= r.rollup_1m_days,
            "store.retention.rollup_1h_days",
            "must be at least store.retention.rollup_1m_days",
        );
        let b = &self.broker;
        check(
            b.listen_v5 != Some(b.listen_v4) || b.listen_v4.port() == 0,
            "broker.listen_v5",
            "must differ from broker.listen_v4",
        );
        check(
            self.http.listen != b.listen_v4 || b.listen_v4.port() == 0,
            "http.listen",
            "must differ from broker.listen_v4",
        );
        check(
            (256..=16 * 1024 * 1024).contains(&b.max_payload_bytes),
            "broker.max_payload_bytes",
            "must be between 256 and 16777216",
        );
        check(
            b.max_connections >= 1,
            "broker.max_connections",
            "must be at least 1",
        );
        check(
            (8..=65_536).contains(&b.memory_budget_mib),
            "broker.memory_budget_mib",
            "must be between 8 and 65536",
        );
        check(
            b.connect_timeout_ms >= 100,
            "broker.connect_timeout_ms",
            "must be at least 100",
        );
        check(
            (1..=65_535).contains(&b.max_inflight),
            "broker.max_inflight",
            "must be between 1 and 65535",
        );
        let i = &self.ingest;
        check(
            (64..=b.max_payload_bytes.max(64)).contains(&i.max_message_bytes),
            "ingest.max_message_bytes",
            "must be between 64 and broker.max_payload_bytes",
        );
        check(
            i.queue_capacity >= 16,
            "ingest.queue_capacity",
            "must be at least 16",
        );
        check(
            (1..=i.queue_capacity.max(1)).contains(&i.max_batch),
            "ingest.max_batch",
            "must be between 1 and ingest.queue_capacity",
        );
        check(
            i.fsync_interval_ms >= 1 && i.fsync_interval_ms <= 10_000,
            "ingest.fsync_interval_ms",
            "must be between 1 and 10000",
        );
        check(
            (1..=4096).contains(&i.segment_mib),
            "ingest.segment_mib",
            "must be between 1 and 4096",
        );
        check(
            i.recent_per_device >= 1,
            "ingest.recent_per_device",
            "must be at least 1",
        );
        check(
            (1..=3600).contains(&i.checkpoint_interval_s),
            "ingest.checkpoint_interval_s",
            "must be between 1 and 3600",
        );
        let s = &self.supervision;
        check(
            s.default_heartbeat_s >= 1,
            "supervision.default_heartbeat_s",
            "must be at least 1",
        );
        check(
            s.late_after_missed >= 1,
            "supervision.late_after_missed",
            "must be at least 1",
        );
        check(
            s.lost_after_missed > s.late_after_missed,
            "supervision.lost_after_missed",
            "must be greater than supervision.late_after_missed",
        );
        check(
            s.tick_ms >= 10,
            "supervision.tick_ms",
            "must be at least 10",
        );
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "is not a valid filter (e.g. \"info\" or \"linli_gateway=debug\")",
        );
        if let Some(x) = &self.export.influxdb {
            x.validate(&mut issues);
        }
        self.delivery.validate(&mut issues);
        self.modbus.validate(&mut issues);
        self.web.validate(&mut issues);
        issues
    }

    /// Broker log sizes. rumqttd keeps one log per subscription filter and counts only
    /// payload and topic bytes, while a retained message costs about
    /// [`BROKER_OVERHEAD`] times that in RAM (measured). The budget is for the log behind
    /// ingest's uplink filter; each device's ack filter gets a small fixed log on top.
    pub fn broker_segments(&self) -> BrokerSegments {
        let units = self.broker.memory_budget_mib * 1024 * 1024 / BROKER_OVERHEAD;
        BrokerSegments {
            uplink_size: units / BROKER_SEGMENTS,
            device_size: DEVICE_SEGMENT_BYTES,
            count: BROKER_SEGMENTS,
        }
    }

    /// fsync interval as a duration.
    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.ingest.fsync_interval_ms)
    }
}

/// An annotated template with every key at its default.
pub const TEMPLATE: &str = r#"# Linli gateway configuration. Every key is optional; shown values are the defaults.
# Check a file with: linli config check --config FILE

# Registry (SQLite), journal and state live here.
data_dir = "./data"

[broker]
# MQTT 3.1.1 listener for devices.
listen_v4 = "127.0.0.1:1883"
# MQTT 5 listener; remove the line to disable it.
listen_v5 = "127.0.0.1:1884"
# Largest MQTT payload the broker takes, bytes; a larger one closes the connection.
# Up to this size, too-large messages reach ingest and are counted as "oversized".
max_payload_bytes = 2097152
# Devices connected at once.
max_connections = 2000
# RAM the broker may hold in device messages waiting for ingest, MiB (what it must
# drop is counted in /metrics and resent by devices). Each connection adds ~40 KiB.
memory_budget_mib = 128
# Milliseconds a new connection has to send CONNECT.
connect_timeout_ms = 5000
# QoS1 messages in flight per connection.
max_inflight = 100

[http]
# HTTP API and /metrics.
listen = "127.0.0.1:8080"

[ingest]
# Largest message ingest accepts, bytes (a sealed frame is under 100 B).
max_message_bytes = 4096
# Messages waiting for the journal; past this, new ones are refused unacked (devices resend).
queue_capacity = 100000
# Most messages per group commit.
max_batch = 4096
# "batch": fsync every group commit before acking (default, survives power loss);
# "interval": fsync every fsync_interval_ms; "never": survives a crash, not a power cut.
fsync = "batch"
fsync_interval_ms = 20
# Journal segment size, MiB.
segment_mib = 64
# At most one log line per device per this many seconds about rejected messages.
rejection_log_interval_s = 60
# Accept the JSON form from devices registered with --json (lower trust level).
accept_json = true
# Readings kept in memory per device for /api/devices/{id}/readings.
recent_per_device = 256
# Seconds between checkpoints of the replay windows; journal segments that the
# checkpoint, the store and the export no longer need are deleted then.
checkpoint_interval_s = 30

[supervision]
# Heartbeat interval for devices registered without one, seconds (hubs: 15 min).
default_heartbeat_s = 900
# Missed intervals before a device is "late", and before it is "lost".
late_after_missed = 1
lost_after_missed = 3
# Liveness re-evaluation period, ms.
tick_ms = 1000

[store]
# The embedded time-series store (store.sqlite3 in data_dir). A series' newest points
# stay in memory (and the journal) until sealed into a compressed chunk: at
# chunk_points points, after head_max_age_s, or when all heads together pass
# max_head_points. Small chunks are merged up to compact_points.
chunk_points = 4096
compact_points = 16384
head_max_age_s = 900
max_head_points = 4000000

[store.retention]
# Days kept. Raw points by device class; roll-ups (per minute and per hour: min, max,
# mean, count, last) outlive them.
care_days = 30
facility_days = 365
rollup_1m_days = 400
rollup_1h_days = 1830

[log]
# Filter: "info", "debug", "linli_gateway=debug,rumqttd=warn", ...
level = "info,rumqttd=off"
# "text" or "json"
format = "text"

[alarms]
# Rules file (format: gateway/RULES.md). Absent = the built-in rules
# (gateway/rules.default.toml). `linli check-rules FILE` validates one; SIGHUP or
# POST /api/rules/reload applies an edited file without a restart.
#rules = "/etc/linli/rules.toml"
# IANA time zone for rule windows when the rules file sets none. Absent = this machine's.
#timezone = "Asia/Shanghai"
# How often timers (hold times, windows, escalations) are checked, ms.
tick_ms = 200
# Closed alarms (with their history) and notes are deleted after this many days.
retention_days = 400

# Forward every accepted reading to InfluxDB v2 (or anything serving /api/v2/write).
# Absent = no export. Batches wait in a disk spool (data_dir/export/influxdb) until the
# server takes them; the schema is in gateway/src/store/influxdb/SCHEMA.md.
#[export.influxdb]
#url = "http://127.0.0.1:8086"   # https needs the influxdb-rustls build feature
#org = "linli"
#bucket = "linli"
# The API token: token_env names an environment variable that holds it (keeps the secret
# out of this file); token = "..." puts it here instead. Neither: no Authorization header.
#token_env = "LINLI_INFLUX_TOKEN"
# Most points per write; a batch is closed at the latest flush_interval_ms after its
# first point (checked as readings arrive, and once a second when idle).
#batch_points = 5000
#flush_interval_ms = 1000
# A write taking longer is abandoned and retried.
#timeout_ms = 10000
# Disk for unsent batches, MiB; when full, the oldest batch is dropped (counted, logged).
#spool_max_mib = 1024
# Retry delays (exponential with jitter) after timeouts, network errors, 5xx and 429.
#backoff_min_ms = 500
#backoff_max_ms = 60000

[delivery]
# Who is paged for which alarm, and which alarms become work orders (format:
# gateway/DELIVERY.md). Absent = the built-in routing (gateway/routing.default.toml),
# whose teams have nobody in them. `linli check-routing FILE` validates one; SIGHUP or
# POST /api/routing/reload applies an edited file.
#routing = "/etc/linli/routing.toml"
# Publish alarm state (retained, linli/v1/alarms/{id}) and events (linli/v1/events/...)
# on the gateway's own broker. Off by default: rumqttd has no per-topic access control,
# so any client with device credentials could read every resident's alarms.
mqtt = false
# A delivery attempt taking longer is abandoned and retried.
timeout_ms = 10000
# Retry delays of a channel that failed (exponential with jitter); other channels go on.
backoff_min_ms = 1000
backoff_max_ms = 60000
# A delivery without a receipt this long after it was created fails as expired.
give_up_after_s = 86400

# E-mail through an SMTP relay (plain SMTP; a local relay handles TLS to the outside).
#[delivery.smtp]
#server = "127.0.0.1"
#port = 25
#from = "linli@example.org"
#username = "linli"
#password_env = "LINLI_SMTP_PASSWORD"

# Webhooks: an HTTP POST of JSON, signed with HMAC-SHA256 (X-Linli-Signature), with an
# Idempotency-Key header; a 2xx is the receipt. receives = "events" gets every alarm
# and work order event; "pages" gets pages for people whose contact names it.
#[[delivery.webhook]]
#name = "platform"
#url = "http://127.0.0.1:9000/linli"
#secret_env = "LINLI_PLATFORM_SECRET"
#receives = "events"

[web]
# The dashboard at http://<http.listen>/ (sign-in: `linli user add`; the first start makes
# an admin and prints its password once). Sessions end after this long unused, and this
# long after sign-in whatever happens:
session_idle_min = 720
session_max_hours = 24
# The session cookie is Secure (HTTPS, or http://127.0.0.1 / localhost). Set false only
# for plain HTTP on a trusted network:
secure_cookies = true
# Street assets on the street view's schematic map (no online tiles): one entry each.
#[[web.map]]
#asset = "L-1"
#label = "Lamp 1, Elm St"
#lat = 31.2301
#lon = 121.4702

[modbus]
# Equipment the gateway polls (gateway/MODBUS.md). Each [[modbus.device]] is registered
# as a device of its profile's kind and its readings go through the same journal, store,
# rules and alarms as MQTT ones. Shipped profiles: street-light, eastron-sdm,
# pump-station (`linli modbus-profiles` prints them); add your own in a file:
#profiles = "/etc/linli/modbus-profiles.toml"
# Every request's timeout; a timeout drops the connection and backs the device off.
timeout_ms = 1000
backoff_min_ms = 500
backoff_max_ms = 30000
# Unread registers one read may span to join two values (a device that refuses such a
# read is then read register by register).
max_gap = 8
# Polls after a command within which its read-back must show it (else `not_applied`,
# and a relay_fault / dimming_fault / pump_fault alarm).
verify_polls = 3
# Where the sun rises and sets, for schedules (degrees north, east).
#latitude = 31.23
#longitude = 121.47
schedule_tick_ms = 30000
#
#[[modbus.device]]
#id = "lamp-0413"
#profile = "street-light"
#tcp = "10.20.0.13:502"
#unit = 1
#poll_ms = 1000
#site = "city"
#zone = "main-street"
#asset = "L-0413"
#
#[[modbus.bus]]
#name = "pump-house"
#port = "/dev/ttyUSB0"
#baud = 9600
#parity = "none"
#stop_bits = 1
#
#[[modbus.device]]
#id = "sump-1"
#profile = "pump-station"
#bus = "pump-house"
#unit = 3
#poll_ms = 2000
#site = "city"
#zone = "underpass-7"
#
#[[modbus.schedule]]
#name = "main-street-night"
#zones = ["main-street"]
#on = "sunset+10m"
#off = "sunrise-15m"
#[[modbus.schedule.dim]]
#window = "23:00-05:00"
#level = 50
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_the_defaults() {
        let c = Config::parse(TEMPLATE, Path::new("t.toml")).expect("template parses");
        assert_eq!(c, Config::default());
        assert!(c.validate().is_empty());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[broker]\nlisten_v6 = 1\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("listen_v6"), "{e}");
    }

    #[test]
    fn validation_collects_every_error() {
        let text = "[ingest]\nqueue_capacity = 1\nsegment_mib = 0\n[supervision]\nlost_after_missed = 1\n[log]\nlevel = \"=[\"\n";
        let c = Config::parse(text, Path::new("x.toml")).unwrap();
        let keys: Vec<_> = c.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "ingest.queue_capacity",
                "ingest.max_batch",
                "ingest.segment_mib",
                "supervision.lost_after_missed",
                "log.level"
            ]
        );
    }

    #[test]
    fn influxdb_section_from_the_template_parses_and_validates() {
        let section: String = TEMPLATE
            .split("#[export.influxdb]")
            .nth(1)
            .expect("template documents [export.influxdb]")
            .split("\n[delivery]")
            .next()
            .unwrap_or_default()
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l))
            .filter(|l| !l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("[export.influxdb]{section}");
        let c = Config::parse(&text, Path::new("x.toml")).expect("parses");
        let x = c.export.influxdb.clone().expect("section present");
        assert_eq!(x.url, "http://127.0.0.1:8086");
        assert_eq!(x.token_env.as_deref(), Some("LINLI_INFLUX_TOKEN"));
        assert_eq!(
            InfluxConfig {
                url: x.url.clone(),
                org: x.org.clone(),
                bucket: x.bucket.clone(),
                token_env: x.token_env.clone(),
                ..InfluxConfig::default()
            },
            x,
            "the template shows the defaults"
        );
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn modbus_section_from_the_template_parses_and_validates() {
        let section: String = TEMPLATE
            .split("\n[modbus]")
            .nth(1)
            .expect("template documents [modbus]")
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l))
            .filter(|l| !l.starts_with(' ') && !l.starts_with("profiles"))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&format!("[modbus]{section}"), Path::new("x.toml")).expect("parses");
        assert_eq!(c.modbus.device.len(), 2);
        assert_eq!(c.modbus.schedule[0].dim[0].level, 50);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let d = crate::ingest::modbus::config::ModbusConfig::default();
        assert_eq!(
            (c.modbus.timeout_ms, c.modbus.max_gap, c.modbus.verify_polls),
            (d.timeout_ms, d.max_gap, d.verify_polls),
            "the template shows the defaults"
        );
    }

    #[test]
    fn delivery_sections_from_the_template_parse_and_bad_ones_are_named() {
        let section: String = TEMPLATE
            .split("\n[delivery]")
            .nth(1)
            .expect("template documents [delivery]")
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l))
            .filter(|l| {
                !l.starts_with(' ') && !l.starts_with("username") && !l.starts_with("password_env")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("[delivery]{section}")
            .replace("secret_env = \"LINLI_PLATFORM_SECRET\"", "secret = \"s\"");
        let c = Config::parse(&text, Path::new("x.toml")).expect("parses");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.delivery.webhook[0].receives, "events");
        assert_eq!(c.delivery.smtp.as_ref().map(|s| s.port), Some(25));
        let bad = "[delivery]\ntimeout_ms = 1\n[[delivery.webhook]]\nname = \"a:b\"\nurl = \"https://x\"\nsecret = \"top\"\nsecret_env = \"NOPE_NOT_SET_X\"\nreceives = \"all\"\n[delivery.smtp]\nserver = \"\"\nfrom = \"nobody\"\n";
        let c = Config::parse(bad, Path::new("x.toml")).expect("parses");
        let keys: Vec<String> = c.validate().into_iter().map(|i| i.key).collect();
        for k in [
            "delivery.timeout_ms",
            "delivery.webhook[0].name",
            "delivery.webhook[0].url",
            "delivery.webhook[0].secret",
            "delivery.webhook[0].secret_env",
            "delivery.webhook[0].receives",
            "delivery.smtp.server",
            "delivery.smtp.from",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        assert!(
            !format!("{:?}", c.delivery).contains("top"),
            "the secret is not printed"
        );
    }

    #[test]
    fn influxdb_issues_are_named_and_the_token_is_not_printed() {
        let text = "[export.influxdb]\nurl = \"localhost:8086\"\ntoken = \"s3cret\"\ntoken_env = \"T\"\nbatch_points = 0\nbackoff_min_ms = 100\nbackoff_max_ms = 50\n";
        let c = Config::parse(text, Path::new("x.toml")).expect("parses");
        let keys: Vec<_> = c.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "export.influxdb.url",
                "export.influxdb.org",
                "export.influxdb.bucket",
                "export.influxdb.token_env",
                "export.influxdb.batch_points",
                "export.influxdb.backoff_max_ms"
            ]
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = Config::parse("[export.influxdb]\nurll = 1\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("urll"), "{e}");
    }
}
