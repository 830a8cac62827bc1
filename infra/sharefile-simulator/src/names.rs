//! Names and hashes: which item names ShareFile refuses, the name a duplicate upload gets, and
//! the MD5 the API shows as `Hash`.

use md5::{Digest, Md5};

use crate::items::StoreError;

/// Lower-case hex MD5 of the bytes.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Empty names and the characters Windows refuses in file names are invalid.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bad = |c: char| matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|');
    if name.trim().is_empty() || name.chars().any(bad) {
        return Err(StoreError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// `report.pdf` → `report (1).pdf`, `report (2).pdf`, ... whichever is not `taken` first.
pub fn next_free_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    (1..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| !taken(candidate))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_known_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn names() {
        assert!(validate_name("Acme, Inc.").is_ok());
        assert!(validate_name("a:b").is_err() && validate_name("  ").is_err());
        let taken = |n: &str| ["a (1).pdf", "b"].contains(&n);
        assert_eq!(next_free_name("a.pdf", taken), "a (2).pdf");
        assert_eq!(next_free_name("b", taken), "b (1)");
        assert_eq!(next_free_name(".env", taken), ".env (1)");
    }
}
