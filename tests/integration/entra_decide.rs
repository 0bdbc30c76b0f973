//! Deciding Entra approvals, client half, against the Entra emulator over HTTPS and a
//! governance server that trusts it: the right endpoint per source (beta `steps` for roles,
//! v1.0 `stages` for groups and access packages) with the justification, done only on a 2xx
//! and then recorded in the audit chain; decided elsewhere (a real 409 and the documented 400),
//! not an approver, not yet my turn, gone, my own request, and Graph failing.

use std::sync::{Arc, Mutex};

use entra_emulator::{Fault, RequestKind, RequestSeed, RequestStatus, SecondDecision, demo};
use sponsor_console::client::ApiClient;
use sponsor_console::client::graph::{
    DecideError, Decision, DecisionOutcome, EntraApprovals, GraphClient, Sleeper, StaticToken,
    decide_and_record,
};
use sponsor_console::domain::entra::EntraSource;

use crate::common::entra::{EntraSetup, api_scope};

const WHY: &str = "CHG-4711: checked with the payments team";

struct Deciding {
    s: EntraSetup,
    adele: EntraApprovals,
    /// Adele at the governance server, through Entra.
    api: ApiClient,
}

/// `user`'s approvals; `sleeper` runs instead of every wait between retries.
fn approvals_of(s: &EntraSetup, user: &str, sleeper: Option<Sleeper>) -> EntraApprovals {
    let token = s
        .emu
        .access_token(user, "https://graph.microsoft.com/.default")
        .unwrap();
    let graph = GraphClient::new(
        s.config().http_client().unwrap(),
        s.emu.base_url(),
        Arc::new(StaticToken::new(token)),
        s.clock(),
    )
    .unwrap();
    let sleeper = sleeper.unwrap_or_else(|| Arc::new(|_| Box::pin(async {})));
    EntraApprovals::new(graph.with_sleeper(sleeper), user)
}

async fn start() -> Deciding {
    let s = EntraSetup::start().await;
    let adele = approvals_of(&s, demo::ADELE, None);
    let api =
        s.t.client
            .with_token(s.emu.access_token(demo::ADELE, &api_scope()).unwrap());
    Deciding { s, adele, api }
}

impl Deciding {
    fn seed(&self, seed: RequestSeed) -> String {
        self.s.emu.seed(seed).unwrap()
    }

    async fn row(&self, key: &str) -> sponsor_console::domain::entra::EntraApproval {
        self.adele.find(key).await.unwrap()
    }
}

#[tokio::test]
async fn an_approved_role_is_patched_at_its_beta_step_and_recorded_in_the_audit_chain() {
    let d = start().await;
    let id = d.seed(
        RequestSeed::role(demo::MEGAN, demo::ROLE_USER_ADMIN)
            .approvers(&[demo::ADELE])
            .ticket("CHG-4711", "ServiceNow"),
    );
    let row = d.row(&format!("role:{id}")).await;
    let decided = decide_and_record(
        &d.adele,
        &d.api,
        &row,
        Decision::Approve,
        WHY,
        Some(demo::TENANT_ID),
    )
    .await
    .unwrap();
    let DecisionOutcome::Done {
        stage_id,
        request_id,
        client_request_id,
    } = &decided.outcome
    else {
        panic!("{decided:?}");
    };
    let made = d.s.emu.decisions();
    assert_eq!(made.len(), 1);
    let m = &made[0];
    assert_eq!(
        (m.kind, m.api_version.as_str(), m.review_result.as_str()),
        (RequestKind::Role, "beta", "Approve")
    );
    assert_eq!(
        (m.approval_id.as_str(), m.stage_id.as_str()),
        (id.as_str(), stage_id.as_str())
    );
    assert_eq!(
        (m.approver_id.as_str(), m.justification.as_str()),
        (demo::ADELE, WHY)
    );
    assert_eq!(request_id.as_deref(), Some(m.request_id.as_str()));
    assert_eq!(
        m.client_request_id.as_deref(),
        Some(client_request_id.as_str())
    );
    assert_eq!(
        d.s.emu.request(&id).unwrap().status,
        RequestStatus::Provisioned
    );

    // The governance server recorded it: who, what, which Entra object, Graph's request-id.
    let seq = decided.recorded.unwrap().unwrap().seq;
    let events = d.api.audit_tail(5).await.unwrap();
    let e = events.iter().find(|e| e.event.seq == seq).unwrap();
    assert_eq!(e.event.action, "entra.decided");
    assert_eq!(e.event.subject, format!("entra:directory_role:{id}"));
    assert_eq!(
        e.event.actor.id,
        format!("entra:{}:{}", demo::TENANT_ID, demo::ADELE)
    );
    let details = &e.event.details;
    assert_eq!(details["decision"], "approve");
    assert_eq!(details["graph_request_id"], m.request_id.as_str());
    assert_eq!(details["stage_id"], stage_id.as_str());
    assert_eq!(details["justification"], WHY);
    assert_eq!(details["target_name"], "User Administrator");
    assert_eq!(details["requester_upn"], "megan@contoso.example");
    assert_eq!(details["tenant_id"], demo::TENANT_ID);
    assert!(e.action().is_ok(), "a typed audit action");
    assert!(d.api.audit_verify(None).await.unwrap().ok);
}

