//! Rules, pure and synchronous: no I/O, no framework types, `now` passed in. The store loads
//! the facts a rule needs, calls it, and writes what it decided; a refusal is a [`Refusal`],
//! mapped to HTTP in one place (`server::error`).

pub mod action;
pub mod agt;
pub mod audit;
pub mod authorize;
pub mod capability;
pub mod checkpoint;
pub mod decision;
pub mod delegation;
pub mod device;
pub mod did;
pub mod dpop;
pub mod effective;
pub mod entra;
pub mod external;
pub mod guessing;
pub mod idempotency;
pub mod limits;
pub mod policy;
pub mod record;
pub mod revocation;
pub mod role;
pub mod suspension;
pub mod text;
pub mod trust;
pub mod user_code;

/// Why a value from outside was refused. `code` is the snake_case code of the API error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Why a rule refused a change. Each kind has one HTTP status (`server::error` maps them);
/// `code` is the snake_case code of the API error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A value breaks a rule (422).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The caller may not make this change (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The state does not allow the change now (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// There is no such thing, or the caller may not know of it (404).
    #[error("{what} not found")]
    NotFound { what: &'static str },
}

impl Refusal {
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound { what }
    }

    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(e) => e.code,
            Refusal::Forbidden { code, .. } | Refusal::Conflict { code, .. } => code,
            Refusal::NotFound { .. } => "not_found",
        }
    }
}
