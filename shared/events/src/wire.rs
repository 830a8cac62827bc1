//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body.

use thiserror::Error;

pub const MAGIC: u8 = 0;
pub const HEADER_LEN: usize = 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("record is {0} bytes, shorter than the 5-byte wire-format header")]
    TooShort(usize),
    #[error("record starts with byte {0:#04x}, not the wire-format magic byte 0")]
    BadMagic(u8),
}

/// Prefixes an Avro body with the wire-format header.
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits a framed record into its schema id and Avro body.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(FrameError::BadMagic(bytes[0]));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn frame_then_unframe_is_identity(id in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let framed = frame(id, &body);
            prop_assert_eq!(unframe(&framed), Ok((id, body.as_slice())));
        }

        #[test]
        fn unframe_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = unframe(&bytes);
        }
    }

    #[test]
    fn rejects_short_and_foreign_records() {
        assert_eq!(unframe(&[0, 0, 0]), Err(FrameError::TooShort(3)));
        assert_eq!(unframe(b"{\"json\":1}"), Err(FrameError::BadMagic(b'{')));
    }
}
