//! Checkpoints of the audit chain as a verifier judges them: is the signature the issuer's
//! (EdDSA only, a key its JWKS publishes, its own `iss`), and does a chain still hold what a
//! checkpoint kept earlier says it held.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::protocol::audit::{CHECKPOINT_TYP, Checkpoint, CheckpointClaims, VerifyReport};
use crate::protocol::oauth::JwkSet;

/// Why a checkpoint is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointRefusal {
    #[error("the checkpoint is not a compact JWS")]
    Malformed,
    #[error("the JWS is not an audit checkpoint (typ must be {CHECKPOINT_TYP})")]
    Type,
    #[error("the checkpoint's algorithm is not allowed (EdDSA only)")]
    Algorithm,
    #[error("the checkpoint is signed by a key the server does not publish")]
    UnknownKey,
    #[error("the checkpoint's signature does not verify")]
    Signature,
    #[error("the checkpoint was issued by another server, not {expected}")]
    Issuer { expected: String },
    #[error("the checkpoint's fields disagree with its signed claims")]
    Mismatch,
}

/// Verifies a checkpoint against the issuer's JWKS and returns its signed claims.
pub fn verify(
    checkpoint: &Checkpoint,
    jwks: &JwkSet,
    issuer: &str,
) -> Result<CheckpointClaims, CheckpointRefusal> {
    let header =
        jsonwebtoken::decode_header(&checkpoint.jws).map_err(|_| CheckpointRefusal::Malformed)?;
    if header.alg != Algorithm::EdDSA {
        return Err(CheckpointRefusal::Algorithm);
    }
    if header.typ.as_deref() != Some(CHECKPOINT_TYP) {
        return Err(CheckpointRefusal::Type);
    }
    let kid = header.kid.ok_or(CheckpointRefusal::UnknownKey)?;
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == kid && k.kty == "OKP" && k.crv == "Ed25519" && k.alg == "EdDSA")
        .ok_or(CheckpointRefusal::UnknownKey)?;
    let key = DecodingKey::from_ed_components(&jwk.x).map_err(|_| CheckpointRefusal::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["iss"]);
    validation.set_issuer(&[issuer]);
    let claims = jsonwebtoken::decode::<CheckpointClaims>(&checkpoint.jws, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => CheckpointRefusal::Signature,
                ErrorKind::InvalidIssuer => CheckpointRefusal::Issuer {
                    expected: issuer.to_owned(),
                },
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    CheckpointRefusal::Algorithm
                }
                _ => CheckpointRefusal::Malformed,
            }
        })?;
    let agrees = checkpoint.seq == claims.seq
        && checkpoint.hash == claims.hash
        && checkpoint.issuer == claims.iss
        && checkpoint.kid == kid
        && checkpoint.at.timestamp() == claims.iat;
    if !agrees || claims.seq < 1 {
        return Err(CheckpointRefusal::Mismatch);
    }
    Ok(claims)
}

/// How a chain disagrees with a checkpoint kept earlier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disagreement {
    #[error(
        "the chain was shortened: it holds {count} events, but a checkpoint kept earlier covers {kept}"
    )]
    Shorter { kept: i64, count: i64 },
    #[error(
        "the chain was rewritten: its hash at seq {seq} differs from the checkpoint kept earlier"
    )]
    Rewritten { seq: i64 },
    #[error("the server did not report the chain's hash at seq {seq}")]
    Unanswered { seq: i64 },
}

/// Whether a verified chain (asked `?at=kept.seq`) still holds what `kept` says it held.
pub fn agrees(kept: &CheckpointClaims, report: &VerifyReport) -> Result<(), Disagreement> {
    let Some(at) = report.at.as_ref().filter(|a| a.seq == kept.seq) else {
        return Err(Disagreement::Unanswered { seq: kept.seq });
    };
    match &at.hash {
        None => Err(Disagreement::Shorter {
            kept: kept.seq,
            count: report.count,
        }),
        Some(hash) if *hash != kept.hash => Err(Disagreement::Rewritten { seq: kept.seq }),
        Some(_) => Ok(()),
    }
}

/// Why a checkpoint file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFileError {
    #[error("line {line} is not a checkpoint: {message}")]
    Line { line: usize, message: String },
    #[error("the file holds no checkpoint")]
    Empty,
}

