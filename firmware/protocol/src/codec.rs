//! Compact binary encoding of [`Uplink`] and [`Downlink`] with postcard.
//!
//! Owns the byte layout inside a sealed frame; does not own the frame header or the
//! cipher (see [`crate::seal`]). The schema version travels in the frame header.

use core::fmt;

use crate::report::{Downlink, Uplink};

/// Schema version written in every frame header. Bumped only if an existing variant
/// ever had to change, which append-only evolution avoids.
pub const SCHEMA_VERSION: u8 = 1;

/// Largest encoded uplink body; every report fits well inside.
pub const MAX_BODY_LEN: usize = 64;

/// Why a body could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small.
    BufferTooSmall,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The body ended early.
    Truncated,
    /// A report or enum variant this decoder does not know (a newer device?).
    UnknownVariant,
    /// Bytes left over after a complete message.
    TrailingBytes,
    /// Anything else malformed (bad varint, bad bool, ...).
    Malformed,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small")
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Truncated => "body truncated",
            DecodeError::UnknownVariant => "unknown report variant",
            DecodeError::TrailingBytes => "trailing bytes after body",
            DecodeError::Malformed => "malformed body",
        })
    }
}

fn map_decode(e: postcard::Error) -> DecodeError {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
        // serde reports an out-of-range variant index as a custom error.
        postcard::Error::DeserializeBadEnum | postcard::Error::SerdeDeCustom => {
            DecodeError::UnknownVariant
        }
        _ => DecodeError::Malformed,
    }
}

fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(map_decode)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes)
    }
}

/// Encodes `uplink` into `buf`, returning the used prefix.
pub fn encode_uplink<'b>(uplink: &Uplink, buf: &'b mut [u8]) -> Result<&'b mut [u8], EncodeError> {
    postcard::to_slice(uplink, buf).map_err(|_| EncodeError::BufferTooSmall)
}

/// Decodes a complete uplink body.
pub fn decode_uplink(bytes: &[u8]) -> Result<Uplink, DecodeError> {
    decode(bytes)
}

/// Encodes `downlink` into `buf`, returning the used prefix.
pub fn encode_downlink<'b>(
    downlink: &Downlink,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], EncodeError> {
    postcard::to_slice(downlink, buf).map_err(|_| EncodeError::BufferTooSmall)
}

/// Decodes a complete downlink body.
pub fn decode_downlink(bytes: &[u8]) -> Result<Downlink, DecodeError> {
    decode(bytes)
}
