//! OpenID Connect ID tokens (Core §2): signed RS256, the one algorithm every relying party
//! must accept (Core §15.1), with an RSA key published in the JWKS beside the Ed25519 keys and
//! rotated with them. The RSA key signs nothing else; access tokens stay EdDSA.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::{SigningAlg, SigningKeyRecord};
use super::tokens::KeyError;
use crate::protocol::oauth::{IdTokenClaims, Jwk};

/// RSA modulus size: NIST's minimum through 2030, and quick to generate.
const RSA_BITS: usize = 2048;

/// An RSA key's public half as the store keeps it (`public_key`).
#[derive(Serialize, Deserialize)]
struct RsaPublic {
    n: String,
    e: String,
}

fn encoding(e: impl std::fmt::Display) -> KeyError {
    KeyError::Encoding(e.to_string())
}

/// A freshly generated RSA key for ID tokens, as the store keeps it.
pub fn generate_id_token_key(now: DateTime<Utc>) -> Result<SigningKeyRecord, KeyError> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(encoding)?;
    let public = RsaPublic {
        n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    };
    let der = key.to_pkcs8_der().map_err(encoding)?;
    // RFC 7638's members in order: the key's thumbprint, shortened as the Ed25519 kids are.
    let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, public.e, public.n);
    Ok(SigningKeyRecord {
        kid: URL_SAFE_NO_PAD.encode(&Sha256::digest(canonical.as_bytes())[..12]),
        alg: SigningAlg::RS256,
        private_pkcs8: der.as_bytes().to_vec(),
        public_key: serde_json::to_string(&public).map_err(encoding)?,
        created_at: now,
        retired_at: None,
        publish_until: None,
    })
}

/// The published JWK of a stored RSA key.
pub(super) fn rsa_jwk(record: &SigningKeyRecord) -> Result<Jwk, KeyError> {
    let public: RsaPublic = serde_json::from_str(&record.public_key).map_err(encoding)?;
    Ok(Jwk {
        kty: "RSA".into(),
        crv: String::new(),
        x: String::new(),
        n: public.n,
        e: public.e,
        kid: record.kid.clone(),
        alg: "RS256".into(),
        use_: "sig".into(),
    })
}

/// The current RSA key, ready to sign (PKCS#1 for `ring`, which `jsonwebtoken` signs with).
pub(super) struct IdSigner {
    kid: String,
    key: EncodingKey,
}

impl IdSigner {
    pub(super) fn from_record(record: &SigningKeyRecord) -> Result<Self, KeyError> {
        let key = RsaPrivateKey::from_pkcs8_der(&record.private_pkcs8).map_err(encoding)?;
        let pkcs1 = key.to_pkcs1_der().map_err(encoding)?;
        Ok(Self {
            kid: record.kid.clone(),
            key: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
        })
    }

    pub(super) fn sign(&self, claims: &IdTokenClaims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(encoding)
    }
}

/// Core §3.1.3.6 `at_hash`: the left half of the access token's SHA-256 (RS256's hash),
/// base64url.
pub fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}