#[tokio::test]
async fn groups_and_access_packages_are_decided_at_their_v1_stages() {
    let d = start().await;
    let group =
        d.seed(RequestSeed::group(demo::MEGAN, demo::GROUP_PROD_DB).approvers(&[demo::ADELE]));
    let row = d.row(&format!("group:{group}")).await;
    let outcome = d
        .adele
        .decide(&row, Decision::Deny, "not in a change window")
        .await
        .unwrap();
    assert!(outcome.is_done(), "{outcome:?}");
    let m = d.s.emu.decisions().pop().unwrap();
    assert_eq!(
        (m.kind, m.api_version.as_str(), m.review_result.as_str()),
        (RequestKind::Group, "v1.0", "Deny")
    );
    assert_eq!(
        d.s.emu.request(&group).unwrap().status,
        RequestStatus::Denied
    );
    assert!(d.s.emu.calls().iter().any(|c| c.method == "PATCH"
        && c.path.contains("/assignmentApprovals/")
        && c.path.contains("/stages/")));

    // A two-stage package: Alex's stage waits for Adele's.
    let package = d.seed(RequestSeed::access_package(
        demo::MEGAN,
        demo::PACKAGE_AGENT_TOOLS,
    ));
    let alex = approvals_of(&d.s, demo::ALEX, None);
    let as_alex = alex.find(&format!("package:{package}")).await.unwrap();
    let early = alex.decide(&as_alex, Decision::Approve, WHY).await.unwrap();
    assert!(
        matches!(early, DecisionOutcome::NotYourTurn { .. }),
        "{early:?}"
    );
    let row = d.row(&format!("package:{package}")).await;
    assert!(
        d.adele
            .decide(&row, Decision::Approve, WHY)
            .await
            .unwrap()
            .is_done()
    );
    let again = d.adele.decide(&row, Decision::Approve, WHY).await.unwrap();
    assert!(
        matches!(again, DecisionOutcome::AlreadyDecided { .. }),
        "{again:?}"
    );
    assert!(
        alex.decide(&as_alex, Decision::Approve, WHY)
            .await
            .unwrap()
            .is_done()
    );
    let m = d.s.emu.decisions().pop().unwrap();
    assert_eq!(
        (m.kind, m.api_version.as_str(), m.approver_id.as_str()),
        (RequestKind::AccessPackage, "v1.0", demo::ALEX)
    );
    assert_eq!(
        d.s.emu.request(&package).unwrap().status,
        RequestStatus::Provisioned
    );
}

