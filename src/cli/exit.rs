//! The exit codes of the command-line tools, one table for all three, and which failure gets
//! which code.

use crate::client::ClientError;
use crate::client::entra::EntraError;
use crate::client::graph::{DecideError, GraphError};
use crate::client::login::LoginError;
use crate::domain::Refusal;

/// Done.
pub const SUCCESS: u8 = 0;
/// Anything not listed below.
pub const FAILURE: u8 = 1;
/// Bad usage or input: clap's own code, and the server's 400, 413, 415 and 422.
pub const USAGE: u8 = 2;
/// Not signed in, or the session has ended.
pub const NOT_SIGNED_IN: u8 = 3;
/// `agent-cli wait` gave up while the request was still pending.
pub const STILL_PENDING: u8 = 3;
/// Refused: forbidden, not found, or sign-in denied or expired.
pub const REFUSED: u8 = 4;
/// Conflict: already decided, expired, cancelled.
pub const CONFLICT: u8 = 5;
/// `audit verify` found the chain broken.
pub const CHAIN_BROKEN: u8 = 6;
/// `audit verify --state` found the tables disagreeing with the chain.
pub const STATE_DIFFERS: u8 = 7;
/// `audit verify` refused a checkpoint: bad signature, unknown key, another issuer.
pub const CHECKPOINT_REFUSED: u8 = 8;

/// The code of a failed API call, from its HTTP status.
pub fn of_client(e: &ClientError) -> u8 {
    match e.status().map(|s| s.as_u16()) {
        Some(400 | 413 | 415 | 422) => USAGE,
        Some(401) => NOT_SIGNED_IN,
        Some(403 | 404) => REFUSED,
        Some(409) => CONFLICT,
        _ => FAILURE,
    }
}

/// The code of a failed sign-in or session.
pub fn of_login(e: &LoginError) -> u8 {
    match e {
        LoginError::NotSignedIn(_) | LoginError::SessionEnded(_) => NOT_SIGNED_IN,
        LoginError::Denied | LoginError::Expired => REFUSED,
        LoginError::Client(c) => of_client(c),
        LoginError::Entra(e) => of_entra(e),
        _ => FAILURE,
    }
}

/// The code of a failed Entra sign-in or token.
pub fn of_entra(e: &EntraError) -> u8 {
    match e {
        EntraError::NotSignedIn { .. } | EntraError::SignInEnded { .. } => NOT_SIGNED_IN,
        EntraError::Declined | EntraError::Expired | EntraError::BadVerificationCode => REFUSED,
        EntraError::NotConfigured | EntraError::Config(_) | EntraError::NoApiScope => USAGE,
        EntraError::CaFile { .. } => USAGE,
        _ => FAILURE,
    }
}

/// The code of a failed Graph call, from its HTTP status as for the governance server's.
pub fn of_graph(e: &GraphError) -> u8 {
    match e {
        GraphError::Token(t) => of_entra(t),
        GraphError::Usage(_) => USAGE,
        _ => match e.status() {
            Some(400 | 413 | 415 | 422) => USAGE,
            Some(401) => NOT_SIGNED_IN,
            Some(403 | 404) => REFUSED,
            Some(409) => CONFLICT,
            _ => FAILURE,
        },
    }
}

/// The code of an Entra decision that was refused or failed.
pub fn of_decide(e: &DecideError) -> u8 {
    match e {
        DecideError::Refused(Refusal::Invalid(_)) => USAGE,
        DecideError::Refused(Refusal::Forbidden { .. } | Refusal::NotFound { .. }) => REFUSED,
        DecideError::Refused(Refusal::Conflict { .. }) => CONFLICT,
        DecideError::Graph(g) => of_graph(g),
    }
}
