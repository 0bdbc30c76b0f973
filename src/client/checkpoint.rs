//! `audit verify` with memory: the last signed checkpoint verified for a server is kept in the
//! state directory (beside the sessions, 0600, written atomically), and a later verification
//! fails if the chain no longer holds it: shortened, or rewritten from some row onward.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::session::{SessionStore, create_private_dir, write_private};
use super::{ApiClient, ClientError};
use crate::domain::checkpoint::{self, CheckpointRefusal, Disagreement};
use crate::protocol::audit::{Checkpoint, VerifyReport};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a checkpoint file ({message}); remove it to start over")]
    Corrupt { path: PathBuf, message: String },
}

/// Where the kept checkpoints live: one file per server.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Beside the sessions.
    pub fn beside(sessions: &SessionStore) -> Self {
        Self::at(sessions.dir())
    }

    pub fn path(&self, server: &str) -> PathBuf {
        let digest = hex::encode(&Sha256::digest(server.as_bytes())[..8]);
        self.dir.join("checkpoints").join(format!("{digest}.json"))
    }

    pub fn load(&self, server: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = self.path(server);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt {
                path,
                message: e.to_string(),
            })
    }

    pub fn save(&self, server: &str, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
        let path = self.path(server);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        create_private_dir(&dir).map_err(io(&dir))?;
        let body = serde_json::to_vec_pretty(checkpoint).map_err(|e| CheckpointError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_private(&path, &body).map_err(io(&path))?;
        Ok(path)
    }
}

/// Why the chain is not vouched for beyond the server's own report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointProblem {
    /// The chain no longer holds what a checkpoint kept earlier says.
    #[error("{0}")]
    Disagrees(Disagreement),
    /// A checkpoint was not trusted: `which` is "kept", "given" or "new".
    #[error("the {which} checkpoint is refused: {why}")]
    Refused {
        which: &'static str,
        why: CheckpointRefusal,
    },
}

/// The outcome of `audit verify` with checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerdict {
    /// The server's own report on the chain (a broken chain fails on its own).
    pub report: VerifyReport,
    /// Checkpoints the chain was compared with (kept, then given), each verified.
    pub compared: Vec<Checkpoint>,
    pub problem: Option<CheckpointProblem>,
    /// The checkpoint kept for next time: the new one when everything held, else the old one;
    /// none without a store (the embedded server).
    pub kept: Option<Checkpoint>,
}

impl AuditVerdict {
    pub fn ok(&self) -> bool {
        self.report.ok && self.problem.is_none()
    }
}

/// Verifies the chain of `api`'s server: the server's report, then every checkpoint known (the
/// one kept in `store`, and `given`, e.g. from a file sink), each signature checked against the
/// server's JWKS and issuer. Only when all of it holds is the server's fresh checkpoint verified
/// and kept, so a failure never replaces the evidence.
pub async fn verify(
    api: &ApiClient,
    store: Option<&CheckpointStore>,
    given: Option<Checkpoint>,
) -> Result<AuditVerdict, CheckpointError> {
    let issuer = api.anonymous().discovery().await?.issuer;
    let jwks = api.anonymous().jwks().await?;
    let kept = match store {
        Some(s) => s.load(api.base())?,
        None => None,
    };
    let mut verdict = AuditVerdict {
        report: api.audit_verify(None).await?,
        compared: Vec::new(),
        problem: None,
        kept: kept.clone(),
    };
    // The kept one was verified when it was stored (its key may since have been retired from
    // the JWKS); it must still be this issuer's.
    let mut known = Vec::new();
    if let Some(k) = kept {
        if k.issuer != issuer {
            verdict.problem = Some(CheckpointProblem::Refused {
                which: "kept",
                why: CheckpointRefusal::Issuer { expected: issuer },
            });
            return Ok(verdict);
        }
        known.push(k);
    }
    if let Some(g) = given {
        if let Err(why) = checkpoint::verify(&g, &jwks, &issuer) {
            verdict.problem = Some(CheckpointProblem::Refused {
                which: "given",
                why,
            });
            return Ok(verdict);
        }
        known.push(g);
    }
    for k in known {
        let report = api.audit_verify(Some(k.seq)).await?;
        let claims = crate::protocol::audit::CheckpointClaims {
            iss: k.issuer.clone(),
            iat: k.at.timestamp(),
            seq: k.seq,
            hash: k.hash.clone(),
        };
        let agreed = checkpoint::agrees(&claims, &report);
        verdict.compared.push(k);
        if let Err(d) = agreed {
            verdict.report = report;
            verdict.problem = Some(CheckpointProblem::Disagrees(d));
            return Ok(verdict);
        }
        if !report.ok {
            verdict.report = report;
            return Ok(verdict);
        }
    }
    if !verdict.report.ok {
        return Ok(verdict);
    }
    let Some(fresh) = verdict.report.checkpoint.clone() else {
        return Ok(verdict);
    };
    match checkpoint::verify(&fresh, &jwks, &issuer) {
        Ok(c) if c.seq == verdict.report.count && c.hash == verdict.report.head => {}
        Ok(_) => {
            verdict.problem = Some(CheckpointProblem::Refused {
                which: "new",
                why: CheckpointRefusal::Mismatch,
            });
            return Ok(verdict);
        }
        Err(why) => {
            verdict.problem = Some(CheckpointProblem::Refused { which: "new", why });
            return Ok(verdict);
        }
    }
    let newer = verdict.kept.as_ref().is_none_or(|k| fresh.seq >= k.seq);
    if newer && let Some(s) = store {
        s.save(api.base(), &fresh)?;
        verdict.kept = Some(fresh);
    }
    Ok(verdict)
}