/// Alex decides while Adele's PATCH waits out a 429: her retried PATCH meets the real answer
/// to a second decision, 409 or (as some approval APIs send) 400.
#[tokio::test]
async fn a_decision_made_elsewhere_first_is_decided_by_someone_else() {
    for second in [SecondDecision::Conflict, SecondDecision::BadRequest] {
        let d = start().await;
        d.s.emu.set_second_decision(second);
        let id = d.seed(
            RequestSeed::role(demo::MEGAN, demo::ROLE_SECURITY_ADMIN)
                .approvers(&[demo::ADELE, demo::ALEX]),
        );
        let alex = Arc::new(approvals_of(&d.s, demo::ALEX, None));
        let row = d.row(&id).await;
        let race = Arc::new(Mutex::new(Some((alex, row.clone()))));
        let sleeper: Sleeper = Arc::new(move |_| {
            let turn = race.lock().unwrap().take();
            Box::pin(async move {
                if let Some((alex, row)) = turn {
                    let outcome = alex.decide(&row, Decision::Approve, "Alex was first").await;
                    assert!(outcome.unwrap().is_done());
                }
            })
        });
        let adele = approvals_of(&d.s, demo::ADELE, Some(sleeper));
        d.s.emu
            .inject(Fault::throttle("/steps/", Some("1")).method("PATCH"));
        let outcome = adele.decide(&row, Decision::Deny, WHY).await.unwrap();
        match &outcome {
            DecisionOutcome::DecidedElsewhere {
                by,
                result,
                request_id,
            } => {
                assert_eq!(by.as_deref(), Some("Alex Wilber"), "{second:?}");
                assert_eq!(result.as_deref(), Some("Approved"));
                let answered = d.s.emu.calls_to("/steps/");
                let last = answered.iter().rev().find(|c| c.method == "PATCH").unwrap();
                assert_eq!(
                    last.status,
                    if second == SecondDecision::Conflict {
                        409
                    } else {
                        400
                    }
                );
                assert_eq!(request_id.as_deref(), Some(last.request_id.as_str()));
            }
            other => panic!("{second:?}: {other:?}"),
        }
        assert!(
            outcome
                .describe()
                .starts_with("decided by someone else: Alex Wilber")
        );
        assert_eq!(d.s.emu.decisions().len(), 1, "only Alex's");
        // Read again, it is settled without a PATCH.
        let patches = d.s.emu.calls_to("/steps/").len();
        let later = d.adele.decide(&row, Decision::Deny, WHY).await.unwrap();
        assert!(matches!(later, DecisionOutcome::DecidedElsewhere { .. }));
        assert_eq!(d.s.emu.calls_to("/steps/").len(), patches);
    }
}

