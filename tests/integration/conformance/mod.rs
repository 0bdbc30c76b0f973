//! The store conformance suite: written once against the store traits, with no knowledge of
//! the backend behind them. Each case gets a fresh, empty store from a factory; the factories
//! are below (SQLite in a fresh file, PostgreSQL in a fresh schema), each backend running the
//! same cases through one `conformance_suite!` line.

mod actions;
mod agents;
mod audit;
mod clients;
mod grants;
mod request_reads;
mod requests;
mod sign_in;
mod tokens;

use std::any::Any;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sponsor_console::domain::decision::Choice;
use sponsor_console::domain::policy::{Requirement, Sensitivity, TrustRules};
use sponsor_console::domain::role::Role;
use sponsor_console::protocol::audit::Actor;
use sponsor_console::protocol::requests::{Decision, Request, RequestKind};
use sponsor_console::server::store::{
    DecisionInput, NewAgent, NewRequest, PgStore, Registered, SponsorRecord, SponsorUpsert,
    SqliteStore, Store, StoreError, Submitted,
};

/// A fresh store, and whatever must live as long as it (a temporary directory, a schema).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

/// A factory's answer: a fresh store, or why this backend's cases are skipped here.
pub type Made = Result<Fixture, String>;

/// SQLite in a fresh file.
pub async fn sqlite() -> Made {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("conformance.db"))
        .await
        .expect("a fresh SQLite store opens");
    Ok(Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    })
}

/// PostgreSQL in a fresh schema of the database `TEST_DATABASE_URL` names, dropped after;
/// skipped when the variable is unset.
pub async fn postgres() -> Made {
    let schema = crate::common::postgres::Schema::create().await?;
    let store = PgStore::connect_with(schema.options())
        .await
        .expect("a fresh PostgreSQL store opens");
    Ok(Fixture {
        store: Arc::new(store),
        _guard: Box::new(schema),
    })
}

/// Says on the terminal that a case did not run and why. Written to stderr directly, past the
/// test harness's capture, so a passing run still shows what it left out.
pub fn skipped(case: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipped {case}: {why}");
}

/// Declares every case of the suite as a test against the store `$factory` makes.
macro_rules! conformance_suite {
    ($backend:ident, $factory:path) => {
        mod $backend {
            conformance_suite!(@cases $backend, $factory;
                agents::sponsors_are_created_then_updated,
                agents::external_sponsors_are_made_once_and_follow_newer_statements,
                agents::registration_reads_back_everywhere,
                agents::registration_refuses_duplicates_and_the_limit,
                agents::registration_replays_an_idempotency_key,
                sign_in::device_codes_poll_decide_and_redeem_once,
                sign_in::consents_are_taken_once,
                sign_in::authorization_codes_are_redeemed_once,
                sign_in::failures_count_in_their_window,
                tokens::signing_keys_rotate_and_stay_published,
                tokens::access_tokens_are_stored_and_revoked_once,
                tokens::refresh_tokens_rotate_and_reuse_revokes_the_family,
                tokens::assertions_and_agent_tokens_are_single_use,
                tokens::agent_tokens_issued_at_once_are_each_checked,
                requests::submissions_list_and_page_soonest_first,
                requests::submissions_replay_an_idempotency_key,
                requests::approval_creates_a_grant_and_moves_trust,
                requests::decisions_follow_the_rules,
                requests::two_approvals_then_a_grant,
                requests::concurrent_decisions_on_one_request_one_wins,
                requests::cancel_expire_and_fatigue,
                requests::delegation_registers_the_child_and_grants_it,
                requests::a_proposed_child_is_retired_unless_approved,
                request_reads::a_request_reads_back_field_for_field,
                request_reads::decisions_and_lists_read_back_in_order,
                grants::grants_list_and_revoke_with_what_was_delegated,
                grants::suspension_reaches_descendants_and_everything_they_hold,
                grants::reactivation_and_revocation,
                grants::suspending_a_sponsors_fleet,
                grants::grants_that_run_out_are_recorded_once,
                audit::the_chain_links_pages_and_scopes,
                audit::a_fresh_store_is_ready_for_writes,
                audit::the_tables_agree_with_the_chain_and_revocations_are_read_back,
                actions::actions_arrive_once_and_redeliver,
                actions::actions_are_decided_once_by_who_may,
                actions::actions_list_page_and_expire,
                clients::resource_clients_are_added_read_and_removed,
            );
        }
    };
    (@cases $backend:ident, $factory:path; $($module:ident :: $case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = match $factory().await {
                    Ok(fixture) => fixture,
                    Err(why) => {
                        let case = concat!(
                            "conformance::", stringify!($backend), "::", stringify!($case)
                        );
                        return $crate::conformance::skipped(case, &why);
                    }
                };
                $crate::conformance::$module::$case(fixture.store.clone()).await;
            }
        )+
    };
}

