//! Webhook channel: an HTTP POST of a notification's JSON, signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"` (`X-Linli-Timestamp`, `X-Linli-Signature: sha256=HEX`) and
//! carrying its `Idempotency-Key`. A 2xx is the receipt; 408, 429 and 5xx are retried;
//! network errors, timeouts, 401, 403 and 404 mean the receiver is unreachable (the
//! channel pauses and retries); any other status is a refusal.
//!
//! Does not queue or retry by itself (the stage does), nor decide who receives what.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::db::Outcome;
use super::{ChannelError, Notification};

/// The signature header's value for a body sent at `timestamp_ms`.
pub fn signature(key: &[u8], timestamp_ms: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One configured webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    key: Option<Vec<u8>>,
}

impl Webhook {
    /// The webhook `name` posting to `url`, signing with `key` when there is one.
    pub fn new(
        name: &str,
        url: &str,
        key: Option<String>,
        timeout: std::time::Duration,
    ) -> Result<Webhook, ChannelError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| ChannelError::Webhook {
                name: name.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Webhook {
            client,
            url: url.to_owned(),
            key: key.map(String::into_bytes),
        })
    }

    /// Sends one notification; `now_ms` is the signature's timestamp.
    pub async fn send(&self, n: &Notification, now_ms: u64) -> Outcome {
        let body = match serde_json::to_vec(&n.payload()) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(format!("cannot encode: {e}")),
        };
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &n.key)
            .header("x-linli-timestamp", now_ms.to_string());
        if let Some(k) = &self.key {
            req = req.header("x-linli-signature", signature(k, now_ms, &body));
        }
        match req.body(body).send().await {
            Ok(r) => {
                let st = r.status();
                let text = format!("HTTP {}", st.as_u16());
                match st.as_u16() {
                    200..=299 => Outcome::Delivered(text),
                    408 | 429 | 500..=599 => Outcome::Retry(text),
                    // A wrong secret or URL is a configuration fault of the whole
                    // channel, not this message's: keep it and pause the channel.
                    401 | 403 | 404 => Outcome::Unreachable(text),
                    _ => Outcome::Failed(text),
                }
            }
            Err(e) if e.is_timeout() => Outcome::Unreachable("timed out".into()),
            Err(e) => Outcome::Unreachable(format!("{e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"; here the
        // data is split as "{timestamp}.{body}" would not be, so sign it whole by hand.
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Ours signs "{ts}.{body}".
        assert_eq!(super::signature(b"k", 1, b"x"), {
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"k").expect("key");
            m.update(b"1.x");
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        });
    }
}
