//! The gateway's HTTP API as the simulator's tools call it: JSON GETs and POSTs with the
//! gateway's machine API token (`Authorization: Bearer`, read from the `api-token` file
//! the gateway keeps in its data directory).
//!
//! Owns only the calls; what is asked and checked is the caller's.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

/// A gateway's API.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://host:port`.
    pub base: String,
    token: String,
}

impl Api {
    /// The API at `base` (`http://host:port` or `host:port`), with the token the gateway
    /// keeps in `data_dir` (it writes one at its first start).
    pub fn new(base: &str, data_dir: &Path) -> Result<Api> {
        let path = data_dir.join("api-token");
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the gateway's API token {}", path.display()))?
            .trim()
            .to_owned();
        let base = if base.starts_with("http://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        Ok(Api { base, token })
    }

    /// GET `path` (e.g. `/api/alarms`) as JSON; blocking.
    pub fn get(&self, path: &str, timeout: Duration) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let body = ureq::get(&url)
            .set("authorization", &format!("Bearer {}", self.token))
            .timeout(timeout)
            .call()
            .with_context(|| format!("GET {url}"))?
            .into_string()?;
        serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON"))
    }

    /// POST `body` as JSON to `path`; blocking.
    pub fn post(&self, path: &str, body: &Value, timeout: Duration) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let text = ureq::post(&url)
            .set("authorization", &format!("Bearer {}", self.token))
            .set("content-type", "application/json")
            .timeout(timeout)
            .send_string(&body.to_string())
            .with_context(|| format!("POST {url}"))?
            .into_string()?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}
