//! An agent's own Ed25519 key: generated and stored by `agent-cli keygen` (PKCS#8 PEM, file
//! mode 0600), and used to sign `private_key_jwt` client assertions (RFC 7523) and the DPoP
//! proofs (RFC 9449) of a token bound to it.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use zeroize::Zeroizing;

use crate::domain::{did, dpop};
use crate::protocol::dpop::{PROOF_ALG, PROOF_TYP, ProofClaims, ProofHeader, ProofJwk};
use crate::protocol::jws;
use crate::protocol::oauth::ClientAssertionClaims;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
}

/// An agent's signing key.
#[derive(Clone)]
pub struct AgentKey {
    signing: SigningKey,
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKey")
            .field("did", &self.did())
            .finish()
    }
}

impl AgentKey {
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyFileError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|signing| Self { signing })
            .map_err(|e| KeyFileError::Format(format!("not an Ed25519 PKCS#8 PEM key: {e}")))
    }

    /// PKCS#8 v1 (RFC 8410 §7: the private key alone), as OpenSSL writes it. The v2 form with
    /// the public key attached, `ed25519-dalek`'s default, is refused by Python's
    /// `cryptography` ("extra data"), so agents written in Python could not read the file.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, KeyFileError> {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.signing.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(Default::default())
        .map(|pem| Zeroizing::new(pem.to_string()))
        .map_err(|e| KeyFileError::Format(e.to_string()))
    }

    /// Reads a key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Format(format!(
                    "{} is readable by others (mode {:o}); run chmod 600 on it",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Self::from_pem(&pem)
    }

    /// Writes the key to a new file with mode 0600; never overwrites.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let pem = self.to_pem()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// The public key as the API takes it: base64url without padding.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes())
    }

    pub fn did(&self) -> String {
        did::from_public_key(&self.signing.verifying_key().to_bytes())
    }

    /// A client assertion for `audience` (the token endpoint) valid for `lifetime`.
    pub fn assertion(
        &self,
        audience: &str,
        now: DateTime<Utc>,
        lifetime: Duration,
    ) -> Result<String, KeyFileError> {
        let did = self.did();
        let claims = ClientAssertionClaims {
            iss: did.clone(),
            sub: did,
            aud: audience.to_owned(),
            exp: (now + lifetime).timestamp(),
            iat: Some(now.timestamp()),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        self.sign(&claims)
    }

    /// A DPoP proof (RFC 9449 §4.2) for one `method` request to `url` (its query and fragment
    /// are left out of `htu`), with `ath` when `access_token` goes with it. Each has a new `jti`.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<String, KeyFileError> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let header = ProofHeader {
            typ: PROOF_TYP.into(),
            alg: PROOF_ALG.into(),
            jwk: ProofJwk::ed25519(&self.public_key()),
        };
        let claims = ProofClaims {
            jti: uuid::Uuid::new_v4().to_string(),
            htm: method.to_owned(),
            htu: htu.to_owned(),
            iat: now.timestamp(),
            ath: access_token.map(dpop::access_token_hash),
        };
        jws::sign_eddsa_with_header(&self.signing, &header, &claims)
            .map_err(|e| KeyFileError::Format(e.to_string()))
    }

    /// The key's JWK thumbprint (RFC 7638): the `cnf.jkt` of a token bound to it.
    pub fn thumbprint(&self) -> Result<String, KeyFileError> {
        dpop::key_thumbprint(&self.public_key()).map_err(|e| KeyFileError::Format(e.to_string()))
    }

    /// Signs arbitrary claims with EdDSA (tests use this to forge bad assertions).
    pub fn sign<C: serde::Serialize>(&self, claims: &C) -> Result<String, KeyFileError> {
        jws::sign_eddsa(&self.signing, None, None, claims)
            .map_err(|e| KeyFileError::Format(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_did() {
        let key = AgentKey::generate();
        let pem = key.to_pem().map(|p| p.to_string()).unwrap_or_default();
        let again = AgentKey::from_pem(&pem)
            .map(|k| k.did())
            .unwrap_or_default();
        assert_eq!(again, key.did());
        assert!(key.did().starts_with("did:mesh:"));
    }

    /// Written as PKCS#8 v1 (the private key alone, 48 bytes of DER); files written before, v2
    /// with the public key attached, still load.
    #[test]
    fn keys_are_written_as_pkcs8_v1_and_v2_files_still_load() {
        let key = AgentKey::generate();
        let pem = key.to_pem().map(|p| p.to_string()).unwrap_or_default();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default();
        assert_eq!(der.len(), 48, "v1: version 0, the algorithm, the seed");
        let v2 = key
            .signing
            .to_pkcs8_pem(Default::default())
            .map(|p| p.to_string())
            .unwrap_or_default();
        assert_ne!(v2, pem);
        let loaded = AgentKey::from_pem(&v2).map(|k| k.did()).unwrap_or_default();
        assert_eq!(loaded, key.did());
    }

    #[test]
    fn a_proof_is_what_the_server_checks() {
        let key = AgentKey::generate();
        let now = Utc::now();
        let proof = key
            .dpop_proof("GET", "https://gov.example/v1/me?x=1", Some("tok"), now)
            .unwrap_or_default();
        let expected = dpop::Expected {
            method: "GET",
            url: "https://gov.example/v1/me",
            access_token: Some("tok"),
        };
        let window = dpop::ProofWindow {
            max_age_seconds: 60,
            ahead_seconds: 5,
        };
        let verified = dpop::verify(&proof, &expected, window, now.timestamp());
        assert_eq!(verified.map(|v| v.jkt).ok(), key.thumbprint().ok());
        let again = key
            .dpop_proof("GET", "https://gov.example/v1/me", Some("tok"), now)
            .unwrap_or_default();
        assert_ne!(proof, again, "each proof has its own jti");
    }

    #[test]
    fn saved_key_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("agent.pem");
        let key = AgentKey::generate();
        assert!(key.save_new(&path).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(key.save_new(&path).is_err());
        assert_eq!(AgentKey::load(&path).map(|k| k.did()).ok(), Some(key.did()));
    }
}
