//! Compact JWS (RFC 7515 §7.1) signed with Ed25519 (`alg: EdDSA`, RFC 8037), from a key that
//! is already expanded. `jsonwebtoken` takes the key as PKCS#8 bytes and expands it again on
//! every signature, which costs as much as the signature itself; tokens and client assertions
//! are signed on hot paths, so they are signed here and verified by `jsonwebtoken` as before.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;

#[derive(Serialize)]
struct Header<'a> {
    typ: &'a str,
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

/// Signs `claims` as `header.payload.signature`; the header is `{"typ","alg":"EdDSA","kid"}`
/// with `typ` defaulting to `JWT`.
pub fn sign_eddsa<C: Serialize>(
    key: &SigningKey,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &C,
) -> Result<String, serde_json::Error> {
    let header = Header {
        typ: typ.unwrap_or("JWT"),
        alg: "EdDSA",
        kid,
    };
    sign_eddsa_with_header(key, &header, claims)
}

/// Signs `claims` under a header of the caller's (DPoP proofs carry their public key in it);
/// the header must say `"alg": "EdDSA"`.
pub fn sign_eddsa_with_header<H: Serialize, C: Serialize>(
    key: &SigningKey,
    header: &H,
    claims: &C,
) -> Result<String, serde_json::Error> {
    let mut jws = String::with_capacity(512);
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(header)?, &mut jws);
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut jws);
    let signature = key.sign(jws.as_bytes());
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut jws);
    Ok(jws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation, decode, decode_header};

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Claims {
        sub: String,
        exp: i64,
    }

    #[test]
    fn signs_what_jsonwebtoken_signs_and_verifies() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let claims = Claims {
            sub: "did:mesh:x".into(),
            exp: 4_000_000_000,
        };
        let ours = sign_eddsa(&key, Some("k1"), None, &claims).unwrap_or_default();
        // The same header, the same claims: Ed25519 is deterministic, so the whole token must
        // be the one the well-known library makes.
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let theirs = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der))
            .unwrap_or_default();
        assert_eq!(ours, theirs);

        let public = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let decoding = DecodingKey::from_ed_components(&public)
            .unwrap_or_else(|_| DecodingKey::from_secret(b"unusable"));
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_aud = false;
        let read = decode::<Claims>(&ours, &decoding, &validation).map(|t| t.claims);
        assert_eq!(read.ok(), Some(claims));
        let typed = sign_eddsa(&key, None, Some("audit-checkpoint+jwt"), &1).unwrap_or_default();
        assert_eq!(
            decode_header(&typed).ok().and_then(|h| h.typ),
            Some("audit-checkpoint+jwt".to_owned())
        );
    }
}
