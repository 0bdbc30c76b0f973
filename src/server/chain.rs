//! The audit chain as the server vouches for it: verifying it end to end, signing checkpoints
//! of its head (on demand in `GET /v1/audit/verify`, and on a schedule), and writing scheduled
//! checkpoints to sinks outside the database: a file, standard output, syslog.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::state::AppState;
use super::store::{AuditScope, Store, StoreError};
use super::tokens::{KeyError, KeyRing};
use crate::domain::audit::ChainVerifier;
use crate::protocol::audit::{CHECKPOINT_TYP, ChainAt, Checkpoint, CheckpointClaims, VerifyReport};
use crate::settings::AuditSettings;

/// Events read per page while verifying.
const PAGE: u32 = 1000;

/// Walks the whole chain page by page (memory stays constant however long it is); with `at`,
/// also reports the hash of event `at` if the verified chain reaches it.
pub async fn verify_chain(store: &dyn Store, at: Option<i64>) -> Result<VerifyReport, StoreError> {
    let mut verifier = ChainVerifier::default();
    let mut hash_at = None;
    let mut after = 0;
    let mut fault = None;
    'pages: loop {
        let events = store.audit_page(&AuditScope::All, after, PAGE).await?;
        for event in &events {
            if let Err(f) = verifier.push(event) {
                fault = Some(f);
                break 'pages;
            }
            if Some(event.event.seq) == at {
                hash_at = Some(event.hash.clone());
            }
        }
        match events.last() {
            Some(last) if events.len() == PAGE as usize => after = last.event.seq,
            _ => break,
        }
    }
    Ok(VerifyReport {
        ok: fault.is_none(),
        count: verifier.count(),
        head: verifier.head().to_owned(),
        first_bad_seq: fault.as_ref().map(|f| f.seq),
        reason: fault.map(|f| f.reason),
        at: at.map(|seq| ChainAt { seq, hash: hash_at }),
        checkpoint: None,
    })
}

/// Signs a checkpoint of the head `seq`/`hash` with the current key.
pub fn sign_head(
    keys: &KeyRing,
    issuer: &str,
    seq: i64,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Checkpoint, KeyError> {
    let claims = CheckpointClaims {
        iss: issuer.to_owned(),
        iat: now.timestamp(),
        seq,
        hash: hash.to_owned(),
    };
    let (kid, jws) = keys.sign_typed(CHECKPOINT_TYP, &claims)?;
    Ok(Checkpoint {
        seq,
        hash: hash.to_owned(),
        // Whole seconds: what `iat` says, so the line and its claims agree exactly.
        at: DateTime::from_timestamp(claims.iat, 0).unwrap_or(now),
        issuer: issuer.to_owned(),
        kid,
        jws,
    })
}

/// Why the scheduled step signed nothing.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    /// Fail closed: a broken chain's head is never signed.
    #[error("the audit chain is broken at seq {seq} ({reason}); no checkpoint signed")]
    ChainBroken { seq: i64, reason: String },
}

/// Where scheduled checkpoints go.
#[derive(Debug, Clone, Default)]
pub struct CheckpointSinks {
    pub file: Option<PathBuf>,
    pub stdout: bool,
    pub syslog: Option<PathBuf>,
}

impl CheckpointSinks {
    pub fn from_settings(audit: &AuditSettings) -> Self {
        Self {
            file: (!audit.checkpoint_file.is_empty()).then(|| audit.checkpoint_file.clone().into()),
            stdout: audit.checkpoint_stdout,
            syslog: audit
                .checkpoint_syslog
                .then(|| audit.syslog_socket.clone().into()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_none() && !self.stdout && self.syslog.is_none()
    }

    /// Writes `checkpoint` to every sink; a failing sink is logged and the others still get
    /// it. Returns whether every sink took it.
    pub fn write(&self, checkpoint: &Checkpoint) -> bool {
        let line = match serde_json::to_string(checkpoint) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit checkpoint not serializable");
                return false;
            }
        };
        let mut all = true;
        if let Some(path) = &self.file
            && let Err(e) = append_line(path, &line)
        {
            tracing::error!(error = %e, path = %path.display(), "audit checkpoint file sink failed");
            all = false;
        }
        if self.stdout {
            let mut out = std::io::stdout().lock();
            if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                tracing::error!(error = %e, "audit checkpoint stdout sink failed");
                all = false;
            }
        }
        if let Some(socket) = &self.syslog
            && let Err(e) = send_syslog(socket, &line, Utc::now())
        {
            tracing::error!(error = %e, socket = %socket.display(), "audit checkpoint syslog sink failed");
            all = false;
        }
        all
    }
}

/// Appends one line and fsyncs it: the line is on disk before the step reports it written.
fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()
}

/// One RFC 3164 message as the C library's `syslog(3)` sends it to the local socket:
/// facility auth (4), severity notice (5).
pub fn syslog_message(line: &str, now: DateTime<Utc>) -> String {
    let stamp = now.with_timezone(&chrono::Local).format("%b %e %H:%M:%S");
    format!(
        "<37>{stamp} governance-server[{}]: audit-checkpoint {line}",
        std::process::id()
    )
}

#[cfg(unix)]
fn send_syslog(socket: &std::path::Path, line: &str, now: DateTime<Utc>) -> std::io::Result<()> {
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.send_to(syslog_message(line, now).as_bytes(), socket)
        .map(|_| ())
}

#[cfg(not(unix))]
fn send_syslog(_: &std::path::Path, _: &str, _: DateTime<Utc>) -> std::io::Result<()> {
    Err(std::io::Error::other("syslog needs a Unix socket"))
}

/// The scheduled step's memory: the sinks, and the head last written to all of them.
#[derive(Debug, Default)]
pub struct Checkpointer {
    sinks: CheckpointSinks,
    last: Option<(i64, String)>,
}

impl Checkpointer {
    pub fn new(sinks: CheckpointSinks) -> Self {
        Self { sinks, last: None }
    }

    /// Verifies the chain and, if its head changed since the last checkpoint every sink took,
    /// signs the head and writes it to the sinks. Returns the checkpoint written, if any.
    pub async fn step(&mut self, state: &AppState) -> Result<Option<Checkpoint>, CheckpointError> {
        if self.sinks.is_empty() {
            return Ok(None);
        }
        let report = verify_chain(state.store.as_ref(), None).await?;
        if !report.ok {
            return Err(CheckpointError::ChainBroken {
                seq: report.first_bad_seq.unwrap_or_default(),
                reason: report.reason.unwrap_or_default(),
            });
        }
        let head = (report.count, report.head);
        if head.0 == 0 || self.last.as_ref() == Some(&head) {
            return Ok(None);
        }
        let checkpoint = sign_head(
            &state.keys,
            &state.issuer,
            head.0,
            &head.1,
            state.clock.now(),
        )?;
        let sinks = self.sinks.clone();
        let written = checkpoint.clone();
        let all = tokio::task::spawn_blocking(move || sinks.write(&written))
            .await
            .unwrap_or(false);
        // A sink that failed gets the head again on the next step.
        if all {
            self.last = Some(head);
        }
        Ok(Some(checkpoint))
    }
}
