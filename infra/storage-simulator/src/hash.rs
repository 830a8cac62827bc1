//! The checksums GCS reports: `md5Hash` (base64 of the MD5) and `crc32c` (base64 of the
//! big-endian CRC-32C, Castagnoli), and the percent-encoding of object names in links.

use base64::{Engine, engine::general_purpose::STANDARD};
use md5::{Digest, Md5};

pub fn md5_base64(bytes: &[u8]) -> String {
    STANDARD.encode(Md5::digest(bytes))
}

/// CRC-32C, bit by bit: simulated objects are small, so no table.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn crc32c_base64(bytes: &[u8]) -> String {
    STANDARD.encode(crc32c(bytes).to_be_bytes())
}

/// Percent-encodes everything but RFC 3986 unreserved characters (`/` too, as GCS wants in
/// `.../o/{object}`).
pub fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c_base64(b""), "AAAAAA==");
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(md5_base64(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
        assert_eq!(encode_component("users/u 1/a.jpg"), "users%2Fu%201%2Fa.jpg");
    }
}