/// The checkpoint with the highest `seq` in a file of JSON lines (as the file sink writes
/// them). Every non-blank line must be a checkpoint: a file that is not one is refused, not
/// skimmed.
pub fn latest_in(text: &str) -> Result<Checkpoint, CheckpointFileError> {
    let mut best: Option<Checkpoint> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cp: Checkpoint = serde_json::from_str(line).map_err(|e| CheckpointFileError::Line {
            line: i + 1,
            message: e.to_string(),
        })?;
        if best.as_ref().is_none_or(|b| cp.seq >= b.seq) {
            best = Some(cp);
        }
    }
    best.ok_or(CheckpointFileError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::audit::ChainAt;
    use crate::protocol::oauth::Jwk;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{EncodingKey, Header};

    const ISS: &str = "http://127.0.0.1:7070";

    fn key(seed: u8) -> (SigningKey, Jwk) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            n: String::new(),
            e: String::new(),
            kid: format!("k{seed}"),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        };
        (key, jwk)
    }

    fn sign(key: &SigningKey, kid: &str, typ: &str, claims: &CheckpointClaims) -> Checkpoint {
        let der = key.to_pkcs8_der().expect("pkcs8");
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        header.typ = Some(typ.into());
        let jws = jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes()))
            .expect("signs");
        Checkpoint {
            seq: claims.seq,
            hash: claims.hash.clone(),
            at: chrono::DateTime::from_timestamp(claims.iat, 0).unwrap_or_default(),
            issuer: claims.iss.clone(),
            kid: kid.into(),
            jws,
        }
    }

    fn claims(seq: i64) -> CheckpointClaims {
        CheckpointClaims {
            iss: ISS.into(),
            iat: 1_800_000_000,
            seq,
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn a_good_checkpoint_verifies_and_every_bad_one_is_refused() {
        let (k1, j1) = key(1);
        let (k2, _) = key(2);
        let jwks = JwkSet { keys: vec![j1] };
        let good = sign(&k1, "k1", CHECKPOINT_TYP, &claims(7));
        assert_eq!(verify(&good, &jwks, ISS), Ok(claims(7)));

        let other_key = sign(&k2, "k1", CHECKPOINT_TYP, &claims(7));
        assert_eq!(
            verify(&other_key, &jwks, ISS),
            Err(CheckpointRefusal::Signature)
        );
        let unknown = sign(&k2, "k2", CHECKPOINT_TYP, &claims(7));
        assert_eq!(
            verify(&unknown, &jwks, ISS),
            Err(CheckpointRefusal::UnknownKey)
        );
        let token = sign(&k1, "k1", "JWT", &claims(7));
        assert_eq!(verify(&token, &jwks, ISS), Err(CheckpointRefusal::Type));
        assert!(matches!(
            verify(&good, &jwks, "http://elsewhere"),
            Err(CheckpointRefusal::Issuer { .. })
        ));
        let mut lying = good.clone();
        lying.seq = 9;
        assert_eq!(verify(&lying, &jwks, ISS), Err(CheckpointRefusal::Mismatch));
        let mut garbage = good;
        garbage.jws = "not.a.jws".into();
        assert_eq!(
            verify(&garbage, &jwks, ISS),
            Err(CheckpointRefusal::Malformed)
        );
    }

    fn report(count: i64, at: ChainAt) -> VerifyReport {
        VerifyReport {
            ok: true,
            count,
            head: "cd".repeat(32),
            first_bad_seq: None,
            reason: None,
            at: Some(at),
            checkpoint: None,
        }
    }

    #[test]
    fn a_chain_agrees_only_when_it_still_holds_the_kept_hash() {
        let kept = claims(7);
        let same = ChainAt {
            seq: 7,
            hash: Some("ab".repeat(32)),
        };
        assert_eq!(agrees(&kept, &report(9, same)), Ok(()));
        let short = ChainAt { seq: 7, hash: None };
        assert_eq!(
            agrees(&kept, &report(5, short)),
            Err(Disagreement::Shorter { kept: 7, count: 5 })
        );
        let other = ChainAt {
            seq: 7,
            hash: Some("ef".repeat(32)),
        };
        assert_eq!(
            agrees(&kept, &report(9, other)),
            Err(Disagreement::Rewritten { seq: 7 })
        );
        let mut silent = report(9, ChainAt { seq: 3, hash: None });
        assert_eq!(
            agrees(&kept, &silent),
            Err(Disagreement::Unanswered { seq: 7 })
        );
        silent.at = None;
        assert!(agrees(&kept, &silent).is_err());
    }

    #[test]
    fn a_checkpoint_file_gives_its_highest_seq_and_refuses_garbage() {
        let (k1, _) = key(1);
        let a =
            serde_json::to_string(&sign(&k1, "k1", CHECKPOINT_TYP, &claims(9))).unwrap_or_default();
        let b =
            serde_json::to_string(&sign(&k1, "k1", CHECKPOINT_TYP, &claims(4))).unwrap_or_default();
        assert_eq!(latest_in(&format!("{a}\n\n{b}\n")).map(|c| c.seq), Ok(9));
        assert_eq!(latest_in(""), Err(CheckpointFileError::Empty));
        assert!(matches!(
            latest_in(&format!("{a}\nnonsense\n")),
            Err(CheckpointFileError::Line { line: 2, .. })
        ));
    }
}
