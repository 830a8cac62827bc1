//! MD5 as the two APIs spell it: Cloud Storage's `md5Hash` is base64 of the digest, ShareFile's
//! `Hash` is hex.

use base64::{Engine, engine::general_purpose::STANDARD};
use md5::{Digest, Md5};

/// Hex MD5 of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    to_hex(&Md5::digest(bytes))
}

/// The hex form of a base64 MD5, or `None` when it is not base64 of 16 bytes.
pub fn hex_of_base64(b64: &str) -> Option<String> {
    let raw = STANDARD.decode(b64.trim()).ok()?;
    (raw.len() == 16).then(|| to_hex(&raw))
}

fn to_hex(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_one_digest_agree() {
        // RFC 1321's test vector for "abc".
        assert_eq!(hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(hex_of_base64("kAFQmDzST7DWlj99KOF/cg==").as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
        assert_eq!(hex_of_base64("not base64"), None);
        assert_eq!(hex_of_base64("YWJj"), None);
    }
}
