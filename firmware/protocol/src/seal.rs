//! Sealed frames: a small clear header plus a ChaCha20-Poly1305 ciphertext under a
//! per-device key. This is how the gateway knows who sent a frame and that nobody
//! changed it; replay protection lives in [`crate::replay`].
//!
//! Frame layout (all integers little-endian):
//!
//! ```text
//! 0       1       2..4            4..8       8..n-16      n-16..n
//! version key_id  key check (2 B) counter    ciphertext   Poly1305 tag
//! ```
//!
//! The nonce is `[class, key_id, 0, 0, 0, 0, 0, 0, counter]`, so uplinks, acks and
//! commands never share a nonce under one key. The associated data is the 8-byte header
//! followed by the device id, binding a frame to the device whose topic carries it. The
//! key check value lets the gateway tell "sealed with another key" from "tampered with".

use core::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use crate::codec::SCHEMA_VERSION;

/// Bytes of clear header at the start of every frame.
pub const HEADER_LEN: usize = 8;
/// Bytes of authentication tag at the end of every frame.
pub const TAG_LEN: usize = 16;
/// Header plus tag: a frame is always this much longer than its body.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Who sealed a frame and why; part of the nonce so the spaces never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameClass {
    /// Device → gateway.
    Uplink = 0,
    /// Gateway → device acknowledgement (counter = the acknowledged uplink counter).
    Ack = 1,
    /// Gateway → device command or configuration.
    Command = 2,
}

/// A device's 256-bit key, ready to seal and open.
#[derive(Clone)]
pub struct DeviceKey {
    cipher: ChaCha20Poly1305,
    check: [u8; 2],
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: &[u8; 32]) -> Self {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(bytes));
        // Key check value: the tag of an empty message under a nonce no frame uses.
        let mut empty = [0u8; 0];
        let check = match cipher.encrypt_in_place_detached(
            Nonce::from_slice(&[0xFF; 12]),
            b"linli-key-check",
            &mut empty,
        ) {
            Ok(tag) => [tag[0], tag[1]],
            Err(_) => [0, 0],
        };
        DeviceKey { cipher, check }
    }

    /// Two bytes that identify this key without revealing it.
    pub fn check_value(&self) -> [u8; 2] {
        self.check
    }
}

/// The clear part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Schema version of the body.
    pub version: u8,
    /// Which of the device's keys sealed it.
    pub key_id: u8,
    /// Key check value of that key.
    pub check: [u8; 2],
    /// Wrapping frame counter.
    pub counter: u32,
}

impl Header {
    /// Reads the header of `frame` without authenticating anything.
    pub fn parse(frame: &[u8]) -> Result<Header, OpenError> {
        if frame.len() < OVERHEAD {
            return Err(OpenError::Truncated);
        }
        let h = Header {
            version: frame[0],
            key_id: frame[1],
            check: [frame[2], frame[3]],
            counter: u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]),
        };
        if h.version != SCHEMA_VERSION {
            return Err(OpenError::UnsupportedVersion(h.version));
        }
        Ok(h)
    }

    fn write(&self, out: &mut [u8]) {
        out[0] = self.version;
        out[1] = self.key_id;
        out[2..4].copy_from_slice(&self.check);
        out[4..8].copy_from_slice(&self.counter.to_le_bytes());
    }
}

/// Why a frame could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// `out` cannot hold body + [`OVERHEAD`].
    BufferTooSmall,
    /// The cipher refused (body too long).
    Cipher,
}

/// Why a frame was rejected. Each cause has its own variant so the gateway can count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than header + tag.
    Truncated,
    /// Header names a schema version this side does not speak.
    UnsupportedVersion(u8),
    /// Sealed with a key other than the one registered for this device and key id.
    WrongKey,
    /// Authentication failed: header, body, tag or device id was altered.
    Tampered,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SealError::BufferTooSmall => "output buffer too small for the sealed frame",
            SealError::Cipher => "cipher refused the body",
        })
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Truncated => f.write_str("frame shorter than header and tag"),
            OpenError::UnsupportedVersion(v) => write!(f, "unsupported schema version {v}"),
            OpenError::WrongKey => f.write_str("frame sealed with another key"),
            OpenError::Tampered => f.write_str("authentication tag does not match"),
        }
    }
}

fn nonce(class: FrameClass, key_id: u8, counter: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[0] = class as u8;
    n[1] = key_id;
    n[8..12].copy_from_slice(&counter.to_le_bytes());
    n
}

/// Feeds header and device id to Poly1305 as associated data without allocating.
fn aad<'a>(header: &'a [u8], device_id: &'a str, buf: &'a mut [u8; HEADER_LEN + 64]) -> &'a [u8] {
    let id = device_id.as_bytes();
    let n = HEADER_LEN + id.len().min(64);
    buf[..HEADER_LEN].copy_from_slice(&header[..HEADER_LEN]);
    buf[HEADER_LEN..n].copy_from_slice(&id[..n - HEADER_LEN]);
    &buf[..n]
}

