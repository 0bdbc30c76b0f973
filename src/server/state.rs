//! What every handler shares: the store, the key ring, the clock, settings, throttles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::ratelimit::FailureLimiter;
use super::store::Store;
use super::tokens::KeyRing;
use crate::clock::SharedClock;
use crate::domain::policy::Policy;
use crate::settings::ServerSettings;

/// A signed-in human on the verification page who has not yet approved or denied.
#[derive(Debug, Clone)]
pub struct Consent {
    pub sponsor_id: String,
    pub user_code: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: KeyRing,
    pub clock: SharedClock,
    pub settings: Arc<ServerSettings>,
    pub policy: Arc<Policy>,
    /// Public base URL and token issuer.
    pub issuer: String,
    pub user_code_failures: Arc<FailureLimiter>,
    pub password_failures: Arc<FailureLimiter>,
    pub consents: Arc<Mutex<HashMap<String, Consent>>>,
}

impl AppState {
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }
}
