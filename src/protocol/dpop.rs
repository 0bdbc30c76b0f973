//! DPoP (RFC 9449) on the wire: a proof's header and claims, the public key it carries, and the
//! confirmation (`cnf`, RFC 7800 §3.1) a bound token carries.

use serde::{Deserialize, Serialize};

/// The `typ` of every proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// The one signature algorithm this server accepts in proofs.
pub const PROOF_ALG: &str = "EdDSA";
/// The request header carrying a proof, and the authorization scheme of a bound token.
pub const DPOP: &str = "DPoP";
/// RFC 9449 §5 and §7.1: the error code of a refused proof.
pub const INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";

/// A proof's public key: an Ed25519 OKP JWK (RFC 8037), public members only. Its members are
/// also exactly the ones RFC 7638 hashes for an OKP key's thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofJwk {
    pub crv: String,
    pub kty: String,
    pub x: String,
}

impl ProofJwk {
    /// The JWK of an Ed25519 public key given as base64url (a JWK's `x`).
    pub fn ed25519(x: &str) -> Self {
        Self {
            crv: "Ed25519".into(),
            kty: "OKP".into(),
            x: x.to_owned(),
        }
    }
}

/// A proof's JOSE header (RFC 9449 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProofHeader {
    pub typ: String,
    pub alg: String,
    pub jwk: ProofJwk,
}

/// A proof's claims (RFC 9449 §4.2). `ath` is required once an access token goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
}

/// The confirmation claim of a DPoP-bound token: the SHA-256 JWK thumbprint of its key
/// (RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}
