//! Real receivers for the delivery tests: an HTTP server that takes webhooks (checking
//! their HMAC signature itself, and able to fail on purpose), and Debian's aiosmtpd as
//! an SMTP server writing a Maildir. Both listen on free loopback ports and stop when
//! dropped.
//!
//! Owns nothing of the gateway: the signature is checked with the `hmac` crate from
//! the documented scheme, not with the gateway's code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Receiver path (`/sms`, `/platform`).
    pub path: String,
    /// `Idempotency-Key`.
    pub key: String,
    /// Status it answered.
    pub status: u16,
    /// The signature checked out against the secret.
    pub signed: bool,
    /// The JSON body.
    pub body: Value,
}

#[derive(Debug)]
struct Shared {
    secret: Vec<u8>,
    status: AtomicU16,
    seen: Mutex<Vec<Hook>>,
}

/// An HTTP server taking webhooks on any path.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(sig) = h("x-linli-signature").strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(h("x-linli-timestamp").as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn take(
    State(s): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = s.status.load(Relaxed);
    let hook = Hook {
        path: uri.path().to_owned(),
        key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        status,
        signed: verify(&s.secret, &headers, &body),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    s.seen.lock().unwrap_or_else(|e| e.into_inner()).push(hook);
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl WebhookReceiver {
    /// Starts on a free loopback port, answering 200, checking signatures with `secret`.
    pub async fn start(secret: &str) -> Result<WebhookReceiver> {
        WebhookReceiver::start_on(secret, 0).await
    }

    /// Starts on a given loopback port (0: any free one).
    pub async fn start_on(secret: &str, port: u16) -> Result<WebhookReceiver> {
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            status: AtomicU16::new(200),
            seen: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(take)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(WebhookReceiver {
            addr,
            shared,
            _stop: tx,
        })
    }

    /// URL of a path on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// From now on, answer with this status.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Relaxed);
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Hook> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests answered 2xx on `path`, by idempotency key: (key, receipts).
    pub fn receipts(&self, path: &str) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for h in self
            .seen()
            .iter()
            .filter(|h| h.path == path && (200..300).contains(&h.status))
        {
            *m.entry(h.key.clone()).or_insert(0) += 1;
        }
        m
    }
}

/// Debian's aiosmtpd (`/usr/bin/python3 -m aiosmtpd`) storing mail in a Maildir.
#[derive(Debug)]
pub struct SmtpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    maildir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Starts it on a free loopback port and waits until it answers.
    pub async fn start() -> Result<SmtpServer> {
        let dir = tempfile::tempdir()?;
        let maildir = dir.path().join("mail");
        let port = crate::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new("/usr/bin/python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start aiosmtpd (apt install python3-aiosmtpd): {e}")
            })?;
        let mut s = SmtpServer {
            addr,
            maildir,
            child,
            _dir: dir,
        };
        let up = crate::eventually(Duration::from_secs(15), || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        if !up {
            let _ = s.child.kill();
            bail!("aiosmtpd did not listen on {addr}");
        }
        Ok(s)
    }

    /// Every message received: (headers and body as text).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// A header of a message (first occurrence, case-insensitive name).
    pub fn header(msg: &str, name: &str) -> Option<String> {
        msg.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}
