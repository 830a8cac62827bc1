//! Signing keys, generated in memory at start-up (never stored): RSA 2048 for RS256 and P-256 for
//! ES256. Each key's `kid` is its RFC 7638 JWK thumbprint.

use std::fmt;

use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    rsa::{self, KeySize},
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
#[error("{what} failed in the crypto library")]
pub struct CryptoError {
    what: &'static str,
}

fn crypto(what: &'static str) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> CryptoError {
    move |_| CryptoError { what }
}

/// The JWS algorithms the issuer signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Alg {
    #[default]
    RS256,
    ES256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Alg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(Alg::RS256),
            "ES256" => Ok(Alg::ES256),
            other => Err(format!("unsupported algorithm {other:?}: use RS256 or ES256")),
        }
    }
}

enum Pair {
    Rsa(rsa::KeyPair),
    Ec(EcdsaKeyPair),
}

/// A private key with its public JWK.
pub struct SigningKey {
    alg: Alg,
    kid: String,
    jwk: Value,
    pair: Pair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate(alg: Alg) -> Result<Self, CryptoError> {
        let (pair, public) = match alg {
            Alg::RS256 => {
                let pair = rsa::KeyPair::generate(KeySize::Rsa2048).map_err(crypto("RSA key generation"))?;
                let public = pair.public_key();
                let thumbprint_input = json!({
                    "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
                });
                (Pair::Rsa(pair), thumbprint_input)
            }
            Alg::ES256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(crypto("P-256 key generation"))?;
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let thumbprint_input = json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": B64.encode(&point[1..33]),
                    "y": B64.encode(&point[33..65]),
                });
                (Pair::Ec(pair), thumbprint_input)
            }
        };
        // RFC 7638: SHA-256 of the required members, lexicographically ordered, no whitespace
        // (serde_json's map is ordered by key).
        let kid = B64.encode(digest::digest(&digest::SHA256, public.to_string().as_bytes()));
        let mut jwk = public;
        let object = jwk.as_object_mut().expect("a JSON object");
        object.insert("kid".into(), json!(kid));
        object.insert("alg".into(), json!(alg.as_str()));
        object.insert("use".into(), json!("sig"));
        Ok(Self { alg, kid, jwk, pair })
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty`, `kid`, `alg`, `use` and the key material).
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The JWS signature of `message`: RSASSA-PKCS1-v1_5 with SHA-256, or ECDSA P-256 with SHA-256
    /// as the fixed-length `r || s` JWS requires.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature).map_err(crypto("RSA signing"))?;
                Ok(signature)
            }
            Pair::Ec(pair) => Ok(pair.sign(&rng, message).map_err(crypto("ECDSA signing"))?.as_ref().to_vec()),
        }
    }

    /// Checks `signature` with the public key.
    #[cfg(test)]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use aws_lc_rs::signature::{self, UnparsedPublicKey};
        match &self.pair {
            Pair::Rsa(pair) => UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
                .verify(message, signature)
                .is_ok(),
            Pair::Ec(pair) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_publish_their_thumbprint_as_kid() {
        for alg in [Alg::RS256, Alg::ES256] {
            let key = SigningKey::generate(alg).unwrap();
            let signature = key.sign(b"header.payload").unwrap();
            assert!(key.verify(b"header.payload", &signature), "{alg}");
            assert!(!key.verify(b"header.tampered", &signature), "{alg}");
            assert_eq!(key.jwk()["kid"], key.kid());
            assert_eq!(key.jwk()["alg"], alg.as_str());
            assert_eq!(key.kid().len(), 43, "base64url of 32 bytes");
            let other = SigningKey::generate(alg).unwrap();
            assert_ne!(key.kid(), other.kid());
        }
        let ec = SigningKey::generate(Alg::ES256).unwrap();
        assert_eq!(ec.sign(b"m").unwrap().len(), 64, "JWS wants r || s");
    }
}
