//! DPoP at this server (RFC 9449): the one `DPoP` header of a request, a proof checked for it
//! (the rules in `domain::dpop`, against this server's public URL and the proof window in
//! `[tokens]`), and the memory of proofs already used. That memory is this process's own:
//! another instance behind the same URL does not see it (RFC 9449 §11.1), so a proof replayed
//! to another instance within the window is caught only by the binding (it is still the
//! holder's own request, for the same method and URL).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use axum::http::StatusCode;
use axum::http::request::Parts;

use super::error::ApiError;
use super::state::AppState;
use crate::domain::dpop::{self, Expected, ProofError, ProofWindow, VerifiedProof};
use crate::protocol::dpop::{Confirmation, DPOP, INVALID_DPOP_PROOF};

/// Why a request's proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopRefusal {
    #[error("send exactly one DPoP header")]
    Repeated,
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("this DPoP proof was already used (jti replay); sign a new one for each request")]
    Replayed,
    /// More live proofs than the memory holds: refused rather than forgetting one still usable.
    #[error("too many DPoP proofs at once; try again in a few seconds")]
    Busy,
}

/// The request's `DPoP` header: `None` without one; refused when sent twice or not text.
pub fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, DpopRefusal> {
    let mut values = headers.get_all(DPOP).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DpopRefusal::Repeated);
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| DpopRefusal::Proof(ProofError::Malformed))
}

/// The proof window of these settings.
pub fn window(state: &AppState) -> ProofWindow {
    ProofWindow {
        max_age_seconds: i64::from(state.settings.tokens.dpop_max_age_seconds),
        ahead_seconds: i64::from(state.settings.tokens.dpop_ahead_seconds),
    }
}

/// Checks `proof` for a `method` request to `path` on this server (with `access_token` when
/// one goes with it) and uses up its `jti`.
pub fn check(
    state: &AppState,
    proof: &str,
    method: &str,
    path: &str,
    access_token: Option<&str>,
) -> Result<VerifiedProof, DpopRefusal> {
    let url = format!("{}{path}", state.issuer);
    let expected = Expected {
        method,
        url: &url,
        access_token,
    };
    let window = window(state);
    let now = state.clock.now().timestamp();
    // Agents' keys are kept decompressed (`agent_keys`), as for client assertions.
    let verified = dpop::verify_with(proof, &expected, window, now, |x| {
        state.agent_keys.get(x).ok().flatten()
    })?;
    state.dpop_proofs.first_use(
        &verified,
        verified.iat.saturating_add(window.max_age_seconds),
        now,
    )?;
    Ok(verified)
}

/// RFC 9449 §7: how a `/v1` request presented its token (`DPoP` scheme or not) against whether
/// the token is bound. An unbound token works as `Bearer` only; a bound one only under the
/// `DPoP` scheme with a proof for this request, signed by the key it is bound to, with `ath`.
pub fn check_binding(
    state: &AppState,
    parts: &Parts,
    dpop_scheme: bool,
    token: &str,
    cnf: Option<&Confirmation>,
) -> Result<(), ApiError> {
    let Some(cnf) = cnf else {
        return if dpop_scheme {
            Err(ApiError::dpop(
                "invalid_token",
                "this token is not DPoP-bound; send it as Authorization: Bearer",
            ))
        } else {
            Ok(())
        };
    };
    if !dpop_scheme {
        return Err(ApiError::dpop(
            "invalid_token",
            "this token is DPoP-bound: send it as Authorization: DPoP, with a DPoP proof",
        ));
    }
    let refused = |refusal: DpopRefusal| match refusal {
        DpopRefusal::Busy => ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dpop_busy",
                refusal.to_string(),
            )
        },
        other => ApiError::dpop(INVALID_DPOP_PROOF, other.to_string()),
    };
    let proof = proof_header(&parts.headers)
        .map_err(refused)?
        .ok_or_else(|| {
            ApiError::dpop(
                INVALID_DPOP_PROOF,
                "a DPoP-bound token needs a DPoP proof header on every request",
            )
        })?;
    let verified = check(
        state,
        proof,
        parts.method.as_str(),
        parts.uri.path(),
        Some(token),
    )
    .map_err(refused)?;
    if verified.jkt != cnf.jkt {
        return Err(ApiError::dpop(
            INVALID_DPOP_PROOF,
            "the DPoP proof is not signed with the key this token is bound to",
        ));
    }
    Ok(())
}

