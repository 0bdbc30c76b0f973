//! DPoP proofs (RFC 9449 §4.3): whether a proof is well formed, signed by the public key it
//! carries, and made for this request at about this time; and the two hashes a bound token is
//! checked with, its key's JWK thumbprint (RFC 7638) and `ath`. Whether a proof's `jti` was
//! seen before needs memory, so it is the caller's (`server::dpop`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::protocol::dpop::{PROOF_ALG, PROOF_TYP, ProofClaims, ProofJwk};

/// How far a proof's `iat` may lie from now: at most `max_age_seconds` back (a proof is usable
/// only that long, so a `jti` need be remembered only that long) and `ahead_seconds` ahead, for
/// clocks a little fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofWindow {
    pub max_age_seconds: i64,
    pub ahead_seconds: i64,
}

/// What the request a proof goes with is.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The HTTP method, as sent (`POST`).
    pub method: &'a str,
    /// The request's URL as the server's public URL names it, without query or fragment.
    pub url: &'a str,
    /// The access token presented with the proof, if any: then `ath` must be its hash.
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check but replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The thumbprint of the key that signed it.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

/// Why a proof was refused; the text is safe to answer with (it is about the caller's own
/// proof, not about any token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the DPoP proof is not a compact JWS")]
    Malformed,
    #[error("the DPoP proof's typ must be dpop+jwt")]
    Typ,
    #[error("the DPoP proof's alg must be EdDSA")]
    Algorithm,
    #[error("the DPoP proof's jwk must be an Ed25519 public key (kty OKP, crv Ed25519, x)")]
    Jwk,
    #[error("the DPoP proof's jwk must not contain a private key")]
    PrivateKey,
    #[error("the DPoP proof's signature does not verify with its jwk")]
    Signature,
    #[error("the DPoP proof's claims are malformed (jti, htm, htu and iat are required)")]
    Claims,
    #[error("the DPoP proof needs a jti of 1 to 128 characters")]
    Jti,
    #[error("the DPoP proof's htm is not this request's method")]
    Method,
    #[error("the DPoP proof's htu is not this request's URL")]
    Url,
    #[error("the DPoP proof's iat is too old")]
    TooOld,
    #[error("the DPoP proof's iat is in the future")]
    Ahead,
    #[error("the DPoP proof's ath is not the hash of the access token it goes with")]
    AccessTokenHash,
}

/// The header as sent; `jwk` is kept as an object so private members can be seen and refused.
#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
}

/// RFC 9449 §4.3, every check but the `jti` replay check, at `now` (Unix seconds).
pub fn verify(
    proof: &str,
    expected: &Expected<'_>,
    window: ProofWindow,
    now: i64,
) -> Result<VerifiedProof, ProofError> {
    verify_with(proof, expected, window, now, ed25519_key)
}

/// [`verify`], with the proof's `x` made a curve point by `key_of` (`None`: not a key), so a
/// caller may keep keys it has seen decompressed.
pub fn verify_with(
    proof: &str,
    expected: &Expected<'_>,
    window: ProofWindow,
    now: i64,
    key_of: impl FnOnce(&str) -> Option<VerifyingKey>,
) -> Result<VerifiedProof, ProofError> {
    let mut parts = proof.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| ProofError::Malformed)
    };
    let head: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| ProofError::Malformed)?;
    if head.typ.as_deref() != Some(PROOF_TYP) {
        return Err(ProofError::Typ);
    }
    if head.alg.as_deref() != Some(PROOF_ALG) {
        return Err(ProofError::Algorithm);
    }
    let jwk = public_jwk(head.jwk.ok_or(ProofError::Jwk)?)?;
    let key = key_of(&jwk.x).ok_or(ProofError::Jwk)?;
    let signature =
        Signature::from_slice(&decode(signature)?).map_err(|_| ProofError::Signature)?;
    let signed = &proof[..header.len() + 1 + payload.len()];
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| ProofError::Signature)?;
    let claims: ProofClaims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| ProofError::Claims)?;
    if claims.jti.is_empty() || claims.jti.len() > 128 {
        return Err(ProofError::Jti);
    }
    if claims.htm != expected.method {
        return Err(ProofError::Method);
    }
    let same_url = normalised_url(&claims.htu)
        .zip(normalised_url(expected.url))
        .is_some_and(|(a, b)| a == b);
    if !same_url {
        return Err(ProofError::Url);
    }
    if claims.iat < now - window.max_age_seconds {
        return Err(ProofError::TooOld);
    }
    if claims.iat > now + window.ahead_seconds {
        return Err(ProofError::Ahead);
    }
    if let Some(token) = expected.access_token
        && claims.ath.as_deref() != Some(access_token_hash(token).as_str())
    {
        return Err(ProofError::AccessTokenHash);
    }
    Ok(VerifiedProof {
        jkt: thumbprint(&jwk).map_err(|_| ProofError::Jwk)?,
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// The proof's key, refused when it is not an Ed25519 public key or carries a private part.
fn public_jwk(mut jwk: serde_json::Map<String, serde_json::Value>) -> Result<ProofJwk, ProofError> {
    if jwk.contains_key("d") {
        return Err(ProofError::PrivateKey);
    }
    let mut text = |name: &str| match jwk.remove(name) {
        Some(serde_json::Value::String(s)) => Ok(s),
        _ => Err(ProofError::Jwk),
    };
    let (kty, crv, x) = (text("kty")?, text("crv")?, text("x")?);
    if kty != "OKP" || crv != "Ed25519" {
        return Err(ProofError::Jwk);
    }
    Ok(ProofJwk { crv, kty, x })
}

/// An Ed25519 public key from a JWK's `x`; `None` unless 32 bytes of a curve point.
pub fn ed25519_key(x: &str) -> Option<VerifyingKey> {
    let bytes = URL_SAFE_NO_PAD.decode(x).ok()?;
    VerifyingKey::from_bytes(&<[u8; 32]>::try_from(bytes.as_slice()).ok()?).ok()
}

/// RFC 9449 §4.3 (RFC 3986 §6.2.2–6.2.3): scheme and host compared without case, the default
/// port dropped, an empty path read as `/`; query and fragment are not part of `htu`. `None`
/// for anything but an absolute http(s) URL.
pub fn normalised_url(url: &str) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// RFC 7638: SHA-256 over the JCS form of the required members (`crv`, `kty`, `x` for OKP),
/// base64url.
pub fn thumbprint(jwk: &ProofJwk) -> Result<String, serde_json::Error> {
    let canonical = serde_jcs::to_vec(jwk)?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)))
}

/// The thumbprint of an Ed25519 public key given as base64url (an agent's registered key).
pub fn key_thumbprint(x: &str) -> Result<String, serde_json::Error> {
    thumbprint(&ProofJwk::ed25519(x))
}

/// RFC 9449 §4.2 `ath`: base64url(SHA-256(the access token's ASCII)).
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests;
