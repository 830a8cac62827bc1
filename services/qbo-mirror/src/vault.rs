//! Refresh tokens at rest: AES-256-GCM with a key from the environment (`TOKEN_KEY`, 32 bytes in
//! base64; the dev stack generates one at start-up). Each token is sealed with a fresh random
//! nonce and the realm id as associated data, so a sealed token cannot be moved to another realm.

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VaultError {
    #[error("TOKEN_KEY must be 32 bytes in base64")]
    BadKey,
    #[error("a sealed token could not be opened (another key, or another realm's token)")]
    Open,
    #[error("sealing failed")]
    Seal,
}

pub struct Vault {
    key: LessSafeKey,
    random: SystemRandom,
}

impl Vault {
    pub fn new(key: &SecretString) -> Result<Self, VaultError> {
        let bytes = STANDARD.decode(key.expose_secret().trim()).map_err(|_| VaultError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| VaultError::BadKey)?;
        Ok(Self { key: LessSafeKey::new(unbound), random: SystemRandom::new() })
    }

    /// `nonce | ciphertext | tag`.
    pub fn seal(&self, realm: &str, token: &str) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| VaultError::Seal)?;
        let mut data = token.as_bytes().to_vec();
        self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(realm.as_bytes()), &mut data).map_err(|_| VaultError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(out)
    }

    pub fn open(&self, realm: &str, sealed: &[u8]) -> Result<SecretString, VaultError> {
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::Open);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Open)?;
        let mut data = data.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(realm.as_bytes()), &mut data).map_err(|_| VaultError::Open)?;
        String::from_utf8(plain.to_vec()).map(SecretString::from).map_err(|_| VaultError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::new(&SecretString::from(STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_stay_bound_to_their_realm() {
        let v = vault();
        let sealed = v.seal("realm-1", "RT-secret").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"RT-secret"), "not stored in the clear");
        assert_eq!(v.open("realm-1", &sealed).unwrap().expose_secret(), "RT-secret");
        assert!(v.open("realm-2", &sealed).is_err(), "another realm's token does not open");
        assert_ne!(v.seal("realm-1", "RT-secret").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn a_bad_key_is_refused() {
        assert!(Vault::new(&SecretString::from("c2hvcnQ=".to_string())).is_err());
    }
}