conformance_suite!(sqlite, crate::conformance::sqlite);
conformance_suite!(postgres, crate::conformance::postgres);

// Facts the cases share.

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
        .single()
        .expect("a valid time")
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

pub async fn sponsor(store: &dyn Store, username: &str, roles: &[Role]) -> SponsorRecord {
    store
        .upsert_sponsor(
            &SponsorUpsert {
                username: username.into(),
                display_name: format!("{username} (conformance)"),
                roles: roles.to_vec(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
                source: "config".into(),
            },
            Actor::system(),
            t0(),
        )
        .await
        .expect("sponsor stored")
}

/// A DID for `n`, in the shape the server derives from a key.
pub fn did(n: u32) -> String {
    format!("did:mesh:{n:032x}")
}

pub fn new_agent(n: u32, sponsor_id: &str, capabilities: &[&str]) -> NewAgent {
    NewAgent {
        did: did(n),
        name: format!("agent-{n}"),
        public_key: format!("key-{n}"),
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        sponsor_id: sponsor_id.into(),
        entra_object_id: None,
        model: Some("model".into()),
        runtime: None,
        max_agents_per_sponsor: 100,
    }
}

pub async fn agent(store: &dyn Store, n: u32, sponsor_id: &str, capabilities: &[&str]) -> String {
    match store
        .register_agent(new_agent(n, sponsor_id, capabilities), None, t0())
        .await
        .expect("agent registered")
    {
        Registered::Created(agent) => agent.did,
        Registered::Replayed(_) => unreachable!("no idempotency key was given"),
    }
}

pub fn requirement(approvals: u8) -> Requirement {
    Requirement {
        sensitivity: Sensitivity::High,
        max_seconds: 3600,
        approvals_required: approvals,
        approver_roles: vec![Role::SecurityLead],
    }
}

pub fn new_request(id: &str, agent_did: &str, capabilities: &[&str], approvals: u8) -> NewRequest {
    NewRequest {
        id: id.into(),
        kind: RequestKind::Elevation,
        agent_did: agent_did.into(),
        child: None,
        capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        duration_seconds: 7200,
        justification: "the quarterly close".into(),
        ticket: Some("FIN-1".into()),
        context: None,
        on_behalf_of: None,
        requirement: requirement(approvals),
        trust_score: 500,
        expires_at: at(3600),
        fatigue_limit: 5,
        fatigue_window_seconds: 600,
        fatigue_penalty: -50,
    }
}

pub async fn submit(store: &dyn Store, request: NewRequest, now: DateTime<Utc>) -> Request {
    match store
        .submit_request(request, None, now)
        .await
        .expect("submitted")
    {
        Submitted::Created(r) => *r,
        Submitted::Replayed(_) => unreachable!("no idempotency key was given"),
    }
}

pub fn trust_rules() -> TrustRules {
    TrustRules {
        approved: 10,
        denied: -25,
        expired: -5,
        approval_fatigue: -50,
    }
}

pub fn decision(
    approver: &SponsorRecord,
    decision: Decision,
    duration_seconds: Option<i64>,
) -> DecisionInput {
    DecisionInput {
        approver_id: approver.id.clone(),
        approver_username: approver.username.clone(),
        approver_roles: approver.roles.clone(),
        choice: Choice {
            decision,
            duration_seconds,
            capabilities: None,
            justification: "checked".into(),
        },
        trust: trust_rules(),
        max_delegation_depth: 3,
    }
}

/// The API code of a refusal, or what else happened.
pub fn code<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Ok(v) => format!("ok: {v:?}"),
        Err(StoreError::Refused(r)) => r.code().to_owned(),
        Err(StoreError::NotFound) => "store:not_found".into(),
        Err(StoreError::Duplicate) => "store:duplicate".into(),
        Err(other) => format!("store error: {other}"),
    }
}
