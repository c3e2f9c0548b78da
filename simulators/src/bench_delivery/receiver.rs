//! The delivery benchmark's webhook receiver: an HTTP server on its own thread (its own
//! single-threaded runtime, so the load generator's tasks never delay a receipt) that
//! stamps the monotonic instant each page arrives, checks its HMAC signature, matches
//! it to the SOS that caused it by `alarm.device`, and answers 200 at once.
//!
//! Owns the receipts and their counters; what they are compared with is the run's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::oneshot;

/// The URL path pages are posted to.
pub const PATH: &str = "/sms";

/// What the receiver saw, shared with the run (all lock-free).
#[derive(Debug)]
pub struct Receipts {
    /// Instant 0 of every `*_ns` value.
    pub base: Instant,
    /// Alarm index by the pendant's device id.
    index: HashMap<String, usize>,
    /// HMAC key the gateway signs with.
    secret: Vec<u8>,
    /// First receipt of alarm `i`'s page: ns since `base`, plus 1 (0 = none yet).
    pub at_ns: Vec<AtomicU64>,
    /// The page's `alarm.raised_ms` (gateway wall clock, ms; 0 = none).
    pub raised_ms: Vec<AtomicU64>,
    /// The page's `X-Linli-Timestamp` (when the channel worker sent it, gateway wall
    /// clock ms; 0 = none).
    pub sent_ms: Vec<AtomicU64>,
    /// Every request received.
    pub requests: AtomicU64,
    /// Pages matched to an alarm for the first time.
    pub matched: AtomicU64,
    /// Pages for an alarm already paged (a resend, or a second page for it).
    pub duplicates: AtomicU64,
    /// Requests that are not a page of one of the benchmark's pendants.
    pub unmatched: AtomicU64,
    /// Requests whose signature is missing or wrong.
    pub bad_signatures: AtomicU64,
}

impl Receipts {
    /// Receipts for pages about `devices` (alarm `i` is `devices[i]`'s SOS), signed
    /// with `secret`.
    pub fn new(base: Instant, devices: &[String], secret: &str) -> Receipts {
        let n = devices.len();
        let zeros = || (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Receipts {
            base,
            index: devices
                .iter()
                .enumerate()
                .map(|(i, d)| (d.clone(), i))
                .collect(),
            secret: secret.as_bytes().to_vec(),
            at_ns: zeros(),
            raised_ms: zeros(),
            sent_ms: zeros(),
            requests: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
        }
    }

    /// When alarm `i`'s page arrived, if it has.
    pub fn received(&self, i: usize) -> Option<Instant> {
        match self.at_ns.get(i).map(|a| a.load(Relaxed)) {
            Some(0) | None => None,
            Some(ns) => Some(self.base + std::time::Duration::from_nanos(ns - 1)),
        }
    }

    fn record(&self, at: Instant, headers: &HeaderMap, body: &[u8]) {
        self.requests.fetch_add(1, Relaxed);
        let timestamp = headers
            .get("x-linli-timestamp")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let signed = timestamp
            .zip(
                headers
                    .get("x-linli-signature")
                    .and_then(|v| v.to_str().ok()),
            )
            .is_some_and(|(ts, sig)| {
                linli_gateway::notify::webhook::signature(&self.secret, ts, body) == sig
            });
        if !signed {
            self.bad_signatures.fetch_add(1, Relaxed);
        }
        let page: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let found = page.as_ref().and_then(|p| {
            if p.get("type").and_then(|t| t.as_str()) != Some("page") {
                return None;
            }
            let device = p.pointer("/alarm/device")?.as_str()?;
            let i = *self.index.get(device)?;
            let raised = p.pointer("/alarm/raised_ms").and_then(|v| v.as_u64());
            Some((i, raised))
        });
        let Some((i, raised)) = found else {
            self.unmatched.fetch_add(1, Relaxed);
            return;
        };
        let ns = at.saturating_duration_since(self.base).as_nanos() as u64 + 1;
        if self.at_ns[i]
            .compare_exchange(0, ns, Relaxed, Relaxed)
            .is_ok()
        {
            self.raised_ms[i].store(raised.unwrap_or(0), Relaxed);
            self.sent_ms[i].store(timestamp.unwrap_or(0), Relaxed);
            self.matched.fetch_add(1, Relaxed);
        } else {
            self.duplicates.fetch_add(1, Relaxed);
        }
    }
}

async fn page(State(r): State<Arc<Receipts>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    r.record(at, &headers, &body);
    StatusCode::OK
}

/// The running receiver.
#[derive(Debug)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub receipts: Arc<Receipts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<f64>>>,
}

impl Receiver {
    /// Starts listening on a free loopback port, on a thread of its own.
    pub fn start(receipts: Arc<Receipts>) -> Result<Receiver> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the webhook receiver")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let state = receipts.clone();
        let thread = std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let app = Router::new().route(PATH, post(page)).with_state(state);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await?;
                    anyhow::Ok(())
                })?;
                // This thread's CPU: the receiver's share of the generator's.
                crate::bench::cpu_seconds("thread-self")
            })
            .context("starting the receiver thread")?;
        Ok(Receiver {
            addr,
            receipts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The URL pages go to.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Stops the server; returns the CPU seconds its thread used.
    pub fn stop(mut self) -> Result<f64> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<f64> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the receiver thread panicked"))?,
            None => Ok(0.0),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
