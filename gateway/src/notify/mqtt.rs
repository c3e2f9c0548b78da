//! MQTT channel: alarm state and events on the gateway's own broker, through an
//! in-process link. `linli/v1/alarms/{id}` holds each alarm's current state, retained
//! (cleared with an empty retained message once the alarm closes);
//! `linli/v1/events/alarm` and `linli/v1/events/work_order` carry every event.
//!
//! Local publishes are QoS 0 and retained messages live in the broker's RAM (DESIGN.md
//! §5), so the stage republishes the open alarms at start. Does not decide what is
//! published.

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish};

/// Topic of an alarm's retained state.
pub fn alarm_topic(id: u64) -> String {
    format!("linli/v1/alarms/{id}")
}

/// Topic of an event stream (`alarm` or `work_order`).
pub fn event_topic(kind: &str) -> String {
    format!("linli/v1/events/{kind}")
}

/// The publishing link.
pub struct MqttOut {
    tx: LinkTx,
    // Kept so the broker keeps the link; nothing is subscribed on it.
    _rx: LinkRx,
}

impl std::fmt::Debug for MqttOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttOut").finish_non_exhaustive()
    }
}

impl MqttOut {
    /// Wraps a link made for it.
    pub fn new(tx: LinkTx, rx: LinkRx) -> MqttOut {
        MqttOut { tx, _rx: rx }
    }

    /// Publishes; `false` when the broker link is gone.
    pub async fn publish(&mut self, topic: String, payload: Vec<u8>, retain: bool) -> bool {
        let p = Publish::new(
            bytes::Bytes::from(topic),
            bytes::Bytes::from(payload),
            retain,
        );
        self.tx.send(Packet::Publish(p, None)).await.is_ok()
    }
}
