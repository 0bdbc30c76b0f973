//! The tenant's token-signing keys: RSA 2048, generated at start, RS256, each with a `kid`
//! published in the JWKS. Rotation adds a key and signs with it; the old one stays published
//! until retired, as Entra does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::EmulatorError;

/// One RSA signing key.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Modulus and exponent, base64url (the JWK `n` and `e`).
    n: String,
    e: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    /// A fresh RSA 2048 key.
    pub fn generate() -> Result<Self, EmulatorError> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| EmulatorError::Key(e.to_string()))?;
        let der = private
            .to_pkcs1_der()
            .map_err(|e| EmulatorError::Key(e.to_string()))?;
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(n.as_bytes())[..20]);
        let decoding = DecodingKey::from_rsa_components(&n, &e)
            .map_err(|err| EmulatorError::Key(err.to_string()))?;
        Ok(Self {
            kid,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding,
            n,
            e,
        })
    }

    /// Signs `claims` as an RS256 JWT with this key's `kid`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, EmulatorError> {
        self.sign_as(&self.kid, claims)
    }

    /// Signs `claims` with this key, naming `kid` in the header (for forged tokens).
    pub fn sign_as<C: Serialize>(&self, kid: &str, claims: &C) -> Result<String, EmulatorError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| EmulatorError::Key(e.to_string()))
    }

    /// This key as a JWK, in the shape Entra publishes (`kty`, `use`, `kid`, `n`, `e`,
    /// `issuer`; no `alg`).
    pub fn jwk(&self, issuer: &str) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
            "issuer": issuer,
        })
    }
}

/// The published keys; the last one signs.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    pub fn generate() -> Result<Self, EmulatorError> {
        Ok(Self {
            keys: vec![SigningKey::generate()?],
        })
    }

    pub fn current(&self) -> Option<&SigningKey> {
        self.keys.last()
    }

    /// Adds a key that signs from now on; returns its `kid`.
    pub fn rotate(&mut self) -> Result<String, EmulatorError> {
        let key = SigningKey::generate()?;
        let kid = key.kid.clone();
        self.keys.push(key);
        Ok(kid)
    }

    /// Stops publishing every key but the current one.
    pub fn retire_old(&mut self) {
        let keep = self.keys.len().saturating_sub(1);
        self.keys.drain(..keep);
    }

    pub fn jwks(&self, issuer: &str) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk(issuer)).collect::<Vec<_>>() })
    }

    /// Verifies an RS256 token signed by a published key for one of `audiences` from
    /// `issuer`; times are the caller's to check against its clock.
    pub fn verify(&self, token: &str, issuer: &str, audiences: &[&str]) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let kid = header.kid?;
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_published_keys_until_retired() {
        let mut keys = KeySet::generate().unwrap();
        let claims = json!({"iss": "https://x/t/v2.0", "aud": "a", "exp": 4_000_000_000_i64});
        let old = keys.current().unwrap().sign(&claims).unwrap();
        assert!(keys.verify(&old, "https://x/t/v2.0", &["a"]).is_some());
        assert!(keys.verify(&old, "https://x/t/v2.0", &["b"]).is_none());
        assert!(keys.verify(&old, "https://y/t/v2.0", &["a"]).is_none());
        let kid = keys.rotate().unwrap();
        let jwks = keys.jwks("https://x/t/v2.0");
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][1]["kid"], kid.as_str());
        assert!(keys.verify(&old, "https://x/t/v2.0", &["a"]).is_some());
        keys.retire_old();
        assert!(keys.verify(&old, "https://x/t/v2.0", &["a"]).is_none());
    }
}
