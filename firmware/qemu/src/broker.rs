//! An in-memory stand-in for the MQTT broker: a fixed FIFO of (topic, payload) copies,
//! and a fixed buffer to format a topic into. No allocator, so it runs on the target.
//! It is the device's [`Publisher`]: `linli_firmware::publish::flush` hands it the
//! node's sealed frames as it would hand them to the MQTT client.
//!
//! Owns holding published messages in order; does not own topics' meaning (see
//! `linli_protocol::topic`), sessions, QoS or subscriptions: whoever takes a message
//! gets it, once.
//!
//! With the `tamper` feature, every frame that comes in through [`Publisher`] (the
//! device's side) has one bit flipped on its way through: a radio error, or someone on
//! the path. [`MemoryBroker::publish`] itself stores what it is given.

use core::fmt;

use linli_firmware::publish::Publisher;
use linli_protocol::codec::MAX_BODY_LEN;
use linli_protocol::seal::OVERHEAD;

/// Longest topic held: `linli/v1/` + a 64-character device id + `/up/telemetry` fits.
pub const MAX_TOPIC_LEN: usize = 96;
/// Longest payload held: a sealed frame of the largest uplink body.
pub const MAX_PAYLOAD_LEN: usize = MAX_BODY_LEN + OVERHEAD;
/// Messages held before [`MemoryBroker::publish`] says [`PublishError::Full`]: as many
/// as the check's device keeps in its outbox, so even one flush of every unacked frame
/// (after a reconnect, or the resends of a run whose frames are all refused) fits.
pub const CAPACITY: usize = crate::check::OUTBOX_SLOTS;

/// Why a message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// [`CAPACITY`] messages are waiting.
    Full,
    /// The topic is longer than [`MAX_TOPIC_LEN`].
    TopicTooLong,
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    PayloadTooLong,
}

/// One published message, copied.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    topic: [u8; MAX_TOPIC_LEN],
    topic_len: usize,
    payload: [u8; MAX_PAYLOAD_LEN],
    payload_len: usize,
}

impl Message {
    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        // Copied whole from a `&str`, so always UTF-8.
        core::str::from_utf8(&self.topic[..self.topic_len]).unwrap_or_default()
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload[..self.payload_len]
    }

    /// The payload, to open a sealed frame in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload[..self.payload_len]
    }

    /// The topic and the payload at once, to open a frame under its topic's device id.
    pub fn parts_mut(&mut self) -> (&str, &mut [u8]) {
        let topic = core::str::from_utf8(&self.topic[..self.topic_len]).unwrap_or_default();
        (topic, &mut self.payload[..self.payload_len])
    }
}

/// A FIFO of at most [`CAPACITY`] messages.
#[derive(Debug, Default)]
pub struct MemoryBroker {
    slots: [Option<Message>; CAPACITY],
    head: usize,
    len: usize,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies `payload` published to `topic` to the back of the queue.
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), PublishError> {
        self.push(topic, payload).map(|_| ())
    }

    /// [`MemoryBroker::publish`], giving the stored copy.
    fn push(&mut self, topic: &str, payload: &[u8]) -> Result<&mut Message, PublishError> {
        if self.len == CAPACITY {
            return Err(PublishError::Full);
        }
        let mut m = Message {
            topic: [0; MAX_TOPIC_LEN],
            topic_len: topic.len(),
            payload: [0; MAX_PAYLOAD_LEN],
            payload_len: payload.len(),
        };
        m.topic
            .get_mut(..topic.len())
            .ok_or(PublishError::TopicTooLong)?
            .copy_from_slice(topic.as_bytes());
        m.payload
            .get_mut(..payload.len())
            .ok_or(PublishError::PayloadTooLong)?
            .copy_from_slice(payload);
        let slot = &mut self.slots[(self.head + self.len) % CAPACITY];
        self.len += 1;
        Ok(slot.insert(m))
    }

    /// The oldest message, removed from the queue.
    pub fn take(&mut self) -> Option<Message> {
        let m = self.slots[self.head].take()?;
        self.head = (self.head + 1) % CAPACITY;
        self.len -= 1;
        Some(m)
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No message waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Publisher for MemoryBroker {
    type Error = PublishError;

    async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), PublishError> {
        let m = self.push(topic, payload)?;
        if cfg!(feature = "tamper") {
            let p = m.payload_mut();
            if let Some(b) = p.get_mut(p.len() / 2) {
                *b ^= 0x10; // see the `tamper` feature in Cargo.toml
            }
        }
        Ok(())
    }
}

/// A topic formatted into a fixed buffer (give it to `topic::write_uplink`).
#[derive(Debug, Clone, Copy)]
pub struct TopicBuf {
    bytes: [u8; MAX_TOPIC_LEN],
    len: usize,
}

impl Default for TopicBuf {
    fn default() -> Self {
        TopicBuf {
            bytes: [0; MAX_TOPIC_LEN],
            len: 0,
        }
    }
}

impl TopicBuf {
    /// What was written.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so always UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for TopicBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_and_full_at_capacity() {
        let mut b = MemoryBroker::new();
        for i in 0..CAPACITY as u8 {
            b.publish("t", &[i]).unwrap();
        }
        assert_eq!(b.publish("t", &[99]), Err(PublishError::Full));
        assert_eq!(b.take().unwrap().payload(), &[0]);
        b.publish("u", &[CAPACITY as u8]).unwrap();
        let order: [u8; CAPACITY] = core::array::from_fn(|_| b.take().unwrap().payload()[0]);
        assert_eq!(order, core::array::from_fn(|i| i as u8 + 1));
        assert!(b.take().is_none() && b.is_empty());
    }

    #[test]
    fn the_device_side_stores_the_frame_flipped_only_when_tampering() {
        let mut b = MemoryBroker::new();
        let sent = [0u8; 8];
        crate::block_on(Publisher::publish(&mut b, "t", &sent)).unwrap();
        let got = b.take().unwrap();
        let flipped = got
            .payload()
            .iter()
            .zip(sent)
            .filter(|(a, b)| **a != *b)
            .count();
        assert_eq!(
            (got.topic(), flipped),
            ("t", usize::from(cfg!(feature = "tamper")))
        );
    }

    #[test]
    fn oversized_messages_are_refused() {
        let mut b = MemoryBroker::new();
        let long = [b'a'; MAX_TOPIC_LEN + 1];
        let long = core::str::from_utf8(&long).unwrap();
        assert_eq!(b.publish(long, &[]), Err(PublishError::TopicTooLong));
        let big = [0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(b.publish("t", &big), Err(PublishError::PayloadTooLong));
        assert!(b.is_empty());
    }
}
