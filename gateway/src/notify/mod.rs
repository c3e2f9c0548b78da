//! Delivery: who is told about an alarm, through which channel, and the proof that they
//! were — rosters and escalation policies (`routing`, `escalation`), work orders for
//! crews (`workorder`), the pure router that turns alarm transitions into
//! [`Notification`]s and stream events (`router`), their durable record (`db`), the
//! running stage (`stage`) and the channels, named by what they speak (`webhook`,
//! `email`, `mqtt`; server-sent events live in the API).
//!
//! Does not own alarms or their lifecycle (`alarms`): it reads their recorded
//! transitions and asks the alarm desk to act (resolve after a verified work order).

pub mod db;
pub mod email;
pub mod escalation;
pub mod mqtt;
pub mod router;
pub mod routing;
pub mod stage;
pub mod webhook;
pub mod workorder;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use routing::{Contact, Person};

/// A channel that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The webhook's HTTP client.
    #[error("webhook {name}: cannot build its HTTP client: {reason}")]
    Webhook {
        /// Webhook name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The e-mail settings.
    #[error("delivery.smtp.{key}: {reason}")]
    Email {
        /// Config key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// One message to one recipient through one channel, under an idempotency key that
/// stays the same however often it is (re)sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key (unique per channel).
    pub key: String,
    /// `email` or `webhook:NAME`.
    pub channel: String,
    /// The person (pages), or none (event webhooks).
    pub person: Option<Recipient>,
    /// Short text: e-mail subject, SMS text.
    pub subject: String,
    /// The documented JSON body (DELIVERY.md).
    pub body: Value,
    /// Created, ms.
    pub created_ms: u64,
}

/// Who a page is for, as the channel needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Person id.
    pub id: String,
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
}

impl Notification {
    /// A page or work order message to a person through one of their contacts.
    pub fn to_person(
        key: String,
        p: &Person,
        c: &Contact,
        subject: String,
        body: Value,
        now: u64,
    ) -> Notification {
        Notification {
            key,
            channel: c.channel(),
            person: Some(Recipient {
                id: p.id.clone(),
                name: p.name.clone(),
                email: p.email.clone(),
                phone: p.phone.clone(),
            }),
            subject,
            body,
            created_ms: now,
        }
    }

    /// The JSON a webhook receives: the body with the key, channel, recipient and text.
    pub fn payload(&self) -> Value {
        let mut v = self.body.clone();
        if let Value::Object(m) = &mut v {
            m.insert("key".into(), Value::String(self.key.clone()));
            m.insert("text".into(), Value::String(self.subject.clone()));
            m.insert("created_ms".into(), self.created_ms.into());
            if let Some(p) = &self.person {
                m.insert("to".into(), serde_json::json!({"id": p.id, "name": p.name, "email": p.email, "phone": p.phone}));
            }
        }
        v
    }
}