/// Seals `body` for `device_id` into `out`; returns the frame length.
pub fn seal(
    key: &DeviceKey,
    key_id: u8,
    class: FrameClass,
    device_id: &str,
    counter: u32,
    body: &[u8],
    out: &mut [u8],
) -> Result<usize, SealError> {
    let total = body.len() + OVERHEAD;
    if out.len() < total {
        return Err(SealError::BufferTooSmall);
    }
    let header = Header {
        version: SCHEMA_VERSION,
        key_id,
        check: key.check,
        counter,
    };
    header.write(out);
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    let (ct, tail) = rest.split_at_mut(body.len());
    ct.copy_from_slice(body);
    let mut ad = [0u8; HEADER_LEN + 64];
    let tag = key
        .cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce(class, key_id, counter)),
            aad(head, device_id, &mut ad),
            ct,
        )
        .map_err(|_| SealError::Cipher)?;
    tail[..TAG_LEN].copy_from_slice(&tag);
    Ok(total)
}

/// Authenticates and decrypts `frame` in place; returns its header and the body.
pub fn open<'f>(
    key: &DeviceKey,
    class: FrameClass,
    device_id: &str,
    frame: &'f mut [u8],
) -> Result<(Header, &'f [u8]), OpenError> {
    let header = Header::parse(frame)?;
    if header.check != key.check {
        return Err(OpenError::WrongKey);
    }
    let len = frame.len();
    let (head, rest) = frame.split_at_mut(HEADER_LEN);
    let (ct, tag) = rest.split_at_mut(len - OVERHEAD);
    let mut ad = [0u8; HEADER_LEN + 64];
    key.cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&nonce(class, header.key_id, header.counter)),
            aad(head, device_id, &mut ad),
            ct,
            Tag::from_slice(tag),
        )
        .map_err(|_| OpenError::Tampered)?;
    Ok((header, ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [7; 32];
    const K2: [u8; 32] = [9; 32];

    fn sealed(key: &[u8; 32], counter: u32) -> ([u8; 64], usize) {
        let mut out = [0u8; 64];
        let n = seal(
            &DeviceKey::new(key),
            1,
            FrameClass::Uplink,
            "pendant-1",
            counter,
            b"hello body",
            &mut out,
        )
        .unwrap();
        (out, n)
    }

    #[test]
    fn seal_then_open_round_trips() {
        let (mut f, n) = sealed(&K1, 42);
        let (h, body) = open(
            &DeviceKey::new(&K1),
            FrameClass::Uplink,
            "pendant-1",
            &mut f[..n],
        )
        .unwrap();
        assert_eq!(h.counter, 42);
        assert_eq!(h.key_id, 1);
        assert_eq!(body, b"hello body");
    }

    #[test]
    fn ciphertext_hides_the_body() {
        let (f, n) = sealed(&K1, 1);
        assert!(!f[..n].windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let (f, n) = sealed(&K1, 5);
        let key = DeviceKey::new(&K1);
        for byte in 0..n {
            for bit in 0..8 {
                let mut g = f;
                g[byte] ^= 1 << bit;
                let r = open(&key, FrameClass::Uplink, "pendant-1", &mut g[..n]);
                assert!(r.is_err(), "flip at byte {byte} bit {bit} accepted");
                if byte >= 4 {
                    assert_eq!(r.unwrap_err(), OpenError::Tampered);
                }
            }
        }
    }

    #[test]
    fn distinct_errors_for_truncated_wrong_key_other_device_and_class() {
        let (mut f, n) = sealed(&K1, 5);
        let k1 = DeviceKey::new(&K1);
        assert_eq!(
            open(&k1, FrameClass::Uplink, "pendant-1", &mut f[..OVERHEAD - 1]).unwrap_err(),
            OpenError::Truncated
        );
        assert_eq!(
            open(
                &DeviceKey::new(&K2),
                FrameClass::Uplink,
                "pendant-1",
                &mut f[..n]
            )
            .unwrap_err(),
            OpenError::WrongKey
        );
        let (mut f, n) = sealed(&K1, 5);
        assert_eq!(
            open(&k1, FrameClass::Uplink, "pendant-2", &mut f[..n]).unwrap_err(),
            OpenError::Tampered,
            "a frame moved to another device's topic must not open"
        );
        let (mut f, n) = sealed(&K1, 5);
        assert_eq!(
            open(&k1, FrameClass::Ack, "pendant-1", &mut f[..n]).unwrap_err(),
            OpenError::Tampered
        );
        let (mut f, n) = sealed(&K1, 5);
        f[0] = 9;
        assert_eq!(
            open(&k1, FrameClass::Uplink, "pendant-1", &mut f[..n]).unwrap_err(),
            OpenError::UnsupportedVersion(9)
        );
    }

    #[test]
    fn small_buffer_is_an_error_not_a_panic() {
        let mut out = [0u8; 20];
        let r = seal(
            &DeviceKey::new(&K1),
            0,
            FrameClass::Uplink,
            "d",
            0,
            b"abc",
            &mut out,
        );
        assert_eq!(r, Err(SealError::BufferTooSmall));
    }
}
