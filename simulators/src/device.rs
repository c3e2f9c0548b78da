//! A simulated device identity: credentials, sealing key and frame counter, able to
//! seal uplinks and open the gateway's acks exactly as firmware does.
//!
//! Owns no network connection; see [`crate::load`] and the system tests for that.

use linli_protocol::codec::{decode_downlink, encode_uplink};
use linli_protocol::seal::{self, DeviceKey, FrameClass, OVERHEAD};
use linli_protocol::topic::{self, DownChannel, UpChannel};
use linli_protocol::{Downlink, Report, Uplink};

/// A device as the simulator knows it.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// Device id (MQTT client id and username).
    pub id: String,
    /// MQTT password.
    pub password: String,
    /// Sealing key id.
    pub key_id: u8,
    /// Sealing key.
    pub key: DeviceKey,
    /// Next frame counter.
    pub counter: u32,
}

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The JSON is not what `linli provision --format json` prints.
    #[error("credentials JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The key is not 64 hex digits.
    #[error("credentials: key_hex must be 64 hex digits")]
    Key,
}

impl SimDevice {
    /// A device from raw parts.
    pub fn new(id: &str, password: &str, key_id: u8, key: &[u8; 32]) -> Self {
        SimDevice {
            id: id.into(),
            password: password.into(),
            key_id,
            key: DeviceKey::new(key),
            counter: 1,
        }
    }

    /// A device from the JSON `linli provision --format json` prints.
    pub fn from_credentials_json(text: &str) -> Result<Self, CredentialsError> {
        #[derive(serde::Deserialize)]
        struct C {
            device_id: String,
            password: String,
            key_id: u8,
            key_hex: String,
        }
        let c: C = serde_json::from_str(text)?;
        let key: [u8; 32] = hex::decode(&c.key_hex)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(CredentialsError::Key)?;
        Ok(SimDevice::new(&c.device_id, &c.password, c.key_id, &key))
    }

    /// Topic for `report`'s channel.
    pub fn topic_for(&self, report: &Report) -> String {
        self.topic(report.channel())
    }

    /// Uplink topic of this device on `channel`.
    pub fn topic(&self, channel: UpChannel) -> String {
        let mut t = String::new();
        let _ = topic::write_uplink(&mut t, &self.id, channel);
        t
    }

    /// This device's ack topic.
    pub fn ack_topic(&self) -> String {
        let mut t = String::new();
        let _ = topic::write_downlink(&mut t, &self.id, DownChannel::Ack);
        t
    }

    /// Seals `report` with the next counter; returns (counter, frame).
    pub fn seal_next(&mut self, device_time: u32, report: Report) -> (u32, Vec<u8>) {
        let c = self.counter;
        self.counter = self.counter.wrapping_add(1);
        (c, self.seal_with(c, device_time, report))
    }

    /// Seals `report` with a given counter (for replays and tests).
    pub fn seal_with(&self, counter: u32, device_time: u32, report: Report) -> Vec<u8> {
        let mut body = [0u8; 64];
        let uplink = Uplink {
            device_time,
            report,
        };
        let body = match encode_uplink(&uplink, &mut body) {
            Ok(b) => b,
            Err(_) => return Vec::new(),
        };
        let mut out = vec![0u8; body.len() + OVERHEAD];
        match seal::seal(
            &self.key,
            self.key_id,
            FrameClass::Uplink,
            &self.id,
            counter,
            body,
            &mut out,
        ) {
            Ok(n) => {
                out.truncate(n);
                out
            }
            Err(_) => Vec::new(),
        }
    }

    /// Opens an ack frame from the gateway; returns the acknowledged counter.
    pub fn open_ack(&self, frame: &[u8]) -> Option<u32> {
        let mut f = frame.to_vec();
        let (h, body) = seal::open(&self.key, FrameClass::Ack, &self.id, &mut f).ok()?;
        match decode_downlink(body).ok()? {
            Downlink::Ack { counter } if counter == h.counter => Some(counter),
            _ => None,
        }
    }
}
