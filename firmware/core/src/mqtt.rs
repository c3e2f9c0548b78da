//! The MQTT side of a device, over minimq (MQTT 5, async, no alloc) on any
//! `embedded-io-async` byte stream: the session settings a device connects with, its
//! downlink subscriptions, and [`Publisher`] for a live connection.
//!
//! Owns how frames map onto MQTT (QoS 0 out: the outbox resends until the gateway's own
//! ack; QoS 0 in, as the wire contract asks). Does not own opening the socket, timers or
//! reconnect pacing (the caller's loop, with [`crate::node::Node::disconnected`]).

use minimq::{Buffers, ConfigBuilder, ConfigError, Connection, Io, Publication, QoS, TopicFilter};

use crate::node::Node;
use crate::publish::Publisher;

/// Session settings: client id and username are the device id; `keepalive_s` seconds
/// of keep-alive (the broker drops a silent device after 1.5 times that).
pub fn config<'a>(
    buffers: Buffers<'a>,
    id: &'a str,
    password: &'a str,
    keepalive_s: u16,
) -> Result<ConfigBuilder<'a>, ConfigError> {
    Ok(ConfigBuilder::new(buffers)
        .client_id(id)?
        .auth(id, password.as_bytes())?
        .keepalive_interval(keepalive_s))
}

/// Subscribes to the node's `down/ack`, `down/cmd` and `down/config` topics.
pub async fn subscribe<IO: Io, const N: usize, const A: usize>(
    conn: &mut Connection<'_, '_, IO>,
    node: &Node<'_, N, A>,
) -> Result<(), minimq::Error<IO::Error>> {
    let topics = node.downlink_topics();
    let filters = [
        TopicFilter::new(&topics[0]),
        TopicFilter::new(&topics[1]),
        TopicFilter::new(&topics[2]),
    ];
    conn.subscribe(&filters, &[]).await?;
    Ok(())
}

/// A live connection as a [`Publisher`].
pub struct MqttPublisher<'c, 'x, 'buf, IO: Io>(pub &'c mut Connection<'x, 'buf, IO>);

impl<IO: Io> core::fmt::Debug for MqttPublisher<'_, '_, '_, IO> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MqttPublisher")
    }
}

impl<IO: Io> Publisher for MqttPublisher<'_, '_, '_, IO>
where
    IO::Error: core::fmt::Debug,
{
    type Error = minimq::PubError<(), IO::Error>;

    async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), Self::Error> {
        self.0
            .publish(Publication::bytes(topic, payload).qos(QoS::AtMostOnce))
            .await
            .map(|_| ())
    }
}