#[tokio::test]
async fn refusals_are_typed_and_nothing_unacknowledged_is_done() {
    let d = start().await;
    let calls = || d.s.emu.calls().len();

    // My own request: refused here, Graph not asked.
    let own = d.seed(
        RequestSeed::role(demo::ADELE, demo::ROLE_USER_ADMIN).approvers(&[demo::ADELE, demo::ALEX]),
    );
    let row = d.row(&own).await;
    assert!(row.is_own(demo::ADELE));
    let before = calls();
    match d.adele.decide(&row, Decision::Approve, WHY).await {
        Err(DecideError::Refused(r)) => assert_eq!(r.code(), "own_request"),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls(), before);
    // No justification: refused here too.
    let theirs =
        d.seed(RequestSeed::group(demo::MEGAN, demo::GROUP_PROD_DB).approvers(&[demo::ADELE]));
    let group = d.row(&theirs).await;
    let before = calls();
    match d.adele.decide(&group, Decision::Approve, "  ").await {
        Err(DecideError::Refused(r)) => assert_eq!(r.code(), "justification_required"),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls(), before);

    // Not an approver: Graph's 403 on the approval, and on the PATCH.
    let lee = approvals_of(&d.s, demo::LEE, None);
    let outcome = lee.decide(&group, Decision::Approve, WHY).await.unwrap();
    assert!(
        matches!(
            outcome,
            DecisionOutcome::NotApprover {
                request_id: Some(_)
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.describe().split(" (").next(),
        Some("you are not an approver of this")
    );
    d.s.emu
        .inject(Fault::status("/stages/", 403, "Authorization_RequestDenied").method("PATCH"));
    let outcome = d
        .adele
        .decide(&group, Decision::Approve, WHY)
        .await
        .unwrap();
    assert!(
        matches!(outcome, DecisionOutcome::NotApprover { .. }),
        "{outcome:?}"
    );

    // Gone: no such approval.
    let mut missing = group.clone();
    missing.approval_id = "00000000-0000-0000-0000-000000000000".into();
    let outcome = d
        .adele
        .decide(&missing, Decision::Approve, WHY)
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            DecisionOutcome::Gone {
                request_id: Some(_)
            }
        ),
        "{outcome:?}"
    );

    // Graph down: an error with its request-id, never done; a gateway timeout is not resent.
    d.s.emu.inject(
        Fault::unavailable("/stages/", Some("1"))
            .method("PATCH")
            .always(),
    );
    match d.adele.decide(&group, Decision::Approve, WHY).await {
        Err(DecideError::Graph(e)) => {
            assert_eq!(e.status(), Some(503));
            assert!(e.request_id().is_some());
            assert!(e.to_string().contains("request-id"));
        }
        other => panic!("{other:?}"),
    }
    d.s.emu.clear_faults();
    d.s.emu
        .inject(Fault::gateway_timeout("/stages/").method("PATCH"));
    let patches = d.s.emu.calls_to("/stages/").len();
    match d.adele.decide(&group, Decision::Approve, WHY).await {
        Err(DecideError::Graph(e)) => assert_eq!(e.status(), Some(504)),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.s.emu.calls_to("/stages/").len(), patches + 1, "one PATCH");
    assert!(d.s.emu.decisions().is_empty());
    assert_eq!(
        d.s.emu.request(&theirs).unwrap().status,
        RequestStatus::PendingApproval
    );

    // Expired: approvers' 24 hours passed.
    d.s.advance(25 * 3600);
    let fresh = approvals_of(&d.s, demo::ADELE, None);
    let outcome = fresh.decide(&group, Decision::Approve, WHY).await.unwrap();
    assert!(
        matches!(outcome, DecisionOutcome::Expired { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn the_server_records_only_sponsors_and_well_formed_decisions() {
    let d = start().await;
    let id = d.seed(RequestSeed::group(demo::MEGAN, demo::GROUP_PROD_DB).approvers(&[demo::ADELE]));
    let row = d.row(&id).await;
    let outcome = d.adele.decide(&row, Decision::Approve, WHY).await.unwrap();
    let body =
        sponsor_console::client::graph::audit_body(&row, Decision::Approve, WHY, &outcome, None)
            .unwrap();
    assert_eq!(body.source, EntraSource::PimGroup);
    // Not signed in: the decision stands in Entra, the record is refused.
    let anonymous = d.s.t.client.clone();
    assert_eq!(
        anonymous
            .record_entra_decision(&body)
            .await
            .unwrap_err()
            .status()
            .unwrap(),
        401
    );
    // An agent records nothing.
    let (key, _) = d.s.t.agent(&d.api, "entra-bot", &[]).await;
    let bot = d.s.t.as_agent(&key).await;
    assert_eq!(
        bot.record_entra_decision(&body)
            .await
            .unwrap_err()
            .status()
            .unwrap(),
        403
    );
    for (bad, code) in [
        (
            serde_json::json!({"justification": " "}),
            "justification_required",
        ),
        (
            serde_json::json!({"justification": "a\u{1b}[2Jb"}),
            "invalid_text",
        ),
        (serde_json::json!({"request_id": ""}), "invalid_entra_id"),
        (serde_json::json!({"stage_id": "x".repeat(200)}), "too_long"),
    ] {
        let mut v = serde_json::to_value(&body).unwrap();
        for (k, val) in bad.as_object().unwrap() {
            v[k] = val.clone();
        }
        let r = d
            .api
            .raw(reqwest::Method::POST, "/v1/entra/decisions")
            .json(&v)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let err: serde_json::Value = r.json().await.unwrap();
        assert_eq!(err["error"]["code"], code, "{v}");
    }
    let recorded = d.api.record_entra_decision(&body).await.unwrap();
    assert!(recorded.seq > 0);
}
