//! The MQTT topic scheme: `linli/v1/{device}/up/{channel}` from devices and
//! `linli/v1/{device}/down/{channel}` to them. Parses and formats topics; does not
//! decide who may publish where (the gateway does, with sealed frames).

use core::fmt;

/// Every Linli topic starts with this prefix.
pub const PREFIX: &str = "linli/v1/";
/// Subscription filter that matches every uplink topic.
pub const UPLINK_FILTER: &str = "linli/v1/+/up/+";
/// Longest device id accepted anywhere.
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// Channels a device publishes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpChannel {
    /// Periodic measurements.
    Telemetry,
    /// Discrete events (fall, SOS, smoke, ...).
    Event,
    /// Device status (battery, firmware, tamper).
    Status,
    /// Heartbeats.
    Heartbeat,
    /// The Last Will the broker publishes when a device vanishes (unsealed marker).
    Will,
}

impl UpChannel {
    /// The topic segment for this channel.
    pub const fn as_str(self) -> &'static str {
        match self {
            UpChannel::Telemetry => "telemetry",
            UpChannel::Event => "event",
            UpChannel::Status => "status",
            UpChannel::Heartbeat => "hb",
            UpChannel::Will => "will",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "telemetry" => UpChannel::Telemetry,
            "event" => UpChannel::Event,
            "status" => UpChannel::Status,
            "hb" => UpChannel::Heartbeat,
            "will" => UpChannel::Will,
            _ => return None,
        })
    }
}

/// Channels the gateway publishes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownChannel {
    /// Application-level acknowledgement of a journaled frame.
    Ack,
    /// Commands (switch, dim, ...).
    Cmd,
    /// Configuration (heartbeat interval, thresholds).
    Config,
}

impl DownChannel {
    /// The topic segment for this channel.
    pub const fn as_str(self) -> &'static str {
        match self {
            DownChannel::Ack => "ack",
            DownChannel::Cmd => "cmd",
            DownChannel::Config => "config",
        }
    }
}

/// Why a topic is not a valid uplink topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Does not start with `linli/v1/`.
    WrongPrefix,
    /// Not `{device}/up/{channel}` after the prefix.
    WrongShape,
    /// Device id empty, too long or with characters outside `[A-Za-z0-9._-]`.
    BadDeviceId,
    /// Unknown channel name.
    UnknownChannel,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::WrongPrefix => "topic does not start with linli/v1/",
            TopicError::WrongShape => "topic is not linli/v1/{device}/up/{channel}",
            TopicError::BadDeviceId => "device id must be 1-64 characters of [A-Za-z0-9._-]",
            TopicError::UnknownChannel => "unknown uplink channel",
        })
    }
}

/// True when `id` is a valid device id: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_DEVICE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Splits an uplink topic into device id and channel.
pub fn parse_uplink(topic: &str) -> Result<(&str, UpChannel), TopicError> {
    let rest = topic.strip_prefix(PREFIX).ok_or(TopicError::WrongPrefix)?;
    let mut parts = rest.split('/');
    let (Some(device), Some("up"), Some(channel), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TopicError::WrongShape);
    };
    if !is_valid_device_id(device) {
        return Err(TopicError::BadDeviceId);
    }
    let channel = UpChannel::parse(channel).ok_or(TopicError::UnknownChannel)?;
    Ok((device, channel))
}

/// Writes the uplink topic of `device` on `channel`.
pub fn write_uplink(w: &mut impl fmt::Write, device: &str, channel: UpChannel) -> fmt::Result {
    write!(w, "{PREFIX}{device}/up/{}", channel.as_str())
}

/// Writes the downlink topic of `device` on `channel`.
pub fn write_downlink(w: &mut impl fmt::Write, device: &str, channel: DownChannel) -> fmt::Result {
    write!(w, "{PREFIX}{device}/down/{}", channel.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_channel() {
        for ch in [
            UpChannel::Telemetry,
            UpChannel::Event,
            UpChannel::Status,
            UpChannel::Heartbeat,
            UpChannel::Will,
        ] {
            let mut s = Buf::default();
            write_uplink(&mut s, "pendant-7", ch).unwrap();
            assert_eq!(parse_uplink(s.as_str()), Ok(("pendant-7", ch)));
        }
    }

    #[test]
    fn rejects_bad_topics_with_distinct_reasons() {
        assert_eq!(
            parse_uplink("other/v1/a/up/hb"),
            Err(TopicError::WrongPrefix)
        );
        assert_eq!(
            parse_uplink("linli/v1/a/down/ack"),
            Err(TopicError::WrongShape)
        );
        assert_eq!(
            parse_uplink("linli/v1/a/up/hb/x"),
            Err(TopicError::WrongShape)
        );
        assert_eq!(
            parse_uplink("linli/v1//up/hb"),
            Err(TopicError::BadDeviceId)
        );
        assert_eq!(
            parse_uplink("linli/v1/a b/up/hb"),
            Err(TopicError::BadDeviceId)
        );
        assert_eq!(
            parse_uplink("linli/v1/a/up/nope"),
            Err(TopicError::UnknownChannel)
        );
        let long =
            "linli/v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/up/hb";
        assert_eq!(parse_uplink(long), Err(TopicError::BadDeviceId));
    }

    #[test]
    fn formats_downlink() {
        let mut s = Buf::default();
        write_downlink(&mut s, "lamp-1", DownChannel::Ack).unwrap();
        assert_eq!(s.as_str(), "linli/v1/lamp-1/down/ack");
    }

    #[derive(Default)]
    struct Buf {
        b: [u8; 32],
        n: usize,
    }
    impl Buf {
        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.b[..self.n]).unwrap()
        }
    }
    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.n + s.len();
            self.b
                .get_mut(self.n..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }
}
