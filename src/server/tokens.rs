//! Token signing and validation. The key ring lives in server state (never a static) and is
//! loaded from the store; validating a JWT touches only memory, never the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::id_token::{IdSigner, generate_id_token_key, rsa_jwk};
use super::store::{SigningAlg, SigningKeyRecord, Store, StoreError};
use crate::protocol::audit::Actor;
use crate::protocol::jws;
use crate::protocol::oauth::{AccessClaims, IdTokenClaims, Jwk, JwkSet};

/// Why a token was refused. The variants are for logs and tests; callers answer every one
/// with the same generic 401 so a prober learns nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("missing claim")]
    MissingClaim,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("key encoding: {0}")]
    Encoding(String),
}

struct PublishedKey {
    kid: String,
    jwk: Jwk,
    /// The Ed25519 key that verifies access tokens; `None` for an RSA key (it signs only ID
    /// tokens) or a key that is not a curve point.
    verifying: Option<VerifyingKey>,
}

struct Ring {
    signing_kid: String,
    signing: SigningKey,
    /// The current RSA key, which signs ID tokens; `None` only until the first is made.
    id_signer: Option<IdSigner>,
    published: Vec<PublishedKey>,
}

/// The server's signing keys: one current, plus retired ones still published.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<RwLock<Ring>>,
    /// Tokens already verified (signature, `alg`, `kid`, issuer, audience), by SHA-256 of the
    /// token with the issuer and audience it was checked for. A token presented again (a
    /// resource server's own bearer token, a token introspected twice, a console's next call)
    /// skips the Ed25519 check; its times are still checked on every use, and revocation is
    /// the revocation index's. Cleared whenever the published keys change.
    verified: Arc<Mutex<HashMap<[u8; 32], AccessClaims>>>,
}

/// The most verified tokens remembered; past it, expired ones are dropped, then all.
const VERIFIED_CAPACITY: usize = 65_536;

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing(<redacted>)")
    }
}

/// A freshly generated Ed25519 key as the store keeps it.
pub fn generate_signing_key(now: DateTime<Utc>) -> Result<SigningKeyRecord, KeyError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| KeyError::Encoding(e.to_string()))?;
    let public = key.verifying_key().to_bytes();
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
    Ok(SigningKeyRecord {
        kid,
        alg: SigningAlg::EdDSA,
        private_pkcs8: der.as_bytes().to_vec(),
        public_key: URL_SAFE_NO_PAD.encode(public),
        created_at: now,
        retired_at: None,
        publish_until: None,
    })
}

/// The key of `alg` that signs now.
fn current(keys: &[SigningKeyRecord], alg: SigningAlg) -> Option<&SigningKeyRecord> {
    keys.iter().find(|k| k.retired_at.is_none() && k.alg == alg)
}

fn published_key(k: &SigningKeyRecord) -> Result<PublishedKey, KeyError> {
    Ok(match k.alg {
        SigningAlg::EdDSA => PublishedKey {
            kid: k.kid.clone(),
            jwk: Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: k.public_key.clone(),
                n: String::new(),
                e: String::new(),
                kid: k.kid.clone(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            },
            verifying: parse_ed25519(&k.public_key)
                .map_err(|e| KeyError::Encoding(e.to_string()))?,
        },
        SigningAlg::RS256 => PublishedKey {
            kid: k.kid.clone(),
            jwk: rsa_jwk(k)?,
            verifying: None,
        },
    })
}

fn build_ring(keys: &[SigningKeyRecord]) -> Result<Option<Ring>, KeyError> {
    let Some(signing) = current(keys, SigningAlg::EdDSA) else {
        return Ok(None);
    };
    // Ed25519 keys first: they sign what most readers of the JWKS verify.
    let mut ordered: Vec<&SigningKeyRecord> = keys.iter().collect();
    ordered.sort_by_key(|k| k.alg != SigningAlg::EdDSA);
    let published = ordered
        .into_iter()
        .map(published_key)
        .collect::<Result<Vec<_>, KeyError>>()?;
    Ok(Some(Ring {
        signing_kid: signing.kid.clone(),
        signing: SigningKey::from_pkcs8_der(&signing.private_pkcs8)
            .map_err(|e| KeyError::Encoding(e.to_string()))?,
        id_signer: current(keys, SigningAlg::RS256)
            .map(IdSigner::from_record)
            .transpose()?,
        published,
    }))
}

