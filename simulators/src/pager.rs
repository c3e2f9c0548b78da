//! The phones of the people on a roster, for simulations: a webhook receiver for the
//! gateway's page channel (`[[delivery.webhook]] receives = "pages"`) that checks each
//! page's signature and keeps who was paged about what, for the demo to show and for
//! scenarios to check.
//!
//! Owns the receiver and the pages it got; does not own routing (the gateway's) or
//! what a page means to the storyline.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::sync::oneshot;

/// The URL path pages are posted to.
pub const PATH: &str = "/page";

/// One page as a phone shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The person's id in the routing file.
    pub to: String,
    /// Their name.
    pub name: String,
    /// The text the gateway wrote.
    pub text: String,
    /// The alarm's kind.
    pub kind: String,
    /// The alarm's device, if it has one.
    pub device: Option<String>,
    /// The alarm's resident or asset, if it has one.
    pub subject: Option<String>,
    /// The escalation step that paged them (1 = the first).
    pub step: u64,
}

impl Page {
    fn parse(body: &[u8]) -> Option<Page> {
        let v: Value = serde_json::from_slice(body).ok()?;
        if v["type"] != "page" {
            return None;
        }
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        Some(Page {
            to: s("/to/id")?,
            name: s("/to/name").unwrap_or_default(),
            text: s("/text").unwrap_or_default(),
            kind: s("/alarm/kind")?,
            device: s("/alarm/device"),
            subject: s("/alarm/subject"),
            step: v["step"].as_u64().unwrap_or(0),
        })
    }
}

/// What the pager received: pages in arrival order, and requests it refused.
#[derive(Debug, Clone, Default)]
pub struct Pages(Arc<Mutex<Received>>);

#[derive(Debug, Default)]
struct Received {
    pages: Vec<Page>,
    refused: u64,
}

impl Pages {
    /// Every page so far.
    pub fn all(&self) -> Vec<Page> {
        self.lock().pages.clone()
    }

    /// Requests that were not a correctly signed page.
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Shared {
    secret: Vec<u8>,
    pages: Pages,
}

async fn receive(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = header("x-linli-timestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .zip(header("x-linli-signature"))
        .is_some_and(|(ts, sig)| {
            linli_gateway::notify::webhook::signature(&s.secret, ts, &body) == sig
        });
    match Page::parse(&body).filter(|_| signed) {
        Some(p) => {
            s.pages.lock().pages.push(p);
            StatusCode::OK
        }
        None => {
            s.pages.lock().refused += 1;
            // A refusal: the gateway records it and does not retry.
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

/// The running receiver.
#[derive(Debug)]
pub struct Pager {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it got.
    pub pages: Pages,
    stop: Option<oneshot::Sender<()>>,
}

impl Pager {
    /// Listens on a free loopback port (a task on the current runtime) for pages signed
    /// with `secret`.
    pub async fn start(secret: &str) -> Result<Pager> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the pager")?;
        let addr = listener.local_addr()?;
        let pages = Pages::default();
        let state = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            pages: pages.clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Router::new().route(PATH, post(receive)).with_state(state);
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "the pager stopped");
            }
        });
        Ok(Pager {
            addr,
            pages,
            stop: Some(stop),
        })
    }

    /// The URL the gateway's page webhook posts to.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_read_and_anything_else_is_not() {
        let body = br#"{"type":"page","text":"[P1] fall - R-1","step":1,
            "to":{"id":"wang","name":"Wang Fang"},
            "alarm":{"kind":"fall","device":"pendant-1"}}"#;
        let p = Page::parse(body).expect("a page");
        assert_eq!((p.to.as_str(), p.kind.as_str()), ("wang", "fall"));
        assert_eq!(p.device.as_deref(), Some("pendant-1"));
        assert!(Page::parse(br#"{"type":"alarm","alarm":{"kind":"fall"}}"#).is_none());
        assert!(Page::parse(b"not json").is_none());
    }
}
