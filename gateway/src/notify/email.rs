//! E-mail channel: a notification as a plain-text message through an SMTP relay
//! (lettre). The idempotency key is the `Message-ID` (`<KEY@linli>`), so a receiver can
//! drop a copy re-sent after a crash. A 2xx/3xx reply to the message is the receipt;
//! permanent (5xx) replies are refusals, transient (4xx) ones are retried, and no reply
//! (relay down) pauses the channel.
//!
//! Does not queue or retry by itself (the stage does).

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::db::Outcome;
use super::{ChannelError, Notification};
use crate::config::SmtpConfig;

/// The SMTP relay.
#[derive(Debug, Clone)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Email {
    /// A sender through the configured relay.
    pub fn new(c: &SmtpConfig, timeout: std::time::Duration) -> Result<Email, ChannelError> {
        let from: Mailbox = c.from.parse().map_err(|e| ChannelError::Email {
            key: "from",
            reason: format!("`{}`: {e}", c.from),
        })?;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.server)
            .port(c.port)
            .timeout(Some(timeout));
        if let (Some(user), Some(var)) = (&c.username, &c.password_env) {
            let pass = std::env::var(var).map_err(|_| ChannelError::Email {
                key: "password_env",
                reason: format!("`{var}` is not set"),
            })?;
            b = b.credentials(Credentials::new(user.clone(), pass));
        }
        Ok(Email {
            transport: b.build(),
            from,
        })
    }

    /// Sends one notification to its person's address.
    pub async fn send(&self, n: &Notification) -> Outcome {
        let Some(addr) = n.person.as_ref().and_then(|p| p.email.as_ref()) else {
            return Outcome::Failed("the person has no e-mail address".into());
        };
        let to: Mailbox = match addr.parse() {
            Ok(m) => m,
            Err(e) => return Outcome::Failed(format!("bad address `{addr}`: {e}")),
        };
        let text = format!(
            "{}\n\n{}\n\nIdempotency-Key: {}\n",
            n.subject,
            serde_json::to_string_pretty(&n.payload()).unwrap_or_default(),
            n.key
        );
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&n.subject)
            .message_id(Some(format!("<{}@linli>", n.key)))
            .header(ContentType::TEXT_PLAIN)
            .body(text);
        let msg = match msg {
            Ok(m) => m,
            Err(e) => return Outcome::Failed(format!("cannot build the message: {e}")),
        };
        match self.transport.send(msg).await {
            Ok(r) => Outcome::Delivered(format!("SMTP {}", r.code())),
            Err(e) if e.is_permanent() => Outcome::Failed(e.to_string()),
            Err(e) if e.is_transient() => Outcome::Retry(e.to_string()),
            // No reply at all: the relay is down or unreachable.
            Err(e) => Outcome::Unreachable(e.to_string()),
        }
    }
}
