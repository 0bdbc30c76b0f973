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

use super::store::{SigningKeyRecord, Store, StoreError};
use crate::protocol::audit::Actor;
use crate::protocol::jws;
use crate::protocol::oauth::{AccessClaims, Jwk, JwkSet};

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
    x: String,
    verifying: Option<VerifyingKey>,
}

struct Ring {
    signing_kid: String,
    signing: SigningKey,
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
        private_pkcs8: der.as_bytes().to_vec(),
        public_key: URL_SAFE_NO_PAD.encode(public),
        created_at: now,
        retired_at: None,
        publish_until: None,
    })
}

fn build_ring(keys: &[SigningKeyRecord]) -> Result<Option<Ring>, KeyError> {
    let Some(current) = keys.iter().find(|k| k.retired_at.is_none()) else {
        return Ok(None);
    };
    let published = keys
        .iter()
        .map(|k| {
            Ok(PublishedKey {
                kid: k.kid.clone(),
                x: k.public_key.clone(),
                verifying: parse_ed25519(&k.public_key)
                    .map_err(|e| KeyError::Encoding(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    Ok(Some(Ring {
        signing_kid: current.kid.clone(),
        signing: SigningKey::from_pkcs8_der(&current.private_pkcs8)
            .map_err(|e| KeyError::Encoding(e.to_string()))?,
        published,
    }))
}

impl KeyRing {
    /// Loads the published keys, generating the first signing key on a new database.
    pub async fn load(store: &dyn Store, now: DateTime<Utc>) -> Result<Self, KeyError> {
        let mut keys = store.published_keys(now).await?;
        if !keys.iter().any(|k| k.retired_at.is_none()) {
            let key = generate_signing_key(now)?;
            store.rotate_signing_key(key, now, Actor::system()).await?;
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

    /// The JWKS document.
    pub fn jwks(&self) -> JwkSet {
        let keys = match self.inner.read() {
            Ok(g) => g
                .published
                .iter()
                .map(|k| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: k.x.clone(),
                    kid: k.kid.clone(),
                    alg: "EdDSA".into(),
                    use_: "sig".into(),
                })
                .collect(),
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
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::protocol::oauth::SubjectKind;
    use crate::server::store::{SqliteStore, TokenStore};

    fn claims(now: DateTime<Utc>) -> AccessClaims {
        AccessClaims {
            iss: "https://governance.test".into(),
            sub: "s1".into(),
            aud: "governance-api".into(),
            exp: (now + Duration::hours(1)).timestamp(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: "j1".into(),
            scope: "governance".into(),
            client_id: "sponsor-console".into(),
            kind: SubjectKind::Sponsor,
            roles: vec!["sponsor".into()],
            preferred_username: Some("alice".into()),
            cnf: None,
        }
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_until_its_key_goes_and_its_times_still_count() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("k.db"))
            .await
            .expect("a fresh store opens");
        let now = Utc::now();
        let ring = KeyRing::load(&store, now).await.expect("keys");
        let token = ring.sign(&claims(now)).expect("signed");
        let (iss, aud) = ("https://governance.test", "governance-api");
        assert!(ring.verify_access(&token, iss, aud, now).is_ok());
        // Remembered: checked again, times included.
        assert!(ring.verify_access(&token, iss, aud, now).is_ok());
        assert_eq!(
            ring.verify_access(&token, iss, aud, now + Duration::hours(2)),
            Err(TokenError::Expired)
        );
        // Remembered for this issuer and audience only.
        assert_eq!(
            ring.verify_access(&token, iss, "another-api", now),
            Err(TokenError::Audience)
        );
        // The key is rotated out with nothing left to publish it: the token is refused at once,
        // though it has not expired.
        let next = generate_signing_key(now).expect("a key");
        store
            .rotate_signing_key(next, now, Actor::system())
            .await
            .expect("rotated");
        ring.reload(&store, now + Duration::seconds(1))
            .await
            .expect("reloaded");
        assert_eq!(
            ring.verify_access(&token, iss, aud, now + Duration::seconds(1)),
            Err(TokenError::UnknownKey)
        );
    }
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    /// L, the order of Ed25519's base point, little-endian.
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    /// The token with its signature's bytes changed by `change`.
    fn resigned(token: &str, change: impl Fn(&mut Vec<u8>)) -> String {
        let (message, signature) = token.rsplit_once('.').unwrap_or_default();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
        change(&mut bytes);
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Our check and `jsonwebtoken`'s own (ring's Ed25519) give the same verdict on every
    /// token, good or bad, and the expected one.
    #[test]
    fn the_signature_check_agrees_with_jsonwebtoken() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let other =
            URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes());
        // 32 bytes that are not a point of the curve.
        let off_curve = (0..=255u8)
            .map(|b| [b; 32])
            .find(|b| VerifyingKey::from_bytes(b).is_err())
            .map(|b| URL_SAFE_NO_PAD.encode(b))
            .unwrap_or_default();
        let claims = serde_json::json!({
            "iss": "did:mesh:a", "sub": "did:mesh:a", "aud": "https://gov/oauth2/token",
            "exp": 4_000_000_000_i64, "jti": "j1",
        });
        let good = jws::sign_eddsa(&key, None, None, &claims).unwrap_or_default();
        let (header, rest) = good.split_once('.').unwrap_or_default();
        let (_, signature) = rest.split_once('.').unwrap_or_default();
        let other_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(
                &serde_json::json!({"iss": "did:mesh:a", "sub": "did:mesh:a",
                "aud": "https://gov/oauth2/token", "exp": 4_000_000_001_i64, "jti": "j1"}),
            )
            .unwrap_or_default(),
        );
        let hs256 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let cases: Vec<(&str, String, &str, bool)> = vec![
            ("valid", good.clone(), &x, true),
            ("another key", good.clone(), &other, false),
            ("a key off the curve", good.clone(), &off_curve, false),
            (
                "changed claims",
                format!("{header}.{other_payload}.{signature}"),
                &x,
                false,
            ),
            ("a bit flipped", resigned(&good, |s| s[5] ^= 1), &x, false),
            (
                "s not reduced (s + L)",
                resigned(&good, |s| {
                    let mut carry = 0u16;
                    for (b, l) in s[32..].iter_mut().zip(ORDER) {
                        let sum = u16::from(*b) + u16::from(l) + carry;
                        *b = (sum & 0xff) as u8;
                        carry = sum >> 8;
                    }
                }),
                &x,
                false,
            ),
            (
                "63 bytes",
                resigned(&good, |s| {
                    s.pop();
                }),
                &x,
                false,
            ),
            ("HS256", format!("{hs256}.{rest}"), &x, false),
            ("two parts", format!("{header}.{signature}"), &x, false),
        ];
        let (iss, aud) = ("did:mesh:a", "https://gov/oauth2/token");
        for (name, token, key, expected) in cases {
            let ours = parse_ed25519(key).ok().and_then(|k| {
                verify_eddsa::<serde_json::Value>(&token, k.as_ref(), Some(iss), &[aud]).ok()
            });
            let mut validation = Validation::new(Algorithm::EdDSA);
            validation.validate_exp = false;
            validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
            validation.set_issuer(&[iss]);
            validation.set_audience(&[aud]);
            let theirs = DecodingKey::from_ed_components(key)
                .ok()
                .and_then(|k| {
                    jsonwebtoken::decode::<serde_json::Value>(&token, &k, &validation).ok()
                })
                .map(|t| t.claims);
            assert_eq!(ours, theirs, "{name}: the two checks disagree");
            assert_eq!(ours.is_some(), expected, "{name}");
        }
    }
}
