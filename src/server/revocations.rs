//! The revocation index in the server (`domain::revocation`): loaded from the store at start,
//! brought up to date after every write this server answers (before the answer leaves), and
//! by a follower that reads the chain when the store says something changed and every quarter
//! second, which is how changes made by another process or server instance on the same
//! database arrive. Checking a token is a read
//! lock and a few hash lookups, never a database round trip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::state::AppState;
use super::store::{AuditScope, Store, StoreError};
use crate::domain::revocation::{Refused, RevocationIndex};
use crate::domain::role::Role;
use crate::protocol::oauth::AccessClaims;

/// How often the follower reads the chain for changes made elsewhere.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);
const PAGE: u32 = 1000;

#[derive(Debug, Clone)]
pub struct Revocations {
    index: Arc<RwLock<RevocationIndex>>,
    /// Held while catching up, so events are applied once and in order.
    following: Arc<tokio::sync::Mutex<()>>,
    /// How many `signing_key.rotated` events were applied: the follower reloads the key ring
    /// when it moves, so a rotation made elsewhere is published and accepted here at once.
    rotations: Arc<AtomicU64>,
}

impl Revocations {
    /// Loads the index from the tables; `lifetime` is the longest any token lives.
    pub async fn load(
        store: &dyn Store,
        now: DateTime<Utc>,
        lifetime: chrono::Duration,
    ) -> Result<Self, StoreError> {
        let snapshot = store.revocation_snapshot(now).await?;
        let mut index = RevocationIndex::new(snapshot.head, lifetime);
        for (jti, expires) in snapshot.revoked {
            index.revoke(jti, expires);
        }
        for (did, status) in snapshot.inactive {
            index.set_status(did, status);
        }
        for (id, roles) in snapshot.sponsors {
            let roles = roles.iter().filter_map(|r| Role::parse(r).ok()).collect();
            index.set_roles(id, roles);
        }
        Ok(Self {
            index: Arc::new(RwLock::new(index)),
            following: Arc::new(tokio::sync::Mutex::new(())),
            rotations: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Whether a token that verified may act, and the roles it acts with.
    pub fn admit(&self, claims: &AccessClaims) -> Result<Vec<Role>, Refused> {
        let claimed: Vec<Role> = claims
            .roles
            .iter()
            .filter_map(|r| Role::parse(r).ok())
            .collect();
        // A poisoned lock means a panic mid-update: refuse rather than trust a half-applied
        // index.
        let index = self.index.read().map_err(|_| Refused::Revoked)?;
        index.admit(claims.kind, &claims.sub, &claims.jti, &claimed)
    }

    /// The roles the index holds for a sponsor, if it knows the sponsor.
    pub fn roles_of(&self, sponsor_id: &str) -> Option<Vec<Role>> {
        self.index
            .read()
            .ok()?
            .roles_of(sponsor_id)
            .map(<[Role]>::to_vec)
    }

    /// [`Self::admit`], except that a sponsor the index has not seen yet (added a moment ago,
    /// by this process or another) reads the chain first. Only a token with our signature gets
    /// this far, so the database read is not an outsider's to trigger.
    pub async fn admit_or_catch_up(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        claims: &AccessClaims,
    ) -> Result<Result<Vec<Role>, Refused>, StoreError> {
        match self.admit(claims) {
            Err(Refused::UnknownSponsor) => {
                self.catch_up(store, now).await?;
                Ok(self.admit(claims))
            }
            other => Ok(other),
        }
    }

    /// Applies every audit event committed since the last one applied.
    pub async fn catch_up(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<(), StoreError> {
        let _following = self.following.lock().await;
        loop {
            let after = self.seq();
            let events = store.audit_page(&AuditScope::All, after, PAGE).await?;
            if let Ok(mut index) = self.index.write() {
                for event in &events {
                    index.apply(event);
                    if event.event.action == "signing_key.rotated" {
                        self.rotations.fetch_add(1, Ordering::Relaxed);
                    }
                }
                index.prune(now);
            }
            if events.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// The newest audit event applied.
    pub fn seq(&self) -> i64 {
        self.index.read().map(|i| i.seq()).unwrap_or(0)
    }
}

/// Whether a request may change what the index holds: the kill switch and reactivation,
/// registration, decisions (an approved delegation activates its child), grant and token
/// revocation. (A refresh token's reuse, on the token endpoint, catches up in its handler, so
/// token issuance pays nothing.)
fn may_change_the_index(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (path.starts_with("/v1/agents")
            || path.starts_with("/v1/grants/")
            || (path.starts_with("/v1/requests/") && path.ends_with("/decision"))
            || path == "/oauth2/revoke")
}

/// After a request that may change the index, it is brought up to date before the answer
/// leaves: a suspension, a revocation or an activation that was acknowledged already holds
/// on the caller's next request.
pub async fn settle_after_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = may_change_the_index(request.method(), request.uri().path());
    let response = next.run(request).await;
    if writes
        && let Err(e) = state
            .revocations
            .catch_up(state.store.as_ref(), state.clock.now())
            .await
    {
        // The change is committed; the follower applies it within a quarter second.
        tracing::error!(error = %e, "revocation index: catching up after a write failed");
    }
    response
}

/// Follows the chain for changes made by other processes and instances: woken by the store's
/// change notification (which on PostgreSQL reaches every instance), and every quarter second
/// regardless, for a process that writes without notifying (`governance-server sponsors …` on
/// SQLite). A `signing_key.rotated` event reloads the key ring.
pub fn spawn_follower(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = state.store.changes();
        let mut rotations_seen = state.revocations.rotations.load(Ordering::Relaxed);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            let now = state.clock.now();
            if let Err(e) = state.revocations.catch_up(state.store.as_ref(), now).await {
                tracing::warn!(error = %e, "revocation index: following the chain failed");
            }
            let rotations = state.revocations.rotations.load(Ordering::Relaxed);
            if rotations != rotations_seen {
                match state.keys.reload(state.store.as_ref(), now).await {
                    Ok(()) => rotations_seen = rotations,
                    Err(e) => tracing::warn!(error = %e, "key ring reload after a rotation failed"),
                }
            }
        }
    })
}
