//! The emulator's state behind one lock (never held across an await): the directory, keys,
//! requests, sign-ins in progress, refresh tokens, faults, and what tests read back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::clock::EmulatorClock;
use crate::directory::Directory;
use crate::faults::{Fault, FaultKind, RecordedCall};
use crate::keys::KeySet;
use crate::requests::{PimRequest, RequestKind, RequestStatus};

/// How a second decision on a decided stage is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondDecision {
    /// `409 Conflict` (the documented answer for PIM steps and stages).
    #[default]
    Conflict,
    /// `400 Bad Request`, as some Graph approval APIs answer.
    BadRequest,
}

/// A decision a PATCH made, as tests read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDecision {
    pub kind: RequestKind,
    /// The approval id (the request id).
    pub approval_id: String,
    /// The step or stage id.
    pub stage_id: String,
    /// Object id of the approver.
    pub approver_id: String,
    /// `Approve` or `Deny`, as sent.
    pub review_result: String,
    pub justification: String,
    /// `v1.0` or `beta`.
    pub api_version: String,
    /// The `request-id` the emulator answered with.
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Where a device code stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved { user_id: String },
    Declined,
}

/// A device authorization waiting for its person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
    pub interval_seconds: i64,
    pub last_poll: Option<DateTime<Utc>>,
    pub status: DeviceStatus,
}

/// What a refresh token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub revoked: bool,
}

/// Everything that changes while the emulator runs.
#[derive(Debug)]
pub struct World {
    pub directory: Directory,
    pub keys: KeySet,
    pub requests: Vec<PimRequest>,
    pub device_codes: Vec<DeviceCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub faults: Vec<Fault>,
    pub decisions: Vec<RecordedDecision>,
    pub calls: Vec<RecordedCall>,
    /// Opaque `$skiptoken` → offset.
    pub page_tokens: HashMap<String, usize>,
    pub page_size: usize,
    pub second_decision: SecondDecision,
    pub expired_status: RequestStatus,
}

impl World {
    /// Applies the 24-hour approval window to every request.
    pub fn settle(&mut self, now: DateTime<Utc>) {
        let expired = self.expired_status;
        for r in &mut self.requests {
            r.settle(now, expired);
        }
    }

    pub fn request_mut(&mut self, kind: RequestKind, id: &str) -> Option<&mut PimRequest> {
        self.requests
            .iter_mut()
            .find(|r| r.kind == kind && r.id.eq_ignore_ascii_case(id))
    }
}

/// Settings fixed once the emulator listens.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    pub access_token_seconds: i64,
    pub device_code_seconds: i64,
    pub poll_interval_seconds: i64,
    /// Answer `slow_down` (and add 5 s to the interval) to polls closer than the interval.
    pub enforce_poll_interval: bool,
    /// Approve every device code at once as this user (the binary's `--auto-approve`).
    pub auto_approve: Option<String>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    clock: EmulatorClock,
    world: Mutex<World>,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

impl App {
    pub fn new(settings: Settings, clock: EmulatorClock, world: World) -> Self {
        Self(Arc::new(Inner {
            settings,
            clock,
            world: Mutex::new(world),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn clock(&self) -> &EmulatorClock {
        &self.0.clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.0.clock.now()
    }

    /// The lock on the state; a panic while it was held leaves the state as it was then.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.0.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The issuer of tokens for this tenant: `{base}/{tid}/v2.0`.
    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.0.settings.base_url)
    }

    /// Takes one use of the first fault matching this request.
    pub fn take_fault(&self, method: &str, path: &str) -> Option<FaultKind> {
        let mut world = self.world();
        let fault = world.faults.iter_mut().find(|f| f.matches(method, path))?;
        if fault.remaining != u32::MAX {
            fault.remaining -= 1;
        }
        let kind = fault.kind.clone();
        world.faults.retain(|f| f.remaining > 0);
        Some(kind)
    }

    pub fn record_call(&self, call: RecordedCall) {
        self.world().calls.push(call);
    }
}