impl KeyRing {
    /// Loads the published keys, generating the first signing keys on a new database (and the
    /// first RSA key on one from before ID tokens).
    pub async fn load(store: &dyn Store, now: DateTime<Utc>) -> Result<Self, KeyError> {
        let mut keys = store.published_keys(now).await?;
        let mut missing = Vec::new();
        if current(&keys, SigningAlg::EdDSA).is_none() {
            missing.push(generate_signing_key(now)?);
        }
        if current(&keys, SigningAlg::RS256).is_none() {
            missing.push(generate_id_token_key(now)?);
        }
        if !missing.is_empty() {
            store
                .rotate_signing_keys(&missing, now, Actor::system())
                .await?;
            keys = store.published_keys(now).await?;
        }
        let ring = build_ring(&keys)?
            .ok_or_else(|| KeyError::Encoding("no current signing key".into()))?;
        Ok(Self {
            inner: Arc::new(RwLock::new(ring)),
            verified: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Re-reads the keys (after a rotation by another process, or to drop expired ones).
    pub async fn reload(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<(), KeyError> {
        let keys = store.published_keys(now).await?;
        if let Some(ring) = build_ring(&keys)?
            && let Ok(mut guard) = self.inner.write()
        {
            let kids = |r: &Ring| {
                r.published
                    .iter()
                    .map(|k| k.kid.clone())
                    .collect::<Vec<_>>()
            };
            if kids(&guard) != kids(&ring)
                && let Ok(mut verified) = self.verified.lock()
            {
                verified.clear();
            }
            *guard = ring;
        }
        Ok(())
    }

    /// Signs claims with the current key.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        self.sign_with(None, claims).map(|(_, jws)| jws)
    }

    /// Signs claims with the current key under an explicit JWS `typ` (RFC 8725 §3.11);
    /// returns the key id and the compact JWS.
    pub fn sign_typed<C: Serialize>(
        &self,
        typ: &str,
        claims: &C,
    ) -> Result<(String, String), KeyError> {
        self.sign_with(Some(typ), claims)
    }

    fn sign_with<C: Serialize>(
        &self,
        typ: Option<&str>,
        claims: &C,
    ) -> Result<(String, String), KeyError> {
        let guard = self
            .inner
            .read()
            .map_err(|_| KeyError::Encoding("key ring poisoned".into()))?;
        let jws = jws::sign_eddsa(&guard.signing, Some(&guard.signing_kid), typ, claims)
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        Ok((guard.signing_kid.clone(), jws))
    }

    /// Signs an ID token with the current RSA key (RS256).
    pub fn sign_id_token(&self, claims: &IdTokenClaims) -> Result<String, KeyError> {
        let guard = self
            .inner
            .read()
            .map_err(|_| KeyError::Encoding("key ring poisoned".into()))?;
        guard
            .id_signer
            .as_ref()
            .ok_or_else(|| KeyError::Encoding("no RSA key to sign ID tokens".into()))?
            .sign(claims)
    }

    /// The JWKS document: Ed25519 keys first, then RSA.
    pub fn jwks(&self) -> JwkSet {
        let keys = match self.inner.read() {
            Ok(g) => g.published.iter().map(|k| k.jwk.clone()).collect(),
            Err(_) => Vec::new(),
        };
        JwkSet { keys }
    }

    pub fn current_kid(&self) -> Option<String> {
        self.inner.read().ok().map(|g| g.signing_kid.clone())
    }

    /// Validates an access token: algorithm (EdDSA only), `kid`, signature, issuer, audience,
    /// expiry and not-before against `now`.
    pub fn verify_access(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenError> {
        let digest: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(token.as_bytes());
            h.update([0]);
            h.update(issuer.as_bytes());
            h.update([0]);
            h.update(audience.as_bytes());
            h.finalize().into()
        };
        let known = self
            .verified
            .lock()
            .ok()
            .and_then(|v| v.get(&digest).cloned());
        if let Some(claims) = known {
            check_times(claims.exp, Some(claims.nbf), now)?;
            return Ok(claims);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let guard = self.inner.read().map_err(|_| TokenError::UnknownKey)?;
        let key = guard
            .published
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let claims: AccessClaims =
            verify_eddsa(token, key.verifying.as_ref(), Some(issuer), &[audience])?;
        drop(guard);
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_CAPACITY {
                let at = now.timestamp();
                verified.retain(|_, c| c.exp > at);
                if verified.len() >= VERIFIED_CAPACITY {
                    verified.clear();
                }
            }
            verified.insert(digest, claims.clone());
        }
        check_times(claims.exp, Some(claims.nbf), now)?;
        Ok(claims)
    }
}

/// An Ed25519 public key from its base64url encoding (a JWK's `x`): `Err` when it is not
/// base64url, `None` when it is not a point of the curve (a key that verifies nothing, as
/// `jsonwebtoken` treated it).
pub fn parse_ed25519(x: &str) -> Result<Option<VerifyingKey>, base64::DecodeError> {
    let bytes = URL_SAFE_NO_PAD.decode(x)?;
    Ok(<[u8; 32]>::try_from(bytes.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok()))
}

/// Agents' public keys, each parsed (base64url, then decompressed to a curve point) the first
/// time it verifies a client assertion, not on every one. Keyed by the key's own text, so an
/// entry can never be stale: a changed key is another entry.
#[derive(Clone, Default)]
pub struct AgentKeys {
    parsed: Arc<Mutex<HashMap<String, Option<VerifyingKey>>>>,
}

/// The most agents' keys remembered; past it, the cache starts again.
const AGENT_KEYS_CAPACITY: usize = 16_384;

impl std::fmt::Debug for AgentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentKeys")
    }
}

impl AgentKeys {
    /// The key `x` parsed (see [`parse_ed25519`]), from the cache when it was seen before.
    pub fn get(&self, x: &str) -> Result<Option<VerifyingKey>, base64::DecodeError> {
        if let Some(known) = self.parsed.lock().ok().and_then(|m| m.get(x).cloned()) {
            return Ok(known);
        }
        let key = parse_ed25519(x)?;
        if let Ok(mut parsed) = self.parsed.lock() {
            if parsed.len() >= AGENT_KEYS_CAPACITY {
                parsed.clear();
            }
            parsed.insert(x.to_owned(), key);
        }
        Ok(key)
    }
}

/// Verifies an EdDSA JWT's signature, issuer and audience (times are checked by the caller
/// against the injected clock). `key` is `None` for a key that is not a curve point: nothing
/// verifies against it.
///
/// The signature is checked here with `ed25519-dalek` and the parsed key (the same rule as
/// `ring`'s, which `jsonwebtoken` uses: `s` reduced, `R` recomputed and compared byte for
/// byte, cofactorless, about twice as fast with its vectorised backend); `jsonwebtoken` then
/// reads and checks the claims of the same signed bytes, as before.
pub fn verify_eddsa<C: DeserializeOwned>(
    token: &str,
    key: Option<&VerifyingKey>,
    issuer: Option<&str>,
    audience: &[&str],
) -> Result<C, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Algorithm);
    }
    // `jsonwebtoken` splits the same way: the signature after the last '.', the signed
    // message before it.
    let (message, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| TokenError::Signature)?;
    key.ok_or(TokenError::Signature)?
        .verify(message.as_bytes(), &signature)
        .map_err(|_| TokenError::Signature)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    // Checked just above, over exactly the bytes `decode` reads the claims from.
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    if let Some(iss) = issuer {
        validation.set_issuer(&[iss]);
    }
    validation.set_audience(audience);
    jsonwebtoken::decode::<C>(token, &DecodingKey::from_secret(&[]), &validation)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    TokenError::Algorithm
                }
                ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
                _ => TokenError::Malformed,
            }
        })
}

/// `exp` and `nbf` against the injected clock, in whole seconds, no leeway.
pub fn check_times(exp: i64, nbf: Option<i64>, now: DateTime<Utc>) -> Result<(), TokenError> {
    let now = now.timestamp();
    if exp <= now {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// SHA-256 hex of an opaque secret (device codes, refresh tokens): only hashes are stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random opaque secret: 32 bytes, base64url.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests;
