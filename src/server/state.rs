//! What every handler shares: the store, the key ring, the clock, settings, throttles. Nothing
//! here holds state another server instance would need: that lives in the store.

use std::sync::Arc;

use super::ratelimit::FailureLimiter;
use super::record::RecordWatch;
use super::revocations::Revocations;
use super::store::Store;
use super::tokens::{AgentKeys, KeyRing};
use super::trusted::TrustedIssuers;
use crate::clock::SharedClock;
use crate::domain::policy::Policy;
use crate::settings::ServerSettings;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: KeyRing,
    /// Agents' public keys, parsed once (client assertions are verified against them).
    pub agent_keys: AgentKeys,
    /// DPoP proofs used in this process (RFC 9449 §11.1: replay is caught per instance).
    pub dpop_proofs: super::dpop::ProofReplay,
    pub clock: SharedClock,
    pub settings: Arc<ServerSettings>,
    pub policy: Arc<Policy>,
    /// Public base URL and token issuer.
    pub issuer: String,
    pub user_code_failures: FailureLimiter,
    /// The last check of the tables against the audit chain.
    pub record: RecordWatch,
    /// Revoked tokens, inactive agents and sponsors' roles, checked on every request.
    pub revocations: Revocations,
    /// External issuers (Microsoft Entra) whose tokens act as sponsors, with their keys.
    pub trusted: TrustedIssuers,
    pub password_failures: FailureLimiter,
    /// Wrong passwords for one account from every network (see `domain::guessing`).
    pub account_failures: FailureLimiter,
    /// Wrong passwords for any account from one network.
    pub address_failures: FailureLimiter,
    /// Device authorizations started from one network.
    pub device_authorizations: FailureLimiter,
    /// Set once the server stops: open event streams end, so a graceful shutdown does not
    /// wait for subscribers that never hang up.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Webhook calls waiting for a sponsor's decision.
    pub held: super::held::HeldCalls,
}

impl AppState {
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }
}