/// Proofs used in this process, each until the last second its `iat` is still accepted.
#[derive(Clone)]
pub struct ProofReplay {
    seen: Arc<Mutex<Seen>>,
    capacity: usize,
}

#[derive(Default)]
struct Seen {
    /// SHA-256 of the key's thumbprint and the `jti`: a `jti` is unique per key (RFC 9449 §11.1).
    used: HashSet<[u8; 32]>,
    /// The same entries by the second after which they may be forgotten.
    by_expiry: BTreeMap<i64, Vec<[u8; 32]>>,
}

/// The most live proofs remembered: a million, about 17,000 proofs a second held for the
/// default minute.
const REPLAY_CAPACITY: usize = 1 << 20;

impl Default for ProofReplay {
    fn default() -> Self {
        Self::with_capacity(REPLAY_CAPACITY)
    }
}

impl std::fmt::Debug for ProofReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProofReplay")
    }
}

impl ProofReplay {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            seen: Arc::default(),
            capacity,
        }
    }

    /// Remembers `proof` until `until` (Unix seconds); refused when it was used before, or when
    /// the memory is full of proofs that are all still usable.
    pub fn first_use(
        &self,
        proof: &VerifiedProof,
        until: i64,
        now: i64,
    ) -> Result<(), DpopRefusal> {
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(proof.jkt.as_bytes());
            h.update([0]);
            h.update(proof.jti.as_bytes());
            h.finalize().into()
        };
        let mut seen = self.seen.lock().map_err(|_| DpopRefusal::Busy)?;
        let Seen { used, by_expiry } = &mut *seen;
        while let Some(entry) = by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for gone in entry.remove() {
                used.remove(&gone);
            }
        }
        if used.contains(&key) {
            return Err(DpopRefusal::Replayed);
        }
        if used.len() >= self.capacity {
            return Err(DpopRefusal::Busy);
        }
        used.insert(key);
        by_expiry.entry(until).or_default().push(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(jkt: &str, jti: &str) -> VerifiedProof {
        VerifiedProof {
            jkt: jkt.into(),
            jti: jti.into(),
            iat: 0,
        }
    }

    #[test]
    fn a_proof_is_used_once_per_key_until_it_expires() {
        let replay = ProofReplay::with_capacity(10);
        assert_eq!(replay.first_use(&proof("k1", "a"), 160, 100), Ok(()));
        assert_eq!(
            replay.first_use(&proof("k1", "a"), 160, 130),
            Err(DpopRefusal::Replayed)
        );
        // Still remembered in its last second.
        assert_eq!(
            replay.first_use(&proof("k1", "a"), 160, 160),
            Err(DpopRefusal::Replayed)
        );
        // Another key's proof may carry the same jti.
        assert_eq!(replay.first_use(&proof("k2", "a"), 160, 130), Ok(()));
        // Forgotten once no proof with that iat is accepted any more.
        assert_eq!(replay.first_use(&proof("k1", "a"), 221, 161), Ok(()));
    }

    #[test]
    fn when_full_only_expired_entries_make_room() {
        let replay = ProofReplay::with_capacity(2);
        assert_eq!(replay.first_use(&proof("k", "a"), 110, 100), Ok(()));
        assert_eq!(replay.first_use(&proof("k", "b"), 150, 100), Ok(()));
        assert_eq!(
            replay.first_use(&proof("k", "c"), 150, 105),
            Err(DpopRefusal::Busy)
        );
        // `a` expired: its place is free, and `b` is still remembered.
        assert_eq!(replay.first_use(&proof("k", "c"), 150, 111), Ok(()));
        assert_eq!(
            replay.first_use(&proof("k", "b"), 150, 111),
            Err(DpopRefusal::Replayed)
        );
    }
}
