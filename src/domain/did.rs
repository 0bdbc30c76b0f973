//! Agent identifiers: `did:mesh:` followed by the first 32 hex characters of the SHA-256 of the
//! agent's Ed25519 public key. `did:agentmesh:` is accepted when reading AGT data.

use sha2::{Digest, Sha256};

use super::Invalid;

pub const PREFIX: &str = "did:mesh:";
pub const LEGACY_PREFIX: &str = "did:agentmesh:";

/// The DID of an Ed25519 public key (32 raw bytes).
pub fn from_public_key(key: &[u8; 32]) -> String {
    let digest = Sha256::digest(key);
    format!("{PREFIX}{}", &hex::encode(digest)[..32])
}

/// Checks the shape of a DID from outside and returns it in canonical `did:mesh:` form.
pub fn parse(s: &str) -> Result<String, Invalid> {
    let tail = s
        .strip_prefix(PREFIX)
        .or_else(|| s.strip_prefix(LEGACY_PREFIX))
        .ok_or_else(|| Invalid::new("invalid_did", "a DID must start with did:mesh:"))?;
    if tail.len() != 32
        || !tail
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return Err(Invalid::new(
            "invalid_did",
            "a DID is did:mesh: followed by 32 lowercase hex characters",
        ));
    }
    Ok(format!("{PREFIX}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_and_parses() {
        let did = from_public_key(&[7u8; 32]);
        assert_eq!(did.len(), PREFIX.len() + 32);
        assert_eq!(parse(&did).ok(), Some(did.clone()));
        let legacy = did.replace(PREFIX, LEGACY_PREFIX);
        assert_eq!(parse(&legacy).ok(), Some(did));
        assert!(parse("did:mesh:XYZ").is_err());
        assert!(parse("did:web:example.com").is_err());
        assert!(parse(&format!("{PREFIX}{}", "A".repeat(32))).is_err());
    }
}
